//! Recall@K, median and mean rank from 0-based ranks, and the ties behind them.

use serde::{Deserialize, Serialize};

use super::ranks::Ranks;

/// The standard retrieval metrics of both directions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Image → text R@1, R@5, R@10 (percent).
    pub i2t_recall: [f64; 3],
    /// Image → text median rank (1-based, floored median).
    pub i2t_medr: f64,
    /// Image → text mean rank (1-based).
    pub i2t_meanr: f64,
    /// Text → image R@1, R@5, R@10 (percent).
    pub t2i_recall: [f64; 3],
    /// Text → image median rank.
    pub t2i_medr: f64,
    /// Text → image mean rank.
    pub t2i_meanr: f64,
    /// Image → text queries whose ground truth ties with a competitor (ranked behind it).
    #[serde(default)]
    pub i2t_ties: usize,
    /// Text → image queries whose ground truth ties with a competitor (ranked behind it).
    #[serde(default)]
    pub t2i_ties: usize,
    /// The scores are degenerate: in at least one direction, more than half of the queries tie
    /// at their ground truth (a collapsed model, such as one scoring every pair the same). The
    /// trainer never keeps such an epoch as its best.
    #[serde(default)]
    pub degenerate: bool,
}

/// The cut-offs of the reported recalls.
pub const RECALL_AT: [usize; 3] = [1, 5, 10];

impl Metrics {
    /// Metrics from 0-based image→text and text→image ranks, with no ties recorded.
    pub fn from_ranks(i2t: &[usize], t2i: &[usize]) -> Self {
        let (i2t_recall, i2t_medr, i2t_meanr) = summarise(i2t);
        let (t2i_recall, t2i_medr, t2i_meanr) = summarise(t2i);
        Self {
            i2t_recall,
            i2t_medr,
            i2t_meanr,
            t2i_recall,
            t2i_medr,
            t2i_meanr,
            i2t_ties: 0,
            t2i_ties: 0,
            degenerate: false,
        }
    }

    /// Metrics from both directions' ranks and ties ([`super::image_to_text`],
    /// [`super::text_to_image`]).
    pub fn from_directions(i2t: &Ranks, t2i: &Ranks) -> Self {
        let mostly_tied = |r: &Ranks| 2 * r.ties > r.ranks.len();
        Self {
            i2t_ties: i2t.ties,
            t2i_ties: t2i.ties,
            degenerate: mostly_tied(i2t) || mostly_tied(t2i),
            ..Self::from_ranks(&i2t.ranks, &t2i.ranks)
        }
    }

    /// Queries of both directions whose ground truth ties with a competitor.
    pub fn ties(&self) -> usize {
        self.i2t_ties + self.t2i_ties
    }

    /// Sum of the six recalls.
    pub fn rsum(&self) -> f64 {
        self.i2t_recall.iter().sum::<f64>() + self.t2i_recall.iter().sum::<f64>()
    }

    /// Element-wise mean (COCO 5-fold 1K); ties add up over the folds, and the mean is
    /// degenerate when any fold is.
    pub fn mean(all: &[Metrics]) -> Self {
        assert!(!all.is_empty(), "no metrics to average");
        let n = all.len() as f64;
        let avg = |f: &dyn Fn(&Metrics) -> f64| all.iter().map(f).sum::<f64>() / n;
        Self {
            i2t_recall: [0, 1, 2].map(|k| avg(&|m| m.i2t_recall[k])),
            i2t_medr: avg(&|m| m.i2t_medr),
            i2t_meanr: avg(&|m| m.i2t_meanr),
            t2i_recall: [0, 1, 2].map(|k| avg(&|m| m.t2i_recall[k])),
            t2i_medr: avg(&|m| m.t2i_medr),
            t2i_meanr: avg(&|m| m.t2i_meanr),
            i2t_ties: all.iter().map(|m| m.i2t_ties).sum(),
            t2i_ties: all.iter().map(|m| m.t2i_ties).sum(),
            degenerate: all.iter().any(|m| m.degenerate),
        }
    }
}

/// `R@K = 100·fraction(rank < K)`, `medr = floor(median) + 1`, `meanr = mean + 1`.
fn summarise(ranks: &[usize]) -> ([f64; 3], f64, f64) {
    assert!(!ranks.is_empty(), "no ranks to summarise");
    let n = ranks.len() as f64;
    let recall = RECALL_AT.map(|k| 100.0 * ranks.iter().filter(|&&r| r < k).count() as f64 / n);
    let mut sorted = ranks.to_vec();
    sorted.sort_unstable();
    let mid = sorted.len() / 2;
    // NumPy's median, floored.
    let median = if sorted.len() % 2 == 1 {
        sorted[mid] as f64
    } else {
        (sorted[mid - 1] + sorted[mid]) as f64 / 2.0
    };
    let mean = ranks.iter().sum::<usize>() as f64 / n;
    (recall, median.floor() + 1.0, mean + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_worked_metrics() {
        let m = Metrics::from_ranks(&[0, 3, 12, 0], &[1, 0, 7, 20]);
        assert_eq!(m.i2t_recall, [50.0, 75.0, 75.0]);
        assert_eq!(m.i2t_medr, 2.0); // median of 0,0,3,12 = 1.5 → floor 1 → +1
        assert_eq!(m.i2t_meanr, 4.75);
        assert_eq!(m.t2i_recall, [25.0, 50.0, 75.0]);
        assert_eq!(m.t2i_medr, 5.0); // median 4 → 5
        assert_eq!(m.rsum(), 350.0);
        assert_eq!((m.ties(), m.degenerate), (0, false));
    }

    #[test]
    fn more_than_half_tied_is_degenerate() {
        let ranks = |ties| Ranks {
            ranks: vec![0, 1, 2, 3],
            ties,
        };
        let half = Metrics::from_directions(&ranks(2), &ranks(0));
        assert_eq!(
            (half.i2t_ties, half.t2i_ties, half.degenerate),
            (2, 0, false)
        );
        let most = Metrics::from_directions(&ranks(0), &ranks(3));
        assert_eq!((most.ties(), most.degenerate), (3, true));
        let mean = Metrics::mean(&[half, most]);
        assert_eq!(
            (mean.i2t_ties, mean.t2i_ties, mean.degenerate),
            (2, 3, true)
        );
    }
}
