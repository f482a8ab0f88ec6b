//! Crash safety of `itm train`: a run killed with SIGKILL at arbitrary moments, and resumed
//! after every kill, ends exactly where an uninterrupted run with the same seed ends; whatever a
//! killed run leaves behind loads.
//!
//! Tolerance: none. On the `flex` backend a run is deterministic given its seed, and each epoch
//! draws its data order and augmentation from (seed, epoch), so the resumed history and the
//! final scores must be bit-identical to the uninterrupted run's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use itm::burn::tensor::Device;
use itm_test_support::{Binary, ShapesToml, TempDir, itm_binary, read_jsonl};
use itm_train::{Checkpoint, RESUME_FILE};

const ITM: Binary = itm_binary!();

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A tiny VSE∞ run of three epochs (200 training images, D = 32).
fn write_config(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let output = dir.join(name);
    let config = dir.join(format!("{name}.toml"));
    let text = ShapesToml {
        seed: 5,
        images: [200, 40, 40],
        feature_width: Some(32),
    }
    .run_file(
        &output,
        "name = \"vse_infinity_bigru\"\nembed = 32\nword_dim = 32\n",
        "epochs = 3\nbatch_size = 40\nlr_decay_epoch = 2\nseed = 4\n",
    );
    std::fs::write(&config, text).unwrap();
    (config, output)
}

/// The command that continues the run in `output`: a resume when a resume state exists, else
/// a fresh start from the configuration.
fn continue_run(config: &Path, output: &Path) -> Command {
    let mut command = ITM.command();
    if output.join(RESUME_FILE).exists() {
        command.args(["train", "--resume", s(output), "--quiet"]);
    } else {
        command.args(["train", "--config", s(config), "--quiet"]);
    }
    command.stdout(Stdio::null()).stderr(Stdio::null());
    command
}

/// Epochs recorded in the run's resume state (0 without one).
fn epochs_done(run: &Path) -> u64 {
    std::fs::read_to_string(run.join(RESUME_FILE))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|state| state["epochs_done"].as_u64())
        .unwrap_or(0)
}

/// metrics.jsonl without the timings.
fn records(run: &Path) -> Vec<serde_json::Value> {
    read_jsonl(&run.join("metrics.jsonl"))
        .into_iter()
        .map(|mut record| {
            record.as_object_mut().unwrap().remove("seconds");
            record
        })
        .collect()
}

/// The test split's scores under the run's best checkpoint.
fn test_scores(run: &Path, dir: &Path) -> Vec<u8> {
    let path = dir.join(format!(
        "{}.npy",
        run.file_name().unwrap().to_str().unwrap()
    ));
    let status = ITM
        .command()
        .args([
            "evaluate",
            "--checkpoint",
            s(run),
            "--quiet",
            "--save-sims",
            s(&path),
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "evaluate {}", run.display());
    std::fs::read(path).unwrap()
}

/// Fractions in [0, 1) from a fixed linear congruential sequence (kill times).
fn fractions(seed: u64) -> impl Iterator<Item = f64> {
    let mut state = seed;
    std::iter::repeat_with(move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    })
}

#[test]
fn killed_runs_resume_to_the_uninterrupted_result() {
    let dir = TempDir::new("crash");
    let device = Device::flex();

    let (config, full) = write_config(&dir, "full");
    let started = Instant::now();
    assert!(continue_run(&config, &full).status().unwrap().success());
    let duration = started.elapsed();

    let (config, part) = write_config(&dir, "part");
    let mut kills = 0;
    for fraction in fractions(42).take(5) {
        let mut child = continue_run(&config, &part).spawn().unwrap();
        // Within the first 60 % of a whole run's time: a resumed run has less left to do than a
        // whole one, so later kills often came after it had ended (a clean-clone CI check
        // failed that way once, kills < 2).
        std::thread::sleep(duration.mul_f64(0.05 + 0.55 * fraction));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        // What the killed run leaves loads: its resume state and its best checkpoint.
        if part.join(RESUME_FILE).exists() {
            let state: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(part.join(RESUME_FILE)).unwrap())
                    .unwrap();
            let folder = part.join(state["folder"].as_str().unwrap());
            Checkpoint::new(&folder)
                .load(&device)
                .unwrap_or_else(|e| panic!("resume state after kill {kills}: {e}"));
            Checkpoint::new(&part)
                .load(&device)
                .unwrap_or_else(|e| panic!("best checkpoint after kill {kills}: {e}"));
        }
    }
    // Then to the end, without interruption (one call, or two when the last kill came
    // after the final epoch's resume state but before the run finished).
    for _ in 0..2 {
        if epochs_done(&part) == 3 {
            break;
        }
        assert!(continue_run(&config, &part).status().unwrap().success());
    }
    assert_eq!(epochs_done(&part), 3);
    eprintln!("{kills} kills; an uninterrupted run took {duration:?}");
    assert!(kills >= 2, "the runs ended before they could be killed");
    assert_eq!(records(&full), records(&part), "resumed history differs");
    assert_eq!(
        test_scores(&full, &dir),
        test_scores(&part, &dir),
        "resumed model scores differently"
    );
}
