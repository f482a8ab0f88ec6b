//! Raw images → a set of patch features in the joint space: a Vision Transformer without a CLS
//! token (the set is pooled afterwards, e.g. by GPO).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderConfig};
use burn::nn::{
    Dropout, DropoutConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig,
};
use burn::tensor::{Device, Tensor};

use super::layers::states_at_depths;
use super::transformer::encoder_layer;

/// Configuration of a [`VitEncoder`].
#[derive(Config, Debug)]
pub struct VitEncoderConfig {
    /// Channels of the input images.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Side of the square input images, a multiple of `patch_size`.
    pub image_size: usize,
    /// Side of the square patches.
    pub patch_size: usize,
    /// Width of the transformer.
    pub d_model: usize,
    /// Number of transformer encoder layers.
    pub depth: usize,
    /// Number of attention heads; must divide `d_model`.
    pub n_heads: usize,
    /// Hidden width of the feed-forward sub-layers; `None` means `4·d_model`.
    pub d_ff: Option<usize>,
    /// Width of the joint embedding space `D`.
    pub d_embed: usize,
    /// Dropout on the embedded patches and inside the transformer layers.
    #[config(default = 0.0)]
    pub dropout: f64,
}

/// Patch embedding `Conv2d(kernel = stride = patch_size)` + learned position embeddings →
/// `depth` pre-norm transformer encoder layers (GELU) → LayerNorm → `Linear(d_model → D)`.
#[derive(Module, Debug)]
pub struct VitEncoder {
    /// Patch embedding: weight `[d_model, in_channels, patch_size, patch_size]`.
    pub patch_embedding: Conv2d,
    /// Learned position embeddings `[1, n_patches, d_model]`, patches in row-major order.
    pub position: Param<Tensor<3>>,
    /// Dropout on the embedded patches.
    pub dropout: Dropout,
    /// The pre-norm (`norm_first`) transformer encoder.
    pub transformer: TransformerEncoder,
    /// Final layer norm over `d_model`.
    pub norm: LayerNorm,
    /// Projection of every patch `d_model → D`.
    pub projection: Linear,
}

impl VitEncoderConfig {
    /// Builds the encoder on `device`; position embeddings are drawn from `N(0, 0.02²)`.
    ///
    /// # Panics
    ///
    /// If `patch_size` does not divide `image_size`.
    pub fn init(&self, device: &Device) -> VitEncoder {
        assert!(
            self.patch_size > 0 && self.image_size.is_multiple_of(self.patch_size),
            "patch size {} does not divide image size {}",
            self.patch_size,
            self.image_size
        );
        let n_patches = (self.image_size / self.patch_size).pow(2);
        let patch = [self.patch_size, self.patch_size];
        let d_ff = self.d_ff.unwrap_or(4 * self.d_model);
        VitEncoder {
            patch_embedding: Conv2dConfig::new([self.in_channels, self.d_model], patch)
                .with_stride(patch)
                .init(device),
            position: Initializer::Normal {
                mean: 0.0,
                std: 0.02,
            }
            .init([1, n_patches, self.d_model], device),
            dropout: DropoutConfig::new(self.dropout).init(),
            transformer: TransformerEncoderConfig::new(
                self.d_model,
                d_ff,
                self.n_heads,
                self.depth,
            )
            .with_norm_first(true)
            .with_dropout(self.dropout)
            .init(device),
            norm: LayerNormConfig::new(self.d_model).init(device),
            projection: LinearConfig::new(self.d_model, self.d_embed).init(device),
        }
    }
}

impl VitEncoder {
    /// - `images`: `[batch, in_channels, image_size, image_size]`
    /// - returns `[batch, n_patches, d_embed]` with `n_patches = (image_size / patch_size)²`,
    ///   patches in row-major order: the last layer's state ([`VitEncoder::forward_layers`]),
    ///   then the final layer norm and the projection
    ///
    /// # Panics
    ///
    /// If the images do not have the configured size.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<3> {
        let depth = self.num_layers();
        let last = self
            .forward_layers(images, &[depth])
            .pop()
            .expect("one layer was requested");
        self.projection.forward(self.norm.forward(last))
    }

    /// The hidden states after chosen layers, before the final layer norm and projection
    /// (for encoders read at several depths: METHODS §3 "Multi-level sum").
    ///
    /// - `images`: as in [`VitEncoder::forward`]
    /// - `layers`: any order, repeats allowed: `n` is the output of the first `n` transformer
    ///   layers (pre-norm residual stream), `0` the embedded patches plus positions,
    ///   [`VitEncoder::num_layers`] the last layer's output
    /// - returns one `[batch, n_patches, d_model]` tensor per entry of `layers`, in that order
    ///
    /// # Panics
    ///
    /// If the images do not have the configured size or a layer exceeds
    /// [`VitEncoder::num_layers`].
    pub fn forward_layers(&self, images: Tensor<4>, layers: &[usize]) -> Vec<Tensor<3>> {
        let patches = self.patch_embedding.forward(images); // [batch, d_model, rows, cols]
        let [batch, d_model, rows, cols] = patches.dims();
        let [_, n_patches, _] = self.position.dims();
        assert_eq!(
            rows * cols,
            n_patches,
            "the images give {rows}×{cols} patches, the position embeddings {n_patches}"
        );
        let tokens = patches.reshape([batch, d_model, n_patches]).swap_dims(1, 2);
        let tokens = self.dropout.forward(tokens + self.position.val());
        states_at_depths(
            tokens,
            &self.transformer.layers,
            layers,
            "VitEncoder::forward_layers",
            |layer, x| encoder_layer(layer, x, None, None),
        )
    }

    /// Number of transformer layers.
    pub fn num_layers(&self) -> usize {
        self.transformer.layers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Int};

    fn images(dims: [usize; 4], device: &Device) -> Tensor<4> {
        Tensor::random(dims, Distribution::Normal(0.0, 1.0), device)
    }

    #[test]
    fn output_shapes() {
        let device = Device::default();
        device.seed(1);
        let encoder = VitEncoderConfig::new(64, 8, 32, 2, 4, 16).init(&device);
        assert_eq!(encoder.transformer.d_ff, 4 * 32);
        let out = encoder.forward(images([2, 3, 64, 64], &device));
        assert_eq!(out.dims(), [2, 64, 16]);

        let encoder = VitEncoderConfig::new(32, 16, 8, 1, 2, 5)
            .with_in_channels(1)
            .with_d_ff(Some(12))
            .init(&device);
        assert_eq!(encoder.transformer.d_ff, 12);
        let out = encoder.forward(images([3, 1, 32, 32], &device));
        assert_eq!(out.dims(), [3, 4, 5]);
    }

    /// Reordering the images of a batch reorders the outputs the same way, and they are finite.
    #[test]
    fn batch_independent_and_finite() {
        let device = Device::default();
        device.seed(2);
        let encoder = VitEncoderConfig::new(16, 4, 16, 2, 2, 8).init(&device);
        let x = images([3, 3, 16, 16], &device);
        let out = encoder.forward(x.clone());
        assert!(out.clone().is_finite().all().into_scalar::<bool>());
        let order = Tensor::<1, Int>::from_ints([2, 1, 0], &device);
        encoder
            .forward(x.select(0, order.clone()))
            .into_data()
            .assert_approx_eq::<f32>(&out.select(0, order).into_data(), Default::default());
    }

    /// The last state, normed and projected, is the plain forward; an early state differs.
    #[test]
    fn chosen_layers_are_the_hidden_states() {
        let device = Device::default();
        device.seed(4);
        let encoder = VitEncoderConfig::new(16, 8, 8, 2, 2, 4).init(&device);
        assert_eq!(encoder.num_layers(), 2);
        let x = images([2, 3, 16, 16], &device);
        let states = encoder.forward_layers(x.clone(), &[2, 1]);
        assert_eq!(states[0].dims(), [2, 4, 8]);
        let host = |t: Tensor<3>| t.into_data().try_into_vec::<f32>().unwrap();
        let last = encoder
            .projection
            .forward(encoder.norm.forward(states[0].clone()));
        assert_eq!(host(last), host(encoder.forward(x)));
        assert_ne!(host(states[1].clone()), host(states[0].clone()));
    }

    #[test]
    fn gradients_reach_the_patch_embedding() {
        let device = Device::default().autodiff();
        device.seed(3);
        let encoder = VitEncoderConfig::new(16, 8, 8, 1, 2, 4).init(&device);
        let grads = encoder
            .forward(images([2, 3, 16, 16], &device))
            .sum()
            .backward();
        let grad = encoder
            .patch_embedding
            .weight
            .grad(&grads)
            .expect("the patch embedding weight has a gradient");
        assert_eq!(grad.dims(), [8, 3, 8, 8]);
        assert!(grad.abs().sum().into_scalar::<f32>() > 0.0);
    }
}
