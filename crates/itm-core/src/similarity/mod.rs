//! Similarity functions producing `S ∈ R^{n_img × n_cap}` (METHODS §3).

mod chan;
mod cosine;
mod fine_grained;
mod scan;
mod sharded;

pub use chan::{CHAN_INVALID_SCORE, Chan, ChanAggregation, ChanConfig};
pub use cosine::{BlockedCosine, cosine_similarity};
pub use fine_grained::{FineGrainedDims, FineGrainedSimilarity, check_fine_grained_inputs};
pub use scan::{SCAN_LEAKY_SLOPE, Scan, ScanAggregation, ScanConfig, ScanDirection};
pub use sharded::{FeatureSets, ShardedScorer};
