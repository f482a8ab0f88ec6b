//! Stochastic depth (Huang et al. 2016): in training, each residual branch is dropped for a
//! whole sample with probability `p` and kept ones are scaled by `1 / (1 − p)` (timm's and
//! transformers' `DropPath`; Swin trains with rates rising linearly over the blocks).

use burn::module::Module;
use burn::tensor::{Distribution, Tensor};

/// Drops the residual branch of a whole sample with probability `prob` during training.
#[derive(Module, Debug)]
pub struct DropPath {
    /// Probability of dropping a sample's branch (0: the identity).
    pub prob: f64,
}

impl DropPath {
    /// The identity outside training, i.e. unless `x` lives on an autodiff device (as burn's
    /// `Dropout`; unlike it, a frozen subtree on the training device still drops, as PyTorch
    /// does in train mode with `requires_grad = False` — HAT trains its frozen Swin so).
    ///
    /// - `x`: `[batch, tokens, width]`, one sample per row of the batch
    /// - returns `[batch, tokens, width]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        if self.prob == 0.0 || !x.device().is_autodiff() {
            return x;
        }
        let keep = 1.0 - self.prob;
        let [batch, _, _] = x.dims();
        let mask = Tensor::<3>::random([batch, 1, 1], Distribution::Bernoulli(keep), &x.device());
        x * mask.div_scalar(keep)
    }
}

/// The rate of each of `blocks` blocks: `rate · k / (blocks − 1)` for block `k` (torch's
/// `linspace(0, rate, blocks)`, as timm and transformers assign them).
pub(super) fn block_rates(rate: f64, blocks: usize) -> Vec<f64> {
    match blocks {
        0 => Vec::new(),
        1 => vec![0.0],
        n => (0..n).map(|k| rate * k as f64 / (n - 1) as f64).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn rates_rise_linearly() {
        assert_eq!(block_rates(0.1, 3), vec![0.0, 0.05, 0.1]);
        assert_eq!(block_rates(0.1, 1), vec![0.0]);
    }

    /// In training each sample's branch is either dropped or scaled by `1/(1 − p)`; outside
    /// training it passes unchanged.
    #[test]
    fn drops_whole_samples_in_training_only() {
        let drop = DropPath { prob: 0.5 };
        let device = Device::default();
        let x = Tensor::<3>::ones([64, 3, 2], &device);
        assert_eq!(drop.forward(x.clone()).sum().into_scalar::<f32>(), 384.0);
        let training = device.autodiff();
        training.seed(7);
        let out = drop.forward(Tensor::<3>::ones([64, 3, 2], &training));
        let values: Vec<f32> = out.into_data().try_to_vec::<f32>().unwrap();
        let samples: Vec<&[f32]> = values.chunks(6).collect();
        assert!(samples.iter().all(|s| s.iter().all(|&v| v == s[0])));
        assert!(
            samples.iter().all(|s| s[0] == 0.0 || s[0] == 2.0),
            "{samples:?}"
        );
        let kept = samples.iter().filter(|s| s[0] == 2.0).count();
        assert!((16..=48).contains(&kept), "{kept} of 64 kept");
    }
}
