//! The time the progress lines are paced by: the real clock, or one advanced by hand in tests.

use std::time::{Duration, Instant};

/// A monotonic clock: [`now`](Clock::now) is the time since a fixed origin of this clock.
pub(crate) trait Clock: Send {
    /// The time elapsed since this clock's origin; never decreases.
    fn now(&self) -> Duration;
}

/// The real clock: time since it was made, read from [`Instant`].
pub(crate) struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

#[cfg(test)]
pub(crate) use manual::ManualClock;

#[cfg(test)]
mod manual {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::Clock;

    /// A clock that moves only when a test [advances](ManualClock::advance) it; clones share
    /// the time, so a test keeps one and hands another to the reporter.
    #[derive(Clone, Default)]
    pub(crate) struct ManualClock(Arc<Mutex<Duration>>);

    impl ManualClock {
        /// Moves the clock forward by `by`.
        pub fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Duration {
            *self.0.lock().unwrap()
        }
    }
}
