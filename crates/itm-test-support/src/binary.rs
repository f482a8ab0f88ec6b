//! Running the `itm` binary of `itm-cli` from its integration tests.

use std::process::{Command, Output};

/// The `itm` binary, with arguments added to every run (none unless [`Binary::with_args`]).
///
/// Made by [`itm_binary!`](crate::itm_binary), usually as a constant of the test file:
/// `const ITM: Binary = itm_binary!();`.
#[derive(Debug, Clone, Copy)]
pub struct Binary {
    path: &'static str,
    extra: &'static [&'static str],
}

/// The `itm` binary that cargo built for the calling test crate (`CARGO_BIN_EXE_itm`, set for
/// the integration tests of `itm-cli`), as a [`Binary`].
#[macro_export]
macro_rules! itm_binary {
    () => {
        $crate::Binary::at(env!("CARGO_BIN_EXE_itm"))
    };
}

impl Binary {
    /// The binary at `path`.
    pub const fn at(path: &'static str) -> Self {
        Self { path, extra: &[] }
    }

    /// The same binary with `extra` appended to the arguments of every run (e.g. `--quiet`).
    pub const fn with_args(self, extra: &'static [&'static str]) -> Self {
        Self { extra, ..self }
    }

    /// A command for the binary (without the extra arguments), to set up by hand.
    pub fn command(&self) -> Command {
        Command::new(self.path)
    }

    /// Runs the binary with `args` (and the extra arguments) and waits for it.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .args(self.extra)
            .output()
            .expect("the binary runs")
    }

    /// Runs `args`, asserts that it succeeds, and returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs `args`, asserts that it fails without a panic with every needle in its stderr, and
    /// returns that stderr.
    pub fn fails(&self, args: &[&str], needles: &[&str]) -> String {
        let output = self.run(args);
        assert!(!output.status.success(), "{args:?} should fail");
        let message = stderr(&output);
        for needle in needles {
            assert!(
                message.contains(needle),
                "{args:?}: {message:?} lacks {needle:?}"
            );
        }
        assert!(!message.contains("panicked"), "{message}");
        message
    }
}

/// The stderr of a finished run, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts that a run succeeded; returns its stdout (which must be UTF-8).
pub fn succeeded(output: Output) -> String {
    assert!(
        output.status.success(),
        "itm failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 on stdout")
}

/// Asserts that a run failed; returns its stderr.
pub fn failed(output: Output) -> String {
    assert!(!output.status.success(), "itm should have failed");
    stderr(&output)
}
