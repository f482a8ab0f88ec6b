//! `itm`: image–text matching (cross-modal retrieval) on Burn.
//!
//! This facade re-exports the workspace crates so that users write `use itm::...`:
//!
//! - [`core`] (`itm-core`): encoders, poolings (GPO), similarities, losses, the evaluation
//!   protocol and assembled models — all backend-agnostic.
//! - [`data`] (`itm-data`): the embedded `shapes` dataset, the precomp layout, vocabularies and
//!   batching.
//! - [`train`] (`itm-train`): the training loop, checkpoints and split evaluation.
//! - [`serve`] (`itm-serve`): retrieval indexes (exact and HNSW search) and contact sheets.
//! - [`device`]: picking a backend at run time (`flex`, `wgpu`, `cuda`).
//!
//! ```no_run
//! use itm::core::VseModelConfig;
//! let device = itm::device::parse("flex").unwrap();
//! let model = VseModelConfig::vse_infinity_bigru(2048, 10_000).init(&device);
//! ```

#![warn(missing_docs)]

pub mod device;

// The README's code, compiled as a doctest so that it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use burn;
pub use itm_core as core;
pub use itm_data as data;
pub use itm_serve as serve;
pub use itm_train as train;
