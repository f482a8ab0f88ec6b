//! Word-level tokenisation and the vocabulary of recurrent text encoders.
//!
//! The published models tokenise with NLTK's `word_tokenize` on lower-cased captions. A
//! [`Vocabulary`] splits captions with one of two rules ([`Tokenization`]): by default itm's own
//! [`tokenize`], where a word is a maximal run of letters, digits or apostrophes and every other
//! non-space character is a token of its own (this agrees with NLTK on plain captions and
//! differs on contractions, hyphens, quotes, numbers and periods: NLTK splits "don't" into "do"
//! "n't" and keeps "t-shirt" whole, we keep "don't" and split "t-shirt"), or NLTK's rules
//! ([`crate::nltk_word_tokenize`]), which a vocabulary of a published model needs.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::nltk::nltk_word_tokenize;

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

/// How captions are split into words: the rule a [`Vocabulary`] was built with and encodes with.
///
/// `vocab.json` records it as an optional `"tokenizer"` key (`"simple"` or `"nltk"`); a file
/// without the key, like those of the published repositories, uses [`Tokenization::Simple`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tokenization {
    /// itm's own rule, [`tokenize`] (lower-cases, then words and single punctuation marks).
    #[default]
    Simple,
    /// NLTK's rules on the lower-cased caption, [`nltk_word_tokenize`]: what the published
    /// models (VSE∞, SCAN, CHAN) did with `nltk.word_tokenize(caption.lower())`.
    Nltk,
}

impl Tokenization {
    /// The words of `caption` under this rule (lower-cased in both cases).
    pub fn tokenize(self, caption: &str) -> Vec<String> {
        match self {
            Tokenization::Simple => tokenize(caption),
            Tokenization::Nltk => nltk_word_tokenize(&caption.to_lowercase()),
        }
    }
}

/// Word ↔ index map with `<pad> <start> <end> <unk>` at indices 0–3, and the [`Tokenization`]
/// that turns captions into its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocabulary {
    word_to_index: HashMap<String, usize>,
    index_to_word: Vec<String>,
    tokenization: Tokenization,
}

/// The JSON layout used by the published repositories, plus the optional `tokenizer` key (left
/// out for [`Tokenization::Simple`], so that such files stay as they were).
#[derive(Serialize, Deserialize)]
struct VocabularyFile {
    word2idx: HashMap<String, usize>,
    idx2word: HashMap<String, String>,
    idx: usize,
    #[serde(default, skip_serializing_if = "is_simple")]
    tokenizer: Tokenization,
}

fn is_simple(tokenization: &Tokenization) -> bool {
    *tokenization == Tokenization::Simple
}

impl Vocabulary {
    fn with_specials(tokenization: Tokenization) -> Self {
        let mut vocab = Self {
            word_to_index: HashMap::new(),
            index_to_word: Vec::new(),
            tokenization,
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

    /// Builds a vocabulary from training captions with [`Tokenization::Simple`], keeping words
    /// seen at least `min_count` times, in order of first appearance (so the result does not
    /// depend on hashing).
    pub fn build<'a>(captions: impl IntoIterator<Item = &'a str>, min_count: usize) -> Self {
        Self::build_with(captions, min_count, Tokenization::Simple)
    }

    /// [`Vocabulary::build`] with the words of `tokenization`, which the vocabulary then keeps
    /// for [`Vocabulary::encode`].
    pub fn build_with<'a>(
        captions: impl IntoIterator<Item = &'a str>,
        min_count: usize,
        tokenization: Tokenization,
    ) -> Self {
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut order = Vec::new();
        for caption in captions {
            for token in tokenization.tokenize(caption) {
                let count = counts.entry(token.clone()).or_insert(0);
                if *count == 0 {
                    order.push(token);
                }
                *count += 1;
            }
        }
        let mut vocab = Self::with_specials(tokenization);
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

    /// The rule that [`Vocabulary::encode`] splits captions with.
    pub fn tokenization(&self) -> Tokenization {
        self.tokenization
    }

    /// The same words, encoded with `tokenization` from now on: for a vocabulary file of a
    /// published model, which holds NLTK's words but no `tokenizer` key.
    pub fn with_tokenization(mut self, tokenization: Tokenization) -> Self {
        self.tokenization = tokenization;
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

    /// Token ids `<start> w_1 … w_n <end>` of a caption (VSE∞ / SCAN convention), split with
    /// the vocabulary's own [`Tokenization`].
    pub fn encode(&self, caption: &str) -> Vec<i64> {
        self.encode_with(caption, self.tokenization)
    }

    /// [`Vocabulary::encode`] with the words of `tokenization` instead of the vocabulary's own.
    pub fn encode_with(&self, caption: &str, tokenization: Tokenization) -> Vec<i64> {
        let mut ids = vec![self.index(START) as i64];
        ids.extend(
            tokenization
                .tokenize(caption)
                .iter()
                .map(|w| self.index(w) as i64),
        );
        ids.push(self.index(END) as i64);
        ids
    }

    /// Reads a vocabulary JSON (`word2idx`, `idx2word`, `idx`, and optionally `tokenizer`:
    /// `"simple"`, the default, or `"nltk"`), checking that the two maps agree, that indices are
    /// 0..n without gaps and that the four special tokens are present.
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let file: VocabularyFile = serde_json::from_str(&text)
            .map_err(|e| DataError::invalid(path, format!("not a vocabulary JSON: {e}")))?;
        if file.idx != file.word2idx.len() {
            return Err(DataError::invalid(
                path,
                format!(
                    "idx is {} but there are {} words",
                    file.idx,
                    file.word2idx.len()
                ),
            ));
        }
        let vocab = Self::from_word_indices(file.word2idx, file.tokenizer)
            .map_err(|message| DataError::invalid(path, message))?;
        for (index, word) in vocab.index_to_word.iter().enumerate() {
            if file.idx2word.get(&index.to_string()) != Some(word) {
                return Err(DataError::invalid(
                    path,
                    format!("idx2word[{index}] disagrees with word2idx"),
                ));
            }
        }
        Ok(vocab)
    }

    /// A vocabulary from its `word → index` map alone (the `word2idx` that CHAN pickles in its
    /// checkpoints' `opt`): indices must be 0..n without gaps or repeats and the four special
    /// tokens present; the error says what is wrong.
    pub fn from_word_indices(
        word_to_index: HashMap<String, usize>,
        tokenization: Tokenization,
    ) -> Result<Self, String> {
        let n = word_to_index.len();
        let mut index_to_word = vec![None; n];
        for (word, &index) in &word_to_index {
            if index >= n {
                return Err(format!(
                    "word {word:?} has index {index}, but there are {n} words"
                ));
            }
            if index_to_word[index].replace(word.clone()).is_some() {
                return Err(format!("index {index} is used twice"));
            }
        }
        for special in [PAD, START, END, UNK] {
            if !word_to_index.contains_key(special) {
                return Err(format!("the special token {special} is missing"));
            }
        }
        Ok(Self {
            word_to_index,
            index_to_word: index_to_word.into_iter().flatten().collect(),
            tokenization,
        })
    }

    /// Writes the vocabulary JSON atomically (temporary file, then rename), with a `tokenizer`
    /// key unless the tokenization is [`Tokenization::Simple`].
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
            tokenizer: self.tokenization,
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

    #[test]
    fn the_tokenizer_key_round_trips_and_defaults_to_simple() {
        let captions = ["a man's t-shirt isn't red", "the dog's ball"];
        let nltk = Vocabulary::build_with(captions, 1, Tokenization::Nltk);
        assert_eq!(nltk.tokenization(), Tokenization::Nltk);
        assert_eq!(nltk.word(5), Some("man"));
        assert_eq!(nltk.index("t-shirt"), 7);
        let simple = Vocabulary::build(captions, 1);
        assert_eq!(simple.tokenization(), Tokenization::Simple);
        assert_eq!(simple.word(5), Some("man's"));
        // The vocabulary's own rule encodes; `encode_with` overrides it.
        assert_eq!(
            nltk.encode("the man's dog"),
            nltk.encode_with("the man's dog", Tokenization::Nltk)
        );
        assert_ne!(
            nltk.encode("the man's dog"),
            nltk.encode_with("the man's dog", Tokenization::Simple)
        );

        let dir = std::env::temp_dir().join(format!("itm-vocab-tokenizer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vocab.json");
        nltk.save(&path).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(json["tokenizer"], "nltk");
        assert_eq!(Vocabulary::load(&path).unwrap(), nltk);

        // A simple vocabulary writes the published layout, without the key.
        simple.save(&path).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert!(!keys.contains(&"tokenizer"));
        assert_eq!(Vocabulary::load(&path).unwrap(), simple);

        // Files without the key (the published repositories') load as before; the rule of a
        // published model is set afterwards.
        let published = r#"{"word2idx":{"<pad>":0,"<start>":1,"<end>":2,"<unk>":3,"do":4,"n't":5},
            "idx2word":{"0":"<pad>","1":"<start>","2":"<end>","3":"<unk>","4":"do","5":"n't"},
            "idx":6}"#;
        std::fs::write(&path, published).unwrap();
        let loaded = Vocabulary::load(&path).unwrap();
        assert_eq!(loaded.tokenization(), Tokenization::Simple);
        assert_eq!(loaded.encode("don't"), [1, 3, 2]);
        let loaded = loaded.with_tokenization(Tokenization::Nltk);
        assert_eq!(loaded.encode("Don't"), [1, 4, 5, 2]);

        let explicit = published.replacen(r#""idx":6"#, r#""idx":6,"tokenizer":"simple""#, 1);
        std::fs::write(&path, explicit).unwrap();
        assert_eq!(
            Vocabulary::load(&path).unwrap().tokenization(),
            Tokenization::Simple
        );
        let unknown = published.replacen(r#""idx":6"#, r#""idx":6,"tokenizer":"spacy""#, 1);
        std::fs::write(&path, unknown).unwrap();
        let err = Vocabulary::load(&path).unwrap_err().to_string();
        assert!(err.contains("spacy") && err.contains("nltk"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
