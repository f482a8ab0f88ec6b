//! The contract of a fine-grained head ([`FineGrainedSimilarity`]), checked against a
//! pair-by-pair PyTorch reference: [`fine_grained_conformance!`](crate::fine_grained_conformance)
//! writes the three tests of one head.
//!
//! - parity: the scores `[n_img, n_cap]` equal the reference's;
//! - gradients: the gradients of `sum(S ⊙ probe)` with respect to the regions and the words
//!   equal the reference's;
//! - shape: the scores are `[n_img, n_cap]` and finite, each image and each caption scored
//!   alone gives its row and column of the full matrix, and values in the padding (past each
//!   image's region count and each caption's length) change nothing.

pub use burn::tensor::Device;
use burn::tensor::{Gradients, Tensor, TensorData, s};
use itm_core::masking::fill_padding;
pub use itm_core::similarity::FineGrainedSimilarity;
use serde_json::Value;

use crate::close::Within;
use crate::fixtures::{floats, sizes};
use crate::layout::values;

/// One reference case of a fine-grained head: the padded inputs, a probe, and the expected
/// scores and input gradients.
#[derive(Debug, Clone)]
pub struct FineGrainedCase {
    /// `[n_img, K, D]` region features, row-major.
    pub regions: Vec<f32>,
    /// `[n_img, K, D]`.
    pub regions_shape: [usize; 3],
    /// Valid regions per image.
    pub counts: Vec<usize>,
    /// `[n_cap, L, D]` word features, row-major.
    pub words: Vec<f32>,
    /// `[n_cap, L, D]`.
    pub words_shape: [usize; 3],
    /// Valid words per caption.
    pub lengths: Vec<usize>,
    /// `[n_img, n_cap]`: the weights of `sum(S ⊙ probe)`, whose gradients are compared.
    pub probe: Vec<f32>,
    /// The reference scores `[n_img, n_cap]`.
    pub scores: Vec<f32>,
    /// The reference gradient with respect to the regions.
    pub regions_grad: Vec<f32>,
    /// The reference gradient with respect to the words.
    pub words_grad: Vec<f32>,
}

impl FineGrainedCase {
    /// A case from the fixture's JSON: `inputs` holds `n_img`, `regions_per_image`, `n_cap`,
    /// `words_per_caption`, `dim`, `regions`, `region_counts`, `words`, `word_lengths` and
    /// `probe`; the three others are the expected arrays.
    pub fn from_json(
        inputs: &Value,
        scores: &Value,
        regions_grad: &Value,
        words_grad: &Value,
    ) -> Self {
        let dim = |key: &str| inputs[key].as_u64().expect("a size") as usize;
        let d = dim("dim");
        Self {
            regions: floats(&inputs["regions"]),
            regions_shape: [dim("n_img"), dim("regions_per_image"), d],
            counts: sizes(&inputs["region_counts"]),
            words: floats(&inputs["words"]),
            words_shape: [dim("n_cap"), dim("words_per_caption"), d],
            lengths: sizes(&inputs["word_lengths"]),
            probe: floats(&inputs["probe"]),
            scores: floats(scores),
            regions_grad: floats(regions_grad),
            words_grad: floats(words_grad),
        }
    }

    /// The regions on `device`.
    pub fn regions(&self, device: &Device) -> Tensor<3> {
        Tensor::from_data(
            TensorData::new(self.regions.clone(), self.regions_shape),
            device,
        )
    }

    /// The words on `device`.
    pub fn words(&self, device: &Device) -> Tensor<3> {
        Tensor::from_data(
            TensorData::new(self.words.clone(), self.words_shape),
            device,
        )
    }

    /// The probe on `device`.
    pub fn probe(&self, device: &Device) -> Tensor<2> {
        let shape = [self.regions_shape[0], self.words_shape[0]];
        Tensor::from_data(TensorData::new(self.probe.clone(), shape), device)
    }
}

/// Asserts that `head` scores the case as the reference does.
pub fn assert_scores(
    head: &impl FineGrainedSimilarity,
    case: &FineGrainedCase,
    device: &Device,
    within: Within,
    name: &str,
) {
    let scores = head.similarity(
        case.regions(device),
        &case.counts,
        case.words(device),
        &case.lengths,
    );
    within.assert(&values(scores), &case.scores, &format!("{name}: scores"));
}

/// Asserts the scores and the gradients with respect to the inputs on `device` (an autodiff
/// device); returns the gradients, for a head's own parameters.
pub fn assert_input_gradients(
    head: &impl FineGrainedSimilarity,
    case: &FineGrainedCase,
    device: &Device,
    within: Within,
    name: &str,
) -> Gradients {
    let regions = case.regions(device).require_grad();
    let words = case.words(device).require_grad();
    let scores = head.similarity(regions.clone(), &case.counts, words.clone(), &case.lengths);
    within.assert(
        &values(scores.clone()),
        &case.scores,
        &format!("{name}: scores"),
    );
    let grads = (scores * case.probe(device)).sum().backward();
    let regions_grad = regions.grad(&grads).expect("regions gradient");
    within.assert(
        &values(regions_grad),
        &case.regions_grad,
        &format!("{name}: d/d regions"),
    );
    let words_grad = words.grad(&grads).expect("words gradient");
    within.assert(
        &values(words_grad),
        &case.words_grad,
        &format!("{name}: d/d words"),
    );
    grads
}

/// Asserts the shape contract: `[n_img, n_cap]` finite scores; each image and each caption
/// scored alone gives its row and column; padding values change nothing.
pub fn assert_shape_contract(
    head: &impl FineGrainedSimilarity,
    case: &FineGrainedCase,
    device: &Device,
    within: Within,
    name: &str,
) {
    let [n_img, k, _] = case.regions_shape;
    let [n_cap, l, _] = case.words_shape;
    assert!(
        case.counts.iter().any(|&c| c < k) && case.lengths.iter().any(|&c| c < l),
        "{name}: the case has no padding to check"
    );
    let score = |regions: Tensor<3>, counts: &[usize], words: Tensor<3>, lengths: &[usize]| {
        head.similarity(regions, counts, words, lengths)
    };
    let full = score(
        case.regions(device),
        &case.counts,
        case.words(device),
        &case.lengths,
    );
    assert_eq!(full.dims(), [n_img, n_cap], "{name}: score shape");
    let full_values = values(full.clone());
    assert!(
        full_values.iter().all(|v| v.is_finite()),
        "{name}: non-finite scores {full_values:?}"
    );
    for i in 0..n_img {
        let alone = score(
            case.regions(device).slice(s![i..i + 1]),
            &case.counts[i..i + 1],
            case.words(device),
            &case.lengths,
        );
        assert_eq!(alone.dims(), [1, n_cap], "{name}: one image's shape");
        let row = values(full.clone().slice(s![i..i + 1]));
        within.assert(&values(alone), &row, &format!("{name}: image {i} alone"));
    }
    for j in 0..n_cap {
        let alone = score(
            case.regions(device),
            &case.counts,
            case.words(device).slice(s![j..j + 1]),
            &case.lengths[j..j + 1],
        );
        assert_eq!(alone.dims(), [n_img, 1], "{name}: one caption's shape");
        let column = values(full.clone().slice(s![.., j..j + 1]));
        within.assert(
            &values(alone),
            &column,
            &format!("{name}: caption {j} alone"),
        );
    }
    let padded = score(
        fill_padding(case.regions(device), &case.counts, 3.0),
        &case.counts,
        fill_padding(case.words(device), &case.lengths, -2.0),
        &case.lengths,
    );
    within.assert(
        &values(padded),
        &full_values,
        &format!("{name}: other padding values"),
    );
}

/// Writes the conformance tests of one fine-grained head, in a module named after it:
/// `scores_match_the_reference`, `input_gradients_match_the_reference` and
/// `shape_contract_holds` (see [`crate::fine_grained`]).
///
/// ```text
/// fine_grained_conformance!(scan_t2i_lse {
///     case: case("scan_t2i_lse"),                 // a FineGrainedCase
///     head: |device| scan(TextToImage, LogSumExp), // built on the test's device
///     within: Within::Absolute(1e-5),
/// });
/// ```
#[macro_export]
macro_rules! fine_grained_conformance {
    ($name:ident { case: $case:expr, head: |$device:ident| $head:expr, within: $within:expr $(,)? }) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn conformance_case() -> $crate::fine_grained::FineGrainedCase {
                $case
            }

            #[allow(unused_variables)]
            fn conformance_head(
                $device: &$crate::fine_grained::Device,
            ) -> impl $crate::fine_grained::FineGrainedSimilarity {
                $head
            }

            #[test]
            fn scores_match_the_reference() {
                let device = $crate::fine_grained::Device::flex();
                $crate::fine_grained::assert_scores(
                    &conformance_head(&device),
                    &conformance_case(),
                    &device,
                    $within,
                    stringify!($name),
                );
            }

            #[test]
            fn input_gradients_match_the_reference() {
                let device = $crate::fine_grained::Device::flex().autodiff();
                $crate::fine_grained::assert_input_gradients(
                    &conformance_head(&device),
                    &conformance_case(),
                    &device,
                    $within,
                    stringify!($name),
                );
            }

            #[test]
            fn shape_contract_holds() {
                let device = $crate::fine_grained::Device::flex();
                $crate::fine_grained::assert_shape_contract(
                    &conformance_head(&device),
                    &conformance_case(),
                    &device,
                    $within,
                    stringify!($name),
                );
            }
        }
    };
}
