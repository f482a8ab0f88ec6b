//! Parity of the fine-grained similarities (SCAN, CHAN) with the pair-by-pair PyTorch
//! reference of `scripts/generate_fine_grained_fixtures.py` (≤ 1e-5), scores and gradients,
//! and the shape contract of a head: one `fine_grained_conformance!` per variant.

use itm_core::similarity::{
    ChanAggregation, ChanConfig, ScanAggregation, ScanConfig, ScanDirection,
};
use itm_test_support::{FineGrainedCase, Within, core_fixtures, fine_grained_conformance};

const TOLERANCE: Within = Within::Absolute(1e-5);

/// The fixture's inputs with the expected scores and gradients of the variant `name`.
fn case(name: &str) -> FineGrainedCase {
    let f = core_fixtures().json("fine_grained");
    FineGrainedCase::from_json(
        &f,
        &f["scores"][name],
        &f["regions_grad"][name],
        &f["words_grad"][name],
    )
}

fn scan(direction: ScanDirection, aggregation: ScanAggregation) -> itm_core::similarity::Scan {
    ScanConfig::new()
        .with_direction(direction)
        .with_aggregation(aggregation)
        .init()
}

fn chan(aggregation: ChanAggregation) -> itm_core::similarity::Chan {
    ChanConfig::new().with_aggregation(aggregation).init()
}

fine_grained_conformance!(scan_t2i_lse {
    case: case("scan_t2i_lse"),
    head: |device| scan(ScanDirection::TextToImage, ScanAggregation::LogSumExp),
    within: TOLERANCE,
});

fine_grained_conformance!(scan_t2i_avg {
    case: case("scan_t2i_avg"),
    head: |device| scan(ScanDirection::TextToImage, ScanAggregation::Average),
    within: TOLERANCE,
});

fine_grained_conformance!(scan_i2t_lse {
    case: case("scan_i2t_lse"),
    head: |device| scan(ScanDirection::ImageToText, ScanAggregation::LogSumExp),
    within: TOLERANCE,
});

fine_grained_conformance!(scan_i2t_avg {
    case: case("scan_i2t_avg"),
    head: |device| scan(ScanDirection::ImageToText, ScanAggregation::Average),
    within: TOLERANCE,
});

fine_grained_conformance!(chan_mean {
    case: case("chan_mean"),
    head: |device| chan(ChanAggregation::Mean),
    within: TOLERANCE,
});

fine_grained_conformance!(chan_lse {
    case: case("chan_lse"),
    head: |device| chan(ChanAggregation::LogSumExp),
    within: TOLERANCE,
});
