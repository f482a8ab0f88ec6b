//! The standard retrieval evaluation protocol (METHODS §6).

mod metrics;
mod protocol;
mod ranks;

pub use metrics::Metrics;
pub use protocol::{Protocol, RetrievalReport, evaluate};
pub use ranks::{
    Ranks, both_directions, image_to_text, image_to_text_ranks, text_to_image, text_to_image_ranks,
};
