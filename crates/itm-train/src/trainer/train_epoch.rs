//! One training epoch: the epoch's data order and augmentation (drawn from the run's seed and
//! the epoch alone), then one guarded optimiser step per batch.

use burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::module::ParamId;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::train::logger::TrainingProgressLogger;
use itm_core::models::{CaptionAugmentation, ParameterGroup};
use itm_core::{VseModel, VseModelConfig};
use itm_data::{
    Augmentation, CaptionTokenizer, RegionDrop, RetrievalSplit, TokenBatch, augment_subwords,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::Trainer;
use super::guards::{Buffers, Fault, gradients_are_finite};
use super::history::{IntervalRecord, IntervalTally};
use super::objective::{Batch, Objective, Step, StepLoss};
use super::schedule::learning_rates;
use crate::TrainError;

/// The seed of epoch `epoch`'s data order, augmentation and dropout: a function of the run's
/// seed and the epoch alone, so that a resumed run draws what an uninterrupted one would.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The training split as every epoch reads it.
pub(super) struct TrainingData<'a> {
    /// The split.
    split: &'a RetrievalSplit,
    /// Token ids of every caption.
    encoded: Vec<Vec<i64>>,
    /// Subword augmentation (mask id, vocabulary size), when the model's text tower takes it
    /// and the tokenizer has a mask token.
    subwords: Option<(i64, usize)>,
}

impl<'a> TrainingData<'a> {
    /// Tokenises `split`'s captions for a model of `model_config`.
    pub fn new(
        split: &'a RetrievalSplit,
        tokenizer: &CaptionTokenizer,
        model_config: &VseModelConfig,
    ) -> Result<Self, TrainError> {
        let encoded = tokenizer.encode_all(&split.captions)?;
        let subwords = match (tokenizer, model_config.caption_augmentation()) {
            (CaptionTokenizer::Subwords(subwords), CaptionAugmentation::Subwords) => {
                subwords.mask_id().map(|mask| (mask, subwords.vocab_size()))
            }
            _ => None,
        };
        Ok(Self {
            split,
            encoded,
            subwords,
        })
    }
}

/// What an optimiser step moves besides the model: the optimiser state and the objective's
/// learned state, with the parameter groups the model declared.
pub(super) struct Stepping {
    pub optimizer: ModuleOptimizer,
    pub objective: Objective,
    pub groups: Vec<ParameterGroup>,
    /// The parameters of the pretrained backbones, frozen in the first
    /// `training.frozen_backbone_epochs` epochs.
    pub frozen: Vec<ParamId>,
}

/// Totals of an epoch's steps.
#[derive(Debug, Default)]
pub(super) struct EpochSteps {
    /// Sum of the losses of the steps taken.
    pub loss_sum: f64,
    /// Steps taken.
    pub steps: usize,
    /// Steps skipped by a guard.
    pub skipped: usize,
    /// Sum of the margins of every step (taken or skipped) that had one, and their count.
    pub margin_sum: f64,
    pub margin_steps: usize,
    /// The steps by logging interval.
    pub intervals: Vec<IntervalRecord>,
}

impl EpochSteps {
    /// Mean loss of the steps taken (0 when none was).
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.steps.max(1) as f64
    }
}

/// What a step did: the margin its loss used, and its loss value or why it was skipped.
struct StepResult {
    margin: Option<f64>,
    outcome: Result<f64, Fault>,
}

impl Trainer {
    /// Trains `model` for epoch `epoch` at `learning_rate` (before group factors), reporting
    /// every step to `view`. Returns the model and the epoch's totals; fails when the data
    /// fails or when every step of the epoch was skipped.
    pub(super) fn train_epoch(
        &self,
        mut model: VseModel,
        stepping: &mut Stepping,
        data: &TrainingData,
        epoch: usize,
        learning_rate: f64,
        view: &mut dyn TrainingProgressLogger,
    ) -> Result<(VseModel, EpochSteps), TrainError> {
        let config = &self.config;
        let device = self.training_device();
        let train = data.split;
        let rates = learning_rates(learning_rate, &stepping.groups);
        let frozen = if epoch < config.frozen_backbone_epochs {
            stepping.frozen.clone()
        } else {
            Vec::new()
        };
        let seed = epoch_seed(config.seed, epoch);
        let mut rng = StdRng::seed_from_u64(seed);
        device.seed(seed);
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
        let drop = RegionDrop {
            prob: config.region_drop,
        };
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
        view.start_split("train", batches.len());
        let mut totals = EpochSteps::default();
        let mut tally = IntervalTally::new(epoch, self.log_steps);
        let steps_of_epoch = batches.iter().zip(&image_batches).zip(prepared.iter());
        for (index, ((captions, images), image_batch)) in steps_of_epoch.enumerate() {
            let image_input = image_batch?.to_input(&device);
            let augmented: Vec<Vec<i64>> = captions
                .iter()
                .map(|&j| match data.subwords {
                    Some((mask, vocab_size)) => {
                        augment_subwords(&data.encoded[j], mask, vocab_size, &mut rng)
                    }
                    None => data.encoded[j].clone(),
                })
                .collect();
            let texts: Vec<&[i64]> = augmented.iter().map(Vec::as_slice).collect();
            let tokens = TokenBatch::pad(&texts);
            let batch = Batch {
                images: image_input,
                tokens: tokens.to_tensor(&device),
                lengths: tokens.lengths,
                image_ids: config
                    .mask_same_image
                    .then(|| images.iter().map(|&i| i as u64).collect()),
            };
            // Every epoch has the same number of batches: the run's step count.
            let at = Step {
                epoch,
                run_step: epoch * batches.len() + index,
            };
            let done = at.run_step + 1;
            let (stepped, result) = step(model, stepping, &rates, &frozen, batch, at);
            model = stepped;
            let loss = result.outcome.as_ref().ok().copied();
            tally.add(loss, result.margin, done);
            if let Some(margin) = result.margin {
                totals.margin_sum += margin;
                totals.margin_steps += 1;
            }
            match result.outcome {
                Ok(value) => {
                    totals.loss_sum += value;
                    totals.steps += 1;
                    view.log_event_training(format!("loss {:.3}", totals.mean_loss()));
                }
                Err(fault) => {
                    totals.skipped += 1;
                    eprintln!("{}", fault.message(epoch));
                    view.log_event_training(fault.note().into());
                }
            }
            view.update_split(index + 1);
        }
        view.end_split();
        totals.intervals = tally.finish((epoch + 1) * batches.len());
        if totals.steps == 0 && totals.skipped > 0 {
            return Err(TrainError::Diverged {
                epoch,
                reason: format!(
                    "all {} steps had a non-finite loss or gradient",
                    totals.skipped
                ),
            });
        }
        Ok((model, totals))
    }
}

/// One optimiser step of `model` on `batch` at the rates `rates`, the parameters `frozen`
/// left as they are: the model after it, or, when the loss or a gradient is not finite, the
/// model as it was (batch-norm statistics put back) and the fault.
fn step(
    model: VseModel,
    stepping: &mut Stepping,
    rates: &ModuleLearningRate,
    frozen: &[ParamId],
    batch: Batch,
    at: Step,
) -> (VseModel, StepResult) {
    let buffers = Buffers::of(&model);
    let StepLoss { loss, margin } = stepping.objective.batch_loss(&model, batch, at);
    let skip = |model: VseModel, fault: Fault| {
        let result = StepResult {
            margin,
            outcome: Err(fault),
        };
        (model, result)
    };
    let value = loss.clone().into_scalar::<f32>() as f64;
    if !value.is_finite() {
        return skip(buffers.restore(model), Fault::Loss(value));
    }
    let mut gradients = loss.backward();
    if !frozen.is_empty() {
        // Taken out and dropped: the optimiser neither moves these parameters nor updates
        // their moments, as for HAT's `requires_grad = False` (which also skips computing
        // them).
        drop(GradientsParams::from_params(&mut gradients, &model, frozen));
    }
    let grads = GradientsParams::from_module(&mut gradients, &model);
    if !gradients_are_finite(&model, &grads) {
        return skip(buffers.restore(model), Fault::Gradient);
    }
    let model = stepping.optimizer.step(rates.clone(), model, grads);
    stepping
        .objective
        .step_learned(&mut stepping.optimizer, rates, &mut gradients);
    let result = StepResult {
        margin,
        outcome: Ok(value),
    };
    (model, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Epoch seeds differ between epochs and runs, and depend on nothing else.
    #[test]
    fn epoch_seeds_depend_on_the_run_seed_and_the_epoch() {
        assert_eq!(epoch_seed(7, 3), epoch_seed(7, 3));
        assert_ne!(epoch_seed(7, 3), epoch_seed(7, 4));
        assert_ne!(epoch_seed(7, 3), epoch_seed(8, 3));
        assert_eq!(epoch_seed(0, 0), 0x9E37_79B9_7F4A_7C15);
    }
}
