//! A bidirectional GRU that respects per-sequence lengths.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::gru::{FusedGru, FusedGruConfig};
use crate::masking::{fill_padding, gather_steps, reverse_within_lengths_index};

/// Configuration of a [`MaskedBiGru`].
#[derive(Config, Debug)]
pub struct MaskedBiGruConfig {
    /// Width of the input steps.
    pub d_input: usize,
    /// Width of the hidden state of each direction.
    pub d_hidden: usize,
}

/// A bidirectional GRU over padded sequences whose two directions are averaged.
///
/// Burn's `BiGru` runs the backward direction from the last *padded* step. Here the backward
/// direction reads each sequence reversed within its own length, so it starts at the last real
/// step, exactly as PyTorch's packed sequences do. Outputs at padding steps are zero.
#[derive(Module, Debug)]
pub struct MaskedBiGru {
    /// Left-to-right GRU.
    pub forward: FusedGru,
    /// Right-to-left GRU.
    pub backward: FusedGru,
}

impl MaskedBiGruConfig {
    /// Builds the layer on `device`.
    pub fn init(&self, device: &Device) -> MaskedBiGru {
        let gru = FusedGruConfig::new(self.d_input, self.d_hidden);
        MaskedBiGru {
            forward: gru.init(device),
            backward: gru.init(device),
        }
    }
}

impl MaskedBiGru {
    /// Runs both directions and averages them.
    ///
    /// - `x`: `[batch, max_len, d_input]`, steps past `lengths[b]` are padding (any value).
    /// - `lengths`: `[batch]`, each in `1..=max_len`.
    /// - returns `[batch, max_len, d_hidden]`, zero at padding steps.
    pub fn forward(&self, x: Tensor<3>, lengths: &[usize]) -> Tensor<3> {
        let [_, max_len, _] = x.dims();
        // The forward direction is causal: its outputs at real steps never see the padding.
        let left_to_right = self.forward.forward(x.clone());
        let reverse = reverse_within_lengths_index(lengths, max_len, &x.device());
        let reversed = gather_steps(x, reverse.clone());
        let right_to_left = gather_steps(self.backward.forward(reversed), reverse);
        fill_padding((left_to_right + right_to_left) / 2.0, lengths, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn extra_padding_does_not_change_real_steps() {
        let device = Device::default();
        device.seed(7);
        let layer = MaskedBiGruConfig::new(4, 5).init(&device);
        let x = Tensor::<3>::random([2, 3, 4], Distribution::Normal(0.0, 1.0), &device);
        let lengths = [3, 2];
        let short = layer.forward(x.clone(), &lengths);
        let padding = Tensor::<3>::random([2, 4, 4], Distribution::Normal(0.0, 1.0), &device);
        let long = layer.forward(Tensor::cat(vec![x, padding], 1), &lengths);
        short
            .into_data()
            .assert_approx_eq::<f32>(&long.slice([0..2, 0..3]).into_data(), Default::default());
    }

    #[test]
    fn backward_direction_starts_at_the_last_real_step() {
        let device = Device::default();
        device.seed(3);
        let layer = MaskedBiGruConfig::new(2, 3).init(&device);
        let x = Tensor::<3>::random([1, 4, 2], Distribution::Normal(0.0, 1.0), &device);
        // A length-2 sequence must give the output of the two-step sequence alone.
        let padded = layer.forward(x.clone(), &[2]).slice([0..1, 0..2]);
        let alone = layer.forward(x.slice([0..1, 0..2]), &[2]);
        padded
            .into_data()
            .assert_approx_eq::<f32>(&alone.into_data(), Default::default());
    }
}
