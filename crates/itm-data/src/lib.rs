//! Datasets, tokenisation and batching for image–text matching.
//!
//! - [`shapes`]: the embedded synthetic dataset (pixels, region features, captions, oracle).
//! - [`RetrievalSplit`]: images ([`ImageSource`]: region features, files or decoded images),
//!   captions and the caption → image map; batches prepared ahead of the training step.
//! - [`Vocabulary`], [`tokenize`] and [`nltk_word_tokenize`] (NLTK's `word_tokenize`, which the
//!   published models use; [`Tokenization`] picks one): word-level text for recurrent encoders;
//!   [`SubwordTokenizer`]: `tokenizer.json` subwords for transformer encoders (and a
//!   CLIP-layout word-level one built from captions).
//! - [`RegionBatch`], [`TokenBatch`], [`RegionDrop`]: padded batches with lengths.
//! - [`precomp`]: the SCAN precomp layout (`{split}_ims.npy`, `_caps.txt`, `_ids.txt`),
//!   memory-mapped.
//! - [`karpathy`]: Karpathy split JSON with an image folder; [`images`]: decoding,
//!   augmentation and prefetching of raw images.

pub mod atomic;
mod batch;
mod captions;
mod error;
mod features;
pub mod images;
pub mod karpathy;
mod nltk;
pub mod npy;
pub mod pickle;
pub mod precomp;
pub mod shapes;
mod source;
mod split;
mod subword;
mod vocab;

pub use batch::{RegionBatch, RegionDrop, TokenBatch};
pub use captions::{CaptionTokenizer, augment_subwords};
pub use error::DataError;
pub use features::RegionFeatures;
pub use nltk::nltk_word_tokenize;
pub use source::{Augmentation, ImageBatch, ImageSource};
pub use split::RetrievalSplit;
pub use subword::{CLIP_END, CLIP_START, SubwordBatch, SubwordTokenizer};
pub use vocab::{END, PAD, START, Tokenization, UNK, Vocabulary, tokenize};
