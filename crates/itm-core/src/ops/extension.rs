//! The kernels as a burn backend extension: the [`FastMath`] trait, its `Flex` implementation
//! (the SIMD kernels of [`super::kernels`] on `f32`, burn's own operations on other dtypes),
//! its `Autodiff` implementation with hand-written backward steps, and the `Dispatch` routing
//! that `#[backend_extension]` generates for both.
//!
//! The default bodies compose burn's backend operations; they are the fallback of `Flex` for
//! dtypes other than `f32`, and the (differentiable) backward steps of `Autodiff`'s own
//! backward methods.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ActivationOps, FloatTensorOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::{DType, TensorData};

use super::kernels::{self, Axis, Binary, Unary};

/// Transcendental element-wise functions and last-axis-style reductions with a fast CPU
/// implementation (our design; see the [module documentation](super)).
///
/// Listed backends: `Flex` and `Autodiff` (over any backend implementing the trait). Calling
/// an extension on another backend panics, so [`super`]'s functions route every other device
/// to burn's composed operations before reaching this trait.
#[backend_extension(Flex, Autodiff)]
pub trait FastMath: Backend {
    /// `e^x`.
    fn fast_exp(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_exp(x)
    }

    /// `σ(x) = 1 / (1 + e^{−x})`.
    fn fast_sigmoid(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::sigmoid(x)
    }

    /// `tanh(x)`.
    fn fast_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_tanh(x)
    }

    /// The exact GELU `x·Φ(x)`.
    fn fast_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::gelu(x)
    }

    /// Softmax along `dim`.
    fn fast_softmax(x: FloatTensor<Self>, dim: usize) -> FloatTensor<Self> {
        Self::softmax(x, dim)
    }

    /// `ln Σ e^x` along `dim`, which keeps size 1.
    fn fast_log_sum_exp(x: FloatTensor<Self>, dim: usize) -> FloatTensor<Self> {
        let max = Self::float_max_dim(x.clone(), dim);
        let shifted = Self::float_exp(Self::float_sub(x, max.clone()));
        Self::float_add(Self::float_log(Self::float_sum_dim(shifted, dim)), max)
    }

    /// `g·s(1 − s)` from the output `s` of [`FastMath::fast_sigmoid`].
    fn fast_sigmoid_backward(
        output: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::sigmoid_backward(output, grad)
    }

    /// `g·(1 − t²)` from the output `t` of [`FastMath::fast_tanh`].
    fn fast_tanh_backward(output: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let squared = Self::float_mul(output.clone(), output);
        let derivative = Self::float_neg(Self::float_add_scalar(squared, (-1.0f32).into()));
        Self::float_mul(grad, derivative)
    }

    /// `g·GELU'(x)` from the input `x` of [`FastMath::fast_gelu`].
    fn fast_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::gelu_backward(x, grad)
    }

    /// `y ⊙ (g − Σ_dim g ⊙ y)` from the output `y` of [`FastMath::fast_softmax`].
    fn fast_softmax_backward(
        output: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        dim: usize,
    ) -> FloatTensor<Self> {
        let dot = Self::float_sum_dim(Self::float_mul(grad.clone(), output.clone()), dim);
        Self::float_mul(output, Self::float_sub(grad, dot))
    }

    /// `g ⊙ e^{x − lse}` (the softmax of `x`, scaled) from the input `x` and output `lse` of
    /// [`FastMath::fast_log_sum_exp`]; `grad` has the shape of `lse`.
    fn fast_log_sum_exp_backward(
        x: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        dim: usize,
    ) -> FloatTensor<Self> {
        let _ = dim;
        Self::float_mul(Self::float_exp(Self::float_sub(x, lse)), grad)
    }
}

// ---------------------------------------------------------------------------------------------
// Flex: the kernels on contiguous f32

/// `x` with a contiguous buffer of exactly its elements, uniquely owned when nothing else
/// holds it (so that it can be overwritten).
pub(super) fn contiguous(x: FlexTensor) -> FlexTensor {
    let copy = x.to_contiguous();
    drop(x);
    copy
}

pub(super) fn dims(x: &FlexTensor) -> Vec<usize> {
    x.shape().to_vec()
}

pub(super) fn values(x: &FlexTensor) -> &[f32] {
    x.as_slice::<f32>()
        .expect("a contiguous f32 tensor has a slice")
}

pub(super) fn from_values(values: Vec<f32>, dims: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, dims))
}

/// `U` element-wise, in place when `x` is not shared.
fn flex_map<U: Unary>(x: FlexTensor) -> FlexTensor {
    let mut x = contiguous(x);
    if let Some(buffer) = x.try_storage_mut::<f32>() {
        kernels::map_in_place::<U>(buffer);
        return x;
    }
    let src = values(&x);
    let mut out = vec![0.0f32; src.len()];
    kernels::map::<U>(src, &mut out);
    from_values(out, dims(&x))
}

/// `B(saved, grad)` element-wise; `None` when the shapes differ.
fn flex_zip<B: Binary>(saved: FlexTensor, grad: FlexTensor) -> Option<FlexTensor> {
    if saved.shape() != grad.shape() {
        return None;
    }
    let (saved, grad) = (contiguous(saved), contiguous(grad));
    let s = values(&saved);
    let mut out = vec![0.0f32; s.len()];
    kernels::zip::<B>(s, values(&grad), &mut out);
    Some(from_values(out, dims(&saved)))
}

pub(super) fn is_f32(tensors: &[&FlexTensor]) -> bool {
    tensors.iter().all(|t| t.dtype() == DType::F32)
}

impl FastMath for Flex {
    #[inline(never)]
    fn fast_exp(x: FloatTensor<Self>) -> FloatTensor<Self> {
        if !is_f32(&[&x]) {
            return Self::float_exp(x);
        }
        flex_map::<kernels::Exp>(x)
    }

    #[inline(never)]
    fn fast_sigmoid(x: FloatTensor<Self>) -> FloatTensor<Self> {
        if !is_f32(&[&x]) {
            return Self::sigmoid(x);
        }
        flex_map::<kernels::Sigmoid>(x)
    }

    #[inline(never)]
    fn fast_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        if !is_f32(&[&x]) {
            return Self::float_tanh(x);
        }
        flex_map::<kernels::Tanh>(x)
    }

    #[inline(never)]
    fn fast_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        if !is_f32(&[&x]) {
            return Self::gelu(x);
        }
        flex_map::<kernels::Gelu>(x)
    }

    #[inline(never)]
    fn fast_softmax(x: FloatTensor<Self>, dim: usize) -> FloatTensor<Self> {
        if !is_f32(&[&x]) {
            return Self::softmax(x, dim);
        }
        let x = contiguous(x);
        let shape = dims(&x);
        let mut out = vec![0.0f32; values(&x).len()];
        kernels::softmax(Axis::of(&shape, dim), values(&x), &mut out);
        from_values(out, shape)
    }

    #[inline(never)]
    fn fast_log_sum_exp(x: FloatTensor<Self>, dim: usize) -> FloatTensor<Self> {
        if !is_f32(&[&x]) {
            let max = Self::float_max_dim(x.clone(), dim);
            let shifted = Self::float_exp(Self::float_sub(x, max.clone()));
            return Self::float_add(Self::float_log(Self::float_sum_dim(shifted, dim)), max);
        }
        let x = contiguous(x);
        let mut shape = dims(&x);
        let axis = Axis::of(&shape, dim);
        let mut out = vec![0.0f32; axis.outer * axis.inner];
        kernels::log_sum_exp(axis, values(&x), &mut out);
        shape[dim] = 1;
        from_values(out, shape)
    }

    #[inline(never)]
    fn fast_sigmoid_backward(
        output: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        if is_f32(&[&output, &grad])
            && let Some(out) = flex_zip::<kernels::SigmoidGrad>(output.clone(), grad.clone())
        {
            return out;
        }
        Self::sigmoid_backward(output, grad)
    }

    #[inline(never)]
    fn fast_tanh_backward(output: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        if is_f32(&[&output, &grad])
            && let Some(out) = flex_zip::<kernels::TanhGrad>(output.clone(), grad.clone())
        {
            return out;
        }
        let squared = Self::float_mul(output.clone(), output);
        let derivative = Self::float_neg(Self::float_add_scalar(squared, (-1.0f32).into()));
        Self::float_mul(grad, derivative)
    }

    #[inline(never)]
    fn fast_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        if is_f32(&[&x, &grad])
            && let Some(out) = flex_zip::<kernels::GeluGrad>(x.clone(), grad.clone())
        {
            return out;
        }
        Self::gelu_backward(x, grad)
    }

    #[inline(never)]
    fn fast_softmax_backward(
        output: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        dim: usize,
    ) -> FloatTensor<Self> {
        if !is_f32(&[&output, &grad]) || output.shape() != grad.shape() {
            let dot = Self::float_sum_dim(Self::float_mul(grad.clone(), output.clone()), dim);
            return Self::float_mul(output, Self::float_sub(grad, dot));
        }
        let (y, g) = (contiguous(output), contiguous(grad));
        let shape = dims(&y);
        let mut out = vec![0.0f32; values(&y).len()];
        kernels::softmax_backward(Axis::of(&shape, dim), values(&y), values(&g), &mut out);
        from_values(out, shape)
    }

    #[inline(never)]
    fn fast_log_sum_exp_backward(
        x: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        dim: usize,
    ) -> FloatTensor<Self> {
        if !is_f32(&[&x, &lse, &grad]) || lse.shape() != grad.shape() {
            return Self::float_mul(Self::float_exp(Self::float_sub(x, lse)), grad);
        }
        let (x, lse, g) = (contiguous(x), contiguous(lse), contiguous(grad));
        let shape = dims(&x);
        let mut out = vec![0.0f32; values(&x).len()];
        let axis = Axis::of(&shape, dim);
        kernels::log_sum_exp_backward(axis, values(&x), values(&lse), values(&g), &mut out);
        from_values(out, shape)
    }
}

// ---------------------------------------------------------------------------------------------
// Autodiff: the inner backend's forward, a hand-written backward

/// `(saved tensors, gradient of the output, dim) → gradient of the input`.
type BackwardFn<B> = fn(Vec<FloatTensor<B>>, FloatTensor<B>, usize) -> FloatTensor<B>;

/// A backward step from saved tensors: `grad_input = backward(saved, grad_output, dim)`.
struct SavedBackward<B: Backend> {
    backward: BackwardFn<B>,
    dim: usize,
}

impl<B: Backend> core::fmt::Debug for SavedBackward<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SavedBackward")
            .field("dim", &self.dim)
            .finish()
    }
}

impl<B: Backend> Backward<B, 1> for SavedBackward<B> {
    type State = Vec<FloatTensor<B>>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (backward, dim, saved) = (self.backward, self.dim, ops.state);
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            backward(saved, grad, dim)
        });
    }
}

/// What the backward step of an operation keeps.
#[derive(Clone, Copy)]
enum Keep {
    /// Its output.
    Output,
    /// Its input.
    Input,
    /// Its input, then its output.
    Both,
}

/// Runs `forward` on the inner backend and records a backward step that gets the kept
/// tensors (compute-bound: they are stored, not recomputed).
fn record<B: Backend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    dim: usize,
    forward: impl FnOnce(FloatTensor<B>) -> FloatTensor<B>,
    keep: Keep,
    backward: BackwardFn<B>,
) -> FloatTensor<Autodiff<B, C>> {
    let step = SavedBackward { backward, dim };
    match step.prepare::<C>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let input = x.into_primitive();
            let (state, output) = match keep {
                Keep::Output => {
                    let output = forward(input);
                    (vec![output.clone()], output)
                }
                Keep::Input => (vec![input.clone()], forward(input)),
                Keep::Both => {
                    let output = forward(input.clone());
                    (vec![input, output.clone()], output)
                }
            };
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.into_primitive())),
    }
}

fn first<B: Backend>(saved: Vec<FloatTensor<B>>) -> FloatTensor<B> {
    saved.into_iter().next().expect("one saved tensor")
}

impl<B: FastMath, C: CheckpointStrategy> FastMath for Autodiff<B, C> {
    fn fast_exp(x: FloatTensor<Self>) -> FloatTensor<Self> {
        record::<B, C>(x, 0, B::fast_exp, Keep::Output, |saved, grad, _| {
            B::float_mul(grad, first::<B>(saved))
        })
    }

    fn fast_sigmoid(x: FloatTensor<Self>) -> FloatTensor<Self> {
        record::<B, C>(x, 0, B::fast_sigmoid, Keep::Output, |saved, grad, _| {
            B::fast_sigmoid_backward(first::<B>(saved), grad)
        })
    }

    fn fast_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        record::<B, C>(x, 0, B::fast_tanh, Keep::Output, |saved, grad, _| {
            B::fast_tanh_backward(first::<B>(saved), grad)
        })
    }

    fn fast_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        record::<B, C>(x, 0, B::fast_gelu, Keep::Input, |saved, grad, _| {
            B::fast_gelu_backward(first::<B>(saved), grad)
        })
    }

    fn fast_softmax(x: FloatTensor<Self>, dim: usize) -> FloatTensor<Self> {
        let forward = move |x| B::fast_softmax(x, dim);
        record::<B, C>(x, dim, forward, Keep::Output, |saved, grad, dim| {
            B::fast_softmax_backward(first::<B>(saved), grad, dim)
        })
    }

    fn fast_log_sum_exp(x: FloatTensor<Self>, dim: usize) -> FloatTensor<Self> {
        let forward = move |x| B::fast_log_sum_exp(x, dim);
        record::<B, C>(x, dim, forward, Keep::Both, |saved, grad, dim| {
            let [x, lse]: [FloatTensor<B>; 2] = saved.try_into().expect("input and output");
            B::fast_log_sum_exp_backward(x, lse, grad, dim)
        })
    }
}
