//! A checked run: [`ResolvedRun`] holds the [`RunConfig`] and its zoo entry (looked up once),
//! after every value was checked against the entry. Only a resolved run is built, trained or
//! written.

use std::ops::Deref;

use itm_core::encoders::HAT_LEVELS;
use itm_data::{DataError, atomic};

use super::error::RunError;
use super::schema::{DataSection, RUN_FILE, RunConfig};
use crate::config::TrainingConfig;
use crate::towers::{ImageTower, PATCH_GRID, SWIN_GRID, TextTower, Towers};
use crate::zoo::{self, Pieces, ZooEntry, hrem_relation};

/// Where the values of a [`RunConfig`] built in code come from, in messages.
const BUILT: &str = "run configuration";

/// A [`RunConfig`] whose values were checked, with its system's zoo entry.
///
/// Made by [`RunConfig::from_file`], [`RunConfig::from_overrides`],
/// [`RunConfig::from_run_folder`] or, for a configuration built in code, [`RunConfig::resolve`].
/// It reads as the [`RunConfig`] it holds.
#[derive(Debug, Clone)]
pub struct ResolvedRun {
    entry: &'static ZooEntry,
    config: RunConfig,
}

impl RunConfig {
    /// Checks every value against the system `model.name`; the error names the key.
    pub fn resolve(self) -> Result<ResolvedRun, RunError> {
        let entry = zoo::lookup(&self.model.name).ok_or_else(|| {
            RunError::key(
                BUILT,
                "model.name",
                format!(
                    "unknown system {:?}; known: {}",
                    self.model.name,
                    zoo::names()
                ),
            )
        })?;
        ResolvedRun::checked(entry, self, BUILT)
    }
}

impl ResolvedRun {
    /// `config` for `entry` (whose name it has), once checked; `origin` names where the values
    /// came from in errors.
    pub(crate) fn checked(
        entry: &'static ZooEntry,
        config: RunConfig,
        origin: &str,
    ) -> Result<Self, RunError> {
        check(entry, &config).map_err(|(key, message)| RunError::key(origin, key, message))?;
        Ok(Self { entry, config })
    }

    /// The system's zoo entry.
    pub fn entry(&self) -> &'static ZooEntry {
        self.entry
    }

    /// The pieces of the system this run keeps (`model.instance_relation`,
    /// `model.local_weight`).
    pub fn pieces(&self) -> Pieces {
        Pieces {
            instance_relation: self.config.model.instance_relation,
            local_weight: self.config.model.local_weight,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// The configuration, to change and [`RunConfig::resolve`] again.
    pub fn into_config(self) -> RunConfig {
        self.config
    }

    /// Writes the configuration as `run.toml` in the output folder (atomically).
    pub fn save(&self) -> Result<(), RunError> {
        let output = &self.config.output;
        std::fs::create_dir_all(output).map_err(|e| DataError::io(output, e))?;
        let text = toml::to_string(&self.config).map_err(|e| RunError::File {
            path: output.join(RUN_FILE),
            message: e.to_string(),
        })?;
        atomic::write(&output.join(RUN_FILE), text.as_bytes())?;
        Ok(())
    }
}

impl PartialEq for ResolvedRun {
    /// The same configuration (the entry is the one it names).
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
    }
}

impl Deref for ResolvedRun {
    type Target = RunConfig;

    fn deref(&self) -> &RunConfig {
        &self.config
    }
}

/// A key and what is wrong with its value.
type Problem = (&'static str, String);

/// Checks every value of `config` against `entry`.
fn check(entry: &ZooEntry, config: &RunConfig) -> Result<(), Problem> {
    check_training(&config.training)?;
    check_model(entry, config)?;
    check_objective(entry, config)?;
    check_data(config)?;
    check_pixels(entry, config)
}

fn positive(key: &'static str, value: f64) -> Result<(), Problem> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err((key, format!("must be a positive number, found {value}")))
    }
}

fn non_negative(key: &'static str, value: f64) -> Result<(), Problem> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err((key, format!("must be a number ≥ 0, found {value}")))
    }
}

fn at_least(key: &'static str, value: usize, low: usize) -> Result<(), Problem> {
    if value >= low {
        Ok(())
    } else {
        Err((key, format!("must be at least {low}, found {value}")))
    }
}

/// The `[training]` values on their own.
fn check_training(t: &TrainingConfig) -> Result<(), Problem> {
    at_least("training.epochs", t.epochs, 1)?;
    at_least("training.batch_size", t.batch_size, 2)?;
    at_least("training.validation_captions", t.validation_captions, 1)?;
    at_least("training.log_steps", t.log_steps, 1)?;
    positive("training.learning_rate", t.learning_rate)?;
    positive("training.lr_decay_factor", t.lr_decay_factor)?;
    positive("training.grad_clip", t.grad_clip)?;
    non_negative("training.weight_decay", t.weight_decay)?;
    non_negative("training.margin", t.margin)?;
    non_negative("training.distinguishability", t.distinguishability)?;
    if !(0.0..1.0).contains(&t.region_drop) {
        return Err((
            "training.region_drop",
            format!("must be in [0, 1), found {}", t.region_drop),
        ));
    }
    Ok(())
}

/// The `[model]` values against the entry's towers and layers.
fn check_model(entry: &ZooEntry, config: &RunConfig) -> Result<(), Problem> {
    let model = &config.model;
    at_least("model.embed", model.embed, 2)?;
    at_least("model.word_dim", model.word_dim, 1)?;
    if entry.text == TextTower::Bert && model.bert.is_none() {
        return Err((
            "model.bert",
            format!("{} needs a pretrained BERT-family folder", entry.name),
        ));
    }
    let clip = entry.text == TextTower::Clip;
    if clip && model.bert.is_some() {
        return Err((
            "model.bert",
            "the clip entry's text tower is CLIP's: a pretrained CLIP folder goes in model.clip"
                .into(),
        ));
    }
    if !clip && model.clip.is_some() {
        return Err((
            "model.clip",
            format!(
                "{} has no CLIP towers: only the clip entry reads a CLIP folder",
                entry.name
            ),
        ));
    }
    if clip != (model.images == ImageTower::Clip) {
        return Err((
            "model.images",
            if clip {
                "the clip entry reads pixels through CLIP's vision tower: use \"clip\"".into()
            } else {
                format!(
                    "\"clip\" is the clip entry's vision tower, not {}'s",
                    entry.name
                )
            },
        ));
    }
    let levels = entry.text == TextTower::BertLevels;
    if levels != (model.images == ImageTower::Swin) {
        return Err((
            "model.images",
            if levels {
                format!(
                    "{} reads pixels through the Swin levels tower: use \"swin\"",
                    entry.name
                )
            } else {
                format!(
                    "\"swin\" is the image tower of the multi-level systems (hat, daim), not \
                     {}'s",
                    entry.name
                )
            },
        ));
    }
    match model.levels {
        Some(_) if !levels => {
            return Err((
                "model.levels",
                format!(
                    "{} has no multi-level head: only hat and daim score levels",
                    entry.name
                ),
            ));
        }
        Some(count) if !(1..=HAT_LEVELS).contains(&count) => {
            return Err((
                "model.levels",
                format!("must be 1, 2 or 3 (the highest levels kept), found {count}"),
            ));
        }
        _ => {}
    }
    if !levels && config.training.frozen_backbone_epochs > 0 {
        return Err((
            "training.frozen_backbone_epochs",
            format!(
                "{} has no backbones to freeze: only hat and daim freeze their pretrained Swin \
                 and BERT",
                entry.name
            ),
        ));
    }
    if !levels && model.swin.is_some() {
        return Err((
            "model.swin",
            format!(
                "{} has no Swin tower: only hat and daim read a Swin folder",
                entry.name
            ),
        ));
    }
    let text = if model.bert.is_some() && !levels {
        TextTower::Bert
    } else {
        entry.text
    };
    if model.images == ImageTower::Regions
        && model.towers == Towers::System
        && let Some(heads) = entry
            .region_tower(text)
            .encoder(1, model.embed)
            .self_attention
        && !model.embed.is_multiple_of(heads)
    {
        return Err((
            "model.embed",
            format!(
                "{}'s region tower has a self-attention block with {heads} heads: D must be a \
                 multiple of {heads}, found {} (or set model.towers = \"vse_infinity\")",
                entry.name, model.embed
            ),
        ));
    }
    match (model.local_weight, entry.pieces().local_weight) {
        (Some(weight), Some(_)) if !(weight.is_finite() && weight >= 0.0) => {
            return Err((
                "model.local_weight",
                format!("must be a number ≥ 0 (0: no local score), found {weight}"),
            ));
        }
        (Some(_), None) => {
            return Err((
                "model.local_weight",
                format!(
                    "{} has no multi-grained head (a global plus a weighted local score): only \
                     {} have one",
                    entry.name,
                    multi_grained_systems()
                ),
            ));
        }
        _ => {}
    }
    if model.instance_relation && !entry.has_global(model.embed) {
        return Err((
            "model.instance_relation",
            format!(
                "the layer relates pooled embeddings: {} scores region and word sets only",
                entry.name
            ),
        ));
    }
    let relation = hrem_relation(model.embed);
    if model.instance_relation && !model.embed.is_multiple_of(relation.n_heads) {
        return Err((
            "model.embed",
            format!(
                "{}'s instance relation layer has {} heads: D must be a multiple of {}, found {}",
                entry.name, relation.n_heads, relation.n_heads, model.embed
            ),
        ));
    }
    Ok(())
}

/// The systems with a multi-grained head, comma-separated.
fn multi_grained_systems() -> String {
    zoo::ZOO
        .iter()
        .filter(|entry| entry.pieces().local_weight.is_some())
        .map(|entry| entry.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The losses that read pooled embeddings need a head with a global part (the cosine of
/// pooled vectors: cosine and multi-grained heads).
fn check_objective(entry: &ZooEntry, config: &RunConfig) -> Result<(), Problem> {
    let t = &config.training;
    let global = entry.has_global(config.model.embed);
    if t.loss.needs_embeddings() && !global {
        return Err((
            "training.loss",
            format!(
                "the ambiguity-aware loss reads pooled embeddings: {} scores region and word \
                 sets only (use a system with pooled vectors such as aahr)",
                entry.name
            ),
        ));
    }
    // A multi-level head gives the term each level's mean features (DAIM, per level).
    let levels = entry.similarity(config.model.embed).reads_levels();
    if t.distinguishability > 0.0 && !global && !levels {
        return Err((
            "training.distinguishability",
            format!(
                "the term reads pooled embeddings: {} scores region and word sets",
                entry.name
            ),
        ));
    }
    Ok(())
}

/// The `[data]` values, and the data against the image tower.
fn check_data(config: &RunConfig) -> Result<(), Problem> {
    let pixels = config.model.images.reads_pixels();
    match &config.data {
        DataSection::Karpathy { .. } if !pixels => Err((
            "model.images",
            "Karpathy data are image files: use \"resnet\" or \"vit\" (or the clip entry)".into(),
        )),
        DataSection::Precomp { .. } if pixels => Err((
            "model.images",
            "a precomp folder holds region features: pixel towers read shapes or a Karpathy JSON"
                .into(),
        )),
        DataSection::Shapes {
            train_images,
            dev_images,
            test_images,
            feature_width,
            ..
        } => {
            at_least("data.train_images", *train_images, 2)?;
            at_least("data.dev_images", *dev_images, 1)?;
            at_least("data.test_images", *test_images, 1)?;
            at_least("data.feature_width", *feature_width, 1)
        }
        _ => Ok(()),
    }
}

/// The image side of a pixel tower.
fn check_pixels(entry: &ZooEntry, config: &RunConfig) -> Result<(), Problem> {
    let model = &config.model;
    let clip = entry.text == TextTower::Clip;
    if model.images == ImageTower::Swin
        && model.swin.is_none()
        && !model.image_size.is_multiple_of(SWIN_GRID)
    {
        return Err((
            "model.image_size",
            format!(
                "the Swin trained from scratch cuts the image into a {SWIN_GRID}×{SWIN_GRID} \
                 grid of patches: a multiple of {SWIN_GRID}, found {}",
                model.image_size
            ),
        ));
    }
    let grid = model.images == ImageTower::Vit || (clip && model.clip.is_none());
    if grid && !model.image_size.is_multiple_of(PATCH_GRID) {
        return Err((
            "model.image_size",
            format!(
                "the image is cut into an {PATCH_GRID}×{PATCH_GRID} grid of patches: a multiple \
                 of {PATCH_GRID}, found {}",
                model.image_size
            ),
        ));
    }
    if model.images.reads_pixels() {
        at_least("model.image_size", model.image_size, PATCH_GRID)?;
    }
    Ok(())
}
