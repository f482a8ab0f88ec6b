//! Fine-grained scoring at the Flickr30K test shapes (images of 36 regions, captions of 12
//! words, `D = 1024`) through the sharded driver with its default 2 GiB budget.
//!
//! The whole matrix (1,000 × 5,000 = 5 M pairs) takes minutes per similarity on a small CPU,
//! so each benchmark scores a fixed fraction: 10 images against 2,000 captions, 1/250 of the
//! pairs. The cost is linear in the number of pairs (the driver scores blocks one after
//! another), so the whole evaluation takes about 250 × the reported time. Peak memory at the
//! full size is measured by the `peak_memory` benchmark.

mod common;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use itm::burn::tensor::Device;
use itm::core::similarity::{FeatureSets, ShardedScorer};

use common::{DIM, REGIONS, WORDS, fine_grained_methods, unit_rows};

/// Images and captions of the timed fraction.
const IMAGES: usize = 10;
const CAPTIONS: usize = 2_000;

fn fine_grained(c: &mut Criterion) {
    let device = Device::flex();
    let scorer = ShardedScorer::new(device.clone());
    let regions = unit_rows(IMAGES * REGIONS, DIM, 8);
    let words = unit_rows(CAPTIONS * WORDS, DIM, 9);
    let (counts, lengths) = (vec![REGIONS; IMAGES], vec![WORDS; CAPTIONS]);
    let images = FeatureSets::new(&regions, &counts, REGIONS, DIM);
    let captions = FeatureSets::new(&words, &lengths, WORDS, DIM);

    let mut group = c.benchmark_group("fine_grained");
    common::heavy(&mut group, 20);
    for (name, method) in fine_grained_methods(&device) {
        group.bench_function(
            BenchmarkId::new(name, format!("{IMAGES}x{CAPTIONS}")),
            |b| b.iter(|| scorer.score(method.as_ref(), images, captions, |_, _| {})),
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = fine_grained
}
criterion_main!(benches);
