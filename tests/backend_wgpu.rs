//! The numerics on the `wgpu` backend: the PyTorch references of `scripts/generate_fixtures.py`
//! (GPO, the BiGRU text encoder, the hinge loss, forward and gradients: the harness's
//! device-generic checks that `itm-core`'s tests run on `flex`), cosine similarity against
//! `flex`, and a short training run started from the same weights on `wgpu` and on `flex`,
//! which must follow the same loss curve.
//!
//! Compiled only with `--features wgpu`, and then it needs an adapter: a GPU, or Mesa's
//! software Vulkan on the CPU (Debian: `mesa-vulkan-drivers libvulkan1`), which is how CI runs
//! it (`scripts/ci-wgpu.sh`). `ITM_TEST_WGPU_DEVICE` picks another adapter (`wgpu:1`).

#![cfg(feature = "wgpu")]

use itm::burn::module::Module;
use itm::burn::tensor::{Device, Distribution, Tensor, Tolerance};
use itm::core::VseModelConfig;
use itm::core::loss::NegativeMining;
use itm::core::similarity::cosine_similarity;
use itm::device::DeviceError;
use itm::train::{Trainer, TrainingConfig};
use itm_test_support::{assert_close, reference, serial, shapes, values, word_tokenizer};

/// GPU kernels sum in another order than the CPU (tiled matmuls, tree reductions): the
/// references agree to 1e-5 on `flex`, and to this on `wgpu`.
const TOLERANCE: f32 = 1e-4;

fn within() -> Tolerance<f32> {
    Tolerance::absolute(TOLERANCE)
}

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
    reference::gpo_matches_pytorch(&wgpu().autodiff(), within());
}

#[test]
fn text_gru_matches_pytorch_on_wgpu() {
    reference::text_gru_matches_pytorch(&wgpu().autodiff(), within());
}

#[test]
fn hinge_loss_matches_pytorch_on_wgpu() {
    reference::hinge_loss_matches_pytorch(&wgpu().autodiff(), within());
}

#[test]
fn cosine_similarity_agrees_with_flex() {
    let _alone = serial();
    let (flex, gpu) = (Device::flex(), wgpu());
    flex.seed(7);
    let images = Tensor::<2>::random([37, 96], Distribution::Normal(0.0, 1.0), &flex);
    let captions = Tensor::<2>::random([53, 96], Distribution::Normal(0.0, 1.0), &flex);
    let on_flex = values(cosine_similarity(images.clone(), captions.clone()));
    let on_gpu = values(cosine_similarity(
        images.to_device(&gpu),
        captions.to_device(&gpu),
    ));
    assert_close(
        &on_gpu,
        &on_flex,
        Tolerance::absolute(1e-5),
        "cosine [37, 53]",
    );
}

#[test]
fn training_steps_follow_flex() {
    let _alone = serial();
    let data = shapes(5, [96, 20, 20], 32, 6);
    let (vocab, tokenizer) = word_tokenizer(&data);
    let config = VseModelConfig::vse_infinity_bigru_sized(32, vocab.len(), 32, 16);
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
