//! Building an index folder: encode a split with a checkpoint, write everything into a folder
//! beside the target, and move it into place only once it is complete.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use itm_core::VseModel;
use itm_core::encoders::ImageEncoderConfig;
use itm_core::similarity::mean_of_sets;
use itm_data::images::{ImageTransform, PixelBatch};
use itm_data::npy::write_f32;
use itm_data::{CaptionTokenizer, ImageBatch, atomic};
use itm_train::{Checkpoint, Embeddings, encode_captions, encode_sets, encode_split};

use super::approximate::{HNSW_LIBRARY, HnswGraph, HnswParameters, RECALL_K, recall_at_k};
use super::format::{
    ApproximateRecord, CAPTIONS, Collection, FORMAT, FORMAT_VERSION, GraphRecord, IMAGES, ITEMS,
    MANIFEST, MODEL, Manifest,
};
use super::record::{FileRecord, file_digest};
use super::search::EmbeddingMatrix;
use super::second_stage::{CAPTION_SETS, IMAGE_SETS, SET_LENGTHS, head_name, write_sets};
use super::source::IndexSource;
use crate::ServeError;

/// Captions or images per forward pass while building.
const BATCH: usize = 256;

/// HNSW graphs to build beside the matrices, and how to measure them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApproximateOptions {
    /// Construction and search parameters of both graphs.
    pub parameters: HnswParameters,
    /// Most queries the recall@10 of each graph is measured over (rows of the other modality,
    /// spread evenly over it).
    pub recall_queries: usize,
}

impl ApproximateOptions {
    /// Whether graphs can be built and measured with these options; `Err` says why not.
    pub fn check(&self) -> Result<(), String> {
        let HnswParameters {
            ef_construction,
            ef_search,
            ..
        } = self.parameters;
        if ef_search < RECALL_K {
            return Err(format!(
                "ef_search {ef_search}: a search returns at most ef_search rows and recall@{RECALL_K} \
                 is measured, so it must be at least {RECALL_K}"
            ));
        }
        if ef_construction == 0 || self.recall_queries == 0 {
            return Err(format!(
                "ef_construction {ef_construction} and the recall queries {} must be at least 1",
                self.recall_queries
            ));
        }
        Ok(())
    }
}

impl Default for ApproximateOptions {
    fn default() -> Self {
        Self {
            parameters: HnswParameters::default(),
            recall_queries: 1000,
        }
    }
}

/// Encodes the split of `source` with the model of `checkpoint` and writes the index to
/// `output`. An existing index there is replaced only after the new one is complete; a folder
/// that is not an index is never replaced. For a model scored by a fine-grained head, the rows
/// are the l2-normalised means of its unit region and word sets (the first stage of a two-stage
/// search), and the sets are written beside them for the head to re-score (the second stage;
/// the manifest's `rerank` section). With `approximate`,
/// an HNSW graph over each matrix is built too, and its recall@10 against exact search measured
/// and recorded in the manifest.
pub fn build_index(
    checkpoint: &Checkpoint,
    source: &IndexSource,
    output: &Path,
    approximate: Option<&ApproximateOptions>,
    device: &Device,
    quiet: bool,
) -> Result<Manifest, ServeError> {
    if let Some(options) = approximate {
        options
            .check()
            .map_err(|e| ServeError::refused(output, e))?;
    }
    if output.exists() && !output.join(MANIFEST).is_file() {
        return Err(ServeError::refused(
            output,
            format!("exists and is not an index (no {MANIFEST}); refusing to replace it"),
        ));
    }
    let (model, config, tokenizer) = checkpoint.load(device)?;
    if config.similarity.has_global() && !config.similarity.is_cosine() {
        return Err(ServeError::refused(
            checkpoint.folder().join("model.json"),
            "the model's head adds the cosine of pooled vectors to a set score (a multi-grained \
             head): an index searches one of the two, not their sum; score a split with `itm \
             evaluate` instead",
        ));
    }
    let head = head_name(&config.similarity);
    source
        .check_model(&config)
        .map_err(|e| ServeError::refused(checkpoint.folder().join("model.json"), e))?;

    let staging = sibling(output, "building")?;
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| ServeError::io(&staging, e))?;
    let result = (|| {
        let scratch = staging.join(".pixels");
        let (split, items) = source.load(&scratch, &config.image)?;
        if items.images.is_empty() {
            return Err(ServeError::refused(
                output,
                "the split to index has no image",
            ));
        }
        let (embeddings, rerank) = match head {
            None => (
                encode_split(&model, &split, &tokenizer, device, BATCH, quiet)?,
                None,
            ),
            Some(head) => {
                let (images, captions) = encode_sets(&model, &split, &tokenizer, device)?;
                let record = write_sets(&staging, images.sets(), captions.sets(), head)?;
                let embeddings = Embeddings {
                    images: mean_of_sets(images.sets()),
                    captions: mean_of_sets(captions.sets()),
                    dim: images.sets().dim,
                };
                (embeddings, Some(record))
            }
        };
        drop(split);
        let _ = std::fs::remove_dir_all(&scratch);
        let dim = embeddings.dim;
        let n_images = items.images.len();
        let n_captions = items.captions.len();
        write_f32(&staging.join(IMAGES), &[n_images, dim], &embeddings.images)?;
        write_f32(
            &staging.join(CAPTIONS),
            &[n_captions, dim],
            &embeddings.captions,
        )?;
        let items_text = serde_json::to_vec(&items).expect("items serialise");
        atomic::write(&staging.join(ITEMS), &items_text)?;
        Checkpoint::new(staging.join(MODEL)).save(&model, &config, &tokenizer)?;
        let mut files = Vec::new();
        for name in [IMAGES, CAPTIONS, ITEMS] {
            files.push(record(&staging, name)?);
        }
        if rerank.is_some() {
            for name in [IMAGE_SETS, CAPTION_SETS, SET_LENGTHS] {
                files.push(record(&staging, name)?);
            }
        }
        let mut model_files: Vec<String> = std::fs::read_dir(staging.join(MODEL))
            .map_err(|e| ServeError::io(staging.join(MODEL), e))?
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with('.'))
            .collect();
        model_files.sort();
        for name in model_files {
            files.push(record(&staging, &format!("{MODEL}/{name}"))?);
        }
        let approximate = match approximate {
            Some(options) => Some(build_graphs(
                &staging,
                &embeddings,
                options,
                &mut files,
                quiet,
            )?),
            None => None,
        };
        let manifest = Manifest {
            format: FORMAT.to_string(),
            version: FORMAT_VERSION,
            dim,
            n_images,
            n_captions,
            similarity: "cosine".to_string(),
            checkpoint: checkpoint.folder().to_path_buf(),
            source: source.clone(),
            files,
            approximate,
            rerank,
        };
        let text = serde_json::to_string_pretty(&manifest).expect("the manifest serialises");
        atomic::write(&staging.join(MANIFEST), text.as_bytes())?;
        Ok::<_, ServeError>(manifest)
    })();
    let manifest = match result {
        Ok(manifest) => manifest,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    replace(&staging, output)?;
    Ok(manifest)
}

/// Builds, writes and measures an HNSW graph over each non-empty matrix of `staging`, adding
/// the graph files to `files` (where the matrices' records already are).
fn build_graphs(
    staging: &Path,
    embeddings: &Embeddings,
    options: &ApproximateOptions,
    files: &mut Vec<FileRecord>,
    quiet: bool,
) -> Result<ApproximateRecord, ServeError> {
    let dim = embeddings.dim;
    let values = |rows: Collection| match rows {
        Collection::Images => &embeddings.images,
        Collection::Captions => &embeddings.captions,
    };
    let mut graphs = Vec::new();
    for rows in [Collection::Images, Collection::Captions] {
        let count = values(rows).len() / dim;
        if count == 0 {
            continue;
        }
        if !quiet {
            eprintln!("building the HNSW graph over {count} {}s", rows.row_noun());
        }
        let started = Instant::now();
        let graph = HnswGraph::build(values(rows), dim, &options.parameters)?;
        let build_seconds = started.elapsed().as_secs_f64();
        let matrix = files
            .iter()
            .find(|file| file.name == rows.matrix_file())
            .expect("the matrices are recorded before the graphs");
        graph.save(&staging.join(rows.graph_file()), matrix)?;

        // Queries of the other modality, as a search would get; the rows themselves if there
        // are none.
        let queries_from = if values(rows.other()).is_empty() {
            rows
        } else {
            rows.other()
        };
        let queries = spread_rows(values(queries_from), dim, options.recall_queries);
        let exact = EmbeddingMatrix::open(&staging.join(rows.matrix_file()), "[rows, dim]")?
            .top_k(&queries, RECALL_K)?;
        let recall_at_10 = recall_at_k(&graph.top_k(&queries, RECALL_K), &exact);
        files.push(record(staging, rows.graph_file())?);
        graphs.push(GraphRecord {
            rows,
            file: rows.graph_file().to_string(),
            build_seconds,
            recall_at_10,
            recall_queries: queries.len() / dim,
            queries_from,
        });
    }
    Ok(ApproximateRecord {
        library: HNSW_LIBRARY.to_string(),
        parameters: options.parameters,
        graphs,
    })
}

/// At most `count` rows of `values` (`[n, dim]`), spread evenly from the first: `[min(count, n),
/// dim]`.
fn spread_rows(values: &[f32], dim: usize, count: usize) -> Vec<f32> {
    let n = values.len() / dim;
    let count = count.min(n);
    (0..count)
        .flat_map(|i| {
            let row = i * n / count;
            &values[row * dim..(row + 1) * dim]
        })
        .copied()
        .collect()
}

fn record(folder: &Path, name: &str) -> Result<FileRecord, ServeError> {
    let (sha256, bytes) = file_digest(&folder.join(name))?;
    Ok(FileRecord {
        name: name.to_string(),
        bytes,
        sha256,
    })
}

/// `.{name}.{what}-{pid}` beside `path`.
fn sibling(path: &Path, what: &str) -> Result<PathBuf, ServeError> {
    let name = path
        .file_name()
        .ok_or_else(|| ServeError::refused(path, "not a folder path"))?;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| ServeError::io(parent, e))?;
    Ok(parent.join(format!(
        ".{}.{what}-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Moves the complete `staging` folder to `output`, setting an existing index aside first and
/// deleting it only once the new one is in place (putting it back if the move fails).
fn replace(staging: &Path, output: &Path) -> Result<(), ServeError> {
    if !output.exists() {
        return std::fs::rename(staging, output).map_err(|e| {
            let _ = std::fs::remove_dir_all(staging);
            ServeError::io(output, e)
        });
    }
    let old = sibling(output, "old")?;
    let _ = std::fs::remove_dir_all(&old);
    std::fs::rename(output, &old).map_err(|e| {
        let _ = std::fs::remove_dir_all(staging);
        ServeError::io(output, e)
    })?;
    if let Err(e) = std::fs::rename(staging, output) {
        let _ = std::fs::rename(&old, output);
        let _ = std::fs::remove_dir_all(staging);
        return Err(ServeError::io(output, e));
    }
    std::fs::remove_dir_all(&old).map_err(|e| ServeError::io(&old, e))
}

/// Unit embeddings `[texts, D]` of `texts` under `model`.
pub fn encode_texts(
    model: &VseModel,
    tokenizer: &CaptionTokenizer,
    texts: &[String],
    device: &Device,
) -> Result<Vec<f32>, ServeError> {
    Ok(encode_captions(
        model, tokenizer, texts, device, BATCH, true,
    )?)
}

/// Unit embedding `[1, D]` of an image file under a pixel model with image tower `encoder`,
/// read as [`ImageTransform::for_encoder`] gives (`size`: the side of a ResNet or ViT).
pub fn encode_image_file(
    model: &VseModel,
    encoder: &ImageEncoderConfig,
    path: &Path,
    size: u32,
    device: &Device,
) -> Result<Vec<f32>, ServeError> {
    let transform = ImageTransform::for_encoder(encoder, size).ok_or_else(|| {
        ServeError::refused(path, "the model reads region features, not image files")
    })?;
    let batch = PixelBatch::load(&[path.to_path_buf()], &transform, None)?;
    Ok(model
        .encode_images(ImageBatch::Pixels(batch).to_input(device))
        .into_data()
        .try_into_vec::<f32>()
        .expect("f32 embeddings"))
}
