//! Helpers shared by the integration tests: fixtures and PyTorch → burn parameter layout.

#![allow(dead_code)]

use itm::burn::module::Param;
use itm::burn::nn::Linear;
use itm::burn::tensor::{Device, Tensor, TensorData};
use itm::core::encoders::FusedGru;
use serde_json::Value;

/// Reads `tests/fixtures/{name}.json` (written by `scripts/generate_fixtures.py`).
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A JSON array of numbers as `f32`.
pub fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_f64().expect("a number") as f32)
        .collect()
}

/// A JSON array of integers as `usize`.
pub fn sizes(value: &Value) -> Vec<usize> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_u64().expect("an integer") as usize)
        .collect()
}

/// A tensor of `shape` from a JSON array.
pub fn tensor<const D: usize>(value: &Value, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(floats(value), shape), device)
}

/// Transposes a row-major `[rows, cols]` buffer.
pub fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// Sets a burn `Linear` (weight `[in, out]`) from a PyTorch weight `[out, in]` and bias.
pub fn load_linear(linear: &mut Linear, weight: &Value, bias: Option<&Value>, device: &Device) {
    let [d_in, d_out] = linear.weight.dims();
    let weight = transpose(&floats(weight), d_out, d_in);
    linear.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(weight, [d_in, d_out]),
        device,
    ));
    linear.bias = bias.map(|b| Param::from_tensor(tensor(b, [d_out], device)));
}

/// Sets a [`FusedGru`] from PyTorch's `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`.
pub fn load_gru(gru: &mut FusedGru, params: &Value, device: &Device) {
    load_linear(
        &mut gru.input,
        &params["weight_ih"],
        Some(&params["bias_ih"]),
        device,
    );
    load_linear(
        &mut gru.hidden,
        &params["weight_hh"],
        Some(&params["bias_hh"]),
        device,
    );
}

/// Asserts element-wise closeness within `tolerance` (absolute).
pub fn assert_close(actual: &[f32], expected: &[f32], tolerance: f32, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    assert!(
        actual.iter().all(|v| v.is_finite()),
        "{what}: a value is NaN or infinite"
    );
    let worst = actual
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= tolerance,
        "{what}: max abs difference {worst} > {tolerance}"
    );
}

/// Host values of a tensor.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("f32 tensor")
}

/// Reloads the checkpoint in `folder` on `device`, asserts that the reloaded model (with the
/// reloaded tokenizer) scores `split` to the same rsum as `expected_rsum`, and returns what was
/// loaded for further checks.
pub fn assert_checkpoint_rescores(
    folder: &std::path::Path,
    split: &itm::data::RetrievalSplit,
    device: &Device,
    expected_rsum: f64,
) -> (
    itm::core::VseModel,
    itm::core::VseModelConfig,
    itm::data::CaptionTokenizer,
) {
    let (model, config, tokenizer) = itm::train::Checkpoint::new(folder)
        .load(device)
        .expect("the checkpoint loads");
    let again = itm::train::evaluate_split(
        &model,
        split,
        &tokenizer,
        device,
        itm::core::eval::Protocol::Flickr30k,
        true,
    )
    .expect("the reloaded model evaluates");
    assert!(
        (again.metrics.rsum() - expected_rsum).abs() < 1e-6,
        "the reloaded model scores {} instead of {expected_rsum}",
        again.metrics.rsum()
    );
    (model, config, tokenizer)
}
