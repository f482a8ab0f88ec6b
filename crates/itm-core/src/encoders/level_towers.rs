//! The towers of HAT and DAIM (METHODS §3 "Multi-level sum"): a Swin whose last three stages
//! and a BERT whose chosen hidden states are the low, middle and high levels, each through its
//! own `Linear(width_level → D)` ([`LevelProjection`]), emitted as **one packed set** per image
//! and per caption, the layout the multi-level head reads
//! ([`crate::similarity::MultiLevelScan`]): a [`crate::VseModel`] holds them as any other
//! towers, and the trainer, the evaluation and the sharded scorer see feature sets.
//!
//! - images: the levels' patches one after another, low first ([`pack_image_levels`]):
//!   `[batch, Σ K_ℓ, D]`, every row valid;
//! - captions: token `t` of level `ℓ` at row `levels · t + ℓ` ([`pack_caption_levels`]), so a
//!   caption's valid rows stay a prefix: `[batch, levels · L, D]`, lengths `levels · len`.
//!
//! HAT applies no normalisation after the projections; the model hands these sets to the head
//! as they are (the heads table's [`crate::similarity::SimilarityConfig::unit_sets`]).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};

use super::bert::{BertConfig, BertModel};
use super::level_projection::{LevelProjection, LevelProjectionConfig};
use super::swin::{SwinConfig, SwinModel};

/// Levels of HAT's towers.
pub const HAT_LEVELS: usize = 3;

/// HAT's text levels for a BERT of `layers` layers: the hidden states after
/// `⌈layers/3⌉`, `⌊5·layers/6⌋` (at least 1) and `layers` — bert-base's 4, 10 and 12
/// ([`crate::models::HAT_TEXT_LAYERS`]); a 3-layer BERT gets 1, 2, 3 (our rule for other
/// depths).
pub fn hat_text_layers(layers: usize) -> Vec<usize> {
    vec![layers.div_ceil(3), (5 * layers / 6).max(1), layers]
}

/// The images' levels as one set per image: the levels' patches one after another, low first.
///
/// - `levels`: level `ℓ` `[n, K_ℓ, D]`
/// - returns `[n, Σ K_ℓ, D]`
pub fn pack_image_levels(levels: Vec<Tensor<3>>) -> Tensor<3> {
    Tensor::cat(levels, 1)
}

/// The captions' levels as one set per caption: row `levels · t + ℓ` is token `t` at level
/// `ℓ`, so that a caption's valid rows stay a prefix.
///
/// - `levels`: level `ℓ` `[n, L, D]`, caption `j` owning its first `lengths[j]` tokens
/// - returns `[n, levels · L, D]` and the packed lengths `levels · lengths[j]`
pub fn pack_caption_levels(levels: Vec<Tensor<3>>, lengths: &[usize]) -> (Tensor<3>, Vec<usize>) {
    let count = levels.len();
    let [n, l, d] = levels[0].dims();
    let packed = Tensor::stack::<4>(levels, 2).reshape([n, count * l, d]);
    (packed, lengths.iter().map(|&len| count * len).collect())
}

/// Configuration of a [`SwinLevelEncoder`].
#[derive(Config, Debug)]
pub struct SwinLevelEncoderConfig {
    /// The Swin (three stages or more; HAT's has its stage norms).
    pub swin: SwinConfig,
    /// The common width `D`.
    pub d_embed: usize,
    /// How many of the last stages are levels: HAT's three, or fewer for an ablation (1: the
    /// last stage alone, a single-level model of the same size).
    #[config(default = 3)]
    pub levels: usize,
}

impl SwinLevelEncoderConfig {
    /// The stages that are levels, low → high: the last [`SwinLevelEncoderConfig::levels`].
    fn level_stages(&self) -> std::ops::Range<usize> {
        let stages = self.swin.num_stages();
        stages.saturating_sub(self.levels)..stages
    }

    /// The patches of each level at the configured image size, low → high: the last
    /// `levels` stages' grids (Swin-B at 224, three levels: 784, 196, 49).
    pub fn level_regions(&self) -> Vec<usize> {
        self.level_stages()
            .map(|s| self.swin.stage_grid(s).pow(2))
            .collect()
    }

    /// Widths of the levels, low → high.
    pub fn level_widths(&self) -> Vec<usize> {
        self.level_stages()
            .map(|s| self.swin.stage_dim(s))
            .collect()
    }

    /// Builds the tower on `device`.
    pub fn init(&self, device: &Device) -> SwinLevelEncoder {
        assert!(
            (1..=self.swin.num_stages()).contains(&self.levels),
            "SwinLevelEncoderConfig: {} levels of a {}-stage Swin",
            self.levels,
            self.swin.num_stages()
        );
        SwinLevelEncoder {
            swin: self.swin.init(device),
            projection: LevelProjectionConfig::new(self.level_widths(), self.d_embed).init(device),
        }
    }
}

/// HAT's image tower: Swin levels (its last three stages, through their norms) → one
/// `Linear` each → packed (see the module documentation).
#[derive(Module, Debug)]
pub struct SwinLevelEncoder {
    /// The Swin.
    pub swin: SwinModel,
    /// One projection per level (HAT's `cross_modal_image_transform_1`, `_2`, and the plain
    /// one for the high level).
    pub projection: LevelProjection,
}

impl SwinLevelEncoder {
    /// - `pixels`: `[batch, channels, height, width]`, normalised
    /// - returns `[batch, Σ K_ℓ, D]` (every row valid)
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<3> {
        let mut stages = self.swin.forward(pixels).stages;
        let levels = stages.split_off(stages.len() - self.projection.num_levels());
        pack_image_levels(self.projection.forward(levels))
    }
}

/// Configuration of a [`BertLevelEncoder`].
#[derive(Config, Debug)]
pub struct BertLevelEncoderConfig {
    /// The transformer.
    pub bert: BertConfig,
    /// The hidden states taken as levels, low → high (`BertModel::forward_layers`' numbers;
    /// HAT: [`hat_text_layers`]).
    pub layers: Vec<usize>,
    /// The common width `D`.
    pub d_embed: usize,
}

impl BertLevelEncoderConfig {
    /// Builds the tower on `device` (random weights: load pretrained ones into `bert`).
    ///
    /// # Panics
    ///
    /// If a layer exceeds the transformer's depth.
    pub fn init(&self, device: &Device) -> BertLevelEncoder {
        assert!(
            self.layers
                .iter()
                .all(|&layer| layer <= self.bert.num_hidden_layers),
            "BertLevelEncoderConfig: layers {:?} of a {}-layer BERT",
            self.layers,
            self.bert.num_hidden_layers
        );
        BertLevelEncoder {
            bert: self.bert.init(device),
            projection: LevelProjectionConfig::new(
                vec![self.bert.hidden_size; self.layers.len()],
                self.d_embed,
            )
            .init(device),
            layers: self.layers.clone(),
        }
    }
}

/// HAT's text tower: BERT's hidden states after the chosen layers → one `Linear` each →
/// packed (see the module documentation). Its transformer lives under the field `bert`, so an
/// optimiser can give it its own learning rate.
#[derive(Module, Debug)]
pub struct BertLevelEncoder {
    /// The transformer.
    pub bert: BertModel,
    /// One projection per level (HAT's `cross_modal_text_transform_1`, `_2`, and the plain
    /// one for the last layer).
    pub projection: LevelProjection,
    /// The hidden states taken as levels.
    #[module(skip)]
    pub layers: Vec<usize>,
}

impl BertLevelEncoder {
    /// - `tokens`: `[batch, L]` subword ids, valid prefix `lengths` (special tokens included)
    /// - returns `[batch, levels · L, D]` and the packed lengths `levels · lengths[b]`
    pub fn forward(&self, tokens: Tensor<2, Int>, lengths: &[usize]) -> (Tensor<3>, Vec<usize>) {
        let states = self.bert.forward_layers(tokens, lengths, &self.layers);
        pack_caption_levels(self.projection.forward(states), lengths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    #[test]
    fn hat_layers_and_levels() {
        assert_eq!(hat_text_layers(12), [4, 10, 12]);
        assert_eq!(hat_text_layers(3), [1, 2, 3]);
        let config = SwinLevelEncoderConfig::new(SwinConfig::swin_base_patch4_window7_224(), 768);
        assert_eq!(config.level_regions(), [784, 196, 49]);
        assert_eq!(config.level_widths(), [256, 512, 1024]);
    }

    /// The towers emit the packed layout: the tiny Swin's levels (256, 64 and 16 patches at
    /// 32 px) one after another, and the caption's levels interleaved per token, each level
    /// its own projection of its own hidden state.
    #[test]
    fn towers_emit_packed_levels() {
        let device = Device::default();
        device.seed(3);
        let swin = SwinLevelEncoderConfig::new(SwinConfig::tiny(), 6);
        assert_eq!(swin.level_regions(), [256, 64, 16]);
        let tower = swin.init(&device);
        let pixels = Tensor::<4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let packed = tower.forward(pixels.clone());
        assert_eq!(packed.dims(), [2, 336, 6]);
        let high = tower.projection.levels[2].forward(tower.swin.levels(pixels).high);
        let worst = (packed.narrow(1, 320, 16) - high)
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(worst < 1e-6, "{worst}");

        // One level: the last stage alone, through the same kind of projection.
        let single = swin.clone().with_levels(1);
        assert_eq!(
            (single.level_regions(), single.level_widths()),
            (vec![16], vec![32])
        );
        let single = single.init(&device);
        let pixels = Tensor::<4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let high = single.projection.levels[0].forward(single.swin.levels(pixels.clone()).high);
        let worst = (single.forward(pixels) - high)
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(worst < 1e-6, "{worst}");

        let bert = BertConfig::new(20, 8, 3, 2, 16, 10);
        let text = BertLevelEncoderConfig::new(bert, hat_text_layers(3), 6).init(&device);
        let ids = Tensor::<2, Int>::from_data(
            TensorData::new(vec![1i64, 4, 5, 2, 1, 6, 2, 0], [2, 4]),
            &device,
        );
        let (packed, lengths) = text.forward(ids.clone(), &[4, 3]);
        assert_eq!((packed.dims(), lengths), ([2, 12, 6], vec![12, 9]));
        let middle = text.projection.levels[1]
            .forward(text.bert.forward_layers(ids, &[4, 3], &[2]).remove(0));
        let rows = packed
            .reshape([2, 4, 3, 6])
            .narrow(2, 1, 1)
            .reshape([2, 4, 6]);
        let worst = (rows - middle).abs().max().into_scalar::<f32>();
        assert!(worst < 1e-6, "{worst}");
    }
}
