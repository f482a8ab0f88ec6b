//! `shapes`: the embedded synthetic captioned-image dataset.
//!
//! Deterministic from a seed and built in seconds, so that a newcomer can train and evaluate a
//! model with no download. Each image has two views: its pixels ([`render`]) and precomputed
//! region features as a detector would give ([`scene_regions`]). Five captions per image come
//! from varied templates ([`captions_for`]), and the [`oracle_scores`] give the ceiling a model
//! could reach from what the captions state.

mod caption;
mod oracle;
mod regions;
mod render;
mod scene;

pub use caption::{Caption, Meaning, Mention, Relation, captions_for};
pub use oracle::{oracle_scores, satisfied, statements};
pub use regions::{CODE_WIDTH, RegionFeatureConfig, RegionProjection, scene_regions};
pub use render::render;
pub use scene::{Colour, GRID, IMAGE_SIZE, Object, Scene, Shape, Size};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::atomic;
use crate::error::DataError;
use crate::features::RegionFeatures;
use crate::images::ImageTransform;
use crate::karpathy::{KarpathyFile, KarpathyImage, KarpathySentence};
use crate::source::ImageSource;
use crate::split::RetrievalSplit;

/// Sizes and seed of a generated `shapes` dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShapesConfig {
    /// Master seed: the same seed gives the same dataset.
    pub seed: u64,
    /// Training images (5 captions each).
    pub train_images: usize,
    /// Validation images.
    pub dev_images: usize,
    /// Test images (1,000 gives the Flickr30K test size: 5,000 captions).
    pub test_images: usize,
    /// Region feature synthesis.
    pub regions: RegionFeatureConfig,
}

impl Default for ShapesConfig {
    fn default() -> Self {
        Self {
            seed: 2024,
            train_images: 10_000,
            dev_images: 1_000,
            test_images: 1_000,
            regions: RegionFeatureConfig::default(),
        }
    }
}

/// One split of `shapes`: scenes, their captions and the region view as a retrieval split.
#[derive(Debug, Clone)]
pub struct ShapesSplit {
    /// The scene of every image.
    pub scenes: Vec<Scene>,
    /// Five captions per image, image `i` owning captions `5i..5i+4`.
    pub captions: Vec<Caption>,
    /// Region features, caption texts and the caption → image map.
    pub retrieval: RetrievalSplit,
    /// Seed of this split (render textures derive from it).
    pub seed: u64,
}

/// The three splits of `shapes`.
#[derive(Debug, Clone)]
pub struct ShapesDataset {
    /// Training split.
    pub train: ShapesSplit,
    /// Validation split.
    pub dev: ShapesSplit,
    /// Test split.
    pub test: ShapesSplit,
}

impl ShapesDataset {
    /// Generates the dataset (in parallel; deterministic whatever the thread count).
    pub fn generate(config: &ShapesConfig) -> Self {
        let projection = RegionProjection::new(config.regions.d_feature, config.seed);
        let split = |salt: u64, images: usize| {
            ShapesSplit::generate(
                config.seed.wrapping_mul(31).wrapping_add(salt),
                images,
                &projection,
                &config.regions,
            )
        };
        Self {
            train: split(1, config.train_images),
            dev: split(2, config.dev_images),
            test: split(3, config.test_images),
        }
    }
}

impl ShapesDataset {
    /// Writes the pixels as PNG files (`images/{split}/{index}.png`) with a Karpathy split JSON
    /// (`dataset_shapes.json`) in `folder`, so that `shapes` also goes through the raw-image
    /// loaders. Returns the JSON's path.
    pub fn write_karpathy(&self, folder: &Path) -> Result<PathBuf, DataError> {
        let mut images = Vec::new();
        for (name, split) in [
            ("train", &self.train),
            ("val", &self.dev),
            ("test", &self.test),
        ] {
            let dir = folder.join("images").join(name);
            std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
            (0..split.scenes.len())
                .into_par_iter()
                .try_for_each(|index| {
                    let path = dir.join(format!("{index}.png"));
                    split.image(index).save(&path).map_err(|e| {
                        DataError::invalid(&path, format!("cannot write the image: {e}"))
                    })
                })?;
            for index in 0..split.scenes.len() {
                images.push(KarpathyImage {
                    filename: format!("{index}.png"),
                    filepath: Some(name.to_string()),
                    split: name.to_string(),
                    sentences: split.captions[5 * index..5 * index + 5]
                        .iter()
                        .map(|c| KarpathySentence {
                            raw: c.text.clone(),
                        })
                        .collect(),
                    imgid: Some(images.len() as u64),
                    cocoid: None,
                });
            }
        }
        let json = folder.join("dataset_shapes.json");
        let text = serde_json::to_vec(&KarpathyFile { images }).expect("the index serialises");
        atomic::write(&json, &text)?;
        Ok(json)
    }
}

impl ShapesSplit {
    fn generate(
        seed: u64,
        images: usize,
        projection: &RegionProjection,
        regions: &RegionFeatureConfig,
    ) -> Self {
        let per_image: Vec<(Scene, Vec<Caption>, Vec<f32>)> = (0..images)
            .into_par_iter()
            .map(|index| {
                let mut rng =
                    StdRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(index as u64));
                let scene = Scene::random(&mut rng);
                let captions = captions_for(&scene, &mut rng);
                let features = scene_regions(&scene, projection, regions, &mut rng);
                (scene, captions, features)
            })
            .collect();
        let mut scenes = Vec::with_capacity(images);
        let mut captions = Vec::with_capacity(images * 5);
        let mut features = Vec::with_capacity(images * regions.n_regions * regions.d_feature);
        for (scene, scene_captions, scene_features) in per_image {
            scenes.push(scene);
            captions.extend(scene_captions);
            features.extend(scene_features);
        }
        let retrieval = RetrievalSplit::new(
            ImageSource::Regions(RegionFeatures::new(
                features,
                regions.n_regions,
                regions.d_feature,
            )),
            captions.iter().map(|c| c.text.clone()).collect(),
            (0..images * 5).map(|j| j / 5).collect(),
        )
        .expect("generated splits are consistent");
        Self {
            scenes,
            captions,
            retrieval,
            seed,
        }
    }

    /// The pixels of image `index`.
    pub fn image(&self, index: usize) -> image::RgbImage {
        render(
            &self.scenes[index],
            self.seed ^ (index as u64).wrapping_mul(0x9E37_79B9),
        )
    }

    /// The split with its rendered pixels as the images (in memory), read through
    /// `transform` without its geometric augmentation: captions state where objects are
    /// ("at the top left", "to the left of"), which a flip or a crop would falsify, so the
    /// training view is the evaluation view.
    pub fn pixels(&self, transform: ImageTransform) -> RetrievalSplit {
        let images: Vec<image::RgbImage> = (0..self.scenes.len())
            .into_par_iter()
            .map(|index| self.image(index))
            .collect();
        let transform = ImageTransform {
            crop_scale: (1.0, 1.0),
            flip_prob: 0.0,
            ..transform
        };
        RetrievalSplit {
            images: ImageSource::Decoded {
                images: Arc::new(images),
                transform,
            },
            ..self.retrieval.clone()
        }
    }

    /// The oracle's similarity matrix `[n_img, n_cap]` over this split.
    pub fn oracle_scores(&self) -> Vec<f32> {
        let meanings: Vec<Meaning> = self.captions.iter().map(|c| c.meaning.clone()).collect();
        oracle_scores(&self.scenes, &meanings, self.seed)
    }

    /// The first `images` images and their captions (a quick subset for tests and smoke runs).
    pub fn subset(&self, images: usize) -> Self {
        let images = images.min(self.scenes.len());
        let captions = images * 5;
        Self {
            scenes: self.scenes[..images].to_vec(),
            captions: self.captions[..captions].to_vec(),
            retrieval: self.retrieval.first_images(images),
            seed: self.seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> ShapesConfig {
        ShapesConfig {
            seed: 5,
            train_images: 40,
            dev_images: 10,
            test_images: 10,
            regions: RegionFeatureConfig {
                d_feature: 32,
                n_regions: 8,
                noise: 1.0,
            },
        }
    }

    #[test]
    fn generation_is_deterministic() {
        let a = ShapesDataset::generate(&small());
        let b = ShapesDataset::generate(&small());
        assert_eq!(a.train.scenes, b.train.scenes);
        assert_eq!(a.test.captions, b.test.captions);
        assert_eq!(
            a.dev.retrieval.regions().unwrap().data(),
            b.dev.retrieval.regions().unwrap().data()
        );
        assert_ne!(a.train.scenes[..10], a.dev.scenes[..], "splits differ");
    }

    #[test]
    fn karpathy_round_trip() {
        let data = ShapesDataset::generate(&ShapesConfig {
            train_images: 6,
            dev_images: 3,
            test_images: 4,
            ..small()
        });
        let folder =
            std::env::temp_dir().join(format!("itm-shapes-karpathy-{}", std::process::id()));
        let json = data.write_karpathy(&folder).unwrap();
        let root = folder.join("images");
        let test =
            crate::karpathy::load(&json, &root, crate::karpathy::KarpathySplit::Test).unwrap();
        assert_eq!(test.images.len(), 4);
        assert_eq!(test.captions, data.test.retrieval.captions);
        assert_eq!(
            crate::images::decode(&test.images[2]).unwrap(),
            data.test.image(2)
        );
        let train =
            crate::karpathy::load(&json, &root, crate::karpathy::KarpathySplit::Train).unwrap();
        assert_eq!(train.caption_image, data.train.retrieval.caption_image);
        std::fs::remove_dir_all(&folder).unwrap();
    }

    /// The pixel view holds the rendered scenes, and its training view is its evaluation view.
    #[test]
    fn pixels_are_the_rendered_scenes_unaugmented() {
        use crate::batch::RegionDrop;
        use crate::source::{Augmentation, ImageBatch};
        let data = ShapesDataset::generate(&ShapesConfig {
            train_images: 6,
            dev_images: 2,
            test_images: 2,
            ..small()
        });
        let transform = ImageTransform::clip(32);
        let split = data.train.pixels(transform.clone());
        assert_eq!(split.captions, data.train.retrieval.captions);
        assert_eq!(split.caption_image, data.train.retrieval.caption_image);
        assert!(split.regions().is_none());
        let augmentation = Augmentation {
            region_drop: RegionDrop { prob: 0.5 },
            seed: 9,
        };
        let plain = split.images.batch(&[4, 1], None).unwrap();
        assert_eq!(
            split.images.batch(&[4, 1], Some(augmentation)).unwrap(),
            plain
        );
        let ImageBatch::Pixels(batch) = plain else {
            panic!("pixels")
        };
        let expected = transform.normalise(&transform.evaluate(&data.train.image(4)));
        assert_eq!(&batch.pixels[..3 * 32 * 32], expected.as_slice());
        assert_eq!(split.images.head(3).len(), 3);
    }

    #[test]
    fn precomp_round_trip() {
        let data = ShapesDataset::generate(&small());
        let folder =
            std::env::temp_dir().join(format!("itm-shapes-precomp-{}", std::process::id()));
        let ids: Vec<u64> = (0..data.dev.scenes.len() as u64).collect();
        crate::precomp::write_split(&folder, "dev", &data.dev.retrieval, &ids).unwrap();
        let read = crate::precomp::read_split(&folder, "dev").unwrap();
        assert_eq!(read, data.dev.retrieval);
        std::fs::remove_dir_all(&folder).unwrap();
    }

    #[test]
    fn oracle_ranks_the_ground_truth_high() {
        let data = ShapesDataset::generate(&ShapesConfig {
            test_images: 100,
            ..small()
        });
        let test = &data.test;
        let scores = test.oracle_scores();
        let n_cap = test.captions.len();
        for (j, caption) in test.captions.iter().enumerate() {
            let image = j / 5;
            assert_eq!(
                satisfied(&test.scenes[image], &caption.meaning),
                statements(&caption.meaning),
                "the true image satisfies every statement"
            );
            let best = (0..test.scenes.len())
                .map(|i| scores[i * n_cap + j].floor() as usize)
                .max()
                .unwrap();
            assert_eq!(
                best,
                statements(&caption.meaning),
                "no image satisfies more"
            );
        }
    }
}
