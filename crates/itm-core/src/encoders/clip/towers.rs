//! CLIP's two towers as the image and text encoders of a [`VseModel`](crate::VseModel).
//!
//! Each tower reduces its input to one token (the class token of the image, the end-of-text
//! token of the text) and projects it into the joint space, so it gives a set of one feature
//! per input; the model's pooling then only l2-normalises it, and the cosine of the two is
//! CLIP's `V Cᵀ` (the learned temperature lives in the InfoNCE loss).

use burn::config::Config;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Int, Tensor};

use super::layer::normal_linear;
use super::text::{ClipTextConfig, ClipTextTransformer};
use super::vision::{ClipVisionConfig, ClipVisionTransformer};

/// CLIP's vision transformer and its projection, as an image encoder.
#[derive(Config, Debug)]
pub struct ClipImageEncoderConfig {
    /// The vision transformer.
    pub vision: ClipVisionConfig,
    /// Width `D` of the joint space (`projection_dim`).
    pub d_embed: usize,
}

/// `visual_projection(post_layernorm(class token))`; parameter names as in transformers'
/// `CLIPModel`.
#[derive(Module, Debug)]
pub struct ClipImageEncoder {
    /// The vision transformer.
    pub vision_model: ClipVisionTransformer,
    /// `Linear(vision hidden → D)`, no bias.
    pub visual_projection: Linear,
}

impl ClipImageEncoderConfig {
    /// Builds the encoder on `device` with random weights drawn as transformers does (the
    /// projection from `N(0, 1/hidden)`); load pretrained ones with `itm_train::load_clip` and
    /// [`ClipModel::into_towers`](super::ClipModel::into_towers).
    ///
    /// # Panics
    ///
    /// If the vision configuration is invalid (see [`ClipVisionConfig::validate`]).
    pub fn init(&self, device: &Device) -> ClipImageEncoder {
        if let Err(message) = self.vision.validate() {
            panic!("invalid ClipImageEncoderConfig: {message}");
        }
        ClipImageEncoder {
            vision_model: ClipVisionTransformer::new(&self.vision, device),
            visual_projection: projection(self.vision.hidden_size, self.d_embed, device),
        }
    }
}

impl ClipImageEncoder {
    /// - `pixels`: `[batch, 3, image_size, image_size]`, scaled to `[0, 1]` and normalised with
    ///   [`CLIP_PIXEL_MEAN`](super::CLIP_PIXEL_MEAN) / [`CLIP_PIXEL_STD`](super::CLIP_PIXEL_STD)
    /// - returns the projected class token `[batch, D]` (not normalised)
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<2> {
        self.visual_projection
            .forward(self.vision_model.pooled(pixels))
    }
}

/// A tower's projection `Linear(hidden → D)` without bias, from `N(0, 1/hidden)`.
fn projection(hidden: usize, d_embed: usize, device: &Device) -> Linear {
    normal_linear(hidden, d_embed, (hidden as f64).powf(-0.5), false, device)
}

/// CLIP's text transformer and its projection, as a text encoder.
#[derive(Config, Debug)]
pub struct ClipTextEncoderConfig {
    /// The text transformer.
    pub text: ClipTextConfig,
    /// Width `D` of the joint space (`projection_dim`).
    pub d_embed: usize,
}

/// `text_projection(end-of-text token after final_layer_norm)`; parameter names as in
/// transformers' `CLIPModel`.
#[derive(Module, Debug)]
pub struct ClipTextEncoder {
    /// The causal text transformer.
    pub text_model: ClipTextTransformer,
    /// `Linear(text hidden → D)`, no bias.
    pub text_projection: Linear,
}

impl ClipTextEncoderConfig {
    /// Builds the encoder on `device` with random weights drawn as transformers does (the
    /// projection from `N(0, 1/hidden)`).
    ///
    /// # Panics
    ///
    /// If the text configuration is invalid (see [`ClipTextConfig::validate`]).
    pub fn init(&self, device: &Device) -> ClipTextEncoder {
        if let Err(message) = self.text.validate() {
            panic!("invalid ClipTextEncoderConfig: {message}");
        }
        ClipTextEncoder {
            text_model: ClipTextTransformer::new(&self.text, device),
            text_projection: projection(self.text.hidden_size, self.d_embed, device),
        }
    }
}

impl ClipTextEncoder {
    /// - `ids`: `[batch, tokens]` (`<|startoftext|>` … `<|endoftext|>`), padding past
    ///   `lengths[b]`
    /// - returns the projected end-of-text token `[batch, D]` (not normalised)
    pub fn forward(&self, ids: Tensor<2, Int>, lengths: &[usize]) -> Tensor<2> {
        self.text_projection
            .forward(self.text_model.pooled(ids, lengths))
    }
}
