//! One lane of each kernel: `f32 → f32` functions written without branches (selects only), so
//! that the loops of [`super::kernels`] vectorise them (our design).
//!
//! - `exp`: Cody–Waite range reduction `x = k·ln 2 + r`, `|r| ≤ ½ ln 2`, with `ln 2` split in
//!   a 9-bit head (so that `k·ln2_hi` is exact) and a tail; `e^r` by its Taylor polynomial of
//!   degree 7 (truncation below 5.2e-9 relative, 0.04 ulp); `2^k` built in the
//!   exponent bits, in two factors so that results from the subnormal range up to overflow
//!   come out right. Inputs are clamped to `[−104, 89]`: below, `e^x` rounds to 0; above, the
//!   product overflows to `+∞`, as it should. NaN stays NaN.
//! - `sigmoid`: `1 / (1 + e^{−x})`: no cancellation, `0` and `1` (not NaN) at `∓∞`.
//! - `tanh`: `x + x³·P(x²)` for `|x| < 0.625` (fitted by us, 1.6e-8 relative in f64), `±(1 − 2/(e^{2|x|} + 1))` above, where the subtraction loses nothing.
//! - `gelu`: `x·Φ(x)` with `Φ(x) = 1 − ½erfc(|x|/√2)` for `x ≥ 0` and `½erfc(|x|/√2)` below,
//!   and `erfc(z) = t·Q(t)·e^{−z²}`, `t = 1/(1 + z/2)`, `Q` of degree 10 fitted by us in f64
//!   (relative error 1.1e-8 on `[0, ∞)`). Both fits: `scripts/fit_kernel_polynomials.py`. Negative inputs keep
//!   their relative accuracy (no `1 + erf` cancellation).
//!
//! Every function is generic over [`MulAdd`]: fused on the AVX2/AVX-512 paths, a separate
//! multiplication and addition on the baseline path (where `f32::mul_add` would be a libm call).

/// `a·b + c`, fused or not.
pub(super) trait MulAdd {
    /// `a·b + c`.
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// A fused multiply-add (an FMA instruction where the target has one).
pub(super) struct Fused;

/// A multiplication, then an addition.
pub(super) struct Separate;

impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

impl MulAdd for Separate {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// Head of `ln 2`: 9 significant bits, so `k·LN2_HI` is exact for `|k| < 2^15`.
const LN2_HI: f32 = 0.693_359_4;
/// `ln 2 − LN2_HI`.
const LN2_LO: f32 = -2.121_944_4e-4;
/// `1.5·2^23`: adding it rounds an `f32` of magnitude below `2^22` to an integer, which then
/// sits in the low mantissa bits.
const ROUND: f32 = 12_582_912.0;
/// Below this, `e^x` is under half the smallest subnormal.
const EXP_MIN: f32 = -104.0;
/// Above this, `e^x` overflows.
const EXP_MAX: f32 = 89.0;

/// `2^k` for `k ∈ [−126, 127]`, from its exponent bits.
#[inline(always)]
fn pow2(k: i32) -> f32 {
    // Wrapping (never wraps in this range): the dev profile's overflow check would be a branch
    // per lane, and the loops around it would not vectorise (the kernels ran scalar there).
    f32::from_bits((k.wrapping_add(127) as u32) << 23)
}

/// `e^x`.
#[inline(always)]
pub(super) fn exp<M: MulAdd>(x: f32) -> f32 {
    // Selects, not `f32::min/max`: NaN fails both comparisons and stays NaN.
    let x = if x > EXP_MAX { EXP_MAX } else { x };
    let x = if x < EXP_MIN { EXP_MIN } else { x };
    let shifted = M::mul_add(x, core::f32::consts::LOG2_E, ROUND);
    let k = shifted - ROUND;
    let r = M::mul_add(k, -LN2_HI, x);
    let r = M::mul_add(k, -LN2_LO, r);
    // e^r = 1 + (r + r²·q(r)): the two last additions round once each, at the end.
    let mut q = 1.0 / 5040.0;
    q = M::mul_add(q, r, 1.0 / 720.0);
    q = M::mul_add(q, r, 1.0 / 120.0);
    q = M::mul_add(q, r, 1.0 / 24.0);
    q = M::mul_add(q, r, 1.0 / 6.0);
    q = M::mul_add(q, r, 0.5);
    let p = 1.0 + M::mul_add(q, r * r, r);
    // k ∈ [−150, 129]: two factors 2^(k/2) keep every exponent in range.
    let k = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let half = k >> 1;
    p * pow2(half) * pow2(k.wrapping_sub(half))
}

/// `σ(x) = 1 / (1 + e^{−x})`.
#[inline(always)]
pub(super) fn sigmoid<M: MulAdd>(x: f32) -> f32 {
    1.0 / (1.0 + exp::<M>(-x))
}

/// Below this `|x|`, tanh is a polynomial.
const TANH_POLY_MAX: f32 = 0.625;
/// `tanh(x) = x + x³·P(x²)` on `|x| < 0.625`, `P`'s coefficients from degree 0 up.
const TANH_POLY: [f32; 5] = [
    -0.333_333_28,
    0.133_327_36,
    -0.053_846_624,
    0.020_980_16,
    -0.006_075_793,
];

/// `tanh(x)`.
#[inline(always)]
pub(super) fn tanh<M: MulAdd>(x: f32) -> f32 {
    let a = x.abs();
    let u = x * x;
    let mut p = TANH_POLY[4];
    p = M::mul_add(p, u, TANH_POLY[3]);
    p = M::mul_add(p, u, TANH_POLY[2]);
    p = M::mul_add(p, u, TANH_POLY[1]);
    p = M::mul_add(p, u, TANH_POLY[0]);
    let small = M::mul_add(p * u, x, x);
    let large = (1.0 - 2.0 / (exp::<M>(2.0 * a) + 1.0)).copysign(x);
    if a < TANH_POLY_MAX { small } else { large }
}

/// `erfc(z)·e^{z²}/t = Q(t)`, `t = 1/(1 + z/2)`, coefficients from degree 0 up.
const ERFC_POLY: [f32; 11] = [
    0.282_094_8,
    0.282_093_88,
    0.246_879_37,
    0.175_392_87,
    0.092_896_34,
    -0.056_849_748,
    0.126_244_77,
    -0.445_835_74,
    0.485_255_06,
    -0.230_447_46,
    0.042_275_842,
];

/// `(Φ(x), e^{−x²/2})`: the standard normal CDF and the unnormalised density.
#[inline(always)]
fn normal_cdf<M: MulAdd>(x: f32) -> (f32, f32) {
    let z = x.abs() * core::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / M::mul_add(0.5, z, 1.0);
    let mut q = ERFC_POLY[10];
    for &c in ERFC_POLY[..10].iter().rev() {
        q = M::mul_add(q, t, c);
    }
    let density = exp::<M>(-(z * z));
    let half_erfc = 0.5 * (t * q) * density;
    let cdf = if x < 0.0 { half_erfc } else { 1.0 - half_erfc };
    (cdf, density)
}

/// `GELU(x) = x·Φ(x)` (the exact, erf-based GELU).
#[inline(always)]
pub(super) fn gelu<M: MulAdd>(x: f32) -> f32 {
    x * normal_cdf::<M>(x).0
}

/// `1/√(2π)`.
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// `GELU'(x) = Φ(x) + x·φ(x)`, `φ(x) = e^{−x²/2}/√(2π)`.
#[inline(always)]
pub(super) fn gelu_derivative<M: MulAdd>(x: f32) -> f32 {
    let (cdf, density) = normal_cdf::<M>(x);
    M::mul_add(x * FRAC_1_SQRT_2PI, density, cdf)
}
