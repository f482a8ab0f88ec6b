//! Errors of the serving crate: each names the file (or folder) and what failed.

use std::path::PathBuf;

use itm_data::DataError;
use itm_train::TrainError;

/// Building, opening or searching an index, or drawing a contact sheet, failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Reading or writing a file of the index or of the sheet failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file of the index is not what the format or the manifest says it is (missing record,
    /// other length or checksum, other shape, corrupt graph, unreadable items).
    #[error("{path}: {message}")]
    Corrupt {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A request was refused before anything was written or searched (an output that is not an
    /// index, a model that cannot be indexed, a caption or image that the index lacks).
    #[error("{path}: {message}")]
    Refused {
        /// The file or folder the request is about.
        path: PathBuf,
        /// Why it was refused.
        message: String,
    },
    /// A file could not be encoded before writing it (a PNG, a graph).
    #[error("{path}: {message}")]
    Encode {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// An HNSW graph cannot be built over these rows with these parameters.
    #[error("cannot build the HNSW graph: {0}")]
    Graph(String),
    /// Reading the data the rows come from (a split, an image, an embedding file).
    #[error(transparent)]
    Data(#[from] DataError),
    /// Loading, saving or running the checkpoint that encodes the rows and the queries.
    #[error(transparent)]
    Checkpoint(#[from] TrainError),
}

impl ServeError {
    /// A [`ServeError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A [`ServeError::Corrupt`] for `path`.
    pub fn corrupt(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Corrupt {
            path: path.into(),
            message: message.into(),
        }
    }

    /// A [`ServeError::Encode`] for `path`.
    pub fn encode(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Encode {
            path: path.into(),
            message: message.into(),
        }
    }

    /// A [`ServeError::Refused`] for `path`.
    pub fn refused(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Refused {
            path: path.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each variant names its file first, as the index's errors did when they were data errors.
    #[test]
    fn messages_name_the_file() {
        let path = PathBuf::from("INDEX/manifest.json");
        for (error, text) in [
            (
                ServeError::corrupt(&path, "records no images.npy"),
                "INDEX/manifest.json: records no images.npy",
            ),
            (
                ServeError::refused(&path, "not an index"),
                "INDEX/manifest.json: not an index",
            ),
            (
                ServeError::encode(&path, "cannot encode the PNG: x"),
                "INDEX/manifest.json: cannot encode the PNG: x",
            ),
        ] {
            assert_eq!(error.to_string(), text);
        }
        let data: ServeError = DataError::invalid(&path, "bad").into();
        assert_eq!(data.to_string(), "INDEX/manifest.json: bad");
    }
}
