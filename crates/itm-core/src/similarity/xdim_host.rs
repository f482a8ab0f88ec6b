//! X-Dim scored on the host, for whole test sets on the CPU backend (no gradients): the same
//! scores as [`XDim::similarity`](super::XDim), computed per image and group of captions on
//! the valid rows only, with the work spread over rayon's threads.
//!
//! Our design (an implementation of the same formula, METHODS §3): the batched tensor program
//! runs its element-wise steps over `[n_img, n_cap, L, D]` tensors (the attended vectors, their
//! norms, the products with the words, the norms of the re-projections) on one thread, since
//! `flex`'s element-wise operations are sequential; at two threads X-Dim reached 0.81× batched
//! PyTorch (docs/performance.md, 2026-12-07). Here each task (one image against one group of
//! captions) runs three sequential GEMMs — the word–region products `[K, D]·[D, W]`, the
//! attended vectors `[W, K]·[K, D]`, the re-projection `[W, D]·[D, D]` — and the element-wise
//! steps between them on rows it owns, tasks in parallel.

use rayon::prelude::*;

use super::chan_host::groups;
use super::cosine::host_inner_products;
use super::sharded::FeatureSets;
use super::xdim::XDIM_LEAKY_SLOPE;
use crate::masking::L2_EPSILON;

/// Word rows of the caption group of one task, at most (at least one caption): the
/// re-projection's left operand, `[W, D]`.
const TASK_WORDS: usize = 2048;

/// What the host path needs of an [`XDim`](super::XDim): the sparsified dependency
/// `W'` (`[D, D]`, row-major), its column sums `g` and the attention temperature `e^{temp}`.
pub(crate) struct XDimWeights {
    pub dependency: Vec<f32>,
    pub column_sums: Vec<f32>,
    pub temperature: f32,
}

/// `row / (‖row‖ + ε)` in place.
fn normalize(row: &mut [f32]) {
    let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt() + L2_EPSILON as f32;
    row.iter_mut().for_each(|v| *v /= norm);
}

/// A task's reusable buffers.
#[derive(Default)]
struct Buffers {
    /// The group's valid word rows `[W, D]`.
    words: Vec<f32>,
    /// The image's regions scaled by `g` `[K, D]`, and transposed `[D, K]`.
    weighted: Vec<f32>,
    transposed: Vec<f32>,
    /// Word–region products, then their attention weights: `[K, W]`, then `[W, K]`.
    products: Vec<f32>,
    attention: Vec<f32>,
    /// Attended vectors `[W, D]`, then the re-projections `[W, D]`.
    attended: Vec<f32>,
    projected: Vec<f32>,
}

/// The scores of image `regions` (`[K, D]`, valid rows) against the captions of `group`.
fn score_task(
    weights: &XDimWeights,
    regions: &[f32],
    captions: FeatureSets,
    group: std::ops::Range<usize>,
    buffers: &mut Buffers,
) -> Vec<f32> {
    let dim = captions.dim;
    let k = regions.len() / dim;
    buffers.words.clear();
    for caption in group.clone() {
        buffers.words.extend_from_slice(captions.set(caption));
    }
    let w = buffers.words.len() / dim;

    // A = tanh(R ⊙ g · Xᵀ): [K, W]; LeakyReLU.
    buffers.weighted.clear();
    buffers.weighted.extend_from_slice(regions);
    for row in buffers.weighted.chunks_mut(dim) {
        row.iter_mut()
            .zip(&weights.column_sums)
            .for_each(|(v, g)| *v *= g);
    }
    buffers.products.resize(k * w, 0.0);
    host_inner_products(
        &buffers.weighted,
        &buffers.words,
        dim,
        &mut buffers.products,
        false,
    );
    let slope = XDIM_LEAKY_SLOPE as f32;
    for v in buffers.products.iter_mut() {
        let a = v.tanh();
        *v = if a >= 0.0 { a } else { a * slope };
    }

    // α: each region's scores l2-normalised over the words of its caption, times the
    // temperature, then a softmax over the regions for each word: [W, K].
    buffers.attention.resize(w * k, 0.0);
    let mut first = 0;
    for caption in group.clone() {
        let words = captions.lengths[caption];
        for r in 0..k {
            let row = &mut buffers.products[r * w + first..r * w + first + words];
            normalize(row);
            for (j, &v) in row.iter().enumerate() {
                buffers.attention[(first + j) * k + r] = v * weights.temperature;
            }
        }
        first += words;
    }
    for row in buffers.attention.chunks_mut(k) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        row.iter_mut().for_each(|v| *v /= sum);
    }

    // c_w = l2norm(Σ_r α_{w,r} R_r): [W, K]·[K, D] (Rᵀ as the `[D, K]` right operand).
    buffers.transposed.resize(dim * k, 0.0);
    for (r, row) in regions.chunks(dim).enumerate() {
        for (d, &v) in row.iter().enumerate() {
            buffers.transposed[d * k + r] = v;
        }
    }
    buffers.attended.resize(w * dim, 0.0);
    host_inner_products(
        &buffers.attention,
        &buffers.transposed,
        k,
        &mut buffers.attended,
        false,
    );
    // (c_w ⊙ x_w), re-projected by W'ᵀ: [W, D]·[D, D].
    for (row, word) in buffers
        .attended
        .chunks_mut(dim)
        .zip(buffers.words.chunks(dim))
    {
        normalize(row);
        row.iter_mut().zip(word).for_each(|(v, x)| *v *= x);
    }
    buffers.projected.resize(w * dim, 0.0);
    host_inner_products(
        &buffers.attended,
        &weights.dependency,
        dim,
        &mut buffers.projected,
        false,
    );

    // Σ_i l2norm(z_w)_i, averaged over each caption's words.
    let mut scores = Vec::with_capacity(group.len());
    let mut rows = buffers.projected.chunks(dim);
    for caption in group {
        let words = captions.lengths[caption];
        let total: f32 = rows
            .by_ref()
            .take(words)
            .map(|z| {
                let norm = z.iter().map(|v| v * v).sum::<f32>().sqrt() + L2_EPSILON as f32;
                z.iter().sum::<f32>() / norm
            })
            .sum();
        scores.push(total / words as f32);
    }
    scores
}

/// X-Dim's `[n_img, n_cap]` row-major scores of `images` against `captions` (see the module
/// documentation); `progress(done, total)` after each batch of tasks.
pub(crate) fn xdim_scores(
    weights: &XDimWeights,
    images: FeatureSets,
    captions: FeatureSets,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<f32> {
    scores_in_tasks(weights, images, captions, TASK_WORDS, progress)
}

/// [`xdim_scores`] with caption groups of about `task_words` word rows.
fn scores_in_tasks(
    weights: &XDimWeights,
    images: FeatureSets,
    captions: FeatureSets,
    task_words: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<f32> {
    assert_eq!(
        images.dim, captions.dim,
        "regions and words must share the feature width"
    );
    let (n_img, n_cap) = (images.len(), captions.len());
    let mut scores = vec![0.0f32; n_img * n_cap];
    if scores.is_empty() {
        progress(1, 1);
        return scores;
    }
    let groups = groups(captions.lengths, task_words);
    let tasks: Vec<(usize, std::ops::Range<usize>)> = (0..n_img)
        .flat_map(|image| groups.iter().map(move |group| (image, group.clone())))
        .collect();
    // A few tasks per thread between two progress reports.
    let batch = (rayon::current_num_threads() * 4).max(1);
    let total = tasks.len().div_ceil(batch);
    for (done, chunk) in tasks.chunks(batch).enumerate() {
        let results: Vec<Vec<f32>> = chunk
            .par_iter()
            .map_init(Buffers::default, |buffers, (image, group)| {
                score_task(
                    weights,
                    images.set(*image),
                    captions,
                    group.clone(),
                    buffers,
                )
            })
            .collect();
        for ((image, group), values) in chunk.iter().zip(results) {
            scores[image * n_cap + group.start..image * n_cap + group.end].copy_from_slice(&values);
        }
        progress(done + 1, total);
    }
    scores
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::similarity::fine_grained::test_support::uniform_values;
    use rand::{SeedableRng, rngs::StdRng};

    /// Groups of one caption, of a few and of all give the same scores, and progress reaches
    /// its total. (Scores against the tensor program: `sharded::tests`.)
    #[test]
    fn caption_groups_do_not_change_the_scores() {
        let mut rng = StdRng::seed_from_u64(11);
        let (n_img, k, n_cap, l, d) = (3, 5, 9, 4, 8);
        let regions = uniform_values(n_img * k * d, &mut rng);
        let words = uniform_values(n_cap * l * d, &mut rng);
        let counts = [5, 1, 3];
        let lengths: Vec<usize> = (0..n_cap).map(|j| 1 + j % l).collect();
        let images = FeatureSets::new(&regions, &counts, k, d);
        let captions = FeatureSets::new(&words, &lengths, l, d);
        let dependency = uniform_values(d * d, &mut rng);
        let column_sums = (0..d)
            .map(|c| (0..d).map(|r| dependency[r * d + c]).sum())
            .collect();
        let weights = XDimWeights {
            dependency,
            column_sums,
            temperature: 7.0,
        };
        let all = scores_in_tasks(&weights, images, captions, usize::MAX, &mut |_, _| {});
        for task_words in [1, 6] {
            let mut last = (0, 0);
            let grouped = scores_in_tasks(
                &weights,
                images,
                captions,
                task_words,
                &mut |done, total| last = (done, total),
            );
            assert_eq!(last.0, last.1, "progress ends at its total");
            for (a, b) in grouped.iter().zip(&all) {
                assert!(a.is_finite() && (a - b).abs() <= 1e-6, "{a} vs {b}");
            }
        }
    }
}
