//! Hugging Face BERT `config.json` → [`BertConfig`]: the loader's half of the model's
//! configuration (the core crate's configs know no file format).

use burn::config::Config;
use itm_core::encoders::BertConfig;
use serde::{Deserialize, Serialize};

/// A `config.json` that cannot describe a [`BertModel`](itm_core::encoders::BertModel).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a usable BERT config.json: {message}")]
pub struct BertConfigError {
    /// What is wrong.
    pub message: String,
}

/// The keys of Hugging Face's `config.json` that matter here; the others are ignored.
/// (A [`Config`] only for its JSON reader.)
#[derive(Debug, Serialize, Deserialize)]
struct HfBertJson {
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    layer_norm_eps: f64,
    #[serde(default = "default_hidden_act")]
    hidden_act: String,
    #[serde(default = "default_dropout")]
    hidden_dropout_prob: f64,
    position_embedding_type: Option<String>,
}

impl Config for HfBertJson {}

fn default_type_vocab_size() -> usize {
    2
}
fn default_layer_norm_eps() -> f64 {
    1e-12
}
fn default_hidden_act() -> String {
    "gelu".to_string()
}
fn default_dropout() -> f64 {
    0.1
}

/// Reads the text of a Hugging Face BERT `config.json` into a [`BertConfig`], ignoring keys that
/// do not matter here.
///
/// Refuses other model types (`model_type` other than `"bert"`: RoBERTa, for one, numbers
/// its positions differently), relative position embeddings, unsupported activations and
/// inconsistent sizes.
pub fn bert_config_from_json(text: &str) -> Result<BertConfig, BertConfigError> {
    let error = |message: String| BertConfigError { message };
    let raw = HfBertJson::load_binary(text.as_bytes()).map_err(|e| error(e.to_string()))?;
    if let Some(model_type) = raw.model_type.as_deref()
        && model_type != "bert"
    {
        return Err(error(format!(
            "model_type \"{model_type}\" is not supported (only \"bert\")"
        )));
    }
    if let Some(kind) = raw.position_embedding_type.as_deref()
        && kind != "absolute"
    {
        return Err(error(format!(
            "position_embedding_type \"{kind}\" is not supported (only \"absolute\")"
        )));
    }
    let config = BertConfig::new(
        raw.vocab_size,
        raw.hidden_size,
        raw.num_hidden_layers,
        raw.num_attention_heads,
        raw.intermediate_size,
        raw.max_position_embeddings,
    )
    .with_type_vocab_size(raw.type_vocab_size)
    .with_layer_norm_eps(raw.layer_norm_eps)
    .with_hidden_act(raw.hidden_act)
    .with_hidden_dropout_prob(raw.hidden_dropout_prob);
    config.validate().map_err(error)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hugging_face_config_json() {
        let text = r#"{
            "architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
            "attention_probs_dropout_prob": 0.1, "hidden_dropout_prob": 0.0,
            "hidden_size": 384, "intermediate_size": 1536, "layer_norm_eps": 1e-12,
            "max_position_embeddings": 512, "num_attention_heads": 12, "num_hidden_layers": 6,
            "pad_token_id": 0, "position_embedding_type": "absolute", "type_vocab_size": 2,
            "vocab_size": 30522, "use_cache": true
        }"#;
        let config = bert_config_from_json(text).unwrap();
        assert_eq!(config.hidden_size, 384);
        assert_eq!(config.num_hidden_layers, 6);
        assert_eq!(config.intermediate_size, 1536);
        assert_eq!(config.vocab_size, 30522);
        assert_eq!(config.layer_norm_eps, 1e-12);
        assert_eq!(config.hidden_dropout_prob, 0.0);
        assert!(config.add_pooling_layer);

        for (text, needle) in [
            (text.replace("\"bert\"", "\"roberta\""), "roberta"),
            (text.replace("\"gelu\"", "\"swish\""), "swish"),
            (text.replace(": 12,", ": 5,"), "does not divide"),
            (
                text.replace("\"absolute\"", "\"relative_key\""),
                "relative_key",
            ),
            (text.replace("\"vocab_size\"", "\"vocab\""), "vocab_size"),
        ] {
            let err = bert_config_from_json(&text).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }
}
