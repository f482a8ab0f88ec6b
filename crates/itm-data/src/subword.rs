//! Subword tokenisation (BERT family) through Hugging Face's `tokenizers` crate.

use std::path::{Path, PathBuf};

use tokenizers::{Tokenizer, TruncationParams};

use crate::error::DataError;

/// A `tokenizer.json` with truncation to a stated maximum and padding to the longest caption of
/// a batch.
pub struct SubwordTokenizer {
    inner: Tokenizer,
    max_len: usize,
    pad_id: u32,
    path: PathBuf,
}

/// Token ids of a batch, padded to its longest caption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubwordBatch {
    /// Row-major ids `[batch, max_len]` (special tokens included, `pad_id` past each length).
    pub ids: Vec<i64>,
    /// Real tokens per caption (the attention mask is `t < lengths[b]`).
    pub lengths: Vec<usize>,
    /// Padded length.
    pub max_len: usize,
    /// How many captions were cut to the maximum length.
    pub truncated: usize,
}

impl SubwordTokenizer {
    /// Loads `path`, truncating every encoding to `max_len` tokens (special tokens included).
    /// The padding id is the tokenizer's own, else that of `[PAD]` or `<pad>`, else 0.
    pub fn from_file(path: &Path, max_len: usize) -> Result<Self, DataError> {
        if max_len < 3 {
            return Err(DataError::invalid(
                path,
                format!("a maximum length of {max_len} leaves no room for text"),
            ));
        }
        let mut inner = Tokenizer::from_file(path)
            .map_err(|e| DataError::invalid(path, format!("not a usable tokenizer.json: {e}")))?;
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..TruncationParams::default()
            }))
            .map_err(|e| DataError::invalid(path, format!("cannot truncate to {max_len}: {e}")))?;
        inner.with_padding(None);
        let pad_id = inner
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| inner.token_to_id("[PAD]"))
            .or_else(|| inner.token_to_id("<pad>"))
            .unwrap_or(0);
        Ok(Self {
            inner,
            max_len,
            pad_id,
            path: path.to_path_buf(),
        })
    }

    /// The `tokenizer.json` this was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Id of the mask token (`[MASK]` or `<mask>`), if the vocabulary has one.
    pub fn mask_id(&self) -> Option<i64> {
        self.inner
            .token_to_id("[MASK]")
            .or_else(|| self.inner.token_to_id("<mask>"))
            .map(i64::from)
    }

    /// Encodes every caption (special tokens included, truncated), without padding.
    pub fn encode_all(&self, captions: &[&str]) -> Result<Vec<Vec<i64>>, DataError> {
        let batch = self.encode_batch(captions)?;
        Ok(batch
            .lengths
            .iter()
            .enumerate()
            .map(|(row, &len)| batch.ids[row * batch.max_len..row * batch.max_len + len].to_vec())
            .collect())
    }

    /// The truncation length.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Vocabulary size (added tokens included).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Encodes a batch with special tokens, truncated and padded to the longest.
    pub fn encode_batch(&self, captions: &[&str]) -> Result<SubwordBatch, DataError> {
        let encodings = self
            .inner
            .encode_batch(captions.to_vec(), true)
            .map_err(|e| DataError::invalid(&self.path, format!("cannot encode a caption: {e}")))?;
        let max_len = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut ids = vec![self.pad_id as i64; captions.len() * max_len];
        for (row, encoding) in encodings.iter().enumerate() {
            for (t, &id) in encoding.get_ids().iter().enumerate() {
                ids[row * max_len + t] = id as i64;
            }
        }
        Ok(SubwordBatch {
            ids,
            lengths: encodings.iter().map(|e| e.len()).collect(),
            max_len,
            truncated: encodings
                .iter()
                .filter(|e| !e.get_overflowing().is_empty())
                .count(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_wordpiece.json")
    }

    #[test]
    fn pads_to_the_longest_and_truncates() {
        let tokenizer = SubwordTokenizer::from_file(&fixture(), 6).unwrap();
        let batch = tokenizer
            .encode_batch(&["A red circle", "Blue circles, a red square blue"])
            .unwrap();
        // [CLS] a red circle [SEP] | [CLS] blue circle ##s , [SEP] (cut at 6)
        assert_eq!(batch.max_len, 6);
        assert_eq!(batch.ids, vec![2, 4, 5, 6, 3, 0, 2, 8, 6, 7, 10, 3]);
        assert_eq!(batch.lengths, vec![5, 6]);
        assert_eq!(batch.truncated, 1);
        let unknown = tokenizer.encode_batch(&["purple"]).unwrap();
        assert_eq!(unknown.ids, vec![2, 1, 3]);
    }

    #[test]
    fn bad_tokenizer_files_are_named() {
        let dir = std::env::temp_dir().join(format!("itm-subword-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokenizer.json");
        std::fs::write(&path, r#"{"model": 3}"#).unwrap();
        let err = SubwordTokenizer::from_file(&path, 16)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("tokenizer.json") && err.contains("not a usable"),
            "{err}"
        );
        let err = SubwordTokenizer::from_file(&dir.join("none.json"), 16)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("none.json"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
