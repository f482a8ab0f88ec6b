//! Assembling padded batches (with lengths) from a split, and train-time region drop.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::Rng;

use crate::error::DataError;
use crate::features::RegionFeatures;

/// Drops each region with probability `prob` (keeping at least one), as VSE∞ does when it
/// loads precomputed features for training. The kept regions keep their order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegionDrop {
    /// Probability of dropping a region (VSE∞: 0.2).
    pub prob: f64,
}

impl RegionDrop {
    /// Indices of the regions kept out of `count`.
    pub fn kept(&self, count: usize, rng: &mut impl Rng) -> Vec<usize> {
        let kept: Vec<usize> = (0..count).filter(|_| !rng.random_bool(self.prob)).collect();
        if kept.is_empty() {
            vec![rng.random_range(0..count)]
        } else {
            kept
        }
    }
}

/// Region features of a batch, padded to the longest set: `[batch, max_regions, d_feature]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionBatch {
    /// Row-major features, zero at padding.
    pub features: Vec<f32>,
    /// Valid regions per image.
    pub lengths: Vec<usize>,
    /// Padded set size.
    pub max_regions: usize,
    /// Channels per region.
    pub d_feature: usize,
}

impl RegionBatch {
    /// The regions of `images`; with `drop`, each image loses regions at random. Fails on an
    /// image whose features hold a NaN or an infinity, naming the file and the image.
    pub fn gather(
        regions: &RegionFeatures,
        images: &[usize],
        mut drop: Option<(&RegionDrop, &mut dyn rand::RngCore)>,
    ) -> Result<Self, DataError> {
        let (count, width) = (regions.n_regions(), regions.d_feature());
        let kept: Vec<Vec<usize>> = images
            .iter()
            .map(|_| match drop.as_mut() {
                Some((drop, rng)) => drop.kept(count, rng),
                None => (0..count).collect(),
            })
            .collect();
        let max_regions = kept.iter().map(Vec::len).max().unwrap_or(0);
        let mut features = vec![0.0f32; images.len() * max_regions * width];
        for (slot, (&image, rows)) in images.iter().zip(&kept).enumerate() {
            let source = regions.image(image);
            if source.iter().any(|v| !v.is_finite()) {
                return Err(regions.non_finite_error(image));
            }
            for (position, &row) in rows.iter().enumerate() {
                let start = (slot * max_regions + position) * width;
                features[start..start + width]
                    .copy_from_slice(&source[row * width..(row + 1) * width]);
            }
        }
        Ok(Self {
            features,
            lengths: kept.iter().map(Vec::len).collect(),
            max_regions,
            d_feature: width,
        })
    }

    /// The features as a tensor `[batch, max_regions, d_feature]` on `device`.
    pub fn to_tensor(&self, device: &Device) -> Tensor<3> {
        Tensor::from_data(
            TensorData::new(
                self.features.clone(),
                [self.lengths.len(), self.max_regions, self.d_feature],
            ),
            device,
        )
    }
}

/// Token ids of a batch of captions, padded with 0 (`<pad>`) to the longest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    /// Row-major ids `[batch, max_len]`.
    pub tokens: Vec<i64>,
    /// Real tokens per caption.
    pub lengths: Vec<usize>,
    /// Padded length.
    pub max_len: usize,
}

impl TokenBatch {
    /// Pads encoded captions (each at least one token).
    pub fn pad(captions: &[&[i64]]) -> Self {
        assert!(
            captions.iter().all(|c| !c.is_empty()),
            "an encoded caption is empty"
        );
        let max_len = captions.iter().map(|c| c.len()).max().unwrap_or(0);
        let mut tokens = vec![0i64; captions.len() * max_len];
        for (row, caption) in captions.iter().enumerate() {
            tokens[row * max_len..row * max_len + caption.len()].copy_from_slice(caption);
        }
        Self {
            tokens,
            lengths: captions.iter().map(|c| c.len()).collect(),
            max_len,
        }
    }

    /// The ids as a tensor `[batch, max_len]` on `device`.
    pub fn to_tensor(&self, device: &Device) -> Tensor<2, Int> {
        Tensor::from_data(
            TensorData::new(self.tokens.clone(), [self.lengths.len(), self.max_len]),
            device,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn pad_tokens() {
        let batch = TokenBatch::pad(&[&[1, 5, 2], &[1, 2]]);
        assert_eq!(batch.tokens, vec![1, 5, 2, 1, 2, 0]);
        assert_eq!(batch.lengths, vec![3, 2]);
    }

    #[test]
    fn region_drop_keeps_at_least_one_and_about_eighty_percent() {
        let mut rng = StdRng::seed_from_u64(0);
        let drop = RegionDrop { prob: 0.2 };
        let mut total = 0;
        for _ in 0..1000 {
            let kept = drop.kept(10, &mut rng);
            assert!(!kept.is_empty() && kept.windows(2).all(|w| w[0] < w[1]));
            total += kept.len();
        }
        assert!((7_500..8_500).contains(&total), "{total}");
        let all = RegionDrop { prob: 1.0 };
        assert_eq!(all.kept(5, &mut rng).len(), 1);
    }

    #[test]
    fn gather_pads_dropped_sets() {
        let regions = RegionFeatures::new((0..12).map(|v| v as f32).collect(), 3, 2);
        let plain = RegionBatch::gather(&regions, &[1, 0], None).unwrap();
        assert_eq!(
            plain.features,
            vec![6., 7., 8., 9., 10., 11., 0., 1., 2., 3., 4., 5.]
        );
        assert_eq!(plain.lengths, vec![3, 3]);
        let mut rng = StdRng::seed_from_u64(1);
        let drop = RegionDrop { prob: 0.5 };
        let dropped = RegionBatch::gather(&regions, &[0, 1], Some((&drop, &mut rng))).unwrap();
        assert_eq!(dropped.features.len(), 2 * dropped.max_regions * 2);
        for (slot, &len) in dropped.lengths.iter().enumerate() {
            let padding = &dropped.features
                [(slot * dropped.max_regions + len) * 2..(slot + 1) * dropped.max_regions * 2];
            assert!(padding.iter().all(|&v| v == 0.0));
        }
    }
}
