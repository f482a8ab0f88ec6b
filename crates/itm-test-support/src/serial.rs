//! One training at a time.

use std::sync::{Mutex, MutexGuard};

static DEVICE_GENERATOR: Mutex<()> = Mutex::new(());

/// Holds the device's random generator for the calling test until the guard is dropped.
///
/// Training draws its initial weights and dropout from the backend's random generator, which
/// `flex` keeps per process (a static, whatever the device): two tests of one test binary
/// training in parallel would interleave their draws, and results that are exact for a given
/// seed would not be. Every test of a binary that trains, or that compares two trainings,
/// takes this guard first. A test that panicked while holding it does not block the others.
pub fn serial() -> MutexGuard<'static, ()> {
    DEVICE_GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
