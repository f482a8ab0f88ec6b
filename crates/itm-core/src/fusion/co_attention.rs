//! Dual-stream co-attention (METER, Dou et al. CVPR 2022; METHODS §4 "Co-attention").
//!
//! **Not used yet**: no model, zoo entry or command builds this module today; it is a tested
//! building block waiting for the DAIM/HAT networks (the DAIM issue), which will use it or
//! remove it.
//!
//! Each layer has one stream per modality. A stream does, with a residual connection and a
//! LayerNorm after each sub-block (post-norm, as in BERT and METER's cross-modal layers):
//!
//! 1. self-attention over its own positions,
//! 2. cross-attention whose queries are the result of 1 and whose keys and values are the
//!    **other stream's input to the layer**,
//! 3. a position-wise feed-forward block `Linear → GELU → Linear`.
//!
//! Both streams read the layer inputs, so the two halves of a layer are independent and their
//! order does not matter (this is how METER's `BertCrossLayer` pair is applied). Padding is
//! masked out of every attention: as keys of the self-attention of its own stream and of the
//! cross-attention of the other stream, so the outputs at real positions never depend on what
//! the padding holds (the outputs at padding positions are computed but meaningless).

use burn::config::Config;
use burn::module::Module;
use burn::nn::attention::{MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::transformer::{PositionWiseFeedForward, PositionWiseFeedForwardConfig};
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig};
use burn::tensor::{Bool, Device, Tensor};

use crate::masking::{check_lengths, padding_mask};

/// Configuration of a [`CoAttentionStack`] (and of each of its [`CoAttentionLayer`]s).
#[derive(Config, Debug)]
pub struct CoAttentionConfig {
    /// Width of both streams (regions and words are projected to it beforehand).
    pub d_model: usize,
    /// Number of attention heads; must divide `d_model`.
    pub n_heads: usize,
    /// Hidden width of the feed-forward blocks.
    pub d_ff: usize,
    /// Number of co-attention layers in a stack.
    #[config(default = 1)]
    pub layers: usize,
    /// Dropout on the attention weights, inside the feed-forward block and on each residual
    /// branch (training only).
    #[config(default = 0.0)]
    pub dropout: f64,
}

impl CoAttentionConfig {
    /// Builds a stack of `layers` co-attention layers on `device`.
    pub fn init(&self, device: &Device) -> CoAttentionStack {
        CoAttentionStack {
            layers: (0..self.layers).map(|_| self.init_layer(device)).collect(),
        }
    }

    /// Builds one co-attention layer on `device`.
    ///
    /// # Panics
    ///
    /// If `n_heads` does not divide `d_model`.
    pub fn init_layer(&self, device: &Device) -> CoAttentionLayer {
        assert!(
            self.n_heads > 0 && self.d_model.is_multiple_of(self.n_heads),
            "{} heads do not divide d_model = {}",
            self.n_heads,
            self.d_model
        );
        CoAttentionLayer {
            image: self.init_stream(device),
            text: self.init_stream(device),
        }
    }

    fn init_stream(&self, device: &Device) -> CoAttentionStream {
        let attention =
            MultiHeadAttentionConfig::new(self.d_model, self.n_heads).with_dropout(self.dropout);
        let norm = LayerNormConfig::new(self.d_model);
        CoAttentionStream {
            self_attention: attention.init(device),
            self_norm: norm.init(device),
            cross_attention: attention.init(device),
            cross_norm: norm.init(device),
            feed_forward: PositionWiseFeedForwardConfig::new(self.d_model, self.d_ff)
                .with_dropout(self.dropout)
                .init(device),
            feed_forward_norm: norm.init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

/// One stream of a [`CoAttentionLayer`]: self-attention, cross-attention, feed-forward, each
/// followed by `LayerNorm(x + sub_block(x))`.
#[derive(Module, Debug)]
pub struct CoAttentionStream {
    /// Self-attention over the stream's own positions.
    pub self_attention: MultiHeadAttention,
    /// LayerNorm after the self-attention residual.
    pub self_norm: LayerNorm,
    /// Attention from this stream (queries) to the other stream (keys, values).
    pub cross_attention: MultiHeadAttention,
    /// LayerNorm after the cross-attention residual.
    pub cross_norm: LayerNorm,
    /// `Linear(d_model → d_ff) → GELU → Linear(d_ff → d_model)`.
    pub feed_forward: PositionWiseFeedForward,
    /// LayerNorm after the feed-forward residual.
    pub feed_forward_norm: LayerNorm,
    /// Dropout on each residual branch.
    pub dropout: Dropout,
}

impl CoAttentionStream {
    /// - `x`: this stream `[batch, n, d_model]`, `x_padding` `[batch, n]` (`true` at padding)
    /// - `other`: the other stream `[batch, m, d_model]`, `other_padding` `[batch, m]`
    /// - returns `[batch, n, d_model]`
    fn forward(
        &self,
        x: Tensor<3>,
        x_padding: Tensor<2, Bool>,
        other: Tensor<3>,
        other_padding: Tensor<2, Bool>,
    ) -> Tensor<3> {
        let attended = self
            .self_attention
            .forward(MhaInput::self_attn(x.clone()).mask_pad(x_padding))
            .context;
        let x = self.self_norm.forward(x + self.dropout.forward(attended));
        let crossed = self
            .cross_attention
            .forward(MhaInput::new(x.clone(), other.clone(), other).mask_pad(other_padding))
            .context;
        let x = self.cross_norm.forward(x + self.dropout.forward(crossed));
        let fed = self.feed_forward.forward(x.clone());
        self.feed_forward_norm
            .forward(x + self.dropout.forward(fed))
    }
}

/// One dual-stream co-attention layer: an image stream and a text stream that attend to each
/// other (see the module documentation for the order of the sub-blocks).
#[derive(Module, Debug)]
pub struct CoAttentionLayer {
    /// The stream whose queries are regions (or patches).
    pub image: CoAttentionStream,
    /// The stream whose queries are words.
    pub text: CoAttentionStream,
}

impl CoAttentionLayer {
    /// Fuses regions and words with padding masks built once by the caller.
    ///
    /// - `regions`: `[batch, K, d_model]`, `region_padding` `[batch, K]` (`true` at padding)
    /// - `words`: `[batch, L, d_model]`, `word_padding` `[batch, L]`
    /// - returns `(regions, words)` with the input shapes
    pub fn forward_masked(
        &self,
        regions: Tensor<3>,
        region_padding: Tensor<2, Bool>,
        words: Tensor<3>,
        word_padding: Tensor<2, Bool>,
    ) -> (Tensor<3>, Tensor<3>) {
        let fused_regions = self.image.forward(
            regions.clone(),
            region_padding.clone(),
            words.clone(),
            word_padding.clone(),
        );
        let fused_words = self
            .text
            .forward(words, word_padding, regions, region_padding);
        (fused_regions, fused_words)
    }
}

/// A stack of [`CoAttentionLayer`]s over (regions or patches, words) of matching pairs.
#[derive(Module, Debug)]
pub struct CoAttentionStack {
    /// The layers, applied in order.
    pub layers: Vec<CoAttentionLayer>,
}

impl CoAttentionStack {
    /// Fused region and word features of `batch` image–caption pairs (row `b` of `regions` is
    /// fused with row `b` of `words`).
    ///
    /// - `regions`: `[batch, K, d_model]`, the first `region_lengths[b]` rows of each item real
    /// - `words`: `[batch, L, d_model]`, the first `word_lengths[b]` rows real
    /// - returns `(regions [batch, K, d_model], words [batch, L, d_model])`; outputs at real
    ///   positions do not depend on the padding
    ///
    /// # Panics
    ///
    /// If the batch sizes or widths disagree, or a length lies outside `1..=K` (`1..=L`).
    pub fn forward(
        &self,
        regions: Tensor<3>,
        region_lengths: &[usize],
        words: Tensor<3>,
        word_lengths: &[usize],
    ) -> (Tensor<3>, Tensor<3>) {
        let [batch, max_regions, _] = regions.dims();
        let [word_batch, max_words, _] = words.dims();
        assert!(
            batch == word_batch && region_lengths.len() == batch && word_lengths.len() == batch,
            "co-attention: {batch} images, {word_batch} captions, {} region lengths and {} word \
             lengths must all agree",
            region_lengths.len(),
            word_lengths.len()
        );
        check_lengths(region_lengths, max_regions, "co-attention regions");
        check_lengths(word_lengths, max_words, "co-attention words");
        let device = regions.device();
        let region_padding = padding_mask(region_lengths, max_regions, &device);
        let word_padding = padding_mask(word_lengths, max_words, &device);
        self.layers
            .iter()
            .fold((regions, words), |(regions, words), layer| {
                layer.forward_masked(regions, region_padding.clone(), words, word_padding.clone())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn random(dims: [usize; 3], device: &Device) -> Tensor<3> {
        Tensor::random(dims, Distribution::Normal(0.0, 1.0), device)
    }

    fn max_abs_diff(a: Tensor<3>, b: Tensor<3>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    #[test]
    fn output_shapes() {
        let device = Device::default();
        device.seed(3);
        let stack = CoAttentionConfig::new(16, 4, 32)
            .with_layers(2)
            .init(&device);
        assert_eq!(stack.layers.len(), 2);
        let (regions, words) = stack.forward(
            random([3, 5, 16], &device),
            &[5, 2, 4],
            random([3, 7, 16], &device),
            &[7, 1, 3],
        );
        assert_eq!(regions.dims(), [3, 5, 16]);
        assert_eq!(words.dims(), [3, 7, 16]);
    }

    #[test]
    fn padding_never_changes_real_outputs() {
        let device = Device::default();
        device.seed(4);
        let stack = CoAttentionConfig::new(8, 2, 16)
            .with_layers(2)
            .init(&device);
        let regions = random([2, 3, 8], &device);
        let words = random([2, 4, 8], &device);
        let (r_lengths, w_lengths) = ([3, 2], [4, 1]);
        let (r_plain, w_plain) =
            stack.forward(regions.clone(), &r_lengths, words.clone(), &w_lengths);
        // Garbage padding, large enough to dominate any attention it leaked into: two extra
        // rows on both streams, plus the rows already past each length.
        let garbage = |dims| random(dims, &device).mul_scalar(100.0);
        let regions_padded = Tensor::cat(vec![regions, garbage([2, 2, 8])], 1);
        let words_padded = Tensor::cat(vec![words, garbage([2, 2, 8])], 1);
        let regions_padded = regions_padded.slice_assign([1..2, 2..5, 0..8], garbage([1, 3, 8]));
        let words_padded = words_padded.slice_assign([1..2, 1..6, 0..8], garbage([1, 5, 8]));
        let (r_padded, w_padded) = stack.forward(
            regions_padded.clone(),
            &r_lengths,
            words_padded.clone(),
            &w_lengths,
        );
        // Compare the real rows only.
        for (b, (&r, &w)) in r_lengths.iter().zip(&w_lengths).enumerate() {
            let r_diff = max_abs_diff(
                r_plain.clone().slice([b..b + 1, 0..r, 0..8]),
                r_padded.clone().slice([b..b + 1, 0..r, 0..8]),
            );
            let w_diff = max_abs_diff(
                w_plain.clone().slice([b..b + 1, 0..w, 0..8]),
                w_padded.clone().slice([b..b + 1, 0..w, 0..8]),
            );
            assert!(
                r_diff < 1e-5 && w_diff < 1e-5,
                "item {b}: {r_diff} {w_diff}"
            );
        }
        // Control: the same inputs with the garbage region rows declared real do change the
        // real outputs of both streams, so the equalities above come from the masks.
        let (r_leaky, w_leaky) = stack.forward(regions_padded, &[5, 5], words_padded, &w_lengths);
        let real_rows = |t: Tensor<3>| t.slice([0..1, 0..3, 0..8]);
        assert!(max_abs_diff(real_rows(r_leaky), real_rows(r_plain)) > 1e-2);
        assert!(max_abs_diff(real_rows(w_leaky), real_rows(w_plain)) > 1e-2);
    }

    #[test]
    #[should_panic(expected = "co-attention words")]
    fn zero_length_caption_is_rejected() {
        let device = Device::default();
        let stack = CoAttentionConfig::new(8, 2, 16).init(&device);
        stack.forward(
            random([1, 2, 8], &device),
            &[2],
            random([1, 3, 8], &device),
            &[0],
        );
    }
}
