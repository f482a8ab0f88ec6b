//! The SCAN "precomp" layout (METHODS §7): `{split}_ims.npy` (float32 `[N, K, F]`),
//! `{split}_caps.txt` (one caption per line) and `{split}_ids.txt` (one id per line).
//!
//! If the feature file has as many rows as there are captions, caption `j` belongs to image
//! `j`; otherwise caption `j` belongs to image `j / 5` (five captions per image).

use std::path::{Path, PathBuf};

use crate::atomic;
use crate::error::DataError;
use crate::features::RegionFeatures;
use crate::npy;
use crate::source::ImageSource;
use crate::split::RetrievalSplit;

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
    let regions = data.regions().ok_or_else(|| {
        DataError::Inconsistent("the precomp layout holds region features, not image files".into())
    })?;
    npy::write_f32(
        &ims,
        &[regions.len(), regions.n_regions(), regions.d_feature()],
        regions.data(),
    )?;
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

/// The splits of the published precomp folders.
pub const SPLITS: [&str; 4] = ["train", "dev", "test", "testall"];

/// Reads split `split` of a precomp folder: memory-maps the features (checking type, shape and
/// size), reads the captions (UTF-8, none empty), applies the 1:1 or 5:1 correspondence rule,
/// and checks the ids file's length when it exists.
pub fn read_split(folder: &Path, split: &str) -> Result<RetrievalSplit, DataError> {
    let [ims, caps, ids] = split_files(folder, split);
    let regions = RegionFeatures::open_npy(&ims)?;
    let captions = read_lines(&caps, "caption")?;
    let n_images = regions.len();
    let caption_image: Vec<usize> = if captions.len() == n_images {
        (0..n_images).collect()
    } else if captions.len() == 5 * n_images {
        (0..captions.len()).map(|j| j / 5).collect()
    } else {
        return Err(DataError::invalid(
            &caps,
            format!(
                "{} captions for the {n_images} images of {}: expected {n_images} (one each) or {} (five each)",
                captions.len(),
                ims.display(),
                5 * n_images
            ),
        ));
    };
    if ids.exists() {
        let id_count = read_lines(&ids, "id")?.len();
        if id_count != n_images && id_count != captions.len() {
            return Err(DataError::invalid(
                &ids,
                format!(
                    "{id_count} ids, but there are {n_images} images and {} captions",
                    captions.len()
                ),
            ));
        }
    }
    RetrievalSplit::new(ImageSource::Regions(regions), captions, caption_image)
        .map_err(|e| DataError::invalid(&ims, e.to_string()))
}

/// Non-empty, trimmed UTF-8 lines of a text file; `what` names a line in errors.
pub(crate) fn read_lines(path: &Path, what: &str) -> Result<Vec<String>, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        DataError::invalid(path, format!("line {line} is not valid UTF-8"))
    })?;
    let lines: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    if let Some(number) = lines.iter().position(String::is_empty) {
        return Err(DataError::invalid(
            path,
            format!("line {} is an empty {what}", number + 1),
        ));
    }
    Ok(lines)
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
            ImageSource::Regions(RegionFeatures::new(
                (0..2 * 3 * 4).map(|v| v as f32 * 0.5).collect(),
                3,
                4,
            )),
            (0..10).map(|j| format!("caption number {j}")).collect(),
            (0..10).map(|j| j / 5).collect(),
        )
        .unwrap()
    }

    fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], values: &[T]) {
        use npyz::WriterBuilder;
        let mut bytes = Vec::new();
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .writer(&mut bytes)
            .begin_nd()
            .unwrap();
        writer.extend(values.iter().copied()).unwrap();
        writer.finish().unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    fn read_error(dir: &Path) -> String {
        read_split(dir, "test").unwrap_err().to_string()
    }

    #[test]
    fn npy_header_problems_are_named() {
        let dir = folder("header");
        write_split(&dir, "test", &sample(), &[1, 2]).unwrap();
        let [ims, _, _] = split_files(&dir, "test");
        write_npy::<f64>(&ims, &[2, 3, 4], &[0.5; 24]);
        let err = read_error(&dir);
        assert!(
            err.contains("test_ims.npy") && err.contains("float32") && err.contains("<f8"),
            "{err}"
        );
        write_npy::<f32>(&ims, &[2, 12], &[0.5; 24]);
        assert!(read_error(&dir).contains("found shape [2, 12]"));
        write_npy::<f32>(&ims, &[0, 3, 4], &[]);
        assert!(read_error(&dir).contains("empty array"));
        write_npy::<f32>(&ims, &[2, 3, 4], &[0.5; 24]);
        let bytes = [std::fs::read(&ims).unwrap(), vec![0; 4]].concat();
        std::fs::write(&ims, &bytes).unwrap();
        assert!(
            read_error(&dir).contains("trailing data"),
            "{}",
            read_error(&dir)
        );
        std::fs::write(&ims, b"\x93NUMPY\x01\x00\x10\x00{'descr': oops}   \n").unwrap();
        assert!(read_error(&dir).contains("not a valid .npy"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn text_file_problems_are_named() {
        let dir = folder("text");
        write_split(&dir, "test", &sample(), &[1, 2]).unwrap();
        let [_, caps, ids] = split_files(&dir, "test");
        let mut bytes = b"fine\n".to_vec();
        bytes.extend([0xff, 0xfe, b'\n']);
        std::fs::write(&caps, &bytes).unwrap();
        let err = read_error(&dir);
        assert!(
            err.contains("test_caps.txt") && err.contains("line 2 is not valid UTF-8"),
            "{err}"
        );
        write_split(&dir, "test", &sample(), &[1, 2]).unwrap();
        std::fs::write(&ids, "1\n2\n3\n").unwrap();
        let err = read_error(&dir);
        assert!(
            err.contains("test_ids.txt") && err.contains("3 ids"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mapped_features_with_nan_fail_when_read() {
        let dir = folder("nan");
        write_split(&dir, "test", &sample(), &[1, 2]).unwrap();
        let [ims, _, _] = split_files(&dir, "test");
        let mut values = vec![0.5f32; 24];
        values[13] = f32::NAN;
        write_npy::<f32>(&ims, &[2, 3, 4], &values);
        let split = read_split(&dir, "test").expect("the structure is fine");
        assert!(split.regions().unwrap().source().is_some(), "memory-mapped");
        let err = crate::RegionBatch::gather(split.regions().unwrap(), &[0, 1], None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test_ims.npy") && err.contains("image 1 has a NaN"),
            "{err}"
        );
        assert!(split.regions().unwrap().check_finite().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
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
            err.contains("dev_caps.txt") && err.contains("3 captions for the 2 images"),
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
