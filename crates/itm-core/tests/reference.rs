//! Parity with the PyTorch / NumPy references of `scripts/generate_fixtures.py` (≤ 1e-5).
//! GPO, the BiGRU text encoder and the hinge loss are checked by the harness's device-generic
//! checks (`itm_test_support::reference`), which the root's `tests/backend_wgpu.rs` runs on
//! `wgpu`.

use burn::tensor::{Device, Tolerance};
use itm_core::eval::{Metrics, Protocol, evaluate};
use itm_core::loss::InfoNceConfig;
use itm_test_support::{assert_close, core_fixtures, floats, reference, tensor, values};
use serde_json::Value;

const TOLERANCE: f32 = 1e-5;

fn within() -> Tolerance<f32> {
    Tolerance::absolute(TOLERANCE)
}

#[test]
fn gpo_matches_pytorch_forward_and_gradients() {
    reference::gpo_matches_pytorch(&Device::flex().autodiff(), within());
}

#[test]
fn text_gru_matches_pytorch_packed_sequences() {
    reference::text_gru_matches_pytorch(&Device::flex().autodiff(), within());
}

#[test]
fn hinge_loss_matches_pytorch() {
    reference::hinge_loss_matches_pytorch(&Device::flex().autodiff(), within());
}

#[test]
fn infonce_matches_pytorch() {
    let f = core_fixtures().json("infonce");
    let device = Device::flex().autodiff();
    let size = f["size"].as_u64().unwrap() as usize;
    let loss_fn = InfoNceConfig::new().init(&device);
    let scores = tensor::<2>(&f["scores"], [size, size], &device).require_grad();
    let loss = loss_fn.forward(scores.clone());
    assert_close(
        &values(loss.clone()),
        &[f["loss"].as_f64().unwrap() as f32],
        within(),
        "InfoNCE",
    );
    let grads = loss.backward();
    assert_close(
        &values(scores.grad(&grads).unwrap()),
        &floats(&f["scores_grad"]),
        within(),
        "d/d S",
    );
    let scale_grad = loss_fn.log_scale.grad(&grads).unwrap();
    let expected = f["log_scale_grad"].as_f64().unwrap() as f32;
    assert_close(
        &values(scale_grad),
        &[expected],
        Tolerance::absolute(1e-4),
        "d/d log scale",
    );
}

fn assert_metrics(actual: &Metrics, expected: &Value, what: &str) {
    let recalls = |key: &str| floats(&expected[key]);
    let close = |a: f64, key: &str| {
        let e = expected[key].as_f64().unwrap();
        assert!((a - e).abs() < 1e-9, "{what} {key}: {a} vs {e}");
    };
    for (a, e) in actual.i2t_recall.iter().zip(recalls("i2t_recall")) {
        assert!((*a as f32 - e).abs() < 1e-4, "{what} i2t recall {a} vs {e}");
    }
    for (a, e) in actual.t2i_recall.iter().zip(recalls("t2i_recall")) {
        assert!((*a as f32 - e).abs() < 1e-4, "{what} t2i recall {a} vs {e}");
    }
    close(actual.i2t_medr, "i2t_medr");
    close(actual.i2t_meanr, "i2t_meanr");
    close(actual.t2i_medr, "t2i_medr");
    close(actual.t2i_meanr, "t2i_meanr");
    close(actual.rsum(), "rsum");
}

#[test]
fn evaluation_matches_the_numpy_argsort_formulation() {
    let f = core_fixtures().json("eval");
    let n_img = f["n_img"].as_u64().unwrap() as usize;
    let scores = floats(&f["scores"]);
    let caption_image: Vec<usize> = (0..5 * n_img).map(|j| j / 5).collect();
    let full = evaluate(&scores, n_img, &caption_image, Protocol::Flickr30k);
    assert_metrics(&full.metrics, &f["full"], "full matrix");
    let folds = evaluate(&scores, n_img, &caption_image, Protocol::Coco1k);
    assert_eq!(folds.folds.len(), 5);
    assert_metrics(&folds.metrics, &f["five_fold"], "5-fold");
}
