//! Fusion layers between encoding and scoring (METHODS §4).
//!
//! - [`InstanceRelation`]: HREM's relation layer over the embeddings of a training batch;
//! - [`MultiScaleFusion`]: CHAN-ASDG's multi-scale region fusion before hard alignment.

mod instance_relation;
mod multi_scale;

pub use instance_relation::{InstanceRelation, InstanceRelationConfig};
pub use multi_scale::{MultiScaleFusion, MultiScaleFusionConfig, ScaleCombination};
