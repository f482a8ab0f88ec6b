//! Two-stage retrieval for a fine-grained head: a cheap first stage keeps the top `k` of a
//! collection for each query, and the head re-scores only those.
//!
//! The first stage is the cosine of one vector per item, which every model has: for a
//! fine-grained head, the mean of its unit region (or word) features, l2-normalised
//! ([`mean_of_sets`]; the model's pooling is not what the head was trained through). The second
//! stage ([`ShardedScorer::rerank`]) scores each query against its candidates with the head, in
//! blocks sized by the same memory budget as [`ShardedScorer::score`], and orders them by that
//! score. When `k` covers the whole collection, the result is the head's exhaustive ranking.

use burn::tensor::Device;

use super::fine_grained::FineGrainedSimilarity;
use super::sharded::{FeatureSets, ShardedScorer};

/// Which modality the queries of a re-ranking are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryModality {
    /// Captions (text → image): the candidates are images.
    Captions,
    /// Images (image → text): the candidates are captions.
    Images,
}

/// First-stage vectors of `sets`: per set, the mean of its valid rows, l2-normalised (a zero
/// mean stays zero). Returns row-major `[sets.len(), dim]`.
pub fn mean_of_sets(sets: FeatureSets) -> Vec<f32> {
    let dim = sets.dim;
    let mut out = Vec::with_capacity(sets.len() * dim);
    for set in 0..sets.len() {
        let rows = sets.set(set);
        let mut mean = vec![0.0f64; dim];
        for row in rows.chunks(dim) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += f64::from(v);
            }
        }
        let norm = mean.iter().map(|v| v * v).sum::<f64>().sqrt();
        let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        out.extend(mean.iter().map(|v| (v * scale) as f32));
    }
    out
}

/// The `k` best columns of `row` (all of them when `k` is larger), best first, ties to the
/// lower column; NaN scores rank last.
pub fn top_k_of_row(row: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..row.len()).collect();
    let better = |a: &usize, b: &usize| {
        let (x, y) = (row[*a], row[*b]);
        match (x.is_nan(), y.is_nan()) {
            (false, false) => y.total_cmp(&x).then(a.cmp(b)),
            (nan_x, nan_y) => nan_x.cmp(&nan_y).then(a.cmp(b)),
        }
    };
    let k = k.min(order.len());
    if k == 0 {
        return Vec::new();
    }
    if k < order.len() {
        order.select_nth_unstable_by(k - 1, better);
        order.truncate(k);
    }
    order.sort_by(better);
    order
}

impl ShardedScorer {
    /// Re-scores the candidates of every query with `method` and orders them best first (ties
    /// to the lower row).
    ///
    /// - `queries`: the query sets (captions' words for [`QueryModality::Captions`], images'
    ///   regions for [`QueryModality::Images`])
    /// - `collection`: the sets of the other modality, which `candidates` index
    /// - `candidates[q]`: the rows of `collection` to score for query `q` (from the first stage)
    /// - returns, per query, `(row, score)` best first, `candidates[q].len()` of them
    ///
    /// Each query's candidates are scored in blocks of at most as many as the memory budget
    /// allows at once (`[rows, 1]` image blocks against one caption, or `[1, cols]`).
    pub fn rerank(
        &self,
        method: &dyn FineGrainedSimilarity,
        modality: QueryModality,
        queries: FeatureSets,
        collection: FeatureSets,
        candidates: &[Vec<usize>],
    ) -> Vec<Vec<(usize, f32)>> {
        assert_eq!(
            queries.dim, collection.dim,
            "sets must share the feature width"
        );
        assert_eq!(
            candidates.len(),
            queries.len(),
            "one candidate list per query"
        );
        let (regions, words) = match modality {
            QueryModality::Captions => (collection.max_len, queries.max_len),
            QueryModality::Images => (queries.max_len, collection.max_len),
        };
        let per_pair = method.working_values_per_pair(regions, words, queries.dim);
        candidates
            .iter()
            .enumerate()
            .map(|(q, rows)| {
                self.rerank_one(method, modality, queries, q, collection, rows, per_pair)
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn rerank_one(
        &self,
        method: &dyn FineGrainedSimilarity,
        modality: QueryModality,
        queries: FeatureSets,
        query: usize,
        collection: FeatureSets,
        rows: &[usize],
        per_pair: usize,
    ) -> Vec<(usize, f32)> {
        let device: &Device = &self.device;
        let (query_set, query_len) = queries.upload_sets(&[query], device);
        let block = match modality {
            QueryModality::Captions => self.block_shape(per_pair, rows.len(), 1).0,
            QueryModality::Images => self.block_shape(per_pair, 1, rows.len()).1,
        };
        let mut scored = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(block.max(1)) {
            let (sets, lengths) = collection.upload_sets(chunk, device);
            let scores = match modality {
                QueryModality::Captions => {
                    method.similarity(sets, &lengths, query_set.clone(), &query_len)
                }
                QueryModality::Images => {
                    method.similarity(query_set.clone(), &query_len, sets, &lengths)
                }
            };
            let values = scores
                .into_data()
                .try_into_vec::<f32>()
                .expect("f32 scores");
            scored.extend(chunk.iter().copied().zip(values));
        }
        let scores: Vec<f32> = scored.iter().map(|&(_, s)| s).collect();
        let rows: Vec<usize> = scored.iter().map(|&(r, _)| r).collect();
        // Best first, ties to the lower row: order by score, then by row.
        let mut order: Vec<usize> = (0..scored.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (scores[a], scores[b]);
            match (x.is_nan(), y.is_nan()) {
                (false, false) => y.total_cmp(&x).then(rows[a].cmp(&rows[b])),
                (nan_x, nan_y) => nan_x.cmp(&nan_y).then(rows[a].cmp(&rows[b])),
            }
        });
        order.into_iter().map(|i| scored[i]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::similarity::HeadTable;
    use crate::similarity::fine_grained::test_support::uniform_values as random;
    use rand::{SeedableRng, rngs::StdRng};

    /// The mean of the valid rows only, l2-normalised: padding does not count.
    #[test]
    fn mean_of_sets_ignores_padding() {
        // Two sets of width 2, up to 3 rows; the padding rows hold junk.
        let values = [3.0, 0.0, 1.0, 4.0, 99.0, 99.0, 0.0, 2.0, 7.0, 7.0, 7.0, 7.0];
        let means = mean_of_sets(FeatureSets::new(&values, &[2, 1], 3, 2));
        // Set 0: mean (2, 2) → (1/√2, 1/√2); set 1: (0, 2) → (0, 1).
        let h = std::f32::consts::FRAC_1_SQRT_2;
        for (a, b) in means.iter().zip([h, h, 0.0, 1.0]) {
            assert!((a - b).abs() < 1e-6, "{means:?}");
        }
    }

    /// Top k of a row: best first, ties to the lower column, NaN last, k clamped.
    #[test]
    fn top_k_orders_ties_by_column() {
        let row = [0.5, 0.9, f32::NAN, 0.9, 0.1];
        assert_eq!(top_k_of_row(&row, 3), [1, 3, 0]);
        assert_eq!(top_k_of_row(&row, 9), [1, 3, 0, 4, 2]);
        assert!(top_k_of_row(&row, 0).is_empty());
    }

    /// With every item a candidate, re-ranking gives each query the head's exhaustive ranking
    /// (the full sort of its row or column of the one-shot matrix), for every fine-grained head
    /// of the table, in both directions, with blocks forced small.
    #[test]
    fn reranking_everything_is_the_exhaustive_ranking() {
        let device = Device::default();
        let mut rng = StdRng::seed_from_u64(5);
        let (n_img, k, n_cap, l, d) = (6, 4, 9, 5, 8);
        let regions = random(n_img * k * d, &mut rng);
        let words = random(n_cap * l * d, &mut rng);
        let counts = [4, 2, 3, 1, 4, 3];
        let lengths = [5, 3, 1, 5, 2, 4, 4, 2, 3];
        let images = FeatureSets::new(&regions, &counts, k, d);
        let captions = FeatureSets::new(&words, &lengths, l, d);
        let methods: Vec<Box<dyn FineGrainedSimilarity>> = HeadTable::builtin()
            .fine_grained()
            // A multi-grained head's set scorer is CHAN's, scored once.
            .filter(|head| !head.adds_global())
            .filter_map(|head| head.scorer(d, &device))
            .collect();
        assert_eq!(methods.len(), 5);
        for method in &methods {
            let per_pair = method.working_values_per_pair(k, l, d);
            let scorer = ShardedScorer::new(device.clone()).with_memory_budget(2 * per_pair * 4);
            let full = scorer.score(method.as_ref(), images, captions, |_, _| {});
            // Text → image: every image a candidate of every caption, in a shuffled order.
            let all_images: Vec<Vec<usize>> = (0..n_cap).map(|_| vec![3, 0, 5, 1, 4, 2]).collect();
            let found = scorer.rerank(
                method.as_ref(),
                QueryModality::Captions,
                captions,
                images,
                &all_images,
            );
            for (j, hits) in found.iter().enumerate() {
                let column: Vec<f32> = (0..n_img).map(|i| full[i * n_cap + j]).collect();
                let expected = top_k_of_row(&column, n_img);
                let rows: Vec<usize> = hits.iter().map(|h| h.0).collect();
                assert_eq!(rows, expected, "caption {j}");
                for &(i, score) in hits {
                    assert!((score - column[i]).abs() < 1e-5, "{score} vs {}", column[i]);
                }
            }
            // Image → text.
            let all_captions: Vec<Vec<usize>> =
                (0..n_img).map(|_| (0..n_cap).rev().collect()).collect();
            let found = scorer.rerank(
                method.as_ref(),
                QueryModality::Images,
                images,
                captions,
                &all_captions,
            );
            for (i, hits) in found.iter().enumerate() {
                let row = &full[i * n_cap..(i + 1) * n_cap];
                let rows: Vec<usize> = hits.iter().map(|h| h.0).collect();
                assert_eq!(rows, top_k_of_row(row, n_cap), "image {i}");
            }
        }
    }
}
