//! Progress display: a bar on a terminal; otherwise a line for a log at a fixed interval of
//! time (default 30 s, `itm train --progress-interval`, `ITM_PROGRESS_INTERVAL`) and one at the
//! end of the phase; nothing when quiet.
//!
//! - [`clock`]: the time the lines are paced by (the real clock, or one moved by hand in tests).
//! - [`lines`]: the lines (phase, step/total, steps per second, message, ETA).
//! - [`interval`]: the interval in force.

mod clock;
mod interval;
mod lines;

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use clock::{Clock, SystemClock};
use lines::Lines;

/// Reports progress through `total` steps of one phase.
pub struct Progress {
    view: View,
}

/// How a phase is shown.
enum View {
    /// An indicatif bar (stderr is a terminal).
    Bar(ProgressBar),
    /// Lines at an interval of time (stderr is a file or a pipe).
    Lines(Lines),
    /// Nothing (`quiet`).
    Quiet,
}

/// Where a display goes: what [`Progress::new`] finds, or what a test gives.
struct Sinks {
    terminal: bool,
    bar: ProgressDrawTarget,
    clock: Box<dyn Clock>,
    lines: Box<dyn Write + Send>,
    interval: Duration,
}

impl Progress {
    /// A bar on stderr when it is a terminal; otherwise a line on stderr every interval (see
    /// [`Progress::set_interval`]) and at the end of the phase, as
    /// `"{label}: {done}/{total}, {rate} steps/s, {message}, ETA {h:mm:ss}"`; nothing for
    /// `quiet`.
    pub fn new(label: &str, total: usize, quiet: bool) -> Self {
        Self::with_sinks(
            label,
            total,
            quiet,
            Sinks {
                terminal: std::io::stderr().is_terminal(),
                bar: ProgressDrawTarget::stderr(),
                clock: Box::new(SystemClock::new()),
                lines: Box::new(std::io::stderr()),
                interval: interval::current(),
            },
        )
    }

    fn with_sinks(label: &str, total: usize, quiet: bool, sinks: Sinks) -> Self {
        let view = if quiet {
            View::Quiet
        } else if sinks.terminal {
            let bar = ProgressBar::with_draw_target(Some(total as u64), sinks.bar);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            View::Bar(bar)
        } else {
            View::Lines(Lines::new(
                label,
                total as u64,
                sinks.interval,
                sinks.clock,
                sinks.lines,
            ))
        };
        Self { view }
    }

    /// Sets how often the progress lines (stderr not a terminal) are written by every display
    /// made from now on in this process: `itm train --progress-interval`. Without it, the
    /// `ITM_PROGRESS_INTERVAL` environment variable (seconds) is read, else 30 s.
    pub fn set_interval(interval: Duration) {
        interval::set(interval);
    }

    /// Reads an interval in seconds (`30`, `0.5`; `0` writes a line at every step), as
    /// `--progress-interval` and `ITM_PROGRESS_INTERVAL` take it.
    pub fn parse_interval(seconds: &str) -> Result<Duration, String> {
        interval::parse(seconds)
    }

    /// One step done; `message` is shown beside the bar or in the line (e.g. the running loss).
    pub fn step(&mut self, message: impl FnOnce() -> String) {
        match &mut self.view {
            View::Bar(bar) => {
                bar.set_message(message());
                bar.inc(1);
            }
            View::Lines(lines) => lines.step(message),
            View::Quiet => {}
        }
    }

    /// Ends the phase (clears the bar).
    pub fn finish(self) {
        if let View::Bar(bar) = self.view {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{Arc, Mutex};

    use super::clock::ManualClock;
    use super::*;

    /// A writer whose bytes a test reads back; clones share them.
    #[derive(Clone, Default)]
    pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        /// What was written, line by line.
        pub fn lines(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A display of 10 steps, one second apart, with a 2 s interval.
    fn run(quiet: bool, terminal: bool) -> (Progress, Captured) {
        let clock = ManualClock::default();
        let captured = Captured::default();
        let mut progress = Progress::with_sinks(
            "epoch 0",
            10,
            quiet,
            Sinks {
                terminal,
                bar: ProgressDrawTarget::hidden(),
                clock: Box::new(clock.clone()),
                lines: Box::new(captured.clone()),
                interval: Duration::from_secs(2),
            },
        );
        for step in 1..=10 {
            clock.advance(Duration::from_secs(1));
            progress.step(|| format!("loss {step}"));
        }
        (progress, captured)
    }

    /// Not a terminal: a line every 2 s of the 10 (the last one being the end of the phase).
    #[test]
    fn lines_when_not_a_terminal() {
        let (progress, captured) = run(false, false);
        assert!(matches!(progress.view, View::Lines(_)));
        let written = captured.lines();
        assert_eq!(written.len(), 5, "{written:?}");
        assert_eq!(
            written[0],
            "epoch 0: 2/10, 1.00 steps/s, loss 2, ETA 0:00:08"
        );
        assert_eq!(
            written[4],
            "epoch 0: 10/10, 1.00 steps/s, loss 10, ETA 0:00:00"
        );
        progress.finish();
        assert_eq!(
            captured.lines().len(),
            5,
            "finish writes no second end line"
        );
    }

    /// Quiet: nothing, terminal or not.
    #[test]
    fn quiet_writes_nothing() {
        for terminal in [false, true] {
            let (progress, captured) = run(true, terminal);
            assert!(matches!(progress.view, View::Quiet));
            progress.finish();
            assert!(captured.lines().is_empty());
        }
    }

    /// A terminal: the bar counts the steps and shows the message; no line is written.
    #[test]
    fn a_terminal_gets_the_bar() {
        let (progress, captured) = run(false, true);
        let View::Bar(bar) = &progress.view else {
            panic!("a bar on a terminal");
        };
        assert_eq!(bar.position(), 10);
        assert_eq!(bar.length(), Some(10));
        assert_eq!(bar.message(), "loss 10");
        assert_eq!(bar.prefix(), "epoch 0");
        assert!(captured.lines().is_empty());
        progress.finish();
        assert!(captured.lines().is_empty());
    }
}
