//! Subword tokenisation (BERT family, CLIP) through Hugging Face's `tokenizers` crate, and a
//! CLIP-layout word-level `tokenizer.json` built from training captions.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{
    NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer,
    Tokenizer, TruncationParams,
};

use crate::atomic;
use crate::error::DataError;

/// CLIP's start-of-text token.
pub const CLIP_START: &str = "<|startoftext|>";
/// CLIP's end-of-text token (its features represent a text).
pub const CLIP_END: &str = "<|endoftext|>";
/// The unknown-word token of [`SubwordTokenizer::clip_words`].
const CLIP_WORDS_UNK: &str = "<unk>";

/// CLIP's pre-tokenisation: its special tokens, English clitics, runs of letters, single
/// digits and runs of other non-space characters (the pattern of OpenAI's tokenizer).
const CLIP_SPLIT: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// CLIP's normaliser (NFC, runs of white space → one space, lower case) and pre-tokeniser
/// ([`CLIP_SPLIT`]), as `tokenizer.json` values.
fn clip_pipeline() -> (Value, Value) {
    (
        json!({"type": "Sequence", "normalizers": [
            {"type": "NFC"},
            {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
            {"type": "Lowercase"},
        ]}),
        json!({"type": "Split", "pattern": {"Regex": CLIP_SPLIT}, "behavior": "Removed",
               "invert": true}),
    )
}

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

    /// A tokenizer for a CLIP text tower trained from scratch, where no pretrained vocabulary
    /// exists: CLIP's normaliser and pre-tokeniser with a word-level vocabulary instead of
    /// CLIP's byte-level BPE. The vocabulary holds every piece of `captions` (in order of first
    /// appearance), then `<unk>`, [`CLIP_START`] and [`CLIP_END`] (the end-of-text token has
    /// the largest id, as in CLIP); each caption becomes `<|startoftext|> words
    /// <|endoftext|>`, truncated to `max_len` with the end-of-text token kept. Written to `path`
    /// (atomically) and loaded from there, so that a checkpoint can copy it.
    pub fn clip_words(captions: &[String], path: &Path, max_len: usize) -> Result<Self, DataError> {
        let (normalizer_json, pre_tokenizer_json) = clip_pipeline();
        let normalizer: NormalizerWrapper =
            serde_json::from_value(normalizer_json.clone()).expect("a valid normaliser");
        let pre_tokenizer: PreTokenizerWrapper =
            serde_json::from_value(pre_tokenizer_json.clone()).expect("a valid pre-tokeniser");
        let mut words: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = [CLIP_START, CLIP_END, CLIP_WORDS_UNK]
            .map(String::from)
            .into();
        for caption in captions {
            let mut normalized = NormalizedString::from(caption.as_str());
            let pieces = normalizer
                .normalize(&mut normalized)
                .map(|()| PreTokenizedString::from(normalized))
                .and_then(|mut pieces| pre_tokenizer.pre_tokenize(&mut pieces).map(|()| pieces))
                .map_err(|e| {
                    DataError::invalid(path, format!("cannot split the caption {caption:?}: {e}"))
                })?;
            for (word, _, _) in pieces.get_splits(OffsetReferential::Normalized, OffsetType::Byte) {
                if seen.insert(word.to_string()) {
                    words.push(word.to_string());
                }
            }
        }
        let (unk, start, end) = (words.len(), words.len() + 1, words.len() + 2);
        let mut vocab: serde_json::Map<String, Value> = words
            .into_iter()
            .enumerate()
            .map(|(id, word)| (word, json!(id)))
            .collect();
        for (token, id) in [(CLIP_WORDS_UNK, unk), (CLIP_START, start), (CLIP_END, end)] {
            vocab.insert(token.to_string(), json!(id));
        }
        let special = |id: usize, content: &str| {
            json!({"id": id, "content": content, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        };
        let file = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": [special(start, CLIP_START), special(end, CLIP_END)],
            "normalizer": normalizer_json,
            "pre_tokenizer": pre_tokenizer_json,
            "post_processor": {"type": "RobertaProcessing", "sep": [CLIP_END, end],
                               "cls": [CLIP_START, start], "trim_offsets": false,
                               "add_prefix_space": false},
            "decoder": null,
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": CLIP_WORDS_UNK},
        });
        atomic::write(
            path,
            &serde_json::to_vec(&file).expect("a tokenizer.json serialises"),
        )?;
        Self::from_file(path, max_len)
    }

    /// Id of `token` (e.g. [`CLIP_END`]), if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<i64> {
        self.inner.token_to_id(token).map(i64::from)
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

    /// CLIP's layout over a word vocabulary: words in order of first appearance (after CLIP's
    /// lower-casing and split), then `<unk>`, start and end; end kept when truncating.
    #[test]
    fn clip_words_builds_a_clip_layout_vocabulary() {
        let dir = std::env::temp_dir().join(format!("itm-clip-words-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokenizer.json");
        let captions = ["A red  circle.", "The red square's corner, 3 stars"].map(String::from);
        let tokenizer = SubwordTokenizer::clip_words(&captions, &path, 6).unwrap();
        // a red circle . the square 's corner , 3 stars | <unk> start end
        let (unk, start, end) = (11, 12, 13);
        assert_eq!(tokenizer.vocab_size(), 14);
        assert_eq!(tokenizer.token_id(CLIP_END), Some(end));
        assert_eq!(tokenizer.token_id(CLIP_START), Some(start));
        let batch = tokenizer
            .encode_batch(&["a RED circle", "a purple circle, square 's corner"])
            .unwrap();
        assert_eq!(batch.lengths, vec![5, 6]);
        assert_eq!(&batch.ids[..5], &[start, 0, 1, 2, end]);
        assert_eq!(&batch.ids[6..], &[start, 0, unk, 2, 8, end]);
        assert_eq!(batch.truncated, 1);
        // The file is what loads: a checkpoint copies it.
        let again = SubwordTokenizer::from_file(&path, 6).unwrap();
        assert_eq!(
            again.encode_batch(&["a red circle"]).unwrap().ids,
            batch.ids[..5]
        );
        std::fs::remove_dir_all(&dir).unwrap();
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
