//! Assertions on the Hugging Face loaders' errors (`load_bert`, `load_clip`): the same checks
//! for every loader.

use std::fmt::Display;
use std::path::Path;

use itm_train::PretrainedError;

/// What a [`PretrainedError::Mismatch`] lists, with its message.
#[derive(Debug, Clone)]
pub struct Mismatch {
    /// Parameters of the module that no tensor of the file fills.
    pub missing: Vec<String>,
    /// Tensors of the file that fill no parameter.
    pub unexpected: Vec<String>,
    /// Tensors found with the wrong shape.
    pub mismatched: Vec<String>,
    /// The error's message.
    pub message: String,
}

/// Asserts that loading failed with a mismatch between the weights file and the module, and
/// that the message names `model.safetensors`; returns what it lists.
#[track_caller]
pub fn assert_mismatch<T>(result: Result<T, PretrainedError>) -> Mismatch {
    let Err(error) = result else {
        panic!("the folder loaded: a mismatch was expected")
    };
    let message = error.to_string();
    eprintln!("{message}");
    assert!(message.contains("model.safetensors"), "{message}");
    match error {
        PretrainedError::Mismatch {
            missing,
            unexpected,
            mismatched,
            ..
        } => Mismatch {
            missing,
            unexpected,
            mismatched,
            message,
        },
        other => panic!("not a mismatch: {other}"),
    }
}

/// Asserts that `result` is an error whose message holds every needle; returns the message.
#[track_caller]
pub fn assert_error_names<T, E: Display>(result: Result<T, E>, needles: &[&str]) -> String {
    let Err(error) = result else {
        panic!("loading succeeded: an error naming {needles:?} was expected")
    };
    let message = error.to_string();
    for needle in needles {
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
    message
}

/// Replaces `from` (which must be there) by `to` in the folder's `config.json`.
pub fn edit_config(folder: &Path, from: &str, to: &str) {
    let path = folder.join("config.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(text.contains(from), "{} lacks {from}", path.display());
    std::fs::write(&path, text.replace(from, to)).unwrap();
}
