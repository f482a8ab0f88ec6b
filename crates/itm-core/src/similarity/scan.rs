//! Stacked Cross Attention (SCAN, Lee et al. ECCV 2018; METHODS §3), text-to-image and
//! image-to-text, for all image–caption pairs of a block at once.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::activation::leaky_relu;
use burn::tensor::{Bool, Tensor};
use serde::{Deserialize, Serialize};

use super::fine_grained::{
    FineGrainedSimilarity, PairMasks, check_fine_grained_inputs, pair_products,
};
use crate::masking::{
    L2_EPSILON, MASKED_LOGIT, fill_padding, l2_normalize, masked_log_sum_exp, masked_mean,
    padding_mask,
};
use crate::ops::softmax;

/// Negative slope of the LeakyReLU applied to the raw attention scores.
pub const SCAN_LEAKY_SLOPE: f64 = 0.1;

/// Which modality attends to which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScanDirection {
    /// Words attend to regions; word-level relevances are aggregated (t2i).
    TextToImage,
    /// Regions attend to words; region-level relevances are aggregated (i2t).
    ImageToText,
}

impl ScanDirection {
    /// Published softmax temperature `λ1`: 9 for t2i, 4 for i2t.
    pub fn default_lambda_softmax(self) -> f64 {
        match self {
            ScanDirection::TextToImage => 9.0,
            ScanDirection::ImageToText => 4.0,
        }
    }

    /// Published LogSumExp sharpness `λ2`: 6 for t2i, 5 for i2t.
    pub fn default_lambda_lse(self) -> f64 {
        match self {
            ScanDirection::TextToImage => 6.0,
            ScanDirection::ImageToText => 5.0,
        }
    }
}

/// How the per-word (t2i) or per-region (i2t) relevances `r` become one score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScanAggregation {
    /// `S = (1/λ2) · log Σ exp(λ2 · r)` over the valid queries.
    LogSumExp,
    /// `S = mean(r)` over the valid queries.
    Average,
}

/// Configuration of a [`Scan`] similarity.
#[derive(Config, Debug)]
pub struct ScanConfig {
    /// Attention direction.
    #[config(default = "ScanDirection::TextToImage")]
    pub direction: ScanDirection,
    /// Aggregation of the relevances.
    #[config(default = "ScanAggregation::LogSumExp")]
    pub aggregation: ScanAggregation,
    /// Softmax temperature `λ1`; `None` takes the published default of the direction
    /// (t2i 9, i2t 4).
    #[config(default = "None")]
    pub lambda_softmax: Option<f64>,
    /// LogSumExp sharpness `λ2` (unused by [`ScanAggregation::Average`]); `None` takes the
    /// published default of the direction (t2i 6, i2t 5).
    #[config(default = "None")]
    pub lambda_lse: Option<f64>,
}

impl ScanConfig {
    /// Builds the similarity (no learned parameters), resolving the published defaults.
    pub fn init(&self) -> Scan {
        let lambda_softmax = self
            .lambda_softmax
            .unwrap_or_else(|| self.direction.default_lambda_softmax());
        let lambda_lse = self
            .lambda_lse
            .unwrap_or_else(|| self.direction.default_lambda_lse());
        assert!(
            lambda_softmax > 0.0 && lambda_lse > 0.0,
            "SCAN temperatures must be positive"
        );
        Scan {
            direction: self.direction,
            aggregation: self.aggregation,
            lambda_softmax,
            lambda_lse,
        }
    }
}

/// SCAN similarity of region sets `R` `[K, D]` and word sets `W` `[L, D]` (METHODS §3).
///
/// Text-to-image, for one pair: `A = R Wᵀ` `[K, L]`;
/// `A ← l2norm_over_words(LeakyReLU_0.1(A))`; `α = softmax_over_regions(λ1·A)`;
/// attended `a_w = Σ_r α_{r,w} R_r`; `r_w = cos(W_w, a_w)`; then
/// `S = (1/λ2) log Σ_w exp(λ2 r_w)` (LSE) or `S = mean_w r_w` (AVG).
/// Image-to-text mirrors it: `A ← l2norm_over_regions(LeakyReLU_0.1(A))`,
/// `α = softmax_over_words(λ1·A)`, `a_r = Σ_w α_{r,w} W_w`, `r_r = cos(R_r, a_r)`, aggregated
/// over regions.
///
/// Conventions (as in [`crate::masking`]): `l2norm(x) = x / (‖x‖ + 1e-8)` and
/// `cos(x, y) = x·y / ((‖x‖ + 1e-8)(‖y‖ + 1e-8))`. The features are used as given (SCAN's
/// encoders already l2-normalise them); the cosine makes `r` independent of their scale, the
/// attention does not.
///
/// Padding: padded regions and words are zeroed first (so they add nothing to `A` or to the
/// l2 norms), masked out of the softmax, and left out of the aggregation; no score depends on
/// them and their gradient is zero.
///
/// Memory: all `n_img · n_cap` pairs are scored in one batched program whose working set is
/// a handful of `[n_img, n_cap, K, L]` tensors; the attended vectors `[.., L, D]` are never
/// materialised. Their norms come from the Gram matrix of the attended-over set,
/// `‖a_w‖² = α_{·,w}ᵀ (R Rᵀ) α_{·,w}`, and their dot products from `A` itself,
/// `W_w·a_w = Σ_r α_{r,w} A_{r,w}` (the raw `A`, before the LeakyReLU). A caller bounds memory
/// by the block sizes it passes in.
#[derive(Module, Debug)]
pub struct Scan {
    /// Attention direction.
    #[module(skip)]
    pub direction: ScanDirection,
    /// Aggregation of the relevances.
    #[module(skip)]
    pub aggregation: ScanAggregation,
    /// Softmax temperature `λ1`.
    pub lambda_softmax: f64,
    /// LogSumExp sharpness `λ2`.
    pub lambda_lse: f64,
}

impl Scan {
    /// Cross attention of one side over the other, for all pairs of a block.
    ///
    /// Axis 2 is the *context* (attended over), axis 3 the *query* (one relevance each).
    /// - `products`: `[n_img, n_cap, C, Q]`, `products[.., c, q] = ⟨context_c, query_q⟩`
    /// - `context_gram`: `[n_img|1, n_cap|1, C, C]`, `⟨context_c, context_c'⟩`
    /// - `context_padding`: `[n_img, n_cap, C, Q]`, `true` at padded context positions
    /// - `query_norms`: `[n_img|1, n_cap|1, 1, Q]`, `‖query_q‖`
    /// - returns the relevances `r_q = cos(query_q, a_q)`: `[n_img, n_cap, 1, Q]`
    fn relevances(
        &self,
        products: Tensor<4>,
        context_gram: Tensor<4>,
        context_padding: Tensor<4, Bool>,
        query_norms: Tensor<4>,
    ) -> Tensor<4> {
        // l2norm over the query axis (the last one), then softmax over the context axis. Rows
        // of padded context positions are all zero; they are set to 1 before the norm (its
        // gradient at a zero row is NaN) and are masked out of the softmax anyway.
        let scores =
            leaky_relu(products.clone(), SCAN_LEAKY_SLOPE).mask_fill(context_padding.clone(), 1.0);
        let logits =
            (l2_normalize(scores) * self.lambda_softmax).mask_fill(context_padding, MASKED_LOGIT);
        let attention = softmax(logits, 2);
        // query_q · a_q = Σ_c α_{c,q} ⟨context_c, query_q⟩
        let dots = (attention.clone() * products).sum_dim(2);
        // ‖a_q‖² = Σ_c α_{c,q} (G α)_{c,q}
        let attended_sq = (attention.clone() * context_gram.matmul(attention)).sum_dim(2);
        let attended_norms = attended_sq.clamp_min(0.0).sqrt();
        dots / ((query_norms + L2_EPSILON) * (attended_norms + L2_EPSILON))
    }

    /// Aggregates relevances `[n_img, n_cap, 1, Q]` over the valid queries → `[n_img, n_cap]`.
    fn aggregate(&self, relevances: Tensor<4>, query_padding: Tensor<4, Bool>) -> Tensor<2> {
        let [n_img, n_cap, _, _] = relevances.dims();
        let scores = match self.aggregation {
            ScanAggregation::LogSumExp => {
                masked_log_sum_exp(relevances * self.lambda_lse, query_padding, 3) / self.lambda_lse
            }
            ScanAggregation::Average => masked_mean(relevances, query_padding, 3),
        };
        scores.reshape([n_img, n_cap])
    }
}

/// Per-row Euclidean norms of `x` `[n, len, D]` → `[n, len]`, with 1 at padding (whose rows
/// are zero: the gradient of the square root there would be NaN).
fn row_norms(x: Tensor<3>, lengths: &[usize]) -> Tensor<2> {
    let [_, len, _] = x.dims();
    let padding = padding_mask(lengths, len, &x.device());
    x.square()
        .sum_dim(2)
        .squeeze_dim::<2>(2)
        .mask_fill(padding, 1.0)
        .sqrt()
}

impl FineGrainedSimilarity for Scan {
    /// See [`FineGrainedSimilarity::similarity`]: `[n_img, K, D]` × `[n_cap, L, D]` →
    /// `[n_img, n_cap]`.
    fn similarity(
        &self,
        regions: Tensor<3>,
        region_counts: &[usize],
        words: Tensor<3>,
        word_lengths: &[usize],
    ) -> Tensor<2> {
        let dims = check_fine_grained_inputs(&regions, region_counts, &words, word_lengths);
        let (n_img, k, n_cap, l) = (dims.n_img, dims.regions, dims.n_cap, dims.words);
        let masks = PairMasks::new(dims, region_counts, word_lengths, &regions.device());
        let regions = fill_padding(regions, region_counts, 0.0);
        let words = fill_padding(words, word_lengths, 0.0);
        // A = R Wᵀ for every pair: [n_img, n_cap, K, L].
        let products = pair_products(regions.clone(), words.clone());
        let regions4 = regions.clone().unsqueeze_dim::<4>(1); // [n_img, 1, K, D]
        let words4 = words.clone().unsqueeze_dim::<4>(0); // [1, n_cap, L, D]
        match self.direction {
            ScanDirection::TextToImage => {
                let gram = regions4.clone().matmul(regions4.swap_dims(2, 3)); // [n_img, 1, K, K]
                let word_norms = row_norms(words, word_lengths).reshape([1, n_cap, 1, l]);
                let relevances = self.relevances(products, gram, masks.regions, word_norms);
                self.aggregate(relevances, masks.words.narrow(2, 0, 1))
            }
            ScanDirection::ImageToText => {
                let gram = words4.clone().matmul(words4.swap_dims(2, 3)); // [1, n_cap, L, L]
                let region_norms = row_norms(regions, region_counts).reshape([n_img, 1, 1, k]);
                let relevances = self.relevances(
                    products.swap_dims(2, 3), // [n_img, n_cap, L, K]
                    gram,
                    masks.words.swap_dims(2, 3),
                    region_norms,
                );
                self.aggregate(relevances, masks.regions.swap_dims(2, 3).narrow(2, 0, 1))
            }
        }
    }

    /// Measured on `flex`: 4.3–5.3 values per region–word slot in either direction; 6 with a
    /// margin (the attended vectors are not materialised per pair).
    fn working_values_per_pair(&self, regions: usize, words: usize, _dim: usize) -> usize {
        6 * regions * words
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::similarity::fine_grained::test_support::*;
    use burn::tensor::{Device, TensorData};

    fn all_variants() -> Vec<(String, Scan)> {
        let mut out = Vec::new();
        for direction in [ScanDirection::TextToImage, ScanDirection::ImageToText] {
            for aggregation in [ScanAggregation::LogSumExp, ScanAggregation::Average] {
                let scan = ScanConfig::new()
                    .with_direction(direction)
                    .with_aggregation(aggregation)
                    .init();
                out.push((format!("SCAN {direction:?} {aggregation:?}"), scan));
            }
        }
        out
    }

    /// The direct per-pair formula of METHODS §3 on host vectors (attended vectors explicit).
    fn naive_pair(scan: &Scan, regions: &[Vec<f32>], words: &[Vec<f32>]) -> f32 {
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let norm = |a: &[f32]| dot(a, a).sqrt();
        let (context, query) = match scan.direction {
            ScanDirection::TextToImage => (regions, words),
            ScanDirection::ImageToText => (words, regions),
        };
        // a[c][q] = LeakyReLU(<context_c, query_q>), l2-normalised over q.
        let mut a: Vec<Vec<f32>> = context
            .iter()
            .map(|c| {
                query
                    .iter()
                    .map(|q| {
                        let v = dot(c, q);
                        if v < 0.0 { 0.1 * v } else { v }
                    })
                    .collect()
            })
            .collect();
        for row in &mut a {
            let n = norm(row) + 1e-8;
            row.iter_mut().for_each(|v| *v /= n);
        }
        let relevances: Vec<f32> = (0..query.len())
            .map(|q| {
                let logits: Vec<f32> = a
                    .iter()
                    .map(|row| scan.lambda_softmax as f32 * row[q])
                    .collect();
                let max = logits.iter().cloned().fold(f32::MIN, f32::max);
                let exps: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
                let total: f32 = exps.iter().sum();
                let mut attended = vec![0.0f32; query[q].len()];
                for (c, e) in context.iter().zip(&exps) {
                    for (o, v) in attended.iter_mut().zip(c) {
                        *o += e / total * v;
                    }
                }
                dot(&query[q], &attended) / ((norm(&query[q]) + 1e-8) * (norm(&attended) + 1e-8))
            })
            .collect();
        match scan.aggregation {
            ScanAggregation::LogSumExp => {
                let l2 = scan.lambda_lse as f32;
                relevances.iter().map(|r| (l2 * r).exp()).sum::<f32>().ln() / l2
            }
            ScanAggregation::Average => relevances.iter().sum::<f32>() / relevances.len() as f32,
        }
    }

    #[test]
    fn published_defaults_follow_the_direction() {
        let t2i = ScanConfig::new().init();
        assert_eq!((t2i.lambda_softmax, t2i.lambda_lse), (9.0, 6.0));
        let i2t = ScanConfig::new()
            .with_direction(ScanDirection::ImageToText)
            .init();
        assert_eq!((i2t.lambda_softmax, i2t.lambda_lse), (4.0, 5.0));
        let custom = ScanConfig::new().with_lambda_softmax(Some(2.0)).init();
        assert_eq!((custom.lambda_softmax, custom.lambda_lse), (2.0, 6.0));
    }

    #[test]
    fn batched_scores_equal_the_per_pair_formula() {
        let device = Device::default();
        let (regions, words) = inputs(&device, 3);
        let r = regions.clone().into_data().try_into_vec::<f32>().unwrap();
        let w = words.clone().into_data().try_into_vec::<f32>().unwrap();
        let set = |data: &[f32], index: usize, len: usize, slots: usize| -> Vec<Vec<f32>> {
            (0..len)
                .map(|t| data[(index * slots + t) * 8..(index * slots + t + 1) * 8].to_vec())
                .collect()
        };
        for (what, scan) in all_variants() {
            let scores = host(scan.similarity(
                regions.clone(),
                &REGION_COUNTS,
                words.clone(),
                &WORD_LENGTHS,
            ));
            let mut expected = Vec::new();
            for (i, &count) in REGION_COUNTS.iter().enumerate() {
                for (j, &len) in WORD_LENGTHS.iter().enumerate() {
                    expected.push(naive_pair(
                        &scan,
                        &set(&r, i, count, 5),
                        &set(&w, j, len, 6),
                    ));
                }
            }
            assert_all_close(&scores, &expected, 1e-5, &what);
        }
    }

    #[test]
    fn padding_does_not_change_any_score() {
        for (what, scan) in all_variants() {
            assert_padding_invariant(&scan, &what);
        }
    }

    #[test]
    fn gradients_are_finite_and_zero_at_padding() {
        for (what, scan) in all_variants() {
            assert_gradients_clean(&scan, &what);
        }
    }

    #[test]
    fn blocks_concatenate_to_the_full_matrix() {
        for (what, scan) in all_variants() {
            assert_block_consistent(&scan, &what);
        }
    }

    #[test]
    fn t2i_with_a_single_region_attends_fully_to_it() {
        // One region R: α = 1, a_w = R, r_w = cos(W_w, R).
        let device = Device::default();
        let region = [1.0f32, 2.0, -1.0];
        let words = [[0.5f32, 0.0, 1.0], [1.0, 1.0, 1.0], [-2.0, 1.0, 0.0]];
        let regions = Tensor::<3>::from_data(TensorData::new(region.to_vec(), [1, 1, 3]), &device);
        let word_tensor =
            Tensor::<3>::from_data(TensorData::new(words.concat(), [1, 3, 3]), &device);
        let cos = |w: &[f32; 3]| {
            let dot: f32 = w.iter().zip(&region).map(|(a, b)| a * b).sum();
            let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
            dot / (n(w) * n(&region))
        };
        let r: Vec<f32> = words.iter().map(cos).collect();
        let lse = ScanConfig::new().init();
        let s = host(lse.similarity(regions.clone(), &[1], word_tensor.clone(), &[3]));
        let expected = r.iter().map(|v| (6.0 * v).exp()).sum::<f32>().ln() / 6.0;
        assert_all_close(&s, &[expected], 1e-5, "t2i LSE, one region");
        let avg = ScanConfig::new()
            .with_aggregation(ScanAggregation::Average)
            .init();
        let s = host(avg.similarity(regions, &[1], word_tensor, &[3]));
        assert_all_close(
            &s,
            &[r.iter().sum::<f32>() / 3.0],
            1e-5,
            "t2i AVG, one region",
        );
    }

    #[test]
    fn i2t_with_a_single_word_and_region_is_their_cosine() {
        let device = Device::default();
        let regions = Tensor::<3>::from_floats([[[3.0, 0.0, 4.0]]], &device);
        let words = Tensor::<3>::from_floats([[[0.0, 1.0, 1.0]]], &device);
        let scan = ScanConfig::new()
            .with_direction(ScanDirection::ImageToText)
            .init();
        let s = host(scan.similarity(regions, &[1], words, &[1]));
        // With one region the LSE is (1/λ2) log exp(λ2 r) = r.
        assert_all_close(&s, &[4.0 / (5.0 * 2f32.sqrt())], 1e-6, "i2t one pair");
    }
}
