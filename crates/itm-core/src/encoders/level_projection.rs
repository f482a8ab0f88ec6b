//! The per-level projections of a multi-level tower (HAT, DAIM; METHODS §3 "Multi-level sum"):
//! each level a tower exposes (a Swin stage, a BERT layer) goes through its own
//! `Linear(width_level → D)` into the common width of the multi-level head.
//!
//! HAT's code names them `cross_modal_image_transform{_1,_2,}` and
//! `cross_modal_text_transform{_1,_2,}`; it applies no normalisation after them.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// Configuration of a [`LevelProjection`].
#[derive(Config, Debug)]
pub struct LevelProjectionConfig {
    /// Width of each level, low → high (HAT's Swin-B stages: 256, 512, 1024; its bert-base
    /// layers: 768 each).
    pub widths: Vec<usize>,
    /// The common width `D` (HAT: 768).
    pub d_embed: usize,
}

impl LevelProjectionConfig {
    /// Builds one `Linear(widths[level] → d_embed)` per level on `device` (burn's default
    /// initialisation; HAT draws `N(0, 0.02²)` with zero biases, which a loader overwrites).
    ///
    /// # Panics
    ///
    /// If there is no level or a width is zero.
    pub fn init(&self, device: &Device) -> LevelProjection {
        assert!(
            !self.widths.is_empty() && self.widths.iter().all(|&w| w > 0) && self.d_embed > 0,
            "LevelProjectionConfig: widths {:?} and d_embed {} must be positive, one level or more",
            self.widths,
            self.d_embed
        );
        LevelProjection {
            levels: self
                .widths
                .iter()
                .map(|&width| LinearConfig::new(width, self.d_embed).init(device))
                .collect(),
        }
    }
}

/// One `Linear(width_level → D)` per level of one tower.
#[derive(Module, Debug)]
pub struct LevelProjection {
    /// The projections, low → high: weight `[width_level, D]`, bias `[D]`.
    pub levels: Vec<Linear>,
}

impl LevelProjection {
    /// Projects every level.
    ///
    /// - `levels`: one tensor per level, low → high, level `ℓ` `[n, len_ℓ, width_ℓ]` (the set
    ///   lengths may differ between levels: Swin stages have fewer patches the higher they are)
    /// - returns level `ℓ` as `[n, len_ℓ, D]`; padding rows are projected too (the heads
    ///   mask them)
    ///
    /// # Panics
    ///
    /// If the number of levels or a width differs from the configuration.
    pub fn forward(&self, levels: Vec<Tensor<3>>) -> Vec<Tensor<3>> {
        assert_eq!(
            levels.len(),
            self.levels.len(),
            "LevelProjection: {} levels given, {} configured",
            levels.len(),
            self.levels.len()
        );
        levels
            .into_iter()
            .zip(&self.levels)
            .enumerate()
            .map(|(level, (x, linear))| {
                let [d_in, _] = linear.weight.dims();
                let [_, _, width] = x.dims();
                assert_eq!(
                    width, d_in,
                    "LevelProjection: level {level} is {width} wide, its projection takes {d_in}"
                );
                linear.forward(x)
            })
            .collect()
    }

    /// Number of levels.
    pub fn num_levels(&self) -> usize {
        self.levels.len()
    }

    /// The common width `D`.
    pub fn d_embed(&self) -> usize {
        self.levels[0].weight.dims()[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn each_level_has_its_own_projection() {
        let device = Device::default();
        device.seed(1);
        let projection = LevelProjectionConfig::new(vec![2, 3, 4], 5).init(&device);
        assert_eq!((projection.num_levels(), projection.d_embed()), (3, 5));
        let levels: Vec<Tensor<3>> = [(6, 2), (3, 3), (1, 4)]
            .iter()
            .map(|&(len, w)| Tensor::random([2, len, w], Distribution::Default, &device))
            .collect();
        let out = projection.forward(levels.clone());
        let dims: Vec<[usize; 3]> = out.iter().map(|t| t.dims()).collect();
        assert_eq!(dims, [[2, 6, 5], [2, 3, 5], [2, 1, 5]]);
        let host = |t: Tensor<3>| t.into_data().try_into_vec::<f32>().unwrap();
        assert_eq!(
            host(out[1].clone()),
            host(projection.levels[1].forward(levels[1].clone()))
        );
    }

    #[test]
    #[should_panic(expected = "level 1 is 4 wide, its projection takes 3")]
    fn a_wrong_width_is_named() {
        let device = Device::default();
        let projection = LevelProjectionConfig::new(vec![2, 3], 5).init(&device);
        projection.forward(vec![
            Tensor::zeros([1, 1, 2], &device),
            Tensor::zeros([1, 1, 4], &device),
        ]);
    }
}
