//! Validation after every epoch: the standard protocol over the images of the dev split's first
//! captions, computed on the whole subset at once (the rsum is a set-level score, not a mean
//! over batches).

use burn::tensor::Device;
use itm_core::VseModel;
use itm_core::eval::{Metrics, Protocol};
use itm_data::{CaptionTokenizer, RetrievalSplit};

use crate::TrainError;
use crate::evaluate_split;

/// The images described by the first `captions` captions, with their captions.
pub(super) fn validation_subset(dev: &RetrievalSplit, captions: usize) -> RetrievalSplit {
    let last = captions.min(dev.captions.len()).max(1) - 1;
    dev.first_images(dev.caption_image[last] + 1)
}

/// The metrics of `model` (on the plain `device`) on `dev` after epoch `epoch`; non-finite
/// scores mean the run diverged.
pub(super) fn validate(
    model: &VseModel,
    dev: &RetrievalSplit,
    tokenizer: &CaptionTokenizer,
    device: &Device,
    epoch: usize,
) -> Result<Metrics, TrainError> {
    let report =
        evaluate_split(model, dev, tokenizer, device, Protocol::Flickr30k, true).map_err(|e| {
            match e {
                TrainError::NonFiniteScores { .. } => TrainError::Diverged {
                    epoch,
                    reason: format!("validation: {e}"),
                },
                other => other,
            }
        })?;
    Ok(report.metrics)
}
