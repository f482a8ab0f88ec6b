//! Hinge-based triplet ranking loss (VSE++, Faghri et al. BMVC 2018; METHODS §5).

use burn::config::Config;
use burn::tensor::{Bool, Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// Which negatives contribute to the hinge loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NegativeMining {
    /// Sum over every negative in the batch (VSE0).
    All,
    /// Only the hardest negative of each positive pair (VSE++ "max violation").
    Hardest,
}

/// Configuration of a [`HingeLoss`].
#[derive(Config, Debug)]
pub struct HingeLossConfig {
    /// The margin `α`.
    #[config(default = 0.2)]
    pub margin: f64,
    /// Negatives used after the warm-up epochs.
    #[config(default = "NegativeMining::Hardest")]
    pub mining: NegativeMining,
    /// Number of initial epochs that use every negative (VSE∞ uses 1).
    #[config(default = 1)]
    pub warmup_epochs: usize,
}

/// `c_s(i,j) = [α + S_ij − S_ii]_+`, `c_im(i,j) = [α + S_ij − S_jj]_+`, positives excluded,
/// summed over negatives or reduced to the hardest negative, then **summed** over the batch.
#[derive(Debug, Clone)]
pub struct HingeLoss {
    /// The margin `α`.
    pub margin: f64,
    /// Negatives used after the warm-up.
    pub mining: NegativeMining,
    /// Epochs with every negative before `mining` takes over.
    pub warmup_epochs: usize,
}

impl HingeLossConfig {
    /// Builds the loss.
    pub fn init(&self) -> HingeLoss {
        HingeLoss {
            margin: self.margin,
            mining: self.mining,
            warmup_epochs: self.warmup_epochs,
        }
    }
}

impl HingeLoss {
    /// The negatives used in `epoch` (0-based): every negative during the warm-up epochs.
    pub fn mining_at(&self, epoch: usize) -> NegativeMining {
        if epoch < self.warmup_epochs {
            NegativeMining::All
        } else {
            self.mining
        }
    }

    /// Loss of a batch in `epoch`.
    ///
    /// - `scores`: `[B, B]`, `scores[i][j]` = image `i` against caption `j`
    /// - `image_ids`: when given (`[B]`), caption `j` is no negative for image `i` whenever both
    ///   come from the same image (several captions of one image in a batch); otherwise only the
    ///   diagonal is excluded
    /// - returns a scalar `[1]`
    pub fn forward(&self, scores: Tensor<2>, image_ids: Option<&[u64]>, epoch: usize) -> Tensor<1> {
        let [rows, cols] = scores.dims();
        assert_eq!(
            rows, cols,
            "hinge loss needs a square [B, B] similarity matrix"
        );
        let device = scores.device();
        let positives = diagonal(scores.clone());
        let row_positive = positives.clone().unsqueeze_dim::<2>(1); // S_ii per row
        let col_positive = positives.unsqueeze_dim::<2>(0); // S_jj per column
        let excluded = positive_mask(rows, image_ids, &device);
        let cost_caption = (scores.clone() - row_positive)
            .add_scalar(self.margin)
            .clamp_min(0.0)
            .mask_fill(excluded.clone(), 0.0);
        let cost_image = (scores - col_positive)
            .add_scalar(self.margin)
            .clamp_min(0.0)
            .mask_fill(excluded, 0.0);
        match self.mining_at(epoch) {
            NegativeMining::All => cost_caption.sum() + cost_image.sum(),
            NegativeMining::Hardest => cost_caption.max_dim(1).sum() + cost_image.max_dim(0).sum(),
        }
    }
}

/// The diagonal `[B]` of a square `[B, B]` matrix.
pub(super) fn diagonal(matrix: Tensor<2>) -> Tensor<1> {
    let [n, _] = matrix.dims();
    let eye = Tensor::<2>::eye(n, &matrix.device());
    (matrix * eye).sum_dim(1).squeeze_dim::<1>(1)
}

/// `[B, B]` mask, `true` where caption `j` is a positive of image `i`.
pub(super) fn positive_mask(
    size: usize,
    image_ids: Option<&[u64]>,
    device: &Device,
) -> Tensor<2, Bool> {
    let flags: Vec<bool> = match image_ids {
        Some(ids) => {
            assert_eq!(ids.len(), size, "one image id per batch row");
            ids.iter()
                .flat_map(|a| ids.iter().map(move |b| a == b))
                .collect()
        }
        None => (0..size)
            .flat_map(|i| (0..size).map(move |j| i == j))
            .collect(),
    };
    Tensor::from_data(TensorData::new(flags, [size, size]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_scalar::<f32>()
    }

    fn matrix(device: &Device) -> Tensor<2> {
        Tensor::from_floats([[0.9, 0.8, 0.1], [0.3, 0.5, 0.6], [0.2, 0.0, 0.7]], device)
    }

    #[test]
    fn sum_of_violations_by_hand() {
        let device = Device::default();
        let loss = HingeLossConfig::new()
            .with_mining(NegativeMining::All)
            .init();
        // Caption costs per row (α + S_ij − S_ii): row 0: 0.1, 0; row 1: 0, 0.3; row 2: 0, 0.
        // Image costs per column (α + S_ij − S_jj): col 0: 0, 0; col 1: 0.5, 0; col 2: 0, 0.1.
        let value = scalar(loss.forward(matrix(&device), None, 5));
        assert!((value - 1.0).abs() < 1e-6, "{value}");
    }

    #[test]
    fn hardest_negative_by_hand() {
        let device = Device::default();
        let loss = HingeLossConfig::new().with_warmup_epochs(0).init();
        // Hardest per row: 0.1, 0.3, 0; per column: 0, 0.5, 0.1.
        let value = scalar(loss.forward(matrix(&device), None, 0));
        assert!((value - 1.0).abs() < 1e-6, "{value}");
        let mut ids = [1u64, 1, 2];
        let masked = scalar(loss.forward(matrix(&device), Some(&ids), 0));
        // Images 0 and 1 share their captions: row 0 loses 0.1 (c01), row 1 keeps c12 = 0.3,
        // column 1 loses c01 = 0.5 and has no other violation; column 2 keeps 0.1.
        assert!((masked - 0.4).abs() < 1e-6, "{masked}");
        ids = [1, 2, 3];
        let unmasked = scalar(loss.forward(matrix(&device), Some(&ids), 0));
        assert!((unmasked - value).abs() < 1e-6);
    }

    #[test]
    fn warmup_uses_all_negatives() {
        let loss = HingeLossConfig::new().init();
        assert_eq!(loss.mining_at(0), NegativeMining::All);
        assert_eq!(loss.mining_at(1), NegativeMining::Hardest);
    }
}
