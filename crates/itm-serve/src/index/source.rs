//! Where the items of an index come from, recorded in its manifest so that the pictures of a
//! result can be shown again (contact sheet).

use std::path::{Path, PathBuf};

use image::RgbImage;
use itm_core::VseModelConfig;
use itm_core::encoders::ImageEncoderConfig;
use itm_data::images::{ImageTransform, decode};
use itm_data::karpathy::{self, KarpathySplit};
use itm_data::shapes::{ShapesConfig, ShapesDataset, ShapesSplit};
use itm_data::{DataError, ImageSource, RetrievalSplit, precomp};
use serde::{Deserialize, Serialize};

/// The data an index was built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IndexSource {
    /// One split (`train`, `dev` or `test`) of the embedded `shapes` dataset, regenerated from
    /// its configuration; pixel models read the rendered images.
    Shapes {
        /// The dataset configuration (seed, sizes, region synthesis).
        config: ShapesConfig,
        /// The split.
        split: String,
        /// Side the pixels are resized to, for pixel models (`None`: region features).
        pixel_size: Option<u32>,
    },
    /// One split of a SCAN precomp folder (region features; no pixels to show).
    Precomp {
        /// The folder.
        folder: PathBuf,
        /// The split (`train`, `dev`, `test`, `testall`).
        split: String,
    },
    /// One split of a Karpathy JSON with an image folder.
    Karpathy {
        /// The JSON file.
        json: PathBuf,
        /// The folder image paths are resolved under.
        images: PathBuf,
        /// The split (`train`, `dev`, `test`).
        split: String,
        /// Side the pixels are resized to.
        pixel_size: u32,
    },
}

/// An indexed image: its dataset id and, when it has one, its file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageItem {
    /// Dataset id (Karpathy `cocoid`/`imgid`, precomp id line, or position).
    pub id: String,
    /// File name relative to the source's image folder.
    pub file: Option<String>,
}

/// An indexed caption: its text and the image it describes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionItem {
    /// The caption.
    pub text: String,
    /// Row of the image it describes.
    pub image: usize,
}

/// What the rows of an index's matrices are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexItems {
    /// One per row of `images.npy`.
    pub images: Vec<ImageItem>,
    /// One per row of `captions.npy`.
    pub captions: Vec<CaptionItem>,
}

fn shapes_split<'a>(dataset: &'a ShapesDataset, split: &str) -> Result<&'a ShapesSplit, String> {
    match split {
        "train" => Ok(&dataset.train),
        "dev" | "val" => Ok(&dataset.dev),
        "test" => Ok(&dataset.test),
        other => Err(format!(
            "shapes has no split {other:?} (train, dev or test)"
        )),
    }
}

fn karpathy_split(split: &str) -> Result<KarpathySplit, String> {
    match split {
        "train" => Ok(KarpathySplit::Train),
        "dev" | "val" => Ok(KarpathySplit::Dev),
        "test" => Ok(KarpathySplit::Test),
        other => Err(format!(
            "a Karpathy JSON has no split {other:?} (train, dev or test)"
        )),
    }
}

impl IndexSource {
    /// Whether this source gives the kind of input the model's image tower reads; `Err` says
    /// why not.
    pub fn check_model(&self, model: &VseModelConfig) -> Result<(), String> {
        let regions = match &model.image {
            ImageEncoderConfig::Regions(config) => Some(config.d_feature),
            ImageEncoderConfig::ResNet(_)
            | ImageEncoderConfig::Vit(_)
            | ImageEncoderConfig::Clip(_)
            | ImageEncoderConfig::SwinLevels(_) => None,
        };
        match (self, regions) {
            (
                IndexSource::Shapes {
                    config,
                    pixel_size: None,
                    ..
                },
                Some(width),
            ) if config.regions.d_feature != width => Err(format!(
                "the model reads {width}-wide region features, the shapes configuration gives {}",
                config.regions.d_feature
            )),
            (IndexSource::Shapes { pixel_size, .. }, regions)
                if pixel_size.is_some() == regions.is_some() =>
            {
                Err(if regions.is_some() {
                    "the model reads region features, not pixels".to_string()
                } else {
                    "the model reads pixels, not region features".to_string()
                })
            }
            (IndexSource::Precomp { .. }, None) => {
                Err("the model reads pixels; a precomp folder holds region features".to_string())
            }
            (IndexSource::Karpathy { .. }, Some(_)) => Err(
                "the model reads region features; a Karpathy JSON gives image files".to_string(),
            ),
            _ => Ok(()),
        }
    }

    /// The split to encode and what its rows are, its pixels read as `encoder` reads them
    /// ([`ImageTransform::for_encoder`] at the source's side). Shapes pixels are rendered as
    /// PNG files into `scratch` (a folder the caller removes).
    pub fn load(
        &self,
        scratch: &Path,
        encoder: &ImageEncoderConfig,
    ) -> Result<(RetrievalSplit, IndexItems), DataError> {
        // A region model never reads a pixel source ([`IndexSource::check_model`]); ImageNet's
        // statistics stand in for the transform it does not use.
        let transform = |size: u32| {
            ImageTransform::for_encoder(encoder, size).unwrap_or_else(|| ImageTransform::new(size))
        };
        match self {
            IndexSource::Shapes {
                config,
                split,
                pixel_size,
            } => {
                let dataset = ShapesDataset::generate(config);
                let data = shapes_split(&dataset, split)
                    .map_err(|e| DataError::Inconsistent(e.to_string()))?;
                let n = data.scenes.len();
                let names: Vec<String> = (0..n).map(|i| format!("{split}/{i}.png")).collect();
                let retrieval = match pixel_size {
                    None => data.retrieval.clone(),
                    Some(size) => {
                        let mut paths = Vec::with_capacity(n);
                        for (index, name) in names.iter().enumerate() {
                            let path = scratch.join(name);
                            let folder = path.parent().unwrap_or(scratch);
                            std::fs::create_dir_all(folder)
                                .map_err(|e| DataError::io(folder, e))?;
                            data.image(index).save(&path).map_err(|e| {
                                DataError::invalid(&path, format!("cannot write the image: {e}"))
                            })?;
                            paths.push(path);
                        }
                        RetrievalSplit::new(
                            ImageSource::files(paths, transform(*size)),
                            data.retrieval.captions.clone(),
                            data.retrieval.caption_image.clone(),
                        )?
                    }
                };
                let images = names
                    .into_iter()
                    .enumerate()
                    .map(|(i, file)| ImageItem {
                        id: i.to_string(),
                        file: Some(file),
                    })
                    .collect();
                Ok((retrieval.clone(), items(images, &retrieval)))
            }
            IndexSource::Precomp { folder, split } => {
                let retrieval = precomp::read_split(folder, split)?;
                let [_, _, ids_path] = precomp::split_files(folder, split);
                let ids = read_ids(&ids_path, &retrieval)?;
                let images = ids
                    .into_iter()
                    .map(|id| ImageItem { id, file: None })
                    .collect();
                Ok((retrieval.clone(), items(images, &retrieval)))
            }
            IndexSource::Karpathy {
                json,
                images: root,
                split,
                pixel_size,
            } => {
                let which = karpathy_split(split).map_err(|e| DataError::invalid(json, e))?;
                let data = karpathy::load(json, root, which)?;
                let images = data
                    .images
                    .iter()
                    .zip(&data.ids)
                    .map(|(path, id)| ImageItem {
                        id: id.to_string(),
                        file: Some(
                            path.strip_prefix(root)
                                .unwrap_or(path)
                                .to_string_lossy()
                                .into_owned(),
                        ),
                    })
                    .collect();
                let retrieval = data.into_retrieval(transform(*pixel_size))?;
                Ok((retrieval.clone(), items(images, &retrieval)))
            }
        }
    }

    /// The pixels of the image rows of this source (`items` from its index). Precomp sources
    /// have none.
    pub fn pictures(&self, items: &IndexItems) -> Result<Pictures, String> {
        match self {
            IndexSource::Shapes { config, split, .. } => {
                let dataset = ShapesDataset::generate(config);
                Ok(Pictures::Shapes(shapes_split(&dataset, split)?.clone()))
            }
            IndexSource::Precomp { folder, .. } => Err(format!(
                "{}: a precomp folder holds region features only, there are no pictures to show",
                folder.display()
            )),
            IndexSource::Karpathy { images: root, .. } => Ok(Pictures::Files(
                items
                    .images
                    .iter()
                    .map(|item| item.file.as_ref().map(|f| root.join(f)))
                    .collect(),
            )),
        }
    }

    /// Side of the pixels a pixel model reads (`None` for region features).
    pub fn pixel_size(&self) -> Option<u32> {
        match self {
            IndexSource::Shapes { pixel_size, .. } => *pixel_size,
            IndexSource::Precomp { .. } => None,
            IndexSource::Karpathy { pixel_size, .. } => Some(*pixel_size),
        }
    }
}

/// Where the pixels of an index's images come from.
#[derive(Debug, Clone)]
pub enum Pictures {
    /// Scenes of a `shapes` split, rendered on demand.
    Shapes(ShapesSplit),
    /// Image files, one per row (`None`: the row has no file).
    Files(Vec<Option<PathBuf>>),
}

impl Pictures {
    /// The pixels of image row `index`.
    pub fn get(&self, index: usize) -> Result<RgbImage, DataError> {
        match self {
            Pictures::Shapes(split) => Ok(split.image(index)),
            Pictures::Files(files) => match &files[index] {
                Some(path) => decode(path),
                None => Err(DataError::Inconsistent(format!(
                    "image {index} has no file"
                ))),
            },
        }
    }
}

fn items(images: Vec<ImageItem>, split: &RetrievalSplit) -> IndexItems {
    IndexItems {
        images,
        captions: split
            .captions
            .iter()
            .zip(&split.caption_image)
            .map(|(text, &image)| CaptionItem {
                text: text.clone(),
                image,
            })
            .collect(),
    }
}

/// Image ids of a precomp split: the ids file (one per image, or one per caption repeated
/// five times), else positions.
fn read_ids(path: &Path, split: &RetrievalSplit) -> Result<Vec<String>, DataError> {
    let n = split.n_images();
    if !path.exists() {
        return Ok((0..n).map(|i| i.to_string()).collect());
    }
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let step = if lines.len() == n {
        1
    } else if lines.len() == split.captions.len() && split.captions.len() == 5 * n {
        5
    } else {
        return Err(DataError::invalid(
            path,
            format!("{} ids for {n} images", lines.len()),
        ));
    };
    Ok(lines.iter().step_by(step).map(|s| s.to_string()).collect())
}
