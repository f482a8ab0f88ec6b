//! Karpathy split JSON (`dataset_flickr30k.json`, `dataset_coco.json`) with an image folder
//! (METHODS §7).
//!
//! `{"images": [{"filename", "filepath"?, "split": "train|val|test|restval", "sentences":
//! [{"raw", ...}], "imgid"?, "cocoid"?}]}`. COCO's `restval` joins `train`; the first 5 captions
//! of an image are kept. An `id_mapping.json` (`{"<id>": "relative/path.jpg"}`, as VSE∞ ships for
//! COCO) beside the JSON overrides the image paths.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::images::ImageTransform;
use crate::source::ImageSource;
use crate::split::RetrievalSplit;

/// Captions kept per image.
pub const CAPTIONS_PER_IMAGE: usize = 5;

/// A split of a Karpathy JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KarpathySplit {
    /// `train` and `restval`.
    Train,
    /// `val`.
    Dev,
    /// `test`.
    Test,
}

impl KarpathySplit {
    fn admits(self, name: &str) -> bool {
        matches!(
            (self, name),
            (KarpathySplit::Train, "train" | "restval")
                | (KarpathySplit::Dev, "val")
                | (KarpathySplit::Test, "test")
        )
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct KarpathyFile {
    pub(crate) images: Vec<KarpathyImage>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct KarpathyImage {
    pub(crate) filename: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) filepath: Option<String>,
    pub(crate) split: String,
    pub(crate) sentences: Vec<KarpathySentence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) imgid: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cocoid: Option<u64>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct KarpathySentence {
    pub(crate) raw: String,
}

/// Images (as files) and captions of one split.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageCaptionSplit {
    /// Path of every image.
    pub images: Vec<PathBuf>,
    /// Dataset id of every image (`cocoid`, else `imgid`, else its position).
    pub ids: Vec<u64>,
    /// Captions, image `i` owning `5i..5i+4`.
    pub captions: Vec<String>,
    /// `caption_image[j]` = image of caption `j`.
    pub caption_image: Vec<usize>,
}

impl ImageCaptionSplit {
    /// The split as a [`RetrievalSplit`] whose images are decoded with `transform`.
    pub fn into_retrieval(self, transform: ImageTransform) -> Result<RetrievalSplit, DataError> {
        RetrievalSplit::new(
            ImageSource::files(self.images, transform),
            self.captions,
            self.caption_image,
        )
    }
}

/// Reads `split` of a Karpathy JSON, resolving image paths under `image_root`, and checks that
/// every image file exists and every kept caption is non-empty.
pub fn load(
    json: &Path,
    image_root: &Path,
    split: KarpathySplit,
) -> Result<ImageCaptionSplit, DataError> {
    let text = std::fs::read_to_string(json).map_err(|e| DataError::io(json, e))?;
    let file: KarpathyFile = serde_json::from_str(&text)
        .map_err(|e| DataError::invalid(json, format!("not a Karpathy split JSON: {e}")))?;
    let mapping = read_id_mapping(json)?;
    let mut out = ImageCaptionSplit {
        images: Vec::new(),
        ids: Vec::new(),
        captions: Vec::new(),
        caption_image: Vec::new(),
    };
    for (position, image) in file.images.iter().enumerate() {
        if !split.admits(&image.split) {
            continue;
        }
        let id = image.cocoid.or(image.imgid).unwrap_or(position as u64);
        if image.sentences.len() < CAPTIONS_PER_IMAGE {
            return Err(DataError::invalid(
                json,
                format!(
                    "image {} ({}) has {} captions, fewer than {CAPTIONS_PER_IMAGE}",
                    position,
                    image.filename,
                    image.sentences.len()
                ),
            ));
        }
        for (k, sentence) in image.sentences.iter().take(CAPTIONS_PER_IMAGE).enumerate() {
            if sentence.raw.trim().is_empty() {
                return Err(DataError::invalid(
                    json,
                    format!(
                        "caption {k} of image {position} ({}) is empty",
                        image.filename
                    ),
                ));
            }
            out.captions.push(sentence.raw.trim().to_string());
            out.caption_image.push(out.images.len());
        }
        let relative = match mapping.as_ref().and_then(|m| m.get(&id.to_string())) {
            Some(path) => PathBuf::from(path),
            None => image
                .filepath
                .as_deref()
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(&image.filename),
        };
        out.images.push(image_root.join(relative));
        out.ids.push(id);
    }
    if out.images.is_empty() {
        return Err(DataError::invalid(
            json,
            format!("no image in split {split:?}"),
        ));
    }
    let missing: Vec<&PathBuf> = out.images.iter().filter(|p| !p.is_file()).collect();
    if let Some(first) = missing.first() {
        return Err(DataError::invalid(
            first.as_path(),
            format!(
                "image file missing ({} of {} images of {} are missing)",
                missing.len(),
                out.images.len(),
                json.display()
            ),
        ));
    }
    Ok(out)
}

fn read_id_mapping(json: &Path) -> Result<Option<HashMap<String, String>>, DataError> {
    let path = json.with_file_name("id_mapping.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
    serde_json::from_str(&text).map(Some).map_err(|e| {
        DataError::invalid(
            &path,
            format!("expected {{\"<id>\": \"relative/path\"}}: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("itm-karpathy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("images/sub")).unwrap();
        dir
    }

    fn image(name: &str, split: &str, captions: usize, cocoid: Option<u64>) -> serde_json::Value {
        let sentences: Vec<_> = (0..captions)
            .map(|k| serde_json::json!({"raw": format!("{name} caption {k}"), "tokens": []}))
            .collect();
        let mut value = serde_json::json!({"filename": name, "filepath": "sub", "split": split, "sentences": sentences, "imgid": 7});
        if let Some(id) = cocoid {
            value["cocoid"] = serde_json::json!(id);
        }
        value
    }

    fn write(dir: &Path, images: Vec<serde_json::Value>) -> PathBuf {
        for image in &images {
            std::fs::write(
                dir.join("images/sub")
                    .join(image["filename"].as_str().unwrap()),
                b"x",
            )
            .unwrap();
        }
        let json = dir.join("dataset.json");
        std::fs::write(&json, serde_json::json!({"images": images}).to_string()).unwrap();
        json
    }

    #[test]
    fn splits_restval_and_first_five_captions() {
        let dir = folder("splits");
        let json = write(
            &dir,
            vec![
                image("a.jpg", "train", 5, Some(1)),
                image("b.jpg", "restval", 7, Some(2)),
                image("c.jpg", "val", 5, Some(3)),
                image("d.jpg", "test", 6, None),
            ],
        );
        let root = dir.join("images");
        let train = load(&json, &root, KarpathySplit::Train).unwrap();
        assert_eq!(
            train.images,
            vec![root.join("sub/a.jpg"), root.join("sub/b.jpg")]
        );
        assert_eq!(train.ids, vec![1, 2]);
        assert_eq!(train.captions.len(), 10);
        assert_eq!(train.captions[9], "b.jpg caption 4");
        assert_eq!(train.caption_image[5], 1);
        let test = load(&json, &root, KarpathySplit::Test).unwrap();
        assert_eq!(test.ids, vec![7], "imgid when there is no cocoid");
        std::fs::write(dir.join("id_mapping.json"), r#"{"3": "val2014/c3.jpg"}"#).unwrap();
        std::fs::create_dir_all(root.join("val2014")).unwrap();
        std::fs::write(root.join("val2014/c3.jpg"), b"x").unwrap();
        let dev = load(&json, &root, KarpathySplit::Dev).unwrap();
        assert_eq!(dev.images, vec![root.join("val2014/c3.jpg")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_files_are_named() {
        let dir = folder("bad");
        let root = dir.join("images");
        let json = write(&dir, vec![image("a.jpg", "test", 4, None)]);
        let err = load(&json, &root, KarpathySplit::Test)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("dataset.json") && err.contains("4 captions, fewer than 5"),
            "{err}"
        );
        let json = write(&dir, vec![image("a.jpg", "test", 5, None)]);
        std::fs::remove_file(root.join("sub/a.jpg")).unwrap();
        let err = load(&json, &root, KarpathySplit::Test)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sub/a.jpg") && err.contains("image file missing"),
            "{err}"
        );
        std::fs::write(&json, r#"{"images": [{"filename": "a.jpg"}]}"#).unwrap();
        let err = load(&json, &root, KarpathySplit::Test)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not a Karpathy split JSON") && err.contains("missing field"),
            "{err}"
        );
        std::fs::write(&json, "{").unwrap();
        assert!(
            load(&json, &root, KarpathySplit::Test)
                .unwrap_err()
                .to_string()
                .contains("dataset.json")
        );
        std::fs::write(dir.join("id_mapping.json"), "[1]").unwrap();
        let json = write(&dir, vec![image("a.jpg", "test", 5, None)]);
        let err = load(&json, &root, KarpathySplit::Test)
            .unwrap_err()
            .to_string();
        assert!(err.contains("id_mapping.json"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
