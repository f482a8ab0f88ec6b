//! Reading a stack of layers at several depths, for the towers of the multi-level networks
//! (HAT, DAIM: METHODS §3 "Multi-level sum"), which score low, middle and high layers.

use burn::tensor::Tensor;

/// The states of `x` after the first `n` layers of `layers`, for every `n` of `depths`.
///
/// - `x`: the input of the first layer, `[batch, len, width]`
/// - `depths`: any order, repeats allowed; `0` is `x` itself, `layers.len()` the output of the
///   last layer
/// - `apply`: one layer's forward
/// - returns one state per entry of `depths`, in that order. Only the layers up to the deepest
///   requested one run.
///
/// # Panics
///
/// If a depth exceeds `layers.len()`; the message starts with `what`.
pub(crate) fn states_at_depths<L>(
    x: Tensor<3>,
    layers: &[L],
    depths: &[usize],
    what: &str,
    apply: impl Fn(&L, Tensor<3>) -> Tensor<3>,
) -> Vec<Tensor<3>> {
    let count = layers.len();
    assert!(
        depths.iter().all(|&depth| depth <= count),
        "{what}: layers {depths:?} requested from a model of {count}"
    );
    let deepest = depths.iter().copied().max().unwrap_or(0);
    let mut states: Vec<Option<Tensor<3>>> = vec![None; depths.len()];
    let mut keep = |depth: usize, x: &Tensor<3>| {
        for (state, _) in states.iter_mut().zip(depths).filter(|(_, d)| **d == depth) {
            *state = Some(x.clone());
        }
    };
    let mut x = x;
    keep(0, &x);
    for (index, layer) in layers.iter().take(deepest).enumerate() {
        x = apply(layer, x);
        keep(index + 1, &x);
    }
    states
        .into_iter()
        .map(|state| state.expect("every requested depth ran"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn states_follow_the_requested_order() {
        let device = Device::default();
        let x = Tensor::<3>::ones([1, 1, 1], &device);
        // The layers add 1, 10 and 100 to a state that starts at 1.
        let layers = [1.0f32, 10.0, 100.0];
        let states = states_at_depths(x, &layers, &[2, 0, 3, 2], "test", |add, x| x + *add);
        let values: Vec<f32> = states.into_iter().map(|s| s.into_scalar::<f32>()).collect();
        assert_eq!(values, [12.0, 1.0, 112.0, 12.0]);
    }

    #[test]
    #[should_panic(expected = "test: layers [4] requested from a model of 3")]
    fn too_deep_is_refused() {
        let device = Device::default();
        states_at_depths(
            Tensor::<3>::ones([1, 1, 1], &device),
            &[(); 3],
            &[4],
            "test",
            |_, x| x,
        );
    }
}
