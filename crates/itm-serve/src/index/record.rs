//! The record of one file of an index: its name, length and SHA-256, as the manifest lists it
//! and as an HNSW graph's header names the matrix it was built from.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ServeError;

/// A data file of the index, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path relative to the index folder, `/`-separated.
    pub name: String,
    /// Length in bytes.
    pub bytes: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
}

/// SHA-256 (hex) and length of a file, read in 1 MiB pieces.
pub fn file_digest(path: &Path) -> Result<(String, u64), ServeError> {
    let mut file = std::fs::File::open(path).map_err(|e| ServeError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let read = file
            .read(&mut buffer)
            .map_err(|e| ServeError::io(path, e))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        total += read as u64;
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((hex, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_the_standard_sha256() {
        let path = std::env::temp_dir().join(format!("itm-digest-{}", std::process::id()));
        std::fs::write(&path, b"abc").unwrap();
        let (hex, bytes) = file_digest(&path).unwrap();
        // FIPS 180-2, appendix B.1.
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(bytes, 3);
        std::fs::remove_file(&path).unwrap();
    }
}
