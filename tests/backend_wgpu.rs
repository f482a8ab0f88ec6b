//! The numerics on the `wgpu` backend: the PyTorch references of `scripts/generate_fixtures.py`
//! (GPO, the BiGRU text encoder, the hinge loss, forward and gradients), cosine similarity
//! against `flex`, and a short training run started from the same weights on `wgpu` and on
//! `flex`, which must follow the same loss curve.
//!
//! Compiled only with `--features wgpu`, and then it needs an adapter: a GPU, or Mesa's
//! software Vulkan on the CPU (Debian: `mesa-vulkan-drivers libvulkan1`), which is how CI runs
//! it (`scripts/ci-wgpu.sh`). `ITM_TEST_WGPU_DEVICE` picks another adapter (`wgpu:1`).

#![cfg(feature = "wgpu")]

mod common;

use common::*;
use itm::burn::module::{Module, Param};
use itm::burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use itm::core::VseModelConfig;
use itm::core::encoders::GruTextEncoderConfig;
use itm::core::loss::{HingeLossConfig, NegativeMining};
use itm::core::pooling::GpoConfig;
use itm::core::similarity::cosine_similarity;
use itm::data::shapes::{RegionFeatureConfig, ShapesConfig, ShapesDataset};
use itm::data::{CaptionTokenizer, Vocabulary};
use itm::device::DeviceError;
use itm::train::{Trainer, TrainingConfig};

/// GPU kernels sum in another order than the CPU (tiled matmuls, tree reductions): the
/// references agree to 1e-5 on `flex`, and to this on `wgpu`.
const TOLERANCE: f32 = 1e-4;

fn wgpu() -> Device {
    let name = std::env::var("ITM_TEST_WGPU_DEVICE").unwrap_or_else(|_| "wgpu".to_string());
    itm::device::parse(&name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn devices_are_named_and_missing_ones_are_errors() {
    assert!(itm::device::available().contains(&"wgpu"));
    wgpu();
    match itm::device::parse("wgpu:64") {
        Err(error @ DeviceError::Missing { index: 64, .. }) => {
            let message = error.to_string();
            assert!(message.starts_with("no wgpu device 64 on this machine ("));
        }
        other => panic!("wgpu:64 should be missing, got {other:?}"),
    }
}

#[test]
fn gpo_matches_pytorch_on_wgpu() {
    let f = fixture("gpo");
    let device = wgpu().autodiff();
    let mut gpo = GpoConfig::new().init(&device);
    load_gru(&mut gpo.gru.forward, &f["gru_forward"], &device);
    load_gru(&mut gpo.gru.backward, &f["gru_backward"], &device);
    load_linear(&mut gpo.score, &f["score_weight"], None, &device);
    let shape = sizes(&f["features_shape"]);
    let lengths = sizes(&f["lengths"]);
    let features =
        tensor::<3>(&f["features"], [shape[0], shape[1], shape[2]], &device).require_grad();

    let weights = gpo.weights(&lengths, shape[1], &device);
    assert_close(
        &values(weights),
        &floats(&f["weights"]),
        TOLERANCE,
        "GPO weights",
    );
    let pooled = gpo.forward(features.clone(), &lengths);
    assert_close(
        &values(pooled.clone()),
        &floats(&f["pooled"]),
        TOLERANCE,
        "GPO pooled",
    );
    let probe = tensor::<2>(&f["probe"], [shape[0], shape[2]], &device);
    let grads = (pooled * probe).sum().backward();
    assert_close(
        &values(features.grad(&grads).expect("features gradient")),
        &floats(&f["features_grad"]),
        TOLERANCE,
        "d/d features",
    );
    assert_close(
        &values(gpo.score.weight.grad(&grads).expect("score gradient")),
        &floats(&f["score_weight_grad"]),
        TOLERANCE,
        "d/d score weight",
    );
}

#[test]
fn text_gru_matches_pytorch_on_wgpu() {
    let f = fixture("text_gru");
    let device = wgpu().autodiff();
    let size = |key: &str| f[key].as_u64().expect("an integer") as usize;
    let (vocab, d_word, hidden) = (size("vocab"), size("d_word"), size("hidden"));
    let mut encoder = GruTextEncoderConfig::new(vocab, hidden)
        .with_d_word(d_word)
        .init(&device);
    encoder.embedding.weight =
        Param::from_tensor(tensor(&f["embedding"], [vocab, d_word], &device));
    load_gru(&mut encoder.gru.forward, &f["gru_forward"], &device);
    load_gru(&mut encoder.gru.backward, &f["gru_backward"], &device);
    let shape = sizes(&f["tokens_shape"]);
    let ids: Vec<i64> = sizes(&f["tokens"]).iter().map(|&t| t as i64).collect();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids, [shape[0], shape[1]]), &device);

    let output = encoder.forward(tokens, &sizes(&f["lengths"]));
    assert_close(
        &values(output.clone()),
        &floats(&f["output"]),
        TOLERANCE,
        "BiGRU output",
    );
    let probe = tensor::<3>(&f["probe"], [shape[0], shape[1], hidden], &device);
    let grads = (output * probe).sum().backward();
    assert_close(
        &values(encoder.embedding.weight.grad(&grads).expect("gradient")),
        &floats(&f["embedding_grad"]),
        TOLERANCE,
        "d/d embedding",
    );
    let expected = transpose(
        &floats(&f["gru_backward_weight_hh_grad"]),
        3 * hidden,
        hidden,
    );
    let hh_grad = encoder.gru.backward.hidden.weight.grad(&grads);
    assert_close(
        &values(hh_grad.expect("gradient")),
        &expected,
        TOLERANCE,
        "d/d backward GRU weight_hh",
    );
}

#[test]
fn hinge_loss_matches_pytorch_on_wgpu() {
    let f = fixture("hinge");
    let device = wgpu().autodiff();
    let size = f["size"].as_u64().expect("an integer") as usize;
    let ids: Vec<u64> = sizes(&f["image_ids"]).iter().map(|&i| i as u64).collect();
    for case in f["cases"].as_array().expect("cases") {
        let hardest = case["hardest"].as_bool().expect("a flag");
        let same_image = case["same_image"].as_bool().expect("a flag");
        let loss = HingeLossConfig::new()
            .with_margin(f["margin"].as_f64().expect("a margin"))
            .with_mining(if hardest {
                NegativeMining::Hardest
            } else {
                NegativeMining::All
            })
            .with_warmup_epochs(0)
            .init();
        let scores = tensor::<2>(&f["scores"], [size, size], &device).require_grad();
        let value = loss.forward(scores.clone(), same_image.then_some(ids.as_slice()), 0);
        let what = format!("hinge hardest={hardest} same_image={same_image}");
        let expected = case["loss"].as_f64().expect("a loss") as f32;
        assert_close(&values(value.clone()), &[expected], TOLERANCE, &what);
        assert_close(
            &values(scores.grad(&value.backward()).expect("gradient")),
            &floats(&case["grad"]),
            TOLERANCE,
            &format!("{what} gradient"),
        );
    }
}

#[test]
fn cosine_similarity_agrees_with_flex() {
    let (flex, gpu) = (Device::flex(), wgpu());
    flex.seed(7);
    let images = Tensor::<2>::random([37, 96], Distribution::Normal(0.0, 1.0), &flex);
    let captions = Tensor::<2>::random([53, 96], Distribution::Normal(0.0, 1.0), &flex);
    let on_flex = values(cosine_similarity(images.clone(), captions.clone()));
    let on_gpu = values(cosine_similarity(
        images.to_device(&gpu),
        captions.to_device(&gpu),
    ));
    assert_close(&on_gpu, &on_flex, 1e-5, "cosine [37, 53]");
}

#[test]
fn training_steps_follow_flex() {
    let data = ShapesDataset::generate(&ShapesConfig {
        seed: 5,
        train_images: 96,
        dev_images: 20,
        test_images: 20,
        regions: RegionFeatureConfig {
            d_feature: 32,
            n_regions: 6,
            noise: 1.0,
        },
    });
    let vocab = Vocabulary::build(data.train.retrieval.captions.iter().map(String::as_str), 1);
    let config = VseModelConfig::vse_infinity_bigru_sized(32, vocab.len(), 32, 16);
    let tokenizer = CaptionTokenizer::from(vocab);
    let training = TrainingConfig {
        epochs: 2,
        batch_size: 32,
        learning_rate: 2e-3,
        lr_decay_epoch: 1,
        mining: NegativeMining::All,
        region_drop: 0.0,
        seed: 9,
        ..TrainingConfig::default()
    };
    // The same initial weights on both: drawn on flex, copied to the GPU.
    let flex = Device::flex().autodiff();
    flex.seed(9);
    let initial = config.init(&flex);
    let fit = |device: Device, model| {
        Trainer::new(training.clone(), device)
            .with_quiet(true)
            .fit_from(
                model,
                &config,
                &data.train.retrieval,
                &data.dev.retrieval,
                &tokenizer,
            )
            .expect("training runs")
            .history
    };
    let on_gpu = fit(wgpu(), initial.clone().fork(&wgpu().autodiff()));
    let on_flex = fit(Device::flex(), initial);

    let losses = |history: &[itm::train::EpochRecord]| -> Vec<f64> {
        history.iter().map(|r| r.mean_loss).collect()
    };
    let (gpu_losses, flex_losses) = (losses(&on_gpu), losses(&on_flex));
    assert_eq!(gpu_losses.len(), 2);
    assert!(
        gpu_losses[1] < gpu_losses[0],
        "the loss must fall on wgpu: {gpu_losses:?}"
    );
    for (g, c) in gpu_losses.iter().zip(&flex_losses) {
        assert!(
            (g - c).abs() <= 1e-3 * c.abs(),
            "wgpu losses {gpu_losses:?} drift from flex {flex_losses:?}"
        );
    }
}
