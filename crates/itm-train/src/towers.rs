//! The towers table: every image tower and every text tower, named once, with the recipes
//! of the towers trained from scratch and the one rule for how a pixel tower reads images.
//!
//! The run schema (`model.images`), the zoo (an entry's text tower), the CLI help and the
//! main example read these tables; nothing else names a tower.

use itm_core::encoders::{
    ImageEncoderConfig, RegionEncoderConfig, ResNetEncoderConfig, SwinConfig,
    SwinLevelEncoderConfig, VitEncoderConfig,
};
use itm_data::images::ImageTransform;
use serde::{Deserialize, Serialize};

/// Side of the square grid of patches a transformer tower trained from scratch cuts an image
/// into (the ViT, and CLIP's vision tower from scratch): the image side must be a multiple.
pub const PATCH_GRID: usize = 8;

/// What the image tower reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageTower {
    /// Precomputed region features (shapes, precomp folders).
    Regions,
    /// Pixels through a small ResNet (stages 16, 32, 64; Karpathy data).
    Resnet,
    /// Pixels through a small ViT (8×8 patches of the image, 2 layers of width 64).
    Vit,
    /// Pixels through CLIP's vision transformer (the `clip` entry: the pretrained folder's, or
    /// from scratch an 8×8 grid of patches, 2 layers of width 64), normalised with CLIP's
    /// statistics.
    Clip,
    /// Pixels through a Swin whose last three stages are the low, middle and high levels, each
    /// projected to `D` and packed into one set (HAT, DAIM): a pretrained folder's Swin
    /// (`model.swin`) with HAT's stage norms, or from scratch [`SwinConfig::tiny`] at the
    /// image side.
    Swin,
}

impl ImageTower {
    /// Every image tower, in the order lists show them.
    pub const ALL: [ImageTower; 5] = [
        Self::Regions,
        Self::Resnet,
        Self::Vit,
        Self::Clip,
        Self::Swin,
    ];

    /// The name (`model.images`, `--images`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Regions => "regions",
            Self::Resnet => "resnet",
            Self::Vit => "vit",
            Self::Clip => "clip",
            Self::Swin => "swin",
        }
    }

    /// The tower named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|tower| tower.name() == name)
    }

    /// One line: what the tower reads and how.
    pub fn summary(self) -> &'static str {
        match self {
            Self::Regions => "precomputed region features through a linear layer",
            Self::Resnet => "pixels through a small ResNet (stages 16, 32, 64)",
            Self::Vit => "pixels through a small ViT (8×8 patches, 2 layers of width 64)",
            Self::Clip => "pixels through CLIP's vision transformer (the clip entry)",
            Self::Swin => {
                "pixels through a Swin, its last three stages as projected levels (hat, daim)"
            }
        }
    }

    /// Whether the tower reads pixels (`false`: region features).
    pub fn reads_pixels(self) -> bool {
        self != Self::Regions
    }

    /// How the tower reads pixels at side `image_size`: CLIP's statistics for CLIP's tower,
    /// ImageNet's for the others; `None` for region features.
    pub fn transform(self, image_size: usize) -> Option<ImageTransform> {
        let size = image_size as u32;
        match self {
            Self::Regions => None,
            Self::Resnet | Self::Vit | Self::Swin => Some(ImageTransform::new(size)),
            Self::Clip => Some(ImageTransform::clip(size)),
        }
    }

    /// The encoder of a tower trained from scratch at joint width `d_embed`: regions of
    /// width `d_feature`, the ResNet, or the ViT over `image_size` pixels cut into a
    /// [`PATCH_GRID`] grid, or the tiny Swin's levels ([`tiny_swin`]). `None` for CLIP's tower,
    /// which comes with CLIP's configuration.
    pub fn encoder(
        self,
        d_embed: usize,
        image_size: usize,
        d_feature: usize,
    ) -> Option<ImageEncoderConfig> {
        match self {
            Self::Regions => Some(ImageEncoderConfig::Regions(RegionEncoderConfig::new(
                d_feature, d_embed,
            ))),
            Self::Resnet => Some(ImageEncoderConfig::ResNet(ResNetEncoderConfig::new(
                vec![16, 32, 64],
                d_embed,
            ))),
            Self::Vit => Some(ImageEncoderConfig::Vit(VitEncoderConfig::new(
                image_size,
                image_size / PATCH_GRID,
                64,
                2,
                4,
                d_embed,
            ))),
            Self::Swin => Some(ImageEncoderConfig::SwinLevels(SwinLevelEncoderConfig::new(
                tiny_swin(image_size),
                d_embed,
            ))),
            Self::Clip => None,
        }
    }
}

/// Side of the first stage's grid of the `swin` tower trained from scratch: its patches are
/// `image_size / SWIN_GRID` pixels wide, so the image side must be a multiple.
pub const SWIN_GRID: usize = 16;

/// The Swin of the `swin` tower trained from scratch: [`SwinConfig::tiny`] (width 8, three
/// stages of two blocks, 4×4 windows) at side `image_size`, cut into a [`SWIN_GRID`] ×
/// [`SWIN_GRID`] grid of patches (2×2 pixels at 32 px, as `tiny`), with HAT's stage norms: its
/// levels have 256, 64 and 16 patches at any side.
pub fn tiny_swin(image_size: usize) -> SwinConfig {
    SwinConfig {
        image_size,
        patch_size: (image_size / SWIN_GRID).max(1),
        ..SwinConfig::tiny()
    }
    .with_stage_norms(true)
}

/// How a region tower turns precomputed region features into the joint space: each published
/// system's own (the zoo names one per entry and script).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionTower {
    /// VSE∞'s "basic" encoder: `Linear(F→D)` plus a two-layer MLP with batch norm.
    FcMlp,
    /// One `Linear(F→D)` per region (SCAN; CHAN's BERT script).
    Fc,
    /// `Linear(F→D)` then a pre-norm self-attention block `x + MHA(LN(x))` with 8 heads over
    /// the regions of an image (CHAN's BiGRU script).
    FcSelfAttention,
}

impl RegionTower {
    /// Every region tower, in the order lists show them.
    pub const ALL: [RegionTower; 3] = [Self::FcMlp, Self::Fc, Self::FcSelfAttention];

    /// The name.
    pub fn name(self) -> &'static str {
        match self {
            Self::FcMlp => "fc_mlp",
            Self::Fc => "fc",
            Self::FcSelfAttention => "fc_self_attention",
        }
    }

    /// One line: what the tower is.
    pub fn summary(self) -> &'static str {
        match self {
            Self::FcMlp => "Linear + MLP with batch norm per region (VSE∞)",
            Self::Fc => "one Linear per region (SCAN, CHAN with BERT)",
            Self::FcSelfAttention => {
                "Linear, then x + MHA(LN(x)) over the regions, 8 heads (CHAN with the BiGRU)"
            }
        }
    }

    /// The encoder from regions `d_feature` wide to `d_embed`.
    pub fn encoder(self, d_feature: usize, d_embed: usize) -> RegionEncoderConfig {
        let fc = RegionEncoderConfig::new(d_feature, d_embed);
        match self {
            Self::FcMlp => fc,
            Self::Fc => fc.with_mlp(false),
            Self::FcSelfAttention => fc.with_mlp(false).with_self_attention(Some(8)),
        }
    }
}

/// Whose towers a zoo entry is built with (`model.towers`, `--towers`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Towers {
    /// The system's own region tower, as its authors published it.
    #[default]
    System,
    /// VSE∞'s region tower under every head (for ablations: the head alone changes).
    VseInfinity,
}

impl Towers {
    /// Whether these are the system's own towers (the default, left out of `run.toml`).
    pub fn is_system(&self) -> bool {
        *self == Self::System
    }
}

/// The text tower a system reads captions with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextTower {
    /// A BiGRU over a word vocabulary built from the training captions.
    BiGru,
    /// A pretrained BERT-family model (a folder must be given).
    Bert,
    /// CLIP's text transformer, with CLIP's vision transformer as the image tower (both from
    /// a Hugging Face CLIP folder when one is given, else a small CLIP from scratch).
    Clip,
    /// A BERT's hidden states after three of its layers as the low, middle and high levels,
    /// each projected to `D` and packed into one set, with the Swin levels as the image tower
    /// (HAT, DAIM): a pretrained folder's BERT (`model.bert`) or a tiny one from scratch
    /// ([`tiny_bert`]) over a word-level tokenizer of the training captions.
    BertLevels,
}

impl TextTower {
    /// Every text tower, in the order lists show them.
    pub const ALL: [TextTower; 4] = [Self::BiGru, Self::Bert, Self::Clip, Self::BertLevels];

    /// The name.
    pub fn name(self) -> &'static str {
        match self {
            Self::BiGru => "bigru",
            Self::Bert => "bert",
            Self::Clip => "clip",
            Self::BertLevels => "bert_levels",
        }
    }

    /// One line: what the tower is.
    pub fn summary(self) -> &'static str {
        match self {
            Self::BiGru => "a BiGRU over the training captions' words",
            Self::Bert => "a pretrained BERT-family transformer (model.bert), learning at ×0.1",
            Self::Clip => "CLIP's causal text transformer (with CLIP's vision tower)",
            Self::BertLevels => {
                "BERT's hidden states after three layers as projected levels (with the Swin \
                 levels; model.bert, or a tiny BERT from scratch)"
            }
        }
    }

    /// The image tower a system with this text tower reads by default: CLIP's with CLIP's
    /// text tower, the Swin levels with the BERT levels, region features otherwise.
    pub fn default_image_tower(self) -> ImageTower {
        match self {
            Self::Clip => ImageTower::Clip,
            Self::BertLevels => ImageTower::Swin,
            Self::BiGru | Self::Bert => ImageTower::Regions,
        }
    }
}

/// Longest caption of HAT's text tower, special tokens included (its `max_text_len`).
pub const HAT_MAX_TOKENS: usize = 32;

/// The BERT of the `bert_levels` tower trained from scratch over `vocab_size` tokens: 3 layers
/// of width 32 (2 heads, feed-forward 64), positions for [`HAT_MAX_TOKENS`] tokens; its levels
/// are the hidden states after layers 1, 2 and 3 ([`itm_core::encoders::hat_text_layers`]).
pub fn tiny_bert(vocab_size: usize) -> itm_core::encoders::BertConfig {
    itm_core::encoders::BertConfig::new(vocab_size, 32, 3, 2, 64, HAT_MAX_TOKENS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tower_is_named_once_and_found_by_name() {
        for tower in ImageTower::ALL {
            assert_eq!(ImageTower::from_name(tower.name()), Some(tower));
            // The schema's spelling is the table's.
            let written = toml::Value::try_from(tower).unwrap();
            assert_eq!(written.as_str(), Some(tower.name()));
            assert_eq!(tower.transform(32).is_some(), tower.reads_pixels());
        }
        assert_eq!(ImageTower::from_name("pixels"), None);
        let names: Vec<_> = TextTower::ALL.map(TextTower::name).to_vec();
        assert_eq!(names, ["bigru", "bert", "clip", "bert_levels"]);
        assert_eq!(
            TextTower::BertLevels.default_image_tower(),
            ImageTower::Swin
        );
        let Some(ImageEncoderConfig::SwinLevels(swin)) = ImageTower::Swin.encoder(24, 32, 8) else {
            panic!("the Swin levels")
        };
        assert_eq!(swin.level_regions(), [256, 64, 16]);
        assert!(swin.swin.stage_norms);
        assert_eq!(
            (tiny_swin(224).patch_size, tiny_swin(32).patch_size),
            (14, 2)
        );
        assert_eq!(
            ImageTower::Clip.transform(16),
            Some(ImageTransform::clip(16))
        );
        assert_eq!(ImageTower::Vit.transform(16), Some(ImageTransform::new(16)));
        let Some(ImageEncoderConfig::Vit(vit)) = ImageTower::Vit.encoder(24, 32, 8) else {
            panic!("the ViT recipe")
        };
        assert_eq!((vit.image_size, vit.patch_size, vit.d_embed), (32, 4, 24));
        assert!(ImageTower::Clip.encoder(24, 32, 8).is_none());
        assert_eq!(TextTower::Clip.default_image_tower(), ImageTower::Clip);
    }
}
