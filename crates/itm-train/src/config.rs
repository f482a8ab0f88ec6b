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
    /// Seed of shuffling, region drop and initialisation.
    pub seed: u64,
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
            seed: 0,
        }
    }
}
