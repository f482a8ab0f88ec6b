//! The CLIP dual encoder: both towers, their projections into the joint space and the learned
//! temperature.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Int, Tensor};

use super::text::{CLIP_TEXT_POSITIONS, ClipTextConfig, ClipTextTransformer};
use super::towers::{
    ClipImageEncoder, ClipImageEncoderConfig, ClipTextEncoder, ClipTextEncoderConfig,
};
use super::vision::{ClipVisionConfig, ClipVisionTransformer};
use crate::masking::l2_normalize;

/// Configuration of a [`ClipModel`]: both towers and the joint space.
#[derive(Config, Debug)]
pub struct ClipConfig {
    /// The text transformer.
    pub text: ClipTextConfig,
    /// The vision transformer.
    pub vision: ClipVisionConfig,
    /// Width `D` of the joint embedding space (both projections end there).
    pub projection_dim: usize,
    /// Initial value of the learned log inverse temperature (CLIP: `ln(1/0.07)` = 2.6592).
    #[config(default = 2.6592)]
    pub logit_scale_init_value: f64,
}

impl ClipConfig {
    /// OpenAI's ViT-B/32 CLIP (`openai/clip-vit-base-patch32`): a 12-layer, 512-wide text
    /// transformer over 77 tokens of a 49 408-token vocabulary, a 12-layer, 768-wide vision
    /// transformer over 224×224 images in 32×32 patches, a 512-wide joint space, quick_gelu.
    /// Its `config.json` has `eos_token_id = 2`: the text embedding is read at the largest
    /// token id (see [`ClipTextConfig::eos_token_id`]).
    pub fn vit_base_patch32() -> Self {
        ClipConfig::new(
            ClipTextConfig::new(49408, 512, 2048, 12, 8, CLIP_TEXT_POSITIONS).with_eos_token_id(2),
            ClipVisionConfig::new(768, 3072, 12, 12, 224, 32),
            512,
        )
    }

    /// A small CLIP to train from scratch (the `clip` entry of the zoo without a pretrained
    /// folder): both towers 2 layers of width 64 with 4 heads and a 256-wide feed-forward
    /// (quick_gelu), [`CLIP_TEXT_POSITIONS`] text positions, the vision tower over `image_size`
    /// pixels in an 8 × 8 grid of patches (`image_size` a multiple of 8), joint width
    /// `projection_dim`.
    /// `eos_token_id` is the tokenizer's end-of-text id (not 2, which marks the legacy
    /// convention).
    pub fn small(
        vocab_size: usize,
        eos_token_id: usize,
        image_size: usize,
        projection_dim: usize,
    ) -> Self {
        ClipConfig::new(
            ClipTextConfig::new(vocab_size, 64, 256, 2, 4, CLIP_TEXT_POSITIONS)
                .with_eos_token_id(eos_token_id),
            ClipVisionConfig::new(64, 256, 2, 4, image_size, image_size / 8),
            projection_dim,
        )
    }

    /// The image tower of a [`VseModel`](crate::VseModel): the vision transformer and its
    /// projection.
    pub fn image_encoder(&self) -> ClipImageEncoderConfig {
        ClipImageEncoderConfig::new(self.vision.clone(), self.projection_dim)
    }

    /// The text tower of a [`VseModel`](crate::VseModel): the text transformer and its
    /// projection.
    pub fn text_encoder(&self) -> ClipTextEncoderConfig {
        ClipTextEncoderConfig::new(self.text.clone(), self.projection_dim)
    }

    /// Checks the sizes and activations of both towers and the joint width.
    pub fn validate(&self) -> Result<(), String> {
        self.text.validate()?;
        self.vision.validate()?;
        if self.projection_dim == 0 {
            return Err("projection_dim must be positive".into());
        }
        Ok(())
    }

    /// Builds a randomly initialised model on `device` (load weights afterwards).
    ///
    /// # Panics
    ///
    /// If the configuration is invalid (see [`ClipConfig::validate`]).
    pub fn init(&self, device: &Device) -> ClipModel {
        if let Err(message) = self.validate() {
            panic!("invalid ClipConfig: {message}");
        }
        ClipModel::new(self, device)
    }
}

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
        let text = config.text_encoder().init(device);
        let image = config.image_encoder().init(device);
        Self {
            text_model: text.text_model,
            vision_model: image.vision_model,
            visual_projection: image.visual_projection,
            text_projection: text.text_projection,
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

    /// The two towers with their projections, for a [`VseModel`](crate::VseModel); the
    /// learned temperature is left behind (read [`ClipModel::logit_scale`] first: a
    /// `VseModel`'s InfoNCE loss holds it).
    pub fn into_towers(self) -> (ClipImageEncoder, ClipTextEncoder) {
        (
            ClipImageEncoder {
                vision_model: self.vision_model,
                visual_projection: self.visual_projection,
            },
            ClipTextEncoder {
                text_model: self.text_model,
                text_projection: self.text_projection,
            },
        )
    }

    /// Width `D` of the joint space.
    pub fn embed_dim(&self) -> usize {
        self.text_projection.weight.dims()[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoders::clip::{ClipTextConfig, ClipVisionConfig};
    use burn::tensor::{Distribution, TensorData};

    fn tiny() -> ClipConfig {
        ClipConfig::new(
            ClipTextConfig::new(30, 16, 20, 2, 2, 8).with_eos_token_id(29),
            ClipVisionConfig::new(12, 18, 1, 2, 16, 8),
            10,
        )
    }

    fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    fn ids(flat: Vec<i64>, rows: usize, device: &Device) -> Tensor<2, Int> {
        let width = flat.len() / rows;
        Tensor::from_data(TensorData::new(flat, [rows, width]), device)
    }

    #[test]
    fn unit_embeddings_and_scaled_cosine_logits() {
        let device = Device::default();
        device.seed(5);
        let model = tiny().init(&device);
        assert_eq!(model.embed_dim(), 10);
        let pixels = Tensor::<4>::random([3, 3, 16, 16], Distribution::Normal(0.0, 1.0), &device);
        let images = model.encode_images(pixels);
        let texts = model.encode_texts(
            ids(vec![28, 4, 5, 29, 0, 28, 7, 29, 0, 0], 2, &device),
            &[4, 3],
        );
        assert_eq!((images.dims(), texts.dims()), ([3, 10], [2, 10]));
        for norm in host(images.clone().square().sum_dim(1))
            .into_iter()
            .chain(host(texts.clone().square().sum_dim(1)))
        {
            assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        }
        let scale = (2.6592f32).exp();
        assert!((model.logit_scale().into_scalar::<f32>() - scale).abs() < 1e-4);
        let (v, c) = (host(images.clone()), host(texts.clone()));
        let logits = host(model.logits_per_image(images, texts));
        for i in 0..3 {
            for j in 0..2 {
                let dot: f32 = (0..10).map(|d| v[i * 10 + d] * c[j * 10 + d]).sum();
                assert!((logits[i * 2 + j] - scale * dot).abs() < 1e-4);
            }
        }
    }

    /// A text embeds the same alone and padded in a batch, whatever the padding ids.
    #[test]
    fn padding_does_not_change_text_embeddings() {
        let device = Device::default();
        device.seed(6);
        let model = tiny().init(&device);
        let alone = host(model.encode_texts(ids(vec![28, 4, 5, 29], 1, &device), &[4]));
        for pad in [0, 29, 27] {
            let batch = ids(
                vec![28, 4, 5, 29, pad, pad, 28, 7, 8, 9, 10, 29],
                2,
                &device,
            );
            let padded = host(model.encode_texts(batch, &[4, 6]));
            let worst = padded[..10]
                .iter()
                .zip(&alone)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "padding {pad} moved the embedding by {worst}");
        }
    }

    #[test]
    fn gradients_reach_both_towers_and_the_temperature() {
        let device = Device::default().autodiff();
        device.seed(7);
        let model = tiny().init(&device);
        let pixels = Tensor::<4>::random([2, 3, 16, 16], Distribution::Normal(0.0, 1.0), &device);
        let texts = model.encode_texts(ids(vec![28, 4, 29, 28, 5, 29], 2, &device), &[3, 3]);
        let logits = model.logits_per_image(model.encode_images(pixels), texts);
        let grads = (logits.clone() * logits).sum().backward();
        for (what, grad) in [
            (
                "patch embedding",
                model
                    .vision_model
                    .embeddings
                    .patch_embedding
                    .weight
                    .grad(&grads)
                    .map(|g| g.abs().sum()),
            ),
            (
                "token embedding",
                model
                    .text_model
                    .embeddings
                    .token_embedding
                    .weight
                    .grad(&grads)
                    .map(|g| g.abs().sum()),
            ),
            (
                "logit scale",
                model.logit_scale.grad(&grads).map(|g| g.abs().sum()),
            ),
        ] {
            let size = grad.unwrap_or_else(|| panic!("no gradient for the {what}"));
            assert!(
                size.into_scalar::<f32>() > 0.0,
                "zero gradient for the {what}"
            );
        }
    }
}
