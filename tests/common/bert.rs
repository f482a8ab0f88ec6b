//! Helpers of the BERT tests (`tests/bert_reference.rs`, `tests/minilm.rs`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use itm::burn::tensor::{Device, Int, Tensor, TensorData};
use itm::data::SubwordBatch;

/// `tests/fixtures/{name}` (folders written by `scripts/generate_bert_fixture.py`).
pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Row-major ids `[rows, width]` as an int tensor.
pub fn ids(values: &[i64], rows: usize, width: usize, device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(values.to_vec(), [rows, width]), device)
}

/// The ids of a tokenized batch as an int tensor `[batch, max_len]`.
pub fn batch_ids(batch: &SubwordBatch, device: &Device) -> Tensor<2, Int> {
    ids(&batch.ids, batch.lengths.len(), batch.max_len, device)
}

/// Largest absolute element-wise difference.
pub fn max_abs_difference(actual: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(actual.len(), expected.len(), "lengths differ");
    actual
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max)
}

/// Asserts closeness within `tolerance` and prints the largest difference (`--nocapture`).
pub fn assert_within(actual: &[f32], expected: &[f32], tolerance: f32, what: &str) -> f32 {
    let worst = max_abs_difference(actual, expected);
    eprintln!("{what}: max abs difference {worst:.3e}");
    assert!(
        worst <= tolerance,
        "{what}: max abs difference {worst} > {tolerance}"
    );
    worst
}

/// Copies the files of `from` into a fresh temporary folder named after `name`.
pub fn copy_folder(from: &Path, name: &str) -> PathBuf {
    let to = std::env::temp_dir().join(format!("itm-bert-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&to);
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    to
}
