//! Step learning-rate decay.

/// `lr(epoch) = base · factor^{[epoch ≥ decay_epoch]}` (VSE∞'s single step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepDecay {
    /// Initial learning rate.
    pub base: f64,
    /// First epoch (0-based) at the decayed rate.
    pub decay_epoch: usize,
    /// Multiplier applied from `decay_epoch` on.
    pub factor: f64,
}

impl StepDecay {
    /// The learning rate of `epoch` (0-based).
    pub fn at(&self, epoch: usize) -> f64 {
        if epoch >= self.decay_epoch {
            self.base * self.factor
        } else {
            self.base
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decays_once() {
        let schedule = StepDecay {
            base: 5e-4,
            decay_epoch: 15,
            factor: 0.1,
        };
        assert_eq!(schedule.at(0), 5e-4);
        assert_eq!(schedule.at(14), 5e-4);
        assert!((schedule.at(15) - 5e-5).abs() < 1e-12);
        assert!((schedule.at(24) - 5e-5).abs() < 1e-12);
    }
}
