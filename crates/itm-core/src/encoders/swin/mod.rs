//! Swin transformer image tower (Liu et al. 2021, *Swin Transformer: Hierarchical Vision
//! Transformer using Shifted Windows*), returning the features of every stage: the image
//! tower of HAT and DAIM (METHODS §3 "multi-level sum"), which take its last three stages as
//! their low, middle and high levels ([`SwinModel::levels`]).
//!
//! - [`SwinConfig`] (`config`): sizes, named as in transformers' `config.json`;
//!   [`SwinConfig::swin_base_patch4_window7_224`] is HAT's Swin-B, [`SwinConfig::tiny`] a
//!   test size.
//! - [`SwinPatchEmbedding`] (`embed`): `Conv2d(kernel = stride = patch)` + layer norm.
//! - [`WindowAttention`] (`attention`): multi-head attention inside windows with the learned
//!   relative position bias table.
//! - `window`: cutting a grid into windows and back, and the mask of shifted windows.
//! - [`DropPath`] (`drop_path`): stochastic depth of the residual branches.
//! - [`SwinBlock`] (`block`): pre-norm (shifted-)window attention and feed-forward, with the
//!   cyclic shift and the padding of a grid to whole windows.
//! - [`SwinPatchMerging`] (`merge`): 2×2 patches → one, width doubled.
//! - [`SwinStage`] (`stage`): the blocks of one resolution, then the merging.
//! - [`SwinModel`] (`model`): embedding → stages → [`SwinOutput`], every stage's output
//!   *before* its patch merging, normed — HAT's `forward_features`.
//!
//! The computation is transformers' `SwinModel` and timm's (HAT's) `SwinTransformer`: the
//! same modules, in the same order; where they differ, what each does is said at the place
//! (padding: transformers pads sides that do not divide, timm refuses them; the window of a
//! stage no larger than its window: timm sizes it when the model is built, transformers at
//! run time — both from the configured image size here). Stochastic depth ([`DropPath`],
//! `drop_path_rate`) acts in training; dropout (0 in every Swin configuration) is not
//! implemented.
//!
//! `itm_train::load_swin` fills a model from a transformers `SwinModel` folder,
//! `itm_train::load_swin_hat` from HAT's (timm's) names.

mod attention;
mod block;
mod config;
mod drop_path;
mod embed;
mod merge;
mod model;
mod stage;
mod window;

pub use attention::WindowAttention;
pub use block::SwinBlock;
pub use config::{BlockWindow, SwinConfig};
pub use drop_path::DropPath;
pub use embed::SwinPatchEmbedding;
pub use merge::SwinPatchMerging;
pub use model::{SwinLevels, SwinModel, SwinOutput};
pub use stage::SwinStage;
