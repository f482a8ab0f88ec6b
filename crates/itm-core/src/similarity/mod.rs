//! Similarity functions producing `S ∈ R^{n_img × n_cap}` (METHODS §3), their multi-grained
//! sum (AAHR, our design), and the heads table that names each of them once ([`HEADS`],
//! [`HeadTable`]).

mod chan;
mod chan_host;
mod cosine;
mod esl;
mod fine_grained;
mod heads;
mod multi_grained;
mod multi_level;
mod scan;
mod sharded;
mod two_stage;
mod xdim;
mod xdim_host;

pub use chan::{CHAN_INVALID_SCORE, Chan, ChanAggregation, ChanConfig};
pub use cosine::{BlockedCosine, cosine_similarity, host_inner_products};
pub use esl::{
    ESL_ADAPTIVE_KEEP, ESL_LAYER_NORM_EPSILON, ESL_LEAKY_SLOPE, ESL_SHARPENING, Esl, EslAggregator,
    EslConfig, esl_adaptive_matrix,
};
pub use fine_grained::{FineGrainedDims, FineGrainedSimilarity, check_fine_grained_inputs};
pub use heads::{
    BuiltinHead, CHAN, COSINE, COSINE_CHAN, CosineHead, DuplicateHead, ESL, ESL_PUBLISHED_LEVELS,
    HEADS, Head, HeadTable, MULTI_LEVEL_SCAN, SCAN_I2T, SCAN_T2I, SimilarityConfig, SimilarityHead,
    XDIM, builtin_head, esl, esl_levels,
};
pub use multi_grained::{MultiGrained, MultiGrainedConfig};
pub use multi_level::{
    HAT_IMAGE_REGIONS, HAT_LAMBDA_SOFTMAX, MultiLevelScan, MultiLevelScanConfig, SingleLevel,
    hat_level_head, sum_levels,
};
pub use scan::{SCAN_LEAKY_SLOPE, Scan, ScanAggregation, ScanConfig, ScanDirection};
pub use sharded::{FeatureSets, ShardedScorer};
pub use two_stage::{QueryModality, mean_of_sets, top_k_of_row};
pub use xdim::{XDIM_LEAKY_SLOPE, XDIM_MASK_ARGUMENT_MAX, XDIM_VARIANCE_FLOOR, XDim, XDimConfig};
