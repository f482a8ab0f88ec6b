//! The index folder: its manifest, and opening it with every file checked.
//!
//! ```text
//! INDEX/
//!   manifest.json   format, version, dim, counts, source, every other file's length and SHA-256
//!   images.npy      [n_images, D] float32, unit rows
//!   captions.npy    [n_captions, D] float32, unit rows
//!   items.json      image ids and file names; caption texts and their image
//!   model/          the checkpoint that encoded them (weights, configuration, tokenizer)
//!   images.hnsw     with --approximate: HNSW graph over the image rows (text → image)
//!   captions.hnsw   with --approximate: HNSW graph over the caption rows (image → text)
//!   image_sets.npy, caption_sets.npy, set_lengths.json
//!                   for a fine-grained model: what its head re-scores (the second stage)
//! ```
//!
//! The graphs' format is in [`super::approximate`]; the manifest's `approximate` section records
//! their parameters and the recall@10 measured when they were built.

use std::path::{Path, PathBuf};

use itm_train::Checkpoint;
use serde::{Deserialize, Serialize};

use super::approximate::{HnswGraph, HnswParameters};
use super::record::{FileRecord, file_digest};
use super::search::EmbeddingMatrix;
use super::second_stage::{CAPTION_SETS, IMAGE_SETS, RerankRecord, SET_LENGTHS, SecondStage};
use super::source::{IndexItems, IndexSource};
use crate::ServeError;

/// Value of the manifest's `format` field.
pub const FORMAT: &str = "itm-index";
/// The manifest version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
/// Image embeddings.
pub const IMAGES: &str = "images.npy";
/// Caption embeddings.
pub const CAPTIONS: &str = "captions.npy";
/// Ids, file names and caption texts.
pub const ITEMS: &str = "items.json";
/// The checkpoint folder.
pub const MODEL: &str = "model";
/// HNSW graph over the image rows.
pub const IMAGE_GRAPH: &str = "images.hnsw";
/// HNSW graph over the caption rows.
pub const CAPTION_GRAPH: &str = "captions.hnsw";

/// The two sets of rows an index holds; a search ranks one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collection {
    /// Image rows (`images.npy`), ranked for text queries.
    Images,
    /// Caption rows (`captions.npy`), ranked for image queries.
    Captions,
}

impl Collection {
    /// The matrix file of the rows.
    pub fn matrix_file(self) -> &'static str {
        match self {
            Collection::Images => IMAGES,
            Collection::Captions => CAPTIONS,
        }
    }

    /// The HNSW graph file over the rows.
    pub fn graph_file(self) -> &'static str {
        match self {
            Collection::Images => IMAGE_GRAPH,
            Collection::Captions => CAPTION_GRAPH,
        }
    }

    /// The rows of the other modality (where the queries of a search come from).
    pub fn other(self) -> Self {
        match self {
            Collection::Images => Collection::Captions,
            Collection::Captions => Collection::Images,
        }
    }

    /// Singular noun of a row: `image` or `caption`.
    pub fn row_noun(self) -> &'static str {
        match self {
            Collection::Images => "image",
            Collection::Captions => "caption",
        }
    }
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`] when written by this build.
    pub version: u32,
    /// Embedding width `D`.
    pub dim: usize,
    /// Rows of `images.npy`.
    pub n_images: usize,
    /// Rows of `captions.npy`.
    pub n_captions: usize,
    /// How rows are compared (always `"cosine"`: inner product of unit rows).
    pub similarity: String,
    /// The checkpoint the index was built from, as given (a copy is in `model/`).
    pub checkpoint: PathBuf,
    /// The data the rows come from.
    pub source: IndexSource,
    /// Every other file of the folder.
    pub files: Vec<FileRecord>,
    /// The HNSW graphs for approximate search, for an index built with them (absent
    /// otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approximate: Option<ApproximateRecord>,
    /// For a model with a fine-grained head: the second stage of its two-stage search (the
    /// rows are then the means of its sets; absent for a cosine model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerank: Option<RerankRecord>,
}

/// The manifest's `approximate` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproximateRecord {
    /// The crate that built the graphs ([`super::HNSW_LIBRARY`]).
    pub library: String,
    /// Their construction and search parameters.
    pub parameters: HnswParameters,
    /// One per graph.
    pub graphs: Vec<GraphRecord>,
}

/// One HNSW graph of an index and its measured quality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphRecord {
    /// The rows it links.
    pub rows: Collection,
    /// Its file ([`Collection::graph_file`] of `rows`), also listed in `files`.
    pub file: String,
    /// Seconds its construction took.
    pub build_seconds: f64,
    /// Recall@10 of approximate against exact search, measured when it was built.
    pub recall_at_10: f64,
    /// Queries the recall was measured over.
    pub recall_queries: usize,
    /// Where those queries came from: the other modality's rows, or `rows` itself when the
    /// other has none.
    pub queries_from: Collection,
}

/// An opened, checked index.
#[derive(Debug, Clone)]
pub struct Index {
    folder: PathBuf,
    manifest: Manifest,
    items: IndexItems,
    images: EmbeddingMatrix,
    captions: EmbeddingMatrix,
}

impl Index {
    /// Opens the index in `folder`, refusing it — with an error naming the file — when the
    /// manifest is missing, of another format or version, or when a recorded file is missing,
    /// of the wrong length, altered (checksum), or disagrees with the recorded counts.
    pub fn open(folder: &Path) -> Result<Self, ServeError> {
        if !folder.is_dir() {
            return Err(ServeError::corrupt(folder, "no such index folder"));
        }
        let manifest_path = folder.join(MANIFEST);
        let text = std::fs::read_to_string(&manifest_path)
            .map_err(|e| ServeError::io(&manifest_path, e))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ServeError::corrupt(&manifest_path, format!("not JSON: {e}")))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(ServeError::corrupt(
                &manifest_path,
                format!("not an itm index manifest (its \"format\" is not {FORMAT:?})"),
            ));
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(FORMAT_VERSION) => {}
            other => {
                return Err(ServeError::corrupt(
                    &manifest_path,
                    format!(
                        "manifest version {}, this build reads version {FORMAT_VERSION}",
                        other.map_or("missing".to_string(), |v| v.to_string())
                    ),
                ));
            }
        }
        let manifest: Manifest = serde_json::from_value(value)
            .map_err(|e| ServeError::corrupt(&manifest_path, format!("invalid manifest: {e}")))?;
        for required in [IMAGES, CAPTIONS, ITEMS] {
            if !manifest.files.iter().any(|f| f.name == required) {
                return Err(ServeError::corrupt(
                    &manifest_path,
                    format!("records no {required}"),
                ));
            }
        }
        for record in &manifest.files {
            let path = folder.join(&record.name);
            let bytes = std::fs::metadata(&path)
                .map_err(|e| ServeError::io(&path, e))?
                .len();
            if bytes != record.bytes {
                return Err(ServeError::corrupt(
                    &path,
                    format!(
                        "{} bytes, the manifest records {} ({})",
                        bytes,
                        record.bytes,
                        if bytes < record.bytes {
                            "truncated"
                        } else {
                            "grown"
                        }
                    ),
                ));
            }
            let (sha256, _) = file_digest(&path)?;
            if sha256 != record.sha256 {
                return Err(ServeError::corrupt(
                    &path,
                    "checksum mismatch: the file changed after the index was built",
                ));
            }
        }
        if let Some(approximate) = &manifest.approximate {
            check_graph_records(approximate, &manifest.files).map_err(|message| {
                ServeError::corrupt(
                    &manifest_path,
                    format!("invalid approximate section: {message}"),
                )
            })?;
        }
        let images = EmbeddingMatrix::open(&folder.join(IMAGES), "[images, dim]")?;
        let captions = EmbeddingMatrix::open(&folder.join(CAPTIONS), "[captions, dim]")?;
        for (matrix, rows) in [
            (&images, manifest.n_images),
            (&captions, manifest.n_captions),
        ] {
            if matrix.rows() != rows || matrix.dim() != manifest.dim {
                return Err(ServeError::corrupt(
                    matrix.path(),
                    format!(
                        "shape [{}, {}], the manifest records [{rows}, {}]",
                        matrix.rows(),
                        matrix.dim(),
                        manifest.dim
                    ),
                ));
            }
        }
        let items_path = folder.join(ITEMS);
        let text =
            std::fs::read_to_string(&items_path).map_err(|e| ServeError::io(&items_path, e))?;
        let items: IndexItems = serde_json::from_str(&text)
            .map_err(|e| ServeError::corrupt(&items_path, format!("invalid items: {e}")))?;
        if items.images.len() != manifest.n_images || items.captions.len() != manifest.n_captions {
            return Err(ServeError::corrupt(
                &items_path,
                format!(
                    "{} images and {} captions, the manifest records {} and {}",
                    items.images.len(),
                    items.captions.len(),
                    manifest.n_images,
                    manifest.n_captions
                ),
            ));
        }
        if let Some(j) = items
            .captions
            .iter()
            .position(|c| c.image >= manifest.n_images)
        {
            return Err(ServeError::corrupt(
                &items_path,
                format!(
                    "caption {j} describes image {}, past the last",
                    items.captions[j].image
                ),
            ));
        }
        Ok(Self {
            folder: folder.to_path_buf(),
            manifest,
            items,
            images,
            captions,
        })
    }

    /// The second stage's sets, memory-mapped: refused, saying how to rebuild the index, when
    /// the index has none (built by an older itm, or from a cosine model).
    pub fn second_stage(&self) -> Result<SecondStage, ServeError> {
        let manifest = &self.manifest;
        let Some(record) = &manifest.rerank else {
            return Err(ServeError::refused(
                &self.folder,
                format!(
                    "the index holds no second-stage features ({IMAGE_SETS}, {CAPTION_SETS}): it \
                     was built by an older itm or from a model scored by cosine alone; to search a \
                     fine-grained model in two stages, build the index again with this itm (itm \
                     index build --checkpoint {} --output {} and the same data options)",
                    manifest.checkpoint.display(),
                    self.folder.display()
                ),
            ));
        };
        for name in [IMAGE_SETS, CAPTION_SETS, SET_LENGTHS] {
            if !manifest.files.iter().any(|f| f.name == name) {
                return Err(ServeError::corrupt(
                    self.folder.join(MANIFEST),
                    format!("a rerank section but no record of {name}"),
                ));
            }
        }
        SecondStage::open(
            &self.folder,
            record,
            manifest.n_images,
            manifest.n_captions,
            manifest.dim,
        )
    }

    /// The folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Ids, file names and captions.
    pub fn items(&self) -> &IndexItems {
        &self.items
    }

    /// Image embeddings `[n_images, D]`.
    pub fn images(&self) -> &EmbeddingMatrix {
        &self.images
    }

    /// Caption embeddings `[n_captions, D]`.
    pub fn captions(&self) -> &EmbeddingMatrix {
        &self.captions
    }

    /// The copy of the checkpoint that encoded the rows (to encode queries the same way).
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint::new(self.folder.join(MODEL))
    }

    /// The manifest's record of the HNSW graph over `rows`, when the index has one.
    pub fn graph_record(&self, rows: Collection) -> Option<&GraphRecord> {
        self.manifest
            .approximate
            .as_ref()?
            .graphs
            .iter()
            .find(|graph| graph.rows == rows)
    }

    /// Reads the HNSW graph over `rows` when the index has one (its checksum was verified on
    /// open), checked against the matrix it was built from: see [`HnswGraph::load`].
    pub fn load_graph(&self, rows: Collection) -> Result<Option<HnswGraph>, ServeError> {
        let (Some(approximate), Some(record)) =
            (&self.manifest.approximate, self.graph_record(rows))
        else {
            return Ok(None);
        };
        let matrix = self
            .manifest
            .files
            .iter()
            .find(|file| file.name == rows.matrix_file())
            .expect("open checked that the manifest records both matrices");
        let shape = match rows {
            Collection::Images => [self.manifest.n_images, self.manifest.dim],
            Collection::Captions => [self.manifest.n_captions, self.manifest.dim],
        };
        HnswGraph::load(
            &self.folder.join(&record.file),
            matrix,
            shape,
            &approximate.parameters,
        )
        .map(Some)
    }
}

/// Whether every graph of the section is named after its rows, listed (with its checksum) in
/// `files`, and the only one over its rows; `Err` says which is not.
fn check_graph_records(
    approximate: &ApproximateRecord,
    files: &[FileRecord],
) -> Result<(), String> {
    for (position, graph) in approximate.graphs.iter().enumerate() {
        if graph.file != graph.rows.graph_file() {
            return Err(format!(
                "the graph over {:?} is {}, not {}",
                graph.rows,
                graph.file,
                graph.rows.graph_file()
            ));
        }
        if !files.iter().any(|file| file.name == graph.file) {
            return Err(format!("{} is not among the files", graph.file));
        }
        if approximate.graphs[..position]
            .iter()
            .any(|earlier| earlier.rows == graph.rows)
        {
            return Err(format!("two graphs over {:?}", graph.rows));
        }
    }
    Ok(())
}
