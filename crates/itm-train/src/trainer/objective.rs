//! The objective: the one place where a run's loss is chosen and a batch's loss is assembled
//! (METHODS §5).
//!
//! [`Objective::batch_loss`] scores a batch with the model and adds up the terms the run asks
//! for: the criterion on the scores (VSE++ hinge, DAIM's adaptive margin, AAHR's
//! ambiguity-aware hinge or CLIP's InfoNCE), DAIM's distinguishability term on the pooled
//! embeddings, and HREM's hinge losses on the relation-enhanced embeddings. The state a loss
//! carries between steps (adaptive margin statistics, InfoNCE's learned temperature) lives
//! here too, and goes in and out of the resume state as a [`LossState`].

use burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Gradients, Int, Tensor};
use itm_core::VseModel;
use itm_core::encoders::ImageInput;
use itm_core::loss::{
    AdaptiveMarginConfig, AdaptiveMarginLoss, AmbiguityAwareConfig, AmbiguityAwareLoss,
    DistinguishabilityConfig, DistinguishabilityLoss, HingeLoss, HingeLossConfig, InfoNce,
    InfoNceConfig, MarginStatistics, NegativeMining,
};
use itm_core::similarity::sum_levels;

use super::resume::{LossState, Temperature};
use crate::TrainError;
use crate::TrainingConfig;
use crate::config::LossKind;

/// A training batch on the training device: pair `b` is image `b` with caption `b`.
pub(super) struct Batch {
    /// The images (regions or pixels), `[B, …]`.
    pub images: ImageInput,
    /// The caption tokens `[B, max_len]`, valid prefix `lengths`.
    pub tokens: Tensor<2, Int>,
    /// Tokens of each caption.
    pub lengths: Vec<usize>,
    /// The image of each pair, when captions of one image are not each other's negatives.
    pub image_ids: Option<Vec<u64>>,
}

/// Where a step stands in the run.
#[derive(Debug, Clone, Copy)]
pub(super) struct Step {
    /// 0-based epoch (the VSE0 warm-up counts epochs).
    pub epoch: usize,
    /// 0-based step of the run (HREM's relation warm-up counts steps).
    pub run_step: usize,
}

/// One step's loss `[1]` and the margin it used.
pub(super) struct StepLoss {
    pub loss: Tensor<1>,
    pub margin: Option<f64>,
}

/// The loss on the batch scores, with the state it carries between steps.
enum Criterion {
    Hinge(HingeLoss),
    AdaptiveMargin(AdaptiveMarginLoss),
    /// DAIM's adaptive margin on each level of a multi-level head, each with its own
    /// statistics (low → high).
    LevelAdaptiveMargin(Vec<AdaptiveMarginLoss>),
    /// With the epochs that sum over every negative before its mining takes over.
    AmbiguityAware(AmbiguityAwareLoss, usize),
    /// The temperature is a module: the optimiser steps it with the model.
    InfoNce(InfoNce),
}

/// The objective of a run: the criterion and the extra terms its configuration asks for.
pub(super) struct Objective {
    criterion: Criterion,
    /// DAIM's distinguishability term (weight > 0).
    distinguishability: Option<DistinguishabilityLoss>,
    /// HREM's terms on the relation-enhanced embeddings: the hinge loss of the run's margin,
    /// mining and VSE0 epochs (HREM uses its triplet loss for them); only a model with the
    /// instance relation layer has them.
    relation: HingeLoss,
    /// Run steps before the relation terms join.
    relation_warmup_steps: usize,
    /// Whether a term reads the pooled embeddings (not only the scores).
    needs_embeddings: bool,
}

/// Whether `model`'s score has a global part, the cosine of its pooled embeddings (cosine and
/// multi-grained heads): the one place the trainer asks.
fn has_global(model: &VseModel) -> bool {
    model.has_global()
}

impl Objective {
    /// The objective of `config` for `model`, continuing `state` (on `device`, the training
    /// device); InfoNCE starts from the inverse temperature `temperature` (default 1/0.07)
    /// unless `state` has one.
    ///
    /// Fails when a term reads pooled embeddings that the model's head does not make.
    pub fn new(
        config: &TrainingConfig,
        model: &VseModel,
        state: &LossState,
        temperature: Option<f64>,
        device: &Device,
    ) -> Result<Self, TrainError> {
        // A multi-level head gives DAIM's terms per level: its levels' scores and mean
        // features instead of pooled embeddings.
        let levels = model.similarity.multi_level().map(|head| head.num_levels());
        let needs_embeddings = config.loss.needs_embeddings()
            || (config.distinguishability > 0.0 && levels.is_none())
            || model.instance_relation.is_some();
        if needs_embeddings && !has_global(model) {
            return Err(TrainError::config(
                "training.loss",
                "the ambiguity-aware loss, the distinguishability term and the instance \
                 relation layer read pooled embeddings: they need a head with a global part \
                 (the cosine or the multi-grained head)",
            ));
        }
        Ok(Self {
            criterion: Criterion::new(config, state, temperature, levels, device),
            distinguishability: (config.distinguishability > 0.0).then(|| {
                DistinguishabilityConfig::new()
                    .with_weight(config.distinguishability)
                    .init()
            }),
            relation: HingeLossConfig::new()
                .with_margin(config.margin)
                .with_mining(config.mining)
                .with_warmup_epochs(config.warmup_epochs)
                .init(),
            relation_warmup_steps: config.relation_warmup_steps,
            needs_embeddings,
        })
    }

    /// The loss of `batch` under `model` at `step`: the criterion on the scores `[B, B]`,
    /// plus the distinguishability term and (from the relation warm-up on) the relation terms
    /// on the pooled embeddings `[B, D]`, when the run has them.
    pub fn batch_loss(&mut self, model: &VseModel, batch: Batch, step: Step) -> StepLoss {
        let ids = batch.image_ids.as_deref();
        if let Some(levels) =
            model.level_batch(batch.images.clone(), batch.tokens.clone(), &batch.lengths)
        {
            return self.level_loss(levels, ids, step.epoch);
        }
        let (scores, embeddings) = batch_scores(
            model,
            batch.images,
            batch.tokens,
            &batch.lengths,
            self.needs_embeddings,
        );
        let StepLoss { mut loss, margin } =
            self.criterion
                .forward(scores, embeddings.clone(), ids, step.epoch);
        if let (Some(term), Some((images, captions))) = (&self.distinguishability, &embeddings) {
            loss = loss + term.forward(images.clone(), captions.clone(), ids);
        }
        if let Some((images, captions)) = embeddings
            && step.run_step >= self.relation_warmup_steps
            && let Some(relation) =
                relation_loss(model, &self.relation, images, captions, ids, step.epoch)
        {
            loss = loss + relation;
        }
        StepLoss { loss, margin }
    }

    /// The loss of a batch under a multi-level head (HAT, DAIM; METHODS §5 "Multi-level
    /// alignment"): the adaptive margin on every level's scores, each level with its own
    /// statistics (the step's margin: their mean), or any other criterion on the summed
    /// scores; plus the distinguishability term on every level's mean features.
    fn level_loss(
        &mut self,
        levels: Vec<itm_core::models::LevelBatch>,
        ids: Option<&[u64]>,
        epoch: usize,
    ) -> StepLoss {
        let StepLoss { mut loss, margin } = match &mut self.criterion {
            Criterion::LevelAdaptiveMargin(losses) => {
                let mut margins = 0.0;
                let total = losses
                    .iter_mut()
                    .zip(&levels)
                    .map(|(loss, level)| {
                        let out = loss.forward(level.scores.clone(), ids, epoch);
                        margins += out.margin;
                        out.loss
                    })
                    .reduce(|sum, term| sum + term)
                    .expect("one level or more");
                StepLoss {
                    loss: total,
                    margin: Some(margins / levels.len() as f64),
                }
            }
            criterion => criterion.forward(
                sum_levels(levels.iter().map(|level| level.scores.clone())),
                None,
                ids,
                epoch,
            ),
        };
        if let Some(term) = &self.distinguishability {
            for level in levels {
                loss = loss + term.forward(level.images, level.captions, ids);
            }
        }
        StepLoss { loss, margin }
    }

    /// Steps the parameters the loss itself learns (InfoNCE's temperature) with the step's
    /// `gradients`, at the rates `rates`, through the run's `optimizer`.
    pub fn step_learned(
        &mut self,
        optimizer: &mut ModuleOptimizer,
        rates: &ModuleLearningRate,
        gradients: &mut Gradients,
    ) {
        if let Criterion::InfoNce(loss) = &mut self.criterion {
            let grads = GradientsParams::from_module(gradients, &*loss);
            *loss = optimizer.step(rates.clone(), loss.clone(), grads);
        }
    }

    /// The margin of an epoch whose steps' margins sum to `sum` over `steps`: the fixed margin,
    /// the mean adaptive one, `None` for InfoNCE.
    pub fn epoch_margin(&self, sum: f64, steps: usize) -> Option<f64> {
        match &self.criterion {
            Criterion::Hinge(loss) => Some(loss.margin),
            Criterion::AmbiguityAware(loss, _) => Some(loss.margin),
            Criterion::AdaptiveMargin(_) | Criterion::LevelAdaptiveMargin(_) => {
                (steps > 0).then(|| sum / steps as f64)
            }
            Criterion::InfoNce(_) => None,
        }
    }

    /// The state to save with the resume state.
    pub fn state(&self) -> LossState {
        match &self.criterion {
            Criterion::AdaptiveMargin(loss) => LossState {
                margin_statistics: Some(loss.statistics()),
                ..LossState::default()
            },
            Criterion::LevelAdaptiveMargin(losses) => LossState {
                level_margin_statistics: losses
                    .iter()
                    .map(AdaptiveMarginLoss::statistics)
                    .collect(),
                ..LossState::default()
            },
            Criterion::InfoNce(loss) => LossState {
                temperature: Some(Temperature::of(&loss.log_scale)),
                ..LossState::default()
            },
            Criterion::Hinge(_) | Criterion::AmbiguityAware(..) => LossState::default(),
        }
    }
}

impl Criterion {
    /// The criterion of `config`, continuing `state` (see [`Objective::new`]); the adaptive
    /// margin is one per level for a model of `levels` levels.
    fn new(
        config: &TrainingConfig,
        state: &LossState,
        temperature: Option<f64>,
        levels: Option<usize>,
        device: &Device,
    ) -> Self {
        let adaptive = |statistics: Option<MarginStatistics>| {
            AdaptiveMarginConfig::new()
                .with_mining(config.mining)
                .with_warmup_epochs(config.warmup_epochs)
                .init()
                .with_statistics(statistics.unwrap_or_default())
        };
        if let (LossKind::AdaptiveMargin, Some(levels)) = (config.loss, levels) {
            return Self::LevelAdaptiveMargin(
                (0..levels)
                    .map(|level| adaptive(state.level_margin_statistics.get(level).copied()))
                    .collect(),
            );
        }
        match config.loss {
            LossKind::Hinge => Self::Hinge(
                HingeLossConfig::new()
                    .with_margin(config.margin)
                    .with_mining(config.mining)
                    .with_warmup_epochs(config.warmup_epochs)
                    .init(),
            ),
            LossKind::AdaptiveMargin => Self::AdaptiveMargin(adaptive(state.margin_statistics)),
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
                    loss.log_scale = saved.param(device);
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
            // A model with levels scores them one by one (`Objective::level_loss`); any other
            // model's scores are one level.
            Self::LevelAdaptiveMargin(losses) => {
                let out = losses[0].forward(scores, image_ids, epoch);
                StepLoss {
                    loss: out.loss,
                    margin: Some(out.margin),
                }
            }
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
}

/// A batch's scores `[n_img, n_cap]` with the model's head (a multi-grained head's sum of its
/// global and local parts) and, when `embeddings` is set, the pooled embeddings `[n, D]` of its
/// global part.
fn batch_scores(
    model: &VseModel,
    images: ImageInput,
    tokens: Tensor<2, Int>,
    lengths: &[usize],
    embeddings: bool,
) -> (Tensor<2>, Option<(Tensor<2>, Tensor<2>)>) {
    let out = model.batch_forward(images, tokens, lengths);
    (out.scores, out.pooled.filter(|_| embeddings))
}

/// HREM's losses on the relation-enhanced embeddings of a batch, when the model has the
/// instance relation layer: with `images`, `captions` the plain unit (pooled) embeddings
/// `[B, D]` and
/// `v̂`, `ĉ` their enhanced versions ([`VseModel::relate`]), the sum of `hinge` on the scores
/// `v ĉᵀ`, `v̂ cᵀ` and `v̂ ĉᵀ` (each `[B, B]`). The gradients reach the layer and, through
/// the embeddings, both towers. With the multi-grained head these terms score the global part
/// alone (our design: the layer relates whole instances; the local score has no counterpart).
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};
    use itm_core::VseModelConfig;
    use itm_core::models::SimilarityConfig;
    use itm_core::similarity::ScanConfig;

    /// A term that reads pooled embeddings is refused with a fine-grained head, and named.
    #[test]
    fn embedding_terms_need_the_cosine_head() {
        let device = Device::flex();
        let model = VseModelConfig::vse_infinity_bigru_sized(6, 12, 8, 4)
            .with_similarity(SimilarityConfig::Scan(ScanConfig::new()))
            .init(&device);
        let plain = TrainingConfig::default();
        let state = LossState::default();
        assert!(Objective::new(&plain, &model, &state, None, &device).is_ok());
        let with_term = TrainingConfig {
            distinguishability: 0.1,
            ..TrainingConfig::default()
        };
        let error = Objective::new(&with_term, &model, &state, None, &device)
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("global part"), "{error}");
    }

    /// The batch loss adds the distinguishability term to the criterion: with the term it
    /// exceeds the plain hinge loss of the same scores by the term's value.
    #[test]
    fn batch_loss_adds_the_configured_terms() {
        let device = Device::flex();
        device.seed(5);
        let model_config = VseModelConfig::vse_infinity_bigru_sized(6, 12, 8, 4);
        let model = model_config.init(&device);
        let features = Tensor::<3>::random([3, 2, 6], Distribution::Normal(0.0, 1.0), &device);
        let batch = || Batch {
            images: ImageInput::Regions {
                features: features.clone(),
                lengths: vec![2; 3],
            },
            tokens: Tensor::<2, Int>::from_data(
                TensorData::new((0..12).map(|t| (t % 11 + 1) as i64).collect(), [3, 4]),
                &device,
            ),
            lengths: vec![4, 3, 2],
            image_ids: None,
        };
        let step = Step {
            epoch: 0,
            run_step: 0,
        };
        let value = |config: &TrainingConfig| {
            let mut objective =
                Objective::new(config, &model, &LossState::default(), None, &device).unwrap();
            let out = objective.batch_loss(&model, batch(), step);
            (out.loss.into_scalar::<f32>(), out.margin)
        };
        let plain = TrainingConfig::default();
        let weighted = TrainingConfig {
            distinguishability: 0.5,
            ..TrainingConfig::default()
        };
        let (hinge, margin) = value(&plain);
        let (total, _) = value(&weighted);
        assert_eq!(margin, Some(plain.margin));
        let images = model.encode_images(batch().images);
        let captions = model.encode_captions(batch().tokens, &batch().lengths);
        let term = DistinguishabilityConfig::new()
            .with_weight(0.5)
            .init()
            .forward(images, captions, None)
            .into_scalar::<f32>();
        assert!(term.abs() > 1e-6, "a term of {term}");
        assert!(
            (total - (hinge + term)).abs() < 1e-5,
            "{total} != {hinge} + {term}"
        );
    }
}
