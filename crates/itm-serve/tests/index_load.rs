//! Load check: an index of 100,000 random unit vectors (written through the library, no model)
//! answers queries exactly while the process's peak resident memory stays well below the size
//! of the matrix (VmHWM from /proc/self/status, Linux only).

#![cfg(target_os = "linux")]

use std::time::Instant;

use itm_data::npy::write_f32;
use itm_serve::index::{
    CAPTIONS, CaptionItem, FORMAT, FORMAT_VERSION, FileRecord, IMAGES, ITEMS, ImageItem, Index,
    IndexItems, IndexSource, MANIFEST, Manifest, file_digest,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

const N: usize = 100_000;
const D: usize = 256;

/// `/proc/self/status` field in kB.
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

fn unit_rows(rng: &mut StdRng, rows: usize) -> Vec<f32> {
    let mut values: Vec<f32> = (0..rows * D).map(|_| rng.sample(StandardNormal)).collect();
    for row in values.chunks_exact_mut(D) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.iter_mut().for_each(|v| *v /= norm);
    }
    values
}

fn record(folder: &std::path::Path, name: &str) -> FileRecord {
    let (sha256, bytes) = file_digest(&folder.join(name)).unwrap();
    FileRecord {
        name: name.to_string(),
        bytes,
        sha256,
    }
}

#[test]
fn large_index_answers_with_bounded_memory() {
    let folder = itm_test_support::TempDir::new("index-load");
    let mut rng = StdRng::seed_from_u64(7);
    let queries = unit_rows(&mut rng, 8);
    let expected: Vec<Vec<(usize, f32)>> = {
        let images = unit_rows(&mut rng, N);
        write_f32(&folder.join(IMAGES), &[N, D], &images).unwrap();
        write_f32(
            &folder.join(CAPTIONS),
            &[N / 100, D],
            &images[..N / 100 * D],
        )
        .unwrap();
        queries
            .chunks_exact(D)
            .map(|query| {
                let mut scored: Vec<(usize, f32)> = images
                    .chunks_exact(D)
                    .map(|row| row.iter().zip(query).map(|(a, b)| a * b).sum::<f32>())
                    .enumerate()
                    .collect();
                scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                scored.truncate(10);
                scored
            })
            .collect()
    };
    let items = IndexItems {
        images: (0..N)
            .map(|i| ImageItem {
                id: format!("img{i}"),
                file: Some(format!("{i}.jpg")),
            })
            .collect(),
        captions: (0..N / 100)
            .map(|j| CaptionItem {
                text: format!("caption {j}"),
                image: j,
            })
            .collect(),
    };
    std::fs::write(folder.join(ITEMS), serde_json::to_vec(&items).unwrap()).unwrap();
    drop(items);
    let manifest = Manifest {
        format: FORMAT.to_string(),
        version: FORMAT_VERSION,
        dim: D,
        n_images: N,
        n_captions: N / 100,
        similarity: "cosine".to_string(),
        checkpoint: folder.join("none"),
        source: IndexSource::Precomp {
            folder: folder.to_path_buf(),
            split: "test".to_string(),
        },
        files: [IMAGES, CAPTIONS, ITEMS]
            .iter()
            .map(|name| record(&folder, name))
            .collect(),
        approximate: None,
        rerank: None,
    };
    std::fs::write(
        folder.join(MANIFEST),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();

    // Forget the peak of the writing above: VmHWM restarts from the current resident size.
    std::fs::write("/proc/self/clear_refs", "5").expect("VmHWM can be reset");
    let before = status_kb("VmRSS:");
    let started = Instant::now();
    let index = Index::open(&folder).unwrap();
    let opened = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let found = index.images().top_k(&queries, 10).unwrap();
    let searched = started.elapsed().as_secs_f64();
    let peak = status_kb("VmHWM:");
    let matrix_kb = (N * D * 4 / 1024) as u64;
    eprintln!(
        "{N} × {D} index ({} MB): open + verify {opened:.2}s, 8 queries {searched:.2}s; \
         resident before {before} kB, peak {peak} kB (+{} kB)",
        matrix_kb / 1024,
        peak - before
    );
    for (hits, expected) in found.iter().zip(&expected) {
        for (hit, &(index, score)) in hits.iter().zip(expected) {
            assert!((hit.score - score).abs() < 1e-5, "{} vs {score}", hit.score);
            assert_eq!(hit.index, index, "random scores do not tie");
        }
    }
    assert!(
        (peak - before) * 4 < matrix_kb,
        "searching raised the peak by {} kB, a quarter of the {matrix_kb} kB matrix or more",
        peak - before
    );
}
