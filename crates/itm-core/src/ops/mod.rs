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
mod kernels;
mod lanes;
#[cfg(test)]
mod tests;

use burn::backend::Dispatch;
use burn::tensor::activation;
use burn::tensor::{Device, Tensor};

pub use extension::FastMath;

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
