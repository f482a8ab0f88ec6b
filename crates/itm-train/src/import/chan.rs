//! CHAN (Pan et al., CVPR 2023; ppanzx/CHAN): the checkpoints of its BiGRU script (a
//! self-attention block over the regions, LogSumExp over words) and of its BERT script (the
//! regions' `fc` alone, mean over words).
//!
//! What the authors' code saves (read in its `lib/encoders.py`, `lib/coding.py`,
//! `lib/model.py`, `train.py`): `model = [img_enc, txt_enc, sim_enc, criterion]` (the last two
//! hold no weights), no prefix.
//! - `img_enc`: `fc` (`img_dim → D`), then `feedforward`: `x + MHA(LN(x))` with 8 heads and
//!   no key-padding mask for `precomp_enc_type = 'selfattention'` (PyTorch packs the query, key
//!   and value projections into `in_proj_*`), nothing for `'basic'`; l2norm per region, no
//!   pooling: a [`RegionEncoder`](itm_core::encoders::RegionEncoder) without the MLP, with or
//!   without its self-attention block.
//! - `txt_enc`: the BiGRU (`embed`, `rnn`, the halves averaged; its `fc` is saved but never
//!   used), or BERT then `linear` (`768 → D`) per token; l2norm per word.
//! - The score (`VHACoding`): for every word the best cosine over the regions, then
//!   `LSEPooling` (`logsumexp` of those over the words divided by `opt.belta`) or `MeanPooling`:
//!   [`Chan`](itm_core::similarity::Chan). The authors find padded words by value
//!   (`sims == -1`), `itm` by length: the same unless a real word's best cosine is exactly −1.
//!
//! The vocabulary of a BiGRU checkpoint is the `word2idx` pickled in `opt` (the JSON plus
//! `<mask>`, as its `train.py` builds it) when present, else `--vocab` plus `<mask>`.
//! On a GPU the authors' encoders run under fp16 autocast; `itm` (and the fixtures) in float32.

use std::collections::HashMap;

use burn::tensor::Device;
use itm_core::VseModelConfig;
use itm_core::encoders::{
    BertTextEncoderConfig, GruTextEncoderConfig, ImageEncoderConfig, RegionEncoderConfig,
    TextEncoderConfig,
};
use itm_core::pooling::PoolingConfig;
use itm_core::similarity::{ChanAggregation, ChanConfig, SimilarityConfig};
use itm_data::pickle::Value;
use itm_data::{CaptionTokenizer, Tokenization, Vocabulary};

use super::checkpoint::{AuthorsCheckpoint, StateDict};
use super::error::ImportError;
use super::vse_infinity::{
    GRU_REMAP, bert_text_remap, check_embedding_rows, read_bert_folder, vocab_with_mask,
};
use super::{
    ImportInputs, Imported, borrowed, check_normalised, check_vocab_size, load_state_dicts,
    require_vocab,
};

/// Heads of CHAN's region self-attention (`SelfAttention(embed_size)`, `n_head = 8`).
const HEADS: usize = 8;

/// `img_enc` keys → model paths (`in_proj_*` split into query, key and value first).
const IMAGE_REMAP: &[(&str, &str)] = &[
    (r"^fc\.", "image.fc."),
    (r"^feedforward\.ln\.", "image.attention.norm."),
    (
        r"^feedforward\.attn\.out_proj\.",
        "image.attention.attention.output.",
    ),
    (r"^feedforward\.attn\.", "image.attention.attention."),
];

/// BiGRU `txt_enc` keys → model paths; the unused `fc` is set aside to be ignored.
const TEXT_REMAP: &[(&str, &str)] = &[
    (r"^embed\.", "text.embedding."),
    (r"^rnn\.", "text.gru."),
    (r"^fc\.", "text.unused_fc."),
];

/// Saved but unused by CHAN's forward: the BiGRU encoder's `fc`; BERT's pooler and
/// `position_ids` buffer.
const IGNORED: &[&str] = &[
    r"^text\.unused_fc\.",
    r"^text\.bert\.pooler\.",
    r"^text\.bert\.embeddings\.position_ids$",
];

/// Whether the checkpoint has CHAN's layout with the text encoder `bert` or not: four state
/// dicts (image, text, similarity, criterion), `fc` on the image side and `coding_type` in
/// `opt`.
fn recognise(checkpoint: &AuthorsCheckpoint, bert: bool) -> bool {
    let [image, text, _, _] = checkpoint.state_dicts.as_slice() else {
        return false;
    };
    let text_matches = if bert {
        text.shape("bert.embeddings.word_embeddings.weight")
            .is_some()
            && text.shape("linear.weight").is_some()
    } else {
        text.shape("embed.weight").is_some() && text.has_prefix("rnn.")
    };
    image.shape("fc.weight").is_some()
        && text_matches
        && checkpoint.opt_value("coding_type").is_some()
}

/// Whether the checkpoint is CHAN with the BiGRU.
pub(super) fn recognise_bigru(checkpoint: &AuthorsCheckpoint) -> bool {
    recognise(checkpoint, false)
}

/// Whether the checkpoint is CHAN with BERT.
pub(super) fn recognise_bert(checkpoint: &AuthorsCheckpoint) -> bool {
    recognise(checkpoint, true)
}

/// The CHAN BiGRU model of the checkpoint and its vocabulary.
pub(super) fn import_bigru(
    checkpoint: &AuthorsCheckpoint,
    inputs: &ImportInputs,
    device: &Device,
) -> Result<Imported, ImportError> {
    let head = read_head(checkpoint, "bigru")?;
    let layers = checkpoint.opt_usize("num_layers")?;
    if layers != 1 {
        return Err(ImportError::invalid(
            &checkpoint.path,
            format!("opt.num_layers is {layers}; the BiGRU text encoder has one layer"),
        ));
    }
    let text = checkpoint.state_dict(1, "text encoder (txt_enc)")?;
    let d_embed = checkpoint.opt_usize("embed_size")?;
    let d_word = checkpoint.opt_usize("word_dim")?;
    let vocab_size = checkpoint.opt_usize("vocab_size")?;
    check_embedding_rows(checkpoint, text, vocab_size)?;

    let config = VseModelConfig::new(
        ImageEncoderConfig::Regions(head.regions.clone()),
        TextEncoderConfig::Gru(GruTextEncoderConfig::new(vocab_size, d_embed).with_d_word(d_word)),
        PoolingConfig::Mean,
        PoolingConfig::Mean,
    )
    .with_similarity(SimilarityConfig::Chan(head.chan.clone()));
    let image = image_state_dict(checkpoint)?;
    let model = load_state_dicts(
        checkpoint,
        config.init(device),
        &[(&image, IMAGE_REMAP), (text, TEXT_REMAP)],
        GRU_REMAP,
        IGNORED,
    )?;

    let (vocab, source) = match checkpoint.opt_value("word2idx") {
        Some(Value::Dict(items)) => (word2idx_vocabulary(checkpoint, items)?, "opt.word2idx"),
        _ => (
            vocab_with_mask(require_vocab(inputs, "chan_bigru")?, inputs, vocab_size)?,
            "the --vocab file plus <mask>, appended as the authors' code does",
        ),
    };
    let vocab = vocab.with_tokenization(Tokenization::Nltk);
    check_vocab_size(
        &vocab,
        inputs,
        vocab_size,
        &format!("{} words", vocab.len()),
    )?;
    let mut notes = head.notes;
    notes.push(format!(
        "vocabulary: {source}; captions are tokenised as NLTK's word_tokenize does"
    ));
    notes.push("txt_enc fc (saved, never used by the authors' forward) is not imported".into());
    Ok(Imported {
        system: "chan_bigru",
        model,
        config,
        tokenizer: CaptionTokenizer::Words(vocab),
        notes,
    })
}

/// The CHAN BERT model of the checkpoint: the transformer's sizes and tokenizer from the
/// `--bert` folder (its weights come from the checkpoint), the rest from `opt`.
pub(super) fn import_bert(
    checkpoint: &AuthorsCheckpoint,
    inputs: &ImportInputs,
    device: &Device,
) -> Result<Imported, ImportError> {
    let head = read_head(checkpoint, "bert")?;
    let text = checkpoint.state_dict(1, "text encoder (txt_enc)")?;
    let d_embed = checkpoint.opt_usize("embed_size")?;
    let (bert, tokenizer, folder) = read_bert_folder(inputs, text, "chan_bert")?;

    let config = VseModelConfig::new(
        ImageEncoderConfig::Regions(head.regions.clone()),
        TextEncoderConfig::Bert(BertTextEncoderConfig::new(bert, d_embed)),
        PoolingConfig::Mean,
        PoolingConfig::Mean,
    )
    .with_similarity(SimilarityConfig::Chan(head.chan.clone()));
    let rules = bert_text_remap();
    let text_remap = borrowed(&rules);
    let image = image_state_dict(checkpoint)?;
    let model = load_state_dicts(
        checkpoint,
        config.init(device),
        &[(&image, IMAGE_REMAP), (text, &text_remap)],
        &[],
        IGNORED,
    )?;
    let mut notes = head.notes;
    notes.push(format!(
        "BERT sizes and tokenizer from {}; its weights from the checkpoint",
        folder.display()
    ));
    notes.push(
        "bert.pooler and position_ids (saved, unused by the forward) are not imported".into(),
    );
    Ok(Imported {
        system: "chan_bert",
        model,
        config,
        tokenizer: tokenizer.into(),
        notes,
    })
}

/// The image tower and the head that `opt` describes, and what the import notes of them.
struct Head {
    regions: RegionEncoderConfig,
    chan: ChanConfig,
    notes: Vec<String>,
}

/// Reads and checks the options shared by both scripts; `text` is the expected
/// `opt.text_enc_type`.
fn read_head(checkpoint: &AuthorsCheckpoint, text: &str) -> Result<Head, ImportError> {
    let invalid = |message: String| ImportError::invalid(&checkpoint.path, message);
    let coding = checkpoint.opt_str("coding_type")?;
    if coding != "VHACoding" {
        return Err(invalid(format!(
            "opt.coding_type is {coding:?}; only 'VHACoding' (the published hard alignment) \
             is imported"
        )));
    }
    let found = checkpoint.opt_str("text_enc_type")?;
    if found != text {
        return Err(invalid(format!(
            "opt.text_enc_type is {found:?}, but the state dict is that of a {text} text encoder"
        )));
    }
    check_normalised(checkpoint)?;
    let d_feature = checkpoint.opt_usize("img_dim")?;
    let d_embed = checkpoint.opt_usize("embed_size")?;
    let heads = match checkpoint.opt_str("precomp_enc_type")? {
        "basic" => None,
        "selfattention" => Some(HEADS),
        other => {
            return Err(invalid(format!(
                "opt.precomp_enc_type is {other:?}; 'basic' and 'selfattention' are imported"
            )));
        }
    };
    if heads.is_some_and(|h| !d_embed.is_multiple_of(h)) {
        return Err(invalid(format!(
            "opt.embed_size {d_embed} is not a multiple of the {HEADS} attention heads"
        )));
    }
    let belta = checkpoint.opt_f64("belta")?;
    let (aggregation, pooling_note) = match checkpoint.opt_str("pooling_type")? {
        "MeanPooling" => (ChanAggregation::Mean, "mean over words".to_string()),
        "LSEPooling" => (
            ChanAggregation::LogSumExp,
            format!("LogSumExp over words at temperature {belta} (opt.belta)"),
        ),
        other => {
            return Err(invalid(format!(
                "opt.pooling_type is {other:?}; MeanPooling and LSEPooling are imported"
            )));
        }
    };
    if belta <= 0.0 {
        return Err(invalid(format!(
            "opt.belta is {belta}; it must be positive"
        )));
    }
    Ok(Head {
        regions: RegionEncoderConfig::new(d_feature, d_embed)
            .with_mlp(false)
            .with_self_attention(heads),
        chan: ChanConfig::new()
            .with_aggregation(aggregation)
            .with_temperature(belta),
        notes: vec![
            match heads {
                Some(h) => format!(
                    "image encoder: fc, then x + MHA(LN(x)) over the regions ({h} heads, no \
                     padding mask, as the authors call it)"
                ),
                None => "image encoder: fc alone".into(),
            },
            format!("hard alignment of every word to its best region, {pooling_note}"),
            "the authors find padded words by value (a best cosine of exactly -1), itm by \
             length"
                .into(),
        ],
    })
}

/// The image encoder's state dict with PyTorch's packed attention projection split into
/// the query, key and value that burn's attention has.
fn image_state_dict(checkpoint: &AuthorsCheckpoint) -> Result<StateDict, ImportError> {
    let mut image = checkpoint.state_dict(0, "image encoder (img_enc)")?.clone();
    image
        .split_attention_projection("feedforward.attn.")
        .map_err(|message| ImportError::invalid(&checkpoint.path, message))?;
    Ok(image)
}

/// The vocabulary pickled in `opt.word2idx` (word → index, `<mask>` included).
fn word2idx_vocabulary(
    checkpoint: &AuthorsCheckpoint,
    items: &[(Value, Value)],
) -> Result<Vocabulary, ImportError> {
    let invalid = |message: String| ImportError::invalid(&checkpoint.path, message);
    let mut words = HashMap::with_capacity(items.len());
    for (word, index) in items {
        match (word, index) {
            (Value::Str(word), Value::Int(index)) if *index >= 0 => {
                words.insert(word.clone(), *index as usize);
            }
            _ => {
                return Err(invalid(format!(
                    "opt.word2idx maps {} to {}, not a word to an index",
                    word.kind(),
                    index.kind()
                )));
            }
        }
    }
    Vocabulary::from_word_indices(words, Tokenization::Nltk)
        .map_err(|message| invalid(format!("opt.word2idx: {message}")))
}
