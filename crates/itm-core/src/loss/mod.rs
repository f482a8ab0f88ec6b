//! Losses on a batch similarity matrix `[B, B]`: row `i` image, column `j` caption, positives on
//! the diagonal (METHODS §5).

mod adaptive_margin;
mod ambiguity;
mod distinguishability;
mod hinge;
mod infonce;

pub use adaptive_margin::{
    AdaptiveMarginConfig, AdaptiveMarginLoss, AdaptiveMarginOutput, MarginStatistics,
};
pub use ambiguity::{AmbiguityAwareConfig, AmbiguityAwareLoss, AmbiguityOutput};
pub use distinguishability::{DistinguishabilityConfig, DistinguishabilityLoss};
pub use hinge::{HingeLoss, HingeLossConfig, NegativeMining};
pub use infonce::{InfoNce, InfoNceConfig};
