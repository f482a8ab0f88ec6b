//! Complete matching models assembled from encoders, poolings and similarities.

mod parameter_groups;
mod vse;

pub use parameter_groups::{CaptionAugmentation, ParameterGroup};
pub use vse::{CosineHead, SimilarityConfig, SimilarityHead, VseModel, VseModelConfig};
