//! What one epoch did.

use itm_core::eval::Metrics;
use serde::{Deserialize, Serialize};

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
