//! Where the images of a split come from — region features, image files or images in memory —
//! and how a batch of them is assembled, augmented and prepared ahead of the training step.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use burn::tensor::Device;
use image::RgbImage;
use itm_core::encoders::ImageInput;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::batch::{RegionBatch, RegionDrop};
use crate::error::DataError;
use crate::features::RegionFeatures;
use crate::images::{ImageTransform, PixelBatch};

/// The images of a split.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    /// Precomputed region features (in memory or memory-mapped).
    Regions(RegionFeatures),
    /// Image files, decoded and transformed when a batch needs them.
    Files {
        /// One path per image.
        paths: Arc<Vec<PathBuf>>,
        /// Resizing, normalisation and training augmentation.
        transform: ImageTransform,
    },
    /// Decoded images held in memory (e.g. rendered `shapes` scenes), transformed when a batch
    /// needs them.
    Decoded {
        /// One image per index.
        images: Arc<Vec<RgbImage>>,
        /// Resizing, normalisation and training augmentation.
        transform: ImageTransform,
    },
}

/// A prepared batch of images.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageBatch {
    /// Padded region features.
    Regions(RegionBatch),
    /// Normalised pixels.
    Pixels(PixelBatch),
}

/// Training-time augmentation of a batch: region drop for features, random resized crop and
/// flip (from the transform) for pixels, all drawn from `seed`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augmentation {
    /// Region drop for region features.
    pub region_drop: RegionDrop,
    /// Seed of this batch's random draws.
    pub seed: u64,
}

impl ImageSource {
    /// Image files with `transform`.
    pub fn files(paths: Vec<PathBuf>, transform: ImageTransform) -> Self {
        ImageSource::Files {
            paths: Arc::new(paths),
            transform,
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        match self {
            ImageSource::Regions(regions) => regions.len(),
            ImageSource::Files { paths, .. } => paths.len(),
            ImageSource::Decoded { images, .. } => images.len(),
        }
    }

    /// Whether there is no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first `images` images.
    pub fn head(&self, images: usize) -> Self {
        match self {
            ImageSource::Regions(regions) => ImageSource::Regions(regions.head(images)),
            ImageSource::Files { paths, transform } => {
                ImageSource::files(paths[..images.min(paths.len())].to_vec(), transform.clone())
            }
            ImageSource::Decoded {
                images: decoded,
                transform,
            } => ImageSource::Decoded {
                images: Arc::new(decoded[..images.min(decoded.len())].to_vec()),
                transform: transform.clone(),
            },
        }
    }

    /// The batch of `images`, augmented when `augmentation` is given.
    pub fn batch(
        &self,
        images: &[usize],
        augmentation: Option<Augmentation>,
    ) -> Result<ImageBatch, DataError> {
        match self {
            ImageSource::Regions(regions) => {
                let batch = match augmentation {
                    Some(augmentation) => {
                        let mut rng = StdRng::seed_from_u64(augmentation.seed);
                        RegionBatch::gather(
                            regions,
                            images,
                            Some((&augmentation.region_drop, &mut rng)),
                        )
                    }
                    None => RegionBatch::gather(regions, images, None),
                }?;
                Ok(ImageBatch::Regions(batch))
            }
            ImageSource::Files { paths, transform } => {
                let chosen: Vec<PathBuf> = images.iter().map(|&i| paths[i].clone()).collect();
                PixelBatch::load(&chosen, transform, augmentation.map(|a| a.seed))
                    .map(ImageBatch::Pixels)
            }
            ImageSource::Decoded {
                images: decoded,
                transform,
            } => Ok(ImageBatch::Pixels(PixelBatch::from_images(
                decoded,
                images,
                transform,
                augmentation.map(|a| a.seed),
            ))),
        }
    }

    /// Prepares `batches` on a background thread, keeping up to `ahead` ready, so that decoding
    /// and augmentation overlap the model's work. `augmentations`, when given, holds one entry
    /// per batch.
    pub fn prefetch(
        &self,
        batches: Vec<Vec<usize>>,
        augmentations: Option<Vec<Augmentation>>,
        ahead: usize,
    ) -> Receiver<Result<ImageBatch, DataError>> {
        if let Some(augmentations) = &augmentations {
            assert_eq!(
                augmentations.len(),
                batches.len(),
                "one augmentation per batch"
            );
        }
        let (sender, receiver) = sync_channel(ahead.max(1));
        let source = self.clone();
        std::thread::spawn(move || {
            for (number, images) in batches.iter().enumerate() {
                let augmentation = augmentations.as_ref().map(|a| a[number]);
                if sender.send(source.batch(images, augmentation)).is_err() {
                    break; // the consumer stopped
                }
            }
        });
        receiver
    }
}

impl ImageBatch {
    /// The model input on `device`.
    pub fn to_input(&self, device: &Device) -> ImageInput {
        match self {
            ImageBatch::Regions(batch) => ImageInput::Regions {
                features: batch.to_tensor(device),
                lengths: batch.lengths.clone(),
            },
            ImageBatch::Pixels(batch) => ImageInput::Pixels(batch.to_tensor(device)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetched_batches_equal_direct_ones() {
        let source = ImageSource::Regions(RegionFeatures::new(
            (0..40).map(|v| v as f32).collect(),
            4,
            2,
        ));
        let batches = vec![vec![0, 1], vec![4, 2], vec![3]];
        let augmentations: Vec<Augmentation> = (0..3)
            .map(|seed| Augmentation {
                region_drop: RegionDrop { prob: 0.5 },
                seed,
            })
            .collect();
        let received: Vec<ImageBatch> = source
            .prefetch(batches.clone(), Some(augmentations.clone()), 1)
            .iter()
            .map(Result::unwrap)
            .collect();
        for ((images, augmentation), batch) in batches.iter().zip(augmentations).zip(received) {
            assert_eq!(batch, source.batch(images, Some(augmentation)).unwrap());
        }
        assert_eq!(source.head(2).len(), 2);
    }
}
