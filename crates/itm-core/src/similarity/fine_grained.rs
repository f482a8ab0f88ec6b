//! Common interface of the fine-grained (region–word) similarities of METHODS §3: SCAN
//! ([`super::Scan`]) and CHAN ([`super::Chan`]).
//!
//! A fine-grained similarity scores every image of a block against every caption of a block
//! from their *sets* of local features. The same call serves a `B × B` training batch and an
//! arbitrary `n_img × n_cap` block of a test set (a sharded evaluation driver tiles the full
//! matrix with such blocks); the implementations are batched tensor programs over all
//! `n_img · n_cap` pairs at once, without host-side loops over captions or images.

use burn::tensor::{Bool, Device, Tensor};

use super::sharded::FeatureSets;
use crate::masking::{check_lengths, padding_mask};

/// A similarity between sets of region features and sets of word features.
///
/// Implementations have no learned parameters of their own here; they only read the features.
/// Padding (regions past an image's count, words past a caption's length) must not influence
/// any score, and gradients with respect to padding are zero.
pub trait FineGrainedSimilarity {
    /// Scores every image against every caption.
    ///
    /// - `regions`: `[n_img, K, D]`; image `i` owns the valid prefix `regions[i, ..region_counts[i]]`
    /// - `region_counts`: `[n_img]`, each in `1..=K`
    /// - `words`: `[n_cap, L, D]`; caption `j` owns the valid prefix `words[j, ..word_lengths[j]]`
    /// - `word_lengths`: `[n_cap]`, each in `1..=L`
    /// - returns `S`: `[n_img, n_cap]`, `S[i][j]` = image `i` against caption `j`
    fn similarity(
        &self,
        regions: Tensor<3>,
        region_counts: &[usize],
        words: Tensor<3>,
        word_lengths: &[usize],
    ) -> Tensor<2>;

    /// Peak number of f32 values that scoring a block keeps alive per (image, caption) pair,
    /// with `regions` region slots, `words` word slots and feature width `dim`: the sharded
    /// driver ([`super::ShardedScorer`]) sizes its blocks with it. Implementations state
    /// numbers measured with `examples/fine_grained_memory.rs` plus a margin; this default
    /// assumes eight `[K, L]` tensors per pair.
    fn working_values_per_pair(&self, regions: usize, words: usize, dim: usize) -> usize {
        let _ = dim;
        8 * regions * words
    }

    /// The `[n_img, n_cap]` row-major scores of whole sets computed on the host, for heads that
    /// have such a path; `None` (the default) for the others. [`super::ShardedScorer`] calls it
    /// on the CPU backend without autodiff (evaluation), where it replaces the blocks of tensor
    /// programs; it must give the scores of [`FineGrainedSimilarity::similarity`] up to
    /// rounding. `progress(done, total)` is called as work completes.
    fn host_scores(
        &self,
        images: FeatureSets,
        captions: FeatureSets,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Option<Vec<f32>> {
        let _ = (images, captions, progress);
        None
    }
}

/// Sizes of one fine-grained scoring problem (a batch or a block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FineGrainedDims {
    /// Images `n_img`.
    pub n_img: usize,
    /// Region slots per image `K` (the largest count, or more).
    pub regions: usize,
    /// Captions `n_cap`.
    pub n_cap: usize,
    /// Word slots per caption `L` (the longest caption, or more).
    pub words: usize,
    /// Feature width `D`, shared by regions and words.
    pub dim: usize,
}

/// Checks the inputs of [`FineGrainedSimilarity::similarity`] and returns their sizes.
///
/// Panics when the feature widths differ, when the counts do not match the batch sizes, or
/// when a count lies outside `1..=K` (`1..=L` for words).
pub fn check_fine_grained_inputs(
    regions: &Tensor<3>,
    region_counts: &[usize],
    words: &Tensor<3>,
    word_lengths: &[usize],
) -> FineGrainedDims {
    let [n_img, k, d_region] = regions.dims();
    let [n_cap, l, d_word] = words.dims();
    assert_eq!(
        d_region, d_word,
        "regions and words must share the feature width"
    );
    assert_eq!(
        region_counts.len(),
        n_img,
        "one region count per image is required"
    );
    assert_eq!(
        word_lengths.len(),
        n_cap,
        "one length per caption is required"
    );
    check_lengths(region_counts, k, "region counts");
    check_lengths(word_lengths, l, "caption lengths");
    FineGrainedDims {
        n_img,
        regions: k,
        n_cap,
        words: l,
        dim: d_region,
    }
}

/// `⟨R_r, W_w⟩` for every region of every image and every word of every caption:
/// `[n_img, K, D]` × `[n_cap, L, D]` → `[n_img, n_cap, K, L]`.
///
/// One GEMM `[n_img·K, D] × [D, n_cap·L]` (our design, as batched PyTorch code computes it),
/// returned as a `[n_img, n_cap, K, L]` view: many small `[K, D] × [D, L]` products, one per
/// pair, run far below the GEMM's speed on `flex` (CHAN measured 1.68× faster this way).
pub(crate) fn pair_products(regions: Tensor<3>, words: Tensor<3>) -> Tensor<4> {
    let [n_img, k, d] = regions.dims();
    let [n_cap, l, _] = words.dims();
    regions
        .reshape([n_img * k, d])
        .matmul(words.reshape([n_cap * l, d]).transpose())
        .reshape([n_img, k, n_cap, l])
        .swap_dims(1, 2)
}

/// Padding masks of a pair grid `[n_img, n_cap, K, L]` (`true` = padding), expanded to the full
/// grid so that they can be used with `mask_fill` directly.
pub(crate) struct PairMasks {
    /// `true` where region `r` of image `i` is padding (`r ≥ region_counts[i]`).
    pub regions: Tensor<4, Bool>,
    /// `true` where word `w` of caption `j` is padding (`w ≥ word_lengths[j]`).
    pub words: Tensor<4, Bool>,
}

impl PairMasks {
    pub(crate) fn new(
        dims: FineGrainedDims,
        region_counts: &[usize],
        word_lengths: &[usize],
        device: &Device,
    ) -> Self {
        let shape = [dims.n_img, dims.n_cap, dims.regions, dims.words];
        let regions = padding_mask(region_counts, dims.regions, device)
            .reshape([dims.n_img, 1, dims.regions, 1])
            .expand(shape);
        let words = padding_mask(word_lengths, dims.words, device)
            .reshape([1, dims.n_cap, 1, dims.words])
            .expand(shape);
        Self { regions, words }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Shared checks of the unit tests of every fine-grained similarity.

    use super::*;
    use crate::masking::fill_padding;
    use burn::tensor::Distribution;

    pub(crate) const REGION_COUNTS: [usize; 3] = [5, 3, 4];
    pub(crate) const WORD_LENGTHS: [usize; 4] = [6, 2, 4, 5];

    /// Random features `[3, 5, 8]` and `[4, 6, 8]` with the counts above.
    pub(crate) fn inputs(device: &Device, seed: u64) -> (Tensor<3>, Tensor<3>) {
        device.seed(seed);
        let regions = Tensor::<3>::random([3, 5, 8], Distribution::Normal(0.0, 1.0), device);
        let words = Tensor::<3>::random([4, 6, 8], Distribution::Normal(0.0, 1.0), device);
        (regions, words)
    }

    /// `len` values drawn uniformly from `[-1, 1)` (host features for the sharded scorers).
    pub(crate) fn uniform_values(len: usize, rng: &mut rand::rngs::StdRng) -> Vec<f32> {
        use rand::Rng;
        (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    pub(crate) fn host(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    pub(crate) fn assert_all_close(actual: &[f32], expected: &[f32], tolerance: f32, what: &str) {
        assert_eq!(actual.len(), expected.len(), "{what}: length");
        for (a, b) in actual.iter().zip(expected) {
            assert!(a.is_finite(), "{what}: non-finite score in {actual:?}");
            assert!(
                (a - b).abs() <= tolerance,
                "{what}: {actual:?} vs {expected:?}"
            );
        }
    }

    /// Overwrites the padding with large random values and appends two more padded slots to
    /// both sets: no score may change.
    pub(crate) fn assert_padding_invariant(sim: &impl FineGrainedSimilarity, what: &str) {
        let device = Device::default();
        let (regions, words) = inputs(&device, 11);
        let base = host(sim.similarity(
            regions.clone(),
            &REGION_COUNTS,
            words.clone(),
            &WORD_LENGTHS,
        ));

        let noisy = |x: Tensor<3>, lengths: &[usize]| {
            let [n, len, dim] = x.dims();
            let noise =
                Tensor::<3>::random([n, len + 2, dim], Distribution::Normal(0.0, 100.0), &device);
            // Valid prefix kept, everything past it replaced by the noise.
            let padded = Tensor::cat(vec![x, Tensor::zeros([n, 2, dim], &device)], 1);
            let valid = fill_padding(padded, lengths, 0.0);
            let noise_only = noise.clone() - fill_padding(noise, lengths, 0.0);
            valid + noise_only
        };
        let regions_noisy = noisy(regions, &REGION_COUNTS);
        let words_noisy = noisy(words, &WORD_LENGTHS);
        let padded =
            host(sim.similarity(regions_noisy, &REGION_COUNTS, words_noisy, &WORD_LENGTHS));
        assert_all_close(&padded, &base, 1e-5, what);
    }

    /// Gradients of `sum(S)` are finite everywhere, zero at padding and not all zero.
    pub(crate) fn assert_gradients_clean(sim: &impl FineGrainedSimilarity, what: &str) {
        let device = Device::default().autodiff();
        let (regions, words) = inputs(&device, 13);
        let regions = regions.require_grad();
        let words = words.require_grad();
        let scores = sim.similarity(
            regions.clone(),
            &REGION_COUNTS,
            words.clone(),
            &WORD_LENGTHS,
        );
        let grads = scores.sum().backward();
        for (grad, lengths, slots, side) in [
            (regions.grad(&grads), &REGION_COUNTS[..], 5, "regions"),
            (words.grad(&grads), &WORD_LENGTHS[..], 6, "words"),
        ] {
            let grad = grad
                .expect("gradient")
                .into_data()
                .try_into_vec::<f32>()
                .unwrap();
            assert!(
                grad.iter().all(|g| g.is_finite()),
                "{what}: non-finite d/d {side}: {grad:?}"
            );
            let mut valid_sum = 0.0f32;
            for (index, &len) in lengths.iter().enumerate() {
                for slot in 0..slots {
                    let row = &grad[(index * slots + slot) * 8..(index * slots + slot + 1) * 8];
                    if slot < len {
                        valid_sum += row.iter().map(|g| g.abs()).sum::<f32>();
                    } else {
                        assert!(
                            row.iter().all(|&g| g == 0.0),
                            "{what}: d/d padded {side} {row:?}"
                        );
                    }
                }
            }
            assert!(valid_sum > 0.0, "{what}: d/d {side} vanishes");
        }
    }

    /// Scores the 3 × 4 problem at once and as 2 × 2 blocks (rows `[0..1, 1..3]`, columns
    /// `[0..3, 3..4]`) with each block trimmed to its own longest set: identical matrices.
    pub(crate) fn assert_block_consistent(sim: &impl FineGrainedSimilarity, what: &str) {
        let device = Device::default();
        let (regions, words) = inputs(&device, 12);
        let full = host(sim.similarity(
            regions.clone(),
            &REGION_COUNTS,
            words.clone(),
            &WORD_LENGTHS,
        ));
        let mut blocked = vec![f32::NAN; 12];
        for (row_start, rows) in [(0usize, 1usize), (1, 2)] {
            for (col_start, cols) in [(0usize, 3usize), (3, 1)] {
                let counts = &REGION_COUNTS[row_start..row_start + rows];
                let lengths = &WORD_LENGTHS[col_start..col_start + cols];
                let k = *counts.iter().max().unwrap();
                let l = *lengths.iter().max().unwrap();
                let block = host(sim.similarity(
                    regions.clone().narrow(0, row_start, rows).narrow(1, 0, k),
                    counts,
                    words.clone().narrow(0, col_start, cols).narrow(1, 0, l),
                    lengths,
                ));
                for r in 0..rows {
                    for c in 0..cols {
                        blocked[(row_start + r) * 4 + col_start + c] = block[r * cols + c];
                    }
                }
            }
        }
        assert_all_close(&blocked, &full, 1e-5, what);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_reports_sizes() {
        let device = Device::default();
        let regions = Tensor::<3>::zeros([2, 4, 3], &device);
        let words = Tensor::<3>::zeros([5, 6, 3], &device);
        let dims = check_fine_grained_inputs(&regions, &[4, 1], &words, &[1, 2, 3, 4, 6]);
        assert_eq!(
            dims,
            FineGrainedDims {
                n_img: 2,
                regions: 4,
                n_cap: 5,
                words: 6,
                dim: 3
            }
        );
    }

    #[test]
    #[should_panic(expected = "caption lengths")]
    fn check_rejects_empty_captions() {
        let device = Device::default();
        let regions = Tensor::<3>::zeros([1, 4, 3], &device);
        let words = Tensor::<3>::zeros([1, 6, 3], &device);
        check_fine_grained_inputs(&regions, &[2], &words, &[0]);
    }

    #[test]
    fn pair_masks_mark_padding_of_each_side() {
        let device = Device::default();
        let dims = FineGrainedDims {
            n_img: 2,
            regions: 2,
            n_cap: 1,
            words: 3,
            dim: 1,
        };
        let masks = PairMasks::new(dims, &[1, 2], &[2], &device);
        let regions = masks.regions.into_data().try_into_vec::<bool>().unwrap();
        let words = masks.words.into_data().try_into_vec::<bool>().unwrap();
        // [img, cap, r, w] row-major.
        assert_eq!(
            regions,
            vec![
                false, false, false, true, true, true, false, false, false, false, false, false
            ]
        );
        assert_eq!(
            words,
            vec![
                false, false, true, false, false, true, false, false, true, false, false, true
            ]
        );
    }
}
