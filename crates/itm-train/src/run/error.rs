//! What can go wrong with a run before it trains: a key, the file, data or weights.

use std::path::PathBuf;

use itm_data::DataError;

use crate::error::PretrainedError;
use crate::error::TrainError;

/// A run configuration that cannot be used, or data or weights that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A key of the configuration (`origin`: the file, or "command line").
    #[error("{origin}: {key}: {message}")]
    Key {
        /// Where the value came from.
        origin: String,
        /// The key, with its section (`training.learning_rate`).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The file is not TOML or does not have the expected layout (unknown or mistyped keys).
    #[error("{}: {message}", path.display())]
    File {
        /// The file (or "command line").
        path: PathBuf,
        /// The parser's message (it names the key).
        message: String,
    },
    /// Data or checkpoint files.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Pretrained BERT weights.
    #[error(transparent)]
    Pretrained(#[from] PretrainedError),
}

impl From<DataError> for RunError {
    fn from(error: DataError) -> Self {
        Self::Train(error.into())
    }
}

impl RunError {
    /// A [`RunError::Key`].
    pub(crate) fn key(origin: &str, key: &str, message: impl Into<String>) -> Self {
        Self::Key {
            origin: origin.to_string(),
            key: key.to_string(),
            message: message.into(),
        }
    }
}
