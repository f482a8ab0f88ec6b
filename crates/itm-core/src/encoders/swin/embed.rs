//! Pixels → patch features: `Conv2d(kernel = stride = patch_size)` then a layer norm.

use burn::module::Module;
use burn::nn::LayerNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

/// The patch embedding of a [`SwinModel`](super::SwinModel) (timm's `PatchEmbed` with a
/// norm; transformers' `SwinEmbeddings` without absolute positions).
#[derive(Module, Debug)]
pub struct SwinPatchEmbedding {
    /// Patch projection with bias, weight `[embed_dim, channels, patch_size, patch_size]`.
    pub projection: Conv2d,
    /// Layer norm of every patch feature (`[embed_dim]`).
    pub norm: LayerNorm,
}

impl SwinPatchEmbedding {
    /// Images whose sides are not multiples of the patch size are padded with zeros at the
    /// bottom and on the right first, as transformers does (timm refuses them).
    ///
    /// - `pixels`: `[batch, channels, height, width]`, normalised
    /// - returns the patch features `[batch, rows · cols, embed_dim]` (row-major) and
    ///   `[rows, cols] = [⌈height / patch⌉, ⌈width / patch⌉]`
    pub fn forward(&self, pixels: Tensor<4>) -> (Tensor<3>, [usize; 2]) {
        let [_, _, height, width] = pixels.dims();
        let patch = self.projection.kernel_size[0];
        let (pad_bottom, pad_right) = (padding(height, patch), padding(width, patch));
        let pixels = if pad_bottom + pad_right > 0 {
            pixels.pad((0, pad_right, 0, pad_bottom), 0.0)
        } else {
            pixels
        };
        let patches = self.projection.forward(pixels); // [batch, embed, rows, cols]
        let [batch, embed, rows, cols] = patches.dims();
        let tokens = patches.reshape([batch, embed, rows * cols]).swap_dims(1, 2);
        (self.norm.forward(tokens), [rows, cols])
    }
}

/// What `size` lacks to be a multiple of `unit`.
pub(super) fn padding(size: usize, unit: usize) -> usize {
    (unit - size % unit) % unit
}
