//! Errors of the train crate: each variant says what failed, naming the file or the setting.

use std::path::PathBuf;

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
