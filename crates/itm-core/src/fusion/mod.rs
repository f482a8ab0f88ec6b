//! Fusion layers between the encoders and the similarity (METHODS §4).

mod multi_scale;

pub use multi_scale::{MultiScaleFusion, MultiScaleFusionConfig, ScaleCombination};
