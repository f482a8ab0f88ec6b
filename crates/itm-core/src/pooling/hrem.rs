//! HREM's aggregation of a set (Fu et al., CVPR 2023; CrossmodalGroup/HREM): the max-2 mean of
//! the features, mixed with the mean of the same features after one transformer layer that
//! relates the fragments of one image or caption (METHODS §2, the max-k mean).

use burn::config::Config;
use burn::module::Module;
use burn::nn::activation::ActivationConfig;
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderConfig};
use burn::tensor::{Device, Tensor};

use super::basic::{max_k_mean_pool, mean_pool};
use crate::encoders::transformer;
use crate::masking::{l2_normalize, padding_mask};

/// Configuration of an [`HremPooling`] (the published settings as defaults).
#[derive(Config, Debug)]
pub struct HremPoolingConfig {
    /// Feature width `D`.
    pub d_model: usize,
    /// Attention heads of the layer (`--nhead`, published 16); `D` must be a multiple.
    #[config(default = 16)]
    pub heads: usize,
    /// Weight `ρ` of the max-k mean of the input (`--residual_weight`, published 0.8).
    #[config(default = 0.8)]
    pub residual_weight: f64,
    /// `k` of the max-k mean (published 2).
    #[config(default = 2)]
    pub k: usize,
    /// Dropout of the layer in training (`--dropout`, published 0.1).
    #[config(default = 0.1)]
    pub dropout: f64,
}

impl HremPoolingConfig {
    /// Builds the pooling on `device`.
    ///
    /// # Panics
    /// If `D` is not a multiple of the heads, or `ρ` is outside `[0, 1]`.
    pub fn init(&self, device: &Device) -> HremPooling {
        assert!(
            self.heads > 0 && self.d_model.is_multiple_of(self.heads),
            "HREM pooling: D = {} is not a multiple of its {} heads",
            self.d_model,
            self.heads
        );
        assert!(
            (0.0..=1.0).contains(&self.residual_weight),
            "HREM pooling: the residual weight must be in [0, 1]"
        );
        HremPooling {
            layer: TransformerEncoderConfig::new(self.d_model, self.d_model, self.heads, 1)
                .with_norm_first(false)
                .with_dropout(self.dropout)
                .with_activation(ActivationConfig::Relu)
                .with_layer_norm_eps(1e-5)
                .init(device),
            residual_weight: self.residual_weight,
            k: self.k,
        }
    }
}

/// `v = l2norm(ρ · maxk_mean(X) + (1 − ρ) · mean(T(X)))` over the valid fragments of each set,
/// where `T` is one post-norm transformer encoder layer (PyTorch's `TransformerEncoderLayer`:
/// ReLU feed-forward block `D` wide, layer norms with ε = 1e-5) whose attention ignores the
/// padding (HREM's `src_key_padding_mask`).
#[derive(Module, Debug)]
pub struct HremPooling {
    /// The fragment relation layer.
    pub layer: TransformerEncoder,
    /// `ρ`.
    pub residual_weight: f64,
    /// `k` of the max-k mean.
    pub k: usize,
}

impl HremPooling {
    /// - `x`: `[batch, max_len, D]` with valid prefix lengths `lengths`
    /// - returns the l2-normalised pooled vectors `[batch, D]`
    pub fn forward(&self, x: Tensor<3>, lengths: &[usize]) -> Tensor<2> {
        let [_, max_len, _] = x.dims();
        let residual = max_k_mean_pool(x.clone(), lengths, self.k);
        let mask = padding_mask(lengths, max_len, &x.device());
        let related = transformer::encoder(&self.layer, x, Some(mask), None);
        let related = mean_pool(related, lengths);
        l2_normalize(residual * self.residual_weight + related * (1.0 - self.residual_weight))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// With ρ = 1 it is the l2-normalised max-k mean; padding changes nothing.
    #[test]
    fn the_residual_alone_is_the_max_k_mean_and_padding_is_ignored() {
        let device = Device::default();
        device.seed(4);
        let pooling = HremPoolingConfig::new(8)
            .with_heads(2)
            .with_residual_weight(1.0)
            .init(&device);
        let x = Tensor::<3>::random([2, 4, 8], Distribution::Normal(0.0, 1.0), &device);
        pooling
            .forward(x.clone(), &[4, 2])
            .into_data()
            .assert_approx_eq::<f32>(
                &l2_normalize(max_k_mean_pool(x.clone(), &[4, 2], 2)).into_data(),
                Default::default(),
            );
        let mixed = HremPoolingConfig::new(8).with_heads(2).init(&device);
        let padded = x.clone().slice_assign(
            [1..2, 2..4, 0..8],
            Tensor::<3>::random([1, 2, 8], Distribution::Normal(5.0, 1.0), &device),
        );
        mixed
            .forward(padded, &[4, 2])
            .into_data()
            .assert_approx_eq::<f32>(&mixed.forward(x, &[4, 2]).into_data(), Default::default());
    }
}
