//! Training and evaluation of matching models.
//!
//! - [`TrainingConfig`]: optimiser, schedule, loss and augmentation settings.
//! - [`Trainer`]: the epoch loop (AdamW, step decay, gradient clipping, VSE0 warm-up, validation
//!   rsum after every epoch, best checkpoint kept).
//! - [`encode_split`] / [`evaluate_split`]: embeddings and the standard protocol on a split.
//! - [`Checkpoint`]: atomic model checkpoints with their configuration.
//!
//! burn-train's `Learner` is not used; docs/architecture.md says why.

mod checkpoint;
mod config;
mod evaluate;
mod progress;
mod schedule;
mod trainer;

pub use checkpoint::{Checkpoint, TrainError};
pub use config::TrainingConfig;
pub use evaluate::{Embeddings, encode_split, evaluate_split, score_split};
pub use progress::Progress;
pub use schedule::StepDecay;
pub use trainer::{EpochRecord, Trainer, TrainingOutcome};
