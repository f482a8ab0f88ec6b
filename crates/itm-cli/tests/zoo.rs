//! The zoo entries of the new losses, fusion and relation layer train on `shapes` through the
//! real binary with one switch (`--model NAME`; the small `shapes` size comes from a run.toml),
//! InfoNCE learns its temperature, and a resumed run continues the loss state exactly. One test
//! runs them one after the other: the flex device's random draws are per device, so parallel
//! runs would interleave.

use std::path::{Path, PathBuf};

use itm_test_support::{
    Binary, ShapesToml, TempDir, itm_binary, read_json, read_jsonl, validation_rsum,
};

/// The binary, quietly; every run of this file must succeed.
const QUIET: Binary = itm_binary!().with_args(&["--quiet"]);

/// A small run of `model` (400 training images, D = 32, 3 epochs at a constant rate 2e-3, no
/// VSE0 warm-up so that the epochs' losses are comparable) with `extra` `[training]` keys; returns the output folder.
fn train(dir: &Path, model: &str, extra: &str) -> PathBuf {
    train_run(dir, model, model, 3, extra)
}

/// [`train`] into `dir/name` for `epochs` epochs.
fn train_run(dir: &Path, name: &str, model: &str, epochs: usize, extra: &str) -> PathBuf {
    let output = dir.join(name);
    let config = dir.join(format!("{name}.toml"));
    let text = ShapesToml {
        seed: 7,
        images: [400, 50, 50],
        feature_width: Some(32),
    }
    .run_file(
        &output,
        "embed = 32\nword_dim = 32\n",
        &format!(
            "epochs = {epochs}\nbatch_size = 32\nlearning_rate = 2e-3\nlr_decay_epoch = 2\n\
             lr_decay_factor = 1.0\nwarmup_epochs = 0\nseed = 3\n{extra}"
        ),
    );
    std::fs::write(&config, text).unwrap();
    QUIET.ok(&[
        "train",
        "--model",
        model,
        "--config",
        config.to_str().unwrap(),
    ]);
    output
}

/// A run of `model` stopped after one epoch and resumed for a second equals an uninterrupted
/// two-epoch run: the records (without timings) and the loss state in resume.json.
fn assert_resumes_exactly(dir: &Path, model: &str, extra: &str) {
    let full = train_run(dir, &format!("{model}-full"), model, 2, extra);
    let part = train_run(dir, &format!("{model}-part"), model, 1, extra);
    QUIET.ok(&["train", "--resume", part.to_str().unwrap(), "--epochs", "2"]);
    let timeless = |run: &Path| {
        let mut history = records(run);
        for record in &mut history {
            record.as_object_mut().unwrap().remove("seconds");
        }
        history
    };
    assert_eq!(timeless(&full), timeless(&part), "{model}");
    let loss_state = |run: &Path| {
        let mut state = read_json(&run.join("resume.json"))["loss"].clone();
        // A parameter id is drawn per run: only the temperature's value must agree.
        if let Some(temperature) = state.get_mut("temperature") {
            temperature.as_object_mut().unwrap().remove("param_id");
        }
        state
    };
    let state = loss_state(&full);
    assert!(state.as_object().is_some_and(|o| !o.is_empty()), "{state}");
    assert_eq!(state, loss_state(&part), "{model}");
}

/// Every epoch's record of a run's metrics.jsonl.
fn records(run: &Path) -> Vec<serde_json::Value> {
    read_jsonl(&run.join("metrics.jsonl"))
}

/// The dev rsum of an epoch's record.
fn rsum(record: &serde_json::Value) -> f64 {
    validation_rsum(&record["validation"])
}

#[test]
fn new_zoo_entries_and_losses_train_on_shapes() {
    let dir = TempDir::new("cli-zoo");
    // Chance on 50 dev images with 5 captions each: R@1/5/10 of 2/10/20 for t2i, about
    // 2/9.6/18.6 for i2t (any of 5 of 250 captions in the top K): rsum ≈ 62.
    let chance = 62.0;
    for (model, extra) in [
        ("chan_asdg", ""),
        ("daim_vse", ""),
        // AAHR's relation losses from the first step too (HREM's warm-up).
        ("aahr", "relation_warmup_steps = 0\n"),
        // HREM's relation losses from the first step (its 8000-step warm-up is longer than
        // this run).
        ("hrem", "relation_warmup_steps = 0\n"),
        ("vse_infinity_bigru", "loss = \"info_nce\"\n"),
    ] {
        let run = train(&dir, model, extra);
        let history = records(&run);
        assert_eq!(history.len(), 3, "{model}");
        let losses: Vec<f64> = history
            .iter()
            .map(|r| r["mean_loss"].as_f64().unwrap())
            .collect();
        let best = history.iter().map(rsum).fold(f64::MIN, f64::max);
        eprintln!("{model}: losses {losses:?}, best dev rsum {best:.1}");
        assert!(losses[2] < losses[0], "{model}: {losses:?}");
        // Well above chance, with room for the initialisation: these are three-epoch runs on
        // 400 images, and the ambiguity-aware loss learns slowest (dev rsum 159 and 87 at two
        // initialisations that differ only in the order the lazy parameters were drawn).
        assert!(best > 1.3 * chance, "{model}: rsum {best}");
        if model == "aahr" {
            // `itm evaluate` scores the multi-grained checkpoint: the blocked cosine matrix
            // plus w times the sharded CHAN matrix.
            let out = QUIET.ok(&["evaluate", "--checkpoint", run.to_str().unwrap(), "--json"]);
            let json: serde_json::Value = serde_json::from_str(&out).unwrap();
            let rsum = json["rsum"].as_f64().unwrap();
            assert!(rsum > 1.3 * chance, "aahr: itm evaluate rsum {rsum}");
        }
        let resume = read_json(&run.join("resume.json"));
        let margins: Vec<Option<f64>> = history.iter().map(|r| r["margin"].as_f64()).collect();
        match model {
            "daim_vse" => {
                // The mean adaptive margin stays in [0.05, 0.4]; the running statistics of every
                // step are in the resume state, and the last epoch's margin agrees with them: at
                // α_max while they overlap (g ≤ 0, as in a run this short), below it after.
                let margins: Vec<f64> = margins.into_iter().map(Option::unwrap).collect();
                assert!(
                    margins
                        .iter()
                        .all(|m| (0.05 - 1e-9..=0.4 + 1e-9).contains(m)),
                    "{margins:?}"
                );
                let stats = &resume["loss"]["margin_statistics"];
                let steps = stats["steps"].as_u64();
                assert_eq!(steps, Some(3 * 2000u64.div_ceil(32)), "{resume}");
                let value = |key: &str| stats[key].as_f64().unwrap();
                let separation = value("positive_mean")
                    - value("negative_mean")
                    - value("positive_std")
                    - value("negative_std");
                eprintln!("daim_vse: epoch margins {margins:?}, separation {separation:.3}");
                if separation <= 0.0 {
                    assert!((margins[2] - 0.4).abs() < 1e-9, "{margins:?}");
                } else {
                    assert!(margins[2] < 0.4, "{margins:?} with g = {separation}");
                }
            }
            "vse_infinity_bigru" => {
                // InfoNCE has no margin; its temperature was optimised away from 1/0.07.
                assert_eq!(margins, [None; 3]);
                let log_scale = resume["loss"]["temperature"]["log_scale"].as_f64().unwrap();
                assert!(
                    (log_scale - (1.0f64 / 0.07).ln()).abs() > 1e-3,
                    "{log_scale}"
                );
            }
            "chan_asdg" => assert_eq!(margins, [Some(0.05); 3]),
            _ => assert_eq!(margins, [Some(0.2); 3]),
        }
    }
    // The adaptive margin's statistics and InfoNCE's temperature (and its optimiser state)
    // continue across a resume.
    assert_resumes_exactly(&dir, "daim_vse", "");
    assert_resumes_exactly(&dir, "vse_infinity_bigru", "loss = \"info_nce\"\n");
}
