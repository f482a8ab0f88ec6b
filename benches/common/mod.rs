//! Inputs and measurements shared by the benchmarks.
//!
//! Every input is drawn from a fixed seed, so that two runs (and `scripts/compare_pytorch.py`,
//! which draws the same shapes) time the same amount of work.

// Each benchmark binary uses part of these helpers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, SamplingMode, measurement::WallTime};
use itm::burn::tensor::Device;
use itm::core::similarity::{FineGrainedSimilarity, HeadTable};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// Embedding width `D` of every benchmark.
pub const DIM: usize = 1024;
/// Regions per image (BUTD features).
pub const REGIONS: usize = 36;
/// Words per caption of the fine-grained benchmarks.
pub const WORDS: usize = 12;

/// Criterion's default configuration, with the font its plotters-drawn HTML report needs (the
/// workspace builds plotters with `ab_glyph`, which has no system fonts).
pub fn criterion() -> Criterion {
    // As the `itm` command does: freed tensors stay in the process for the next iteration.
    itm::core::runtime::keep_freed_memory();
    itm::train::register_bundled_font();
    Criterion::default()
}

/// `len` values uniform in `[-1, 1)`.
pub fn uniform(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// `count` rows of `dim` values, each row scaled to unit length (what the encoders emit).
pub fn unit_rows(count: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut values = uniform(count * dim, seed);
    for row in values.chunks_mut(dim) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= norm);
    }
    values
}

/// Settings for operations of a second or more per call: 10 samples of one call each.
pub fn heavy(group: &mut BenchmarkGroup<'_, WallTime>, measurement_secs: u64) {
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(measurement_secs));
}

/// Where criterion writes its results (`$CARGO_TARGET_DIR/criterion`, else `target/criterion`;
/// benchmarks run from the package root).
pub fn criterion_folder() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("criterion")
}

/// Peak resident memory of this process in bytes since the last [`reset_peak_memory`], and
/// the resident memory now, from `/proc/self/status` (Linux only; `None` elsewhere).
pub fn memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|line| line.starts_with(name))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// Resets the peak resident memory to the current one (Linux: `5` into `clear_refs`).
pub fn reset_peak_memory() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The fine-grained heads of the heads table with their published settings at [`DIM`], by
/// benchmark name (the head's).
pub fn fine_grained_methods(
    device: &Device,
) -> Vec<(&'static str, Box<dyn FineGrainedSimilarity>)> {
    device.seed(0);
    HeadTable::builtin()
        .fine_grained()
        // A multi-grained head's set scorer is CHAN's, benchmarked under its own name.
        .filter(|head| !head.adds_global())
        .filter_map(|head| Some((head.name(), head.scorer(DIM, device)?)))
        .collect()
}
