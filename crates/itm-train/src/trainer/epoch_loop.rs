//! The epoch loop: train an epoch, validate, end the epoch (best model, history, resume
//! state); a chart at the end.

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::train::logger::TrainingProgressLogger;
use itm_core::eval::Metrics;
use itm_core::{VseModel, VseModelConfig};
use itm_data::{CaptionTokenizer, DataError, RetrievalSplit};

use super::history::{EpochRecord, write_chart, write_history};
use super::live_view::EpochView;
use super::objective::Objective;
use super::resume::{ResumeState, Start, save_resume_state};
use super::schedule::StepDecay;
use super::train_epoch::{Stepping, TrainingData};
use super::validate::{validate, validation_subset};
use super::{Trainer, TrainingOutcome};
use crate::{Checkpoint, TrainError};

/// The best model so far (rsum, epoch, model on the plain device) and every epoch's record.
struct Standing {
    best: Option<(f64, usize, VseModel)>,
    history: Vec<EpochRecord>,
}

impl Trainer {
    /// Trains `model` with `optimizer` from `start` to the configured number of epochs.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run(
        &self,
        mut model: VseModel,
        optimizer: ModuleOptimizer,
        start: Start,
        model_config: &VseModelConfig,
        train: &RetrievalSplit,
        dev: &RetrievalSplit,
        tokenizer: &CaptionTokenizer,
    ) -> Result<TrainingOutcome, TrainError> {
        let config = &self.config;
        assert!(config.batch_size >= 2, "a batch needs at least two pairs");
        let schedule = StepDecay {
            base: config.learning_rate,
            decay_epoch: config.lr_decay_epoch,
            factor: config.lr_decay_factor,
        };
        let objective = Objective::new(
            config,
            &model,
            &start.loss,
            self.temperature,
            &self.training_device(),
        )?;
        let data = TrainingData::new(train, tokenizer, model_config)?;
        let dev = validation_subset(dev, config.validation_captions);
        let mut stepping = Stepping {
            optimizer,
            objective,
            groups: model.parameter_groups(),
            frozen: model.backbone_parameters(self.pretrained_backbones),
        };
        let mut standing = Standing {
            best: start.best,
            history: start.history,
        };
        let mut view = EpochView::new(self.quiet);
        view.start(config.epochs, start.epoch, None, None);

        for epoch in start.epoch..config.epochs {
            let started = Instant::now();
            let learning_rate = schedule.at(epoch);
            let (trained, steps) =
                self.train_epoch(model, &mut stepping, &data, epoch, learning_rate, &mut view)?;
            model = trained;
            let snapshot = model.valid();
            let validation = validate(&snapshot, &dev, tokenizer, &self.device, epoch)?;
            let record = EpochRecord {
                epoch,
                learning_rate,
                mean_loss: steps.mean_loss(),
                margin: stepping
                    .objective
                    .epoch_margin(steps.margin_sum, steps.margin_steps),
                skipped_steps: steps.skipped,
                validation,
                seconds: started.elapsed().as_secs_f64(),
                intervals: steps.intervals,
            };
            self.end_epoch(
                &mut standing,
                record,
                snapshot,
                &model,
                &stepping,
                model_config,
                tokenizer,
            )?;
            view.update_epoch(epoch);
        }
        view.end();
        self.finish(standing)
    }

    /// Reports the epoch of `record`, keeps `snapshot` (and checkpoints it) when its rsum is
    /// the best so far, and writes the history and the resume state (`model`, the optimiser
    /// and the loss state of `stepping`).
    #[allow(clippy::too_many_arguments)]
    fn end_epoch(
        &self,
        standing: &mut Standing,
        record: EpochRecord,
        snapshot: VseModel,
        model: &VseModel,
        stepping: &Stepping,
        model_config: &VseModelConfig,
        tokenizer: &CaptionTokenizer,
    ) -> Result<(), TrainError> {
        let epoch = record.epoch;
        let rsum = record.validation.rsum();
        // A degenerate epoch (a collapsed model) is never the best, whatever its rsum.
        let improved = !record.validation.degenerate
            && standing
                .best
                .as_ref()
                .is_none_or(|(best_rsum, _, _)| rsum > *best_rsum);
        eprintln!(
            "epoch {epoch}: loss {:.4}, lr {:.1e}, dev rsum {rsum:.1}{}{}, {:.1}s",
            record.mean_loss,
            record.learning_rate,
            tie_note(&record.validation),
            if improved { " (best)" } else { "" },
            record.seconds
        );
        if improved {
            if let Some(folder) = &self.output {
                Checkpoint::new(folder).save(&snapshot, model_config, tokenizer)?;
            }
            standing.best = Some((rsum, epoch, snapshot));
        }
        standing.history.push(record);
        let Some(folder) = &self.output else {
            return Ok(());
        };
        write_history(folder, &standing.history)?;
        // Until an epoch is kept there is no best checkpoint to resume beside: a run stopped
        // then starts again from the beginning.
        let Some((best_rsum, best_epoch, _)) = standing.best.as_ref() else {
            return Ok(());
        };
        save_resume_state(
            folder,
            model,
            &stepping.optimizer,
            model_config,
            tokenizer,
            ResumeState {
                folder: format!("resume-{}", epoch + 1),
                epochs_done: epoch + 1,
                best_rsum: *best_rsum,
                best_epoch: *best_epoch,
                history: standing.history.clone(),
                loss: stepping.objective.state(),
            },
        )
    }

    /// Draws the chart and returns the best model; fails when no epoch ran, or when every
    /// epoch's dev scores were degenerate.
    fn finish(&self, standing: Standing) -> Result<TrainingOutcome, TrainError> {
        let Standing { best, history } = standing;
        if let Some(folder) = &self.output
            && !history.is_empty()
        {
            write_chart(&folder.join("chart.png"), &history)?;
        }
        if best.is_none() && !history.is_empty() {
            return Err(TrainError::Degenerate {
                epochs: history.len(),
            });
        }
        let (_, best_epoch, best_model) = best.ok_or_else(|| {
            DataError::invalid(
                self.output.as_deref().unwrap_or(Path::new(".")),
                format!(
                    "no epoch to train: the run has {} epochs",
                    self.config.epochs
                ),
            )
        })?;
        Ok(TrainingOutcome {
            best_model,
            best_epoch,
            history,
        })
    }
}

/// `", N ties"` after the dev rsum when queries tied at their ground truth, and a flag when
/// the scores are degenerate; empty otherwise.
fn tie_note(metrics: &Metrics) -> String {
    match (metrics.ties(), metrics.degenerate) {
        (0, _) => String::new(),
        (ties, false) => format!(" ({ties} queries tied)"),
        (ties, true) => format!(" ({ties} queries tied: degenerate, never kept)"),
    }
}
