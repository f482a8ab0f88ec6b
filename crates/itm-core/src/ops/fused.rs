//! Fused layers as a burn backend extension (our design; issue #17): GPO's sorted pooling
//! ([`super::sorted_pool`]) and the recurrence of a GRU ([`super::gru`]), each one operation
//! with a hand-written backward, on `flex` (plain and autodiff). [`super`]'s functions route
//! every other device, and dtypes other than `f32`, to burn's composed operations before
//! reaching this trait; the `Flex` implementation still takes other dtypes (computed in `f32`
//! and cast back) so that the trait is total.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::FloatDType;

use super::extension::{contiguous, dims, from_values, is_f32, values};
use super::gru::{self, GruShape};
use super::sorted_pool::{self, PoolShape};

/// Layers fused into one operation each, with a fast CPU implementation (see the
/// [module documentation](self)).
#[backend_extension(Flex, Autodiff)]
pub trait FusedLayers: Backend {
    /// GPO's sorted pooling: `x` `[batch, max_len, dim]` with valid prefix lengths `lengths`,
    /// `weights` `[batch, max_len]` → `[batch, dim]`,
    /// `Σ_{k < len_b} θ[b, k] · x̃[b, k, c]` over each channel sorted in descending order.
    fn fused_sorted_pool(
        x: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        lengths: Vec<usize>,
    ) -> FloatTensor<Self>;

    /// `(∂x, ∂θ)` of [`FusedLayers::fused_sorted_pool`] from the gradient of its output
    /// (`[batch, dim]`); zero at padding positions.
    fn fused_sorted_pool_backward(
        x: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        lengths: Vec<usize>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// A GRU's outputs `[batch, len, H]` from the input projection of every step `projected`
    /// (`[batch, len, 3H]`, gates `[r, z, n]`), the hidden weight `w_hh` (`[H, 3H]`) and bias
    /// `b_hh` (`[3H]`), from `h_0 = 0`.
    fn fused_gru(
        projected: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// [`FusedLayers::fused_gru`]'s outputs and the gates its backward pass reads
    /// (`[batch, len, 4H]`: `r`, `z`, `n`, `gh_n`).
    fn fused_gru_saving(
        projected: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `(∂projected, ∂w_hh, ∂b_hh)` of [`FusedLayers::fused_gru`] from the gradient of its
    /// outputs, with what [`FusedLayers::fused_gru_saving`] returned.
    fn fused_gru_backward(
        w_hh: FloatTensor<Self>,
        outputs: FloatTensor<Self>,
        gates: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

// ---------------------------------------------------------------------------------------------
// Flex: the kernels on contiguous f32

fn to_f32(x: FlexTensor) -> FlexTensor {
    Flex::float_cast(x, FloatDType::F32)
}

fn cast(x: FlexTensor, like: &FlexTensor) -> FlexTensor {
    Flex::float_cast(x, like.dtype().into())
}

/// The `[batch, max_len, dim]` of a sorted pooling's input.
fn pool_shape(x: &FlexTensor) -> PoolShape {
    let &[batch, max_len, dim] = x.shape().as_slice() else {
        panic!(
            "sorted_pool: x must be [batch, max_len, dim], got {:?}",
            x.shape()
        );
    };
    PoolShape {
        batch,
        max_len,
        dim,
    }
}

/// The `[batch, len, H]` of a GRU from its input projection `[batch, len, 3H]`.
fn gru_shape(projected: &FlexTensor) -> GruShape {
    let &[batch, len, h3] = projected.shape().as_slice() else {
        panic!(
            "gru: the projection must be [batch, len, 3H], got {:?}",
            projected.shape()
        );
    };
    assert!(h3 % 3 == 0, "gru: the projection's width {h3} is not 3H");
    GruShape {
        batch,
        len,
        hidden: h3 / 3,
    }
}

impl FusedLayers for Flex {
    #[inline(never)]
    fn fused_sorted_pool(
        x: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        lengths: Vec<usize>,
    ) -> FloatTensor<Self> {
        if !is_f32(&[&x, &weights]) {
            let like = x.clone();
            let out = Self::fused_sorted_pool(to_f32(x), to_f32(weights), lengths);
            return cast(out, &like);
        }
        let (x, weights) = (contiguous(x), contiguous(weights));
        let shape = pool_shape(&x);
        let mut out = vec![0.0f32; shape.batch * shape.dim];
        sorted_pool::forward(shape, values(&x), values(&weights), &lengths, &mut out);
        from_values(out, vec![shape.batch, shape.dim])
    }

    #[inline(never)]
    fn fused_sorted_pool_backward(
        x: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        lengths: Vec<usize>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        if !is_f32(&[&x, &weights, &grad]) {
            let (x_like, w_like) = (x.clone(), weights.clone());
            let (dx, dw) =
                Self::fused_sorted_pool_backward(to_f32(x), to_f32(weights), to_f32(grad), lengths);
            return (cast(dx, &x_like), cast(dw, &w_like));
        }
        let (x, weights, grad) = (contiguous(x), contiguous(weights), contiguous(grad));
        let shape = pool_shape(&x);
        let (dx, dw) =
            sorted_pool::backward(shape, values(&x), values(&weights), values(&grad), &lengths);
        (
            from_values(dx, dims(&x)),
            from_values(dw, vec![shape.batch, shape.max_len]),
        )
    }

    #[inline(never)]
    fn fused_gru(
        projected: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::fused_gru_saving(projected, w_hh, b_hh).0
    }

    #[inline(never)]
    fn fused_gru_saving(
        projected: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        if !is_f32(&[&projected, &w_hh, &b_hh]) {
            let like = projected.clone();
            let (outputs, gates) =
                Self::fused_gru_saving(to_f32(projected), to_f32(w_hh), to_f32(b_hh));
            return (cast(outputs, &like), cast(gates, &like));
        }
        let (projected, w_hh, b_hh) = (contiguous(projected), contiguous(w_hh), contiguous(b_hh));
        let shape = gru_shape(&projected);
        let (outputs, gates) =
            gru::forward(shape, values(&projected), values(&w_hh), values(&b_hh));
        let GruShape { batch, len, hidden } = shape;
        (
            from_values(outputs, vec![batch, len, hidden]),
            from_values(gates, vec![batch, len, 4 * hidden]),
        )
    }

    #[inline(never)]
    fn fused_gru_backward(
        w_hh: FloatTensor<Self>,
        outputs: FloatTensor<Self>,
        gates: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if !is_f32(&[&w_hh, &outputs, &gates, &grad]) {
            let (w_like, o_like) = (w_hh.clone(), outputs.clone());
            let (dp, dw, db) = Self::fused_gru_backward(
                to_f32(w_hh),
                to_f32(outputs),
                to_f32(gates),
                to_f32(grad),
            );
            return (cast(dp, &o_like), cast(dw, &w_like), cast(db, &w_like));
        }
        let (w_hh, outputs, gates, grad) = (
            contiguous(w_hh),
            contiguous(outputs),
            contiguous(gates),
            contiguous(grad),
        );
        let &[batch, len, hidden] = outputs.shape().as_slice() else {
            panic!("gru backward: the outputs must be [batch, len, H]");
        };
        let shape = GruShape { batch, len, hidden };
        let (dp, dw, db) = gru::backward(
            shape,
            values(&w_hh),
            values(&outputs),
            values(&gates),
            values(&grad),
        );
        (
            from_values(dp, vec![batch, len, 3 * hidden]),
            from_values(dw, vec![hidden, 3 * hidden]),
            from_values(db, vec![3 * hidden]),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Autodiff: the inner backend's forward, a hand-written backward

impl<B: FusedLayers, C: CheckpointStrategy> FusedLayers for Autodiff<B, C> {
    fn fused_sorted_pool(
        x: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        lengths: Vec<usize>,
    ) -> FloatTensor<Self> {
        match SortedPoolBackward
            .prepare::<C>([x.node(), weights.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, weights) = (x.into_primitive(), weights.into_primitive());
                let output = B::fused_sorted_pool(x.clone(), weights.clone(), lengths.clone());
                prep.finish((x, weights, lengths), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_sorted_pool(
                x.into_primitive(),
                weights.into_primitive(),
                lengths,
            )),
        }
    }

    // The two methods below serve the backward steps of the inner backend; on an autodiff
    // tensor they return constants of the graph (no second-order gradients).

    fn fused_sorted_pool_backward(
        x: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        lengths: Vec<usize>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (dx, dw) = B::fused_sorted_pool_backward(
            x.into_primitive(),
            weights.into_primitive(),
            grad.into_primitive(),
            lengths,
        );
        (Self::from_inner(dx), Self::from_inner(dw))
    }

    fn fused_gru(
        projected: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match GruBackward
            .prepare::<C>([projected.node(), w_hh.node(), b_hh.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let w_hh = w_hh.into_primitive();
                let (outputs, gates) = B::fused_gru_saving(
                    projected.into_primitive(),
                    w_hh.clone(),
                    b_hh.into_primitive(),
                );
                prep.finish((w_hh, outputs.clone(), gates), outputs)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_gru(
                projected.into_primitive(),
                w_hh.into_primitive(),
                b_hh.into_primitive(),
            )),
        }
    }

    fn fused_gru_saving(
        projected: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (outputs, gates) = B::fused_gru_saving(
            projected.into_primitive(),
            w_hh.into_primitive(),
            b_hh.into_primitive(),
        );
        (Self::from_inner(outputs), Self::from_inner(gates))
    }

    fn fused_gru_backward(
        w_hh: FloatTensor<Self>,
        outputs: FloatTensor<Self>,
        gates: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (dp, dw, db) = B::fused_gru_backward(
            w_hh.into_primitive(),
            outputs.into_primitive(),
            gates.into_primitive(),
            grad.into_primitive(),
        );
        (
            Self::from_inner(dp),
            Self::from_inner(dw),
            Self::from_inner(db),
        )
    }
}

/// The backward step of [`FusedLayers::fused_sorted_pool`]: both gradients from one call.
#[derive(Debug)]
struct SortedPoolBackward;

impl<B: FusedLayers> Backward<B, 2> for SortedPoolBackward {
    /// `x`, `θ` and the lengths.
    type State = (FloatTensor<B>, FloatTensor<B>, Vec<usize>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, weights, lengths) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let [x_node, weights_node] = ops.parents;
        if x_node.is_none() && weights_node.is_none() {
            return;
        }
        let (dx, dw) = B::fused_sorted_pool_backward(x, weights, grad, lengths);
        if let Some(node) = x_node {
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = weights_node {
            grads.register::<B>(node.id, dw);
        }
    }
}

/// The backward step of [`FusedLayers::fused_gru`]: backpropagation through time in one call.
#[derive(Debug)]
struct GruBackward;

impl<B: FusedLayers> Backward<B, 3> for GruBackward {
    /// `w_hh`, the outputs and the kept gates.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (w_hh, outputs, gates) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let [projected_node, w_node, b_node] = ops.parents;
        if projected_node.is_none() && w_node.is_none() && b_node.is_none() {
            return;
        }
        let (dp, dw, db) = B::fused_gru_backward(w_hh, outputs, gates, grad);
        for (node, grad) in [(projected_node, dp), (w_node, dw), (b_node, db)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}
