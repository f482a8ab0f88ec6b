//! The PyTorch references of `scripts/generate_fixtures.py` (`crates/itm-core/tests/fixtures`)
//! checked on any device: GPO, the BiGRU text encoder and the hinge loss, forward and
//! gradients. `itm-core`'s tests run them on `flex` (within 1e-5), the root's
//! `tests/backend_wgpu.rs` on `wgpu` (within 1e-4: GPU kernels sum in another order).
//!
//! Each check takes an autodiff device.

use burn::module::Param;
use burn::tensor::{Device, Int, Tensor, TensorData, Tolerance};
use itm_core::encoders::GruTextEncoderConfig;
use itm_core::loss::{HingeLossConfig, NegativeMining};
use itm_core::pooling::GpoConfig;

use crate::close::assert_close;
use crate::fixtures::{core_fixtures, floats, sizes};
use crate::layout::{load_gru, load_linear, tensor, transpose, values};

/// GPO (`gpo.json`): the position weights, the pooled vectors, and the gradients with respect
/// to the features, the score weight and the backward GRU's input weights.
pub fn gpo_matches_pytorch(device: &Device, tolerance: Tolerance<f32>) {
    let f = core_fixtures().json("gpo");
    let mut gpo = GpoConfig::new().init(device);
    load_gru(&mut gpo.gru.forward, &f["gru_forward"], device);
    load_gru(&mut gpo.gru.backward, &f["gru_backward"], device);
    load_linear(&mut gpo.score, &f["score_weight"], None, device);
    let shape = sizes(&f["features_shape"]);
    let lengths = sizes(&f["lengths"]);
    let features =
        tensor::<3>(&f["features"], [shape[0], shape[1], shape[2]], device).require_grad();

    let weights = gpo.weights(&lengths, shape[1], device);
    assert_close(
        &values(weights),
        &floats(&f["weights"]),
        tolerance,
        "GPO weights",
    );
    let pooled = gpo.forward(features.clone(), &lengths);
    assert_close(
        &values(pooled.clone()),
        &floats(&f["pooled"]),
        tolerance,
        "GPO pooled",
    );

    let probe = tensor::<2>(&f["probe"], [shape[0], shape[2]], device);
    let grads = (pooled * probe).sum().backward();
    let features_grad = features.grad(&grads).expect("features gradient");
    assert_close(
        &values(features_grad),
        &floats(&f["features_grad"]),
        tolerance,
        "d/d features",
    );
    let score_grad = gpo.score.weight.grad(&grads).expect("score gradient");
    assert_close(
        &values(score_grad),
        &floats(&f["score_weight_grad"]),
        tolerance,
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
        tolerance,
        "d/d backward GRU weight_ih",
    );
}

/// The BiGRU text encoder (`text_gru.json`, PyTorch's packed sequences): the outputs, and the
/// gradients with respect to the embedding and the backward GRU's hidden weights.
pub fn text_gru_matches_pytorch(device: &Device, tolerance: Tolerance<f32>) {
    let f = core_fixtures().json("text_gru");
    let size = |key: &str| f[key].as_u64().expect("an integer") as usize;
    let (vocab, d_word, hidden) = (size("vocab"), size("d_word"), size("hidden"));
    let mut encoder = GruTextEncoderConfig::new(vocab, hidden)
        .with_d_word(d_word)
        .init(device);
    encoder.embedding.weight = Param::from_tensor(tensor(&f["embedding"], [vocab, d_word], device));
    load_gru(&mut encoder.gru.forward, &f["gru_forward"], device);
    load_gru(&mut encoder.gru.backward, &f["gru_backward"], device);
    let shape = sizes(&f["tokens_shape"]);
    let ids: Vec<i64> = sizes(&f["tokens"]).iter().map(|&t| t as i64).collect();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids, [shape[0], shape[1]]), device);
    let lengths = sizes(&f["lengths"]);

    let output = encoder.forward(tokens, &lengths);
    assert_close(
        &values(output.clone()),
        &floats(&f["output"]),
        tolerance,
        "BiGRU output",
    );
    let probe = tensor::<3>(&f["probe"], [shape[0], shape[1], hidden], device);
    let grads = (output * probe).sum().backward();
    let embedding_grad = encoder.embedding.weight.grad(&grads).expect("gradient");
    assert_close(
        &values(embedding_grad),
        &floats(&f["embedding_grad"]),
        tolerance,
        "d/d embedding",
    );
    let hh_grad = encoder.gru.backward.hidden.weight.grad(&grads);
    let expected = transpose(
        &floats(&f["gru_backward_weight_hh_grad"]),
        3 * hidden,
        hidden,
    );
    assert_close(
        &values(hh_grad.expect("gradient")),
        &expected,
        tolerance,
        "d/d backward GRU weight_hh",
    );
}

/// The hinge loss (`hinge.json`) with all and hardest negatives, with and without the
/// same-image mask: the loss and its gradient with respect to the scores.
pub fn hinge_loss_matches_pytorch(device: &Device, tolerance: Tolerance<f32>) {
    let f = core_fixtures().json("hinge");
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
        let scores = tensor::<2>(&f["scores"], [size, size], device).require_grad();
        let value = loss.forward(scores.clone(), same_image.then_some(ids.as_slice()), 0);
        let what = format!("hinge hardest={hardest} same_image={same_image}");
        let expected = case["loss"].as_f64().expect("a loss") as f32;
        assert_close(&values(value.clone()), &[expected], tolerance, &what);
        let grad = scores.grad(&value.backward()).expect("gradient");
        assert_close(
            &values(grad),
            &floats(&case["grad"]),
            tolerance,
            &format!("{what} gradient"),
        );
    }
}
