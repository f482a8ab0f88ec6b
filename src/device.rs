//! Choosing the backend at run time: the [`Device`] decides where every tensor lives.

use burn::tensor::Device;

/// Why a device name could not be turned into a device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// The backend exists but this build was compiled without its cargo feature.
    #[error("the {backend} backend is not compiled in: rebuild with `--features {backend}`")]
    NotCompiled {
        /// Backend name.
        backend: &'static str,
    },
    /// The name is not one of the known backends.
    #[error("unknown device {0:?}: expected flex, wgpu[:index] or cuda[:index]")]
    Unknown(String),
    /// The backend is compiled in but this machine has no device at that index.
    #[error("no {backend} device {index} on this machine ({found} found){hint}")]
    Missing {
        /// Backend name.
        backend: &'static str,
        /// The index asked for.
        index: usize,
        /// How many devices the backend enumerated.
        found: usize,
        /// What to install when there is none at all.
        hint: &'static str,
    },
    /// The device was found but the backend failed (panicked) while opening it.
    #[error("the {name} device could not be opened: {reason}")]
    Unusable {
        /// The device name as given.
        name: String,
        /// The backend's own message.
        reason: String,
    },
}

/// The backends compiled into this build.
pub fn available() -> Vec<&'static str> {
    let mut names = vec!["flex"];
    if cfg!(feature = "wgpu") {
        names.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    names
}

/// Parses `flex`, `wgpu[:index]` or `cuda[:index]` and opens the device.
///
/// `wgpu` alone is the adapter wgpu prefers (a high-performance GPU when there is one, else
/// e.g. Mesa's software Vulkan); `wgpu:N` is the N-th adapter wgpu enumerates on the graphics
/// API it settles on. `cuda` is `cuda:0`. A GPU device is opened here (one tiny allocation), so
/// a missing adapter or a driver that refuses to create a device is an error now, not a panic at
/// the first tensor operation.
pub fn parse(name: &str) -> Result<Device, DeviceError> {
    let (backend, index) = match name.split_once(':') {
        Some((backend, index)) => {
            let index: usize = index
                .parse()
                .map_err(|_| DeviceError::Unknown(name.to_string()))?;
            (backend, Some(index))
        }
        None => (name, None),
    };
    match backend {
        "flex" | "cpu" if index.unwrap_or(0) == 0 => Ok(Device::flex()),
        "wgpu" => wgpu(name, index),
        "cuda" => cuda(name, index),
        _ => Err(DeviceError::Unknown(name.to_string())),
    }
}

#[cfg(feature = "wgpu")]
fn wgpu(name: &str, index: Option<usize>) -> Result<Device, DeviceError> {
    use burn::tensor::{DeviceKind, DeviceType};
    open(name, || {
        let found = Device::enumerate(DeviceType::Wgpu).into_vec();
        let missing = DeviceError::Missing {
            backend: "wgpu",
            index: index.unwrap_or(0),
            found: found.len(),
            hint: if found.is_empty() {
                ": no Vulkan, Metal, DX12 or GL adapter; install the GPU's driver, or Mesa's \
                 software Vulkan (Debian: mesa-vulkan-drivers libvulkan1) to run on the CPU"
            } else {
                ""
            },
        };
        match index {
            None if !found.is_empty() => Ok(Device::wgpu(DeviceKind::DefaultDevice)),
            None => Err(missing),
            Some(index) => found.into_iter().nth(index).ok_or(missing),
        }
    })
}

#[cfg(not(feature = "wgpu"))]
fn wgpu(_name: &str, _index: Option<usize>) -> Result<Device, DeviceError> {
    Err(DeviceError::NotCompiled { backend: "wgpu" })
}

#[cfg(feature = "cuda")]
fn cuda(name: &str, index: Option<usize>) -> Result<Device, DeviceError> {
    use burn::tensor::DeviceType;
    open(name, || {
        let found = Device::enumerate(DeviceType::Cuda).into_vec();
        let index = index.unwrap_or(0);
        let count = found.len();
        found.into_iter().nth(index).ok_or(DeviceError::Missing {
            backend: "cuda",
            index,
            found: count,
            hint: if count == 0 {
                ": no NVIDIA GPU or driver (libcuda) visible"
            } else {
                ""
            },
        })
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda(_name: &str, _index: Option<usize>) -> Result<Device, DeviceError> {
    Err(DeviceError::NotCompiled { backend: "cuda" })
}

/// Picks a GPU device with `pick` and opens it with one tiny allocation and read-back.
///
/// burn 0.22 creates a GPU device lazily and panics inside the runtime when the driver refuses
/// (cubecl's "Unable to acquire wgpu device"); enumeration reports a missing adapter as an empty
/// list. The panic is caught here, at the boundary, and returned as [`DeviceError::Unusable`]
/// (the default panic hook still prints the backend's message to stderr).
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn open(
    name: &str,
    pick: impl FnOnce() -> Result<Device, DeviceError>,
) -> Result<Device, DeviceError> {
    use burn::tensor::Tensor;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    let opened = catch_unwind(AssertUnwindSafe(|| {
        let device = pick()?;
        match Tensor::<1>::zeros([1], &device).try_into_data() {
            Ok(_) => Ok(device),
            Err(error) => Err(DeviceError::Unusable {
                name: name.to_string(),
                reason: error.to_string(),
            }),
        }
    }));
    opened.unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the backend panicked".to_string());
        Err(DeviceError::Unusable {
            name: name.to_string(),
            reason,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flex_is_always_there_and_unknown_names_are_refused() {
        assert!(parse("flex").is_ok());
        assert!(available().contains(&"flex"));
        assert!(matches!(parse("tpu"), Err(DeviceError::Unknown(name)) if name == "tpu"));
        assert!(matches!(parse("cuda:x"), Err(DeviceError::Unknown(_))));
        #[cfg(not(feature = "cuda"))]
        assert_eq!(
            parse("cuda:1").unwrap_err().to_string(),
            "the cuda backend is not compiled in: rebuild with `--features cuda`"
        );
    }
}
