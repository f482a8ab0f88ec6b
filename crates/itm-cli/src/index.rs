//! `itm index build --checkpoint DIR --data SPEC --output INDEX`.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use clap::{Args, Subcommand};
use itm_core::encoders::ImageEncoderConfig;
use itm_data::shapes::{RegionFeatureConfig, ShapesConfig};
use itm_serve::index::{
    ApproximateOptions, Collection, HNSW_LIBRARY, HNSW_M, HnswParameters, IndexSource, Manifest,
    RECALL_K, build_index,
};
use itm_train::Checkpoint;

/// Index commands.
#[derive(Subcommand, Debug)]
pub enum IndexCommand {
    /// Encode the images and captions of a split with a checkpoint into an index folder.
    ///
    /// The folder holds images.npy [N, D] and captions.npy [M, D] (float32, unit rows),
    /// items.json (ids, file names, captions), a copy of the checkpoint (model/) and
    /// manifest.json with the length and SHA-256 of every file. It is written beside OUTPUT and
    /// moved into place when complete; an existing index is replaced only then. For a
    /// fine-grained model (SCAN, CHAN, ESL, X-Dim) the rows are the means of its unit region
    /// and word features (the first stage of a two-stage search), and the sets themselves are
    /// written too (image_sets.npy, caption_sets.npy, set_lengths.json) for its head to
    /// re-score the first stage's top k.
    ///
    /// With --approximate it also builds an HNSW graph over each matrix (images.hnsw,
    /// captions.hnsw), measures its recall@10 against exact search on up to --recall-queries
    /// rows of the other modality, prints it and records it in the manifest; `itm search`
    /// then uses the graphs.
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
    /// Also build HNSW graphs for approximate search (instant-distance, whose M is fixed at 32).
    #[arg(long)]
    approximate: bool,
    /// HNSW efConstruction: candidates kept while linking each point (higher: better graph,
    /// slower build).
    #[arg(long, value_name = "N", requires = "approximate", default_value_t = HnswParameters::default().ef_construction)]
    ef_construction: usize,
    /// HNSW ef at search time, stored in the graph: candidates kept per query, and the most
    /// results an approximate search returns (at least 10).
    #[arg(long, value_name = "N", requires = "approximate", default_value_t = HnswParameters::default().ef_search)]
    ef_search: usize,
    /// Seed of the HNSW layer assignment.
    #[arg(long, value_name = "SEED", requires = "approximate", default_value_t = HnswParameters::default().seed)]
    hnsw_seed: u64,
    /// Most queries the recall@10 of each graph is measured over.
    #[arg(long, value_name = "N", requires = "approximate", default_value_t = ApproximateOptions::default().recall_queries)]
    recall_queries: usize,
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
        | ImageEncoderConfig::Clip(_)
        | ImageEncoderConfig::SwinLevels(_) => None,
    };
    let approximate = args.approximate.then_some(ApproximateOptions {
        parameters: HnswParameters {
            ef_construction: args.ef_construction,
            ef_search: args.ef_search,
            seed: args.hnsw_seed,
        },
        recall_queries: args.recall_queries,
    });
    if let Some(options) = &approximate {
        options.check()?;
    }
    let source = source(args, region_width)?;
    let started = std::time::Instant::now();
    let manifest = build_index(
        &checkpoint,
        &source,
        &args.output,
        approximate.as_ref(),
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
    print_graphs(&manifest);
    Ok(())
}

/// One line per HNSW graph: its size, build time and measured recall.
fn print_graphs(manifest: &Manifest) {
    let Some(approximate) = &manifest.approximate else {
        return;
    };
    let parameters = &approximate.parameters;
    for graph in &approximate.graphs {
        let rows = match graph.rows {
            Collection::Images => manifest.n_images,
            Collection::Captions => manifest.n_captions,
        };
        println!(
            "HNSW {} ({HNSW_LIBRARY}, M {HNSW_M}, ef_construction {}, ef_search {}): {rows} {}s in \
             {:.1}s; recall@{RECALL_K} {:.4} against exact search over {} {} queries",
            graph.file,
            parameters.ef_construction,
            parameters.ef_search,
            graph.rows.row_noun(),
            graph.build_seconds,
            graph.recall_at_10,
            graph.recall_queries,
            graph.queries_from.row_noun(),
        );
    }
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
