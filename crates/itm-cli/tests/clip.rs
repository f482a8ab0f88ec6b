//! The zoo's `clip` entry through the real binary: `itm train --model clip` on a small `shapes`
//! configuration (pixels rendered in memory) learns well above chance, its checkpoint is
//! evaluated, encoded and resumed like any other entry's; `--clip DIR` starts from a Hugging Face CLIP
//! folder (the tiny transformers fixture) with its sizes, tokenizer and temperature; bad folders
//! are refused naming the file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use itm_data::npy::MappedF32;
use itm_data::shapes::{RegionFeatureConfig, ShapesConfig, ShapesDataset};

fn itm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_itm"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs `args` (quietly); it must succeed. Returns stdout.
fn ok(args: &[&str]) -> String {
    let output = itm(&[args, &["--quiet"]].concat());
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `args`; it must fail, without a panic, with every needle in its message.
fn fails(args: &[&str], needles: &[&str]) {
    let output = itm(args);
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{args:?} should fail");
    assert!(!message.contains("panicked"), "{message}");
    for needle in needles {
        assert!(
            message.contains(needle),
            "{args:?}: {message:?} lacks {needle:?}"
        );
    }
}

fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("itm-cli-clip-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn tiny_clip() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny_clip")
}

/// A `clip` run on `shapes` in `dir/name` with `model` keys: `train` training images (50 dev,
/// 50 test), batch 32, the entry's rate (5e-4) held constant, `epochs` epochs.
fn write_run(dir: &Path, name: &str, model: &str, train: usize, epochs: usize) -> PathBuf {
    let config = dir.join(format!("{name}.toml"));
    let text = format!(
        "output = {:?}\n[model]\nname = \"clip\"\n{model}\
         [data]\nkind = \"shapes\"\nseed = 7\ntrain_images = {train}\ndev_images = 50\n\
         test_images = 50\n\
         [training]\nepochs = {epochs}\nbatch_size = 32\nlr_decay_factor = 1.0\nseed = 3\n",
        dir.join(name)
    );
    std::fs::write(&config, text).unwrap();
    config
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn rsum(validation: &serde_json::Value) -> f64 {
    ["i2t_recall", "t2i_recall"]
        .iter()
        .flat_map(|key| validation[key].as_array().unwrap().iter())
        .map(|x| x.as_f64().unwrap())
        .sum()
}

/// From scratch: 400 images, `D` = 32, 32×32 pixels, 3 epochs. The loss falls, the dev rsum
/// beats chance by the zoo test's margin, the temperature moves, the checkpoint evaluates to
/// the printed test rsum, and a run stopped after one epoch and resumed equals it.
#[test]
fn clip_trains_on_shapes_pixels() {
    let dir = folder("scratch");
    let model = "embed = 32\nimage_size = 32\n";
    let config = write_run(&dir, "full", model, 400, 3);
    let table = ok(&["train", "--model", "clip", "--config", s(&config)]);
    let run = dir.join("full");
    let history = json_lines(&run.join("metrics.jsonl"));
    let losses: Vec<f64> = history
        .iter()
        .map(|r| r["mean_loss"].as_f64().unwrap())
        .collect();
    let best = history
        .iter()
        .map(|r| rsum(&r["validation"]))
        .fold(f64::MIN, f64::max);
    eprintln!("clip: losses {losses:?}, best dev rsum {best:.1}");
    assert!(losses[2] < losses[0], "{losses:?}");
    // Chance on 50 dev images with 5 captions each: an rsum of about 62 (see tests/zoo.rs).
    assert!(best > 1.3 * 62.0, "rsum {best}");
    assert!(history.iter().all(|r| r["margin"].is_null()));
    let resume = json(&run.join("resume.json"));
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
    let evaluated: serde_json::Value = serde_json::from_str(&ok(&[
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
    ok(&[
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
    ok(&[
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
    ok(&["train", "--config", s(&part)]);
    ok(&["train", "--resume", s(&dir.join("part")), "--epochs", "3"]);
    let timeless = |run: &Path| {
        let mut history = json_lines(&run.join("metrics.jsonl"));
        for record in &mut history {
            record.as_object_mut().unwrap().remove("seconds");
        }
        history
    };
    assert_eq!(timeless(&run), timeless(&dir.join("part")));
    let resumed = json(&dir.join("part").join("resume.json"));
    assert_eq!(
        resumed["loss"]["temperature"]["log_scale"],
        resume["loss"]["temperature"]["log_scale"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--clip DIR`: the run takes the folder's width (24) and image side (32), its tokenizer and
/// its temperature (e^3.3, against CLIP's initial 1/0.07), trains an epoch and evaluates.
#[test]
fn clip_starts_from_a_pretrained_folder() {
    let dir = folder("pretrained");
    let config = write_run(&dir, "run", "", 40, 1);
    ok(&[
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
    let history = json_lines(&run.join("metrics.jsonl"));
    assert_eq!(history[0]["skipped_steps"], 0);
    assert!(history[0]["mean_loss"].as_f64().unwrap().is_finite());
    let log_scale = json(&run.join("resume.json"))["loss"]["temperature"]["log_scale"]
        .as_f64()
        .unwrap();
    assert!((log_scale - 3.3).abs() < 0.05, "{log_scale}");
    let evaluated: serde_json::Value =
        serde_json::from_str(&ok(&["evaluate", "--checkpoint", s(&run), "--json"])).unwrap();
    assert!(evaluated["rsum"].as_f64().unwrap() > 0.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A missing or broken CLIP folder, or sizes it does not have, stop the run naming the file.
#[test]
fn bad_clip_folders_are_named() {
    let dir = folder("bad");
    let config = write_run(&dir, "run", "", 10, 1);
    let check = |clip: &Path, needles: &[&str]| {
        fails(
            &["train", "--config", s(&config), "--clip", s(clip)],
            needles,
        );
    };
    let missing = dir.join("nowhere");
    check(&missing, &["nowhere", "config.json"]);
    let broken = dir.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    for entry in std::fs::read_dir(tiny_clip()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), broken.join(entry.file_name())).unwrap();
    }
    std::fs::remove_file(broken.join("tokenizer.json")).unwrap();
    check(&broken, &["broken", "tokenizer.json"]);
    std::fs::write(broken.join("model.safetensors"), b"not safetensors").unwrap();
    check(&broken, &["model.safetensors", "SafeTensors"]);
    std::fs::write(broken.join("config.json"), "{\"model_type\": \"bert\"}").unwrap();
    check(&broken, &["config.json", "bert"]);
    // A width the checkpoint does not have.
    let wide = write_run(&dir, "wide", "embed = 16\n", 10, 1);
    fails(
        &["train", "--config", s(&wide), "--clip", s(&tiny_clip())],
        &["config.json", "model.embed", "24"],
    );
    // Only the clip entry reads a CLIP folder.
    fails(
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
    std::fs::remove_dir_all(&dir).unwrap();
}
