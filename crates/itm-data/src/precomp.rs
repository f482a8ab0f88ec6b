//! The SCAN "precomp" layout (METHODS §7): `{split}_ims.npy` (float32 `[N, K, F]`),
//! `{split}_caps.txt` (one caption per line) and `{split}_ids.txt` (one id per line).
//!
//! If the feature file has as many rows as there are captions, caption `j` belongs to image
//! `j`; otherwise caption `j` belongs to image `j / 5` (five captions per image).

use std::io::BufRead;
use std::path::{Path, PathBuf};

use npyz::WriterBuilder;

use crate::atomic;
use crate::error::DataError;
use crate::split::{RegionFeatures, RetrievalSplit};

/// Paths of one split's three files in `folder`.
pub fn split_files(folder: &Path, split: &str) -> [PathBuf; 3] {
    [
        folder.join(format!("{split}_ims.npy")),
        folder.join(format!("{split}_caps.txt")),
        folder.join(format!("{split}_ids.txt")),
    ]
}

/// Writes `data` as split `split` of a precomp folder (each file atomically). `ids` holds one
/// id per image (written once per caption for every split but `train`, as SCAN does).
pub fn write_split(
    folder: &Path,
    split: &str,
    data: &RetrievalSplit,
    ids: &[u64],
) -> Result<(), DataError> {
    let [ims, caps, ids_path] = split_files(folder, split);
    std::fs::create_dir_all(folder).map_err(|e| DataError::io(folder, e))?;
    if ids.len() != data.n_images() {
        return Err(DataError::Inconsistent(format!(
            "{} ids for {} images",
            ids.len(),
            data.n_images()
        )));
    }
    if data
        .caption_image
        .iter()
        .enumerate()
        .any(|(j, &i)| i != j / 5)
        && data.captions.len() != data.n_images()
    {
        return Err(DataError::Inconsistent(
            "the precomp layout needs captions 5i..5i+4 to describe image i".into(),
        ));
    }
    let regions = &data.regions;
    let mut bytes = Vec::new();
    {
        let shape = [
            regions.len() as u64,
            regions.n_regions() as u64,
            regions.d_feature() as u64,
        ];
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&shape)
            .writer(&mut bytes)
            .begin_nd()
            .map_err(|e| DataError::io(&ims, e))?;
        writer
            .extend(regions.data().iter().copied())
            .map_err(|e| DataError::io(&ims, e))?;
        writer.finish().map_err(|e| DataError::io(&ims, e))?;
    }
    atomic::write(&ims, &bytes)?;
    let mut text = data.captions.join("\n");
    text.push('\n');
    atomic::write(&caps, text.as_bytes())?;
    let id_lines: Vec<String> = if split == "train" {
        ids.iter().map(u64::to_string).collect()
    } else {
        data.caption_image
            .iter()
            .map(|&i| ids[i].to_string())
            .collect()
    };
    atomic::write(&ids_path, (id_lines.join("\n") + "\n").as_bytes())
}

/// Reads split `split` of a precomp folder, checking the feature file's type and shape, the
/// caption count against the image count, and the values.
pub fn read_split(folder: &Path, split: &str) -> Result<RetrievalSplit, DataError> {
    let [ims, caps, _] = split_files(folder, split);
    let regions = read_features(&ims)?;
    let file = std::fs::File::open(&caps).map_err(|e| DataError::io(&caps, e))?;
    let mut captions = Vec::new();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| DataError::io(&caps, e))?;
        if line.trim().is_empty() {
            return Err(DataError::invalid(
                &caps,
                format!("line {} is an empty caption", number + 1),
            ));
        }
        captions.push(line.trim().to_string());
    }
    let n_images = regions.len();
    let caption_image: Vec<usize> = if captions.len() == n_images {
        (0..n_images).collect()
    } else if captions.len() == 5 * n_images {
        (0..captions.len()).map(|j| j / 5).collect()
    } else {
        return Err(DataError::invalid(
            &caps,
            format!(
                "{} captions for {n_images} images in {}: expected {n_images} or {}",
                captions.len(),
                ims.display(),
                5 * n_images
            ),
        ));
    };
    RetrievalSplit::new(regions, captions, caption_image)
        .map_err(|e| DataError::invalid(&ims, e.to_string()))
}

fn read_features(path: &Path) -> Result<RegionFeatures, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let npy = npyz::NpyFile::new(std::io::BufReader::new(file))
        .map_err(|e| DataError::invalid(path, format!("not a valid .npy file: {e}")))?;
    let descr = npy.dtype().descr();
    if descr != "'<f4'" {
        return Err(DataError::invalid(
            path,
            format!("expected little-endian float32 ('<f4'), found {descr}"),
        ));
    }
    if npy.order() != npyz::Order::C {
        return Err(DataError::invalid(
            path,
            "Fortran-ordered arrays are not supported",
        ));
    }
    let shape = npy.shape().to_vec();
    let [n, k, f] = shape[..] else {
        return Err(DataError::invalid(
            path,
            format!("expected a [images, regions, features] array, found shape {shape:?}"),
        ));
    };
    if n == 0 || k == 0 || f == 0 {
        return Err(DataError::invalid(
            path,
            format!("empty array of shape {shape:?}"),
        ));
    }
    let data: Vec<f32> = npy.into_vec().map_err(|e| {
        DataError::invalid(
            path,
            format!("truncated or unreadable data for shape {shape:?}: {e}"),
        )
    })?;
    Ok(RegionFeatures::new(data, k as usize, f as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("itm-precomp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn sample() -> RetrievalSplit {
        RetrievalSplit::new(
            RegionFeatures::new((0..2 * 3 * 4).map(|v| v as f32 * 0.5).collect(), 3, 4),
            (0..10).map(|j| format!("caption number {j}")).collect(),
            (0..10).map(|j| j / 5).collect(),
        )
        .unwrap()
    }

    #[test]
    fn round_trip() {
        let dir = folder("round");
        write_split(&dir, "test", &sample(), &[10, 20]).unwrap();
        assert_eq!(read_split(&dir, "test").unwrap(), sample());
        let ids = std::fs::read_to_string(dir.join("test_ids.txt")).unwrap();
        assert_eq!(ids.lines().count(), 10);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_files_name_the_file_and_the_problem() {
        let dir = folder("bad");
        write_split(&dir, "dev", &sample(), &[1, 2]).unwrap();
        let [ims, caps, _] = split_files(&dir, "dev");
        let mut bytes = std::fs::read(&ims).unwrap();
        bytes.truncate(bytes.len() - 8);
        std::fs::write(&ims, &bytes).unwrap();
        let err = read_split(&dir, "dev").unwrap_err().to_string();
        assert!(
            err.contains("dev_ims.npy") && err.contains("truncated"),
            "{err}"
        );
        std::fs::write(&ims, b"garbage").unwrap();
        let err = read_split(&dir, "dev").unwrap_err().to_string();
        assert!(err.contains("not a valid .npy"), "{err}");
        write_split(&dir, "dev", &sample(), &[1, 2]).unwrap();
        std::fs::write(&caps, "one\ntwo\nthree\n").unwrap();
        let err = read_split(&dir, "dev").unwrap_err().to_string();
        assert!(
            err.contains("dev_caps.txt") && err.contains("3 captions for 2 images"),
            "{err}"
        );
        std::fs::write(&caps, "one\n\n").unwrap();
        let err = read_split(&dir, "dev").unwrap_err().to_string();
        assert!(err.contains("line 2 is an empty caption"), "{err}");
        let err = read_split(&dir, "missing").unwrap_err().to_string();
        assert!(err.contains("missing_ims.npy"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
