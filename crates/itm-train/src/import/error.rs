//! Errors of `itm import`: each names the file and what is wrong with it.

use std::path::{Path, PathBuf};

use itm_data::DataError;

use crate::error::{PretrainedError, TrainError};

/// Why a checkpoint could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file was read but is not what the import needs.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The weights do not fit the system's model (missing, unexpected or misshapen tensors).
    #[error(transparent)]
    Weights(#[from] PretrainedError),
    /// A vocabulary, tokenizer or data file.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Writing the checkpoint folder.
    #[error(transparent)]
    Save(#[from] TrainError),
}

impl ImportError {
    /// An [`ImportError::Io`] for `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// An [`ImportError::Invalid`] for `path`.
    pub fn invalid(path: &Path, message: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}
