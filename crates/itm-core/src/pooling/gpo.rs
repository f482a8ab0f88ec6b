//! Generalized pooling operator (VSE∞, Chen et al. CVPR 2021; METHODS §2).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::encoders::{MaskedBiGru, MaskedBiGruConfig};
use crate::masking::{check_lengths, l2_normalize, padding_mask};
use crate::ops::{softmax, sorted_pool};

/// Configuration of a [`Gpo`].
#[derive(Config, Debug)]
pub struct GpoConfig {
    /// Width of the sinusoidal positional codes `d_pe`.
    #[config(default = 32)]
    pub d_pe: usize,
    /// Hidden width of the weight-generating BiGRU.
    #[config(default = 32)]
    pub d_hidden: usize,
    /// Softmax temperature of the pooling weights.
    #[config(default = 0.1)]
    pub temperature: f64,
}

/// Learns one weight per *rank* `k` of a sorted set and sums the sorted features with them:
/// `v_d = Σ_k θ_k x̃_{k,d}`, where `x̃_{·,d}` is channel `d` sorted in descending order over
/// the valid positions and `θ = softmax(w·BiGRU(p_0..p_{N-1}) / 0.1)` depends only on `N`.
///
/// The weights are computed once per distinct set size in a batch and shared by every set of
/// that size. Gradients flow to the features through the sort (a permutation).
#[derive(Module, Debug)]
pub struct Gpo {
    /// BiGRU over the positional codes, directions averaged.
    pub gru: MaskedBiGru,
    /// Score of each step, `d_hidden → 1`, no bias.
    pub score: Linear,
    /// Width of the positional codes.
    pub d_pe: usize,
    /// Softmax temperature.
    pub temperature: f64,
}

impl GpoConfig {
    /// Builds the operator on `device` (about `6·d_hidden·(d_pe + d_hidden)` parameters).
    pub fn init(&self, device: &Device) -> Gpo {
        Gpo {
            gru: MaskedBiGruConfig::new(self.d_pe, self.d_hidden).init(device),
            score: LinearConfig::new(self.d_hidden, 1)
                .with_bias(false)
                .init(device),
            d_pe: self.d_pe,
            temperature: self.temperature,
        }
    }
}

/// Sinusoidal positional codes `[len, d_pe]`: channel `2i` holds `sin(k·ω_i)`, channel `2i+1`
/// holds `cos(k·ω_i)`, with `ω_i = 1 / 10000^(2i/d_pe)`.
pub fn positional_encoding(len: usize, d_pe: usize, device: &Device) -> Tensor<2> {
    let mut codes = vec![0.0f32; len * d_pe];
    for k in 0..len {
        for channel in 0..d_pe {
            let pair = (channel / 2) as f64;
            let angle = k as f64 / 10000f64.powf(2.0 * pair / d_pe as f64);
            codes[k * d_pe + channel] = if channel % 2 == 0 {
                angle.sin() as f32
            } else {
                angle.cos() as f32
            };
        }
    }
    Tensor::from_data(TensorData::new(codes, [len, d_pe]), device)
}

impl Gpo {
    /// Pooling weights `θ` `[batch, max_len]` for sets of the given sizes; zero past each size.
    pub fn weights(&self, lengths: &[usize], max_len: usize, device: &Device) -> Tensor<2> {
        check_lengths(lengths, max_len, "GPO");
        let mut distinct = lengths.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let codes = positional_encoding(max_len, self.d_pe, device)
            .unsqueeze_dim::<3>(0)
            .expand([distinct.len(), max_len, self.d_pe]);
        let hidden = self.gru.forward(codes, &distinct);
        let scores = self
            .score
            .forward(hidden)
            .squeeze_dim::<2>(2)
            .mask_fill(padding_mask(&distinct, max_len, device), -10000.0);
        let theta = softmax(scores / self.temperature, 1);
        let rows: Vec<i64> = lengths
            .iter()
            .map(|len| distinct.binary_search(len).expect("length is in the set") as i64)
            .collect();
        let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [lengths.len()]), device);
        theta.select(0, rows)
    }

    /// - `x`: `[batch, max_len, dim]` with valid prefix lengths `lengths` (each ≥ 1)
    /// - returns the l2-normalised pooled vectors `[batch, dim]`
    pub fn forward(&self, x: Tensor<3>, lengths: &[usize]) -> Tensor<2> {
        let [_, max_len, _] = x.dims();
        let weights = self.weights(lengths, max_len, &x.device());
        l2_normalize(sorted_pool(x, weights, lengths))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn positional_codes_alternate_sin_and_cos() {
        let device = Device::default();
        let codes = positional_encoding(3, 4, &device)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let expected = [
            0.0,
            1.0,
            0.0,
            1.0,
            1f64.sin(),
            1f64.cos(),
            0.01f64.sin(),
            0.01f64.cos(),
        ];
        for (a, b) in codes.iter().zip(expected) {
            assert!((*a as f64 - b).abs() < 1e-6, "{codes:?}");
        }
    }

    #[test]
    fn weights_sum_to_one_over_valid_positions() {
        let device = Device::default();
        device.seed(5);
        let gpo = GpoConfig::new().init(&device);
        let weights = gpo.weights(&[3, 5, 3], 6, &device);
        let w = weights.into_data().try_into_vec::<f32>().unwrap();
        for (row, len) in [3usize, 5, 3].iter().enumerate() {
            let row = &w[row * 6..(row + 1) * 6];
            let total: f32 = row[..*len].iter().sum();
            assert!((total - 1.0).abs() < 1e-5);
            assert!(row[*len..].iter().all(|&v| v == 0.0));
        }
        assert_eq!(&w[0..6], &w[12..18], "same size, same weights");
    }

    #[test]
    fn pooled_vector_is_unit_and_permutation_invariant() {
        let device = Device::default();
        device.seed(9);
        let gpo = GpoConfig::new().init(&device);
        let x = Tensor::<3>::random([1, 4, 3], Distribution::Normal(0.0, 1.0), &device);
        let permuted = Tensor::cat(
            vec![x.clone().narrow(1, 2, 2), x.clone().narrow(1, 0, 2)],
            1,
        );
        let a = gpo.forward(x, &[4]);
        let b = gpo.forward(permuted, &[4]);
        a.clone()
            .into_data()
            .assert_approx_eq::<f32>(&b.into_data(), Default::default());
        let norm: f32 = a
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()
            .iter()
            .map(|v| v * v)
            .sum();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}
