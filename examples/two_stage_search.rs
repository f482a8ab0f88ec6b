//! Measures two-stage search for fine-grained checkpoints: recall@10 of the two-stage rankings
//! against the head's exhaustive ranking, and the time of both, at several `k`.
//!
//! For each checkpoint (a folder written by `itm train`, whose run.toml names its data), the
//! test split is encoded once into region and word sets; the exhaustive ranking is the head's
//! score of every pair (`ShardedScorer::score`, as `itm evaluate`); the two-stage ranking keeps
//! the top `k` of the cosine of set means and re-scores them with the head
//! (`itm_train::two_stage_rankings`, as `itm evaluate --rerank-top` and `itm search`). Recall@10
//! of a query is the share of the exhaustive top 10 the two-stage top 10 found, an item counting
//! when its exhaustive score reaches the exhaustive 10th (so that ties count). One markdown row
//! per checkpoint and `k`:
//!
//! ```sh
//! cargo run --example two_stage_search -- --checkpoint runs/scan_t2i --checkpoint runs/chan
//! ```

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use itm::burn::tensor::Device;
use itm::core::similarity::ShardedScorer;
use itm::train::{Checkpoint, RunConfig, encode_sets, two_stage_rankings};

/// Two-stage against exhaustive fine-grained search.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// A checkpoint folder of a fine-grained model (repeatable).
    #[arg(long, required = true)]
    checkpoint: Vec<PathBuf>,
    /// Candidates the first stage keeps (repeatable).
    #[arg(long = "k", default_values_t = [10, 100, 1000])]
    k: Vec<usize>,
}

/// Mean over queries of the share of `exact`'s top 10 that `found`'s top 10 holds, an item of
/// `found` counting when its exhaustive score (`score(query, item)`) reaches the 10th best.
fn recall_at_10(
    queries: usize,
    items: usize,
    score: impl Fn(usize, usize) -> f32,
    found: &[Vec<(usize, f32)>],
) -> f64 {
    let mut total = 0.0;
    for (query, list) in found.iter().enumerate().take(queries) {
        let mut row: Vec<f32> = (0..items).map(|item| score(query, item)).collect();
        row.sort_by(|a, b| b.total_cmp(a));
        let want = 10.min(items);
        let tenth = row[want - 1];
        let hits = list
            .iter()
            .take(want)
            .filter(|&&(item, _)| score(query, item) >= tenth)
            .count();
        total += hits as f64 / want as f64;
    }
    total / queries.max(1) as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let device = Device::default();
    println!(
        "| model | images × captions | exhaustive (s) | k | first stage (s) | i2t re-rank (s) | \
         t2i re-rank (s) | speed-up | i2t recall@10 | t2i recall@10 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for folder in &args.checkpoint {
        let run = RunConfig::from_run_folder(folder)?;
        let split = run.data.load_split("test", None)?;
        let (model, _, tokenizer) = Checkpoint::new(folder).load(&device)?;
        let method = model
            .fine_grained()
            .ok_or_else(|| format!("{}: not a fine-grained model", folder.display()))?;
        let (images, captions) = encode_sets(&model, &split, &tokenizer, &device)?;
        let (n_img, n_cap) = (images.sets().len(), captions.sets().len());
        let started = Instant::now();
        let full = ShardedScorer::new(device.clone()).score(
            method,
            images.sets(),
            captions.sets(),
            |_, _| {},
        );
        let exhaustive = started.elapsed().as_secs_f64();
        let name = &run.model.name;
        for &k in &args.k {
            let rankings = two_stage_rankings(method, images.sets(), captions.sets(), k, &device);
            let i2t = recall_at_10(
                n_img,
                n_cap,
                |i, j| full[i * n_cap + j],
                &rankings.image_to_text,
            );
            let t2i = recall_at_10(
                n_cap,
                n_img,
                |j, i| full[i * n_cap + j],
                &rankings.text_to_image,
            );
            let two = rankings.first_stage_seconds
                + rankings.image_to_text_seconds
                + rankings.text_to_image_seconds;
            println!(
                "| {name} | {n_img} × {n_cap} | {exhaustive:.1} | {k} | {:.2} | {:.1} | {:.1} | \
                 {:.1}× | {i2t:.3} | {t2i:.3} |",
                rankings.first_stage_seconds,
                rankings.image_to_text_seconds,
                rankings.text_to_image_seconds,
                exhaustive / two
            );
        }
    }
    Ok(())
}
