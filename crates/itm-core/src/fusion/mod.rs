//! Fusion layers between encoding and scoring (METHODS §4) and the multi-level similarity of
//! DAIM / HAT (METHODS §3).
//!
//! - [`InstanceRelation`]: HREM's relation layer over the embeddings of a training batch;
//! - [`MultiLevelSimilarity`]: `S = S_low + S_mid + S_high` over projected encoder levels;
//! - [`MultiScaleFusion`]: CHAN-ASDG's multi-scale region fusion before hard alignment.

mod instance_relation;
mod multi_level;
mod multi_scale;

pub use instance_relation::{InstanceRelation, InstanceRelationConfig};
pub use multi_level::{LevelFeatures, MultiLevelSimilarity, MultiLevelSimilarityConfig};
pub use multi_scale::{MultiScaleFusion, MultiScaleFusionConfig, ScaleCombination};
