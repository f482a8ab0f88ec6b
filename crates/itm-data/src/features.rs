//! Region features of a set of images, in memory or memory-mapped from a `.npy` file.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use crate::error::DataError;
use crate::npy::MappedF32;

enum Storage {
    Owned(Vec<f32>),
    Mapped(MappedF32),
}

/// Region features of a set of images, row-major `[n_images, n_regions, d_feature]`.
///
/// Large feature files (Flickr30K train is 8.5 GB, COCO 33 GB) are memory-mapped by
/// [`RegionFeatures::open_npy`]: only the pages of the images a batch touches are read. Clones
/// share the storage.
#[derive(Clone)]
pub struct RegionFeatures {
    storage: Arc<Storage>,
    n_regions: usize,
    d_feature: usize,
}

impl RegionFeatures {
    /// Wraps a row-major buffer. Panics if it does not hold whole images.
    pub fn new(data: Vec<f32>, n_regions: usize, d_feature: usize) -> Self {
        let per_image = n_regions * d_feature;
        assert!(per_image > 0, "regions and feature width must be positive");
        assert!(
            data.len().is_multiple_of(per_image),
            "buffer must hold whole images"
        );
        Self {
            storage: Arc::new(Storage::Owned(data)),
            n_regions,
            d_feature,
        }
    }

    /// Memory-maps a C-ordered little-endian float32 `.npy` file of shape `[N, K, F]`,
    /// checking its header, its size and its alignment (the values are checked when a batch
    /// reads them, or all at once by [`RegionFeatures::check_finite`]).
    pub fn open_npy(path: &Path) -> Result<Self, DataError> {
        let array = MappedF32::open(path, 3, "[images, regions, features]")?;
        let (n_regions, d_feature) = (array.shape()[1], array.shape()[2]);
        Ok(Self {
            storage: Arc::new(Storage::Mapped(array)),
            n_regions,
            d_feature,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.data().len() / (self.n_regions * self.d_feature)
    }

    /// Whether there is no image.
    pub fn is_empty(&self) -> bool {
        self.data().is_empty()
    }

    /// Regions per image `K`.
    pub fn n_regions(&self) -> usize {
        self.n_regions
    }

    /// Channels per region `F`.
    pub fn d_feature(&self) -> usize {
        self.d_feature
    }

    /// The file the features are mapped from, if any.
    pub fn source(&self) -> Option<&Path> {
        match self.storage.as_ref() {
            Storage::Owned(_) => None,
            Storage::Mapped(array) => Some(array.path()),
        }
    }

    /// The whole buffer.
    pub fn data(&self) -> &[f32] {
        match self.storage.as_ref() {
            Storage::Owned(data) => data,
            Storage::Mapped(array) => array.values(),
        }
    }

    /// The regions of image `index`, `[n_regions, d_feature]` row-major.
    pub fn image(&self, index: usize) -> &[f32] {
        let per_image = self.n_regions * self.d_feature;
        &self.data()[index * per_image..(index + 1) * per_image]
    }

    /// The first `images` images (copied into memory).
    pub fn head(&self, images: usize) -> Self {
        let per_image = self.n_regions * self.d_feature;
        Self::new(
            self.data()[..images * per_image].to_vec(),
            self.n_regions,
            self.d_feature,
        )
    }

    /// An error naming the source and image `index` whose features are not finite.
    pub fn non_finite_error(&self, index: usize) -> DataError {
        let message = format!("image {index} has a NaN or infinite region feature");
        match self.source() {
            Some(path) => DataError::invalid(path, message),
            None => DataError::Inconsistent(message),
        }
    }

    /// Checks every value (in parallel); for a mapped file this reads it whole.
    pub fn check_finite(&self) -> Result<(), DataError> {
        let per_image = self.n_regions * self.d_feature;
        let bad = self
            .data()
            .par_chunks(per_image)
            .position_first(|image| image.iter().any(|v| !v.is_finite()));
        match bad {
            Some(index) => Err(self.non_finite_error(index)),
            None => Ok(()),
        }
    }
}

impl PartialEq for RegionFeatures {
    fn eq(&self, other: &Self) -> bool {
        self.n_regions == other.n_regions
            && self.d_feature == other.d_feature
            && self.data() == other.data()
    }
}

impl fmt::Debug for RegionFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegionFeatures")
            .field("images", &self.len())
            .field("n_regions", &self.n_regions)
            .field("d_feature", &self.d_feature)
            .field("source", &self.source())
            .finish()
    }
}
