//! A single-direction GRU with PyTorch's gate layout, projecting every step's input at once.
//!
//! Burn's `Gru` multiplies the input and the hidden state by three separate gate matrices at
//! every step. Here the input projection of all steps is one `[batch·len, d_input] × [d_input,
//! 3H]` product before the loop, and each step needs one `[batch, H] × [H, 3H]` product: the
//! same function with fewer, larger matrix products (about twice as fast on the CPU backend).
//! The recurrence is [`crate::ops::gru_recurrence`]: one fused operation with a hand-written
//! backward through time on `flex`, burn's operations step by step elsewhere.
//! The gate order `[r, z, n]` matches PyTorch's `weight_ih_l0` / `weight_hh_l0`, so published
//! weights load by transposition.

use burn::config::Config;
use burn::module::{Initializer, Module};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::ops::gru_recurrence;

/// Configuration of a [`FusedGru`].
#[derive(Config, Debug)]
pub struct FusedGruConfig {
    /// Width of the input steps.
    pub d_input: usize,
    /// Width of the hidden state `H`.
    pub d_hidden: usize,
}

/// `r = σ(W_ir x + b_ir + W_hr h + b_hr)`, `z = σ(W_iz x + b_iz + W_hz h + b_hz)`,
/// `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`, `h' = (1 − z) ⊙ n + z ⊙ h`, from `h_0 = 0`.
#[derive(Module, Debug)]
pub struct FusedGru {
    /// Input projection `d_input → 3H`, gates `[r, z, n]`.
    pub input: Linear,
    /// Hidden projection `H → 3H`, gates `[r, z, n]`.
    pub hidden: Linear,
    /// Hidden width `H`.
    pub d_hidden: usize,
}

impl FusedGruConfig {
    /// Builds the layer on `device`, every weight and bias drawn from `U(−1/√H, 1/√H)` as in
    /// PyTorch.
    pub fn init(&self, device: &Device) -> FusedGru {
        let bound = 1.0 / (self.d_hidden as f64).sqrt();
        let initializer = Initializer::Uniform {
            min: -bound,
            max: bound,
        };
        FusedGru {
            input: LinearConfig::new(self.d_input, 3 * self.d_hidden)
                .with_initializer(initializer.clone())
                .init(device),
            hidden: LinearConfig::new(self.d_hidden, 3 * self.d_hidden)
                .with_initializer(initializer)
                .init(device),
            d_hidden: self.d_hidden,
        }
    }
}

impl FusedGru {
    /// - `x`: `[batch, len, d_input]`
    /// - returns the hidden states of every step `[batch, len, H]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let projected = self.input.forward(x); // [batch, len, 3H]
        let w_hh = self.hidden.weight.val();
        let b_hh = match &self.hidden.bias {
            Some(bias) => bias.val(),
            None => Tensor::zeros([3 * self.d_hidden], &projected.device()),
        };
        gru_recurrence(projected, w_hh, b_hh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;

    /// One step by hand: with all weights zero but the candidate's input bias, `r = z = ½`,
    /// `n = tanh(b)`, `h_1 = ½·tanh(b)`, and `h_2 = ½·tanh(b) + ½·(h_1 − tanh(b))·… ` follows.
    #[test]
    fn zero_weights_closed_form() {
        let device = Device::default();
        let mut gru = FusedGruConfig::new(2, 1).init(&device);
        gru.input.weight = Param::from_tensor(Tensor::zeros([2, 3], &device));
        gru.hidden.weight = Param::from_tensor(Tensor::zeros([1, 3], &device));
        gru.input.bias = Some(Param::from_tensor(Tensor::from_floats(
            [0.0, 0.0, 0.5],
            &device,
        )));
        gru.hidden.bias = Some(Param::from_tensor(Tensor::zeros([3], &device)));
        let out = gru
            .forward(Tensor::zeros([1, 2, 2], &device))
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let n = 0.5f32.tanh();
        let h1 = 0.5 * n;
        let h2 = n + 0.5 * (h1 - n);
        assert!(
            (out[0] - h1).abs() < 1e-6 && (out[1] - h2).abs() < 1e-6,
            "{out:?}"
        );
    }
}
