//! The epoch loop.

use std::path::PathBuf;
use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::Device;
use itm_core::eval::{Metrics, Protocol};
use itm_core::loss::{HingeLoss, HingeLossConfig};
use itm_core::{VseModel, VseModelConfig};
use itm_data::{Augmentation, RegionDrop, RetrievalSplit, TokenBatch, Vocabulary, atomic};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, TrainError};
use crate::config::TrainingConfig;
use crate::evaluate::evaluate_split;
use crate::progress::Progress;
use crate::schedule::StepDecay;

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 0-based epoch.
    pub epoch: usize,
    /// Learning rate in force.
    pub learning_rate: f64,
    /// Mean training loss over the epoch's steps.
    pub mean_loss: f64,
    /// Steps skipped because the loss was not finite.
    pub skipped_steps: usize,
    /// Validation metrics on the dev split.
    pub validation: Metrics,
    /// Wall-clock seconds of the epoch (training and validation).
    pub seconds: f64,
}

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
    /// Where the best checkpoint and `metrics.jsonl` go (`None`: keep nothing on disk).
    pub output: Option<PathBuf>,
    /// No progress bar or progress lines (epoch summaries are still printed).
    pub quiet: bool,
}

impl Trainer {
    /// A trainer on `device`, writing nothing to disk.
    pub fn new(config: TrainingConfig, device: Device) -> Self {
        Self {
            config,
            device,
            output: None,
            quiet: false,
        }
    }

    /// Writes the best checkpoint and the per-epoch metrics to `folder`.
    pub fn with_output(mut self, folder: impl Into<PathBuf>) -> Self {
        self.output = Some(folder.into());
        self
    }

    /// Hides the progress display.
    pub fn with_quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// Trains a model built from `model_config`, validating on (the first captions of) `dev`
    /// after every epoch and keeping the model with the best rsum.
    pub fn fit(
        &self,
        model_config: &VseModelConfig,
        train: &RetrievalSplit,
        dev: &RetrievalSplit,
        vocab: &Vocabulary,
    ) -> Result<TrainingOutcome, TrainError> {
        let config = &self.config;
        assert!(config.batch_size >= 2, "a batch needs at least two pairs");
        let train_device = self.device.clone().autodiff();
        train_device.seed(config.seed);
        let mut rng = StdRng::seed_from_u64(config.seed);
        let mut model = model_config.init(&train_device);
        let mut optimizer = AdamWConfig::new()
            .with_weight_decay(config.weight_decay as f32)
            .with_grad_clipping(Some(GradientClippingConfig::Norm(config.grad_clip as f32)))
            .init();
        let schedule = StepDecay {
            base: config.learning_rate,
            decay_epoch: config.lr_decay_epoch,
            factor: config.lr_decay_factor,
        };
        let loss_fn: HingeLoss = HingeLossConfig::new()
            .with_margin(config.margin)
            .with_mining(config.mining)
            .with_warmup_epochs(config.warmup_epochs)
            .init();
        let drop = RegionDrop {
            prob: config.region_drop,
        };
        let encoded: Vec<Vec<i64>> = train.captions.iter().map(|c| vocab.encode(c)).collect();
        let dev = validation_subset(dev, config.validation_captions);
        let checkpoint = self.output.as_ref().map(Checkpoint::new);
        let mut order: Vec<usize> = (0..train.captions.len()).collect();
        let mut history = Vec::new();
        let mut best: Option<(f64, usize, VseModel)> = None;

        for epoch in 0..config.epochs {
            let started = Instant::now();
            let learning_rate = schedule.at(epoch);
            order.shuffle(&mut rng);
            let batches: Vec<&[usize]> = order
                .chunks(config.batch_size)
                .filter(|batch| batch.len() >= 2)
                .collect();
            let image_batches: Vec<Vec<usize>> = batches
                .iter()
                .map(|captions| captions.iter().map(|&j| train.caption_image[j]).collect())
                .collect();
            let augmentations: Vec<Augmentation> = batches
                .iter()
                .map(|_| Augmentation {
                    region_drop: drop,
                    seed: rng.random(),
                })
                .collect();
            // Images are gathered, decoded and augmented on another thread, two batches ahead.
            let prepared = train
                .images
                .prefetch(image_batches.clone(), Some(augmentations), 2);
            let mut progress = Progress::new(&format!("epoch {epoch}"), batches.len(), self.quiet);
            let (mut loss_sum, mut steps, mut skipped) = (0.0f64, 0usize, 0usize);
            let steps_of_epoch = batches.iter().zip(&image_batches).zip(prepared.iter());
            for ((captions, images), image_batch) in steps_of_epoch {
                let image_input = image_batch?.to_input(&train_device);
                let texts: Vec<&[i64]> = captions.iter().map(|&j| encoded[j].as_slice()).collect();
                let tokens = TokenBatch::pad(&texts);
                let image_embeddings = model.encode_images(image_input);
                let caption_embeddings =
                    model.encode_captions(tokens.to_tensor(&train_device), &tokens.lengths);
                let scores = model.similarity(image_embeddings, caption_embeddings);
                let image_ids: Vec<u64> = images.iter().map(|&i| i as u64).collect();
                let ids = config.mask_same_image.then_some(image_ids.as_slice());
                let loss = loss_fn.forward(scores, ids, epoch);
                let value = loss.clone().into_scalar::<f32>() as f64;
                if !value.is_finite() {
                    skipped += 1;
                    eprintln!("epoch {epoch}: skipped a step whose loss is {value}");
                    progress.step(|| "non-finite loss".into());
                    continue;
                }
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optimizer.step(learning_rate, model, grads);
                loss_sum += value;
                steps += 1;
                progress.step(|| format!("loss {:.3}", loss_sum / steps as f64));
            }
            progress.finish();

            let snapshot = model.valid();
            let report = evaluate_split(
                &snapshot,
                &dev,
                vocab,
                &self.device,
                Protocol::Flickr30k,
                true,
            )?;
            let record = EpochRecord {
                epoch,
                learning_rate,
                mean_loss: loss_sum / steps.max(1) as f64,
                skipped_steps: skipped,
                validation: report.metrics,
                seconds: started.elapsed().as_secs_f64(),
            };
            let rsum = record.validation.rsum();
            let improved = best
                .as_ref()
                .is_none_or(|(best_rsum, _, _)| rsum > *best_rsum);
            eprintln!(
                "epoch {epoch}: loss {:.4}, lr {learning_rate:.1e}, dev rsum {rsum:.1}{}, {:.1}s",
                record.mean_loss,
                if improved { " (best)" } else { "" },
                record.seconds
            );
            if improved {
                if let Some(checkpoint) = &checkpoint {
                    checkpoint.save(&snapshot, model_config, vocab)?;
                }
                best = Some((rsum, epoch, snapshot));
            }
            history.push(record);
            if let Some(folder) = &self.output {
                write_history(folder, &history)?;
            }
        }
        let (_, best_epoch, best_model) = best.expect("at least one epoch");
        Ok(TrainingOutcome {
            best_model,
            best_epoch,
            history,
        })
    }
}

/// The images described by the first `captions` captions, with their captions.
fn validation_subset(dev: &RetrievalSplit, captions: usize) -> RetrievalSplit {
    let last = captions.min(dev.captions.len()).max(1) - 1;
    dev.first_images(dev.caption_image[last] + 1)
}

fn write_history(folder: &std::path::Path, history: &[EpochRecord]) -> Result<(), TrainError> {
    let lines: Vec<String> = history
        .iter()
        .map(|record| serde_json::to_string(record).expect("records serialise"))
        .collect();
    atomic::write(
        &folder.join("metrics.jsonl"),
        (lines.join("\n") + "\n").as_bytes(),
    )?;
    Ok(())
}
