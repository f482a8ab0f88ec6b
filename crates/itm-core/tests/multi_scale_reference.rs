//! Parity of CHAN-ASDG's multi-scale region fusion with the region-by-region PyTorch reference
//! of `scripts/generate_multi_scale_fixture.py` (≤ 1e-5): outputs and gradients, both ways of
//! combining the scales.

use burn::module::Param;
use burn::tensor::{Device, Tolerance};
use itm_core::fusion::{MultiScaleFusionConfig, ScaleCombination};
use itm_core::masking::fill_padding;
use itm_test_support::{
    assert_close, core_fixtures, floats, load_linear, sizes, tensor, transpose, values,
};

const TOLERANCE: f32 = 1e-5;

/// The tolerance of every compared quantity: [`TOLERANCE`], absolute.
fn within() -> Tolerance<f32> {
    Tolerance::absolute(TOLERANCE)
}

#[test]
fn multi_scale_fusion_matches_the_reference() {
    let fixture = core_fixtures().json("multi_scale");
    let device = Device::flex().autodiff();
    let counts = sizes(&fixture["counts"]);
    let (n, k, d) = (counts.len(), 5, 6);
    for (mode, combination) in [
        ("sum", ScaleCombination::Sum),
        ("concat", ScaleCombination::Concat),
    ] {
        let mut fusion = MultiScaleFusionConfig::new(d)
            .with_neighbourhoods(sizes(&fixture["neighbourhoods"]))
            .with_combination(combination)
            .init(&device);
        let scales = fusion.neighbourhoods.len() + 1;
        if let Some(logits) = &mut fusion.scale_logits {
            *logits = Param::from_tensor(tensor(&fixture["scale_logits"], [scales], &device));
        }
        if let Some(linear) = &mut fusion.projection {
            load_linear(
                linear,
                &fixture["linear_weight"],
                Some(&fixture["linear_bias"]),
                &device,
            );
        }
        let regions = tensor::<3>(&fixture["regions"], [n, k, d], &device).require_grad();
        // Only the valid rows enter the loss, as in the reference.
        let upstream = fill_padding(
            tensor::<3>(&fixture["upstream"], [n, k, d], &device),
            &counts,
            0.0,
        );
        let output = fusion.forward(regions.clone(), &counts);
        let expected = &fixture[mode];
        assert_close(
            &values(fill_padding(output.clone(), &counts, 0.0)),
            &floats(&expected["output"]),
            within(),
            &format!("{mode}: output"),
        );
        let grads = (output * upstream).sum().backward();
        assert_close(
            &values(regions.grad(&grads).expect("region gradient")),
            &floats(&expected["grad_regions"]),
            within(),
            &format!("{mode}: region gradient"),
        );
        if let Some(logits) = &fusion.scale_logits {
            assert_close(
                &values(logits.val().grad(&grads).expect("logit gradient")),
                &floats(&expected["grad_scale_logits"]),
                within(),
                &format!("{mode}: scale-logit gradient"),
            );
        }
        if let Some(linear) = &fusion.projection {
            let weight = values(linear.weight.val().grad(&grads).expect("weight gradient"));
            assert_close(
                &weight,
                &transpose(&floats(&expected["grad_linear_weight"]), d, scales * d),
                within(),
                &format!("{mode}: projection weight gradient"),
            );
            let bias = linear.bias.as_ref().expect("bias").val();
            assert_close(
                &values(bias.grad(&grads).expect("bias gradient")),
                &floats(&expected["grad_linear_bias"]),
                within(),
                &format!("{mode}: projection bias gradient"),
            );
        }
    }
}
