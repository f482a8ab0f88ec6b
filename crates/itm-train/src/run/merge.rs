//! Reading a run: the keys of a file and of the command line, merged as TOML tables over the
//! serialised defaults of the chosen system, then read (strictly) as a [`RunConfig`].
//!
//! Precedence: command line over file over the system's published defaults. `[data]` is one
//! choice (its `kind` decides its keys): a given section replaces the default one whole.

use std::path::{Path, PathBuf};

use itm_data::{DataError, Tokenization};
use serde::Serialize;
use toml::{Table, Value};

use super::error::RunError;
use super::resolve::ResolvedRun;
use super::schema::{DataSection, ModelSection, RUN_FILE, RunConfig, RunOverrides};
use crate::pretrained::read_clip_config;
use crate::towers::{TextTower, Towers};
use crate::zoo::{self, ZooEntry};

/// The section whose given value replaces the default whole.
const CHOICE_SECTION: &str = "data";

impl RunConfig {
    /// Reads `path` (any subset of the keys), applies `overrides` and fills the rest from the
    /// system's published defaults; the result is checked ([`ResolvedRun`]).
    pub fn from_file(path: &Path, overrides: RunOverrides) -> Result<ResolvedRun, RunError> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let file: Table = toml::from_str(&text).map_err(|e| RunError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::merged(file, overrides, &path.display().to_string())
    }

    /// The run described by `overrides` alone.
    pub fn from_overrides(overrides: RunOverrides) -> Result<ResolvedRun, RunError> {
        Self::merged(Table::new(), overrides, "command line")
    }

    /// Reads the effective configuration a run wrote in `folder`.
    pub fn from_run_folder(folder: &Path) -> Result<ResolvedRun, RunError> {
        Self::from_file(&folder.join(RUN_FILE), RunOverrides::default())
    }

    /// `file` with `overrides` over it, over the defaults of the system it names.
    pub(crate) fn merged(
        file: Table,
        overrides: RunOverrides,
        origin: &str,
    ) -> Result<ResolvedRun, RunError> {
        let file_error = |message: String| RunError::File {
            path: PathBuf::from(origin),
            message,
        };
        let mut given = file;
        merge_over(&mut given, overrides_table(overrides).map_err(file_error)?);
        let name = match given.get("model").and_then(|model| model.get("name")) {
            None => zoo::ZOO[0].name.to_string(),
            Some(Value::String(name)) => name.clone(),
            Some(other) => {
                return Err(RunError::key(
                    origin,
                    "model.name",
                    format!("must be a system's name, found {other}"),
                ));
            }
        };
        let entry = zoo::lookup(&name).ok_or_else(|| {
            RunError::key(
                origin,
                "model.name",
                format!("unknown system {name:?}; known: {}", zoo::names()),
            )
        })?;
        let defaults = defaults(entry, &given)?;
        let mut merged = Table::try_from(&defaults).map_err(|e| file_error(e.to_string()))?;
        merge_over(&mut merged, given);
        let config: RunConfig = merged.try_into().map_err(|e| file_error(e.to_string()))?;
        ResolvedRun::checked(entry, config, origin)
    }
}

/// The defaults of `entry`. A CLIP checkpoint fixes the joint width and the image side:
/// unless `given` sets them, they are read from its config.json (a written run.toml gives
/// both, so a resumed or evaluated run does not need the folder).
fn defaults(entry: &'static ZooEntry, given: &Table) -> Result<RunConfig, RunError> {
    let model_key = |key: &str| given.get("model").and_then(|model| model.get(key));
    let clip = match model_key("clip") {
        Some(Value::String(folder))
            if entry.text == TextTower::Clip
                && (model_key("embed").is_none() || model_key("image_size").is_none()) =>
        {
            Some(read_clip_config(Path::new(folder))?)
        }
        _ => None,
    };
    Ok(RunConfig {
        device: "flex".into(),
        output: PathBuf::from("runs").join(entry.name),
        model: ModelSection {
            name: entry.name.to_string(),
            embed: clip.as_ref().map_or(entry.d_embed, |c| c.projection_dim),
            word_dim: 300,
            images: entry.text.default_image_tower(),
            image_size: clip.as_ref().map_or(224, |c| c.vision.image_size),
            bert: None,
            clip: None,
            swin: None,
            init: None,
            towers: Towers::System,
            tokenizer: Tokenization::Simple,
            instance_relation: entry.pieces().instance_relation,
            local_weight: entry.pieces().local_weight,
            levels: None,
        },
        data: DataSection::default(),
        training: entry.training(),
    })
}

/// The command-line values as a table of the run's keys.
fn overrides_table(overrides: RunOverrides) -> Result<Table, String> {
    let RunOverrides {
        model,
        data,
        embed,
        bert,
        clip,
        swin,
        init,
        towers,
        tokenizer,
        local_weight,
        epochs,
        batch_size,
        learning_rate,
        seed,
        device,
        output,
    } = overrides;
    let mut table = Table::new();
    let mut sections = [("model", Table::new()), ("training", Table::new())];
    let mut put = |section: Option<usize>, key: &str, value: Option<Value>| match (section, value) {
        (_, None) => {}
        (None, Some(value)) => {
            table.insert(key.into(), value);
        }
        (Some(index), Some(value)) => {
            sections[index].1.insert(key.into(), value);
        }
    };
    put(None, "device", to_value(device)?);
    put(None, "output", to_value(output)?);
    put(None, CHOICE_SECTION, to_value(data)?);
    put(Some(0), "name", to_value(model)?);
    put(Some(0), "embed", to_value(embed)?);
    put(Some(0), "bert", to_value(bert)?);
    put(Some(0), "clip", to_value(clip)?);
    put(Some(0), "swin", to_value(swin)?);
    put(Some(0), "init", to_value(init)?);
    put(Some(0), "towers", to_value(towers)?);
    put(Some(0), "tokenizer", to_value(tokenizer)?);
    put(Some(0), "local_weight", to_value(local_weight)?);
    put(Some(1), "epochs", to_value(epochs)?);
    put(Some(1), "batch_size", to_value(batch_size)?);
    put(Some(1), "learning_rate", to_value(learning_rate)?);
    put(Some(1), "seed", to_value(seed)?);
    for (name, section) in sections {
        if !section.is_empty() {
            table.insert(name.into(), Value::Table(section));
        }
    }
    Ok(table)
}

/// `value` as TOML, `None` when not given.
fn to_value<T: Serialize>(value: Option<T>) -> Result<Option<Value>, String> {
    value
        .map(|value| Value::try_from(value).map_err(|e| e.to_string()))
        .transpose()
}

/// Puts every key of `over` into `base`: tables merge key by key, any other value (and the
/// [`CHOICE_SECTION`]) replaces the one in `base`.
fn merge_over(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(inner)), Value::Table(value)) if key != CHOICE_SECTION => {
                merge_over(inner, value);
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_merge_key_by_key_and_data_is_replaced_whole() {
        let mut base: Table = toml::from_str(
            "device = \"flex\"\n[model]\nname = \"chan\"\nembed = 8\n\
             [data]\nkind = \"precomp\"\npath = \"x\"\n",
        )
        .unwrap();
        let over: Table =
            toml::from_str("[model]\nembed = 16\n[data]\nkind = \"shapes\"\n").unwrap();
        merge_over(&mut base, over);
        assert_eq!(base["model"]["name"].as_str(), Some("chan"));
        assert_eq!(base["model"]["embed"].as_integer(), Some(16));
        assert_eq!(base["data"].as_table().unwrap().len(), 1);
        assert_eq!(base["device"].as_str(), Some("flex"));
        let flags = overrides_table(RunOverrides {
            epochs: Some(3),
            output: Some("out".into()),
            ..RunOverrides::default()
        })
        .unwrap();
        assert_eq!(flags["training"]["epochs"].as_integer(), Some(3));
        assert_eq!(flags["output"].as_str(), Some("out"));
        assert!(!flags.contains_key("model"));
    }
}
