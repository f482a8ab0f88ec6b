//! Complete matching models assembled from encoders, poolings and similarities.

mod vse;

pub use vse::{CosineHead, SimilarityConfig, SimilarityHead, VseModel, VseModelConfig};
