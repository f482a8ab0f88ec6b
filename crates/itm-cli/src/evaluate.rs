//! `itm evaluate`: a saved similarity matrix (`--sims`), or one or several checkpoints scored on
//! a dataset split (`--checkpoint`; several: an ensemble averaging their matrices).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use clap::{Args, ValueEnum};
use itm_core::eval::{Metrics, Protocol, evaluate};
use itm_data::images::ImageTransform;
use itm_data::npy::{FloatArray, write_f32};
use itm_train::{
    Checkpoint, DataSection, RunConfig, check_image_input, evaluate_split_two_stage, score_split,
    score_split_levels,
};
use rayon::prelude::*;

/// `itm evaluate` options.
#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// A similarity matrix (.npy, float32, [N, 5N]: rows are images, columns captions,
    /// captions 5i..5i+4 describe image i).
    #[arg(long, value_name = "S.npy", required_unless_present = "checkpoint")]
    sims: Option<PathBuf>,
    /// A checkpoint folder written by `itm train` (model.bpk, model.json, vocabulary). Repeat
    /// it for an ensemble: the similarity matrices are averaged.
    #[arg(long, value_name = "DIR", conflicts_with = "sims")]
    checkpoint: Vec<PathBuf>,
    /// The data to score: `shapes` (the defaults of `itm train --data shapes`), a precomp
    /// folder, or a Karpathy JSON. Default: the [data] of the first checkpoint's run.toml.
    #[arg(long, value_name = "shapes|DIR|JSON", requires = "checkpoint")]
    data: Option<String>,
    /// The split: train, dev or test (precomp folders: any split they have, e.g. testall).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "test",
        requires = "checkpoint"
    )]
    split: String,
    /// f30k and coco5k rank over the whole matrix; coco1k averages 5 folds of N/5 images.
    #[arg(long, value_enum, default_value_t = ProtocolArg::F30k)]
    protocol: ProtocolArg,
    /// Print one JSON object (i2t_r1 … t2i_meanr, rsum) instead of a table; a multi-level
    /// model (hat, daim) adds `levels`: the same metrics of each level's scores alone.
    #[arg(long)]
    json: bool,
    /// Also write the (averaged) similarity matrix (.npy, float32, [images, captions]).
    #[arg(long, value_name = "S.npy", requires = "checkpoint")]
    save_sims: Option<PathBuf>,
    /// Backend: flex (CPU), wgpu[:index] or cuda[:index].
    #[arg(long, value_name = "NAME", default_value = "flex")]
    device: String,
    /// No progress bars or progress lines.
    #[arg(long)]
    quiet: bool,
    /// Two-stage scoring of a fine-grained model: per query, the first stage (cosine of mean
    /// region and word features) keeps K items and the head re-scores them; reported as a
    /// two-stage result, not as the protocol's (which scores every pair: omit this option).
    #[arg(
        long,
        value_name = "K",
        requires = "checkpoint",
        conflicts_with = "save_sims"
    )]
    rerank_top: Option<usize>,
}

/// Evaluation protocols.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum ProtocolArg {
    /// Flickr30K 1K: the whole matrix.
    F30k,
    /// COCO 1K: mean over 5 folds.
    Coco1k,
    /// COCO 5K: the whole matrix.
    Coco5k,
}

impl From<ProtocolArg> for Protocol {
    fn from(value: ProtocolArg) -> Self {
        match value {
            ProtocolArg::F30k => Self::Flickr30k,
            ProtocolArg::Coco1k => Self::Coco1k,
            ProtocolArg::Coco5k => Self::Coco5k,
        }
    }
}

/// Runs `itm evaluate`.
pub fn run(args: EvaluateArgs) -> Result<(), String> {
    let protocol = args.protocol.into();
    match &args.sims {
        Some(path) => run_sims(path, protocol, args.json),
        None => run_checkpoints(&args, protocol),
    }
}

/// Evaluates the `[N, 5N]` matrix in `path` and prints a table or JSON.
fn run_sims(path: &Path, protocol: Protocol, json: bool) -> Result<(), String> {
    let sims = FloatArray::open(path, 2, "[images, captions]").map_err(|e| e.to_string())?;
    if sims.converted() {
        eprintln!(
            "{}: float64 scores, converted to float32 for ranking (scores closer than float32 \
             resolves may tie after the conversion)",
            path.display()
        );
    }
    let (n_img, n_cap) = (sims.shape()[0], sims.shape()[1]);
    if n_cap != 5 * n_img {
        return Err(format!(
            "{}: a similarity matrix must be [N, 5N] (5 captions per image), found [{n_img}, {n_cap}]",
            path.display()
        ));
    }
    if let Some(position) = sims.values().par_iter().position_first(|v| !v.is_finite()) {
        return Err(format!(
            "{}: the score of image {} and caption {} is {}",
            path.display(),
            position / n_cap,
            position % n_cap,
            sims.values()[position]
        ));
    }
    check_folds(protocol, n_img, path)?;
    let caption_image: Vec<usize> = (0..n_cap).map(|j| j / 5).collect();
    let report = evaluate(sims.values(), n_img, &caption_image, protocol);
    show(&report.metrics, protocol, n_img, n_cap, json);
    Ok(())
}

fn check_folds(protocol: Protocol, n_img: usize, origin: &Path) -> Result<(), String> {
    if protocol == Protocol::Coco1k && !n_img.is_multiple_of(5) {
        return Err(format!(
            "{}: coco1k needs a multiple of 5 images, found {n_img}",
            origin.display()
        ));
    }
    Ok(())
}

fn show(metrics: &Metrics, protocol: Protocol, n_img: usize, n_cap: usize, json: bool) {
    if json {
        println!("{}", to_json(metrics));
    } else {
        print_table(metrics, protocol, n_img, n_cap);
    }
}

/// Scores the split with every checkpoint, averages the matrices, evaluates.
fn run_checkpoints(args: &EvaluateArgs, protocol: Protocol) -> Result<(), String> {
    let first = &args.checkpoint[0];
    if let Some(missing) = args.checkpoint.iter().find(|folder| !folder.is_dir()) {
        return Err(format!("{}: no such checkpoint folder", missing.display()));
    }
    let device = itm::device::parse(&args.device).map_err(|e| format!("--device: {e}"))?;
    let (data, image_size) = match &args.data {
        Some(argument) => (
            DataSection::from_argument(argument),
            run_image_size(first).unwrap_or(224),
        ),
        None => {
            let run = RunConfig::from_run_folder(first)
                .map_err(|e| format!("{e} (give --data when the checkpoint has no run.toml)"))?;
            (run.data.clone(), run.model.image_size)
        }
    };
    // The first checkpoint's image tower decides how pixels are read (CLIP's own size and
    // statistics, or the run's side and ImageNet's).
    let model = Checkpoint::new(first).config().map_err(|e| e.to_string())?;
    let pixels = ImageTransform::for_encoder(&model.image, image_size as u32);
    let split = data
        .load_split(&args.split, pixels.as_ref())
        .map_err(|e| e.to_string())?;
    if let Some(k) = args.rerank_top {
        if args.checkpoint.len() > 1 {
            return Err("--rerank-top scores one checkpoint, not an ensemble".to_string());
        }
        let (model, config, tokenizer) = load_checkpoint(first, &device)?;
        check_image_input(&config, &split.images)
            .map_err(|e| format!("{}: {e}", first.display()))?;
        let report = evaluate_split_two_stage(&model, &split, &tokenizer, &device, protocol, k)
            .map_err(|e| format!("{}: {e}", first.display()))?;
        let (n_img, n_cap) = (split.n_images(), split.captions.len());
        if args.json {
            let mut json = to_json(&report.report.metrics);
            json["scoring"] = "two-stage".into();
            json["rerank_top"] = k.into();
            json["pairs_rescored"] = report.pairs_rescored.into();
            json["full_pairs"] = (n_img * n_cap).into();
            println!("{json}");
        } else {
            println!(
                "two-stage scoring, not the full protocol: 1. cosine of mean region and word \
                 features, top {k} per query; 2. the model's head re-scored {} pairs, both \
                 directions ({:.1}s + {:.1}s); the protocol scores all {} pairs (omit \
                 --rerank-top).",
                report.pairs_rescored,
                report.first_stage_seconds,
                report.second_stage_seconds,
                n_img * n_cap
            );
            print_table(&report.report.metrics, protocol, n_img, n_cap);
        }
        return Ok(());
    }
    let mut sum: Vec<f32> = Vec::new();
    // The levels of one multi-level checkpoint, scored alone (not for ensembles).
    let mut levels: Vec<Vec<f32>> = Vec::new();
    for folder in &args.checkpoint {
        let (scores, by_level) = score_checkpoint(
            folder,
            &split,
            &device,
            args.checkpoint.len() == 1,
            args.quiet,
        )?;
        levels = by_level;
        if sum.is_empty() {
            sum = scores;
        } else {
            sum.iter_mut().zip(&scores).for_each(|(s, v)| *s += v);
        }
    }
    let count = args.checkpoint.len() as f32;
    let sims: Vec<f32> = sum.into_iter().map(|s| s / count).collect();
    let (n_img, n_cap) = (split.n_images(), split.captions.len());
    check_folds(protocol, n_img, first)?;
    if let Some(path) = &args.save_sims {
        write_f32(path, &[n_img, n_cap], &sims).map_err(|e| e.to_string())?;
    }
    let report = evaluate(&sims, n_img, &split.caption_image, protocol);
    if !args.json && args.checkpoint.len() > 1 {
        println!(
            "ensemble of {} checkpoints (mean score)",
            args.checkpoint.len()
        );
    }
    let level_metrics: Vec<Metrics> = levels
        .iter()
        .map(|scores| evaluate(scores, n_img, &split.caption_image, protocol).metrics)
        .collect();
    if args.json {
        let mut json = to_json(&report.metrics);
        if !level_metrics.is_empty() {
            json["levels"] = level_metrics.iter().map(to_json).collect();
        }
        println!("{json}");
    } else {
        show(&report.metrics, protocol, n_img, n_cap, false);
        for (level, metrics) in level_metrics.iter().enumerate() {
            println!(
                "level {level} alone ({}): rsum {:.1}",
                ["low", "middle", "high"].get(level).unwrap_or(&"-"),
                metrics.rsum()
            );
        }
    }
    Ok(())
}

/// The image side of the run that wrote `folder`, when it has a run.toml.
fn run_image_size(folder: &Path) -> Option<usize> {
    RunConfig::from_run_folder(folder)
        .ok()
        .map(|run| run.model.image_size)
}

/// The `[images, captions]` scores of `split` under the checkpoint in `folder` and, when
/// `levels` is set and the model has the multi-level head, each level's scores alone (else
/// none).
fn score_checkpoint(
    folder: &Path,
    split: &itm_data::RetrievalSplit,
    device: &Device,
    levels: bool,
    quiet: bool,
) -> Result<(Vec<f32>, Vec<Vec<f32>>), String> {
    let (model, config, tokenizer) = load_checkpoint(folder, device)?;
    check_image_input(&config, &split.images).map_err(|e| format!("{}: {e}", folder.display()))?;
    if levels
        && let Some(scores) = score_split_levels(&model, split, &tokenizer, device, quiet)
            .map_err(|e| e.to_string())?
    {
        return Ok((scores.total, scores.levels));
    }
    let scores =
        score_split(&model, split, &tokenizer, device, quiet).map_err(|e| e.to_string())?;
    Ok((scores, Vec::new()))
}

/// Loads the checkpoint in `folder`; a missing folder is named as such.
pub fn load_checkpoint(
    folder: &Path,
    device: &Device,
) -> Result<
    (
        itm_core::VseModel,
        itm_core::VseModelConfig,
        itm_data::CaptionTokenizer,
    ),
    String,
> {
    if !folder.is_dir() {
        return Err(format!("{}: no such checkpoint folder", folder.display()));
    }
    Checkpoint::new(folder)
        .load(device)
        .map_err(|e| e.to_string())
}

fn to_json(m: &Metrics) -> serde_json::Value {
    serde_json::json!({
        "i2t_r1": m.i2t_recall[0], "i2t_r5": m.i2t_recall[1], "i2t_r10": m.i2t_recall[2],
        "i2t_medr": m.i2t_medr, "i2t_meanr": m.i2t_meanr,
        "t2i_r1": m.t2i_recall[0], "t2i_r5": m.t2i_recall[1], "t2i_r10": m.t2i_recall[2],
        "t2i_medr": m.t2i_medr, "t2i_meanr": m.t2i_meanr,
        "rsum": m.rsum(),
        "i2t_ties": m.i2t_ties, "t2i_ties": m.t2i_ties, "degenerate": m.degenerate,
    })
}

/// Prints the recall table of `m`: per direction the recalls, the ranks and the number of
/// queries whose ground truth tied with a competitor (ranked behind it), then the rsum, and a
/// warning when the scores are degenerate.
pub fn print_table(m: &Metrics, protocol: Protocol, n_img: usize, n_cap: usize) {
    let name = match protocol {
        Protocol::Flickr30k => "Flickr30K 1K (whole matrix)",
        Protocol::Coco1k => "COCO 1K (mean of 5 folds)",
        Protocol::Coco5k => "COCO 5K (whole matrix)",
    };
    println!("{name}: {n_img} images, {n_cap} captions");
    println!("           R@1    R@5   R@10   medr   meanr   ties");
    for (direction, recall, medr, meanr, ties) in [
        (
            "image→text",
            m.i2t_recall,
            m.i2t_medr,
            m.i2t_meanr,
            m.i2t_ties,
        ),
        (
            "text→image",
            m.t2i_recall,
            m.t2i_medr,
            m.t2i_meanr,
            m.t2i_ties,
        ),
    ] {
        println!(
            "{direction} {:>5.1}  {:>5.1}  {:>5.1}  {:>5.1}  {:>6.1}  {ties:>5}",
            recall[0], recall[1], recall[2], medr, meanr
        );
    }
    println!("rsum {:.1}", m.rsum());
    if m.degenerate {
        println!(
            "warning: degenerate scores: more than half of a direction's queries tie with a \
             competitor at their ground truth (ties rank the ground truth behind them)"
        );
    }
}
