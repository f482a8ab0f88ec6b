//! The live view of a run: the training loop reports through burn-train's
//! [`TrainingProgressLogger`] protocol (`start`, then per epoch `start_split("train", n)`,
//! `update_split` per step, `end_split`, `update_epoch`; then `end`), and this view draws it
//! with [`Progress`]: a bar per epoch on a terminal, otherwise a line at a fixed interval of
//! time with the running loss (and one at the end of the epoch), nothing when quiet.
//!
//! Any other implementation of the protocol (burn-train's own renderers implement it) can take
//! its place without touching the loop.

use burn::train::logger::TrainingProgressLogger;

use crate::Progress;

/// The view of `itm train`'s epochs (see the module docs).
pub(super) struct EpochView {
    quiet: bool,
    /// The epoch the next split belongs to (0-based).
    epoch: usize,
    /// The display of the split under way.
    split: Option<Progress>,
    /// What the last event said (the running loss, a skipped step), shown with the next step.
    note: String,
}

impl EpochView {
    /// A view on stderr; `quiet` hides the bar and the lines.
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            epoch: 0,
            split: None,
            note: String::new(),
        }
    }

    /// The label of the next split's display.
    fn label(&self) -> String {
        format!("epoch {}", self.epoch)
    }
}

impl TrainingProgressLogger for EpochView {
    fn start(
        &mut self,
        _total_epochs: usize,
        starting_epoch: usize,
        _total_items: Option<usize>,
        _label: Option<&str>,
    ) {
        self.epoch = starting_epoch;
    }

    fn update_epoch(&mut self, epoch: usize) {
        self.epoch = epoch + 1;
    }

    fn start_split(&mut self, _split: &str, total_items: usize) {
        self.split = Some(Progress::new(&self.label(), total_items, self.quiet));
    }

    fn update_split(&mut self, _items_processed: usize) {
        if let Some(split) = &mut self.split {
            split.step(|| self.note.clone());
        }
    }

    fn end_split(&mut self) {
        if let Some(split) = self.split.take() {
            split.finish();
        }
    }

    fn end(&mut self) {
        self.end_split();
    }

    fn log_event_training(&mut self, event: String) {
        self.note = event;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The view follows the protocol: a split opens a display labelled with the epoch that
    /// `start` and `update_epoch` set, steps count on it, and `end_split` closes it.
    #[test]
    fn splits_are_labelled_with_their_epoch() {
        let mut view = EpochView::new(true);
        view.start(5, 2, None, None);
        assert_eq!(view.label(), "epoch 2");
        view.start_split("train", 3);
        assert!(view.split.is_some());
        view.log_event_training("loss 0.5".into());
        view.update_split(1);
        assert_eq!(view.note, "loss 0.5");
        view.end_split();
        assert!(view.split.is_none());
        view.update_epoch(2);
        assert_eq!(view.label(), "epoch 3");
        view.start_split("train", 1);
        view.end();
        assert!(view.split.is_none());
    }
}
