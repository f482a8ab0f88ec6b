//! One Swin block: (shifted-)window attention and a feed-forward sub-layer, both pre-norm with
//! a residual (Liu et al. 2021 Eq. 3), each branch under stochastic depth in training.

use burn::module::Module;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::Tensor;
use burn::tensor::activation::gelu;

use super::attention::WindowAttention;
use super::drop_path::DropPath;
use super::embed::padding;
use super::window::{partition, reverse};

/// `x + (S)W-MSA(LN(x))`, then `x + W₂·GELU(W₁·LN(x))`. With a shift, the grid is rolled up
/// and left by `shift` before the windows are cut and rolled back after; tokens that the
/// roll brought into one window from different regions do not attend to each other (the mask
/// of `window::shifted_window_mask`, passed in by the stage).
#[derive(Module, Debug)]
pub struct SwinBlock {
    /// Layer norm before the attention (timm `norm1`, transformers `layernorm_before`).
    pub norm_before: LayerNorm,
    /// The window attention.
    pub attention: WindowAttention,
    /// Layer norm before the feed-forward sub-layer (timm `norm2`, transformers
    /// `layernorm_after`).
    pub norm_after: LayerNorm,
    /// `Linear(width → hidden)` (timm `mlp.fc1`, transformers `intermediate.dense`).
    pub fc1: Linear,
    /// `Linear(hidden → width)` (timm `mlp.fc2`, transformers `output.dense`).
    pub fc2: Linear,
    /// Stochastic depth of both residual branches (training only).
    pub drop_path: DropPath,
    /// Cyclic shift of the windows (0: plain windows).
    #[module(skip)]
    pub shift: usize,
}

impl SwinBlock {
    /// A grid whose sides are not multiples of the window is padded with zero features at the
    /// bottom and on the right after the first norm (transformers; timm refuses it); the padded
    /// tokens take part in the attention of their windows, then are cut off.
    ///
    /// - `x`: `[batch, rows · cols, width]` (row-major)
    /// - `grid`: `[rows, cols]`
    /// - `mask`: for a shifted block, the mask of the padded grid
    ///   (`[windows_per_image, window², window²]`)
    /// - returns `[batch, rows · cols, width]`
    pub fn forward(&self, x: Tensor<3>, grid: [usize; 2], mask: Option<Tensor<3>>) -> Tensor<3> {
        let [batch, tokens, width] = x.dims();
        let [rows, cols] = grid;
        let window = self.attention.window;
        let shift = self.shift as i64;
        let (pad_rows, pad_cols) = (padding(rows, window), padding(cols, window));

        let mut y = self
            .norm_before
            .forward(x.clone())
            .reshape([batch, rows, cols, width]);
        if pad_rows + pad_cols > 0 {
            y = y.pad([(0, pad_rows), (0, pad_cols), (0, 0)], 0.0);
        }
        if shift > 0 {
            y = y.roll(&[-shift, -shift], &[1, 2]);
        }
        let attended = self
            .attention
            .forward(partition(y, window), mask.filter(|_| shift > 0));
        let mut y = reverse(attended, window, rows + pad_rows, cols + pad_cols);
        if shift > 0 {
            y = y.roll(&[shift, shift], &[1, 2]);
        }
        if pad_rows + pad_cols > 0 {
            y = y.slice([0..batch, 0..rows, 0..cols, 0..width]);
        }
        let x = x + self.drop_path.forward(y.reshape([batch, tokens, width]));
        let mlp = self
            .fc2
            .forward(gelu(self.fc1.forward(self.norm_after.forward(x.clone()))));
        x + self.drop_path.forward(mlp)
    }
}
