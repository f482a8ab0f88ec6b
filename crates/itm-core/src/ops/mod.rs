//! Fast transcendental functions for the `flex` CPU backend: `exp`, `sigmoid`, `tanh`, the exact
//! (erf) GELU, softmax and LogSumExp along an axis, with their gradients (our design; issue #17).
//!
//! burn's `flex` backend evaluates `exp`, `tanh` and `erf` one element at a time through the
//! scalar `libm` functions, on one thread: `sigmoid + tanh + mul` over `[128, 768]` took
//! 1,728 µs against PyTorch's 169 µs. These functions run SIMD kernels instead (AVX-512F or
//! AVX2 + FMA chosen at run time, a scalar build otherwise), split over rayon's threads above
//! 32,768 elements. They reach the backend through burn's extension mechanism
//! ([`FastMath`], `#[backend_extension(Flex, Autodiff)]`): on a `flex` device, plain or autodiff,
//! they run the kernels, and the backward passes are hand-written kernels too
//! (`σ' = σ(1 − σ)`, `tanh' = 1 − tanh²`, `GELU' = Φ + x·φ`, softmax's Jacobian-vector product
//! `y ⊙ (g − Σ g ⊙ y)`, LogSumExp's `g ⊙ softmax`). On every other device (WGPU, CUDA) they are
//! burn's own composed operations, so callers need not know where they run.
//!
//! Accuracy against `f64` (the test `ops::tests::accuracy_against_f64`: a sweep of 1.77 M
//! inputs per function, every 1009th f32 of `±[1e-30, 110]`, plus the special values, on
//! every instruction set the CPU has):
//!
//! | function | asserted (measured, every path) | where |
//! |---|---|---|
//! | `exp` | ≤ 1.5 ulp (0.94 scalar, 1.02 AVX) | results ≥ 2⁻¹²⁶; below, absolute ≤ 3e-45 |
//! | `sigmoid` | ≤ 2.5 ulp (2.14) | results ≥ 2⁻¹²⁶; below (x < −87.3), absolute ≤ 1.2e-38 |
//! | `tanh` | ≤ 1.5 ulp (1.24) | everywhere |
//! | `gelu` | absolute ≤ 1.5e-7·max(1, \|x\|) (1.13e-7); relative ≤ 2e-6 (1.75e-6) | relative: x ≥ −5 |
//!
//! (1 ulp = 2⁻²³ relative at most.) GELU's relative error grows below −5 with the rounding of
//! `x²/2` inside `e^{−x²/2}` (the values there are below 3e-6·|x|).
//!
//! `±100` gives `e^x ∈ {3.7e-44, +∞}`, `σ ∈ {0, 1}`, `tanh = ±1`, `GELU ∈ {−0, 100}`: never
//! NaN; NaN inputs give NaN. Softmax and LogSumExp subtract the maximum of each slice first;
//! their sums run over 16 partial accumulators (not the sequential order), so they agree with
//! the composed operations to a few ulp, not bit for bit.
//!
//! The kernels read contiguous `f32`; other inputs are copied to a contiguous buffer first, and
//! other dtypes (`f64`, `f16`) run burn's operations.

mod extension;
mod fused;
mod gru;
mod kernels;
mod lanes;
mod sorted_pool;
#[cfg(test)]
mod tests;

use burn::backend::Dispatch;
use burn::tensor::activation;
use burn::tensor::{DType, Device, Tensor};

use crate::masking::{PADDING_FILL, check_lengths, fill_padding};

pub use extension::FastMath;
pub use fused::FusedLayers;

/// Whether `x` lives on the `flex` backend (plain or autodiff), where the kernels run.
fn on_flex<const D: usize>(x: &Tensor<D>) -> bool {
    x.device() == Device::flex()
}

/// `e^x` element-wise, any shape.
pub fn exp<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !on_flex(&x) {
        return x.exp();
    }
    Tensor::from_dispatch(<Dispatch as FastMath>::fast_exp(x.into_dispatch()))
}

/// `σ(x) = 1 / (1 + e^{−x})` element-wise, any shape.
pub fn sigmoid<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !on_flex(&x) {
        return activation::sigmoid(x);
    }
    Tensor::from_dispatch(<Dispatch as FastMath>::fast_sigmoid(x.into_dispatch()))
}

/// `tanh(x)` element-wise, any shape.
pub fn tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !on_flex(&x) {
        return x.tanh();
    }
    Tensor::from_dispatch(<Dispatch as FastMath>::fast_tanh(x.into_dispatch()))
}

/// The exact GELU `x·Φ(x) = ½x(1 + erf(x/√2))` element-wise, any shape (PyTorch's
/// `nn.GELU()`, transformers' `"gelu"`).
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !on_flex(&x) {
        return activation::gelu(x);
    }
    Tensor::from_dispatch(<Dispatch as FastMath>::fast_gelu(x.into_dispatch()))
}

/// Softmax along `dim`: `e^{x_i} / Σ_j e^{x_j}`, same shape as `x`.
///
/// # Panics
///
/// If `dim ≥ D`.
pub fn softmax<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    assert!(dim < D, "softmax: dim {dim} out of range for rank {D}");
    if !on_flex(&x) {
        return activation::softmax(x, dim);
    }
    Tensor::from_dispatch(<Dispatch as FastMath>::fast_softmax(x.into_dispatch(), dim))
}

/// `ln Σ e^x` along `dim`, which keeps size 1 (`[.., n, ..] → [.., 1, ..]`). Stable: the
/// maximum of each slice is subtracted first. The gradient is the softmax along `dim`.
///
/// # Panics
///
/// If `dim ≥ D`.
pub fn log_sum_exp<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    assert!(dim < D, "log_sum_exp: dim {dim} out of range for rank {D}");
    if !on_flex(&x) {
        let max = x.clone().max_dim(dim).detach();
        return (x - max.clone()).exp().sum_dim(dim).log() + max;
    }
    Tensor::from_dispatch(<Dispatch as FastMath>::fast_log_sum_exp(
        x.into_dispatch(),
        dim,
    ))
}

/// GPO's sorted pooling (METHODS §2): for each set `b` and channel `c`,
/// `Σ_{k < len_b} θ[b, k] · x̃[b, k, c]`, where `x̃[b, ·, c]` is `x[b, :len_b, c]` sorted in
/// descending order. Gradients reach `x` through the sort (a permutation) and `θ`.
///
/// - `x`: `[batch, max_len, dim]` with valid prefix lengths `lengths` (each in `1..=max_len`)
/// - `weights`: `[batch, max_len]` (`θ` per rank; entries past a set's length are not read)
/// - returns `[batch, dim]`
///
/// On `flex` with `f32` this is one parallel kernel with a hand-written backward (no sort, no
/// gather: each value's rank is counted; [`FusedLayers`]); elsewhere burn's composed
/// operations ([`sorted_pool_composed`]).
///
/// # Panics
///
/// If a length lies outside `1..=max_len` or the shapes disagree.
pub fn sorted_pool(x: Tensor<3>, weights: Tensor<2>, lengths: &[usize]) -> Tensor<2> {
    let [batch, max_len, _] = x.dims();
    check_lengths(lengths, max_len, "sorted_pool");
    assert_eq!(
        weights.dims(),
        [batch, max_len],
        "sorted_pool: weights must be [batch, max_len]"
    );
    if !on_flex(&x) || x.dtype() != DType::F32 || weights.dtype() != DType::F32 {
        return sorted_pool_composed(x, weights, lengths);
    }
    Tensor::from_dispatch(<Dispatch as FusedLayers>::fused_sorted_pool(
        x.into_dispatch(),
        weights.into_dispatch(),
        lengths.to_vec(),
    ))
}

/// [`sorted_pool`] in burn's operations: the padding filled with a value below any feature,
/// each channel sorted, the padding zeroed, the weighted sum over ranks.
pub fn sorted_pool_composed(x: Tensor<3>, weights: Tensor<2>, lengths: &[usize]) -> Tensor<2> {
    let sorted = fill_padding(x, lengths, PADDING_FILL).sort_descending(1);
    let sorted = fill_padding(sorted, lengths, 0.0);
    (sorted * weights.unsqueeze_dim::<3>(2))
        .sum_dim(1)
        .squeeze_dim::<2>(1)
}

/// The recurrence of a GRU with PyTorch's gate layout `[r, z, n]`, from `h_0 = 0`:
/// `gh = h_{t−1}·W_hh + b_hh`, `r = σ(gi_r + gh_r)`, `z = σ(gi_z + gh_z)`,
/// `n = tanh(gi_n + r ⊙ gh_n)`, `h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}`.
///
/// - `projected`: the input projection `gi = x_t·W_ih + b_ih` of every step, `[batch, len, 3H]`
/// - `w_hh`: `[H, 3H]` (burn's `Linear` layout), `b_hh`: `[3H]`
/// - returns the hidden states of every step, `[batch, len, H]`
///
/// On `flex` with `f32` this is one operation with a hand-written backward through time
/// ([`FusedLayers`]); elsewhere burn's operations step by step ([`gru_recurrence_composed`]).
pub fn gru_recurrence(projected: Tensor<3>, w_hh: Tensor<2>, b_hh: Tensor<1>) -> Tensor<3> {
    let [_, _, h3] = projected.dims();
    let [hidden, w_out] = w_hh.dims();
    assert!(
        h3 == 3 * hidden && w_out == h3 && b_hh.dims() == [h3],
        "gru_recurrence: projection [.., .., {h3}], w_hh [{hidden}, {w_out}], b_hh {:?}",
        b_hh.dims()
    );
    let f32_everywhere = [projected.dtype(), w_hh.dtype(), b_hh.dtype()]
        .iter()
        .all(|dtype| *dtype == DType::F32);
    if !on_flex(&projected) || !f32_everywhere {
        return gru_recurrence_composed(projected, w_hh, b_hh);
    }
    Tensor::from_dispatch(<Dispatch as FusedLayers>::fused_gru(
        projected.into_dispatch(),
        w_hh.into_dispatch(),
        b_hh.into_dispatch(),
    ))
}

/// [`gru_recurrence`] in burn's operations, one step at a time.
pub fn gru_recurrence_composed(
    projected: Tensor<3>,
    w_hh: Tensor<2>,
    b_hh: Tensor<1>,
) -> Tensor<3> {
    let [batch, len, _] = projected.dims();
    let [hidden, _] = w_hh.dims();
    let b_hh = b_hh.unsqueeze_dim::<2>(0);
    let mut state = Tensor::<2>::zeros([batch, hidden], &projected.device());
    let mut outputs = Vec::with_capacity(len);
    for t in 0..len {
        let from_input = projected.clone().narrow(1, t, 1).squeeze_dim::<2>(1);
        let from_hidden = state.clone().matmul(w_hh.clone()) + b_hh.clone();
        let reset = sigmoid(
            from_input.clone().narrow(1, 0, hidden) + from_hidden.clone().narrow(1, 0, hidden),
        );
        let update = sigmoid(
            from_input.clone().narrow(1, hidden, hidden)
                + from_hidden.clone().narrow(1, hidden, hidden),
        );
        let candidate = tanh(
            from_input.narrow(1, 2 * hidden, hidden)
                + reset * from_hidden.narrow(1, 2 * hidden, hidden),
        );
        state = candidate.clone() + update * (state - candidate);
        outputs.push(state.clone());
    }
    Tensor::stack(outputs, 1)
}
