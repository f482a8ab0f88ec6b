//! GPO pooling of a VSE∞ batch of region features: 128 images × 36 regions × `D = 1024`.
//!
//! The forward pass runs on the plain `flex` device (evaluation); the backward pass on the
//! autodiff device (training), timed alone (the forward graph is built outside the timing)
//! and together with its forward pass.

mod common;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use itm::burn::tensor::{Device, Tensor, TensorData};
use itm::core::GpoConfig;

use common::{DIM, REGIONS, uniform};

const BATCH: usize = 128;

fn features(device: &Device, seed: u64) -> Tensor<3> {
    Tensor::from_data(
        TensorData::new(uniform(BATCH * REGIONS * DIM, seed), [BATCH, REGIONS, DIM]),
        device,
    )
}

fn gpo(c: &mut Criterion) {
    let lengths = vec![REGIONS; BATCH];
    let mut group = c.benchmark_group("gpo");
    group.sample_size(20);

    let device = Device::flex();
    device.seed(0);
    let pooling = GpoConfig::new().init(&device);
    let x = features(&device, 4);
    group.bench_function("forward", |b| {
        b.iter(|| pooling.forward(x.clone(), &lengths).into_data())
    });

    let device = Device::flex().autodiff();
    device.seed(0);
    let pooling = GpoConfig::new().init(&device);
    let x = features(&device, 4).require_grad();
    // A fixed random direction, so that every pooled value receives a gradient.
    let direction = Tensor::<2>::from_data(
        TensorData::new(uniform(BATCH * DIM, 5), [BATCH, DIM]),
        &device,
    );
    let objective = || (pooling.forward(x.clone(), &lengths) * direction.clone()).sum();
    group.bench_function("backward", |b| {
        b.iter_batched(objective, |loss| loss.backward(), BatchSize::PerIteration)
    });
    group.bench_function("forward_backward", |b| b.iter(|| objective().backward()));
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = gpo
}
criterion_main!(benches);
