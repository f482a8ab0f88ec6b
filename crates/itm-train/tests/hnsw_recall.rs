//! The HNSW graph over more rows than the unit tests: 5,000 random unit vectors of width 64 (no
//! clusters for the graph to use, a hard case for HNSW) and 200 random queries. The graph,
//! saved and loaded back, must find at least 95% of the exact top 10; build, load and query
//! times are printed (`-- --nocapture`).

use std::time::Instant;

use itm_data::npy::write_f32;
use itm_train::index::{
    EmbeddingMatrix, FileRecord, HnswGraph, HnswParameters, IMAGES, RECALL_K, file_digest,
    recall_at_k,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

const ROWS: usize = 5_000;
const WIDTH: usize = 64;
const QUERIES: usize = 200;

fn unit_rows(rng: &mut StdRng, rows: usize) -> Vec<f32> {
    let mut values: Vec<f32> = (0..rows * WIDTH)
        .map(|_| rng.sample(StandardNormal))
        .collect();
    for row in values.chunks_exact_mut(WIDTH) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.iter_mut().for_each(|v| *v /= norm);
    }
    values
}

#[test]
fn hnsw_recall_at_10_against_exact_search() {
    let folder = std::env::temp_dir().join(format!("itm-hnsw-recall-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    let mut rng = StdRng::seed_from_u64(21);
    let rows = unit_rows(&mut rng, ROWS);
    let queries = unit_rows(&mut rng, QUERIES);
    let matrix_path = folder.join(IMAGES);
    write_f32(&matrix_path, &[ROWS, WIDTH], &rows).unwrap();
    let matrix = EmbeddingMatrix::open(&matrix_path, "[images, dim]").unwrap();
    let (sha256, bytes) = file_digest(&matrix_path).unwrap();
    let indexed = FileRecord {
        name: IMAGES.to_string(),
        bytes,
        sha256,
    };
    let parameters = HnswParameters::default();

    let started = Instant::now();
    let graph = HnswGraph::build(&rows, WIDTH, &parameters).unwrap();
    let built = started.elapsed().as_secs_f64();
    let path = folder.join("images.hnsw");
    graph.save(&path, &indexed).unwrap();
    drop(graph);
    let started = Instant::now();
    let graph = HnswGraph::load(&path, &indexed, [ROWS, WIDTH], &parameters).unwrap();
    let loaded = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let approximate = graph.top_k(&queries, RECALL_K);
    let approximate_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let exact = matrix.top_k(&queries, RECALL_K).unwrap();
    let exact_seconds = started.elapsed().as_secs_f64();
    let recall = recall_at_k(&approximate, &exact);
    eprintln!(
        "HNSW over {ROWS} × {WIDTH} random unit vectors ({parameters:?}): built in {built:.1}s; \
         {} MB file loaded and checked in {loaded:.2}s; {QUERIES} queries: approximate \
         {approximate_seconds:.3}s, exact {exact_seconds:.3}s; recall@{RECALL_K} {recall:.4}",
        std::fs::metadata(&path).unwrap().len() / 1_000_000
    );
    assert!(recall >= 0.95, "recall@10 {recall}");
    std::fs::remove_dir_all(&folder).unwrap();
}
