//! Fault guards of a training step: a step whose loss or gradient is not finite is skipped,
//! and the batch-norm running statistics its forward pass moved are put back.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use itm_core::VseModel;

/// Why a step was skipped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Fault {
    /// The loss has this non-finite value.
    Loss(f64),
    /// A gradient holds a NaN or an infinity.
    Gradient,
}

impl Fault {
    /// The line printed when the step is skipped in `epoch`.
    pub fn message(self, epoch: usize) -> String {
        match self {
            Self::Loss(value) => format!("epoch {epoch}: skipped a step whose loss is {value}"),
            Self::Gradient => {
                format!("epoch {epoch}: skipped a step whose gradient is not finite")
            }
        }
    }

    /// The note beside the progress bar.
    pub fn note(self) -> &'static str {
        match self {
            Self::Loss(_) => "non-finite loss",
            Self::Gradient => "non-finite gradient",
        }
    }
}

/// Whether every gradient in `grads` of a parameter of `model` is finite (one host read).
pub(super) fn gradients_are_finite(model: &VseModel, grads: &GradientsParams) -> bool {
    struct NonFinite<'a> {
        grads: &'a GradientsParams,
        count: Option<Tensor<1>>,
    }
    impl ModuleVisitor for NonFinite<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.get::<D>(param.id) {
                let bad = grad.is_finite().bool_not().any().float();
                self.count = Some(match self.count.take() {
                    Some(count) => count + bad,
                    None => bad,
                });
            }
        }
    }
    let mut visitor = NonFinite { grads, count: None };
    model.visit(&mut visitor);
    visitor
        .count
        .is_none_or(|count| count.into_scalar::<f32>() == 0.0)
}

/// The float tensors of a model that take no gradient (batch-norm running statistics): the
/// forward pass of a training step updates them in place, so a skipped step restores them.
pub(super) struct Buffers(HashMap<ParamId, Tensor<1>>);

impl Buffers {
    /// The current values (tensor handles: nothing is copied).
    pub fn of(model: &VseModel) -> Self {
        // A running state holds the last step's update apart until it is synchronised, which
        // `valid` does (on the state shared with `model`).
        let _ = model.valid();
        let mut buffers = Self(HashMap::new());
        model.visit(&mut buffers);
        buffers
    }

    /// `model` with the saved values put back (the step's pending updates folded in first, so
    /// that the saved values replace them).
    pub fn restore(mut self, model: VseModel) -> VseModel {
        let _ = model.valid();
        model.map(&mut self)
    }
}

impl ModuleVisitor for Buffers {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        if !value.is_require_grad() {
            self.0.insert(param.id, value.reshape([-1]));
        }
    }
}

impl ModuleMapper for Buffers {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        match self.0.remove(&param.id) {
            Some(saved) => param.map(|value| saved.reshape(value.shape())),
            None => param,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, Int, TensorData};
    use itm_core::VseModelConfig;
    use itm_core::encoders::ImageInput;
    use itm_core::loss::HingeLossConfig;

    /// A finite loss with a NaN in one gradient (registered by hand: no well-formed batch
    /// produces one on demand) is caught; the real, finite gradients pass.
    #[test]
    fn a_non_finite_gradient_is_detected() {
        let device = Device::flex().autodiff();
        device.seed(2);
        let config = VseModelConfig::vse_infinity_bigru_sized(6, 12, 8, 4);
        let model = config.init(&device);
        let regions = Tensor::<3>::random([3, 2, 6], Distribution::Normal(0.0, 1.0), &device);
        let tokens = Tensor::<2, Int>::from_data(
            TensorData::new(
                (0..12).map(|t| (t % 11 + 1) as i64).collect::<Vec<_>>(),
                [3, 4],
            ),
            &device,
        );
        let scores = model.batch_scores(
            ImageInput::Regions {
                features: regions,
                lengths: vec![2; 3],
            },
            tokens,
            &[4, 3, 2],
        );
        let loss = HingeLossConfig::new().init().forward(scores, None, 0);
        assert!(loss.clone().into_scalar::<f32>().is_finite());
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        assert!(gradients_are_finite(&model, &grads));

        struct FirstMatrix(Option<ParamId>);
        impl ModuleVisitor for FirstMatrix {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if D == 2 && self.0.is_none() {
                    self.0 = Some(param.id);
                }
            }
        }
        let mut first = FirstMatrix(None);
        model.visit(&mut first);
        let id = first.0.expect("the model has a weight matrix");
        let grad: Tensor<2> = grads.remove(id).expect("a gradient for every weight");
        let mut values = grad.to_data().try_to_vec::<f32>().unwrap();
        let middle = values.len() / 2;
        values[middle] = f32::NAN;
        let dims = grad.dims();
        let poisoned = Tensor::<2>::from_data(TensorData::new(values, dims), &grad.device());
        grads.register(id, poisoned);
        assert!(!gradients_are_finite(&model, &grads));
    }

    /// The guard's lines and notes name the fault.
    #[test]
    fn faults_are_named() {
        assert_eq!(
            Fault::Loss(f64::NAN).message(3),
            "epoch 3: skipped a step whose loss is NaN"
        );
        assert_eq!(
            Fault::Gradient.message(0),
            "epoch 0: skipped a step whose gradient is not finite"
        );
        assert_eq!(Fault::Loss(f64::INFINITY).note(), "non-finite loss");
        assert_eq!(Fault::Gradient.note(), "non-finite gradient");
    }
}
