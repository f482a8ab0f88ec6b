//! The multi-level entries (`hat`, `daim`: Swin levels, BERT levels, HAT's multi-level head)
//! through the real binary on `shapes` pixels: each trains from scratch and its loss falls,
//! DAIM keeps one adaptive-margin state per level and continues them exactly on resume,
//! `itm evaluate --json` reports every level's
//! metrics beside the summed score's, and `--swin`/`--bert`
//! start the towers from the tiny transformers folders. One test runs them one after the
//! other: the flex device's random draws are per device.

use std::path::{Path, PathBuf};

use itm_test_support::{
    Binary, ShapesToml, TempDir, itm_binary, read_json, read_jsonl, train_fixtures,
};

/// The binary, quietly; every run of this file must succeed.
const QUIET: Binary = itm_binary!().with_args(&["--quiet"]);

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A run of `model` on 160 `shapes` images (32 × 32 pixels, 20 dev and test images), D = 32,
/// batch 16, 3 epochs at a constant rate 2e-3 with `extra` `[model]` keys; returns the output
/// folder.
fn train(dir: &Path, name: &str, model: &str, extra: &str, epochs: usize) -> PathBuf {
    let output = dir.join(name);
    let config = dir.join(format!("{name}.toml"));
    let text = ShapesToml {
        seed: 7,
        images: [160, 20, 20],
        feature_width: None,
    }
    .run_file(
        &output,
        &format!("embed = 32\nimage_size = 32\n{extra}"),
        &format!(
            "epochs = {epochs}\nbatch_size = 16\nlearning_rate = 2e-3\nlr_decay_epoch = 2\n\
             lr_decay_factor = 1.0\nwarmup_epochs = 0\nseed = 3\n"
        ),
    );
    std::fs::write(&config, text).unwrap();
    QUIET.ok(&["train", "--model", model, "--config", s(&config)]);
    output
}

#[test]
fn hat_and_daim_train_on_shapes_pixels_and_report_their_levels() {
    let dir = TempDir::new("cli-multi-level");
    for model in ["hat", "daim"] {
        let run = train(&dir, model, model, "", 3);
        let history = read_jsonl(&run.join("metrics.jsonl"));
        let losses: Vec<f64> = history
            .iter()
            .map(|r| r["mean_loss"].as_f64().unwrap())
            .collect();
        eprintln!("{model}: losses {losses:?}");
        assert!(losses.iter().all(|l| l.is_finite()), "{model}: {losses:?}");
        assert!(losses[2] < losses[0], "{model}: {losses:?}");
        let written = std::fs::read_to_string(run.join("run.toml")).unwrap();
        assert!(written.contains("images = \"swin\""), "{written}");
        let resume = read_json(&run.join("resume.json"));
        if model == "daim" {
            // One adaptive margin per level, each having seen every step.
            let levels = resume["loss"]["level_margin_statistics"]
                .as_array()
                .expect("per-level statistics")
                .clone();
            assert_eq!(levels.len(), 3, "{resume}");
            for level in &levels {
                assert_eq!(level["steps"].as_u64(), Some(3 * 800u64.div_ceil(16)));
            }
            let margins: Vec<f64> = history
                .iter()
                .map(|r| r["margin"].as_f64().unwrap())
                .collect();
            assert!(
                margins
                    .iter()
                    .all(|m| (0.05 - 1e-9..=0.4 + 1e-9).contains(m))
            );
        } else {
            assert!(history.iter().all(|r| r["margin"].as_f64() == Some(0.2)));
        }

        // The summed score's metrics, and each level's alone.
        let evaluated: serde_json::Value =
            serde_json::from_str(&QUIET.ok(&["evaluate", "--checkpoint", s(&run), "--json"]))
                .unwrap();
        let levels = evaluated["levels"].as_array().expect("per-level metrics");
        assert_eq!(levels.len(), 3, "{evaluated}");
        let rsums: Vec<f64> = levels.iter().map(|l| l["rsum"].as_f64().unwrap()).collect();
        eprintln!(
            "{model}: test rsum {} by level {rsums:?}",
            evaluated["rsum"]
        );
        assert!(rsums.iter().all(|r| r.is_finite() && *r > 0.0), "{rsums:?}");
        assert!(evaluated["rsum"].as_f64().unwrap() > 0.0);
    }

    // DAIM's per-level margin states continue across a resume: one epoch, then a second on
    // resume, equals two epochs in one run (records without timings, and the loss state).
    let full = train(&dir, "daim-full", "daim", "", 2);
    let part = train(&dir, "daim-part", "daim", "", 1);
    QUIET.ok(&["train", "--resume", s(&part), "--epochs", "2"]);
    let timeless = |run: &Path| {
        let mut history = read_jsonl(&run.join("metrics.jsonl"));
        for record in &mut history {
            record.as_object_mut().unwrap().remove("seconds");
        }
        history
    };
    assert_eq!(timeless(&full), timeless(&part));
    let state = |run: &Path| read_json(&run.join("resume.json"))["loss"].clone();
    assert_eq!(state(&full), state(&part));

    // Pretrained towers: the tiny transformers Swin (32 px) and BERT (2 layers: levels after
    // layers 1, 1 and 2) with its tokenizer.
    let fixtures = train_fixtures();
    let extra = format!(
        "swin = {:?}\nbert = {:?}\n",
        fixtures.path("tiny_swin"),
        fixtures.path("tiny_bert")
    );
    let run = train(&dir, "hat-pretrained", "hat", &extra, 1);
    let history = read_jsonl(&run.join("metrics.jsonl"));
    assert!(history[0]["mean_loss"].as_f64().unwrap().is_finite());
    assert_eq!(
        std::fs::read(run.join("tokenizer.json")).unwrap(),
        std::fs::read(fixtures.path("tiny_bert").join("tokenizer.json")).unwrap()
    );
}

/// The Swin tower is the multi-level entries' alone, they need it, and from scratch it needs an
/// image side that its 16 × 16 grid divides.
#[test]
fn the_swin_tower_belongs_to_the_multi_level_entries() {
    let dir = TempDir::new("cli-multi-level-bad");
    let itm = itm_binary!();
    let config = dir.join("run.toml");
    let write = |model: &str| {
        let text = ShapesToml {
            seed: 7,
            images: [20, 5, 5],
            feature_width: None,
        }
        .run_file(&dir.join("out"), model, "epochs = 1\n");
        std::fs::write(&config, text).unwrap();
    };
    write("images = \"swin\"\n");
    itm.fails(
        &[
            "train",
            "--model",
            "vse_infinity_bigru",
            "--config",
            s(&config),
        ],
        &["model.images", "hat, daim"],
    );
    write("images = \"resnet\"\n");
    itm.fails(
        &["train", "--model", "hat", "--config", s(&config)],
        &["model.images", "\"swin\""],
    );
    // The Swin from scratch cuts the image into a 16 × 16 grid.
    write("image_size = 40\n");
    itm.fails(
        &["train", "--model", "hat", "--config", s(&config)],
        &["model.image_size", "multiple of 16"],
    );
}
