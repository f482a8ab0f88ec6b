//! Whole-test-set scoring with a fine-grained similarity, in shards that respect a memory
//! budget.
//!
//! A fine-grained similarity keeps a few `[n_img, n_cap, K, L]` tensors alive while it scores a
//! block (SCAN, CHAN, X-Dim and ESL all compare every region with every word). On COCO 5K
//! (5,000 × 25,000 pairs, 36 regions, up to 40 words) that is 180 G values per tensor: far too
//! many for one block. [`ShardedScorer`] tiles the `[n_img, n_cap]` matrix with blocks whose
//! working set stays under the budget, trims each block to its longest set, and copies the
//! block's scores into the host matrix. The operations of a block run on the device (on the CPU
//! backend they use every core); blocks run one after another so that only one working set
//! lives at a time. The result equals the one-shot computation.

use burn::tensor::{Device, Tensor, TensorData};

use super::fine_grained::FineGrainedSimilarity;

/// Sets of features on the host: row-major `[n, max_len, dim]`, set `i` owning its first
/// `lengths[i]` rows.
#[derive(Debug, Clone, Copy)]
pub struct FeatureSets<'a> {
    /// The values, `n · max_len · dim` of them.
    pub values: &'a [f32],
    /// Valid rows per set, each in `1..=max_len`.
    pub lengths: &'a [usize],
    /// Row slots per set.
    pub max_len: usize,
    /// Feature width.
    pub dim: usize,
}

impl<'a> FeatureSets<'a> {
    /// Wraps host features, checking that the sizes agree.
    pub fn new(values: &'a [f32], lengths: &'a [usize], max_len: usize, dim: usize) -> Self {
        assert_eq!(
            values.len(),
            lengths.len() * max_len * dim,
            "values must be [n, max_len, dim]"
        );
        assert!(
            lengths.iter().all(|&len| (1..=max_len).contains(&len)),
            "every set needs 1..={max_len} rows"
        );
        Self {
            values,
            lengths,
            max_len,
            dim,
        }
    }

    /// Number of sets.
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    /// Whether there is no set.
    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// Sets `range` as a tensor `[range.len(), longest, dim]` on `device` (trimmed to the
    /// longest of them) with their lengths.
    fn upload(&self, range: std::ops::Range<usize>, device: &Device) -> (Tensor<3>, Vec<usize>) {
        let sets: Vec<usize> = range.collect();
        self.upload_sets(&sets, device)
    }

    /// Sets `sets` (any rows, in this order) as a tensor `[sets.len(), longest, dim]` on
    /// `device` (trimmed to the longest of them) with their lengths.
    pub(crate) fn upload_sets(&self, sets: &[usize], device: &Device) -> (Tensor<3>, Vec<usize>) {
        let lengths: Vec<usize> = sets.iter().map(|&set| self.lengths[set]).collect();
        let longest = lengths.iter().copied().max().unwrap_or(1);
        let mut values = Vec::with_capacity(sets.len() * longest * self.dim);
        for &set in sets {
            let start = set * self.max_len * self.dim;
            values.extend_from_slice(&self.values[start..start + longest * self.dim]);
        }
        let tensor = Tensor::from_data(
            TensorData::new(values, [sets.len(), longest, self.dim]),
            device,
        );
        (tensor, lengths)
    }

    /// Set `set`'s valid rows, `[lengths[set], dim]` row-major.
    pub fn set(&self, set: usize) -> &'a [f32] {
        let start = set * self.max_len * self.dim;
        &self.values[start..start + self.lengths[set] * self.dim]
    }
}

/// Scores whole test sets block by block under a memory budget.
#[derive(Debug, Clone)]
pub struct ShardedScorer {
    /// Device the blocks are scored on.
    pub device: Device,
    /// Bytes the working tensors of one block may take (default 2 GiB).
    pub memory_budget: usize,
    /// Whether heads with a host path ([`FineGrainedSimilarity::host_scores`]) use it on the
    /// CPU backend (default `true`; `false` forces the blocks of tensor programs).
    pub host_paths: bool,
}

impl ShardedScorer {
    /// A scorer on `device` with a 2 GiB budget.
    pub fn new(device: Device) -> Self {
        Self {
            device,
            memory_budget: 2 << 30,
            host_paths: true,
        }
    }

    /// Sets the memory budget in bytes.
    pub fn with_memory_budget(mut self, bytes: usize) -> Self {
        self.memory_budget = bytes;
        self
    }

    /// Images and captions per block: the largest block whose working set
    /// (`rows · cols · values_per_pair · 4` bytes, see
    /// [`FineGrainedSimilarity::working_values_per_pair`]) fits the budget, as square as the
    /// matrix allows, at least one pair.
    pub fn block_shape(
        &self,
        values_per_pair: usize,
        n_img: usize,
        n_cap: usize,
    ) -> (usize, usize) {
        let per_pair = (values_per_pair * 4).max(1);
        let pairs = (self.memory_budget / per_pair).max(1);
        let side = (pairs as f64).sqrt().floor() as usize;
        let rows = side.clamp(1, n_img.max(1));
        let cols = (pairs / rows).clamp(1, n_cap.max(1));
        let rows = (pairs / cols).clamp(1, n_img.max(1));
        (rows, cols)
    }

    /// The `[n_img, n_cap]` row-major score matrix of `method`; `progress(done, total)` is
    /// called after every block. On the CPU backend without autodiff a head with a host path
    /// ([`FineGrainedSimilarity::host_scores`]) scores the whole matrix there instead.
    pub fn score(
        &self,
        method: &dyn FineGrainedSimilarity,
        images: FeatureSets,
        captions: FeatureSets,
        mut progress: impl FnMut(usize, usize),
    ) -> Vec<f32> {
        assert_eq!(
            images.dim, captions.dim,
            "regions and words must share the feature width"
        );
        if self.host_paths
            && self.device == Device::flex()
            && let Some(scores) = method.host_scores(images, captions, &mut progress)
        {
            return scores;
        }
        let (n_img, n_cap) = (images.len(), captions.len());
        let per_pair = method.working_values_per_pair(images.max_len, captions.max_len, images.dim);
        let (rows, cols) = self.block_shape(per_pair, n_img, n_cap);
        let total = n_img.div_ceil(rows) * n_cap.div_ceil(cols);
        let mut scores = vec![0.0f32; n_img * n_cap];
        let mut done = 0;
        for row_start in (0..n_img).step_by(rows) {
            let row_end = (row_start + rows).min(n_img);
            let (regions, counts) = images.upload(row_start..row_end, &self.device);
            for col_start in (0..n_cap).step_by(cols) {
                let col_end = (col_start + cols).min(n_cap);
                let (words, lengths) = captions.upload(col_start..col_end, &self.device);
                let block = method.similarity(regions.clone(), &counts, words, &lengths);
                let values = block.into_data().try_into_vec::<f32>().expect("f32 scores");
                let width = col_end - col_start;
                for (r, row) in values.chunks(width).enumerate() {
                    let start = (row_start + r) * n_cap + col_start;
                    scores[start..start + width].copy_from_slice(row);
                }
                done += 1;
                progress(done, total);
            }
        }
        scores
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::similarity::fine_grained::test_support::uniform_values as random;
    use crate::similarity::{ChanAggregation, ChanConfig, HeadTable, XDimConfig};
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn blocks_respect_the_budget() {
        let scorer = ShardedScorer::new(Device::default());
        // COCO 5K with CHAN's estimate (3 values per region–word slot).
        let per_pair = 3 * 36 * 40;
        let (rows, cols) = scorer.block_shape(per_pair, 5000, 25000);
        let bytes = rows * cols * per_pair * 4;
        assert!(bytes <= 2 << 30, "{rows}×{cols} needs {bytes} bytes");
        assert!(
            bytes > (2 << 30) * 9 / 10,
            "blocks are not needlessly small: {rows}×{cols}"
        );
        assert!(rows.abs_diff(cols) <= 1, "blocks are square: {rows}×{cols}");
        let tiny = scorer.with_memory_budget(1);
        assert_eq!(tiny.block_shape(7 * 3, 9, 4), (1, 1));
    }

    #[test]
    fn sharded_scores_equal_the_one_shot_computation() {
        let device = Device::default();
        let mut rng = StdRng::seed_from_u64(3);
        let (n_img, k, n_cap, l, d) = (5, 4, 7, 6, 8);
        let regions = random(n_img * k * d, &mut rng);
        let words = random(n_cap * l * d, &mut rng);
        let counts = [4, 2, 3, 1, 4];
        let lengths = [6, 3, 1, 5, 2, 6, 4];
        let images = FeatureSets::new(&regions, &counts, k, d);
        let captions = FeatureSets::new(&words, &lengths, l, d);
        // Every fine-grained head of the heads table, with its published settings at `d`.
        let methods: Vec<Box<dyn FineGrainedSimilarity>> = HeadTable::builtin()
            .fine_grained()
            // A multi-grained head's set scorer is CHAN's, scored once.
            .filter(|head| !head.adds_global())
            .filter_map(|head| head.scorer(d, &device))
            .collect();
        assert_eq!(methods.len(), 5);
        for method in &methods {
            let one_shot = method.similarity(
                Tensor::from_data(TensorData::new(regions.clone(), [n_img, k, d]), &device),
                &counts,
                Tensor::from_data(TensorData::new(words.clone(), [n_cap, l, d]), &device),
                &lengths,
            );
            let one_shot = one_shot.into_data().try_into_vec::<f32>().unwrap();
            // A budget of 2×3 pairs forces uneven blocks.
            let per_pair = method.working_values_per_pair(k, l, d);
            let mut scorer =
                ShardedScorer::new(device.clone()).with_memory_budget(6 * per_pair * 4);
            scorer.host_paths = false;
            assert_eq!(scorer.block_shape(per_pair, n_img, n_cap), (2, 3));
            let mut calls = 0;
            let sharded = scorer.score(method.as_ref(), images, captions, |_, total| {
                calls += 1;
                assert_eq!(total, 9);
            });
            assert_eq!(calls, 9);
            for (a, b) in sharded.iter().zip(&one_shot) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn host_paths_equal_the_one_shot_computation() {
        let device = Device::flex();
        let mut rng = StdRng::seed_from_u64(4);
        // Enough sets and rows for several tiles of images and of captions.
        let (n_img, k, n_cap, l, d) = (23, 36, 130, 12, 16);
        let regions = random(n_img * k * d, &mut rng);
        let words = random(n_cap * l * d, &mut rng);
        let counts: Vec<usize> = (0..n_img).map(|i| 1 + (i * 7) % k).collect();
        let lengths: Vec<usize> = (0..n_cap).map(|j| 1 + (j * 5) % l).collect();
        let images = FeatureSets::new(&regions, &counts, k, d);
        let captions = FeatureSets::new(&words, &lengths, l, d);
        let chan = [ChanAggregation::Mean, ChanAggregation::LogSumExp]
            .map(|aggregation| ChanConfig::new().with_aggregation(aggregation).init());
        device.seed(6);
        let xdim = XDimConfig::new(d).init(&device);
        let mut methods: Vec<(String, &dyn FineGrainedSimilarity)> = chan
            .iter()
            .map(|c| {
                (
                    format!("CHAN {:?}", c.aggregation),
                    c as &dyn FineGrainedSimilarity,
                )
            })
            .collect();
        methods.push(("X-Dim".into(), &xdim));
        for (name, method) in methods {
            let one_shot = method
                .similarity(
                    Tensor::from_data(TensorData::new(regions.clone(), [n_img, k, d]), &device),
                    &counts,
                    Tensor::from_data(TensorData::new(words.clone(), [n_cap, l, d]), &device),
                    &lengths,
                )
                .into_data()
                .try_into_vec::<f32>()
                .unwrap();
            let (mut last, mut calls) = ((0, 0), 0);
            let host =
                ShardedScorer::new(device.clone()).score(method, images, captions, |d, t| {
                    calls += 1;
                    last = (d, t);
                });
            assert!(
                calls >= 1 && last.0 == last.1,
                "progress ends at its total: {last:?}"
            );
            assert_eq!(host.len(), one_shot.len());
            for (i, (a, b)) in host.iter().zip(&one_shot).enumerate() {
                let tolerance = 1e-5 * b.abs().max(1.0);
                assert!((a - b).abs() < tolerance, "{name} pair {i}: {a} vs {b}");
            }
        }
    }
}
