//! Fine-grained models (CHAN, CHAN-ASDG, SCAN, ESL, X-Dim) train through the same loop as the cosine model and are
//! evaluated through the sharded scorer: the loss falls, retrieval beats chance, the checkpoint
//! reloads to the same scores.

use burn::tensor::Device;
use itm_core::VseModelConfig;
use itm_core::eval::Protocol;
use itm_core::fusion::MultiScaleFusionConfig;
use itm_core::loss::NegativeMining;
use itm_core::models::SimilarityConfig;
use itm_core::similarity::{ChanConfig, EslConfig, ScanConfig, XDimConfig};
use itm_test_support::{
    TempDir, assert_checkpoint_rescores, fit_quietly, serial, shapes, word_tokenizer,
};
use itm_train::{TrainingConfig, evaluate_split};

fn train_and_check(
    name: &str,
    similarity: SimilarityConfig,
    fusion: Option<MultiScaleFusionConfig>,
) {
    let data = shapes(12, [400, 40, 40], 32, 8);
    let (vocab, tokenizer) = word_tokenizer(&data);
    let model = VseModelConfig::vse_infinity_bigru_sized(32, vocab.len(), 32, 16)
        .with_similarity(similarity)
        .with_region_fusion(fusion.clone());
    let output = TempDir::new(&format!("fine-{name}"));
    let device = Device::flex();
    let outcome = fit_quietly(
        TrainingConfig {
            epochs: 3,
            batch_size: 32,
            learning_rate: 2e-3,
            lr_decay_epoch: 3,
            mining: NegativeMining::All,
            seed: 1,
            ..TrainingConfig::default()
        },
        device.clone(),
        &model,
        &data,
        &tokenizer,
        Some(output.path()),
    )
    .expect("training runs");
    let losses: Vec<f64> = outcome.history.iter().map(|r| r.mean_loss).collect();
    assert!(
        losses[2] < 0.9 * losses[0],
        "{name}: loss must fall: {losses:?}"
    );
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
    // Chance on 40 images × 200 captions: an rsum near 78.
    let rsum = report.metrics.rsum();
    eprintln!("{name}: test rsum {rsum:.1}");
    assert!(
        rsum > 250.0,
        "{name}: rsum {rsum} is not far above chance: {:?}",
        report.metrics
    );
    let (reloaded, config, _) = assert_checkpoint_rescores(&output, test, &device, rsum);
    assert!(reloaded.fine_grained().is_some() && format!("{:?}", config.similarity).contains(name));
    assert_eq!(
        reloaded.region_fusion.is_some() && config.region_fusion.is_some(),
        fusion.is_some()
    );
}

// One test, so that the runs do not share the CPU device's random generator from several
// threads (which would make their initialisation, and the thresholds, flaky); the guard keeps
// it so if tests are added to this file.
#[test]
fn fine_grained_heads_train_on_regions() {
    let _alone = serial();
    train_and_check("Chan", SimilarityConfig::Chan(ChanConfig::new()), None);
    // CHAN-ASDG: CHAN over multi-scale fused regions.
    train_and_check(
        "Chan",
        SimilarityConfig::Chan(ChanConfig::new()),
        Some(MultiScaleFusionConfig::new(32)),
    );
    train_and_check("Scan", SimilarityConfig::Scan(ScanConfig::new()), None);
    train_and_check(
        "Esl",
        SimilarityConfig::Esl(EslConfig::new(32).with_levels(3)),
        None,
    );
    train_and_check("XDim", SimilarityConfig::XDim(XDimConfig::new(32)), None);
}
