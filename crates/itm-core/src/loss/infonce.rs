//! Symmetric InfoNCE with a learnable temperature (CLIP, Radford et al. 2021; METHODS §5).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor};

/// Configuration of an [`InfoNce`] loss.
#[derive(Config, Debug)]
pub struct InfoNceConfig {
    /// Initial inverse temperature `e^t` (CLIP: 1/0.07).
    #[config(default = 14.285714285714286)]
    pub initial_scale: f64,
    /// Upper bound of the inverse temperature (CLIP: 100).
    #[config(default = 100.0)]
    pub max_scale: f64,
}

/// `L = ½ (CE(S·e^t, diag) over rows + CE(S·e^t, diag) over columns)`, averaged over the batch,
/// with `t` learned and clamped at `log(max_scale)`.
#[derive(Module, Debug)]
pub struct InfoNce {
    /// The learned log inverse temperature `t`, `[1]`.
    pub log_scale: Param<Tensor<1>>,
    /// Clamp of `t`.
    pub max_log_scale: f64,
}

impl InfoNceConfig {
    /// Builds the loss on `device`.
    pub fn init(&self, device: &Device) -> InfoNce {
        InfoNce {
            log_scale: Param::from_tensor(Tensor::from_floats(
                [self.initial_scale.ln() as f32],
                device,
            )),
            max_log_scale: self.max_scale.ln(),
        }
    }
}

impl InfoNce {
    /// The inverse temperature in force, `[1]`.
    pub fn scale(&self) -> Tensor<1> {
        self.log_scale.val().clamp_max(self.max_log_scale).exp()
    }

    /// - `scores`: `[B, B]` similarities, positives on the diagonal
    /// - returns a scalar `[1]`
    pub fn forward(&self, scores: Tensor<2>) -> Tensor<1> {
        let [rows, cols] = scores.dims();
        assert_eq!(
            rows, cols,
            "InfoNCE needs a square [B, B] similarity matrix"
        );
        let logits = scores * self.scale().unsqueeze_dim::<2>(0);
        let eye = Tensor::<2>::eye(rows, &logits.device());
        let image_to_text = (log_softmax(logits.clone(), 1) * eye.clone()).sum();
        let text_to_image = (log_softmax(logits, 0) * eye).sum();
        (image_to_text + text_to_image).neg() / (2.0 * rows as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_by_two_closed_form() {
        let device = Device::default();
        let loss = InfoNceConfig::new().with_initial_scale(1.0).init(&device);
        let s = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 1.0]], &device);
        // Every row and column is softmax([1, 0]) with the positive at 1.
        let expected = (1.0 + (-1.0f64).exp()).ln();
        let value = loss.forward(s).into_scalar::<f32>();
        assert!((value as f64 - expected).abs() < 1e-6, "{value}");
    }

    #[test]
    fn scale_is_clamped() {
        let device = Device::default();
        let loss = InfoNceConfig::new()
            .with_initial_scale(1000.0)
            .init(&device);
        let scale = loss.scale().into_scalar::<f32>();
        assert!((scale - 100.0).abs() < 1e-3, "{scale}");
    }
}
