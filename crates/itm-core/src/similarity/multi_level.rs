//! The multi-level head of HAT and DAIM (METHODS §3 "Multi-level sum", §5 "Multi-level
//! alignment"): a SCAN head per level, summed, `S = S_low + S_mid + S_high`.
//!
//! Each level compares the image's patch set at that level (a Swin stage) with the caption's
//! token set at that level (a BERT layer), both already projected to the common width `D` by
//! the towers' per-level projections ([`crate::encoders::LevelProjection`]). HAT scores every
//! level with SCAN image-to-text attention, `λ1 = 9`, the relevances averaged over the
//! patches; this is [`super::Scan`] with [`ScanDirection::ImageToText`],
//! [`ScanAggregation::Average`] and `lambda_softmax = 9` ([`hat_level_head`]), checked against
//! HAT's own `xattn_score_i2t` (`scripts/authors/hat_score.py`). What differs from it is
//! below the f32 resolution: the cosine's epsilon (ours `x·y / ((‖x‖ + 1e-8)(‖y‖ + 1e-8))`,
//! HAT's `x·y / max(‖x‖‖y‖, 1e-8)`), and HAT's evaluation runs in float64.
//!
//! Padding: every patch of every level is valid (a Swin stage is a full grid); captions keep
//! one length at every level (the same tokens, `[CLS]` and `[SEP]` included, as HAT counts
//! them), and padded tokens are left out of each level's attention as HAT does by slicing them
//! off.
//!
//! Training sums a loss over [`MultiLevelScan::levels`] (DAIM's multi-level alignment, with its
//! adaptive margin per level) or applies one to the sum; evaluation scores the sum, and each
//! level alone for a per-level report, through the sharded scorer ([`super::ShardedScorer`]),
//! which takes one feature set per modality: the levels are packed into one
//! ([`MultiLevelScan::pack_images`], [`MultiLevelScan::pack_captions`]), and
//! [`FineGrainedSimilarity`] reads that layout.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::Tensor;

use super::fine_grained::{FineGrainedSimilarity, check_fine_grained_inputs};
use super::{Scan, ScanAggregation, ScanConfig, ScanDirection};

/// HAT's patches per level: Swin-B's last three stages at 224 × 224 (grids 28, 14, 7).
pub const HAT_IMAGE_REGIONS: [usize; 3] = [784, 196, 49];

/// HAT's softmax temperature `λ1` (its `lambda_softmax`) at every level.
pub const HAT_LAMBDA_SOFTMAX: f64 = 9.0;

/// HAT's head of one level: SCAN image-to-text, mean over the patches, `λ1 = 9`
/// ([`HAT_LAMBDA_SOFTMAX`]).
pub fn hat_level_head() -> ScanConfig {
    ScanConfig::new()
        .with_direction(ScanDirection::ImageToText)
        .with_aggregation(ScanAggregation::Average)
        .with_lambda_softmax(Some(HAT_LAMBDA_SOFTMAX))
}

/// The multi-level similarity from the levels' `[n_img, n_cap]` matrices: their sum.
///
/// # Panics
///
/// If there is no level.
pub fn sum_levels(levels: impl IntoIterator<Item = Tensor<2>>) -> Tensor<2> {
    levels
        .into_iter()
        .reduce(|sum, level| sum + level)
        .expect("one level or more")
}

/// Configuration of a [`MultiLevelScan`].
#[derive(Config, Debug)]
pub struct MultiLevelScanConfig {
    /// Patches per image at each level, low → high; their count is the number of levels
    /// (HAT, Swin-B at 224 × 224: 784, 196, 49 from stages 2, 3, 4).
    pub image_regions: Vec<usize>,
    /// The head of every level (default: HAT's, [`hat_level_head`]).
    #[config(default = "hat_level_head()")]
    pub level_head: ScanConfig,
}

impl MultiLevelScanConfig {
    /// Builds the head (no learned parameters).
    ///
    /// # Panics
    ///
    /// If there is no level or a level has no patch.
    pub fn init(&self) -> MultiLevelScan {
        assert!(
            !self.image_regions.is_empty() && self.image_regions.iter().all(|&k| k > 0),
            "MultiLevelScanConfig: image_regions {:?} needs one level or more, each with patches",
            self.image_regions
        );
        MultiLevelScan {
            level_head: self.level_head.init(),
            image_regions: self.image_regions.clone(),
        }
    }
}

/// `S = Σ_level SCAN(images_level, captions_level)`; see the module documentation.
#[derive(Module, Debug)]
pub struct MultiLevelScan {
    /// The head of every level.
    pub level_head: Scan,
    /// Patches per image at each level, low → high.
    #[module(skip)]
    pub image_regions: Vec<usize>,
}

impl MultiLevelScan {
    /// Number of levels.
    pub fn num_levels(&self) -> usize {
        self.image_regions.len()
    }

    /// The score matrix of every level, low → high.
    ///
    /// - `images`: level `ℓ` `[n_img, image_regions[ℓ], D]`, every patch valid
    /// - `captions`: level `ℓ` `[n_cap, L, D]`, caption `j` owning its first
    ///   `caption_lengths[j]` tokens at every level
    /// - returns one `[n_img, n_cap]` matrix per level
    ///
    /// # Panics
    ///
    /// If the level counts, patch counts or widths disagree with each other or with the
    /// configuration, or a length lies outside `1..=L`.
    pub fn levels(
        &self,
        images: &[Tensor<3>],
        captions: &[Tensor<3>],
        caption_lengths: &[usize],
    ) -> Vec<Tensor<2>> {
        let levels = self.num_levels();
        assert!(
            images.len() == levels && captions.len() == levels,
            "MultiLevelScan: {} image and {} caption levels given, {levels} configured",
            images.len(),
            captions.len()
        );
        images
            .iter()
            .zip(captions)
            .zip(&self.image_regions)
            .enumerate()
            .map(|(level, ((image, caption), &regions))| {
                let [n_img, k, _] = image.dims();
                assert_eq!(
                    k, regions,
                    "MultiLevelScan: image level {level} has {k} patches, {regions} configured"
                );
                self.level_head.similarity(
                    image.clone(),
                    &vec![regions; n_img],
                    caption.clone(),
                    caption_lengths,
                )
            })
            .collect()
    }

    /// The multi-level similarity, the sum of [`MultiLevelScan::levels`]: `[n_img, n_cap]`.
    pub fn forward(
        &self,
        images: &[Tensor<3>],
        captions: &[Tensor<3>],
        caption_lengths: &[usize],
    ) -> Tensor<2> {
        sum_levels(self.levels(images, captions, caption_lengths))
    }

    /// The images' levels as one set per image, for the sharded scorer: the levels'
    /// patches one after another, low first.
    ///
    /// - `images`: level `ℓ` `[n_img, image_regions[ℓ], D]`
    /// - returns `[n_img, Σ image_regions, D]`; every image's count is the full
    ///   `Σ image_regions` (no padding)
    pub fn pack_images(&self, images: Vec<Tensor<3>>) -> Tensor<3> {
        assert_eq!(
            images.len(),
            self.num_levels(),
            "MultiLevelScan::pack_images: {} levels given, {} configured",
            images.len(),
            self.num_levels()
        );
        crate::encoders::pack_image_levels(images)
    }

    /// The captions' levels as one set per caption, for the sharded scorer: row
    /// `levels · t + ℓ` is token `t` at level `ℓ`, so that a caption's valid rows stay a
    /// prefix (`levels · caption_lengths[j]` of them) and trimming a block to its longest
    /// caption trims every level alike.
    ///
    /// - `captions`: level `ℓ` `[n_cap, L, D]`, `caption_lengths` as in
    ///   [`MultiLevelScan::levels`]
    /// - returns `[n_cap, levels · L, D]` and the packed lengths `levels · caption_lengths[j]`
    pub fn pack_captions(
        &self,
        captions: Vec<Tensor<3>>,
        caption_lengths: &[usize],
    ) -> (Tensor<3>, Vec<usize>) {
        let levels = self.num_levels();
        assert_eq!(
            captions.len(),
            levels,
            "MultiLevelScan::pack_captions: {} levels given, {levels} configured",
            captions.len()
        );
        crate::encoders::pack_caption_levels(captions, caption_lengths)
    }

    /// The scores of one level on the packed layout (see [`FineGrainedSimilarity`] for
    /// [`MultiLevelScan`]): for a per-level report, shard each level with it; the levels'
    /// matrices sum to the multi-level one.
    ///
    /// # Panics
    ///
    /// If `level` is not below [`MultiLevelScan::num_levels`].
    pub fn level(&self, level: usize) -> SingleLevel<'_> {
        assert!(
            level < self.num_levels(),
            "MultiLevelScan: level {level} of {}",
            self.num_levels()
        );
        SingleLevel { head: self, level }
    }

    /// Scores level `level` of packed inputs (see [`FineGrainedSimilarity`] for
    /// [`MultiLevelScan`]): `[n_img, n_cap]`.
    fn packed_level(
        &self,
        level: usize,
        regions: &Tensor<3>,
        region_counts: &[usize],
        words: &Tensor<3>,
        word_lengths: &[usize],
    ) -> Tensor<2> {
        let dims = check_fine_grained_inputs(regions, region_counts, words, word_lengths);
        let levels = self.num_levels();
        let total: usize = self.image_regions.iter().sum();
        assert!(
            dims.regions == total && region_counts.iter().all(|&count| count == total),
            "MultiLevelScan: packed images need all {total} patches of the {levels} levels \
             (pack_images), got {} slots and counts {region_counts:?}",
            dims.regions
        );
        assert!(
            dims.words.is_multiple_of(levels)
                && word_lengths.iter().all(|len| len.is_multiple_of(levels)),
            "MultiLevelScan: packed captions hold {levels} rows per token (pack_captions), got \
             {} slots and lengths {word_lengths:?}",
            dims.words
        );
        let l = dims.words / levels;
        let lengths: Vec<usize> = word_lengths.iter().map(|len| len / levels).collect();
        let offset: usize = self.image_regions[..level].iter().sum();
        let k = self.image_regions[level];
        let image = regions.clone().narrow(1, offset, k);
        let caption = words
            .clone()
            .reshape([dims.n_cap, l, levels, dims.dim])
            .narrow(2, level, 1)
            .reshape([dims.n_cap, l, dims.dim]);
        self.level_head
            .similarity(image, &vec![k; dims.n_img], caption, &lengths)
    }

    /// Values per pair of one level with `words` token slots (unpacked) and width `dim`.
    fn level_working_values(&self, level: usize, words: usize, dim: usize) -> usize {
        self.level_head
            .working_values_per_pair(self.image_regions[level], words, dim)
    }
}

/// Scores packed features (see [`MultiLevelScan::pack_images`] and
/// [`MultiLevelScan::pack_captions`]): `regions` `[n_img, Σ image_regions, D]` with every
/// count the full `Σ image_regions`, `words` `[n_cap, levels · L, D]` with packed lengths;
/// returns the sum of the levels `[n_img, n_cap]`.
///
/// # Panics
///
/// If the inputs are not in the packed layout.
impl FineGrainedSimilarity for MultiLevelScan {
    fn similarity(
        &self,
        regions: Tensor<3>,
        region_counts: &[usize],
        words: Tensor<3>,
        word_lengths: &[usize],
    ) -> Tensor<2> {
        sum_levels(
            (0..self.num_levels()).map(|level| {
                self.packed_level(level, &regions, region_counts, &words, word_lengths)
            }),
        )
    }

    /// The levels' working sets added (the backend may keep them all alive until the sum)
    /// plus the running sum: `Σ_ℓ 6 · K_ℓ · L + 1` with SCAN's estimate, `L` the unpacked
    /// token slots (`words / levels`). SCAN i2t at HAT's low level (784 patches × 32 tokens,
    /// `D` 768) measured 5.7 values per slot on `flex` (`examples/fine_grained_memory.rs`).
    /// HAT at 224 × 224 with 32 tokens: 198k values (0.8 MB) per pair.
    fn working_values_per_pair(&self, regions: usize, words: usize, dim: usize) -> usize {
        let _ = regions;
        let l = words.div_ceil(self.num_levels());
        (0..self.num_levels())
            .map(|level| self.level_working_values(level, l, dim))
            .sum::<usize>()
            + 1
    }
}

/// One level of a [`MultiLevelScan`] on the packed layout ([`MultiLevelScan::level`]).
#[derive(Debug, Clone, Copy)]
pub struct SingleLevel<'a> {
    head: &'a MultiLevelScan,
    level: usize,
}

impl FineGrainedSimilarity for SingleLevel<'_> {
    /// The packed layout of [`MultiLevelScan`]; returns this level's `[n_img, n_cap]`.
    fn similarity(
        &self,
        regions: Tensor<3>,
        region_counts: &[usize],
        words: Tensor<3>,
        word_lengths: &[usize],
    ) -> Tensor<2> {
        self.head
            .packed_level(self.level, &regions, region_counts, &words, word_lengths)
    }

    /// This level's SCAN working set.
    fn working_values_per_pair(&self, _regions: usize, words: usize, dim: usize) -> usize {
        let l = words.div_ceil(self.head.num_levels());
        self.head.level_working_values(self.level, l, dim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::similarity::fine_grained::test_support::{assert_all_close, host};
    use crate::similarity::{FeatureSets, ShardedScorer};
    use burn::tensor::{Device, Distribution};

    const REGIONS: [usize; 3] = [5, 3, 2];
    const LENGTHS: [usize; 4] = [6, 2, 4, 1];

    fn head() -> MultiLevelScan {
        MultiLevelScanConfig::new(REGIONS.to_vec()).init()
    }

    /// Three levels of 3 images and 4 captions (6 token slots), width 8.
    fn inputs(device: &Device, seed: u64) -> (Vec<Tensor<3>>, Vec<Tensor<3>>) {
        device.seed(seed);
        let normal = Distribution::Normal(0.0, 1.0);
        let images = REGIONS
            .iter()
            .map(|&k| Tensor::random([3, k, 8], normal, device))
            .collect();
        let captions = (0..3)
            .map(|_| Tensor::random([4, 6, 8], normal, device))
            .collect();
        (images, captions)
    }

    #[test]
    fn defaults_are_hats() {
        let head = head();
        assert_eq!(head.num_levels(), 3);
        assert_eq!(head.level_head.direction, ScanDirection::ImageToText);
        assert_eq!(head.level_head.aggregation, ScanAggregation::Average);
        assert_eq!(head.level_head.lambda_softmax, 9.0);
    }

    #[test]
    fn the_sum_is_the_levels_scored_alone() {
        let device = Device::default();
        let head = head();
        let (images, captions) = inputs(&device, 1);
        let levels = head.levels(&images, &captions, &LENGTHS);
        let mut expected = vec![0.0f32; 12];
        for (level, matrix) in levels.into_iter().enumerate() {
            let alone = host(head.level_head.similarity(
                images[level].clone(),
                &[REGIONS[level]; 3],
                captions[level].clone(),
                &LENGTHS,
            ));
            assert_eq!(host(matrix), alone, "level {level}");
            expected.iter_mut().zip(alone).for_each(|(e, v)| *e += v);
        }
        let total = host(head.forward(&images, &captions, &LENGTHS));
        assert_all_close(&total, &expected, 1e-6, "sum of levels");
    }

    /// The packed layout gives the same scores, in total and per level, and sharding it under
    /// a tight budget (blocks trimmed to their longest caption) changes nothing.
    #[test]
    fn packed_and_sharded_scores_equal_the_direct_ones() {
        let device = Device::default();
        let head = head();
        let (images, captions) = inputs(&device, 2);
        let direct: Vec<Vec<f32>> = head
            .levels(&images, &captions, &LENGTHS)
            .into_iter()
            .map(host)
            .collect();
        let total = host(head.forward(&images, &captions, &LENGTHS));
        let packed_images = head.pack_images(images);
        let (packed_captions, packed_lengths) = head.pack_captions(captions, &LENGTHS);
        assert_eq!(packed_images.dims(), [3, 10, 8]);
        assert_eq!(packed_captions.dims(), [4, 18, 8]);
        assert_eq!(packed_lengths, [18, 6, 12, 3]);
        let counts = [10; 3];
        let packed = host(head.similarity(
            packed_images.clone(),
            &counts,
            packed_captions.clone(),
            &packed_lengths,
        ));
        assert_all_close(&packed, &total, 1e-6, "packed total");
        for (level, expected) in direct.iter().enumerate() {
            let got = host(head.level(level).similarity(
                packed_images.clone(),
                &counts,
                packed_captions.clone(),
                &packed_lengths,
            ));
            assert_eq!(&got, expected, "packed level {level}");
        }

        let image_values = host_3(packed_images);
        let caption_values = host_3(packed_captions);
        let image_sets = FeatureSets::new(&image_values, &counts, 10, 8);
        let caption_sets = FeatureSets::new(&caption_values, &packed_lengths, 18, 8);
        let per_pair = head.working_values_per_pair(10, 18, 8);
        assert_eq!(per_pair, 6 * (5 + 3 + 2) * 6 + 1);
        let scorer = ShardedScorer::new(device.clone()).with_memory_budget(2 * per_pair * 4);
        let sharded = scorer.score(&head, image_sets, caption_sets, |_, _| {});
        assert_all_close(&sharded, &total, 1e-5, "sharded total");
        let level = head.level(1);
        assert_eq!(level.working_values_per_pair(10, 18, 8), 6 * 3 * 6);
        let sharded = scorer.score(&level, image_sets, caption_sets, |_, _| {});
        assert_all_close(&sharded, &direct[1], 1e-5, "sharded level 1");
    }

    fn host_3(t: Tensor<3>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    #[test]
    #[should_panic(expected = "packed images need all 10 patches")]
    fn unpacked_images_are_refused() {
        let device = Device::default();
        let head = head();
        let regions = Tensor::<3>::zeros([1, 10, 2], &device);
        let words = Tensor::<3>::zeros([1, 3, 2], &device);
        head.similarity(regions, &[9], words, &[3]);
    }

    #[test]
    #[should_panic(expected = "image level 2 has 3 patches, 2 configured")]
    fn wrong_patch_counts_are_named() {
        let device = Device::default();
        let head = head();
        let (mut images, captions) = inputs(&device, 3);
        images[2] = Tensor::zeros([3, 3, 8], &device);
        head.levels(&images, &captions, &LENGTHS);
    }
}
