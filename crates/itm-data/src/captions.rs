//! Caption tokenisation for either kind of text encoder, and the training-time caption
//! augmentation of VSE∞'s BERT models.

use rand::Rng;

use crate::error::DataError;
use crate::subword::SubwordTokenizer;
use crate::vocab::Vocabulary;

/// Turns captions into token ids: words for recurrent encoders, subwords for BERT.
pub enum CaptionTokenizer {
    /// `<start> words <end>` through a word vocabulary.
    Words(Vocabulary),
    /// `[CLS] subwords [SEP]` through a `tokenizer.json`.
    Subwords(Box<SubwordTokenizer>),
}

impl From<Vocabulary> for CaptionTokenizer {
    fn from(vocab: Vocabulary) -> Self {
        CaptionTokenizer::Words(vocab)
    }
}

impl From<SubwordTokenizer> for CaptionTokenizer {
    fn from(tokenizer: SubwordTokenizer) -> Self {
        CaptionTokenizer::Subwords(Box::new(tokenizer))
    }
}

impl CaptionTokenizer {
    /// Token ids of every caption, each at least one token long.
    pub fn encode_all(&self, captions: &[String]) -> Result<Vec<Vec<i64>>, DataError> {
        match self {
            CaptionTokenizer::Words(vocab) => {
                Ok(captions.iter().map(|c| vocab.encode(c)).collect())
            }
            CaptionTokenizer::Subwords(tokenizer) => {
                let texts: Vec<&str> = captions.iter().map(String::as_str).collect();
                tokenizer.encode_all(&texts)
            }
        }
    }

    /// Number of distinct token ids.
    pub fn vocab_size(&self) -> usize {
        match self {
            CaptionTokenizer::Words(vocab) => vocab.len(),
            CaptionTokenizer::Subwords(tokenizer) => tokenizer.vocab_size(),
        }
    }
}

/// VSE∞'s caption augmentation for BERT (METHODS §1): each token between the first and the last
/// (the special tokens stay) is picked with probability 0.2; a picked token is replaced by
/// `mask_id` (50%), by a random id below `vocab_size` (10%), or deleted (40%). At least one
/// inner token survives.
pub fn augment_subwords(
    ids: &[i64],
    mask_id: i64,
    vocab_size: usize,
    rng: &mut impl Rng,
) -> Vec<i64> {
    if ids.len() <= 2 {
        return ids.to_vec();
    }
    let inner = &ids[1..ids.len() - 1];
    let mut kept: Vec<i64> = Vec::with_capacity(ids.len());
    kept.push(ids[0]);
    for &id in inner {
        if !rng.random_bool(0.2) {
            kept.push(id);
            continue;
        }
        let draw: f64 = rng.random();
        if draw < 0.5 {
            kept.push(mask_id);
        } else if draw < 0.6 {
            kept.push(rng.random_range(0..vocab_size) as i64);
        }
    }
    if kept.len() == 1 {
        kept.push(inner[rng.random_range(0..inner.len())]);
    }
    kept.push(ids[ids.len() - 1]);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn augmentation_rates_and_special_tokens() {
        let mut rng = StdRng::seed_from_u64(0);
        let ids: Vec<i64> = std::iter::once(101)
            .chain(1000..1020)
            .chain(std::iter::once(102))
            .collect();
        let (mut masked, mut deleted, mut trials) = (0usize, 0usize, 0usize);
        for _ in 0..2000 {
            let out = augment_subwords(&ids, 103, 500, &mut rng);
            assert_eq!((out[0], out[out.len() - 1]), (101, 102));
            masked += out.iter().filter(|&&t| t == 103).count();
            deleted += ids.len() - out.len();
            trials += 20;
        }
        let (masked, deleted) = (
            masked as f64 / trials as f64,
            deleted as f64 / trials as f64,
        );
        assert!((masked - 0.10).abs() < 0.01, "mask rate {masked}");
        assert!((deleted - 0.08).abs() < 0.01, "delete rate {deleted}");
        assert_eq!(
            augment_subwords(&[101, 102], 103, 500, &mut rng),
            vec![101, 102]
        );
        for _ in 0..200 {
            assert!(augment_subwords(&[101, 7, 102], 103, 500, &mut rng).len() >= 3);
        }
    }
}
