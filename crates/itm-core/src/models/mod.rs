//! Complete matching models assembled from encoders, poolings and similarities.

mod multi_level;
mod parameter_groups;
mod vse;

pub use multi_level::{
    HAT_TEXT_LAYERS, LevelScores, MultiLevelSimilarity, MultiLevelSimilarityConfig,
};
pub use parameter_groups::{Backbones, CaptionAugmentation, ParameterGroup};
pub use vse::{
    BatchForward, CosineHead, LevelBatch, SimilarityConfig, SimilarityHead, VseModel,
    VseModelConfig,
};
