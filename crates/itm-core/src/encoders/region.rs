//! Precomputed region features → joint space (VSE∞ "basic" encoder, METHODS §1; SCAN's and
//! CHAN's `fc`, CHAN's pre-norm self-attention block).

use burn::config::Config;
use burn::module::Module;
use burn::nn::attention::{MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::{BatchNorm, BatchNormConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

/// Configuration of a [`RegionEncoder`].
#[derive(Config, Debug)]
pub struct RegionEncoderConfig {
    /// Width of the input region features (2048 for BUTD).
    pub d_feature: usize,
    /// Width of the joint embedding space `D`.
    pub d_embed: usize,
    /// Whether the MLP path is added (VSE∞ "basic"); without it the encoder is SCAN's
    /// precomp `fc`: one Linear per region.
    #[config(default = true)]
    pub mlp: bool,
    /// Heads of a pre-norm self-attention block `x + MHA(LN(x))` over the regions of an image
    /// after the linear path (CHAN's BiGRU script, `precomp_enc_type = 'selfattention'`, 8
    /// heads); `None`: no block. `D` must be a multiple of the heads.
    #[config(default = "None")]
    pub self_attention: Option<usize>,
}

/// `x = Linear(F→D)(V) + MLP(V)` with `MLP = Linear(F→D/2) → BatchNorm → ReLU → Linear(D/2→D)`,
/// or `x = Linear(F→D)(V)` alone without the MLP (SCAN, CHAN's BERT script).
///
/// With [`RegionEncoderConfig::self_attention`], `x ← x + MHA(LN(x))` follows (CHAN): every
/// region attends over all regions of its image, padding included, since the authors call
/// the block without a key-padding mask.
///
/// Batch normalisation runs over all `batch · regions` rows, padding included, as in VSE∞.
/// Train-time region drop is a data augmentation (`itm_data::RegionDrop`), as in VSE∞.
#[derive(Module, Debug)]
pub struct RegionEncoder {
    /// The linear path `F → D`.
    pub fc: Linear,
    /// First MLP layer `F → D/2` (`None` without the MLP; the three MLP parts are present
    /// together or not at all).
    pub mlp_in: Option<Linear>,
    /// Batch norm over the hidden MLP width.
    pub mlp_norm: Option<BatchNorm>,
    /// Second MLP layer `D/2 → D`.
    pub mlp_out: Option<Linear>,
    /// CHAN's pre-norm self-attention block (`None` without it).
    pub attention: Option<RegionSelfAttention>,
}

/// `x + MHA(LN(x))` over the regions of each image: a layer norm (ε = 1e-5) and multi-head
/// self-attention with biased `D → D` query, key, value and output projections, softmax of
/// `QKᵀ/√(D/h)`, no dropout (CHAN's `SelfAttention`, PyTorch's `MultiheadAttention`
/// defaults).
#[derive(Module, Debug)]
pub struct RegionSelfAttention {
    /// The layer norm before the attention.
    pub norm: LayerNorm,
    /// The attention (PyTorch's packed `in_proj` is its query, key and value, in that order).
    pub attention: MultiHeadAttention,
}

impl RegionSelfAttention {
    /// - `x`: `[batch, regions, D]`
    /// - returns `[batch, regions, D]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let normed = self.norm.forward(x.clone());
        x + self.attention.forward(MhaInput::self_attn(normed)).context
    }
}

impl RegionEncoderConfig {
    /// Builds the encoder on `device`.
    ///
    /// # Panics
    /// If `D` is not a multiple of [`RegionEncoderConfig::self_attention`]'s heads.
    pub fn init(&self, device: &Device) -> RegionEncoder {
        let hidden = self.d_embed / 2;
        let attention = self.self_attention.map(|heads| {
            assert!(
                heads > 0 && self.d_embed.is_multiple_of(heads),
                "the region self-attention needs D = {} to be a multiple of its {heads} heads",
                self.d_embed
            );
            RegionSelfAttention {
                norm: LayerNormConfig::new(self.d_embed).init(device),
                attention: MultiHeadAttentionConfig::new(self.d_embed, heads)
                    .with_dropout(0.0)
                    .init(device),
            }
        });
        RegionEncoder {
            fc: LinearConfig::new(self.d_feature, self.d_embed).init(device),
            mlp_in: self
                .mlp
                .then(|| LinearConfig::new(self.d_feature, hidden).init(device)),
            mlp_norm: self.mlp.then(|| BatchNormConfig::new(hidden).init(device)),
            mlp_out: self
                .mlp
                .then(|| LinearConfig::new(hidden, self.d_embed).init(device)),
            attention,
        }
    }
}

impl RegionEncoder {
    /// - `regions`: `[batch, regions, d_feature]`
    /// - returns `[batch, regions, d_embed]`
    pub fn forward(&self, regions: Tensor<3>) -> Tensor<3> {
        let [batch, count, d_feature] = regions.dims();
        let rows = regions.reshape([batch * count, d_feature]);
        let linear = self.fc.forward(rows.clone());
        let embedded = match (&self.mlp_in, &self.mlp_norm, &self.mlp_out) {
            (Some(input), Some(norm), Some(output)) => {
                linear + output.forward(relu(norm.forward(input.forward(rows))))
            }
            _ => linear,
        };
        let [_, d_embed] = embedded.dims();
        let embedded = embedded.reshape([batch, count, d_embed]);
        match &self.attention {
            Some(attention) => attention.forward(embedded),
            None => embedded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn output_shape_and_residual_sum() {
        let device = Device::default();
        device.seed(1);
        let encoder = RegionEncoderConfig::new(6, 4).init(&device).valid();
        let x = Tensor::<3>::random([2, 3, 6], Distribution::Normal(0.0, 1.0), &device);
        let y = encoder.forward(x.clone());
        assert_eq!(y.dims(), [2, 3, 4]);
        let rows = x.reshape([6, 6]);
        let (input, norm, output) = (
            encoder.mlp_in.as_ref().unwrap(),
            encoder.mlp_norm.as_ref().unwrap(),
            encoder.mlp_out.as_ref().unwrap(),
        );
        let hidden = relu(norm.forward(input.forward(rows.clone())));
        let expected = encoder.fc.forward(rows) + output.forward(hidden);
        y.reshape([6, 4])
            .into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Default::default());
    }

    #[test]
    fn without_the_mlp_it_is_one_linear_per_region() {
        let device = Device::default();
        device.seed(3);
        let encoder = RegionEncoderConfig::new(6, 4).with_mlp(false).init(&device);
        assert!(encoder.mlp_in.is_none() && encoder.mlp_norm.is_none());
        let x = Tensor::<3>::random([2, 3, 6], Distribution::Normal(0.0, 1.0), &device);
        let expected = encoder.fc.forward(x.clone().reshape([6, 6]));
        encoder
            .forward(x)
            .reshape([6, 4])
            .into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Default::default());
    }

    /// `x + MHA(LN(x))` recomputed by hand, head by head, from the block's own weights.
    #[test]
    fn the_self_attention_block_is_pre_norm_and_unmasked() {
        let device = Device::default();
        device.seed(5);
        let encoder = RegionEncoderConfig::new(5, 4)
            .with_mlp(false)
            .with_self_attention(Some(2))
            .init(&device);
        let block = encoder.attention.as_ref().unwrap();
        let x = Tensor::<3>::random([2, 3, 5], Distribution::Normal(0.0, 1.0), &device);
        let y = encoder.forward(x.clone());

        let h = encoder.fc.forward(x);
        let mean = h.clone().mean_dim(2);
        let centred = h.clone() - mean;
        let var = centred.clone().square().mean_dim(2);
        let normed = centred / (var + 1e-5).sqrt() * block.norm.gamma.val().unsqueeze_dims(&[0, 1])
            + block
                .norm
                .beta
                .as_ref()
                .unwrap()
                .val()
                .unsqueeze_dims(&[0, 1]);
        let attention = &block.attention;
        let project = |linear: &Linear, t: Tensor<3>| {
            t.matmul(linear.weight.val().unsqueeze_dim(0))
                + linear.bias.as_ref().unwrap().val().unsqueeze_dims(&[0, 1])
        };
        let (q, k, v) = (
            project(&attention.query, normed.clone()),
            project(&attention.key, normed.clone()),
            project(&attention.value, normed),
        );
        let heads: Vec<Tensor<3>> = (0..2)
            .map(|head| {
                let cols = head * 2..head * 2 + 2;
                let scores = q
                    .clone()
                    .slice([0..2, 0..3, cols.clone()])
                    .matmul(k.clone().slice([0..2, 0..3, cols.clone()]).swap_dims(1, 2))
                    / 2f32.sqrt();
                burn::tensor::activation::softmax(scores, 2).matmul(v.clone().slice([
                    0..2,
                    0..3,
                    cols,
                ]))
            })
            .collect();
        let expected = h + project(&attention.output, Tensor::cat(heads, 2));
        y.into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Default::default());
    }
}
