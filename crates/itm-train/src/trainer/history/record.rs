//! What one epoch did, and what each logging interval of its steps did.

use itm_core::eval::Metrics;
use serde::{Deserialize, Serialize};

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 0-based epoch.
    pub epoch: usize,
    /// Learning rate in force.
    pub learning_rate: f64,
    /// Mean training loss over the epoch's steps.
    pub mean_loss: f64,
    /// Margin of the loss in force: the fixed one, or the mean over the epoch's steps of the
    /// adaptive one (`None` for a loss without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    /// Steps skipped because the loss or a gradient was not finite.
    pub skipped_steps: usize,
    /// Validation metrics on the dev split.
    pub validation: Metrics,
    /// Wall-clock seconds of the epoch (training and validation).
    pub seconds: f64,
    /// The epoch's steps by logging interval, in order (empty in histories written before
    /// intervals were recorded). Written to `steps.jsonl` / `steps.csv`, not `metrics.*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intervals: Vec<IntervalRecord>,
}

/// What the steps of one logging interval did (`Trainer::log_steps` steps; the last interval
/// of an epoch may be shorter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalRecord {
    /// 0-based epoch.
    pub epoch: usize,
    /// Steps of the run done at the end of the interval (taken or skipped, counted from the
    /// run's first step): the x of the step curve.
    pub step: usize,
    /// Steps in the interval (taken and skipped).
    pub steps: usize,
    /// Mean loss of the interval's steps taken (`None` when all were skipped).
    pub mean_loss: Option<f64>,
    /// Mean margin of the interval's steps that had one (`None` for a loss without one).
    pub margin: Option<f64>,
    /// Steps of the interval skipped because the loss or a gradient was not finite.
    pub skipped: usize,
}

/// Sums the steps of the interval in progress and closes it every `every` steps.
#[derive(Debug)]
pub(crate) struct IntervalTally {
    every: usize,
    epoch: usize,
    steps: usize,
    taken: usize,
    loss_sum: f64,
    margin_sum: f64,
    margins: usize,
    skipped: usize,
    closed: Vec<IntervalRecord>,
}

impl IntervalTally {
    /// An empty tally of epoch `epoch`, closing an interval every `every` steps (at least 1).
    pub fn new(epoch: usize, every: usize) -> Self {
        Self {
            every: every.max(1),
            epoch,
            steps: 0,
            taken: 0,
            loss_sum: 0.0,
            margin_sum: 0.0,
            margins: 0,
            skipped: 0,
            closed: Vec::new(),
        }
    }

    /// Adds a step: its loss when it was taken (`None`: skipped) and its margin, if any;
    /// `run_step` is the steps of the run done after it. Closes the interval when full.
    pub fn add(&mut self, loss: Option<f64>, margin: Option<f64>, run_step: usize) {
        self.steps += 1;
        match loss {
            Some(value) => {
                self.taken += 1;
                self.loss_sum += value;
            }
            None => self.skipped += 1,
        }
        if let Some(margin) = margin {
            self.margin_sum += margin;
            self.margins += 1;
        }
        if self.steps == self.every {
            self.close(run_step);
        }
    }

    /// Closes the interval in progress (if it has steps) at `run_step`.
    fn close(&mut self, run_step: usize) {
        if self.steps == 0 {
            return;
        }
        self.closed.push(IntervalRecord {
            epoch: self.epoch,
            step: run_step,
            steps: self.steps,
            mean_loss: (self.taken > 0).then(|| self.loss_sum / self.taken as f64),
            margin: (self.margins > 0).then(|| self.margin_sum / self.margins as f64),
            skipped: self.skipped,
        });
        *self = Self {
            closed: std::mem::take(&mut self.closed),
            ..Self::new(self.epoch, self.every)
        };
    }

    /// The epoch's intervals, the one in progress closed at `run_step`.
    pub fn finish(mut self, run_step: usize) -> Vec<IntervalRecord> {
        self.close(run_step);
        self.closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seven steps by threes: intervals of 3, 3 and 1 steps with their own means; a skipped
    /// step counts in its interval but not in its mean loss; an all-skipped interval has no
    /// loss; a loss without a margin records none.
    #[test]
    fn intervals_close_every_n_steps() {
        let mut tally = IntervalTally::new(2, 3);
        let steps = [
            (Some(1.0), Some(0.2)),
            (Some(2.0), Some(0.4)),
            (None, Some(0.3)),
            (Some(4.0), None),
            (Some(6.0), None),
            (Some(8.0), None),
            (None, None),
        ];
        for (i, (loss, margin)) in steps.into_iter().enumerate() {
            tally.add(loss, margin, 100 + i + 1);
        }
        let intervals = tally.finish(107);
        let summary: Vec<_> = intervals
            .iter()
            .map(|r| (r.epoch, r.step, r.steps, r.mean_loss, r.skipped))
            .collect();
        assert_eq!(
            summary,
            [
                (2, 103, 3, Some(1.5), 1),
                (2, 106, 3, Some(6.0), 0),
                (2, 107, 1, None, 1)
            ]
        );
        assert!((intervals[0].margin.unwrap() - 0.3).abs() < 1e-12);
        assert_eq!(intervals[1].margin, None);
        assert!(IntervalTally::new(0, 5).finish(0).is_empty());
    }
}
