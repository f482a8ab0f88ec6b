//! CLIP's pre-norm transformer layer, shared by both towers.
//!
//! burn's `TransformerEncoder` has a pre-norm mode (`norm_first`) with the right residual
//! structure, but its feed-forward activation is an `ActivationConfig`, which has no
//! quick_gelu (`x·σ(1.702x)`, the activation of every OpenAI CLIP checkpoint). The layer is
//! therefore written here, around burn's [`MultiHeadAttention`] (four biased `d → d`
//! projections, scores scaled by `1/√d_head`, masked keys filled before the softmax — the
//! computation of transformers' `CLIPAttention`), evaluated by
//! [`crate::encoders::transformer::self_attention`] with the softmax of [`crate::ops`]; both
//! activations run [`crate::ops`]' kernels too.

use burn::module::Module;
use burn::nn::attention::{MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Bool, Device, Tensor};

use crate::encoders::layers::states_at_depths;
use crate::encoders::transformer::self_attention;
use crate::ops::{gelu, sigmoid};

/// Feed-forward activation of a CLIP tower (`hidden_act` of `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x·σ(1.702x)` (`"quick_gelu"`).
    QuickGelu,
    /// The exact, erf-based GELU (`"gelu"`).
    Gelu,
}

impl Activation {
    /// Parses a `hidden_act` value.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "quick_gelu" => Ok(Self::QuickGelu),
            "gelu" => Ok(Self::Gelu),
            other => Err(format!(
                "hidden_act \"{other}\" is not supported (quick_gelu, gelu)"
            )),
        }
    }

    fn forward<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::QuickGelu => quick_gelu(x),
            Self::Gelu => gelu(x),
        }
    }
}

/// `x·σ(1.702x)`, the sigmoid approximation of GELU that OpenAI's CLIP was trained with.
pub fn quick_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone() * sigmoid(x.mul_scalar(1.702))
}

/// The checks both towers share: `sizes` positive, `heads` dividing `hidden`, a positive
/// epsilon, a supported activation.
pub(super) fn check_tower(
    tower: &str,
    sizes: &[(&str, usize)],
    hidden: usize,
    heads: usize,
    layer_norm_eps: f64,
    hidden_act: &str,
) -> Result<(), String> {
    if let Some((name, _)) = sizes.iter().find(|(_, value)| *value == 0) {
        return Err(format!("{tower}.{name} must be positive"));
    }
    if !hidden.is_multiple_of(heads) {
        return Err(format!(
            "{tower}.num_attention_heads ({heads}) does not divide hidden_size ({hidden})"
        ));
    }
    if layer_norm_eps.is_nan() || layer_norm_eps <= 0.0 {
        return Err(format!(
            "{tower}.layer_norm_eps must be positive, got {layer_norm_eps}"
        ));
    }
    Activation::parse(hidden_act).map_err(|e| format!("{tower}.{e}"))?;
    Ok(())
}

/// Standard deviation of transformers' CLIP initialisation of embeddings and the patch
/// projection (`initializer_range`).
pub(crate) const INITIALIZER_RANGE: f64 = 0.02;

/// `Linear(d_input → d_output)` with weights from `N(0, std²)` and a zero bias, as transformers
/// initialises CLIP (`CLIPPreTrainedModel._init_weights`, `initializer_factor` 1).
pub(crate) fn normal_linear(
    d_input: usize,
    d_output: usize,
    std: f64,
    bias: bool,
    device: &Device,
) -> Linear {
    let mut linear = LinearConfig::new(d_input, d_output)
        .with_bias(bias)
        .with_initializer(Initializer::Normal { mean: 0.0, std })
        .init(device);
    if bias {
        linear.bias = Some(Initializer::Zeros.init([d_output], device));
    }
    linear
}

/// Sizes of a stack of [`ClipEncoderLayer`]s.
pub(crate) struct LayerSizes<'a> {
    pub hidden: usize,
    pub intermediate: usize,
    pub heads: usize,
    pub layers: usize,
    pub layer_norm_eps: f64,
    pub attention_dropout: f64,
    pub hidden_act: &'a str,
}

/// `fc2(act(fc1(x)))`.
#[derive(Module, Debug)]
pub struct ClipMlp {
    /// `Linear(hidden → intermediate)`.
    pub fc1: Linear,
    /// `Linear(intermediate → hidden)`.
    pub fc2: Linear,
    /// The activation between them.
    #[module(skip)]
    pub activation: Activation,
}

impl ClipMlp {
    /// `[batch, tokens, hidden]` → `[batch, tokens, hidden]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.fc2
            .forward(self.activation.forward(self.fc1.forward(x)))
    }
}

/// `x + Attn(LN₁(x))`, then `x + MLP(LN₂(x))`.
#[derive(Module, Debug)]
pub struct ClipEncoderLayer {
    /// Self-attention (`query`, `key`, `value`, `output` are transformers' `q_proj`, `k_proj`,
    /// `v_proj`, `out_proj`).
    pub self_attn: MultiHeadAttention,
    /// Layer norm before the attention.
    pub layer_norm1: LayerNorm,
    /// The feed-forward sub-layer.
    pub mlp: ClipMlp,
    /// Layer norm before the feed-forward sub-layer.
    pub layer_norm2: LayerNorm,
}

impl ClipEncoderLayer {
    /// - `x`: `[batch, tokens, hidden]`
    /// - `padding`: `[batch, tokens]`, `true` at keys to ignore
    /// - `causal`: `[batch, tokens, tokens]`, `true` where query `i` may not see key `j`
    /// - returns `[batch, tokens, hidden]`
    pub fn forward(
        &self,
        x: Tensor<3>,
        padding: Option<Tensor<2, Bool>>,
        causal: Option<Tensor<3, Bool>>,
    ) -> Tensor<3> {
        let normed = self.layer_norm1.forward(x.clone());
        let x = x + self_attention(&self.self_attn, normed, padding, causal);
        x.clone() + self.mlp.forward(self.layer_norm2.forward(x))
    }
}

/// A stack of [`ClipEncoderLayer`]s.
#[derive(Module, Debug)]
pub struct ClipEncoder {
    /// The layers, applied in order.
    pub layers: Vec<ClipEncoderLayer>,
}

impl ClipEncoder {
    /// Builds `sizes.layers` layers, initialised as transformers does: attention inputs from
    /// `N(0, (d·2L)^-1)`, its output from `N(0, d^-1)`, `fc1` from `N(0, (2d)^-1)`, `fc2` from
    /// `N(0, (d·2L)^-1)` (`d` the width, `L` the layers), zero biases, unit layer norms.
    ///
    /// # Panics
    ///
    /// If `sizes.hidden_act` is not a supported activation (configs validate it first).
    pub(crate) fn new(sizes: &LayerSizes<'_>, device: &Device) -> Self {
        let activation = Activation::parse(sizes.hidden_act).expect("validated activation");
        let d = sizes.hidden;
        let width = (d as f64).powf(-0.5);
        let in_std = width * ((2 * sizes.layers) as f64).powf(-0.5);
        let layers = (0..sizes.layers)
            .map(|_| ClipEncoderLayer {
                self_attn: {
                    let mut attention = MultiHeadAttentionConfig::new(d, sizes.heads)
                        .with_dropout(sizes.attention_dropout)
                        .init(device);
                    attention.query = normal_linear(d, d, in_std, true, device);
                    attention.key = normal_linear(d, d, in_std, true, device);
                    attention.value = normal_linear(d, d, in_std, true, device);
                    attention.output = normal_linear(d, d, width, true, device);
                    attention
                },
                layer_norm1: LayerNormConfig::new(sizes.hidden)
                    .with_epsilon(sizes.layer_norm_eps)
                    .init(device),
                mlp: ClipMlp {
                    fc1: normal_linear(
                        d,
                        sizes.intermediate,
                        ((2 * d) as f64).powf(-0.5),
                        true,
                        device,
                    ),
                    fc2: normal_linear(sizes.intermediate, d, in_std, true, device),
                    activation,
                },
                layer_norm2: LayerNormConfig::new(sizes.hidden)
                    .with_epsilon(sizes.layer_norm_eps)
                    .init(device),
            })
            .collect();
        Self { layers }
    }

    /// Same shapes and masks as [`ClipEncoderLayer::forward`].
    pub fn forward(
        &self,
        x: Tensor<3>,
        padding: Option<Tensor<2, Bool>>,
        causal: Option<Tensor<3, Bool>>,
    ) -> Tensor<3> {
        let depth = self.layers.len();
        self.forward_layers(x, padding, causal, &[depth])
            .pop()
            .expect("one layer was requested")
    }

    /// The states after chosen layers (for towers read at several depths: METHODS §3
    /// "Multi-level sum"); shapes and masks as [`ClipEncoderLayer::forward`].
    ///
    /// - `layers`: any order, repeats allowed: `n` is the output of the first `n` layers, `0`
    ///   the input `x`, `self.layers.len()` what [`ClipEncoder::forward`] returns (Hugging
    ///   Face's `hidden_states[n]`)
    /// - returns one `[batch, len, hidden]` tensor per entry of `layers`, in that order
    ///
    /// # Panics
    ///
    /// If a layer exceeds `self.layers.len()`.
    pub fn forward_layers(
        &self,
        x: Tensor<3>,
        padding: Option<Tensor<2, Bool>>,
        causal: Option<Tensor<3, Bool>>,
        layers: &[usize],
    ) -> Vec<Tensor<3>> {
        states_at_depths(
            x,
            &self.layers,
            layers,
            "ClipEncoder::forward_layers",
            |layer, x| layer.forward(x, padding.clone(), causal.clone()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::attention::generate_autoregressive_mask;
    use burn::tensor::Distribution;

    fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn quick_gelu_closed_form() {
        let device = Device::default();
        let x = Tensor::<1>::from_floats([-2.0, -0.5, 0.0, 1.0, 3.0], &device);
        let expected: Vec<f32> = [-2.0f64, -0.5, 0.0, 1.0, 3.0]
            .iter()
            .map(|&v| (v / (1.0 + (-1.702 * v).exp())) as f32)
            .collect();
        for (a, b) in host(quick_gelu(x)).iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        assert!(Activation::parse("swish").unwrap_err().contains("swish"));
    }

    fn sizes() -> LayerSizes<'static> {
        LayerSizes {
            hidden: 8,
            intermediate: 12,
            heads: 2,
            layers: 2,
            layer_norm_eps: 1e-5,
            attention_dropout: 0.0,
            hidden_act: "quick_gelu",
        }
    }

    /// State 0 is the input and the last state the plain forward, masks applied alike.
    #[test]
    fn chosen_layers_are_the_hidden_states() {
        let device = Device::default();
        device.seed(5);
        let encoder = ClipEncoder::new(&sizes(), &device);
        let x = Tensor::<3>::random([2, 4, 8], Distribution::Normal(0.0, 1.0), &device);
        let causal = generate_autoregressive_mask(2, 4, &device);
        let states = encoder.forward_layers(x.clone(), None, Some(causal.clone()), &[0, 2, 1]);
        assert_eq!(host(states[0].clone()), host(x.clone()));
        assert_eq!(
            host(states[1].clone()),
            host(encoder.forward(x, None, Some(causal)))
        );
        assert_ne!(host(states[2].clone()), host(states[1].clone()));
    }

    /// With the causal mask, the features of token `t` depend on tokens `..=t` only; without
    /// it, on all of them.
    #[test]
    fn causal_mask_hides_later_tokens() {
        let device = Device::default();
        device.seed(4);
        let encoder = ClipEncoder::new(&sizes(), &device);
        let x = Tensor::<3>::random([1, 5, 8], Distribution::Normal(0.0, 1.0), &device);
        let changed = x.clone().slice_assign(
            [0..1, 4..5, 0..8],
            Tensor::random([1, 1, 8], Distribution::Normal(0.0, 1.0), &device),
        );
        let causal = generate_autoregressive_mask(1, 5, &device);
        let before = encoder.forward(x.clone(), None, Some(causal.clone()));
        let after = encoder.forward(changed.clone(), None, Some(causal));
        let first = |t: Tensor<3>| host(t.narrow(1, 0, 4));
        let worst = first(before.clone())
            .iter()
            .zip(first(after.clone()))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert_eq!(worst, 0.0, "a later token leaked into earlier ones");
        assert!(
            host(before.narrow(1, 4, 1))
                .iter()
                .zip(host(after.narrow(1, 4, 1)))
                .any(|(a, b)| (a - b).abs() > 1e-4)
        );
        let open = first(encoder.forward(changed, None, None));
        let moved = open
            .iter()
            .zip(first(encoder.forward(x, None, None)))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(moved > 1e-4, "attention ignores later tokens: {moved}");
    }
}
