//! Instance relation layer (HREM, Fu et al. CVPR 2023; METHODS §4 "Instance relation layer").
//!
//! A transformer layer over the `2B` embeddings of a training batch (the `B` images, then the
//! `B` captions), so that each embedding is refined by the instances it is related to. HREM
//! restricts the attention to related instances; it is used in training only, and retrieval
//! scores plain embeddings.
//!
//! **The mask rule (our reading of "top-50% intra- and cross-modal similarities").** Let
//! `s(a, b)` be the cosine similarity of embeddings `a` and `b` (detached: the mask carries no
//! gradient). Split the `2B` columns into two modality blocks of `B` (images, captions) and let
//! `k = max(1, ⌈keep_ratio · B⌉)` (`keep_ratio = 0.5`). Item `a` may attend to item `b` iff
//!
//! - `b = a` (every item attends to itself), or
//! - `s(a, b)` is at least the `k`-th largest of `s(a, ·)` over `b`'s modality block.
//!
//! So each item sees the top half of its similarity row within its own modality and, separately,
//! within the other modality. The item itself counts in the ranking of its own block. Ties at the
//! `k`-th value are all kept, so a row may see more than `k` items of a block.

use burn::config::Config;
use burn::module::Module;
use burn::nn::transformer::{TransformerEncoderConfig, TransformerEncoderLayer};
use burn::tensor::Device;
use burn::tensor::{Bool, Tensor};

use crate::masking::l2_normalize;

/// Configuration of an [`InstanceRelation`] layer.
#[derive(Config, Debug)]
pub struct InstanceRelationConfig {
    /// Width `D` of the embeddings.
    pub d_model: usize,
    /// Number of attention heads; must divide `d_model`.
    pub n_heads: usize,
    /// Hidden width of the feed-forward block.
    pub d_ff: usize,
    /// Fraction of each modality block an item attends to (HREM: the top 50%).
    #[config(default = 0.5)]
    pub keep_ratio: f64,
    /// Dropout on the attention weights and the residual branches (training only).
    #[config(default = 0.0)]
    pub dropout: f64,
}

impl InstanceRelationConfig {
    /// Builds the layer on `device`.
    ///
    /// # Panics
    ///
    /// If `keep_ratio` is not in `(0, 1]` or `n_heads` does not divide `d_model`.
    pub fn init(&self, device: &Device) -> InstanceRelation {
        assert!(
            self.keep_ratio > 0.0 && self.keep_ratio <= 1.0,
            "instance relation: keep_ratio must lie in (0, 1], got {}",
            self.keep_ratio
        );
        assert!(
            self.n_heads > 0 && self.d_model.is_multiple_of(self.n_heads),
            "{} heads do not divide d_model = {}",
            self.n_heads,
            self.d_model
        );
        let config = TransformerEncoderConfig::new(self.d_model, self.d_ff, self.n_heads, 1)
            .with_dropout(self.dropout);
        InstanceRelation {
            layer: TransformerEncoderLayer::new(&config, device),
            keep_ratio: self.keep_ratio,
        }
    }
}

/// One post-norm transformer layer (self-attention and a GELU feed-forward block, each followed by
/// `LayerNorm(x + sub_block(x))`) over the batch's instances, with the attention mask of the
/// module documentation.
#[derive(Module, Debug)]
pub struct InstanceRelation {
    /// The transformer layer (`norm_1` follows the attention, `norm_2` the feed-forward block).
    pub layer: TransformerEncoderLayer,
    /// Fraction of each modality block an item attends to.
    pub keep_ratio: f64,
}

impl InstanceRelation {
    /// Relation-enhanced embeddings of a batch.
    ///
    /// - `images`, `captions`: `[B, D]`, caption `b` the positive of image `b`
    /// - returns `(images [B, D], captions [B, D])`
    ///
    /// # Panics
    ///
    /// If the two shapes differ or `D` is not the configured width.
    pub fn forward(&self, images: Tensor<2>, captions: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let [batch, dim] = images.dims();
        assert_eq!(
            captions.dims(),
            [batch, dim],
            "instance relation: images and captions must have the same shape"
        );
        let items = Tensor::cat(vec![images, captions], 0); // [2B, D]
        let blocked = self.attention_mask(items.clone()).unsqueeze_dim::<3>(0);
        let related = self
            .layer
            .forward(items.unsqueeze_dim::<3>(0), None, Some(blocked))
            .reshape([2 * batch, dim]);
        (
            related.clone().narrow(0, 0, batch),
            related.narrow(0, batch, batch),
        )
    }

    /// The attention mask of `items` `[2B, D]` (images, then captions): `[2B, 2B]`, `true` where
    /// row `a` may **not** attend to column `b` (burn's convention), by the rule of the module
    /// documentation.
    ///
    /// # Panics
    ///
    /// If the number of items is odd.
    pub fn attention_mask(&self, items: Tensor<2>) -> Tensor<2, Bool> {
        let [count, _] = items.dims();
        assert!(
            count.is_multiple_of(2) && count > 0,
            "instance relation: {count} items is not B images followed by B captions"
        );
        let batch = count / 2;
        let keep = ((self.keep_ratio * batch as f64).ceil() as usize).clamp(1, batch);
        let unit = l2_normalize(items.detach());
        let similarity = unit.clone().matmul(unit.transpose()); // [2B, 2B]
        let blocks: Vec<Tensor<2, Bool>> = (0..2)
            .map(|block| {
                let scores = similarity.clone().narrow(1, block * batch, batch);
                let threshold = scores.clone().sort_descending(1).narrow(1, keep - 1, 1); // k-th largest per row
                scores.lower(threshold)
            })
            .collect();
        let itself = Tensor::<2>::eye(count, &similarity.device()).bool();
        Tensor::cat(blocks, 1).bool_and(itself.bool_not())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    fn flags(mask: Tensor<2, Bool>) -> Vec<bool> {
        mask.into_data().try_into_vec::<bool>().unwrap()
    }

    #[test]
    fn output_shapes() {
        let device = Device::default();
        device.seed(5);
        let layer = InstanceRelationConfig::new(8, 2, 16).init(&device);
        let images = Tensor::random([3, 8], Distribution::Normal(0.0, 1.0), &device);
        let captions = Tensor::random([3, 8], Distribution::Normal(0.0, 1.0), &device);
        let (images, captions) = layer.forward(images, captions);
        assert_eq!(images.dims(), [3, 8]);
        assert_eq!(captions.dims(), [3, 8]);
    }

    #[test]
    fn mask_rule_on_a_hand_built_batch() {
        let device = Device::default();
        let layer = InstanceRelationConfig::new(2, 1, 4).init(&device);
        // B = 3, k = ⌈1.5⌉ = 2. Unit vectors at angles 0°, 30°, 90° (images) and
        // 10°, 100°, 180° (captions).
        let angles = [0.0f32, 30.0, 90.0, 10.0, 100.0, 180.0];
        let coords: Vec<f32> = angles
            .iter()
            .flat_map(|a| [a.to_radians().cos(), a.to_radians().sin()])
            .collect();
        let items = Tensor::<2>::from_data(TensorData::new(coords, [6, 2]), &device);
        // Cosines = cos(angle difference). Per row, allowed (x) = the 2 largest in each block
        // of three (the cosines in brackets, in column order):
        //           img 0°  30°  90° | cap 10° 100° 180°
        // img 0°      x      x    .  |   x      x    .    (1, .87, 0 | .98, -.17, -1)
        // img 30°     x      x    .  |   x      x    .    (.87, 1, .5 | .94, .34, -.87)
        // img 90°     .      x    x  |   x      x    .    (0, .5, 1 | .17, .98, 0)
        // cap 10°     x      x    .  |   x      x    .    (.98, .94, .17 | 1, 0, -.98)
        // cap 100°    .      x    x  |   .      x    x    (-.17, .34, .98 | 0, 1, .17)
        // cap 180°    .      x    x  |   .      x    x    (-1, -.87, 0 | -.98, .17, 1)
        let allowed = [
            [1, 1, 0, 1, 1, 0],
            [1, 1, 0, 1, 1, 0],
            [0, 1, 1, 1, 1, 0],
            [1, 1, 0, 1, 1, 0],
            [0, 1, 1, 0, 1, 1],
            [0, 1, 1, 0, 1, 1],
        ];
        let expected: Vec<bool> = allowed.iter().flatten().map(|&a| a == 0).collect();
        assert_eq!(flags(layer.attention_mask(items)), expected);
    }

    #[test]
    fn ties_at_the_threshold_are_kept() {
        let device = Device::default();
        // keep_ratio small: k = 1, and the two identical captions tie for the first place of
        // every row, so both are kept.
        let layer = InstanceRelationConfig::new(2, 1, 4)
            .with_keep_ratio(0.1)
            .init(&device);
        let items =
            Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]], &device);
        let mask = flags(layer.attention_mask(items));
        // Row 0 (image [1,0]): images → itself (k = 1); captions tie at 0 → both kept.
        assert_eq!(&mask[0..4], &[false, true, false, false]);
        // Row 1 (image [0,1]): images → itself; captions tie at 1 → both kept.
        assert_eq!(&mask[4..8], &[true, false, false, false]);
    }
}
