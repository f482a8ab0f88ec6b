//! Pooling a set of features `[batch, n, D]` to one l2-normalised vector `[batch, D]`
//! (METHODS §2).

mod basic;
mod gpo;
mod hrem;

pub use basic::{max_k_mean_pool, max_pool, mean_pool};
pub use gpo::{Gpo, GpoConfig, positional_encoding};
pub use hrem::{HremPooling, HremPoolingConfig};

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::masking::l2_normalize;

/// Which pooling a model uses.
#[derive(Config, Debug)]
pub enum PoolingConfig {
    /// Mean over valid positions.
    Mean,
    /// Max over valid positions.
    Max,
    /// Mean of the top-`k` values of each channel (HREM uses `k = 2`).
    MaxKMean(usize),
    /// Generalized pooling operator (VSE∞).
    Gpo(GpoConfig),
    /// HREM's max-2 mean mixed with the mean after a fragment relation layer.
    Hrem(HremPoolingConfig),
}

/// Mean pooling over valid positions (no parameters).
#[derive(Module, Debug, Default)]
pub struct MeanPool;

/// Max pooling over valid positions (no parameters).
#[derive(Module, Debug, Default)]
pub struct MaxPool;

/// Mean of the top-`k` values per channel (no parameters).
#[derive(Module, Debug)]
pub struct MaxKMeanPool {
    /// How many of the largest values per channel are averaged.
    pub k: usize,
}

/// A pooling operator built from a [`PoolingConfig`].
// A model holds a handful of poolings, built once: the size of the GPO variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Pooling {
    /// See [`PoolingConfig::Mean`].
    Mean(MeanPool),
    /// See [`PoolingConfig::Max`].
    Max(MaxPool),
    /// See [`PoolingConfig::MaxKMean`].
    MaxKMean(MaxKMeanPool),
    /// See [`PoolingConfig::Gpo`].
    Gpo(Gpo),
    /// See [`PoolingConfig::Hrem`].
    Hrem(HremPooling),
}

impl PoolingConfig {
    /// Builds the pooling on `device`.
    pub fn init(&self, device: &Device) -> Pooling {
        match self {
            PoolingConfig::Mean => Pooling::Mean(MeanPool),
            PoolingConfig::Max => Pooling::Max(MaxPool),
            PoolingConfig::MaxKMean(k) => Pooling::MaxKMean(MaxKMeanPool { k: *k }),
            PoolingConfig::Gpo(config) => Pooling::Gpo(config.init(device)),
            PoolingConfig::Hrem(config) => Pooling::Hrem(config.init(device)),
        }
    }
}

impl Pooling {
    /// - `x`: `[batch, max_len, dim]` with valid prefix lengths `lengths`
    /// - returns the l2-normalised pooled vectors `[batch, dim]`
    pub fn forward(&self, x: Tensor<3>, lengths: &[usize]) -> Tensor<2> {
        match self {
            Pooling::Mean(_) => l2_normalize(mean_pool(x, lengths)),
            Pooling::Max(_) => l2_normalize(max_pool(x, lengths)),
            Pooling::MaxKMean(pool) => l2_normalize(max_k_mean_pool(x, lengths, pool.k)),
            Pooling::Gpo(gpo) => gpo.forward(x, lengths),
            Pooling::Hrem(hrem) => hrem.forward(x, lengths),
        }
    }
}
