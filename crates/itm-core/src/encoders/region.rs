//! Precomputed region features → joint space (VSE∞ "basic" encoder, METHODS §1).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

/// Configuration of a [`RegionEncoder`].
#[derive(Config, Debug)]
pub struct RegionEncoderConfig {
    /// Width of the input region features (2048 for BUTD).
    pub d_feature: usize,
    /// Width of the joint embedding space `D`.
    pub d_embed: usize,
    /// Whether the MLP path is added (VSE∞ "basic"); without it the encoder is SCAN's
    /// precomp `fc`: one Linear per region.
    #[config(default = true)]
    pub mlp: bool,
}

/// `x = Linear(F→D)(V) + MLP(V)` with `MLP = Linear(F→D/2) → BatchNorm → ReLU → Linear(D/2→D)`,
/// or `x = Linear(F→D)(V)` alone without the MLP (SCAN, CHAN's BERT script).
///
/// Batch normalisation runs over all `batch · regions` rows, padding included, as in VSE∞.
/// Train-time region drop is a data augmentation (`itm_data::RegionDrop`), as in VSE∞.
#[derive(Module, Debug)]
pub struct RegionEncoder {
    /// The linear path `F → D`.
    pub fc: Linear,
    /// First MLP layer `F → D/2` (`None` without the MLP; the three MLP parts are present
    /// together or not at all).
    pub mlp_in: Option<Linear>,
    /// Batch norm over the hidden MLP width.
    pub mlp_norm: Option<BatchNorm>,
    /// Second MLP layer `D/2 → D`.
    pub mlp_out: Option<Linear>,
}

impl RegionEncoderConfig {
    /// Builds the encoder on `device`.
    pub fn init(&self, device: &Device) -> RegionEncoder {
        let hidden = self.d_embed / 2;
        let fc = LinearConfig::new(self.d_feature, self.d_embed).init(device);
        if !self.mlp {
            return RegionEncoder {
                fc,
                mlp_in: None,
                mlp_norm: None,
                mlp_out: None,
            };
        }
        RegionEncoder {
            fc,
            mlp_in: Some(LinearConfig::new(self.d_feature, hidden).init(device)),
            mlp_norm: Some(BatchNormConfig::new(hidden).init(device)),
            mlp_out: Some(LinearConfig::new(hidden, self.d_embed).init(device)),
        }
    }
}

impl RegionEncoder {
    /// - `regions`: `[batch, regions, d_feature]`
    /// - returns `[batch, regions, d_embed]`
    pub fn forward(&self, regions: Tensor<3>) -> Tensor<3> {
        let [batch, count, d_feature] = regions.dims();
        let rows = regions.reshape([batch * count, d_feature]);
        let linear = self.fc.forward(rows.clone());
        let embedded = match (&self.mlp_in, &self.mlp_norm, &self.mlp_out) {
            (Some(input), Some(norm), Some(output)) => {
                linear + output.forward(relu(norm.forward(input.forward(rows))))
            }
            _ => linear,
        };
        let [_, d_embed] = embedded.dims();
        embedded.reshape([batch, count, d_embed])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn output_shape_and_residual_sum() {
        let device = Device::default();
        device.seed(1);
        let encoder = RegionEncoderConfig::new(6, 4).init(&device).valid();
        let x = Tensor::<3>::random([2, 3, 6], Distribution::Normal(0.0, 1.0), &device);
        let y = encoder.forward(x.clone());
        assert_eq!(y.dims(), [2, 3, 4]);
        let rows = x.reshape([6, 6]);
        let (input, norm, output) = (
            encoder.mlp_in.as_ref().unwrap(),
            encoder.mlp_norm.as_ref().unwrap(),
            encoder.mlp_out.as_ref().unwrap(),
        );
        let hidden = relu(norm.forward(input.forward(rows.clone())));
        let expected = encoder.fc.forward(rows) + output.forward(hidden);
        y.reshape([6, 4])
            .into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Default::default());
    }

    #[test]
    fn without_the_mlp_it_is_one_linear_per_region() {
        let device = Device::default();
        device.seed(3);
        let encoder = RegionEncoderConfig::new(6, 4).with_mlp(false).init(&device);
        assert!(encoder.mlp_in.is_none() && encoder.mlp_norm.is_none());
        let x = Tensor::<3>::random([2, 3, 6], Distribution::Normal(0.0, 1.0), &device);
        let expected = encoder.fc.forward(x.clone().reshape([6, 6]));
        encoder
            .forward(x)
            .reshape([6, 4])
            .into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Default::default());
    }
}
