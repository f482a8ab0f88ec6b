//! Hinge triplet loss with an adaptive margin (DAIM margin optimisation; METHODS §5).
//!
//! **What the paper says.** DAIM adapts the triplet margin to how well the positive and negative
//! score distributions are separated during training; it publishes no code, and METHODS states
//! this as **our design**: running (EMA) means and standard deviations of the positive scores
//! and of the hardest-negative scores set the margin, so that overlapping distributions get a
//! larger margin and well-separated ones a smaller one. (NAAF's boundary, the intersection of two
//! fitted Gaussians, is the published relative of the idea.)
//!
//! **Our interpretation, exactly.** At each step, from the *detached* scores (no gradient flows
//! through the margin):
//!
//! 1. batch statistics: the mean and population standard deviation of the `B` positive scores
//!    `S_ii`, and of the hardest-negative scores — `max_j S_ij` for every image row and
//!    `max_i S_ij` for every caption column (`2B` values; positives, or same-image pairs when
//!    image ids are given, excluded; rows without any negative are skipped). The scores are
//!    copied to the host for this (`B²` values, one synchronisation per step);
//! 2. running statistics `μ⁺, σ⁺, μ⁻, σ⁻`: the first step copies the batch statistics, later
//!    steps take `r ← m·r + (1 − m)·batch` with momentum `m = 0.9` (the standard deviations are
//!    averaged as such, not as variances);
//! 3. separation `g = (μ⁺ − μ⁻) − (σ⁺ + σ⁻)` and margin
//!    `α_t = clamp(α_max − κ·g, α_min, α_max)` (κ = 0.5, α ∈ [0.05, 0.4]): overlapping
//!    distributions (`g ≤ 0`) get `α_max`, and the margin shrinks linearly as they separate,
//!    reaching `α_min` at `g = (α_max − α_min)/κ = 0.7`;
//! 4. the VSE++ hinge loss ([`HingeLoss`]) with margin `α_t`, summed over the batch.
//!
//! The running statistics are plain data ([`MarginStatistics`], serde-serialisable): a checkpoint
//! stores them beside the model record and restores them with
//! [`AdaptiveMarginLoss::with_statistics`]. They are not part of any module record.

use burn::config::Config;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::hinge::{HingeLoss, NegativeMining};

/// Configuration of an [`AdaptiveMarginLoss`].
#[derive(Config, Debug)]
pub struct AdaptiveMarginConfig {
    /// Momentum `m` of the running statistics.
    #[config(default = 0.9)]
    pub momentum: f64,
    /// Slope `κ` of the margin in the separation `g`.
    #[config(default = 0.5)]
    pub kappa: f64,
    /// Smallest margin `α_min`.
    #[config(default = 0.05)]
    pub min_margin: f64,
    /// Largest margin `α_max` (also the margin before any statistics exist).
    #[config(default = 0.4)]
    pub max_margin: f64,
    /// Negatives of the hinge loss after the warm-up epochs.
    #[config(default = "NegativeMining::Hardest")]
    pub mining: NegativeMining,
    /// Initial epochs whose hinge loss uses every negative.
    #[config(default = 0)]
    pub warmup_epochs: usize,
}

/// Running statistics of the positive and hardest-negative scores; serialise them with the
/// checkpoint to resume training with the same margin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MarginStatistics {
    /// Steps folded in so far (0: no statistics yet).
    pub steps: u64,
    /// Running mean `μ⁺` of the positive scores.
    pub positive_mean: f64,
    /// Running standard deviation `σ⁺` of the positive scores.
    pub positive_std: f64,
    /// Running mean `μ⁻` of the hardest-negative scores.
    pub negative_mean: f64,
    /// Running standard deviation `σ⁻` of the hardest-negative scores.
    pub negative_std: f64,
}

impl MarginStatistics {
    /// The separation `g = (μ⁺ − μ⁻) − (σ⁺ + σ⁻)`.
    pub fn separation(&self) -> f64 {
        (self.positive_mean - self.negative_mean) - (self.positive_std + self.negative_std)
    }
}

/// A batch's loss and the margin it used.
#[derive(Debug, Clone)]
pub struct AdaptiveMarginOutput {
    /// The hinge loss, a scalar `[1]`.
    pub loss: Tensor<1>,
    /// The margin `α_t` in force for this batch.
    pub margin: f64,
}

/// The VSE++ hinge loss whose margin follows the running score statistics (see the module
/// documentation for the exact rule).
#[derive(Debug, Clone)]
pub struct AdaptiveMarginLoss {
    config: AdaptiveMarginConfig,
    statistics: MarginStatistics,
}

impl AdaptiveMarginConfig {
    /// Builds the loss with empty statistics.
    ///
    /// # Panics
    ///
    /// If the momentum is outside `[0, 1)` or `min_margin > max_margin`.
    pub fn init(&self) -> AdaptiveMarginLoss {
        assert!(
            (0.0..1.0).contains(&self.momentum),
            "adaptive margin: momentum must lie in [0, 1), got {}",
            self.momentum
        );
        assert!(
            self.min_margin <= self.max_margin,
            "adaptive margin: min_margin {} exceeds max_margin {}",
            self.min_margin,
            self.max_margin
        );
        AdaptiveMarginLoss {
            config: self.clone(),
            statistics: MarginStatistics::default(),
        }
    }
}

impl AdaptiveMarginLoss {
    /// Resumes from saved statistics (e.g. read back from a checkpoint).
    pub fn with_statistics(mut self, statistics: MarginStatistics) -> Self {
        self.statistics = statistics;
        self
    }

    /// The running statistics, to log or to save with a checkpoint.
    pub fn statistics(&self) -> MarginStatistics {
        self.statistics
    }

    /// The margin of the current statistics: the one the latest step used, `α_max` before any.
    pub fn margin(&self) -> f64 {
        if self.statistics.steps == 0 {
            return self.config.max_margin;
        }
        (self.config.max_margin - self.config.kappa * self.statistics.separation())
            .clamp(self.config.min_margin, self.config.max_margin)
    }

    /// Folds the batch into the running statistics, then computes the hinge loss with the
    /// updated margin.
    ///
    /// - `scores`: `[B, B]`, `scores[i][j]` = image `i` against caption `j`
    /// - `image_ids`: when given (`[B]`), pairs from the same image are no negatives (in the
    ///   statistics and in the loss)
    /// - `epoch`: selects the negatives of the hinge loss (every negative during the warm-up)
    ///
    /// # Panics
    ///
    /// If `scores` is not square or `image_ids` has the wrong length.
    pub fn forward(
        &mut self,
        scores: Tensor<2>,
        image_ids: Option<&[u64]>,
        epoch: usize,
    ) -> AdaptiveMarginOutput {
        let [rows, cols] = scores.dims();
        assert_eq!(
            rows, cols,
            "adaptive margin loss needs a square [B, B] similarity matrix"
        );
        if let Some(ids) = image_ids {
            assert_eq!(ids.len(), rows, "one image id per batch row");
        }
        let host = scores
            .clone()
            .detach()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 scores");
        self.update(&host, rows, image_ids);
        let margin = self.margin();
        let hinge = HingeLoss {
            margin,
            mining: self.config.mining,
            warmup_epochs: self.config.warmup_epochs,
        };
        AdaptiveMarginOutput {
            loss: hinge.forward(scores, image_ids, epoch),
            margin,
        }
    }

    /// Step 1 and 2 of the module documentation on the host copy of the scores.
    fn update(&mut self, scores: &[f32], size: usize, image_ids: Option<&[u64]>) {
        let negative = |i: usize, j: usize| match image_ids {
            Some(ids) => ids[i] != ids[j],
            None => i != j,
        };
        let at = |i: usize, j: usize| scores[i * size + j] as f64;
        let positives: Vec<f64> = (0..size).map(|i| at(i, i)).collect();
        let hardest = |values: &mut dyn Iterator<Item = f64>| values.reduce(f64::max);
        let negatives: Vec<f64> = (0..size)
            .filter_map(|i| hardest(&mut (0..size).filter(|&j| negative(i, j)).map(|j| at(i, j))))
            .chain((0..size).filter_map(|j| {
                hardest(&mut (0..size).filter(|&i| negative(i, j)).map(|i| at(i, j)))
            }))
            .collect();
        let first = self.statistics.steps == 0;
        let momentum = self.config.momentum;
        let blend = |old: &mut f64, new: f64| {
            *old = if first {
                new
            } else {
                momentum * *old + (1.0 - momentum) * new
            }
        };
        let stats = &mut self.statistics;
        if let Some((mean, std)) = mean_std(&positives) {
            blend(&mut stats.positive_mean, mean);
            blend(&mut stats.positive_std, std);
        }
        // A batch without negatives (a single image) keeps the previous negative statistics; as
        // the very first batch, it copies the positive ones (read as complete overlap).
        match mean_std(&negatives) {
            Some((mean, std)) => {
                blend(&mut stats.negative_mean, mean);
                blend(&mut stats.negative_std, std);
            }
            None if first => {
                stats.negative_mean = stats.positive_mean;
                stats.negative_std = stats.positive_std;
            }
            None => {}
        }
        stats.steps += 1;
    }
}

/// Mean and population standard deviation, `None` for no values.
fn mean_std(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    Some((mean, variance.sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// A `[B, B]` matrix with `positive` on the diagonal and `negative ± spread` elsewhere.
    fn batch(size: usize, positive: f32, negative: f32, spread: f32, device: &Device) -> Tensor<2> {
        let values: Vec<f32> = (0..size * size)
            .map(|k| {
                let (i, j) = (k / size, k % size);
                if i == j {
                    positive + spread * if i % 2 == 0 { 1.0 } else { -1.0 }
                } else {
                    negative + spread * ((i + 2 * j) % 3) as f32 / 2.0
                }
            })
            .collect();
        Tensor::from_data(TensorData::new(values, [size, size]), device)
    }

    #[test]
    fn statistics_and_margin_by_hand() {
        let device = Device::default();
        let mut loss = AdaptiveMarginConfig::new().init();
        assert_eq!(loss.margin(), 0.4);
        let scores =
            Tensor::<2>::from_floats([[0.9, 0.8, 0.1], [0.3, 0.5, 0.6], [0.2, 0.0, 0.7]], &device);
        let out = loss.forward(scores.clone(), None, 0);
        // Positives 0.9, 0.5, 0.7: mean 0.7, std √(0.08/3). Hardest negatives: rows 0.8, 0.6,
        // 0.2; columns 0.3, 0.8, 0.6: mean 0.55, std √(0.315/6).
        let stats = loss.statistics();
        let negatives = [0.8, 0.6, 0.2, 0.3, 0.8, 0.6];
        let mean = negatives.iter().sum::<f64>() / 6.0;
        let std = (negatives.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 6.0).sqrt();
        assert!((stats.positive_mean - 0.7).abs() < 1e-6);
        assert!((stats.positive_std - (0.08f64 / 3.0).sqrt()).abs() < 1e-6);
        assert!((stats.negative_mean - mean).abs() < 1e-6);
        assert!((stats.negative_std - std).abs() < 1e-6);
        // g = 0.7 − 0.55 − (0.1633 + 0.2291) < 0: overlapping, the margin is α_max.
        assert!(stats.separation() < 0.0);
        assert_eq!(out.margin, 0.4);
        // Hinge with α = 0.4, hardest negatives:
        // row 0: 0.4+0.8−0.9 = 0.3; row 1: 0.4+0.6−0.5 = 0.5; row 2: 0.4+0.2−0.7 = −0.1 → 0;
        // column 0: 0.4+0.3−0.9 → 0; column 1: 0.4+0.8−0.5 = 0.7; column 2: 0.4+0.6−0.7 = 0.3.
        let value = out.loss.into_scalar::<f32>();
        assert!((value - 1.8).abs() < 1e-5, "{value}");
        // A second identical batch leaves the statistics unchanged (EMA of equal values).
        loss.forward(scores, None, 0);
        assert!((loss.statistics().positive_mean - 0.7).abs() < 1e-6);
        assert_eq!(loss.statistics().steps, 2);
    }

    #[test]
    fn margin_grows_with_overlap_and_shrinks_with_separation() {
        let device = Device::default();
        let mut loss = AdaptiveMarginConfig::new().init();
        // Well separated: positives ≈ 0.8, negatives ≈ 0.1, small spread → g ≈ 0.6.
        let mut separated = Vec::new();
        for _ in 0..5 {
            separated.push(
                loss.forward(batch(6, 0.8, 0.1, 0.02, &device), None, 0)
                    .margin,
            );
        }
        let settled = *separated.last().unwrap();
        assert!(settled < 0.15, "{separated:?}");
        // The distributions then overlap: positives ≈ 0.5, negatives ≈ 0.45, wide spread.
        let mut overlapping = Vec::new();
        for _ in 0..30 {
            overlapping.push(
                loss.forward(batch(6, 0.5, 0.45, 0.2, &device), None, 0)
                    .margin,
            );
        }
        assert!(
            overlapping.windows(2).all(|w| w[1] >= w[0]),
            "the margin grows step by step: {overlapping:?}"
        );
        assert!(
            overlapping[0] > settled && *overlapping.last().unwrap() == 0.4,
            "{overlapping:?}"
        );
        // And separating again shrinks it step by step.
        let mut again = Vec::new();
        for _ in 0..30 {
            again.push(
                loss.forward(batch(6, 0.9, 0.0, 0.01, &device), None, 0)
                    .margin,
            );
        }
        assert!(again.windows(2).all(|w| w[1] <= w[0]), "{again:?}");
        assert_eq!(*again.last().unwrap(), 0.05, "{again:?}");
    }

    #[test]
    fn statistics_round_trip_through_serde() {
        let device = Device::default();
        let mut loss = AdaptiveMarginConfig::new().init();
        loss.forward(batch(4, 0.7, 0.2, 0.05, &device), None, 0);
        let saved = serde_json::to_string(&loss.statistics()).unwrap();
        let restored = AdaptiveMarginConfig::new()
            .init()
            .with_statistics(serde_json::from_str(&saved).unwrap());
        assert_eq!(restored.statistics(), loss.statistics());
        assert_eq!(restored.margin(), loss.margin());
    }

    #[test]
    fn no_gradient_reaches_the_scores_through_the_margin() {
        let device = Device::default().autodiff();
        let mut loss = AdaptiveMarginConfig::new().with_warmup_epochs(1).init();
        // With every negative (warm-up), each violated pair contributes ±1 to the gradient;
        // a margin that depended on the scores would add to it.
        let scores = Tensor::<2>::from_floats([[0.5, 0.55], [0.4, 0.6]], &device).require_grad();
        let out = loss.forward(scores.clone(), None, 0);
        let grad = scores
            .grad(&out.loss.backward())
            .unwrap()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        // g = (0.55 − 0.475) − (0.05 + 0.075) < 0, so α = 0.4: c_s(0,1) = 0.45, c_s(1,0) = 0.2,
        // c_im(1,0) = 0.3, c_im(0,1) = 0.35, all violated: dS_00 = −2, dS_11 = −2, off-diagonal +2 each.
        assert_eq!(out.margin, 0.4);
        assert_eq!(grad, vec![-2.0, 2.0, 2.0, -2.0]);
    }
}
