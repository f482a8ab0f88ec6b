//! Hugging Face CLIP `config.json` → [`ClipConfig`]: the loader's half of the model's
//! configuration (the core crate's configs know no file format).

use burn::config::Config;
use itm_core::encoders::clip::{ClipConfig, ClipTextConfig, ClipVisionConfig};
use serde::{Deserialize, Serialize};

/// A `config.json` that cannot describe a [`ClipModel`](itm_core::encoders::ClipModel).
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
        itm_core::encoders::clip::CLIP_TEXT_POSITIONS
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

/// Reads the text of a Hugging Face CLIP `config.json` into a [`ClipConfig`], ignoring keys
/// that do not matter here; keys absent from `text_config` / `vision_config` take
/// transformers' defaults.
///
/// Refuses other model types, a file without `text_config` or `vision_config`,
/// unsupported activations and inconsistent sizes.
pub fn clip_config_from_json(text: &str) -> Result<ClipConfig, ClipConfigError> {
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
        let config = clip_config_from_json(VIT_B32).unwrap();
        assert!(same(&config, &ClipConfig::vit_base_patch32()), "{config:?}");
        // Sparse files take transformers' defaults: the same model (except the newer
        // end-of-text convention).
        let mut sparse = clip_config_from_json(
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
        let config = clip_config_from_json(&old).unwrap();
        assert_eq!(config.text.hidden_size, 64);
        assert_eq!(config.text.num_hidden_layers, 12);
        let pairs = VIT_B32
            .replace("\"image_size\": 224", "\"image_size\": [224, 224]")
            .replace("\"patch_size\": 32", "\"patch_size\": [32, 32]");
        let config = clip_config_from_json(&pairs).unwrap();
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
            let err = clip_config_from_json(&text).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }
}
