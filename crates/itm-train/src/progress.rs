//! Progress display: a bar on a terminal, a few plain lines otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Reports progress through `total` steps of one phase.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    done: u64,
    next_line: u64,
}

impl Progress {
    /// A bar on stderr when it is a terminal; otherwise a line at each quarter (or none for
    /// `quiet`).
    pub fn new(label: &str, total: usize, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            bar
        });
        Self {
            bar,
            label: label.to_string(),
            total: total as u64,
            done: 0,
            next_line: if quiet {
                u64::MAX
            } else {
                (total as u64).div_ceil(4).max(1)
            },
        }
    }

    /// One step done; `message` is shown beside the bar (e.g. the running loss).
    pub fn step(&mut self, message: impl FnOnce() -> String) {
        self.done += 1;
        match &self.bar {
            Some(bar) => {
                bar.set_message(message());
                bar.inc(1);
            }
            None if self.done >= self.next_line && self.done < self.total => {
                eprintln!("{}: {}/{} {}", self.label, self.done, self.total, message());
                self.next_line += self.total.div_ceil(4).max(1);
            }
            None => {}
        }
    }

    /// Ends the phase (clears the bar).
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
