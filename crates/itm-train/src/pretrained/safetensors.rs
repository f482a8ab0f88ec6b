//! Pretrained weights from SafeTensors files in the PyTorch layout (Hugging Face, timm, …).
//!
//! - [`load_safetensors_into`]: fills any burn module from a `.safetensors` file, renaming the
//!   file's keys with regex rules first. Linear weights are transposed (PyTorch `[out, in]` →
//!   burn `[in, out]`) and norm parameters `weight`/`bias` are matched to burn's `gamma`/`beta`
//!   (burn-store's `PyTorchToBurnAdapter`); 0-d tensors fill one-element parameters; float
//!   tensors are converted to float32. Every
//!   parameter of the module must be found with its shape, and every tensor of the file used,
//!   else the error lists what is missing, unexpected or misshapen.
//! - [`save_safetensors`]: the inverse, for exporting a module (or building test files).

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    ApplyError, BurnToPyTorchAdapter, FloatCastAdapter, KeyRemapper, ModuleAdapter, ModuleContext,
    ModuleSnapshot, ModuleStore, PathFilter, PyTorchToBurnAdapter, SafetensorsStore, bridge,
};
use burn::tensor::{DType, Shape, TensorData};

use crate::error::PretrainedError;

pub(super) fn invalid(path: &Path, message: impl Into<String>) -> PretrainedError {
    PretrainedError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Refuses a configuration whose model cannot be stored in `weights`: `values` (a lower bound of
/// its parameter count from the configuration's sizes; `None` when it overflows) at two bytes
/// each, the smallest float type a checkpoint stores, must fit in the file. Checked before the
/// model is built, so that absurd sizes give this error instead of failing to allocate.
pub(crate) fn check_weights_fit(
    config_path: &Path,
    weights: &Path,
    values: Option<u128>,
) -> Result<(), PretrainedError> {
    let bytes = std::fs::metadata(weights)
        .map_err(|source| PretrainedError::Io {
            path: weights.to_path_buf(),
            source,
        })?
        .len();
    match values {
        Some(values) if values.saturating_mul(2) <= u128::from(bytes) => Ok(()),
        _ => Err(invalid(
            config_path,
            format!(
                "its sizes describe a model of {} weights, more than {} ({bytes} bytes) can hold",
                values.map_or("more than 2^128".to_string(), |v| v.to_string()),
                weights.display()
            ),
        )),
    }
}

/// `Σ Π factors`, in `u128`, `None` on overflow.
pub(crate) fn sum_of_products(terms: &[&[usize]]) -> Option<u128> {
    terms.iter().try_fold(0u128, |sum, factors| {
        let product = factors
            .iter()
            .try_fold(1u128, |p, &f| p.checked_mul(f as u128))?;
        sum.checked_add(product)
    })
}

/// Opens a SafeTensors file, reporting a missing file as an I/O error and a malformed one as
/// invalid.
fn open(path: &Path) -> Result<SafetensorsStore, PretrainedError> {
    std::fs::metadata(path).map_err(|source| PretrainedError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut store = SafetensorsStore::from_file(path);
    store
        .get_all_tensors()
        .map_err(|e| invalid(path, format!("not a readable SafeTensors file: {e}")))?;
    Ok(store)
}

/// The tensor names stored in a SafeTensors file, sorted.
pub fn safetensors_names(path: &Path) -> Result<Vec<String>, PretrainedError> {
    let mut store = open(path)?;
    store
        .keys()
        .map_err(|e| invalid(path, format!("not a readable SafeTensors file: {e}")))
}

/// Every tensor of the SafeTensors file `path`, named as in the file.
pub(crate) fn read_safetensors(path: &Path) -> Result<Vec<PackTensor>, PretrainedError> {
    let mut store = open(path)?;
    Ok(store
        .get_all_tensors()
        .map_err(|e| invalid(path, format!("not a readable SafeTensors file: {e}")))?
        .values()
        .cloned()
        .collect())
}

/// The SafeTensors file `path` as a [`StateDict`](crate::import::StateDict) (keys as in the
/// file): a state dict saved with `safetensors.torch.save_file`, such as HAT's.
pub fn safetensors_state_dict(path: &Path) -> Result<crate::import::StateDict, PretrainedError> {
    Ok(crate::import::StateDict {
        tensors: read_safetensors(path)?,
        data_parallel: false,
    })
}

/// Fills `module` from the SafeTensors file `path` (PyTorch layout).
///
/// `remap` rules `(regex, replacement)` rename the file's keys to the module's parameter paths
/// (e.g. `("^bert\\.", "")`); they apply in order, each to the result of the previous ones.
/// Every parameter must be filled and every tensor used, else
/// [`PretrainedError::Mismatch`] lists the missing, unexpected and misshapen tensors.
pub fn load_safetensors_into<M: Module>(
    module: M,
    path: &Path,
    remap: &[(&str, &str)],
) -> Result<M, PretrainedError> {
    load_safetensors_ignoring(module, path, remap, &[])
}

/// [`load_safetensors_into`], except that tensors whose remapped name matches one of the
/// `ignore` regexes may be left unused (buffers such as `position_ids`, heads of other tasks).
pub fn load_safetensors_ignoring<M: Module>(
    module: M,
    path: &Path,
    remap: &[(&str, &str)],
    ignore: &[&str],
) -> Result<M, PretrainedError> {
    let tensors = read_safetensors(path)?;
    apply_pytorch_tensors(module, path, tensors, remap, ignore, false)
}

/// Fills `module` from `tensors` in the PyTorch layout read from `path` (named in errors): the
/// shared part of [`load_safetensors_ignoring`] and of the import of the authors' `.pth`
/// checkpoints. With `skip_enum_variants`, enum variants are not part of the module paths
/// (`image.fc.weight`, not `image.Regions.fc.weight`), as in PyTorch.
pub(crate) fn apply_pytorch_tensors<M: Module>(
    mut module: M,
    path: &Path,
    tensors: Vec<PackTensor>,
    remap: &[(&str, &str)],
    ignore: &[&str],
    skip_enum_variants: bool,
) -> Result<M, PretrainedError> {
    let remapper = KeyRemapper::from_patterns(remap.to_vec())
        .map_err(|e| invalid(path, format!("bad key remapping pattern: {e}")))?;
    // Compiled once here for the error: `PathFilter::with_regex` panics on a bad pattern.
    KeyRemapper::from_patterns(ignore.iter().map(|p| (*p, "")).collect())
        .map_err(|e| invalid(path, format!("bad ignore pattern: {e}")))?;
    let ignored = ignore.iter().fold(PathFilter::new(), |filter, pattern| {
        filter.with_regex(pattern)
    });

    let (tensors, renames) = remapper.remap(tensors);
    let mut origin: BTreeMap<String, String> = BTreeMap::new();
    for (new, old) in renames {
        if let Some(previous) = origin.insert(new.clone(), old.clone()) {
            return Err(invalid(
                path,
                format!("the tensors {previous} and {old} are both renamed to {new}"),
            ));
        }
    }

    let adapter: Box<dyn ModuleAdapter> = Box::new(
        PyTorchToBurnAdapter
            .chain(ScalarAsVector)
            .chain(FloatCastAdapter::to(DType::F32)),
    );
    let result = module.apply(tensors, None, Some(adapter), skip_enum_variants);

    let file_name = |model_path: &str| -> String {
        let alternative = model_path
            .strip_suffix(".gamma")
            .map(|stem| format!("{stem}.weight"))
            .or_else(|| {
                model_path
                    .strip_suffix(".beta")
                    .map(|stem| format!("{stem}.bias"))
            });
        origin
            .get(model_path)
            .or_else(|| alternative.and_then(|a| origin.get(&a)))
            .cloned()
            .unwrap_or_else(|| model_path.to_string())
    };
    let missing: Vec<String> = result.missing.into_iter().map(|(p, _)| p).collect();
    let unexpected: Vec<String> = result
        .unused
        .iter()
        .filter(|name| !ignored.matches(name))
        .map(|name| origin.get(name).cloned().unwrap_or_else(|| name.clone()))
        .collect();
    let mismatched: Vec<String> = result
        .errors
        .iter()
        .map(|error| match error {
            ApplyError::ShapeMismatch {
                path: model_path,
                expected,
                found,
            } => format!(
                "{} (model {model_path}): expected {:?}, found {:?} (burn layout)",
                file_name(model_path),
                expected.as_slice(),
                found.as_slice(),
            ),
            other => other.to_string(),
        })
        .collect();
    if missing.is_empty() && unexpected.is_empty() && mismatched.is_empty() {
        Ok(module)
    } else {
        Err(PretrainedError::Mismatch {
            path: path.to_path_buf(),
            missing,
            unexpected,
            mismatched,
        })
    }
}

/// Reads a 0-d tensor (a PyTorch scalar parameter, such as CLIP's `logit_scale`) as the
/// one-element vector that holds a scalar parameter in burn.
#[derive(Debug, Clone)]
struct ScalarAsVector;

impl ModuleAdapter for ScalarAsVector {
    fn adapt(&self, tensor: PackTensor, _: ModuleContext<'_>) -> PackTensor {
        if tensor.shape.num_dims() != 0 {
            return tensor;
        }
        let (name, dtype) = (tensor.name.clone(), tensor.dtype);
        bridge::map_data(tensor, name, dtype, Shape::new([1]), |data| {
            let (bytes, _, dtype) = data.into_parts();
            TensorData::from_bytes(bytes, [1], dtype)
        })
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}

/// Saves `module` to `path` in the PyTorch layout that [`load_safetensors_into`] reads (Linear
/// weights `[out, in]`, norms `weight`/`bias`), renaming its parameter paths with `remap`
/// first. The file is replaced atomically.
pub fn save_safetensors<M: Module>(
    module: &M,
    path: &Path,
    remap: &[(&str, &str)],
) -> Result<(), PretrainedError> {
    let remapper = KeyRemapper::from_patterns(remap.to_vec())
        .map_err(|e| invalid(path, format!("bad key remapping pattern: {e}")))?;
    let mut store = SafetensorsStore::from_file(path)
        .remap(remapper)
        .with_to_adapter(BurnToPyTorchAdapter)
        .overwrite(true);
    module
        .save_into(&mut store)
        .map_err(|e| invalid(path, format!("cannot write the weights: {e}")))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::error::mismatch_message;
    use burn::tensor::Device;
    use burn::tensor::{Distribution, Tensor};
    use itm_core::encoders::{ResNetEncoderConfig, VitEncoderConfig};

    fn folder(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("itm-pretrained-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn max_difference<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    /// Saved in the PyTorch layout under a prefix, loaded back with a remapping rule into a
    /// fresh encoder: identical outputs.
    #[test]
    fn resnet_and_vit_round_trip_through_safetensors() {
        let device = Device::default();
        let dir = folder("round-trip");
        let images = Tensor::<4>::random([2, 3, 16, 16], Distribution::Normal(0.0, 1.0), &device);

        // Batch statistics from a training-mode forward, so that the running mean and variance
        // differ from a fresh encoder's.
        let training = device.clone().autodiff();
        training.seed(1);
        let config = ResNetEncoderConfig::new(vec![4, 8], 6);
        let resnet = config.init(&training);
        let _ = resnet.forward(images.clone().to_device(&training));
        let resnet = resnet.valid();
        let path = dir.join("resnet.safetensors");
        save_safetensors(&resnet, &path, &[("^", "backbone.")]).unwrap();
        let names = safetensors_names(&path).unwrap();
        assert!(
            names.iter().all(|n| n.starts_with("backbone.")),
            "{names:?}"
        );
        for suffix in ["norm.weight", "norm.bias", "running_mean", "running_var"] {
            assert!(names.iter().any(|n| n.ends_with(suffix)), "{names:?}");
        }
        let fresh = config.init(&device);
        assert!(
            max_difference(
                fresh.forward(images.clone()),
                resnet.forward(images.clone())
            ) > 1e-3
        );
        let loaded = load_safetensors_into(fresh, &path, &[(r"^backbone\.", "")]).unwrap();
        assert_eq!(
            max_difference(
                loaded.forward(images.clone()),
                resnet.forward(images.clone())
            ),
            0.0
        );

        device.seed(2);
        let config = VitEncoderConfig::new(16, 8, 12, 2, 3, 5);
        let vit = config.init(&device);
        let path = dir.join("vit.safetensors");
        save_safetensors(&vit, &path, &[]).unwrap();
        let fresh = config.init(&device);
        assert!(max_difference(fresh.forward(images.clone()), vit.forward(images.clone())) > 1e-3);
        let loaded = load_safetensors_into(fresh, &path, &[]).unwrap();
        assert_eq!(
            max_difference(loaded.forward(images.clone()), vit.forward(images)),
            0.0
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn long_listings_are_cut_in_the_message() {
        let missing: Vec<String> = (0..25).map(|i| format!("layer.{i}.weight")).collect();
        let message = mismatch_message(Path::new("w.safetensors"), &missing, &[], &[]);
        assert!(message.starts_with("w.safetensors: "), "{message}");
        assert!(message.contains("(25):") && message.contains("layer.19.weight"));
        assert!(!message.contains("layer.20.weight") && message.ends_with("… and 5 more"));
        assert!(!message.contains("unexpected"), "{message}");
    }

    #[test]
    fn missing_unexpected_and_misshapen_tensors_are_listed() {
        let device = Device::default();
        let dir = folder("mismatch");
        let config = ResNetEncoderConfig::new(vec![4, 8], 6);
        let path = dir.join("renamed.safetensors");
        // One tensor stored under another name: missing in the model, unexpected in the file.
        save_safetensors(
            &config.init(&device),
            &path,
            &[(r"^projection\.weight$", "head.weight")],
        )
        .unwrap();
        let err = load_safetensors_into(config.init(&device), &path, &[]).unwrap_err();
        match &err {
            PretrainedError::Mismatch {
                missing,
                unexpected,
                mismatched,
                ..
            } => {
                assert_eq!(missing, &["projection.weight"]);
                assert_eq!(unexpected, &["head.weight"]);
                assert!(mismatched.is_empty());
            }
            other => panic!("{other}"),
        }
        let message = err.to_string();
        assert!(
            message.contains("renamed.safetensors")
                && message.contains("missing from the file")
                && message.contains("projection.weight")
                && message.contains("unexpected in the file")
                && message.contains("head.weight"),
            "{message}"
        );

        // A wider projection: its weight and bias are misshapen.
        let path = dir.join("wider.safetensors");
        save_safetensors(
            &ResNetEncoderConfig::new(vec![4, 8], 7).init(&device),
            &path,
            &[],
        )
        .unwrap();
        let err = load_safetensors_into(config.init(&device), &path, &[]).unwrap_err();
        let message = err.to_string();
        match err {
            PretrainedError::Mismatch {
                missing,
                unexpected,
                mismatched,
                ..
            } => {
                assert!(missing.is_empty() && unexpected.is_empty(), "{message}");
                assert_eq!(mismatched.len(), 2, "{message}");
                assert!(
                    mismatched[0].contains("projection.")
                        && message.contains("[8, 6]")
                        && message.contains("[8, 7]"),
                    "{message}"
                );
            }
            other => panic!("{other}"),
        }
        assert!(message.contains("wider.safetensors"), "{message}");

        let err = load_safetensors_into(config.init(&device), &dir.join("none.safetensors"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("none.safetensors"), "{err}");
        std::fs::write(dir.join("junk.safetensors"), b"not safetensors").unwrap();
        let err = load_safetensors_into(config.init(&device), &dir.join("junk.safetensors"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("junk.safetensors") && err.contains("SafeTensors"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
