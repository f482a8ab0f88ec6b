//! HAT (LuminosityX/HAT): a PyTorch Lightning checkpoint of `METERTransformerSS`, whose one
//! state dict holds the Swin (`vit_model.*`, HAT's timm names), the BERT (`text_transformer.*`,
//! pytorch-pretrained-bert names, as Hugging Face's) and the six per-level projections
//! (`cross_modal_image_transform_1`, `_2` and the plain one for the low, middle and high image
//! levels; the same for text). It becomes the zoo's `hat` model: the Swin levels, the BERT
//! levels (hidden states after layers ⌈n/3⌉, ⌊5n/6⌋, n: HAT's `all_encoder_layers[3]`, `[9]`,
//! `[-1]` for bert-base) and the multi-level head. The BERT's sizes and tokenizer come from the
//! `--bert` folder (HAT builds it `from_pretrained(config['tokenizer'])`); the image side from
//! `hyper_parameters.config.image_size` (224 when absent), the caption limit from
//! `max_text_len` (32 when absent). HAT's METER fusion layers, if saved, are not imported: its
//! scoring never reads them.

use burn::tensor::Device;
use itm_core::encoders::ImageEncoderConfig;
use itm_core::encoders::{
    BertLevelEncoderConfig, ImageEncoder, SwinLevelEncoderConfig, TextEncoder, TextEncoderConfig,
    hat_text_layers,
};
use itm_data::SubwordTokenizer;

use super::checkpoint::{AuthorsCheckpoint, StateDict};
use super::{ImportError, ImportInputs, Imported};
use crate::pretrained::{
    BERT_KEY_REMAP, HAT_SWIN_PREFIX, apply_pytorch_tensors, bert_config_from_json, load_swin_hat,
    swin_config_from_hat,
};
use crate::towers::{HAT_MAX_TOKENS, Towers};
use crate::zoo;

/// HAT's keys outside the Swin and the BERT: the projections, low → high.
const IMAGE_PROJECTIONS: [&str; 3] = [
    "cross_modal_image_transform_1",
    "cross_modal_image_transform_2",
    "cross_modal_image_transform",
];
const TEXT_PROJECTIONS: [&str; 3] = [
    "cross_modal_text_transform_1",
    "cross_modal_text_transform_2",
    "cross_modal_text_transform",
];
const TEXT_PREFIX: &str = "text_transformer.";

/// Whether the checkpoint is HAT's: one state dict with the Swin, the BERT and the low
/// level's image projection.
pub(super) fn recognise(checkpoint: &AuthorsCheckpoint) -> bool {
    match checkpoint.state_dicts.as_slice() {
        [dict] => {
            dict.has_prefix(HAT_SWIN_PREFIX)
                && dict.has_prefix(TEXT_PREFIX)
                && dict.shape("cross_modal_image_transform_1.weight").is_some()
        }
        _ => false,
    }
}

/// The `hat` model of the checkpoint (see the module documentation).
pub(super) fn import(
    checkpoint: &AuthorsCheckpoint,
    inputs: &ImportInputs,
    device: &Device,
) -> Result<Imported, ImportError> {
    let path = &checkpoint.path;
    let dict = checkpoint.state_dict(0, "model (Lightning state_dict)")?;
    if checkpoint.state_dicts.len() != 1 || !recognise(checkpoint) {
        let keys = dict.keys();
        let shown: Vec<&str> = keys.iter().copied().take(4).collect();
        return Err(ImportError::invalid(
            path,
            format!(
                "not a HAT checkpoint: it needs one state dict with vit_model.* (the Swin), \
                 text_transformer.* (the BERT) and cross_modal_*_transform* tensors; found {} \
                 state dict(s), first keys {shown:?}",
                checkpoint.state_dicts.len()
            ),
        ));
    }
    let option = |name: &str, default: usize| match checkpoint.opt_value(name) {
        None => Ok(default),
        Some(_) => checkpoint.opt_usize(name),
    };
    let image_size = option("image_size", 224)?;
    let max_text_len = option("max_text_len", HAT_MAX_TOKENS)?;
    let d_embed = dict
        .shape("cross_modal_text_transform.weight")
        .and_then(|shape| shape.first().copied())
        .ok_or_else(|| {
            ImportError::invalid(path, "cross_modal_text_transform.weight is missing")
        })?;

    let swin_config = swin_config_from_hat(dict, HAT_SWIN_PREFIX, image_size, path)?;
    let swin = load_swin_hat(&swin_config, dict, HAT_SWIN_PREFIX, path, device)?;
    let (bert, tokenizer, folder) = bert_folder(inputs, dict, max_text_len)?;
    let layers = hat_text_layers(bert.num_hidden_layers);
    let image = SwinLevelEncoderConfig::new(swin_config, d_embed);
    let text = BertLevelEncoderConfig::new(bert, layers.clone(), d_embed);
    let entry = zoo::lookup("hat").expect("the zoo has hat");
    let config = entry.model(
        ImageEncoderConfig::SwinLevels(image.clone()),
        TextEncoderConfig::BertLevels(text.clone()),
        Towers::System,
    );

    let mut image_tower = image.init(device);
    image_tower.swin = swin;
    let image_rules = projection_rules(&IMAGE_PROJECTIONS, "");
    image_tower.projection = apply_pytorch_tensors(
        image_tower.projection,
        path,
        dict.tensors.clone(),
        &borrowed(&image_rules),
        &[
            r"^vit_model\.",
            r"^text_transformer\.",
            r"^cross_modal_text_transform",
        ],
        true,
    )?;
    let mut text_rules = projection_rules(&TEXT_PROJECTIONS, "projection.");
    for (pattern, replacement) in BERT_KEY_REMAP.iter().skip(1) {
        let rest = pattern.trim_start_matches('^');
        text_rules.push((
            format!(r"^text_transformer\.{rest}"),
            format!("bert.{replacement}"),
        ));
    }
    text_rules.push((r"^text_transformer\.".into(), "bert.".into()));
    let text_tower = apply_pytorch_tensors(
        text.init(device),
        path,
        dict.tensors.clone(),
        &borrowed(&text_rules),
        &[
            r"^vit_model\.",
            r"^cross_modal_image_transform",
            r"^bert\.pooler\.",
            r"position_ids$",
        ],
        true,
    )?;
    let mut model = config.init(device);
    model.image = ImageEncoder::SwinLevels(image_tower);
    model.text = TextEncoder::BertLevels(text_tower);
    Ok(Imported {
        system: "hat",
        model,
        config,
        tokenizer: tokenizer.into(),
        notes: vec![
            format!(
                "BERT sizes and tokenizer from {}; its weights from the checkpoint; text levels \
                 after layers {layers:?}",
                folder.display()
            ),
            format!(
                "image side {image_size} (hyper_parameters.config.image_size), captions of at \
                 most {max_text_len} tokens"
            ),
            "the BERT pooler and any METER fusion layers are not imported (HAT's scoring never \
             reads them)"
                .into(),
        ],
    })
}

/// `names[ℓ].` → `{prefix}levels.ℓ.`.
fn projection_rules(names: &[&str; 3], prefix: &str) -> Vec<(String, String)> {
    names
        .iter()
        .enumerate()
        .map(|(level, name)| (format!(r"^{name}\."), format!("{prefix}levels.{level}.")))
        .collect()
}

fn borrowed(rules: &[(String, String)]) -> Vec<(&str, &str)> {
    rules
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect()
}

/// The BERT's sizes (no pooler) and tokenizer from the `--bert` folder; a folder whose
/// vocabulary, width or depth differs from the checkpoint's BERT is refused.
fn bert_folder(
    inputs: &ImportInputs,
    dict: &StateDict,
    max_text_len: usize,
) -> Result<
    (
        itm_core::encoders::BertConfig,
        SubwordTokenizer,
        std::path::PathBuf,
    ),
    ImportError,
> {
    let folder = inputs.bert.as_ref().ok_or_else(|| {
        ImportError::invalid(
            &inputs.checkpoint,
            "hat needs the Hugging Face folder its BERT was built from (HAT's \
             config['tokenizer'], e.g. bert-base-uncased: config.json, tokenizer.json): give it \
             with --bert DIR",
        )
    })?;
    let config_path = folder.join("config.json");
    let json =
        std::fs::read_to_string(&config_path).map_err(|e| ImportError::io(&config_path, e))?;
    let bert = bert_config_from_json(&json)
        .map_err(|e| ImportError::invalid(&config_path, e.to_string()))?
        .with_add_pooling_layer(false);
    let table = dict.shape("text_transformer.embeddings.word_embeddings.weight");
    let depth = (0..)
        .take_while(|layer| dict.has_prefix(&format!("text_transformer.encoder.layer.{layer}.")))
        .count();
    if table.as_deref() != Some(&[bert.vocab_size, bert.hidden_size][..])
        || depth != bert.num_hidden_layers
    {
        return Err(ImportError::invalid(
            &config_path,
            format!(
                "describes a BERT of {} layers with {} tokens × {} wide, but the checkpoint's \
                 has {depth} layers and word embeddings {table:?}: not the BERT HAT was built \
                 from",
                bert.num_hidden_layers, bert.vocab_size, bert.hidden_size
            ),
        ));
    }
    let max_len = max_text_len.min(bert.max_position_embeddings);
    let tokenizer = SubwordTokenizer::from_file(&folder.join("tokenizer.json"), max_len)?;
    Ok((bert, tokenizer, folder.clone()))
}
