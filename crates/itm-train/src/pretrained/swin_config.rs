//! Hugging Face Swin `config.json` → [`SwinConfig`]: the loader's half of the model's
//! configuration (the core crate's configs know no file format).

use burn::config::Config;
use itm_core::encoders::SwinConfig;
use serde::{Deserialize, Serialize};

/// A `config.json` that cannot describe a [`SwinModel`](itm_core::encoders::SwinModel).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a usable Swin config.json: {message}")]
pub struct SwinConfigError {
    /// What is wrong.
    pub message: String,
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
                "{name} [{h}, {w}] is not square (only square sizes are supported)"
            )),
        }
    }
}

/// The keys of a Swin `config.json` that matter here; absent keys take transformers'
/// `SwinConfig` defaults (Swin-T). (A [`Config`] only for its JSON reader.)
#[derive(Debug, Serialize, Deserialize)]
struct HfSwinJson {
    model_type: Option<String>,
    #[serde(default = "defaults::image_size")]
    image_size: Side,
    #[serde(default = "defaults::patch_size")]
    patch_size: Side,
    #[serde(default = "defaults::num_channels")]
    num_channels: usize,
    #[serde(default = "defaults::embed_dim")]
    embed_dim: usize,
    #[serde(default = "defaults::depths")]
    depths: Vec<usize>,
    #[serde(default = "defaults::num_heads")]
    num_heads: Vec<usize>,
    #[serde(default = "defaults::window_size")]
    window_size: usize,
    #[serde(default = "defaults::mlp_ratio")]
    mlp_ratio: f64,
    #[serde(default = "defaults::qkv_bias")]
    qkv_bias: bool,
    #[serde(default = "defaults::hidden_act")]
    hidden_act: String,
    #[serde(default)]
    use_absolute_embeddings: bool,
    #[serde(default = "defaults::layer_norm_eps")]
    layer_norm_eps: f64,
    #[serde(default = "defaults::drop_path_rate")]
    drop_path_rate: f64,
}

impl Config for HfSwinJson {}

/// transformers' `SwinConfig` defaults.
mod defaults {
    pub fn image_size() -> super::Side {
        super::Side::One(224)
    }
    pub fn patch_size() -> super::Side {
        super::Side::One(4)
    }
    pub fn num_channels() -> usize {
        3
    }
    pub fn embed_dim() -> usize {
        96
    }
    pub fn depths() -> Vec<usize> {
        vec![2, 2, 6, 2]
    }
    pub fn num_heads() -> Vec<usize> {
        vec![3, 6, 12, 24]
    }
    pub fn window_size() -> usize {
        7
    }
    pub fn mlp_ratio() -> f64 {
        4.0
    }
    pub fn qkv_bias() -> bool {
        true
    }
    pub fn hidden_act() -> String {
        "gelu".to_string()
    }
    pub fn layer_norm_eps() -> f64 {
        1e-5
    }
    pub fn drop_path_rate() -> f64 {
        0.1
    }
}

/// Reads the text of a Hugging Face Swin `config.json` (`model_type` `"swin"`) into a
/// [`SwinConfig`] without stage norms, ignoring keys that do not matter here
/// (`drop_path_rate`, the stochastic depth of training, is kept: transformers' default 0.1).
///
/// Refuses other model types (Swin V2's `swinv2` computes its attention differently),
/// absolute position embeddings, activations other than `gelu`, non-square sizes and
/// inconsistent sizes.
pub fn swin_config_from_json(text: &str) -> Result<SwinConfig, SwinConfigError> {
    let error = |message: String| SwinConfigError { message };
    let raw = HfSwinJson::load_binary(text.as_bytes()).map_err(|e| error(e.to_string()))?;
    if let Some(model_type) = raw.model_type.as_deref()
        && model_type != "swin"
    {
        return Err(error(format!(
            "model_type \"{model_type}\" is not supported (only \"swin\")"
        )));
    }
    if raw.use_absolute_embeddings {
        return Err(error(
            "use_absolute_embeddings is true: absolute position embeddings are not supported"
                .to_string(),
        ));
    }
    if raw.hidden_act != "gelu" {
        return Err(error(format!(
            "hidden_act \"{}\" is not supported (only gelu)",
            raw.hidden_act
        )));
    }
    let config = SwinConfig::new(
        raw.image_size.square("image_size").map_err(error)?,
        raw.patch_size.square("patch_size").map_err(error)?,
        raw.embed_dim,
        raw.depths,
        raw.num_heads,
        raw.window_size,
    )
    .with_num_channels(raw.num_channels)
    .with_mlp_ratio(raw.mlp_ratio)
    .with_qkv_bias(raw.qkv_bias)
    .with_layer_norm_eps(raw.layer_norm_eps)
    .with_drop_path_rate(raw.drop_path_rate);
    config.validate().map_err(error)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys of microsoft/swin-base-patch4-window7-224-in22k's `config.json` that matter
    /// (the file also carries 21 841 labels, which are ignored).
    const SWIN_BASE: &str = r#"{
        "architectures": ["SwinForImageClassification"], "attention_probs_dropout_prob": 0.0,
        "depths": [2, 2, 18, 2], "drop_path_rate": 0.1, "embed_dim": 128, "encoder_stride": 32,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "hidden_size": 1024,
        "id2label": {"0": "tench"}, "image_size": 224, "initializer_range": 0.02,
        "layer_norm_eps": 1e-05, "mlp_ratio": 4.0, "model_type": "swin", "num_channels": 3,
        "num_heads": [4, 8, 16, 32], "num_layers": 4, "patch_size": 4, "path_norm": true,
        "qkv_bias": true, "use_absolute_embeddings": false, "window_size": 7
    }"#;

    #[test]
    fn reads_swin_base() {
        let config = swin_config_from_json(SWIN_BASE).unwrap();
        let expected = SwinConfig::swin_base_patch4_window7_224().with_drop_path_rate(0.1);
        assert_eq!(format!("{config:?}"), format!("{expected:?}"));
        // An empty file is transformers' default, Swin-T.
        let tiny = swin_config_from_json("{}").unwrap();
        assert_eq!(
            (tiny.embed_dim, tiny.depths.clone()),
            (96, vec![2, 2, 6, 2])
        );
        let pairs = SWIN_BASE.replace("\"image_size\": 224", "\"image_size\": [224, 224]");
        assert_eq!(swin_config_from_json(&pairs).unwrap().image_size, 224);
    }

    #[test]
    fn unusable_files_are_explained() {
        let refused = |from: &str, to: &str, words: &[&str]| {
            let message = swin_config_from_json(&SWIN_BASE.replace(from, to))
                .unwrap_err()
                .to_string();
            for word in words {
                assert!(message.contains(word), "{message}");
            }
        };
        refused("\"swin\"", "\"swinv2\"", &["swinv2"]);
        refused(
            "\"use_absolute_embeddings\": false",
            "\"use_absolute_embeddings\": true",
            &["use_absolute_embeddings"],
        );
        refused(
            "\"hidden_act\": \"gelu\"",
            "\"hidden_act\": \"relu\"",
            &["relu"],
        );
        refused(
            "\"image_size\": 224",
            "\"image_size\": [224, 192]",
            &["not square"],
        );
        refused("[4, 8, 16, 32]", "[4, 8, 16]", &["num_heads 3"]);
        refused("[4, 8, 16, 32]", "[4, 8, 24, 32]", &["num_heads[2]"]);
        refused("\"embed_dim\": 128", "\"embed_dim\": \"wide\"", &[]);
    }
}
