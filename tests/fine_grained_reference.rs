//! Parity of the fine-grained similarities (SCAN, CHAN) with the pair-by-pair PyTorch
//! reference of `scripts/generate_fine_grained_fixtures.py` (≤ 1e-5), scores and gradients.

mod common;

use common::*;
use itm::burn::tensor::{Device, Tensor};
use itm::core::similarity::{
    ChanAggregation, ChanConfig, FineGrainedSimilarity, ScanAggregation, ScanConfig, ScanDirection,
};
use serde_json::Value;

const TOLERANCE: f32 = 1e-5;

/// [`assert_close`], printing the largest difference (`cargo test -- --nocapture` shows it).
/// Non-finite values fail here: `f32::max` would skip a NaN difference.
fn check(actual: Vec<f32>, expected: Vec<f32>, what: &str) {
    assert!(
        actual.iter().all(|v| v.is_finite()),
        "{what}: non-finite values {actual:?}"
    );
    let worst = actual
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("{what}: max abs difference {worst:.3e}");
    assert_close(&actual, &expected, TOLERANCE, what);
}

/// Every variant of the fixture with the similarity that must reproduce it.
fn variants() -> Vec<(&'static str, Box<dyn FineGrainedSimilarity>)> {
    let scan = |direction, aggregation| -> Box<dyn FineGrainedSimilarity> {
        Box::new(
            ScanConfig::new()
                .with_direction(direction)
                .with_aggregation(aggregation)
                .init(),
        )
    };
    let chan = |aggregation| -> Box<dyn FineGrainedSimilarity> {
        Box::new(ChanConfig::new().with_aggregation(aggregation).init())
    };
    vec![
        (
            "scan_t2i_lse",
            scan(ScanDirection::TextToImage, ScanAggregation::LogSumExp),
        ),
        (
            "scan_t2i_avg",
            scan(ScanDirection::TextToImage, ScanAggregation::Average),
        ),
        (
            "scan_i2t_lse",
            scan(ScanDirection::ImageToText, ScanAggregation::LogSumExp),
        ),
        (
            "scan_i2t_avg",
            scan(ScanDirection::ImageToText, ScanAggregation::Average),
        ),
        ("chan_mean", chan(ChanAggregation::Mean)),
        ("chan_lse", chan(ChanAggregation::LogSumExp)),
    ]
}

struct Inputs {
    regions: Tensor<3>,
    counts: Vec<usize>,
    words: Tensor<3>,
    lengths: Vec<usize>,
    probe: Tensor<2>,
}

fn inputs(f: &Value, device: &Device) -> Inputs {
    let dim = |key: &str| f[key].as_u64().unwrap() as usize;
    let (n_img, k, n_cap, l, d) = (
        dim("n_img"),
        dim("regions_per_image"),
        dim("n_cap"),
        dim("words_per_caption"),
        dim("dim"),
    );
    Inputs {
        regions: tensor(&f["regions"], [n_img, k, d], device),
        counts: sizes(&f["region_counts"]),
        words: tensor(&f["words"], [n_cap, l, d], device),
        lengths: sizes(&f["word_lengths"]),
        probe: tensor(&f["probe"], [n_img, n_cap], device),
    }
}

#[test]
fn fine_grained_scores_match_pytorch() {
    let f = fixture("fine_grained");
    let device = Device::flex();
    for (name, similarity) in variants() {
        let x = inputs(&f, &device);
        let scores = similarity.similarity(x.regions, &x.counts, x.words, &x.lengths);
        check(values(scores), floats(&f["scores"][name]), name);
    }
}

#[test]
fn fine_grained_gradients_match_pytorch() {
    let f = fixture("fine_grained");
    let device = Device::flex().autodiff();
    for (name, similarity) in variants() {
        let x = inputs(&f, &device);
        let regions = x.regions.require_grad();
        let words = x.words.require_grad();
        let scores = similarity.similarity(regions.clone(), &x.counts, words.clone(), &x.lengths);
        let grads = (scores * x.probe).sum().backward();
        let regions_grad = regions.grad(&grads).expect("regions gradient");
        let words_grad = words.grad(&grads).expect("words gradient");
        check(
            values(regions_grad),
            floats(&f["regions_grad"][name]),
            &format!("{name}: d/d regions"),
        );
        check(
            values(words_grad),
            floats(&f["words_grad"][name]),
            &format!("{name}: d/d words"),
        );
    }
}
