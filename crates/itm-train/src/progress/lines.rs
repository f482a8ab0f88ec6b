//! Progress as plain lines for a log: one line per elapsed interval of time (not per step),
//! and one at the end of the phase.

use std::io::Write;
use std::time::Duration;

use super::clock::Clock;

/// Writes `"{label}: {done}/{total}, {rate} steps/s, {message}, ETA {h:mm:ss}"` lines.
pub(crate) struct Lines {
    label: String,
    total: u64,
    done: u64,
    interval: Duration,
    clock: Box<dyn Clock>,
    /// When the phase started, on `clock`.
    start: Duration,
    /// The next line is due at (or after) this time.
    due: Duration,
    out: Box<dyn Write + Send>,
}

impl Lines {
    /// Lines for `total` steps of the phase `label`, every `interval` of `clock`'s time, to
    /// `out`.
    pub fn new(
        label: &str,
        total: u64,
        interval: Duration,
        clock: Box<dyn Clock>,
        out: Box<dyn Write + Send>,
    ) -> Self {
        let start = clock.now();
        Self {
            label: label.to_string(),
            total,
            done: 0,
            interval,
            clock,
            start,
            due: start + interval,
            out,
        }
    }

    /// One step done: a line when an interval has passed since the last one (or the start), or
    /// when this is the last step.
    pub fn step(&mut self, message: impl FnOnce() -> String) {
        self.done += 1;
        let now = self.clock.now();
        if now >= self.due || self.done == self.total {
            let line = line(
                &self.label,
                self.done,
                self.total,
                now.saturating_sub(self.start),
                &message(),
            );
            // A log that cannot be written to must not stop the work.
            let _ = writeln!(self.out, "{line}");
            self.due = now + self.interval;
        }
    }
}

/// One line: the phase, steps done of the total, the mean rate since the phase started, the
/// message (when there is one) and the time left at that rate.
pub(crate) fn line(label: &str, done: u64, total: u64, elapsed: Duration, message: &str) -> String {
    let seconds = elapsed.as_secs_f64();
    let rate = (seconds > 0.0).then(|| done as f64 / seconds);
    let rate_text = rate.map_or_else(|| "-".to_string(), |rate| format!("{rate:.2}"));
    let left = total.saturating_sub(done);
    let eta = match rate {
        _ if left == 0 => clock_time(0.0),
        Some(rate) if rate > 0.0 => clock_time(left as f64 / rate),
        _ => "-:--:--".to_string(),
    };
    let message = if message.is_empty() {
        String::new()
    } else {
        format!(", {message}")
    };
    format!("{label}: {done}/{total}, {rate_text} steps/s{message}, ETA {eta}")
}

/// `seconds` as `h:mm:ss`, rounded to the second.
fn clock_time(seconds: f64) -> String {
    let total = seconds.round() as u64;
    format!("{}:{:02}:{:02}", total / 3600, total / 60 % 60, total % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::clock::ManualClock;
    use crate::progress::tests::Captured;

    const SECOND: Duration = Duration::from_secs(1);

    fn lines(total: u64, interval: Duration) -> (Lines, ManualClock, Captured) {
        let clock = ManualClock::default();
        let captured = Captured::default();
        let lines = Lines::new(
            "epoch 2",
            total,
            interval,
            Box::new(clock.clone()),
            Box::new(captured.clone()),
        );
        (lines, clock, captured)
    }

    /// Steps inside the first interval write nothing; the step on which it has passed writes
    /// one line with the rate since the start and the ETA at that rate.
    #[test]
    fn no_line_before_the_interval() {
        let (mut lines, clock, captured) = lines(100, 30 * SECOND);
        for _ in 0..9 {
            clock.advance(3 * SECOND);
            lines.step(|| "loss 0.500".into());
        }
        assert_eq!(captured.lines(), Vec::<String>::new(), "27 s < 30 s");
        clock.advance(3 * SECOND);
        lines.step(|| "loss 0.450".into());
        // 10 steps in 30 s: 0.33 steps/s, 90 left: 270 s.
        assert_eq!(
            captured.lines(),
            ["epoch 2: 10/100, 0.33 steps/s, loss 0.450, ETA 0:04:30"]
        );
    }

    /// Many steps per interval give one line per interval, not one per step; a long stall gives
    /// one line, not a burst of the intervals it spanned.
    #[test]
    fn one_line_per_elapsed_interval() {
        let (mut lines, clock, captured) = lines(10_000, 10 * SECOND);
        // 100 steps per second for 60 s: 6 intervals.
        for _ in 0..6000 {
            clock.advance(SECOND / 100);
            lines.step(String::new);
        }
        let written = captured.lines();
        assert_eq!(written.len(), 6, "{written:?}");
        assert_eq!(
            written[0],
            "epoch 2: 1000/10000, 100.00 steps/s, ETA 0:01:30"
        );
        assert_eq!(
            written[5],
            "epoch 2: 6000/10000, 100.00 steps/s, ETA 0:00:40"
        );
        // A stall of 5 intervals, then steps again: one more line.
        clock.advance(50 * SECOND);
        lines.step(String::new);
        lines.step(String::new);
        assert_eq!(captured.lines().len(), 7);
        assert!(captured.lines()[6].starts_with("epoch 2: 6001/10000, 54.55 steps/s"));
    }

    /// The last step writes the end-of-phase line once, even inside an interval, with no time
    /// left.
    #[test]
    fn the_last_step_writes_one_line() {
        let (mut lines, clock, captured) = lines(4, 30 * SECOND);
        for _ in 0..4 {
            clock.advance(SECOND);
            lines.step(|| "loss 0.1".into());
        }
        assert_eq!(
            captured.lines(),
            ["epoch 2: 4/4, 1.00 steps/s, loss 0.1, ETA 0:00:00"]
        );
    }

    /// The ETA is hours, minutes and seconds at the mean rate; with no time elapsed yet the
    /// rate and the ETA are unknown, not infinite.
    #[test]
    fn the_line_reads_as_time() {
        assert_eq!(
            line("encode images", 1, 7201, SECOND, ""),
            "encode images: 1/7201, 1.00 steps/s, ETA 2:00:00"
        );
        assert_eq!(
            line("score", 3, 10, Duration::ZERO, "x"),
            "score: 3/10, - steps/s, x, ETA -:--:--"
        );
        assert_eq!(clock_time(3599.6), "1:00:00");
        assert_eq!(clock_time(61.0), "0:01:01");
    }
}
