//! The CLIP dual encoder: both towers, their projections into the joint space and the learned
//! temperature.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor};

use super::config::ClipConfig;
use super::text::ClipTextTransformer;
use super::vision::ClipVisionTransformer;
use crate::masking::l2_normalize;

/// CLIP (Radford et al. 2021) with the parameter layout of transformers' `CLIPModel`.
///
/// `S = e^t · V Cᵀ` with `V`, `C` the l2-normalised image and text embeddings and `t` the
/// learned [`ClipModel::logit_scale`] parameter.
#[derive(Module, Debug)]
pub struct ClipModel {
    /// The text tower.
    pub text_model: ClipTextTransformer,
    /// The vision tower.
    pub vision_model: ClipVisionTransformer,
    /// `Linear(vision hidden → D)`, no bias.
    pub visual_projection: Linear,
    /// `Linear(text hidden → D)`, no bias.
    pub text_projection: Linear,
    /// The log inverse temperature `t`, `[1]`.
    pub logit_scale: Param<Tensor<1>>,
}

impl ClipModel {
    pub(crate) fn new(config: &ClipConfig, device: &Device) -> Self {
        Self {
            text_model: ClipTextTransformer::new(&config.text, device),
            vision_model: ClipVisionTransformer::new(&config.vision, device),
            visual_projection: LinearConfig::new(config.vision.hidden_size, config.projection_dim)
                .with_bias(false)
                .init(device),
            text_projection: LinearConfig::new(config.text.hidden_size, config.projection_dim)
                .with_bias(false)
                .init(device),
            logit_scale: Param::from_tensor(Tensor::from_floats(
                [config.logit_scale_init_value as f32],
                device,
            )),
        }
    }

    /// Image embeddings in the joint space.
    ///
    /// - `pixels`: `[batch, 3, image_size, image_size]`, scaled to `[0, 1]` and normalised
    ///   per channel with [`CLIP_PIXEL_MEAN`](super::CLIP_PIXEL_MEAN) and
    ///   [`CLIP_PIXEL_STD`](super::CLIP_PIXEL_STD)
    /// - returns `[batch, D]`, l2-normalised
    pub fn encode_images(&self, pixels: Tensor<4>) -> Tensor<2> {
        l2_normalize(
            self.visual_projection
                .forward(self.vision_model.pooled(pixels)),
        )
    }

    /// Text embeddings in the joint space.
    ///
    /// - `ids`: `[batch, tokens]` from the checkpoint's tokenizer (`<|startoftext|>` …
    ///   `<|endoftext|>`), anything past `lengths[b]` padding (any id)
    /// - `lengths`: real tokens per row, each in `1..=tokens`
    /// - returns `[batch, D]`, l2-normalised
    pub fn encode_texts(&self, ids: Tensor<2, Int>, lengths: &[usize]) -> Tensor<2> {
        l2_normalize(
            self.text_projection
                .forward(self.text_model.pooled(ids, lengths)),
        )
    }

    /// The inverse temperature `e^t`, `[1]`.
    pub fn logit_scale(&self) -> Tensor<1> {
        self.logit_scale.val().exp()
    }

    /// `e^t · V Cᵀ`, transformers' `logits_per_image`.
    ///
    /// - `images`: `[n_img, D]` from [`ClipModel::encode_images`]
    /// - `texts`: `[n_txt, D]` from [`ClipModel::encode_texts`]
    /// - returns `[n_img, n_txt]`
    pub fn logits_per_image(&self, images: Tensor<2>, texts: Tensor<2>) -> Tensor<2> {
        images.matmul(texts.transpose()) * self.logit_scale().unsqueeze_dim::<2>(0)
    }

    /// Width `D` of the joint space.
    pub fn embed_dim(&self) -> usize {
        self.text_projection.weight.dims()[1]
    }
}
