//! Distinguishability regulariser (DAIM feature discriminability; METHODS §5).
//!
//! **What the paper says.** DAIM makes the embeddings of different samples more distinguishable
//! within each modality while keeping matched pairs aligned; it publishes no code, and METHODS
//! states this as **our design**.
//!
//! **Our interpretation, exactly.** With `cos` the cosine similarity of the (internally
//! l2-normalised) embeddings,
//!
//! `L = λ · ( Σ_{i≠j} [cos(v_i, v_j) − δ]_+² + Σ_{i≠j} [cos(c_i, c_j) − δ]_+²
//!          + Σ_i [cos(v_i, c_i) − (1 − ε)]_+² )`
//!
//! with δ = 0.5, ε = 0.05, λ = 0.1. The sums over `i ≠ j` run over **ordered** pairs (each
//! unordered pair counts twice). When image ids are given, pairs of rows from the same image are
//! not "different samples" and are left out of both intra-modal sums. The last term only acts
//! when a positive pair is closer than `1 − ε`: it keeps positives from collapsing onto one
//! point. The weight λ is applied here (the config's `weight`), so the caller adds the returned
//! value to the triplet loss as it is.

use burn::config::Config;
use burn::tensor::Tensor;

use super::hinge::{diagonal, positive_mask};
use crate::masking::l2_normalize;

/// Configuration of a [`DistinguishabilityLoss`].
#[derive(Config, Debug)]
pub struct DistinguishabilityConfig {
    /// Cosine `δ` above which two different samples of one modality are penalised.
    #[config(default = 0.5)]
    pub delta: f64,
    /// Positives are penalised above a cosine of `1 − ε`.
    #[config(default = 0.05)]
    pub epsilon: f64,
    /// Weight `λ` against the triplet loss, applied in [`DistinguishabilityLoss::forward`].
    #[config(default = 0.1)]
    pub weight: f64,
}

/// The weighted distinguishability loss of the module documentation.
#[derive(Debug, Clone)]
pub struct DistinguishabilityLoss {
    /// Intra-modal cosine threshold `δ`.
    pub delta: f64,
    /// Positive-pair slack `ε`.
    pub epsilon: f64,
    /// Weight `λ`.
    pub weight: f64,
}

impl DistinguishabilityConfig {
    /// Builds the loss.
    pub fn init(&self) -> DistinguishabilityLoss {
        DistinguishabilityLoss {
            delta: self.delta,
            epsilon: self.epsilon,
            weight: self.weight,
        }
    }
}

impl DistinguishabilityLoss {
    /// - `images`, `captions`: embeddings `[B, D]`, caption `i` the positive of image `i`
    ///   (normalised or not: they are l2-normalised here)
    /// - `image_ids`: when given (`[B]`), rows from the same image are not penalised against
    ///   each other
    /// - returns the weighted loss, a scalar `[1]`
    ///
    /// # Panics
    ///
    /// If the shapes differ or `image_ids` has the wrong length.
    pub fn forward(
        &self,
        images: Tensor<2>,
        captions: Tensor<2>,
        image_ids: Option<&[u64]>,
    ) -> Tensor<1> {
        let [batch, dim] = images.dims();
        assert_eq!(
            captions.dims(),
            [batch, dim],
            "distinguishability loss: images and captions must have the same shape"
        );
        let device = images.device();
        let images = l2_normalize(images);
        let captions = l2_normalize(captions);
        let same = positive_mask(batch, image_ids, &device);
        let intra = |x: Tensor<2>| {
            x.clone()
                .matmul(x.transpose())
                .sub_scalar(self.delta)
                .clamp_min(0.0)
                .mask_fill(same.clone(), 0.0)
                .square()
                .sum()
        };
        let positives = (images.clone() * captions.clone())
            .sum_dim(1)
            .squeeze_dim::<1>(1)
            .sub_scalar(1.0 - self.epsilon)
            .clamp_min(0.0)
            .square()
            .sum();
        (intra(images) + intra(captions) + positives).mul_scalar(self.weight)
    }

    /// The mean cosine similarity over ordered pairs `i ≠ j` of one modality `[B, D]`, `B ≥ 2`:
    /// what the loss pushes down (for logging).
    pub fn mean_intra_cosine(embeddings: Tensor<2>) -> f64 {
        let [batch, _] = embeddings.dims();
        assert!(batch >= 2, "the mean intra-modal cosine needs two samples");
        let unit = l2_normalize(embeddings);
        let cosines = unit.clone().matmul(unit.transpose());
        let total = cosines.clone().sum() - diagonal(cosines).sum();
        total.into_scalar::<f32>() as f64 / (batch * (batch - 1)) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{Module, Param};
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::tensor::{Device, Distribution};

    #[test]
    fn closed_form() {
        let device = Device::default();
        let loss = DistinguishabilityConfig::new().init();
        // Images (1, 0) and (3, 4)/5·2: cosine 0.6 → [0.6 − 0.5]² = 0.01, twice (ordered pairs).
        // Captions (2, 0) and (0, 1): cosine 0. Positive pairs: cos(v_0, c_0) = 1 →
        // [1 − 0.95]² = 0.0025; cos(v_1, c_1) = 0.8 → 0. Total 0.0225, weighted 0.00225.
        let images = Tensor::<2>::from_floats([[1.0, 0.0], [1.2, 1.6]], &device);
        let captions = Tensor::<2>::from_floats([[2.0, 0.0], [0.0, 1.0]], &device);
        let value = loss
            .forward(images.clone(), captions.clone(), None)
            .into_scalar::<f32>();
        assert!((value - 0.00225).abs() < 1e-7, "{value}");
        // Both rows from one image: only the positive term remains.
        let value = loss
            .forward(images, captions, Some(&[7, 7]))
            .into_scalar::<f32>();
        assert!((value - 0.00025).abs() < 1e-7, "{value}");
    }

    #[derive(Module, Debug)]
    struct FreeEmbeddings {
        images: Param<Tensor<2>>,
        captions: Param<Tensor<2>>,
    }

    #[test]
    fn optimising_it_alone_spreads_each_modality() {
        let device = Device::default().autodiff();
        device.seed(11);
        // Eight samples clustered around one direction: mean intra-modal cosine ≈ 0.8.
        let around = |device: &Device| {
            Tensor::<2>::random([8, 16], Distribution::Normal(0.0, 0.5), device).add_scalar(1.0)
        };
        let mut model = FreeEmbeddings {
            images: Param::from_tensor(around(&device)),
            captions: Param::from_tensor(around(&device)),
        };
        let loss = DistinguishabilityConfig::new().init();
        let before = (
            DistinguishabilityLoss::mean_intra_cosine(model.images.val()),
            DistinguishabilityLoss::mean_intra_cosine(model.captions.val()),
        );
        let first = loss
            .forward(model.images.val(), model.captions.val(), None)
            .into_scalar::<f32>();
        let mut optimizer = AdamConfig::new().init();
        for _ in 0..100 {
            let value = loss.forward(model.images.val(), model.captions.val(), None);
            let grads = GradientsParams::from_grads(value.backward(), &model);
            model = optimizer.step(0.05, model, grads);
        }
        let after = (
            DistinguishabilityLoss::mean_intra_cosine(model.images.val()),
            DistinguishabilityLoss::mean_intra_cosine(model.captions.val()),
        );
        let last = loss
            .forward(model.images.val(), model.captions.val(), None)
            .into_scalar::<f32>();
        assert!(before.0 > 0.6 && before.1 > 0.6, "{before:?}");
        assert!(
            after.0 < before.0 - 0.3 && after.1 < before.1 - 0.3,
            "{before:?} → {after:?}"
        );
        assert!(last < 0.1 * first, "loss {first} → {last}");
    }
}
