//! One VSE∞ training step at the published size: regions `[128, 36, 2048]` → `D = 1024`, a
//! BiGRU over captions of 12 words (300-d embeddings, 10,000 words), GPO on both sides, hinge
//! loss with the hardest negatives, and an AdamW step with gradient clipping (the settings of
//! `itm_train::TrainingConfig::default`).
//!
//! `vse_infinity_bert_mini_b128`: the same step with a BERT-mini text tower (4 layers, 256 wide,
//! 4 heads, 1,024 inner, the bert-base vocabulary, random weights) over 14 tokens per caption
//! ([CLS], 12 words, [SEP]) → `Linear(256 → 1024)` → GPO.
//!
//! The step is the body of the trainer's loop: scores, loss (read back to the host, as the
//! trainer does to skip non-finite steps), backward pass, optimiser step.

mod common;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use itm::burn::grad_clipping::GradientClippingConfig;
use itm::burn::optim::{AdamWConfig, GradientsParams};
use itm::burn::tensor::{Device, Int, Tensor, TensorData};
use itm::core::encoders::{BertConfig, ImageInput};
use itm::core::loss::HingeLossConfig;
use itm::core::{VseModel, VseModelConfig};
use itm::train::TrainingConfig;
use rand::{Rng, SeedableRng, rngs::StdRng};

use common::{REGIONS, WORDS, uniform};

const BATCH: usize = 128;
const D_FEATURE: usize = 2048;
const VOCAB: usize = 10_000;

/// The bert-base vocabulary, BERT-mini's sizes, and tokens per caption of the BERT step.
const BERT_VOCAB: usize = 30_522;
const BERT_TOKENS: usize = WORDS + 2;

fn training_step(c: &mut Criterion) {
    let device = Device::flex().autodiff();
    device.seed(0);
    let mut group = c.benchmark_group("training_step");
    common::heavy(&mut group, 20);
    let bigru = VseModelConfig::vse_infinity_bigru(D_FEATURE, VOCAB);
    step(
        &mut group,
        "vse_infinity_bigru_b128",
        bigru,
        VOCAB,
        WORDS,
        &device,
    );
    let bert_mini = BertConfig::new(BERT_VOCAB, 256, 4, 4, 1024, 512);
    let bert = VseModelConfig::vse_infinity_bert(D_FEATURE, bert_mini, 1024);
    step(
        &mut group,
        "vse_infinity_bert_mini_b128",
        bert,
        BERT_VOCAB,
        BERT_TOKENS,
        &device,
    );
    group.finish();
}

/// Benchmarks one training step of `config` on a batch of 128 (`words` token ids per caption,
/// drawn from `1..vocab`).
fn step(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    config: VseModelConfig,
    vocab: usize,
    words: usize,
    device: &Device,
) {
    let training = TrainingConfig::default();
    let mut model: Option<VseModel> = Some(config.init(device));
    let regions = Tensor::<3>::from_data(
        TensorData::new(
            uniform(BATCH * REGIONS * D_FEATURE, 6),
            [BATCH, REGIONS, D_FEATURE],
        ),
        device,
    );
    let mut rng = StdRng::seed_from_u64(7);
    let ids: Vec<i64> = (0..BATCH * words)
        .map(|_| rng.random_range(1..vocab as i64))
        .collect();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids, [BATCH, words]), device);
    let lengths = vec![words; BATCH];
    let loss_fn = HingeLossConfig::new()
        .with_margin(training.margin)
        .with_mining(training.mining)
        .with_warmup_epochs(0)
        .init();
    let mut optimizer = AdamWConfig::new()
        .with_weight_decay(training.weight_decay as f32)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(
            training.grad_clip as f32,
        )))
        .init();
    group.bench_function(name, |b| {
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
            model = Some(optimizer.step(training.learning_rate, current, grads));
            value
        })
    });
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = training_step
}
criterion_main!(benches);
