//! `itm train`: a zoo system on shapes, a precomp folder or a Karpathy dataset, from a
//! `run.toml`, flags, or both; `itm train --resume DIR` continues a stopped run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::tensor::Device;
use clap::Args;
use itm_core::eval::Protocol;
use itm_core::similarity::HEADS;
use itm_data::Tokenization;
use itm_train::{
    DataSection, ImageTower, Progress, RUN_FILE, RegionTower, ResolvedRun, RunConfig, RunError,
    RunOverrides, TextTower, Towers, zoo,
};

use crate::evaluate::print_table;

/// `itm train` options.
#[derive(Args, Debug)]
#[command(after_long_help = zoo_help())]
pub struct TrainArgs {
    /// A run configuration (TOML): [model], [data], [training], device, output. Any key may be
    /// left out: the system's published defaults fill it. The flags below override the file.
    #[arg(long, value_name = "run.toml")]
    config: Option<PathBuf>,
    /// Continue the run in DIR where it stopped (after its last completed epoch), with the
    /// configuration it wrote (DIR/run.toml). Only --epochs, --device, --quiet and
    /// --progress-interval may be given.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with_all = [
            "config", "model", "data", "embed", "bert", "clip", "swin", "init", "towers",
            "tokenizer", "local_weight", "batch_size", "lr", "seed", "output"
        ]
    )]
    resume: Option<PathBuf>,
    /// The system (model.name); the list is below.
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
    /// The data: `shapes` (generated), a precomp folder, or a Karpathy JSON (images beside it
    /// in `images/`).
    #[arg(long, value_name = "shapes|DIR|JSON")]
    data: Option<String>,
    /// Joint embedding width D (model.embed).
    #[arg(long, value_name = "D")]
    embed: Option<usize>,
    /// A Hugging Face CLIP folder (config.json, model.safetensors, tokenizer.json) that the
    /// clip entry starts from (model.clip).
    #[arg(long, value_name = "DIR")]
    clip: Option<PathBuf>,
    /// A pretrained BERT-family folder (config.json, model.safetensors, tokenizer.json) for the
    /// text tower (model.bert): VSE∞'s BERT tower, or the BERT levels of hat and daim.
    #[arg(long, value_name = "DIR")]
    bert: Option<PathBuf>,
    /// A Hugging Face Swin folder (config.json, model.safetensors) that the Swin levels of hat
    /// and daim start from (model.swin).
    #[arg(long, value_name = "DIR")]
    swin: Option<PathBuf>,
    /// Fine-tune the model of an itm checkpoint folder (written by `itm train` or `itm
    /// import`): its architecture, weights and tokenizer; the recipe comes from --model
    /// (model.init).
    #[arg(long, value_name = "DIR")]
    init: Option<PathBuf>,
    /// `system` (default): the system's own region tower (SCAN's and CHAN's fc, CHAN's
    /// self-attention block); `vse_infinity`: VSE∞'s region tower under the system's head, for
    /// ablations (model.towers).
    #[arg(long, value_name = "system|vse_infinity", value_parser = parse_towers)]
    towers: Option<Towers>,
    /// How the BiGRU vocabulary splits captions: `simple` (itm's rule, default) or `nltk`
    /// (NLTK's word_tokenize, as the published BiGRU systems did) (model.tokenizer).
    #[arg(long, value_name = "simple|nltk", value_parser = parse_tokenizer)]
    tokenizer: Option<Tokenization>,
    /// The weight w of a multi-grained head's local score, S = S_global + w · S_local (aahr:
    /// 1; 0 leaves the cosine of the pooled vectors alone, an ablation) (model.local_weight).
    #[arg(long, value_name = "W")]
    local_weight: Option<f64>,
    /// Training epochs (training.epochs); with --resume, a longer run than first planned.
    #[arg(long, value_name = "N")]
    epochs: Option<usize>,
    /// Captions per batch (training.batch_size).
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// Learning rate (training.learning_rate).
    #[arg(long, value_name = "LR")]
    lr: Option<f64>,
    /// Seed of initialisation, data order and augmentation (training.seed).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Backend: flex (CPU), wgpu[:index] or cuda[:index] (device).
    #[arg(long, value_name = "NAME")]
    device: Option<String>,
    /// Folder of the checkpoint, metrics.jsonl, metrics.csv, chart.png, run.toml and the
    /// resume state (output; default runs/<system>).
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// No progress bars or progress lines (epoch summaries are still printed).
    #[arg(long)]
    quiet: bool,
    /// When stderr is not a terminal (a log file, nohup, a cluster job), write a progress line
    /// (phase, step/total, steps/s, running loss, ETA) every SECONDS (fractions allowed; 0:
    /// every step). Default: the ITM_PROGRESS_INTERVAL environment variable, else 30. A
    /// terminal shows a bar instead.
    #[arg(long, value_name = "SECONDS", value_parser = Progress::parse_interval)]
    progress_interval: Option<Duration>,
}

/// One line for `itm --help`: the families of the zoo, read from it.
pub fn about() -> String {
    format!(
        "Train a system of the zoo ({}) and evaluate its best epoch.",
        zoo::families()
    )
}

/// [`about`] and what a run reads and writes, for `itm train --help`.
pub fn long_about() -> String {
    format!(
        "{}\n\nFrom a run.toml, from flags, or both (flags win); `--resume DIR` continues a \
         stopped run exactly where it stopped. The best checkpoint, metrics (JSON lines and \
         CSV), a PNG chart, the effective run.toml and the resume state go to the output folder.",
        about()
    )
}

/// The zoo, for the end of `itm train --help`.
fn zoo_help() -> String {
    let mut text = String::from("Systems (--model, model.name):\n");
    for entry in zoo::ZOO {
        text.push_str(&format!(
            "  {:<20} {} (D = {})\n  {:<20}   {}\n",
            entry.name, entry.summary, entry.d_embed, "", entry.citation
        ));
    }
    text.push_str("\nScoring heads (the heads table):\n");
    for head in HEADS {
        text.push_str(&format!("  {:<20} {}\n", head.name, head.summary));
    }
    text.push_str("\nImage towers ([model] images):\n");
    for tower in ImageTower::ALL {
        text.push_str(&format!("  {:<20} {}\n", tower.name(), tower.summary()));
    }
    text.push_str(
        "\nRegion towers (each system's own; --towers vse_infinity gives every head VSE∞'s):\n",
    );
    for tower in RegionTower::ALL {
        let systems: Vec<&str> = zoo::ZOO
            .iter()
            .filter(|entry| entry.regions == tower)
            .map(|entry| entry.name)
            .collect();
        text.push_str(&format!(
            "  {:<20} {} [{}]\n",
            tower.name(),
            tower.summary(),
            systems.join(", ")
        ));
    }
    text.push_str("\nText towers:\n");
    for tower in TextTower::ALL {
        text.push_str(&format!("  {:<20} {}\n", tower.name(), tower.summary()));
    }
    text.push_str(
        "\nLosses ([training] loss): \"hinge\" (VSE++, fixed margin), \"adaptive_margin\" \
         (DAIM: margin from running score statistics), \"ambiguity_aware\" (AAHR: ambiguous \
         negatives down-weighted), \"info_nce\" (CLIP: learned temperature); \
         distinguishability = λ adds DAIM's distinguishability term (systems with pooled \
         vectors).\n",
    );
    text.push_str(
        "\nAblations ([model] keys): instance_relation = false removes HREM's relation layer \
         (hrem, aahr; true adds it to a system with pooled vectors), local_weight = 0 (or \
         --local-weight 0) removes a multi-grained head's local score (aahr); [training] loss \
         = \"hinge\" removes the ambiguity-aware weighting.\n",
    );
    text.push_str(
        "\nOutput: the best checkpoint (model.bpk, model.json, vocab.json or tokenizer.json), \
         metrics.jsonl and metrics.csv (one line per epoch), chart.png (loss, margin and \
         validation rsum per epoch), run.toml (the effective configuration) and the resume \
         state (resume.json and resume-<epoch>/, replaced after every epoch).",
    );
    text
}

/// Runs `itm train`.
pub fn run(args: TrainArgs) -> Result<(), String> {
    if let Some(interval) = args.progress_interval {
        Progress::set_interval(interval);
    }
    let overrides = RunOverrides {
        model: args.model,
        data: args.data.as_deref().map(DataSection::from_argument),
        embed: args.embed,
        clip: args.clip,
        init: args.init,
        towers: args.towers,
        tokenizer: args.tokenizer,
        local_weight: args.local_weight,
        bert: args.bert,
        swin: args.swin,
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        seed: args.seed,
        device: args.device,
        output: args.resume.clone().or(args.output),
    };
    let (config, origin) = match (&args.resume, &args.config) {
        (Some(folder), _) => {
            check_folder(folder)?;
            let path = folder.join(RUN_FILE);
            (
                RunConfig::from_file(&path, overrides),
                path.display().to_string(),
            )
        }
        (None, Some(path)) => (
            RunConfig::from_file(path, overrides),
            path.display().to_string(),
        ),
        (None, None) => (RunConfig::from_overrides(overrides), "command line".into()),
    };
    let config = config.map_err(|e| e.to_string())?;
    let device =
        itm::device::parse(&config.device).map_err(|e| format!("{origin}: device: {e}"))?;
    train(&config, device, args.resume.is_some(), args.quiet).map_err(|e| e.to_string())
}

fn check_folder(folder: &Path) -> Result<(), String> {
    if folder.is_dir() {
        Ok(())
    } else {
        Err(format!("{}: no such run folder", folder.display()))
    }
}

fn train(config: &ResolvedRun, device: Device, resume: bool, quiet: bool) -> Result<(), RunError> {
    let splits = config.load_data()?;
    let run = config.train(&splits, device, resume, quiet)?;
    let test = &splits[2];
    println!(
        "best epoch {} of {}; test split, whole-matrix protocol:",
        run.outcome.best_epoch,
        run.outcome.history.len()
    );
    print_table(
        &run.test.metrics,
        Protocol::Flickr30k,
        test.n_images(),
        test.captions.len(),
    );
    println!("run folder: {}", config.output.display());
    Ok(())
}

/// `--towers`: the run schema's spelling.
fn parse_towers(value: &str) -> Result<Towers, String> {
    match value {
        "system" => Ok(Towers::System),
        "vse_infinity" => Ok(Towers::VseInfinity),
        other => Err(format!("{other:?} is not system or vse_infinity")),
    }
}

/// `--tokenizer`: the vocabulary file's spelling.
fn parse_tokenizer(value: &str) -> Result<Tokenization, String> {
    match value {
        "simple" => Ok(Tokenization::Simple),
        "nltk" => Ok(Tokenization::Nltk),
        other => Err(format!("{other:?} is not simple or nltk")),
    }
}
