//! CLIP dual encoder (Radford et al. 2021) in the layout of Hugging Face's `CLIPModel`
//! (`openai/clip-vit-base-patch32` and its relatives).
//!
//! - [`ClipConfig`] (beside [`ClipModel`] in `model`), [`ClipTextConfig`] (in `text`),
//!   [`ClipVisionConfig`] (in `vision`): plain configs; [`ClipConfig::vit_base_patch32`] names
//!   OpenAI's ViT-B/32. A checkpoint's `config.json` is read by `itm_train` (its loaders), not
//!   here: the model knows no file format.
//! - [`ClipModel`]: `encode_images` (`[B, 3, H, W]` → `[B, D]`), `encode_texts`
//!   (`[B, L]` ids + lengths → `[B, D]`), both l2-normalised, and `logit_scale` (`e^t`), so that
//!   `S = e^t · V Cᵀ`.
//! - Vision: patch `Conv2d` (no bias) + class token + positions → `pre_layrnorm` → pre-norm
//!   layers → `post_layernorm` of the class token → `visual_projection` (no bias).
//! - Text: tokens + positions → causal pre-norm layers → `final_layer_norm` → features of the
//!   end-of-text token → `text_projection` (no bias).
//! - Layers: `x + Attn(LN(x))`, `x + MLP(LN(x))` with quick_gelu ([`layer`] says why burn's
//!   `TransformerEncoder` is not used).
//!
//! - [`ClipImageEncoder`], [`ClipTextEncoder`]: the towers as the image and text encoders of a
//!   [`VseModel`](crate::VseModel) (`ClipConfig::image_encoder`, `text_encoder`,
//!   [`ClipModel::into_towers`]), trained with InfoNCE by `itm train --model clip`.
//!
//! `itm_train::load_clip` fills a model from a checkpoint folder; its `tokenizer.json` gives
//! the ids. Images are resized to `image_size` (CLIP: shorter side, bicubic, then a centre
//! crop), scaled to `[0, 1]` and normalised with [`CLIP_PIXEL_MEAN`] / [`CLIP_PIXEL_STD`].

pub mod layer;
mod model;
mod text;
mod towers;
mod vision;

pub use layer::{ClipEncoder, ClipEncoderLayer, ClipMlp};
pub use model::{ClipConfig, ClipModel};
pub use text::{CLIP_TEXT_POSITIONS, ClipTextConfig, ClipTextEmbeddings, ClipTextTransformer};
pub use towers::{
    ClipImageEncoder, ClipImageEncoderConfig, ClipTextEncoder, ClipTextEncoderConfig,
};
pub use vision::{ClipVisionConfig, ClipVisionEmbeddings, ClipVisionTransformer};

/// Per-channel (RGB) means of OpenAI CLIP's pixel normalisation, applied to pixels in `[0, 1]`
/// (transformers' `OPENAI_CLIP_MEAN`).
pub const CLIP_PIXEL_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// Per-channel (RGB) standard deviations of OpenAI CLIP's pixel normalisation
/// (transformers' `OPENAI_CLIP_STD`).
pub const CLIP_PIXEL_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];
