//! HREM (Fu et al., CVPR 2023; CrossmodalGroup/HREM): its BERT checkpoints.
//!
//! What the authors' code saves (read in its `lib/encoders.py`, `lib/vse.py`, `train.py`):
//! `model = [img_enc, txt_enc]` (the instance relation graph is training-only and not saved),
//! no prefix.
//! - `img_enc`: `fc` (`FC_MLP`: VSE∞'s `fc` plus MLP, the second BatchNorm saved and never
//!   applied), then `aggr`, one post-norm `nn.TransformerEncoderLayer` (ReLU, feed-forward `D`
//!   wide, `opt.nhead` heads, key-padding mask), pooled as
//!   `ρ · max2mean(fc(x)) + (1 − ρ) · mean(aggr(fc(x)))` and l2-normalised
//!   (`ρ = opt.residual_weight`): the `fc_mlp` region tower and
//!   [`HremPooling`](itm_core::pooling::HremPooling).
//! - `txt_enc`: BERT, `linear` (`768 → D`) per token, its own `aggr`, the same pooling.
//! - The score is the cosine of the two vectors.

use burn::tensor::Device;
use itm_core::VseModelConfig;
use itm_core::encoders::{
    BertTextEncoderConfig, ImageEncoderConfig, RegionEncoderConfig, TextEncoderConfig,
};
use itm_core::pooling::{HremPoolingConfig, PoolingConfig};

use super::checkpoint::{AuthorsCheckpoint, StateDict};
use super::error::ImportError;
use super::vse_infinity::{bert_text_remap, read_bert_folder};
use super::{ImportInputs, Imported, borrowed, check_normalised, load_state_dicts};

/// `nn.TransformerEncoder` keys of `aggr` (its `in_proj` split first) → the pooling's layer.
fn aggr_remap(pooling: &str) -> Vec<(String, String)> {
    let layer = format!("{pooling}.layer.layers.0.");
    [
        (r"^aggr\.layers\.0\.self_attn\.out_proj\.", "mha.output."),
        (r"^aggr\.layers\.0\.self_attn\.", "mha."),
        (r"^aggr\.layers\.0\.linear1\.", "pwff.linear_inner."),
        (r"^aggr\.layers\.0\.linear2\.", "pwff.linear_outer."),
        (r"^aggr\.layers\.0\.norm1\.", "norm_1."),
        (r"^aggr\.layers\.0\.norm2\.", "norm_2."),
    ]
    .into_iter()
    .map(|(pattern, rest)| (pattern.to_string(), format!("{layer}{rest}")))
    .collect()
}

/// Saved but unused by HREM's forward.
const IGNORED: &[&str] = &[
    r"^image\.mlp_norm\.num_batches_tracked$",
    r"^fc\.mlp\.bns\.1\.",
    r"^text\.bert\.pooler\.",
    r"^text\.bert\.embeddings\.position_ids$",
];

/// Whether the checkpoint has HREM's layout: `FC_MLP` and a transformer aggregation on both
/// sides, BERT on the text side.
pub(super) fn recognise(checkpoint: &AuthorsCheckpoint) -> bool {
    let [image, text] = checkpoint.state_dicts.as_slice() else {
        return false;
    };
    image.shape("fc.fc.weight").is_some()
        && image.has_prefix("aggr.layers.0.")
        && text
            .shape("bert.embeddings.word_embeddings.weight")
            .is_some()
        && text.has_prefix("aggr.layers.0.")
}

/// The HREM model of the checkpoint: BERT's sizes and tokenizer from `--bert`, the rest from
/// the checkpoint and `opt`.
pub(super) fn import(
    checkpoint: &AuthorsCheckpoint,
    inputs: &ImportInputs,
    device: &Device,
) -> Result<Imported, ImportError> {
    let invalid = |message: String| ImportError::invalid(&checkpoint.path, message);
    check_normalised(checkpoint)?;
    let d_feature = checkpoint.opt_usize("img_dim")?;
    let d_embed = checkpoint.opt_usize("embed_size")?;
    let heads = checkpoint.opt_usize("nhead")?;
    let residual = checkpoint.opt_f64("residual_weight")?;
    let dropout = checkpoint.opt_f64("dropout")?;
    if heads == 0 || !d_embed.is_multiple_of(heads) || !(0.0..=1.0).contains(&residual) {
        return Err(invalid(format!(
            "opt.embed_size {d_embed}, opt.nhead {heads}, opt.residual_weight {residual}: the \
             width must be a multiple of the heads and the weight in [0, 1]"
        )));
    }
    let image = split_attention(checkpoint, 0, "image encoder (img_enc)")?;
    let text = split_attention(checkpoint, 1, "text encoder (txt_enc)")?;
    let (bert, tokenizer, folder) = read_bert_folder(inputs, &text, "hrem")?;

    let pooling = PoolingConfig::Hrem(
        HremPoolingConfig::new(d_embed)
            .with_heads(heads)
            .with_residual_weight(residual)
            .with_dropout(dropout),
    );
    let config = VseModelConfig::new(
        ImageEncoderConfig::Regions(RegionEncoderConfig::new(d_feature, d_embed)),
        TextEncoderConfig::Bert(BertTextEncoderConfig::new(bert, d_embed)),
        pooling.clone(),
        pooling,
    );
    let image_rules: Vec<(String, String)> = [
        (r"^fc\.fc\.", "image.fc."),
        (r"^fc\.mlp\.layers\.0\.", "image.mlp_in."),
        (r"^fc\.mlp\.layers\.1\.", "image.mlp_out."),
        (r"^fc\.mlp\.bns\.0\.", "image.mlp_norm."),
    ]
    .into_iter()
    .map(|(p, r)| (p.to_string(), r.to_string()))
    .chain(aggr_remap("image_pooling"))
    .collect();
    let text_rules: Vec<(String, String)> = aggr_remap("text_pooling")
        .into_iter()
        .chain(bert_text_remap())
        .collect();
    let (image_remap, text_remap) = (borrowed(&image_rules), borrowed(&text_rules));
    let model = load_state_dicts(
        checkpoint,
        config.init(device),
        &[(&image, &image_remap), (&text, &text_remap)],
        &[],
        IGNORED,
    )?;
    Ok(Imported {
        system: "hrem",
        model,
        config,
        tokenizer: tokenizer.into(),
        notes: vec![
            format!(
                "BERT sizes and tokenizer from {}; its weights from the checkpoint",
                folder.display()
            ),
            format!(
                "pooling on both sides: {residual} x max-2 mean + {} x mean after one post-norm \
                 transformer layer ({heads} heads)",
                1.0 - residual
            ),
            "the instance relation layer of HREM's training is not saved by the authors' code: \
             fine-tuning an imported model trains without it"
                .into(),
            "fc.mlp.bns.1, bert.pooler and position_ids (saved, unused by the forward) are not \
             imported"
                .into(),
        ],
    })
}

/// State dict `index` with its aggregation layer's packed `in_proj` split into the query, key
/// and value that burn's attention has.
fn split_attention(
    checkpoint: &AuthorsCheckpoint,
    index: usize,
    role: &str,
) -> Result<StateDict, ImportError> {
    let mut dict = checkpoint.state_dict(index, role)?.clone();
    dict.split_attention_projection("aggr.layers.0.self_attn.")
        .map_err(|message| ImportError::invalid(&checkpoint.path, message))?;
    Ok(dict)
}
