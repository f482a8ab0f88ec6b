//! Finite-difference checks: gradients flow correctly through GPO's sort and through the
//! length handling of the bidirectional GRU.

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use itm_core::encoders::MaskedBiGruConfig;
use itm_core::pooling::GpoConfig;
use itm_test_support::values;

/// Central differences of `f` at `x` for every coordinate.
fn numeric_gradient(f: &dyn Fn(&[f32]) -> f32, x: &[f32], eps: f32) -> Vec<f32> {
    (0..x.len())
        .map(|i| {
            let mut plus = x.to_vec();
            let mut minus = x.to_vec();
            plus[i] += eps;
            minus[i] -= eps;
            (f(&plus) - f(&minus)) / (2.0 * eps)
        })
        .collect()
}

fn check(analytic: &[f32], numeric: &[f32], what: &str) {
    for (i, (a, n)) in analytic.iter().zip(numeric).enumerate() {
        assert!(
            (a - n).abs() <= 2e-3 + 2e-2 * n.abs(),
            "{what}[{i}]: autodiff {a} vs finite difference {n}"
        );
    }
}

#[test]
fn gpo_gradient_through_the_sort() {
    let device = Device::flex().autodiff();
    device.seed(21);
    let gpo = GpoConfig::new().init(&device);
    let shape = [2, 4, 3];
    let lengths = [4, 2];
    let x0 = values(Tensor::<3>::random(
        shape,
        Distribution::Normal(0.0, 1.0),
        &device,
    ));
    let probe = Tensor::<2>::random([2, 3], Distribution::Normal(0.0, 1.0), &device);
    let objective = |x: Tensor<3>| (gpo.forward(x, &lengths) * probe.clone()).sum();
    let input = Tensor::<3>::from_data(TensorData::new(x0.clone(), shape), &device).require_grad();
    let analytic = values(input.grad(&objective(input.clone()).backward()).unwrap());
    let plain = |x: &[f32]| {
        values(objective(Tensor::from_data(
            TensorData::new(x.to_vec(), shape),
            &device,
        )))[0]
    };
    let numeric = numeric_gradient(&plain, &x0, 1e-2);
    check(&analytic, &numeric, "GPO input gradient");
    // Padding rows of the second set receive no gradient.
    assert!(analytic[(4 + 2) * 3..].iter().all(|&g| g == 0.0));
}

#[test]
fn bigru_gradient_respects_lengths() {
    let device = Device::flex().autodiff();
    device.seed(22);
    let gru = MaskedBiGruConfig::new(2, 3).init(&device);
    let shape = [2, 4, 2];
    let lengths = [3, 2];
    let x0 = values(Tensor::<3>::random(
        shape,
        Distribution::Normal(0.0, 1.0),
        &device,
    ));
    let probe = Tensor::<3>::random([2, 4, 3], Distribution::Normal(0.0, 1.0), &device);
    let objective = |x: Tensor<3>| (gru.forward(x, &lengths) * probe.clone()).sum();
    let input = Tensor::<3>::from_data(TensorData::new(x0.clone(), shape), &device).require_grad();
    let analytic = values(input.grad(&objective(input.clone()).backward()).unwrap());
    let plain = |x: &[f32]| {
        values(objective(Tensor::from_data(
            TensorData::new(x.to_vec(), shape),
            &device,
        )))[0]
    };
    let numeric = numeric_gradient(&plain, &x0, 1e-2);
    check(&analytic, &numeric, "BiGRU input gradient");
    // Steps past each length influence nothing.
    let padding = [(0, 3), (1, 2), (1, 3)];
    for (b, t) in padding {
        let start = (b * 4 + t) * 2;
        assert_eq!(
            &analytic[start..start + 2],
            &[0.0, 0.0],
            "padding step ({b}, {t})"
        );
    }
}
