//! Measures the memory and time of sharded fine-grained scoring on a full test-set shape.
//!
//! The default shape is COCO 5K (5,000 images × 36 regions, 25,000 captions × 40 words,
//! `D = 1,024`, every caption at the full 40 words: the worst case for the working set). All
//! features are generated in host memory at that size; then the first `--blocks` blocks of the
//! [`ShardedScorer`]'s tiling are scored (every block has the same shape, so the working set
//! peaks in the first one) and the process's peak resident memory (`VmHWM` of
//! `/proc/self/status`, Linux) is printed with the time per block and the time the whole matrix
//! would take. Run one method per process, since the peak is per process:
//!
//! ```sh
//! cargo run --example fine_grained_memory -- --method chan
//! ```

use std::time::Instant;

use clap::Parser;
use itm::burn::tensor::Device;
use itm::core::similarity::{FeatureSets, Head, HeadTable, ShardedScorer};

/// `--method`: a fine-grained head of the heads table (`-` and `_` are the same).
fn method(value: &str) -> Result<&'static dyn Head, String> {
    let table = HeadTable::builtin();
    let name = value.replace('-', "_");
    table
        .fine_grained()
        .find(|head| head.name() == name)
        .ok_or_else(|| {
            let known: Vec<&str> = table.fine_grained().map(|head| head.name()).collect();
            format!("unknown method {value:?}; known: {}", known.join(", "))
        })
}

/// Peak memory and time of sharded fine-grained scoring.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// A fine-grained head of the heads table, with its published settings at `--dim`.
    #[arg(long, value_parser = method)]
    method: &'static dyn Head,
    #[arg(long, default_value_t = 5000)]
    images: usize,
    #[arg(long, default_value_t = 36)]
    regions: usize,
    #[arg(long, default_value_t = 25000)]
    captions: usize,
    #[arg(long, default_value_t = 40)]
    words: usize,
    #[arg(long, default_value_t = 1024)]
    dim: usize,
    /// Working-set budget of one block, MiB.
    #[arg(long, default_value_t = 2048)]
    budget_mib: usize,
    /// Blocks to score (of the first block row).
    #[arg(long, default_value_t = 2)]
    blocks: usize,
}

/// A field of `/proc/self/status` in MiB (Linux only).
fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Deterministic values in `[−1, 1)` (a 64-bit LCG; the values do not matter, their memory does).
fn features(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn main() {
    let args = Args::parse();
    let device = Device::flex();
    let Some(method) = args.method.scorer(args.dim, &device) else {
        eprintln!("--method {}: not a fine-grained head", args.method.name());
        std::process::exit(2);
    };
    let start = Instant::now();
    let regions = features(args.images * args.regions * args.dim, 1);
    let words = features(args.captions * args.words * args.dim, 2);
    let counts = vec![args.regions; args.images];
    let lengths = vec![args.words; args.captions];
    let inputs_mib = status_mib("VmRSS:").unwrap_or(f64::NAN);
    println!(
        "{}: images {}×{}, captions {}×{}, D {}; features generated in {:.1}s, resident {:.0} MiB",
        args.method.name(),
        args.images,
        args.regions,
        args.captions,
        args.words,
        args.dim,
        start.elapsed().as_secs_f64(),
        inputs_mib
    );
    let scorer = ShardedScorer::new(device).with_memory_budget(args.budget_mib << 20);
    let per_pair = method.working_values_per_pair(args.regions, args.words, args.dim);
    let (rows, cols) = scorer.block_shape(per_pair, args.images, args.captions);
    let total_blocks = args.images.div_ceil(rows) * args.captions.div_ceil(cols);
    let scored_caps = (cols * args.blocks).min(args.captions);
    let image_sets = FeatureSets::new(
        &regions[..rows * args.regions * args.dim],
        &counts[..rows],
        args.regions,
        args.dim,
    );
    let caption_sets = FeatureSets::new(
        &words[..scored_caps * args.words * args.dim],
        &lengths[..scored_caps],
        args.words,
        args.dim,
    );
    let start = Instant::now();
    let scores = scorer.score(method.as_ref(), image_sets, caption_sets, |done, total| {
        eprintln!("block {done}/{total}");
    });
    let seconds = start.elapsed().as_secs_f64();
    assert!(scores.iter().all(|s| s.is_finite()), "non-finite scores");
    let blocks = scored_caps.div_ceil(cols);
    let peak_mib = status_mib("VmHWM:").unwrap_or(f64::NAN);
    let per_block = seconds / blocks as f64;
    let slots = (rows * cols * args.regions * args.words) as f64;
    let working_mib = peak_mib - inputs_mib;
    println!(
        "budget {} MiB: block {rows}×{cols} pairs; {blocks} blocks in {seconds:.1}s ({per_block:.1}s each)",
        args.budget_mib
    );
    println!(
        "peak resident {peak_mib:.0} MiB = features {inputs_mib:.0} MiB + working set {working_mib:.0} MiB \
         ({:.1} f32 values per region–word slot of a block; the driver assumed {:.1})",
        working_mib * (1 << 20) as f64 / (4.0 * slots),
        per_pair as f64 / (args.regions * args.words) as f64
    );
    println!(
        "whole matrix: {total_blocks} blocks, about {:.1} h at this speed; its scores take {:.0} MiB",
        per_block * total_blocks as f64 / 3600.0,
        (args.images * args.captions * 4) as f64 / (1 << 20) as f64
    );
}
