//! Building an index folder: encode a split with a checkpoint, write everything into a folder
//! beside the target, and move it into place only once it is complete.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use itm_core::VseModel;
use itm_core::encoders::ImageEncoderConfig;
use itm_data::images::{ImageTransform, PixelBatch};
use itm_data::npy::write_f32;
use itm_data::{CaptionTokenizer, DataError, ImageBatch, TokenBatch, atomic};

use super::format::{
    CAPTIONS, FORMAT, FORMAT_VERSION, FileRecord, IMAGES, ITEMS, MANIFEST, MODEL, Manifest,
    file_digest,
};
use super::source::IndexSource;
use crate::checkpoint::{Checkpoint, TrainError};
use crate::evaluate::{encode_split, host};

/// Captions or images per forward pass while building.
const BATCH: usize = 256;

fn refuse(path: &Path, message: impl Into<String>) -> TrainError {
    DataError::invalid(path, message).into()
}

/// Encodes the split of `source` with the model of `checkpoint` and writes the index to
/// `output`. An existing index there is replaced only after the new one is complete; a folder
/// that is not an index is never replaced. Models scored by a fine-grained similarity are
/// refused: an index holds one pooled vector per item, compared by cosine.
pub fn build_index(
    checkpoint: &Checkpoint,
    source: &IndexSource,
    output: &Path,
    device: &Device,
    quiet: bool,
) -> Result<Manifest, TrainError> {
    if output.exists() && !output.join(MANIFEST).is_file() {
        return Err(refuse(
            output,
            format!("exists and is not an index (no {MANIFEST}); refusing to replace it"),
        ));
    }
    let (model, config, tokenizer) = checkpoint.load(device)?;
    if model.fine_grained().is_some() {
        return Err(refuse(
            &checkpoint.folder().join("model.json"),
            format!(
                "the model scores pairs with a fine-grained similarity ({:?}); an index holds one \
                 pooled embedding per item compared by cosine, so only cosine models can be indexed",
                config.similarity
            ),
        ));
    }
    source
        .check_model(&config)
        .map_err(|e| refuse(&checkpoint.folder().join("model.json"), e))?;

    let staging = sibling(output, "building")?;
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
    let result = (|| {
        let scratch = staging.join(".pixels");
        let (split, items) = source.load(&scratch, &config.image)?;
        if items.images.is_empty() {
            return Err(refuse(output, "the split to index has no image"));
        }
        let embeddings = encode_split(&model, &split, &tokenizer, device, BATCH, quiet)?;
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
        let mut model_files: Vec<String> = std::fs::read_dir(staging.join(MODEL))
            .map_err(|e| DataError::io(staging.join(MODEL), e))?
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with('.'))
            .collect();
        model_files.sort();
        for name in model_files {
            files.push(record(&staging, &format!("{MODEL}/{name}"))?);
        }
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
        };
        let text = serde_json::to_string_pretty(&manifest).expect("the manifest serialises");
        atomic::write(&staging.join(MANIFEST), text.as_bytes())?;
        Ok::<_, TrainError>(manifest)
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

fn record(folder: &Path, name: &str) -> Result<FileRecord, DataError> {
    let (sha256, bytes) = file_digest(&folder.join(name))?;
    Ok(FileRecord {
        name: name.to_string(),
        bytes,
        sha256,
    })
}

/// `.{name}.{what}-{pid}` beside `path`.
fn sibling(path: &Path, what: &str) -> Result<PathBuf, DataError> {
    let name = path
        .file_name()
        .ok_or_else(|| DataError::invalid(path, "not a folder path"))?;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    Ok(parent.join(format!(
        ".{}.{what}-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Moves the complete `staging` folder to `output`, setting an existing index aside first and
/// deleting it only once the new one is in place (putting it back if the move fails).
fn replace(staging: &Path, output: &Path) -> Result<(), DataError> {
    if !output.exists() {
        return std::fs::rename(staging, output).map_err(|e| {
            let _ = std::fs::remove_dir_all(staging);
            DataError::io(output, e)
        });
    }
    let old = sibling(output, "old")?;
    let _ = std::fs::remove_dir_all(&old);
    std::fs::rename(output, &old).map_err(|e| {
        let _ = std::fs::remove_dir_all(staging);
        DataError::io(output, e)
    })?;
    if let Err(e) = std::fs::rename(staging, output) {
        let _ = std::fs::rename(&old, output);
        let _ = std::fs::remove_dir_all(staging);
        return Err(DataError::io(output, e));
    }
    std::fs::remove_dir_all(&old).map_err(|e| DataError::io(&old, e))
}

/// Unit embeddings `[texts, D]` of `texts` under `model`.
pub fn encode_texts(
    model: &VseModel,
    tokenizer: &CaptionTokenizer,
    texts: &[String],
    device: &Device,
) -> Result<Vec<f32>, DataError> {
    let encoded = tokenizer.encode_all(texts)?;
    let mut out = Vec::new();
    for chunk in encoded.chunks(BATCH) {
        let refs: Vec<&[i64]> = chunk.iter().map(Vec::as_slice).collect();
        let batch = TokenBatch::pad(&refs);
        out.extend(host(
            model.encode_captions(batch.to_tensor(device), &batch.lengths),
        ));
    }
    Ok(out)
}

/// Unit embedding `[1, D]` of an image file under a pixel model with image tower `encoder`,
/// read as [`ImageTransform::for_encoder`] gives (`size`: the side of a ResNet or ViT).
pub fn encode_image_file(
    model: &VseModel,
    encoder: &ImageEncoderConfig,
    path: &Path,
    size: u32,
    device: &Device,
) -> Result<Vec<f32>, DataError> {
    let transform = ImageTransform::for_encoder(encoder, size).ok_or_else(|| {
        DataError::invalid(path, "the model reads region features, not image files")
    })?;
    let batch = PixelBatch::load(&[path.to_path_buf()], &transform, None)?;
    Ok(host(
        model.encode_images(ImageBatch::Pixels(batch).to_input(device)),
    ))
}
