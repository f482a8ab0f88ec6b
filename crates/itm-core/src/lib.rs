//! Backend-agnostic building blocks for image–text matching.
//!
//! Data flows one way: [`encoders`] → ([`fusion`]) → [`pooling`] → [`similarity`] → [`loss`] / [`eval`].
//! Nothing here names a backend: the [`burn::tensor::Device`] a module is built on decides
//! where it runs (the pure-Rust `flex` CPU backend, WGPU or CUDA).
//!
//! The math follows `METHODS.md` of the project; each item names the section it implements.
//! [`ops`] holds the element-wise functions and axis reductions that have fast kernels on the
//! `flex` CPU backend (exp, sigmoid, tanh, GELU, softmax, LogSumExp); the modules call them.

pub mod encoders;
pub mod eval;
pub mod fusion;
pub mod loss;
pub mod masking;
pub mod models;
pub mod ops;
pub mod pooling;
pub mod runtime;
pub mod similarity;

pub use encoders::{GruTextEncoder, GruTextEncoderConfig, RegionEncoder, RegionEncoderConfig};
pub use eval::{Metrics, Protocol, RetrievalReport, evaluate};
pub use fusion::{InstanceRelation, InstanceRelationConfig};
pub use loss::{HingeLoss, HingeLossConfig, InfoNce, InfoNceConfig, NegativeMining};
pub use models::{MultiLevelSimilarity, MultiLevelSimilarityConfig, VseModel, VseModelConfig};
pub use pooling::{Gpo, GpoConfig, Pooling, PoolingConfig};
