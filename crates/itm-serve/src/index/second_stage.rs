//! What the second stage of a two-stage search reads: the unit region sets of the images and
//! the unit word sets of the captions of an index built from a fine-grained model, written
//! beside the first-stage matrices and memory-mapped when searched.
//!
//! ```text
//!   image_sets.npy     float32 [n_images, max_regions, D]: image i's sets in its first rows
//!   caption_sets.npy   float32 [n_captions, max_words, D]
//!   set_lengths.json   {"images": [regions per image], "captions": [words per caption]}
//! ```
//!
//! The first-stage rows (`images.npy`, `captions.npy`) of such an index are the l2-normalised
//! means of these sets ([`itm_core::similarity::mean_of_sets`]).

use std::path::Path;

use itm_core::similarity::{FeatureSets, SimilarityConfig};
use itm_data::atomic;
use itm_data::npy::{MappedF32, write_f32};
use serde::{Deserialize, Serialize};

use crate::ServeError;

/// Region sets of the images.
pub const IMAGE_SETS: &str = "image_sets.npy";
/// Word sets of the captions.
pub const CAPTION_SETS: &str = "caption_sets.npy";
/// Valid rows of every set.
pub const SET_LENGTHS: &str = "set_lengths.json";
/// How the first-stage rows of a fine-grained index are made.
pub const MEAN_FIRST_STAGE: &str = "mean of unit region / word features, l2-normalised";

/// The manifest's `rerank` section: an index whose model has a fine-grained head, searched in
/// two stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RerankRecord {
    /// The head that re-scores the candidates ([`head_name`]).
    pub head: String,
    /// How the first-stage rows were made ([`MEAN_FIRST_STAGE`]).
    pub first_stage: String,
    /// Region slots per image in [`IMAGE_SETS`].
    pub max_regions: usize,
    /// Word slots per caption in [`CAPTION_SETS`].
    pub max_words: usize,
}

/// The name of a fine-grained head as the heads table writes it (`None` for the cosine head).
pub fn head_name(similarity: &SimilarityConfig) -> Option<&'static str> {
    use itm_core::similarity::ScanDirection;
    match similarity {
        SimilarityConfig::Cosine => None,
        SimilarityConfig::Scan(scan) => Some(match scan.direction {
            ScanDirection::TextToImage => "scan_t2i",
            ScanDirection::ImageToText => "scan_i2t",
        }),
        SimilarityConfig::Chan(_) => Some("chan"),
        SimilarityConfig::Esl(_) => Some("esl"),
        SimilarityConfig::XDim(_) => Some("xdim"),
        SimilarityConfig::MultiGrained(_) => Some("cosine_chan"),
        SimilarityConfig::MultiLevel(_) => Some("multi_level_scan"),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Lengths {
    images: Vec<usize>,
    captions: Vec<usize>,
}

/// Writes the sets into `folder` ([`IMAGE_SETS`], [`CAPTION_SETS`], [`SET_LENGTHS`]) and
/// returns the manifest section naming `head`.
pub(crate) fn write_sets(
    folder: &Path,
    images: FeatureSets,
    captions: FeatureSets,
    head: &str,
) -> Result<RerankRecord, ServeError> {
    write_f32(
        &folder.join(IMAGE_SETS),
        &[images.len(), images.max_len, images.dim],
        images.values,
    )?;
    write_f32(
        &folder.join(CAPTION_SETS),
        &[captions.len(), captions.max_len, captions.dim],
        captions.values,
    )?;
    let lengths = Lengths {
        images: images.lengths.to_vec(),
        captions: captions.lengths.to_vec(),
    };
    let text = serde_json::to_vec(&lengths).expect("lengths serialise");
    atomic::write(&folder.join(SET_LENGTHS), &text)?;
    Ok(RerankRecord {
        head: head.to_string(),
        first_stage: MEAN_FIRST_STAGE.to_string(),
        max_regions: images.max_len,
        max_words: captions.max_len,
    })
}

/// The second stage's sets of an opened index, memory-mapped.
pub struct SecondStage {
    images: MappedF32,
    captions: MappedF32,
    lengths: Lengths,
    record: RerankRecord,
}

impl SecondStage {
    /// Maps the sets of the index in `folder` (whose files the manifest's checksums already
    /// verified) and checks them against the manifest's `record` and counts: shapes, and every
    /// length within `1..=slots`.
    pub(crate) fn open(
        folder: &Path,
        record: &RerankRecord,
        n_images: usize,
        n_captions: usize,
        dim: usize,
    ) -> Result<Self, ServeError> {
        let images = MappedF32::open(&folder.join(IMAGE_SETS), 3, "[images, regions, dim]")?;
        let captions = MappedF32::open(&folder.join(CAPTION_SETS), 3, "[captions, words, dim]")?;
        let path = folder.join(SET_LENGTHS);
        let text = std::fs::read_to_string(&path).map_err(|e| ServeError::io(&path, e))?;
        let lengths: Lengths = serde_json::from_str(&text)
            .map_err(|e| ServeError::corrupt(&path, format!("invalid set lengths: {e}")))?;
        for (sets, rows, slots, counts) in [
            (&images, n_images, record.max_regions, &lengths.images),
            (&captions, n_captions, record.max_words, &lengths.captions),
        ] {
            if sets.shape() != [rows, slots, dim] {
                return Err(ServeError::corrupt(
                    sets.path(),
                    format!(
                        "shape {:?}, the manifest records [{rows}, {slots}, {}]",
                        sets.shape(),
                        dim
                    ),
                ));
            }
            if counts.len() != rows {
                return Err(ServeError::corrupt(
                    &path,
                    format!("{} lengths for {rows} sets", counts.len()),
                ));
            }
            if let Some(bad) = counts.iter().position(|&n| !(1..=slots).contains(&n)) {
                return Err(ServeError::corrupt(
                    &path,
                    format!("set {bad} has {} rows, outside 1..={slots}", counts[bad]),
                ));
            }
        }
        Ok(Self {
            images,
            captions,
            lengths,
            record: record.clone(),
        })
    }

    /// Region sets `[n_images, max_regions, D]`.
    pub fn images(&self) -> FeatureSets<'_> {
        let shape = self.images.shape();
        FeatureSets::new(
            self.images.values(),
            &self.lengths.images,
            shape[1],
            shape[2],
        )
    }

    /// Word sets `[n_captions, max_words, D]`.
    pub fn captions(&self) -> FeatureSets<'_> {
        let shape = self.captions.shape();
        FeatureSets::new(
            self.captions.values(),
            &self.lengths.captions,
            shape[1],
            shape[2],
        )
    }

    /// The manifest section.
    pub fn record(&self) -> &RerankRecord {
        &self.record
    }
}
