//! Carrying out a [`RunConfig`]: build the system's model (or continue a stopped run), train it
//! and score the best model on the test split. `itm train` and the main example's `--model`
//! share this, so a zoo name means the same run in both.

use burn::tensor::Device;
use itm_core::eval::{Protocol, RetrievalReport};
use itm_data::{CaptionTokenizer, RetrievalSplit};

use crate::evaluate::evaluate_split;
use crate::run_config::{RunConfig, RunError};
use crate::trainer::{Trainer, TrainingOutcome};
use crate::zoo;

/// What [`RunConfig::train`] returns.
pub struct FinishedRun {
    /// The best model, its epoch and every epoch's record.
    pub outcome: TrainingOutcome,
    /// The model's caption tokenizer.
    pub tokenizer: CaptionTokenizer,
    /// The best model on the test split (the whole matrix, Flickr30K protocol).
    pub test: RetrievalReport,
}

impl RunConfig {
    /// Trains the run on `splits` (train, dev, test: [`RunConfig::load_data`]) on `device`, then
    /// evaluates the best model on the test split.
    ///
    /// Writes `run.toml` in the output folder, builds the system's model (with the pretrained
    /// BERT of `model.bert` loaded into the text tower, or the CLIP of `model.clip` into both
    /// towers, its temperature starting InfoNCE's) and fits it; with `resume`, continues
    /// the run whose resume state is in the output folder instead. Prints the system and the
    /// split sizes to stderr; `quiet` hides the progress bars.
    pub fn train(
        &self,
        splits: &[RetrievalSplit; 3],
        device: Device,
        resume: bool,
        quiet: bool,
    ) -> Result<FinishedRun, RunError> {
        let entry = zoo::lookup(&self.model.name).expect("a resolved configuration");
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
        let trainer = Trainer::new(self.training.clone(), device.clone())
            .with_output(&self.output)
            .with_quiet(quiet);
        let (outcome, tokenizer) = if resume {
            let (outcome, _, tokenizer) = trainer.resume(train, dev)?;
            (outcome, tokenizer)
        } else {
            let training_device = trainer.training_device();
            let (model_config, tokenizer, pretrained) =
                self.build_model(train, &training_device)?;
            let outcome = match pretrained {
                None => trainer.fit(&model_config, train, dev, &tokenizer)?,
                Some(pretrained) => {
                    training_device.seed(self.training.seed);
                    let mut model = model_config.init(&training_device);
                    let trainer = trainer.with_temperature(pretrained.temperature());
                    pretrained.install(&mut model);
                    trainer.fit_from(model, &model_config, train, dev, &tokenizer)?
                }
            };
            (outcome, tokenizer)
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
