//! Recall@K, median and mean rank from 0-based ranks.

use serde::{Deserialize, Serialize};

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
}

/// The cut-offs of the reported recalls.
pub const RECALL_AT: [usize; 3] = [1, 5, 10];

impl Metrics {
    /// Metrics from 0-based image→text and text→image ranks.
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
        }
    }

    /// Sum of the six recalls.
    pub fn rsum(&self) -> f64 {
        self.i2t_recall.iter().sum::<f64>() + self.t2i_recall.iter().sum::<f64>()
    }

    /// Element-wise mean (COCO 5-fold 1K).
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
    }
}
