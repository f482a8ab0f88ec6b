//! Whole-test-set retrieval from global embeddings: the blocked cosine similarity matrix and
//! the recall protocol's ranking, at Flickr30K test (1,000 × 5,000) and COCO 5K
//! (5,000 × 25,000) sizes with `D = 1024`.
//!
//! The cosine throughput is reported in elements per second where one element is one
//! floating-point operation (`2 · n_img · n_cap · D` per matrix), i.e. FLOP/s.

mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use itm::burn::tensor::Device;
use itm::core::eval::{Protocol, evaluate};
use itm::core::similarity::BlockedCosine;

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

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = cosine, recall
}
criterion_main!(benches);
