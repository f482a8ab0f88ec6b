//! VSE∞ with BERT fine-tuned from a pretrained Hugging Face folder (the tiny fixture of
//! `scripts/generate_bert_fixture.py`) on a `shapes` subset: the loss falls, retrieval beats
//! chance, and the checkpoint (with its `tokenizer.json`) reloads to the same scores.

use burn::tensor::Device;
use itm_core::VseModelConfig;
use itm_core::encoders::TextEncoder;
use itm_core::eval::Protocol;
use itm_core::loss::NegativeMining;
use itm_data::{CaptionTokenizer, SubwordTokenizer};
use itm_test_support::{TempDir, assert_checkpoint_rescores, shapes, train_fixtures};
use itm_train::{Trainer, TrainingConfig, evaluate_split, load_bert};

#[test]
fn bert_fine_tunes_on_shapes() {
    let pretrained = train_fixtures().path("tiny_bert");
    let data = shapes(8, [400, 40, 40], 32, 8);
    let trainer = Trainer::new(
        TrainingConfig {
            epochs: 8,
            batch_size: 32,
            learning_rate: 5e-3,
            lr_decay_epoch: 8,
            mining: NegativeMining::All,
            seed: 2,
            ..TrainingConfig::default()
        },
        Device::flex(),
    )
    .with_quiet(true);
    let output = TempDir::new("bert-finetune");
    let trainer = trainer.with_output(output.path());
    let device = trainer.training_device();
    let (bert, bert_config) = load_bert(&pretrained, &device).expect("the fixture loads");
    let config = VseModelConfig::vse_infinity_bert(32, bert_config, 32);
    let mut model = config.init(&device);
    let TextEncoder::Bert(text) = &mut model.text else {
        unreachable!("a BERT model")
    };
    text.bert = bert;
    let tokenizer: CaptionTokenizer =
        SubwordTokenizer::from_file(&pretrained.join("tokenizer.json"), 32)
            .expect("the fixture's tokenizer loads")
            .into();

    let outcome = trainer
        .fit_from(
            model,
            &config,
            &data.train.retrieval,
            &data.dev.retrieval,
            &tokenizer,
        )
        .expect("fine-tuning runs");
    let losses: Vec<f64> = outcome.history.iter().map(|r| r.mean_loss).collect();
    assert!(losses[7] < 0.8 * losses[0], "loss must fall: {losses:?}");
    let test = &data.test.retrieval;
    let plain = Device::flex();
    let report = evaluate_split(
        &outcome.best_model,
        test,
        &tokenizer,
        &plain,
        Protocol::Flickr30k,
        true,
    )
    .unwrap();
    // Chance on 40 images × 200 captions: i2t ≈ 2.5/12/23, t2i = 2.5/12.5/25, an rsum near 78.
    let rsum = report.metrics.rsum();
    assert!(
        rsum > 200.0,
        "rsum {rsum} is not far above chance: {:?}",
        report.metrics
    );

    let (_, _, reloaded_tokenizer) = assert_checkpoint_rescores(&output, test, &plain, rsum);
    assert!(matches!(reloaded_tokenizer, CaptionTokenizer::Subwords(_)));
}
