//! Serving trained matching models: retrieval indexes and contact sheets.
//!
//! Training ([`itm_train`]) produces a checkpoint; this crate reads it and never the other way
//! round.
//!
//! - [`index`]: retrieval indexes — build one from a checkpoint and a split, open it with every
//!   file checked, search it exactly ([`index::EmbeddingMatrix::top_k`]) or through HNSW graphs
//!   ([`index::HnswGraph`]). The folder's format is described in docs/search.md.
//! - [`sheet`]: contact sheets — the top images of a few captions ([`write_contact_sheet`]) or
//!   the top captions of a few images ([`write_image_sheet`]) as a PNG with the captions and
//!   scores written on it, and a JSON description of its rows beside it.
//! - [`ServeError`]: what failed, naming the file.

mod error;
pub mod index;
pub mod sheet;

pub use error::ServeError;
pub use sheet::{
    BACKGROUND, BORDER, CELL, GAP, MATCH_COLOUR, OTHER_COLOUR, QUERY_COLOUR, SheetHit, SheetRow,
    frame_origin, sheet_size, sidecar, write_contact_sheet, write_image_sheet,
};
