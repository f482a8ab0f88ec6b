//! Parameter-free poolings over valid positions.

use burn::tensor::{Tensor, TensorData};

use crate::masking::{PADDING_FILL, check_lengths, fill_padding};

/// Mean over the valid positions. `x`: `[batch, max_len, dim]` → `[batch, dim]`.
pub fn mean_pool(x: Tensor<3>, lengths: &[usize]) -> Tensor<2> {
    let [batch, max_len, _] = x.dims();
    check_lengths(lengths, max_len, "mean_pool");
    let counts: Vec<f32> = lengths.iter().map(|&len| len as f32).collect();
    let counts = Tensor::<2>::from_data(TensorData::new(counts, [batch, 1]), &x.device());
    fill_padding(x, lengths, 0.0).sum_dim(1).squeeze_dim::<2>(1) / counts
}

/// Max over the valid positions. `x`: `[batch, max_len, dim]` → `[batch, dim]`.
pub fn max_pool(x: Tensor<3>, lengths: &[usize]) -> Tensor<2> {
    let [_, max_len, _] = x.dims();
    check_lengths(lengths, max_len, "max_pool");
    fill_padding(x, lengths, PADDING_FILL)
        .max_dim(1)
        .squeeze_dim::<2>(1)
}

/// Mean of the `k` largest valid values of each channel (fewer where a set is shorter).
/// `x`: `[batch, max_len, dim]` → `[batch, dim]`.
pub fn max_k_mean_pool(x: Tensor<3>, lengths: &[usize], k: usize) -> Tensor<2> {
    let [batch, max_len, _] = x.dims();
    check_lengths(lengths, max_len, "max_k_mean_pool");
    assert!(k >= 1, "max_k_mean_pool: k must be at least 1");
    let take = k.min(max_len);
    let sorted = fill_padding(x, lengths, PADDING_FILL).sort_descending(1);
    let kept: Vec<usize> = lengths.iter().map(|&len| len.min(take)).collect();
    let top = fill_padding(sorted.narrow(1, 0, take), &kept, 0.0);
    let counts: Vec<f32> = kept.iter().map(|&n| n as f32).collect();
    let counts = Tensor::<2>::from_data(TensorData::new(counts, [batch, 1]), &top.device());
    top.sum_dim(1).squeeze_dim::<2>(1) / counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn example(device: &Device) -> Tensor<3> {
        // Two sets of width 2; the second has one padding row holding a large value.
        Tensor::from_floats(
            [
                [[1.0, -2.0], [3.0, 5.0], [2.0, 0.0]],
                [[4.0, 1.0], [-1.0, 3.0], [100.0, 100.0]],
            ],
            device,
        )
    }

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn mean_ignores_padding() {
        let device = Device::default();
        let y = values(mean_pool(example(&device), &[3, 2]));
        assert_eq!(y, vec![2.0, 1.0, 1.5, 2.0]);
    }

    #[test]
    fn max_ignores_padding() {
        let device = Device::default();
        let y = values(max_pool(example(&device), &[3, 2]));
        assert_eq!(y, vec![3.0, 5.0, 4.0, 3.0]);
    }

    #[test]
    fn max_k_mean_averages_the_top_values() {
        let device = Device::default();
        let y = values(max_k_mean_pool(example(&device), &[3, 1], 2));
        // First set: top-2 of [1,3,2] = 2.5, of [-2,5,0] = 2.5; second set has one row.
        assert_eq!(y, vec![2.5, 2.5, 4.0, 1.0]);
    }
}
