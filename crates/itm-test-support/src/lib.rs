//! The test harness of the `itm` workspace (`publish = false`): what the integration tests of
//! every crate share, written once.
//!
//! - [`binary`]: runs the `itm` binary ([`itm_binary!`]) and checks how it ends;
//! - [`temp`]: folders that delete themselves when the test ends, also on a panic ([`TempDir`]);
//! - [`fixtures`]: where each crate's committed fixtures are, and reading their JSON;
//! - [`layout`]: PyTorch → burn parameter layout (transposed `Linear` weights, GRU gates);
//! - [`close`]: element-wise closeness through burn's [`Tolerance`](burn::tensor::Tolerance);
//! - [`reference`]: the PyTorch reference checks of GPO, the BiGRU text encoder and the hinge
//!   loss on any device (`flex` in `itm-core`'s tests, `wgpu` in the root's);
//! - [`fine_grained`]: the conformance contract of a fine-grained head
//!   ([`fine_grained_conformance!`]);
//! - [`loaders`]: assertions on the Hugging Face loaders' mismatch errors;
//! - [`shapes`]: tiny `shapes` data sets, runs and run files;
//! - [`checkpoint`]: a checkpoint reloads to the same scores;
//! - [`serial`]: one training at a time on the device's random generator.

#![warn(missing_docs)]

pub mod binary;
pub mod checkpoint;
pub mod close;
pub mod files;
pub mod fine_grained;
pub mod fixtures;
pub mod layout;
pub mod loaders;
pub mod reference;
pub mod serial;
pub mod shapes;
pub mod temp;

pub use binary::{Binary, failed, stderr, succeeded};
pub use checkpoint::assert_checkpoint_rescores;
pub use close::{Within, assert_close, max_abs_difference};
pub use files::{read_json, read_jsonl, validation_rsum};
pub use fine_grained::FineGrainedCase;
pub use fixtures::{Fixtures, core_fixtures, floats, integers, sizes, train_fixtures};
pub use layout::{batch_ids, ids, load_gru, load_linear, tensor, transpose, values};
pub use loaders::{Mismatch, assert_error_names, assert_mismatch, edit_config};
pub use serial::serial;
pub use shapes::{ShapesToml, fit_quietly, shapes, word_tokenizer};
pub use temp::{TempDir, copy_tree};
