//! The run schema: [`RunConfig`] and its sections, as `run.toml` spells them, and the
//! command-line values ([`RunOverrides`]) that win over a file.

use std::path::PathBuf;

use itm_data::Tokenization;
use itm_data::shapes::ShapesConfig;
use serde::{Deserialize, Serialize};

use crate::config::TrainingConfig;
use crate::towers::{ImageTower, Towers};

/// Name of the effective configuration written in the output folder.
pub const RUN_FILE: &str = "run.toml";

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
    /// A Swin folder (a Hugging Face `SwinModel`: config.json, model.safetensors) that the
    /// Swin levels tower of `hat` and `daim` starts from, with HAT's stage norms added (unit
    /// ones); `image_size` must be the folder's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swin: Option<PathBuf>,
    /// An `itm` checkpoint folder (from `itm train` or `itm import`) to fine-tune: the model,
    /// its weights and its tokenizer come from it, the training recipe from `name`'s zoo
    /// entry; `embed`, `word_dim`, `bert` and `clip` are then not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<PathBuf>,
    /// `system` (the default): the system's own region tower; `vse_infinity`: VSE∞'s region
    /// tower under the system's head, for ablations.
    #[serde(default, skip_serializing_if = "Towers::is_system")]
    pub towers: Towers,
    /// How the BiGRU's vocabulary splits captions into words: `simple` (itm's rule, the
    /// default) or `nltk` (NLTK's `word_tokenize`, as the published BiGRU systems did); the
    /// choice is recorded in the checkpoint's `vocab.json`.
    #[serde(default, skip_serializing_if = "is_simple")]
    pub tokenizer: Tokenization,
    /// HREM's instance relation layer in training (default: the system's — on for `hrem` and
    /// `aahr`): `false` removes it (an ablation), `true` adds it to any system whose score
    /// has a global part (the cosine of pooled vectors).
    pub instance_relation: bool,
    /// The weight `w` of the local score of a multi-grained head, `S = S_global + w · S_local`
    /// (`aahr`: 1); 0 removes the local score, leaving the cosine of the pooled vectors (an
    /// ablation). Only systems with a multi-grained head have it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_weight: Option<f64>,
    /// How many levels a multi-level system (`hat`, `daim`) scores, the highest ones: 3 (the
    /// default, HAT's low, middle and high) down to 1 (the Swin's last stage and the BERT's
    /// last layer alone: a single-level model of the same size, an ablation). Only the
    /// multi-level systems have it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub levels: Option<usize>,
}

/// Whether `tokenization` is the default (left out of `run.toml`).
fn is_simple(tokenization: &Tokenization) -> bool {
    *tokenization == Tokenization::Simple
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
    /// `model.swin`.
    pub swin: Option<PathBuf>,
    /// `model.init`.
    pub init: Option<PathBuf>,
    /// `model.towers`.
    pub towers: Option<Towers>,
    /// `model.tokenizer`.
    pub tokenizer: Option<Tokenization>,
    /// `model.local_weight`.
    pub local_weight: Option<f64>,
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
