//! A short training run on a small `shapes` subset: the loss falls and retrieval beats chance
//! by a wide margin; the checkpoint written on the way reloads to the same scores.

mod common;
use itm::burn::tensor::Device;
use itm::core::VseModelConfig;
use itm::core::eval::Protocol;
use itm::core::loss::NegativeMining;
use itm::data::shapes::{RegionFeatureConfig, ShapesConfig, ShapesDataset};
use itm::data::{CaptionTokenizer, Vocabulary};
use itm::train::{Trainer, TrainingConfig, evaluate_split};

#[test]
fn short_run_learns_and_checkpoints() {
    let data = ShapesDataset::generate(&ShapesConfig {
        seed: 11,
        train_images: 800,
        dev_images: 100,
        test_images: 100,
        regions: RegionFeatureConfig {
            d_feature: 64,
            n_regions: 8,
            noise: 1.0,
        },
    });
    let vocab = Vocabulary::build(data.train.retrieval.captions.iter().map(String::as_str), 1);
    let model = VseModelConfig::vse_infinity_bigru_sized(64, vocab.len(), 64, 32);
    let tokenizer = CaptionTokenizer::from(vocab.clone());
    let training = TrainingConfig {
        epochs: 3,
        batch_size: 32,
        learning_rate: 2e-3,
        lr_decay_epoch: 2,
        mining: NegativeMining::All,
        seed: 3,
        ..TrainingConfig::default()
    };
    let output = std::env::temp_dir().join(format!("itm-e2e-{}", std::process::id()));
    let device = Device::flex();
    let outcome = Trainer::new(training, device.clone())
        .with_output(&output)
        .with_quiet(true)
        .fit(
            &model,
            &data.train.retrieval,
            &data.dev.retrieval,
            &tokenizer,
        )
        .expect("training runs");

    let losses: Vec<f64> = outcome.history.iter().map(|r| r.mean_loss).collect();
    assert_eq!(losses.len(), 3);
    assert!(losses[2] < 0.8 * losses[0], "loss must fall: {losses:?}");

    let test = &data.test.retrieval;
    let report = evaluate_split(
        &outcome.best_model,
        test,
        &tokenizer,
        &device,
        Protocol::Flickr30k,
        true,
    )
    .unwrap();
    // Chance on 100 images × 500 captions: R@1/5/10 ≈ 1/5/10 (i2t ≈ 5/23/41 with 5 captions),
    // an rsum near 85.
    let rsum = report.metrics.rsum();
    assert!(
        rsum > 250.0,
        "rsum {rsum} is not far above chance: {:?}",
        report.metrics
    );

    let (_, _, reloaded_vocab) = common::assert_checkpoint_rescores(&output, test, &device, rsum);
    assert!(matches!(reloaded_vocab, CaptionTokenizer::Words(v) if v == vocab));
    let metrics = std::fs::read_to_string(output.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 3);
    std::fs::remove_dir_all(&output).unwrap();
}
