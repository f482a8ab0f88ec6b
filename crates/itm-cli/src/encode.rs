//! `itm encode`: embeddings of images or captions from a trained checkpoint.

use std::path::{Path, PathBuf};

use clap::Args;
use itm_core::encoders::ImageEncoderConfig;
use itm_core::similarity::HeadTable;
use itm_data::images::ImageTransform;
use itm_data::npy::write_f32;
use itm_data::{ImageSource, RegionFeatures};
use itm_train::{RunConfig, check_image_input, encode_captions, encode_images};

use crate::encode_text::read_captions;
use crate::evaluate::load_checkpoint;

/// `itm encode` options.
#[derive(Args, Debug)]
pub struct EncodeArgs {
    /// A checkpoint folder written by `itm train`.
    #[arg(long, value_name = "DIR")]
    checkpoint: PathBuf,
    /// Images to encode: region features (.npy, float32, [images, regions, features], e.g. a
    /// precomp {split}_ims.npy) for a region model, or a folder of PNG/JPEG files (encoded in
    /// file-name order) for a pixel model.
    #[arg(
        long,
        value_name = "regions.npy|DIR",
        required_unless_present = "captions",
        conflicts_with = "captions"
    )]
    images: Option<PathBuf>,
    /// Captions to encode: UTF-8 text, one non-empty caption per line.
    #[arg(long, value_name = "captions.txt")]
    captions: Option<PathBuf>,
    /// The embeddings (.npy, float32, [rows, D], unit length, input order), replaced
    /// atomically (the help text names the fine-grained heads: [`output_help`]).
    #[arg(long, value_name = "X.npy", help = output_help())]
    output: PathBuf,
    /// Images or captions per forward pass.
    #[arg(long, value_name = "N", default_value_t = 128)]
    batch_size: usize,
    /// Backend: flex (CPU), wgpu[:index] or cuda[:index].
    #[arg(long, value_name = "NAME", default_value = "flex")]
    device: String,
    /// No progress bars or progress lines.
    #[arg(long)]
    quiet: bool,
}

/// The help of `--output`, naming the fine-grained heads of the heads table.
fn output_help() -> String {
    let fine_grained = HeadTable::builtin()
        .fine_grained()
        .map(|head| head.name())
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "The embeddings (.npy, float32, [rows, D], unit length, input order), replaced \
         atomically. Only models scored by the cosine of pooled vectors are encoded: the \
         fine-grained heads ({fine_grained}) rank pairs from region and word features, and \
         their pooled vectors would not reproduce those rankings."
    )
}

/// Runs `itm encode`.
pub fn run(args: EncodeArgs) -> Result<(), String> {
    if args.batch_size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    let device = itm::device::parse(&args.device).map_err(|e| format!("--device: {e}"))?;
    let folder = &args.checkpoint;
    let (model, config, tokenizer) = load_checkpoint(folder, &device)?;
    if !model.is_cosine() {
        return Err(format!(
            "{}: this model scores pairs with a fine-grained similarity of region and word \
             features, not with the cosine of its pooled vectors alone, so `itm encode` writes \
             nothing; score a split with `itm evaluate --checkpoint {} --save-sims S.npy`",
            folder.display(),
            folder.display()
        ));
    }
    let values = match (&args.images, &args.captions) {
        (Some(path), _) => {
            let images = image_source(path, folder, &config.image)?;
            check_image_input(&config, &images).map_err(|e| format!("{}: {e}", path.display()))?;
            encode_images(&model, &images, &device, args.batch_size, args.quiet)
        }
        (None, Some(path)) => {
            let captions = read_captions(path)?;
            encode_captions(
                &model,
                &tokenizer,
                &captions,
                &device,
                args.batch_size,
                args.quiet,
            )
        }
        (None, None) => unreachable!("clap requires --images or --captions"),
    }
    .map_err(|e| e.to_string())?;
    let dim = config.image.d_embed();
    write_f32(&args.output, &[values.len() / dim, dim], &values).map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} embeddings of width {dim} to {}",
        values.len() / dim,
        args.output.display()
    );
    Ok(())
}

/// Region features from an .npy file, or the image files of a folder (sorted by name, read as
/// the model's image tower reads them: CLIP's own size and statistics, else the side of the
/// run that trained the checkpoint (or 224) and ImageNet's statistics).
fn image_source(
    path: &Path,
    checkpoint: &Path,
    encoder: &ImageEncoderConfig,
) -> Result<ImageSource, String> {
    if !path.is_dir() {
        return RegionFeatures::open_npy(path)
            .map(ImageSource::Regions)
            .map_err(|e| e.to_string());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|file| {
            file.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    if files.is_empty() {
        return Err(format!("{}: no PNG or JPEG files", path.display()));
    }
    files.sort();
    let size = RunConfig::from_run_folder(checkpoint)
        .map(|run| run.model.image_size)
        .unwrap_or(224);
    let transform = ImageTransform::for_encoder(encoder, size as u32).ok_or_else(|| {
        format!(
            "{}: the model reads region features, the data are image files",
            path.display()
        )
    })?;
    Ok(ImageSource::files(files, transform))
}
