//! Training and evaluation of matching models.
//!
//! - [`TrainingConfig`]: optimiser, schedule, loss and augmentation settings.
//! - [`Trainer`]: the epoch loop (AdamW, step decay, gradient clipping, VSE0 warm-up, validation
//!   rsum after every epoch, best checkpoint kept).
//! - [`encode_split`] / [`evaluate_split`]: embeddings and the standard protocol on a split.
//! - [`TrainError`]: what failed in training, naming the file or the setting.
//! - [`Checkpoint`]: atomic model checkpoints with their configuration; [`Trainer::resume`]
//!   continues a stopped run from the state saved after every epoch.
//! - [`RunConfig`]: a run in TOML (a [`zoo`] system, data, hyper-parameters, device, output),
//!   checked once into a [`ResolvedRun`], which [builds](ResolvedRun::build) its model and
//!   [trains](ResolvedRun::train) it (`itm train` and the main example).
//! - [`zoo`]: the published systems; [`towers`]: the image and text towers, named once.
//! - [`write_chart`]: loss, margin and validation rsum per epoch as a PNG.
//! - [`load_bert`], [`load_safetensors_into`]: pretrained weights from SafeTensors files in the
//!   PyTorch layout (Hugging Face BERT folders, image backbones); [`load_clip`]: Hugging Face
//!   CLIP folders; [`load_swin`]: Hugging Face Swin folders, [`load_swin_hat`]: HAT's Swin
//!   names; [`bert_config_from_json`], [`clip_config_from_json`], [`swin_config_from_json`]:
//!   their `config.json` (the core crate's configs know no file format).
//!
//! burn-train's `Learner` is not used (docs/architecture.md says why); the trainer's live view
//! follows burn-train's progress protocol (`TrainingProgressLogger`).

mod checkpoint;
mod config;
mod error;
mod evaluate;
pub mod import;
mod pretrained;
mod progress;
mod run;
pub mod towers;
mod trainer;
mod two_stage;
pub mod zoo;

pub use checkpoint::Checkpoint;
pub use config::TrainingConfig;
pub use error::{PretrainedError, TrainError};
pub use evaluate::{
    Embeddings, HostSets, SplitLevelScores, check_image_input, cosine_scores, encode_captions,
    encode_images, encode_sets, encode_split, evaluate_split, score_split, score_split_levels,
};
pub use pretrained::{
    BERT_IGNORED, BERT_KEY_REMAP, BertConfigError, CLIP_IGNORED, CLIP_KEY_REMAP, ClipConfigError,
    HAT_DROP_PATH_RATE, HAT_SWIN_PREFIX, SWIN_HAT_IGNORED, SWIN_HAT_KEY_REMAP, SWIN_IGNORED,
    SWIN_KEY_REMAP, SwinConfigError, bert_config_from_json, clip_config_from_json, clip_tokenizer,
    load_bert, load_clip, load_safetensors_ignoring, load_safetensors_into, load_swin,
    load_swin_hat, load_swin_hat_safetensors, read_clip_config, safetensors_names,
    safetensors_state_dict, save_safetensors, sentence_max_length, swin_config_from_hat,
    swin_config_from_json,
};
pub use progress::Progress;
pub use run::{
    BuiltModel, DataSection, FinishedRun, ModelSection, RUN_FILE, ResolvedRun, RunConfig, RunError,
    RunOverrides,
};
pub use towers::{ImageTower, RegionTower, TextTower, Towers};
pub use trainer::{
    EpochRecord, IntervalRecord, LOG_STEPS, RESUME_FILE, StepDecay, Trainer, TrainingOutcome,
    register_bundled_font, write_chart,
};
pub use two_stage::{
    Direction, TwoStageRankings, TwoStageReport, evaluate_split_two_stage, two_stage_matrix,
    two_stage_rankings,
};
