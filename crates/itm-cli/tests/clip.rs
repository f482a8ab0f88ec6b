//! The zoo's `clip` entry through the real binary: `itm train --model clip` on a small `shapes`
//! configuration (pixels rendered in memory) learns well above chance, its checkpoint is
//! evaluated, encoded and resumed like any other entry's; `--clip DIR` starts from a Hugging Face CLIP
//! folder (the tiny transformers fixture) with its sizes, tokenizer and temperature; bad folders
//! are refused naming the file.

use std::path::{Path, PathBuf};

use itm_data::npy::MappedF32;
use itm_data::shapes::{RegionFeatureConfig, ShapesConfig, ShapesDataset};
use itm_test_support::{
    Binary, ShapesToml, TempDir, copy_tree, itm_binary, read_json, read_jsonl, train_fixtures,
    validation_rsum,
};

const ITM: Binary = itm_binary!();
/// Runs that must succeed run quietly.
const QUIET: Binary = itm_binary!().with_args(&["--quiet"]);

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The tiny transformers CLIP folder (`scripts/generate_clip_fixture.py`).
fn tiny_clip() -> PathBuf {
    train_fixtures().path("tiny_clip")
}

/// A `clip` run on `shapes` in `dir/name` with `model` keys: `train` training images (50 dev,
/// 50 test), batch 32, the entry's rate (5e-4) held constant, `epochs` epochs.
fn write_run(dir: &Path, name: &str, model: &str, train: usize, epochs: usize) -> PathBuf {
    let config = dir.join(format!("{name}.toml"));
    let text = ShapesToml {
        seed: 7,
        images: [train, 50, 50],
        feature_width: None,
    }
    .run_file(
        &dir.join(name),
        &format!("name = \"clip\"\n{model}"),
        &format!("epochs = {epochs}\nbatch_size = 32\nlr_decay_factor = 1.0\nseed = 3\n"),
    );
    std::fs::write(&config, text).unwrap();
    config
}

/// From scratch: 400 images, `D` = 32, 32×32 pixels, 3 epochs. The loss falls, the dev rsum
/// beats chance by the zoo test's margin, the temperature moves, the checkpoint evaluates to
/// the printed test rsum, and a run stopped after one epoch and resumed equals it.
#[test]
fn clip_trains_on_shapes_pixels() {
    let dir = TempDir::new("cli-clip-scratch");
    let model = "embed = 32\nimage_size = 32\n";
    let config = write_run(&dir, "full", model, 400, 3);
    let table = QUIET.ok(&["train", "--model", "clip", "--config", s(&config)]);
    let run = dir.join("full");
    let history = read_jsonl(&run.join("metrics.jsonl"));
    let losses: Vec<f64> = history
        .iter()
        .map(|r| r["mean_loss"].as_f64().unwrap())
        .collect();
    let best = history
        .iter()
        .map(|r| validation_rsum(&r["validation"]))
        .fold(f64::MIN, f64::max);
    eprintln!("clip: losses {losses:?}, best dev rsum {best:.1}");
    assert!(losses[2] < losses[0], "{losses:?}");
    // Chance on 50 dev images with 5 captions each: an rsum of about 62 (see tests/zoo.rs).
    assert!(best > 1.3 * 62.0, "rsum {best}");
    assert!(history.iter().all(|r| r["margin"].is_null()));
    let resume = read_json(&run.join("resume.json"));
    let log_scale = resume["loss"]["temperature"]["log_scale"].as_f64().unwrap();
    assert!(
        (log_scale - (1.0f64 / 0.07).ln()).abs() > 1e-3,
        "{log_scale}"
    );
    let written = std::fs::read_to_string(run.join("run.toml")).unwrap();
    assert!(written.contains("images = \"clip\""), "{written}");
    assert!(run.join("tokenizer.json").is_file());

    // The checkpoint rebuilds the model: its test rsum is the one training printed.
    let printed: f64 = table
        .lines()
        .find_map(|line| line.strip_prefix("rsum "))
        .unwrap()
        .parse()
        .unwrap();
    let sims = dir.join("sims.npy");
    let evaluated: serde_json::Value = serde_json::from_str(&QUIET.ok(&[
        "evaluate",
        "--checkpoint",
        s(&run),
        "--json",
        "--save-sims",
        s(&sims),
    ]))
    .unwrap();
    let evaluated = evaluated["rsum"].as_f64().unwrap();
    assert!(
        (evaluated - printed).abs() < 0.05,
        "{evaluated} vs {printed}"
    );
    // `itm encode` reads image files as the run read its rendered pixels (CLIP's size and
    // statistics): image · caption products are the evaluated scores.
    let data = ShapesDataset::generate(&ShapesConfig {
        seed: 7,
        train_images: 400,
        dev_images: 50,
        test_images: 50,
        regions: RegionFeatureConfig {
            d_feature: 256,
            ..RegionFeatureConfig::default()
        },
    });
    let index = data.write_karpathy(&dir.join("files")).unwrap();
    let images = dir.join("images.npy");
    let test_images = index.parent().unwrap().join("images").join("test");
    QUIET.ok(&[
        "encode",
        "--checkpoint",
        s(&run),
        "--images",
        s(&test_images),
        "--output",
        s(&images),
    ]);
    let captions_txt = dir.join("captions.txt");
    std::fs::write(&captions_txt, data.test.retrieval.captions.join("\n")).unwrap();
    let captions = dir.join("captions.npy");
    QUIET.ok(&[
        "encode",
        "--checkpoint",
        s(&run),
        "--captions",
        s(&captions_txt),
        "--output",
        s(&captions),
    ]);
    let matrix = |path: &Path| {
        MappedF32::open(path, 2, "[rows, cols]")
            .unwrap()
            .values()
            .to_vec()
    };
    let (sims, image_rows, caption_rows) = (matrix(&sims), matrix(&images), matrix(&captions));
    let mut names: Vec<String> = (0..50).map(|i| format!("{i}.png")).collect();
    names.sort();
    for (row, name) in names.iter().enumerate() {
        let i: usize = name.trim_end_matches(".png").parse().unwrap();
        for j in 0..250 {
            let dot: f32 = (0..32)
                .map(|k| image_rows[row * 32 + k] * caption_rows[j * 32 + k])
                .sum();
            assert!((dot - sims[i * 250 + j]).abs() < 1e-4, "{i},{j}");
        }
    }

    // Stopped after one epoch, resumed to three: the same epochs and temperature.
    let part = write_run(&dir, "part", model, 400, 1);
    QUIET.ok(&["train", "--config", s(&part)]);
    QUIET.ok(&["train", "--resume", s(&dir.join("part")), "--epochs", "3"]);
    let timeless = |run: &Path| {
        let mut history = read_jsonl(&run.join("metrics.jsonl"));
        for record in &mut history {
            record.as_object_mut().unwrap().remove("seconds");
        }
        history
    };
    assert_eq!(timeless(&run), timeless(&dir.join("part")));
    let resumed = read_json(&dir.join("part").join("resume.json"));
    assert_eq!(
        resumed["loss"]["temperature"]["log_scale"],
        resume["loss"]["temperature"]["log_scale"]
    );
}

/// `--clip DIR`: the run takes the folder's width (24) and image side (32), its tokenizer and
/// its temperature (e^3.3, against CLIP's initial 1/0.07), trains an epoch and evaluates.
#[test]
fn clip_starts_from_a_pretrained_folder() {
    let dir = TempDir::new("cli-clip-pretrained");
    let config = write_run(&dir, "run", "", 40, 1);
    QUIET.ok(&[
        "train",
        "--model",
        "clip",
        "--config",
        s(&config),
        "--clip",
        s(&tiny_clip()),
    ]);
    let run = dir.join("run");
    let written = std::fs::read_to_string(run.join("run.toml")).unwrap();
    for needle in ["embed = 24", "image_size = 32", "tiny_clip"] {
        assert!(written.contains(needle), "{needle}: {written}");
    }
    assert_eq!(
        std::fs::read(run.join("tokenizer.json")).unwrap(),
        std::fs::read(tiny_clip().join("tokenizer.json")).unwrap()
    );
    let history = read_jsonl(&run.join("metrics.jsonl"));
    assert_eq!(history[0]["skipped_steps"], 0);
    assert!(history[0]["mean_loss"].as_f64().unwrap().is_finite());
    let log_scale = read_json(&run.join("resume.json"))["loss"]["temperature"]["log_scale"]
        .as_f64()
        .unwrap();
    assert!((log_scale - 3.3).abs() < 0.05, "{log_scale}");
    let evaluated: serde_json::Value =
        serde_json::from_str(&QUIET.ok(&["evaluate", "--checkpoint", s(&run), "--json"])).unwrap();
    assert!(evaluated["rsum"].as_f64().unwrap() > 0.0);
}

/// A missing or broken CLIP folder, or sizes it does not have, stop the run naming the file.
#[test]
fn bad_clip_folders_are_named() {
    let dir = TempDir::new("cli-clip-bad");
    let config = write_run(&dir, "run", "", 10, 1);
    let check = |clip: &Path, needles: &[&str]| {
        ITM.fails(
            &["train", "--config", s(&config), "--clip", s(clip)],
            needles,
        );
    };
    let missing = dir.join("nowhere");
    check(&missing, &["nowhere", "config.json"]);
    let broken = dir.join("broken");
    copy_tree(&tiny_clip(), &broken);
    std::fs::remove_file(broken.join("tokenizer.json")).unwrap();
    check(&broken, &["broken", "tokenizer.json"]);
    std::fs::write(broken.join("model.safetensors"), b"not safetensors").unwrap();
    check(&broken, &["model.safetensors", "SafeTensors"]);
    std::fs::write(broken.join("config.json"), "{\"model_type\": \"bert\"}").unwrap();
    check(&broken, &["config.json", "bert"]);
    // A width the checkpoint does not have.
    let wide = write_run(&dir, "wide", "embed = 16\n", 10, 1);
    ITM.fails(
        &["train", "--config", s(&wide), "--clip", s(&tiny_clip())],
        &["config.json", "model.embed", "24"],
    );
    // Only the clip entry reads a CLIP folder.
    ITM.fails(
        &[
            "train",
            "--model",
            "vse_infinity_bigru",
            "--data",
            "shapes",
            "--clip",
            s(&tiny_clip()),
        ],
        &["model.clip"],
    );
    assert!(!dir.join("run").join("model.bpk").exists());
}
