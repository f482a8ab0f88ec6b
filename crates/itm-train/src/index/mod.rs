//! Retrieval indexes: the embeddings of a split written to a folder, searched exactly.
//!
//! [`build_index`] encodes the images and captions of a split with a checkpoint (cosine models
//! only) and writes a self-contained folder (described by its [`Manifest`]): the two
//! embedding matrices as float32 `.npy`, the items, a copy of the checkpoint, and a manifest
//! with the length and SHA-256 of every file. [`Index::open`] refuses a folder whose files do
//! not match it. [`EmbeddingMatrix::top_k`] scores every row against the queries in blocks and
//! keeps a `k`-sized heap per query, so memory does not grow with the number of items.

mod build;
mod format;
mod search;
mod source;

pub use build::{build_index, encode_image_file, encode_texts};
pub use format::{
    CAPTIONS, FORMAT, FORMAT_VERSION, FileRecord, IMAGES, ITEMS, Index, MANIFEST, MODEL, Manifest,
    file_digest,
};
pub use search::{BLOCK_BYTES, EmbeddingMatrix, Hit};
pub use source::{CaptionItem, ImageItem, IndexItems, IndexSource, Pictures};
