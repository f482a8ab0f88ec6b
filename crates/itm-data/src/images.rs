//! Raw images: decoding, resizing, normalisation and training augmentation, in parallel.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};
use itm_core::encoders::ImageEncoderConfig;
use itm_core::encoders::clip::{CLIP_PIXEL_MEAN, CLIP_PIXEL_STD};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::error::DataError;

/// ImageNet channel means (RGB), the normalisation of published backbones.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// How images become tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageTransform {
    /// Side of the square output.
    pub size: u32,
    /// Per-channel mean subtracted after scaling to `[0, 1]`.
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by.
    pub std: [f32; 3],
    /// Area fraction range of the random resized crop (torchvision: 0.08–1).
    pub crop_scale: (f32, f32),
    /// Probability of a horizontal flip in training.
    pub flip_prob: f64,
}

impl ImageTransform {
    /// Square `size` output, ImageNet normalisation, crops of 50–100% of the area, flips half
    /// of the time.
    pub fn new(size: u32) -> Self {
        Self {
            size,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            crop_scale: (0.5, 1.0),
            flip_prob: 0.5,
        }
    }

    /// Square `size` output with OpenAI CLIP's normalisation ([`CLIP_PIXEL_MEAN`],
    /// [`CLIP_PIXEL_STD`]), otherwise as [`ImageTransform::new`].
    pub fn clip(size: u32) -> Self {
        Self {
            mean: CLIP_PIXEL_MEAN,
            std: CLIP_PIXEL_STD,
            ..Self::new(size)
        }
    }

    /// The transform a pixel `encoder` reads: CLIP's vision tower its own image size and
    /// CLIP's normalisation, the Swin levels their Swin's side and ImageNet's, the ResNet and the
    /// ViT `size` and ImageNet's; `None` for a region
    /// encoder.
    pub fn for_encoder(encoder: &ImageEncoderConfig, size: u32) -> Option<Self> {
        match encoder {
            ImageEncoderConfig::Regions(_) => None,
            ImageEncoderConfig::ResNet(_) | ImageEncoderConfig::Vit(_) => Some(Self::new(size)),
            ImageEncoderConfig::Clip(clip) => Some(Self::clip(clip.vision.image_size as u32)),
            // HAT reads its Swin's own side with ImageNet's statistics.
            ImageEncoderConfig::SwinLevels(swin) => Some(Self::new(swin.swin.image_size as u32)),
        }
    }

    /// Evaluation view: the shorter side resized to `size`, then the centre `size × size`.
    pub fn evaluate(&self, image: &RgbImage) -> RgbImage {
        let (w, h) = image.dimensions();
        let scale = self.size as f32 / w.min(h) as f32;
        let (nw, nh) = (
            ((w as f32 * scale).round() as u32).max(self.size),
            ((h as f32 * scale).round() as u32).max(self.size),
        );
        let resized = image::imageops::resize(image, nw, nh, FilterType::Triangle);
        image::imageops::crop_imm(
            &resized,
            (nw - self.size) / 2,
            (nh - self.size) / 2,
            self.size,
            self.size,
        )
        .to_image()
    }

    /// Training view: a random crop of `crop_scale` of the area (aspect ratio 3/4–4/3) resized
    /// to `size × size`, flipped horizontally with `flip_prob`.
    pub fn augment(&self, image: &RgbImage, rng: &mut impl Rng) -> RgbImage {
        let (w, h) = image.dimensions();
        let area = (w * h) as f32;
        let (mut cw, mut ch) = (w, h);
        for _ in 0..10 {
            let target = area * rng.random_range(self.crop_scale.0..=self.crop_scale.1);
            let ratio = rng
                .random_range((3.0f32 / 4.0).ln()..=(4.0f32 / 3.0).ln())
                .exp();
            let (tw, th) = (
                (target * ratio).sqrt().round() as u32,
                (target / ratio).sqrt().round() as u32,
            );
            if (1..=w).contains(&tw) && (1..=h).contains(&th) {
                (cw, ch) = (tw, th);
                break;
            }
        }
        let x = rng.random_range(0..=w - cw);
        let y = rng.random_range(0..=h - ch);
        let crop = image::imageops::crop_imm(image, x, y, cw, ch).to_image();
        let mut out = image::imageops::resize(&crop, self.size, self.size, FilterType::Triangle);
        if rng.random_bool(self.flip_prob) {
            image::imageops::flip_horizontal_in_place(&mut out);
        }
        out
    }

    /// Channel-first normalised values `[3, size, size]` of a `size × size` image.
    pub fn normalise(&self, image: &RgbImage) -> Vec<f32> {
        let plane = (self.size * self.size) as usize;
        let mut out = vec![0.0f32; 3 * plane];
        for (index, pixel) in image.pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + index] = (pixel.0[c] as f32 / 255.0 - self.mean[c]) / self.std[c];
            }
        }
        out
    }
}

/// Decodes an image file, naming the file in any error.
pub fn decode(path: &Path) -> Result<RgbImage, DataError> {
    let reader = image::ImageReader::open(path).map_err(|e| DataError::io(path, e))?;
    let reader = reader
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    let decoded: DynamicImage = reader
        .decode()
        .map_err(|e| DataError::invalid(path, format!("cannot decode the image: {e}")))?;
    Ok(decoded.to_rgb8())
}

/// A batch of images `[batch, 3, size, size]`, channel-first and normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelBatch {
    /// Row-major values.
    pub pixels: Vec<f32>,
    /// Images in the batch.
    pub batch: usize,
    /// Side of the images.
    pub size: u32,
}

impl PixelBatch {
    /// Decodes and transforms `paths` in parallel; `seed` (training) draws the augmentation of
    /// each image from its own generator, so the result does not depend on thread scheduling.
    pub fn load(
        paths: &[PathBuf],
        transform: &ImageTransform,
        seed: Option<u64>,
    ) -> Result<Self, DataError> {
        Self::prepare(
            paths.len(),
            |index| decode(&paths[index]).map(Cow::Owned),
            transform,
            seed,
        )
    }

    /// Transforms the decoded `images[i]` of every `i` in `chosen`, as [`PixelBatch::load`].
    pub fn from_images(
        images: &[RgbImage],
        chosen: &[usize],
        transform: &ImageTransform,
        seed: Option<u64>,
    ) -> Self {
        Self::prepare(
            chosen.len(),
            |index| Ok(Cow::Borrowed(&images[chosen[index]])),
            transform,
            seed,
        )
        .expect("decoded images do not fail")
    }

    /// The batch of the `count` images `image(0..count)`, augmented (training: `seed`) or in
    /// the evaluation view, normalised; in parallel.
    fn prepare<'a>(
        count: usize,
        image: impl Fn(usize) -> Result<Cow<'a, RgbImage>, DataError> + Sync,
        transform: &ImageTransform,
        seed: Option<u64>,
    ) -> Result<Self, DataError> {
        let images: Vec<Vec<f32>> = (0..count)
            .into_par_iter()
            .map(|index| {
                let image = image(index)?;
                let view = match seed {
                    Some(seed) => {
                        let mut rng = StdRng::seed_from_u64(
                            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                                .wrapping_add(index as u64),
                        );
                        transform.augment(&image, &mut rng)
                    }
                    None => transform.evaluate(&image),
                };
                Ok(transform.normalise(&view))
            })
            .collect::<Result<_, DataError>>()?;
        Ok(Self {
            pixels: images.concat(),
            batch: count,
            size: transform.size,
        })
    }

    /// The pixels as a tensor `[batch, 3, size, size]` on `device`.
    pub fn to_tensor(&self, device: &Device) -> Tensor<4> {
        let side = self.size as usize;
        Tensor::from_data(
            TensorData::new(self.pixels.clone(), [self.batch, 3, side, side]),
            device,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128])
        })
    }

    #[test]
    fn evaluate_view_is_square_and_centred() {
        let transform = ImageTransform::new(32);
        let view = transform.evaluate(&gradient(128, 64));
        assert_eq!(view.dimensions(), (32, 32));
        let centre = view.get_pixel(16, 16).0[0] as i32;
        assert!((centre - 128).abs() < 12, "{centre}");
    }

    #[test]
    fn normalise_uses_mean_and_std_channel_first() {
        let mut transform = ImageTransform::new(2);
        transform.mean = [0.5; 3];
        transform.std = [0.5; 3];
        let image = RgbImage::from_pixel(2, 2, Rgb([255, 0, 255]));
        let values = transform.normalise(&image);
        assert_eq!(values.len(), 12);
        assert_eq!(&values[0..4], &[1.0; 4]);
        assert_eq!(&values[4..8], &[-1.0; 4]);
    }

    #[test]
    fn augmentation_is_reproducible_and_varies() {
        let transform = ImageTransform::new(16);
        let image = gradient(64, 48);
        let mut a = StdRng::seed_from_u64(1);
        let mut b = StdRng::seed_from_u64(1);
        assert_eq!(
            transform.augment(&image, &mut a),
            transform.augment(&image, &mut b)
        );
        let views: Vec<RgbImage> = (0..8).map(|_| transform.augment(&image, &mut a)).collect();
        assert!(views.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn transforms_follow_the_encoder() {
        use itm_core::encoders::clip::ClipConfig;
        use itm_core::encoders::{RegionEncoderConfig, VitEncoderConfig};
        let clip = ImageEncoderConfig::Clip(ClipConfig::small(10, 9, 48, 8).image_encoder());
        let transform = ImageTransform::for_encoder(&clip, 224).unwrap();
        assert_eq!((transform.size, transform.mean), (48, CLIP_PIXEL_MEAN));
        assert_eq!(transform.std, CLIP_PIXEL_STD);
        let vit = ImageEncoderConfig::Vit(VitEncoderConfig::new(32, 4, 8, 1, 2, 8));
        assert_eq!(
            ImageTransform::for_encoder(&vit, 32),
            Some(ImageTransform::new(32))
        );
        let regions = ImageEncoderConfig::Regions(RegionEncoderConfig::new(4, 8));
        assert_eq!(ImageTransform::for_encoder(&regions, 32), None);
    }

    /// Decoded images go through the same views as files.
    #[test]
    fn images_in_memory_batch_as_files_do() {
        let dir = std::env::temp_dir().join(format!("itm-images-mem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let images = vec![gradient(20, 12), gradient(16, 16)];
        let paths: Vec<PathBuf> = images
            .iter()
            .enumerate()
            .map(|(i, image)| {
                let path = dir.join(format!("{i}.png"));
                image.save(&path).unwrap();
                path
            })
            .collect();
        let transform = ImageTransform::new(8);
        for seed in [None, Some(4)] {
            let files = PixelBatch::load(&[paths[1].clone(), paths[0].clone()], &transform, seed);
            let memory = PixelBatch::from_images(&images, &[1, 0], &transform, seed);
            assert_eq!(files.unwrap(), memory);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_image_files_are_named() {
        let dir = std::env::temp_dir().join(format!("itm-images-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.png");
        gradient(20, 10).save(&good).unwrap();
        let truncated = dir.join("truncated.png");
        let bytes = std::fs::read(&good).unwrap();
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        let text = dir.join("text.jpg");
        std::fs::write(&text, b"not an image at all").unwrap();
        let transform = ImageTransform::new(8);
        let batch = PixelBatch::load(&[good.clone(), good.clone()], &transform, Some(3)).unwrap();
        assert_eq!(batch.pixels.len(), 2 * 3 * 64);
        for (path, needle) in [
            (truncated, "truncated.png"),
            (text, "text.jpg"),
            (dir.join("missing.png"), "missing.png"),
        ] {
            let err = PixelBatch::load(&[good.clone(), path], &transform, None)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
