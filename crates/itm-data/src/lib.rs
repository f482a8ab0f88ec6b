//! Datasets, tokenisation and batching for image–text matching.
//!
//! - [`shapes`]: the embedded synthetic dataset (pixels, region features, captions, oracle).
//! - [`RetrievalSplit`]: images as region features, captions and the caption → image map.
//! - [`Vocabulary`] and [`tokenize`]: word-level text for recurrent encoders;
//!   [`SubwordTokenizer`]: `tokenizer.json` subwords for transformer encoders.
//! - [`RegionBatch`], [`TokenBatch`], [`RegionDrop`]: padded batches with lengths.
//! - [`precomp`]: the SCAN precomp layout (`{split}_ims.npy`, `_caps.txt`, `_ids.txt`),
//!   memory-mapped.
//! - [`karpathy`]: Karpathy split JSON with an image folder; [`images`]: decoding,
//!   augmentation and prefetching of raw images.

pub mod atomic;
mod batch;
mod error;
mod features;
pub mod images;
pub mod karpathy;
pub mod npy;
pub mod precomp;
pub mod shapes;
mod split;
mod subword;
mod vocab;

pub use batch::{RegionBatch, RegionDrop, TokenBatch};
pub use error::DataError;
pub use features::RegionFeatures;
pub use split::RetrievalSplit;
pub use subword::{SubwordBatch, SubwordTokenizer};
pub use vocab::{END, PAD, START, UNK, Vocabulary, tokenize};
