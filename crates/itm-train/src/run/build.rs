//! Building a resolved run's model: its towers from the towers table and the system's zoo
//! entry, pretrained weights installed (BERT in the text tower, or both CLIP towers), its
//! caption tokenizer, and CLIP's learned temperature.

use burn::tensor::Device;
use itm_core::encoders::clip::CLIP_TEXT_POSITIONS;
use itm_core::encoders::{
    BertLevelEncoderConfig, BertModel, BertTextEncoderConfig, ClipConfig, ClipImageEncoder,
    ClipTextEncoder, GruTextEncoderConfig, HAT_LEVELS, ImageEncoder, ImageEncoderConfig,
    SwinLevelEncoderConfig, SwinModel, TextEncoder, TextEncoderConfig, hat_text_layers,
};
use itm_core::{VseModel, VseModelConfig};
use itm_data::{CLIP_END, CaptionTokenizer, RetrievalSplit, SubwordTokenizer, Vocabulary};

use std::path::Path;

use super::error::RunError;
use super::resolve::ResolvedRun;
use super::schema::RUN_FILE;
use crate::checkpoint::Checkpoint;
use crate::pretrained::{clip_tokenizer, load_clip, load_swin};
use crate::pretrained::{load_bert, sentence_max_length};
use crate::towers::{HAT_MAX_TOKENS, ImageTower, TextTower, tiny_bert, tiny_swin};

/// A model ready to train: what [`ResolvedRun::build`] returns.
pub struct BuiltModel {
    /// The model, initialised from `training.seed`, pretrained weights installed.
    pub model: VseModel,
    /// Its configuration (written beside its checkpoints).
    pub config: VseModelConfig,
    /// Its caption tokenizer.
    pub tokenizer: CaptionTokenizer,
    /// InfoNCE's initial inverse temperature `e^t` when the weights come with one (a
    /// pretrained CLIP's `logit_scale`); `None`: the loss's own start.
    pub temperature: Option<f64>,
}

/// Pretrained towers loaded from a Hugging Face folder, to put into the model built from the
/// configuration that came with them.
// Built once per run and moved into the model: the size difference of the variants is moot.
#[allow(clippy::large_enum_variant)]
enum PretrainedTowers {
    /// A BERT-family transformer: the text tower's `bert`.
    Bert(BertModel),
    /// Both CLIP towers with their projections, and CLIP's learned log inverse temperature.
    Clip {
        image: ClipImageEncoder,
        text: ClipTextEncoder,
        log_scale: f64,
    },
    /// The multi-level towers' pretrained parts: a Swin (with HAT's stage norms) and a BERT,
    /// each when a folder was given.
    Levels {
        swin: Option<SwinModel>,
        bert: Option<BertModel>,
    },
}

impl ResolvedRun {
    /// The model on `device` (the training device: autodiff for training), with the
    /// tokenizer of `train`'s captions (a word vocabulary for a BiGRU; a pretrained folder's
    /// own). The parameters are drawn from `training.seed` after any pretrained weights were
    /// read, then those weights replace their towers' draws. A CLIP trained from scratch gets a
    /// word-level tokenizer in CLIP's layout ([`SubwordTokenizer::clip_words`]), written to the
    /// output folder as `tokenizer.json`.
    pub fn build(&self, train: &RetrievalSplit, device: &Device) -> Result<BuiltModel, RunError> {
        if let Some(folder) = &self.model.init {
            return self.build_from_checkpoint(folder, train, device);
        }
        let (config, tokenizer, pretrained) = self.model_config(train, device)?;
        device.seed(self.training.seed);
        let mut model = config.init(device);
        let temperature = match pretrained {
            None => None,
            Some(towers) => towers.install(&mut model)?,
        };
        Ok(BuiltModel {
            model,
            config,
            tokenizer,
            temperature,
        })
    }

    /// `model.init`: the model, weights and tokenizer of an `itm` checkpoint folder, to be
    /// fine-tuned with this run's recipe. Its region width must be the data's.
    fn build_from_checkpoint(
        &self,
        folder: &Path,
        train: &RetrievalSplit,
        device: &Device,
    ) -> Result<BuiltModel, RunError> {
        let (model, config, tokenizer) = Checkpoint::new(folder).load(device)?;
        if let ImageEncoderConfig::Regions(regions) = &config.image {
            let found = train.regions().map(|r| r.d_feature());
            if found != Some(regions.d_feature) {
                return Err(RunError::key(
                    &folder.join("model.json").display().to_string(),
                    "model.init",
                    format!(
                        "the checkpoint's image encoder reads {}-wide region features; the \
                         data have {}",
                        regions.d_feature,
                        found.map_or("no region features".to_string(), |d| format!("{d}-wide"))
                    ),
                ));
            }
        }
        Ok(BuiltModel {
            model,
            config,
            tokenizer,
            temperature: None,
        })
    }

    /// The model's configuration, its tokenizer, and the pretrained towers to install.
    fn model_config(
        &self,
        train: &RetrievalSplit,
        device: &Device,
    ) -> Result<(VseModelConfig, CaptionTokenizer, Option<PretrainedTowers>), RunError> {
        if self.entry().text == TextTower::BertLevels {
            return self.levels_config(train, device);
        }
        let d = self.model.embed;
        let d_feature = match self.model.images {
            ImageTower::Regions => train
                .regions()
                .ok_or_else(|| {
                    RunError::key(RUN_FILE, "model.images", "the data have no region features")
                })?
                .d_feature(),
            _ => 0,
        };
        let Some(image) = self
            .model
            .images
            .encoder(d, self.model.image_size, d_feature)
        else {
            return self.clip_config(train, device);
        };
        Ok(match &self.model.bert {
            None => {
                let vocab = Vocabulary::build_with(
                    train.captions.iter().map(String::as_str),
                    1,
                    self.model.tokenizer,
                );
                let text = TextEncoderConfig::Gru(
                    GruTextEncoderConfig::new(vocab.len(), d).with_d_word(self.model.word_dim),
                );
                (
                    self.entry()
                        .model_with(image, text, self.model.towers, self.pieces()),
                    vocab.into(),
                    None,
                )
            }
            Some(folder) => {
                let (bert, bert_config) = load_bert(folder, device)?;
                let max_len = sentence_max_length(folder, &bert_config)?;
                let tokenizer =
                    SubwordTokenizer::from_file(&folder.join("tokenizer.json"), max_len)?;
                let text = TextEncoderConfig::Bert(BertTextEncoderConfig::new(bert_config, d));
                (
                    self.entry()
                        .model_with(image, text, self.model.towers, self.pieces()),
                    tokenizer.into(),
                    Some(PretrainedTowers::Bert(bert)),
                )
            }
        })
    }

    /// [`ResolvedRun::model_config`] for the multi-level towers of HAT and DAIM: the Swin of
    /// `model.swin` (whose image side must be `model.image_size`) or the tiny one, and the
    /// BERT of `model.bert` with its tokenizer (captions of at most 32 tokens, HAT's) or a tiny
    /// one over a word-level tokenizer of `train` (CLIP-from-scratch's layout, written to the
    /// output folder as `tokenizer.json`); the levels are the Swin's last three stages and
    /// the BERT's [`hat_text_layers`], or the highest `model.levels` of them.
    fn levels_config(
        &self,
        train: &RetrievalSplit,
        device: &Device,
    ) -> Result<(VseModelConfig, CaptionTokenizer, Option<PretrainedTowers>), RunError> {
        let (swin_config, swin) = match &self.model.swin {
            Some(folder) => {
                let (model, config) = load_swin(folder, device)?;
                if config.image_size != self.model.image_size {
                    return Err(RunError::key(
                        &folder.join("config.json").display().to_string(),
                        "model.image_size",
                        format!(
                            "the Swin reads {} px images, the run {}: set it to {}",
                            config.image_size, self.model.image_size, config.image_size
                        ),
                    ));
                }
                let eps = config.layer_norm_eps;
                (
                    config.with_stage_norms(true),
                    Some(model.with_stage_norms(eps)),
                )
            }
            None => (tiny_swin(self.model.image_size), None),
        };
        let count = self.model.levels.unwrap_or(HAT_LEVELS);
        if swin_config.num_stages() < count {
            return Err(RunError::key(
                RUN_FILE,
                "model.swin",
                format!(
                    "the Swin has {} stages: its last {count} are the levels",
                    swin_config.num_stages()
                ),
            ));
        }
        let (bert_config, tokenizer, bert) = match &self.model.bert {
            Some(folder) => {
                let (bert, config) = load_bert(folder, device)?;
                let max_len = sentence_max_length(folder, &config)?.min(HAT_MAX_TOKENS);
                let tokenizer =
                    SubwordTokenizer::from_file(&folder.join("tokenizer.json"), max_len)?;
                (config, tokenizer, Some(bert))
            }
            None => {
                let path = self.output.join("tokenizer.json");
                let tokenizer =
                    SubwordTokenizer::clip_words(&train.captions, &path, HAT_MAX_TOKENS)?;
                (tiny_bert(tokenizer.vocab_size()), tokenizer, None)
            }
        };
        let d = self.model.embed;
        let mut layers = hat_text_layers(bert_config.num_hidden_layers);
        let layers = layers.split_off(layers.len() - count);
        let model = self.entry().model(
            ImageEncoderConfig::SwinLevels(
                SwinLevelEncoderConfig::new(swin_config, d).with_levels(count),
            ),
            TextEncoderConfig::BertLevels(BertLevelEncoderConfig::new(bert_config, layers, d)),
            self.model.towers,
        );
        let pretrained =
            (swin.is_some() || bert.is_some()).then_some(PretrainedTowers::Levels { swin, bert });
        Ok((model, tokenizer.into(), pretrained))
    }

    /// [`ResolvedRun::model_config`] for CLIP's towers: the folder's CLIP (whose sizes must
    /// be `model.embed` and `model.image_size`) with its tokenizer, or [`ClipConfig::small`]
    /// over a word-level tokenizer of `train`.
    fn clip_config(
        &self,
        train: &RetrievalSplit,
        device: &Device,
    ) -> Result<(VseModelConfig, CaptionTokenizer, Option<PretrainedTowers>), RunError> {
        let (config, tokenizer, pretrained) = match &self.model.clip {
            Some(folder) => {
                let (clip, config) = load_clip(folder, device)?;
                let config_path = folder.join("config.json").display().to_string();
                for (key, ours, theirs) in [
                    ("model.embed", self.model.embed, config.projection_dim),
                    (
                        "model.image_size",
                        self.model.image_size,
                        config.vision.image_size,
                    ),
                ] {
                    if ours != theirs {
                        return Err(RunError::key(
                            &config_path,
                            key,
                            format!(
                                "the checkpoint has {theirs}, the run {ours}: leave the key out \
                                 or set it to {theirs}"
                            ),
                        ));
                    }
                }
                let tokenizer = clip_tokenizer(folder, &config)?;
                let log_scale = f64::from(clip.logit_scale.val().into_scalar::<f32>());
                let (image, text) = clip.into_towers();
                let towers = PretrainedTowers::Clip {
                    image,
                    text,
                    log_scale,
                };
                (config, tokenizer, Some(towers))
            }
            None => {
                let path = self.output.join("tokenizer.json");
                let tokenizer =
                    SubwordTokenizer::clip_words(&train.captions, &path, CLIP_TEXT_POSITIONS)?;
                let end = tokenizer.token_id(CLIP_END).ok_or_else(|| {
                    RunError::key(
                        &path.display().to_string(),
                        "model.clip",
                        format!("the tokenizer has no {CLIP_END} token"),
                    )
                })? as usize;
                let config = ClipConfig::small(
                    tokenizer.vocab_size(),
                    end,
                    self.model.image_size,
                    self.model.embed,
                );
                (config, tokenizer, None)
            }
        };
        let model = self.entry().model_with(
            ImageEncoderConfig::Clip(config.image_encoder()),
            TextEncoderConfig::Clip(config.text_encoder()),
            self.model.towers,
            self.pieces(),
        );
        Ok((model, tokenizer.into(), pretrained))
    }
}

impl PretrainedTowers {
    /// Replaces the towers of `model` (built from the configuration that came with these
    /// weights) by these; returns the initial inverse temperature `e^t` they come with.
    fn install(self, model: &mut VseModel) -> Result<Option<f64>, RunError> {
        match (self, &mut model.image, &mut model.text) {
            (Self::Bert(bert), _, TextEncoder::Bert(text)) => {
                text.bert = bert;
                Ok(None)
            }
            (
                Self::Clip {
                    image: vision,
                    text: words,
                    log_scale,
                },
                ImageEncoder::Clip(image),
                TextEncoder::Clip(text),
            ) => {
                *image = vision;
                *text = words;
                Ok(Some(log_scale.exp()))
            }
            (
                Self::Levels { swin, bert },
                ImageEncoder::SwinLevels(image),
                TextEncoder::BertLevels(text),
            ) => {
                if let Some(swin) = swin {
                    image.swin = swin;
                }
                if let Some(bert) = bert {
                    text.bert = bert;
                }
                Ok(None)
            }
            _ => Err(RunError::key(
                RUN_FILE,
                "model",
                "the pretrained towers do not fit the model's towers",
            )),
        }
    }
}
