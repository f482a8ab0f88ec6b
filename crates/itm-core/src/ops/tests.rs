//! The kernels against `f64` and against burn's composed operations (values and gradients).

use burn::tensor::{Distribution, Tensor};

use super::kernels::{self, Axis, FORCED_ISA, Isa, Unary};
use super::*;

/// Every instruction set this CPU runs, the baseline first.
fn instruction_sets() -> Vec<Isa> {
    match Isa::detected() {
        Isa::Avx512 => vec![Isa::Baseline, Isa::Avx2, Isa::Avx512],
        Isa::Avx2 => vec![Isa::Baseline, Isa::Avx2],
        Isa::Baseline => vec![Isa::Baseline],
    }
}

/// `U` over `xs` on the calling thread with instruction set `isa`.
fn run<U: Unary>(isa: Isa, xs: &[f32]) -> Vec<f32> {
    FORCED_ISA.with(|cell| cell.set(Some(isa)));
    let mut out = vec![0.0f32; xs.len()];
    // Below the parallel threshold, so that no other thread runs a part of it.
    for (x, o) in xs
        .chunks(kernels::PARALLEL_MIN / 2)
        .zip(out.chunks_mut(kernels::PARALLEL_MIN / 2))
    {
        kernels::map::<U>(x, o);
    }
    FORCED_ISA.with(|cell| cell.set(None));
    out
}

/// ~1.8 M inputs: every 1009th f32 of `[1e-30, 110]`, both signs, and the special values.
fn sweep() -> Vec<f32> {
    let (lo, hi) = (1e-30f32.to_bits(), 110f32.to_bits());
    let mut xs: Vec<f32> = (lo..=hi).step_by(1009).map(f32::from_bits).collect();
    xs.extend(xs.clone().iter().map(|x| -x));
    xs.extend([
        0.0,
        -0.0,
        1e-40,
        -1e-40,
        0.625,
        -0.625,
        88.72,
        88.73,
        -87.33,
        -87.34,
        -103.0,
        -104.0,
        -105.0,
        100.0,
        -100.0,
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ]);
    xs
}

/// One f32 ulp at `r`.
fn ulp(r: f64) -> f64 {
    let a = r.abs().max(f32::MIN_POSITIVE as f64);
    2f64.powf(a.log2().floor() - 23.0)
}

fn gelu_f64(x: f64) -> f64 {
    0.5 * x * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// Largest error of `got` against `reference` in ulp, over results of magnitude ≥ `2^-126`,
/// and largest absolute error below that.
fn errors(xs: &[f32], got: &[f32], reference: impl Fn(f64) -> f64) -> (f64, f64, f32) {
    let (mut worst_ulp, mut worst_tiny, mut at) = (0.0f64, 0.0f64, 0.0f32);
    for (&x, &y) in xs.iter().zip(got) {
        let r = reference(x as f64);
        if r.is_infinite() || r.abs() > f32::MAX as f64 {
            assert!(
                y.is_infinite() && y.signum() as f64 == r.signum(),
                "{x} → {y}, expected ±∞"
            );
            continue;
        }
        assert!(y.is_finite(), "{x} → {y}");
        let err = (y as f64 - r).abs();
        if r.abs() >= f32::MIN_POSITIVE as f64 {
            if err / ulp(r) > worst_ulp {
                (worst_ulp, at) = (err / ulp(r), x);
            }
        } else {
            worst_tiny = worst_tiny.max(err);
        }
    }
    (worst_ulp, worst_tiny, at)
}

#[test]
fn accuracy_against_f64() {
    let xs = sweep();
    for isa in instruction_sets() {
        let (ulps, tiny, at) = errors(&xs, &run::<kernels::Exp>(isa, &xs), f64::exp);
        println!("{isa:?} exp: {ulps:.2} ulp (at {at}), subnormal results ±{tiny:e}");
        assert!(ulps <= 1.5 && tiny <= 3e-45, "{isa:?} exp");

        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        let (ulps, tiny, at) = errors(&xs, &run::<kernels::Sigmoid>(isa, &xs), sigmoid);
        println!("{isa:?} sigmoid: {ulps:.2} ulp (at {at}), subnormal results ±{tiny:e}");
        assert!(ulps <= 2.5 && tiny <= 1.2e-38, "{isa:?} sigmoid");

        let (ulps, tiny, at) = errors(&xs, &run::<kernels::Tanh>(isa, &xs), f64::tanh);
        println!("{isa:?} tanh: {ulps:.2} ulp (at {at}), subnormal results ±{tiny:e}");
        assert!(ulps <= 1.5 && tiny <= 3e-45, "{isa:?} tanh");

        let got = run::<kernels::Gelu>(isa, &xs);
        let (mut absolute, mut relative) = (0.0f64, 0.0f64);
        for (&x, &y) in xs.iter().zip(&got) {
            let x = x as f64;
            if !x.is_finite() || x.abs() > 1e30 {
                continue;
            }
            let r = gelu_f64(x);
            assert!(y.is_finite(), "gelu({x}) = {y}");
            let err = (y as f64 - r).abs();
            absolute = absolute.max(err / x.abs().max(1.0));
            if x >= -5.0 && r != 0.0 {
                relative = relative.max(err / r.abs());
            }
        }
        println!(
            "{isa:?} gelu: absolute {absolute:e}·max(1, |x|), relative {relative:e} on x ≥ −5"
        );
        assert!(absolute <= 1.5e-7 && relative <= 2e-6, "{isa:?} gelu");
    }
}

#[test]
fn extreme_inputs_give_limits_not_nan() {
    let device = Device::flex();
    let x = Tensor::<1>::from_floats([-100.0, 100.0, f32::NEG_INFINITY, f32::INFINITY], &device);
    let host = |t: Tensor<1>| t.into_data().try_into_vec::<f32>().unwrap();
    assert_eq!(host(sigmoid(x.clone())), [0.0, 1.0, 0.0, 1.0]);
    assert_eq!(host(tanh(x.clone())), [-1.0, 1.0, -1.0, 1.0]);
    let e = host(exp(x.clone()));
    assert!(e[0] >= 0.0 && e[0] < 1e-43 && e[1] == f32::INFINITY && e[2] == 0.0);
    let g = host(gelu(x.narrow(0, 0, 2)));
    assert_eq!(g, [0.0, 100.0]);
    let nan = host(sigmoid(Tensor::<1>::from_floats([f32::NAN], &device)));
    assert!(nan[0].is_nan());
}

/// The composed version of each function: what burn computes without the kernels.
fn composed(name: &str, x: Tensor<3>, dim: usize) -> Tensor<3> {
    use burn::tensor::activation;
    match name {
        "exp" => x.exp(),
        "sigmoid" => activation::sigmoid(x),
        "tanh" => x.tanh(),
        "gelu" => activation::gelu(x),
        "softmax" => activation::softmax(x, dim),
        "log_sum_exp" => {
            let max = x.clone().max_dim(dim).detach();
            (x - max.clone()).exp().sum_dim(dim).log() + max
        }
        _ => unreachable!(),
    }
}

fn fast(name: &str, x: Tensor<3>, dim: usize) -> Tensor<3> {
    match name {
        "exp" => exp(x),
        "sigmoid" => sigmoid(x),
        "tanh" => tanh(x),
        "gelu" => gelu(x),
        "softmax" => softmax(x, dim),
        "log_sum_exp" => log_sum_exp(x, dim),
        _ => unreachable!(),
    }
}

const NAMES: [&str; 6] = ["exp", "sigmoid", "tanh", "gelu", "softmax", "log_sum_exp"];

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

fn assert_close(a: &[f32], b: &[f32], tolerance: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
        .fold(0.0f32, f32::max);
    assert!(worst <= tolerance, "{what}: {worst:e} > {tolerance:e}");
}

/// Values and gradients against burn's autodiff of the composed operations, on every axis of
/// a small tensor, a transposed (non-contiguous) one, and one large enough for rayon.
#[test]
fn values_and_gradients_match_composed_operations() {
    let device = Device::flex().autodiff();
    device.seed(17);
    for shape in [[2, 3, 5], [3, 17, 33], [4, 96, 128]] {
        let x = Tensor::<3>::random(shape, Distribution::Normal(0.0, 3.0), &device);
        let [a, b, c] = shape;
        // The same shape, with the last two axes' strides exchanged.
        let strided =
            Tensor::<3>::random([a, c, b], Distribution::Normal(0.0, 3.0), &device).swap_dims(1, 2);
        for name in NAMES {
            for dim in 0..3 {
                for transposed in [false, true] {
                    let input = if transposed {
                        strided.clone()
                    } else {
                        x.clone()
                    };
                    let what = format!("{name} dim {dim} {shape:?} transposed {transposed}");
                    let x1 = input.clone().detach().require_grad();
                    let x2 = input.detach().require_grad();
                    let y1 = fast(name, x1.clone(), dim);
                    let y2 = composed(name, x2.clone(), dim);
                    let w = Tensor::<3>::random(y2.dims(), Distribution::Normal(0.0, 1.0), &device);
                    // Summed in index order, not rank order: rounding differs over long sets.
                    assert_close(&host(y1.clone()), &host(y2.clone()), 1e-5, &what);
                    let g1 = x1.grad(&(y1 * w.clone()).sum().backward()).unwrap();
                    let g2 = x2.grad(&(y2 * w).sum().backward()).unwrap();
                    assert_close(&host(g1), &host(g2), 1e-5, &format!("gradient of {what}"));
                }
            }
        }
    }
}

#[test]
fn plain_device_and_shared_inputs() {
    let device = Device::flex();
    device.seed(3);
    let x = Tensor::<2>::random([64, 700], Distribution::Normal(0.0, 2.0), &device);
    let before = host(x.clone());
    // The input is shared with `x`, so the kernel must not overwrite it.
    let y = sigmoid(x.clone());
    assert_eq!(host(x.clone()), before);
    assert_close(
        &host(y),
        &host(burn::tensor::activation::sigmoid(x.clone())),
        1e-6,
        "sigmoid",
    );
    let rows = host(softmax(x, 1));
    for row in rows.chunks(700) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn row_and_column_reductions_agree() {
    // [2, 37, 1] along axis 1 (rows of 37) and the same numbers as [2, 37, 3] columns.
    let x: Vec<f32> = (0..2 * 37 * 3)
        .map(|i| ((i * 7919) % 101) as f32 / 9.0 - 5.0)
        .collect();
    let axis = Axis::of(&[2, 37, 3], 1);
    let mut columns = vec![0.0; x.len()];
    kernels::softmax(axis, &x, &mut columns);
    let mut lse_columns = vec![0.0; 6];
    kernels::log_sum_exp(axis, &x, &mut lse_columns);
    for b in 0..2 {
        for c in 0..3 {
            let row: Vec<f32> = (0..37).map(|r| x[b * 111 + r * 3 + c]).collect();
            let mut soft = vec![0.0; 37];
            kernels::softmax(Axis::of(&[37], 0), &row, &mut soft);
            let mut lse = [0.0];
            kernels::log_sum_exp(Axis::of(&[37], 0), &row, &mut lse);
            let reference = row.iter().map(|&v| (v as f64).exp()).sum::<f64>().ln();
            assert!((lse[0] as f64 - reference).abs() < 1e-5);
            assert!((lse_columns[b * 3 + c] - lse[0]).abs() < 1e-5);
            for r in 0..37 {
                assert!((columns[b * 111 + r * 3 + c] - soft[r]).abs() < 1e-6);
            }
        }
    }
}

/// GPO's sorted pooling against burn's composed sort: values and both gradients, short and
/// long sets (counted and sorted ranks), a transposed input, and a batch large enough for rayon.
#[test]
fn sorted_pool_matches_composed_operations() {
    let device = Device::flex().autodiff();
    device.seed(23);
    let cases: [([usize; 3], Vec<usize>); 3] = [
        ([3, 7, 10], vec![7, 1, 4]),
        ([2, 80, 24], vec![80, 71]),
        ([64, 36, 96], (0..64).map(|b| 1 + b % 36).collect()),
    ];
    for (shape, lengths) in cases {
        let [batch, max_len, dim] = shape;
        for transposed in [false, true] {
            let x = if transposed {
                Tensor::<3>::random(
                    [batch, dim, max_len],
                    Distribution::Normal(0.0, 1.0),
                    &device,
                )
                .swap_dims(1, 2)
            } else {
                Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device)
            };
            let w = Tensor::<2>::random([batch, max_len], Distribution::Uniform(0.0, 1.0), &device);
            let what = format!("{shape:?} transposed {transposed}");
            let (x1, w1) = (x.clone().detach().require_grad(), w.clone().require_grad());
            let (x2, w2) = (x.detach().require_grad(), w.require_grad());
            let y1 = sorted_pool(x1.clone(), w1.clone(), &lengths);
            let y2 = sorted_pool_composed(x2.clone(), w2.clone(), &lengths);
            // Summed in index order, not rank order: rounding differs over long sets.
            assert_close(&host(y1.clone()), &host(y2.clone()), 1e-5, &what);
            let v = Tensor::<2>::random([batch, dim], Distribution::Normal(0.0, 1.0), &device);
            let grads1 = (y1 * v.clone()).sum().backward();
            let grads2 = (y2 * v).sum().backward();
            let (dx1, dx2) = (x1.grad(&grads1).unwrap(), x2.grad(&grads2).unwrap());
            assert_close(&host(dx1), &host(dx2), 1e-6, &format!("∂x {what}"));
            let (dw1, dw2) = (w1.grad(&grads1).unwrap(), w2.grad(&grads2).unwrap());
            assert_close(&host(dw1), &host(dw2), 2e-5, &format!("∂θ {what}"));
        }
    }
    // Without autodiff, the same values.
    let plain = Device::flex();
    let x = Tensor::<3>::random([4, 9, 33], Distribution::Normal(0.0, 1.0), &plain);
    let w = Tensor::<2>::random([4, 9], Distribution::Uniform(0.0, 1.0), &plain);
    let lengths = [9, 2, 5, 1];
    assert_close(
        &host(sorted_pool(x.clone(), w.clone(), &lengths)),
        &host(sorted_pool_composed(x, w, &lengths)),
        2e-6,
        "plain flex",
    );
}

/// The fused GRU recurrence against burn's step-by-step operations: outputs and the gradients
/// of the projection, `W_hh` and `b_hh`, on one step, a short batch (one thread, every
/// instruction set) and a batch large enough for rayon.
#[test]
fn gru_recurrence_matches_composed_operations() {
    let device = Device::flex().autodiff();
    device.seed(29);
    for (shape, isas) in [
        ([2, 1, 4], instruction_sets()),
        ([3, 5, 7], instruction_sets()),
        ([64, 6, 128], vec![Isa::detected()]),
    ] {
        let [batch, len, hidden] = shape;
        let projected = Tensor::<3>::random(
            [batch, len, 3 * hidden],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let bound = 1.0 / (hidden as f64).sqrt();
        let w = Tensor::<2>::random(
            [hidden, 3 * hidden],
            Distribution::Uniform(-bound, bound),
            &device,
        );
        let b = Tensor::<1>::random([3 * hidden], Distribution::Uniform(-bound, bound), &device);
        let v = Tensor::<3>::random(
            [batch, len, hidden],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        for isa in isas {
            FORCED_ISA.with(|cell| cell.set(Some(isa)));
            let what = format!("{shape:?} {isa:?}");
            let leaves = || {
                (
                    projected.clone().detach().require_grad(),
                    w.clone().detach().require_grad(),
                    b.clone().detach().require_grad(),
                )
            };
            let (p1, w1, b1) = leaves();
            let (p2, w2, b2) = leaves();
            let y1 = gru_recurrence(p1.clone(), w1.clone(), b1.clone());
            let y2 = gru_recurrence_composed(p2.clone(), w2.clone(), b2.clone());
            assert_close(&host(y1.clone()), &host(y2.clone()), 2e-6, &what);
            let g1 = (y1 * v.clone()).sum().backward();
            let g2 = (y2 * v.clone()).sum().backward();
            let pairs = [
                (
                    host(p1.grad(&g1).unwrap()),
                    host(p2.grad(&g2).unwrap()),
                    "∂projected",
                ),
                (
                    host(w1.grad(&g1).unwrap()),
                    host(w2.grad(&g2).unwrap()),
                    "∂W_hh",
                ),
                (
                    host(b1.grad(&g1).unwrap()),
                    host(b2.grad(&g2).unwrap()),
                    "∂b_hh",
                ),
            ];
            for (a, b, name) in pairs {
                assert_close(&a, &b, 2e-5, &format!("{name} {what}"));
            }
            FORCED_ISA.with(|cell| cell.set(None));
        }
    }
}
