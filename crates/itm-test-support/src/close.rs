//! Element-wise closeness through burn's [`Tolerance`].
//!
//! [`Tolerance::approx_eq`] decides each element (`|a − e| < max(A, R · max(|a|, |e|))`, equal
//! values always pass); [`assert_close`] adds what the reference tests need around it: the
//! lengths must agree, a NaN or infinite result fails (burn's comparison would let two NaNs
//! pass), the largest difference is printed (`cargo test -- --nocapture` shows it), and a
//! failure names the quantity.

use burn::tensor::Tolerance;

/// A tolerance stated once per test and applied to each compared quantity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Within {
    /// `|actual − expected| < t`, absolute.
    Absolute(f32),
    /// `|actual − expected| < t · max(1, max |expected|)`: absolute for quantities of order one
    /// or less, relative to the largest reference value for larger ones.
    ScaledAbsolute(f32),
}

impl Within {
    /// The burn tolerance for a quantity whose reference values are `expected`.
    pub fn tolerance(self, expected: &[f32]) -> Tolerance<f32> {
        match self {
            Self::Absolute(t) => Tolerance::absolute(t),
            Self::ScaledAbsolute(t) => {
                let scale = expected.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                Tolerance::absolute(t * scale)
            }
        }
    }

    /// Asserts that `actual` is close to `expected` (see [`assert_close`]); returns the largest
    /// absolute difference.
    pub fn assert(self, actual: &[f32], expected: &[f32], what: &str) -> f32 {
        assert_close(actual, expected, self.tolerance(expected), what)
    }
}

/// Largest absolute element-wise difference (the lengths must agree).
pub fn max_abs_difference(actual: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(actual.len(), expected.len(), "lengths differ");
    actual
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max)
}

/// Asserts that every element of `actual` is finite and close to `expected` under
/// `tolerance`; prints and returns the largest absolute difference.
#[track_caller]
pub fn assert_close(
    actual: &[f32],
    expected: &[f32],
    tolerance: Tolerance<f32>,
    what: &str,
) -> f32 {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    if let Some(i) = actual.iter().position(|v| !v.is_finite()) {
        panic!(
            "{what}: a value is NaN or infinite (position {i}: {})",
            actual[i]
        );
    }
    let worst = max_abs_difference(actual, expected);
    eprintln!("{what}: max abs difference {worst:.3e}");
    let far: Vec<String> = actual
        .iter()
        .zip(expected)
        .enumerate()
        .filter(|(_, (a, e))| !tolerance.approx_eq(**a, **e))
        .map(|(i, (a, e))| format!("position {i}: {a} vs {e}"))
        .collect();
    assert!(
        far.is_empty(),
        "{what}: {} value(s) outside {tolerance:?}, max abs difference {worst}: {}",
        far.len(),
        far.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
    );
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_within_the_tolerance_pass_and_the_worst_is_returned() {
        let worst = assert_close(
            &[1.0, 2.0],
            &[1.0, 2.000_001],
            Tolerance::absolute(1e-5),
            "x",
        );
        assert!(worst > 0.0 && worst < 1e-5);
        // Equal values pass a zero tolerance.
        assert_close(&[0.5], &[0.5], Tolerance::absolute(0.0), "exact");
    }

    #[test]
    #[should_panic(expected = "far: 1 value(s) outside")]
    fn a_value_outside_fails() {
        assert_close(&[1.0, 2.1], &[1.0, 2.0], Tolerance::absolute(1e-5), "far");
    }

    #[test]
    #[should_panic(expected = "NaN or infinite")]
    fn nan_fails_even_against_nan() {
        assert_close(&[f32::NAN], &[f32::NAN], Tolerance::absolute(1.0), "nan");
    }

    #[test]
    fn scaled_tolerances_grow_with_large_references() {
        let within = Within::ScaledAbsolute(1e-5);
        within.assert(&[12.000_05], &[12.0], "large");
        let small = std::panic::catch_unwind(|| within.assert(&[0.5 + 5e-5], &[0.5], "small"));
        assert!(
            small.is_err(),
            "order-one values keep the absolute tolerance"
        );
    }
}
