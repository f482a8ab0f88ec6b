//! VSE∞ (Chen et al., CVPR 2021; woodfrog/vse_infty): the BiGRU checkpoints of branch `bigru`
//! and the BERT checkpoints of branch `master` (every key prefixed `module.`, removed on
//! reading; the text side is BERT → `Linear(768 → D)` per token → GPO).
//!
//! What the authors' code saves (read in its `lib/encoders.py`, `lib/vse.py`, `train.py`):
//! `model = [img_enc, txt_enc]`, no `module.` prefix on this branch.
//! - `img_enc` (`precomp_enc_type = 'basic'`): `fc` (`img_dim → D`) plus a two-layer MLP
//!   (`img_dim → D/2`, BatchNorm, ReLU, `D/2 → D`), summed per region, then GPO and l2norm. The
//!   MLP's second BatchNorm (`mlp.bns.1`) is saved but its forward never applies it.
//! - `txt_enc`: `embed` (`vocab_size × word_dim`), a one-layer bidirectional GRU of width `D`
//!   whose two directions are averaged, then GPO and l2norm.
//! - GPO: a BiGRU of width 32 over 32-d positional codes and a bias-free `Linear(32 → 1)`.
//!
//! These are the zoo's `vse_infinity_bigru` towers exactly ([`RegionEncoder`],
//! [`GruTextEncoder`], [`Gpo`]), so the import is a renaming of keys.
//!
//! [`RegionEncoder`]: itm_core::encoders::RegionEncoder
//! [`GruTextEncoder`]: itm_core::encoders::GruTextEncoder
//! [`Gpo`]: itm_core::pooling::Gpo

use std::path::PathBuf;

use burn::tensor::Device;
use itm_core::VseModelConfig;
use itm_core::encoders::BertConfig;
use itm_data::{CaptionTokenizer, SubwordTokenizer, Tokenization, Vocabulary};

use crate::pretrained::{BERT_KEY_REMAP, bert_config_from_json, sentence_max_length};

use super::checkpoint::{AuthorsCheckpoint, StateDict};
use super::error::ImportError;
use super::{
    ImportInputs, Imported, borrowed, check_region_options, check_vocab_size, load_state_dicts,
    require_vocab,
};

/// Key renaming of the image encoder's state dict (`img_enc`) into the model's paths.
pub(super) const IMAGE_REMAP: &[(&str, &str)] = &[
    (r"^fc\.", "image.fc."),
    (r"^mlp\.layers\.0\.", "image.mlp_in."),
    (r"^mlp\.layers\.1\.", "image.mlp_out."),
    (r"^mlp\.bns\.0\.", "image.mlp_norm."),
    (r"^gpool\.", "image_pooling."),
];

/// Key renaming of the BiGRU text encoder's state dict (`txt_enc`).
pub(super) const TEXT_REMAP: &[(&str, &str)] = &[
    (r"^embed\.", "text.embedding."),
    (r"^rnn\.", "text.gru."),
    (r"^gpool\.", "text_pooling."),
];

/// PyTorch's GRU parameters (`weight_ih_l0`, `bias_hh_l0_reverse`, …) → the two
/// [`FusedGru`](itm_core::encoders::FusedGru)s of a masked BiGRU (`forward`/`backward`, each
/// with an `input` and a `hidden` projection); GPO's `linear` → `score`.
pub(super) const GRU_REMAP: &[(&str, &str)] = &[
    (r"gru\.weight_ih_l0_reverse$", "gru.backward.input.weight"),
    (r"gru\.weight_hh_l0_reverse$", "gru.backward.hidden.weight"),
    (r"gru\.bias_ih_l0_reverse$", "gru.backward.input.bias"),
    (r"gru\.bias_hh_l0_reverse$", "gru.backward.hidden.bias"),
    (r"gru\.weight_ih_l0$", "gru.forward.input.weight"),
    (r"gru\.weight_hh_l0$", "gru.forward.hidden.weight"),
    (r"gru\.bias_ih_l0$", "gru.forward.input.bias"),
    (r"gru\.bias_hh_l0$", "gru.forward.hidden.bias"),
    (r"_pooling\.linear\.weight$", "_pooling.score.weight"),
];

/// Saved but unused by the authors' forward: the MLP's second BatchNorm and BatchNorm's
/// update counter.
pub(super) const IGNORED: &[&str] = &[r"^image\.mlp_norm\.num_batches_tracked$", r"^mlp\.bns\.1\."];

/// Whether the checkpoint has VSE∞'s BiGRU layout: `[img_enc, txt_enc]` with `fc`, the MLP and
/// GPO on the image side and `embed`, `rnn` and GPO on the text side.
pub(super) fn recognise_bigru(checkpoint: &AuthorsCheckpoint) -> bool {
    let [image, text] = checkpoint.state_dicts.as_slice() else {
        return false;
    };
    image.shape("fc.weight").is_some()
        && image.has_prefix("mlp.layers.")
        && image.has_prefix("gpool.gru.")
        && text.shape("embed.weight").is_some()
        && text.has_prefix("rnn.")
        && text.has_prefix("gpool.gru.")
}

/// The VSE∞ BiGRU model of the checkpoint, with its vocabulary (`--vocab`, plus the `<mask>`
/// word that the authors' `train.py` and `evalrank` append after loading it).
pub(super) fn import_bigru(
    checkpoint: &AuthorsCheckpoint,
    inputs: &ImportInputs,
    device: &Device,
) -> Result<Imported, ImportError> {
    check_options(checkpoint)?;
    let image = checkpoint.state_dict(0, "image encoder (img_enc)")?;
    let text = checkpoint.state_dict(1, "text encoder (txt_enc)")?;
    let d_feature = checkpoint.opt_usize("img_dim")?;
    let d_embed = checkpoint.opt_usize("embed_size")?;
    let d_word = checkpoint.opt_usize("word_dim")?;
    let vocab_size = checkpoint.opt_usize("vocab_size")?;

    check_embedding_rows(checkpoint, text, vocab_size)?;
    let config = VseModelConfig::vse_infinity_bigru_sized(d_feature, vocab_size, d_embed, d_word);
    let model = load_state_dicts(
        checkpoint,
        config.init(device),
        &[(image, IMAGE_REMAP), (text, TEXT_REMAP)],
        GRU_REMAP,
        IGNORED,
    )?;
    // The authors tokenise with NLTK's `word_tokenize` on the lower-cased caption.
    let vocab = require_vocab(inputs, "vse_infinity_bigru")?.with_tokenization(Tokenization::Nltk);
    let vocab = vocab_with_mask(vocab, inputs, vocab_size)?;
    Ok(Imported {
        system: "vse_infinity_bigru",
        model,
        config,
        tokenizer: CaptionTokenizer::Words(vocab),
        notes: vec![
            "vocabulary: the --vocab file plus <mask>, appended as the authors' code does; \
             captions are tokenised as NLTK's word_tokenize does"
                .into(),
            "mlp.bns.1 (saved, never used by the authors' forward) is not imported".into(),
        ],
    })
}

/// The options that change the architecture and that `itm` does not implement are refused.
fn check_options(checkpoint: &AuthorsCheckpoint) -> Result<(), ImportError> {
    check_region_options(checkpoint, "fc + MLP over precomputed regions")?;
    let layers = checkpoint.opt_usize("num_layers")?;
    if layers != 1 {
        return Err(ImportError::invalid(
            &checkpoint.path,
            format!("opt.num_layers is {layers}; the BiGRU text encoder has one layer"),
        ));
    }
    Ok(())
}

/// `vocab` plus `<mask>` (VSE∞ and CHAN append it after loading the JSON), which must then have
/// `vocab_size` words.
pub(super) fn vocab_with_mask(
    vocab: Vocabulary,
    inputs: &ImportInputs,
    vocab_size: usize,
) -> Result<Vocabulary, ImportError> {
    let words = vocab.len();
    let vocab = vocab.with_word("<mask>");
    let counted = format!("{words} words (+ <mask> = {})", vocab.len());
    check_vocab_size(&vocab, inputs, vocab_size, &counted)?;
    Ok(vocab)
}

/// The word embedding table must have `vocab_size` rows.
pub(super) fn check_embedding_rows(
    checkpoint: &AuthorsCheckpoint,
    text: &StateDict,
    vocab_size: usize,
) -> Result<(), ImportError> {
    match text.shape("embed.weight").as_deref() {
        Some([rows, _]) if *rows == vocab_size => Ok(()),
        Some(shape) => Err(ImportError::invalid(
            &checkpoint.path,
            format!(
                "txt_enc embed.weight is {shape:?} but opt.vocab_size is {vocab_size}: the \
                 checkpoint is inconsistent"
            ),
        )),
        None => Err(ImportError::invalid(
            &checkpoint.path,
            "txt_enc has no embed.weight (the word embedding table)",
        )),
    }
}

/// Whether the checkpoint has VSE∞'s BERT layout (branch `master`): `[img_enc, txt_enc]`, the
/// image side as for the BiGRU, `bert`, `linear` and GPO on the text side.
pub(super) fn recognise_bert(checkpoint: &AuthorsCheckpoint) -> bool {
    let [image, text] = checkpoint.state_dicts.as_slice() else {
        return false;
    };
    image.shape("fc.weight").is_some()
        && image.has_prefix("gpool.gru.")
        && text
            .shape("bert.embeddings.word_embeddings.weight")
            .is_some()
        && text.shape("linear.weight").is_some()
        && text.has_prefix("gpool.gru.")
}

/// Renaming of the BERT text encoder's state dict (`txt_enc`, `module.` removed):
/// `linear` → the projection, `gpool` → the text pooling, `bert.*` → the text tower's
/// `bert` by the Hugging Face rules of [`BERT_KEY_REMAP`] (the same rules as a BERT folder).
pub(super) fn bert_text_remap() -> Vec<(String, String)> {
    let mut rules = vec![
        (r"^linear\.".to_string(), "text.projection.".to_string()),
        (r"^gpool\.".to_string(), "text_pooling.".to_string()),
    ];
    for (pattern, replacement) in BERT_KEY_REMAP.iter().skip(1) {
        let rest = pattern.trim_start_matches('^');
        rules.push((
            format!(r"^bert\.{rest}"),
            format!("text.bert.{replacement}"),
        ));
    }
    rules.push((r"^bert\.".to_string(), "text.bert.".to_string()));
    rules
}

/// Saved but unused by VSE∞'s forward: BERT's pooler and `position_ids` buffer, the image
/// MLP's second BatchNorm and BatchNorm's update counter.
const BERT_IGNORED_KEYS: &[&str] = &[
    r"^image\.mlp_norm\.num_batches_tracked$",
    r"^mlp\.bns\.1\.",
    r"^text\.bert\.pooler\.",
    r"^text\.bert\.embeddings\.position_ids$",
];

/// The VSE∞ BERT model of the checkpoint: the transformer's sizes and tokenizer from the
/// `--bert` folder (its weights come from the checkpoint), the rest from `opt`.
pub(super) fn import_bert(
    checkpoint: &AuthorsCheckpoint,
    inputs: &ImportInputs,
    device: &Device,
) -> Result<Imported, ImportError> {
    check_region_options(checkpoint, "fc + MLP over precomputed regions")?;
    let image = checkpoint.state_dict(0, "image encoder (img_enc)")?;
    let text = checkpoint.state_dict(1, "text encoder (txt_enc)")?;
    let d_feature = checkpoint.opt_usize("img_dim")?;
    let d_embed = checkpoint.opt_usize("embed_size")?;

    let (bert, tokenizer, folder) = read_bert_folder(inputs, text, "vse_infinity_bert")?;

    let config = VseModelConfig::vse_infinity_bert(d_feature, bert, d_embed);
    let rules = bert_text_remap();
    let text_remap = borrowed(&rules);
    let model = load_state_dicts(
        checkpoint,
        config.init(device),
        &[(image, IMAGE_REMAP), (text, &text_remap)],
        GRU_REMAP,
        BERT_IGNORED_KEYS,
    )?;
    Ok(Imported {
        system: "vse_infinity_bert",
        model,
        config,
        tokenizer: tokenizer.into(),
        notes: vec![
            format!(
                "BERT sizes and tokenizer from {}; its weights from the checkpoint",
                folder.display()
            ),
            "bert.pooler and position_ids (saved, unused by the forward) are not imported".into(),
            "mlp.bns.1 (saved, never used by the authors' forward) is not imported".into(),
        ],
    })
}

/// The BERT of a checkpoint's text encoder `text` (`bert.*`): its sizes (no pooler) and
/// tokenizer from the `--bert` folder, which `system` needs; a folder whose vocabulary or
/// width differs from the checkpoint's embeddings is refused. Returns the folder too.
pub(super) fn read_bert_folder(
    inputs: &ImportInputs,
    text: &StateDict,
    system: &str,
) -> Result<(BertConfig, SubwordTokenizer, PathBuf), ImportError> {
    let folder = inputs.bert.as_ref().ok_or_else(|| {
        ImportError::invalid(
            &inputs.checkpoint,
            format!(
                "{system} needs the Hugging Face folder its BERT was built from \
                 (config.json, tokenizer.json): give it with --bert DIR"
            ),
        )
    })?;
    let config_path = folder.join("config.json");
    let json =
        std::fs::read_to_string(&config_path).map_err(|e| ImportError::io(&config_path, e))?;
    let bert = bert_config_from_json(&json)
        .map_err(|e| ImportError::invalid(&config_path, e.to_string()))?
        .with_add_pooling_layer(false);
    let table = text.shape("bert.embeddings.word_embeddings.weight");
    if table.as_deref() != Some(&[bert.vocab_size, bert.hidden_size][..]) {
        return Err(ImportError::invalid(
            &config_path,
            format!(
                "describes a BERT with {} tokens × {} wide, but the checkpoint's word \
                 embeddings are {:?}: not the BERT this model was built from",
                bert.vocab_size, bert.hidden_size, table
            ),
        ));
    }
    let max_len = sentence_max_length(folder, &bert)?;
    let tokenizer = SubwordTokenizer::from_file(&folder.join("tokenizer.json"), max_len)?;
    if tokenizer.vocab_size() != bert.vocab_size {
        return Err(ImportError::invalid(
            &folder.join("tokenizer.json"),
            format!(
                "{} tokens, but the BERT has {}",
                tokenizer.vocab_size(),
                bert.vocab_size
            ),
        ));
    }
    Ok((bert, tokenizer, folder.clone()))
}
