//! HREM's instance relation layer in training (the `hrem` zoo entry at a tiny size on `shapes`).
//!
//! - While its warm-up lasts the layer is inert: a run with it equals, bit for bit, the same run
//!   of the model without it (losses and validation metrics; validation reads the plain
//!   embeddings, so the layer is never on the retrieval path).
//! - Once the warm-up ends (at the run's step `relation_warmup_steps`, counted across epochs)
//!   the relation losses join the training loss and the layer's weights are trained.
//! - Its weights are in the checkpoints, and a run stopped after one epoch and resumed ends
//!   bit-identical to an uninterrupted one, layer included.

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use itm_core::encoders::{
    GruTextEncoderConfig, ImageEncoderConfig, RegionEncoderConfig, TextEncoderConfig,
};
use itm_core::pooling::PoolingConfig;
use itm_core::{VseModel, VseModelConfig};
use itm_data::shapes::ShapesDataset;
use itm_data::{CaptionTokenizer, Vocabulary};
use itm_test_support::{TempDir, shapes};
use itm_train::{Checkpoint, EpochRecord, Trainer, TrainingConfig, TrainingOutcome, zoo};

/// 120 training images (600 captions: 15 batches of 40 an epoch), 20 dev images.
fn dataset() -> ShapesDataset {
    shapes(31, [120, 20, 0], 24, 4)
}

const STEPS_PER_EPOCH: usize = 600 / 40;

/// The `hrem` entry at `D` = 16 (its 16 heads are one channel wide here), with or without the
/// relation layer. The dropout of HREM's set aggregation is off: its masks are drawn from the
/// device's generator, whose position the relation layer's initialisation moves, and the
/// comparison of runs with and without the layer must see the layer alone.
fn model(vocab: &Vocabulary, relation: bool) -> VseModelConfig {
    let hrem = zoo::lookup("hrem").expect("the hrem entry");
    let mut config = hrem.model(
        ImageEncoderConfig::Regions(RegionEncoderConfig::new(24, 16)),
        TextEncoderConfig::Gru(GruTextEncoderConfig::new(vocab.len(), 16).with_d_word(8)),
        itm_train::Towers::System,
    );
    for pooling in [&mut config.image_pooling, &mut config.text_pooling] {
        let PoolingConfig::Hrem(hrem) = pooling else {
            panic!("HREM's aggregation")
        };
        hrem.dropout = 0.0;
    }
    assert!(config.instance_relation.is_some());
    if relation {
        config
    } else {
        config.with_instance_relation(None)
    }
}

/// HREM's defaults with a small run's schedule: 2 epochs (VSE0, then hardest negatives), the
/// relation losses from step `warmup`.
fn training(epochs: usize, warmup: usize) -> TrainingConfig {
    TrainingConfig {
        epochs,
        batch_size: 40,
        learning_rate: 2e-3,
        lr_decay_epoch: 1,
        seed: 5,
        relation_warmup_steps: warmup,
        ..zoo::lookup("hrem").unwrap().training()
    }
}

fn fit(
    data: &ShapesDataset,
    model: &VseModelConfig,
    vocab: &Vocabulary,
    config: TrainingConfig,
    output: Option<&Path>,
) -> TrainingOutcome {
    let mut trainer = Trainer::new(config, Device::flex()).with_quiet(true);
    if let Some(folder) = output {
        trainer = trainer.with_output(folder);
    }
    trainer
        .fit(
            model,
            &data.train.retrieval,
            &data.dev.retrieval,
            &CaptionTokenizer::from(vocab.clone()),
        )
        .unwrap()
}

/// Records without their wall-clock times.
fn timeless(history: &[EpochRecord]) -> Vec<EpochRecord> {
    history
        .iter()
        .map(|r| EpochRecord {
            seconds: 0.0,
            ..r.clone()
        })
        .collect()
}

/// Every weight of the model's relation layer, in visiting order.
fn relation_weights(model: &VseModel) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0
                .extend(param.val().into_data().try_into_vec::<f32>().unwrap());
        }
    }
    let mut collect = Collect(Vec::new());
    model
        .instance_relation
        .as_ref()
        .expect("a relation layer")
        .visit(&mut collect);
    assert!(!collect.0.is_empty());
    collect.0
}

/// One test: flex's random generator is one per process, so runs must not interleave.
#[test]
fn relation_losses_train_after_the_warm_up_and_resume_exactly() {
    let data = dataset();
    let vocab = Vocabulary::build(data.train.retrieval.captions.iter().map(String::as_str), 1);
    let with_layer = model(&vocab, true);
    let without_layer = model(&vocab, false);

    // Warm-up longer than the run: the layer takes no part.
    let inert = fit(&data, &with_layer, &vocab, training(2, usize::MAX), None);
    let plain = fit(&data, &without_layer, &vocab, training(2, usize::MAX), None);
    assert_eq!(timeless(&inert.history), timeless(&plain.history));

    // From the first step: the loss has the relation terms and the layer learns.
    let work = TempDir::new("relation");
    let full_dir = work.join("full");
    let related = fit(&data, &with_layer, &vocab, training(2, 0), Some(&full_dir));
    for record in related.history.iter().chain(&inert.history) {
        eprintln!(
            "epoch {}: loss {:.6}, dev rsum {:.2}",
            record.epoch,
            record.mean_loss,
            record.validation.rsum()
        );
    }
    assert!(
        related.history[0].mean_loss > inert.history[0].mean_loss,
        "the three relation terms add to the loss: {} vs {}",
        related.history[0].mean_loss,
        inert.history[0].mean_loss
    );
    assert_ne!(
        relation_weights(&related.best_model),
        relation_weights(&inert.best_model),
        "the relation layer was not trained"
    );

    // Warm-up of one epoch: epoch 0 as without the layer, epoch 1 with it.
    let delayed = fit(
        &data,
        &with_layer,
        &vocab,
        training(2, STEPS_PER_EPOCH),
        None,
    );
    assert_eq!(
        timeless(&delayed.history[..1]),
        timeless(&inert.history[..1])
    );
    assert_ne!(delayed.history[1].mean_loss, inert.history[1].mean_loss);

    // The checkpoint holds the layer.
    let (loaded, config, _) = Checkpoint::new(&full_dir).load(&Device::flex()).unwrap();
    assert!(config.instance_relation.is_some());
    assert_eq!(
        relation_weights(&loaded),
        relation_weights(&related.best_model)
    );

    // Stopped after one epoch, resumed for the second: the same run, layer included.
    let part_dir = work.join("part");
    fit(&data, &with_layer, &vocab, training(1, 0), Some(&part_dir));
    let (resumed, _, _) = Trainer::new(training(2, 0), Device::flex())
        .with_output(&part_dir)
        .with_quiet(true)
        .resume(&data.train.retrieval, &data.dev.retrieval)
        .unwrap();
    assert_eq!(timeless(&resumed.history), timeless(&related.history));
    let last = |dir: &Path| {
        let (model, _, _) = Checkpoint::new(dir.join("resume-2"))
            .load(&Device::flex())
            .unwrap();
        relation_weights(&model)
    };
    assert_eq!(last(&part_dir), last(&full_dir));
}
