//! Configuration of the CLIP dual encoder, read from a Hugging Face `config.json` or named.

use burn::config::Config;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::layer::Activation;
use super::model::ClipModel;
use super::towers::{ClipImageEncoderConfig, ClipTextEncoderConfig};

/// Text positions of OpenAI's CLIP models (its context length), and of [`ClipConfig::small`].
pub const CLIP_TEXT_POSITIONS: usize = 77;

/// The text tower of a [`ClipConfig`]; fields carry the names of `text_config` in Hugging
/// Face's `config.json`.
#[derive(Config, Debug)]
pub struct ClipTextConfig {
    /// Size of the token vocabulary.
    pub vocab_size: usize,
    /// Width of the token features.
    pub hidden_size: usize,
    /// Hidden width of the feed-forward sub-layers.
    pub intermediate_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Number of attention heads; must divide `hidden_size`.
    pub num_attention_heads: usize,
    /// Longest token sequence (CLIP: 77).
    pub max_position_embeddings: usize,
    /// Feed-forward activation: `"quick_gelu"` (`x·σ(1.702x)`, OpenAI CLIP) or `"gelu"`.
    #[config(default = "String::from(\"quick_gelu\")")]
    pub hidden_act: String,
    /// Epsilon of every layer norm.
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
    /// Dropout on the attention weights (training only).
    #[config(default = 0.0)]
    pub attention_dropout: f64,
    /// Id of the end-of-text token whose features are the text's embedding. The value `2`
    /// marks the configs written before transformers PR #24773 (openai/clip-vit-base-patch32
    /// among them): there the largest token id of each text is taken instead, as transformers
    /// still does for them (the end-of-text token has the largest id of CLIP's vocabulary).
    #[config(default = 49407)]
    pub eos_token_id: usize,
}

/// The vision tower of a [`ClipConfig`]; fields carry the names of `vision_config` in Hugging
/// Face's `config.json`.
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

impl ClipTextConfig {
    /// Checks the sizes and the activation; a message names the `text_config` key.
    pub fn validate(&self) -> Result<(), String> {
        check_tower(
            "text_config",
            &[
                ("vocab_size", self.vocab_size),
                ("hidden_size", self.hidden_size),
                ("intermediate_size", self.intermediate_size),
                ("num_hidden_layers", self.num_hidden_layers),
                ("num_attention_heads", self.num_attention_heads),
                ("max_position_embeddings", self.max_position_embeddings),
            ],
            self.hidden_size,
            self.num_attention_heads,
            self.layer_norm_eps,
            &self.hidden_act,
        )
    }
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

/// The checks both towers share: `sizes` positive, `heads` dividing `hidden`, a positive
/// epsilon, a supported activation.
fn check_tower(
    tower: &str,
    sizes: &[(&str, usize)],
    hidden: usize,
    heads: usize,
    layer_norm_eps: f64,
    hidden_act: &str,
) -> Result<(), String> {
    if let Some((name, _)) = sizes.iter().find(|(_, value)| *value == 0) {
        return Err(format!("{tower}.{name} must be positive"));
    }
    if !hidden.is_multiple_of(heads) {
        return Err(format!(
            "{tower}.num_attention_heads ({heads}) does not divide hidden_size ({hidden})"
        ));
    }
    if layer_norm_eps.is_nan() || layer_norm_eps <= 0.0 {
        return Err(format!(
            "{tower}.layer_norm_eps must be positive, got {layer_norm_eps}"
        ));
    }
    Activation::parse(hidden_act).map_err(|e| format!("{tower}.{e}"))?;
    Ok(())
}

/// A `config.json` that cannot describe a [`ClipModel`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a usable CLIP config.json: {message}")]
pub struct ClipConfigError {
    /// What is wrong.
    pub message: String,
}

/// `text_config` of Hugging Face's `config.json`; absent keys take transformers' defaults.
#[derive(Debug, Serialize, Deserialize)]
struct HfTextJson {
    #[serde(default = "text_defaults::vocab_size")]
    vocab_size: usize,
    #[serde(default = "text_defaults::hidden_size")]
    hidden_size: usize,
    #[serde(default = "text_defaults::intermediate_size")]
    intermediate_size: usize,
    #[serde(default = "text_defaults::num_hidden_layers")]
    num_hidden_layers: usize,
    #[serde(default = "text_defaults::num_attention_heads")]
    num_attention_heads: usize,
    #[serde(default = "text_defaults::max_position_embeddings")]
    max_position_embeddings: usize,
    #[serde(default = "default_hidden_act")]
    hidden_act: String,
    #[serde(default = "default_layer_norm_eps")]
    layer_norm_eps: f64,
    #[serde(default)]
    attention_dropout: f64,
    #[serde(default = "text_defaults::eos_token_id")]
    eos_token_id: usize,
}

/// `vision_config` of Hugging Face's `config.json`; absent keys take transformers' defaults.
#[derive(Debug, Serialize, Deserialize)]
struct HfVisionJson {
    #[serde(default = "vision_defaults::hidden_size")]
    hidden_size: usize,
    #[serde(default = "vision_defaults::intermediate_size")]
    intermediate_size: usize,
    #[serde(default = "vision_defaults::num_hidden_layers")]
    num_hidden_layers: usize,
    #[serde(default = "vision_defaults::num_attention_heads")]
    num_attention_heads: usize,
    #[serde(default = "vision_defaults::image_size")]
    image_size: Side,
    #[serde(default = "vision_defaults::patch_size")]
    patch_size: Side,
    #[serde(default = "vision_defaults::num_channels")]
    num_channels: usize,
    #[serde(default = "default_hidden_act")]
    hidden_act: String,
    #[serde(default = "default_layer_norm_eps")]
    layer_norm_eps: f64,
    #[serde(default)]
    attention_dropout: f64,
}

/// `image_size` / `patch_size`: one side, or `[height, width]` (only square ones are usable).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Side {
    One(usize),
    Pair([usize; 2]),
}

impl Side {
    fn square(&self, name: &str) -> Result<usize, String> {
        match *self {
            Side::One(side) => Ok(side),
            Side::Pair([h, w]) if h == w => Ok(h),
            Side::Pair([h, w]) => Err(format!(
                "vision_config.{name} [{h}, {w}] is not square (only square images are supported)"
            )),
        }
    }
}

/// The keys of a CLIP `config.json` that matter here. (A [`Config`] only for its JSON reader.)
#[derive(Debug, Serialize, Deserialize)]
struct HfClipJson {
    model_type: Option<String>,
    text_config: Option<HfTextJson>,
    vision_config: Option<HfVisionJson>,
    /// Old files (transformers < 4.21) may carry the towers here; it wins, as in transformers.
    text_config_dict: Option<HfTextJson>,
    vision_config_dict: Option<HfVisionJson>,
    #[serde(default = "default_projection_dim")]
    projection_dim: usize,
    #[serde(default = "default_logit_scale")]
    logit_scale_init_value: f64,
}

impl Config for HfClipJson {}

/// transformers' `CLIPTextConfig` defaults (the text tower of ViT-B/32).
mod text_defaults {
    pub fn vocab_size() -> usize {
        49408
    }
    pub fn hidden_size() -> usize {
        512
    }
    pub fn intermediate_size() -> usize {
        2048
    }
    pub fn num_hidden_layers() -> usize {
        12
    }
    pub fn num_attention_heads() -> usize {
        8
    }
    pub fn max_position_embeddings() -> usize {
        super::CLIP_TEXT_POSITIONS
    }
    pub fn eos_token_id() -> usize {
        49407
    }
}

/// transformers' `CLIPVisionConfig` defaults (the vision tower of ViT-B/32).
mod vision_defaults {
    pub fn hidden_size() -> usize {
        768
    }
    pub fn intermediate_size() -> usize {
        3072
    }
    pub fn num_hidden_layers() -> usize {
        12
    }
    pub fn num_attention_heads() -> usize {
        12
    }
    pub fn image_size() -> super::Side {
        super::Side::One(224)
    }
    pub fn patch_size() -> super::Side {
        super::Side::One(32)
    }
    pub fn num_channels() -> usize {
        3
    }
}

fn default_hidden_act() -> String {
    "quick_gelu".to_string()
}
fn default_layer_norm_eps() -> f64 {
    1e-5
}
fn default_projection_dim() -> usize {
    512
}
fn default_logit_scale() -> f64 {
    2.6592
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
    /// (quick_gelu), [`CLIP_TEXT_POSITIONS`] text positions, the vision tower over `image_size` pixels in an 8 × 8
    /// grid of patches (`image_size` a multiple of 8), joint width `projection_dim`.
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

    /// Reads the text of a Hugging Face CLIP `config.json`, ignoring keys that do not matter
    /// here; keys absent from `text_config` / `vision_config` take transformers' defaults.
    ///
    /// Refuses other model types, a file without `text_config` or `vision_config`,
    /// unsupported activations and inconsistent sizes.
    pub fn from_hf_json(text: &str) -> Result<Self, ClipConfigError> {
        let error = |message: String| ClipConfigError { message };
        let raw = HfClipJson::load_binary(text.as_bytes()).map_err(|e| error(e.to_string()))?;
        if let Some(model_type) = raw.model_type.as_deref()
            && model_type != "clip"
        {
            return Err(error(format!(
                "model_type \"{model_type}\" is not supported (only \"clip\")"
            )));
        }
        let text_json = raw
            .text_config_dict
            .or(raw.text_config)
            .ok_or_else(|| error("text_config is missing".to_string()))?;
        let vision_json = raw
            .vision_config_dict
            .or(raw.vision_config)
            .ok_or_else(|| error("vision_config is missing".to_string()))?;
        let text = ClipTextConfig::new(
            text_json.vocab_size,
            text_json.hidden_size,
            text_json.intermediate_size,
            text_json.num_hidden_layers,
            text_json.num_attention_heads,
            text_json.max_position_embeddings,
        )
        .with_hidden_act(text_json.hidden_act)
        .with_layer_norm_eps(text_json.layer_norm_eps)
        .with_attention_dropout(text_json.attention_dropout)
        .with_eos_token_id(text_json.eos_token_id);
        let vision = ClipVisionConfig::new(
            vision_json.hidden_size,
            vision_json.intermediate_size,
            vision_json.num_hidden_layers,
            vision_json.num_attention_heads,
            vision_json.image_size.square("image_size").map_err(error)?,
            vision_json.patch_size.square("patch_size").map_err(error)?,
        )
        .with_num_channels(vision_json.num_channels)
        .with_hidden_act(vision_json.hidden_act)
        .with_layer_norm_eps(vision_json.layer_norm_eps)
        .with_attention_dropout(vision_json.attention_dropout);
        let config = ClipConfig::new(text, vision, raw.projection_dim)
            .with_logit_scale_init_value(raw.logit_scale_init_value);
        config.validate().map_err(error)?;
        Ok(config)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys of openai/clip-vit-base-patch32's `config.json` that matter (the file also
    /// carries dozens of generation keys, which are ignored).
    const VIT_B32: &str = r#"{
        "architectures": ["CLIPModel"], "initializer_factor": 1.0,
        "logit_scale_init_value": 2.6592, "model_type": "clip", "projection_dim": 512,
        "text_config": {
            "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0, "eos_token_id": 2,
            "hidden_act": "quick_gelu", "hidden_size": 512, "intermediate_size": 2048,
            "layer_norm_eps": 1e-05, "max_length": 20, "max_position_embeddings": 77,
            "model_type": "clip_text_model", "num_attention_heads": 8, "num_hidden_layers": 12,
            "pad_token_id": 1, "projection_dim": 512, "vocab_size": 49408,
            "id2label": {"0": "LABEL_0"}, "top_k": 50
        },
        "text_config_dict": null,
        "vision_config": {
            "attention_dropout": 0.0, "eos_token_id": null, "hidden_act": "quick_gelu",
            "hidden_size": 768, "image_size": 224, "intermediate_size": 3072,
            "layer_norm_eps": 1e-05, "model_type": "clip_vision_model",
            "num_attention_heads": 12, "num_hidden_layers": 12, "patch_size": 32,
            "projection_dim": 512
        },
        "vision_config_dict": null
    }"#;

    #[test]
    fn reads_the_vit_b32_config_json() {
        let same = |a: &ClipConfig, b: &ClipConfig| format!("{a:?}") == format!("{b:?}");
        let config = ClipConfig::from_hf_json(VIT_B32).unwrap();
        assert!(same(&config, &ClipConfig::vit_base_patch32()), "{config:?}");
        // Sparse files take transformers' defaults: the same model (except the newer
        // end-of-text convention).
        let mut sparse = ClipConfig::from_hf_json(
            r#"{"model_type": "clip", "text_config": {}, "vision_config": {}}"#,
        )
        .unwrap();
        assert_eq!(sparse.text.eos_token_id, 49407);
        sparse.text.eos_token_id = 2;
        assert!(same(&sparse, &ClipConfig::vit_base_patch32()), "{sparse:?}");
        // Old files: `text_config_dict` wins.
        let old = VIT_B32.replace(
            "\"text_config_dict\": null",
            "\"text_config_dict\": {\"hidden_size\": 64, \"num_attention_heads\": 4}",
        );
        let config = ClipConfig::from_hf_json(&old).unwrap();
        assert_eq!(config.text.hidden_size, 64);
        assert_eq!(config.text.num_hidden_layers, 12);
        let pairs = VIT_B32
            .replace("\"image_size\": 224", "\"image_size\": [224, 224]")
            .replace("\"patch_size\": 32", "\"patch_size\": [32, 32]");
        let config = ClipConfig::from_hf_json(&pairs).unwrap();
        assert!(same(&config, &ClipConfig::vit_base_patch32()), "{config:?}");
    }

    #[test]
    fn bad_config_json_is_explained() {
        for (text, needle) in [
            (VIT_B32.replace("\"clip\"", "\"bert\""), "bert"),
            (
                VIT_B32.replacen("\"quick_gelu\"", "\"relu\"", 1),
                "text_config.hidden_act \"relu\"",
            ),
            (
                VIT_B32.replace("\"num_attention_heads\": 12", "\"num_attention_heads\": 7"),
                "vision_config.num_attention_heads (7) does not divide",
            ),
            (
                VIT_B32.replace("\"patch_size\": 32", "\"patch_size\": 30"),
                "does not divide image_size",
            ),
            (
                VIT_B32.replace("\"text_config\":", "\"text\":"),
                "text_config is missing",
            ),
            (
                VIT_B32.replace("\"image_size\": 224", "\"image_size\": [224, 256]"),
                "vision_config.image_size [224, 256] is not square",
            ),
            ("not json".to_string(), "CLIP config.json"),
        ] {
            let err = ClipConfig::from_hf_json(&text).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }
}
