//! Model checkpoints: the weights (burnpack), the model configuration and the vocabulary, each
//! written atomically so that an interrupted write never replaces a good checkpoint.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::Device;
use itm_core::{VseModel, VseModelConfig};
use itm_data::{CaptionTokenizer, DataError, SubwordTokenizer, Vocabulary, atomic};

/// A checkpoint folder: `model.bpk`, `model.json`, and `vocab.json` or `tokenizer.json`.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    folder: PathBuf,
}

/// Training or checkpointing failed: bad data, or a weights file that cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A data or checkpoint file, or the values in it.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The weights file.
    #[error("{path}: {message}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The model scored a pair NaN or infinite: its outputs are no longer numbers.
    #[error("the model's score of image {image} and caption {caption} is {value}")]
    NonFiniteScores {
        /// Row of the score.
        image: usize,
        /// Column of the score.
        caption: usize,
        /// The score.
        value: f32,
    },
    /// Training diverged (every step of an epoch had a non-finite loss or gradient, or the
    /// model's validation scores were not finite) and stopped; the checkpoint and metrics of
    /// the earlier epochs were left as they were.
    #[error(
        "epoch {epoch}: training diverged ({reason}) and stopped; the last good checkpoint, if \
         any, is kept: lower the learning rate or check the data"
    )]
    Diverged {
        /// 0-based epoch.
        epoch: usize,
        /// What was not finite.
        reason: String,
    },
    /// Every epoch's dev scores were degenerate (more than half of a direction's queries tied
    /// at their ground truth: a collapsed model), so no epoch was kept as the best and no
    /// checkpoint was written; the metrics of the epochs were.
    #[error(
        "every one of the {epochs} epochs scored the dev split degenerately (most queries tie \
         at their ground truth: the model collapsed), so no checkpoint was kept; see \
         metrics.jsonl, then lower the learning rate or check the data"
    )]
    Degenerate {
        /// Epochs trained.
        epochs: usize,
    },
}

impl Checkpoint {
    /// A checkpoint stored in `folder`.
    pub fn new(folder: impl Into<PathBuf>) -> Self {
        Self {
            folder: folder.into(),
        }
    }

    /// The folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    fn weights(&self) -> PathBuf {
        self.folder.join("model.bpk")
    }

    /// Saves `model` with its configuration and caption tokenizer (`vocab.json`, or
    /// `tokenizer.json` with `tokenizer_max_len.txt`).
    pub fn save(
        &self,
        model: &VseModel,
        config: &VseModelConfig,
        tokenizer: &CaptionTokenizer,
    ) -> Result<(), TrainError> {
        std::fs::create_dir_all(&self.folder).map_err(|e| DataError::io(&self.folder, e))?;
        let weights = self.weights();
        let temporary = self
            .folder
            .join(format!(".model.bpk.tmp-{}", std::process::id()));
        model
            .clone()
            .into_record()
            .save(&temporary)
            .and_then(|()| {
                std::fs::rename(&temporary, &weights)
                    .map_err(|e| burn::store::RecordError::Io(e.to_string()))
            })
            .map_err(|e| {
                let _ = std::fs::remove_file(&temporary);
                TrainError::Weights {
                    path: weights.clone(),
                    message: e.to_string(),
                }
            })?;
        atomic::write(
            &self.folder.join("model.json"),
            config.to_string().as_bytes(),
        )?;
        match tokenizer {
            CaptionTokenizer::Words(vocab) => vocab.save(&self.folder.join("vocab.json"))?,
            CaptionTokenizer::Subwords(subwords) => {
                let source = subwords.path();
                let bytes = std::fs::read(source).map_err(|e| DataError::io(source, e))?;
                atomic::write(&self.folder.join("tokenizer.json"), &bytes)?;
                atomic::write(
                    &self.folder.join("tokenizer_max_len.txt"),
                    subwords.max_len().to_string().as_bytes(),
                )?;
            }
        }
        Ok(())
    }

    /// Loads the model (on `device`), its configuration and caption tokenizer.
    pub fn load(
        &self,
        device: &Device,
    ) -> Result<(VseModel, VseModelConfig, CaptionTokenizer), TrainError> {
        let config = self.config()?;
        let tokenizer = self.load_tokenizer()?;
        let weights = self.weights();
        let record = ModuleRecord::load(&weights).map_err(|e| TrainError::Weights {
            path: weights.clone(),
            message: e.to_string(),
        })?;
        let model =
            config
                .init(device)
                .try_load_record(record)
                .map_err(|e| TrainError::Weights {
                    path: weights.clone(),
                    message: e.to_string(),
                })?;
        Ok((model, config, tokenizer))
    }

    /// The model configuration (`model.json`), without loading the weights.
    pub fn config(&self) -> Result<VseModelConfig, TrainError> {
        let config_path = self.folder.join("model.json");
        let text =
            std::fs::read_to_string(&config_path).map_err(|e| DataError::io(&config_path, e))?;
        Ok(serde_json::from_str(&text).map_err(|e| {
            DataError::invalid(&config_path, format!("not a model configuration: {e}"))
        })?)
    }

    fn load_tokenizer(&self) -> Result<CaptionTokenizer, TrainError> {
        let vocab = self.folder.join("vocab.json");
        if vocab.exists() {
            return Ok(Vocabulary::load(&vocab)?.into());
        }
        let subwords = self.folder.join("tokenizer.json");
        if !subwords.exists() {
            return Err(DataError::invalid(
                &vocab,
                "the caption tokenizer is missing: a checkpoint holds vocab.json (word models) \
                 or tokenizer.json (subword models), this one neither",
            )
            .into());
        }
        let length_path = self.folder.join("tokenizer_max_len.txt");
        let text =
            std::fs::read_to_string(&length_path).map_err(|e| DataError::io(&length_path, e))?;
        let max_len: usize = text.trim().parse().map_err(|_| {
            DataError::invalid(&length_path, format!("not a token count: {text:?}"))
        })?;
        Ok(SubwordTokenizer::from_file(&subwords, max_len)?.into())
    }
}
