//! Raw-image encoders trained end to end on `shapes` pixels read from a Karpathy-layout folder
//! (generated here): the loss falls, retrieval beats chance, the checkpoint reloads.

use burn::tensor::Device;
use itm_core::VseModelConfig;
use itm_core::eval::Protocol;
use itm_core::loss::NegativeMining;
use itm_data::images::ImageTransform;
use itm_data::karpathy::{self, KarpathySplit};
use itm_data::{CaptionTokenizer, RetrievalSplit};
use itm_test_support::{TempDir, assert_checkpoint_rescores, serial, shapes, word_tokenizer};
use itm_train::{Trainer, TrainingConfig, evaluate_split};

fn pixel_splits(name: &str) -> (TempDir, [RetrievalSplit; 3], CaptionTokenizer) {
    let data = shapes(4, [160, 20, 20], 8, 4);
    let folder = TempDir::new(&format!("pixels-{name}"));
    let json = data.write_karpathy(&folder).unwrap();
    let root = folder.join("images");
    let load = |split| {
        karpathy::load(&json, &root, split)
            .unwrap()
            .into_retrieval(ImageTransform::new(16))
            .unwrap()
    };
    let (_, tokenizer) = word_tokenizer(&data);
    (
        folder,
        [
            load(KarpathySplit::Train),
            load(KarpathySplit::Dev),
            load(KarpathySplit::Test),
        ],
        tokenizer,
    )
}

fn train_and_check(name: &str, model: impl Fn(usize) -> VseModelConfig) {
    let (folder, [train, dev, test], tokenizer) = pixel_splits(name);
    let config = TrainingConfig {
        epochs: 3,
        batch_size: 20,
        learning_rate: 2e-3,
        lr_decay_epoch: 3,
        mining: NegativeMining::All,
        seed: 5,
        ..TrainingConfig::default()
    };
    let device = Device::flex();
    let output = folder.join("run");
    let outcome = Trainer::new(config, device.clone())
        .with_output(&output)
        .with_quiet(true)
        .fit(&model(tokenizer.vocab_size()), &train, &dev, &tokenizer)
        .expect("training on pixels runs");
    let losses: Vec<f64> = outcome.history.iter().map(|r| r.mean_loss).collect();
    assert!(
        losses[2] < 0.9 * losses[0],
        "{name}: loss must fall: {losses:?}"
    );
    let report = evaluate_split(
        &outcome.best_model,
        &test,
        &tokenizer,
        &device,
        Protocol::Flickr30k,
        true,
    )
    .unwrap();
    // Chance on 20 images × 100 captions: i2t ≈ 5/23/42, t2i = 5/25/50, an rsum near 150.
    let rsum = report.metrics.rsum();
    eprintln!("{name}: test rsum {rsum:.1}");
    assert!(
        rsum > 250.0,
        "{name}: rsum {rsum} is not above chance: {:?}",
        report.metrics
    );
    assert_checkpoint_rescores(&output, &test, &device, rsum);
}

// One test, so that the two runs do not share the CPU device's random generator from two
// threads (which would make their initialisation, and the thresholds below, flaky).
#[test]
fn resnet_and_vit_train_on_pixels() {
    let _alone = serial();
    train_and_check("resnet", |vocab| {
        VseModelConfig::resnet_bigru(vec![8, 16], vocab, 32, 16)
    });
    train_and_check("vit", |vocab| {
        VseModelConfig::vit_bigru(16, 4, 32, 1, vocab, 32, 16)
    });
}
