//! Losses on a batch similarity matrix `[B, B]`: row `i` image, column `j` caption, positives on
//! the diagonal (METHODS §5).

mod hinge;
mod infonce;

pub use hinge::{HingeLoss, HingeLossConfig, NegativeMining};
pub use infonce::{InfoNce, InfoNceConfig};
