//! One text tower for every tokenisation: words through a BiGRU, subwords through BERT or
//! CLIP's text transformer.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor};

use super::bert::{BertConfig, BertModel};
use super::clip::{ClipTextEncoder, ClipTextEncoderConfig};
use super::level_towers::{BertLevelEncoder, BertLevelEncoderConfig};
use super::text_gru::{GruTextEncoder, GruTextEncoderConfig};

/// A BERT-family encoder followed by `Linear(hidden → D)` (VSE∞ with BERT).
#[derive(Config, Debug)]
pub struct BertTextEncoderConfig {
    /// The transformer (sizes as in the checkpoint's `config.json`).
    pub bert: BertConfig,
    /// Width of the joint embedding space `D`.
    pub d_embed: usize,
}

/// `BERT → Linear(hidden → D)`: token features `[batch, tokens, D]`.
///
/// Its transformer's parameters live under the field `bert`, so that an optimiser can give
/// them their own learning rate (VSE∞ uses a tenth of the rest).
#[derive(Module, Debug)]
pub struct BertTextEncoder {
    /// The pretrained transformer.
    pub bert: BertModel,
    /// Projection of every token to the joint space.
    pub projection: Linear,
}

impl BertTextEncoderConfig {
    /// Builds the encoder on `device` (random weights: load pretrained ones into `bert`).
    pub fn init(&self, device: &Device) -> BertTextEncoder {
        BertTextEncoder {
            bert: self.bert.init(device),
            projection: LinearConfig::new(self.bert.hidden_size, self.d_embed).init(device),
        }
    }
}

/// Which text encoder a model uses.
#[derive(Config, Debug)]
pub enum TextEncoderConfig {
    /// Word embeddings and a BiGRU.
    Gru(GruTextEncoderConfig),
    /// A BERT-family transformer and a projection.
    Bert(BertTextEncoderConfig),
    /// CLIP's causal text transformer: one projected end-of-text token per caption.
    Clip(ClipTextEncoderConfig),
    /// A BERT's chosen hidden states, each projected, packed into one set (HAT, DAIM).
    BertLevels(BertLevelEncoderConfig),
}

/// A text encoder built from a [`TextEncoderConfig`].
// A model holds one text encoder, built once: the size difference of the variants is moot.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum TextEncoder {
    /// See [`TextEncoderConfig::Gru`].
    Gru(GruTextEncoder),
    /// See [`TextEncoderConfig::Bert`].
    Bert(BertTextEncoder),
    /// See [`TextEncoderConfig::Clip`].
    Clip(ClipTextEncoder),
    /// See [`TextEncoderConfig::BertLevels`].
    BertLevels(BertLevelEncoder),
}

impl TextEncoderConfig {
    /// Builds the encoder on `device`.
    pub fn init(&self, device: &Device) -> TextEncoder {
        match self {
            TextEncoderConfig::Gru(config) => TextEncoder::Gru(config.init(device)),
            TextEncoderConfig::Bert(config) => TextEncoder::Bert(config.init(device)),
            TextEncoderConfig::Clip(config) => TextEncoder::Clip(config.init(device)),
            TextEncoderConfig::BertLevels(config) => TextEncoder::BertLevels(config.init(device)),
        }
    }

    /// Width of the features the encoder produces.
    pub fn d_embed(&self) -> usize {
        match self {
            TextEncoderConfig::Gru(config) => config.d_embed,
            TextEncoderConfig::Bert(config) => config.d_embed,
            TextEncoderConfig::Clip(config) => config.d_embed,
            TextEncoderConfig::BertLevels(config) => config.d_embed,
        }
    }
}

impl TextEncoder {
    /// - `tokens`: `[batch, max_len]` ids (words or subwords, as the encoder expects), padded
    ///   past `lengths[b]`
    /// - returns a set of features `[batch, n, D]` and its valid lengths: the tokens
    ///   (`n = max_len`, the lengths given; meaningless at padding positions, which every
    ///   pooling ignores), or for CLIP a set of one (`n = 1`), or
    ///   for BERT levels the packed levels (`n = levels · max_len`, lengths `levels · lengths[b]`)
    pub fn forward(&self, tokens: Tensor<2, Int>, lengths: &[usize]) -> (Tensor<3>, Vec<usize>) {
        match self {
            TextEncoder::Gru(encoder) => (encoder.forward(tokens, lengths), lengths.to_vec()),
            TextEncoder::Bert(encoder) => (
                encoder
                    .projection
                    .forward(encoder.bert.forward(tokens, lengths)),
                lengths.to_vec(),
            ),
            TextEncoder::Clip(encoder) => (
                encoder.forward(tokens, lengths).unsqueeze_dim(1),
                vec![1; lengths.len()],
            ),
            TextEncoder::BertLevels(encoder) => encoder.forward(tokens, lengths),
        }
    }
}
