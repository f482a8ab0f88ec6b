//! The trainer, split by job (burn-train's folder-per-concern layout):
//!
//! - `epoch_loop`: the loop — train an epoch, validate, end the epoch;
//! - `train_epoch`: one epoch's data order, augmentation and guarded optimiser steps;
//! - `objective`: the one place where the loss is chosen and a batch's loss assembled;
//! - `guards`: non-finite loss and gradient checks, batch-norm statistics put back;
//! - `schedule`: the step decay and the learning rate of each parameter group;
//! - `validate`: the set-level validation after every epoch;
//! - `resume`: the state saved after every epoch (`resume.json`) and read back;
//! - `history`: the epoch records, `metrics.jsonl`/`metrics.csv` and the chart;
//! - `live_view`: the progress display, fed through burn-train's progress protocol.

mod epoch_loop;
mod guards;
mod history;
mod live_view;
mod objective;
mod resume;
mod schedule;
mod train_epoch;
mod validate;

use std::path::PathBuf;

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, ModuleOptimizer};
use burn::tensor::Device;
use itm_core::models::Backbones;
use itm_core::{VseModel, VseModelConfig};
use itm_data::{CaptionTokenizer, DataError, RetrievalSplit};

pub use history::{EpochRecord, IntervalRecord, register_bundled_font, write_chart};
pub use resume::RESUME_FILE;
pub use schedule::StepDecay;

use crate::TrainingConfig;
use crate::{Checkpoint, TrainError};
use resume::{Start, read_optimizer_state, read_resume_state};

/// The result of [`Trainer::fit`].
#[derive(Debug)]
pub struct TrainingOutcome {
    /// The model with the best validation rsum (on the plain, non-autodiff device).
    pub best_model: VseModel,
    /// 0-based epoch of the best model.
    pub best_epoch: usize,
    /// Every epoch's record.
    pub history: Vec<EpochRecord>,
}

/// Trains a [`VseModel`] on a [`RetrievalSplit`].
pub struct Trainer {
    /// Hyper-parameters.
    pub config: TrainingConfig,
    /// Device of the run (autodiff is added for training).
    pub device: Device,
    /// Where the best checkpoint, `metrics.jsonl`, `metrics.csv`, `chart.png` and the resume
    /// state go (`None`: keep nothing on disk).
    pub output: Option<PathBuf>,
    /// No progress bar or progress lines (epoch summaries are still printed).
    pub quiet: bool,
    /// InfoNCE's initial inverse temperature `e^t` (`None`: 1/0.07).
    pub temperature: Option<f64>,
    /// Steps per logging interval: the loss, margin and skipped steps of every this many steps
    /// are recorded beside the epoch ([`IntervalRecord`], `steps.jsonl` / `steps.csv`);
    /// `training.log_steps` unless [`Trainer::with_log_steps`] sets it.
    pub log_steps: usize,
    /// The backbones loaded pretrained, which `training.frozen_backbone_epochs` keeps frozen
    /// (none unless [`Trainer::with_pretrained_backbones`] says).
    pub pretrained_backbones: Backbones,
}

/// Default steps per logging interval (`training.log_steps`).
pub const LOG_STEPS: usize = 20;

impl Trainer {
    /// A trainer on `device`, writing nothing to disk.
    pub fn new(config: TrainingConfig, device: Device) -> Self {
        let log_steps = config.log_steps.max(1);
        Self {
            config,
            device,
            output: None,
            quiet: false,
            temperature: None,
            log_steps,
            pretrained_backbones: Backbones::default(),
        }
    }

    /// Names the model's backbones that were loaded pretrained: `training.frozen_backbone_epochs`
    /// keeps them from learning in the first epochs (HAT).
    pub fn with_pretrained_backbones(mut self, backbones: Backbones) -> Self {
        self.pretrained_backbones = backbones;
        self
    }

    /// Writes the best checkpoint, the per-epoch metrics, the chart and the resume state to
    /// `folder`.
    pub fn with_output(mut self, folder: impl Into<PathBuf>) -> Self {
        self.output = Some(folder.into());
        self
    }

    /// Hides the progress display.
    pub fn with_quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// Records the step metrics every `steps` steps (at least 1).
    pub fn with_log_steps(mut self, steps: usize) -> Self {
        self.log_steps = steps.max(1);
        self
    }

    /// Starts InfoNCE's learned temperature at the inverse temperature `scale` (e.g. a
    /// pretrained CLIP's `e^logit_scale`; `None`: 1/0.07). A resumed run continues the one it
    /// saved.
    pub fn with_temperature(mut self, scale: Option<f64>) -> Self {
        self.temperature = scale;
        self
    }

    /// Trains a model built from `model_config`, validating on (the first captions of) `dev`
    /// after every epoch and keeping the model with the best rsum.
    pub fn fit(
        &self,
        model_config: &VseModelConfig,
        train: &RetrievalSplit,
        dev: &RetrievalSplit,
        tokenizer: &CaptionTokenizer,
    ) -> Result<TrainingOutcome, TrainError> {
        self.training_device().seed(self.config.seed);
        let model = model_config.init(&self.training_device());
        self.fit_from(model, model_config, train, dev, tokenizer)
    }

    /// The device training runs on: the trainer's device with autodiff. A model passed to
    /// [`Trainer::fit_from`] must live there.
    pub fn training_device(&self) -> Device {
        self.device.clone().autodiff()
    }

    /// Trains `model` (built from `model_config`, e.g. with pretrained weights loaded, on
    /// [`Trainer::training_device`]). Parameter groups the model declares learn at their own
    /// rate ([`VseModel::parameter_groups`]: with a BERT text encoder, its transformer at a
    /// tenth of the learning rate, as in VSE∞), and captions get the augmentation the model
    /// asks for ([`VseModelConfig::caption_augmentation`]: BERT's are masked, replaced,
    /// deleted). With an instance relation layer (HREM), the hinge losses of the
    /// relation-enhanced embeddings join the loss from step `relation_warmup_steps` of the run
    /// on (docs/models.md, "HREM in training").
    pub fn fit_from(
        &self,
        model: VseModel,
        model_config: &VseModelConfig,
        train: &RetrievalSplit,
        dev: &RetrievalSplit,
        tokenizer: &CaptionTokenizer,
    ) -> Result<TrainingOutcome, TrainError> {
        let optimizer = self.optimizer();
        self.run(
            model,
            optimizer,
            Start::fresh(),
            model_config,
            train,
            dev,
            tokenizer,
        )
    }

    /// Continues the run whose resume state is in the output folder (`resume.json`, written
    /// after every epoch by a trainer with the same configuration): the model, the optimiser
    /// state, the epoch, the schedule and the random draws continue where the run stopped, so
    /// the result equals that of an uninterrupted run. Returns the outcome and the model's
    /// configuration and tokenizer (read from the resume state).
    pub fn resume(
        &self,
        train: &RetrievalSplit,
        dev: &RetrievalSplit,
    ) -> Result<(TrainingOutcome, VseModelConfig, CaptionTokenizer), TrainError> {
        let output = self.output.as_ref().ok_or_else(|| {
            DataError::invalid(RESUME_FILE, "a resumed trainer needs its output folder")
        })?;
        let state = read_resume_state(output)?;
        let folder = output.join(&state.folder);
        let (model, model_config, _) = Checkpoint::new(&folder).load(&self.training_device())?;
        let optimizer = self.optimizer().load_record(read_optimizer_state(&folder)?);
        // The tokenizer comes from the best checkpoint, which stays: a subword tokenizer keeps
        // the path of its file, and the resume folder is replaced after the next epoch.
        let (best_model, _, tokenizer) = Checkpoint::new(output).load(&self.device)?;
        let start = Start {
            epoch: state.epochs_done,
            best: Some((state.best_rsum, state.best_epoch, best_model)),
            history: state.history,
            loss: state.loss,
        };
        let outcome = self.run(
            model,
            optimizer,
            start,
            &model_config,
            train,
            dev,
            &tokenizer,
        )?;
        Ok((outcome, model_config, tokenizer))
    }

    /// AdamW with the run's weight decay and per-parameter gradient norm clip.
    fn optimizer(&self) -> ModuleOptimizer {
        AdamWConfig::new()
            .with_weight_decay(self.config.weight_decay as f32)
            .with_grad_clipping(Some(GradientClippingConfig::Norm(
                self.config.grad_clip as f32,
            )))
            .init()
    }
}
