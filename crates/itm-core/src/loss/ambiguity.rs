//! Ambiguity-aware weighting of negatives (AAHR; METHODS §5).
//!
//! **What the paper says.** AAHR observes that some negatives in a batch are ambiguous — likely
//! false negatives, such as another caption of a near-identical image — and lowers their
//! influence on the triplet loss. It publishes no code; METHODS states this as **our design**:
//! a negative whose intra-modal similarity to the positive is high is down-weighted by
//! `w = 1 − softmax-normalised ambiguity`.
//!
//! **Our interpretation, exactly.** With `cos` the cosine similarity of the (detached,
//! l2-normalised) embeddings, `τ` a temperature (0.1) and `N(i)` the negatives of row `i`
//! (`j ≠ i`, or different image ids when given):
//!
//! - image `i` against a negative caption `j`: ambiguity `a_ij = cos(c_j, c_i)` (how much `c_j`
//!   resembles the positive caption), `p_ij = softmax_{j ∈ N(i)}(a_ij / τ)`, weight
//!   `w_ij = 1 − p_ij`;
//! - caption `j` against a negative image `i`: ambiguity `b_ij = cos(v_i, v_j)`,
//!   `q_ij = softmax_{i ∈ N(j)}(b_ij / τ)`, weight `u_ij = 1 − q_ij`;
//! - weighted VSE++ costs `w_ij·[α + S_ij − S_ii]_+` and `u_ij·[α + S_ij − S_jj]_+` (α = 0.2),
//!   reduced to the largest **weighted** cost per row and per column (hardest negatives, the
//!   default: a down-weighted false negative can lose its place as the hardest one) or summed
//!   over all negatives, then summed over the batch.
//!
//! The weights carry no gradient. Positives get weight 0 (they are no negatives). Because the
//! softmax spreads a unit mass over the `B − 1` negatives, ordinary negatives keep a weight close
//! to 1 and only a negative that clearly stands out in similarity is down-weighted noticeably.

use burn::config::Config;
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Tensor};

use super::hinge::{NegativeMining, diagonal, positive_mask};
use crate::masking::{MASKED_LOGIT, l2_normalize};

/// Configuration of an [`AmbiguityAwareLoss`].
#[derive(Config, Debug)]
pub struct AmbiguityAwareConfig {
    /// The margin `α`.
    #[config(default = 0.2)]
    pub margin: f64,
    /// Temperature `τ` of the softmax over the ambiguities.
    #[config(default = 0.1)]
    pub temperature: f64,
    /// Which weighted negatives contribute.
    #[config(default = "NegativeMining::Hardest")]
    pub mining: NegativeMining,
}

/// The ambiguity-weighted hinge loss of the module documentation.
#[derive(Debug, Clone)]
pub struct AmbiguityAwareLoss {
    /// The margin `α`.
    pub margin: f64,
    /// Temperature `τ`.
    pub temperature: f64,
    /// Which weighted negatives contribute.
    pub mining: NegativeMining,
}

/// A batch's loss with the weights it used.
#[derive(Debug, Clone)]
pub struct AmbiguityOutput {
    /// The loss, a scalar `[1]`.
    pub loss: Tensor<1>,
    /// `[B, B]`: `w_ij`, the weight of caption `j` as a negative of image `i` (0 at positives).
    pub caption_weights: Tensor<2>,
    /// `[B, B]`: `u_ij`, the weight of image `i` as a negative of caption `j` (0 at positives).
    pub image_weights: Tensor<2>,
}

impl AmbiguityAwareConfig {
    /// Builds the loss.
    ///
    /// # Panics
    ///
    /// If the temperature is not positive.
    pub fn init(&self) -> AmbiguityAwareLoss {
        assert!(
            self.temperature > 0.0,
            "ambiguity-aware loss: the temperature must be positive, got {}",
            self.temperature
        );
        AmbiguityAwareLoss {
            margin: self.margin,
            temperature: self.temperature,
            mining: self.mining,
        }
    }
}

impl AmbiguityAwareLoss {
    /// - `scores`: `[B, B]`, `scores[i][j]` = image `i` against caption `j`
    /// - `images`, `captions`: the embeddings `[B, D]` the scores come from (or any per-sample
    ///   features of each modality); only their cosine similarities are used, detached
    /// - `image_ids`: when given (`[B]`), pairs from the same image are no negatives
    ///
    /// # Panics
    ///
    /// If the shapes disagree or `image_ids` has the wrong length.
    pub fn forward(
        &self,
        scores: Tensor<2>,
        images: Tensor<2>,
        captions: Tensor<2>,
        image_ids: Option<&[u64]>,
    ) -> AmbiguityOutput {
        let [rows, cols] = scores.dims();
        assert_eq!(
            rows, cols,
            "ambiguity-aware loss needs a square [B, B] similarity matrix"
        );
        let [image_rows, _] = images.dims();
        let [caption_rows, _] = captions.dims();
        assert!(
            image_rows == rows && caption_rows == rows,
            "ambiguity-aware loss: {rows}×{rows} scores, {image_rows} images, {caption_rows} \
             captions"
        );
        let device = scores.device();
        let excluded = positive_mask(rows, image_ids, &device);
        let caption_weights = self.weights(captions, excluded.clone(), 1);
        let image_weights = self.weights(images, excluded.clone(), 0);

        let positives = diagonal(scores.clone());
        let row_positive = positives.clone().unsqueeze_dim::<2>(1); // S_ii per row
        let col_positive = positives.unsqueeze_dim::<2>(0); // S_jj per column
        let cost_caption = (scores.clone() - row_positive)
            .add_scalar(self.margin)
            .clamp_min(0.0)
            * caption_weights.clone();
        let cost_image = (scores - col_positive)
            .add_scalar(self.margin)
            .clamp_min(0.0)
            * image_weights.clone();
        let loss = match self.mining {
            NegativeMining::All => cost_caption.sum() + cost_image.sum(),
            NegativeMining::Hardest => cost_caption.max_dim(1).sum() + cost_image.max_dim(0).sum(),
        };
        AmbiguityOutput {
            loss,
            caption_weights,
            image_weights,
        }
    }

    /// `1 − softmax(cos / τ)` over the negatives along `dim` (1: across a row, 0: down a
    /// column), 0 at `excluded` positions; detached. `features`: `[B, D]`.
    fn weights(&self, features: Tensor<2>, excluded: Tensor<2, Bool>, dim: usize) -> Tensor<2> {
        let unit = l2_normalize(features.detach());
        let ambiguity = unit.clone().matmul(unit.transpose()); // symmetric [B, B]
        let normalised = softmax(
            ambiguity
                .div_scalar(self.temperature)
                .mask_fill(excluded.clone(), MASKED_LOGIT),
            dim,
        );
        normalised.neg().add_scalar(1.0).mask_fill(excluded, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn host(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn weights_and_loss_by_hand() {
        let device = Device::default();
        let loss = AmbiguityAwareConfig::new().with_temperature(1.0).init();
        // Captions 0 and 1 are identical, caption 2 is orthogonal to both: cos(c_0, c_1) = 1,
        // cos(c_0, c_2) = cos(c_1, c_2) = 0.
        let captions = Tensor::<2>::from_floats([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]], &device);
        // Images: 0 and 2 identical, 1 orthogonal.
        let images = Tensor::<2>::from_floats([[0.0, 1.0], [1.0, 0.0], [0.0, 3.0]], &device);
        let scores =
            Tensor::<2>::from_floats([[0.9, 0.8, 0.1], [0.3, 0.5, 0.6], [0.2, 0.0, 0.7]], &device);
        let out = loss.forward(scores, images, captions, None);
        // Row 0 (negatives c_1, c_2 with ambiguities 1, 0): p = (e, 1)/(e + 1) → w = 1 − p.
        // Row 1 (c_0: 1, c_2: 0): the same. Row 2 (c_0: 0, c_1: 0): p = ½ each.
        let e = std::f32::consts::E;
        let (hi, lo) = (1.0 - e / (e + 1.0), 1.0 - 1.0 / (e + 1.0));
        let expected_captions = [0.0, hi, lo, hi, 0.0, lo, 0.5, 0.5, 0.0];
        // Column 0 (negatives v_1: cos(v_1, v_0) = 0, v_2: 1): u = (lo, hi); column 1 (v_0: 0,
        // v_2: 0): ½ each; column 2 (v_0: 1, v_1: 0): u = (hi, lo).
        let expected_images = [0.0, 0.5, hi, lo, 0.0, lo, hi, 0.5, 0.0];
        let caption_weights = host(out.caption_weights);
        let image_weights = host(out.image_weights);
        for (got, want) in [
            (&caption_weights, &expected_captions),
            (&image_weights, &expected_images),
        ] {
            assert!(
                got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
                "{got:?}"
            );
        }
        // Costs (α = 0.2): c_s row 0: (0.1, 0) → 0.1·hi; row 1: (0, 0.3) → 0.3·lo; row 2: 0.
        // c_im column 1: S_01 − S_11 + 0.2 = 0.5 → 0.5·½ (v_0), S_21: 0 → max 0.25;
        // column 2: S_12: 0.6 − 0.7 + 0.2 = 0.1 → 0.1·lo; column 0: nothing.
        let want = 0.1 * hi + 0.3 * lo + 0.25 + 0.1 * lo;
        let value = out.loss.into_scalar::<f32>();
        assert!((value - want).abs() < 1e-6, "{value} vs {want}");
    }

    #[test]
    fn hardest_negative_follows_the_weights() {
        let device = Device::default();
        // Image 0 has two violating captions; caption 1 is a near copy of caption 0 (likely a
        // false negative) and scores higher, caption 2 is unrelated and scores a bit lower.
        let captions = Tensor::<2>::from_floats(
            [[1.0, 0.0, 0.0], [0.99, 0.14, 0.0], [0.0, 0.0, 1.0]],
            &device,
        );
        let images =
            Tensor::<2>::from_floats([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], &device);
        let scores = Tensor::<2>::from_floats(
            [[0.5, 0.6, 0.55], [-1.0, 0.9, -1.0], [-1.0, -1.0, 0.9]],
            &device,
        );
        let weighted = AmbiguityAwareConfig::new()
            .with_temperature(0.05)
            .init()
            .forward(scores, images, captions, None);
        let w = host(weighted.caption_weights);
        // cos(c_1, c_0) ≈ 0.99 against 0: p ≈ 1 − e^{−19.8}, w_01 ≈ 0, w_02 ≈ 1.
        assert!(w[1] < 1e-6 && (w[2] - 1.0).abs() < 1e-6, "{w:?}");
        // Row 0's hardest weighted cost is caption 2's 0.25 (caption 1's 0.3 is weighted away);
        // every other row and column is satisfied.
        let value = weighted.loss.into_scalar::<f32>();
        assert!((value - 0.25).abs() < 1e-5, "{value}");
    }
}
