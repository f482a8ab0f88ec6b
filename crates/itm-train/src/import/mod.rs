//! `itm import`: a checkpoint saved by a system's own `train.py` becomes an `itm` checkpoint
//! folder (`model.bpk`, `model.json`, the vocabulary or tokenizer, `import.json`) that
//! `itm evaluate --checkpoint`, `itm encode` and `itm index build` read like any other.
//!
//! - [`checkpoint`]: reading the authors' `.pth` (weights by burn's PyTorch reader, `opt` and
//!   the rest by our pickle reader).
//! - [`SYSTEMS`]: the table of the published systems: how each is recognised from its keys and
//!   options, and how its weights map onto the zoo's model (one file per system).
//! - [`import_checkpoint`]: recognise (or take `--system`), convert, write atomically.

mod chan;
pub mod checkpoint;
mod error;
mod esl;
mod hat;
mod hrem;
mod scan;
mod vse_infinity;
mod xdim;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use itm_core::{VseModel, VseModelConfig};
use itm_data::{CaptionTokenizer, Vocabulary, atomic};
use serde::Serialize;

pub use checkpoint::{AuthorsCheckpoint, StateDict};
pub use error::ImportError;

use crate::checkpoint::Checkpoint;
use crate::pretrained::apply_pytorch_tensors;

/// What `itm import` is given besides the checkpoint.
#[derive(Debug, Clone, Default)]
pub struct ImportInputs {
    /// The authors' checkpoint (`model_best.pth`, `checkpoint_*.pth.tar`, …).
    pub checkpoint: PathBuf,
    /// The vocabulary JSON of BiGRU systems (the SCAN / VSE∞ `vocab/*.json` layout).
    pub vocab: Option<PathBuf>,
    /// The Hugging Face folder whose config and tokenizer the BERT systems were built from.
    pub bert: Option<PathBuf>,
    /// The system, when not recognised from the checkpoint ([`SYSTEMS`] names them).
    pub system: Option<String>,
}

/// A converted model, before it is written.
pub struct Imported {
    /// The [`SYSTEMS`] name.
    pub system: &'static str,
    /// The model with the checkpoint's weights.
    pub model: VseModel,
    /// Its configuration.
    pub config: VseModelConfig,
    /// Its caption tokenizer.
    pub tokenizer: CaptionTokenizer,
    /// What the conversion did that a user should know (written to `import.json`).
    pub notes: Vec<String>,
}

/// A published system that `itm import` knows.
pub struct ImportableSystem {
    /// Its name (`--system`).
    pub name: &'static str,
    /// The repository (and branch) whose `train.py` saved the checkpoint.
    pub repository: &'static str,
    /// Whether a checkpoint has this system's layout.
    pub recognise: fn(&AuthorsCheckpoint) -> bool,
    /// The conversion.
    pub import: fn(&AuthorsCheckpoint, &ImportInputs, &Device) -> Result<Imported, ImportError>,
}

/// The systems `itm import` converts, in the order they are tried.
pub const SYSTEMS: &[ImportableSystem] = &[
    ImportableSystem {
        name: "vse_infinity_bigru",
        repository: "woodfrog/vse_infty, branch bigru",
        recognise: vse_infinity::recognise_bigru,
        import: vse_infinity::import_bigru,
    },
    ImportableSystem {
        name: "vse_infinity_bert",
        repository: "woodfrog/vse_infty, branch master",
        recognise: vse_infinity::recognise_bert,
        import: vse_infinity::import_bert,
    },
    ImportableSystem {
        name: "chan_bigru",
        repository: "ppanzx/CHAN (its BiGRU script)",
        recognise: chan::recognise_bigru,
        import: chan::import_bigru,
    },
    ImportableSystem {
        name: "chan_bert",
        repository: "ppanzx/CHAN (its BERT script)",
        recognise: chan::recognise_bert,
        import: chan::import_bert,
    },
    ImportableSystem {
        name: "esl_a",
        repository: "CrossmodalGroup/ESL (adaptive strategy, as published)",
        recognise: esl::recognise_adaptive,
        import: esl::import_adaptive,
    },
    ImportableSystem {
        name: "esl_h",
        repository: "CrossmodalGroup/ESL (heuristic_strategy = True)",
        recognise: esl::recognise_heuristic,
        import: esl::import_heuristic,
    },
    ImportableSystem {
        name: "xdim",
        repository: "CrossmodalGroup/X-Dim",
        recognise: xdim::recognise,
        import: xdim::import,
    },
    ImportableSystem {
        name: "hrem",
        repository: "CrossmodalGroup/HREM",
        recognise: hrem::recognise,
        import: hrem::import,
    },
    ImportableSystem {
        name: "hat",
        repository: "LuminosityX/HAT (a Lightning .ckpt; --bert DIR: its BERT's folder)",
        recognise: hat::recognise,
        import: hat::import,
    },
    ImportableSystem {
        name: "scan",
        repository: "kuanghuei/SCAN (t2i or i2t, Mean or LogSumExp, from opt)",
        recognise: scan::recognise,
        import: scan::import,
    },
];

/// What [`import_checkpoint`] wrote: also `import.json` in the folder.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// The system.
    pub system: String,
    /// The repository whose checkpoint it was.
    pub repository: String,
    /// The checkpoint file.
    pub source: PathBuf,
    /// `epoch` as the checkpoint saved it.
    pub epoch: Option<i64>,
    /// `best_rsum` as the checkpoint saved it (the authors' validation rsum).
    pub best_rsum: Option<f64>,
    /// Every option of `opt` (the training options), as read.
    pub options: BTreeMap<String, String>,
    /// What the conversion did that a user should know.
    pub notes: Vec<String>,
}

/// Converts `inputs.checkpoint` into an `itm` checkpoint folder `output` (files written
/// atomically; an existing folder's other files are kept).
pub fn import_checkpoint(
    inputs: &ImportInputs,
    output: &Path,
    device: &Device,
) -> Result<ImportReport, ImportError> {
    let checkpoint = AuthorsCheckpoint::open(&inputs.checkpoint)?;
    let system = match &inputs.system {
        Some(name) => SYSTEMS.iter().find(|s| s.name == name).ok_or_else(|| {
            ImportError::invalid(
                &inputs.checkpoint,
                format!("--system {name} is not one of {}", system_names()),
            )
        })?,
        None => SYSTEMS
            .iter()
            .find(|s| (s.recognise)(&checkpoint))
            .ok_or_else(|| ImportError::invalid(&inputs.checkpoint, unrecognised(&checkpoint)))?,
    };
    let imported = (system.import)(&checkpoint, inputs, device)?;
    Checkpoint::new(output).save(&imported.model, &imported.config, &imported.tokenizer)?;
    let report = ImportReport {
        system: imported.system.to_string(),
        repository: system.repository.to_string(),
        source: inputs.checkpoint.clone(),
        epoch: checkpoint.epoch,
        best_rsum: checkpoint.best_rsum,
        options: checkpoint
            .opt
            .iter()
            .filter(|(_, v)| !matches!(v, itm_data::pickle::Value::Dict(_)))
            .map(|(k, v)| (k.clone(), describe(v)))
            .collect(),
        notes: imported.notes,
    };
    let json = serde_json::to_vec_pretty(&report).expect("an import report serialises");
    atomic::write(&output.join("import.json"), &json)?;
    Ok(report)
}

/// The names of [`SYSTEMS`], comma-separated.
pub fn system_names() -> String {
    SYSTEMS
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What was found in a checkpoint that no system recognises, and what each expects.
fn unrecognised(checkpoint: &AuthorsCheckpoint) -> String {
    let found: Vec<String> = checkpoint
        .state_dicts
        .iter()
        .enumerate()
        .map(|(i, dict)| {
            let keys = dict.keys();
            let shown: Vec<&str> = keys.iter().copied().take(6).collect();
            format!(
                "model[{i}]: {} tensors ({}{})",
                keys.len(),
                shown.join(", "),
                if keys.len() > shown.len() {
                    ", …"
                } else {
                    ""
                }
            )
        })
        .collect();
    format!(
        "not a checkpoint of a system itm imports ({}); found {}; give --system NAME to \
         convert it anyway and list what does not fit",
        system_names(),
        found.join("; ")
    )
}

/// A short text of an option's value for `import.json`.
fn describe(value: &itm_data::pickle::Value) -> String {
    use itm_data::pickle::Value;
    match value {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::None => "None".into(),
        Value::List(items) | Value::Tuple(items) => format!(
            "[{}]",
            items.iter().map(describe).collect::<Vec<_>>().join(", ")
        ),
        other => other.kind(),
    }
}

/// The vocabulary `--vocab` that a BiGRU system needs.
pub(crate) fn require_vocab(
    inputs: &ImportInputs,
    system: &str,
) -> Result<Vocabulary, ImportError> {
    let path = inputs.vocab.as_ref().ok_or_else(|| {
        ImportError::invalid(
            &inputs.checkpoint,
            format!(
                "{system} encodes words with the vocabulary it was trained with: give it with \
                 --vocab VOCAB.json"
            ),
        )
    })?;
    Ok(Vocabulary::load(path)?)
}

/// Refuses the options of the precomputed-region systems that `itm` does not implement: an
/// image encoder other than `basic` (`basic` is `what`) and unnormalised embeddings.
pub(crate) fn check_region_options(
    checkpoint: &AuthorsCheckpoint,
    what: &str,
) -> Result<(), ImportError> {
    let kind = checkpoint.opt_str("precomp_enc_type")?;
    if kind != "basic" {
        return Err(ImportError::invalid(
            &checkpoint.path,
            format!("opt.precomp_enc_type is {kind:?}; only 'basic' ({what}) is imported"),
        ));
    }
    check_normalised(checkpoint)
}

/// Refuses unnormalised embeddings (`opt.no_imgnorm`, `opt.no_txtnorm`): itm always
/// l2-normalises them.
pub(crate) fn check_normalised(checkpoint: &AuthorsCheckpoint) -> Result<(), ImportError> {
    for flag in ["no_imgnorm", "no_txtnorm"] {
        if checkpoint.opt_bool_or(flag, false)? {
            return Err(ImportError::invalid(
                &checkpoint.path,
                format!("opt.{flag} is set; itm always l2-normalises the embeddings"),
            ));
        }
    }
    Ok(())
}

/// Renaming rules built at run time (`String`s) as the `&str` pairs [`load_state_dicts`] takes.
pub(crate) fn borrowed(rules: &[(String, String)]) -> Vec<(&str, &str)> {
    rules
        .iter()
        .map(|(pattern, replacement)| (pattern.as_str(), replacement.as_str()))
        .collect()
}

/// The vocabulary must have `vocab_size` words (the checkpoint's `opt.vocab_size`); `counted`
/// describes its count in the error (e.g. with the words the authors' code appended).
pub(crate) fn check_vocab_size(
    vocab: &Vocabulary,
    inputs: &ImportInputs,
    vocab_size: usize,
    counted: &str,
) -> Result<(), ImportError> {
    if vocab.len() == vocab_size {
        return Ok(());
    }
    let path = inputs
        .vocab
        .as_deref()
        .unwrap_or(inputs.checkpoint.as_path());
    Err(ImportError::invalid(
        path,
        format!(
            "{counted}, but the checkpoint's opt.vocab_size is {vocab_size}: this is not the \
             vocabulary the model was trained with"
        ),
    ))
}

/// Fills `model` from state dicts, each renamed by its own rules, then by `shared` rules;
/// tensors matching `ignore` may stay unused. Every parameter must be filled, else the error
/// lists the missing, unexpected and misshapen tensors.
pub(crate) fn load_state_dicts(
    checkpoint: &AuthorsCheckpoint,
    model: VseModel,
    dicts: &[(&StateDict, &[(&str, &str)])],
    shared: &[(&str, &str)],
    ignore: &[&str],
) -> Result<VseModel, ImportError> {
    let mut tensors = Vec::new();
    for (dict, remap) in dicts {
        let remapper = burn::store::KeyRemapper::from_patterns(remap.to_vec()).map_err(|e| {
            ImportError::invalid(&checkpoint.path, format!("bad key remapping pattern: {e}"))
        })?;
        let (renamed, _) = remapper.remap(dict.tensors.clone());
        tensors.extend(renamed);
    }
    Ok(apply_pytorch_tensors(
        model,
        &checkpoint.path,
        tensors,
        shared,
        ignore,
        true,
    )?)
}
