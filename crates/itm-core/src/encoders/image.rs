//! One image tower for every input kind: detector regions or raw pixels.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::clip::{ClipImageEncoder, ClipImageEncoderConfig};
use super::cnn::{ResNetEncoder, ResNetEncoderConfig};
use super::level_towers::{SwinLevelEncoder, SwinLevelEncoderConfig};
use super::region::{RegionEncoder, RegionEncoderConfig};
use super::vit::{VitEncoder, VitEncoderConfig};

/// What an image tower reads.
#[derive(Debug, Clone)]
pub enum ImageInput {
    /// Precomputed region features `[batch, max_regions, d_feature]` with valid prefix lengths.
    Regions {
        /// The features.
        features: Tensor<3>,
        /// Valid regions per image.
        lengths: Vec<usize>,
    },
    /// Normalised pixels `[batch, channels, height, width]`.
    Pixels(Tensor<4>),
}

/// Which image encoder a model uses.
#[derive(Config, Debug)]
pub enum ImageEncoderConfig {
    /// Precomputed regions (VSE∞ "basic").
    Regions(RegionEncoderConfig),
    /// A small ResNet over pixels.
    ResNet(ResNetEncoderConfig),
    /// A ViT over pixels.
    Vit(VitEncoderConfig),
    /// CLIP's vision transformer over pixels: one projected class token per image.
    Clip(ClipImageEncoderConfig),
    /// A Swin's last three stages, each projected, packed into one set (HAT, DAIM).
    SwinLevels(SwinLevelEncoderConfig),
}

/// An image encoder built from an [`ImageEncoderConfig`].
// A model holds one image encoder, built once: the size difference of the variants is moot.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ImageEncoder {
    /// See [`ImageEncoderConfig::Regions`].
    Regions(RegionEncoder),
    /// See [`ImageEncoderConfig::ResNet`].
    ResNet(ResNetEncoder),
    /// See [`ImageEncoderConfig::Vit`].
    Vit(VitEncoder),
    /// See [`ImageEncoderConfig::Clip`].
    Clip(ClipImageEncoder),
    /// See [`ImageEncoderConfig::SwinLevels`].
    SwinLevels(SwinLevelEncoder),
}

impl ImageEncoderConfig {
    /// Builds the encoder on `device`.
    pub fn init(&self, device: &Device) -> ImageEncoder {
        match self {
            ImageEncoderConfig::Regions(config) => ImageEncoder::Regions(config.init(device)),
            ImageEncoderConfig::ResNet(config) => ImageEncoder::ResNet(config.init(device)),
            ImageEncoderConfig::Vit(config) => ImageEncoder::Vit(config.init(device)),
            ImageEncoderConfig::Clip(config) => ImageEncoder::Clip(config.init(device)),
            ImageEncoderConfig::SwinLevels(config) => ImageEncoder::SwinLevels(config.init(device)),
        }
    }

    /// Width of the features the encoder produces.
    pub fn d_embed(&self) -> usize {
        match self {
            ImageEncoderConfig::Regions(config) => config.d_embed,
            ImageEncoderConfig::ResNet(config) => config.d_embed,
            ImageEncoderConfig::Vit(config) => config.d_embed,
            ImageEncoderConfig::Clip(config) => config.d_embed,
            ImageEncoderConfig::SwinLevels(config) => config.d_embed,
        }
    }

    /// The patches of each level, low → high, for a tower that emits packed levels
    /// ([`ImageEncoderConfig::SwinLevels`]); `None` for a tower of one flat set.
    pub fn level_regions(&self) -> Option<Vec<usize>> {
        match self {
            ImageEncoderConfig::SwinLevels(config) => Some(config.level_regions()),
            _ => None,
        }
    }
}

impl ImageEncoder {
    /// Encodes a batch into a set of features `[batch, n, D]` and its valid lengths (every
    /// grid cell of a pixel input is valid; CLIP gives a set of one, `n = 1`; Swin levels give
    /// their packed patches, `n = Σ K_ℓ`).
    ///
    /// Panics if the input kind does not match the encoder (regions for a pixel backbone or the
    /// reverse): the data and the model configuration disagree.
    pub fn forward(&self, input: ImageInput) -> (Tensor<3>, Vec<usize>) {
        match (self, input) {
            (ImageEncoder::Regions(encoder), ImageInput::Regions { features, lengths }) => {
                (encoder.forward(features), lengths)
            }
            (ImageEncoder::ResNet(encoder), ImageInput::Pixels(pixels)) => {
                grid(encoder.forward(pixels))
            }
            (ImageEncoder::Vit(encoder), ImageInput::Pixels(pixels)) => {
                grid(encoder.forward(pixels))
            }
            (ImageEncoder::Clip(encoder), ImageInput::Pixels(pixels)) => {
                grid(encoder.forward(pixels).unsqueeze_dim(1))
            }
            (ImageEncoder::SwinLevels(encoder), ImageInput::Pixels(pixels)) => {
                grid(encoder.forward(pixels))
            }
            (encoder, input) => panic!(
                "the image encoder ({}) cannot read this input ({})",
                encoder.kind(),
                match input {
                    ImageInput::Regions { .. } => "region features",
                    ImageInput::Pixels(_) => "pixels",
                }
            ),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ImageEncoder::Regions(_) => "region features",
            ImageEncoder::ResNet(_) => "ResNet over pixels",
            ImageEncoder::Vit(_) => "ViT over pixels",
            ImageEncoder::Clip(_) => "CLIP vision transformer over pixels",
            ImageEncoder::SwinLevels(_) => "Swin levels over pixels",
        }
    }
}

fn grid(features: Tensor<3>) -> (Tensor<3>, Vec<usize>) {
    let [batch, cells, _] = features.dims();
    (features, vec![cells; batch])
}
