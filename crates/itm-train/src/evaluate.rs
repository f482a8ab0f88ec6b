//! Encoding a split with a trained model and scoring it with the standard protocol.

use burn::tensor::{Device, Tensor};
use itm_core::VseModel;
use itm_core::eval::{Protocol, RetrievalReport, evaluate};
use itm_core::similarity::BlockedCosine;
use itm_data::{CaptionTokenizer, DataError, RetrievalSplit, TokenBatch};

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

fn host(tensor: Tensor<2>) -> Vec<f32> {
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
pub fn score_split(embeddings: &Embeddings, device: &Device) -> Vec<f32> {
    BlockedCosine::new(device.clone()).compute(
        &embeddings.images,
        &embeddings.captions,
        embeddings.dim,
    )
}

/// Encodes, scores and evaluates `split` with `protocol`.
pub fn evaluate_split(
    model: &VseModel,
    split: &RetrievalSplit,
    tokenizer: &CaptionTokenizer,
    device: &Device,
    protocol: Protocol,
    quiet: bool,
) -> Result<RetrievalReport, DataError> {
    let embeddings = encode_split(model, split, tokenizer, device, 256, quiet)?;
    let scores = score_split(&embeddings, device);
    Ok(evaluate(
        &scores,
        split.n_images(),
        &split.caption_image,
        protocol,
    ))
}
