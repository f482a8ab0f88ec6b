//! The recurrence of a GRU over whole sequences on contiguous `f32`, forward and backward
//! through time (our design; issue #17). PyTorch's gate layout `[r, z, n]`:
//!
//! `gh = h_{t−1}·W_hh + b_hh`, `r = σ(gi_r + gh_r)`, `z = σ(gi_z + gh_z)`,
//! `n = tanh(gi_n + r ⊙ gh_n)`, `h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}`, from `h_0 = 0`, where
//! `gi = x_t·W_ih + b_ih` is the input projection of every step, computed before (one GEMM).
//!
//! As burn operations each step was a dozen graph nodes (narrows of the gates, the element-wise
//! gate functions), and their backward passes wrote zero tensors of the whole sequence's size
//! per narrow and added them up: the text tower's backward pass was 0.79 s of a 1.5 s VSE∞
//! step at two threads, scaling 1.2× from one thread (profile of 2026-12-07,
//! docs/performance.md). Here a step is one GEMM (`[batch, H] × [H, 3H]`) and one parallel
//! pass over the gates; the backward pass keeps the gates of every step (`r`, `z`, `n`,
//! `gh_n`: `4H` values per row and step), runs one GEMM per step for `∂h_{t−1}` and one per
//! step for `∂W_hh`, and writes `∂gi` directly (no zero tensors, no sums of them).

use rayon::prelude::*;

use super::kernels::{Isa, PARALLEL_MIN, isa, multiversion};
use super::lanes::{self, Fused, MulAdd, Separate};

/// `[batch, len, H]` of a GRU's outputs (its input projection is `[batch, len, 3H]`).
#[derive(Clone, Copy, Debug)]
pub(super) struct GruShape {
    pub batch: usize,
    pub len: usize,
    pub hidden: usize,
}

/// Rows per rayon task of a gate pass.
fn rows_per_task(shape: GruShape) -> usize {
    (PARALLEL_MIN / (4 * shape.hidden).max(1)).max(1)
}

fn parallel(shape: GruShape) -> bool {
    shape.batch > 1 && shape.batch * shape.hidden >= PARALLEL_MIN / 4
}

/// `dst = alpha·dst + a·b` for row-major operands given by (pointer, row stride, column
/// stride), on rayon's pool when it has more than one thread.
///
/// # Safety
/// Every `(row, column)` element addressed through the strides lies inside its buffer, and
/// `dst` overlaps neither operand.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_strided(
    (m, n, k): (usize, usize, usize),
    dst: (*mut f32, isize, isize),
    a: (*const f32, isize, isize),
    b: (*const f32, isize, isize),
    accumulate: bool,
) {
    let parallelism = if rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the caller's contract; `gemm` takes (column stride, row stride) pairs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.0,
            dst.2,
            dst.1,
            accumulate,
            a.0,
            a.2,
            a.1,
            b.0,
            b.2,
            b.1,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// One row of one step's gates: writes `h_t` and the kept gates `[r, z, n, gh_n]`.
#[inline(always)]
fn gates_row_body<M: MulAdd>(
    gi: &[f32],
    gh: &[f32],
    h_prev: &[f32],
    h: &mut [f32],
    keep: &mut [f32],
) {
    let hidden = h.len();
    let (gi_r, rest) = gi.split_at(hidden);
    let (gi_z, gi_n) = rest.split_at(hidden);
    let (gh_r, rest) = gh.split_at(hidden);
    let (gh_z, gh_n) = rest.split_at(hidden);
    let (k_r, rest) = keep.split_at_mut(hidden);
    let (k_z, rest) = rest.split_at_mut(hidden);
    let (k_n, k_ghn) = rest.split_at_mut(hidden);
    for j in 0..hidden {
        let r = lanes::sigmoid::<M>(gi_r[j] + gh_r[j]);
        let z = lanes::sigmoid::<M>(gi_z[j] + gh_z[j]);
        let n = lanes::tanh::<M>(M::mul_add(r, gh_n[j], gi_n[j]));
        h[j] = M::mul_add(z, h_prev[j] - n, n);
        k_r[j] = r;
        k_z[j] = z;
        k_n[j] = n;
        k_ghn[j] = gh_n[j];
    }
}

/// One row of one step's backward pass: from `∂h_t` (`dh`, replaced by the direct part of
/// `∂h_{t−1}`, `z ⊙ ∂h_t`), writes `∂gi` and `∂gh` (`[3H]` each).
#[inline(always)]
fn gates_row_backward_body<M: MulAdd>(
    keep: &[f32],
    h_prev: &[f32],
    dh: &mut [f32],
    dgi: &mut [f32],
    dgh: &mut [f32],
) {
    let hidden = dh.len();
    let (k_r, rest) = keep.split_at(hidden);
    let (k_z, rest) = rest.split_at(hidden);
    let (k_n, k_ghn) = rest.split_at(hidden);
    let (dgi_r, rest) = dgi.split_at_mut(hidden);
    let (dgi_z, dgi_n) = rest.split_at_mut(hidden);
    let (dgh_r, rest) = dgh.split_at_mut(hidden);
    let (dgh_z, dgh_n) = rest.split_at_mut(hidden);
    for j in 0..hidden {
        let (r, z, n, ghn, g) = (k_r[j], k_z[j], k_n[j], k_ghn[j], dh[j]);
        let da_n = g * (1.0 - z) * M::mul_add(-n, n, 1.0);
        let da_r = da_n * ghn * (r - r * r);
        let da_z = g * (h_prev[j] - n) * (z - z * z);
        dgi_r[j] = da_r;
        dgi_z[j] = da_z;
        dgi_n[j] = da_n;
        dgh_r[j] = da_r;
        dgh_z[j] = da_z;
        dgh_n[j] = da_n * r;
        dh[j] = g * z;
    }
}

multiversion! { fn gates_row<>(gi: &[f32], gh: &[f32], h_prev: &[f32], h: &mut [f32], keep: &mut [f32]) = gates_row_body; }
multiversion! { fn gates_row_backward<>(keep: &[f32], h_prev: &[f32], dh: &mut [f32], dgi: &mut [f32], dgh: &mut [f32]) = gates_row_backward_body; }

/// Runs `each(b, row chunks…)` over the batch rows, in parallel when the step is large.
fn for_rows<T: Send>(shape: GruShape, items: Vec<T>, each: impl Fn(T) + Sync + Send) {
    if parallel(shape) {
        items
            .into_par_iter()
            .with_min_len(rows_per_task(shape))
            .for_each(each);
    } else {
        items.into_iter().for_each(each);
    }
}

/// The outputs `[batch, len, H]` of every step and the kept gates `[batch, len, 4H]`
/// (`[r, z, n, gh_n]` per row and step), from the input projection `projected`
/// (`[batch, len, 3H]`), `w_hh` (`[H, 3H]`, row-major) and `b_hh` (`[3H]`).
pub(super) fn forward(
    shape: GruShape,
    projected: &[f32],
    w_hh: &[f32],
    b_hh: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let GruShape { batch, len, hidden } = shape;
    let (h3, h4) = (3 * hidden, 4 * hidden);
    assert!(
        projected.len() == batch * len * h3 && w_hh.len() == hidden * h3 && b_hh.len() == h3,
        "gru: sizes disagree with {shape:?}"
    );
    let mut outputs = vec![0.0f32; batch * len * hidden];
    let mut kept = vec![0.0f32; batch * len * h4];
    let mut gh = vec![0.0f32; batch * h3];
    let zeros = vec![0.0f32; hidden];
    for t in 0..len {
        for row in gh.chunks_mut(h3) {
            row.copy_from_slice(b_hh);
        }
        if t > 0 && hidden > 0 {
            // SAFETY: h_{t−1} is row b of `outputs` at offset (b·len + t − 1)·H (row stride
            // len·H), [batch, H]; `w_hh` is [H, 3H]; `gh` is [batch, 3H], a separate buffer.
            unsafe {
                gemm_strided(
                    (batch, h3, hidden),
                    (gh.as_mut_ptr(), h3 as isize, 1),
                    (
                        outputs.as_ptr().add((t - 1) * hidden),
                        (len * hidden) as isize,
                        1,
                    ),
                    (w_hh.as_ptr(), h3 as isize, 1),
                    true,
                );
            }
        }
        // Rows of step t (and t − 1) of the outputs: step t is written, t − 1 read. Split each
        // sequence's rows so that the borrow of step t − 1 and step t are disjoint.
        let items: Vec<_> = outputs
            .chunks_mut(len * hidden)
            .zip(kept.chunks_mut(len * h4))
            .zip(gh.chunks(h3))
            .zip(projected.chunks(len * h3))
            .map(|(((seq, keep), gh), proj)| {
                let (before, from_t) = seq.split_at_mut(t * hidden);
                let h_prev: &[f32] = if t > 0 {
                    &before[(t - 1) * hidden..]
                } else {
                    &zeros
                };
                (
                    &proj[t * h3..(t + 1) * h3],
                    gh,
                    h_prev,
                    &mut from_t[..hidden],
                    &mut keep[t * h4..(t + 1) * h4],
                )
            })
            .collect();
        for_rows(shape, items, |(gi, gh, h_prev, h, keep)| {
            gates_row(gi, gh, h_prev, h, keep)
        });
    }
    (outputs, kept)
}

/// `(∂projected [batch, len, 3H], ∂W_hh [H, 3H], ∂b_hh [3H])` from the gradient of the outputs
/// `grad` (`[batch, len, H]`), with the outputs and kept gates of [`forward`].
pub(super) fn backward(
    shape: GruShape,
    w_hh: &[f32],
    outputs: &[f32],
    kept: &[f32],
    grad: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let GruShape { batch, len, hidden } = shape;
    let (h3, h4) = (3 * hidden, 4 * hidden);
    assert!(
        w_hh.len() == hidden * h3
            && outputs.len() == batch * len * hidden
            && kept.len() == batch * len * h4
            && grad.len() == batch * len * hidden,
        "gru backward: sizes disagree with {shape:?}"
    );
    let mut d_projected = vec![0.0f32; batch * len * h3];
    let mut d_w = vec![0.0f32; hidden * h3];
    let mut d_b = vec![0.0f32; h3];
    // ∂h_t, one row per sequence, and ∂gh of the current step.
    let mut dh = vec![0.0f32; batch * hidden];
    let mut dgh = vec![0.0f32; batch * h3];
    let zeros = vec![0.0f32; hidden];
    for t in (0..len).rev() {
        let items: Vec<_> = dh
            .chunks_mut(hidden)
            .zip(dgh.chunks_mut(h3))
            .zip(d_projected.chunks_mut(len * h3))
            .enumerate()
            .map(|(b, ((dh, dgh), dproj))| {
                let seq = b * len;
                let h_prev: &[f32] = if t > 0 {
                    &outputs[(seq + t - 1) * hidden..(seq + t) * hidden]
                } else {
                    &zeros
                };
                (
                    &kept[(seq + t) * h4..(seq + t + 1) * h4],
                    h_prev,
                    &grad[(seq + t) * hidden..(seq + t + 1) * hidden],
                    dh,
                    &mut dproj[t * h3..(t + 1) * h3],
                    dgh,
                )
            })
            .collect();
        for_rows(shape, items, |(keep, h_prev, g, dh, dgi, dgh)| {
            for (d, &v) in dh.iter_mut().zip(g) {
                *d += v;
            }
            gates_row_backward(keep, h_prev, dh, dgi, dgh)
        });
        for row in dgh.chunks(h3) {
            for (s, &v) in d_b.iter_mut().zip(row) {
                *s += v;
            }
        }
        if t > 0 && hidden > 0 {
            // SAFETY: ∂W_hh [H, 3H] += h_{t−1}ᵀ · ∂gh: the left operand's element (i, b) is
            // outputs[(b·len + t − 1)·H + i] (row stride 1, column stride len·H), ∂gh is
            // [batch, 3H]. Then ∂h_{t−1} [batch, H] += ∂gh · W_hhᵀ: W_hhᵀ's element (p, j) is
            // w_hh[j·3H + p] (row stride 1, column stride 3H). Three separate buffers.
            unsafe {
                gemm_strided(
                    (hidden, h3, batch),
                    (d_w.as_mut_ptr(), h3 as isize, 1),
                    (
                        outputs.as_ptr().add((t - 1) * hidden),
                        1,
                        (len * hidden) as isize,
                    ),
                    (dgh.as_ptr(), h3 as isize, 1),
                    true,
                );
                gemm_strided(
                    (batch, hidden, h3),
                    (dh.as_mut_ptr(), hidden as isize, 1),
                    (dgh.as_ptr(), h3 as isize, 1),
                    (w_hh.as_ptr(), 1, h3 as isize),
                    true,
                );
            }
        }
    }
    (d_projected, d_w, d_b)
}
