//! CHAN hard alignment (Pan et al. CVPR 2023; METHODS §3): every word is matched to its single
//! most similar region, for all image–caption pairs of a block at once.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::chan_host::chan_scores;
use super::fine_grained::{FineGrainedDims, FineGrainedSimilarity, check_fine_grained_inputs};
use super::sharded::FeatureSets;
use crate::masking::{fill_padding, l2_normalize, masked_log_sum_exp, masked_mean, padding_mask};

/// Value given to padded region–word entries before the max over regions: the smallest
/// cosine, so that a padded region is never preferred to a valid one.
pub const CHAN_INVALID_SCORE: f32 = -1.0;

/// How the per-word alignment scores `H_w` become one score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChanAggregation {
    /// `S = mean over valid w of H_w` (CHAN with BERT).
    Mean,
    /// `S = log Σ_{valid w} exp(H_w / τ)` (CHAN with the GRU; no rescaling by `τ` afterwards).
    LogSumExp,
}

/// Configuration of a [`Chan`] similarity.
#[derive(Config, Debug)]
pub struct ChanConfig {
    /// Aggregation over words.
    #[config(default = "ChanAggregation::Mean")]
    pub aggregation: ChanAggregation,
    /// Temperature `τ` of [`ChanAggregation::LogSumExp`] (published 0.1).
    #[config(default = 0.1)]
    pub temperature: f64,
}

impl ChanConfig {
    /// Builds the similarity (no learned parameters).
    pub fn init(&self) -> Chan {
        assert!(self.temperature > 0.0, "CHAN temperature must be positive");
        Chan {
            aggregation: self.aggregation,
            temperature: self.temperature,
        }
    }
}

/// CHAN hard-alignment similarity of region sets `[K, D]` and word sets `[L, D]`.
///
/// Regions and words are l2-normalised here, each vector on its own
/// (`x / (‖x‖ + 1e-8)`), so `F_{r,w} = ⟨R_r, W_w⟩` is their cosine. For all pairs of a block
/// `F` is one product `[n_img·K, n_cap·L]`, seen as `[n_img, K, n_cap, L]`; entries of padded
/// regions (and padded words) are set to [`CHAN_INVALID_SCORE`] `= −1`; `H_w = max_r F_{r,w}`; then
/// `S = mean_{valid w} H_w` ([`ChanAggregation::Mean`]) or
/// `S = log Σ_{valid w} exp(H_w / τ)` ([`ChanAggregation::LogSumExp`], exactly METHODS'
/// `logsumexp_w(H_w/0.1)`: the result is *not* multiplied back by `τ`).
///
/// The gradient of `H_w` flows to the arg-max region only. The working set is a few
/// `[n_img, K, n_cap, L]` tensors; a caller bounds it by the block sizes it passes in.
#[derive(Module, Debug)]
pub struct Chan {
    /// Aggregation over words.
    #[module(skip)]
    pub aggregation: ChanAggregation,
    /// Temperature `τ` of the LogSumExp aggregation.
    pub temperature: f64,
}

impl Chan {
    /// Alignment score of every word to its best region, `H_w = max_r F_{r,w}`.
    ///
    /// Same inputs as [`FineGrainedSimilarity::similarity`]; returns `[n_img, n_cap, L]`, with
    /// [`CHAN_INVALID_SCORE`] at padded words.
    pub fn word_alignments(
        &self,
        regions: Tensor<3>,
        region_counts: &[usize],
        words: Tensor<3>,
        word_lengths: &[usize],
    ) -> Tensor<3> {
        let dims = check_fine_grained_inputs(&regions, region_counts, &words, word_lengths);
        let FineGrainedDims {
            n_img,
            regions: k,
            n_cap,
            words: l,
            dim,
        } = dims;
        let device = regions.device();
        // Padding is replaced by ones (not zeros: the gradient of the norm of a zero vector is
        // NaN); its products are overwritten below and its gradient is zero.
        let regions =
            l2_normalize(fill_padding(regions, region_counts, 1.0)).reshape([n_img * k, dim]);
        let words = l2_normalize(fill_padding(words, word_lengths, 1.0)).reshape([n_cap * l, dim]);
        // F = ⟨R_r, W_w⟩ for every pair as one GEMM (our design, as batched PyTorch does it):
        // [n_img·K, D] × [D, n_cap·L] → [n_img, K, n_cap, L]. Many [K, D] × [D, L] products
        // (one per pair) run far below the GEMM's speed.
        let shape = [n_img, k, n_cap, l];
        let padding = padding_mask(region_counts, k, &device)
            .reshape([n_img, k, 1, 1])
            .expand(shape)
            .bool_or(
                padding_mask(word_lengths, l, &device)
                    .reshape([1, 1, n_cap, l])
                    .expand(shape),
            );
        regions
            .matmul(words.transpose())
            .reshape(shape)
            .mask_fill(padding, CHAN_INVALID_SCORE)
            .max_dim(1)
            .reshape([n_img, n_cap, l])
    }
}

impl FineGrainedSimilarity for Chan {
    /// See [`FineGrainedSimilarity::similarity`]: `[n_img, K, D]` × `[n_cap, L, D]` →
    /// `[n_img, n_cap]`.
    fn similarity(
        &self,
        regions: Tensor<3>,
        region_counts: &[usize],
        words: Tensor<3>,
        word_lengths: &[usize],
    ) -> Tensor<2> {
        let alignments = self.word_alignments(regions, region_counts, words, word_lengths);
        let [n_img, n_cap, l] = alignments.dims();
        let padding = crate::masking::padding_mask(word_lengths, l, &alignments.device())
            .unsqueeze_dim::<3>(0)
            .expand([n_img, n_cap, l]);
        let scores = match self.aggregation {
            ChanAggregation::Mean => masked_mean(alignments, padding, 2),
            ChanAggregation::LogSumExp => {
                masked_log_sum_exp(alignments / self.temperature, padding, 2)
            }
        };
        scores.reshape([n_img, n_cap])
    }

    /// Measured on `flex`: 1.4–2.2 values per region–word slot (the products, their masked
    /// copy and the maximum); 3 with a margin.
    fn working_values_per_pair(&self, regions: usize, words: usize, _dim: usize) -> usize {
        3 * regions * words
    }

    /// [`chan_scores`]: one GEMM per tile of images × captions with the max over regions folded
    /// in, never the whole block of products.
    fn host_scores(
        &self,
        images: FeatureSets,
        captions: FeatureSets,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Option<Vec<f32>> {
        Some(chan_scores(
            self.aggregation,
            self.temperature,
            images,
            captions,
            progress,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::similarity::fine_grained::test_support::*;
    use burn::tensor::Device;

    fn all_variants() -> Vec<(String, Chan)> {
        [ChanAggregation::Mean, ChanAggregation::LogSumExp]
            .into_iter()
            .map(|aggregation| {
                (
                    format!("CHAN {aggregation:?}"),
                    ChanConfig::new().with_aggregation(aggregation).init(),
                )
            })
            .collect()
    }

    #[test]
    fn one_region_and_one_word_score_their_cosine() {
        let device = Device::default();
        let regions = Tensor::<3>::from_floats([[[3.0, 0.0, 4.0]]], &device);
        let words = Tensor::<3>::from_floats([[[0.0, 1.0, 1.0]]], &device);
        let cosine = 4.0 / (5.0 * 2f32.sqrt());
        let mean = ChanConfig::new().init();
        let s = host(mean.similarity(regions.clone(), &[1], words.clone(), &[1]));
        assert_all_close(&s, &[cosine], 1e-6, "CHAN mean");
        let lse = ChanConfig::new()
            .with_aggregation(ChanAggregation::LogSumExp)
            .init();
        let s = host(lse.similarity(regions, &[1], words, &[1]));
        assert_all_close(&s, &[cosine / 0.1], 1e-5, "CHAN LSE");
    }

    #[test]
    fn each_word_takes_its_best_valid_region() {
        let device = Device::default();
        // Region 2 is padding and would match word 0 perfectly.
        let regions = Tensor::<3>::from_floats([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]], &device);
        let words = Tensor::<3>::from_floats([[[1.0, 1.0], [0.0, -1.0]]], &device);
        let chan = ChanConfig::new().init();
        let h = chan
            .word_alignments(regions.clone(), &[2], words.clone(), &[2])
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let half = 0.5f32.sqrt();
        assert_all_close(&h, &[half, 0.0], 1e-6, "H_w");
        let s = host(chan.similarity(regions, &[2], words, &[2]));
        assert_all_close(&s, &[half / 2.0], 1e-6, "mean of H_w");
    }

    #[test]
    fn padding_does_not_change_any_score() {
        for (what, chan) in all_variants() {
            assert_padding_invariant(&chan, &what);
        }
    }

    #[test]
    fn gradients_are_finite_and_zero_at_padding() {
        for (what, chan) in all_variants() {
            assert_gradients_clean(&chan, &what);
        }
    }

    #[test]
    fn blocks_concatenate_to_the_full_matrix() {
        for (what, chan) in all_variants() {
            assert_block_consistent(&chan, &what);
        }
    }
}
