//! A retrieval split: the images (region features or pixels), captions, and which image each
//! caption describes.

use crate::error::DataError;
use crate::features::RegionFeatures;
use crate::source::ImageSource;

/// Images (region features, files or decoded images) and captions of one split.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalSplit {
    /// The images.
    pub images: ImageSource,
    /// Caption texts.
    pub captions: Vec<String>,
    /// `caption_image[j]` = index of the image caption `j` describes.
    pub caption_image: Vec<usize>,
}

impl RetrievalSplit {
    /// Checks that every caption points at an image, that every image has a caption, and that
    /// no caption is empty. In-memory features are checked for NaN and infinities here;
    /// memory-mapped ones as batches read them (or with
    /// [`RegionFeatures::check_finite`](crate::RegionFeatures::check_finite)).
    pub fn new(
        images: ImageSource,
        captions: Vec<String>,
        caption_image: Vec<usize>,
    ) -> Result<Self, DataError> {
        if captions.len() != caption_image.len() {
            return Err(DataError::Inconsistent(format!(
                "{} captions but {} caption → image entries",
                captions.len(),
                caption_image.len()
            )));
        }
        let n_images = images.len();
        let mut described = vec![false; n_images];
        for (caption, &image) in caption_image.iter().enumerate() {
            if image >= n_images {
                return Err(DataError::Inconsistent(format!(
                    "caption {caption} describes image {image}, but there are {n_images} images"
                )));
            }
            described[image] = true;
        }
        if let Some(image) = described.iter().position(|&d| !d) {
            return Err(DataError::Inconsistent(format!(
                "image {image} has no caption"
            )));
        }
        if let Some(caption) = captions.iter().position(|c| c.trim().is_empty()) {
            return Err(DataError::Inconsistent(format!(
                "caption {caption} is empty"
            )));
        }
        if let ImageSource::Regions(regions) = &images
            && regions.source().is_none()
        {
            regions.check_finite()?;
        }
        Ok(Self {
            images,
            captions,
            caption_image,
        })
    }

    /// The region features, when the images are given as such.
    pub fn regions(&self) -> Option<&RegionFeatures> {
        match &self.images {
            ImageSource::Regions(regions) => Some(regions),
            ImageSource::Files { .. } | ImageSource::Decoded { .. } => None,
        }
    }

    /// Number of images.
    pub fn n_images(&self) -> usize {
        self.images.len()
    }

    /// The first `images` images and the captions that describe them, in order.
    pub fn first_images(&self, images: usize) -> Self {
        let images = images.min(self.n_images());
        let kept: Vec<usize> = (0..self.captions.len())
            .filter(|&j| self.caption_image[j] < images)
            .collect();
        Self {
            images: self.images.head(images),
            captions: kept.iter().map(|&j| self.captions[j].clone()).collect(),
            caption_image: kept.iter().map(|&j| self.caption_image[j]).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(images: usize) -> ImageSource {
        ImageSource::Regions(RegionFeatures::new(vec![0.5; images * 2 * 3], 2, 3))
    }

    #[test]
    fn rejects_inconsistent_splits() {
        let caps = |n: usize| vec!["a red circle".to_string(); n];
        assert!(RetrievalSplit::new(features(2), caps(2), vec![0, 1]).is_ok());
        let err = RetrievalSplit::new(features(2), caps(2), vec![0, 2]).unwrap_err();
        assert!(err.to_string().contains("describes image 2"), "{err}");
        let err = RetrievalSplit::new(features(2), caps(2), vec![0, 0]).unwrap_err();
        assert!(err.to_string().contains("image 1 has no caption"), "{err}");
        let err = RetrievalSplit::new(features(1), vec![" ".into()], vec![0]).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let mut bad = vec![0.5; 6];
        bad[4] = f32::NAN;
        let err = RetrievalSplit::new(
            ImageSource::Regions(RegionFeatures::new(bad, 2, 3)),
            caps(1),
            vec![0],
        )
        .unwrap_err();
        assert!(err.to_string().contains("image 0 has a NaN"), "{err}");
    }

    #[test]
    fn first_images_keeps_their_captions() {
        let split = RetrievalSplit::new(
            features(3),
            vec!["a".into(), "b".into(), "c".into(), "d".into()],
            vec![0, 1, 2, 1],
        )
        .unwrap();
        let head = split.first_images(2);
        assert_eq!(head.n_images(), 2);
        assert_eq!(head.captions, vec!["a", "b", "d"]);
        assert_eq!(head.caption_image, vec![0, 1, 1]);
    }
}
