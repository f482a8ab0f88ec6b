//! Where the committed fixtures are, and reading their JSON.
//!
//! Fixtures belong to the crate whose tests read them: the PyTorch/NumPy references of the
//! building blocks to `itm-core` (`crates/itm-core/tests/fixtures`), the Hugging Face folders
//! and the transformers references of the loaders to `itm-train`
//! (`crates/itm-train/tests/fixtures`). The tests of other crates (the binary's, the root's)
//! find them here, not through relative paths of their own.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// A folder of fixtures.
#[derive(Debug, Clone)]
pub struct Fixtures {
    root: PathBuf,
}

/// The workspace's `crates/` folder.
fn crates() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the harness lives in crates/")
}

/// `crates/itm-core/tests/fixtures`: the references of `scripts/generate_*fixture*.py` for
/// the encoders, pooling, similarities, fusion layers, losses and evaluation.
pub fn core_fixtures() -> Fixtures {
    Fixtures::at(crates().join("itm-core/tests/fixtures"))
}

/// `crates/itm-train/tests/fixtures`: the tiny BERT, CLIP and Swin folders of
/// `scripts/generate_bert_fixture.py`, `scripts/generate_clip_fixture.py` and
/// `scripts/generate_swin_fixture.py`, `bert.json`, the all-MiniLM-L6-v2 reference, and under
/// `authors/` what the authors' own code produced (`scripts/authors/`).
pub fn train_fixtures() -> Fixtures {
    Fixtures::at(crates().join("itm-train/tests/fixtures"))
}

impl Fixtures {
    /// The fixtures in `root`.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The path of the fixture `name` (a file or a folder; it must exist).
    pub fn path(&self, name: &str) -> PathBuf {
        let path = self.root.join(name);
        assert!(path.exists(), "no fixture {}", path.display());
        path
    }

    /// The text of the fixture file `name`.
    pub fn text(&self, name: &str) -> String {
        let path = self.path(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The JSON fixture `{name}.json`.
    pub fn json(&self, name: &str) -> Value {
        let file = format!("{name}.json");
        let text = self.text(&file);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
    }
}

/// A JSON array of numbers as `f32`.
pub fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_f64().expect("a number") as f32)
        .collect()
}

/// A JSON array of non-negative integers as `usize`.
pub fn sizes(value: &Value) -> Vec<usize> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_u64().expect("an integer") as usize)
        .collect()
}

/// A JSON array of integers as `i64` (token ids).
pub fn integers(value: &Value) -> Vec<i64> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_i64().expect("an integer"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_fixture_folders_are_found() {
        assert!(core_fixtures().path("gpo.json").is_file());
        assert!(train_fixtures().path("tiny_clip").is_dir());
        let gpo = core_fixtures().json("gpo");
        assert!(!floats(&gpo["pooled"]).is_empty());
    }

    #[test]
    #[should_panic(expected = "no fixture")]
    fn a_missing_fixture_is_named() {
        core_fixtures().path("no-such-fixture.json");
    }
}
