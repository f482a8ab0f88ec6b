//! [`SwinConfig`]: the sizes of a Swin transformer, named as in Hugging Face's `SwinConfig`.

use burn::config::Config;
use burn::tensor::Device;

use super::SwinModel;

/// Configuration of a [`SwinModel`] (Liu et al. 2021, *Swin Transformer: Hierarchical Vision
/// Transformer using Shifted Windows*). Fields carry the names of Hugging Face's `config.json`
/// (which `itm_train`'s loader reads: the model knows no file format).
///
/// Stage `s` (from 0) works at width `embed_dim · 2^s` on a grid of
/// `⌊image_size / patch_size⌋ / 2^s` patches per side; every stage but the last ends with a
/// patch merging that halves the grid and doubles the width.
#[derive(Config, Debug)]
pub struct SwinConfig {
    /// Side of the square images the model is built for. It fixes each stage's window (a
    /// stage whose grid is not larger than `window_size` gets one unshifted window as large as
    /// its grid); other sizes are accepted by the forward (see [`SwinModel::forward`]).
    pub image_size: usize,
    /// Side of the square patches.
    pub patch_size: usize,
    /// Width of the patch features (stage 0).
    pub embed_dim: usize,
    /// Number of blocks of each stage.
    pub depths: Vec<usize>,
    /// Attention heads of each stage; `num_heads[s]` must divide `embed_dim · 2^s`.
    pub num_heads: Vec<usize>,
    /// Side of the square attention windows.
    pub window_size: usize,
    /// Channels of the input images.
    #[config(default = 3)]
    pub num_channels: usize,
    /// Hidden width of the feed-forward sub-layers as a multiple of the stage width
    /// (`⌊mlp_ratio · width⌋`).
    #[config(default = 4.0)]
    pub mlp_ratio: f64,
    /// Whether the query, key and value projections have biases.
    #[config(default = true)]
    pub qkv_bias: bool,
    /// Epsilon of the blocks' layer norms and of the final one (the patch embedding's and the
    /// patch mergings' norms use PyTorch's default 1e-5, as transformers and timm do).
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
    /// Stochastic depth: the drop rate of the last block, rising linearly from 0 at the first
    /// (transformers' and timm's default is 0.1, HAT trains with 0.1; 0 here). Applied in
    /// training only.
    #[config(default = 0.0)]
    pub drop_path_rate: f64,
    /// Whether every stage but the last has a layer norm of its own output, as HAT adds to its
    /// Swin (`norm_0`, `norm_1`, `norm_2`; the last stage always goes through the final
    /// `norm`). Not a key of Hugging Face's `config.json`: its `SwinModel` has none.
    #[config(default = false)]
    pub stage_norms: bool,
}

/// Window side and cyclic shift of one block, fixed when the model is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockWindow {
    /// Side of the attention windows.
    pub window: usize,
    /// Cyclic shift of the windows (0: plain windows).
    pub shift: usize,
}

impl SwinConfig {
    /// Swin-B, 4×4 patches, 7×7 windows, 224×224 images: the image tower of HAT (and DAIM) as
    /// timm's and HAT's `swin_base_patch4_window7_224_in22k` (Hugging Face:
    /// `microsoft/swin-base-patch4-window7-224-in22k`). Widths 128, 256, 512, 1024 on grids
    /// 56, 28, 14, 7; HAT takes stages 1, 2 and 3 as its low, middle and high levels. HAT's
    /// stage norms are off here: `.with_stage_norms(true)` gives HAT's tower.
    pub fn swin_base_patch4_window7_224() -> Self {
        Self::new(224, 4, 128, vec![2, 2, 18, 2], vec![4, 8, 16, 32], 7)
    }

    /// A tiny Swin for tests: 32×32 images in 2×2 patches, width 8, three stages of two blocks
    /// (heads 1, 2, 4), 4×4 windows, feed-forward ratio 2. Grids 16, 8, 4: two stages of shifted
    /// windows, then one as small as its window (the layout of `tiny_swin`, the transformers
    /// fixture).
    pub fn tiny() -> Self {
        Self::new(32, 2, 8, vec![2, 2, 2], vec![1, 2, 4], 4).with_mlp_ratio(2.0)
    }

    /// Number of stages.
    pub fn num_stages(&self) -> usize {
        self.depths.len()
    }

    /// Width of stage `stage`: `embed_dim · 2^stage`.
    pub fn stage_dim(&self, stage: usize) -> usize {
        self.embed_dim << stage
    }

    /// Width of the last stage (HAT's high level: 1024 for Swin-B).
    pub fn num_features(&self) -> usize {
        self.stage_dim(self.num_stages() - 1)
    }

    /// Grid side of stage `stage` for `image_size` images: `⌊image_size / patch_size⌋ / 2^stage`
    /// (rounded down, as transformers and timm size their windows).
    pub fn stage_grid(&self, stage: usize) -> usize {
        (self.image_size / self.patch_size) >> stage
    }

    /// Hidden width of the feed-forward sub-layers of stage `stage`.
    pub fn mlp_dim(&self, stage: usize) -> usize {
        (self.mlp_ratio * self.stage_dim(stage) as f64) as usize
    }

    /// Window and shift of block `block` of stage `stage`: odd blocks shift by
    /// `⌊window_size / 2⌋`, except in a stage whose grid is not larger than the window, which
    /// gets one plain window of its grid's side (timm's and HAT's rule; transformers applies
    /// it at run time).
    pub fn block_window(&self, stage: usize, block: usize) -> BlockWindow {
        let grid = self.stage_grid(stage);
        if grid <= self.window_size {
            BlockWindow {
                window: grid,
                shift: 0,
            }
        } else {
            BlockWindow {
                window: self.window_size,
                shift: if block % 2 == 1 {
                    self.window_size / 2
                } else {
                    0
                },
            }
        }
    }

    /// Checks the sizes; a message names the `config.json` key.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("image_size", self.image_size),
            ("patch_size", self.patch_size),
            ("embed_dim", self.embed_dim),
            ("window_size", self.window_size),
            ("num_channels", self.num_channels),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(format!("{name} must be positive"));
        }
        if self.depths.is_empty() {
            return Err("depths must name at least one stage".to_string());
        }
        if self.depths.len() != self.num_heads.len() {
            return Err(format!(
                "depths has {} stages, num_heads {}",
                self.depths.len(),
                self.num_heads.len()
            ));
        }
        if self.depths.len() > 16 {
            return Err(format!(
                "depths has {} stages (at most 16)",
                self.depths.len()
            ));
        }
        if let Some(stage) = self.depths.iter().position(|&d| d == 0) {
            return Err(format!("depths[{stage}] must be positive"));
        }
        for (stage, &heads) in self.num_heads.iter().enumerate() {
            let width = self.stage_dim(stage);
            if heads == 0 || !width.is_multiple_of(heads) {
                return Err(format!(
                    "num_heads[{stage}] ({heads}) does not divide the stage width {width}"
                ));
            }
        }
        if self.image_size < self.patch_size {
            return Err(format!(
                "patch_size ({}) is larger than image_size ({})",
                self.patch_size, self.image_size
            ));
        }
        if let Some(stage) = (0..self.num_stages()).find(|&s| self.stage_grid(s) == 0) {
            return Err(format!(
                "image_size {} leaves stage {stage} without patches ({} stages of {}-pixel patches)",
                self.image_size,
                self.num_stages(),
                self.patch_size
            ));
        }
        if !(self.mlp_ratio.is_finite() && self.mlp_dim(0) > 0) {
            return Err(format!(
                "mlp_ratio must be positive, got {}",
                self.mlp_ratio
            ));
        }
        if !(0.0..1.0).contains(&self.drop_path_rate) {
            return Err(format!(
                "drop_path_rate must be in [0, 1), got {}",
                self.drop_path_rate
            ));
        }
        if self.layer_norm_eps.is_nan() || self.layer_norm_eps <= 0.0 {
            return Err(format!(
                "layer_norm_eps must be positive, got {}",
                self.layer_norm_eps
            ));
        }
        Ok(())
    }

    /// Builds a model with transformers' initialisation (weights from `N(0, 0.02²)`, zero
    /// biases and relative position tables, unit layer norms); load weights afterwards.
    ///
    /// # Panics
    ///
    /// If the configuration is invalid (see [`SwinConfig::validate`]).
    pub fn init(&self, device: &Device) -> SwinModel {
        if let Err(message) = self.validate() {
            panic!("invalid SwinConfig: {message}");
        }
        SwinModel::new(self, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swin_base_sizes_are_hats() {
        let config = SwinConfig::swin_base_patch4_window7_224();
        config.validate().unwrap();
        let widths: Vec<usize> = (0..4).map(|s| config.stage_dim(s)).collect();
        assert_eq!(widths, [128, 256, 512, 1024]);
        let grids: Vec<usize> = (0..4).map(|s| config.stage_grid(s)).collect();
        assert_eq!(grids, [56, 28, 14, 7]);
        assert_eq!(config.num_features(), 1024);
        assert_eq!(config.mlp_dim(3), 4096);
        // Stages 0–2 alternate plain and shifted 7×7 windows; the 7×7 last stage is one window.
        let shifted = BlockWindow {
            window: 7,
            shift: 3,
        };
        assert_eq!(config.block_window(2, 17), shifted);
        assert_eq!(config.block_window(2, 16).shift, 0);
        let last = BlockWindow {
            window: 7,
            shift: 0,
        };
        assert_eq!(config.block_window(3, 1), last);
    }

    #[test]
    fn small_stages_get_one_window_of_their_grid() {
        let config = SwinConfig::tiny();
        config.validate().unwrap();
        assert_eq!(config.block_window(0, 1).shift, 2);
        assert_eq!(
            config.block_window(2, 1),
            BlockWindow {
                window: 4,
                shift: 0
            }
        );
        let mut wide = SwinConfig::tiny();
        wide.window_size = 6;
        assert_eq!(
            wide.block_window(2, 1),
            BlockWindow {
                window: 4,
                shift: 0
            }
        );
        assert_eq!(wide.block_window(1, 1).shift, 3);
    }

    #[test]
    fn bad_sizes_are_named() {
        let message = |edit: fn(&mut SwinConfig)| {
            let mut config = SwinConfig::tiny();
            edit(&mut config);
            config.validate().unwrap_err()
        };
        assert!(message(|c| c.num_heads = vec![1, 3, 4]).contains("num_heads[1]"));
        assert!(message(|c| c.num_heads = vec![1, 2]).contains("num_heads 2"));
        assert!(message(|c| c.depths = vec![2, 0, 2]).contains("depths[1]"));
        assert!(message(|c| c.window_size = 0).contains("window_size"));
        assert!(message(|c| c.image_size = 6).contains("stage 2"));
        assert!(message(|c| c.mlp_ratio = 0.0).contains("mlp_ratio"));
        assert!(message(|c| c.layer_norm_eps = 0.0).contains("layer_norm_eps"));
        assert!(message(|c| c.drop_path_rate = 1.0).contains("drop_path_rate"));
    }
}
