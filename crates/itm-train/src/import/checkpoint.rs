//! A checkpoint as the authors' `train.py` saved it: `torch.save({'model': [state dicts],
//! 'opt': argparse.Namespace, 'epoch', 'best_rsum', 'Eiters'}, path)`.
//!
//! The tensors are read by burn's PyTorch reader, which names them `model.{i}.{key}` (the list
//! index, then the state dict's key). Everything else — above all `opt`, which the reader
//! leaves unsupported — comes from our own pickle reader ([`itm_data::pickle`]), which never
//! executes anything: the zip's `data.pkl`, or for the legacy format (PyTorch < 1.6, e.g.
//! SCAN's `model_best.pth.tar`) the fourth of the pickles stored one after another.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{ModuleStore, PytorchStore};
use burn::tensor::Bytes;
use itm_data::pickle::{self, Value};

use super::error::ImportError;

/// Largest `data.pkl` read (the pickle of a checkpoint holds no tensor data; CHAN's pickles a
/// whole vocabulary in `opt`, a few MB).
const MAX_PICKLE_BYTES: u64 = 256 << 20;

/// The magic number that starts PyTorch's legacy (pre-zip) format, `0x1950a86a20f9469cfc6c`,
/// as the little-endian bytes of the pickled integer (it is wider than 64 bits).
const LEGACY_MAGIC: [u8; 10] = [108, 252, 156, 70, 249, 32, 106, 168, 80, 25];

/// One state dict of the checkpoint's `model` list.
#[derive(Debug, Clone)]
pub struct StateDict {
    /// Its tensors, named by their keys within the state dict (a `module.` prefix removed).
    pub tensors: Vec<PackTensor>,
    /// Whether the keys carried DataParallel's `module.` prefix.
    pub data_parallel: bool,
}

impl StateDict {
    /// The keys, sorted.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.tensors.iter().map(|t| t.name.as_str()).collect();
        keys.sort_unstable();
        keys
    }

    /// The shape of the tensor `key`, if present.
    pub fn shape(&self, key: &str) -> Option<Vec<usize>> {
        self.tensors
            .iter()
            .find(|t| t.name == key)
            .map(|t| t.shape.as_slice().to_vec())
    }

    /// Whether a key starts with `prefix`.
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.tensors.iter().any(|t| t.name.starts_with(prefix))
    }

    /// Gives the tensor `key` the shape `shape` with the same number of elements (PyTorch keeps
    /// scalars and vectors as `Linear(1, 1)` or `Linear(D, 1)` weights, `[1, 1]` and `[1, D]`).
    /// Nothing is done when `key` is absent; an error says why a present tensor cannot be.
    pub fn reshape(&mut self, key: &str, shape: &[usize]) -> Result<(), String> {
        let Some(tensor) = self.tensors.iter_mut().find(|t| t.name == key) else {
            return Ok(());
        };
        let found = tensor.shape.as_slice().to_vec();
        if found.iter().product::<usize>() != shape.iter().product::<usize>() {
            return Err(format!(
                "{key} is {found:?}, expected {} values",
                shape.iter().product::<usize>()
            ));
        }
        tensor.shape = shape.to_vec().into();
        Ok(())
    }

    /// Splits the packed input projection of a PyTorch `MultiheadAttention` whose keys start
    /// with `prefix` (`{prefix}in_proj_weight [3D, D]`, `{prefix}in_proj_bias [3D]`) into the
    /// `{prefix}query.*`, `{prefix}key.*` and `{prefix}value.*` that burn's attention has.
    pub fn split_attention_projection(&mut self, prefix: &str) -> Result<(), String> {
        for part in ["weight", "bias"] {
            let names = ["query", "key", "value"].map(|p| format!("{prefix}{p}.{part}"));
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            self.split_rows(&format!("{prefix}in_proj_{part}"), &names)?;
        }
        Ok(())
    }

    /// Replaces the tensor `key`, `[parts·n, …]`, by `parts.len()` tensors `[n, …]` named
    /// `parts`, its consecutive blocks of rows (PyTorch's `MultiheadAttention` packs its
    /// query, key and value projections into one `in_proj_weight [3D, D]` and
    /// `in_proj_bias [3D]`). Nothing is done when `key` is absent; an error says why a present
    /// tensor cannot be split.
    pub fn split_rows(&mut self, key: &str, parts: &[&str]) -> Result<(), String> {
        let Some(index) = self.tensors.iter().position(|t| t.name == key) else {
            return Ok(());
        };
        let tensor = &self.tensors[index];
        let shape = tensor.shape.as_slice().to_vec();
        let rows = shape.first().copied().unwrap_or(0);
        if parts.is_empty() || rows == 0 || rows % parts.len() != 0 {
            return Err(format!(
                "{key} is {shape:?}: its rows do not split into {} equal blocks",
                parts.len()
            ));
        }
        let bytes = tensor
            .to_bytes()
            .map_err(|e| format!("{key} cannot be read: {e}"))?;
        let block = bytes.len() / parts.len();
        let mut part_shape = shape.clone();
        part_shape[0] = rows / parts.len();
        let dtype = tensor.dtype;
        let split: Vec<PackTensor> = parts
            .iter()
            .enumerate()
            .map(|(i, name)| {
                PackTensor::new(
                    name.to_string(),
                    dtype,
                    part_shape.clone(),
                    None,
                    Bytes::from_bytes_vec(bytes[i * block..(i + 1) * block].to_vec()),
                )
            })
            .collect();
        self.tensors.splice(index..=index, split);
        Ok(())
    }
}

/// A checkpoint of an authors' `train.py`.
#[derive(Debug, Clone)]
pub struct AuthorsCheckpoint {
    /// The file.
    pub path: PathBuf,
    /// The training options (`opt`, an `argparse.Namespace`): name → value.
    pub opt: BTreeMap<String, Value>,
    /// The state dicts of `model`, in order (image encoder, text encoder, then any
    /// similarity module or criterion).
    pub state_dicts: Vec<StateDict>,
    /// `epoch` as saved (some scripts save the next epoch, SCAN the current one).
    pub epoch: Option<i64>,
    /// `best_rsum` as saved.
    pub best_rsum: Option<f64>,
}

impl AuthorsCheckpoint {
    /// Reads `path`: refuses a missing, truncated or foreign file with a message that names it.
    pub fn open(path: &Path) -> Result<Self, ImportError> {
        let top = read_top_level(path)?;
        let invalid = |message: String| ImportError::invalid(path, message);
        if !matches!(top, Value::Dict(_)) {
            return Err(invalid(format!(
                "the checkpoint holds {}, not the dict of a train.py checkpoint",
                top.kind()
            )));
        }
        if top.get("opt").is_none() && matches!(top.get("state_dict"), Some(Value::Dict(_))) {
            return Self::open_lightning(path, &top);
        }
        let opt = match top.get("opt") {
            None => {
                return Err(invalid(
                    "no `opt` entry: not a checkpoint saved by the authors' train.py (it saves \
                     {'model': [...], 'opt': ..., 'epoch': ...})"
                        .into(),
                ));
            }
            Some(opt) => opt,
        };
        let fields = match opt.namespace().or(match opt {
            Value::Dict(_) => Some(opt),
            _ => None,
        }) {
            Some(Value::Dict(items)) => items
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.clone())))
                .collect(),
            _ => {
                return Err(invalid(format!(
                    "`opt` is {}, not the argparse.Namespace of the training options",
                    opt.kind()
                )));
            }
        };
        let count = match top.get("model") {
            Some(Value::List(list)) => list.len(),
            Some(other) => {
                return Err(invalid(format!(
                    "`model` is {}, not the list of state dicts the authors save",
                    other.kind()
                )));
            }
            None => return Err(invalid("no `model` entry (the list of state dicts)".into())),
        };
        let state_dicts = read_state_dicts(path, count)?;
        Ok(Self {
            path: path.to_path_buf(),
            opt: fields,
            state_dicts,
            epoch: top.get("epoch").and_then(Value::as_i64),
            best_rsum: top.get("best_rsum").and_then(Value::as_f64),
        })
    }

    /// A PyTorch Lightning checkpoint (HAT's): `{"state_dict": {...}, "hyper_parameters":
    /// {"config": {...}}, "epoch": ...}`. Its one state dict is the whole model's; the
    /// options are `hyper_parameters.config` (none when it is not a plain dict).
    fn open_lightning(path: &Path, top: &Value) -> Result<Self, ImportError> {
        let opt = match top.get("hyper_parameters").and_then(|h| h.get("config")) {
            Some(Value::Dict(items)) => items
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.clone())))
                .collect(),
            _ => BTreeMap::new(),
        };
        let tensors = read_tensors(path)?
            .into_iter()
            .map(|(name, tensor)| {
                let key = name.strip_prefix("state_dict.").ok_or_else(|| {
                    ImportError::invalid(
                        path,
                        format!("tensor {name} is not inside the checkpoint's `state_dict`"),
                    )
                })?;
                let mut tensor = tensor;
                tensor.name = key.to_string();
                Ok(tensor)
            })
            .collect::<Result<Vec<_>, ImportError>>()?;
        Ok(Self {
            path: path.to_path_buf(),
            opt,
            state_dicts: vec![StateDict {
                tensors,
                data_parallel: false,
            }],
            epoch: top.get("epoch").and_then(Value::as_i64),
            best_rsum: None,
        })
    }

    /// The option `name`, if the checkpoint's `opt` has it.
    pub fn opt_value(&self, name: &str) -> Option<&Value> {
        self.opt.get(name)
    }

    /// A non-negative integer option; an error names the file and the option.
    pub fn opt_usize(&self, name: &str) -> Result<usize, ImportError> {
        let value = self.required(name)?;
        value
            .as_i64()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| self.wrong(name, value, "a non-negative integer"))
    }

    /// A string option.
    pub fn opt_str(&self, name: &str) -> Result<&str, ImportError> {
        let value = self.required(name)?;
        value
            .as_str()
            .ok_or_else(|| self.wrong(name, value, "a string"))
    }

    /// A boolean option; `default` when `opt` does not have it (older scripts).
    pub fn opt_bool_or(&self, name: &str, default: bool) -> Result<bool, ImportError> {
        match self.opt.get(name) {
            None => Ok(default),
            Some(value) => value
                .as_bool()
                .ok_or_else(|| self.wrong(name, value, "a boolean")),
        }
    }

    /// A number option.
    pub fn opt_f64(&self, name: &str) -> Result<f64, ImportError> {
        let value = self.required(name)?;
        value
            .as_f64()
            .ok_or_else(|| self.wrong(name, value, "a number"))
    }

    fn required(&self, name: &str) -> Result<&Value, ImportError> {
        self.opt.get(name).ok_or_else(|| {
            ImportError::invalid(&self.path, format!("`opt` has no `{name}` option"))
        })
    }

    fn wrong(&self, name: &str, value: &Value, expected: &str) -> ImportError {
        ImportError::invalid(
            &self.path,
            format!("`opt.{name}` is {}, expected {expected}", value.kind()),
        )
    }

    /// The state dict at `index` of `model`, named `role` in errors.
    pub fn state_dict(&self, index: usize, role: &str) -> Result<&StateDict, ImportError> {
        self.state_dicts.get(index).ok_or_else(|| {
            ImportError::invalid(
                &self.path,
                format!(
                    "`model` holds {} state dicts; the {role} should be number {index}",
                    self.state_dicts.len()
                ),
            )
        })
    }
}

/// The top-level value of the checkpoint, from the zip's `data.pkl` or the legacy stream.
fn read_top_level(path: &Path) -> Result<Value, ImportError> {
    let mut file = std::fs::File::open(path).map_err(|e| ImportError::io(path, e))?;
    let mut head = [0u8; 4];
    let n = file.read(&mut head).map_err(|e| ImportError::io(path, e))?;
    if n == 4 && head == *b"PK\x03\x04" {
        let file = std::fs::File::open(path).map_err(|e| ImportError::io(path, e))?;
        let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| {
            ImportError::invalid(path, format!("not a readable zip (torch.save) file: {e}"))
        })?;
        let names = archive
            .file_names()
            .map(|name| name.map(|n| n.into_owned()))
            .collect::<Result<Vec<String>, _>>()
            .map_err(|e| ImportError::invalid(path, format!("unreadable zip directory: {e}")))?;
        let name = names
            .into_iter()
            .filter(|name| name == "data.pkl" || name.ends_with("/data.pkl"))
            .min_by_key(String::len)
            .ok_or_else(|| {
                ImportError::invalid(path, "the zip has no data.pkl: not a torch.save file")
            })?;
        let entry = archive
            .by_name(&name)
            .map_err(|e| ImportError::invalid(path, format!("{name}: {e}")))?;
        if entry.size() > MAX_PICKLE_BYTES {
            return Err(ImportError::invalid(
                path,
                format!(
                    "{name} claims {} bytes, more than a checkpoint's",
                    entry.size()
                ),
            ));
        }
        let mut bytes = Vec::new();
        entry
            .take(MAX_PICKLE_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| ImportError::invalid(path, format!("{name}: {e} (truncated file?)")))?;
        let (value, _) =
            pickle::read(&bytes).map_err(|e| ImportError::invalid(path, format!("{name}: {e}")))?;
        return Ok(value);
    }
    // Legacy: magic number, protocol version, system info, then the object.
    let bytes = std::fs::read(path).map_err(|e| ImportError::io(path, e))?;
    let not_torch = || {
        ImportError::invalid(
            path,
            "neither a zip nor a legacy torch.save file (a PyTorch checkpoint starts with one \
             of the two)",
        )
    };
    let (magic, _) = pickle::read(&bytes).map_err(|_| not_torch())?;
    if magic != Value::BigInt(LEGACY_MAGIC.to_vec()) {
        return Err(not_torch());
    }
    let mut values = pickle::read_sequence(&bytes, 4)
        .map_err(|e| ImportError::invalid(path, format!("{e} (truncated file?)")))?;
    Ok(values.pop().expect("four values were read"))
}

/// Every tensor of the checkpoint, by its full dotted name.
fn read_tensors(path: &Path) -> Result<Vec<(String, PackTensor)>, ImportError> {
    let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
    let tensors = store
        .get_all_tensors()
        .map_err(|e| ImportError::invalid(path, format!("the weights cannot be read: {e}")))?;
    Ok(tensors
        .iter()
        .map(|(name, tensor)| (name.to_string(), tensor.clone()))
        .collect())
}

/// The tensors of `model.{i}.*` for each of the `count` state dicts.
fn read_state_dicts(path: &Path, count: usize) -> Result<Vec<StateDict>, ImportError> {
    let tensors = read_tensors(path)?;
    let mut dicts: Vec<Vec<PackTensor>> = vec![Vec::new(); count];
    for (name, tensor) in tensors {
        let (index, key) = name
            .strip_prefix("model.")
            .and_then(|rest| rest.split_once('.'))
            .and_then(|(i, key)| Some((i.parse::<usize>().ok()?, key)))
            .filter(|(i, _)| *i < count)
            .ok_or_else(|| {
                ImportError::invalid(
                    path,
                    format!(
                        "tensor {name} is not inside one of the {count} state dicts of `model`"
                    ),
                )
            })?;
        let mut tensor = tensor.clone();
        tensor.name = key.to_string();
        dicts[index].push(tensor);
    }
    Ok(dicts
        .into_iter()
        .map(|mut tensors| {
            let data_parallel =
                !tensors.is_empty() && tensors.iter().all(|t| t.name.starts_with("module."));
            if data_parallel {
                for tensor in &mut tensors {
                    tensor.name = tensor.name["module.".len()..].to_string();
                }
            }
            StateDict {
                tensors,
                data_parallel,
            }
        })
        .collect())
}
