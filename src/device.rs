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

/// Parses `flex`, `wgpu[:index]` or `cuda[:index]`.
pub fn parse(name: &str) -> Result<Device, DeviceError> {
    let (backend, index) = match name.split_once(':') {
        Some((backend, index)) => {
            let index: usize = index
                .parse()
                .map_err(|_| DeviceError::Unknown(name.to_string()))?;
            (backend, index)
        }
        None => (name, 0),
    };
    match backend {
        "flex" | "cpu" if index == 0 => Ok(Device::flex()),
        "wgpu" => wgpu(index),
        "cuda" => cuda(index),
        _ => Err(DeviceError::Unknown(name.to_string())),
    }
}

#[cfg(feature = "wgpu")]
fn wgpu(index: usize) -> Result<Device, DeviceError> {
    use burn::tensor::DeviceKind;
    Ok(if index == 0 {
        Device::wgpu(DeviceKind::DefaultDevice)
    } else {
        Device::wgpu(DeviceKind::DiscreteGpu(index))
    })
}

#[cfg(not(feature = "wgpu"))]
fn wgpu(_index: usize) -> Result<Device, DeviceError> {
    Err(DeviceError::NotCompiled { backend: "wgpu" })
}

#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<Device, DeviceError> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_index: usize) -> Result<Device, DeviceError> {
    Err(DeviceError::NotCompiled { backend: "cuda" })
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
