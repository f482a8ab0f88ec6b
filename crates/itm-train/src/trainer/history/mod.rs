//! A run's history: one [`EpochRecord`] per epoch, written as `metrics.jsonl` and
//! `metrics.csv` after every epoch, its steps by logging interval ([`IntervalRecord`]) as
//! `steps.jsonl` and `steps.csv`, all drawn as `chart.png` at the end.
//!
//! Nothing here knows the training loop: the loop hands records in, these files write them.

mod chart;
mod files;
mod record;

pub use chart::{register_bundled_font, write_chart};
pub(crate) use files::write_history;
pub(crate) use record::IntervalTally;
pub use record::{EpochRecord, IntervalRecord};
