//! PyTorch → burn: tensors from JSON, and parameters in burn's layout.

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{Device, Int, Tensor, TensorData};
use itm_core::encoders::FusedGru;
use itm_data::SubwordBatch;
use serde_json::Value;

use crate::fixtures::floats;

/// A tensor of `shape` from a JSON array of numbers.
pub fn tensor<const D: usize>(value: &Value, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(floats(value), shape), device)
}

/// Host values of a float tensor.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("f32 tensor")
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

/// Row-major token ids `[rows, width]` as an int tensor.
pub fn ids(values: &[i64], rows: usize, width: usize, device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(values.to_vec(), [rows, width]), device)
}

/// The ids of a tokenized batch as an int tensor `[batch, max_len]`.
pub fn batch_ids(batch: &SubwordBatch, device: &Device) -> Tensor<2, Int> {
    ids(&batch.ids, batch.lengths.len(), batch.max_len, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_swaps_rows_and_columns() {
        assert_eq!(
            transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3),
            [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
    }
}
