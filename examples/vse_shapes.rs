//! The main job: train VSE∞ (region features + BiGRU + GPO) on the embedded `shapes` dataset,
//! then print the test table beside the attribute oracle's.
//!
//! ```text
//! cargo run --example vse_shapes            # CPU (flex)
//! cargo run --example vse_shapes --features wgpu -- --device wgpu
//! ```
//!
//! `--device` takes `flex`, `wgpu[:index]` or `cuda[:index]` (docs/backends.md).
//!
//! The example is a thin layer over the library's run: its options become a
//! [`RunConfig`](itm::train::RunConfig) (`--similarity` and `--images` choose from the zoo and
//! the towers table), which the library resolves, builds and trains as `itm train` does.
//!
//! `--model NAME` trains a system of the zoo with its own defaults (`itm train --help` lists
//! them), resolved by the library exactly as `itm train --model NAME --data shapes` resolves
//! it, at this example's size:
//!
//! ```text
//! cargo run --example vse_shapes -- --model hrem
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use itm::burn::tensor::Device;
use itm::core::eval::{Metrics, Protocol, evaluate};
use itm::core::similarity::HEADS;
use itm::data::RetrievalSplit;
use itm::data::shapes::{ShapesConfig, ShapesDataset};
use itm::train::zoo::{self, ZooEntry};
use itm::train::{
    DataSection, ImageTower, ResolvedRun, RunConfig, RunOverrides, TextTower, Towers,
    TrainingConfig,
};

/// Train and evaluate VSE∞ on `shapes`.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// A system of the zoo (`itm train --help` lists them): its pooling, head, fusion, loss and
    /// training defaults, as `itm train --model NAME --data shapes` resolves them, with
    /// --train-images, --feature-width, --seed (the data), --embed, --epochs, --batch-size,
    /// --lr, --bert, --device and --output applied over them.
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with_all = ["images", "pixel_size", "similarity", "mask_same_image"]
    )]
    model: Option<String>,
    /// Image input and encoder (the towers table): region features, or the rendered pixels
    /// through a ResNet or a ViT.
    #[arg(long, default_value = "regions", value_parser = image_tower)]
    images: ImageTower,
    /// A pretrained BERT-family folder (config.json, model.safetensors, tokenizer.json, e.g.
    /// all-MiniLM-L6-v2) to fine-tune as the text encoder (region images only), with the
    /// chosen similarity.
    #[arg(long, value_name = "DIR")]
    bert: Option<PathBuf>,
    /// Side the pixels are resized to for the pixel encoders (rendered at 64).
    #[arg(long, default_value_t = 32)]
    pixel_size: usize,
    /// How a pair is scored, with the example's VSE∞ towers and schedule (not the system's
    /// training defaults: --model takes those). The choices are read from the zoo and the
    /// heads table (see `similarity_choices`); `-` and `_` are the same.
    #[arg(long, default_value = "cosine", value_parser = similarity_system, help = similarity_help())]
    similarity: &'static ZooEntry,
    /// Backend: flex (CPU), wgpu[:index] or cuda[:index].
    #[arg(long, default_value = "flex")]
    device: String,
    /// Training epochs (VSE0 in the first, hardest negatives after; the rate decays ×0.1 for
    /// the last).
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Training images (5 captions each).
    #[arg(long, default_value_t = 10_000)]
    train_images: usize,
    /// Width of the synthetic region features (BUTD: 2048).
    #[arg(long, default_value_t = 256)]
    feature_width: usize,
    /// Joint embedding width D (published: 1024).
    #[arg(long, default_value_t = 128)]
    embed: usize,
    /// Captions per batch.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// AdamW learning rate (published: 5e-4).
    #[arg(long, default_value_t = 5e-4)]
    lr: f64,
    /// Exclude other captions of the same image from a batch's negatives.
    #[arg(long)]
    mask_same_image: bool,
    /// Dataset seed.
    #[arg(long, default_value_t = 2024)]
    seed: u64,
    /// Folder for the best checkpoint and metrics.jsonl.
    #[arg(long, default_value = "runs/vse_shapes")]
    output: PathBuf,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

/// Word embedding width of the example's BiGRU.
const WORD_DIM: usize = 128;

/// `--images`: a tower of the towers table that trains from scratch beside a BiGRU.
fn image_tower(name: &str) -> Result<ImageTower, String> {
    ImageTower::from_name(name)
        .filter(|tower| *tower != TextTower::Clip.default_image_tower())
        .ok_or_else(|| {
            let known: Vec<&str> = ImageTower::ALL
                .into_iter()
                .filter(|tower| *tower != TextTower::Clip.default_image_tower())
                .map(ImageTower::name)
                .collect();
            format!("unknown image tower {name:?}; known: {}", known.join(", "))
        })
}

/// The systems `--similarity` chooses from: the zoo's entries that are VSE∞'s BiGRU towers
/// with a scoring head (plain hinge loss, no extra layer), each with its names — the entry's,
/// and the heads table's name of its head when the entry is the first with that head.
fn similarity_choices() -> Vec<(Vec<&'static str>, &'static ZooEntry)> {
    let mut choices: Vec<(Vec<&'static str>, &'static ZooEntry)> = Vec::new();
    for entry in zoo::ZOO {
        let training = entry.training();
        if entry.text != TextTower::BiGru
            || entry.instance_relation
            || training.loss != TrainingConfig::default().loss
            || training.distinguishability > 0.0
        {
            continue;
        }
        let mut names = vec![entry.name];
        let head = entry.similarity(2).to_string();
        if let Some(row) = HEADS.iter().find(|row| row.config(2).to_string() == head)
            && !choices.iter().any(|(known, _)| known.contains(&row.name))
            && row.name != entry.name
        {
            names.push(row.name);
        }
        choices.push((names, entry));
    }
    choices
}

/// `--similarity`: a name of [`similarity_choices`].
fn similarity_system(value: &str) -> Result<&'static ZooEntry, String> {
    let name = value.replace('-', "_");
    similarity_choices()
        .into_iter()
        .find(|(names, _)| names.contains(&name.as_str()))
        .map(|(_, entry)| entry)
        .ok_or_else(|| format!("unknown similarity {value:?}; {}", similarity_list()))
}

/// The choices of `--similarity`, for the help and errors.
fn similarity_list() -> String {
    let names: Vec<String> = similarity_choices()
        .iter()
        .map(|(names, _)| names.join(" = "))
        .collect();
    format!("known: {}", names.join(", "))
}

/// The help of `--similarity`.
fn similarity_help() -> String {
    format!(
        "How a pair is scored, with the example's VSE∞ towers and schedule (--model takes a \
         system's own training defaults); {} [default: cosine]",
        similarity_list()
    )
}

fn row(name: &str, m: &Metrics) -> String {
    format!(
        "| {name:<12} | {:>5.1} | {:>5.1} | {:>5.1} | {:>5.1} | {:>5.1} | {:>5.1} | {:>6.1} |",
        m.i2t_recall[0],
        m.i2t_recall[1],
        m.i2t_recall[2],
        m.t2i_recall[0],
        m.t2i_recall[1],
        m.t2i_recall[2],
        m.rsum()
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As the `itm` command does: freed tensors stay in the process for the next step.
    itm::core::runtime::keep_freed_memory();
    let args = Args::parse();
    // A plain message (not `main`'s Debug print of the error) when the backend is not compiled
    // in or the machine has no such device.
    let device = match itm::device::parse(&args.device) {
        Ok(device) => device,
        Err(error) => {
            eprintln!("--device {}: {error}", args.device);
            std::process::exit(2);
        }
    };
    train(&args, device, Instant::now())
}

/// Trains the run the options describe ([`run_config`]) and prints its test table.
fn train(args: &Args, device: Device, started: Instant) -> Result<(), Box<dyn std::error::Error>> {
    let run = run_config(args)?;
    let data = run
        .data
        .shapes_dataset()
        .ok_or("the example trains on shapes")?;
    // Region features, or the rendered pixels for a pixel tower.
    let splits = run.shapes_splits(&data);
    let finished = run.train(&splits, device, false, args.quiet)?;
    print_results(
        &label(args, &run),
        &finished.test.metrics,
        finished.outcome.best_epoch,
        &data,
        &splits[2],
        started,
        &args.output,
    );
    Ok(())
}

/// The run the options describe. `--model NAME`: the run `itm train --model NAME --data
/// shapes` would make, with this example's data size, width, epochs, batch, rate, BERT folder,
/// device and output folder. Otherwise the `--similarity` system on the example's towers
/// (`--images`, a BiGRU of [`WORD_DIM`] words, or `--bert`) with its VSE∞ schedule: the
/// rate decays for the last epoch.
fn run_config(args: &Args) -> Result<ResolvedRun, Box<dyn std::error::Error>> {
    if args.bert.is_some() && args.images != ImageTower::Regions {
        return Err(
            "--bert fine-tunes BERT beside the region encoder: use it with --images regions".into(),
        );
    }
    let sizes = ShapesConfig::default();
    let run = RunConfig::from_overrides(RunOverrides {
        model: Some(match &args.model {
            Some(name) => name.clone(),
            None => args.similarity.name.to_string(),
        }),
        data: Some(DataSection::Shapes {
            seed: args.seed,
            train_images: args.train_images,
            dev_images: sizes.dev_images,
            test_images: sizes.test_images,
            feature_width: args.feature_width,
        }),
        embed: Some(args.embed),
        bert: args.bert.clone(),
        clip: None,
        swin: None,
        init: None,
        towers: None,
        tokenizer: None,
        local_weight: None,
        epochs: Some(args.epochs),
        batch_size: Some(args.batch_size),
        learning_rate: Some(args.lr),
        seed: None,
        device: Some(args.device.clone()),
        output: Some(args.output.clone()),
    })?;
    if args.model.is_some() {
        return Ok(run);
    }
    let mut config = run.into_config();
    config.model.towers = Towers::VseInfinity;
    config.model.word_dim = WORD_DIM;
    config.model.images = args.images;
    config.model.image_size = args.pixel_size;
    config.training = TrainingConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        mask_same_image: args.mask_same_image,
        lr_decay_epoch: args.epochs.saturating_sub(1).max(1),
        ..TrainingConfig::default()
    };
    Ok(config.resolve()?)
}

/// The model's name in the table: `--model`'s system, or the family of a cosine system
/// (`vse∞`) or the name of a fine-grained one, with its image tower and `+bert`.
fn label(args: &Args, run: &ResolvedRun) -> String {
    let entry = run.entry();
    if args.model.is_some() {
        return entry.name.to_string();
    }
    let system = if entry.is_cosine(run.model.embed) {
        entry.family.to_lowercase()
    } else {
        entry.name.to_string()
    };
    let bert = if run.model.bert.is_some() {
        "+bert"
    } else {
        ""
    };
    format!("{system} {}{bert}", run.model.images.name())
}

/// Prints the test table of the model (`name`, `metrics`) beside the attribute oracle's.
fn print_results(
    name: &str,
    metrics: &Metrics,
    best_epoch: usize,
    data: &ShapesDataset,
    test: &RetrievalSplit,
    started: Instant,
    output: &Path,
) {
    let oracle = evaluate(
        &data.test.oracle_scores(),
        test.n_images(),
        &test.caption_image,
        Protocol::Flickr30k,
    );
    println!(
        "\nshapes test: {} images, {} captions (Flickr30K 1K protocol), best epoch {}",
        test.n_images(),
        test.captions.len(),
        best_epoch
    );
    println!(
        "| {:<12} | i2t@1 | i2t@5 | i2t10 | t2i@1 | t2i@5 | t2i10 |  rsum  |",
        "model"
    );
    println!("|--------------|-------|-------|-------|-------|-------|-------|--------|");
    println!("{}", row(name, metrics));
    println!("{}", row("oracle", &oracle.metrics));
    println!(
        "\nrsum = {:.1}% of the oracle's; total time {:.0}s; checkpoint in {}",
        100.0 * metrics.rsum() / oracle.metrics.rsum(),
        started.elapsed().as_secs_f64(),
        output.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use itm::core::encoders::{ImageEncoder, TextEncoder};
    use itm::core::models::SimilarityConfig;
    use itm::train::Checkpoint;

    /// `--model` parses, refuses the options whose choices the zoo entry makes, and trains the
    /// entry through the library (a tiny run: 60 training images, one epoch, `D` = 16).
    #[test]
    fn model_option_trains_a_zoo_system() {
        let output = std::env::temp_dir().join(format!("itm-example-zoo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&output);
        let argv = |model: &str| {
            Args::try_parse_from([
                "vse_shapes",
                "--model",
                model,
                "--train-images",
                "60",
                "--epochs",
                "1",
                "--embed",
                "16",
                "--feature-width",
                "16",
                "--batch-size",
                "32",
                "--quiet",
                "--output",
                output.to_str().unwrap(),
            ])
            .unwrap()
        };
        let args = argv("hrem");
        assert_eq!(args.model.as_deref(), Some("hrem"));
        for replaced in [["--similarity", "chan"], ["--images", "resnet"]] {
            let mut argv = vec!["vse_shapes", "--model", "hrem"];
            argv.extend(replaced);
            assert!(Args::try_parse_from(argv).is_err(), "{replaced:?}");
        }
        let device = itm::device::parse("flex").unwrap();
        let unknown = train(&argv("hrem9"), device.clone(), Instant::now()).unwrap_err();
        assert!(unknown.to_string().contains("hrem9"), "{unknown}");

        train(&args, device.clone(), Instant::now()).unwrap();
        // The run is the one `itm train` resolves: the entry's defaults under the example's sizes.
        let run = RunConfig::from_run_folder(&output).unwrap();
        assert_eq!((run.model.name.as_str(), run.model.embed), ("hrem", 16));
        assert_eq!(
            (run.training.epochs, run.training.relation_warmup_steps),
            (1, 8000)
        );
        let (model, config, _) = Checkpoint::new(&output).load(&device).unwrap();
        assert!(model.instance_relation.is_some() && config.instance_relation.is_some());
        let _ = std::fs::remove_dir_all(&output);
    }

    /// `--model clip` trains CLIP's towers on the rendered pixels (a tiny run: 20 training
    /// images, one epoch, `D` = 16, CLIP's own 224-pixel side).
    #[test]
    fn model_option_trains_clip_on_pixels() {
        let output = std::env::temp_dir().join(format!("itm-example-clip-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&output);
        let args = Args::try_parse_from([
            "vse_shapes",
            "--model",
            "clip",
            "--train-images",
            "20",
            "--epochs",
            "1",
            "--embed",
            "16",
            "--batch-size",
            "20",
            "--quiet",
            "--output",
            output.to_str().unwrap(),
        ])
        .unwrap();
        let device = itm::device::parse("flex").unwrap();
        train(&args, device.clone(), Instant::now()).unwrap();
        let run = RunConfig::from_run_folder(&output).unwrap();
        assert_eq!((run.model.embed, run.model.image_size), (16, 224));
        let (model, _, _) = Checkpoint::new(&output).load(&device).unwrap();
        assert!(matches!(model.image, ImageEncoder::Clip(_)));
        let _ = std::fs::remove_dir_all(&output);
    }

    /// The defaults are the README's main run: VSE∞ (cosine) on regions with the example's
    /// BiGRU and schedule, labelled `vse∞ regions`; every documented `--similarity` spelling
    /// names a system of the zoo.
    #[test]
    fn options_map_onto_the_library_run() {
        let args = Args::try_parse_from(["vse_shapes"]).unwrap();
        let run = run_config(&args).unwrap();
        assert_eq!(run.entry().name, "vse_infinity_bigru");
        assert_eq!((run.model.embed, run.model.word_dim), (128, WORD_DIM));
        assert_eq!(run.model.images, ImageTower::Regions);
        assert_eq!((run.training.epochs, run.training.lr_decay_epoch), (3, 2));
        assert_eq!(run.training.margin, TrainingConfig::default().margin);
        assert_eq!(label(&args, &run), "vse∞ regions");
        for (spelling, system) in [
            ("cosine", "vse_infinity_bigru"),
            ("scan-t2i", "scan_t2i"),
            ("scan-i2t", "scan_i2t"),
            ("chan", "chan"),
            ("chan-asdg", "chan_asdg"),
            ("esl", "esl_a"),
            ("esl-h", "esl_h"),
            ("xdim", "xdim"),
        ] {
            let args = Args::try_parse_from(["vse_shapes", "--similarity", spelling]).unwrap();
            assert_eq!(args.similarity.name, system, "{spelling}");
        }
        let error = Args::try_parse_from(["vse_shapes", "--similarity", "hrem"]).unwrap_err();
        assert!(error.to_string().contains("xdim"), "{error}");
        let error = Args::try_parse_from(["vse_shapes", "--images", "clip"]).unwrap_err();
        assert!(error.to_string().contains("resnet"), "{error}");
    }

    /// A tiny `shapes` training split as the run's image tower reads it.
    fn tiny_train(run: &ResolvedRun) -> RetrievalSplit {
        let data = run.data.shapes_dataset().unwrap();
        let [train, _, _] = run.shapes_splits(&data);
        train
    }

    /// `--bert` keeps `--similarity` and the fusion (it used to rebuild plain VSE∞-BERT) and
    /// the table says so.
    #[test]
    fn bert_keeps_the_similarity_and_the_fusion() {
        let folder =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/itm-train/tests/fixtures/tiny_bert");
        let args = Args::try_parse_from([
            "vse_shapes",
            "--similarity",
            "chan-asdg",
            "--bert",
            folder.to_str().unwrap(),
            "--embed",
            "16",
            "--feature-width",
            "8",
            "--train-images",
            "4",
        ])
        .unwrap();
        let run = run_config(&args).unwrap();
        assert_eq!(label(&args, &run), "chan_asdg regions+bert");
        let built = run.build(&tiny_train(&run), &Device::flex()).unwrap();
        assert!(matches!(built.config.similarity, SimilarityConfig::Chan(_)));
        assert!(built.config.region_fusion.is_some());
        assert!(matches!(built.model.text, TextEncoder::Bert(_)));
        assert!(built.model.fine_grained().is_some() && !built.model.is_cosine());
    }

    /// `--similarity esl --embed 100` builds ESL with the heads table's 3 levels (widths 100,
    /// 50, 25) instead of panicking on 6.
    #[test]
    fn esl_at_a_width_with_few_halvings_builds() {
        let args = Args::try_parse_from([
            "vse_shapes",
            "--similarity",
            "esl",
            "--embed",
            "100",
            "--feature-width",
            "8",
            "--train-images",
            "4",
        ])
        .unwrap();
        let run = run_config(&args).unwrap();
        let built = run.build(&tiny_train(&run), &Device::flex()).unwrap();
        let SimilarityConfig::Esl(esl) = &built.config.similarity else {
            panic!("ESL")
        };
        assert_eq!(esl.levels, 3);
        assert_eq!(label(&args, &run), "esl_a regions");
    }
}
