//! Folders that delete themselves.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh, empty folder under the system's temporary folder, removed with everything in it
/// when the value is dropped: at the end of the test, and also when the test panics (the
/// unwinding drops it).
///
/// Its name holds `name`, the process id and a counter, so that tests running in parallel,
/// in one process or several, never share one.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TempDir {
    /// Creates `itm-{name}-{pid}-{n}` under [`std::env::temp_dir`] (empty: a leftover of an
    /// earlier process with the same id is removed first).
    pub fn new(name: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("itm-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Self { path }
    }

    /// A new temporary folder holding a copy of the folder `from` (recursively).
    pub fn copy_of(name: &str, from: &Path) -> Self {
        let dir = Self::new(name);
        copy_tree(from, &dir);
        dir
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Copies the files and folders of `from` into `to` (created when missing), recursively.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    let entries = std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    for entry in entries {
        let entry = entry.expect("a folder entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_fresh_distinct_and_removed_on_drop() {
        let (a, b) = (TempDir::new("harness"), TempDir::new("harness"));
        assert_ne!(a.path(), b.path());
        std::fs::write(a.join("file"), b"x").unwrap();
        std::fs::create_dir_all(a.join("sub/deeper")).unwrap();
        let copy = TempDir::copy_of("harness-copy", &a);
        assert_eq!(std::fs::read(copy.join("file")).unwrap(), b"x");
        assert!(copy.join("sub/deeper").is_dir());
        let kept = a.path().to_path_buf();
        drop(a);
        assert!(!kept.exists());
    }

    #[test]
    fn folders_are_removed_when_the_test_panics() {
        let path = std::panic::catch_unwind(|| {
            let dir = TempDir::new("harness-panic");
            std::fs::write(dir.join("file"), b"x").unwrap();
            let path = dir.path().to_path_buf();
            assert!(path.exists());
            std::panic::panic_any(path);
        })
        .expect_err("the closure panics");
        let path = path.downcast::<PathBuf>().expect("the folder's path");
        assert!(!path.exists(), "{} survived the panic", path.display());
    }
}
