//! Similarity functions producing `S ∈ R^{n_img × n_cap}` (METHODS §3).

mod cosine;

pub use cosine::{BlockedCosine, cosine_similarity};
