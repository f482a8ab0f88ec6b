//! ESL enhanced correspondence (Zhang et al., "Enhanced Semantic Similarity Learning Framework
//! for Image-Text Matching", TCSVT 2023; METHODS §3), for all image–caption pairs of a block at
//! once.
//!
//! ESL compares words and regions not only dimension by dimension but also on coarser
//! "measure units": each level `j` aggregates neighbouring (adaptive: learned) dimensions of the
//! previous level, halving the width, and contributes a learned bilinear form to the
//! word–region score matrix.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::activation::leaky_relu;
use burn::tensor::{Bool, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::fine_grained::{
    FineGrainedSimilarity, PairMasks, check_fine_grained_inputs, pair_products,
};
use crate::masking::{MASKED_LOGIT, fill_padding, l2_normalize, masked_mean};
use crate::ops::{softmax, tanh};

/// Negative slope of the LeakyReLU in the attention weights (as in SCAN and the ESL code).
pub const ESL_LEAKY_SLOPE: f64 = 0.1;

/// Epsilon of the LayerNorm of the bilinear forms `E_j` (1e-8, as in the published ESL code).
pub const ESL_LAYER_NORM_EPSILON: f64 = 1e-8;

/// Sharpness `e^3` of the heuristic level-weight sharpening `exp((|c_j| − t)·e^3)`.
pub const ESL_SHARPENING: f64 = 20.085_536_923_187_668;

/// Number of entries kept per row of an adaptive aggregation matrix `M_j`.
pub const ESL_ADAPTIVE_KEEP: usize = 2;

/// How level `j` is computed from level `j − 1` (METHODS §3, "aggregator").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EslAggregator {
    /// `M_j = l2norm_rows(P_j)` with only the 2 largest entries of each row kept,
    /// `X_j = l2norm(X_{j−1} M_jᵀ)`; `P_j ∈ R^{d_j × d_{j−1}}` learned. Level weights unsharpened.
    Adaptive,
    /// `X_j = l2norm(conv_j(X_{j−1}))`, where `conv_j` is a bias-free Conv1d 1→4 with kernel 2 and
    /// stride 2 whose 4 output channels are summed, i.e. dimension `i` of level `j` is
    /// `a_{j,0}·x_{2i} + a_{j,1}·x_{2i+1}` with `a_j = Σ_o w_{j,o}`. Level weights sharpened.
    Heuristic,
}

/// Configuration of an [`Esl`] similarity.
#[derive(Config, Debug)]
pub struct EslConfig {
    /// Feature width `D` of regions and words; `2^(levels − 1)` must divide it.
    pub dim: usize,
    /// Number of levels `n`, counting the input features as level 0, so that the widths are
    /// `d_j = D / 2^j` for `j = 0..n` (published: 9 levels for `D = 512`, i.e. widths 512…2).
    #[config(default = 9)]
    pub levels: usize,
    /// Aggregator of the levels.
    #[config(default = "EslAggregator::Adaptive")]
    pub aggregator: EslAggregator,
    /// Initial value of every level weight `c_j` (published 0.1).
    #[config(default = 0.1)]
    pub initial_level_weight: f64,
    /// Initial attention temperature `τ = exp(learned)` (published `1/0.07`).
    #[config(default = 14.285714285714286)]
    pub initial_temperature: f64,
    /// One set of aggregators for the regions and another for the words, as the published
    /// code has (`image_levels`, `text_levels`); `false`: one set shared by both, METHODS'
    /// single `M_j` (and the layout of checkpoints written before this option).
    #[config(default = false)]
    pub per_modality_levels: bool,
    /// The heuristic sharpening exponent is learned (`λ = exp(log λ)`, `log λ` initialised at
    /// 3, the published code's `temp_scale_2`); `false`: the constant `e^3` of METHODS.
    #[config(default = false)]
    pub learned_sharpness: bool,
}

impl EslConfig {
    /// Widths `d_j = D / 2^j` of the levels `j = 0..levels`.
    pub fn level_widths(&self) -> Vec<usize> {
        (0..self.levels).map(|j| self.dim >> j).collect()
    }

    /// Builds the similarity on `device`.
    ///
    /// Initialisation (as in the published ESL code): `P_j` and `E_j` `N(0, 1)` (they are
    /// `nn.Embedding` tables there); the LayerNorm gains 1 and biases 0; the heuristic kernels
    /// as PyTorch's default `Conv1d` init, `U(−1/√2, 1/√2)` (fan-in 2); `c_j` =
    /// [`Self::initial_level_weight`]; `σ = 0`; `log τ = ln(initial_temperature)`.
    ///
    /// # Panics
    ///
    /// If `levels` is zero or `2^(levels − 1)` does not divide `dim`, or the temperature is not
    /// positive.
    pub fn init(&self, device: &Device) -> Esl {
        assert!(self.levels >= 1, "ESL needs at least one level");
        assert!(
            self.levels <= usize::BITS as usize && self.dim.is_multiple_of(1 << (self.levels - 1)),
            "ESL: 2^(levels − 1) = 2^{} must divide the width {}",
            self.levels - 1,
            self.dim
        );
        assert!(
            self.initial_temperature > 0.0,
            "ESL temperature must be positive"
        );
        let widths = self.level_widths();
        let normal = Initializer::Normal {
            mean: 0.0,
            std: 1.0,
        };
        let aggregators = || -> Vec<Param<Tensor<2>>> {
            match self.aggregator {
                EslAggregator::Adaptive => widths
                    .windows(2)
                    .map(|w| normal.init([w[1], w[0]], device))
                    .collect(),
                EslAggregator::Heuristic => Vec::new(),
            }
        };
        let bound = 1.0 / 2f64.sqrt();
        let kernels = || -> Vec<Param<Tensor<3>>> {
            match self.aggregator {
                EslAggregator::Adaptive => Vec::new(),
                EslAggregator::Heuristic => (1..self.levels)
                    .map(|_| {
                        Initializer::Uniform {
                            min: -bound,
                            max: bound,
                        }
                        .init([4, 1, 2], device)
                    })
                    .collect(),
            }
        };
        let (region_aggregators, region_kernels) = (aggregators(), kernels());
        let (word_aggregators, word_kernels) = if self.per_modality_levels {
            (aggregators(), kernels())
        } else {
            (Vec::new(), Vec::new())
        };
        let log_sharpness = (self.learned_sharpness && self.aggregator == EslAggregator::Heuristic)
            .then(|| Initializer::Constant { value: 3.0 }.init([1], device));
        let bilinear = widths
            .iter()
            .map(|&d| normal.init([d, d], device))
            .collect();
        let norm_gains = widths
            .iter()
            .map(|&d| Initializer::Ones.init([d, d], device))
            .collect();
        let norm_biases = widths
            .iter()
            .map(|&d| Initializer::Zeros.init([d, d], device))
            .collect();
        let level_weights = Initializer::Constant {
            value: self.initial_level_weight,
        }
        .init([self.levels], device);
        let threshold_position = match self.aggregator {
            EslAggregator::Adaptive => None,
            EslAggregator::Heuristic => Some(Initializer::Zeros.init([1], device)),
        };
        let log_temperature = Initializer::Constant {
            value: self.initial_temperature.ln(),
        }
        .init([1], device);
        Esl {
            aggregators: region_aggregators,
            kernels: region_kernels,
            word_aggregators,
            word_kernels,
            bilinear,
            norm_gains,
            norm_biases,
            level_weights,
            threshold_position,
            log_sharpness,
            log_temperature,
            aggregator: self.aggregator,
        }
    }
}

/// ESL enhanced-correspondence similarity of region sets `Y` `[K, D]` and word sets `X`
/// `[L, D]` (METHODS §3).
///
/// For one pair:
/// 1. Levels `X_0 = X`, `X_j = l2norm(agg_j(X_{j−1}))` for `j = 1..n` (widths `d_j = D/2^j`),
///    likewise `Y_j` from `Y` with the *same* aggregators ([`EslAggregator`]).
/// 2. Bilinear forms `G_j = LayerNorm(E_j) · w_j`, `E_j ∈ R^{d_j×d_j}` learned, where
///    `w_j = c_j` (adaptive) or `w_j = c_j · exp((|c_j| − t)·e^3)` with
///    `t = min_k|c_k| + σ (max_k|c_k| − min_k|c_k|)` (heuristic).
/// 3. Word–region scores `A = Σ_j X_j G_j Y_jᵀ` `[L, K]`.
/// 4. `t2i = mean_w Σ_r A_{w,r} α_{w,r}`, `α = softmax_r(τ·l2norm_w(LeakyReLU_0.1(tanh A)))`;
///    `i2t = mean_r Σ_w A_{w,r} β_{w,r}`, `β = softmax_w(τ·l2norm_r(LeakyReLU_0.1(tanh A)))`;
///    `S = t2i + i2t`, `τ = exp(log_temperature)`.
///
/// Interpretations of METHODS (which follow the published ESL code where METHODS is silent):
/// - "9 levels for D = 512" counts the input features as level 0: 8 aggregations, widths
///   512, 256, …, 2, all 9 of them contributing to `A`.
/// - The aggregators (`P_j` or the kernels) are shared by words and regions, as METHODS
///   writes one `M_j` for both, unless [`EslConfig::per_modality_levels`]: then the regions
///   and the words have their own, as in the published code (the heads table's `esl` and the
///   zoo use that layout; `itm import` checks it against the authors' code).
/// - Heuristic kernels are **learned** (bias-free `Conv1d` weights `[4, 1, 2]` per level,
///   PyTorch default init); "fixed" refers to the fixed stride-2 pairing of dimensions.
/// - Top-2 keeps the two largest *signed* entries of each row of `l2norm_rows(P_j)` (ties at
///   the second value keep all tied entries); the kept values are not renormalised. The
///   selection carries no gradient, the kept values do.
/// - `LayerNorm(E_j)` normalises over all `d_j²` entries of `E_j` (biased variance, epsilon
///   [`ESL_LAYER_NORM_EPSILON`]) and has learned elementwise gain and bias `[d_j, d_j]`.
/// - "Sharpens them with `exp(…)`" multiplies `c_j` by the factor. The sharpness is the
///   constant `e^3` of METHODS, or learned as in the published code
///   ([`EslConfig::learned_sharpness`]: its logarithm, initialised at 3).
/// - `τ = exp(log_temperature)`, with `log_temperature` initialised at `ln(1/0.07)` so that
///   `τ` starts at `1/0.07`.
/// - The input features are used as given (level 0 is not renormalised).
///
/// Padding: padded regions and words are replaced by ones before the levels (so that no norm
/// sees a zero vector; their gradient is zero anyway), their entries of `A` are set to zero,
/// their attention logits to [`MASKED_LOGIT`] and they are left out of the means.
///
/// Memory: the level features are `[n, len, Σ_j d_j]` (`< 2D` wide) per side; all
/// `n_img · n_cap` pairs are scored by one product into `[n_img, n_cap, K, L]` followed by a
/// handful of element-wise tensors of that shape. A caller bounds memory by its block sizes.
#[derive(Module, Debug)]
pub struct Esl {
    /// Adaptive aggregators `P_j` `[d_j, d_{j−1}]`, `j = 1..n` (empty in heuristic mode), of
    /// the regions, and of the words too unless [`Esl::word_aggregators`] has its own.
    pub aggregators: Vec<Param<Tensor<2>>>,
    /// Heuristic `Conv1d` weights `[4, 1, 2]` (out, in, kernel) of `j = 1..n` (empty in
    /// adaptive mode), of the regions, and of the words unless [`Esl::word_kernels`] has its
    /// own.
    pub kernels: Vec<Param<Tensor<3>>>,
    /// The words' own adaptive aggregators (empty when shared or in heuristic mode).
    pub word_aggregators: Vec<Param<Tensor<2>>>,
    /// The words' own heuristic kernels (empty when shared or in adaptive mode).
    pub word_kernels: Vec<Param<Tensor<3>>>,
    /// Bilinear forms `E_j` `[d_j, d_j]`, `j = 0..n`.
    pub bilinear: Vec<Param<Tensor<2>>>,
    /// LayerNorm gains `[d_j, d_j]`, `j = 0..n`.
    pub norm_gains: Vec<Param<Tensor<2>>>,
    /// LayerNorm biases `[d_j, d_j]`, `j = 0..n`.
    pub norm_biases: Vec<Param<Tensor<2>>>,
    /// Level weights `c` `[n]`.
    pub level_weights: Param<Tensor<1>>,
    /// Threshold position `σ` `[1]` of the heuristic sharpening (`None` in adaptive mode).
    /// While all `c_j` are equal (as initialised) `max|c| − min|c| = 0` and `σ` gets no
    /// gradient; it starts learning once the level weights differ.
    pub threshold_position: Option<Param<Tensor<1>>>,
    /// `log λ` `[1]` of a learned heuristic sharpening (`None`: the constant `e^3`).
    pub log_sharpness: Option<Param<Tensor<1>>>,
    /// `log τ` `[1]`.
    pub log_temperature: Param<Tensor<1>>,
    /// Aggregator of the levels.
    #[module(skip)]
    pub aggregator: EslAggregator,
}

/// Keeps the [`ESL_ADAPTIVE_KEEP`] largest entries of each row of `l2norm_rows(p)` and zeroes
/// the others: `p` `[d_j, d_{j−1}]` → `M_j` of the same shape.
pub fn esl_adaptive_matrix(p: Tensor<2>) -> Tensor<2> {
    let m = l2_normalize(p);
    let [rows, cols] = m.dims();
    let keep = cols.min(ESL_ADAPTIVE_KEEP);
    let kth = m
        .clone()
        .detach()
        .sort_descending(1)
        .narrow(1, keep - 1, 1)
        .expand([rows, cols]);
    let dropped = m.clone().detach().lower(kth);
    m.mask_fill(dropped, 0.0)
}

impl Esl {
    /// Number of levels `n`.
    pub fn levels(&self) -> usize {
        self.bilinear.len()
    }

    /// The effective level weights `w_j` `[n]`: `c` (adaptive) or the sharpened
    /// `c_j · exp((|c_j| − t)·e^3)` (heuristic).
    pub fn effective_level_weights(&self) -> Tensor<1> {
        let c = self.level_weights.val();
        match &self.threshold_position {
            None => c,
            Some(sigma) => {
                let magnitude = c.clone().abs();
                let low = magnitude.clone().min();
                let high = magnitude.clone().max();
                let threshold = low.clone() + sigma.val() * (high - low);
                let sharpened = magnitude - threshold;
                let sharpened = match &self.log_sharpness {
                    Some(log) => sharpened * log.val().exp(),
                    None => sharpened * ESL_SHARPENING,
                };
                c * sharpened.exp()
            }
        }
    }

    /// The bilinear forms `G_j = LayerNorm(E_j) · w_j`, `[d_j, d_j]` for `j = 0..n`.
    pub fn bilinear_forms(&self) -> Vec<Tensor<2>> {
        let weights = self.effective_level_weights();
        self.bilinear
            .iter()
            .zip(self.norm_gains.iter().zip(&self.norm_biases))
            .enumerate()
            .map(|(j, (e, (gain, bias)))| {
                let e = e.val();
                let mean = e.clone().mean().reshape([1, 1]);
                let centred = e - mean;
                let variance = centred.clone().square().mean().reshape([1, 1]);
                let normed = centred / (variance + ESL_LAYER_NORM_EPSILON).sqrt();
                (normed * gain.val() + bias.val()) * weights.clone().narrow(0, j, 1).reshape([1, 1])
            })
            .collect()
    }

    /// Level `j` from level `j − 1` (before the l2 norm) of the words (`words`) or the
    /// regions: `[n, len, d_{j−1}]` → `[n, len, d_j]`.
    fn aggregate(&self, j: usize, x: Tensor<3>, words: bool) -> Tensor<3> {
        let (aggregators, kernels) = if words && !self.word_aggregators.is_empty() {
            (&self.word_aggregators, &self.kernels)
        } else if words && !self.word_kernels.is_empty() {
            (&self.aggregators, &self.word_kernels)
        } else {
            (&self.aggregators, &self.kernels)
        };
        match self.aggregator {
            EslAggregator::Adaptive => {
                let m = esl_adaptive_matrix(aggregators[j - 1].val());
                x.matmul(m.transpose().unsqueeze_dim::<3>(0))
            }
            EslAggregator::Heuristic => {
                let [n, len, d] = x.dims();
                // Σ_o w_{o,0,k}: the 4 output channels summed → taps [2].
                let taps = kernels[j - 1].val().sum_dim(0).reshape([1, 1, 1, 2]);
                (x.reshape([n, len, d / 2, 2]) * taps)
                    .sum_dim(3)
                    .reshape([n, len, d / 2])
            }
        }
    }

    /// The levels of one side, concatenated along the features: `x` `[n, len, D]` with its
    /// lengths → `[n, len, Σ_j d_j]`, `[X_0 | X_1 | … | X_{n−1}]`. Padding is set to ones
    /// before the levels and after every aggregation, so that no l2 norm sees a zero row.
    fn levels_of(&self, x: Tensor<3>, lengths: &[usize], words: bool) -> Vec<Tensor<3>> {
        let mut current = fill_padding(x, lengths, 1.0);
        let mut out = vec![current.clone()];
        for j in 1..self.levels() {
            current = l2_normalize(fill_padding(
                self.aggregate(j, current, words),
                lengths,
                1.0,
            ));
            out.push(current.clone());
        }
        out
    }

    /// Word–region scores `A` of every pair, laid out `[n_img, n_cap, K, L]` (`A_{r,w}`), with
    /// zeros at padded regions and words.
    pub fn correspondence(
        &self,
        regions: Tensor<3>,
        region_counts: &[usize],
        words: Tensor<3>,
        word_lengths: &[usize],
    ) -> Tensor<4> {
        let dims = check_fine_grained_inputs(&regions, region_counts, &words, word_lengths);
        assert_eq!(
            dims.dim,
            self.bilinear[0].dims()[0],
            "ESL: feature width differs from the configured one"
        );
        let masks = PairMasks::new(dims, region_counts, word_lengths, &regions.device());
        let forms = self.bilinear_forms();
        let word_levels: Vec<Tensor<3>> = self
            .levels_of(words, word_lengths, true)
            .into_iter()
            .zip(forms)
            .map(|(x, g)| x.matmul(g.unsqueeze_dim::<3>(0)))
            .collect();
        let region_levels = self.levels_of(regions, region_counts, false);
        let words = Tensor::cat(word_levels, 2); // [n_cap, L, Σd]
        let regions = Tensor::cat(region_levels, 2); // [n_img, K, Σd]
        pair_products(regions, words).mask_fill(masks.regions.bool_or(masks.words), 0.0)
    }

    /// One direction of the score, for all pairs.
    ///
    /// Axis 2 is the *context* (attended over), axis 3 the *query* (averaged):
    /// `mean_q Σ_c A_{c,q} softmax_c(τ·l2norm_q(LeakyReLU(tanh A)))`.
    /// - `a`: `[n_img, n_cap, C, Q]`, zero at padding
    /// - `context_padding`, `query_padding`: `[n_img, n_cap, C, Q]`, `true` at padding
    /// - returns `[n_img, n_cap]`
    fn directional(
        &self,
        a: Tensor<4>,
        context_padding: Tensor<4, Bool>,
        query_padding: Tensor<4, Bool>,
    ) -> Tensor<2> {
        let [n_img, n_cap, _, _] = a.dims();
        // Padded queries hold A = 0 (→ 0 here) and add nothing to the norm; rows of padded
        // context positions are set to 1 (a zero row has a NaN norm gradient) and masked out of
        // the softmax.
        let scores =
            leaky_relu(tanh(a.clone()), ESL_LEAKY_SLOPE).mask_fill(context_padding.clone(), 1.0);
        let temperature = self.log_temperature.val().exp().reshape([1, 1, 1, 1]);
        let logits = (l2_normalize(scores) * temperature).mask_fill(context_padding, MASKED_LOGIT);
        let attention = softmax(logits, 2);
        let per_query = (a * attention).sum_dim(2); // [n_img, n_cap, 1, Q]
        masked_mean(per_query, query_padding.narrow(2, 0, 1), 3).reshape([n_img, n_cap])
    }
}

impl FineGrainedSimilarity for Esl {
    /// See [`FineGrainedSimilarity::similarity`]: `[n_img, K, D]` × `[n_cap, L, D]` →
    /// `[n_img, n_cap]`, `S = t2i + i2t`.
    fn similarity(
        &self,
        regions: Tensor<3>,
        region_counts: &[usize],
        words: Tensor<3>,
        word_lengths: &[usize],
    ) -> Tensor<2> {
        let dims = check_fine_grained_inputs(&regions, region_counts, &words, word_lengths);
        let masks = PairMasks::new(dims, region_counts, word_lengths, &regions.device());
        let a = self.correspondence(regions, region_counts, words, word_lengths);
        // t2i: words (axis 3) attend over regions (axis 2).
        let t2i = self.directional(a.clone(), masks.regions.clone(), masks.words.clone());
        // i2t: regions attend over words.
        let i2t = self.directional(
            a.swap_dims(2, 3),
            masks.words.swap_dims(2, 3),
            masks.regions.swap_dims(2, 3),
        );
        t2i + i2t
    }

    /// Measured on `flex`: 4.8–5.8 values per region–word slot for `D` = 128…1,024; 7 with a
    /// margin.
    fn working_values_per_pair(&self, regions: usize, words: usize, _dim: usize) -> usize {
        7 * regions * words
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::similarity::fine_grained::test_support::*;
    use burn::tensor::{Distribution, Gradients, TensorData};

    /// Both aggregators at `D = 8` with 3 levels (widths 8, 4, 2); the level weights are made
    /// distinct and `σ` non-zero so that every parameter matters.
    fn variants(device: &Device) -> Vec<(String, Esl)> {
        [EslAggregator::Adaptive, EslAggregator::Heuristic]
            .into_iter()
            .map(|mode| {
                device.seed(5);
                let mut esl = EslConfig::new(8)
                    .with_levels(3)
                    .with_aggregator(mode)
                    .with_initial_temperature(5.0)
                    .init(device);
                esl.level_weights =
                    Param::from_tensor(Tensor::from_floats([0.15, -0.1, 0.05], device));
                if esl.threshold_position.is_some() {
                    esl.threshold_position =
                        Some(Param::from_tensor(Tensor::from_floats([0.3], device)));
                }
                (format!("ESL {mode:?}"), esl)
            })
            .collect()
    }

    #[test]
    fn config_builds_the_published_shapes() {
        let device = Device::default();
        let config = EslConfig::new(512);
        assert_eq!(
            config.level_widths(),
            vec![512, 256, 128, 64, 32, 16, 8, 4, 2]
        );
        let esl = config.init(&device);
        assert_eq!(esl.levels(), 9);
        assert_eq!(esl.aggregators.len(), 8);
        assert_eq!(esl.aggregators[0].dims(), [256, 512]);
        assert!(esl.kernels.is_empty() && esl.threshold_position.is_none());
        let c = esl
            .level_weights
            .val()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert!(c.iter().all(|&v| (v - 0.1).abs() < 1e-7), "{c:?}");
        let tau = esl.log_temperature.val().exp().into_scalar::<f32>();
        assert!((tau - 1.0 / 0.07).abs() < 1e-4, "{tau}");
        let heuristic = EslConfig::new(16)
            .with_levels(3)
            .with_aggregator(EslAggregator::Heuristic)
            .init(&device);
        assert!(heuristic.aggregators.is_empty());
        assert_eq!(heuristic.kernels.len(), 2);
        assert_eq!(heuristic.kernels[0].dims(), [4, 1, 2]);
        let sigma = heuristic.threshold_position.as_ref().unwrap().val();
        assert_eq!(sigma.into_scalar::<f32>(), 0.0);
    }

    #[test]
    #[should_panic(expected = "must divide")]
    fn config_rejects_widths_that_do_not_halve() {
        EslConfig::new(12).with_levels(4).init(&Device::default());
    }

    #[test]
    fn adaptive_matrix_keeps_the_two_largest_entries_per_row() {
        let device = Device::default();
        let p = Tensor::<2>::from_floats([[1.0, -3.0, 2.0, 0.5], [0.0, 0.0, -1.0, 4.0]], &device);
        let m = esl_adaptive_matrix(p)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let n0 = (1.0f32 + 9.0 + 4.0 + 0.25).sqrt();
        let n1 = 17f32.sqrt();
        let expected = [1.0 / n0, 0.0, 2.0 / n0, 0.0, 0.0, 0.0, 0.0, 4.0 / n1];
        // Row 1: the second largest value 0 is tied; both zeros are kept (and are zero).
        assert_all_close(&m, &expected, 1e-6, "adaptive M");
    }

    #[test]
    fn heuristic_sharpening_follows_the_formula() {
        let device = Device::default();
        let (_, esl) = variants(&device).pop().unwrap();
        let w = esl
            .effective_level_weights()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        // |c| = [0.15, 0.1, 0.05]: t = 0.05 + 0.3·0.1 = 0.08.
        let e3 = 3f32.exp();
        let expected: Vec<f32> = [0.15f32, -0.1, 0.05]
            .iter()
            .map(|&c| c * ((c.abs() - 0.08) * e3).exp())
            .collect();
        assert_all_close(&w, &expected, 1e-6, "sharpened weights");
    }

    #[test]
    fn padding_does_not_change_any_score() {
        for (what, esl) in variants(&Device::default()) {
            assert_padding_invariant(&esl, &what);
        }
    }

    #[test]
    fn blocks_concatenate_to_the_full_matrix() {
        for (what, esl) in variants(&Device::default()) {
            assert_block_consistent(&esl, &what);
        }
    }

    #[test]
    fn input_gradients_are_finite_and_zero_at_padding() {
        for (what, esl) in variants(&Device::default().autodiff()) {
            assert_gradients_clean(&esl, &what);
        }
    }

    fn assert_param_gradient<const D: usize>(p: &Param<Tensor<D>>, grads: &Gradients, what: &str) {
        let g = p
            .val()
            .grad(grads)
            .unwrap_or_else(|| panic!("{what}: no gradient"))
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert!(g.iter().all(|v| v.is_finite()), "{what}: {g:?}");
        assert!(g.iter().any(|&v| v != 0.0), "{what}: all zero");
    }

    #[test]
    fn every_learned_parameter_gets_a_finite_non_zero_gradient() {
        let device = Device::default().autodiff();
        for (what, esl) in variants(&device) {
            let (regions, words) = inputs(&device, 17);
            let scores = esl.similarity(regions, &REGION_COUNTS, words, &WORD_LENGTHS);
            let grads = scores.sum().backward();
            let lists = [
                ("P", &esl.aggregators),
                ("E", &esl.bilinear),
                ("gain", &esl.norm_gains),
                ("bias", &esl.norm_biases),
            ];
            for (name, list) in lists {
                for (j, p) in list.iter().enumerate() {
                    assert_param_gradient(p, &grads, &format!("{what}: {name}[{j}]"));
                }
            }
            for (j, p) in esl.kernels.iter().enumerate() {
                assert_param_gradient(p, &grads, &format!("{what}: kernel[{j}]"));
            }
            assert_param_gradient(&esl.level_weights, &grads, &format!("{what}: c"));
            assert_param_gradient(&esl.log_temperature, &grads, &format!("{what}: τ"));
            if let Some(sigma) = &esl.threshold_position {
                assert_param_gradient(sigma, &grads, &format!("{what}: σ"));
            }
        }
    }

    /// The published layout (aggregators per modality, learned sharpness) scores as the shared
    /// one when the words' aggregators equal the regions' and the sharpness is at its initial
    /// `e^3`; different word aggregators change the scores.
    #[test]
    fn per_modality_levels_reduce_to_shared_ones() {
        let device = Device::default();
        for aggregator in [EslAggregator::Adaptive, EslAggregator::Heuristic] {
            device.seed(11);
            let config = EslConfig::new(8)
                .with_levels(3)
                .with_aggregator(aggregator)
                .with_initial_level_weight(0.3);
            let shared = config.init(&device);
            let mut own = config
                .clone()
                .with_per_modality_levels(true)
                .with_learned_sharpness(true)
                .init(&device);
            assert_eq!(
                own.log_sharpness.is_some(),
                aggregator == EslAggregator::Heuristic
            );
            let (regions, words) = (
                Tensor::<3>::random([2, 3, 8], Distribution::Normal(0.0, 1.0), &device),
                Tensor::<3>::random([3, 4, 8], Distribution::Normal(0.0, 1.0), &device),
            );
            let (counts, lengths) = ([3, 2], [4, 2, 3]);
            own.aggregators = shared.aggregators.clone();
            own.kernels = shared.kernels.clone();
            own.bilinear = shared.bilinear.clone();
            own.norm_gains = shared.norm_gains.clone();
            own.norm_biases = shared.norm_biases.clone();
            own.level_weights = shared.level_weights.clone();
            own.threshold_position = shared.threshold_position.clone();
            own.log_temperature = shared.log_temperature.clone();
            let different = own.similarity(regions.clone(), &counts, words.clone(), &lengths);
            own.word_aggregators = shared.aggregators.clone();
            own.word_kernels = shared.kernels.clone();
            let expected = shared.similarity(regions.clone(), &counts, words.clone(), &lengths);
            own.similarity(regions, &counts, words, &lengths)
                .into_data()
                .assert_approx_eq::<f32>(&expected.clone().into_data(), Default::default());
            let gap = (different - expected).abs().max().into_scalar::<f32>();
            assert!(
                gap > 1e-4,
                "{aggregator:?}: word aggregators unused ({gap})"
            );
        }
    }

    #[test]
    fn one_level_with_identity_form_and_one_region_is_closed_form() {
        // One level, LayerNorm gain 0 and bias I: G = c·I, so A_w = c⟨x_w, R⟩. With one region,
        // t2i attends fully to it: t2i = mean_w A_w. i2t normalises each entry over the single
        // region (→ sign(A_w)) and attends over words: β_w = softmax_w(τ·sign(A_w)),
        // i2t = Σ_w β_w A_w.
        let device = Device::default();
        let region = [1.0f32, -0.5, 0.25, 2.0];
        let words = [
            [0.5f32, 0.0, 1.0, 0.2],
            [-1.0, 1.0, 0.5, -0.3],
            [0.3, -0.2, 0.0, 0.4],
        ];
        for mode in [EslAggregator::Adaptive, EslAggregator::Heuristic] {
            let mut esl = EslConfig::new(4)
                .with_levels(1)
                .with_aggregator(mode)
                .with_initial_temperature(3.0)
                .init(&device);
            esl.norm_gains = vec![Param::from_tensor(Tensor::zeros([4, 4], &device))];
            esl.norm_biases = vec![Param::from_tensor(Tensor::eye(4, &device))];
            let c = 0.1f32;
            let a: Vec<f32> = words
                .iter()
                .map(|w| c * w.iter().zip(&region).map(|(x, y)| x * y).sum::<f32>())
                .collect();
            let t2i = a.iter().sum::<f32>() / 3.0;
            let logits: Vec<f32> = a.iter().map(|v| 3.0 * v.signum()).collect();
            let total: f32 = logits.iter().map(|v| v.exp()).sum();
            let i2t: f32 = a
                .iter()
                .zip(&logits)
                .map(|(v, l)| v * l.exp() / total)
                .sum();
            let s = host(esl.similarity(
                Tensor::<3>::from_data(TensorData::new(region.to_vec(), [1, 1, 4]), &device),
                &[1],
                Tensor::<3>::from_data(TensorData::new(words.concat(), [1, 3, 4]), &device),
                &[3],
            ));
            assert_all_close(&s, &[t2i + i2t], 1e-5, &format!("{mode:?} closed form"));
        }
    }
}
