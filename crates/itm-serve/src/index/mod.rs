//! Retrieval indexes: the embeddings of a split written to a folder, searched exactly or, with
//! HNSW graphs built beside them, approximately.
//!
//! [`build_index`] encodes the images and captions of a split with a checkpoint and writes a self-contained folder (described by its [`Manifest`]): the two
//! embedding matrices as float32 `.npy`, the items, a copy of the checkpoint, and a manifest
//! with the length and SHA-256 of every file. [`Index::open`] refuses a folder whose files do
//! not match it. [`EmbeddingMatrix::top_k`] scores every row against the queries in blocks and
//! keeps a `k`-sized heap per query, so memory does not grow with the number of items.
//! With [`ApproximateOptions`], the build also writes an [`HnswGraph`] over each matrix and
//! records its recall@10 against exact search ([`recall_at_k`]); [`Index::load_graph`] reads
//! one back. A model with a fine-grained head is searched in two stages: the rows are the means
//! of its region and word sets, and the sets themselves are written beside them
//! ([`SecondStage`], `Index::second_stage`) for the head to re-score the first stage's top `k`.
//!
//! Modules depend one way: `record` (a file's length and checksum), `search` (exact top-k) and
//! `second_stage` (the sets a fine-grained head re-scores) stand alone; `approximate` (the
//! graphs) reads the first two; `format` (the manifest, opening) reads those and `source`;
//! `build` writes all of them.

mod approximate;
mod build;
mod format;
mod record;
mod search;
mod second_stage;
mod source;

pub use approximate::{HNSW_LIBRARY, HNSW_M, HnswGraph, HnswParameters, RECALL_K, recall_at_k};
pub use build::{ApproximateOptions, build_index, encode_image_file, encode_texts};
pub use format::{
    ApproximateRecord, CAPTION_GRAPH, CAPTIONS, Collection, FORMAT, FORMAT_VERSION, GraphRecord,
    IMAGE_GRAPH, IMAGES, ITEMS, Index, MANIFEST, MODEL, Manifest,
};
pub use record::{FileRecord, file_digest};
pub use search::{BLOCK_BYTES, EmbeddingMatrix, Hit};
pub use second_stage::{
    CAPTION_SETS, IMAGE_SETS, MEAN_FIRST_STAGE, RerankRecord, SET_LENGTHS, SecondStage, head_name,
};
pub use source::{CaptionItem, ImageItem, IndexItems, IndexSource, Pictures};
