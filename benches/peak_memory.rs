//! Peak resident memory of fine-grained scoring of the Flickr30K test set (1,000 images × 36
//! regions against 5,000 captions × 12 words, `D = 1024`) through the sharded driver with its
//! default 2 GiB budget.
//!
//! The driver scores blocks one after another, so the peak of the whole evaluation is the peak
//! of one full-size block: this scores the first block of the whole matrix (its shape from
//! `ShardedScorer::block_shape`) once per similarity and records the peak resident memory
//! above what the process held before (the inputs). Linux only (`/proc/self/status`). Writes
//! `target/criterion/fine_grained_memory.json` for `scripts/compare_pytorch.py` after every
//! similarity. Names after `--` pick similarities:
//! `cargo bench --profile dev --bench peak_memory -- scan_t2i chan`.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use itm::burn::tensor::Device;
use itm::core::similarity::{FeatureSets, ShardedScorer};
use serde_json::json;

use common::{DIM, REGIONS, WORDS, fine_grained_methods, unit_rows};

const IMAGES: usize = 1_000;
const CAPTIONS: usize = 5_000;

fn main() {
    let device = Device::flex();
    let scorer = ShardedScorer::new(device.clone());
    let methods = fine_grained_methods(&device);
    // Each method's block (its working set per pair differs); features for the largest.
    let blocks: Vec<(usize, usize)> = methods
        .iter()
        .map(|(_, method)| {
            let per_pair = method.working_values_per_pair(REGIONS, WORDS, DIM);
            scorer.block_shape(per_pair, IMAGES, CAPTIONS)
        })
        .collect();
    let most_rows = blocks.iter().map(|b| b.0).max().unwrap_or(1);
    let most_cols = blocks.iter().map(|b| b.1).max().unwrap_or(1);
    let regions = unit_rows(most_rows * REGIONS, DIM, 8);
    let words = unit_rows(most_cols * WORDS, DIM, 9);
    let (counts, lengths) = (vec![REGIONS; most_rows], vec![WORDS; most_cols]);

    // Cargo passes `--bench`; other arguments name the similarities to measure.
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let mut peaks = BTreeMap::new();
    let mut seconds = BTreeMap::new();
    let mut shapes = BTreeMap::new();
    let methods = methods
        .into_iter()
        .zip(blocks)
        .filter(|((name, _), _)| chosen.is_empty() || chosen.iter().any(|c| c == name));
    for ((name, method), (rows, cols)) in methods {
        // One block of the driver's tiling of the whole matrix.
        let images = FeatureSets::new(
            &regions[..rows * REGIONS * DIM],
            &counts[..rows],
            REGIONS,
            DIM,
        );
        let captions = FeatureSets::new(&words[..cols * WORDS * DIM], &lengths[..cols], WORDS, DIM);
        if !common::reset_peak_memory() {
            println!("peak memory is not measurable here (no /proc/self/clear_refs)");
            return;
        }
        let Some((_, before)) = common::memory() else {
            println!("peak memory is not measurable here (no /proc/self/status)");
            return;
        };
        let started = Instant::now();
        let scores = scorer.score(method.as_ref(), images, captions, |_, _| {});
        let elapsed = started.elapsed().as_secs_f64();
        let (peak, _) = common::memory().expect("status was readable a moment ago");
        drop(scores);
        let above = peak.saturating_sub(before);
        println!(
            "{name:>9}: block {rows} × {cols}, peak {:.2} GiB above the inputs, {elapsed:.1} s",
            above as f64 / (1u64 << 30) as f64
        );
        shapes.insert(name, [rows, cols]);
        peaks.insert(name, above);
        seconds.insert(name, elapsed);
        let report = json!({
            "images": IMAGES, "regions": REGIONS, "captions": CAPTIONS, "words": WORDS,
            "dim": DIM, "blocks": shapes, "memory_budget": scorer.memory_budget,
            "peak_bytes_above_inputs": peaks, "block_seconds": seconds,
        });
        write_report(&report);
    }
}

/// Replaces `target/criterion/fine_grained_memory.json` with `report`.
fn write_report(report: &serde_json::Value) {
    let folder = common::criterion_folder();
    let path = folder.join("fine_grained_memory.json");
    let written = std::fs::create_dir_all(&folder)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            itm::data::atomic::write(&path, format!("{report:#}\n").as_bytes())
                .map_err(|e| e.to_string())
        });
    if let Err(error) = written {
        eprintln!("{}: could not write the report: {error}", path.display());
    }
}
