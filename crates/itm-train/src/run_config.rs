//! A training run described in TOML (`run.toml`): the system (a [`zoo`](crate::zoo) name with
//! overrides), the data, the training hyper-parameters, the device and the output folder.
//!
//! A file gives any subset of the keys; the rest come from the system's published defaults.
//! Unknown keys and invalid values are refused with the key's name. The effective
//! configuration (every key) is written beside the checkpoints as `run.toml`, and a resumed run
//! reads it back.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use itm_core::encoders::clip::CLIP_TEXT_POSITIONS;
use itm_core::encoders::{
    BertModel, BertTextEncoderConfig, ClipConfig, ClipImageEncoder, ClipTextEncoder,
    GruTextEncoderConfig, ImageEncoder, ImageEncoderConfig, RegionEncoderConfig,
    ResNetEncoderConfig, TextEncoder, TextEncoderConfig, VitEncoderConfig,
};
use itm_core::loss::NegativeMining;
use itm_core::models::SimilarityConfig;
use itm_core::{VseModel, VseModelConfig};
use itm_data::images::ImageTransform;
use itm_data::karpathy::{self, KarpathySplit};
use itm_data::shapes::{RegionFeatureConfig, ShapesConfig, ShapesDataset, ShapesSplit};
use itm_data::{
    CLIP_END, CaptionTokenizer, DataError, RetrievalSplit, SubwordTokenizer, Vocabulary, atomic,
};
use serde::{Deserialize, Serialize};

use crate::config::{LossKind, TrainingConfig};
use crate::error::{PretrainedError, TrainError};
use crate::pretrained::{
    clip_tokenizer, load_bert, load_clip, read_clip_config, sentence_max_length,
};
use crate::zoo::{self, ZooText};

/// Name of the effective configuration written in the output folder.
pub const RUN_FILE: &str = "run.toml";

/// A run configuration that cannot be used, or data or weights that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A key of the configuration (`origin`: the file, or "command line").
    #[error("{origin}: {key}: {message}")]
    Key {
        /// Where the value came from.
        origin: String,
        /// The key, with its section (`training.learning_rate`).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The file is not TOML or does not have the expected layout (unknown or mistyped keys).
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The parser's message (it names the key and the line).
        message: String,
    },
    /// Data or checkpoint files.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Pretrained BERT weights.
    #[error(transparent)]
    Pretrained(#[from] PretrainedError),
}

impl From<DataError> for RunError {
    fn from(error: DataError) -> Self {
        Self::Train(error.into())
    }
}

/// What the image tower reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageTower {
    /// Precomputed region features (shapes, precomp folders).
    Regions,
    /// Pixels through a small ResNet (stages 16, 32, 64; Karpathy data).
    Resnet,
    /// Pixels through a small ViT (8×8 patches of the image, 2 layers of width 64).
    Vit,
    /// Pixels through CLIP's vision transformer (the `clip` entry: the pretrained folder's, or
    /// from scratch an 8×8 grid of patches, 2 layers of width 64), normalised with CLIP's
    /// statistics.
    Clip,
}

/// The `[model]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A zoo system (`itm train --help` lists them).
    pub name: String,
    /// Joint embedding width `D`.
    pub embed: usize,
    /// Word embedding width of the BiGRU.
    pub word_dim: usize,
    /// Image tower.
    pub images: ImageTower,
    /// Side the images are resized to (pixel towers).
    pub image_size: usize,
    /// A pretrained BERT-family folder (config.json, model.safetensors, tokenizer.json): the
    /// text tower becomes BERT → Linear → GPO, learning at a tenth of the rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bert: Option<PathBuf>,
    /// A Hugging Face CLIP folder (config.json, model.safetensors, tokenizer.json, the
    /// `openai/clip-vit-base-patch32` layout) that the `clip` entry starts from: both towers,
    /// the temperature, the tokenizer; `embed` and `image_size` default to the checkpoint's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<PathBuf>,
}

/// The `[data]` section: `kind = "shapes" | "precomp" | "karpathy"` and its keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSection {
    /// The embedded synthetic dataset (region features, or the rendered pixels for a pixel
    /// tower).
    Shapes {
        /// Dataset seed.
        #[serde(default = "default_shapes_seed")]
        seed: u64,
        /// Training images (5 captions each).
        #[serde(default = "default_train_images")]
        train_images: usize,
        /// Validation images.
        #[serde(default = "default_eval_images")]
        dev_images: usize,
        /// Test images.
        #[serde(default = "default_eval_images")]
        test_images: usize,
        /// Channels of the region features.
        #[serde(default = "default_feature_width")]
        feature_width: usize,
    },
    /// A SCAN precomp folder (`{split}_ims.npy`, `_caps.txt`, `_ids.txt`).
    Precomp {
        /// The folder.
        path: PathBuf,
        /// Split that is evaluated after training (`test`, or `testall` for COCO 5K).
        #[serde(default = "default_test_split")]
        test_split: String,
    },
    /// A Karpathy split JSON with an image folder (pixel towers).
    Karpathy {
        /// The JSON (`dataset_flickr30k.json`).
        json: PathBuf,
        /// The image folder (default: `images` beside the JSON).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        images: Option<PathBuf>,
    },
}

fn default_shapes_seed() -> u64 {
    ShapesConfig::default().seed
}
fn default_train_images() -> usize {
    ShapesConfig::default().train_images
}
fn default_eval_images() -> usize {
    ShapesConfig::default().dev_images
}
fn default_feature_width() -> usize {
    256
}
fn default_test_split() -> String {
    "test".into()
}

impl Default for DataSection {
    /// `shapes` with 256-wide region features.
    fn default() -> Self {
        Self::Shapes {
            seed: default_shapes_seed(),
            train_images: default_train_images(),
            dev_images: default_eval_images(),
            test_images: default_eval_images(),
            feature_width: default_feature_width(),
        }
    }
}

impl DataSection {
    /// `shapes`, a precomp folder, or a Karpathy JSON (a `.json` file), as given on the
    /// command line.
    pub fn from_argument(argument: &str) -> Self {
        if argument == "shapes" {
            return Self::default();
        }
        let path = PathBuf::from(argument);
        if path.extension().is_some_and(|e| e == "json") {
            Self::Karpathy {
                json: path,
                images: None,
            }
        } else {
            Self::Precomp {
                path,
                test_split: default_test_split(),
            }
        }
    }

    /// Loads the train, dev and test splits; `pixels`: how a pixel tower reads images (`None`:
    /// a region tower).
    pub fn load(&self, pixels: Option<&ImageTransform>) -> Result<[RetrievalSplit; 3], RunError> {
        Ok(match self {
            Self::Shapes { .. } => shapes_splits(&self.shapes_dataset().expect("shapes"), pixels),
            Self::Precomp { test_split, .. } => [
                self.load_split("train", pixels)?,
                self.load_split("dev", pixels)?,
                self.load_split(test_split, pixels)?,
            ],
            Self::Karpathy { .. } => [
                self.load_split("train", pixels)?,
                self.load_split("dev", pixels)?,
                self.load_split("test", pixels)?,
            ],
        })
    }

    /// Loads one split: `train`, `dev` or `test` (a precomp folder: any split it has, e.g.
    /// `testall`); `pixels` as in [`DataSection::load`] (precomp folders have region features
    /// only, Karpathy data image files only).
    pub fn load_split(
        &self,
        split: &str,
        pixels: Option<&ImageTransform>,
    ) -> Result<RetrievalSplit, RunError> {
        let unknown = |known: &str| RunError::Key {
            origin: "data".into(),
            key: "split".into(),
            message: format!("unknown split {split:?}; known: {known}"),
        };
        Ok(match self {
            Self::Shapes { .. } => {
                let data = self.shapes_dataset().expect("shapes");
                let chosen = match split {
                    "train" => &data.train,
                    "dev" | "val" => &data.dev,
                    "test" => &data.test,
                    _ => return Err(unknown("train, dev, test")),
                };
                shapes_view(chosen, pixels)
            }
            Self::Precomp { path, .. } => itm_data::precomp::read_split(path, split)?,
            Self::Karpathy { json, images } => {
                let split = match split {
                    "train" => KarpathySplit::Train,
                    "dev" | "val" => KarpathySplit::Dev,
                    "test" => KarpathySplit::Test,
                    _ => return Err(unknown("train, dev, test")),
                };
                let transform = pixels.ok_or_else(|| RunError::Key {
                    origin: json.display().to_string(),
                    key: "model.images".into(),
                    message: "Karpathy data are image files: the model reads region features"
                        .into(),
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

/// A complete run: every key has a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// `flex`, `wgpu[:index]` or `cuda[:index]`.
    pub device: String,
    /// Folder of the checkpoints, metrics, chart, resume state and `run.toml`.
    pub output: PathBuf,
    /// The system.
    pub model: ModelSection,
    /// The data.
    pub data: DataSection,
    /// Optimiser, schedule, loss and augmentation.
    pub training: TrainingConfig,
}

/// A `run.toml` as written by a user: any subset of the keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunFile {
    device: Option<String>,
    output: Option<PathBuf>,
    #[serde(default)]
    model: ModelFile,
    data: Option<DataSection>,
    #[serde(default)]
    training: TrainingFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    name: Option<String>,
    embed: Option<usize>,
    word_dim: Option<usize>,
    images: Option<ImageTower>,
    image_size: Option<usize>,
    bert: Option<PathBuf>,
    clip: Option<PathBuf>,
}

/// The `[training]` keys of [`TrainingConfig`], each optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainingFile {
    epochs: Option<usize>,
    batch_size: Option<usize>,
    learning_rate: Option<f64>,
    weight_decay: Option<f64>,
    lr_decay_epoch: Option<usize>,
    lr_decay_factor: Option<f64>,
    grad_clip: Option<f64>,
    margin: Option<f64>,
    mining: Option<NegativeMining>,
    warmup_epochs: Option<usize>,
    mask_same_image: Option<bool>,
    region_drop: Option<f64>,
    validation_captions: Option<usize>,
    seed: Option<u64>,
    loss: Option<LossKind>,
    distinguishability: Option<f64>,
    relation_warmup_steps: Option<usize>,
}

impl TrainingFile {
    fn apply(self, config: &mut TrainingConfig) {
        macro_rules! set {
            ($($field:ident),*) => {
                $(if let Some(value) = self.$field {
                    config.$field = value;
                })*
            };
        }
        set!(
            epochs,
            batch_size,
            learning_rate,
            weight_decay,
            lr_decay_epoch,
            lr_decay_factor,
            grad_clip,
            margin,
            mining,
            warmup_epochs,
            mask_same_image,
            region_drop,
            validation_captions,
            seed,
            loss,
            distinguishability,
            relation_warmup_steps
        );
    }
}

/// Values given on the command line; they win over the file.
#[derive(Debug, Clone, Default)]
pub struct RunOverrides {
    /// `model.name`.
    pub model: Option<String>,
    /// `[data]`.
    pub data: Option<DataSection>,
    /// `model.embed`.
    pub embed: Option<usize>,
    /// `model.bert`.
    pub bert: Option<PathBuf>,
    /// `model.clip`.
    pub clip: Option<PathBuf>,
    /// `training.epochs`.
    pub epochs: Option<usize>,
    /// `training.batch_size`.
    pub batch_size: Option<usize>,
    /// `training.learning_rate`.
    pub learning_rate: Option<f64>,
    /// `training.seed`.
    pub seed: Option<u64>,
    /// `device`.
    pub device: Option<String>,
    /// `output`.
    pub output: Option<PathBuf>,
}

impl RunConfig {
    /// Reads `path` (any subset of the keys), applies `overrides` and fills the rest from the
    /// system's published defaults.
    pub fn from_file(path: &Path, overrides: RunOverrides) -> Result<Self, RunError> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let file: RunFile = toml::from_str(&text).map_err(|e| RunError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::resolve(file, overrides, &path.display().to_string())
    }

    /// The run described by `overrides` alone.
    pub fn from_overrides(overrides: RunOverrides) -> Result<Self, RunError> {
        Self::resolve(RunFile::default(), overrides, "command line")
    }

    fn resolve(file: RunFile, overrides: RunOverrides, origin: &str) -> Result<Self, RunError> {
        let key_error = |key: &str, message: String| RunError::Key {
            origin: origin.to_string(),
            key: key.to_string(),
            message,
        };
        let name = overrides
            .model
            .or(file.model.name)
            .unwrap_or_else(|| zoo::ZOO[0].name.to_string());
        let entry = zoo::lookup(&name).ok_or_else(|| {
            key_error(
                "model.name",
                format!("unknown system {name:?}; known: {}", zoo::names()),
            )
        })?;
        let mut training = entry.training();
        file.training.apply(&mut training);
        TrainingFile {
            epochs: overrides.epochs,
            batch_size: overrides.batch_size,
            learning_rate: overrides.learning_rate,
            seed: overrides.seed,
            ..TrainingFile::default()
        }
        .apply(&mut training);
        let clip = overrides.clip.or(file.model.clip);
        let embed = overrides.embed.or(file.model.embed);
        // A CLIP checkpoint fixes the joint width and the image side: unless given, they are
        // read from its config.json (a written run.toml gives both, so a resumed or evaluated
        // run does not need the folder).
        let clip_config = match &clip {
            Some(folder)
                if entry.text == ZooText::Clip
                    && (embed.is_none() || file.model.image_size.is_none()) =>
            {
                Some(read_clip_config(folder)?)
            }
            _ => None,
        };
        let config = Self {
            device: overrides
                .device
                .or(file.device)
                .unwrap_or_else(|| "flex".into()),
            output: overrides
                .output
                .or(file.output)
                .unwrap_or_else(|| PathBuf::from("runs").join(entry.name)),
            model: ModelSection {
                name,
                embed: embed
                    .or(clip_config.as_ref().map(|c| c.projection_dim))
                    .unwrap_or(entry.d_embed),
                word_dim: file.model.word_dim.unwrap_or(300),
                images: file.model.images.unwrap_or(if entry.text == ZooText::Clip {
                    ImageTower::Clip
                } else {
                    ImageTower::Regions
                }),
                image_size: file
                    .model
                    .image_size
                    .or(clip_config.as_ref().map(|c| c.vision.image_size))
                    .unwrap_or(224),
                bert: overrides.bert.or(file.model.bert),
                clip,
            },
            data: overrides.data.or(file.data).unwrap_or_default(),
            training,
        };
        config
            .validate()
            .map_err(|(key, message)| key_error(key, message))?;
        Ok(config)
    }

    /// Reads the effective configuration a run wrote in `folder`.
    pub fn from_run_folder(folder: &Path) -> Result<Self, RunError> {
        Self::from_file(&folder.join(RUN_FILE), RunOverrides::default())
    }

    /// Checks every value; the error names the key.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        let t = &self.training;
        let positive = |key, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err((key, format!("must be a positive number, found {value}")))
            }
        };
        let non_negative = |key, value: f64| {
            if value.is_finite() && value >= 0.0 {
                Ok(())
            } else {
                Err((key, format!("must be a number ≥ 0, found {value}")))
            }
        };
        let at_least = |key, value: usize, low: usize| {
            if value >= low {
                Ok(())
            } else {
                Err((key, format!("must be at least {low}, found {value}")))
            }
        };
        at_least("training.epochs", t.epochs, 1)?;
        at_least("training.batch_size", t.batch_size, 2)?;
        at_least("training.validation_captions", t.validation_captions, 1)?;
        positive("training.learning_rate", t.learning_rate)?;
        positive("training.lr_decay_factor", t.lr_decay_factor)?;
        positive("training.grad_clip", t.grad_clip)?;
        non_negative("training.weight_decay", t.weight_decay)?;
        non_negative("training.margin", t.margin)?;
        non_negative("training.distinguishability", t.distinguishability)?;
        if !(0.0..1.0).contains(&t.region_drop) {
            return Err((
                "training.region_drop",
                format!("must be in [0, 1), found {}", t.region_drop),
            ));
        }
        at_least("model.embed", self.model.embed, 2)?;
        at_least("model.word_dim", self.model.word_dim, 1)?;
        let entry = zoo::lookup(&self.model.name).expect("checked when resolved");
        if entry.text == ZooText::Bert && self.model.bert.is_none() {
            return Err((
                "model.bert",
                format!("{} needs a pretrained BERT-family folder", entry.name),
            ));
        }
        let clip = entry.text == ZooText::Clip;
        if clip && self.model.bert.is_some() {
            return Err((
                "model.bert",
                "the clip entry's text tower is CLIP's: a pretrained CLIP folder goes in \
                 model.clip"
                    .into(),
            ));
        }
        if !clip && self.model.clip.is_some() {
            return Err((
                "model.clip",
                format!(
                    "{} has no CLIP towers: only the clip entry reads a CLIP folder",
                    entry.name
                ),
            ));
        }
        if clip != (self.model.images == ImageTower::Clip) {
            return Err((
                "model.images",
                if clip {
                    "the clip entry reads pixels through CLIP's vision tower: use \"clip\"".into()
                } else {
                    format!(
                        "\"clip\" is the clip entry's vision tower, not {}'s",
                        entry.name
                    )
                },
            ));
        }
        if let Some(relation) = entry.instance_relation(self.model.embed)
            && !self.model.embed.is_multiple_of(relation.n_heads)
        {
            return Err((
                "model.embed",
                format!(
                    "{}'s instance relation layer has {} heads: D must be a multiple of {}, \
                     found {}",
                    entry.name, relation.n_heads, relation.n_heads, self.model.embed
                ),
            ));
        }
        let cosine = matches!(entry.similarity(self.model.embed), SimilarityConfig::Cosine);
        if t.loss.needs_embeddings() && !cosine {
            return Err((
                "training.loss",
                format!(
                    "the ambiguity-aware loss reads pooled embeddings: {} scores region and \
                     word sets (use a cosine system such as aahr)",
                    entry.name
                ),
            ));
        }
        if t.distinguishability > 0.0 && !cosine {
            return Err((
                "training.distinguishability",
                format!(
                    "the term reads pooled embeddings: {} scores region and word sets",
                    entry.name
                ),
            ));
        }
        let pixels = self.model.images != ImageTower::Regions;
        match &self.data {
            DataSection::Karpathy { .. } if !pixels => {
                return Err((
                    "model.images",
                    "Karpathy data are image files: use \"resnet\" or \"vit\" (or the clip \
                     entry)"
                        .into(),
                ));
            }
            DataSection::Precomp { .. } if pixels => {
                return Err((
                    "model.images",
                    "a precomp folder holds region features: pixel towers read shapes or a \
                     Karpathy JSON"
                        .into(),
                ));
            }
            DataSection::Shapes {
                train_images,
                dev_images,
                test_images,
                feature_width,
                ..
            } => {
                at_least("data.train_images", *train_images, 2)?;
                at_least("data.dev_images", *dev_images, 1)?;
                at_least("data.test_images", *test_images, 1)?;
                at_least("data.feature_width", *feature_width, 1)?;
            }
            _ => {}
        }
        let grid = self.model.images == ImageTower::Vit || (clip && self.model.clip.is_none());
        if grid && !self.model.image_size.is_multiple_of(8) {
            return Err((
                "model.image_size",
                format!(
                    "the image is cut into an 8×8 grid of patches: a multiple of 8, found {}",
                    self.model.image_size
                ),
            ));
        }
        if pixels {
            at_least("model.image_size", self.model.image_size, 8)?;
        }
        Ok(())
    }

    /// Writes the configuration as `run.toml` in the output folder (atomically).
    pub fn save(&self) -> Result<(), RunError> {
        std::fs::create_dir_all(&self.output).map_err(|e| DataError::io(&self.output, e))?;
        let text = toml::to_string(self).expect("a run configuration serialises");
        atomic::write(&self.output.join(RUN_FILE), text.as_bytes())?;
        Ok(())
    }

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

    /// How the image tower reads pixels: `model.image_size` square, normalised with CLIP's
    /// statistics for CLIP's tower and ImageNet's for the others; `None` for region features.
    pub fn pixel_transform(&self) -> Option<ImageTransform> {
        let size = self.model.image_size as u32;
        match self.model.images {
            ImageTower::Regions => None,
            ImageTower::Resnet | ImageTower::Vit => Some(ImageTransform::new(size)),
            ImageTower::Clip => Some(ImageTransform::clip(size)),
        }
    }

    /// The model configuration and the caption tokenizer for `train`, and the pretrained
    /// weights (on `device`) when a tower starts from a folder. A CLIP trained from scratch
    /// gets a word-level tokenizer of the training captions in CLIP's layout
    /// ([`SubwordTokenizer::clip_words`]), written to the output folder as `tokenizer.json`.
    pub fn build_model(
        &self,
        train: &RetrievalSplit,
        device: &Device,
    ) -> Result<(VseModelConfig, CaptionTokenizer, Option<PretrainedTowers>), RunError> {
        let entry = zoo::lookup(&self.model.name).expect("checked when resolved");
        let d = self.model.embed;
        let image = match self.model.images {
            ImageTower::Regions => {
                let regions = train.regions().ok_or_else(|| RunError::Key {
                    origin: RUN_FILE.into(),
                    key: "model.images".into(),
                    message: "the data have no region features".into(),
                })?;
                ImageEncoderConfig::Regions(RegionEncoderConfig::new(regions.d_feature(), d))
            }
            ImageTower::Resnet => {
                ImageEncoderConfig::ResNet(ResNetEncoderConfig::new(vec![16, 32, 64], d))
            }
            ImageTower::Vit => {
                let side = self.model.image_size;
                ImageEncoderConfig::Vit(VitEncoderConfig::new(side, side / 8, 64, 2, 4, d))
            }
            ImageTower::Clip => return self.build_clip(train, device),
        };
        Ok(match &self.model.bert {
            None => {
                let vocab = Vocabulary::build(train.captions.iter().map(String::as_str), 1);
                let text = TextEncoderConfig::Gru(
                    GruTextEncoderConfig::new(vocab.len(), d).with_d_word(self.model.word_dim),
                );
                (entry.model(image, text), vocab.into(), None)
            }
            Some(folder) => {
                let (bert, bert_config) = load_bert(folder, device)?;
                let max_len = sentence_max_length(folder, &bert_config)?;
                let tokenizer =
                    SubwordTokenizer::from_file(&folder.join("tokenizer.json"), max_len)?;
                let text = TextEncoderConfig::Bert(BertTextEncoderConfig::new(bert_config, d));
                (
                    entry.model(image, text),
                    tokenizer.into(),
                    Some(PretrainedTowers::Bert(bert)),
                )
            }
        })
    }

    /// [`RunConfig::build_model`] for the `clip` entry: the folder's CLIP (whose sizes must
    /// be `model.embed` and `model.image_size`) with its tokenizer, or
    /// [`ClipConfig::small`] over a word-level tokenizer of `train`.
    fn build_clip(
        &self,
        train: &RetrievalSplit,
        device: &Device,
    ) -> Result<(VseModelConfig, CaptionTokenizer, Option<PretrainedTowers>), RunError> {
        let entry = zoo::lookup(&self.model.name).expect("checked when resolved");
        let (config, tokenizer, pretrained) = match &self.model.clip {
            Some(folder) => {
                let (clip, config) = load_clip(folder, device)?;
                let config_path = folder.join("config.json");
                for (key, ours, theirs) in [
                    ("model.embed", self.model.embed, config.projection_dim),
                    (
                        "model.image_size",
                        self.model.image_size,
                        config.vision.image_size,
                    ),
                ] {
                    if ours != theirs {
                        return Err(RunError::Key {
                            origin: config_path.display().to_string(),
                            key: key.into(),
                            message: format!(
                                "the checkpoint has {theirs}, the run {ours}: leave the key out \
                                 or set it to {theirs}"
                            ),
                        });
                    }
                }
                let tokenizer = clip_tokenizer(folder, &config)?;
                let log_scale = f64::from(clip.logit_scale.val().into_scalar::<f32>());
                let (image, text) = clip.into_towers();
                let towers = PretrainedTowers::Clip {
                    image,
                    text,
                    log_scale,
                };
                (config, tokenizer, Some(towers))
            }
            None => {
                let path = self.output.join("tokenizer.json");
                let tokenizer =
                    SubwordTokenizer::clip_words(&train.captions, &path, CLIP_TEXT_POSITIONS)?;
                let end = tokenizer.token_id(CLIP_END).expect("the end-of-text token") as usize;
                let config = ClipConfig::small(
                    tokenizer.vocab_size(),
                    end,
                    self.model.image_size,
                    self.model.embed,
                );
                (config, tokenizer, None)
            }
        };
        let model = entry.model(
            ImageEncoderConfig::Clip(config.image_encoder()),
            TextEncoderConfig::Clip(config.text_encoder()),
        );
        Ok((model, tokenizer.into(), pretrained))
    }
}

/// Pretrained towers loaded from a Hugging Face folder by [`RunConfig::build_model`], to put
/// into a model built from the configuration it returned.
// Built once per run and moved into the model: the size difference of the variants is moot.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum PretrainedTowers {
    /// A BERT-family transformer: the text tower's `bert`.
    Bert(BertModel),
    /// Both CLIP towers with their projections, and CLIP's learned log inverse temperature
    /// (`logit_scale`), which starts InfoNCE's.
    Clip {
        /// The vision tower.
        image: ClipImageEncoder,
        /// The text tower.
        text: ClipTextEncoder,
        /// `t`, with `e^t` CLIP's inverse temperature.
        log_scale: f64,
    },
}

impl PretrainedTowers {
    /// Replaces the towers of `model` (built from the matching configuration) by these.
    ///
    /// # Panics
    ///
    /// If `model` has other towers than these weights fill.
    pub fn install(self, model: &mut VseModel) {
        match (self, &mut model.image, &mut model.text) {
            (Self::Bert(bert), _, TextEncoder::Bert(text)) => text.bert = bert,
            (
                Self::Clip {
                    image: vision,
                    text: words,
                    ..
                },
                ImageEncoder::Clip(image),
                TextEncoder::Clip(text),
            ) => {
                *image = vision;
                *text = words;
            }
            _ => panic!("the pretrained towers do not belong to this model"),
        }
    }

    /// The initial inverse temperature `e^t` of InfoNCE, when the weights come with one.
    pub fn temperature(&self) -> Option<f64> {
        match self {
            Self::Bert(_) => None,
            Self::Clip { log_scale, .. } => Some(log_scale.exp()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RunConfig, RunError> {
        let file: RunFile = toml::from_str(text).map_err(|e| RunError::File {
            path: "run.toml".into(),
            message: e.to_string(),
        })?;
        RunConfig::resolve(file, RunOverrides::default(), "run.toml")
    }

    #[test]
    fn defaults_come_from_the_system_and_the_file_overrides_them() {
        let config = parse(
            "[model]\nname = \"chan\"\nembed = 32\n[training]\nepochs = 2\n\
             [data]\nkind = \"shapes\"\ntrain_images = 50\n",
        )
        .unwrap();
        assert_eq!(config.training.margin, 0.05);
        assert_eq!(config.training.epochs, 2);
        assert_eq!(config.training.lr_decay_epoch, 15);
        assert_eq!(config.model.embed, 32);
        let DataSection::Shapes {
            train_images,
            feature_width,
            ..
        } = config.data
        else {
            panic!("shapes")
        };
        assert_eq!((train_images, feature_width), (50, 256));
        let overridden = RunConfig::resolve(
            toml::from_str("[training]\nepochs = 2\n").unwrap(),
            RunOverrides {
                epochs: Some(7),
                model: Some("xdim".into()),
                ..RunOverrides::default()
            },
            "x",
        )
        .unwrap();
        assert_eq!(
            (overridden.training.epochs, overridden.model.embed),
            (7, 1024)
        );
        let hrem = parse("[model]\nname = \"hrem\"\n").unwrap();
        assert_eq!(hrem.training.relation_warmup_steps, 8000);
        let hrem = parse("[model]\nname = \"hrem\"\n[training]\nrelation_warmup_steps = 5\n");
        assert_eq!(hrem.unwrap().training.relation_warmup_steps, 5);
    }

    /// The clip entry reads shapes pixels through CLIP's tower with CLIP's statistics; a
    /// pretrained folder gives the joint width and the image side unless the run sets them.
    #[test]
    fn clip_runs_take_their_sizes_from_the_folder() {
        let config = parse("[model]\nname = \"clip\"\n").unwrap();
        assert_eq!(config.model.images, ImageTower::Clip);
        assert_eq!(config.training.loss, LossKind::InfoNce);
        assert_eq!((config.model.embed, config.model.image_size), (512, 224));
        assert_eq!(config.pixel_transform(), Some(ImageTransform::clip(224)));
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny_clip");
        let config = parse(&format!("[model]\nname = \"clip\"\nclip = {folder:?}\n")).unwrap();
        assert_eq!((config.model.embed, config.model.image_size), (24, 32));
        // The written run names both sizes: reading it back needs no folder.
        let mut moved = config.clone();
        moved.model.clip = Some(PathBuf::from("/no/such/clip"));
        let text = toml::to_string(&moved).unwrap();
        assert_eq!(parse(&text).unwrap(), moved);
        // A size the checkpoint does not have is refused when the model is built.
        let explicit = parse(&format!(
            "[model]\nname = \"clip\"\nclip = {folder:?}\nembed = 16\n"
        ))
        .unwrap();
        assert_eq!(explicit.model.image_size, 32);
        let train = ShapesDataset::generate(&ShapesConfig {
            train_images: 2,
            dev_images: 1,
            test_images: 1,
            ..ShapesConfig::default()
        })
        .train
        .pixels(ImageTransform::clip(32));
        let Err(error) = explicit.build_model(&train, &Device::flex()) else {
            panic!("a width the checkpoint does not have")
        };
        let message = error.to_string();
        assert!(
            message.contains("config.json")
                && message.contains("model.embed")
                && message.contains("24"),
            "{message}"
        );
        assert_eq!(
            parse("[model]\nimages = \"resnet\"\nimage_size = 16\n")
                .unwrap()
                .pixel_transform(),
            Some(ImageTransform::new(16))
        );
    }

    #[test]
    fn the_written_configuration_reads_back_identically() {
        let config = parse(
            "device = \"flex\"\n[model]\nname = \"esl_h\"\n[data]\nkind = \"precomp\"\n\
             path = \"data/f30k_precomp\"\n",
        )
        .unwrap();
        let text = toml::to_string(&config).unwrap();
        assert_eq!(parse(&text).unwrap(), config);
        let strict: RunConfig = toml::from_str(&text).unwrap();
        assert_eq!(strict, config);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        for (text, needles) in [
            ("[training]\nlearning_rat = 1.0\n", &["learning_rat"][..]),
            ("[model]\nsize = 3\n", &["size"]),
            (
                "[data]\nkind = \"shapes\"\ntrain_imgs = 3\n",
                &["train_imgs"],
            ),
            ("[data]\nkind = \"coco\"\n", &["coco"]),
            ("[training]\nepochs = \"many\"\n", &["epochs"]),
            (
                "[training]\nlearning_rate = -1.0\n",
                &["training.learning_rate", "-1"],
            ),
            ("[training]\nbatch_size = 1\n", &["training.batch_size"]),
            ("[training]\nregion_drop = 1.5\n", &["training.region_drop"]),
            (
                "[model]\nname = \"clip9\"\n",
                &["model.name", "clip9", "vse_infinity_bigru"],
            ),
            ("[model]\nname = \"vse_infinity_bert\"\n", &["model.bert"]),
            (
                "[model]\nimages = \"vit\"\n[data]\nkind = \"precomp\"\npath = \"x\"\n",
                &["model.images", "precomp"],
            ),
            (
                "[model]\nname = \"clip\"\nbert = \"x\"\n",
                &["model.bert", "model.clip"],
            ),
            ("[model]\nclip = \"x\"\n", &["model.clip"]),
            ("[model]\nimages = \"clip\"\n", &["model.images"]),
            (
                "[model]\nname = \"clip\"\nimages = \"vit\"\n",
                &["model.images", "\"clip\""],
            ),
            (
                "[model]\nname = \"clip\"\nimage_size = 36\n",
                &["model.image_size", "36"],
            ),
            (
                "[model]\nname = \"clip\"\nclip = \"/no/such/clip\"\n",
                &["/no/such/clip/config.json"],
            ),
            ("[training]\nloss = \"triplet\"\n", &["loss", "triplet"]),
            (
                "[training]\ndistinguishability = -0.1\n",
                &["training.distinguishability"],
            ),
            (
                "[model]\nname = \"chan\"\n[training]\nloss = \"ambiguity_aware\"\n",
                &["training.loss", "chan"],
            ),
            (
                "[model]\nname = \"scan_t2i\"\n[training]\ndistinguishability = 0.1\n",
                &["training.distinguishability"],
            ),
            (
                "[model]\nname = \"hrem\"\nembed = 100\n",
                &["model.embed", "16"],
            ),
        ] {
            let message = parse(text).unwrap_err().to_string();
            for needle in needles {
                assert!(message.contains(needle), "{text:?}: {message}");
            }
        }
    }
}
