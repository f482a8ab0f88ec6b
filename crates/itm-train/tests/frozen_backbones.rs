//! HAT's frozen backbones (`training.frozen_backbone_epochs`): in the frozen epochs the Swin
//! and the BERT a run loaded pretrained do not move while their level projections learn; a
//! backbone trained from scratch is never frozen.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use itm_core::encoders::{
    BertConfig, BertLevelEncoderConfig, ImageEncoder, ImageEncoderConfig, SwinConfig,
    SwinLevelEncoderConfig, TextEncoder, TextEncoderConfig, hat_text_layers,
};
use itm_core::loss::NegativeMining;
use itm_core::models::Backbones;
use itm_core::{VseModel, VseModelConfig};
use itm_data::images::ImageTransform;
use itm_data::karpathy::{self, KarpathySplit};
use itm_test_support::{TempDir, shapes, word_tokenizer};
use itm_train::towers::Towers;
use itm_train::{Trainer, TrainingConfig, zoo};

/// Every float parameter value of `module`, in visiting order.
fn values(module: &impl Module) -> Vec<f32> {
    struct Values(Vec<f32>);
    impl ModuleVisitor for Values {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.extend(
                param
                    .val()
                    .into_data()
                    .try_to_vec::<f32>()
                    .expect("f32 values"),
            );
        }
    }
    let mut visitor = Values(Vec::new());
    module.visit(&mut visitor);
    visitor.0
}

/// The largest absolute change between two parameter lists.
fn moved(before: &[f32], after: &[f32]) -> f32 {
    assert_eq!(before.len(), after.len());
    before
        .iter()
        .zip(after)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

/// The Swin, its projections, the BERT and its projections of a multi-level model.
fn parts(model: &VseModel) -> [Vec<f32>; 4] {
    let (ImageEncoder::SwinLevels(image), TextEncoder::BertLevels(text)) =
        (&model.image, &model.text)
    else {
        unreachable!("HAT's towers")
    };
    [
        values(&image.swin),
        values(&image.projection),
        values(&text.bert),
        values(&text.projection),
    ]
}

#[test]
fn pretrained_backbones_stay_frozen_in_the_first_epochs() {
    let data = shapes(6, [40, 8, 8], 8, 4);
    let folder = TempDir::new("frozen-backbones");
    let json = data.write_karpathy(&folder).unwrap();
    let root = folder.join("images");
    let load = |split| {
        karpathy::load(&json, &root, split)
            .unwrap()
            .into_retrieval(ImageTransform::new(32))
            .unwrap()
    };
    let (train, dev) = (load(KarpathySplit::Train), load(KarpathySplit::Dev));
    let (_, tokenizer) = word_tokenizer(&data);
    let bert = BertConfig::new(tokenizer.vocab_size(), 16, 3, 2, 32, 32);
    let config: VseModelConfig = zoo::lookup("hat").unwrap().model(
        ImageEncoderConfig::SwinLevels(SwinLevelEncoderConfig::new(SwinConfig::tiny(), 16)),
        TextEncoderConfig::BertLevels(BertLevelEncoderConfig::new(bert, hat_text_layers(3), 16)),
        Towers::System,
    );
    let training = TrainingConfig {
        epochs: 1,
        batch_size: 20,
        learning_rate: 2e-3,
        lr_decay_epoch: 1,
        mining: NegativeMining::All,
        warmup_epochs: 0,
        region_drop: 0.0,
        frozen_backbone_epochs: 1,
        seed: 1,
        ..TrainingConfig::default()
    };
    // The Swin came pretrained (frozen), the BERT from scratch (learns); then nothing frozen.
    for (pretrained, frozen_epochs) in [
        (
            Backbones {
                image: true,
                text: false,
            },
            1,
        ),
        (
            Backbones {
                image: true,
                text: true,
            },
            0,
        ),
    ] {
        let device = Device::flex().autodiff();
        device.seed(2);
        let model = config.init(&device);
        let before = parts(&model);
        let trainer = Trainer::new(
            TrainingConfig {
                frozen_backbone_epochs: frozen_epochs,
                ..training.clone()
            },
            Device::flex(),
        )
        .with_quiet(true)
        .with_pretrained_backbones(pretrained);
        let outcome = trainer
            .fit_from(model, &config, &train, &dev, &tokenizer)
            .expect("one epoch trains");
        let after = parts(&outcome.best_model);
        let [swin, swin_levels, bert, bert_levels] =
            [0, 1, 2, 3].map(|part| moved(&before[part], &after[part]));
        eprintln!("frozen {frozen_epochs}: swin {swin}, bert {bert}");
        if frozen_epochs == 1 {
            assert_eq!(swin, 0.0, "the frozen Swin moved");
        } else {
            assert!(swin > 1e-4, "the Swin did not learn: {swin}");
        }
        for (name, change) in [
            ("Swin projections", swin_levels),
            ("BERT", bert),
            ("BERT projections", bert_levels),
        ] {
            assert!(change > 1e-4, "{name} did not learn: {change}");
        }
    }
}
