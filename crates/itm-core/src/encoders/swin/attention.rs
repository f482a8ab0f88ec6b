//! Window multi-head self-attention with a learned relative position bias (W-MSA / SW-MSA,
//! Liu et al. 2021 §3.2, Eq. 4: `softmax(Q Kᵀ / √d + B) V`).

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::softmax;
use burn::tensor::{Int, Tensor, TensorData};

/// Self-attention inside windows of `window × window` tokens. The bias `B` of a query–key pair
/// is read from [`Self::relative_position_bias_table`] at their relative offset, one value per
/// head.
#[derive(Module, Debug)]
pub struct WindowAttention {
    /// Query projection `Linear(width → width)`.
    pub query: Linear,
    /// Key projection `Linear(width → width)`.
    pub key: Linear,
    /// Value projection `Linear(width → width)`.
    pub value: Linear,
    /// Output projection `Linear(width → width)` (timm's `proj`, transformers'
    /// `attention.output.dense`).
    pub output: Linear,
    /// `[(2·window − 1)², heads]`: the bias of each relative offset `(Δrow, Δcol)`, at index
    /// `(Δrow + window − 1)·(2·window − 1) + (Δcol + window − 1)`.
    pub relative_position_bias_table: Param<Tensor<2>>,
    /// Number of heads.
    #[module(skip)]
    pub heads: usize,
    /// Side of the windows.
    #[module(skip)]
    pub window: usize,
}

impl WindowAttention {
    /// - `x`: `[windows, window², width]`, the tokens of each window in row-major order, the
    ///   windows of one image consecutive (`windows = batch · windows_per_image`)
    /// - `mask`: `[windows_per_image, window², window²]`, added to the scores of every head
    ///   (0 or −100: the shifted windows' mask, see `shifted_window_mask`)
    /// - returns `[windows, window², width]`
    pub fn forward(&self, x: Tensor<3>, mask: Option<Tensor<3>>) -> Tensor<3> {
        let [windows, tokens, width] = x.dims();
        let heads = self.heads;
        let head_dim = width / heads;
        let split = |t: Tensor<3>| {
            t.reshape([windows, tokens, heads, head_dim])
                .swap_dims(1, 2)
        };
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x));
        // [windows, heads, tokens, tokens]
        let mut scores = q
            .matmul(k.swap_dims(2, 3))
            .div_scalar((head_dim as f64).sqrt())
            + self.relative_position_bias(tokens).unsqueeze_dim::<4>(0);
        if let Some(mask) = mask {
            let [per_image, _, _] = mask.dims();
            scores = scores
                + mask
                    .unsqueeze_dim::<4>(1)
                    .repeat_dim(0, windows / per_image);
        }
        let context = softmax(scores, 3).matmul(v); // [windows, heads, tokens, head_dim]
        self.output
            .forward(context.swap_dims(1, 2).reshape([windows, tokens, width]))
    }

    /// `B`: `[heads, window², window²]`.
    ///
    /// # Panics
    ///
    /// If `tokens` is not `window²`.
    fn relative_position_bias(&self, tokens: usize) -> Tensor<3> {
        let window = self.window;
        assert_eq!(
            tokens,
            window * window,
            "windows of {tokens} tokens, the relative position table is for {window}×{window}"
        );
        let table = self.relative_position_bias_table.val();
        let index = Tensor::<1, Int>::from_data(
            TensorData::new(relative_position_index(window), [tokens * tokens]),
            &table.device(),
        );
        table
            .select(0, index)
            .reshape([tokens, tokens, self.heads])
            .permute([2, 0, 1])
    }
}

/// For every pair (query `i`, key `j`) of a `window × window` window, row-major, the row of the
/// relative position table of their offset: `(r_i − r_j + w − 1)·(2w − 1) + (c_i − c_j + w − 1)`.
pub(super) fn relative_position_index(window: usize) -> Vec<i64> {
    let w = window as i64;
    let tokens = window * window;
    let mut index = Vec::with_capacity(tokens * tokens);
    for i in 0..tokens as i64 {
        for j in 0..tokens as i64 {
            let (dr, dc) = (i / w - j / w, i % w - j % w);
            index.push((dr + w - 1) * (2 * w - 1) + (dc + w - 1));
        }
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first and last offsets, and the symmetry of the table's indexing: `(i, j)` and
    /// `(j, i)` sit at mirrored rows.
    #[test]
    fn relative_index_covers_the_table() {
        let index = relative_position_index(3);
        assert_eq!(index.len(), 81);
        // (0,0)–(0,0): offset (0,0) → the table's centre.
        assert_eq!(index[0], 12);
        // query (0,0), key (2,2): offset (−2,−2) → row 0; the reverse → the last row.
        assert_eq!(index[8], 0);
        assert_eq!(index[8 * 9], 24);
        for i in 0..9 {
            for j in 0..9 {
                assert_eq!(index[i * 9 + j] + index[j * 9 + i], 24);
            }
        }
        assert_eq!(relative_position_index(1), vec![0]);
    }
}
