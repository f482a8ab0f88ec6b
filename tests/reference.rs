//! Parity with the PyTorch / NumPy references of `scripts/generate_fixtures.py` (≤ 1e-5).

mod common;

use common::*;
use itm::burn::module::Param;
use itm::burn::tensor::{Device, Int, Tensor, TensorData};
use itm::core::encoders::GruTextEncoderConfig;
use itm::core::eval::{Metrics, Protocol, evaluate};
use itm::core::loss::{HingeLossConfig, InfoNceConfig, NegativeMining};
use itm::core::pooling::GpoConfig;
use serde_json::Value;

const TOLERANCE: f32 = 1e-5;

#[test]
fn gpo_matches_pytorch_forward_and_gradients() {
    let f = fixture("gpo");
    let device = Device::flex().autodiff();
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
    let features_grad = features.grad(&grads).expect("features gradient");
    assert_close(
        &values(features_grad),
        &floats(&f["features_grad"]),
        TOLERANCE,
        "d/d features",
    );
    let score_grad = gpo.score.weight.grad(&grads).expect("score gradient");
    assert_close(
        &values(score_grad),
        &floats(&f["score_weight_grad"]),
        TOLERANCE,
        "d/d score weight",
    );
    let ih_grad = gpo
        .gru
        .backward
        .input
        .weight
        .grad(&grads)
        .expect("gru gradient");
    let expected = transpose(&floats(&f["gru_backward_weight_ih_grad"]), 96, 32);
    assert_close(
        &values(ih_grad),
        &expected,
        TOLERANCE,
        "d/d backward GRU weight_ih",
    );
}

#[test]
fn text_gru_matches_pytorch_packed_sequences() {
    let f = fixture("text_gru");
    let device = Device::flex().autodiff();
    let (vocab, d_word, hidden) = (
        f["vocab"].as_u64().unwrap() as usize,
        f["d_word"].as_u64().unwrap() as usize,
        f["hidden"].as_u64().unwrap() as usize,
    );
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
    let lengths = sizes(&f["lengths"]);

    let output = encoder.forward(tokens, &lengths);
    assert_close(
        &values(output.clone()),
        &floats(&f["output"]),
        TOLERANCE,
        "BiGRU output",
    );
    let probe = tensor::<3>(&f["probe"], [shape[0], shape[1], hidden], &device);
    let grads = (output * probe).sum().backward();
    let embedding_grad = encoder.embedding.weight.grad(&grads).unwrap();
    assert_close(
        &values(embedding_grad),
        &floats(&f["embedding_grad"]),
        TOLERANCE,
        "d/d embedding",
    );
    let hh_grad = encoder.gru.backward.hidden.weight.grad(&grads).unwrap();
    let expected = transpose(
        &floats(&f["gru_backward_weight_hh_grad"]),
        3 * hidden,
        hidden,
    );
    assert_close(
        &values(hh_grad),
        &expected,
        TOLERANCE,
        "d/d backward GRU weight_hh",
    );
}

#[test]
fn hinge_loss_matches_pytorch() {
    let f = fixture("hinge");
    let device = Device::flex().autodiff();
    let size = f["size"].as_u64().unwrap() as usize;
    let ids: Vec<u64> = sizes(&f["image_ids"]).iter().map(|&i| i as u64).collect();
    for case in f["cases"].as_array().unwrap() {
        let hardest = case["hardest"].as_bool().unwrap();
        let same_image = case["same_image"].as_bool().unwrap();
        let loss = HingeLossConfig::new()
            .with_margin(f["margin"].as_f64().unwrap())
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
        let expected = case["loss"].as_f64().unwrap() as f32;
        assert_close(&values(value.clone()), &[expected], TOLERANCE, &what);
        let grad = scores.grad(&value.backward()).unwrap();
        assert_close(
            &values(grad),
            &floats(&case["grad"]),
            TOLERANCE,
            &format!("{what} gradient"),
        );
    }
}

#[test]
fn infonce_matches_pytorch() {
    let f = fixture("infonce");
    let device = Device::flex().autodiff();
    let size = f["size"].as_u64().unwrap() as usize;
    let loss_fn = InfoNceConfig::new().init(&device);
    let scores = tensor::<2>(&f["scores"], [size, size], &device).require_grad();
    let loss = loss_fn.forward(scores.clone());
    assert_close(
        &values(loss.clone()),
        &[f["loss"].as_f64().unwrap() as f32],
        TOLERANCE,
        "InfoNCE",
    );
    let grads = loss.backward();
    assert_close(
        &values(scores.grad(&grads).unwrap()),
        &floats(&f["scores_grad"]),
        TOLERANCE,
        "d/d S",
    );
    let scale_grad = loss_fn.log_scale.grad(&grads).unwrap();
    let expected = f["log_scale_grad"].as_f64().unwrap() as f32;
    assert_close(&values(scale_grad), &[expected], 1e-4, "d/d log scale");
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
    let f = fixture("eval");
    let n_img = f["n_img"].as_u64().unwrap() as usize;
    let scores = floats(&f["scores"]);
    let caption_image: Vec<usize> = (0..5 * n_img).map(|j| j / 5).collect();
    let full = evaluate(&scores, n_img, &caption_image, Protocol::Flickr30k);
    assert_metrics(&full.metrics, &f["full"], "full matrix");
    let folds = evaluate(&scores, n_img, &caption_image, Protocol::Coco1k);
    assert_eq!(folds.folds.len(), 5);
    assert_metrics(&folds.metrics, &f["five_fold"], "5-fold");
}
