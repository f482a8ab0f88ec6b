//! Multi-level similarity (DAIM / HAT; METHODS §3 "Multi-level sum" and §5 "Multi-level
//! alignment").
//!
//! **Not used yet**: no model, zoo entry or command builds this module today; it is a tested
//! building block waiting for the DAIM/HAT networks (the DAIM issue), which will use it or
//! remove it.
//!
//! The image and text encoders expose pooled vectors from a low, a middle and a high layer.
//! Each level is projected to a common width `D` by its own `Linear` per modality, l2-normalised,
//! and compared by cosine similarity; the total similarity is `S = S_low + S_mid + S_high`.
//! Training can apply a loss to the total or sum a loss over the three per-level matrices
//! ([`MultiLevelSimilarity::levels`]), which is DAIM's multi-level alignment.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::masking::l2_normalize;

/// Pooled features of one modality at the three levels of an encoder, each `[n, d_level]`.
#[derive(Debug, Clone)]
pub struct LevelFeatures {
    /// From a low (early) layer.
    pub low: Tensor<2>,
    /// From a middle layer.
    pub mid: Tensor<2>,
    /// From the last layer.
    pub high: Tensor<2>,
}

impl LevelFeatures {
    fn into_array(self) -> [Tensor<2>; 3] {
        [self.low, self.mid, self.high]
    }
}

/// Configuration of a [`MultiLevelSimilarity`].
#[derive(Config, Debug)]
pub struct MultiLevelSimilarityConfig {
    /// Widths of the image features at the low, middle and high level.
    pub image_widths: [usize; 3],
    /// Widths of the caption features at the low, middle and high level.
    pub text_widths: [usize; 3],
    /// The common width `D` every level is projected to.
    pub d_embed: usize,
}

impl MultiLevelSimilarityConfig {
    /// Builds the projections on `device`.
    pub fn init(&self, device: &Device) -> MultiLevelSimilarity {
        let project = |widths: [usize; 3]| {
            widths
                .iter()
                .map(|&width| LinearConfig::new(width, self.d_embed).init(device))
                .collect()
        };
        MultiLevelSimilarity {
            image_projections: project(self.image_widths),
            text_projections: project(self.text_widths),
        }
    }
}

/// `S = Σ_level cos(P_level^img(v_level), P_level^txt(c_level))`, one `Linear` per level and
/// modality.
#[derive(Module, Debug)]
pub struct MultiLevelSimilarity {
    /// Image projections, low, mid, high: `[d_level → D]`.
    pub image_projections: Vec<Linear>,
    /// Caption projections, low, mid, high: `[d_level → D]`.
    pub text_projections: Vec<Linear>,
}

impl MultiLevelSimilarity {
    /// The per-level cosine similarity matrices `[S_low, S_mid, S_high]`.
    ///
    /// - `images`: each level `[n_img, image_widths[level]]`
    /// - `captions`: each level `[n_cap, text_widths[level]]`
    /// - returns three `[n_img, n_cap]` matrices
    pub fn levels(&self, images: LevelFeatures, captions: LevelFeatures) -> [Tensor<2>; 3] {
        let images = images.into_array();
        let captions = captions.into_array();
        let mut matrices =
            images
                .into_iter()
                .zip(captions)
                .enumerate()
                .map(|(level, (image, caption))| {
                    let image = l2_normalize(self.image_projections[level].forward(image));
                    let caption = l2_normalize(self.text_projections[level].forward(caption));
                    image.matmul(caption.transpose())
                });
        std::array::from_fn(|_| matrices.next().expect("three levels"))
    }

    /// The multi-level similarity `S = S_low + S_mid + S_high`.
    ///
    /// - `images`: each level `[n_img, image_widths[level]]`
    /// - `captions`: each level `[n_cap, text_widths[level]]`
    /// - returns `[n_img, n_cap]`, each entry in `[−3, 3]`
    pub fn forward(&self, images: LevelFeatures, captions: LevelFeatures) -> Tensor<2> {
        let [low, mid, high] = self.levels(images, captions);
        low + mid + high
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;

    /// Sets a projection to a given `[in, out]` weight and zero bias.
    fn set(linear: &mut Linear, weight: Tensor<2>) {
        let [_, out] = weight.dims();
        linear.bias = Some(Param::from_tensor(Tensor::zeros([out], &weight.device())));
        linear.weight = Param::from_tensor(weight);
    }

    #[test]
    fn sum_of_level_cosines_by_hand() {
        let device = Device::default();
        let mut similarity = MultiLevelSimilarityConfig::new([2, 3, 2], [2, 2, 1], 2).init(&device);
        let eye = Tensor::<2>::eye(2, &device);
        // Images: identity at the low and high level, drop the third channel at the middle one.
        set(&mut similarity.image_projections[0], eye.clone());
        set(
            &mut similarity.image_projections[1],
            Tensor::from_floats([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], &device),
        );
        set(&mut similarity.image_projections[2], eye.clone());
        // Captions: identity, a swap of the two axes, and a 1-d feature placed on the first axis
        // scaled by 2 (the scale disappears in the cosine).
        set(&mut similarity.text_projections[0], eye);
        set(
            &mut similarity.text_projections[1],
            Tensor::from_floats([[0.0, 1.0], [1.0, 0.0]], &device),
        );
        set(
            &mut similarity.text_projections[2],
            Tensor::from_floats([[2.0, 0.0]], &device),
        );
        let images = LevelFeatures {
            low: Tensor::from_floats([[3.0, 4.0]], &device),
            mid: Tensor::from_floats([[1.0, 0.0, 7.0]], &device),
            high: Tensor::from_floats([[0.0, 5.0]], &device),
        };
        let captions = LevelFeatures {
            low: Tensor::from_floats([[1.0, 0.0], [0.0, 1.0]], &device),
            mid: Tensor::from_floats([[1.0, 0.0], [1.0, 1.0]], &device),
            high: Tensor::from_floats([[1.0], [-1.0]], &device),
        };
        // low: [0.6, 0.8]; mid: image (1, 0), captions (0, 1) and (1, 1)/√2 → [0, 0.7071];
        // high: image (0, 1), captions (±1, 0) → [0, 0].
        let levels = similarity.levels(images.clone(), captions.clone());
        let values = |t: Tensor<2>| t.into_data().try_into_vec::<f32>().unwrap();
        let expected = [
            [0.6, 0.8],
            [0.0, std::f32::consts::FRAC_1_SQRT_2],
            [0.0, 0.0],
        ];
        for (level, want) in levels.into_iter().zip(expected) {
            let got = values(level);
            assert!(
                got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
                "{got:?}"
            );
        }
        let total = values(similarity.forward(images, captions));
        let want = [0.6, 0.8 + std::f32::consts::FRAC_1_SQRT_2];
        assert!(
            total.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
            "{total:?}"
        );
    }
}
