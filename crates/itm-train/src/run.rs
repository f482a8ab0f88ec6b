//! A training run, described in TOML (`run.toml`) and carried out one way:
//!
//! ```text
//! file + flags ──merge over the system's defaults──▶ RunConfig ──resolve──▶ ResolvedRun
//!   ──build──▶ BuiltModel (model + weights, tokenizer, temperature) ──Trainer──▶ FinishedRun
//! ```
//!
//! - [`schema`](RunConfig): the run's keys — the system (a [`zoo`](crate::zoo) name with
//!   overrides), the data, the training hyper-parameters, the device and the output folder.
//!   A file gives any subset of them; the rest come from the system's published defaults.
//!   Unknown keys and invalid values are refused with the key's name.
//! - merge: file and flags as TOML tables over the serialised defaults.
//! - [`resolve`](ResolvedRun): every value checked against the zoo entry, looked up once.
//! - data: the splits the run names.
//! - [`build`](ResolvedRun::build): the model with its pretrained weights, tokenizer and
//!   learned temperature.
//!
//! The effective configuration (every key) is written beside the checkpoints as `run.toml`,
//! and a resumed run reads it back. `itm train` and the main example share this, so a zoo
//! name means the same run in both.

mod build;
mod data;
mod error;
mod merge;
mod resolve;
mod schema;
#[cfg(test)]
mod tests;

use burn::tensor::Device;
use itm_core::eval::{Protocol, RetrievalReport};
use itm_core::models::Backbones;
use itm_data::{CaptionTokenizer, RetrievalSplit};

pub use build::BuiltModel;
pub use error::RunError;
pub use resolve::ResolvedRun;
pub use schema::{DataSection, ModelSection, RUN_FILE, RunConfig, RunOverrides};

use crate::evaluate::evaluate_split;
use crate::trainer::{Trainer, TrainingOutcome};

/// What [`ResolvedRun::train`] returns.
pub struct FinishedRun {
    /// The best model, its epoch and every epoch's record.
    pub outcome: TrainingOutcome,
    /// The model's caption tokenizer.
    pub tokenizer: CaptionTokenizer,
    /// The best model on the test split (the whole matrix, Flickr30K protocol).
    pub test: RetrievalReport,
}

impl ResolvedRun {
    /// Trains the run on `splits` (train, dev, test: [`ResolvedRun::load_data`]) on `device`,
    /// then evaluates the best model on the test split.
    ///
    /// Writes `run.toml` in the output folder, builds the model ([`ResolvedRun::build`], on
    /// `device` with autodiff, where training runs) and fits it; with `resume`, continues the
    /// run whose resume state is in the output folder instead. Prints the system and the split
    /// sizes to stderr; `quiet` hides the progress bars.
    pub fn train(
        &self,
        splits: &[RetrievalSplit; 3],
        device: Device,
        resume: bool,
        quiet: bool,
    ) -> Result<FinishedRun, RunError> {
        let entry = self.entry();
        let [train, dev, test] = splits;
        eprintln!(
            "{}: {} ({}), D = {}, {} epochs on {}",
            entry.name,
            entry.summary,
            entry.citation,
            self.model.embed,
            self.training.epochs,
            self.device
        );
        eprintln!(
            "data: {} train / {} dev / {} test images",
            train.n_images(),
            dev.n_images(),
            test.n_images()
        );
        self.save()?;
        let pretrained = self.model.init.is_some();
        let trainer = Trainer::new(self.training.clone(), device.clone())
            .with_output(&self.output)
            .with_quiet(quiet)
            .with_pretrained_backbones(Backbones {
                image: pretrained || self.model.swin.is_some(),
                text: pretrained || self.model.bert.is_some(),
            });
        let (outcome, tokenizer) = if resume {
            let (outcome, _, tokenizer) = trainer.resume(train, dev)?;
            (outcome, tokenizer)
        } else {
            let built = self.build(train, &device.clone().autodiff())?;
            let outcome = trainer.with_temperature(built.temperature).fit_from(
                built.model,
                &built.config,
                train,
                dev,
                &built.tokenizer,
            )?;
            (outcome, built.tokenizer)
        };
        let test = evaluate_split(
            &outcome.best_model,
            test,
            &tokenizer,
            &device,
            Protocol::Flickr30k,
            quiet,
        )?;
        Ok(FinishedRun {
            outcome,
            tokenizer,
            test,
        })
    }
}
