//! Encoding a split with a trained model and scoring it with the standard protocol.

use burn::tensor::{Device, Tensor};
use itm_core::VseModel;
use itm_core::eval::{Protocol, RetrievalReport, evaluate};
use itm_core::similarity::{BlockedCosine, FeatureSets, ShardedScorer};
use itm_data::{CaptionTokenizer, DataError, RetrievalSplit, TokenBatch};

use crate::checkpoint::TrainError;
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
    let n_images = split.n_images();
    let n_captions = split.captions.len();
    let steps = n_images.div_ceil(batch_size) + n_captions.div_ceil(batch_size);
    let mut progress = Progress::new("encode", steps, quiet);
    let mut images = Vec::new();
    let indices: Vec<usize> = (0..n_images).collect();
    let chunks: Vec<Vec<usize>> = indices.chunks(batch_size).map(<[usize]>::to_vec).collect();
    for batch in split.images.prefetch(chunks, None, 2) {
        images.extend(host(model.encode_images(batch?.to_input(device))));
        progress.step(String::new);
    }
    let mut captions = Vec::new();
    let encoded = tokenizer.encode_all(&split.captions)?;
    for chunk in encoded.chunks(batch_size) {
        let refs: Vec<&[i64]> = chunk.iter().map(Vec::as_slice).collect();
        let batch = TokenBatch::pad(&refs);
        captions.extend(host(
            model.encode_captions(batch.to_tensor(device), &batch.lengths),
        ));
        progress.step(String::new);
    }
    progress.finish();
    let dim = images.len() / n_images.max(1);
    Ok(Embeddings {
        images,
        captions,
        dim,
    })
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
struct HostSets {
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

    fn sets(&self) -> FeatureSets<'_> {
        FeatureSets::new(&self.values, &self.lengths, self.max_len, self.dim)
    }
}

/// The `[n_images, n_captions]` score matrix of `split` under `model`: cosine of the pooled
/// embeddings, or the model's fine-grained similarity of the region and word sets, scored in
/// shards under a 2 GiB budget.
pub fn score_split(
    model: &VseModel,
    split: &RetrievalSplit,
    tokenizer: &CaptionTokenizer,
    device: &Device,
    quiet: bool,
) -> Result<Vec<f32>, DataError> {
    let Some(method) = model.fine_grained() else {
        let embeddings = encode_split(model, split, tokenizer, device, 256, quiet)?;
        return Ok(cosine_scores(&embeddings, device));
    };
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
        let words = model.encode_caption_sets(batch.to_tensor(device), &batch.lengths);
        caption_sets.push((words, batch.lengths));
    }
    let (images, captions) = (HostSets::gather(image_sets), HostSets::gather(caption_sets));
    let scorer = ShardedScorer::new(device.clone());
    let mut progress: Option<Progress> = None;
    Ok(
        scorer.score(method, images.sets(), captions.sets(), |done, total| {
            progress
                .get_or_insert_with(|| Progress::new("score", total, quiet))
                .step(String::new);
            if done == total
                && let Some(bar) = progress.take()
            {
                bar.finish();
            }
        }),
    )
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
