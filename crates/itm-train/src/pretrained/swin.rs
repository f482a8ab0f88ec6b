//! Swin transformer weights into [`SwinModel`]: a Hugging Face `SwinModel` folder
//! (`config.json` + `model.safetensors`, [`load_swin`]) or a state dict in HAT's names
//! (timm's Swin under the prefix of HAT's Lightning checkpoints, `vit_model.`:
//! [`load_swin_hat`], [`load_swin_hat_safetensors`], [`swin_config_from_hat`]).

use std::path::Path;

use burn::tensor::Device;
use itm_core::encoders::{SwinConfig, SwinModel};

use super::safetensors::{
    apply_pytorch_tensors, check_weights_fit, invalid, load_safetensors_ignoring,
    safetensors_names, safetensors_state_dict, sum_of_products,
};
use super::swin_config::swin_config_from_json;
use crate::error::PretrainedError;
use crate::import::StateDict;

/// Renames transformers' `SwinModel` keys (with or without the `swin.` prefix of
/// `SwinForImageClassification`) to [`SwinModel`]'s parameter paths.
pub const SWIN_KEY_REMAP: &[(&str, &str)] = &[
    (r"^swin\.", ""),
    (
        r"^embeddings\.patch_embeddings\.projection\.",
        "embeddings.projection.",
    ),
    (r"^encoder\.layers\.", "stages."),
    (
        r"\.attention\.self\.(query|key|value|relative_position_bias_table)",
        ".attention.${1}",
    ),
    (r"\.attention\.output\.dense\.", ".attention.output."),
    (r"\.layernorm_before\.", ".norm_before."),
    (r"\.layernorm_after\.", ".norm_after."),
    (r"\.intermediate\.dense\.", ".fc1."),
    (r"\.blocks\.(\d+)\.output\.dense\.", ".blocks.${1}.fc2."),
    (r"^layernorm\.", "norm."),
];

/// Tensors of a transformers Swin checkpoint that [`load_swin`] leaves unused: the
/// `relative_position_index` buffers (recomputed from the window) and the classification
/// head of `SwinForImageClassification`.
pub const SWIN_IGNORED: &[&str] = &[r"\.relative_position_index$", r"^classifier\."];

/// Renames HAT's (timm's) Swin keys, once the prefix is removed and each fused
/// `attn.qkv` split into `attn.query`, `attn.key`, `attn.value` (as [`load_swin_hat`] does),
/// to [`SwinModel`]'s parameter paths.
pub const SWIN_HAT_KEY_REMAP: &[(&str, &str)] = &[
    (r"^patch_embed\.proj\.", "embeddings.projection."),
    (r"^patch_embed\.norm\.", "embeddings.norm."),
    (r"^layers\.", "stages."),
    (r"\.norm1\.", ".norm_before."),
    (r"\.norm2\.", ".norm_after."),
    (r"\.attn\.proj\.", ".attention.output."),
    (r"\.attn\.", ".attention."),
    (r"\.mlp\.(fc1|fc2)\.", ".${1}."),
    (r"^norm_(\d+)\.", "stage_norms.${1}."),
];

/// Tensors of HAT's Swin that [`load_swin_hat`] leaves unused: the buffers
/// `relative_position_index` and `attn_mask` (recomputed from the window and the grid).
pub const SWIN_HAT_IGNORED: &[&str] = &[r"\.attn_mask$", r"\.relative_position_index$"];

/// The stochastic depth HAT trains its Swin with: the default of its `SwinTransformer`
/// (`drop_path_rate=0.1`), which HAT does not override. PyTorch's `DropPath` acts in train
/// mode, so also while HAT's Swin is frozen (`requires_grad = False`, first 10 epochs).
pub const HAT_DROP_PATH_RATE: f64 = 0.1;

/// The prefix of the image tower's keys in HAT's Lightning checkpoints
/// (`METERTransformerSS.vit_model`).
pub const HAT_SWIN_PREFIX: &str = "vit_model.";

/// Loads a Hugging Face Swin folder: `config.json` (see
/// [`swin_config_from_json`](super::swin_config_from_json)) and `model.safetensors` (every
/// parameter must be there with its shape, every tensor used but those of [`SWIN_IGNORED`]).
/// The model has no stage norms (transformers has none):
/// [`SwinModel::with_stage_norms`] adds HAT's.
pub fn load_swin(
    folder: &Path,
    device: &Device,
) -> Result<(SwinModel, SwinConfig), PretrainedError> {
    let config_path = folder.join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(|source| PretrainedError::Io {
        path: config_path.clone(),
        source,
    })?;
    let config = swin_config_from_json(&text).map_err(|e| invalid(&config_path, e.to_string()))?;
    let weights = folder.join("model.safetensors");
    // A file that is not SafeTensors is reported as such before its size is compared.
    safetensors_names(&weights)?;
    check_weights_fit(&config_path, &weights, linear_values(&config))?;
    let model =
        load_safetensors_ignoring(config.init(device), &weights, SWIN_KEY_REMAP, SWIN_IGNORED)?;
    Ok((model, config))
}

/// The weights of the blocks' linear layers alone (`4·w²` attention, `2·w·hidden`
/// feed-forward per block): a lower bound of the parameter count; `None` on overflow.
fn linear_values(config: &SwinConfig) -> Option<u128> {
    let terms: Vec<Vec<usize>> = (0..config.num_stages())
        .flat_map(|s| {
            let (depth, width) = (config.depths[s], config.stage_dim(s));
            [
                vec![depth, 4, width, width],
                vec![depth, 2, width, config.mlp_dim(s)],
            ]
        })
        .collect();
    let slices: Vec<&[usize]> = terms.iter().map(Vec::as_slice).collect();
    sum_of_products(&slices)
}

/// Fills a [`SwinModel`] of `config` from the tensors of `dict` whose keys start with
/// `prefix` (HAT: [`HAT_SWIN_PREFIX`]), named as HAT's (timm's) `SwinTransformer` names them;
/// the other tensors of `dict` (the rest of HAT's model) are left alone. `path` names the
/// checkpoint in errors.
///
/// Every parameter must be filled and every tensor under the prefix used, except the buffers
/// of [`SWIN_HAT_IGNORED`]; with `config.stage_norms`, HAT's `norm_0`… must be there.
pub fn load_swin_hat(
    config: &SwinConfig,
    dict: &StateDict,
    prefix: &str,
    path: &Path,
    device: &Device,
) -> Result<SwinModel, PretrainedError> {
    config
        .validate()
        .map_err(|message| invalid(path, format!("Swin configuration: {message}")))?;
    let tower = tower_tensors(dict, prefix, path)?;
    // Sizes that the tensors cannot fill are refused before the model is built (a config read
    // from a crafted file could otherwise ask for more memory than there is).
    let stored: u128 = tower
        .tensors
        .iter()
        .map(|t| {
            t.shape
                .as_slice()
                .iter()
                .map(|&d| d as u128)
                .product::<u128>()
        })
        .sum();
    match linear_values(config) {
        Some(values) if values <= stored => {}
        values => {
            return Err(invalid(
                path,
                format!(
                    "the Swin configuration needs {} weights in its blocks' linear layers, the \
                     tensors under \"{prefix}\" hold {stored} values",
                    values.map_or("more than 2^128".to_string(), |v| v.to_string())
                ),
            ));
        }
    }
    // The prefix goes first, so that errors name the tensors as the checkpoint does.
    let strip = format!("^{}", escape_regex(prefix));
    let remap: Vec<(&str, &str)> = std::iter::once((strip.as_str(), ""))
        .chain(SWIN_HAT_KEY_REMAP.iter().copied())
        .collect();
    apply_pytorch_tensors(
        config.init(device),
        path,
        tower.tensors,
        &remap,
        SWIN_HAT_IGNORED,
        false,
    )
}

/// [`load_swin_hat`] from a SafeTensors file holding a HAT-named state dict.
pub fn load_swin_hat_safetensors(
    config: &SwinConfig,
    path: &Path,
    prefix: &str,
    device: &Device,
) -> Result<SwinModel, PretrainedError> {
    load_swin_hat(config, &safetensors_state_dict(path)?, prefix, path, device)
}

/// The Swin of a HAT-named state dict, read from its shapes: patch size, width and channels
/// from `patch_embed.proj.weight`, stages and blocks from their keys, heads from the relative
/// position tables, the feed-forward ratio from `mlp.fc1.weight`, the query/key/value biases
/// and the stage norms from their presence. The window is HAT's rule, `image_size / 32`
/// (HAT's `SwinTransformer` overrides the window it is given with it); `image_size` is HAT's
/// `config['image_size']` (224 in its published runs), which the state dict does not hold.
/// Stochastic depth is HAT's, [`HAT_DROP_PATH_RATE`] (it acts in training only).
pub fn swin_config_from_hat(
    dict: &StateDict,
    prefix: &str,
    image_size: usize,
    path: &Path,
) -> Result<SwinConfig, PretrainedError> {
    let shape = |key: &str| -> Result<Vec<usize>, PretrainedError> {
        dict.shape(&format!("{prefix}{key}"))
            .ok_or_else(|| invalid(path, format!("{prefix}{key} is missing")))
    };
    let has = |key: &str| dict.shape(&format!("{prefix}{key}")).is_some();
    let projection = shape("patch_embed.proj.weight")?;
    let [embed_dim, channels, patch, patch_cols] = projection[..] else {
        return Err(invalid(
            path,
            format!("{prefix}patch_embed.proj.weight is {projection:?}, not a 4-d convolution"),
        ));
    };
    if patch != patch_cols {
        return Err(invalid(
            path,
            format!("{prefix}patch_embed.proj.weight has non-square patches {projection:?}"),
        ));
    }
    let stages = (0..).take_while(|s| has(&format!("layers.{s}.blocks.0.norm1.weight")));
    let mut depths = Vec::new();
    let mut heads = Vec::new();
    for s in stages {
        depths.push(
            (0..)
                .take_while(|b| has(&format!("layers.{s}.blocks.{b}.norm1.weight")))
                .count(),
        );
        let table = shape(&format!(
            "layers.{s}.blocks.0.attn.relative_position_bias_table"
        ))?;
        heads.push(table.get(1).copied().unwrap_or(0));
    }
    if depths.is_empty() {
        return Err(invalid(
            path,
            format!("no {prefix}layers.0.blocks.0.* tensor"),
        ));
    }
    let hidden = shape("layers.0.blocks.0.mlp.fc1.weight")?;
    let config = SwinConfig::new(image_size, patch, embed_dim, depths, heads, image_size / 32)
        .with_num_channels(channels)
        .with_mlp_ratio(hidden[0] as f64 / embed_dim.max(1) as f64)
        .with_qkv_bias(has("layers.0.blocks.0.attn.qkv.bias"))
        .with_stage_norms(has("norm_0.weight"))
        .with_drop_path_rate(HAT_DROP_PATH_RATE);
    config
        .validate()
        .map_err(|message| invalid(path, format!("the Swin it describes: {message}")))?;
    Ok(config)
}

/// The tensors under `prefix`, each fused `attn.qkv.{weight,bias}` split into
/// `attn.{query,key,value}.*`.
fn tower_tensors(
    dict: &StateDict,
    prefix: &str,
    path: &Path,
) -> Result<StateDict, PretrainedError> {
    let mut tower = StateDict {
        tensors: dict
            .tensors
            .iter()
            .filter(|t| t.name.starts_with(prefix))
            .cloned()
            .collect(),
        data_parallel: dict.data_parallel,
    };
    if tower.tensors.is_empty() {
        return Err(invalid(
            path,
            format!("no tensor under the prefix \"{prefix}\""),
        ));
    }
    let fused: Vec<String> = tower
        .keys()
        .into_iter()
        .filter(|k| k.ends_with(".attn.qkv.weight") || k.ends_with(".attn.qkv.bias"))
        .map(str::to_string)
        .collect();
    for key in fused {
        let (stem, part) = key.rsplit_once(".qkv.").expect("a qkv key");
        let names = ["query", "key", "value"].map(|p| format!("{stem}.{p}.{part}"));
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        tower
            .split_rows(&key, &names)
            .map_err(|message| invalid(path, message))?;
    }
    Ok(tower)
}

/// `text` as a regular expression that matches it literally.
fn escape_regex(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if r"\.+*?()|[]{}^$#&-~".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::super::safetensors::read_safetensors;
    use super::*;

    /// The keys of `SwinForImageClassification` (`swin.` prefix, a `classifier`) load the
    /// same model as those of `SwinModel`.
    #[test]
    fn classification_checkpoints_load_the_same_tower() {
        let device = Device::default();
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_swin");
        let (model, config) = load_swin(&folder, &device).unwrap();
        let weights = folder.join("model.safetensors");
        let mut tensors = read_safetensors(&weights).unwrap();
        for tensor in &mut tensors {
            tensor.name = format!("swin.{}", tensor.name);
        }
        let mut head = tensors[0].clone();
        head.name = "classifier.weight".to_string();
        tensors.push(head);
        let renamed = apply_pytorch_tensors(
            config.init(&device),
            &weights,
            tensors,
            SWIN_KEY_REMAP,
            SWIN_IGNORED,
            false,
        )
        .unwrap();
        let pixels = burn::tensor::Tensor::<4>::random(
            [1, 3, 32, 32],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let (a, b) = (model.forward(pixels.clone()), renamed.forward(pixels));
        for (a, b) in a.stages.into_iter().zip(b.stages) {
            assert_eq!((a - b).abs().max().into_scalar::<f32>(), 0.0);
        }
    }

    #[test]
    fn prefixes_are_matched_literally() {
        assert_eq!(escape_regex("vit_model."), r"vit_model\.");
        assert_eq!(escape_regex("a.b(c)[d]+"), r"a\.b\(c\)\[d\]\+");
    }
}
