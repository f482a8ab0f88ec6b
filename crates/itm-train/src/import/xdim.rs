//! X-Dim (Zhang et al., ACM MM 2023; CrossmodalGroup/X-Dim): its BERT checkpoints.
//!
//! What the authors' code saves (read in its `lib/vse.py`, `lib/encoders.py`, `train.py`):
//! `model = [img_enc, txt_enc, sim_vec]`, every key prefixed `module.` (removed on reading).
//! - `img_enc`: VSE∞'s `fc` plus MLP (the second BatchNorm saved, never applied), l2norm per
//!   region, no pooling: the `fc_mlp` region tower.
//! - `txt_enc`: BERT, then `linear` (`768 → D`) per token, l2norm per token.
//! - `sim_vec` (`Sim_vec`): `weights` (an `Embedding(D, D)` read whole: the dependency logits
//!   `E`), `sim_map.weight [1, D]` (the per-row threshold scales `s`), `temp_learnable.weight`
//!   (the log mask sharpness `τ`), `temp_scale.weight` (the log attention temperature) and
//!   `sim_eval.weight`, which the forward never uses: [`XDim`](itm_core::similarity::XDim).
//!
//! The authors' code looks `E` up with `torch.linspace(0, D, steps=D, dtype=int)`, whose last
//! index is `D` (out of range) on current PyTorch; what it evidently means is the whole table
//! in order, which `itm` uses (docs/import.md). Scores are float32 on both sides.

use burn::tensor::Device;
use itm_core::VseModelConfig;
use itm_core::encoders::{
    BertTextEncoderConfig, ImageEncoderConfig, RegionEncoderConfig, TextEncoderConfig,
};
use itm_core::pooling::PoolingConfig;
use itm_core::similarity::{SimilarityConfig, XDimConfig};

use super::checkpoint::{AuthorsCheckpoint, StateDict};
use super::error::ImportError;
use super::vse_infinity::{IMAGE_REMAP, bert_text_remap, read_bert_folder};
use super::{ImportInputs, Imported, borrowed, check_region_options, load_state_dicts};

/// `sim_vec` keys → the head's parameters.
const HEAD_REMAP: &[(&str, &str)] = &[
    (r"^weights\.weight$", "similarity.dependency"),
    (r"^sim_map\.weight$", "similarity.threshold_scale"),
    (r"^temp_learnable\.weight$", "similarity.log_sharpness"),
    (r"^temp_scale\.weight$", "similarity.log_temperature"),
    (r"^sim_eval\.", "similarity.unused_sim_eval."),
];

/// Saved but unused by X-Dim's forward.
const IGNORED: &[&str] = &[
    r"^image\.mlp_norm\.num_batches_tracked$",
    r"^mlp\.bns\.1\.",
    r"^similarity\.unused_sim_eval\.",
    r"^text\.bert\.pooler\.",
    r"^text\.bert\.embeddings\.position_ids$",
];

/// Whether the checkpoint has X-Dim's layout: the image encoder without GPO, BERT and
/// `Sim_vec`'s dependency table.
pub(super) fn recognise(checkpoint: &AuthorsCheckpoint) -> bool {
    let [image, text, head] = checkpoint.state_dicts.as_slice() else {
        return false;
    };
    image.shape("fc.weight").is_some()
        && image.has_prefix("mlp.layers.")
        && !image.has_prefix("gpool.")
        && text
            .shape("bert.embeddings.word_embeddings.weight")
            .is_some()
        && head.shape("weights.weight").is_some()
        && head.shape("sim_map.weight").is_some()
}

/// The X-Dim model of the checkpoint: BERT's sizes and tokenizer from `--bert`, the rest from
/// the checkpoint.
pub(super) fn import(
    checkpoint: &AuthorsCheckpoint,
    inputs: &ImportInputs,
    device: &Device,
) -> Result<Imported, ImportError> {
    check_region_options(checkpoint, "fc + MLP over precomputed regions")?;
    let image = checkpoint.state_dict(0, "image encoder (img_enc)")?;
    let text = checkpoint.state_dict(1, "text encoder (txt_enc)")?;
    let d_feature = checkpoint.opt_usize("img_dim")?;
    let d_embed = checkpoint.opt_usize("embed_size")?;
    let head = head_state_dict(checkpoint, d_embed)?;
    let (bert, tokenizer, folder) = read_bert_folder(inputs, text, "xdim")?;

    let config = VseModelConfig::new(
        ImageEncoderConfig::Regions(RegionEncoderConfig::new(d_feature, d_embed)),
        TextEncoderConfig::Bert(BertTextEncoderConfig::new(bert, d_embed)),
        PoolingConfig::Mean,
        PoolingConfig::Mean,
    )
    .with_similarity(SimilarityConfig::XDim(XDimConfig::new(d_embed)));
    let rules = bert_text_remap();
    let text_remap = borrowed(&rules);
    let model = load_state_dicts(
        checkpoint,
        config.init(device),
        &[
            (image, IMAGE_REMAP),
            (text, &text_remap),
            (&head, HEAD_REMAP),
        ],
        &[],
        IGNORED,
    )?;
    Ok(Imported {
        system: "xdim",
        model,
        config,
        tokenizer: tokenizer.into(),
        notes: vec![
            format!(
                "BERT sizes and tokenizer from {}; its weights from the checkpoint",
                folder.display()
            ),
            "the dependency table is read whole (the authors index it with torch.linspace, \
             whose last index is out of range on current PyTorch)"
                .into(),
            "sim_vec.sim_eval, mlp.bns.1, bert.pooler and position_ids (saved, unused by the \
             forward) are not imported"
                .into(),
        ],
    })
}

/// `sim_vec` with PyTorch's `Linear`-held scalars and vector in the head's shapes.
fn head_state_dict(
    checkpoint: &AuthorsCheckpoint,
    d_embed: usize,
) -> Result<StateDict, ImportError> {
    let mut head = checkpoint.state_dict(2, "similarity (sim_vec)")?.clone();
    for (key, shape) in [
        ("sim_map.weight", vec![d_embed]),
        ("temp_learnable.weight", vec![1]),
        ("temp_scale.weight", vec![1]),
    ] {
        head.reshape(key, &shape).map_err(|message| {
            ImportError::invalid(&checkpoint.path, format!("sim_vec {message}"))
        })?;
    }
    Ok(head)
}
