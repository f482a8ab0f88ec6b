//! ESL (Zhang et al., TCSVT 2023; CrossmodalGroup/ESL): its BERT checkpoints, adaptive
//! (`lib/vse.py` as published) and heuristic (`heuristic_strategy = True`).
//!
//! What the authors' code saves (read in its `lib/vse.py`, `lib/encoders.py`, `train.py`):
//! `model = [img_enc, txt_enc, sim_vec]`, every key prefixed `module.` (removed on reading).
//! The strategy is not recorded in `opt`: the keys tell (`masks_k` or `kernel_*_k` level
//! encoders).
//! - `img_enc`, `txt_enc`: as X-Dim's (the `fc_mlp` region tower without GPO; BERT then a
//!   Linear per token), l2norm per region and token.
//! - `sim_vec.plus_encoder.encoders_1`: the level encoders of the regions (`image_levels`) and
//!   of the words (`text_levels`), each its own: adaptive `masks_1..8` (`[d_k, d_{k−1}]`,
//!   looked up whole) or heuristic `kernel_img_1..8` / `kernel_txt_1..8` (`Conv1d [4, 1, 2]`).
//! - `sim_vec.sims.calculator_1`: `masks_0..8` (the bilinear forms `E_j`), `lynorm_0..8` (their
//!   LayerNorms over the whole matrix), `sim_eval.weight [1, 9]` (the level weights `c`),
//!   `temp_scale` (the log attention temperature), `temp_scale_1` (the heuristic threshold
//!   position `σ`) and `temp_scale_2` (the heuristic log sharpness); the adaptive strategy
//!   saves the last two but never uses them.
//!
//! That is [`Esl`](itm_core::similarity::Esl) with nine levels, aggregators per modality and a
//! learned sharpness. The authors look `masks_0` up with `torch.linspace(0, D, steps=D,
//! dtype=int)`, whose last index `D` is out of range on current PyTorch; the whole table in
//! order is what the code evidently means and what `itm` reads.

use burn::tensor::Device;
use itm_core::VseModelConfig;
use itm_core::encoders::{
    BertTextEncoderConfig, ImageEncoderConfig, RegionEncoderConfig, TextEncoderConfig,
};
use itm_core::pooling::PoolingConfig;
use itm_core::similarity::{EslAggregator, EslConfig, SimilarityConfig};

use super::checkpoint::{AuthorsCheckpoint, StateDict};
use super::error::ImportError;
use super::vse_infinity::{IMAGE_REMAP, bert_text_remap, read_bert_folder};
use super::{ImportInputs, Imported, borrowed, check_region_options, load_state_dicts};

/// ESL's hard-coded level count (the input width and eight halvings).
const LEVELS: usize = 9;

/// `sim_vec` keys → the head's parameters (the level encoders' `k` already renumbered `k − 1`
/// by [`head_state_dict`]).
const HEAD_REMAP: &[(&str, &str)] = &[
    (
        r"^plus_encoder\.encoders_1\.image_levels\.masks_([0-7])\.weight$",
        "similarity.aggregators.$1",
    ),
    (
        r"^plus_encoder\.encoders_1\.text_levels\.masks_([0-7])\.weight$",
        "similarity.word_aggregators.$1",
    ),
    (
        r"^plus_encoder\.encoders_1\.image_levels\.kernel_img_([0-7])\.weight$",
        "similarity.kernels.$1",
    ),
    (
        r"^plus_encoder\.encoders_1\.text_levels\.kernel_txt_([0-7])\.weight$",
        "similarity.word_kernels.$1",
    ),
    (
        r"^sims\.calculator_1\.masks_([0-8])\.weight$",
        "similarity.bilinear.$1",
    ),
    (
        r"^sims\.calculator_1\.lynorm_([0-8])\.weight$",
        "similarity.norm_gains.$1",
    ),
    (
        r"^sims\.calculator_1\.lynorm_([0-8])\.bias$",
        "similarity.norm_biases.$1",
    ),
    (
        r"^sims\.calculator_1\.sim_eval\.weight$",
        "similarity.level_weights",
    ),
    (
        r"^sims\.calculator_1\.temp_scale\.weight$",
        "similarity.log_temperature",
    ),
    (
        r"^sims\.calculator_1\.temp_scale_1\.weight$",
        "similarity.threshold_position",
    ),
    (
        r"^sims\.calculator_1\.temp_scale_2\.weight$",
        "similarity.log_sharpness",
    ),
];

/// Saved but unused by ESL's forward (the adaptive strategy's sharpening scalars among them).
const IGNORED: &[&str] = &[
    r"^image\.mlp_norm\.num_batches_tracked$",
    r"^mlp\.bns\.1\.",
    r"^text\.bert\.pooler\.",
    r"^text\.bert\.embeddings\.position_ids$",
];

/// The strategy of an ESL checkpoint, from its level encoders' keys.
fn strategy(checkpoint: &AuthorsCheckpoint) -> Option<EslAggregator> {
    let [image, text, head] = checkpoint.state_dicts.as_slice() else {
        return None;
    };
    let esl = image.shape("fc.weight").is_some()
        && text
            .shape("bert.embeddings.word_embeddings.weight")
            .is_some()
        && head.shape("sims.calculator_1.sim_eval.weight").is_some();
    let levels = "plus_encoder.encoders_1.image_levels.";
    match () {
        _ if !esl => None,
        _ if head.has_prefix(&format!("{levels}masks_")) => Some(EslAggregator::Adaptive),
        _ if head.has_prefix(&format!("{levels}kernel_img_")) => Some(EslAggregator::Heuristic),
        _ => None,
    }
}

/// Whether the checkpoint is ESL with the adaptive strategy.
pub(super) fn recognise_adaptive(checkpoint: &AuthorsCheckpoint) -> bool {
    strategy(checkpoint) == Some(EslAggregator::Adaptive)
}

/// Whether the checkpoint is ESL with the heuristic strategy.
pub(super) fn recognise_heuristic(checkpoint: &AuthorsCheckpoint) -> bool {
    strategy(checkpoint) == Some(EslAggregator::Heuristic)
}

/// ESL-A.
pub(super) fn import_adaptive(
    checkpoint: &AuthorsCheckpoint,
    inputs: &ImportInputs,
    device: &Device,
) -> Result<Imported, ImportError> {
    import(checkpoint, inputs, device, EslAggregator::Adaptive)
}

/// ESL-H.
pub(super) fn import_heuristic(
    checkpoint: &AuthorsCheckpoint,
    inputs: &ImportInputs,
    device: &Device,
) -> Result<Imported, ImportError> {
    import(checkpoint, inputs, device, EslAggregator::Heuristic)
}

/// The ESL model of the checkpoint with the level encoders of `aggregator`: BERT's sizes and
/// tokenizer from `--bert`, the rest from the checkpoint.
fn import(
    checkpoint: &AuthorsCheckpoint,
    inputs: &ImportInputs,
    device: &Device,
    aggregator: EslAggregator,
) -> Result<Imported, ImportError> {
    let invalid = |message: String| ImportError::invalid(&checkpoint.path, message);
    let (system, name) = match aggregator {
        EslAggregator::Adaptive => ("esl_a", "adaptive"),
        EslAggregator::Heuristic => ("esl_h", "heuristic"),
    };
    if strategy(checkpoint) != Some(aggregator) {
        return Err(invalid(format!(
            "not an ESL checkpoint of the {name} strategy: sim_vec has no {} level encoders",
            match aggregator {
                EslAggregator::Adaptive => "masks_k",
                EslAggregator::Heuristic => "kernel_img_k",
            }
        )));
    }
    check_region_options(checkpoint, "fc + MLP over precomputed regions")?;
    let kernel = checkpoint.opt_usize("kernel_size")?;
    let d_embed = checkpoint.opt_usize("embed_size")?;
    if kernel != 2 || !d_embed.is_multiple_of(1 << (LEVELS - 1)) {
        return Err(invalid(format!(
            "opt.kernel_size {kernel} and opt.embed_size {d_embed}: itm's ESL halves the width \
             at each of its {LEVELS} levels (kernel 2, a width divisible by {})",
            1 << (LEVELS - 1)
        )));
    }
    let image = checkpoint.state_dict(0, "image encoder (img_enc)")?;
    let text = checkpoint.state_dict(1, "text encoder (txt_enc)")?;
    let d_feature = checkpoint.opt_usize("img_dim")?;
    let head = head_state_dict(checkpoint)?;
    let (bert, tokenizer, folder) = read_bert_folder(inputs, text, system)?;

    let esl = EslConfig::new(d_embed)
        .with_levels(LEVELS)
        .with_aggregator(aggregator)
        .with_per_modality_levels(true)
        .with_learned_sharpness(true);
    let config = VseModelConfig::new(
        ImageEncoderConfig::Regions(RegionEncoderConfig::new(d_feature, d_embed)),
        TextEncoderConfig::Bert(BertTextEncoderConfig::new(bert, d_embed)),
        PoolingConfig::Mean,
        PoolingConfig::Mean,
    )
    .with_similarity(SimilarityConfig::Esl(esl));
    let rules = bert_text_remap();
    let text_remap = borrowed(&rules);
    let mut ignored = IGNORED.to_vec();
    if aggregator == EslAggregator::Adaptive {
        ignored.extend([
            r"^similarity\.threshold_position$",
            r"^similarity\.log_sharpness$",
        ]);
    }
    let model = load_state_dicts(
        checkpoint,
        config.init(device),
        &[
            (image, IMAGE_REMAP),
            (text, &text_remap),
            (&head, HEAD_REMAP),
        ],
        &[],
        &ignored,
    )?;
    Ok(Imported {
        system,
        model,
        config,
        tokenizer: tokenizer.into(),
        notes: vec![
            format!(
                "BERT sizes and tokenizer from {}; its weights from the checkpoint",
                folder.display()
            ),
            format!(
                "{name} strategy (from the level encoders' keys; opt does not record it), \
                 {LEVELS} levels, aggregators per modality"
            ),
            "sims.calculator_1.masks_0 is read whole (the authors index it with torch.linspace, \
             whose last index is out of range on current PyTorch)"
                .into(),
            "mlp.bns.1, bert.pooler and position_ids (saved, unused by the forward) are not \
             imported"
                .into(),
        ],
    })
}

/// `sim_vec` with the level weights and the scalars, which PyTorch keeps in `Linear` weights,
/// in the head's shapes; level `k` of the encoders renumbered `k − 1` (the head counts its
/// aggregators from the first halving).
fn head_state_dict(checkpoint: &AuthorsCheckpoint) -> Result<StateDict, ImportError> {
    let mut head = checkpoint.state_dict(2, "similarity (sim_vec)")?.clone();
    for (key, shape) in [
        ("sims.calculator_1.sim_eval.weight", vec![LEVELS]),
        ("sims.calculator_1.temp_scale.weight", vec![1]),
        ("sims.calculator_1.temp_scale_1.weight", vec![1]),
        ("sims.calculator_1.temp_scale_2.weight", vec![1]),
    ] {
        head.reshape(key, &shape).map_err(|message| {
            ImportError::invalid(&checkpoint.path, format!("sim_vec {message}"))
        })?;
    }
    for tensor in &mut head.tensors {
        for prefix in [
            "image_levels.masks_",
            "text_levels.masks_",
            "kernel_img_",
            "kernel_txt_",
        ] {
            let Some(at) = tensor.name.find(prefix) else {
                continue;
            };
            let start = at + prefix.len();
            let digits: String = tensor.name[start..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(level) = digits.parse::<usize>()
                && level >= 1
            {
                tensor
                    .name
                    .replace_range(start..start + digits.len(), &(level - 1).to_string());
            }
        }
    }
    Ok(head)
}
