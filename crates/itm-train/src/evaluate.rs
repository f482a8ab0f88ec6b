//! Encoding a split with a trained model and scoring it with the standard protocol.

use burn::tensor::{Device, Tensor};
use itm_core::encoders::ImageEncoderConfig;
use itm_core::eval::{Protocol, RetrievalReport, evaluate};
use itm_core::similarity::{BlockedCosine, FeatureSets, FineGrainedSimilarity, ShardedScorer};
use itm_core::{VseModel, VseModelConfig};
use itm_data::{CaptionTokenizer, DataError, ImageSource, RetrievalSplit, TokenBatch};

use crate::error::TrainError;
use crate::progress::Progress;

/// Unit embeddings of a split, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// `[n_images, dim]`.
    pub images: Vec<f32>,
    /// `[n_captions, dim]`.
    pub captions: Vec<f32>,
    /// Embedding width `D`.
    pub dim: usize,
}

pub(crate) fn host(tensor: Tensor<2>) -> Vec<f32> {
    tensor
        .into_data()
        .try_into_vec::<f32>()
        .expect("f32 embeddings")
}

/// Encodes every image and caption of `split` in batches of `batch_size` with `model` (use
/// `model.valid()`: no autodiff, no region drop, batch norm in inference mode).
pub fn encode_split(
    model: &VseModel,
    split: &RetrievalSplit,
    tokenizer: &CaptionTokenizer,
    device: &Device,
    batch_size: usize,
    quiet: bool,
) -> Result<Embeddings, DataError> {
    let images = encode_images(model, &split.images, device, batch_size, quiet)?;
    let captions = encode_captions(model, tokenizer, &split.captions, device, batch_size, quiet)?;
    let dim = images.len() / split.n_images().max(1);
    Ok(Embeddings {
        images,
        captions,
        dim,
    })
}

/// Unit embeddings `[n_images, D]` (row-major) of every image of `images`, in batches of
/// `batch_size`.
pub fn encode_images(
    model: &VseModel,
    images: &ImageSource,
    device: &Device,
    batch_size: usize,
    quiet: bool,
) -> Result<Vec<f32>, DataError> {
    let indices: Vec<usize> = (0..images.len()).collect();
    let chunks: Vec<Vec<usize>> = indices.chunks(batch_size).map(<[usize]>::to_vec).collect();
    let mut progress = Progress::new("encode images", chunks.len(), quiet);
    let mut out = Vec::new();
    for batch in images.prefetch(chunks, None, 2) {
        out.extend(host(model.encode_images(batch?.to_input(device))));
        progress.step(String::new);
    }
    progress.finish();
    Ok(out)
}

/// Unit embeddings `[n_captions, D]` (row-major) of `captions`, in batches of `batch_size`.
pub fn encode_captions(
    model: &VseModel,
    tokenizer: &CaptionTokenizer,
    captions: &[String],
    device: &Device,
    batch_size: usize,
    quiet: bool,
) -> Result<Vec<f32>, DataError> {
    let encoded = tokenizer.encode_all(captions)?;
    let mut progress = Progress::new("encode captions", encoded.len().div_ceil(batch_size), quiet);
    let mut out = Vec::new();
    for chunk in encoded.chunks(batch_size) {
        let refs: Vec<&[i64]> = chunk.iter().map(Vec::as_slice).collect();
        let batch = TokenBatch::pad(&refs);
        out.extend(host(
            model.encode_captions(batch.to_tensor(device), &batch.lengths),
        ));
        progress.step(String::new);
    }
    progress.finish();
    Ok(out)
}

/// Whether a model built from `config` can read `images`: region features of its input width
/// for a region encoder, image files for a pixel encoder. The message says what differs.
pub fn check_image_input(config: &VseModelConfig, images: &ImageSource) -> Result<(), String> {
    match (&config.image, images) {
        (ImageEncoderConfig::Regions(encoder), ImageSource::Regions(regions)) => {
            if encoder.d_feature == regions.d_feature() {
                Ok(())
            } else {
                Err(format!(
                    "the model reads {}-wide region features, the data have {}",
                    encoder.d_feature,
                    regions.d_feature()
                ))
            }
        }
        (
            ImageEncoderConfig::Regions(_),
            ImageSource::Files { .. } | ImageSource::Decoded { .. },
        ) => Err("the model reads region features, the data are images".into()),
        (_, ImageSource::Regions(_)) => {
            Err("the model reads pixels, the data are region features".into())
        }
        (_, ImageSource::Files { .. } | ImageSource::Decoded { .. }) => Ok(()),
    }
}

/// The `[n_images, n_captions]` cosine similarity matrix of `embeddings`, computed in blocks.
pub fn cosine_scores(embeddings: &Embeddings, device: &Device) -> Vec<f32> {
    BlockedCosine::new(device.clone()).compute(
        &embeddings.images,
        &embeddings.captions,
        embeddings.dim,
    )
}

/// Set features of a whole split on the host, padded to the longest set: `[n, max_len, D]`.
#[derive(Debug, Clone)]
pub struct HostSets {
    values: Vec<f32>,
    lengths: Vec<usize>,
    max_len: usize,
    dim: usize,
}

impl HostSets {
    /// Gathers per-batch set tensors `[b, len_b, D]` into one buffer padded to `max_len`.
    fn gather(batches: Vec<(Tensor<3>, Vec<usize>)>) -> Self {
        let max_len = batches.iter().map(|(t, _)| t.dims()[1]).max().unwrap_or(1);
        let dim = batches.first().map_or(1, |(t, _)| t.dims()[2]);
        let mut values = Vec::new();
        let mut lengths = Vec::new();
        for (tensor, batch_lengths) in batches {
            let [batch, len, _] = tensor.dims();
            let data = tensor
                .into_data()
                .try_into_vec::<f32>()
                .expect("f32 features");
            for row in 0..batch {
                values.extend_from_slice(&data[row * len * dim..(row + 1) * len * dim]);
                values.resize(values.len() + (max_len - len) * dim, 0.0);
            }
            lengths.extend(batch_lengths);
        }
        Self {
            values,
            lengths,
            max_len,
            dim,
        }
    }

    /// The sets, `[n, max_len, D]` with their lengths.
    pub fn sets(&self) -> FeatureSets<'_> {
        FeatureSets::new(&self.values, &self.lengths, self.max_len, self.dim)
    }
}

/// The unit region sets of every image and the unit word sets of every caption of `split`
/// under `model` (what a fine-grained head scores), in batches of 256.
pub fn encode_sets(
    model: &VseModel,
    split: &RetrievalSplit,
    tokenizer: &CaptionTokenizer,
    device: &Device,
) -> Result<(HostSets, HostSets), DataError> {
    let batch_size = 256;
    let indices: Vec<usize> = (0..split.n_images()).collect();
    let chunks: Vec<Vec<usize>> = indices.chunks(batch_size).map(<[usize]>::to_vec).collect();
    let mut image_sets = Vec::new();
    for batch in split.images.prefetch(chunks, None, 2) {
        image_sets.push(model.encode_image_sets(batch?.to_input(device)));
    }
    let encoded = tokenizer.encode_all(&split.captions)?;
    let mut caption_sets = Vec::new();
    for chunk in encoded.chunks(batch_size) {
        let refs: Vec<&[i64]> = chunk.iter().map(Vec::as_slice).collect();
        let batch = TokenBatch::pad(&refs);
        caption_sets.push(model.encode_caption_sets(batch.to_tensor(device), &batch.lengths));
    }
    Ok((HostSets::gather(image_sets), HostSets::gather(caption_sets)))
}

/// The `[n_images, n_captions]` score matrix of `split` under `model`: the cosine of the
/// pooled embeddings (computed in blocks), the model's fine-grained similarity of the region
/// and word sets (scored in shards under a 2 GiB budget), or, for a multi-grained head, the
/// first plus `w` times the second ([`itm_core::models::SimilarityHead::combine_host`]).
pub fn score_split(
    model: &VseModel,
    split: &RetrievalSplit,
    tokenizer: &CaptionTokenizer,
    device: &Device,
    quiet: bool,
) -> Result<Vec<f32>, DataError> {
    let global = if model.has_global() {
        let embeddings = encode_split(model, split, tokenizer, device, 256, quiet)?;
        Some(cosine_scores(&embeddings, device))
    } else {
        None
    };
    let local = match model.fine_grained() {
        None => None,
        Some(method) => {
            let (images, captions) = encode_sets(model, split, tokenizer, device)?;
            Some(shard(method, &images, &captions, device, "score", quiet))
        }
    };
    Ok(model.similarity.combine_host(global, local))
}

/// `method`'s `[n_images, n_captions]` scores of the encoded sets, in shards under a 2 GiB
/// budget, with a progress bar named `label`.
fn shard(
    method: &dyn FineGrainedSimilarity,
    images: &HostSets,
    captions: &HostSets,
    device: &Device,
    label: &'static str,
    quiet: bool,
) -> Vec<f32> {
    let scorer = ShardedScorer::new(device.clone());
    let mut progress: Option<Progress> = None;
    scorer.score(method, images.sets(), captions.sets(), |done, total| {
        progress
            .get_or_insert_with(|| Progress::new(label, total, quiet))
            .step(String::new);
        if done == total
            && let Some(bar) = progress.take()
        {
            bar.finish();
        }
    })
}

/// The scores of a split under a multi-level model ([`score_split_levels`]).
#[derive(Debug, Clone)]
pub struct SplitLevelScores {
    /// The multi-level similarity `[n_images, n_captions]`: the sum of the levels.
    pub total: Vec<f32>,
    /// Each level's `[n_images, n_captions]` scores, low → high.
    pub levels: Vec<Vec<f32>>,
}

/// The scores of `split` under a model with the multi-level head (HAT, DAIM), in total and
/// for each level alone (the head's `level(ℓ)`), every matrix through the sharded scorer from
/// one encoding of the split; `None` for a model with another head.
pub fn score_split_levels(
    model: &VseModel,
    split: &RetrievalSplit,
    tokenizer: &CaptionTokenizer,
    device: &Device,
    quiet: bool,
) -> Result<Option<SplitLevelScores>, DataError> {
    let Some(head) = model.similarity.multi_level() else {
        return Ok(None);
    };
    let (images, captions) = encode_sets(model, split, tokenizer, device)?;
    let total = shard(head, &images, &captions, device, "score", quiet);
    let levels = (0..head.num_levels())
        .map(|level| {
            shard(
                &head.level(level),
                &images,
                &captions,
                device,
                "score level",
                quiet,
            )
        })
        .collect();
    Ok(Some(SplitLevelScores { total, levels }))
}

/// Encodes, scores and evaluates `split` with `protocol`.
///
/// A NaN or infinite score is refused ([`TrainError::NonFiniteScores`]): ranks count strictly
/// greater scores, so NaN scores would rank every match first and pass for a perfect model.
pub fn evaluate_split(
    model: &VseModel,
    split: &RetrievalSplit,
    tokenizer: &CaptionTokenizer,
    device: &Device,
    protocol: Protocol,
    quiet: bool,
) -> Result<RetrievalReport, TrainError> {
    let scores = score_split(model, split, tokenizer, device, quiet)?;
    if let Some(position) = scores.iter().position(|v| !v.is_finite()) {
        let n_captions = split.captions.len();
        return Err(TrainError::NonFiniteScores {
            image: position / n_captions,
            caption: position % n_captions,
            value: scores[position],
        });
    }
    Ok(evaluate(
        &scores,
        split.n_images(),
        &split.caption_image,
        protocol,
    ))
}
