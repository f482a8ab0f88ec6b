//! A checkpoint written by a run reloads to the run's scores.

use std::path::Path;

use burn::tensor::Device;
use itm_core::eval::Protocol;
use itm_core::{VseModel, VseModelConfig};
use itm_data::{CaptionTokenizer, RetrievalSplit};
use itm_train::{Checkpoint, evaluate_split};

/// Reloads the checkpoint in `folder` on `device`, asserts that the reloaded model (with the
/// reloaded tokenizer) scores `split` to the same rsum as `expected_rsum` (within 1e-6), and
/// returns what was loaded for further checks.
pub fn assert_checkpoint_rescores(
    folder: &Path,
    split: &RetrievalSplit,
    device: &Device,
    expected_rsum: f64,
) -> (VseModel, VseModelConfig, CaptionTokenizer) {
    let (model, config, tokenizer) = Checkpoint::new(folder)
        .load(device)
        .expect("the checkpoint loads");
    let again = evaluate_split(&model, split, &tokenizer, device, Protocol::Flickr30k, true)
        .expect("the reloaded model evaluates");
    assert!(
        (again.metrics.rsum() - expected_rsum).abs() < 1e-6,
        "the reloaded model scores {} instead of {expected_rsum}",
        again.metrics.rsum()
    );
    (model, config, tokenizer)
}
