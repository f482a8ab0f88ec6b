//! X-Dim dimension dependency (METHODS §3): a learned, sparsified dependency matrix between
//! feature dimensions re-weights the word–region products and mixes the dimensions of the
//! word-conditioned attended features before they are scored.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::activation::leaky_relu;
use burn::tensor::{Device, Tensor};

use super::fine_grained::{
    FineGrainedSimilarity, PairMasks, check_fine_grained_inputs, pair_products,
};
use super::sharded::FeatureSets;
use super::xdim_host::{XDimWeights, xdim_scores};
use crate::masking::{MASKED_LOGIT, fill_padding, l2_normalize, masked_mean, padding_mask};
use crate::ops::{exp, sigmoid, softmax, tanh};

/// Negative slope of the LeakyReLU applied to the attention scores.
pub const XDIM_LEAKY_SLOPE: f64 = 0.1;

/// Upper clamp of the mask argument `e^τ·(W − t)` before `tanh(exp(·))`.
///
/// `tanh(exp(15)) = 1` exactly in `f32` (and `f64`) and its derivative is below `1e-300`, so the
/// clamp changes neither values nor gradients; without it `exp` overflows to `∞` once
/// `e^τ·(W − t) > 88` (a learned `τ` above ≈ 4.5) and the backward pass computes `0·∞ = NaN`.
pub const XDIM_MASK_ARGUMENT_MAX: f64 = 15.0;

/// Floor of the row variance of `W` under the square root of the standard deviation: keeps the
/// gradient finite for a constant row (`std = 0`), far below any variance of a trained `E`.
pub const XDIM_VARIANCE_FLOOR: f64 = 1e-24;

/// Configuration of an [`XDim`] similarity.
#[derive(Config, Debug)]
pub struct XDimConfig {
    /// Feature width `D` of regions and words (published 1024).
    pub dim: usize,
    /// Initial threshold scale `s` (every row; METHODS 2.5).
    #[config(default = 2.5)]
    pub initial_threshold_scale: f64,
    /// Initial log mask sharpness `τ` (METHODS 4, sharpness `e^4`).
    #[config(default = 4.0)]
    pub initial_log_sharpness: f64,
    /// Initial attention temperature `e^{temp}` (METHODS gives none; we take `1/0.07`, the
    /// temperature ESL starts from).
    #[config(default = 14.285714285714286)]
    pub initial_temperature: f64,
    /// Standard deviation of the `N(0, σ²)` initialisation of `E`.
    #[config(default = 1.0)]
    pub dependency_init_std: f64,
}

impl XDimConfig {
    /// Builds the similarity on `device`: `E ~ N(0, dependency_init_std²)`, `s` =
    /// [`Self::initial_threshold_scale`] in every row, `τ` = [`Self::initial_log_sharpness`],
    /// `temp = ln(initial_temperature)`.
    pub fn init(&self, device: &Device) -> XDim {
        assert!(self.dim >= 2, "X-Dim needs at least two dimensions");
        assert!(
            self.initial_temperature > 0.0,
            "X-Dim temperature must be positive"
        );
        XDim {
            dependency: Initializer::Normal {
                mean: 0.0,
                std: self.dependency_init_std,
            }
            .init([self.dim, self.dim], device),
            threshold_scale: Initializer::Constant {
                value: self.initial_threshold_scale,
            }
            .init([self.dim], device),
            log_sharpness: Initializer::Constant {
                value: self.initial_log_sharpness,
            }
            .init([1], device),
            log_temperature: Initializer::Constant {
                value: self.initial_temperature.ln(),
            }
            .init([1], device),
        }
    }
}

/// X-Dim similarity of region sets `R` `[K, D]` and word sets `[L, D]` (METHODS §3).
///
/// Dimension dependency (independent of the inputs):
/// `W = sigmoid(E)` `[D, D]`; per row `i`, `t_i = mean_d W_{i,d} + s_i · std_d W_{i,d}`;
/// `M = tanh(exp(e^τ (W − t)))`; `W' = l2norm_rows(M ⊙ W)`; `g_d = Σ_i W'_{i,d}`.
///
/// For one pair, with `x_w` the feature of word `w` (METHODS' `W_w`):
/// `A_{w,r} = tanh(Σ_d x_{w,d} g_d R_{r,d})`;
/// `α_{·,w} = softmax_r(e^{temp} · l2norm_w(LeakyReLU_0.1(A))_{·,w})`;
/// `c_w = l2norm(Σ_r α_{r,w} R_r)`; `z_w = (c_w ⊙ x_w) W'ᵀ` `[D]`;
/// `S = mean_w Σ_i l2norm(z_w)_i`.
///
/// Reading of METHODS:
/// - `W_w` in the score is the word feature (SCAN's notation `W` for words), not a row of
///   `sigmoid(E)`; `(c_w ⊙ x_w) W'ᵀ` is the row vector `c_w ⊙ x_w` times `W'ᵀ`, i.e.
///   `z_{w,i} = Σ_d W'_{i,d} c_{w,d} x_{w,d}`.
/// - `s ⊙ std(W)` is element-wise: `s` is a learned vector `[D]`, one scale per row. `std` is
///   the unbiased (`n − 1`) standard deviation along the row, PyTorch's default.
/// - The mask `tanh(exp(u))` is a soft step in `(0, 1)` that is `tanh(1) ≈ 0.76`, not ½, at the
///   threshold (`u = 0`), tends to 0 far below it and to 1 above it; it is never exactly zero,
///   so every entry of `W'` is positive. `τ` is a learned log-sharpness (`e^τ = e^4 ≈ 54.6` at
///   init); the argument is clamped at [`XDIM_MASK_ARGUMENT_MAX`], which changes nothing
///   numerically but keeps the gradient finite.
/// - `temp` is learned (`e^{temp}` the softmax temperature); METHODS gives no initial value,
///   the default is `1/0.07` as in ESL ([`XDimConfig::initial_temperature`]).
/// - The features are used as given (not renormalised); the l2 norms use `x/(‖x‖ + 1e-8)`.
///
/// Padding: padded regions and words are zeroed (regions) or set to ones (words, so that the
/// per-word vectors of padded words are non-zero and their norms have finite gradients); their
/// entries of `A` are zero, padded regions get [`MASKED_LOGIT`] in the softmax and padded words
/// are left out of the mean. No score depends on them and their gradient is zero.
///
/// Memory: the attention is `[n_img, n_cap, K, L]`, but `c_w` depends on the pair *and* the
/// word, and `l2norm(z_w)` needs the whole `D`-vector `z_w = W' (c_w ⊙ x_w)` (its numerator
/// `Σ_i z_{w,i} = g·(c_w ⊙ x_w)` could be formed from `g` alone, its norm cannot without a
/// `[.., L, K, K]` quadratic form, which is no smaller for region features). So four tensors of
/// `[n_img, n_cap, L, D]` are materialised (`Σ_r α R_r`, `c`, `c ⊙ x`, `z`):
/// `4 · n_img · n_cap · L · D · 4` bytes per block in the forward pass, e.g. 512 MiB for a
/// 32 × 32 block with `L = 32`, `D = 1024`, and about as much again kept for the backward pass.
/// A caller bounds this by the block sizes it passes in.
#[derive(Module, Debug)]
pub struct XDim {
    /// Dimension dependency logits `E` `[D, D]`.
    pub dependency: Param<Tensor<2>>,
    /// Threshold scales `s` `[D]`, one per row of `W`.
    pub threshold_scale: Param<Tensor<1>>,
    /// Log mask sharpness `τ` `[1]`.
    pub log_sharpness: Param<Tensor<1>>,
    /// Log attention temperature `temp` `[1]`.
    pub log_temperature: Param<Tensor<1>>,
}

impl XDim {
    /// Feature width `D`.
    pub fn dim(&self) -> usize {
        self.dependency.dims()[0]
    }

    /// The soft mask `M = tanh(exp(e^τ (W − t)))` `[D, D]` together with `W = sigmoid(E)`.
    pub fn mask(&self) -> (Tensor<2>, Tensor<2>) {
        let d = self.dim();
        let w = sigmoid(self.dependency.val());
        let mean = w.clone().mean_dim(1); // [D, 1]
        let variance = (w.clone() - mean.clone()).square().sum_dim(1) / (d as f64 - 1.0);
        let std = variance.clamp_min(XDIM_VARIANCE_FLOOR).sqrt();
        let threshold = mean + self.threshold_scale.val().reshape([d, 1]) * std;
        let sharpness = self.log_sharpness.val().exp().reshape([1, 1]);
        let argument = ((w.clone() - threshold) * sharpness).clamp_max(XDIM_MASK_ARGUMENT_MAX);
        (tanh(exp(argument)), w)
    }

    /// The sparsified dependency `W' = l2norm_rows(M ⊙ W)` `[D, D]`.
    pub fn dependency_matrix(&self) -> Tensor<2> {
        let (mask, w) = self.mask();
        l2_normalize(mask * w)
    }
}

impl FineGrainedSimilarity for XDim {
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
        assert_eq!(
            dims.dim,
            self.dim(),
            "X-Dim: feature width differs from the configured one"
        );
        let (n_img, n_cap, l, d) = (dims.n_img, dims.n_cap, dims.words, dims.dim);
        let device = regions.device();
        let masks = PairMasks::new(dims, region_counts, word_lengths, &device);
        let dependency = self.dependency_matrix(); // W' [D, D]
        let g = dependency.clone().sum_dim(0).reshape([1, 1, d]); // column sums [D]

        let k = dims.regions;
        let regions = fill_padding(regions, region_counts, 0.0); // [n_img, K, D]
        let words = fill_padding(words, word_lengths, 1.0); // [n_cap, L, D]

        // A_{r,w} = tanh(Σ_d R_{r,d} g_d x_{w,d}): [n_img, n_cap, K, L], zero at padding.
        let weighted = regions.clone() * g;
        let a = tanh(pair_products(weighted, words.clone()))
            .mask_fill(masks.regions.clone().bool_or(masks.words), 0.0);

        // α: l2norm over words (axis 3), softmax over regions (axis 2). Rows of padded regions
        // are set to 1 before the norm and masked out of the softmax.
        let scores = leaky_relu(a, XDIM_LEAKY_SLOPE).mask_fill(masks.regions.clone(), 1.0);
        let temperature = self.log_temperature.val().exp().reshape([1, 1, 1, 1]);
        let logits = (l2_normalize(scores) * temperature)
            .swap_dims(2, 3)
            .mask_fill(masks.regions.swap_dims(2, 3), MASKED_LOGIT); // [n_img, n_cap, L, K]
        let attention = softmax(logits, 3);

        // c_w = l2norm(Σ_r α_{r,w} R_r): [n_img, n_cap, L, D]. Padded words attend over the
        // valid regions like any word; their vectors are never used.
        // One product per image over all its captions' words (our design: n_img GEMMs of
        // [n_cap·L, K] × [K, D] instead of n_img·n_cap small [L, K] × [K, D] ones).
        let attended = attention
            .reshape([n_img, n_cap * l, k])
            .matmul(regions)
            .reshape([n_img, n_cap, l, d]);
        let attended = l2_normalize(attended);
        // z_w = (c_w ⊙ x_w) W'ᵀ, scored as Σ_i l2norm(z_w)_i: one GEMM over every word of every
        // pair, [n_img·n_cap·L, D] × [D, D].
        let z = (attended * words.unsqueeze_dim::<4>(0))
            .reshape([n_img * n_cap * l, d])
            .matmul(dependency.transpose())
            .reshape([n_img, n_cap, l, d]);
        let word_padding = padding_mask(word_lengths, l, &device)
            .reshape([1, n_cap, l, 1])
            .expand([n_img, n_cap, l, 1]);
        let per_word = l2_normalize(z).sum_dim(3); // [n_img, n_cap, L, 1]
        masked_mean(per_word, word_padding, 2).reshape([n_img, n_cap])
    }

    /// Measured on `flex`: about `2.1 · L · D` values per pair (the attended vectors `c_w`,
    /// their products with the words and the re-projection are `[L, D]` per pair), the
    /// `[K, L]` tensors being small beside them; `3 · L · D + 2 · K · L` with a margin.
    fn working_values_per_pair(&self, regions: usize, words: usize, dim: usize) -> usize {
        3 * words * dim + 2 * regions * words
    }

    /// [`xdim_scores`]: per image and group of captions, three GEMMs and the element-wise
    /// steps on the valid rows, tasks in parallel.
    fn host_scores(
        &self,
        images: FeatureSets,
        captions: FeatureSets,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Option<Vec<f32>> {
        assert_eq!(
            images.dim,
            self.dim(),
            "X-Dim: feature width differs from the configured one"
        );
        let dependency = self.dependency_matrix();
        let host = |t: Tensor<2>| {
            t.into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("an f32 tensor converts to f32 values")
        };
        let weights = XDimWeights {
            column_sums: host(dependency.clone().sum_dim(0)),
            dependency: host(dependency),
            temperature: self.log_temperature.val().exp().into_scalar::<f32>(),
        };
        Some(xdim_scores(&weights, images, captions, progress))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::similarity::fine_grained::test_support::*;
    use burn::tensor::TensorData;

    /// `D = 8` with a softer mask than the published init (`s = 0.5`, `τ = 1.5`), so that the
    /// mask is not saturated and every parameter matters.
    fn xdim(device: &Device) -> XDim {
        device.seed(9);
        XDimConfig::new(8)
            .with_initial_threshold_scale(0.5)
            .with_initial_log_sharpness(1.5)
            .with_initial_temperature(5.0)
            .init(device)
    }

    #[test]
    fn config_sets_the_published_initial_values() {
        let device = Device::default();
        let x = XDimConfig::new(16).init(&device);
        assert_eq!(x.dependency.dims(), [16, 16]);
        let s = x
            .threshold_scale
            .val()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!(s, vec![2.5; 16]);
        assert_eq!(x.log_sharpness.val().into_scalar::<f32>(), 4.0);
        let temp = x.log_temperature.val().exp().into_scalar::<f32>();
        assert!((temp - 1.0 / 0.07).abs() < 1e-4, "{temp}");
    }

    #[test]
    fn dependency_rows_are_unit_and_mask_is_a_soft_step() {
        let device = Device::default();
        let x = xdim(&device);
        let (mask, w) = x.mask();
        let mask = mask.into_data().try_into_vec::<f32>().unwrap();
        assert!(mask.iter().all(|&m| m > 0.0 && m <= 1.0), "{mask:?}");
        let w = w.into_data().try_into_vec::<f32>().unwrap();
        // Per row: t = mean + 0.5·std (unbiased); M = tanh(exp(e^1.5 (W − t))).
        for row in 0..8 {
            let r = &w[row * 8..row * 8 + 8];
            let mean = r.iter().sum::<f32>() / 8.0;
            let std = (r.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 7.0).sqrt();
            for (d, &v) in r.iter().enumerate() {
                let expected = ((1.5f32.exp() * (v - mean - 0.5 * std)).exp()).tanh();
                assert!((mask[row * 8 + d] - expected).abs() < 1e-5, "M[{row}][{d}]");
            }
        }
        let dep = x
            .dependency_matrix()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        for row in dep.chunks(8) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "{row:?}");
        }
    }

    #[test]
    fn padding_does_not_change_any_score() {
        assert_padding_invariant(&xdim(&Device::default()), "X-Dim");
    }

    #[test]
    fn blocks_concatenate_to_the_full_matrix() {
        assert_block_consistent(&xdim(&Device::default()), "X-Dim");
    }

    #[test]
    fn input_gradients_are_finite_and_zero_at_padding() {
        assert_gradients_clean(&xdim(&Device::default().autodiff()), "X-Dim");
    }

    #[test]
    fn every_learned_parameter_gets_a_finite_non_zero_gradient() {
        let device = Device::default().autodiff();
        let x = xdim(&device);
        let (regions, words) = inputs(&device, 19);
        let grads = x
            .similarity(regions, &REGION_COUNTS, words, &WORD_LENGTHS)
            .sum()
            .backward();
        let check = |g: Option<Tensor<2>>, what: &str| {
            let g = g
                .unwrap_or_else(|| panic!("{what}: no gradient"))
                .into_data()
                .try_into_vec::<f32>()
                .unwrap();
            assert!(g.iter().all(|v| v.is_finite()), "{what}: {g:?}");
            assert!(g.iter().any(|&v| v != 0.0), "{what}: all zero");
        };
        check(x.dependency.val().grad(&grads), "E");
        for (p, what) in [
            (&x.threshold_scale, "s"),
            (&x.log_sharpness, "τ"),
            (&x.log_temperature, "temp"),
        ] {
            check(p.val().grad(&grads).map(|g| g.unsqueeze()), what);
        }
    }

    #[test]
    fn saturated_dependency_gives_the_sign_closed_form() {
        // E = 20 everywhere: W = 1 in f32, std = 0, t = 1, M = tanh(1), W' = 1/√D everywhere,
        // g = √D. With one region α = 1, c_w = R/‖R‖, z_w = (Σ_d c_d x_{w,d}) / √D · 1, so
        // Σ_i l2norm(z_w)_i = √D · sign(⟨R, x_w⟩) and S = √D · mean_w sign(⟨R, x_w⟩).
        let device = Device::default();
        let mut x = XDimConfig::new(8).init(&device);
        x.dependency = Param::from_tensor(Tensor::full([8, 8], 20.0, &device));
        let region: Vec<f32> = (0..8).map(|d| d as f32 * 0.25 - 0.8).collect();
        let words: Vec<Vec<f32>> = (0..4)
            .map(|w| (0..8).map(|d| ((w * 8 + d) as f32 * 1.7).sin()).collect())
            .collect();
        let signs: Vec<f32> = words
            .iter()
            .map(|w| {
                w.iter()
                    .zip(&region)
                    .map(|(a, b)| a * b)
                    .sum::<f32>()
                    .signum()
            })
            .collect();
        let expected = 8f32.sqrt() * signs.iter().sum::<f32>() / 4.0;
        let s = host(x.similarity(
            Tensor::<3>::from_data(TensorData::new(region, [1, 1, 8]), &device),
            &[1],
            Tensor::<3>::from_data(TensorData::new(words.concat(), [1, 4, 8]), &device),
            &[4],
        ));
        assert_all_close(&s, &[expected], 1e-4, "saturated X-Dim");
        // Not a degenerate case: both signs occur.
        assert!(signs.contains(&1.0) && signs.contains(&-1.0), "{signs:?}");
    }
}
