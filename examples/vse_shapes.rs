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
//! `--model NAME` trains a system of the zoo instead (`itm train --help` lists them), resolved
//! by the library exactly as `itm train --model NAME --data shapes` resolves it, at this
//! example's size:
//!
//! ```text
//! cargo run --example vse_shapes -- --model hrem
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Parser, ValueEnum};
use itm::burn::tensor::Device;
use itm::core::VseModelConfig;
use itm::core::encoders::TextEncoder;
use itm::core::eval::{Metrics, Protocol, evaluate};
use itm::core::fusion::MultiScaleFusionConfig;
use itm::core::models::SimilarityConfig;
use itm::core::similarity::{ChanConfig, EslConfig, ScanConfig, ScanDirection, XDimConfig};
use itm::data::images::ImageTransform;
use itm::data::karpathy::{self, KarpathySplit};
use itm::data::shapes::{RegionFeatureConfig, ShapesConfig, ShapesDataset};
use itm::data::{CaptionTokenizer, RetrievalSplit, SubwordTokenizer, Vocabulary};
use itm::train::{
    DataSection, RunConfig, RunOverrides, Trainer, TrainingConfig, evaluate_split, load_bert,
    sentence_max_length,
};

/// What the image tower reads.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq)]
enum Images {
    /// Precomputed region features (the VSE∞ "basic" encoder).
    Regions,
    /// Pixels through a small ResNet.
    Resnet,
    /// Pixels through a small ViT.
    Vit,
}

/// How a pair is scored.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq)]
enum Similarity {
    /// Cosine of the GPO-pooled vectors (VSE∞).
    Cosine,
    /// SCAN text-to-image attention, LogSumExp (λ1 = 9, λ2 = 6).
    ScanT2i,
    /// SCAN image-to-text attention, LogSumExp (λ1 = 4, λ2 = 5).
    ScanI2t,
    /// CHAN hard alignment, mean over words.
    Chan,
    /// CHAN over multi-scale fused regions (CHAN-ASDG; scales 1, 2, 4 and the image mean).
    ChanAsdg,
    /// ESL, adaptive aggregators, levels down to width 2.
    Esl,
    /// X-Dim dimension dependency.
    Xdim,
}

impl Similarity {
    fn config(self, d_embed: usize) -> SimilarityConfig {
        match self {
            Similarity::Cosine => SimilarityConfig::Cosine,
            Similarity::ScanT2i => SimilarityConfig::Scan(ScanConfig::new()),
            Similarity::ScanI2t => {
                SimilarityConfig::Scan(ScanConfig::new().with_direction(ScanDirection::ImageToText))
            }
            Similarity::Chan | Similarity::ChanAsdg => SimilarityConfig::Chan(ChanConfig::new()),
            Similarity::Esl => {
                let levels = (usize::BITS - d_embed.leading_zeros()) as usize - 1;
                SimilarityConfig::Esl(EslConfig::new(d_embed).with_levels(levels))
            }
            Similarity::Xdim => SimilarityConfig::XDim(XDimConfig::new(d_embed)),
        }
    }

    fn region_fusion(self, d_embed: usize) -> Option<MultiScaleFusionConfig> {
        (self == Similarity::ChanAsdg).then(|| MultiScaleFusionConfig::new(d_embed))
    }
}

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
    /// Image input and encoder: region features, or the rendered pixels through a ResNet or a
    /// ViT (the images are written as PNG files in Karpathy layout under the output folder).
    #[arg(long, value_enum, default_value_t = Images::Regions)]
    images: Images,
    /// A pretrained BERT-family folder (config.json, model.safetensors, tokenizer.json, e.g.
    /// all-MiniLM-L6-v2) to fine-tune as the text encoder (region images only).
    #[arg(long, value_name = "DIR")]
    bert: Option<PathBuf>,
    /// Side the pixels are resized to for the pixel encoders (rendered at 64).
    #[arg(long, default_value_t = 32)]
    pixel_size: u32,
    /// How a pair is scored: pooled vectors, or a fine-grained similarity of regions and words.
    #[arg(long, value_enum, default_value_t = Similarity::Cosine)]
    similarity: Similarity,
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
    if args.bert.is_some() && args.images != Images::Regions {
        return Err(
            "--bert fine-tunes BERT beside the region encoder: use it with --images regions".into(),
        );
    }
    let started = Instant::now();
    if let Some(name) = &args.model {
        return train_zoo(name, &args, device, started);
    }

    let data = ShapesDataset::generate(&ShapesConfig {
        seed: args.seed,
        train_images: args.train_images,
        regions: RegionFeatureConfig {
            d_feature: args.feature_width,
            ..RegionFeatureConfig::default()
        },
        ..ShapesConfig::default()
    });
    let vocab = Vocabulary::build(data.train.retrieval.captions.iter().map(String::as_str), 1);
    eprintln!(
        "shapes: {} train / {} dev / {} test images, vocabulary of {} words ({:.1}s)",
        data.train.scenes.len(),
        data.dev.scenes.len(),
        data.test.scenes.len(),
        vocab.len(),
        started.elapsed().as_secs_f64()
    );

    let (model, splits) = match args.images {
        Images::Regions => (
            VseModelConfig::vse_infinity_bigru_sized(
                args.feature_width,
                vocab.len(),
                args.embed,
                128,
            ),
            [
                data.train.retrieval.clone(),
                data.dev.retrieval.clone(),
                data.test.retrieval.clone(),
            ],
        ),
        pixels => {
            let json = data.write_karpathy(&args.output.join("shapes_images"))?;
            let root = json.parent().unwrap_or(Path::new(".")).join("images");
            let load = |split| {
                karpathy::load(&json, &root, split)?
                    .into_retrieval(ImageTransform::new(args.pixel_size))
            };
            let splits = [
                load(KarpathySplit::Train)?,
                load(KarpathySplit::Dev)?,
                load(KarpathySplit::Test)?,
            ];
            let side = args.pixel_size as usize;
            let model = match pixels {
                Images::Resnet => {
                    VseModelConfig::resnet_bigru(vec![16, 32, 64], vocab.len(), args.embed, 128)
                }
                _ => VseModelConfig::vit_bigru(side, side / 8, 64, 2, vocab.len(), args.embed, 128),
            };
            (model, splits)
        }
    };
    let [train, dev, test] = &splits;
    let model = model
        .with_similarity(args.similarity.config(args.embed))
        .with_region_fusion(args.similarity.region_fusion(args.embed));
    let training = TrainingConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        mask_same_image: args.mask_same_image,
        lr_decay_epoch: args.epochs.saturating_sub(1).max(1),
        ..TrainingConfig::default()
    };
    let trainer = Trainer::new(training, device.clone())
        .with_output(&args.output)
        .with_quiet(args.quiet);
    let (outcome, tokenizer) = match &args.bert {
        None => {
            let tokenizer = CaptionTokenizer::from(vocab);
            (trainer.fit(&model, train, dev, &tokenizer)?, tokenizer)
        }
        Some(folder) => {
            // VSE∞ with BERT: the pretrained transformer, a projection to D, GPO.
            let (bert, bert_config) = load_bert(folder, &trainer.training_device())?;
            let max_len = sentence_max_length(folder, &bert_config)?;
            let tokenizer = CaptionTokenizer::from(SubwordTokenizer::from_file(
                &folder.join("tokenizer.json"),
                max_len,
            )?);
            let model =
                VseModelConfig::vse_infinity_bert(args.feature_width, bert_config, args.embed);
            let mut initial = model.init(&trainer.training_device());
            if let TextEncoder::Bert(text) = &mut initial.text {
                text.bert = bert;
            }
            (
                trainer.fit_from(initial, &model, train, dev, &tokenizer)?,
                tokenizer,
            )
        }
    };

    let report = evaluate_split(
        &outcome.best_model,
        test,
        &tokenizer,
        &device,
        Protocol::Flickr30k,
        args.quiet,
    )?;
    let name = format!(
        "vse∞ {:?}{}",
        args.images,
        if args.bert.is_some() { "+bert" } else { "" }
    )
    .to_lowercase();
    print_results(
        &name,
        &report.metrics,
        outcome.best_epoch,
        &data,
        test,
        started,
        &args.output,
    );
    Ok(())
}

/// `--model NAME`: the run `itm train --model NAME --data shapes` would make, with this
/// example's data size, width, epochs, batch, rate, BERT folder, device and output folder.
fn train_zoo(
    name: &str,
    args: &Args,
    device: Device,
    started: Instant,
) -> Result<(), Box<dyn std::error::Error>> {
    let sizes = ShapesConfig::default();
    let config = RunConfig::from_overrides(RunOverrides {
        model: Some(name.to_string()),
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
        epochs: Some(args.epochs),
        batch_size: Some(args.batch_size),
        learning_rate: Some(args.lr),
        seed: None,
        device: Some(args.device.clone()),
        output: Some(args.output.clone()),
    })?;
    let data = config.data.shapes_dataset().expect("shapes data");
    // Region features, or the rendered pixels for a pixel tower (the `clip` entry).
    let splits = config.shapes_splits(&data);
    let run = config.train(&splits, device, false, args.quiet)?;
    print_results(
        name,
        &run.test.metrics,
        run.outcome.best_epoch,
        &data,
        &splits[2],
        started,
        &args.output,
    );
    Ok(())
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
    use itm::train::Checkpoint;

    /// `--model` parses, refuses the options whose choices the zoo entry makes, and trains the
    /// entry through the library (a tiny run: 60 training images, one epoch, `D` = 16).
    #[test]
    fn model_option_trains_a_zoo_system() {
        let output = std::env::temp_dir().join(format!("itm-example-zoo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&output);
        let args = Args::try_parse_from([
            "vse_shapes",
            "--model",
            "hrem",
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
        .unwrap();
        assert_eq!(args.model.as_deref(), Some("hrem"));
        for replaced in [["--similarity", "chan"], ["--images", "resnet"]] {
            let mut argv = vec!["vse_shapes", "--model", "hrem"];
            argv.extend(replaced);
            assert!(Args::try_parse_from(argv).is_err(), "{replaced:?}");
        }
        let device = itm::device::parse("flex").unwrap();
        let unknown = train_zoo("hrem9", &args, device.clone(), Instant::now()).unwrap_err();
        assert!(unknown.to_string().contains("hrem9"), "{unknown}");

        train_zoo("hrem", &args, device.clone(), Instant::now()).unwrap();
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
        train_zoo("clip", &args, device.clone(), Instant::now()).unwrap();
        let run = RunConfig::from_run_folder(&output).unwrap();
        assert_eq!((run.model.embed, run.model.image_size), (16, 224));
        let (model, _, _) = Checkpoint::new(&output).load(&device).unwrap();
        assert!(matches!(
            model.image,
            itm::core::encoders::ImageEncoder::Clip(_)
        ));
        let _ = std::fs::remove_dir_all(&output);
    }
}
