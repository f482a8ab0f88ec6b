//! SCAN (Lee et al., ECCV 2018; kuanghuei/SCAN): `model_best.pth.tar`, t2i or i2t, with the
//! Mean or LogSumExp aggregation.
//!
//! What the authors' code saves (read in its `model.py`, `train.py`): `model = [img_enc,
//! txt_enc]`, no prefix, `epoch` 0-based.
//! - `img_enc` (`precomp_enc_type = 'basic'`): `fc` (`img_dim → D`) and l2norm per region, no
//!   MLP, no pooling: a [`RegionEncoder`](itm_core::encoders::RegionEncoder) without its MLP.
//! - `txt_enc`: `embed` (`vocab_size × word_dim`), a one-layer bidirectional GRU (`bi_gru`)
//!   whose halves are averaged, l2norm per word: the zoo's BiGRU text tower.
//! - The score is the cross attention of `opt.cross_attn` with `opt.lambda_softmax`,
//!   aggregated by `opt.agg_func` (`lambda_lse` for LogSumExp); the attention normalises the
//!   LeakyReLU(0.1) scores over the query axis (`raw_feature_norm = clipped_l2norm`), as
//!   [`Scan`](itm_core::similarity::Scan) does.
//!
//! Precision: the authors' evaluation runs the cross attention in float64 (it converts the
//! gathered NumPy arrays with `torch.from_numpy` and never back); `itm` scores in float32.

use burn::tensor::Device;
use itm_core::VseModelConfig;
use itm_core::encoders::{
    GruTextEncoderConfig, ImageEncoderConfig, RegionEncoderConfig, TextEncoderConfig,
};
use itm_core::pooling::PoolingConfig;
use itm_core::similarity::{ScanAggregation, ScanConfig, ScanDirection, SimilarityConfig};
use itm_data::{CaptionTokenizer, Tokenization};

use super::checkpoint::AuthorsCheckpoint;
use super::error::ImportError;
use super::vse_infinity::{GRU_REMAP, check_embedding_rows};
use super::{
    ImportInputs, Imported, check_region_options, check_vocab_size, load_state_dicts, require_vocab,
};

/// `img_enc` keys → model paths.
const IMAGE_REMAP: &[(&str, &str)] = &[(r"^fc\.", "image.fc.")];

/// `txt_enc` keys → model paths (the GRU's own names by [`GRU_REMAP`]).
const TEXT_REMAP: &[(&str, &str)] = &[(r"^embed\.", "text.embedding."), (r"^rnn\.", "text.gru.")];

/// Whether the checkpoint has SCAN's layout: `fc` alone on the image side, `embed` and `rnn`
/// on the text side, and the attention direction in `opt`.
pub(super) fn recognise(checkpoint: &AuthorsCheckpoint) -> bool {
    let [image, text] = checkpoint.state_dicts.as_slice() else {
        return false;
    };
    image.keys() == ["fc.bias", "fc.weight"]
        && text.shape("embed.weight").is_some()
        && text.has_prefix("rnn.")
        && checkpoint.opt_value("cross_attn").is_some()
}

/// The SCAN model of the checkpoint, with its vocabulary (`--vocab`, as saved: SCAN appends
/// nothing to it).
pub(super) fn import(
    checkpoint: &AuthorsCheckpoint,
    inputs: &ImportInputs,
    device: &Device,
) -> Result<Imported, ImportError> {
    let invalid = |message: String| ImportError::invalid(&checkpoint.path, message);
    check_region_options(checkpoint, "one Linear per region")?;
    let norm = checkpoint.opt_str("raw_feature_norm")?;
    if norm != "clipped_l2norm" {
        return Err(invalid(format!(
            "opt.raw_feature_norm is {norm:?}; only 'clipped_l2norm' (the published setting) \
             is imported"
        )));
    }
    if !checkpoint.opt_bool_or("bi_gru", false)? || checkpoint.opt_usize("num_layers")? != 1 {
        return Err(invalid(
            "only a one-layer bidirectional GRU (--bi_gru, --num_layers 1) is imported".into(),
        ));
    }
    let direction = match checkpoint.opt_str("cross_attn")? {
        "t2i" => ScanDirection::TextToImage,
        "i2t" => ScanDirection::ImageToText,
        other => {
            return Err(invalid(format!(
                "opt.cross_attn is {other:?}, not t2i or i2t"
            )));
        }
    };
    let aggregation = match checkpoint.opt_str("agg_func")? {
        "Mean" => ScanAggregation::Average,
        "LogSumExp" => ScanAggregation::LogSumExp,
        other => {
            return Err(invalid(format!(
                "opt.agg_func is {other:?}; Mean and LogSumExp are imported (Max and Sum are \
                 not implemented)"
            )));
        }
    };
    let lambda_softmax = checkpoint.opt_f64("lambda_softmax")?;
    let lambda_lse = checkpoint.opt_f64("lambda_lse")?;

    let image = checkpoint.state_dict(0, "image encoder (img_enc)")?;
    let text = checkpoint.state_dict(1, "text encoder (txt_enc)")?;
    let d_feature = checkpoint.opt_usize("img_dim")?;
    let d_embed = checkpoint.opt_usize("embed_size")?;
    let d_word = checkpoint.opt_usize("word_dim")?;
    let vocab_size = checkpoint.opt_usize("vocab_size")?;
    check_embedding_rows(checkpoint, text, vocab_size)?;

    let config = VseModelConfig::new(
        ImageEncoderConfig::Regions(RegionEncoderConfig::new(d_feature, d_embed).with_mlp(false)),
        TextEncoderConfig::Gru(GruTextEncoderConfig::new(vocab_size, d_embed).with_d_word(d_word)),
        PoolingConfig::Mean,
        PoolingConfig::Mean,
    )
    .with_similarity(SimilarityConfig::Scan(
        ScanConfig::new()
            .with_direction(direction)
            .with_aggregation(aggregation)
            .with_lambda_softmax(Some(lambda_softmax))
            .with_lambda_lse(Some(lambda_lse)),
    ));
    let model = load_state_dicts(
        checkpoint,
        config.init(device),
        &[(image, IMAGE_REMAP), (text, TEXT_REMAP)],
        GRU_REMAP,
        &[],
    )?;

    let vocab = require_vocab(inputs, "scan")?.with_tokenization(Tokenization::Nltk);
    check_vocab_size(
        &vocab,
        inputs,
        vocab_size,
        &format!("{} words", vocab.len()),
    )?;
    Ok(Imported {
        system: match direction {
            ScanDirection::TextToImage => "scan_t2i",
            ScanDirection::ImageToText => "scan_i2t",
        },
        model,
        config,
        tokenizer: CaptionTokenizer::Words(vocab),
        notes: vec![
            format!(
                "cross attention {} (λ softmax {lambda_softmax}), aggregation {} (λ lse \
                 {lambda_lse}, used by LogSumExp only)",
                checkpoint.opt_str("cross_attn")?,
                checkpoint.opt_str("agg_func")?
            ),
            "vocabulary: the --vocab file as saved (SCAN appends no <mask>); captions are \
             tokenised as NLTK's word_tokenize does"
                .into(),
            "the authors score in float64, itm in float32".into(),
        ],
    })
}
