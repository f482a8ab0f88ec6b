//! Training hyper-parameters (published VSE∞ defaults, METHODS §8).

use itm_core::loss::NegativeMining;
use serde::{Deserialize, Serialize};

/// Everything the training loop needs besides the model and the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// Number of epochs.
    pub epochs: usize,
    /// Captions per batch (each with its image).
    pub batch_size: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Epoch at which the learning rate is multiplied by `lr_decay_factor`.
    pub lr_decay_epoch: usize,
    /// Step decay factor.
    pub lr_decay_factor: f64,
    /// Gradient norm clip (burn clips each parameter's gradient to this norm).
    pub grad_clip: f64,
    /// Hinge margin `α`.
    pub margin: f64,
    /// Negatives after the warm-up.
    pub mining: NegativeMining,
    /// Epochs that sum over every negative (VSE0) before `mining` takes over.
    pub warmup_epochs: usize,
    /// Exclude captions of the same image from a batch's negatives.
    pub mask_same_image: bool,
    /// Train-time region drop probability.
    pub region_drop: f64,
    /// Validation captions (the first ones of the dev split; the published protocol uses 5,000).
    pub validation_captions: usize,
    /// Steps per logging interval: the loss, margin and skipped steps of every this many steps
    /// go to `steps.jsonl` / `steps.csv` and the chart's step curve (default 20).
    #[serde(default = "default_log_steps")]
    pub log_steps: usize,
    /// Seed of shuffling, region drop and initialisation.
    pub seed: u64,
    /// The objective on the batch scores (default: the hinge loss above).
    #[serde(default)]
    pub loss: LossKind,
    /// Weight `λ` of the DAIM distinguishability term added to the loss (0: no term). It needs
    /// the cosine head (it reads the pooled embeddings).
    #[serde(default)]
    pub distinguishability: f64,
    /// Training steps (batches, counted from the run's first) before the losses on HREM's
    /// relation-enhanced embeddings join the loss; only for a model with an instance relation
    /// layer (HREM: 8000).
    #[serde(default)]
    pub relation_warmup_steps: usize,
    /// Epochs, counted from the first, in which the pretrained backbones of a multi-level
    /// system get no updates: the Swin of `model.swin` and the BERT of `model.bert` (both
    /// with `model.init`); their level projections and the head train. HAT: 11 (frozen from
    /// the start, unfrozen after epoch 10's validation). Towers trained from scratch are never
    /// frozen.
    #[serde(default)]
    pub frozen_backbone_epochs: usize,
}

/// The objective a run optimises on each batch's `[B, B]` scores (METHODS §5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// VSE++ hinge with the fixed `margin`, `mining` and `warmup_epochs`.
    #[default]
    Hinge,
    /// DAIM: the hinge loss with a margin from running score statistics (`margin` unused;
    /// `mining` and `warmup_epochs` apply).
    AdaptiveMargin,
    /// AAHR: the hinge loss (`margin`, `mining` after `warmup_epochs`) with ambiguous negatives
    /// down-weighted; needs
    /// the cosine head.
    AmbiguityAware,
    /// CLIP: symmetric InfoNCE with a learned temperature (`margin`, `mining` unused).
    InfoNce,
}

impl LossKind {
    /// Whether the loss reads the pooled embeddings (not only the scores).
    pub fn needs_embeddings(self) -> bool {
        self == Self::AmbiguityAware
    }
}

impl Default for TrainingConfig {
    /// VSE∞ (BUTD regions + BiGRU): batch 128, AdamW 5e-4, decay ×0.1 at epoch 15, 25 epochs,
    /// grad clip 2, margin 0.2, VSE0 for one epoch then hardest negatives, region drop 0.2.
    fn default() -> Self {
        Self {
            epochs: 25,
            batch_size: 128,
            learning_rate: 5e-4,
            weight_decay: 1e-4,
            lr_decay_epoch: 15,
            lr_decay_factor: 0.1,
            grad_clip: 2.0,
            margin: 0.2,
            mining: NegativeMining::Hardest,
            warmup_epochs: 1,
            mask_same_image: false,
            region_drop: 0.2,
            validation_captions: 5000,
            log_steps: default_log_steps(),
            seed: 0,
            loss: LossKind::Hinge,
            distinguishability: 0.0,
            relation_warmup_steps: 0,
            frozen_backbone_epochs: 0,
        }
    }
}

/// `training.log_steps` when a run does not set it.
fn default_log_steps() -> usize {
    crate::trainer::LOG_STEPS
}
