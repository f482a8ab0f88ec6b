//! One stage: blocks alternating plain and shifted windows, then (except in the last stage) a
//! patch merging.

use burn::module::Module;
use burn::tensor::Tensor;

use super::block::SwinBlock;
use super::embed::padding;
use super::merge::SwinPatchMerging;
use super::window::shifted_window_mask;

/// The blocks of one resolution and the patch merging that ends the stage (timm's
/// `BasicLayer`, transformers' `SwinStage`).
#[derive(Module, Debug)]
pub struct SwinStage {
    /// The blocks, applied in order.
    pub blocks: Vec<SwinBlock>,
    /// The patch merging to the next stage (`None` in the last stage).
    pub downsample: Option<SwinPatchMerging>,
}

impl SwinStage {
    /// The stage's output *before* patch merging (what HAT takes as a level).
    ///
    /// - `x`: `[batch, rows · cols, width]`
    /// - `grid`: `[rows, cols]`
    /// - returns `[batch, rows · cols, width]`
    pub fn forward(&self, mut x: Tensor<3>, grid: [usize; 2]) -> Tensor<3> {
        // The shifted blocks of a stage share their window, shift and padded grid: one mask.
        let mask = self.blocks.iter().find(|b| b.shift > 0).map(|block| {
            let window = block.attention.window;
            shifted_window_mask(
                grid[0] + padding(grid[0], window),
                grid[1] + padding(grid[1], window),
                window,
                block.shift,
                &x.device(),
            )
        });
        for block in &self.blocks {
            x = block.forward(x, grid, mask.clone());
        }
        x
    }

    /// The input of the next stage: the patch merging of `x` (`[batch, rows · cols, width]`
    /// → `[batch, ⌈rows/2⌉ · ⌈cols/2⌉, 2·width]` and the new grid), or `None` in the last
    /// stage.
    pub fn merge(&self, x: Tensor<3>, grid: [usize; 2]) -> Option<(Tensor<3>, [usize; 2])> {
        self.downsample
            .as_ref()
            .map(|merging| merging.forward(x, grid))
    }
}
