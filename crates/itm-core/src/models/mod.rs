//! Complete matching models assembled from encoders, poolings and similarities.

mod vse;

pub use vse::{VseModel, VseModelConfig};
