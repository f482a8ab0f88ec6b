//! Parity of the ESL (both aggregators) and X-Dim similarities with the pair-by-pair PyTorch
//! reference of `scripts/generate_esl_xdim_fixtures.py`: scores, and the gradients of
//! `sum(S ⊙ probe)` with respect to every learned parameter and to the inputs, within 1e-5
//! (absolute; relative for quantities larger than 1, see [`check`]).

use burn::module::Param;
use burn::tensor::{Device, Gradients, Tensor};
use itm_core::similarity::{Esl, EslAggregator, EslConfig, XDim, XDimConfig};
use itm_test_support::fine_grained::assert_input_gradients;
use itm_test_support::{
    FineGrainedCase, Within, core_fixtures, fine_grained_conformance, floats, tensor, values,
};
use serde_json::Value;

/// Within `1e-5 · max(1, max |expected|)`, per compared quantity.
///
/// The scale factor matters for one quantity only: the gradient of the ESL level weights `c`
/// (|∂/∂c| up to ≈ 12 here; in heuristic mode every `w_j` depends on `min |c|` and `max |c|`
/// through the factor `e^3`), a sum over all `d_j²` entries of each bilinear form whose `f32`
/// rounding (≈ 1e-6 relative) is of the order of 1e-5 absolute. Everything else is `O(1)` or
/// smaller and is held to 1e-5 absolute.
const TOLERANCE: Within = Within::ScaledAbsolute(1e-5);

/// Asserts `actual` against `expected` within [`TOLERANCE`].
fn check(actual: Vec<f32>, expected: Vec<f32>, what: &str) {
    TOLERANCE.assert(&actual, &expected, what);
}

/// The inputs of the fixture's `esl` or `xdim` part with the expected values under `expected`.
fn case(part: &str, expected: impl Fn(&Value) -> &Value) -> FineGrainedCase {
    let f = core_fixtures().json("esl_xdim");
    let inputs = &f[part];
    let e = expected(inputs);
    FineGrainedCase::from_json(
        inputs,
        &e["scores"],
        &e["grads"]["regions"],
        &e["grads"]["words"],
    )
}

fn esl_case(mode: EslAggregator) -> FineGrainedCase {
    case("esl", |esl| &esl[esl_mode(mode)])
}

fn xdim_case() -> FineGrainedCase {
    case("xdim", |xdim| xdim)
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
fn load_esl(mode: EslAggregator, device: &Device) -> Esl {
    let f = &core_fixtures().json("esl_xdim")["esl"];
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
fn load_xdim(device: &Device) -> XDim {
    let f = &core_fixtures().json("esl_xdim")["xdim"];
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

fine_grained_conformance!(esl_adaptive {
    case: esl_case(EslAggregator::Adaptive),
    head: |device| load_esl(EslAggregator::Adaptive, device),
    within: TOLERANCE,
});

fine_grained_conformance!(esl_heuristic {
    case: esl_case(EslAggregator::Heuristic),
    head: |device| load_esl(EslAggregator::Heuristic, device),
    within: TOLERANCE,
});

fine_grained_conformance!(xdim {
    case: xdim_case(),
    head: |device| load_xdim(device),
    within: TOLERANCE,
});

#[test]
fn esl_gradients_match_pytorch() {
    let f = core_fixtures().json("esl_xdim");
    let device = Device::flex().autodiff();
    for mode in [EslAggregator::Adaptive, EslAggregator::Heuristic] {
        let name = esl_mode(mode);
        let expected = &f["esl"][name];
        let esl = load_esl(mode, &device);
        let what = format!("esl {name}");
        let grads = assert_input_gradients(&esl, &esl_case(mode), &device, TOLERANCE, &what);
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
fn xdim_gradients_match_pytorch() {
    let f = core_fixtures().json("esl_xdim");
    let device = Device::flex().autodiff();
    let xdim = load_xdim(&device);
    let grads = assert_input_gradients(&xdim, &xdim_case(), &device, TOLERANCE, "xdim");
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
