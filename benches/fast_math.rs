//! The element-wise kernels of `itm_core::ops` against burn's composed operations on `flex`,
//! forward on the plain device and forward + backward on the autodiff device, at the shapes of
//! issue #17: `[128, 768]` (a batch of BERT-base features) and `[4608, 1024]` (128 images × 36
//! regions at `D = 1024`). `sigmoid_tanh_mul` is the issue's measurement (`σ(x)·tanh(x)`), the
//! rest one function each; softmax and LogSumExp reduce the last axis.

mod common;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use itm::burn::tensor::activation;
use itm::burn::tensor::{Device, Tensor, TensorData};
use itm::core::ops;

use common::uniform;

const SHAPES: [[usize; 2]; 2] = [[128, 768], [4608, 1024]];

type Function = fn(Tensor<2>) -> Tensor<2>;

/// `(name, kernel, burn's composed version)`.
fn functions() -> Vec<(&'static str, Function, Function)> {
    vec![
        (
            "sigmoid_tanh_mul",
            |x| ops::sigmoid(x.clone()) * ops::tanh(x),
            |x| activation::sigmoid(x.clone()) * x.tanh(),
        ),
        ("exp", ops::exp, |x| x.exp()),
        ("sigmoid", ops::sigmoid, activation::sigmoid),
        ("tanh", ops::tanh, |x| x.tanh()),
        ("gelu", ops::gelu, activation::gelu),
        (
            "softmax",
            |x| ops::softmax(x, 1),
            |x| activation::softmax(x, 1),
        ),
        (
            "log_sum_exp",
            |x| ops::log_sum_exp(x, 1),
            |x| {
                let max = x.clone().max_dim(1).detach();
                (x - max.clone()).exp().sum_dim(1).log() + max
            },
        ),
    ]
}

fn input(shape: [usize; 2], device: &Device) -> Tensor<2> {
    // Uniform in [−4, 4): both branches of every function.
    let values = uniform(shape[0] * shape[1], 7)
        .iter()
        .map(|v| 4.0 * v)
        .collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn fast_math(c: &mut Criterion) {
    for (name, kernel, composed) in functions() {
        let mut group = c.benchmark_group(format!("fast_math/{name}"));
        group.sample_size(20);
        for shape in SHAPES {
            let label = format!("{}x{}", shape[0], shape[1]);
            let x = input(shape, &Device::flex());
            for (variant, f) in [("kernel", kernel), ("burn", composed)] {
                group.bench_function(
                    BenchmarkId::new(format!("forward/{variant}"), &label),
                    |b| b.iter(|| f(x.clone()).into_data()),
                );
            }
            let device = Device::flex().autodiff();
            let x = input(shape, &device).require_grad();
            for (variant, f) in [("kernel", kernel), ("burn", composed)] {
                let id = BenchmarkId::new(format!("forward_backward/{variant}"), &label);
                group.bench_function(id, |b| b.iter(|| f(x.clone()).sum().backward()));
            }
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = fast_math
}
criterion_main!(benches);
