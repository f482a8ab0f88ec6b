//! Tiny `shapes` runs: the data set, its word tokenizer, a quiet training, and the run file of
//! `itm train --config`.

use std::path::Path;

use burn::tensor::Device;
use itm_core::VseModelConfig;
use itm_data::shapes::{RegionFeatureConfig, ShapesConfig, ShapesDataset};
use itm_data::{CaptionTokenizer, Vocabulary};
use itm_train::{TrainError, Trainer, TrainingConfig, TrainingOutcome};

/// A `shapes` data set: `images` = `[train, dev, test]` images (five captions each), every
/// image with `n_regions` region features of width `d_feature` (noise 1).
pub fn shapes(seed: u64, images: [usize; 3], d_feature: usize, n_regions: usize) -> ShapesDataset {
    let [train_images, dev_images, test_images] = images;
    ShapesDataset::generate(&ShapesConfig {
        seed,
        train_images,
        dev_images,
        test_images,
        regions: RegionFeatureConfig {
            d_feature,
            n_regions,
            noise: 1.0,
        },
    })
}

/// The vocabulary of the training captions (every word, minimum count 1) and its tokenizer.
pub fn word_tokenizer(data: &ShapesDataset) -> (Vocabulary, CaptionTokenizer) {
    let vocab = Vocabulary::build(data.train.retrieval.captions.iter().map(String::as_str), 1);
    (vocab.clone(), CaptionTokenizer::from(vocab))
}

/// Trains `model` on the training split of `data` (validated on its dev split) without a
/// progress display, writing the run into `output` when given.
pub fn fit_quietly(
    training: TrainingConfig,
    device: Device,
    model: &VseModelConfig,
    data: &ShapesDataset,
    tokenizer: &CaptionTokenizer,
    output: Option<&Path>,
) -> Result<TrainingOutcome, TrainError> {
    let mut trainer = Trainer::new(training, device).with_quiet(true);
    if let Some(folder) = output {
        trainer = trainer.with_output(folder);
    }
    trainer.fit(model, &data.train.retrieval, &data.dev.retrieval, tokenizer)
}

/// The `[data]` section of a run file on `shapes` (`kind = "shapes"`).
#[derive(Debug, Clone, Copy)]
pub struct ShapesToml {
    /// The data set's seed.
    pub seed: u64,
    /// Training, dev and test images.
    pub images: [usize; 3],
    /// Region feature width; `None` leaves the entry's default (pixel models).
    pub feature_width: Option<usize>,
}

impl ShapesToml {
    /// A run file for `itm train --config`: `output`, then `[model]` with the `model` lines,
    /// this `[data]` section, and `[training]` with the `training` lines (each line ends with
    /// `\n`).
    pub fn run_file(&self, output: &Path, model: &str, training: &str) -> String {
        let [train, dev, test] = self.images;
        let width = self
            .feature_width
            .map(|w| format!("feature_width = {w}\n"))
            .unwrap_or_default();
        format!(
            "output = {output:?}\n\
             [model]\n{model}\
             [data]\nkind = \"shapes\"\nseed = {}\ntrain_images = {train}\ndev_images = {dev}\n\
             test_images = {test}\n{width}\
             [training]\n{training}",
            self.seed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_has_the_asked_sizes() {
        let data = shapes(3, [4, 2, 1], 8, 3);
        assert_eq!(data.train.retrieval.captions.len(), 20);
        assert_eq!(data.dev.retrieval.captions.len(), 10);
        let (vocab, tokenizer) = word_tokenizer(&data);
        assert_eq!(tokenizer.vocab_size(), vocab.len());
    }

    #[test]
    fn run_files_name_every_section() {
        let text = ShapesToml {
            seed: 7,
            images: [200, 40, 40],
            feature_width: Some(32),
        }
        .run_file(Path::new("/tmp/run"), "embed = 32\n", "epochs = 2\n");
        assert_eq!(
            text,
            "output = \"/tmp/run\"\n[model]\nembed = 32\n[data]\nkind = \"shapes\"\nseed = 7\n\
             train_images = 200\ndev_images = 40\ntest_images = 40\nfeature_width = 32\n\
             [training]\nepochs = 2\n"
        );
    }
}
