//! Errors of the train crate: each variant says what failed, naming the file or the setting.

use std::path::{Path, PathBuf};

use itm_data::DataError;

/// Training or checkpointing failed: bad data, a setting the run cannot use, a weights file
/// that cannot be written or read, or a model whose outputs stopped being numbers.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A data or checkpoint file, or the values in it.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A configuration value that the run cannot use (no file is involved: `key` names the
    /// setting, e.g. `training.loss`).
    #[error("{key}: {reason}")]
    Config {
        /// The setting, as written in a run file (`section.key`).
        key: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The weights file.
    #[error("{path}: {message}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The model scored a pair NaN or infinite: its outputs are no longer numbers.
    #[error("the model's score of image {image} and caption {caption} is {value}")]
    NonFiniteScores {
        /// Row of the score.
        image: usize,
        /// Column of the score.
        caption: usize,
        /// The score.
        value: f32,
    },
    /// Training diverged (every step of an epoch had a non-finite loss or gradient, or the
    /// model's validation scores were not finite) and stopped; the checkpoint and metrics of
    /// the earlier epochs were left as they were.
    #[error(
        "epoch {epoch}: training diverged ({reason}) and stopped; the last good checkpoint, if \
         any, is kept: lower the learning rate or check the data"
    )]
    Diverged {
        /// 0-based epoch.
        epoch: usize,
        /// What was not finite.
        reason: String,
    },
    /// Every epoch's dev scores were degenerate (more than half of a direction's queries tied
    /// at their ground truth: a collapsed model), so no epoch was kept as the best and no
    /// checkpoint was written; the metrics of the epochs were.
    #[error(
        "every one of the {epochs} epochs scored the dev split degenerately (most queries tie \
         at their ground truth: the model collapsed), so no checkpoint was kept; see \
         metrics.jsonl, then lower the learning rate or check the data"
    )]
    Degenerate {
        /// Epochs trained.
        epochs: usize,
    },
}

impl TrainError {
    /// A [`TrainError::Config`] for the setting `key`.
    pub fn config(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Loading pretrained weights failed; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum PretrainedError {
    /// The file cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The system error.
        source: std::io::Error,
    },
    /// The file is not what it should be (not SafeTensors, a bad `config.json`, …).
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The tensors of the file do not fit the module.
    #[error("{}", mismatch_message(path, missing, unexpected, mismatched))]
    Mismatch {
        /// The weights file.
        path: PathBuf,
        /// Parameters of the module (named as in the module) that no tensor of the file fills.
        missing: Vec<String>,
        /// Tensors of the file (named as in the file) that fill no parameter.
        unexpected: Vec<String>,
        /// Tensors found with the wrong shape (or an unusable type), one line each: the file's
        /// name, the model's, and both shapes in burn's layout (Linear weights `[in, out]`).
        mismatched: Vec<String>,
    },
}

/// Lines shown per section of a mismatch message (the error itself keeps every name).
const SHOWN: usize = 20;

pub(crate) fn mismatch_message(
    path: &Path,
    missing: &[String],
    unexpected: &[String],
    mismatched: &[String],
) -> String {
    let mut message = format!("{}: the weights do not fit the model", path.display());
    for (title, items) in [
        ("missing from the file (model parameters)", missing),
        ("unexpected in the file", unexpected),
        ("shape mismatches", mismatched),
    ] {
        if !items.is_empty() {
            message.push_str(&format!("\n  {title} ({}):", items.len()));
            for item in items.iter().take(SHOWN) {
                message.push_str(&format!("\n    {item}"));
            }
            if items.len() > SHOWN {
                message.push_str(&format!("\n    … and {} more", items.len() - SHOWN));
            }
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A setting is named as the key it is written under, with no file around it: the text
    /// is the one the run printed when the key travelled as a path.
    #[test]
    fn a_setting_is_named_by_its_key() {
        let error = TrainError::config("training.loss", "needs the cosine head");
        assert_eq!(error.to_string(), "training.loss: needs the cosine head");
        let as_path = DataError::invalid("training.loss", "needs the cosine head");
        assert_eq!(error.to_string(), as_path.to_string());
    }
}
