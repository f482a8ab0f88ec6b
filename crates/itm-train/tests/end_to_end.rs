//! A short training run on a small `shapes` subset: the loss falls and retrieval beats chance
//! by a wide margin; the checkpoint written on the way reloads to the same scores.

use burn::tensor::Device;
use itm_core::VseModelConfig;
use itm_core::eval::Protocol;
use itm_core::loss::NegativeMining;
use itm_data::CaptionTokenizer;
use itm_test_support::{
    TempDir, assert_checkpoint_rescores, fit_quietly, read_jsonl, shapes, word_tokenizer,
};
use itm_train::{TrainingConfig, evaluate_split};

#[test]
fn short_run_learns_and_checkpoints() {
    let data = shapes(11, [800, 100, 100], 64, 8);
    let (vocab, tokenizer) = word_tokenizer(&data);
    let model = VseModelConfig::vse_infinity_bigru_sized(64, vocab.len(), 64, 32);
    let training = TrainingConfig {
        epochs: 3,
        batch_size: 32,
        learning_rate: 2e-3,
        lr_decay_epoch: 2,
        mining: NegativeMining::All,
        seed: 3,
        ..TrainingConfig::default()
    };
    let output = TempDir::new("e2e");
    let device = Device::flex();
    let outcome = fit_quietly(
        training,
        device.clone(),
        &model,
        &data,
        &tokenizer,
        Some(output.path()),
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

    let (_, _, reloaded_vocab) = assert_checkpoint_rescores(&output, test, &device, rsum);
    assert!(matches!(reloaded_vocab, CaptionTokenizer::Words(v) if v == vocab));
    assert_eq!(read_jsonl(&output.join("metrics.jsonl")).len(), 3);
}
