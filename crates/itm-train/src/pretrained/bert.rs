//! Hugging Face BERT folders (`config.json` + `model.safetensors`) into [`BertModel`]: keys
//! with or without the `bert.` prefix, layer norms as `weight`/`bias` or legacy `gamma`/`beta`.

use std::path::Path;

use burn::tensor::Device;
use itm_core::encoders::{BertConfig, BertModel};

use super::bert_config::bert_config_from_json;
use super::safetensors::{
    check_weights_fit, invalid, load_safetensors_ignoring, safetensors_names, sum_of_products,
};
use crate::error::PretrainedError;

/// Renames Hugging Face BERT keys (with or without the `bert.` prefix) to [`BertModel`]'s
/// parameter paths.
pub const BERT_KEY_REMAP: &[(&str, &str)] = &[
    (r"^bert\.", ""),
    (r"^embeddings\.LayerNorm\.", "embeddings.layer_norm."),
    (
        r"^encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.",
        "encoder.layers.${1}.mha.${2}.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.",
        "encoder.layers.${1}.mha.output.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.",
        "encoder.layers.${1}.norm_1.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.intermediate\.dense\.",
        "encoder.layers.${1}.pwff.linear_inner.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.output\.dense\.",
        "encoder.layers.${1}.pwff.linear_outer.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.",
        "encoder.layers.${1}.norm_2.",
    ),
    (r"^pooler\.dense\.", "pooler."),
];

/// Tensors of a BERT checkpoint that [`load_bert`] leaves unused: the `position_ids` buffer
/// and the heads of pre-training / fine-tuning tasks (`cls.`).
pub const BERT_IGNORED: &[&str] = &[r"^embeddings\.position_ids$", r"^cls\."];

/// Loads a Hugging Face BERT folder: `config.json` (see [`bert_config_from_json`]) and
/// `model.safetensors`. The model has a pooler when the file has one.
pub fn load_bert(
    folder: &Path,
    device: &Device,
) -> Result<(BertModel, BertConfig), PretrainedError> {
    let config_path = folder.join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(|source| PretrainedError::Io {
        path: config_path.clone(),
        source,
    })?;
    let config = bert_config_from_json(&text).map_err(|e| invalid(&config_path, e.to_string()))?;
    let weights = folder.join("model.safetensors");
    let has_pooler = safetensors_names(&weights)?
        .iter()
        .any(|name| name == "pooler.dense.weight" || name == "bert.pooler.dense.weight");
    let config = config.with_add_pooling_layer(has_pooler);
    // Embedding tables and feed-forward layers alone.
    let (h, i, layers) = (
        config.hidden_size,
        config.intermediate_size,
        config.num_hidden_layers,
    );
    let values = sum_of_products(&[
        &[config.vocab_size, h],
        &[config.max_position_embeddings, h],
        &[config.type_vocab_size, h],
        &[layers, 2, h, i],
    ]);
    check_weights_fit(&config_path, &weights, values)?;
    let model =
        load_safetensors_ignoring(config.init(device), &weights, BERT_KEY_REMAP, BERT_IGNORED)?;
    Ok((model, config))
}

/// The token limit of a sentence-embedding folder: `max_seq_length` of
/// `sentence_bert_config.json` when the folder has one (capped at the position embeddings),
/// else `config.max_position_embeddings`.
pub fn sentence_max_length(folder: &Path, config: &BertConfig) -> Result<usize, PretrainedError> {
    let path = folder.join("sentence_bert_config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(config.max_position_embeddings);
        }
        Err(source) => return Err(PretrainedError::Io { path, source }),
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| invalid(&path, format!("not JSON: {e}")))?;
    match value.get("max_seq_length").map(|v| v.as_u64()) {
        None => Ok(config.max_position_embeddings),
        Some(Some(length)) if length >= 3 => {
            Ok((length as usize).min(config.max_position_embeddings))
        }
        Some(_) => Err(invalid(
            &path,
            format!(
                "max_seq_length must be an integer of at least 3, found {}",
                value["max_seq_length"]
            ),
        )),
    }
}
