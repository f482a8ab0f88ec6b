//! Numerical faults and determinism of training on the `flex` backend.
//!
//! - The same seed and configuration give the same per-epoch losses and validation metrics,
//!   exactly; another seed gives other losses (so the comparison can fail).
//! - A step with a non-finite loss or gradient is skipped and counted: one training image's
//!   features are set to 3e38 (finite, so the loader accepts them, but products overflow), and
//!   the batches holding its captions are skipped while the others train.
//! - A run that diverges is stopped: the fault is injected through the configuration only, a
//!   learning-rate decay factor of 1e30 after the first epoch (epoch 0 trains normally at 2e-3,
//!   epoch 1 at 2e27). The first step of epoch 1 throws the weights to ~1e27 (still finite),
//!   the later steps' losses are NaN and skipped, and the model scores every validation pair
//!   NaN — which the protocol alone would rank as a perfect model (rsum 600) and keep as the
//!   best checkpoint. The run must end with [`TrainError::Diverged`] at epoch 1, leaving the
//!   checkpoint of epoch 0 as it was: its weights score the dev split exactly as those of a
//!   one-epoch run do (finite scores), its metrics are equal but for the wall-clock time.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use itm_core::VseModelConfig;
use itm_core::loss::NegativeMining;
use itm_data::shapes::ShapesDataset;
use itm_data::{CaptionTokenizer, ImageSource, RegionFeatures, RetrievalSplit, Vocabulary};
use itm_test_support::{TempDir, serial, shapes};
use itm_train::{
    Checkpoint, EpochRecord, TrainError, Trainer, TrainingConfig, TrainingOutcome, score_split,
};

// Training draws from the backend's random generator, which `flex` keeps per process (a
// static, whatever the device): the tests of this file train one at a time (`serial`).

fn dataset() -> ShapesDataset {
    shapes(21, [120, 20, 0], 24, 4)
}

fn training(seed: u64) -> TrainingConfig {
    TrainingConfig {
        epochs: 2,
        batch_size: 40,
        learning_rate: 2e-3,
        lr_decay_epoch: 1,
        mining: NegativeMining::All,
        seed,
        ..TrainingConfig::default()
    }
}

fn fit(
    data: &ShapesDataset,
    config: TrainingConfig,
    output: Option<&Path>,
) -> Result<TrainingOutcome, TrainError> {
    let vocab = Vocabulary::build(data.train.retrieval.captions.iter().map(String::as_str), 1);
    let model = VseModelConfig::vse_infinity_bigru_sized(24, vocab.len(), 16, 8);
    let mut trainer = Trainer::new(config, Device::flex()).with_quiet(true);
    if let Some(folder) = output {
        trainer = trainer.with_output(folder);
    }
    trainer.fit(
        &model,
        &data.train.retrieval,
        &data.dev.retrieval,
        &CaptionTokenizer::from(vocab),
    )
}

/// A record without its wall-clock time.
fn timeless(history: &[EpochRecord]) -> Vec<EpochRecord> {
    history
        .iter()
        .map(|r| EpochRecord {
            seconds: 0.0,
            ..r.clone()
        })
        .collect()
}

#[test]
fn same_seed_same_metrics_on_flex() {
    let _alone = serial();
    let data = dataset();
    let first = fit(&data, training(7), None).unwrap();
    let second = fit(&data, training(7), None).unwrap();
    let other = fit(&data, training(8), None).unwrap();
    for record in &first.history {
        eprintln!(
            "epoch {}: loss {:.9}, dev rsum {:.3}",
            record.epoch,
            record.mean_loss,
            record.validation.rsum()
        );
    }
    assert_eq!(timeless(&first.history), timeless(&second.history));
    assert_eq!(first.best_epoch, second.best_epoch);
    assert_ne!(
        first.history[0].mean_loss, other.history[0].mean_loss,
        "another seed should change the run"
    );
}

#[test]
fn steps_with_overflowing_features_are_skipped_and_counted() {
    let _alone = serial();
    let mut data = dataset();
    let train = &data.train.retrieval;
    let regions = train.regions().unwrap();
    let mut values = regions.data().to_vec();
    let per_image = regions.n_regions() * regions.d_feature();
    values[3 * per_image..4 * per_image].fill(3e38);
    data.train.retrieval = RetrievalSplit::new(
        ImageSource::Regions(RegionFeatures::new(
            values,
            regions.n_regions(),
            regions.d_feature(),
        )),
        train.captions.clone(),
        train.caption_image.clone(),
    )
    .unwrap();
    let outcome = fit(&data, training(7), None).unwrap();
    for record in &outcome.history {
        eprintln!(
            "epoch {}: {} steps skipped, loss {}, rsum {}",
            record.epoch,
            record.skipped_steps,
            record.mean_loss,
            record.validation.rsum()
        );
        // Image 3's five captions fall in one to five of the epoch's 15 batches.
        assert!((1..=5).contains(&record.skipped_steps));
        assert!(record.mean_loss.is_finite());
        assert!(record.validation.rsum().is_finite());
    }
}

#[test]
fn a_diverging_run_stops_and_keeps_the_last_good_checkpoint() {
    let _alone = serial();
    let data = dataset();
    let work = TempDir::new("faults");
    let output = work.join("diverge");
    // Epoch 0 alone, as a reference for what must survive.
    let good = work.join("good");
    fit(
        &data,
        TrainingConfig {
            epochs: 1,
            ..training(7)
        },
        Some(&good),
    )
    .unwrap();

    let exploding = TrainingConfig {
        epochs: 3,
        lr_decay_factor: 1e30,
        ..training(7)
    };
    let error = fit(&data, exploding, Some(&output)).expect_err("the run should stop");
    let message = error.to_string();
    eprintln!("{message}");
    match error {
        TrainError::Diverged { epoch, .. } => assert_eq!(epoch, 1),
        other => panic!("expected Diverged, got {other}"),
    }
    assert!(message.contains("diverged") && message.contains("NaN") && message.contains("epoch 1"));
    let json = |path: PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    for file in ["model.json", "vocab.json"] {
        assert_eq!(
            json(output.join(file)),
            json(good.join(file)),
            "{file} differs from the epoch-0 run"
        );
    }
    let records = |folder: &Path| -> Vec<EpochRecord> {
        let text = std::fs::read_to_string(folder.join("metrics.jsonl")).unwrap();
        let records: Vec<EpochRecord> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        timeless(&records)
    };
    assert_eq!(records(&output), records(&good));
    // model.bpk holds random parameter ids: compare what the weights compute instead.
    let scores = |folder: &Path| {
        let (model, _, tokenizer) = Checkpoint::new(folder).load(&Device::flex()).unwrap();
        score_split(
            &model,
            &data.dev.retrieval,
            &tokenizer,
            &Device::flex(),
            true,
        )
        .unwrap()
    };
    let kept = scores(&output);
    assert!(kept.iter().all(|v| v.is_finite()));
    assert_eq!(kept, scores(&good));
}

/// Every image's region features set to zero: the image tower maps every image to the same
/// embedding, so each caption scores every dev image the same and every text → image query
/// ties at its ground truth. Ranked pessimistically that is rsum near 0 (a tie-favouring rank
/// would give text → image recall 100 and keep the epoch as the best); the epoch is flagged
/// degenerate, never kept, and a run of only such epochs ends with an error and no checkpoint.
#[test]
fn a_collapsed_model_is_never_kept_as_the_best() {
    let _alone = serial();
    let mut data = dataset();
    for split in [&mut data.train.retrieval, &mut data.dev.retrieval] {
        let regions = split.regions().unwrap();
        let zeros = vec![0.0; regions.data().len()];
        *split = RetrievalSplit::new(
            ImageSource::Regions(RegionFeatures::new(
                zeros,
                regions.n_regions(),
                regions.d_feature(),
            )),
            split.captions.clone(),
            split.caption_image.clone(),
        )
        .unwrap();
    }
    let work = TempDir::new("faults-collapsed");
    let output = work.join("run");
    let error = fit(&data, training(7), Some(&output)).expect_err("no epoch can be kept");
    eprintln!("{error}");
    assert!(
        matches!(error, TrainError::Degenerate { epochs: 2 }),
        "expected Degenerate after 2 epochs, got {error}"
    );
    assert!(error.to_string().contains("degenerate"));
    assert!(
        !output.join("model.bpk").exists() && !output.join("resume.json").exists(),
        "a degenerate epoch was saved as a checkpoint"
    );
    let text = std::fs::read_to_string(output.join("metrics.jsonl")).unwrap();
    let records: Vec<EpochRecord> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    let dev_captions = data.dev.retrieval.captions.len();
    for record in &records {
        let m = &record.validation;
        assert!(m.degenerate, "epoch {}: {m:?}", record.epoch);
        assert_eq!(m.t2i_ties, dev_captions, "every caption ties");
        // Every caption ranks its image behind all 19 other dev images.
        assert_eq!(m.t2i_recall, [0.0, 0.0, 0.0]);
        assert_eq!(m.t2i_medr, 20.0);
    }
    let csv = std::fs::read_to_string(output.join("metrics.csv")).unwrap();
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",i2t_ties,t2i_ties,degenerate")
    );
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .ends_with(&format!(",{dev_captions},true"))
    );
    std::fs::remove_dir_all(&output).unwrap();
}
