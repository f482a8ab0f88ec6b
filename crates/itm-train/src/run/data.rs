//! Loading the data a run names: the `shapes` splits (region features or rendered pixels), a
//! precomp folder, or a Karpathy JSON with its images.

use std::path::Path;

use itm_data::RetrievalSplit;
use itm_data::images::ImageTransform;
use itm_data::karpathy::{self, KarpathySplit};
use itm_data::shapes::{RegionFeatureConfig, ShapesConfig, ShapesDataset, ShapesSplit};

use super::error::RunError;
use super::resolve::ResolvedRun;
use super::schema::{DataSection, RunConfig};

impl DataSection {
    /// Loads the train, dev and test splits; `pixels`: how a pixel tower reads images (`None`:
    /// a region tower).
    pub fn load(&self, pixels: Option<&ImageTransform>) -> Result<[RetrievalSplit; 3], RunError> {
        if let Some(data) = self.shapes_dataset() {
            return Ok(shapes_splits(&data, pixels));
        }
        let test = match self {
            Self::Precomp { test_split, .. } => test_split.as_str(),
            _ => "test",
        };
        Ok([
            self.load_split("train", pixels)?,
            self.load_split("dev", pixels)?,
            self.load_split(test, pixels)?,
        ])
    }

    /// Loads one split: `train`, `dev` or `test` (a precomp folder: any split it has, e.g.
    /// `testall`); `pixels` as in [`DataSection::load`] (precomp folders have region features
    /// only, Karpathy data image files only).
    pub fn load_split(
        &self,
        split: &str,
        pixels: Option<&ImageTransform>,
    ) -> Result<RetrievalSplit, RunError> {
        let unknown = || {
            RunError::key(
                "data",
                "split",
                format!("unknown split {split:?}; known: train, dev, test"),
            )
        };
        Ok(match self {
            Self::Shapes { .. } => {
                let Some(data) = self.shapes_dataset() else {
                    return Err(unknown());
                };
                let chosen = match split {
                    "train" => &data.train,
                    "dev" | "val" => &data.dev,
                    "test" => &data.test,
                    _ => return Err(unknown()),
                };
                shapes_view(chosen, pixels)
            }
            Self::Precomp { path, .. } => itm_data::precomp::read_split(path, split)?,
            Self::Karpathy { json, images } => {
                let split = match split {
                    "train" => KarpathySplit::Train,
                    "dev" | "val" => KarpathySplit::Dev,
                    "test" => KarpathySplit::Test,
                    _ => return Err(unknown()),
                };
                let transform = pixels.ok_or_else(|| {
                    RunError::key(
                        &json.display().to_string(),
                        "model.images",
                        "Karpathy data are image files: the model reads region features",
                    )
                })?;
                let root = images
                    .clone()
                    .unwrap_or_else(|| json.parent().unwrap_or(Path::new(".")).join("images"));
                karpathy::load(json, &root, split)?.into_retrieval(transform.clone())?
            }
        })
    }

    /// The generated `shapes` dataset (with its scenes, for the attribute oracle); `None` for
    /// files on disk.
    pub fn shapes_dataset(&self) -> Option<ShapesDataset> {
        let Self::Shapes {
            seed,
            train_images,
            dev_images,
            test_images,
            feature_width,
        } = self
        else {
            return None;
        };
        Some(ShapesDataset::generate(&ShapesConfig {
            seed: *seed,
            train_images: *train_images,
            dev_images: *dev_images,
            test_images: *test_images,
            regions: RegionFeatureConfig {
                d_feature: *feature_width,
                ..RegionFeatureConfig::default()
            },
        }))
    }
}

impl RunConfig {
    /// How the image tower reads pixels ([`crate::ImageTower::transform`] at
    /// `model.image_size`); `None` for region features.
    pub fn pixel_transform(&self) -> Option<ImageTransform> {
        self.model.images.transform(self.model.image_size)
    }
}

impl ResolvedRun {
    /// Loads the train, dev and test splits.
    pub fn load_data(&self) -> Result<[RetrievalSplit; 3], RunError> {
        self.data.load(self.pixel_transform().as_ref())
    }

    /// The splits of `data` (generated from this run's `shapes` section, e.g. by
    /// [`DataSection::shapes_dataset`]) as the image tower reads them: region features, or the
    /// rendered images through [`RunConfig::pixel_transform`].
    pub fn shapes_splits(&self, data: &ShapesDataset) -> [RetrievalSplit; 3] {
        shapes_splits(data, self.pixel_transform().as_ref())
    }
}

/// A `shapes` split as a tower reads it: its region features (`pixels` = `None`), or its
/// rendered images through `pixels`.
fn shapes_view(split: &ShapesSplit, pixels: Option<&ImageTransform>) -> RetrievalSplit {
    match pixels {
        None => split.retrieval.clone(),
        Some(transform) => split.pixels(transform.clone()),
    }
}

/// The train, dev and test splits of `data` as [`shapes_view`] gives them.
fn shapes_splits(data: &ShapesDataset, pixels: Option<&ImageTransform>) -> [RetrievalSplit; 3] {
    [&data.train, &data.dev, &data.test].map(|split| shapes_view(split, pixels))
}
