//! CLIP's vision tower: a ViT whose class token, after a final layer norm, represents the image.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Tensor};

use super::layer::{ClipEncoder, INITIALIZER_RANGE, LayerSizes, check_tower};

/// The vision tower of a [`ClipConfig`](super::ClipConfig); fields carry the names of
/// `vision_config` in Hugging Face's `config.json`.
#[derive(Config, Debug)]
pub struct ClipVisionConfig {
    /// Width of the patch features.
    pub hidden_size: usize,
    /// Hidden width of the feed-forward sub-layers.
    pub intermediate_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Number of attention heads; must divide `hidden_size`.
    pub num_attention_heads: usize,
    /// Side of the square input images, a multiple of `patch_size`.
    pub image_size: usize,
    /// Side of the square patches.
    pub patch_size: usize,
    /// Channels of the input images.
    #[config(default = 3)]
    pub num_channels: usize,
    /// Feed-forward activation: `"quick_gelu"` or `"gelu"`.
    #[config(default = "String::from(\"quick_gelu\")")]
    pub hidden_act: String,
    /// Epsilon of every layer norm.
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
    /// Dropout on the attention weights (training only).
    #[config(default = 0.0)]
    pub attention_dropout: f64,
}

impl ClipVisionConfig {
    /// Checks the sizes and the activation; a message names the `vision_config` key.
    pub fn validate(&self) -> Result<(), String> {
        check_tower(
            "vision_config",
            &[
                ("hidden_size", self.hidden_size),
                ("intermediate_size", self.intermediate_size),
                ("num_hidden_layers", self.num_hidden_layers),
                ("num_attention_heads", self.num_attention_heads),
                ("image_size", self.image_size),
                ("patch_size", self.patch_size),
                ("num_channels", self.num_channels),
            ],
            self.hidden_size,
            self.num_attention_heads,
            self.layer_norm_eps,
            &self.hidden_act,
        )?;
        if !self.image_size.is_multiple_of(self.patch_size) {
            return Err(format!(
                "vision_config.patch_size ({}) does not divide image_size ({})",
                self.patch_size, self.image_size
            ));
        }
        Ok(())
    }
}

/// Class token + patch embeddings + learned positions.
#[derive(Module, Debug)]
pub struct ClipVisionEmbeddings {
    /// The class token `[hidden]`.
    pub class_embedding: Param<Tensor<1>>,
    /// `Conv2d(kernel = stride = patch_size)` without bias, weight
    /// `[hidden, channels, patch_size, patch_size]`.
    pub patch_embedding: Conv2d,
    /// Positions of the class token (0) and the patches (1.., row-major), weight
    /// `[1 + n_patches, hidden]`.
    pub position_embedding: Embedding,
}

impl ClipVisionEmbeddings {
    /// - `pixels`: `[batch, channels, image_size, image_size]`, normalised
    /// - returns `[batch, 1 + n_patches, hidden]`, the class token first
    ///
    /// # Panics
    ///
    /// If the images do not give the configured number of patches.
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<3> {
        let patches = self.patch_embedding.forward(pixels); // [batch, hidden, rows, cols]
        let [batch, hidden, rows, cols] = patches.dims();
        let [positions, _] = self.position_embedding.weight.dims();
        assert_eq!(
            rows * cols + 1,
            positions,
            "the images give {rows}×{cols} patches, the position embeddings cover {}",
            positions - 1
        );
        let patches = patches
            .reshape([batch, hidden, rows * cols])
            .swap_dims(1, 2);
        let class = self
            .class_embedding
            .val()
            .reshape([1, 1, hidden])
            .expand([batch, 1, hidden]);
        Tensor::cat(vec![class, patches], 1)
            + self.position_embedding.weight.val().unsqueeze_dim::<3>(0)
    }
}

/// Embeddings → `pre_layrnorm` → pre-norm layers → `post_layernorm` of the class token.
/// (Parameter names follow transformers' `CLIPVisionTransformer`, misspelling included.)
#[derive(Module, Debug)]
pub struct ClipVisionTransformer {
    /// Class token, patches and positions.
    pub embeddings: ClipVisionEmbeddings,
    /// Layer norm before the first layer.
    pub pre_layrnorm: LayerNorm,
    /// The transformer layers.
    pub encoder: ClipEncoder,
    /// Layer norm of the class token's output.
    pub post_layernorm: LayerNorm,
}

impl ClipVisionTransformer {
    /// Random weights as transformers draws them (class token from `N(0, 1/hidden)`, patch
    /// projection and positions from `N(0, 0.02²)`, layers as [`ClipEncoder::new`]).
    pub(crate) fn new(config: &ClipVisionConfig, device: &Device) -> Self {
        let hidden = config.hidden_size;
        let patch = [config.patch_size, config.patch_size];
        let positions = (config.image_size / config.patch_size).pow(2) + 1;
        let normal = Initializer::Normal {
            mean: 0.0,
            std: INITIALIZER_RANGE,
        };
        let norm = || {
            LayerNormConfig::new(hidden)
                .with_epsilon(config.layer_norm_eps)
                .init(device)
        };
        Self {
            embeddings: ClipVisionEmbeddings {
                class_embedding: Initializer::Normal {
                    mean: 0.0,
                    std: (hidden as f64).powf(-0.5),
                }
                .init([hidden], device),
                patch_embedding: Conv2dConfig::new([config.num_channels, hidden], patch)
                    .with_stride(patch)
                    .with_bias(false)
                    .with_initializer(normal.clone())
                    .init(device),
                position_embedding: EmbeddingConfig::new(positions, hidden)
                    .with_initializer(normal)
                    .init(device),
            },
            pre_layrnorm: norm(),
            encoder: ClipEncoder::new(
                &LayerSizes {
                    hidden,
                    intermediate: config.intermediate_size,
                    heads: config.num_attention_heads,
                    layers: config.num_hidden_layers,
                    layer_norm_eps: config.layer_norm_eps,
                    attention_dropout: config.attention_dropout,
                    hidden_act: &config.hidden_act,
                },
                device,
            ),
            post_layernorm: norm(),
        }
    }

    /// Features of every token (class token first), before `post_layernorm`.
    ///
    /// - `pixels`: `[batch, channels, image_size, image_size]`, normalised
    /// - returns `[batch, 1 + n_patches, hidden]`
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<3> {
        let x = self.pre_layrnorm.forward(self.embeddings.forward(pixels));
        self.encoder.forward(x, None, None)
    }

    /// The pooled image feature: `post_layernorm` of the class token.
    ///
    /// - `pixels`: `[batch, channels, image_size, image_size]`, normalised
    /// - returns `[batch, hidden]`
    pub fn pooled(&self, pixels: Tensor<4>) -> Tensor<2> {
        let tokens = self.forward(pixels);
        let [batch, _, hidden] = tokens.dims();
        self.post_layernorm
            .forward(tokens.narrow(1, 0, 1).reshape([batch, hidden]))
    }
}
