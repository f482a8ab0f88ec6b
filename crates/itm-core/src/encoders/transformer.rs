//! burn's transformer encoder and multi-head attention, evaluated with the softmax and GELU of
//! [`crate::ops`] (our design; issue #17).
//!
//! The modules are burn's own ([`TransformerEncoder`], [`MultiHeadAttention`]), so weights,
//! records and loaders are unchanged; only their forward passes are written here, step for
//! step as burn 0.22.1 writes them (`TransformerEncoderLayer::forward`, `MultiHeadAttention::
//! forward`), with the attention softmax and the exact GELU of the feed-forward sub-layer
//! replaced by the kernels. Other activations, and quiet softmax, stay burn's.

use burn::nn::Linear;
use burn::nn::activation::Activation;
use burn::nn::attention::MultiHeadAttention;
use burn::nn::transformer::{PositionWiseFeedForward, TransformerEncoder, TransformerEncoderLayer};
use burn::tensor::activation::quiet_softmax;
use burn::tensor::{Bool, Tensor};

use crate::ops;

/// Self-attention of `mha` over `x`: what [`MultiHeadAttention::forward`] returns as `context`
/// for `MhaInput::self_attn(x)` with the same masks.
///
/// - `x`: `[batch, tokens, d_model]`
/// - `mask_pad`: `[batch, tokens]`, `true` at keys to ignore
/// - `mask_attn`: `[batch, tokens, tokens]`, `true` where query `i` may not see key `j`
/// - returns `[batch, tokens, d_model]`
pub fn self_attention(
    mha: &MultiHeadAttention,
    x: Tensor<3>,
    mask_pad: Option<Tensor<2, Bool>>,
    mask_attn: Option<Tensor<3, Bool>>,
) -> Tensor<3> {
    let [batch, tokens, d_model] = x.dims();
    // [batch, tokens, d_model] → [batch, heads, tokens, d_k]
    let heads = |linear: &Linear| {
        linear
            .forward(x.clone())
            .reshape([batch, tokens, mha.n_heads, mha.d_k])
            .swap_dims(1, 2)
    };
    let (query, key, value) = (heads(&mha.query), heads(&mha.key), heads(&mha.value));
    let mut scores = query
        .matmul(key.transpose())
        .div_scalar((mha.d_k as f32).sqrt());
    if let Some(mask) = mask_pad {
        scores = scores.mask_fill(mask.reshape([batch, 1, 1, tokens]), mha.min_float);
    }
    if let Some(mask) = mask_attn {
        scores = scores.mask_fill(mask.reshape([batch, 1, tokens, tokens]), mha.min_float);
    }
    let weights = if mha.quiet_softmax {
        quiet_softmax(scores, 3)
    } else {
        ops::softmax(scores, 3)
    };
    let context = mha
        .dropout
        .forward(weights)
        .matmul(value)
        .swap_dims(1, 2)
        .reshape([batch, tokens, d_model]);
    mha.output.forward(context)
}

/// `linear_outer(dropout(act(linear_inner(x))))`, any leading shape `[.., d_model]`.
fn feed_forward<const D: usize>(pwff: &PositionWiseFeedForward, x: Tensor<D>) -> Tensor<D> {
    let hidden = pwff.linear_inner.forward(x);
    let hidden = match &pwff.activation {
        Activation::Gelu(gelu) if !gelu.approximate => ops::gelu(hidden),
        other => other.forward(hidden),
    };
    pwff.linear_outer.forward(pwff.dropout.forward(hidden))
}

/// One layer, as [`TransformerEncoderLayer::forward`]: post-norm `LN₂(y + FF(y))` with
/// `y = LN₁(x + Attn(x))`, or pre-norm `y + FF(LN₁(y))` with `y = x + Attn(LN₂(x))` (burn's
/// naming of the two norms).
///
/// - `x`: `[batch, tokens, d_model]`; masks as in [`self_attention`]
/// - returns `[batch, tokens, d_model]`
pub fn encoder_layer(
    layer: &TransformerEncoderLayer,
    x: Tensor<3>,
    mask_pad: Option<Tensor<2, Bool>>,
    mask_attn: Option<Tensor<3, Bool>>,
) -> Tensor<3> {
    let attention_input = if layer.norm_first {
        layer.norm_2.forward(x.clone())
    } else {
        x.clone()
    };
    let attended = self_attention(&layer.mha, attention_input, mask_pad, mask_attn);
    let mut x = x + layer.dropout.forward(attended);
    let feed_forward_input = if layer.norm_first {
        layer.norm_1.forward(x.clone())
    } else {
        x = layer.norm_1.forward(x);
        x.clone()
    };
    let x = x + layer
        .dropout
        .forward(feed_forward(&layer.pwff, feed_forward_input));
    if layer.norm_first {
        x
    } else {
        layer.norm_2.forward(x)
    }
}

/// Every layer of `encoder` in turn: what [`TransformerEncoder::forward`] returns for the same
/// input and masks.
///
/// - `x`: `[batch, tokens, d_model]`; masks as in [`self_attention`]
/// - returns `[batch, tokens, d_model]`
pub fn encoder(
    encoder: &TransformerEncoder,
    x: Tensor<3>,
    mask_pad: Option<Tensor<2, Bool>>,
    mask_attn: Option<Tensor<3, Bool>>,
) -> Tensor<3> {
    encoder.layers.iter().fold(x, |x, layer| {
        encoder_layer(layer, x, mask_pad.clone(), mask_attn.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::attention::MhaInput;
    use burn::nn::transformer::{TransformerEncoderConfig, TransformerEncoderInput};
    use burn::tensor::{Device, Distribution};

    /// Same values as burn's forward passes (pre- and post-norm, padded), to float rounding.
    #[test]
    fn matches_burns_forward() {
        let device = Device::flex();
        device.seed(11);
        let x = Tensor::<3>::random([2, 7, 16], Distribution::Normal(0.0, 1.0), &device);
        let padding = Tensor::<2, Bool>::from_bool(
            burn::tensor::TensorData::new(
                (0..14).map(|i| i % 7 >= 5 && i >= 7).collect::<Vec<_>>(),
                [2, 7],
            ),
            &device,
        );
        for norm_first in [false, true] {
            let stack = TransformerEncoderConfig::new(16, 32, 4, 2)
                .with_norm_first(norm_first)
                .with_dropout(0.0)
                .init(&device);
            let ours = encoder(&stack, x.clone(), Some(padding.clone()), None);
            let burns =
                stack.forward(TransformerEncoderInput::new(x.clone()).mask_pad(padding.clone()));
            ours.into_data().assert_approx_eq::<f32>(
                &burns.into_data(),
                burn::tensor::Tolerance::absolute(1e-5),
            );
            let mha = &stack.layers[0].mha;
            let ours = self_attention(mha, x.clone(), Some(padding.clone()), None);
            let burns = mha
                .forward(MhaInput::self_attn(x.clone()).mask_pad(padding.clone()))
                .context;
            ours.into_data().assert_approx_eq::<f32>(
                &burns.into_data(),
                burn::tensor::Tolerance::absolute(1e-5),
            );
        }
    }
}
