//! Word-level tokenisation and the vocabulary of recurrent text encoders.
//!
//! The published models tokenise with NLTK's `word_tokenize` on lower-cased captions. Here a
//! word is a maximal run of letters, digits or apostrophes, and every other non-space character
//! is a token of its own; this agrees with NLTK on plain captions and differs on contractions
//! (NLTK splits "don't" into "do" "n't", we keep "don't").

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::DataError;

/// Padding token (index 0).
pub const PAD: &str = "<pad>";
/// Start-of-caption token (index 1).
pub const START: &str = "<start>";
/// End-of-caption token (index 2).
pub const END: &str = "<end>";
/// Unknown-word token (index 3).
pub const UNK: &str = "<unk>";

/// Lower-cases `caption` and splits it into words and punctuation.
pub fn tokenize(caption: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in caption.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() || c == '\'' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
        if !c.is_whitespace() {
            tokens.push(c.to_string());
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

/// Word ↔ index map with `<pad> <start> <end> <unk>` at indices 0–3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocabulary {
    word_to_index: HashMap<String, usize>,
    index_to_word: Vec<String>,
}

/// The JSON layout used by the published repositories.
#[derive(Serialize, Deserialize)]
struct VocabularyFile {
    word2idx: HashMap<String, usize>,
    idx2word: HashMap<String, String>,
    idx: usize,
}

impl Vocabulary {
    fn with_specials() -> Self {
        let mut vocab = Self {
            word_to_index: HashMap::new(),
            index_to_word: Vec::new(),
        };
        for word in [PAD, START, END, UNK] {
            vocab.add(word);
        }
        vocab
    }

    fn add(&mut self, word: &str) {
        if !self.word_to_index.contains_key(word) {
            self.word_to_index
                .insert(word.to_string(), self.index_to_word.len());
            self.index_to_word.push(word.to_string());
        }
    }

    /// Builds a vocabulary from training captions, keeping words seen at least `min_count`
    /// times, in order of first appearance (so the result does not depend on hashing).
    pub fn build<'a>(captions: impl IntoIterator<Item = &'a str>, min_count: usize) -> Self {
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut order = Vec::new();
        for caption in captions {
            for token in tokenize(caption) {
                let count = counts.entry(token.clone()).or_insert(0);
                if *count == 0 {
                    order.push(token);
                }
                *count += 1;
            }
        }
        let mut vocab = Self::with_specials();
        for word in order {
            if counts[&word] >= min_count {
                vocab.add(&word);
            }
        }
        vocab
    }

    /// This vocabulary with `word` appended at the next index (unchanged if present), as the
    /// VSE∞ and CHAN scripts append `<mask>` after loading their JSON.
    pub fn with_word(mut self, word: &str) -> Self {
        self.add(word);
        self
    }

    /// Number of entries, specials included.
    pub fn len(&self) -> usize {
        self.index_to_word.len()
    }

    /// Whether only the special tokens are present.
    pub fn is_empty(&self) -> bool {
        self.len() <= 4
    }

    /// Index of `word`, or of `<unk>`.
    pub fn index(&self, word: &str) -> usize {
        self.word_to_index
            .get(word)
            .copied()
            .unwrap_or(self.word_to_index[UNK])
    }

    /// The word at `index`.
    pub fn word(&self, index: usize) -> Option<&str> {
        self.index_to_word.get(index).map(String::as_str)
    }

    /// Token ids `<start> w_1 … w_n <end>` of a caption (VSE∞ / SCAN convention).
    pub fn encode(&self, caption: &str) -> Vec<i64> {
        let mut ids = vec![self.index(START) as i64];
        ids.extend(tokenize(caption).iter().map(|w| self.index(w) as i64));
        ids.push(self.index(END) as i64);
        ids
    }

    /// Reads a vocabulary JSON (`word2idx`, `idx2word`, `idx`), checking that the two maps
    /// agree, that indices are 0..n without gaps and that the four special tokens are present.
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let file: VocabularyFile = serde_json::from_str(&text)
            .map_err(|e| DataError::invalid(path, format!("not a vocabulary JSON: {e}")))?;
        let n = file.word2idx.len();
        let mut index_to_word = vec![None; n];
        for (word, &index) in &file.word2idx {
            if index >= n {
                return Err(DataError::invalid(
                    path,
                    format!("word {word:?} has index {index}, but there are {n} words"),
                ));
            }
            if index_to_word[index].replace(word.clone()).is_some() {
                return Err(DataError::invalid(
                    path,
                    format!("index {index} is used twice"),
                ));
            }
        }
        for (index, word) in index_to_word.iter().enumerate() {
            let listed = file.idx2word.get(&index.to_string());
            if listed != word.as_ref() {
                return Err(DataError::invalid(
                    path,
                    format!("idx2word[{index}] disagrees with word2idx"),
                ));
            }
        }
        if file.idx != n {
            return Err(DataError::invalid(
                path,
                format!("idx is {} but there are {n} words", file.idx),
            ));
        }
        let index_to_word: Vec<String> = index_to_word.into_iter().flatten().collect();
        for special in [PAD, START, END, UNK] {
            if !file.word2idx.contains_key(special) {
                return Err(DataError::invalid(
                    path,
                    format!("the special token {special} is missing"),
                ));
            }
        }
        Ok(Self {
            word_to_index: file.word2idx,
            index_to_word,
        })
    }

    /// Writes the vocabulary JSON atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<(), DataError> {
        let file = VocabularyFile {
            word2idx: self.word_to_index.clone(),
            idx2word: self
                .index_to_word
                .iter()
                .enumerate()
                .map(|(i, w)| (i.to_string(), w.clone()))
                .collect(),
            idx: self.len(),
        };
        let json = serde_json::to_vec(&file).expect("a vocabulary serialises");
        crate::atomic::write(path, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenize_splits_punctuation_and_lowercases() {
        assert_eq!(
            tokenize("A Red circle, left of the BLUE square."),
            [
                "a", "red", "circle", ",", "left", "of", "the", "blue", "square", "."
            ]
        );
        assert_eq!(tokenize("  "), Vec::<String>::new());
    }

    #[test]
    fn build_encode_and_round_trip() {
        let vocab = Vocabulary::build(["a red circle", "a blue circle", "rare"], 2);
        assert_eq!(vocab.word(4), Some("a"));
        assert_eq!(vocab.len(), 6); // specials + a + circle
        assert_eq!(vocab.encode("a rare circle"), vec![1, 4, 3, 5, 2]);
        let dir = std::env::temp_dir().join(format!("itm-vocab-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vocab.json");
        vocab.save(&path).unwrap();
        assert_eq!(Vocabulary::load(&path).unwrap(), vocab);
        std::fs::write(
            &path,
            r#"{"word2idx":{"<pad>":0},"idx2word":{"0":"<pad>"},"idx":1}"#,
        )
        .unwrap();
        let err = Vocabulary::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("vocab.json") && err.contains("<start> is missing"),
            "{err}"
        );
        std::fs::write(&path, "{not json").unwrap();
        let err = Vocabulary::load(&path).unwrap_err().to_string();
        assert!(err.contains("not a vocabulary JSON"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
