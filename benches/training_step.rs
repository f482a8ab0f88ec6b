//! One VSE∞ training step at the published size: regions `[128, 36, 2048]` → `D = 1024`, a
//! BiGRU over captions of 12 words (300-d embeddings, 10,000 words), GPO on both sides, hinge
//! loss with the hardest negatives, and an AdamW step with gradient clipping (the settings of
//! `itm_train::TrainingConfig::default`).
//!
//! The step is the body of the trainer's loop: scores, loss (read back to the host, as the
//! trainer does to skip non-finite steps), backward pass, optimiser step.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use itm::burn::grad_clipping::GradientClippingConfig;
use itm::burn::optim::{AdamWConfig, GradientsParams};
use itm::burn::tensor::{Device, Int, Tensor, TensorData};
use itm::core::encoders::ImageInput;
use itm::core::loss::HingeLossConfig;
use itm::core::{VseModel, VseModelConfig};
use itm::train::TrainingConfig;
use rand::{Rng, SeedableRng, rngs::StdRng};

use common::{REGIONS, WORDS, uniform};

const BATCH: usize = 128;
const D_FEATURE: usize = 2048;
const VOCAB: usize = 10_000;

fn training_step(c: &mut Criterion) {
    let config = TrainingConfig::default();
    let device = Device::flex().autodiff();
    device.seed(0);
    let mut model: Option<VseModel> =
        Some(VseModelConfig::vse_infinity_bigru(D_FEATURE, VOCAB).init(&device));
    let regions = Tensor::<3>::from_data(
        TensorData::new(
            uniform(BATCH * REGIONS * D_FEATURE, 6),
            [BATCH, REGIONS, D_FEATURE],
        ),
        &device,
    );
    let mut rng = StdRng::seed_from_u64(7);
    let ids: Vec<i64> = (0..BATCH * WORDS)
        .map(|_| rng.random_range(1..VOCAB as i64))
        .collect();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids, [BATCH, WORDS]), &device);
    let lengths = vec![WORDS; BATCH];
    let loss_fn = HingeLossConfig::new()
        .with_margin(config.margin)
        .with_mining(config.mining)
        .with_warmup_epochs(0)
        .init();
    let mut optimizer = AdamWConfig::new()
        .with_weight_decay(config.weight_decay as f32)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(config.grad_clip as f32)))
        .init();

    let mut group = c.benchmark_group("training_step");
    common::heavy(&mut group, 20);
    group.bench_function("vse_infinity_bigru_b128", |b| {
        b.iter(|| {
            let current = model.take().expect("the model is put back after each step");
            let images = ImageInput::Regions {
                features: regions.clone(),
                lengths: vec![REGIONS; BATCH],
            };
            let scores = current.batch_scores(images, tokens.clone(), &lengths);
            let loss = loss_fn.forward(scores, None, 0);
            let value = loss.clone().into_scalar::<f32>();
            let grads = GradientsParams::from_grads(loss.backward(), &current);
            model = Some(optimizer.step(config.learning_rate, current, grads));
            value
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = training_step
}
criterion_main!(benches);
