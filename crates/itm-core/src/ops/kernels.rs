//! Slice kernels over contiguous `f32`: element-wise maps and reductions along one axis, each
//! compiled three times (AVX-512F, AVX2 + FMA, baseline x86-64/other targets) and chosen at run
//! time, and split over rayon's threads above [`PARALLEL_MIN`] elements (our design).
//!
//! The loops are plain Rust over the branch-free lanes of [`super::lanes`]; compiled under
//! `#[target_feature]` they vectorise to 16 (AVX-512) or 8 (AVX2) lanes. Sums and maxima keep
//! [`LANES`] partial accumulators, so that they vectorise too (the order of the additions is
//! therefore not the sequential one).

use rayon::prelude::*;

use super::lanes::{self, Fused, MulAdd, Separate};

/// Instruction sets a kernel is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Isa {
    /// AVX-512F (with AVX2 and FMA): 16 lanes.
    Avx512,
    /// AVX2 + FMA: 8 lanes.
    Avx2,
    /// Whatever the target guarantees (SSE2 on x86-64), no FMA.
    Baseline,
}

impl Isa {
    /// The best set this CPU runs.
    pub(super) fn detected() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
        }
        Isa::Baseline
    }
}

#[cfg(test)]
thread_local! {
    /// Tests run every path the CPU has by lowering this (on the calling thread only).
    pub(super) static FORCED_ISA: std::cell::Cell<Option<Isa>> = const { std::cell::Cell::new(None) };
}

/// The set the kernels run with (cached by `is_x86_feature_detected!`).
pub(super) fn isa() -> Isa {
    #[cfg(test)]
    if let Some(forced) = FORCED_ISA.with(|cell| cell.get()) {
        return forced;
    }
    Isa::detected()
}

/// Defines `fn $name` that runs `$body::<…, M>` with `M = Fused` compiled for AVX-512F or
/// AVX2 + FMA when the CPU has them, and with `M = Separate` otherwise.
macro_rules! multiversion {
    (fn $name:ident<$($g:ident: $bound:path),*>($($arg:ident: $ty:ty),* $(,)?) = $body:ident;) => {
        fn $name<$($g: $bound),*>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512<$($g: $bound),*>($($arg: $ty),*) {
                    $body::<$($g,)* Fused>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2<$($g: $bound),*>($($arg: $ty),*) {
                    $body::<$($g,)* Fused>($($arg),*)
                }
                match isa() {
                    // SAFETY: `isa` reports only instruction sets this CPU runs.
                    Isa::Avx512 => return unsafe { avx512::<$($g),*>($($arg),*) },
                    // SAFETY: as above.
                    Isa::Avx2 => return unsafe { avx2::<$($g),*>($($arg),*) },
                    Isa::Baseline => {}
                }
            }
            $body::<$($g,)* Separate>($($arg),*)
        }
    };
}
pub(super) use multiversion;

/// Element count from which a kernel splits its work over rayon's threads.
pub(super) const PARALLEL_MIN: usize = 1 << 15;
/// Elements per rayon task.
const TASK: usize = 1 << 14;
/// Partial accumulators of a reduction (one AVX-512 register).
const LANES: usize = 16;

// ---------------------------------------------------------------------------------------------
// Element-wise maps

/// An element-wise function.
pub(super) trait Unary: Send + Sync + 'static {
    /// One lane.
    fn lane<M: MulAdd>(x: f32) -> f32;
}

/// `e^x`.
pub(super) struct Exp;
/// `σ(x)`.
pub(super) struct Sigmoid;
/// `tanh(x)`.
pub(super) struct Tanh;
/// `x·Φ(x)`.
pub(super) struct Gelu;

impl Unary for Exp {
    #[inline(always)]
    fn lane<M: MulAdd>(x: f32) -> f32 {
        lanes::exp::<M>(x)
    }
}
impl Unary for Sigmoid {
    #[inline(always)]
    fn lane<M: MulAdd>(x: f32) -> f32 {
        lanes::sigmoid::<M>(x)
    }
}
impl Unary for Tanh {
    #[inline(always)]
    fn lane<M: MulAdd>(x: f32) -> f32 {
        lanes::tanh::<M>(x)
    }
}
impl Unary for Gelu {
    #[inline(always)]
    fn lane<M: MulAdd>(x: f32) -> f32 {
        lanes::gelu::<M>(x)
    }
}

/// A backward step: `(saved value, incoming gradient) → gradient of the input`.
pub(super) trait Binary: Send + Sync + 'static {
    /// One lane.
    fn lane<M: MulAdd>(saved: f32, grad: f32) -> f32;
}

/// `g·s(1 − s)` from the output `s = σ(x)`.
pub(super) struct SigmoidGrad;
/// `g·(1 − t²)` from the output `t = tanh(x)`.
pub(super) struct TanhGrad;
/// `g·GELU'(x)` from the input `x`.
pub(super) struct GeluGrad;

impl Binary for SigmoidGrad {
    #[inline(always)]
    fn lane<M: MulAdd>(s: f32, g: f32) -> f32 {
        g * (s - s * s)
    }
}
impl Binary for TanhGrad {
    #[inline(always)]
    fn lane<M: MulAdd>(t: f32, g: f32) -> f32 {
        g * M::mul_add(-t, t, 1.0)
    }
}
impl Binary for GeluGrad {
    #[inline(always)]
    fn lane<M: MulAdd>(x: f32, g: f32) -> f32 {
        g * lanes::gelu_derivative::<M>(x)
    }
}

#[inline(always)]
fn map_body<U: Unary, M: MulAdd>(src: &[f32], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = U::lane::<M>(s);
    }
}

#[inline(always)]
fn map_in_place_body<U: Unary, M: MulAdd>(values: &mut [f32]) {
    for v in values.iter_mut() {
        *v = U::lane::<M>(*v);
    }
}

#[inline(always)]
fn zip_body<B: Binary, M: MulAdd>(saved: &[f32], grad: &[f32], dst: &mut [f32]) {
    for ((d, &s), &g) in dst.iter_mut().zip(saved).zip(grad) {
        *d = B::lane::<M>(s, g);
    }
}

multiversion! { fn map_task<U: Unary>(src: &[f32], dst: &mut [f32]) = map_body; }
multiversion! { fn map_in_place_task<U: Unary>(values: &mut [f32]) = map_in_place_body; }
multiversion! { fn zip_task<B: Binary>(saved: &[f32], grad: &[f32], dst: &mut [f32]) = zip_body; }

/// `dst[i] = U(src[i])`.
pub(super) fn map<U: Unary>(src: &[f32], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "map: lengths differ");
    if src.len() < PARALLEL_MIN {
        map_task::<U>(src, dst);
    } else {
        src.par_chunks(TASK)
            .zip(dst.par_chunks_mut(TASK))
            .for_each(|(s, d)| map_task::<U>(s, d));
    }
}

/// `values[i] = U(values[i])`.
pub(super) fn map_in_place<U: Unary>(values: &mut [f32]) {
    if values.len() < PARALLEL_MIN {
        map_in_place_task::<U>(values);
    } else {
        values
            .par_chunks_mut(TASK)
            .for_each(|v| map_in_place_task::<U>(v));
    }
}

/// `dst[i] = B(saved[i], grad[i])`.
pub(super) fn zip<B: Binary>(saved: &[f32], grad: &[f32], dst: &mut [f32]) {
    assert!(
        saved.len() == dst.len() && grad.len() == dst.len(),
        "zip: lengths differ"
    );
    if dst.len() < PARALLEL_MIN {
        zip_task::<B>(saved, grad, dst);
    } else {
        dst.par_chunks_mut(TASK)
            .zip(saved.par_chunks(TASK))
            .zip(grad.par_chunks(TASK))
            .for_each(|((d, s), g)| zip_task::<B>(s, g, d));
    }
}

// ---------------------------------------------------------------------------------------------
// Reductions along one axis

/// A contiguous tensor seen as `[outer, len, inner]`, reduced along `len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Axis {
    /// Product of the sizes before the axis.
    pub outer: usize,
    /// Size of the axis.
    pub len: usize,
    /// Product of the sizes after it (1 for the last axis).
    pub inner: usize,
}

impl Axis {
    /// The axis `dim` of a tensor of shape `dims`.
    pub(super) fn of(dims: &[usize], dim: usize) -> Axis {
        Axis {
            outer: dims[..dim].iter().product(),
            len: dims[dim],
            inner: dims[dim + 1..].iter().product(),
        }
    }

    /// Elements of one `[len, inner]` block.
    fn block(&self) -> usize {
        self.len * self.inner
    }

    /// Blocks per rayon task, and whether to split at all.
    fn blocks_per_task(&self) -> Option<usize> {
        let total = self.outer * self.block();
        (total >= PARALLEL_MIN && self.outer > 1).then(|| (TASK / self.block().max(1)).max(1))
    }
}

/// `max` that skips NaN (a NaN then reaches the `exp` and the sum).
#[inline(always)]
fn larger(a: f32, b: f32) -> f32 {
    if b > a { b } else { a }
}

/// Largest value of a row.
#[inline(always)]
fn row_max(x: &[f32]) -> f32 {
    let split = x.len() / LANES * LANES;
    let mut acc = [f32::NEG_INFINITY; LANES];
    for chunk in x[..split].chunks_exact(LANES) {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = larger(*a, v);
        }
    }
    let tail = x[split..]
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| larger(m, v));
    acc.iter().fold(tail, |m, &v| larger(m, v))
}

/// `Σ e^{x − shift}` of a row.
#[inline(always)]
fn row_exp_sum<M: MulAdd>(x: &[f32], shift: f32) -> f32 {
    let split = x.len() / LANES * LANES;
    let mut acc = [0.0f32; LANES];
    for chunk in x[..split].chunks_exact(LANES) {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += lanes::exp::<M>(v - shift);
        }
    }
    let tail: f32 = x[split..].iter().map(|&v| lanes::exp::<M>(v - shift)).sum();
    acc.iter().sum::<f32>() + tail
}

/// `terms = e^{x − shift}` of a row, and their sum.
#[inline(always)]
fn row_exp_store<M: MulAdd>(x: &[f32], shift: f32, terms: &mut [f32]) -> f32 {
    let split = x.len() / LANES * LANES;
    let mut acc = [0.0f32; LANES];
    for (xc, tc) in x[..split]
        .chunks_exact(LANES)
        .zip(terms[..split].chunks_exact_mut(LANES))
    {
        for ((t, a), &v) in tc.iter_mut().zip(acc.iter_mut()).zip(xc) {
            *t = lanes::exp::<M>(v - shift);
            *a += *t;
        }
    }
    let mut tail = 0.0f32;
    for (t, &v) in terms[split..].iter_mut().zip(&x[split..]) {
        *t = lanes::exp::<M>(v - shift);
        tail += *t;
    }
    acc.iter().sum::<f32>() + tail
}

/// `Σ a·b` of two rows.
#[inline(always)]
fn row_dot(a: &[f32], b: &[f32]) -> f32 {
    let split = a.len() / LANES * LANES;
    let mut acc = [0.0f32; LANES];
    for (ca, cb) in a[..split]
        .chunks_exact(LANES)
        .zip(b[..split].chunks_exact(LANES))
    {
        for ((s, &x), &y) in acc.iter_mut().zip(ca).zip(cb) {
            *s += x * y;
        }
    }
    let tail: f32 = a[split..].iter().zip(&b[split..]).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// Softmax of `blocks` consecutive `[len, inner]` blocks.
#[inline(always)]
fn softmax_body<M: MulAdd>(axis: Axis, x: &[f32], y: &mut [f32]) {
    let block = axis.block();
    if axis.inner == 1 {
        for (xr, yr) in x.chunks_exact(block).zip(y.chunks_exact_mut(block)) {
            let max = row_max(xr);
            let inv = 1.0 / row_exp_store::<M>(xr, max, yr);
            for v in yr.iter_mut() {
                *v *= inv;
            }
        }
        return;
    }
    let inner = axis.inner;
    let mut max = vec![0.0f32; inner];
    let mut sum = vec![0.0f32; inner];
    for (xb, yb) in x.chunks_exact(block).zip(y.chunks_exact_mut(block)) {
        max.copy_from_slice(&xb[..inner]);
        for row in xb.chunks_exact(inner).skip(1) {
            for (m, &v) in max.iter_mut().zip(row) {
                *m = larger(*m, v);
            }
        }
        sum.fill(0.0);
        for (xr, yr) in xb.chunks_exact(inner).zip(yb.chunks_exact_mut(inner)) {
            for (((o, &v), &m), s) in yr.iter_mut().zip(xr).zip(&max).zip(sum.iter_mut()) {
                *o = lanes::exp::<M>(v - m);
                *s += *o;
            }
        }
        for s in sum.iter_mut() {
            *s = 1.0 / *s;
        }
        for yr in yb.chunks_exact_mut(inner) {
            for (o, &s) in yr.iter_mut().zip(&sum) {
                *o *= s;
            }
        }
    }
}

/// LogSumExp of consecutive `[len, inner]` blocks into `[inner]` rows.
#[inline(always)]
fn log_sum_exp_body<M: MulAdd>(axis: Axis, x: &[f32], out: &mut [f32]) {
    let block = axis.block();
    if axis.inner == 1 {
        for (xr, o) in x.chunks_exact(block).zip(out.iter_mut()) {
            let max = row_max(xr);
            *o = max + row_exp_sum::<M>(xr, max).ln();
        }
        return;
    }
    let inner = axis.inner;
    let mut sum = vec![0.0f32; inner];
    for (xb, max) in x.chunks_exact(block).zip(out.chunks_exact_mut(inner)) {
        max.copy_from_slice(&xb[..inner]);
        for row in xb.chunks_exact(inner).skip(1) {
            for (m, &v) in max.iter_mut().zip(row) {
                *m = larger(*m, v);
            }
        }
        sum.fill(0.0);
        for xr in xb.chunks_exact(inner) {
            for ((s, &v), &m) in sum.iter_mut().zip(xr).zip(max.iter()) {
                *s += lanes::exp::<M>(v - m);
            }
        }
        for (m, s) in max.iter_mut().zip(&sum) {
            *m += s.ln();
        }
    }
}

/// Gradient of softmax: `dx = y ⊙ (g − Σ_len g ⊙ y)`.
#[inline(always)]
fn softmax_backward_body<M: MulAdd>(axis: Axis, y: &[f32], g: &[f32], dx: &mut [f32]) {
    let block = axis.block();
    let blocks = y
        .chunks_exact(block)
        .zip(g.chunks_exact(block))
        .zip(dx.chunks_exact_mut(block));
    if axis.inner == 1 {
        for ((yr, gr), dr) in blocks {
            let dot = row_dot(yr, gr);
            for ((d, &yv), &gv) in dr.iter_mut().zip(yr).zip(gr) {
                *d = yv * (gv - dot);
            }
        }
        return;
    }
    let inner = axis.inner;
    let mut dot = vec![0.0f32; inner];
    for ((yb, gb), db) in blocks {
        dot.fill(0.0);
        for (yr, gr) in yb.chunks_exact(inner).zip(gb.chunks_exact(inner)) {
            for ((s, &yv), &gv) in dot.iter_mut().zip(yr).zip(gr) {
                *s = M::mul_add(yv, gv, *s);
            }
        }
        for ((yr, gr), dr) in yb
            .chunks_exact(inner)
            .zip(gb.chunks_exact(inner))
            .zip(db.chunks_exact_mut(inner))
        {
            for (((d, &yv), &gv), &s) in dr.iter_mut().zip(yr).zip(gr).zip(&dot) {
                *d = yv * (gv - s);
            }
        }
    }
}

/// Gradient of LogSumExp: `dx = g ⊙ e^{x − lse}` (`g`, `lse`: one value per `[len, inner]`
/// column).
#[inline(always)]
fn log_sum_exp_backward_body<M: MulAdd>(
    axis: Axis,
    x: &[f32],
    lse: &[f32],
    g: &[f32],
    dx: &mut [f32],
) {
    let (block, inner) = (axis.block(), axis.inner);
    for (((xb, lb), gb), db) in x
        .chunks_exact(block)
        .zip(lse.chunks_exact(inner))
        .zip(g.chunks_exact(inner))
        .zip(dx.chunks_exact_mut(block))
    {
        for (xr, dr) in xb.chunks_exact(inner).zip(db.chunks_exact_mut(inner)) {
            for (((d, &v), &l), &gv) in dr.iter_mut().zip(xr).zip(lb).zip(gb) {
                *d = gv * lanes::exp::<M>(v - l);
            }
        }
    }
}

multiversion! { fn softmax_task<>(axis: Axis, x: &[f32], y: &mut [f32]) = softmax_body; }
multiversion! { fn log_sum_exp_task<>(axis: Axis, x: &[f32], out: &mut [f32]) = log_sum_exp_body; }
multiversion! {
    fn softmax_backward_task<>(axis: Axis, y: &[f32], g: &[f32], dx: &mut [f32]) = softmax_backward_body;
}
multiversion! {
    fn log_sum_exp_backward_task<>(axis: Axis, x: &[f32], lse: &[f32], g: &[f32], dx: &mut [f32]) =
        log_sum_exp_backward_body;
}

fn check(axis: Axis, full: &[usize], reduced: &[usize]) {
    let n = axis.outer * axis.block();
    assert!(
        full.iter().all(|&len| len == n),
        "axis kernel: expected {n} elements"
    );
    let r = axis.outer * axis.inner;
    assert!(
        reduced.iter().all(|&len| len == r),
        "axis kernel: expected {r} reduced elements"
    );
}

/// Softmax along `axis`: `y = e^{x − max} / Σ e^{x − max}`.
pub(super) fn softmax(axis: Axis, x: &[f32], y: &mut [f32]) {
    check(axis, &[x.len(), y.len()], &[]);
    if axis.len == 0 {
        return;
    }
    match axis.blocks_per_task() {
        None => softmax_task(axis, x, y),
        Some(blocks) => {
            let step = blocks * axis.block();
            x.par_chunks(step)
                .zip(y.par_chunks_mut(step))
                .for_each(|(x, y)| softmax_task(axis, x, y));
        }
    }
}

/// LogSumExp along `axis` into `out` (`[outer, inner]`): `max + ln Σ e^{x − max}`.
pub(super) fn log_sum_exp(axis: Axis, x: &[f32], out: &mut [f32]) {
    check(axis, &[x.len()], &[out.len()]);
    if axis.len == 0 {
        out.fill(f32::NEG_INFINITY);
        return;
    }
    match axis.blocks_per_task() {
        None => log_sum_exp_task(axis, x, out),
        Some(blocks) => {
            x.par_chunks(blocks * axis.block())
                .zip(out.par_chunks_mut(blocks * axis.inner))
                .for_each(|(x, out)| log_sum_exp_task(axis, x, out));
        }
    }
}

/// Gradient of [`softmax`] from its output `y` and the incoming gradient `g`.
pub(super) fn softmax_backward(axis: Axis, y: &[f32], g: &[f32], dx: &mut [f32]) {
    check(axis, &[y.len(), g.len(), dx.len()], &[]);
    if axis.len == 0 {
        return;
    }
    match axis.blocks_per_task() {
        None => softmax_backward_task(axis, y, g, dx),
        Some(blocks) => {
            let step = blocks * axis.block();
            y.par_chunks(step)
                .zip(g.par_chunks(step))
                .zip(dx.par_chunks_mut(step))
                .for_each(|((y, g), dx)| softmax_backward_task(axis, y, g, dx));
        }
    }
}

/// Gradient of [`log_sum_exp`] from its input `x`, its output `lse` and the incoming gradient
/// `g` (both `[outer, inner]`).
pub(super) fn log_sum_exp_backward(axis: Axis, x: &[f32], lse: &[f32], g: &[f32], dx: &mut [f32]) {
    check(axis, &[x.len(), dx.len()], &[lse.len(), g.len()]);
    if axis.len == 0 {
        return;
    }
    match axis.blocks_per_task() {
        None => log_sum_exp_backward_task(axis, x, lse, g, dx),
        Some(blocks) => {
            let (step, reduced) = (blocks * axis.block(), blocks * axis.inner);
            x.par_chunks(step)
                .zip(lse.par_chunks(reduced))
                .zip(g.par_chunks(reduced))
                .zip(dx.par_chunks_mut(step))
                .for_each(|(((x, lse), g), dx)| log_sum_exp_backward_task(axis, x, lse, g, dx));
        }
    }
}
