//! Patch merging between stages: each 2×2 group of patches becomes one, the width doubles.

use burn::module::Module;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::Tensor;

/// `Linear(4·width → 2·width, no bias)` of the layer-normed concatenation of each 2×2 group
/// `[x(2i, 2j), x(2i+1, 2j), x(2i, 2j+1), x(2i+1, 2j+1)]` (that order, as timm and transformers).
#[derive(Module, Debug)]
pub struct SwinPatchMerging {
    /// Layer norm over `4·width`.
    pub norm: LayerNorm,
    /// `Linear(4·width → 2·width)` without bias.
    pub reduction: Linear,
}

impl SwinPatchMerging {
    /// A grid with an odd side is padded with a row or column of zeros first (transformers;
    /// timm refuses it).
    ///
    /// - `x`: `[batch, rows · cols, width]` (row-major)
    /// - `grid`: `[rows, cols]`
    /// - returns `[batch, ⌈rows/2⌉ · ⌈cols/2⌉, 2·width]` and `[⌈rows/2⌉, ⌈cols/2⌉]`
    pub fn forward(&self, x: Tensor<3>, grid: [usize; 2]) -> (Tensor<3>, [usize; 2]) {
        let [batch, _, width] = x.dims();
        let [rows, cols] = grid;
        let mut x = x.reshape([batch, rows, cols, width]);
        if rows % 2 + cols % 2 > 0 {
            x = x.pad([(0, rows % 2), (0, cols % 2), (0, 0)], 0.0);
        }
        let (half_rows, half_cols) = (rows.div_ceil(2), cols.div_ceil(2));
        // [batch, i, a, j, b, width] with row 2i + a, column 2j + b → [batch, i, j, b, a,
        // width]: flattening (b, a) gives the order (0,0), (1,0), (0,1), (1,1) of (a, b).
        let grouped = x
            .reshape([batch, half_rows, 2, half_cols, 2, width])
            .permute([0, 1, 3, 4, 2, 5])
            .reshape([batch, half_rows * half_cols, 4 * width]);
        (
            self.reduction.forward(self.norm.forward(grouped)),
            [half_rows, half_cols],
        )
    }
}
