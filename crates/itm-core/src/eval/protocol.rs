//! Flickr30K 1K, COCO 5-fold 1K and COCO 5K protocols over a full similarity matrix.

use serde::{Deserialize, Serialize};

use super::metrics::Metrics;
use super::ranks::both_directions;

/// Which published protocol to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    /// Flickr30K 1K: the whole test matrix at once (1,000 images × 5,000 captions).
    Flickr30k,
    /// COCO 1K: the mean of every metric over 5 folds of 1,000 images of `testall`.
    Coco1k,
    /// COCO 5K: the whole `testall` matrix at once (5,000 × 25,000).
    Coco5k,
}

/// Metrics of one evaluation, with the per-fold values for [`Protocol::Coco1k`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalReport {
    /// The protocol used.
    pub protocol: Protocol,
    /// Metrics (mean over folds for 5-fold).
    pub metrics: Metrics,
    /// Per-fold metrics (one entry unless [`Protocol::Coco1k`]).
    pub folds: Vec<Metrics>,
}

/// Evaluates a row-major `[n_img, n_cap]` similarity matrix.
///
/// Ranks are pessimistic: a competitor scored equal to the ground truth is ahead of it, so a
/// constant matrix gets zero recall, and the metrics report how many queries tied
/// ([`Metrics::i2t_ties`], [`Metrics::degenerate`]).
///
/// `caption_image[j]` is the image of caption `j`. The whole-matrix protocols take any size
/// (smaller sets, such as a subset of `shapes`, are scored the same way); [`Protocol::Coco1k`]
/// splits images and captions into 5 equal consecutive folds and needs the captions of each
/// fold to describe that fold's images.
pub fn evaluate(
    scores: &[f32],
    n_img: usize,
    caption_image: &[usize],
    protocol: Protocol,
) -> RetrievalReport {
    let folds = match protocol {
        Protocol::Flickr30k | Protocol::Coco5k => vec![metrics_of(scores, n_img, caption_image)],
        Protocol::Coco1k => five_folds(scores, n_img, caption_image),
    };
    RetrievalReport {
        protocol,
        metrics: Metrics::mean(&folds),
        folds,
    }
}

fn metrics_of(scores: &[f32], n_img: usize, caption_image: &[usize]) -> Metrics {
    let (i2t, t2i) = both_directions(scores, n_img, caption_image);
    Metrics::from_directions(&i2t, &t2i)
}

fn five_folds(scores: &[f32], n_img: usize, caption_image: &[usize]) -> Vec<Metrics> {
    assert!(
        n_img.is_multiple_of(5),
        "5-fold protocol needs a multiple of 5 images, got {n_img}"
    );
    let n_cap = caption_image.len();
    assert!(
        n_cap.is_multiple_of(5),
        "5-fold protocol needs a multiple of 5 captions, got {n_cap}"
    );
    let (fold_img, fold_cap) = (n_img / 5, n_cap / 5);
    (0..5)
        .map(|fold| {
            let images = fold * fold_img..(fold + 1) * fold_img;
            let captions = fold * fold_cap..(fold + 1) * fold_cap;
            let local: Vec<usize> = caption_image[captions.clone()]
                .iter()
                .map(|&image| {
                    assert!(
                        images.contains(&image),
                        "fold {fold}: a caption points outside the fold's images"
                    );
                    image - images.start
                })
                .collect();
            let sub: Vec<f32> = images
                .flat_map(|row| {
                    scores[row * n_cap + captions.start..row * n_cap + captions.end]
                        .iter()
                        .copied()
                })
                .collect();
            metrics_of(&sub, fold_img, &local)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100 images, 5 captions each (caption `j` describes image `j / 5`): enough for R@10 to
    /// be more than the fold size in every protocol.
    fn captions() -> Vec<usize> {
        (0..500).map(|j| j / 5).collect()
    }

    #[test]
    fn a_constant_matrix_gets_zero_recall_in_every_protocol() {
        let scores = vec![0.0f32; 100 * 500];
        for protocol in [Protocol::Flickr30k, Protocol::Coco1k, Protocol::Coco5k] {
            let report = evaluate(&scores, 100, &captions(), protocol);
            let m = report.metrics;
            assert_eq!(m.rsum(), 0.0, "{protocol:?}: {m:?}");
            assert!(m.degenerate, "{protocol:?}");
            assert_eq!((m.i2t_ties, m.t2i_ties), (100, 500), "{protocol:?}");
            // Every query ranks last: behind all other images' captions / all other images.
            let fold_images = if protocol == Protocol::Coco1k {
                20
            } else {
                100
            };
            assert_eq!(
                m.i2t_medr,
                (5 * (fold_images - 1) + 1) as f64,
                "{protocol:?}"
            );
            assert_eq!(m.t2i_medr, fold_images as f64, "{protocol:?}");
        }
    }

    #[test]
    fn a_tie_free_matrix_reports_no_ties() {
        // Distinct scores everywhere; the truth wins for even images and loses for odd ones.
        let n_cap = 500;
        let scores: Vec<f32> = (0..100 * n_cap)
            .map(|k| {
                let (i, j) = (k / n_cap, k % n_cap);
                let truth = j / 5 == i;
                (k as f32) * 1e-5 + if truth && i % 2 == 0 { 1.0 } else { 0.0 }
            })
            .collect();
        for protocol in [Protocol::Flickr30k, Protocol::Coco1k] {
            let m = evaluate(&scores, 100, &captions(), protocol).metrics;
            assert_eq!((m.ties(), m.degenerate), (0, false), "{protocol:?}");
            assert!(m.rsum() > 0.0 && m.rsum() < 600.0);
        }
    }
}
