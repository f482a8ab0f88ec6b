//! The epoch loop, with resume state saved after every epoch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer, OptimizerRecord};
use burn::tensor::{Device, Int, Tensor};
use itm_core::encoders::{ImageInput, TextEncoderConfig};
use itm_core::eval::{Metrics, Protocol};
use itm_core::loss::{
    AdaptiveMarginConfig, AdaptiveMarginLoss, AmbiguityAwareConfig, AmbiguityAwareLoss,
    DistinguishabilityConfig, HingeLoss, HingeLossConfig, InfoNce, InfoNceConfig, MarginStatistics,
    NegativeMining,
};
use itm_core::models::SimilarityConfig;
use itm_core::{VseModel, VseModelConfig};
use itm_data::{
    Augmentation, CaptionTokenizer, DataError, RegionDrop, RetrievalSplit, TokenBatch, atomic,
    augment_subwords,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::chart::write_chart;
use crate::checkpoint::Checkpoint;
use crate::config::{LossKind, TrainingConfig};
use crate::error::TrainError;
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
    /// Margin of the loss in force: the fixed one, or the mean over the epoch's steps of the
    /// adaptive one (`None` for a loss without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    /// Steps skipped because the loss or a gradient was not finite.
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

/// Where a run stands after its last completed epoch (`resume.json` in the output folder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResumeState {
    /// The folder (beside `resume.json`) with the model and optimiser state.
    folder: String,
    /// Epochs completed.
    epochs_done: usize,
    /// Best validation rsum so far and its epoch.
    best_rsum: f64,
    best_epoch: usize,
    /// Every completed epoch's record.
    history: Vec<EpochRecord>,
    /// The state the loss carries between steps (empty for a stateless loss).
    #[serde(default)]
    loss: LossState,
}

/// What a loss carries from step to step, saved with the resume state so that a resumed run
/// continues it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct LossState {
    /// The adaptive margin's running score statistics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    margin_statistics: Option<MarginStatistics>,
    /// InfoNCE's learned temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    temperature: Option<Temperature>,
}

/// The learned log inverse temperature of InfoNCE and the id of its parameter (the optimiser
/// state of the parameter is stored under that id).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Temperature {
    param_id: u64,
    log_scale: f64,
}

/// File of the resume state in the output folder.
pub const RESUME_FILE: &str = "resume.json";

/// The seed of epoch `epoch`'s data order, augmentation and dropout: a function of the run's
/// seed and the epoch alone, so that a resumed run draws what an uninterrupted one would.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The run's position: the epoch to start from, the best model so far and the history.
struct Start {
    epoch: usize,
    best: Option<(f64, usize, VseModel)>,
    history: Vec<EpochRecord>,
    loss: LossState,
}

/// The objective of a run with the state it carries between steps.
enum Objective {
    Hinge(HingeLoss),
    AdaptiveMargin(AdaptiveMarginLoss),
    /// With the epochs that sum over every negative before its mining takes over.
    AmbiguityAware(AmbiguityAwareLoss, usize),
    /// The temperature is a module: the optimiser steps it with the model.
    InfoNce(InfoNce),
}

/// One step's loss and the margin it used.
struct StepLoss {
    loss: Tensor<1>,
    margin: Option<f64>,
}

impl Objective {
    /// The objective of `config`, continuing `state` (on `device`, the training device);
    /// InfoNCE starts from the inverse temperature `temperature` (default 1/0.07) unless
    /// `state` has one.
    fn new(
        config: &TrainingConfig,
        state: &LossState,
        temperature: Option<f64>,
        device: &Device,
    ) -> Self {
        match config.loss {
            LossKind::Hinge => Self::Hinge(
                HingeLossConfig::new()
                    .with_margin(config.margin)
                    .with_mining(config.mining)
                    .with_warmup_epochs(config.warmup_epochs)
                    .init(),
            ),
            LossKind::AdaptiveMargin => Self::AdaptiveMargin(
                AdaptiveMarginConfig::new()
                    .with_mining(config.mining)
                    .with_warmup_epochs(config.warmup_epochs)
                    .init()
                    .with_statistics(state.margin_statistics.unwrap_or_default()),
            ),
            LossKind::AmbiguityAware => Self::AmbiguityAware(
                AmbiguityAwareConfig::new()
                    .with_margin(config.margin)
                    .with_mining(config.mining)
                    .init(),
                config.warmup_epochs,
            ),
            LossKind::InfoNce => {
                let mut loss = match temperature {
                    Some(scale) => InfoNceConfig::new().with_initial_scale(scale),
                    None => InfoNceConfig::new(),
                }
                .init(device);
                if let Some(saved) = state.temperature {
                    loss.log_scale = Param::initialized(
                        ParamId::from(saved.param_id),
                        Tensor::from_floats([saved.log_scale as f32], device).require_grad(),
                    );
                }
                Self::InfoNce(loss)
            }
        }
    }

    /// The loss of a batch: `scores` `[B, B]`, the pooled embeddings `[B, D]` when the loss
    /// reads them.
    fn forward(
        &mut self,
        scores: Tensor<2>,
        embeddings: Option<(Tensor<2>, Tensor<2>)>,
        image_ids: Option<&[u64]>,
        epoch: usize,
    ) -> StepLoss {
        match self {
            Self::Hinge(loss) => StepLoss {
                loss: loss.forward(scores, image_ids, epoch),
                margin: Some(loss.margin),
            },
            Self::AdaptiveMargin(loss) => {
                let out = loss.forward(scores, image_ids, epoch);
                StepLoss {
                    loss: out.loss,
                    margin: Some(out.margin),
                }
            }
            Self::AmbiguityAware(loss, warmup_epochs) => {
                let (images, captions) = embeddings.expect("AAHR reads the embeddings");
                let loss = AmbiguityAwareLoss {
                    mining: if epoch < *warmup_epochs {
                        NegativeMining::All
                    } else {
                        loss.mining
                    },
                    ..loss.clone()
                };
                StepLoss {
                    loss: loss.forward(scores, images, captions, image_ids).loss,
                    margin: Some(loss.margin),
                }
            }
            Self::InfoNce(loss) => StepLoss {
                loss: loss.forward(scores),
                margin: None,
            },
        }
    }

    /// The margin of an epoch whose steps' margins sum to `sum` over `steps`: the fixed margin,
    /// the mean adaptive one, `None` for InfoNCE.
    fn epoch_margin(&self, sum: f64, steps: usize) -> Option<f64> {
        match self {
            Self::Hinge(loss) => Some(loss.margin),
            Self::AmbiguityAware(loss, _) => Some(loss.margin),
            Self::AdaptiveMargin(_) => (steps > 0).then(|| sum / steps as f64),
            Self::InfoNce(_) => None,
        }
    }

    /// The state to save with the resume state.
    fn state(&self) -> LossState {
        match self {
            Self::AdaptiveMargin(loss) => LossState {
                margin_statistics: Some(loss.statistics()),
                temperature: None,
            },
            Self::InfoNce(loss) => LossState {
                margin_statistics: None,
                temperature: Some(Temperature {
                    param_id: loss.log_scale.id.val(),
                    log_scale: loss.log_scale.val().into_scalar::<f32>() as f64,
                }),
            },
            Self::Hinge(_) | Self::AmbiguityAware(..) => LossState::default(),
        }
    }
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
}

impl Trainer {
    /// A trainer on `device`, writing nothing to disk.
    pub fn new(config: TrainingConfig, device: Device) -> Self {
        Self {
            config,
            device,
            output: None,
            quiet: false,
            temperature: None,
        }
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
    /// [`Trainer::training_device`]). With a BERT text encoder, its transformer learns at a
    /// tenth of the learning rate, as in VSE∞, and captions are augmented (mask, replace,
    /// delete). With an instance relation layer (HREM), the hinge losses of the
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
        let start = Start {
            epoch: 0,
            best: None,
            history: Vec::new(),
            loss: LossState::default(),
        };
        let optimizer = self.optimizer();
        self.run(model, optimizer, start, model_config, train, dev, tokenizer)
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
        let optimizer_path = folder.join(OPTIMIZER_FILE);
        let record = OptimizerRecord::load(&optimizer_path).map_err(|e| TrainError::Weights {
            path: optimizer_path.clone(),
            message: e.to_string(),
        })?;
        let optimizer = self.optimizer().load_record(record);
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

    fn optimizer(&self) -> ModuleOptimizer {
        AdamWConfig::new()
            .with_weight_decay(self.config.weight_decay as f32)
            .with_grad_clipping(Some(GradientClippingConfig::Norm(
                self.config.grad_clip as f32,
            )))
            .init()
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        mut model: VseModel,
        mut optimizer: ModuleOptimizer,
        start: Start,
        model_config: &VseModelConfig,
        train: &RetrievalSplit,
        dev: &RetrievalSplit,
        tokenizer: &CaptionTokenizer,
    ) -> Result<TrainingOutcome, TrainError> {
        let config = &self.config;
        assert!(config.batch_size >= 2, "a batch needs at least two pairs");
        let train_device = self.training_device();
        let schedule = StepDecay {
            base: config.learning_rate,
            decay_epoch: config.lr_decay_epoch,
            factor: config.lr_decay_factor,
        };
        let needs_embeddings = config.loss.needs_embeddings()
            || config.distinguishability > 0.0
            || model_config.instance_relation.is_some();
        if needs_embeddings && !matches!(model_config.similarity, SimilarityConfig::Cosine) {
            return Err(TrainError::config(
                "training.loss",
                "the ambiguity-aware loss, the distinguishability term and the instance \
                 relation layer read pooled embeddings: they need the cosine head",
            ));
        }
        // HREM's terms on the relation-enhanced embeddings: the hinge loss of the run's margin,
        // mining and VSE0 epochs (HREM uses its triplet loss for them).
        let relation_hinge = HingeLossConfig::new()
            .with_margin(config.margin)
            .with_mining(config.mining)
            .with_warmup_epochs(config.warmup_epochs)
            .init();
        let distinguishability = (config.distinguishability > 0.0).then(|| {
            DistinguishabilityConfig::new()
                .with_weight(config.distinguishability)
                .init()
        });
        let drop = RegionDrop {
            prob: config.region_drop,
        };
        let encoded = tokenizer.encode_all(&train.captions)?;
        let caption_augmentation = match (tokenizer, &model_config.text) {
            (CaptionTokenizer::Subwords(subwords), TextEncoderConfig::Bert(_)) => {
                subwords.mask_id().map(|mask| (mask, subwords.vocab_size()))
            }
            _ => None,
        };
        let dev = validation_subset(dev, config.validation_captions);
        let checkpoint = self.output.as_ref().map(Checkpoint::new);
        let Start {
            epoch: first_epoch,
            mut best,
            mut history,
            loss: loss_state,
        } = start;
        let mut objective = Objective::new(config, &loss_state, self.temperature, &train_device);

        for epoch in first_epoch..config.epochs {
            let started = Instant::now();
            let learning_rate = schedule.at(epoch);
            let rates = module_rates(learning_rate, &model_config.text);
            let seed = epoch_seed(config.seed, epoch);
            let mut rng = StdRng::seed_from_u64(seed);
            train_device.seed(seed);
            let mut order: Vec<usize> = (0..train.captions.len()).collect();
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
            let (mut margin_sum, mut margin_steps) = (0.0f64, 0usize);
            let steps_of_epoch = batches.iter().zip(&image_batches).zip(prepared.iter());
            for (index, ((captions, images), image_batch)) in steps_of_epoch.enumerate() {
                // Every epoch has the same number of batches: the run's step count.
                let run_step = epoch * batches.len() + index;
                let image_input = image_batch?.to_input(&train_device);
                let augmented: Vec<Vec<i64>> = captions
                    .iter()
                    .map(|&j| match caption_augmentation {
                        Some((mask, vocab_size)) => {
                            augment_subwords(&encoded[j], mask, vocab_size, &mut rng)
                        }
                        None => encoded[j].clone(),
                    })
                    .collect();
                let texts: Vec<&[i64]> = augmented.iter().map(Vec::as_slice).collect();
                let tokens = TokenBatch::pad(&texts);
                let buffers = Buffers::of(&model);
                let (scores, embeddings) = batch_scores(
                    &model,
                    image_input,
                    tokens.to_tensor(&train_device),
                    &tokens.lengths,
                    needs_embeddings,
                );
                let image_ids: Vec<u64> = images.iter().map(|&i| i as u64).collect();
                let ids = config.mask_same_image.then_some(image_ids.as_slice());
                let step = objective.forward(scores, embeddings.clone(), ids, epoch);
                if let Some(margin) = step.margin {
                    margin_sum += margin;
                    margin_steps += 1;
                }
                let mut loss = step.loss;
                if let (Some(term), Some((images, captions))) = (&distinguishability, &embeddings) {
                    loss = loss + term.forward(images.clone(), captions.clone(), ids);
                }
                if let Some((images, captions)) = embeddings
                    && run_step >= config.relation_warmup_steps
                    && let Some(relation) =
                        relation_loss(&model, &relation_hinge, images, captions, ids, epoch)
                {
                    loss = loss + relation;
                }
                let value = loss.clone().into_scalar::<f32>() as f64;
                if !value.is_finite() {
                    model = buffers.restore(model);
                    skipped += 1;
                    eprintln!("epoch {epoch}: skipped a step whose loss is {value}");
                    progress.step(|| "non-finite loss".into());
                    continue;
                }
                let mut gradients = loss.backward();
                let grads = GradientsParams::from_module(&mut gradients, &model);
                if !gradients_are_finite(&model, &grads) {
                    model = buffers.restore(model);
                    skipped += 1;
                    eprintln!("epoch {epoch}: skipped a step whose gradient is not finite");
                    progress.step(|| "non-finite gradient".into());
                    continue;
                }
                model = optimizer.step(rates.clone(), model, grads);
                if let Objective::InfoNce(temperature) = objective {
                    let grads = GradientsParams::from_module(&mut gradients, &temperature);
                    objective =
                        Objective::InfoNce(optimizer.step(rates.clone(), temperature, grads));
                }
                loss_sum += value;
                steps += 1;
                progress.step(|| format!("loss {:.3}", loss_sum / steps as f64));
            }
            progress.finish();
            if steps == 0 && skipped > 0 {
                return Err(TrainError::Diverged {
                    epoch,
                    reason: format!("all {skipped} steps had a non-finite loss or gradient"),
                });
            }

            let snapshot = model.valid();
            let report = evaluate_split(
                &snapshot,
                &dev,
                tokenizer,
                &self.device,
                Protocol::Flickr30k,
                true,
            )
            .map_err(|e| match e {
                TrainError::NonFiniteScores { .. } => TrainError::Diverged {
                    epoch,
                    reason: format!("validation: {e}"),
                },
                other => other,
            })?;
            let record = EpochRecord {
                epoch,
                learning_rate,
                mean_loss: loss_sum / steps.max(1) as f64,
                margin: objective.epoch_margin(margin_sum, margin_steps),
                skipped_steps: skipped,
                validation: report.metrics,
                seconds: started.elapsed().as_secs_f64(),
            };
            let rsum = record.validation.rsum();
            // A degenerate epoch (a collapsed model) is never the best, whatever its rsum.
            let improved = !record.validation.degenerate
                && best
                    .as_ref()
                    .is_none_or(|(best_rsum, _, _)| rsum > *best_rsum);
            eprintln!(
                "epoch {epoch}: loss {:.4}, lr {learning_rate:.1e}, dev rsum {rsum:.1}{}{}, {:.1}s",
                record.mean_loss,
                tie_note(&record.validation),
                if improved { " (best)" } else { "" },
                record.seconds
            );
            if improved {
                if let Some(checkpoint) = &checkpoint {
                    checkpoint.save(&snapshot, model_config, tokenizer)?;
                }
                best = Some((rsum, epoch, snapshot));
            }
            history.push(record);
            if let Some(folder) = &self.output {
                write_history(folder, &history)?;
                // Until an epoch is kept there is no best checkpoint to resume beside: a run
                // stopped then starts again from the beginning.
                let Some((best_rsum, best_epoch, _)) = best.as_ref() else {
                    continue;
                };
                save_resume_state(
                    folder,
                    &model,
                    &optimizer,
                    model_config,
                    tokenizer,
                    ResumeState {
                        folder: format!("resume-{}", epoch + 1),
                        epochs_done: epoch + 1,
                        best_rsum: *best_rsum,
                        best_epoch: *best_epoch,
                        history: history.clone(),
                        loss: objective.state(),
                    },
                )?;
            }
        }
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
                format!("no epoch to train: the run has {} epochs", config.epochs),
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

/// A batch's scores `[n_img, n_cap]` with the model's head and, when `embeddings` is set (the
/// cosine head), the pooled embeddings `[n, D]` they come from.
fn batch_scores(
    model: &VseModel,
    images: ImageInput,
    tokens: Tensor<2, Int>,
    lengths: &[usize],
    embeddings: bool,
) -> (Tensor<2>, Option<(Tensor<2>, Tensor<2>)>) {
    if !embeddings {
        return (model.batch_scores(images, tokens, lengths), None);
    }
    let images = model.encode_images(images);
    let captions = model.encode_captions(tokens, lengths);
    let scores = model.similarity(images.clone(), captions.clone());
    (scores, Some((images, captions)))
}

/// HREM's losses on the relation-enhanced embeddings of a batch, when the model has the
/// instance relation layer: with `images`, `captions` the plain unit embeddings `[B, D]` and
/// `v̂`, `ĉ` their enhanced versions ([`VseModel::relate`]), the sum of `hinge` on the scores
/// `v ĉᵀ`, `v̂ cᵀ` and `v̂ ĉᵀ` (each `[B, B]`). The gradients reach the layer and, through
/// the embeddings, both towers.
fn relation_loss(
    model: &VseModel,
    hinge: &HingeLoss,
    images: Tensor<2>,
    captions: Tensor<2>,
    image_ids: Option<&[u64]>,
    epoch: usize,
) -> Option<Tensor<1>> {
    let (related_images, related_captions) = model.relate(images.clone(), captions.clone())?;
    [
        (images, related_captions.clone()),
        (related_images.clone(), captions),
        (related_images, related_captions),
    ]
    .into_iter()
    .map(|(images, captions)| hinge.forward(model.similarity(images, captions), image_ids, epoch))
    .reduce(|sum, term| sum + term)
}

/// The learning rate of every parameter: `rate`, and a tenth of it for a pretrained BERT
/// transformer (parameters under a `bert` field), as VSE∞ fine-tunes it.
fn module_rates(rate: f64, text: &TextEncoderConfig) -> ModuleLearningRate {
    let mut scheduler = ModuleLrScheduler::new(rate);
    if let TextEncoderConfig::Bert(_) = text {
        scheduler = scheduler.with_group(ParamGroup::from_predicate("bert"), rate * 0.1);
    }
    scheduler.step()
}

/// Whether every gradient in `grads` of a parameter of `model` is finite (one host read).
fn gradients_are_finite(model: &VseModel, grads: &GradientsParams) -> bool {
    struct NonFinite<'a> {
        grads: &'a GradientsParams,
        count: Option<Tensor<1>>,
    }
    impl ModuleVisitor for NonFinite<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.get::<D>(param.id) {
                let bad = grad.is_finite().bool_not().any().float();
                self.count = Some(match self.count.take() {
                    Some(count) => count + bad,
                    None => bad,
                });
            }
        }
    }
    let mut visitor = NonFinite { grads, count: None };
    model.visit(&mut visitor);
    visitor
        .count
        .is_none_or(|count| count.into_scalar::<f32>() == 0.0)
}

/// The float tensors of a model that take no gradient (batch-norm running statistics): the
/// forward pass of a training step updates them in place, so a skipped step restores them.
struct Buffers(HashMap<ParamId, Tensor<1>>);

impl Buffers {
    /// The current values (tensor handles: nothing is copied).
    fn of(model: &VseModel) -> Self {
        // A running state holds the last step's update apart until it is synchronised, which
        // `valid` does (on the state shared with `model`).
        let _ = model.valid();
        let mut buffers = Self(HashMap::new());
        model.visit(&mut buffers);
        buffers
    }

    /// `model` with the saved values put back (the step's pending updates folded in first, so
    /// that the saved values replace them).
    fn restore(mut self, model: VseModel) -> VseModel {
        let _ = model.valid();
        model.map(&mut self)
    }
}

impl ModuleVisitor for Buffers {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        if !value.is_require_grad() {
            self.0.insert(param.id, value.reshape([-1]));
        }
    }
}

impl ModuleMapper for Buffers {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        match self.0.remove(&param.id) {
            Some(saved) => param.map(|value| saved.reshape(value.shape())),
            None => param,
        }
    }
}

/// The images described by the first `captions` captions, with their captions.
fn validation_subset(dev: &RetrievalSplit, captions: usize) -> RetrievalSplit {
    let last = captions.min(dev.captions.len()).max(1) - 1;
    dev.first_images(dev.caption_image[last] + 1)
}

/// File of the optimiser state in a resume folder.
const OPTIMIZER_FILE: &str = "optimizer.bpk";

/// Writes `metrics.jsonl` (one record a line) and `metrics.csv` (one row an epoch; the margin
/// column is empty for a loss without one).
fn write_history(folder: &Path, history: &[EpochRecord]) -> Result<(), TrainError> {
    // The folder exists once a checkpoint was saved; not yet when no epoch could be kept.
    std::fs::create_dir_all(folder).map_err(|e| DataError::io(folder, e))?;
    let lines: Vec<String> = history
        .iter()
        .map(|record| serde_json::to_string(record).expect("records serialise"))
        .collect();
    atomic::write(
        &folder.join("metrics.jsonl"),
        (lines.join("\n") + "\n").as_bytes(),
    )?;
    let mut csv = String::from(
        "epoch,learning_rate,mean_loss,margin,skipped_steps,\
         i2t_r1,i2t_r5,i2t_r10,i2t_medr,i2t_meanr,t2i_r1,t2i_r5,t2i_r10,t2i_medr,t2i_meanr,\
         rsum,seconds,i2t_ties,t2i_ties,degenerate\n",
    );
    for r in history {
        let m = &r.validation;
        let margin = r.margin.map(|v| v.to_string()).unwrap_or_default();
        csv.push_str(&format!(
            "{},{},{},{margin},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.epoch,
            r.learning_rate,
            r.mean_loss,
            r.skipped_steps,
            m.i2t_recall[0],
            m.i2t_recall[1],
            m.i2t_recall[2],
            m.i2t_medr,
            m.i2t_meanr,
            m.t2i_recall[0],
            m.t2i_recall[1],
            m.t2i_recall[2],
            m.t2i_medr,
            m.t2i_meanr,
            m.rsum(),
            r.seconds,
            m.i2t_ties,
            m.t2i_ties,
            m.degenerate
        ));
    }
    atomic::write(&folder.join("metrics.csv"), csv.as_bytes())?;
    Ok(())
}

/// Saves the model and optimiser state in a new folder `state.folder`, then points
/// `resume.json` at it (an atomic replace), then removes the folder it pointed at before: a
/// run killed at any moment leaves a complete resume state, of this epoch or the one before.
fn save_resume_state(
    output: &Path,
    model: &VseModel,
    optimizer: &ModuleOptimizer,
    model_config: &VseModelConfig,
    tokenizer: &CaptionTokenizer,
    state: ResumeState,
) -> Result<(), TrainError> {
    let previous = read_resume_state(output).ok().map(|s| s.folder);
    let folder = output.join(&state.folder);
    Checkpoint::new(&folder).save(model, model_config, tokenizer)?;
    let optimizer_path = folder.join(OPTIMIZER_FILE);
    let temporary = folder.join(format!(".{OPTIMIZER_FILE}.tmp-{}", std::process::id()));
    optimizer
        .to_record()
        .save(&temporary)
        .and_then(|()| {
            std::fs::rename(&temporary, &optimizer_path)
                .map_err(|e| burn::store::RecordError::Io(e.to_string()))
        })
        .map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            TrainError::Weights {
                path: optimizer_path.clone(),
                message: e.to_string(),
            }
        })?;
    let json = serde_json::to_string_pretty(&state).expect("the state serialises");
    atomic::write(&output.join(RESUME_FILE), json.as_bytes())?;
    if let Some(previous) = previous.filter(|p| *p != state.folder) {
        let _ = std::fs::remove_dir_all(output.join(previous));
    }
    Ok(())
}

fn read_resume_state(output: &Path) -> Result<ResumeState, TrainError> {
    let path = output.join(RESUME_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
    let state: ResumeState = serde_json::from_str(&text)
        .map_err(|e| DataError::invalid(&path, format!("not a resume state: {e}")))?;
    if state.folder.contains(['/', '\\']) || state.folder.starts_with('.') {
        return Err(
            DataError::invalid(&path, format!("bad folder name {:?}", state.folder)).into(),
        );
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::tensor::{Distribution, Int, Tensor};
    use itm_core::encoders::{BertConfig, ImageInput, TextEncoder};

    /// A finite loss with a NaN in one gradient (registered by hand: no well-formed batch
    /// produces one on demand) is caught; the real, finite gradients pass.
    #[test]
    fn a_non_finite_gradient_is_detected() {
        let device = Device::flex().autodiff();
        device.seed(2);
        let config = VseModelConfig::vse_infinity_bigru_sized(6, 12, 8, 4);
        let model = config.init(&device);
        let regions = Tensor::<3>::random([3, 2, 6], Distribution::Normal(0.0, 1.0), &device);
        let tokens = Tensor::<2, Int>::from_data(
            burn::tensor::TensorData::new(
                (0..12).map(|t| (t % 11 + 1) as i64).collect::<Vec<_>>(),
                [3, 4],
            ),
            &device,
        );
        let scores = model.batch_scores(
            ImageInput::Regions {
                features: regions,
                lengths: vec![2; 3],
            },
            tokens,
            &[4, 3, 2],
        );
        let loss = HingeLossConfig::new().init().forward(scores, None, 0);
        assert!(loss.clone().into_scalar::<f32>().is_finite());
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        assert!(gradients_are_finite(&model, &grads));

        struct FirstMatrix(Option<burn::module::ParamId>);
        impl ModuleVisitor for FirstMatrix {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if D == 2 && self.0.is_none() {
                    self.0 = Some(param.id);
                }
            }
        }
        let mut first = FirstMatrix(None);
        model.visit(&mut first);
        let id = first.0.expect("the model has a weight matrix");
        let grad: Tensor<2> = grads.remove(id).expect("a gradient for every weight");
        let mut values = grad.to_data().try_to_vec::<f32>().unwrap();
        let middle = values.len() / 2;
        values[middle] = f32::NAN;
        let dims = grad.dims();
        let poisoned =
            Tensor::<2>::from_data(burn::tensor::TensorData::new(values, dims), &grad.device());
        grads.register(id, poisoned);
        assert!(!gradients_are_finite(&model, &grads));
    }

    /// First AdamW step: every update is ≈ lr · sign(gradient), so the ratio of the mean update
    /// sizes of a BERT weight and of the projection is the ratio of their learning rates.
    #[test]
    fn bert_learns_at_a_tenth_of_the_rate() {
        let device = Device::flex().autodiff();
        device.seed(1);
        let bert = BertConfig::new(30, 8, 1, 2, 16, 12);
        let config = VseModelConfig::vse_infinity_bert(6, bert, 8);
        let model = config.init(&device);
        let regions = Tensor::<3>::random([4, 3, 6], Distribution::Normal(0.0, 1.0), &device);
        let tokens = Tensor::<2, Int>::from_data(
            burn::tensor::TensorData::new(
                (0..20).map(|t| (t % 29 + 1) as i64).collect::<Vec<_>>(),
                [4, 5],
            ),
            &device,
        );
        let images = model.encode_images(ImageInput::Regions {
            features: regions,
            lengths: vec![3; 4],
        });
        let captions = model.encode_captions(tokens, &[5, 4, 3, 5]);
        let loss = HingeLossConfig::new().with_warmup_epochs(9).init().forward(
            model.similarity(images, captions),
            None,
            0,
        );
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let before = model.clone();
        let mut optimizer = AdamWConfig::new().with_weight_decay(0.0).init();
        let after = optimizer.step(module_rates(1e-2, &config.text), model, grads);
        let change = |a: &Param<Tensor<2>>, b: &Param<Tensor<2>>| {
            let delta = (a.val() - b.val()).abs().mean().into_scalar::<f32>();
            delta as f64
        };
        let (TextEncoder::Bert(old), TextEncoder::Bert(new)) = (&before.text, &after.text) else {
            unreachable!("a BERT model")
        };
        let (old_ff, new_ff) = (
            &old.bert.encoder.layers[0].pwff,
            &new.bert.encoder.layers[0].pwff,
        );
        let bert_step = change(&old_ff.linear_inner.weight, &new_ff.linear_inner.weight);
        let projection_step = change(&old.projection.weight, &new.projection.weight);
        assert!(projection_step > 5e-3, "projection moved {projection_step}");
        let ratio = bert_step / projection_step;
        assert!(
            (0.07..0.13).contains(&ratio),
            "BERT/projection update ratio {ratio}"
        );
    }
}
