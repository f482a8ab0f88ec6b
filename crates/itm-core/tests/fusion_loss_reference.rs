//! Parity of the fusion layers and the DAIM / AAHR losses with the PyTorch references of
//! `scripts/generate_fusion_loss_fixtures.py` (≤ 1e-5, forward and gradients).

use burn::module::Param;
use burn::nn::LayerNorm;
use burn::nn::attention::MultiHeadAttention;
use burn::nn::transformer::PositionWiseFeedForward;
use burn::tensor::{Device, Tensor, Tolerance};
use itm_core::fusion::InstanceRelationConfig;
use itm_core::loss::{
    AdaptiveMarginConfig, AmbiguityAwareConfig, DistinguishabilityConfig, NegativeMining,
};
use itm_test_support::{assert_close, core_fixtures, floats, load_linear, tensor, values};
use serde_json::Value;

const TOLERANCE: f32 = 1e-5;

/// The tolerance of every compared quantity: [`TOLERANCE`], absolute.
fn within() -> Tolerance<f32> {
    Tolerance::absolute(TOLERANCE)
}

fn usize_of(value: &Value) -> usize {
    value.as_u64().expect("an integer") as usize
}

fn load_attention(mha: &mut MultiHeadAttention, params: &Value, device: &Device) {
    for (linear, name) in [
        (&mut mha.query, "query"),
        (&mut mha.key, "key"),
        (&mut mha.value, "value"),
        (&mut mha.output, "output"),
    ] {
        let p = &params[name];
        load_linear(linear, &p["weight"], Some(&p["bias"]), device);
    }
}

fn load_norm(norm: &mut LayerNorm, params: &Value, device: &Device) {
    let [d] = norm.gamma.dims();
    norm.gamma = Param::from_tensor(tensor(&params["gamma"], [d], device));
    norm.beta = Some(Param::from_tensor(tensor(&params["beta"], [d], device)));
}

fn load_feed_forward(
    ff: &mut PositionWiseFeedForward,
    inner: &Value,
    outer: &Value,
    device: &Device,
) {
    load_linear(
        &mut ff.linear_inner,
        &inner["weight"],
        Some(&inner["bias"]),
        device,
    );
    load_linear(
        &mut ff.linear_outer,
        &outer["weight"],
        Some(&outer["bias"]),
        device,
    );
}

#[test]
fn instance_relation_matches_pytorch_mask_forward_and_gradients() {
    let f = &core_fixtures().json("fusion_loss")["instance_relation"];
    let device = Device::flex().autodiff();
    let (d, heads, d_ff, batch) = (
        usize_of(&f["d_model"]),
        usize_of(&f["heads"]),
        usize_of(&f["d_ff"]),
        usize_of(&f["batch"]),
    );
    let mut relation = InstanceRelationConfig::new(d, heads, d_ff)
        .with_keep_ratio(f["keep_ratio"].as_f64().unwrap())
        .init(&device);
    load_attention(&mut relation.layer.mha, &f["attention"], &device);
    load_feed_forward(
        &mut relation.layer.pwff,
        &f["linear_inner"],
        &f["linear_outer"],
        &device,
    );
    load_norm(&mut relation.layer.norm_1, &f["norm_1"], &device);
    load_norm(&mut relation.layer.norm_2, &f["norm_2"], &device);
    let images = tensor::<2>(&f["images"], [batch, d], &device).require_grad();
    let captions = tensor::<2>(&f["captions"], [batch, d], &device).require_grad();

    let mask = relation
        .attention_mask(Tensor::cat(vec![images.clone(), captions.clone()], 0))
        .into_data()
        .try_into_vec::<bool>()
        .unwrap();
    let expected: Vec<bool> = f["mask"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_bool().unwrap())
        .collect();
    assert_eq!(mask, expected, "relation mask");

    let (related_images, related_captions) = relation.forward(images.clone(), captions.clone());
    let output = Tensor::cat(vec![related_images, related_captions], 0);
    assert_close(
        &values(output.clone()),
        &floats(&f["output"]),
        within(),
        "instance relation output",
    );
    let grads = (output * tensor::<2>(&f["probe"], [2 * batch, d], &device))
        .sum()
        .backward();
    assert_close(
        &values(images.grad(&grads).unwrap()),
        &floats(&f["images_grad"]),
        within(),
        "d/d images",
    );
    assert_close(
        &values(captions.grad(&grads).unwrap()),
        &floats(&f["captions_grad"]),
        within(),
        "d/d captions",
    );
}

#[test]
fn adaptive_margin_matches_pytorch_over_three_steps() {
    let f = &core_fixtures().json("fusion_loss")["adaptive_margin"];
    let device = Device::flex().autodiff();
    let b = usize_of(&f["batch"]);
    let mut loss = AdaptiveMarginConfig::new().init();
    for (step, expected) in f["steps"].as_array().unwrap().iter().enumerate() {
        let scores = tensor::<2>(&expected["scores"], [b, b], &device).require_grad();
        let out = loss.forward(scores.clone(), None, 0);
        let stats = loss.statistics();
        let got = [
            stats.positive_mean,
            stats.positive_std,
            stats.negative_mean,
            stats.negative_std,
        ];
        let got: Vec<f32> = got.iter().map(|&v| v as f32).collect();
        assert_close(
            &got,
            &floats(&expected["statistics"]),
            within(),
            &format!("step {step}: running statistics"),
        );
        let margin = expected["margin"].as_f64().unwrap();
        assert!(
            (out.margin - margin).abs() < 1e-5 && out.margin == loss.margin(),
            "step {step}: margin {} instead of {margin}",
            out.margin
        );
        let value = out.loss.clone().into_scalar::<f32>();
        let want = expected["loss"].as_f64().unwrap() as f32;
        assert!(
            (value - want).abs() < TOLERANCE,
            "step {step}: loss {value} instead of {want}"
        );
        let grads = out.loss.backward();
        assert_close(
            &values(scores.grad(&grads).unwrap()),
            &floats(&expected["scores_grad"]),
            within(),
            &format!("step {step}: d/d scores"),
        );
    }
}

fn ids_of(value: &Value) -> Option<Vec<u64>> {
    value
        .as_array()
        .map(|ids| ids.iter().map(|v| v.as_u64().unwrap()).collect())
}

#[test]
fn distinguishability_matches_pytorch_values_and_gradients() {
    let f = &core_fixtures().json("fusion_loss")["distinguishability"];
    let device = Device::flex().autodiff();
    let (b, d) = (usize_of(&f["batch"]), usize_of(&f["dim"]));
    let loss = DistinguishabilityConfig::new().init();
    for case in f["cases"].as_array().unwrap() {
        let ids = ids_of(&case["image_ids"]);
        let images = tensor::<2>(&f["images"], [b, d], &device).require_grad();
        let captions = tensor::<2>(&f["captions"], [b, d], &device).require_grad();
        let value = loss.forward(images.clone(), captions.clone(), ids.as_deref());
        let what = format!("ids {ids:?}");
        let got = value.clone().into_scalar::<f32>();
        let want = case["loss"].as_f64().unwrap() as f32;
        assert!((got - want).abs() < TOLERANCE, "{what}: {got} vs {want}");
        let grads = value.backward();
        assert_close(
            &values(images.grad(&grads).unwrap()),
            &floats(&case["images_grad"]),
            within(),
            &format!("{what}: d/d images"),
        );
        assert_close(
            &values(captions.grad(&grads).unwrap()),
            &floats(&case["captions_grad"]),
            within(),
            &format!("{what}: d/d captions"),
        );
    }
}

#[test]
fn ambiguity_weighting_matches_pytorch_weights_and_gradients() {
    let f = &core_fixtures().json("fusion_loss")["ambiguity"];
    let device = Device::flex().autodiff();
    let (b, d) = (usize_of(&f["batch"]), usize_of(&f["dim"]));
    let images = tensor::<2>(&f["images"], [b, d], &device);
    let captions = tensor::<2>(&f["captions"], [b, d], &device);
    for case in f["cases"].as_array().unwrap() {
        let ids = ids_of(&case["image_ids"]);
        let mining = if case["hardest"].as_bool().unwrap() {
            NegativeMining::Hardest
        } else {
            NegativeMining::All
        };
        let loss = AmbiguityAwareConfig::new()
            .with_temperature(f["temperature"].as_f64().unwrap())
            .with_mining(mining)
            .init();
        let scores = tensor::<2>(&f["scores"], [b, b], &device).require_grad();
        let out = loss.forward(
            scores.clone(),
            images.clone(),
            captions.clone(),
            ids.as_deref(),
        );
        let what = format!("ids {ids:?}, {mining:?}");
        assert_close(
            &values(out.caption_weights),
            &floats(&case["caption_weights"]),
            within(),
            &format!("{what}: caption weights"),
        );
        assert_close(
            &values(out.image_weights),
            &floats(&case["image_weights"]),
            within(),
            &format!("{what}: image weights"),
        );
        let got = out.loss.clone().into_scalar::<f32>();
        let want = case["loss"].as_f64().unwrap() as f32;
        assert!((got - want).abs() < TOLERANCE, "{what}: {got} vs {want}");
        let grads = out.loss.backward();
        assert_close(
            &values(scores.grad(&grads).unwrap()),
            &floats(&case["scores_grad"]),
            within(),
            &format!("{what}: d/d scores"),
        );
    }
}
