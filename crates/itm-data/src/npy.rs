//! Memory-mapped little-endian float32 `.npy` arrays, checked before use.

use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::DataError;

/// A C-ordered `'<f4'` `.npy` file mapped into memory; its values are read in place.
pub struct MappedF32 {
    map: Mmap,
    offset: usize,
    len: usize,
    shape: Vec<usize>,
    path: PathBuf,
}

impl MappedF32 {
    /// Maps `path` and checks its header, its byte size against the shape, and that the data
    /// can be read in place. `rank` is the number of axes the caller expects; `axes` names them
    /// in error messages (e.g. "[images, regions, features]").
    pub fn open(path: &Path, rank: usize, axes: &str) -> Result<Self, DataError> {
        Self::open_typed(path, rank, axes, "'<f4'")
    }

    /// [`MappedF32::open`] for any element type `descr` (`'<f4'` or `'<f8'`): the values are
    /// then the raw bytes, read by the caller.
    fn open_typed(
        path: &Path,
        rank: usize,
        axes: &str,
        descr_wanted: &str,
    ) -> Result<Self, DataError> {
        let element = if descr_wanted == "'<f8'" { 8 } else { 4 };
        let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
        // SAFETY: the map is read-only; a file truncated by another process while mapped
        // would fault, which is the documented limit of memory-mapped reading.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| DataError::io(path, e))?;
        if shape_overflows(&map) {
            return Err(DataError::invalid(
                path,
                "not a valid .npy file: the header's shape is too large (its sizes overflow 64 bits)",
            ));
        }
        let mut cursor = std::io::Cursor::new(&map[..]);
        let header = npyz::NpyHeader::from_reader(&mut cursor)
            .map_err(|e| DataError::invalid(path, format!("not a valid .npy file: {e}")))?;
        let offset = cursor.position() as usize;
        let descr = header.dtype().descr();
        if descr != descr_wanted {
            return Err(DataError::invalid(
                path,
                format!("expected little-endian float32 ('<f4'), found {descr}"),
            ));
        }
        if header.order() != npyz::Order::C {
            return Err(DataError::invalid(
                path,
                "Fortran-ordered arrays are not supported",
            ));
        }
        let shape: Vec<usize> = header.shape().iter().map(|&d| d as usize).collect();
        if shape.len() != rank {
            return Err(DataError::invalid(
                path,
                format!("expected a {axes} array, found shape {shape:?}"),
            ));
        }
        if shape.contains(&0) {
            return Err(DataError::invalid(
                path,
                format!("empty array of shape {shape:?}"),
            ));
        }
        let body = map.len() - offset;
        let Some(len) = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|len| len.checked_mul(element).is_some())
        else {
            return Err(DataError::invalid(
                path,
                format!("shape {shape:?} is too large: the file has {body} bytes of data"),
            ));
        };
        if body != len * element {
            return Err(DataError::invalid(
                path,
                format!(
                    "{} data: shape {shape:?} needs {} bytes after the header, the file has {body}",
                    if body < len * element {
                        "truncated"
                    } else {
                        "trailing"
                    },
                    len * element
                ),
            ));
        }
        if (element == 4 && bytemuck::try_cast_slice::<u8, f32>(&map[offset..]).is_err())
            || cfg!(target_endian = "big")
        {
            return Err(DataError::invalid(
                path,
                "the data cannot be read in place (misaligned or big-endian host)",
            ));
        }
        Ok(Self {
            map,
            offset,
            len,
            shape,
            path: path.to_path_buf(),
        })
    }

    /// The values, row-major.
    pub fn values(&self) -> &[f32] {
        bytemuck::cast_slice(&self.map[self.offset..self.offset + self.len * 4])
    }

    /// The array's shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The mapped file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A float array read from `.npy`: float32 mapped in place, or float64 (NumPy's default dtype,
/// in which the authors' evaluation code keeps its matrices) converted to float32.
pub enum FloatArray {
    /// A `'<f4'` file, mapped.
    F32(MappedF32),
    /// A `'<f8'` file, converted.
    Converted {
        /// The values, row-major, as float32.
        values: Vec<f32>,
        /// The shape.
        shape: Vec<usize>,
    },
}

impl FloatArray {
    /// Reads a float32 or float64 array of `rank` axes (named `axes` in errors). A float64
    /// value that is finite but beyond float32's range is an error naming its position.
    pub fn open(path: &Path, rank: usize, axes: &str) -> Result<Self, DataError> {
        match MappedF32::open(path, rank, axes) {
            Ok(mapped) => Ok(Self::F32(mapped)),
            Err(DataError::Invalid { message, .. }) if message.ends_with("found '<f8'") => {
                let mapped = MappedF32::open_typed(path, rank, axes, "'<f8'")?;
                let bytes = &mapped.map[mapped.offset..mapped.offset + mapped.len * 8];
                let mut values = Vec::with_capacity(mapped.len);
                for (i, chunk) in bytes.chunks_exact(8).enumerate() {
                    let wide = f64::from_le_bytes(chunk.try_into().expect("8 bytes"));
                    let narrow = wide as f32;
                    if wide.is_finite() && !narrow.is_finite() {
                        return Err(DataError::invalid(
                            path,
                            format!("value {i} ({wide}) is beyond the range of float32"),
                        ));
                    }
                    values.push(narrow);
                }
                Ok(Self::Converted {
                    values,
                    shape: mapped.shape,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The values, row-major.
    pub fn values(&self) -> &[f32] {
        match self {
            Self::F32(mapped) => mapped.values(),
            Self::Converted { values, .. } => values,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Self::F32(mapped) => mapped.shape(),
            Self::Converted { shape, .. } => shape,
        }
    }

    /// Whether the file held float64 values, converted to float32.
    pub fn converted(&self) -> bool {
        matches!(self, Self::Converted { .. })
    }
}

/// Whether the product of the non-zero entries of an `.npy` header's `'shape'` exceeds `u64`:
/// npyz multiplies the entries (element count, strides) without checking. Headers this scan
/// cannot read are left to npyz to refuse.
fn shape_overflows(bytes: &[u8]) -> bool {
    // Version 1 headers are at most 64 KiB; later versions are never that long in practice.
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(1 << 16)]);
    let Some(rest) = text.find("'shape'").map(|start| &text[start..]) else {
        return false;
    };
    let (Some(open), Some(close)) = (rest.find('('), rest.find(')')) else {
        return false;
    };
    if close < open {
        return false;
    }
    rest[open + 1..close]
        .split(',')
        .filter_map(|d| d.trim().parse::<u64>().ok())
        .filter(|&d| d != 0)
        .try_fold(1u64, |n, d| n.checked_mul(d))
        .is_none()
}

/// Writes a float32 array of `shape` as `.npy` atomically.
pub fn write_f32(path: &Path, shape: &[usize], values: &[f32]) -> Result<(), DataError> {
    use npyz::WriterBuilder;
    assert_eq!(
        shape.iter().product::<usize>(),
        values.len(),
        "shape and values disagree"
    );
    let mut bytes = Vec::with_capacity(values.len() * 4 + 128);
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut bytes)
        .begin_nd()
        .map_err(|e| DataError::io(path, e))?;
    writer
        .extend(values.iter().copied())
        .map_err(|e| DataError::io(path, e))?;
    writer.finish().map_err(|e| DataError::io(path, e))?;
    crate::atomic::write(path, &bytes)
}
