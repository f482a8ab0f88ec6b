//! A scoring head added from outside the crate, through the public API only: this file is the
//! whole addition. The head joins a heads table, and what reads a table — the names lists,
//! "is cosine", the sharded scorer (the benchmarks and the memory example score through it) —
//! takes it like a built-in one. No file of the crate changes.

use burn::tensor::{Device, Tensor, TensorData};
use itm_core::similarity::{
    FeatureSets, FineGrainedSimilarity, HEADS, Head, HeadTable, ShardedScorer,
    check_fine_grained_inputs,
};

/// Centroid cosine: the dot product of the mean of an image's valid regions and the mean of a
/// caption's valid words.
struct Centroids;

impl Centroids {
    /// The mean of each set's valid prefix: `[n, K, D]` → `[n, D]`.
    fn means(sets: Tensor<3>, counts: &[usize]) -> Tensor<2> {
        let [_, _, d] = sets.dims();
        let rows: Vec<Tensor<2>> = counts
            .iter()
            .enumerate()
            .map(|(i, &count)| {
                sets.clone()
                    .slice([i..i + 1, 0..count, 0..d])
                    .mean_dim(1)
                    .reshape([1, d])
            })
            .collect();
        Tensor::cat(rows, 0)
    }
}

impl FineGrainedSimilarity for Centroids {
    fn similarity(
        &self,
        regions: Tensor<3>,
        region_counts: &[usize],
        words: Tensor<3>,
        word_lengths: &[usize],
    ) -> Tensor<2> {
        check_fine_grained_inputs(&regions, region_counts, &words, word_lengths);
        let images = Self::means(regions, region_counts);
        let captions = Self::means(words, word_lengths);
        images.matmul(captions.transpose())
    }
}

/// The table row of [`Centroids`].
struct CentroidHead;

impl Head for CentroidHead {
    fn name(&self) -> &'static str {
        "centroids"
    }

    fn summary(&self) -> &'static str {
        "dot product of the region and word centroids"
    }

    fn is_cosine(&self) -> bool {
        false
    }

    fn scorer(&self, _d_embed: usize, _device: &Device) -> Option<Box<dyn FineGrainedSimilarity>> {
        Some(Box::new(Centroids))
    }
}

static CENTROIDS: CentroidHead = CentroidHead;

#[test]
fn a_head_defined_here_joins_the_table_and_scores_through_the_sharded_scorer() {
    let table = HeadTable::builtin().with(&CENTROIDS).unwrap();
    // Listed after the built-in heads, which are unchanged.
    let names = table.names();
    assert_eq!(names.last(), Some(&"centroids"));
    assert_eq!(names.len(), HEADS.len() + 1);
    assert_eq!(HeadTable::builtin().names().len(), HEADS.len());
    let head = table.get("centroids").expect("the new row");
    assert!(!head.is_cosine());
    assert!(table.fine_grained().any(|head| head.name() == "centroids"));
    // A second head of the same name is refused with the name.
    let duplicate = table.clone().with(&CENTROIDS).unwrap_err();
    assert!(duplicate.to_string().contains("centroids"), "{duplicate}");

    // Scored block by block as the built-in heads are: the same values as one call, and
    // the hand-computed centroid products.
    let device = Device::default();
    let (n_img, k, n_cap, l, d) = (3, 2, 4, 3, 2);
    let regions: Vec<f32> = (0..n_img * k * d).map(|v| v as f32 / 10.0).collect();
    let words: Vec<f32> = (0..n_cap * l * d).map(|v| 1.0 - v as f32 / 20.0).collect();
    let counts = [2, 1, 2];
    let lengths = [3, 1, 2, 3];
    let scorer = head.scorer(d, &device).expect("a set scorer");
    let one_shot = scorer
        .similarity(
            Tensor::from_data(TensorData::new(regions.clone(), [n_img, k, d]), &device),
            &counts,
            Tensor::from_data(TensorData::new(words.clone(), [n_cap, l, d]), &device),
            &lengths,
        )
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    let sharded = ShardedScorer::new(device.clone())
        .with_memory_budget(4 * scorer.working_values_per_pair(k, l, d) * 2)
        .score(
            scorer.as_ref(),
            FeatureSets::new(&regions, &counts, k, d),
            FeatureSets::new(&words, &lengths, l, d),
            |_, _| {},
        );
    assert_eq!(sharded.len(), n_img * n_cap);
    let centroid = |values: &[f32], set: usize, slots: usize, count: usize| -> Vec<f32> {
        (0..d)
            .map(|j| {
                (0..count)
                    .map(|r| values[(set * slots + r) * d + j])
                    .sum::<f32>()
                    / count as f32
            })
            .collect()
    };
    for i in 0..n_img {
        for c in 0..n_cap {
            let image = centroid(&regions, i, k, counts[i]);
            let caption = centroid(&words, c, l, lengths[c]);
            let expected: f32 = image.iter().zip(&caption).map(|(a, b)| a * b).sum();
            for got in [sharded[i * n_cap + c], one_shot[i * n_cap + c]] {
                assert!(
                    (got - expected).abs() < 1e-5,
                    "{i},{c}: {got} vs {expected}"
                );
            }
        }
    }
}
