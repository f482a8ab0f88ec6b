//! Encoders: turn region features, pixels, words and subwords into sets of `D`-wide features
//! (METHODS §1); CLIP's towers give sets of one.

mod bert;
mod bigru;
pub mod clip;
mod cnn;
mod gru;
mod image;
mod layers;
mod level_projection;
mod level_towers;
mod region;
pub mod swin;
mod text;
mod text_gru;
pub(crate) mod transformer;
mod vit;

pub use bert::{BertConfig, BertEmbeddings, BertModel};
pub use bigru::{MaskedBiGru, MaskedBiGruConfig};
pub use clip::{
    ClipConfig, ClipImageEncoder, ClipImageEncoderConfig, ClipModel, ClipTextEncoder,
    ClipTextEncoderConfig,
};
pub use cnn::{BasicBlock, ConvNorm, ResNetEncoder, ResNetEncoderConfig};
pub use gru::{FusedGru, FusedGruConfig};
pub use image::{ImageEncoder, ImageEncoderConfig, ImageInput};
pub use level_projection::{LevelProjection, LevelProjectionConfig};
pub use level_towers::{
    BertLevelEncoder, BertLevelEncoderConfig, HAT_LEVELS, SwinLevelEncoder, SwinLevelEncoderConfig,
    hat_text_layers, pack_caption_levels, pack_image_levels,
};
pub use region::{RegionEncoder, RegionEncoderConfig, RegionSelfAttention};
pub use swin::{SwinConfig, SwinLevels, SwinModel, SwinOutput};
pub use text::{BertTextEncoder, BertTextEncoderConfig, TextEncoder, TextEncoderConfig};
pub use text_gru::{GruTextEncoder, GruTextEncoderConfig};
pub use vit::{VitEncoder, VitEncoderConfig};
