//! GPO's sorted pooling on contiguous `f32` (our design; issue #17): for each set `b` and
//! channel `c`, `out[b, c] = Σ_{k < len_b} θ[b, k] · x̃[b, k, c]`, where `x̃[b, ·, c]` is
//! `x[b, :len_b, c]` sorted in descending order (METHODS §2), and its gradient.
//!
//! burn's composed version (fill the padding, sort with indices, gather, multiply, sum; a
//! scatter-add back through the sort) ran on one thread and took half of the sequential time
//! of a VSE∞ training step (profile of 2026-12-07, docs/performance.md). Here nothing is sorted
//! and nothing gathered: the *rank* of every value in its column is counted on 16 columns at
//! once (`len²` vector comparisons per block of 16 columns; sets longer than [`COUNT_MAX`] are
//! sorted per column instead), and each value is multiplied by the weight of its rank. The
//! backward pass counts the ranks again (cheaper than storing them) and writes
//! `∂x[b, j, c] = θ[b, rank] · g[b, c]` and `∂θ[b, rank] += x[b, j, c] · g[b, c]`. Sets run in
//! parallel over rayon's threads.
//!
//! The order is the total order of `f32::total_cmp` (as burn's sort): `NaN` above `+∞`, `−0`
//! below `+0`, ties in index order (a stable sort). The sum runs in index order, not rank
//! order, so the result agrees with the composed version to rounding, not bit for bit.

use rayon::prelude::*;

use super::kernels::{Isa, PARALLEL_MIN, isa, multiversion};
use super::lanes::{Fused, MulAdd, Separate};

/// Columns per block: one AVX-512 register of `f32`.
const W: usize = 16;
/// Longest set whose ranks are counted (`len²` comparisons per block); longer sets are sorted.
pub(super) const COUNT_MAX: usize = 64;

/// The shape of a sorted pooling: `x` is `[batch, max_len, dim]`, `θ` is `[batch, max_len]`.
#[derive(Clone, Copy, Debug)]
pub(super) struct PoolShape {
    pub batch: usize,
    pub max_len: usize,
    pub dim: usize,
}

/// `f32` bits as an `i32` whose integer order is `f32::total_cmp`'s order.
#[inline(always)]
fn key(v: f32) -> i32 {
    let bits = v.to_bits() as i32;
    bits ^ (((bits >> 31) as u32) >> 1) as i32
}

/// One block of up to [`W`] columns of one set: the values `vals[j]`, their keys, their ranks.
struct Block {
    vals: Vec<[f32; W]>,
    keys: Vec<[i32; W]>,
    ranks: Vec<[u32; W]>,
    order: Vec<u32>,
}

impl Block {
    fn new(max_len: usize) -> Block {
        Block {
            vals: vec![[0.0; W]; max_len],
            keys: vec![[0; W]; max_len],
            ranks: vec![[0; W]; max_len],
            order: Vec::with_capacity(max_len),
        }
    }

    /// Loads columns `c0..c0 + cols` of the first `len` rows of `x` (`[max_len, dim]`), the
    /// missing columns as zeros.
    #[inline(always)]
    fn load(&mut self, x: &[f32], dim: usize, len: usize, c0: usize, cols: usize) {
        for j in 0..len {
            let row = &x[j * dim + c0..j * dim + c0 + cols];
            let vals = &mut self.vals[j];
            *vals = [0.0; W];
            vals[..cols].copy_from_slice(row);
            let keys = &mut self.keys[j];
            for l in 0..W {
                keys[l] = key(vals[l]);
            }
        }
    }

    /// `ranks[j][l]`: the position of `vals[j][l]` in its column sorted in descending order.
    #[inline(always)]
    fn rank(&mut self, len: usize) {
        if len <= COUNT_MAX {
            count_ranks(&self.keys[..len], &mut self.ranks[..len]);
        } else {
            for l in 0..W {
                self.order.clear();
                self.order.extend(0..len as u32);
                let keys = &self.keys;
                self.order
                    .sort_by(|&a, &b| keys[b as usize][l].cmp(&keys[a as usize][l]));
                for (position, &j) in self.order.iter().enumerate() {
                    self.ranks[j as usize][l] = position as u32;
                }
            }
        }
    }
}

/// `ranks[j][l] = #{i < j: keys[i][l] ≥ keys[j][l]} + #{i > j: keys[i][l] > keys[j][l]}`:
/// earlier equal values come first (a stable order). Written with intrinsics because the
/// compiler, given the plain loops, vectorises over `i` with gathers instead of over the lanes.
fn count_ranks(keys: &[[i32; W]], ranks: &mut [[u32; W]]) {
    #[cfg(target_arch = "x86_64")]
    match isa() {
        // SAFETY: `isa` reports only instruction sets this CPU runs.
        Isa::Avx512 => return unsafe { count_ranks_avx512(keys, ranks) },
        // SAFETY: as above.
        Isa::Avx2 => return unsafe { count_ranks_avx2(keys, ranks) },
        Isa::Baseline => {}
    }
    for (j, kj) in keys.iter().enumerate() {
        let mut r = [0u32; W];
        for ki in &keys[..j] {
            for l in 0..W {
                r[l] += (ki[l] >= kj[l]) as u32;
            }
        }
        for ki in &keys[j + 1..] {
            for l in 0..W {
                r[l] += (ki[l] > kj[l]) as u32;
            }
        }
        ranks[j] = r;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn count_ranks_avx512(keys: &[[i32; W]], ranks: &mut [[u32; W]]) {
    use std::arch::x86_64::*;
    let load = |k: &[i32; W]| {
        // SAFETY: `k` holds 16 `i32`, one unaligned 512-bit load.
        unsafe { _mm512_loadu_si512(k.as_ptr().cast()) }
    };
    let one = _mm512_set1_epi32(1);
    for (j, kj) in keys.iter().enumerate() {
        let kj = load(kj);
        let mut r = _mm512_setzero_si512();
        for ki in &keys[..j] {
            r = _mm512_mask_add_epi32(r, _mm512_cmpge_epi32_mask(load(ki), kj), r, one);
        }
        for ki in &keys[j + 1..] {
            r = _mm512_mask_add_epi32(r, _mm512_cmpgt_epi32_mask(load(ki), kj), r, one);
        }
        // SAFETY: `ranks[j]` holds 16 `u32`, one unaligned 512-bit store.
        unsafe { _mm512_storeu_si512(ranks[j].as_mut_ptr().cast(), r) };
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn count_ranks_avx2(keys: &[[i32; W]], ranks: &mut [[u32; W]]) {
    use std::arch::x86_64::*;
    let load = |k: &[i32; W], half: usize| {
        // SAFETY: `k[8·half..]` holds 8 `i32`, one unaligned 256-bit load.
        unsafe { _mm256_loadu_si256(k.as_ptr().add(8 * half).cast()) }
    };
    let one = _mm256_set1_epi32(1);
    for (j, kj) in keys.iter().enumerate() {
        for half in 0..2 {
            let kj = load(kj, half);
            let mut r = _mm256_setzero_si256();
            // `ki ≥ kj` adds 1 + (−1 where kj > ki); `ki > kj` adds −(−1 where ki > kj).
            for ki in &keys[..j] {
                let lower = _mm256_cmpgt_epi32(kj, load(ki, half));
                r = _mm256_add_epi32(r, _mm256_add_epi32(one, lower));
            }
            for ki in &keys[j + 1..] {
                r = _mm256_sub_epi32(r, _mm256_cmpgt_epi32(load(ki, half), kj));
            }
            // SAFETY: `ranks[j][8·half..]` holds 8 `u32`, one unaligned 256-bit store.
            unsafe { _mm256_storeu_si256(ranks[j].as_mut_ptr().add(8 * half).cast(), r) };
        }
    }
}

#[inline(always)]
fn forward_set_body<M: MulAdd>(
    x: &[f32],
    weights: &[f32],
    len: usize,
    dim: usize,
    block: &mut Block,
    out: &mut [f32],
) {
    for c0 in (0..dim).step_by(W) {
        let cols = W.min(dim - c0);
        block.load(x, dim, len, c0, cols);
        block.rank(len);
        let mut acc = [0.0f32; W];
        for (vals, ranks) in block.vals[..len].iter().zip(&block.ranks[..len]) {
            for l in 0..W {
                acc[l] = M::mul_add(weights[ranks[l] as usize], vals[l], acc[l]);
            }
        }
        out[c0..c0 + cols].copy_from_slice(&acc[..cols]);
    }
}

/// `inputs`: the set's `x`, `θ` and the gradient of its output.
#[inline(always)]
fn backward_set_body<M: MulAdd>(
    inputs: (&[f32], &[f32], &[f32]),
    len: usize,
    dim: usize,
    block: &mut Block,
    dx: &mut [f32],
    dw: &mut [f32],
) {
    let (x, weights, grad) = inputs;
    for c0 in (0..dim).step_by(W) {
        let cols = W.min(dim - c0);
        block.load(x, dim, len, c0, cols);
        block.rank(len);
        let mut g = [0.0f32; W];
        g[..cols].copy_from_slice(&grad[c0..c0 + cols]);
        for j in 0..len {
            let (vals, ranks) = (&block.vals[j], &block.ranks[j]);
            let mut row = [0.0f32; W];
            for l in 0..W {
                row[l] = weights[ranks[l] as usize] * g[l];
            }
            dx[j * dim + c0..j * dim + c0 + cols].copy_from_slice(&row[..cols]);
            for l in 0..cols {
                dw[ranks[l] as usize] = M::mul_add(vals[l], g[l], dw[ranks[l] as usize]);
            }
        }
    }
}

multiversion! { fn forward_set<>(x: &[f32], weights: &[f32], len: usize, dim: usize, block: &mut Block, out: &mut [f32]) = forward_set_body; }
multiversion! { fn backward_set<>(inputs: (&[f32], &[f32], &[f32]), len: usize, dim: usize, block: &mut Block, dx: &mut [f32], dw: &mut [f32]) = backward_set_body; }

/// Whether the sets run in parallel.
fn parallel(shape: PoolShape) -> bool {
    shape.batch > 1 && shape.batch * shape.max_len * shape.dim >= PARALLEL_MIN
}

/// `out[b, c] = Σ_{k < len_b} θ[b, k] · x̃[b, k, c]`; `out` is `[batch, dim]`.
pub(super) fn forward(
    shape: PoolShape,
    x: &[f32],
    weights: &[f32],
    lengths: &[usize],
    out: &mut [f32],
) {
    let PoolShape {
        batch,
        max_len,
        dim,
    } = shape;
    assert!(
        x.len() == batch * max_len * dim
            && weights.len() == batch * max_len
            && lengths.len() == batch
            && out.len() == batch * dim
            && lengths.iter().all(|&len| len <= max_len),
        "sorted_pool: sizes disagree with {shape:?}"
    );
    if dim == 0 || max_len == 0 {
        out.fill(0.0);
        return;
    }
    type Item<'a> = (((&'a [f32], &'a [f32]), &'a usize), &'a mut [f32]);
    let set = |block: &mut Block, (((x, w), &len), out): Item<'_>| {
        forward_set(x, w, len, dim, block, out)
    };
    if parallel(shape) {
        x.par_chunks(max_len * dim)
            .zip(weights.par_chunks(max_len))
            .zip(lengths.par_iter())
            .zip(out.par_chunks_mut(dim))
            .for_each_init(|| Block::new(max_len), set);
    } else {
        let mut block = Block::new(max_len);
        x.chunks(max_len * dim)
            .zip(weights.chunks(max_len))
            .zip(lengths)
            .zip(out.chunks_mut(dim))
            .for_each(|item| set(&mut block, item));
    }
}

/// The gradients `(∂x [batch, max_len, dim], ∂θ [batch, max_len])` from the gradient of the
/// output `grad` (`[batch, dim]`); zero at padding positions.
pub(super) fn backward(
    shape: PoolShape,
    x: &[f32],
    weights: &[f32],
    grad: &[f32],
    lengths: &[usize],
) -> (Vec<f32>, Vec<f32>) {
    let PoolShape {
        batch,
        max_len,
        dim,
    } = shape;
    assert!(
        x.len() == batch * max_len * dim
            && weights.len() == batch * max_len
            && grad.len() == batch * dim
            && lengths.len() == batch
            && lengths.iter().all(|&len| len <= max_len),
        "sorted_pool: sizes disagree with {shape:?}"
    );
    let mut dx = vec![0.0f32; x.len()];
    let mut dw = vec![0.0f32; weights.len()];
    if dim == 0 || max_len == 0 {
        return (dx, dw);
    }
    type Item<'a> = (
        (
            (((&'a [f32], &'a [f32]), &'a [f32]), &'a usize),
            &'a mut [f32],
        ),
        &'a mut [f32],
    );
    let set = |block: &mut Block, (((((x, w), g), &len), dx), dw): Item<'_>| {
        backward_set((x, w, g), len, dim, block, dx, dw)
    };
    if parallel(shape) {
        x.par_chunks(max_len * dim)
            .zip(weights.par_chunks(max_len))
            .zip(grad.par_chunks(dim))
            .zip(lengths.par_iter())
            .zip(dx.par_chunks_mut(max_len * dim))
            .zip(dw.par_chunks_mut(max_len))
            .for_each_init(|| Block::new(max_len), set);
    } else {
        let mut block = Block::new(max_len);
        x.chunks(max_len * dim)
            .zip(weights.chunks(max_len))
            .zip(grad.chunks(dim))
            .zip(lengths)
            .zip(dx.chunks_mut(max_len * dim))
            .zip(dw.chunks_mut(max_len))
            .for_each(|item| set(&mut block, item));
    }
    (dx, dw)
}

#[cfg(test)]
mod tests {
    use super::super::kernels::FORCED_ISA;
    use super::*;

    /// Every instruction set this CPU runs.
    fn instruction_sets() -> Vec<Isa> {
        match Isa::detected() {
            Isa::Avx512 => vec![Isa::Baseline, Isa::Avx2, Isa::Avx512],
            Isa::Avx2 => vec![Isa::Baseline, Isa::Avx2],
            Isa::Baseline => vec![Isa::Baseline],
        }
    }

    /// The definition in `f64`: each column's valid values sorted by `total_cmp`, descending,
    /// ties in index order; returns `(out, ∂x, ∂θ)`.
    fn reference(
        shape: PoolShape,
        x: &[f32],
        w: &[f32],
        g: &[f32],
        lengths: &[usize],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let PoolShape {
            batch,
            max_len,
            dim,
        } = shape;
        let mut out = vec![0.0; batch * dim];
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w.len()];
        for b in 0..batch {
            for c in 0..dim {
                let mut order: Vec<usize> = (0..lengths[b]).collect();
                let at = |j: usize| x[(b * max_len + j) * dim + c];
                order.sort_by(|&i, &j| at(j).total_cmp(&at(i)));
                let gc = g[b * dim + c] as f64;
                for (k, &j) in order.iter().enumerate() {
                    let wk = w[b * max_len + k] as f64;
                    out[b * dim + c] += wk * at(j) as f64;
                    dx[(b * max_len + j) * dim + c] = wk * gc;
                    dw[b * max_len + k] += at(j) as f64 * gc;
                }
            }
        }
        (out, dx, dw)
    }

    fn values(n: usize, seed: u64, levels: Option<f32>) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (state >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0;
                match levels {
                    Some(step) => (u / step).round() * step,
                    None => u,
                }
            })
            .collect()
    }

    fn same(a: f32, b: f64, scale: f64) -> bool {
        (a.is_nan() && b.is_nan()) || a as f64 == b || (a as f64 - b).abs() <= 2e-6 * scale.max(1.0)
    }

    /// Counted ranks (short sets) and sorted ranks (sets longer than `COUNT_MAX`), with and
    /// without ties, on every instruction set, against the definition in `f64`.
    #[test]
    fn kernel_matches_the_definition_on_every_path() {
        let cases = [
            (
                PoolShape {
                    batch: 3,
                    max_len: 5,
                    dim: 37,
                },
                vec![5, 1, 3],
            ),
            (
                PoolShape {
                    batch: 2,
                    max_len: COUNT_MAX + 6,
                    dim: 20,
                },
                vec![COUNT_MAX + 6, COUNT_MAX + 2],
            ),
        ];
        for isa in instruction_sets() {
            FORCED_ISA.with(|cell| cell.set(Some(isa)));
            for (shape, lengths) in &cases {
                for levels in [None, Some(0.5)] {
                    let n = shape.batch * shape.max_len * shape.dim;
                    assert!(n < PARALLEL_MIN, "one thread, so that the ISA applies");
                    let mut x = values(n, 1, levels);
                    // Signed zeros, infinities and a NaN among the valid values.
                    x[0] = -0.0;
                    x[shape.dim] = 0.0;
                    x[1] = f32::INFINITY;
                    x[2 * shape.dim + 1] = f32::NEG_INFINITY;
                    x[3] = f32::NAN;
                    let w = values(shape.batch * shape.max_len, 2, None);
                    let g = values(shape.batch * shape.dim, 3, None);
                    let (out_ref, dx_ref, dw_ref) = reference(*shape, &x, &w, &g, lengths);
                    let mut out = vec![0.0; shape.batch * shape.dim];
                    forward(*shape, &x, &w, lengths, &mut out);
                    let (dx, dw) = backward(*shape, &x, &w, &g, lengths);
                    let what = format!("{isa:?} {shape:?} levels {levels:?}");
                    let scale = shape.max_len as f64 * 4.0;
                    for (i, (&a, &b)) in out.iter().zip(&out_ref).enumerate() {
                        assert!(same(a, b, scale), "{what}: out[{i}] {a} vs {b}");
                    }
                    for (i, (&a, &b)) in dx.iter().zip(&dx_ref).enumerate() {
                        assert!(same(a, b, 1.0), "{what}: dx[{i}] {a} vs {b}");
                    }
                    for (i, (&a, &b)) in dw.iter().zip(&dw_ref).enumerate() {
                        assert!(
                            same(a, b, shape.dim as f64 * 4.0),
                            "{what}: dw[{i}] {a} vs {b}"
                        );
                    }
                }
            }
            FORCED_ISA.with(|cell| cell.set(None));
        }
    }

    /// Padding positions get no gradient and are never read: garbage there changes nothing.
    #[test]
    fn padding_is_not_read() {
        let shape = PoolShape {
            batch: 2,
            max_len: 4,
            dim: 3,
        };
        let lengths = [2, 4];
        let x = values(24, 5, None);
        let w = values(8, 6, None);
        let g = values(6, 7, None);
        let mut noisy_x = x.clone();
        let mut noisy_w = w.clone();
        for c in 0..3 {
            noisy_x[2 * 3 + c] = f32::NAN;
            noisy_x[3 * 3 + c] = 1e30;
        }
        noisy_w[2] = f32::NAN;
        noisy_w[3] = f32::INFINITY;
        let (mut a, mut b) = (vec![0.0; 6], vec![0.0; 6]);
        forward(shape, &x, &w, &lengths, &mut a);
        forward(shape, &noisy_x, &noisy_w, &lengths, &mut b);
        assert_eq!(a, b);
        let (dx, dw) = backward(shape, &noisy_x, &noisy_w, &g, &lengths);
        assert!(dx[6..12].iter().all(|&v| v == 0.0), "{dx:?}");
        assert!(dw[2..4].iter().all(|&v| v == 0.0), "{dw:?}");
        assert!(dx.iter().chain(&dw).all(|v| v.is_finite()));
    }
}
