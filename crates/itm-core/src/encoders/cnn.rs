//! Raw images → a grid of cell features in the joint space: a small ResNet (basic blocks).
//!
//! A 3×3 stem keeps the resolution; every stage after the first halves it, so an `H×W` image
//! becomes a `⌈H/2^(S−1)⌉ × ⌈W/2^(S−1)⌉` grid for `S` stages. Each cell of the last feature map
//! is one element of the output set, projected to `d_embed`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

/// Configuration of a [`ResNetEncoder`].
#[derive(Config, Debug)]
pub struct ResNetEncoderConfig {
    /// Channels of the input images.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Channels of every stage, e.g. `[32, 64, 128]`; the stem outputs `widths[0]`.
    pub widths: Vec<usize>,
    /// Residual blocks per stage.
    #[config(default = 1)]
    pub blocks_per_stage: usize,
    /// Width of the joint embedding space `D`.
    pub d_embed: usize,
}

/// A bias-free convolution followed by batch norm: `[batch, c_in, H, W] → [batch, c_out, H', W']`.
#[derive(Module, Debug)]
pub struct ConvNorm {
    /// The convolution (no bias: the batch norm's `β` plays that role).
    pub conv: Conv2d,
    /// Batch norm over the output channels.
    pub norm: BatchNorm,
}

impl ConvNorm {
    /// A `kernel×kernel` convolution with `stride`, padded by `kernel / 2` on every side, so
    /// that `H' = ⌈H / stride⌉` for odd kernels.
    fn new(channels: [usize; 2], kernel: usize, stride: usize, device: &Device) -> Self {
        let pad = kernel / 2;
        Self {
            conv: Conv2dConfig::new(channels, [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_bias(false)
                .init(device),
            norm: BatchNormConfig::new(channels[1]).init(device),
        }
    }

    /// - `x`: `[batch, c_in, H, W]`
    /// - returns `[batch, c_out, ⌈H / stride⌉, ⌈W / stride⌉]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.norm.forward(self.conv.forward(x))
    }
}

/// `ReLU(BN(conv3×3(ReLU(BN(conv3×3(x))))) + shortcut(x))`, where the shortcut is the identity
/// or, when the block changes the stride or the width, a 1×1 strided convolution + batch norm.
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// First 3×3 convolution, carrying the block's stride.
    pub conv1: ConvNorm,
    /// Second 3×3 convolution, stride 1.
    pub conv2: ConvNorm,
    /// The 1×1 projection shortcut; `None` for the identity.
    pub shortcut: Option<ConvNorm>,
}

impl BasicBlock {
    fn new(channels: [usize; 2], stride: usize, device: &Device) -> Self {
        let [c_in, c_out] = channels;
        let projects = stride != 1 || c_in != c_out;
        Self {
            conv1: ConvNorm::new(channels, 3, stride, device),
            conv2: ConvNorm::new([c_out, c_out], 3, 1, device),
            shortcut: projects.then(|| ConvNorm::new(channels, 1, stride, device)),
        }
    }

    /// - `x`: `[batch, c_in, H, W]`
    /// - returns `[batch, c_out, ⌈H / stride⌉, ⌈W / stride⌉]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let residual = self.conv2.forward(relu(self.conv1.forward(x.clone())));
        let shortcut = match &self.shortcut {
            Some(projection) => projection.forward(x),
            None => x,
        };
        relu(residual + shortcut)
    }
}

/// Stem `ReLU(BN(conv3×3))` → stages of [`BasicBlock`]s → per-cell `Linear(widths.last → D)`.
#[derive(Module, Debug)]
pub struct ResNetEncoder {
    /// The stem `in_channels → widths[0]`, stride 1.
    pub stem: ConvNorm,
    /// All residual blocks, stage after stage.
    pub blocks: Vec<BasicBlock>,
    /// Projection of every cell `widths.last → D`.
    pub projection: Linear,
}

impl ResNetEncoderConfig {
    /// Builds the encoder on `device`; the first block of every stage after the first has
    /// stride 2.
    ///
    /// # Panics
    ///
    /// If `widths` is empty or `blocks_per_stage` is zero.
    pub fn init(&self, device: &Device) -> ResNetEncoder {
        assert!(!self.widths.is_empty(), "a ResNet needs at least one stage");
        assert!(
            self.blocks_per_stage > 0,
            "a stage needs at least one block"
        );
        let mut blocks = Vec::with_capacity(self.widths.len() * self.blocks_per_stage);
        let mut c_in = self.widths[0];
        for (stage, &width) in self.widths.iter().enumerate() {
            for block in 0..self.blocks_per_stage {
                let stride = if stage > 0 && block == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new([c_in, width], stride, device));
                c_in = width;
            }
        }
        ResNetEncoder {
            stem: ConvNorm::new([self.in_channels, self.widths[0]], 3, 1, device),
            blocks,
            projection: LinearConfig::new(c_in, self.d_embed).init(device),
        }
    }
}

impl ResNetEncoder {
    /// The last feature map, before the projection.
    ///
    /// - `images`: `[batch, in_channels, H, W]`
    /// - returns `[batch, widths.last, H', W']` with `H' = ⌈H / 2^(S−1)⌉`, `W' = ⌈W / 2^(S−1)⌉`
    pub fn feature_map(&self, images: Tensor<4>) -> Tensor<4> {
        let stem = relu(self.stem.forward(images));
        self.blocks.iter().fold(stem, |x, block| block.forward(x))
    }

    /// - `images`: `[batch, in_channels, H, W]`
    /// - returns `[batch, H'·W', d_embed]`, cells in row-major order (cell `i·W' + j` is
    ///   row `i`, column `j` of the last feature map)
    pub fn forward(&self, images: Tensor<4>) -> Tensor<3> {
        let map = self.feature_map(images);
        let [batch, channels, height, width] = map.dims();
        let cells = map
            .permute([0, 2, 3, 1])
            .reshape([batch, height * width, channels]);
        self.projection.forward(cells)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::tensor::Distribution;

    fn images(dims: [usize; 4], device: &Device) -> Tensor<4> {
        Tensor::random(dims, Distribution::Normal(0.0, 1.0), device)
    }

    #[test]
    fn output_shapes() {
        let device = Device::default();
        device.seed(1);
        let encoder = ResNetEncoderConfig::new(vec![16, 32, 64], 24).init(&device);
        let out = encoder.forward(images([2, 3, 64, 64], &device));
        assert_eq!(out.dims(), [2, 16 * 16, 24]);

        // Odd sizes round up at every stride-2 stage: 15×9 → 8×5.
        let encoder = ResNetEncoderConfig::new(vec![8, 8], 6)
            .with_in_channels(1)
            .with_blocks_per_stage(2)
            .init(&device);
        assert_eq!(encoder.blocks.len(), 4);
        let out = encoder.forward(images([3, 1, 15, 9], &device));
        assert_eq!(out.dims(), [3, 8 * 5, 6]);
    }

    /// Identity shortcut where the width and stride are kept, projection elsewhere.
    #[test]
    fn projection_shortcuts_only_where_needed() {
        let device = Device::default();
        let encoder = ResNetEncoderConfig::new(vec![4, 4, 8], 2)
            .with_blocks_per_stage(2)
            .init(&device);
        let projects: Vec<bool> = encoder
            .blocks
            .iter()
            .map(|block| block.shortcut.is_some())
            .collect();
        assert_eq!(projects, [false, false, true, false, true, false]);
    }

    /// With both convolutions zeroed, the residual branch is `BN(0) = β = 0`, so the block
    /// returns `ReLU(x)`.
    #[test]
    fn zeroed_block_passes_input_through_relu() {
        let device = Device::default();
        device.seed(2);
        let mut block = BasicBlock::new([4, 4], 1, &device);
        for conv in [&mut block.conv1.conv, &mut block.conv2.conv] {
            conv.weight = Param::from_tensor(Tensor::zeros(conv.weight.dims(), &device));
        }
        let x = images([2, 4, 5, 6], &device);
        block
            .forward(x.clone())
            .into_data()
            .assert_approx_eq::<f32>(&relu(x).into_data(), Default::default());
    }

    /// Cell `i·W' + j` of the output is the projection of pixel `(i, j)` of the feature map.
    #[test]
    fn cells_are_row_major() {
        let device = Device::default();
        device.seed(3);
        let encoder = ResNetEncoderConfig::new(vec![4, 8], 5).init(&device);
        let x = images([2, 3, 8, 6], &device);
        let map = encoder.feature_map(x.clone());
        assert_eq!(map.dims(), [2, 8, 4, 3]);
        let out = encoder.forward(x);
        let (i, j) = (2, 1);
        let pixel = map.narrow(2, i, 1).narrow(3, j, 1).reshape([2, 8]);
        out.narrow(1, i * 3 + j, 1)
            .reshape([2, 5])
            .into_data()
            .assert_approx_eq::<f32>(
                &encoder.projection.forward(pixel).into_data(),
                Default::default(),
            );
    }

    #[test]
    fn gradients_reach_the_stem() {
        let device = Device::default().autodiff();
        device.seed(4);
        let encoder = ResNetEncoderConfig::new(vec![4, 8], 3).init(&device);
        let grads = encoder
            .forward(images([2, 3, 8, 8], &device))
            .sum()
            .backward();
        let grad = encoder
            .stem
            .conv
            .weight
            .grad(&grads)
            .expect("the stem weight has a gradient");
        assert_eq!(grad.dims(), [4, 3, 3, 3]);
        assert!(grad.abs().sum().into_scalar::<f32>() > 0.0);
    }
}
