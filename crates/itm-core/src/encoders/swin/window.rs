//! Tensor plumbing of window attention: cutting a grid into windows and back, and the mask of
//! shifted windows (Liu et al. 2021 §3.2, "efficient batch computation for shifted
//! configuration").

use burn::tensor::{Device, Tensor, TensorData};

/// `[batch, rows, cols, width]` → `[batch · windows, window², width]`: windows in row-major
/// order within each image, tokens in row-major order within each window.
///
/// # Panics
///
/// If `window` does not divide `rows` and `cols`.
pub(super) fn partition(x: Tensor<4>, window: usize) -> Tensor<3> {
    let [batch, rows, cols, width] = x.dims();
    assert!(
        rows.is_multiple_of(window) && cols.is_multiple_of(window),
        "a {rows}×{cols} grid does not split into {window}×{window} windows"
    );
    x.reshape([batch, rows / window, window, cols / window, window, width])
        .permute([0, 1, 3, 2, 4, 5])
        .reshape([
            batch * (rows / window) * (cols / window),
            window * window,
            width,
        ])
}

/// The inverse of [`partition`]: `[batch · windows, window², width]` → `[batch, rows, cols,
/// width]`.
pub(super) fn reverse(windows: Tensor<3>, window: usize, rows: usize, cols: usize) -> Tensor<4> {
    let [count, _, width] = windows.dims();
    let batch = count / ((rows / window) * (cols / window));
    windows
        .reshape([batch, rows / window, cols / window, window, window, width])
        .permute([0, 1, 3, 2, 4, 5])
        .reshape([batch, rows, cols, width])
}

/// The additive mask of shifted windows on a `rows × cols` grid (already padded to whole
/// windows) rolled up and left by `shift`: `[windows, window², window²]`, 0 where query and
/// key come from the same region of the unrolled grid, −100 where the roll brought them
/// together from different regions (the value of the reference implementations; after the
/// softmax it is 0 to float precision).
///
/// The regions split each axis at `size − window` and `size − shift`.
pub(super) fn shifted_window_mask(
    rows: usize,
    cols: usize,
    window: usize,
    shift: usize,
    device: &Device,
) -> Tensor<3> {
    let region = |position: usize, size: usize| -> usize {
        if position + window < size {
            0
        } else if position + shift < size {
            1
        } else {
            2
        }
    };
    let tokens = window * window;
    let (window_rows, window_cols) = (rows / window, cols / window);
    let mut mask = Vec::with_capacity(window_rows * window_cols * tokens * tokens);
    for wr in 0..window_rows {
        for wc in 0..window_cols {
            let labels: Vec<usize> = (0..tokens)
                .map(|t| {
                    let (r, c) = (wr * window + t / window, wc * window + t % window);
                    3 * region(r, rows) + region(c, cols)
                })
                .collect();
            for &query in &labels {
                for &key in &labels {
                    mask.push(if query == key { 0.0f32 } else { -100.0 });
                }
            }
        }
    }
    Tensor::from_data(
        TensorData::new(mask, [window_rows * window_cols, tokens, tokens]),
        device,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn partition_and_reverse_are_inverse() {
        let device = Device::default();
        let x = Tensor::<4>::random([2, 6, 4, 3], Distribution::Normal(0.0, 1.0), &device);
        let windows = partition(x.clone(), 2);
        assert_eq!(windows.dims(), [12, 4, 3]);
        // Window 1 of image 0 is rows 0–1, columns 2–3; its token 2 is (row 1, column 2).
        let token = windows.clone().slice([1..2, 2..3, 0..3]).reshape([3]);
        let cell = x.clone().slice([0..1, 1..2, 2..3, 0..3]).reshape([3]);
        token.into_data().assert_eq(&cell.into_data(), true);
        reverse(windows, 2, 6, 4)
            .into_data()
            .assert_eq(&x.into_data(), true);
    }

    /// A 4×4 grid, 2×2 windows rolled by 1: the top-left window holds tokens of one region
    /// only, the bottom-right one of four; each pair is masked when its regions differ.
    #[test]
    fn mask_separates_regions_brought_together_by_the_roll() {
        let device = Device::default();
        let mask = shifted_window_mask(4, 4, 2, 1, &device);
        assert_eq!(mask.dims(), [4, 4, 4]);
        let values: Vec<f32> = mask.into_data().try_to_vec::<f32>().unwrap();
        let window = |w: usize| &values[w * 16..(w + 1) * 16];
        assert!(window(0).iter().all(|&v| v == 0.0));
        // Bottom-right window: four regions, every token alone in its own.
        for (i, &v) in window(3).iter().enumerate() {
            assert_eq!(v, if i / 4 == i % 4 { 0.0 } else { -100.0 }, "{i}");
        }
        // Top-right window: columns 2 (region 1) and 3 (region 2), rows 0–1 (region 0).
        let expected: Vec<f32> = (0..16)
            .map(|i| {
                if (i / 4) % 2 == (i % 4) % 2 {
                    0.0
                } else {
                    -100.0
                }
            })
            .collect();
        assert_eq!(window(1), expected.as_slice());
    }
}
