//! Fusion layers between encoding and scoring (METHODS §4).
//!
//! - [`CoAttentionStack`]: dual-stream co-attention over the regions and words of a pair;
//! - [`InstanceRelation`]: HREM's relation layer over the embeddings of a training batch;
//! - [`MultiScaleFusion`]: CHAN-ASDG's multi-scale region fusion before hard alignment.

mod co_attention;
mod instance_relation;
mod multi_scale;

pub use co_attention::{CoAttentionConfig, CoAttentionLayer, CoAttentionStack, CoAttentionStream};
pub use instance_relation::{InstanceRelation, InstanceRelationConfig};
pub use multi_scale::{MultiScaleFusion, MultiScaleFusionConfig, ScaleCombination};
