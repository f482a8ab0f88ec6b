//! Token ids → contextual token features with a BERT-family transformer (the architecture of
//! Hugging Face `BertModel`: bert-base, MiniLM, all-MiniLM-L6-v2, …).
//!
//! The model knows nothing of file formats; `itm_train::load_bert` fills it from a
//! `config.json` + `model.safetensors` folder.
//!
//! The encoder stack is burn's [`TransformerEncoder`] in post-norm mode, which computes exactly
//! what a BERT layer computes (`LN(x + Attn(x))`, then `LN(x + W₂·GELU(W₁·x))`, scores scaled
//! by `1/√d_head`, padded keys masked before the softmax), with the same four `d → d` attention
//! projections and the same two feed-forward projections; its layers run through
//! [`super::transformer::encoder_layer`], which evaluates them with the softmax and GELU
//! kernels of [`crate::ops`].

use burn::config::Config;
use burn::module::Module;
use burn::nn::activation::ActivationConfig;
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderConfig};
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear,
    LinearConfig,
};
use burn::tensor::{Device, Int, Tensor};

use super::layers::states_at_depths;
use super::transformer::encoder_layer;
use crate::masking::{check_lengths, l2_normalize, padding_mask};
use crate::pooling::mean_pool;

/// Configuration of a [`BertModel`]; the fields carry the names of Hugging Face's
/// `config.json` (which `itm_train`'s loader reads: the model knows no file format).
#[derive(Config, Debug)]
pub struct BertConfig {
    /// Size of the token vocabulary.
    pub vocab_size: usize,
    /// Width of the token features.
    pub hidden_size: usize,
    /// Number of transformer layers (0: the embeddings alone, as the small BERT of the
    /// authors'-code fixtures).
    pub num_hidden_layers: usize,
    /// Number of attention heads; must divide `hidden_size`.
    pub num_attention_heads: usize,
    /// Hidden width of the feed-forward sub-layers.
    pub intermediate_size: usize,
    /// Longest sequence the position embeddings cover.
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    #[config(default = 2)]
    pub type_vocab_size: usize,
    /// Epsilon of every layer norm.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Feed-forward activation: `"gelu"` (exact, erf-based) or `"gelu_new"` /
    /// `"gelu_pytorch_tanh"` (tanh approximation).
    #[config(default = "String::from(\"gelu\")")]
    pub hidden_act: String,
    /// Dropout on the embeddings and inside the layers (training only).
    #[config(default = 0.1)]
    pub hidden_dropout_prob: f64,
    /// Whether the model has the pooler (`Linear + tanh` on the first token). Not a key of
    /// Hugging Face's `config.json`: a loader sets it from the weights it finds.
    #[config(default = true)]
    pub add_pooling_layer: bool,
}

impl BertConfig {
    /// Checks the sizes and the activation.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(format!("{name} must be positive"));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "num_attention_heads ({}) does not divide hidden_size ({})",
                self.num_attention_heads, self.hidden_size
            ));
        }
        if self.layer_norm_eps.is_nan() || self.layer_norm_eps <= 0.0 {
            return Err(format!(
                "layer_norm_eps must be positive, got {}",
                self.layer_norm_eps
            ));
        }
        self.activation().map(|_| ())
    }

    fn activation(&self) -> Result<ActivationConfig, String> {
        match self.hidden_act.as_str() {
            "gelu" => Ok(ActivationConfig::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(ActivationConfig::GeluApproximate),
            other => Err(format!(
                "hidden_act \"{other}\" is not supported (gelu, gelu_new, gelu_pytorch_tanh)"
            )),
        }
    }

    /// Builds a randomly initialised model on `device` (load weights afterwards).
    ///
    /// # Panics
    ///
    /// If the configuration is invalid (see [`BertConfig::validate`]).
    pub fn init(&self, device: &Device) -> BertModel {
        if let Err(message) = self.validate() {
            panic!("invalid BertConfig: {message}");
        }
        let activation = self.activation().expect("validated");
        let encoder = TransformerEncoderConfig::new(
            self.hidden_size,
            self.intermediate_size,
            self.num_attention_heads,
            self.num_hidden_layers,
        )
        .with_norm_first(false)
        .with_dropout(self.hidden_dropout_prob)
        .with_activation(activation)
        .with_layer_norm_eps(self.layer_norm_eps)
        .init(device);
        BertModel {
            embeddings: BertEmbeddings {
                word_embeddings: EmbeddingConfig::new(self.vocab_size, self.hidden_size)
                    .init(device),
                position_embeddings: EmbeddingConfig::new(
                    self.max_position_embeddings,
                    self.hidden_size,
                )
                .init(device),
                token_type_embeddings: EmbeddingConfig::new(self.type_vocab_size, self.hidden_size)
                    .init(device),
                layer_norm: LayerNormConfig::new(self.hidden_size)
                    .with_epsilon(self.layer_norm_eps)
                    .init(device),
                dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
            },
            encoder,
            pooler: self
                .add_pooling_layer
                .then(|| LinearConfig::new(self.hidden_size, self.hidden_size).init(device)),
        }
    }
}

/// Word + position + token-type embeddings, then layer norm and dropout.
#[derive(Module, Debug)]
pub struct BertEmbeddings {
    /// Token embeddings, weight `[vocab_size, hidden_size]`.
    pub word_embeddings: Embedding,
    /// Absolute position embeddings, weight `[max_position_embeddings, hidden_size]`.
    pub position_embeddings: Embedding,
    /// Token-type (segment) embeddings, weight `[type_vocab_size, hidden_size]`.
    pub token_type_embeddings: Embedding,
    /// Layer norm over `hidden_size`.
    pub layer_norm: LayerNorm,
    /// Dropout after the layer norm.
    pub dropout: Dropout,
}

impl BertEmbeddings {
    /// - `ids`: `[batch, tokens]`
    /// - returns `[batch, tokens, hidden_size]`; every token is of type 0 and token `t` sits at
    ///   position `t`
    ///
    /// # Panics
    ///
    /// If `tokens` exceeds the number of position embeddings.
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let [_, tokens] = ids.dims();
        let [max_positions, hidden] = self.position_embeddings.weight.dims();
        assert!(
            tokens <= max_positions,
            "{tokens} tokens exceed the {max_positions} position embeddings"
        );
        let positions = self
            .position_embeddings
            .weight
            .val()
            .narrow(0, 0, tokens)
            .reshape([1, tokens, hidden]);
        let token_type = self
            .token_type_embeddings
            .weight
            .val()
            .narrow(0, 0, 1)
            .reshape([1, 1, hidden]);
        let x = self.word_embeddings.forward(ids) + positions + token_type;
        self.dropout.forward(self.layer_norm.forward(x))
    }
}

/// A BERT encoder: [`BertEmbeddings`] → post-norm transformer layers → optional pooler.
#[derive(Module, Debug)]
pub struct BertModel {
    /// The input embeddings.
    pub embeddings: BertEmbeddings,
    /// `num_hidden_layers` post-norm layers (`norm_1` follows the attention, `norm_2` the
    /// feed-forward sub-layer).
    pub encoder: TransformerEncoder,
    /// `Linear(hidden → hidden)` applied, with tanh, to the first token; `None` without pooler.
    pub pooler: Option<Linear>,
}

impl BertModel {
    /// Contextual token features.
    ///
    /// - `ids`: `[batch, tokens]`, special tokens included, anything past `lengths[b]` padding
    /// - `lengths`: real tokens per row, each in `1..=tokens`
    /// - returns `[batch, tokens, hidden_size]`; padding positions are masked out of every
    ///   attention, so the features of real tokens do not depend on the padding (the rows at
    ///   padding positions are computed but meaningless)
    ///
    /// Every token is of type 0 (single sentences); token `t` sits at position `t`.
    ///
    /// # Panics
    ///
    /// If `lengths` does not match the batch, a length is out of range, or `tokens` exceeds
    /// `max_position_embeddings`.
    pub fn forward(&self, ids: Tensor<2, Int>, lengths: &[usize]) -> Tensor<3> {
        let last = self.num_layers();
        self.forward_layers(ids, lengths, &[last])
            .pop()
            .expect("one layer was requested")
    }

    /// The hidden states after chosen layers (for encoders read at several depths, as HAT's
    /// and DAIM's multi-level text tower: METHODS §3 "Multi-level sum").
    ///
    /// - `ids`, `lengths`: as in [`BertModel::forward`]
    /// - `layers`: which hidden states, in any order, repeats allowed: `n` is the output of
    ///   the first `n` transformer layers, `0` the embeddings' output and
    ///   [`BertModel::num_layers`] the last layer's output, which [`BertModel::forward`]
    ///   returns (Hugging Face's `hidden_states[n]` with `output_hidden_states=True`). HAT's
    ///   `all_encoder_layers[3]`, `[9]` and `[-1]` of bert-base are `n` = 4, 10 and 12.
    /// - returns one `[batch, tokens, hidden_size]` tensor per entry of `layers`, in that
    ///   order; padding as in [`BertModel::forward`]. Only the layers up to the deepest one
    ///   requested run.
    ///
    /// # Panics
    ///
    /// As [`BertModel::forward`], and if a requested layer exceeds
    /// [`BertModel::num_layers`].
    pub fn forward_layers(
        &self,
        ids: Tensor<2, Int>,
        lengths: &[usize],
        layers: &[usize],
    ) -> Vec<Tensor<3>> {
        let [batch, tokens] = ids.dims();
        assert_eq!(
            lengths.len(),
            batch,
            "{} lengths for a batch of {batch}",
            lengths.len()
        );
        check_lengths(lengths, tokens, "BertModel::forward");
        let mask = padding_mask(lengths, tokens, &ids.device());
        states_at_depths(
            self.embeddings.forward(ids),
            &self.encoder.layers,
            layers,
            "BertModel::forward_layers",
            |layer, x| encoder_layer(layer, x, Some(mask.clone()), None),
        )
    }

    /// The pooler output `tanh(W·h₀ + b)` of the first token (`[CLS]`).
    ///
    /// - `features`: `[batch, tokens, hidden_size]` from [`BertModel::forward`]
    /// - returns `[batch, hidden_size]`, or `None` for a model without pooler
    pub fn pooled(&self, features: Tensor<3>) -> Option<Tensor<2>> {
        let pooler = self.pooler.as_ref()?;
        let [batch, _, hidden] = features.dims();
        let first = features.narrow(1, 0, 1).reshape([batch, hidden]);
        Some(pooler.forward(first).tanh())
    }

    /// Sentence embeddings in the sentence-transformers convention: the mean of the token
    /// features over the real tokens (special tokens included), then l2-normalised.
    ///
    /// - `ids`: `[batch, tokens]`, `lengths` as in [`BertModel::forward`]
    /// - returns `[batch, hidden_size]` with unit rows
    pub fn sentence_embeddings(&self, ids: Tensor<2, Int>, lengths: &[usize]) -> Tensor<2> {
        l2_normalize(mean_pool(self.forward(ids, lengths), lengths))
    }

    /// Number of transformer layers.
    pub fn num_layers(&self) -> usize {
        self.encoder.layers.len()
    }

    /// Width of the token features.
    pub fn hidden_size(&self) -> usize {
        self.embeddings.word_embeddings.weight.dims()[1]
    }

    /// Longest sequence the model accepts.
    pub fn max_positions(&self) -> usize {
        self.embeddings.position_embeddings.weight.dims()[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn tiny() -> BertConfig {
        BertConfig::new(50, 16, 2, 4, 24, 12).with_hidden_dropout_prob(0.0)
    }

    fn ids(rows: &[&[i64]], width: usize, device: &Device) -> Tensor<2, Int> {
        let flat: Vec<i64> = rows
            .iter()
            .flat_map(|row| row.iter().copied().chain(std::iter::repeat(0)).take(width))
            .collect();
        Tensor::from_data(TensorData::new(flat, [rows.len(), width]), device)
    }

    fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn shapes_and_pooler() {
        let device = Device::default();
        device.seed(1);
        let model = tiny().init(&device);
        assert_eq!(model.hidden_size(), 16);
        assert_eq!(model.max_positions(), 12);
        let features = model.forward(ids(&[&[2, 7, 9, 3], &[2, 5, 3]], 4, &device), &[4, 3]);
        assert_eq!(features.dims(), [2, 4, 16]);
        let pooled = model.pooled(features).unwrap();
        assert_eq!(pooled.dims(), [2, 16]);
        assert!(host(pooled).iter().all(|v| v.abs() <= 1.0));
        let bare = tiny().with_add_pooling_layer(false).init(&device);
        assert!(bare.pooler.is_none());
        assert!(bare.pooled(Tensor::zeros([1, 2, 16], &device)).is_none());
    }

    /// Padding is invisible: a sentence encoded alone equals the same sentence padded in a
    /// batch, whatever the padding ids; the padded rows do differ (the mask is what hides them).
    #[test]
    fn padding_is_masked_out_of_attention() {
        let device = Device::default();
        device.seed(2);
        let model = tiny().init(&device);
        let alone = model.forward(ids(&[&[2, 11, 12, 3]], 4, &device), &[4]);
        let padded_ids: Vec<i64> = vec![2, 11, 12, 3, 40, 41, 42, 2, 30, 31, 32, 33, 34, 3];
        let padded = Tensor::<2, Int>::from_data(TensorData::new(padded_ids, [2, 7]), &device);
        let batch = model.forward(padded.clone(), &[4, 7]);
        let real = host(batch.clone().narrow(0, 0, 1).narrow(1, 0, 4));
        let worst = real
            .iter()
            .zip(host(alone.clone()))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "padding changed the real tokens by {worst}");

        // Without the mask (all 7 tokens real) the first 4 tokens change.
        let unmasked = model.forward(padded, &[7, 7]);
        let changed = host(unmasked.narrow(0, 0, 1).narrow(1, 0, 4))
            .iter()
            .zip(host(alone))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            changed > 1e-3,
            "attention ignores the other tokens: {changed}"
        );
    }

    #[test]
    fn sentence_embeddings_are_unit_means_of_real_tokens() {
        let device = Device::default();
        device.seed(3);
        let model = tiny().init(&device);
        let batch = ids(&[&[2, 11, 12, 13, 3], &[2, 14, 3]], 5, &device);
        let lengths = [5, 3];
        let embeddings = model.sentence_embeddings(batch.clone(), &lengths);
        assert_eq!(embeddings.dims(), [2, 16]);
        let features = host(model.forward(batch, &lengths));
        let values = host(embeddings);
        for (row, &len) in lengths.iter().enumerate() {
            let mean: Vec<f32> = (0..16)
                .map(|c| {
                    (0..len)
                        .map(|t| features[(row * 5 + t) * 16 + c])
                        .sum::<f32>()
                        / len as f32
                })
                .collect();
            let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt();
            for c in 0..16 {
                let expected = mean[c] / norm;
                let actual = values[row * 16 + c];
                assert!((actual - expected).abs() < 1e-5, "{actual} vs {expected}");
            }
        }
    }

    /// The deepest state is the plain forward, state 0 the embeddings, and states come back
    /// in the order asked (repeats allowed).
    #[test]
    fn chosen_layers_are_the_hidden_states() {
        let device = Device::default();
        device.seed(4);
        let model = tiny().init(&device);
        assert_eq!(model.num_layers(), 2);
        let batch = ids(&[&[2, 11, 12, 13, 3], &[2, 14, 3]], 5, &device);
        let lengths = [5, 3];
        let states = model.forward_layers(batch.clone(), &lengths, &[2, 0, 1, 2]);
        assert_eq!(states.len(), 4);
        assert!(states.iter().all(|s| s.dims() == [2, 5, 16]));
        let plain = host(model.forward(batch.clone(), &lengths));
        assert_eq!(host(states[0].clone()), plain);
        assert_eq!(host(states[3].clone()), plain);
        assert_eq!(
            host(states[1].clone()),
            host(model.embeddings.forward(batch.clone()))
        );
        let first = host(states[2].clone());
        assert_ne!(first, plain);
        assert_ne!(first, host(states[1].clone()));
        // Asking only for layer 1 runs one layer and gives the same state.
        let alone = model.forward_layers(batch, &lengths, &[1]);
        assert_eq!(host(alone[0].clone()), first);
    }

    #[test]
    #[should_panic(expected = "requested from a model of 2")]
    fn layers_past_the_last_are_refused() {
        let device = Device::default();
        let model = tiny().init(&device);
        model.forward_layers(ids(&[&[2, 3]], 2, &device), &[2], &[3]);
    }

    #[test]
    #[should_panic(expected = "exceed the 12 position embeddings")]
    fn too_long_inputs_are_refused() {
        let device = Device::default();
        let model = tiny().init(&device);
        let long: Vec<i64> = (0..13).collect();
        model.forward(ids(&[&long], 13, &device), &[13]);
    }
}
