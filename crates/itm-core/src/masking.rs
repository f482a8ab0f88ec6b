//! Shared length and mask plumbing: every module that handles variable-length sets
//! (regions after region drop, words of a caption) goes through these helpers.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

/// Epsilon added to the Euclidean norm in [`l2_normalize`] (METHODS: "l2norm").
pub const L2_EPSILON: f64 = 1e-8;

/// Divides `x` by its Euclidean norm along the last axis (plus [`L2_EPSILON`]).
pub fn l2_normalize<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let norm = x
        .clone()
        .square()
        .sum_dim(D - 1)
        .sqrt()
        .add_scalar(L2_EPSILON);
    x / norm
}

/// Boolean mask `[batch, max_len]` that is `true` at padding positions (`t >= lengths[b]`).
pub fn padding_mask(lengths: &[usize], max_len: usize, device: &Device) -> Tensor<2, Bool> {
    let flags: Vec<bool> = lengths
        .iter()
        .flat_map(|&len| (0..max_len).map(move |t| t >= len))
        .collect();
    Tensor::from_data(TensorData::new(flags, [lengths.len(), max_len]), device)
}

/// Index `[batch, max_len]` that reverses the first `lengths[b]` steps of each row and leaves
/// the padding where it is: `t -> len - 1 - t` for `t < len`, `t -> t` otherwise.
///
/// Applying it twice is the identity, so the same index maps a reversed sequence back.
pub fn reverse_within_lengths_index(
    lengths: &[usize],
    max_len: usize,
    device: &Device,
) -> Tensor<2, Int> {
    let index: Vec<i64> = lengths
        .iter()
        .flat_map(|&len| {
            (0..max_len).map(move |t| {
                if t < len {
                    (len - 1 - t) as i64
                } else {
                    t as i64
                }
            })
        })
        .collect();
    Tensor::from_data(TensorData::new(index, [lengths.len(), max_len]), device)
}

/// Picks steps of `x` `[batch, max_len, dim]` along axis 1 with an index `[batch, picked]`:
/// a reordering when `picked = max_len` (e.g. from [`reverse_within_lengths_index`]), one
/// step per row when `picked = 1` (e.g. CLIP's end-of-text token). Returns
/// `[batch, picked, dim]`.
pub fn gather_steps(x: Tensor<3>, index: Tensor<2, Int>) -> Tensor<3> {
    let [batch, _, dim] = x.dims();
    let [_, picked] = index.dims();
    x.gather(1, index.unsqueeze_dim::<3>(2).expand([batch, picked, dim]))
}

/// Sets the padding steps of `x` `[batch, max_len, dim]` to `value`.
pub fn fill_padding(x: Tensor<3>, lengths: &[usize], value: f32) -> Tensor<3> {
    let [batch, steps, dim] = x.dims();
    let mask = padding_mask(lengths, steps, &x.device())
        .unsqueeze_dim::<3>(2)
        .expand([batch, steps, dim]);
    x.mask_fill(mask, value)
}

/// Fill value for padding before a max or a sort: below any real feature, finite so that
/// masked products stay well defined.
pub(crate) const PADDING_FILL: f32 = -1.0e9;

/// Checks that every length lies in `1..=max_len`; a zero-length set has no embedding.
pub fn check_lengths(lengths: &[usize], max_len: usize, what: &str) {
    assert!(
        lengths.iter().all(|&len| len >= 1 && len <= max_len),
        "{what}: every length must lie in 1..={max_len}, got {lengths:?}"
    );
}

/// Finite stand-in for `−∞` at masked positions of a max, softmax or log-sum-exp: large enough
/// that `exp` of it (after subtracting a maximum of a valid position) is exactly zero in `f32`.
pub const MASKED_LOGIT: f32 = -1.0e9;

/// `log Σ_{valid i} exp(x_i)` along `dim`, keeping `dim` with size 1.
///
/// - `x`: any shape; `padding`: the same shape, `true` at positions to leave out
/// - every reduced slice must hold at least one valid position
///
/// Stable: subtracts the maximum over the valid positions first ([`crate::ops::log_sum_exp`],
/// SIMD kernels on `flex`). Padding values never reach an `exp` and get zero gradient, so they
/// may hold anything finite.
pub fn masked_log_sum_exp<const D: usize>(
    x: Tensor<D>,
    padding: Tensor<D, Bool>,
    dim: usize,
) -> Tensor<D> {
    crate::ops::log_sum_exp(x.mask_fill(padding, MASKED_LOGIT), dim)
}

/// Mean of `x` along `dim` over the valid positions, keeping `dim` with size 1.
///
/// - `x`: any shape; `padding`: the same shape, `true` at positions to leave out
/// - every reduced slice must hold at least one valid position
pub fn masked_mean<const D: usize>(
    x: Tensor<D>,
    padding: Tensor<D, Bool>,
    dim: usize,
) -> Tensor<D> {
    let valid = padding.clone().bool_not().float().sum_dim(dim);
    x.mask_fill(padding, 0.0).sum_dim(dim) / valid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l2_normalize_gives_unit_rows() {
        let device = Device::default();
        let x = Tensor::<2>::from_floats([[3.0, 4.0], [0.0, 2.0]], &device);
        let y = l2_normalize(x).into_data().try_into_vec::<f32>().unwrap();
        let expected = [0.6, 0.8, 0.0, 1.0];
        for (a, b) in y.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
    }

    #[test]
    fn reverse_index_keeps_padding_in_place() {
        let device = Device::default();
        let index = reverse_within_lengths_index(&[3, 1], 4, &device);
        let values = index.into_data().try_into_vec_as::<i64>().unwrap();
        assert_eq!(values, vec![2, 1, 0, 3, 0, 1, 2, 3]);
    }

    #[test]
    fn masked_reductions_skip_padding() {
        let device = Device::default();
        let x = Tensor::<2>::from_floats([[1.0, 2.0, 1.0e4], [3.0, -1.0e4, 1.0e4]], &device);
        let padding = padding_mask(&[2, 1], 3, &device);
        let lse = masked_log_sum_exp(x.clone(), padding.clone(), 1)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let expected = (1f32.exp() + 2f32.exp()).ln();
        assert!((lse[0] - expected).abs() < 1e-6, "{lse:?}");
        assert!((lse[1] - 3.0).abs() < 1e-6, "{lse:?}");
        let mean = masked_mean(x, padding, 1)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!(mean, vec![1.5, 3.0]);
    }

    #[test]
    fn padding_mask_marks_steps_past_the_length() {
        let device = Device::default();
        let mask = padding_mask(&[2, 3], 3, &device)
            .into_data()
            .try_into_vec::<bool>()
            .unwrap();
        assert_eq!(mask, vec![false, false, true, false, false, false]);
    }
}
