//! A multi-grained score: the cosine of the pooled vectors (global) plus a weighted CHAN hard
//! alignment of the region and word sets (local).
//!
//! **Our design.** AAHR (ambiguity-aware and high-order relation learning, multi-grained
//! matching) publishes no code; its README names GPO (global), CHAN (local hard alignment) and
//! HREM (instance relations) as what it builds on. We compose the first two as one head:
//!
//! `S_ij = ⟨v_i, c_j⟩ + w · S^CHAN_ij`
//!
//! with `v_i`, `c_j` the unit pooled embeddings `[D]` (GPO in the `aahr` entry: METHODS §2,
//! §3 cosine) and `S^CHAN` CHAN's hard alignment of the unit region set `[K, D]` and word set
//! `[L, D]` (METHODS §3). With the mean over words both terms are cosines in `[−1, 1]`, so the
//! default `w = 1` weighs the two grains equally and the hinge margin keeps its meaning for
//! each; `w` is `model.local_weight` of a run. CHAN's LogSumExp over words (its BiGRU script)
//! grows with the caption length and would swamp the global term: the default is the mean.
//!
//! The head has no parameters. The pooled vectors and the sets come from the same encoded
//! features ([`crate::VseModel::batch_forward`]); evaluation adds the blocked cosine matrix
//! and the sharded CHAN matrix of a split ([`combine_host`]).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::Tensor;

use super::{Chan, ChanConfig};

/// Configuration of a [`MultiGrained`] head.
#[derive(Config, Debug)]
pub struct MultiGrainedConfig {
    /// The local score: CHAN's hard alignment (mean over words).
    #[config(default = "ChanConfig::new()")]
    pub local: ChanConfig,
    /// Weight `w > 0` of the local score (a model without it has the cosine head).
    #[config(default = 1.0)]
    pub local_weight: f64,
}

impl MultiGrainedConfig {
    /// Builds the head (no learned parameters).
    ///
    /// # Panics
    ///
    /// If the weight is not a positive number.
    pub fn init(&self) -> MultiGrained {
        assert!(
            self.local_weight.is_finite() && self.local_weight > 0.0,
            "multi-grained head: the local weight must be positive, got {}",
            self.local_weight
        );
        MultiGrained {
            local: self.local.init(),
            local_weight: self.local_weight,
        }
    }
}

/// The cosine of the pooled vectors plus `w` × CHAN's hard alignment of the sets.
#[derive(Module, Debug)]
pub struct MultiGrained {
    /// The local score of the sets.
    pub local: Chan,
    /// Its weight `w`.
    pub local_weight: f64,
}

/// `global + w · local`, both `[n_img, n_cap]`.
pub fn combine(global: Tensor<2>, local: Tensor<2>, local_weight: f64) -> Tensor<2> {
    global + local.mul_scalar(local_weight)
}

/// [`combine`] on the host: row-major `[n_img, n_cap]` matrices of the same length, summed
/// in place into `global`.
pub fn combine_host(mut global: Vec<f32>, local: &[f32], local_weight: f64) -> Vec<f32> {
    assert_eq!(
        global.len(),
        local.len(),
        "the global and local score matrices must have the same shape"
    );
    let weight = local_weight as f32;
    for (sum, value) in global.iter_mut().zip(local) {
        *sum += value * weight;
    }
    global
}
