//! The scoring part of HAT and DAIM (METHODS §3 "Multi-level sum", §5 "Multi-level
//! alignment"): what sits between two towers that expose low, middle and high levels and the
//! loss or the evaluation.
//!
//! Each level of each tower goes through its own `Linear(width_level → D)`
//! ([`LevelProjection`]), then each level pair is scored by the multi-level head
//! ([`MultiLevelScan`]: SCAN image-to-text, `λ1 = 9`, mean over patches) and the levels are
//! summed. HAT's towers: Swin-B's stage outputs (stages 2–4, each after its own LayerNorm:
//! 256, 512, 1024 wide; 784, 196, 49 patches at 224 × 224) and bert-base's hidden states after
//! layers 4, 10 and 12 ([`HAT_TEXT_LAYERS`]; `BertModel::forward_layers`), captions of at
//! most 32 tokens. DAIM is the same network with its adaptive margin and distinguishability
//! applied per level (the losses in [`crate::loss`], on [`LevelScores::levels`]).
//!
//! The zoo's `hat` and `daim` entries do not hold this module: their towers
//! ([`crate::encoders::SwinLevelEncoder`], [`crate::encoders::BertLevelEncoder`]) own the
//! projections and emit the packed levels, and a [`crate::VseModel`] holds the head; this module
//! is the same computation on unpacked levels, the form the parity test checks against HAT's own
//! scoring function (`scripts/authors/hat_score.py`, `tests/multi_level_reference.rs`): values
//! and gradients.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::encoders::{LevelProjection, LevelProjectionConfig};
use crate::similarity::{
    MultiLevelScan, MultiLevelScanConfig, ScanConfig, hat_level_head, sum_levels,
};

/// HAT's text levels: the bert-base hidden states after layers 4, 10 and 12, as
/// `BertModel::forward_layers` numbers them (HAT's `all_encoder_layers[3]`, `[9]`, `[-1]`).
pub const HAT_TEXT_LAYERS: [usize; 3] = [4, 10, 12];

/// Configuration of a [`MultiLevelSimilarity`].
#[derive(Config, Debug)]
pub struct MultiLevelSimilarityConfig {
    /// Width of each image level, low → high.
    pub image_widths: Vec<usize>,
    /// Width of each caption level, low → high.
    pub text_widths: Vec<usize>,
    /// Patches per image at each level, low → high.
    pub image_regions: Vec<usize>,
    /// The common width `D`.
    #[config(default = 768)]
    pub d_embed: usize,
    /// The head of every level (default: HAT's).
    #[config(default = "hat_level_head()")]
    pub level_head: ScanConfig,
}

impl MultiLevelSimilarityConfig {
    /// HAT's: Swin-B at 224 × 224 (widths 256, 512, 1024; 784, 196, 49 patches), bert-base
    /// (768 at each of [`HAT_TEXT_LAYERS`]), `D = 768`, SCAN i2t with `λ1 = 9`.
    pub fn hat() -> Self {
        Self::new(vec![256, 512, 1024], vec![768; 3], vec![784, 196, 49])
    }

    /// Builds the projections on `device` and the head.
    ///
    /// # Panics
    ///
    /// If the three lists do not have one entry per level each, or a size is zero.
    pub fn init(&self, device: &Device) -> MultiLevelSimilarity {
        let levels = self.image_regions.len();
        assert!(
            self.image_widths.len() == levels && self.text_widths.len() == levels,
            "MultiLevelSimilarityConfig: image_widths {:?}, text_widths {:?} and \
             image_regions {:?} need one entry per level each",
            self.image_widths,
            self.text_widths,
            self.image_regions
        );
        MultiLevelSimilarity {
            image_projection: LevelProjectionConfig::new(self.image_widths.clone(), self.d_embed)
                .init(device),
            text_projection: LevelProjectionConfig::new(self.text_widths.clone(), self.d_embed)
                .init(device),
            head: MultiLevelScanConfig::new(self.image_regions.clone())
                .with_level_head(self.level_head.clone())
                .init(),
        }
    }
}

/// The score matrices of every level and their sum.
#[derive(Debug, Clone)]
pub struct LevelScores {
    /// One `[n_img, n_cap]` matrix per level, low → high.
    pub levels: Vec<Tensor<2>>,
    /// Their sum `[n_img, n_cap]`: the multi-level similarity.
    pub total: Tensor<2>,
}

/// Per-level projections of both towers and the multi-level head; see the module
/// documentation.
#[derive(Module, Debug)]
pub struct MultiLevelSimilarity {
    /// The image tower's per-level projections.
    pub image_projection: LevelProjection,
    /// The text tower's per-level projections.
    pub text_projection: LevelProjection,
    /// The head summing a SCAN score per level.
    pub head: MultiLevelScan,
}

impl MultiLevelSimilarity {
    /// Scores every image against every caption (training: a loss on `total`, or DAIM's per
    /// level on `levels`).
    ///
    /// - `image_levels`: the image tower's levels, low → high, level `ℓ`
    ///   `[n_img, image_regions[ℓ], image_widths[ℓ]]`, every patch valid
    /// - `caption_levels`: the text tower's levels, low → high, level `ℓ`
    ///   `[n_cap, L, text_widths[ℓ]]`
    /// - `caption_lengths`: tokens per caption (special tokens included), each in `1..=L`,
    ///   the same at every level
    /// - returns the per-level `[n_img, n_cap]` matrices and their sum
    pub fn forward(
        &self,
        image_levels: Vec<Tensor<3>>,
        caption_levels: Vec<Tensor<3>>,
        caption_lengths: &[usize],
    ) -> LevelScores {
        let images = self.image_projection.forward(image_levels);
        let captions = self.text_projection.forward(caption_levels);
        let levels = self.head.levels(&images, &captions, caption_lengths);
        let total = sum_levels(levels.iter().cloned());
        LevelScores { levels, total }
    }

    /// The image features that evaluation keeps: the projected levels packed into one set per
    /// image ([`MultiLevelScan::pack_images`]).
    ///
    /// - `image_levels`: as in [`MultiLevelSimilarity::forward`]
    /// - returns `[n_img, Σ image_regions, D]`, every image with all its rows valid
    pub fn encode_images(&self, image_levels: Vec<Tensor<3>>) -> Tensor<3> {
        self.head
            .pack_images(self.image_projection.forward(image_levels))
    }

    /// The caption features that evaluation keeps: the projected levels packed into one set
    /// per caption ([`MultiLevelScan::pack_captions`]).
    ///
    /// - `caption_levels`, `caption_lengths`: as in [`MultiLevelSimilarity::forward`]
    /// - returns `[n_cap, levels · L, D]` and the packed lengths `levels · caption_lengths[j]`
    pub fn encode_captions(
        &self,
        caption_levels: Vec<Tensor<3>>,
        caption_lengths: &[usize],
    ) -> (Tensor<3>, Vec<usize>) {
        self.head.pack_captions(
            self.text_projection.forward(caption_levels),
            caption_lengths,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::similarity::FineGrainedSimilarity;
    use burn::tensor::Distribution;

    fn host(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn hat_sizes() {
        let config = MultiLevelSimilarityConfig::hat();
        assert_eq!(config.d_embed, 768);
        assert_eq!(config.level_head.lambda_softmax, Some(9.0));
        let small = MultiLevelSimilarityConfig::new(vec![2, 3], vec![4, 4], vec![3, 1])
            .with_d_embed(5)
            .init(&Device::default());
        assert_eq!(small.head.num_levels(), 2);
        assert_eq!(small.text_projection.d_embed(), 5);
    }

    /// Scoring the encoded (projected, packed) features as evaluation does gives the total of
    /// the training forward, and the levels sum to it.
    #[test]
    fn encoded_features_score_like_the_forward() {
        let device = Device::default();
        device.seed(7);
        let similarity = MultiLevelSimilarityConfig::new(vec![3, 5], vec![4, 6], vec![4, 2])
            .with_d_embed(6)
            .init(&device);
        let normal = Distribution::Normal(0.0, 1.0);
        let images = vec![
            Tensor::<3>::random([2, 4, 3], normal, &device),
            Tensor::<3>::random([2, 2, 5], normal, &device),
        ];
        let captions = vec![
            Tensor::<3>::random([3, 5, 4], normal, &device),
            Tensor::<3>::random([3, 5, 6], normal, &device),
        ];
        let lengths = [5, 1, 3];
        let scores = similarity.forward(images.clone(), captions.clone(), &lengths);
        assert_eq!(scores.levels.len(), 2);
        let total = host(scores.total);
        let summed: Vec<f32> = host(scores.levels[0].clone())
            .iter()
            .zip(host(scores.levels[1].clone()))
            .map(|(a, b)| a + b)
            .collect();
        assert_eq!(total, summed);
        let packed_images = similarity.encode_images(images);
        let (packed_captions, packed_lengths) = similarity.encode_captions(captions, &lengths);
        let evaluated = host(similarity.head.similarity(
            packed_images,
            &[6, 6],
            packed_captions,
            &packed_lengths,
        ));
        for (a, b) in evaluated.iter().zip(&total) {
            assert!((a - b).abs() < 1e-6, "{evaluated:?} vs {total:?}");
        }
    }
}
