//! `itm index build --checkpoint DIR --data SPEC --output INDEX`.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use clap::{Args, Subcommand};
use itm_core::encoders::ImageEncoderConfig;
use itm_data::shapes::{RegionFeatureConfig, ShapesConfig};
use itm_train::Checkpoint;
use itm_train::index::{IndexSource, build_index};

/// Index commands.
#[derive(Subcommand, Debug)]
pub enum IndexCommand {
    /// Encode the images and captions of a split with a checkpoint into an index folder.
    ///
    /// The folder holds images.npy [N, D] and captions.npy [M, D] (float32, unit rows),
    /// items.json (ids, file names, captions), a copy of the checkpoint (model/) and
    /// manifest.json with the length and SHA-256 of every file. It is written beside OUTPUT and
    /// moved into place when complete; an existing index is replaced only then. Only models
    /// scored by cosine of pooled embeddings can be indexed (not SCAN, CHAN, ESL, X-Dim).
    Build(BuildArgs),
}

/// Options of `itm index build`.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The checkpoint folder (model.bpk, model.json, vocab.json or tokenizer.json).
    #[arg(long, value_name = "DIR")]
    checkpoint: PathBuf,
    /// `shapes` (the embedded dataset), a SCAN precomp folder, or a Karpathy split JSON.
    #[arg(long, value_name = "shapes|DIR|JSON")]
    data: String,
    /// The split to index: train, dev or test (precomp also: testall).
    #[arg(long, default_value = "test")]
    split: String,
    /// Image folder of a Karpathy JSON (default: the JSON's folder).
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,
    /// Side pixels are resized to, for pixel models (ResNet, ViT).
    #[arg(long, default_value_t = 32)]
    pixel_size: u32,
    /// shapes: dataset seed (as used in training).
    #[arg(long, default_value_t = 2024)]
    shapes_seed: u64,
    /// shapes: images in the split.
    #[arg(long, default_value_t = 1000)]
    shapes_images: usize,
    /// shapes: regions per image (region models; the feature width comes from the model).
    #[arg(long, default_value_t = 12)]
    shapes_regions: usize,
    /// The index folder to write.
    #[arg(long, value_name = "INDEX")]
    output: PathBuf,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Runs an index command.
pub fn run(command: &IndexCommand) -> Result<(), String> {
    match command {
        IndexCommand::Build(args) => build(args),
    }
}

fn build(args: &BuildArgs) -> Result<(), String> {
    let checkpoint = Checkpoint::new(&args.checkpoint);
    if !args.checkpoint.is_dir() {
        return Err(format!(
            "{}: no such checkpoint folder",
            args.checkpoint.display()
        ));
    }
    let config = checkpoint.config().map_err(|e| e.to_string())?;
    let region_width = match &config.image {
        ImageEncoderConfig::Regions(regions) => Some(regions.d_feature),
        ImageEncoderConfig::ResNet(_)
        | ImageEncoderConfig::Vit(_)
        | ImageEncoderConfig::Clip(_) => None,
    };
    let source = source(args, region_width)?;
    let started = std::time::Instant::now();
    let manifest = build_index(
        &checkpoint,
        &source,
        &args.output,
        &Device::default(),
        args.quiet,
    )
    .map_err(|e| e.to_string())?;
    println!(
        "indexed {} images and {} captions (D = {}) into {} in {:.1}s",
        manifest.n_images,
        manifest.n_captions,
        manifest.dim,
        args.output.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn source(args: &BuildArgs, region_width: Option<usize>) -> Result<IndexSource, String> {
    let data = Path::new(&args.data);
    if args.data == "shapes" {
        let n = args.shapes_images;
        let mut config = ShapesConfig {
            seed: args.shapes_seed,
            train_images: 0,
            dev_images: 0,
            test_images: 0,
            regions: RegionFeatureConfig {
                // Pixel models do not read the features: keep their synthesis small.
                d_feature: region_width.unwrap_or(16),
                n_regions: args.shapes_regions,
                ..RegionFeatureConfig::default()
            },
        };
        match args.split.as_str() {
            "train" => config.train_images = n,
            "dev" | "val" => config.dev_images = n,
            "test" => config.test_images = n,
            other => {
                return Err(format!("--split {other}: shapes has train, dev and test"));
            }
        }
        Ok(IndexSource::Shapes {
            config,
            split: args.split.clone(),
            pixel_size: region_width.is_none().then_some(args.pixel_size),
        })
    } else if data.is_dir() {
        Ok(IndexSource::Precomp {
            folder: data.to_path_buf(),
            split: args.split.clone(),
        })
    } else if data.is_file() {
        let images = args
            .images
            .clone()
            .unwrap_or_else(|| data.parent().unwrap_or(Path::new(".")).to_path_buf());
        Ok(IndexSource::Karpathy {
            json: data.to_path_buf(),
            images,
            split: args.split.clone(),
            pixel_size: args.pixel_size,
        })
    } else {
        Err(format!(
            "{}: --data is neither `shapes`, a precomp folder nor a Karpathy JSON file",
            args.data
        ))
    }
}
