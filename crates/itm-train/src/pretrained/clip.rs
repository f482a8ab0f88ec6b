//! Hugging Face CLIP checkpoints (`config.json` + `model.safetensors` + `tokenizer.json`, the
//! folder `CLIPModel.save_pretrained` writes) into [`ClipModel`].
//!
//! The model's parameter paths are transformers' own except for the attention projections
//! (`q_proj`, `k_proj`, `v_proj`, `out_proj` → burn's `query`, `key`, `value`, `output`);
//! Linear weights are transposed and layer norms renamed by [`load_safetensors_ignoring`].

use std::path::Path;

use burn::tensor::Device;
use itm_core::encoders::{ClipConfig, ClipModel};
use itm_data::{DataError, SubwordTokenizer};

use super::clip_config::clip_config_from_json;
use super::safetensors::{
    check_weights_fit, load_safetensors_ignoring, safetensors_names, sum_of_products,
};
use crate::error::PretrainedError;

/// Renames transformers' `CLIPModel` keys to [`ClipModel`]'s parameter paths.
pub const CLIP_KEY_REMAP: &[(&str, &str)] = &[
    (r"\.self_attn\.q_proj\.", ".self_attn.query."),
    (r"\.self_attn\.k_proj\.", ".self_attn.key."),
    (r"\.self_attn\.v_proj\.", ".self_attn.value."),
    (r"\.self_attn\.out_proj\.", ".self_attn.output."),
];

/// Tensors of a CLIP checkpoint that [`load_clip`] leaves unused: the `position_ids` buffers
/// that older checkpoints carry.
pub const CLIP_IGNORED: &[&str] = &[r"^(text|vision)_model\.embeddings\.position_ids$"];

/// Loads a Hugging Face CLIP folder: `config.json` (see [`clip_config_from_json`]) and
/// `model.safetensors` (every parameter must be there with its shape).
pub fn load_clip(
    folder: &Path,
    device: &Device,
) -> Result<(ClipModel, ClipConfig), PretrainedError> {
    let config_path = folder.join("config.json");
    let config = read_clip_config(folder)?;
    let weights = folder.join("model.safetensors");
    // Embedding tables, patch projection and feed-forward layers alone.
    let (text, vision) = (&config.text, &config.vision);
    let values = sum_of_products(&[
        &[text.vocab_size, text.hidden_size],
        &[text.max_position_embeddings, text.hidden_size],
        &[
            text.num_hidden_layers,
            2,
            text.hidden_size,
            text.intermediate_size,
        ],
        &[
            vision.num_channels,
            vision.patch_size,
            vision.patch_size,
            vision.hidden_size,
        ],
        &[
            vision.num_hidden_layers,
            2,
            vision.hidden_size,
            vision.intermediate_size,
        ],
    ]);
    // A file that is not SafeTensors is reported as such before its size is compared.
    safetensors_names(&weights)?;
    check_weights_fit(&config_path, &weights, values)?;
    let model =
        load_safetensors_ignoring(config.init(device), &weights, CLIP_KEY_REMAP, CLIP_IGNORED)?;
    Ok((model, config))
}

/// The configuration of a Hugging Face CLIP folder: its `config.json` (see
/// [`clip_config_from_json`]).
pub fn read_clip_config(folder: &Path) -> Result<ClipConfig, PretrainedError> {
    let path = folder.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|source| PretrainedError::Io {
        path: path.clone(),
        source,
    })?;
    clip_config_from_json(&text).map_err(|e| PretrainedError::Invalid {
        path,
        message: e.to_string(),
    })
}

/// The folder's `tokenizer.json`, truncating to the text tower's positions (CLIP: 77 tokens,
/// the end-of-text token kept last).
///
/// Rows are padded with the tokenizer's padding id (0 when `tokenizer.json` names none);
/// [`ClipModel::encode_texts`] ignores the padding, whatever its id.
pub fn clip_tokenizer(folder: &Path, config: &ClipConfig) -> Result<SubwordTokenizer, DataError> {
    SubwordTokenizer::from_file(
        &folder.join("tokenizer.json"),
        config.text.max_position_embeddings,
    )
}
