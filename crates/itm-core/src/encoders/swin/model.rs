//! [`SwinModel`]: patch embedding → stages → the features of every stage.

use burn::module::Module;
use burn::nn::conv::Conv2dConfig;
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use super::attention::WindowAttention;
use super::block::SwinBlock;
use super::config::SwinConfig;
use super::drop_path::{DropPath, block_rates};
use super::embed::SwinPatchEmbedding;
use super::merge::SwinPatchMerging;
use super::stage::SwinStage;

/// Standard deviation of transformers' initialisation of the Swin's linear and convolution
/// weights (`initializer_range`).
const INITIALIZER_RANGE: f64 = 0.02;

/// Epsilon of the norms whose epsilon no configuration sets (patch embedding, patch merging):
/// PyTorch's default.
const TORCH_LAYER_NORM_EPS: f64 = 1e-5;

/// The features of every stage of a [`SwinModel`].
#[derive(Debug, Clone)]
pub struct SwinOutput {
    /// Per stage `s`: `[batch, rows_s · cols_s, embed_dim · 2^s]`, patches row-major: the
    /// stage's output before patch merging, through the stage's norm (the model's
    /// `stage_norms[s]` when it has them, none otherwise) — for the last stage, through the
    /// final `norm`.
    pub stages: Vec<Tensor<3>>,
    /// Per stage: `[rows_s, cols_s]` (`⌈height / patch⌉, ⌈width / patch⌉`, then halved,
    /// rounding up, at each merging).
    pub grids: Vec<[usize; 2]>,
}

/// HAT's three levels of a [`SwinModel`]: the outputs of its last three stages (Swin-B at
/// 224 px: stages 1, 2, 3 — `[batch, 784, 256]`, `[batch, 196, 512]`, `[batch, 49, 1024]`).
#[derive(Debug, Clone)]
pub struct SwinLevels {
    /// Third stage from the end (HAT `image_feats_1`, before its `Linear(256 → hidden)`).
    pub low: Tensor<3>,
    /// Second stage from the end (HAT `image_feats_2`, before its `Linear(512 → hidden)`).
    pub middle: Tensor<3>,
    /// Last stage (HAT `image_feats`, before its `Linear(1024 → hidden)`).
    pub high: Tensor<3>,
}

/// A Swin transformer image tower (Liu et al. 2021) returning the features of every stage.
///
/// Parameter layout: `embeddings.{projection, norm}`, `stages.{s}.blocks.{b}.{norm_before,
/// attention.{query, key, value, output, relative_position_bias_table}, norm_after, fc1, fc2}`,
/// `stages.{s}.downsample.{norm, reduction}`, `stage_norms.{s}` (HAT's `norm_{s}`), `norm`.
/// `itm_train` maps transformers' and HAT's (timm's) names onto it.
#[derive(Module, Debug)]
pub struct SwinModel {
    /// Pixels → patch features.
    pub embeddings: SwinPatchEmbedding,
    /// The stages.
    pub stages: Vec<SwinStage>,
    /// Norms of the outputs of every stage but the last (HAT's `norm_0` … ; empty for a
    /// transformers `SwinModel`).
    pub stage_norms: Vec<LayerNorm>,
    /// Norm of the last stage's output (transformers `layernorm`, timm `norm`).
    pub norm: LayerNorm,
}

impl SwinModel {
    pub(super) fn new(config: &SwinConfig, device: &Device) -> Self {
        let normal = Initializer::Normal {
            mean: 0.0,
            std: INITIALIZER_RANGE,
        };
        let linear = |d_in: usize, d_out: usize, bias: bool| -> Linear {
            let mut linear = LinearConfig::new(d_in, d_out)
                .with_bias(bias)
                .with_initializer(normal.clone())
                .init(device);
            if bias {
                linear.bias = Some(Initializer::Zeros.init([d_out], device));
            }
            linear
        };
        let norm =
            |width: usize, eps: f64| LayerNormConfig::new(width).with_epsilon(eps).init(device);
        let patch = [config.patch_size, config.patch_size];
        let mut projection = Conv2dConfig::new([config.num_channels, config.embed_dim], patch)
            .with_stride(patch)
            .with_initializer(normal.clone())
            .init(device);
        projection.bias = Some(Initializer::Zeros.init([config.embed_dim], device));
        let rates = block_rates(config.drop_path_rate, config.depths.iter().sum());
        let first_block = |s: usize| config.depths[..s].iter().sum::<usize>();
        let stages = (0..config.num_stages())
            .map(|s| {
                let width = config.stage_dim(s);
                let heads = config.num_heads[s];
                let blocks = (0..config.depths[s])
                    .map(|b| {
                        let window = config.block_window(s, b);
                        let span = 2 * window.window - 1;
                        SwinBlock {
                            norm_before: norm(width, config.layer_norm_eps),
                            attention: WindowAttention {
                                query: linear(width, width, config.qkv_bias),
                                key: linear(width, width, config.qkv_bias),
                                value: linear(width, width, config.qkv_bias),
                                output: linear(width, width, true),
                                relative_position_bias_table: Initializer::Zeros
                                    .init([span * span, heads], device),
                                heads,
                                window: window.window,
                            },
                            norm_after: norm(width, config.layer_norm_eps),
                            fc1: linear(width, config.mlp_dim(s), true),
                            fc2: linear(config.mlp_dim(s), width, true),
                            drop_path: DropPath {
                                prob: rates[first_block(s) + b],
                            },
                            shift: window.shift,
                        }
                    })
                    .collect();
                let downsample = (s + 1 < config.num_stages()).then(|| SwinPatchMerging {
                    norm: norm(4 * width, TORCH_LAYER_NORM_EPS),
                    reduction: linear(4 * width, 2 * width, false),
                });
                SwinStage { blocks, downsample }
            })
            .collect();
        let stage_norms = if config.stage_norms {
            (0..config.num_stages() - 1)
                .map(|s| norm(config.stage_dim(s), config.layer_norm_eps))
                .collect()
        } else {
            Vec::new()
        };
        Self {
            embeddings: SwinPatchEmbedding {
                projection,
                norm: norm(config.embed_dim, TORCH_LAYER_NORM_EPS),
            },
            stages,
            stage_norms,
            norm: norm(config.num_features(), config.layer_norm_eps),
        }
    }

    /// Gives a model without stage norms unit ones (weight 1, bias 0), as HAT does when it
    /// starts from a pretrained Swin: its `norm_0`… are new layers. A model that has them is
    /// returned unchanged.
    pub fn with_stage_norms(mut self, layer_norm_eps: f64) -> Self {
        if self.stage_norms.is_empty() {
            let device = self.norm.gamma.device();
            self.stage_norms = self.stages[..self.stages.len() - 1]
                .iter()
                .map(|stage| {
                    let width = stage.blocks[0].norm_before.gamma.dims()[0];
                    LayerNormConfig::new(width)
                        .with_epsilon(layer_norm_eps)
                        .init(&device)
                })
                .collect();
        }
        self
    }

    /// Number of stages.
    pub fn num_stages(&self) -> usize {
        self.stages.len()
    }

    /// The features of every stage (see [`SwinOutput`]).
    ///
    /// Images of other sizes than the configured `image_size` are accepted: sides that are not
    /// multiples of the patch, of a window or of 2 at a merging are padded as transformers
    /// pads them. Windows and shifts stay those of the configured size (as in transformers
    /// when no stage is smaller than its window; timm and HAT accept the configured size
    /// only).
    ///
    /// - `pixels`: `[batch, channels, height, width]`, normalised
    /// - returns per stage `s` `[batch, rows_s · cols_s, embed_dim · 2^s]`
    ///
    /// # Panics
    ///
    /// If the channels are not the configured ones.
    pub fn forward(&self, pixels: Tensor<4>) -> SwinOutput {
        let (mut x, mut grid) = self.embeddings.forward(pixels);
        let last = self.stages.len() - 1;
        let mut stages = Vec::with_capacity(self.stages.len());
        let mut grids = Vec::with_capacity(self.stages.len());
        for (s, stage) in self.stages.iter().enumerate() {
            let out = stage.forward(x, grid);
            let next = stage.merge(out.clone(), grid);
            let normed = if s == last {
                self.norm.forward(out)
            } else {
                match self.stage_norms.get(s) {
                    Some(norm) => norm.forward(out),
                    None => out,
                }
            };
            stages.push(normed);
            grids.push(grid);
            match next {
                Some((merged, merged_grid)) => (x, grid) = (merged, merged_grid),
                None => break,
            }
        }
        SwinOutput { stages, grids }
    }

    /// HAT's low, middle and high levels: the outputs of the last three stages (see
    /// [`SwinLevels`]).
    ///
    /// - `pixels`: `[batch, channels, height, width]`, normalised
    ///
    /// # Panics
    ///
    /// If the model has fewer than three stages.
    pub fn levels(&self, pixels: Tensor<4>) -> SwinLevels {
        let stages = self.forward(pixels).stages;
        assert!(
            stages.len() >= 3,
            "HAT's levels need three stages, the model has {}",
            stages.len()
        );
        let mut last = stages.into_iter().rev();
        let high = last.next().expect("three stages");
        let middle = last.next().expect("three stages");
        let low = last.next().expect("three stages");
        SwinLevels { low, middle, high }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Int};

    fn pixels(dims: [usize; 4], device: &Device) -> Tensor<4> {
        Tensor::random(dims, Distribution::Normal(0.0, 1.0), device)
    }

    #[test]
    fn every_stage_has_its_documented_shape() {
        let device = Device::default();
        device.seed(1);
        let model = SwinConfig::tiny().init(&device);
        let out = model.forward(pixels([2, 3, 32, 32], &device));
        let dims: Vec<[usize; 3]> = out.stages.iter().map(|s| s.dims()).collect();
        assert_eq!(dims, [[2, 256, 8], [2, 64, 16], [2, 16, 32]]);
        assert_eq!(out.grids, [[16, 16], [8, 8], [4, 4]]);
        // Non-square sides that need padding: ⌈37/2⌉ = 19, ⌈19/2⌉ = 10, 5.
        let out = model.forward(pixels([1, 3, 30, 37], &device));
        assert_eq!(out.grids, [[15, 19], [8, 10], [4, 5]]);
        assert_eq!(out.stages[1].dims(), [1, 80, 16]);
        assert!(
            out.stages[2]
                .clone()
                .is_finite()
                .all()
                .into_scalar::<bool>()
        );
    }

    #[test]
    fn stage_norms_and_levels() {
        let device = Device::default();
        device.seed(2);
        let config = SwinConfig::tiny().with_stage_norms(true);
        assert_eq!(config.init(&device).stage_norms.len(), 2);
        let x = pixels([1, 3, 32, 32], &device);
        let plain = SwinConfig::tiny().init(&device);
        let raw = plain.forward(x.clone()).stages;
        // Unit stage norms (HAT's fresh `norm_0`, `norm_1`) normalise each patch feature.
        let levels = plain.with_stage_norms(config.layer_norm_eps).levels(x);
        assert_eq!(levels.low.dims(), [1, 256, 8]);
        assert_eq!(levels.middle.dims(), [1, 64, 16]);
        assert_eq!(levels.high.dims(), [1, 16, 32]);
        let centred = raw[1].clone() - raw[1].clone().mean_dim(2);
        let variance = centred.clone().square().mean_dim(2);
        let expected = centred / (variance + config.layer_norm_eps).sqrt();
        let worst = (levels.middle - expected).abs().max().into_scalar::<f32>();
        assert!(worst < 1e-4, "{worst}");
        // The last stage goes through the final norm either way.
        let worst = (levels.high - raw[2].clone())
            .abs()
            .max()
            .into_scalar::<f32>();
        assert_eq!(worst, 0.0);
    }

    /// Swin-B at 224 px with HAT's stage norms: the levels HAT projects (256, 512 and 1024
    /// wide). About 5 s (88M parameters): `cargo test --workspace --lib -- --ignored swin_base`.
    #[test]
    #[ignore = "builds Swin-B (88M parameters)"]
    fn swin_base_levels_have_hats_widths() {
        let device = Device::default();
        let model = SwinConfig::swin_base_patch4_window7_224()
            .with_stage_norms(true)
            .init(&device);
        assert_eq!(model.num_params(), 86_743_224 + 2 * (128 + 256 + 512));
        let levels = model.levels(pixels([1, 3, 224, 224], &device));
        assert_eq!(levels.low.dims(), [1, 784, 256]);
        assert_eq!(levels.middle.dims(), [1, 196, 512]);
        assert_eq!(levels.high.dims(), [1, 49, 1024]);
    }

    /// Reordering the images of a batch reorders the outputs the same way.
    #[test]
    fn batch_independent() {
        let device = Device::default();
        device.seed(3);
        let model = SwinConfig::tiny().init(&device);
        let x = pixels([3, 3, 32, 32], &device);
        let out = model.forward(x.clone()).stages;
        let order = Tensor::<1, Int>::from_ints([2, 0, 1], &device);
        let shuffled = model.forward(x.select(0, order.clone())).stages;
        for (a, b) in shuffled.into_iter().zip(out) {
            a.into_data().assert_approx_eq::<f32>(
                &b.select(0, order.clone()).into_data(),
                Default::default(),
            );
        }
    }

    #[test]
    fn gradients_reach_the_first_layers() {
        let device = Device::default().autodiff();
        device.seed(4);
        let model = SwinConfig::tiny().init(&device);
        let x = pixels([1, 3, 32, 32], &device).require_grad();
        // A plain sum of layer-normed features is constant: weight them.
        let last = model.forward(x.clone()).stages[2].clone();
        let weights = Tensor::random(last.dims(), Distribution::Normal(0.0, 1.0), &device);
        let grads = (last * weights).sum().backward();
        let table = model.stages[0].blocks[1]
            .attention
            .relative_position_bias_table
            .grad(&grads)
            .expect("the table has a gradient");
        assert_eq!(table.dims(), [49, 1]);
        assert!(
            x.grad(&grads)
                .expect("pixels")
                .abs()
                .sum()
                .into_scalar::<f32>()
                > 0.0
        );
    }
}
