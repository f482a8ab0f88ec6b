//! Parity of the ESL (both aggregators) and X-Dim similarities with the pair-by-pair PyTorch
//! reference of `scripts/generate_esl_xdim_fixtures.py`: scores, and the gradients of
//! `sum(S ⊙ probe)` with respect to every learned parameter and to the inputs, within 1e-5
//! (absolute; relative for quantities larger than 1, see [`check`]).

mod common;

use common::*;
use itm::burn::module::Param;
use itm::burn::tensor::{Device, Gradients, Tensor};
use itm::core::similarity::{
    Esl, EslAggregator, EslConfig, FineGrainedSimilarity, XDim, XDimConfig,
};
use serde_json::Value;

const TOLERANCE: f32 = 1e-5;

/// [`assert_close`] within `TOLERANCE · max(1, max |expected|)`, printing the largest difference
/// (`cargo test -- --nocapture` shows it).
///
/// The scale factor matters for one quantity only: the gradient of the ESL level weights `c`
/// (|∂/∂c| up to ≈ 12 here; in heuristic mode every `w_j` depends on `min |c|` and `max |c|`
/// through the factor `e^3`), a sum over all `d_j²` entries of each bilinear form whose `f32`
/// rounding (≈ 1e-6 relative) is of the order of 1e-5 absolute. Everything else is `O(1)` or
/// smaller and is held to 1e-5 absolute.
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
    let scale = expected.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    println!("{what}: max abs difference {worst:.3e} (max |expected| {scale:.3e})");
    assert_close(&actual, &expected, TOLERANCE * scale, what);
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

fn param<const D: usize>(value: &Value, shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(tensor(value, shape, device))
}

fn params<const D: usize>(
    values: &Value,
    shapes: impl Iterator<Item = [usize; D]>,
    device: &Device,
) -> Vec<Param<Tensor<D>>> {
    values
        .as_array()
        .expect("a list of tensors")
        .iter()
        .zip(shapes)
        .map(|(v, shape)| param(v, shape, device))
        .collect()
}

fn esl_mode(mode: EslAggregator) -> &'static str {
    match mode {
        EslAggregator::Adaptive => "adaptive",
        EslAggregator::Heuristic => "heuristic",
    }
}

/// An [`Esl`] of the fixture's shape with the fixture's parameters.
fn load_esl(f: &Value, mode: EslAggregator, device: &Device) -> Esl {
    let config = EslConfig::new(f["dim"].as_u64().unwrap() as usize)
        .with_levels(f["levels"].as_u64().unwrap() as usize)
        .with_aggregator(mode);
    let widths = config.level_widths();
    let p = &f["params"];
    let mut esl = config.init(device);
    let square = || widths.iter().map(|&d| [d, d]);
    esl.bilinear = params(&p["bilinear"], square(), device);
    esl.norm_gains = params(&p["norm_gains"], square(), device);
    esl.norm_biases = params(&p["norm_biases"], square(), device);
    esl.level_weights = param(&p["level_weights"], [widths.len()], device);
    esl.log_temperature = param(&p["log_temperature"], [1], device);
    match mode {
        EslAggregator::Adaptive => {
            esl.aggregators = params(
                &p["aggregators"],
                widths.windows(2).map(|w| [w[1], w[0]]),
                device,
            );
        }
        EslAggregator::Heuristic => {
            esl.kernels = params(&p["kernels"], (1..widths.len()).map(|_| [4, 1, 2]), device);
            esl.threshold_position = Some(param(&p["threshold_position"], [1], device));
        }
    }
    esl
}

/// An [`XDim`] of the fixture's shape with the fixture's parameters.
fn load_xdim(f: &Value, device: &Device) -> XDim {
    let d = f["dim"].as_u64().unwrap() as usize;
    let p = &f["params"];
    let mut xdim = XDimConfig::new(d).init(device);
    xdim.dependency = param(&p["dependency"], [d, d], device);
    xdim.threshold_scale = param(&p["threshold_scale"], [d], device);
    xdim.log_sharpness = param(&p["log_sharpness"], [1], device);
    xdim.log_temperature = param(&p["log_temperature"], [1], device);
    xdim
}

fn grad<const D: usize>(p: &Param<Tensor<D>>, grads: &Gradients, what: &str) -> Vec<f32> {
    values(
        p.val()
            .grad(grads)
            .unwrap_or_else(|| panic!("{what}: no gradient")),
    )
}

/// Scores and input gradients of `similarity` on the fixture `f`; returns the gradients.
fn check_similarity(
    similarity: &impl FineGrainedSimilarity,
    f: &Value,
    expected: &Value,
    name: &str,
    device: &Device,
) -> Gradients {
    let x = inputs(f, device);
    let regions = x.regions.require_grad();
    let words = x.words.require_grad();
    let scores = similarity.similarity(regions.clone(), &x.counts, words.clone(), &x.lengths);
    check(
        values(scores.clone()),
        floats(&expected["scores"]),
        &format!("{name}: scores"),
    );
    let grads = (scores * x.probe).sum().backward();
    for (input, key) in [(&regions, "regions"), (&words, "words")] {
        let g = input.grad(&grads).expect("input gradient");
        check(
            values(g),
            floats(&expected["grads"][key]),
            &format!("{name}: d/d {key}"),
        );
    }
    grads
}

fn check_list<const D: usize>(
    list: &[Param<Tensor<D>>],
    grads: &Gradients,
    expected: &Value,
    what: &str,
) {
    let expected = expected.as_array().expect("a list of gradients");
    assert_eq!(list.len(), expected.len(), "{what}: count");
    for (j, (p, e)) in list.iter().zip(expected).enumerate() {
        let what = format!("{what}[{j}]");
        check(grad(p, grads, &what), floats(e), &what);
    }
}

#[test]
fn esl_scores_match_pytorch() {
    let f = fixture("esl_xdim");
    let device = Device::flex();
    for mode in [EslAggregator::Adaptive, EslAggregator::Heuristic] {
        let name = esl_mode(mode);
        let esl = load_esl(&f["esl"], mode, &device);
        let x = inputs(&f["esl"], &device);
        let scores = esl.similarity(x.regions, &x.counts, x.words, &x.lengths);
        check(
            values(scores),
            floats(&f["esl"][name]["scores"]),
            &format!("esl {name}: scores"),
        );
    }
}

#[test]
fn esl_gradients_match_pytorch() {
    let f = fixture("esl_xdim");
    let device = Device::flex().autodiff();
    for mode in [EslAggregator::Adaptive, EslAggregator::Heuristic] {
        let name = esl_mode(mode);
        let expected = &f["esl"][name];
        let esl = load_esl(&f["esl"], mode, &device);
        let grads = check_similarity(&esl, &f["esl"], expected, &format!("esl {name}"), &device);
        let g = &expected["grads"];
        let what = |p: &str| format!("esl {name}: d/d {p}");
        check_list(&esl.bilinear, &grads, &g["bilinear"], &what("bilinear"));
        check_list(
            &esl.norm_gains,
            &grads,
            &g["norm_gains"],
            &what("norm_gains"),
        );
        check_list(
            &esl.norm_biases,
            &grads,
            &g["norm_biases"],
            &what("norm_biases"),
        );
        for (p, key) in [
            (&esl.level_weights, "level_weights"),
            (&esl.log_temperature, "log_temperature"),
        ] {
            check(grad(p, &grads, key), floats(&g[key]), &what(key));
        }
        match mode {
            EslAggregator::Adaptive => {
                check_list(
                    &esl.aggregators,
                    &grads,
                    &g["aggregators"],
                    &what("aggregators"),
                );
            }
            EslAggregator::Heuristic => {
                check_list(&esl.kernels, &grads, &g["kernels"], &what("kernels"));
                let sigma = esl
                    .threshold_position
                    .as_ref()
                    .expect("σ in heuristic mode");
                check(
                    grad(sigma, &grads, "σ"),
                    floats(&g["threshold_position"]),
                    &what("threshold_position"),
                );
            }
        }
    }
}

#[test]
fn xdim_scores_match_pytorch() {
    let f = fixture("esl_xdim");
    let device = Device::flex();
    let xdim = load_xdim(&f["xdim"], &device);
    let x = inputs(&f["xdim"], &device);
    let scores = xdim.similarity(x.regions, &x.counts, x.words, &x.lengths);
    check(values(scores), floats(&f["xdim"]["scores"]), "xdim: scores");
}

#[test]
fn xdim_gradients_match_pytorch() {
    let f = fixture("esl_xdim");
    let device = Device::flex().autodiff();
    let xdim = load_xdim(&f["xdim"], &device);
    let grads = check_similarity(&xdim, &f["xdim"], &f["xdim"], "xdim", &device);
    let g = &f["xdim"]["grads"];
    check(
        grad(&xdim.dependency, &grads, "E"),
        floats(&g["dependency"]),
        "xdim: d/d dependency",
    );
    for (p, key) in [
        (&xdim.threshold_scale, "threshold_scale"),
        (&xdim.log_sharpness, "log_sharpness"),
        (&xdim.log_temperature, "log_temperature"),
    ] {
        check(
            grad(p, &grads, key),
            floats(&g[key]),
            &format!("xdim: d/d {key}"),
        );
    }
}
