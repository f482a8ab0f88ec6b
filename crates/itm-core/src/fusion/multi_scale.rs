//! Multi-scale region fusion (CHAN-ASDG; METHODS §4): every region is combined with aggregates
//! of the regions around it before hard alignment.
//!
//! The CHAN-ASDG paper (Visual Computer, 2024) states that features pooled at several scales are
//! fused before the hard alignment; its public material gives no formula. What is implemented
//! here is **our design** from METHODS' description ("region features plus their pairwise /
//! pooled aggregates, concatenated or summed"):
//!
//! - Region features are an unordered set, so a "scale" is a neighbourhood in feature space:
//!   at scale `k` region `r` becomes the mean of itself and its `k − 1` most similar valid
//!   regions (cosine of the features; `k = 1` is the region itself, `k = 2` its pairwise
//!   aggregate). `k` is capped by the image's region count.
//! - The global scale is the mean of all valid regions of the image (every region gets it).
//! - The scales are combined by a learned convex sum `Σ_s softmax(a)_s · X_s` (`a` initialised
//!   at zero: the plain mean of the scales) or by concatenation followed by a linear map back
//!   to `D`.
//!
//! Which regions are neighbours is decided on detached features (a selection, not a
//! differentiable quantity); the means themselves carry gradients to every region they use.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::masking::{check_lengths, l2_normalize, padding_mask};

/// How the scales are combined into one feature per region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScaleCombination {
    /// `Σ_s softmax(a)_s · X_s` with learned logits `a` `[S]`.
    Sum,
    /// `Linear([X_1, …, X_S])`: `[S·D] → [D]`.
    Concat,
}

/// Configuration of a [`MultiScaleFusion`].
#[derive(Config, Debug)]
pub struct MultiScaleFusionConfig {
    /// Feature width `D` of the regions.
    pub d_model: usize,
    /// Neighbourhood sizes `k` of the local scales (`1` = the region itself).
    #[config(default = "vec![1, 2, 4]")]
    pub neighbourhoods: Vec<usize>,
    /// Whether the image mean is one more scale.
    #[config(default = true)]
    pub global: bool,
    /// How the scales are combined.
    #[config(default = "ScaleCombination::Sum")]
    pub combination: ScaleCombination,
}

impl MultiScaleFusionConfig {
    /// Number of scales `S`.
    pub fn scales(&self) -> usize {
        self.neighbourhoods.len() + usize::from(self.global)
    }

    /// Builds the fusion on `device`.
    pub fn init(&self, device: &Device) -> MultiScaleFusion {
        assert!(
            self.scales() > 0,
            "multi-scale fusion needs at least one scale"
        );
        assert!(
            self.neighbourhoods.iter().all(|&k| k >= 1),
            "neighbourhood sizes start at 1 (the region itself)"
        );
        let scales = self.scales();
        let (scale_logits, projection) = match self.combination {
            ScaleCombination::Sum => (
                Some(Param::from_tensor(Tensor::zeros([scales], device))),
                None,
            ),
            ScaleCombination::Concat => (
                None,
                Some(LinearConfig::new(scales * self.d_model, self.d_model).init(device)),
            ),
        };
        MultiScaleFusion {
            scale_logits,
            projection,
            neighbourhoods: self.neighbourhoods.clone(),
            global: self.global,
        }
    }
}

/// Multi-scale fusion of a region set `[batch, K, D]`; see the module documentation.
#[derive(Module, Debug)]
pub struct MultiScaleFusion {
    /// Scale logits `a` `[S]` of [`ScaleCombination::Sum`].
    pub scale_logits: Option<Param<Tensor<1>>>,
    /// Projection `[S·D] → [D]` of [`ScaleCombination::Concat`].
    pub projection: Option<Linear>,
    /// Neighbourhood sizes of the local scales.
    #[module(skip)]
    pub neighbourhoods: Vec<usize>,
    /// Whether the image mean is a scale.
    #[module(skip)]
    pub global: bool,
}

/// Similarity given to a region with itself and to padded regions before the neighbour
/// selection (cosines lie in `[−1, 1]`): the region itself always comes first, padding never.
const SELF_SIMILARITY: f32 = 3.0;
const PADDING_SIMILARITY: f32 = -3.0;

impl MultiScaleFusion {
    /// Weights of the scales `[S]` (softmax of the logits) in [`ScaleCombination::Sum`] mode.
    pub fn scale_weights(&self) -> Option<Tensor<1>> {
        self.scale_logits
            .as_ref()
            .map(|logits| burn::tensor::activation::softmax(logits.val(), 0))
    }

    /// The averaging matrices of every scale: `[S]` tensors `[batch, K, K]`, row `r` of image
    /// `b` holding `1/|N|` at the neighbours `N` of region `r` (valid regions only).
    pub fn neighbour_weights(&self, regions: &Tensor<3>, counts: &[usize]) -> Vec<Tensor<3>> {
        let [batch, k, _] = regions.dims();
        check_lengths(counts, k, "region counts");
        let device = regions.device();
        let unit = l2_normalize(regions.clone().detach());
        let eye = Tensor::<2>::eye(k, &device)
            .bool()
            .unsqueeze_dim::<3>(0)
            .expand([batch, k, k]);
        let padded_columns = padding_mask(counts, k, &device)
            .unsqueeze_dim::<3>(1)
            .expand([batch, k, k]);
        let similarity = unit
            .clone()
            .matmul(unit.swap_dims(1, 2))
            .mask_fill(eye, SELF_SIMILARITY)
            .mask_fill(padded_columns, PADDING_SIMILARITY);
        let sorted = similarity.clone().sort_descending(2);
        let mut sizes: Vec<Vec<usize>> = self
            .neighbourhoods
            .iter()
            .map(|&size| counts.iter().map(|&count| size.min(count)).collect())
            .collect();
        if self.global {
            sizes.push(counts.to_vec());
        }
        sizes
            .into_iter()
            .map(|sizes| {
                let position: Vec<i64> = sizes
                    .iter()
                    .flat_map(|&size| std::iter::repeat_n(size as i64 - 1, k))
                    .collect();
                let position =
                    Tensor::<3, Int>::from_data(TensorData::new(position, [batch, k, 1]), &device);
                let threshold = sorted.clone().gather(2, position).expand([batch, k, k]);
                let selected = similarity.clone().greater_equal(threshold).float();
                let size = selected.clone().sum_dim(2);
                selected / size
            })
            .collect()
    }

    /// - `regions`: `[batch, K, D]`, image `b` owning the first `counts[b]` rows
    /// - returns the fused regions `[batch, K, D]` (rows past a count are padding: finite,
    ///   to be masked by the caller as before)
    pub fn forward(&self, regions: Tensor<3>, counts: &[usize]) -> Tensor<3> {
        let [batch, k, d] = regions.dims();
        let scales: Vec<Tensor<3>> = self
            .neighbour_weights(&regions, counts)
            .into_iter()
            .map(|weights| weights.matmul(regions.clone()))
            .collect();
        match (&self.scale_logits, &self.projection) {
            (Some(_), _) => {
                let weights = self.scale_weights().expect("sum mode has logits");
                let count = scales.len();
                Tensor::stack::<4>(scales, 0)
                    .mul(weights.reshape([count, 1, 1, 1]))
                    .sum_dim(0)
                    .reshape([batch, k, d])
            }
            (None, Some(projection)) => projection.forward(Tensor::cat(scales, 2)),
            (None, None) => unreachable!("a fusion has logits or a projection"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn neighbourhoods_average_the_most_similar_regions() {
        let device = Device::default();
        // Regions 0 and 1 point the same way, 2 is orthogonal, 3 is padding.
        let regions =
            Tensor::<3>::from_floats([[[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [1.0, 0.0]]], &device);
        let fusion = MultiScaleFusionConfig::new(2)
            .with_neighbourhoods(vec![1, 2])
            .init(&device);
        let weights: Vec<Vec<f32>> = fusion
            .neighbour_weights(&regions, &[3])
            .into_iter()
            .map(host)
            .collect();
        // Scale 1: identity on the valid rows.
        assert_eq!(
            &weights[0][..12],
            &[1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1., 0.]
        );
        // Scale 2: 0 ↔ 1 pair up; 2's nearest is 1 (cos 0.05) rather than 0 (cos 0).
        assert_eq!(
            &weights[1][..12],
            &[0.5, 0.5, 0., 0., 0.5, 0.5, 0., 0., 0., 0.5, 0.5, 0.]
        );
        // Global: the mean of the three valid regions for every row; padding never used.
        let third = 1.0 / 3.0;
        for row in weights[2].chunks(4) {
            assert_eq!(row, &[third, third, third, 0.0]);
        }
    }

    #[test]
    fn neighbourhoods_larger_than_the_image_use_all_its_regions() {
        let device = Device::default();
        device.seed(4);
        let regions = Tensor::<3>::random([2, 5, 3], Distribution::Normal(0.0, 1.0), &device);
        let fusion = MultiScaleFusionConfig::new(3)
            .with_neighbourhoods(vec![4])
            .with_global(false)
            .init(&device);
        let weights = host(fusion.neighbour_weights(&regions, &[2, 5]).remove(0));
        // Image 0 has two regions: a neighbourhood of 4 is both of them.
        for row in weights[..25].chunks(5) {
            assert_eq!(row, &[0.5, 0.5, 0.0, 0.0, 0.0]);
        }
        // Image 1: four neighbours (itself included) per row.
        for row in weights[25..].chunks(5) {
            assert_eq!(row.iter().filter(|&&w| w == 0.25).count(), 4);
        }
    }

    #[test]
    fn initial_sum_is_the_mean_of_the_scales_and_padding_is_ignored() {
        let device = Device::default();
        let regions =
            Tensor::<3>::from_floats([[[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [9.0, -9.0]]], &device);
        let fusion = MultiScaleFusionConfig::new(2)
            .with_neighbourhoods(vec![1])
            .init(&device);
        let out = host(fusion.forward(regions.clone(), &[3]));
        // (x_r + mean of the three valid regions) / 2.
        let mean = [1.0, 1.1 / 3.0];
        let rows = [[1.0, 0.0], [2.0, 0.1], [0.0, 1.0]];
        for (r, row) in rows.iter().enumerate() {
            for c in 0..2 {
                let expected = (row[c] + mean[c]) / 2.0;
                assert!((out[r * 2 + c] - expected).abs() < 1e-6, "row {r} col {c}");
            }
        }
        // Changing the padded region changes no valid output.
        let altered = regions.slice_assign(
            [0..1, 3..4, 0..2],
            Tensor::<3>::from_floats([[[-5.0, 5.0]]], &device),
        );
        let again = host(fusion.forward(altered, &[3]));
        assert_eq!(&out[..6], &again[..6]);
    }

    #[test]
    fn concat_projects_back_to_the_model_width() {
        let device = Device::default();
        device.seed(2);
        let regions = Tensor::<3>::random([3, 6, 4], Distribution::Normal(0.0, 1.0), &device);
        let fusion = MultiScaleFusionConfig::new(4)
            .with_combination(ScaleCombination::Concat)
            .init(&device);
        let out = fusion.forward(regions, &[6, 1, 3]);
        assert_eq!(out.dims(), [3, 6, 4]);
        assert!(host(out).iter().all(|v| v.is_finite()));
    }
}
