//! Raw-image encoders trained end to end on `shapes` pixels read from a Karpathy-layout folder
//! (generated here): the loss falls, retrieval beats chance, the checkpoint reloads.

mod common;
use itm::burn::tensor::Device;
use itm::core::VseModelConfig;
use itm::core::eval::Protocol;
use itm::core::loss::NegativeMining;
use itm::data::images::ImageTransform;
use itm::data::karpathy::{self, KarpathySplit};
use itm::data::shapes::{RegionFeatureConfig, ShapesConfig, ShapesDataset};
use itm::data::{CaptionTokenizer, RetrievalSplit, Vocabulary};
use itm::train::{Trainer, TrainingConfig, evaluate_split};

fn pixel_splits(name: &str) -> (std::path::PathBuf, [RetrievalSplit; 3], CaptionTokenizer) {
    let data = ShapesDataset::generate(&ShapesConfig {
        seed: 4,
        train_images: 160,
        dev_images: 20,
        test_images: 20,
        regions: RegionFeatureConfig {
            d_feature: 8,
            n_regions: 4,
            noise: 1.0,
        },
    });
    let folder = std::env::temp_dir().join(format!("itm-pixels-{name}-{}", std::process::id()));
    let json = data.write_karpathy(&folder).unwrap();
    let root = folder.join("images");
    let load = |split| {
        karpathy::load(&json, &root, split)
            .unwrap()
            .into_retrieval(ImageTransform::new(16))
            .unwrap()
    };
    let vocab = Vocabulary::build(data.train.retrieval.captions.iter().map(String::as_str), 1);
    (
        folder,
        [
            load(KarpathySplit::Train),
            load(KarpathySplit::Dev),
            load(KarpathySplit::Test),
        ],
        CaptionTokenizer::from(vocab),
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
    common::assert_checkpoint_rescores(&output, &test, &device, rsum);
    std::fs::remove_dir_all(&folder).unwrap();
}

// One test, so that the two runs do not share the CPU device's random generator from two
// threads (which would make their initialisation, and the thresholds below, flaky).
#[test]
fn resnet_and_vit_train_on_pixels() {
    train_and_check("resnet", |vocab| {
        VseModelConfig::resnet_bigru(vec![8, 16], vocab, 32, 16)
    });
    train_and_check("vit", |vocab| {
        VseModelConfig::vit_bigru(16, 4, 32, 1, vocab, 32, 16)
    });
}
