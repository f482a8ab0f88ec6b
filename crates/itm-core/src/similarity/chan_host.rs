//! CHAN scored on the host, for whole test sets on the CPU backend (no gradients): the same
//! scores as [`Chan::similarity`](super::Chan), computed tile by tile so that the
//! `[n_img·K, n_cap·L]` block of region–word products is never materialised.
//!
//! Each tile is a group of images × a group of captions: one GEMM of their valid, l2-normalised
//! region rows against their valid word rows (`[R, D] · [W, D]ᵀ`, at the kernel's speed), then
//! the max over each image's regions folded row by row into a `[W]` buffer, then the mean (or
//! LogSumExp) over each caption's words (METHODS §3, CHAN). A tile's products stay in the cache
//! (about 1 MiB); groups of images run in parallel, one sequential GEMM each. Padding never
//! enters: only valid rows are packed, so no mask is needed.
//!
//! Our design (an implementation of the same formula): the batched tensor program of
//! [`Chan`](super::Chan) materialises the products of a whole block and masks them; profiled on
//! the COCO-sized blocks of `benches/fine_grained.rs` that traffic and the element-wise mask and
//! max took about a quarter of the time (docs/performance.md).

use rayon::prelude::*;

use super::chan::ChanAggregation;
use super::cosine::{host_inner_products, normalize_rows};
use super::sharded::FeatureSets;

/// Region rows of the image group of one tile (the GEMM's left operand), at most: fewer when
/// the images would otherwise make fewer groups than threads. Measured on 2026-12-07 (2-core
/// EPYC, 2 threads, a 643 × 644 block of 36 regions × 12 words, `D` = 1024): 2.8 s with 256
/// rows, 2.1 s with 1,024 (each caption tile's packing and the loop around the kernel are
/// shared by more rows; 4,096 word rows instead of 1,024 changed nothing).
const TILE_ROWS: usize = 1024;
/// Word rows of the caption group of one tile (the GEMM's right operand).
const TILE_COLS: usize = 1024;

/// The valid rows of every set, l2-normalised (`x / (‖x‖ + ε)`, as
/// [`l2_normalize`](crate::masking::l2_normalize)), packed one after another.
struct PackedRows {
    values: Vec<f32>,
    /// Set `i` owns rows `offsets[i]..offsets[i + 1]`.
    offsets: Vec<usize>,
}

impl PackedRows {
    fn new(sets: FeatureSets) -> Self {
        let dim = sets.dim;
        let mut offsets = Vec::with_capacity(sets.len() + 1);
        offsets.push(0);
        for &length in sets.lengths {
            offsets.push(offsets.last().copied().unwrap_or(0) + length);
        }
        let mut values = Vec::with_capacity(offsets[sets.len()] * dim);
        for set in 0..sets.len() {
            values.extend_from_slice(sets.set(set));
        }
        normalize_rows(&mut values, dim);
        Self { values, offsets }
    }

    /// Rows of sets `sets` (a range of set numbers).
    fn rows(&self, sets: std::ops::Range<usize>) -> std::ops::Range<usize> {
        self.offsets[sets.start]..self.offsets[sets.end]
    }
}

/// Groups of consecutive sets of about `rows` valid rows each (at least one set per group).
pub(super) fn groups(lengths: &[usize], rows: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut taken) = (0, 0);
    for (set, &length) in lengths.iter().enumerate() {
        if taken > 0 && taken + length > rows {
            out.push(start..set);
            (start, taken) = (set, 0);
        }
        taken += length;
    }
    if start < lengths.len() {
        out.push(start..lengths.len());
    }
    out
}

/// CHAN's `[n_img, n_cap]` row-major scores of `images` against `captions` (see the module
/// documentation); `progress(done, total)` after each batch of image groups.
pub(crate) fn chan_scores(
    aggregation: ChanAggregation,
    temperature: f64,
    images: FeatureSets,
    captions: FeatureSets,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<f32> {
    assert_eq!(
        images.dim, captions.dim,
        "regions and words must share the feature width"
    );
    let (n_img, n_cap, dim) = (images.len(), captions.len(), images.dim);
    let mut scores = vec![0.0f32; n_img * n_cap];
    if scores.is_empty() {
        progress(1, 1);
        return scores;
    }
    let regions = PackedRows::new(images);
    let words = PackedRows::new(captions);
    // At least one group per thread where the images allow it.
    let threads = rayon::current_num_threads().max(1);
    let tile_rows = images
        .lengths
        .iter()
        .sum::<usize>()
        .div_ceil(threads)
        .clamp(1, TILE_ROWS);
    let image_groups = groups(images.lengths, tile_rows);
    let caption_groups = groups(captions.lengths, TILE_COLS);
    // Image groups scored in parallel, a few per thread between two progress reports.
    let batch = (rayon::current_num_threads() * 4).max(1);
    let total = image_groups.len().div_ceil(batch);
    let score_group = |group: &std::ops::Range<usize>, rows: &mut [f32], buffers: &mut Buffers| {
        let region_rows = regions.rows(group.clone());
        for captions_range in &caption_groups {
            let word_rows = words.rows(captions_range.clone());
            let width = word_rows.len();
            buffers.products.resize(region_rows.len() * width, 0.0);
            host_inner_products(
                &regions.values[region_rows.start * dim..region_rows.end * dim],
                &words.values[word_rows.start * dim..word_rows.end * dim],
                dim,
                &mut buffers.products,
                false,
            );
            for (i, image) in group.clone().enumerate() {
                // The best region of image `image` for every word of the tile.
                let own = regions.rows(image..image + 1);
                let first = own.start - region_rows.start;
                let best = &mut buffers.best;
                best.clear();
                best.extend_from_slice(&buffers.products[first * width..(first + 1) * width]);
                for r in first + 1..first + own.len() {
                    let row = &buffers.products[r * width..(r + 1) * width];
                    best.iter_mut().zip(row).for_each(|(b, &v)| *b = b.max(v));
                }
                let out = &mut rows[i * n_cap..(i + 1) * n_cap];
                for caption in captions_range.clone() {
                    let own = words.rows(caption..caption + 1);
                    let alignments = &best[own.start - word_rows.start..own.end - word_rows.start];
                    out[caption] = aggregate(aggregation, temperature, alignments);
                }
            }
        }
    };
    let mut done = 0;
    for chunk in image_groups.chunks(batch) {
        let first_image = chunk[0].start;
        let last_image = chunk[chunk.len() - 1].end;
        let rows = &mut scores[first_image * n_cap..last_image * n_cap];
        // Split the chunk's rows into one slice per group.
        let mut slices = Vec::with_capacity(chunk.len());
        let mut rest = rows;
        for group in chunk {
            let (head, tail) = rest.split_at_mut(group.len() * n_cap);
            slices.push((group, head));
            rest = tail;
        }
        slices
            .into_par_iter()
            .for_each_init(Buffers::default, |buffers, (group, rows)| {
                score_group(group, rows, buffers)
            });
        done += 1;
        progress(done, total);
    }
    scores
}

/// A task's reusable buffers: one tile's products and one image's best alignments.
#[derive(Default)]
struct Buffers {
    products: Vec<f32>,
    best: Vec<f32>,
}

/// The mean, or the LogSumExp at `temperature`, of one caption's word alignments.
fn aggregate(aggregation: ChanAggregation, temperature: f64, alignments: &[f32]) -> f32 {
    match aggregation {
        ChanAggregation::Mean => alignments.iter().sum::<f32>() / alignments.len() as f32,
        ChanAggregation::LogSumExp => {
            let scale = temperature as f32;
            let max = alignments
                .iter()
                .map(|a| a / scale)
                .fold(f32::NEG_INFINITY, f32::max);
            alignments
                .iter()
                .map(|a| (a / scale - max).exp())
                .sum::<f32>()
                .ln()
                + max
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_cover_every_set_once_in_order() {
        let lengths = [3, 5, 2, 7, 1, 4];
        for rows in [1, 4, 8, 100] {
            let found = groups(&lengths, rows);
            let flat: Vec<usize> = found.iter().flat_map(|g| g.clone()).collect();
            assert_eq!(flat, (0..lengths.len()).collect::<Vec<_>>(), "rows {rows}");
            for group in &found {
                let taken: usize = lengths[group.clone()].iter().sum();
                assert!(taken <= rows || group.len() == 1, "rows {rows}: {group:?}");
            }
        }
        assert!(groups(&[], 4).is_empty());
    }
}
