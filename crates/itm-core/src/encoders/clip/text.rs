//! CLIP's text tower: a causal transformer whose end-of-text token represents the text.

use burn::config::Config;
use burn::module::Module;
use burn::nn::attention::generate_autoregressive_mask;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::layer::{ClipEncoder, INITIALIZER_RANGE, LayerSizes, check_tower};
use crate::masking::{check_lengths, gather_steps, padding_mask};

/// Text positions of OpenAI's CLIP models (its context length), and of
/// [`ClipConfig::small`](super::ClipConfig::small).
pub const CLIP_TEXT_POSITIONS: usize = 77;

/// The text tower of a [`ClipConfig`](super::ClipConfig); fields carry the names of
/// `text_config` in Hugging Face's `config.json`.
#[derive(Config, Debug)]
pub struct ClipTextConfig {
    /// Size of the token vocabulary.
    pub vocab_size: usize,
    /// Width of the token features.
    pub hidden_size: usize,
    /// Hidden width of the feed-forward sub-layers.
    pub intermediate_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Number of attention heads; must divide `hidden_size`.
    pub num_attention_heads: usize,
    /// Longest token sequence (CLIP: 77).
    pub max_position_embeddings: usize,
    /// Feed-forward activation: `"quick_gelu"` (`x·σ(1.702x)`, OpenAI CLIP) or `"gelu"`.
    #[config(default = "String::from(\"quick_gelu\")")]
    pub hidden_act: String,
    /// Epsilon of every layer norm.
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
    /// Dropout on the attention weights (training only).
    #[config(default = 0.0)]
    pub attention_dropout: f64,
    /// Id of the end-of-text token whose features are the text's embedding. The value `2`
    /// marks the configs written before transformers PR #24773 (openai/clip-vit-base-patch32
    /// among them): there the largest token id of each text is taken instead, as transformers
    /// still does for them (the end-of-text token has the largest id of CLIP's vocabulary).
    #[config(default = 49407)]
    pub eos_token_id: usize,
}

impl ClipTextConfig {
    /// Checks the sizes and the activation; a message names the `text_config` key.
    pub fn validate(&self) -> Result<(), String> {
        check_tower(
            "text_config",
            &[
                ("vocab_size", self.vocab_size),
                ("hidden_size", self.hidden_size),
                ("intermediate_size", self.intermediate_size),
                ("num_hidden_layers", self.num_hidden_layers),
                ("num_attention_heads", self.num_attention_heads),
                ("max_position_embeddings", self.max_position_embeddings),
            ],
            self.hidden_size,
            self.num_attention_heads,
            self.layer_norm_eps,
            &self.hidden_act,
        )
    }
}

/// The value of `eos_token_id` that marks configs older than transformers PR #24773, where the
/// pooled token is the one with the largest id.
const LEGACY_EOS_TOKEN_ID: usize = 2;

/// Token + position embeddings.
#[derive(Module, Debug)]
pub struct ClipTextEmbeddings {
    /// Token embeddings, weight `[vocab_size, hidden]`.
    pub token_embedding: Embedding,
    /// Position embeddings, weight `[max_position_embeddings, hidden]`.
    pub position_embedding: Embedding,
}

impl ClipTextEmbeddings {
    /// - `ids`: `[batch, tokens]`
    /// - returns `[batch, tokens, hidden]`; token `t` sits at position `t`
    ///
    /// # Panics
    ///
    /// If `tokens` exceeds the number of position embeddings.
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let [_, tokens] = ids.dims();
        let [max_positions, hidden] = self.position_embedding.weight.dims();
        assert!(
            tokens <= max_positions,
            "{tokens} tokens exceed the {max_positions} position embeddings"
        );
        let positions = self
            .position_embedding
            .weight
            .val()
            .narrow(0, 0, tokens)
            .reshape([1, tokens, hidden]);
        self.token_embedding.forward(ids) + positions
    }
}

/// Embeddings → causal pre-norm layers → `final_layer_norm`; the text is represented by its
/// end-of-text token.
#[derive(Module, Debug)]
pub struct ClipTextTransformer {
    /// Tokens and positions.
    pub embeddings: ClipTextEmbeddings,
    /// The transformer layers (causal attention).
    pub encoder: ClipEncoder,
    /// Layer norm after the last layer.
    pub final_layer_norm: LayerNorm,
    /// `eos_token_id` of the config (see [`ClipTextConfig::eos_token_id`]).
    pub eos_token_id: usize,
}

impl ClipTextTransformer {
    /// Random weights as transformers draws them (embeddings from `N(0, 0.02²)`, layers as
    /// [`ClipEncoder::new`]).
    pub(crate) fn new(config: &ClipTextConfig, device: &Device) -> Self {
        let hidden = config.hidden_size;
        let normal = Initializer::Normal {
            mean: 0.0,
            std: INITIALIZER_RANGE,
        };
        Self {
            embeddings: ClipTextEmbeddings {
                token_embedding: EmbeddingConfig::new(config.vocab_size, hidden)
                    .with_initializer(normal.clone())
                    .init(device),
                position_embedding: EmbeddingConfig::new(config.max_position_embeddings, hidden)
                    .with_initializer(normal)
                    .init(device),
            },
            encoder: ClipEncoder::new(
                &LayerSizes {
                    hidden,
                    intermediate: config.intermediate_size,
                    heads: config.num_attention_heads,
                    layers: config.num_hidden_layers,
                    layer_norm_eps: config.layer_norm_eps,
                    attention_dropout: config.attention_dropout,
                    hidden_act: &config.hidden_act,
                },
                device,
            ),
            final_layer_norm: LayerNormConfig::new(hidden)
                .with_epsilon(config.layer_norm_eps)
                .init(device),
            eos_token_id: config.eos_token_id,
        }
    }

    /// Features of every token after `final_layer_norm`.
    ///
    /// - `ids`: `[batch, tokens]`, start and end tokens included, anything past `lengths[b]`
    ///   padding
    /// - `lengths`: real tokens per row, each in `1..=tokens`
    /// - returns `[batch, tokens, hidden]`
    ///
    /// Token `t` attends to the real tokens `..=t` (causal mask, padded keys masked too, as
    /// transformers does), so the features of real tokens do not depend on the padding.
    ///
    /// # Panics
    ///
    /// If `lengths` does not fit the batch or `tokens` exceeds `max_position_embeddings`.
    pub fn forward(&self, ids: Tensor<2, Int>, lengths: &[usize]) -> Tensor<3> {
        let [batch, tokens] = ids.dims();
        assert_eq!(
            lengths.len(),
            batch,
            "{} lengths for a batch of {batch}",
            lengths.len()
        );
        check_lengths(lengths, tokens, "ClipTextTransformer::forward");
        let device = ids.device();
        let padding = padding_mask(lengths, tokens, &device);
        let causal = generate_autoregressive_mask(batch, tokens, &device);
        let x = self.embeddings.forward(ids);
        self.final_layer_norm
            .forward(self.encoder.forward(x, Some(padding), Some(causal)))
    }

    /// Position of the token that represents each text, `[batch, 1]`.
    ///
    /// Follows transformers 5 (`CLIPTextTransformer`): with `eos_token_id = 2` (configs
    /// older than PR #24773, openai/clip-vit-base-patch32 among them) the first position of
    /// the largest id, else the first position of `eos_token_id` (position 0 if a text has
    /// none). Only real tokens (`t < lengths[b]`) are candidates; transformers looks at the
    /// padding too, which picks the same token whenever the padding id is the end-of-text id
    /// or smaller (CLIP's tokenizers pad with `<|endoftext|>` or `!`).
    pub fn pooled_positions(&self, ids: Tensor<2, Int>, lengths: &[usize]) -> Tensor<2, Int> {
        let [batch, tokens] = ids.dims();
        let device = ids.device();
        // A key whose row maximum is unique: the criterion times `tokens`, plus a tie-break
        // that favours earlier positions.
        let earlier: Vec<i64> = (0..batch)
            .flat_map(|_| (0..tokens).map(|t| (tokens - 1 - t) as i64))
            .collect();
        let earlier =
            Tensor::<2, Int>::from_data(TensorData::new(earlier, [batch, tokens]), &device);
        let criterion = if self.eos_token_id == LEGACY_EOS_TOKEN_ID {
            ids
        } else {
            ids.equal_elem(self.eos_token_id as i64).int()
        };
        (criterion.mul_scalar(tokens as i64) + earlier)
            .mask_fill(padding_mask(lengths, tokens, &device), -1)
            .argmax(1)
    }

    /// The pooled text feature: the features of the end-of-text token
    /// ([`ClipTextTransformer::pooled_positions`]).
    ///
    /// - `ids`, `lengths`: as in [`ClipTextTransformer::forward`]
    /// - returns `[batch, hidden]`
    pub fn pooled(&self, ids: Tensor<2, Int>, lengths: &[usize]) -> Tensor<2> {
        let positions = self.pooled_positions(ids.clone(), lengths);
        let features = self.forward(ids, lengths);
        let [batch, _, hidden] = features.dims();
        gather_steps(features, positions).reshape([batch, hidden])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(rows: &[&[i64]], device: &Device) -> Tensor<2, Int> {
        let width = rows[0].len();
        let flat: Vec<i64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_data(TensorData::new(flat, [rows.len(), width]), device)
    }

    fn positions(eos: usize, rows: &[&[i64]], lengths: &[usize]) -> Vec<i64> {
        let device = Device::default();
        let config = ClipTextConfig::new(100, 8, 12, 1, 2, 8).with_eos_token_id(eos);
        let text = ClipTextTransformer::new(&config, &device);
        text.pooled_positions(ids(rows, &device), lengths)
            .into_data()
            .try_into_vec_as::<i64>()
            .unwrap()
    }

    #[test]
    fn pooled_position_is_the_first_end_of_text_token() {
        let rows: &[&[i64]] = &[
            &[98, 5, 99, 99, 99],  // end token 99, padded with 99
            &[98, 99, 7, 99, 0],   // two end tokens: the first wins
            &[98, 5, 6, 90, 99],   // no end token among the real ones: position 0
            &[98, 50, 60, 99, 99], // one real end token
        ];
        assert_eq!(positions(99, rows, &[3, 5, 4, 4]), vec![2, 1, 0, 3]);
    }

    #[test]
    fn legacy_configs_pool_at_the_largest_id() {
        let rows: &[&[i64]] = &[
            &[98, 5, 99, 99, 99],  // ties between equal ids: the first wins
            &[98, 97, 3, 0, 0],    // the start token is the largest here
            &[10, 40, 20, 60, 99], // padding with a larger id is ignored
        ];
        assert_eq!(positions(2, rows, &[3, 3, 4]), vec![2, 0, 3]);
    }
}
