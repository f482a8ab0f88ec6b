//! How often a progress line is written when stderr is not a terminal: `itm train
//! --progress-interval SECONDS` (through [`set`]), else the `ITM_PROGRESS_INTERVAL` environment
//! variable, else [`DEFAULT`].

use std::sync::{Mutex, Once};
use std::time::Duration;

/// The interval when nothing sets one.
pub(crate) const DEFAULT: Duration = Duration::from_secs(30);

/// The environment variable read when no flag set the interval.
pub(crate) const ENV: &str = "ITM_PROGRESS_INTERVAL";

/// The interval set by the command line, which wins over the environment.
static CHOSEN: Mutex<Option<Duration>> = Mutex::new(None);

/// Sets the interval of every progress display made from now on in this process.
pub(crate) fn set(interval: Duration) {
    *CHOSEN.lock().unwrap_or_else(|e| e.into_inner()) = Some(interval);
}

/// The interval in force: the one [`set`], else `ITM_PROGRESS_INTERVAL`, else [`DEFAULT`]. An
/// unreadable variable is reported once on stderr and the default is used.
pub(crate) fn current() -> Duration {
    if let Some(chosen) = *CHOSEN.lock().unwrap_or_else(|e| e.into_inner()) {
        return chosen;
    }
    let Ok(text) = std::env::var(ENV) else {
        return DEFAULT;
    };
    parse(&text).unwrap_or_else(|e| {
        static WARNED: Once = Once::new();
        WARNED.call_once(|| eprintln!("{ENV}: {e}; progress lines every {} s", DEFAULT.as_secs()));
        DEFAULT
    })
}

/// Reads a number of seconds (fractions allowed, e.g. `0.5`; `0` writes a line at every step).
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of seconds, found {text:?}"))?;
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("expected a number of seconds ≥ 0, found {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whole and fractional seconds are read; negative, infinite and non-numbers are refused
    /// with the text quoted.
    #[test]
    fn seconds_are_parsed() {
        assert_eq!(parse("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse(" 0.25 "), Ok(Duration::from_millis(250)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        for bad in ["-1", "inf", "NaN", "soon", ""] {
            let error = parse(bad).unwrap_err();
            assert!(error.contains(&format!("{bad:?}")), "{error}");
        }
    }
}
