//! Whole-test-set retrieval from global embeddings: the blocked cosine similarity matrix and
//! the recall protocol's ranking, at Flickr30K test (1,000 × 5,000) and COCO 5K
//! (5,000 × 25,000) sizes with `D = 1024`.
//!
//! The cosine throughput is reported in elements per second where one element is one
//! floating-point operation (`2 · n_img · n_cap · D` per matrix), i.e. FLOP/s.
//!
//! `search/*`: exact top-10 search of an index's embedding matrix (`EmbeddingMatrix::top_k`,
//! what `itm search` runs) over 100,000 unit rows of `D = 1024` in a `.npy` file (410 MB, read
//! from the page cache), for one query and for a batch of 1,000 queries.

mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use itm::burn::tensor::Device;
use itm::core::eval::{Protocol, evaluate};
use itm::core::similarity::BlockedCosine;
use itm::data::npy::write_f32;
use itm::serve::index::EmbeddingMatrix;

use common::{DIM, heavy, uniform, unit_rows};

/// Name, images, captions (5 per image) and protocol of each test set.
const SETS: [(&str, usize, usize, Protocol); 2] = [
    ("flickr30k_1k", 1_000, 5_000, Protocol::Flickr30k),
    ("coco_5k", 5_000, 25_000, Protocol::Coco5k),
];

fn cosine(c: &mut Criterion) {
    let mut group = c.benchmark_group("cosine");
    heavy(&mut group, 20);
    let scorer = BlockedCosine::new(Device::flex());
    for (name, n_img, n_cap, _) in SETS {
        let images = unit_rows(n_img, DIM, 1);
        let captions = unit_rows(n_cap, DIM, 2);
        group.throughput(Throughput::Elements((2 * n_img * n_cap * DIM) as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| scorer.compute(&images, &captions, DIM))
        });
    }
    group.finish();
}

/// A score matrix where each caption's own image scores higher on average than the others, so
/// that ranks are spread as in a trained model.
fn scores(n_img: usize, n_cap: usize) -> (Vec<f32>, Vec<usize>) {
    let caption_image: Vec<usize> = (0..n_cap).map(|j| j * n_img / n_cap).collect();
    let mut scores = uniform(n_img * n_cap, 3);
    for (caption, &image) in caption_image.iter().enumerate() {
        scores[image * n_cap + caption] += 0.99;
    }
    (scores, caption_image)
}

fn recall(c: &mut Criterion) {
    let mut group = c.benchmark_group("recall");
    heavy(&mut group, 10);
    for (name, n_img, n_cap, protocol) in SETS {
        let (scores, caption_image) = scores(n_img, n_cap);
        group.throughput(Throughput::Elements((n_img * n_cap) as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| evaluate(&scores, n_img, &caption_image, protocol))
        });
    }
    group.finish();
}

/// Rows of the searched matrix, results per query, and the query batches.
const SEARCH_ROWS: usize = 100_000;
const SEARCH_K: usize = 10;
const SEARCH_QUERIES: [usize; 2] = [1, 1_000];

fn search(c: &mut Criterion) {
    let mut group = c.benchmark_group("search");
    heavy(&mut group, 10);
    let folder = std::env::temp_dir().join(format!("itm-bench-search-{}", std::process::id()));
    // The 410 MB matrix is written when a search benchmark first runs, not when a filter
    // leaves them out.
    let matrix = std::cell::OnceCell::new();
    let open = || {
        std::fs::create_dir_all(&folder).expect("a temporary folder");
        let path = folder.join("images.npy");
        write_f32(&path, &[SEARCH_ROWS, DIM], &unit_rows(SEARCH_ROWS, DIM, 4))
            .expect("the benchmark matrix is written");
        EmbeddingMatrix::open(&path, "[images, D]").expect("the matrix reopens")
    };
    for queries in SEARCH_QUERIES {
        let batch = unit_rows(queries, DIM, 5);
        group.throughput(Throughput::Elements(
            (2 * queries * SEARCH_ROWS * DIM) as u64,
        ));
        group.bench_function(BenchmarkId::new("100k", format!("{queries}q")), |b| {
            let matrix: &EmbeddingMatrix = matrix.get_or_init(open);
            b.iter(|| matrix.top_k(&batch, SEARCH_K).expect("the search runs"))
        });
    }
    group.finish();
    std::fs::remove_dir_all(&folder).ok();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = cosine, recall, search
}
criterion_main!(benches);
