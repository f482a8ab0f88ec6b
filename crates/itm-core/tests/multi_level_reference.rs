//! Parity of the multi-level similarity (HAT, DAIM) with HAT's own scoring function,
//! `xattn_score_i2t` of LuminosityX/HAT, run by `scripts/authors/hat_score.py`: the projected
//! levels, the per-level score matrices and their sum within 1e-5; the gradients with respect
//! to every input level and every projection weight and bias within 1e-4.

use burn::tensor::{Device, Tensor, Tolerance};
use itm_core::MultiLevelSimilarityConfig;
use itm_core::encoders::LevelProjection;
use itm_core::masking::fill_padding;
use itm_test_support::{
    assert_close, core_fixtures, floats, load_linear, sizes, tensor, transpose, values,
};
use serde_json::Value;

const VALUES: f32 = 1e-5;
const GRADIENTS: f32 = 1e-4;

fn load(projection: &mut LevelProjection, fixture: &Value, device: &Device) {
    for (linear, reference) in projection
        .levels
        .iter_mut()
        .zip(fixture.as_array().expect("one projection per level").iter())
    {
        load_linear(
            linear,
            &reference["weight"],
            Some(&reference["bias"]),
            device,
        );
    }
}

#[test]
fn multi_level_similarity_matches_hats_scoring() {
    let f = core_fixtures().json("multi_level");
    let device = Device::flex().autodiff();
    let image_regions = sizes(&f["image_regions"]);
    let image_widths = sizes(&f["image_widths"]);
    let text_widths = sizes(&f["text_widths"]);
    let lengths = sizes(&f["caption_lengths"]);
    let n_img = f["n_img"].as_u64().unwrap() as usize;
    let (n_cap, max_tokens) = (lengths.len(), f["max_tokens"].as_u64().unwrap() as usize);
    let d = f["d_embed"].as_u64().unwrap() as usize;
    let mut similarity = MultiLevelSimilarityConfig::new(
        image_widths.clone(),
        text_widths.clone(),
        image_regions.clone(),
    )
    .with_d_embed(d)
    .init(&device);
    assert_eq!(
        similarity.head.level_head.lambda_softmax,
        f["lambda_softmax"].as_f64().unwrap()
    );
    load(
        &mut similarity.image_projection,
        &f["image_projections"],
        &device,
    );
    load(
        &mut similarity.text_projection,
        &f["text_projections"],
        &device,
    );

    let images: Vec<Tensor<3>> = image_regions
        .iter()
        .zip(&image_widths)
        .enumerate()
        .map(|(level, (&k, &w))| {
            tensor::<3>(&f["images"][level], [n_img, k, w], &device).require_grad()
        })
        .collect();
    let captions: Vec<Tensor<3>> = text_widths
        .iter()
        .enumerate()
        .map(|(level, &w)| {
            tensor::<3>(&f["captions"][level], [n_cap, max_tokens, w], &device).require_grad()
        })
        .collect();

    // The projections, valid rows only (the padding holds large noise).
    let within = Tolerance::absolute(VALUES);
    for (level, projected) in similarity
        .image_projection
        .forward(images.clone())
        .into_iter()
        .enumerate()
    {
        assert_close(
            &values(projected),
            &floats(&f["projected_images"][level]),
            within,
            &format!("projected image level {level}"),
        );
    }
    for (level, projected) in similarity
        .text_projection
        .forward(captions.clone())
        .into_iter()
        .enumerate()
    {
        let expected = tensor::<3>(
            &f["projected_captions"][level],
            [n_cap, max_tokens, d],
            &device,
        );
        assert_close(
            &values(fill_padding(projected, &lengths, 0.0)),
            &values(fill_padding(expected, &lengths, 0.0)),
            within,
            &format!("projected caption level {level}"),
        );
    }

    let scores = similarity.forward(images.clone(), captions.clone(), &lengths);
    for (level, matrix) in scores.levels.iter().enumerate() {
        assert_eq!(matrix.dims(), [n_img, n_cap]);
        assert_close(
            &values(matrix.clone()),
            &floats(&f["levels"][level]),
            within,
            &format!("level {level} scores"),
        );
    }
    assert_close(
        &values(scores.total.clone()),
        &floats(&f["total"]),
        within,
        "total scores",
    );

    let probe = tensor::<2>(&f["probe"], [n_img, n_cap], &device);
    let grads = (scores.total * probe).sum().backward();
    let within = Tolerance::absolute(GRADIENTS);
    for (level, image) in images.iter().enumerate() {
        assert_close(
            &values(image.grad(&grads).expect("image gradient")),
            &floats(&f["grad_images"][level]),
            within,
            &format!("d/d image level {level}"),
        );
    }
    for (level, caption) in captions.iter().enumerate() {
        let grad = caption.grad(&grads).expect("caption gradient");
        // HAT slices the padding off: its gradient there is exactly zero, and so is ours.
        let grad = values(grad);
        assert_eq!(
            grad,
            values(fill_padding(
                caption.grad(&grads).expect("caption gradient"),
                &lengths,
                0.0
            )),
            "d/d padded tokens of caption level {level} must be exactly zero"
        );
        assert_close(
            &grad,
            &floats(&f["grad_captions"][level]),
            within,
            &format!("d/d caption level {level}"),
        );
    }
    for (side, projection, reference, widths) in [
        (
            "image",
            &similarity.image_projection,
            &f["image_projections"],
            &image_widths,
        ),
        (
            "text",
            &similarity.text_projection,
            &f["text_projections"],
            &text_widths,
        ),
    ] {
        for (level, (linear, &width)) in projection.levels.iter().zip(widths).enumerate() {
            assert_close(
                &values(linear.weight.val().grad(&grads).expect("weight gradient")),
                &transpose(&floats(&reference[level]["grad_weight"]), d, width),
                within,
                &format!("d/d {side} projection {level} weight"),
            );
            let bias = linear.bias.as_ref().expect("bias").val();
            assert_close(
                &values(bias.grad(&grads).expect("bias gradient")),
                &floats(&reference[level]["grad_bias"]),
                within,
                &format!("d/d {side} projection {level} bias"),
            );
        }
    }
}
