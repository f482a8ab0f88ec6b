//! `itm train`, `itm evaluate --checkpoint`, `itm encode` through the real binary on tiny
//! `shapes` runs: a resumed run equals an uninterrupted one, evaluation and encoding agree with
//! each other and with the library, bad configurations fail naming the key or file.

use std::path::{Path, PathBuf};

use itm_core::eval::{Protocol, evaluate};
use itm_data::npy::MappedF32;
use itm_data::shapes::{RegionFeatureConfig, ShapesConfig, ShapesDataset};
use itm_test_support::{Binary, ShapesToml, TempDir, itm_binary, read_jsonl, stderr};
use itm_train::RunConfig;

const ITM: Binary = itm_binary!();

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The shapes data of [`run_toml`], written as a precomp folder.
const SHAPES: ShapesConfig = ShapesConfig {
    seed: 7,
    train_images: 200,
    dev_images: 40,
    test_images: 40,
    regions: RegionFeatureConfig {
        d_feature: 32,
        n_regions: 12,
        noise: 1.0,
    },
};

/// A tiny VSE∞ run: 200 training images, D = 32, `epochs` epochs with the rate decayed from
/// epoch 1.
fn run_toml(output: &Path, epochs: usize) -> String {
    ShapesToml {
        seed: 7,
        images: [200, 40, 40],
        feature_width: Some(32),
    }
    .run_file(
        output,
        "name = \"vse_infinity_bigru\"\nembed = 32\nword_dim = 32\n",
        &format!("epochs = {epochs}\nbatch_size = 40\nlr_decay_epoch = 1\nseed = 3\n"),
    )
}

fn train(dir: &Path, name: &str, epochs: usize) -> PathBuf {
    let output = dir.join(name);
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, run_toml(&output, epochs)).unwrap();
    let table = ITM.ok(&["train", "--config", s(&config), "--quiet"]);
    assert!(table.contains("rsum"), "{table}");
    output
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

fn matrix(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let mapped = MappedF32::open(path, 2, "[rows, cols]").unwrap();
    (mapped.shape().to_vec(), mapped.values().to_vec())
}

#[test]
fn train_resume_evaluate_encode() {
    let dir = TempDir::new("cli-train-flow");
    // Uninterrupted: two epochs.
    let full = train(&dir, "full", 2);
    for file in [
        "model.bpk",
        "model.json",
        "vocab.json",
        "run.toml",
        "resume.json",
    ] {
        assert!(full.join(file).exists(), "{file}");
    }
    let csv = std::fs::read_to_string(full.join("metrics.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[0].starts_with("epoch,learning_rate,mean_loss,margin,"));
    assert!(rows[2].starts_with("1,0.00005"), "{csv}");
    // Per logging interval: the step curve's records, steps counted through the run.
    let steps = std::fs::read_to_string(full.join("steps.csv")).unwrap();
    let steps: Vec<&str> = steps.lines().collect();
    assert_eq!(steps[0], "epoch,step,steps,mean_loss,margin,skipped");
    let intervals = read_jsonl(&full.join("steps.jsonl"));
    assert_eq!(intervals.len(), steps.len() - 1);
    assert!(intervals.len() >= 4, "{} intervals", intervals.len());
    let ends: Vec<u64> = intervals
        .iter()
        .map(|i| i["step"].as_u64().unwrap())
        .collect();
    assert!(ends.windows(2).all(|w| w[0] < w[1]), "{ends:?}");
    assert_eq!(intervals.last().unwrap()["epoch"], 1);
    assert!(
        intervals
            .iter()
            .all(|i| i["mean_loss"].as_f64().unwrap() > 0.0)
    );
    // Loss, margin, the six recalls, rsum.
    let chart = image::open(full.join("chart.png")).unwrap();
    assert_eq!(chart.height(), 4 * 240);
    let written = RunConfig::from_run_folder(&full).unwrap();
    assert_eq!((written.training.epochs, written.model.embed), (2, 32));
    assert_eq!(written.training.margin, 0.2);

    // Interrupted after one epoch, then resumed for the second.
    let part = train(&dir, "part", 1);
    assert!(part.join("resume-1").is_dir());
    ITM.ok(&["train", "--resume", s(&part), "--epochs", "2", "--quiet"]);
    assert!(!part.join("resume-1").exists() && part.join("resume-2").is_dir());
    let (a, b) = (records(&full), records(&part));
    assert_eq!(a.len(), 2);
    assert_eq!(a, b, "resumed history differs");
    assert_eq!(
        read_jsonl(&full.join("steps.jsonl")),
        read_jsonl(&part.join("steps.jsonl")),
        "resumed step records differ"
    );

    // The best models score the test split identically.
    let sims = |name: &str, checkpoints: &[&Path], extra: &[&str]| {
        let path = dir.join(name);
        let mut args = vec!["evaluate", "--json", "--quiet", "--save-sims", s(&path)];
        for checkpoint in checkpoints {
            args.extend(["--checkpoint", s(checkpoint)]);
        }
        args.extend(extra);
        let json: serde_json::Value = serde_json::from_str(&ITM.ok(&args)).unwrap();
        (matrix(&path), json)
    };
    let ((shape, full_sims), full_json) = sims("full.npy", &[&full], &[]);
    let ((_, part_sims), part_json) = sims("part.npy", &[&part], &[]);
    assert_eq!(shape, [40, 200]);
    assert_eq!(full_sims, part_sims, "resumed model differs");
    assert_eq!(full_json, part_json);
    let caption_image: Vec<usize> = (0..200).map(|j| j / 5).collect();
    let expected = evaluate(&full_sims, 40, &caption_image, Protocol::Flickr30k).metrics;
    assert_eq!(full_json["rsum"].as_f64().unwrap(), expected.rsum());
    assert_eq!(
        full_json["t2i_r1"].as_f64().unwrap(),
        expected.t2i_recall[0]
    );

    // An ensemble averages the matrices: with another seed (flags override the file).
    let other = dir.join("other");
    let config = dir.join("full.toml");
    ITM.ok(&[
        "train",
        "--config",
        s(&config),
        "--seed",
        "11",
        "--epochs",
        "1",
        "--output",
        s(&other),
        "--quiet",
    ]);
    let written = RunConfig::from_run_folder(&other).unwrap();
    assert_eq!((written.training.seed, written.training.epochs), (11, 1));
    let ((_, other_sims), _) = sims("other.npy", &[&other], &[]);
    assert_ne!(other_sims, full_sims);
    let ((_, ensemble), ensemble_json) = sims("ensemble.npy", &[&full, &other], &[]);
    for ((e, f), z) in ensemble.iter().zip(&full_sims).zip(&other_sims) {
        assert!((e - (f + z) / 2.0).abs() < 1e-6, "{e} vs {f}, {z}");
    }
    let expected = evaluate(&ensemble, 40, &caption_image, Protocol::Flickr30k).metrics;
    assert_eq!(ensemble_json["rsum"].as_f64().unwrap(), expected.rsum());

    // The same split read from a precomp folder scores the same.
    let precomp = dir.join("precomp");
    let data = ShapesDataset::generate(&SHAPES);
    let ids: Vec<u64> = (0..40).collect();
    itm_data::precomp::write_split(&precomp, "test", &data.test.retrieval, &ids).unwrap();
    let ((_, precomp_sims), _) = sims("precomp.npy", &[&full], &["--data", s(&precomp)]);
    assert_eq!(precomp_sims, full_sims);

    // Encoded images and captions: their dot products are the scores.
    let images = dir.join("images.npy");
    let captions = dir.join("captions.npy");
    let ims = precomp.join("test_ims.npy");
    let caps = precomp.join("test_caps.txt");
    let checkpoint = ["encode", "--checkpoint", s(&full), "--quiet"];
    ITM.ok(&[
        &checkpoint[..],
        &["--images", s(&ims), "--output", s(&images)],
    ]
    .concat());
    ITM.ok(&[
        &checkpoint[..],
        &["--captions", s(&caps), "--output", s(&captions)],
    ]
    .concat());
    let ((image_shape, image_rows), (caption_shape, caption_rows)) =
        (matrix(&images), matrix(&captions));
    assert_eq!((image_shape, caption_shape), (vec![40, 32], vec![200, 32]));
    for i in 0..40 {
        for j in 0..200 {
            let dot: f32 = (0..32)
                .map(|k| image_rows[i * 32 + k] * caption_rows[j * 32 + k])
                .sum();
            assert!((dot - full_sims[i * 200 + j]).abs() < 1e-4, "{i},{j}");
        }
    }
}

/// A fine-grained system from flags alone on a precomp folder; evaluation reads its run.toml,
/// encoding refuses it clearly.
#[test]
fn flags_only_fine_grained_run() {
    let dir = TempDir::new("cli-train-flags");
    let precomp = dir.join("precomp");
    let data = ShapesDataset::generate(&ShapesConfig {
        train_images: 100,
        dev_images: 20,
        test_images: 20,
        ..SHAPES
    });
    for (name, split) in [
        ("train", &data.train),
        ("dev", &data.dev),
        ("test", &data.test),
    ] {
        let ids: Vec<u64> = (0..split.scenes.len() as u64).collect();
        itm_data::precomp::write_split(&precomp, name, &split.retrieval, &ids).unwrap();
    }
    let run = dir.join("scan");
    let table = ITM.ok(&[
        "train",
        "--model",
        "scan_t2i",
        "--data",
        s(&precomp),
        "--embed",
        "16",
        "--epochs",
        "1",
        "--batch-size",
        "25",
        "--output",
        s(&run),
        "--quiet",
    ]);
    assert!(table.contains("rsum"), "{table}");
    let written = RunConfig::from_run_folder(&run).unwrap();
    assert_eq!(
        written.training.learning_rate, 2e-4,
        "SCAN's published rate"
    );
    let json = ITM.ok(&["evaluate", "--checkpoint", s(&run), "--json", "--quiet"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(json["rsum"].as_f64().unwrap() > 0.0);
    ITM.fails(
        &[
            "encode",
            "--checkpoint",
            s(&run),
            "--captions",
            s(&precomp.join("test_caps.txt")),
            "--output",
            s(&dir.join("x.npy")),
        ],
        &["scan", "fine-grained", "itm evaluate"],
    );
    assert!(!dir.join("x.npy").exists());
}

/// With stderr captured (not a terminal), `itm train` writes progress lines for a log: with
/// `--progress-interval 0` one per step of each epoch, `"epoch 0: k/N, … steps/s, loss …, ETA
/// h:mm:ss"`, the last one `N/N` with no time left; the flag wins over
/// `ITM_PROGRESS_INTERVAL` (an hour there would leave only the end-of-epoch line). An interval
/// that is not a number of seconds is refused.
#[test]
fn progress_lines_for_a_log() {
    let dir = TempDir::new("cli-train-progress");
    let config = dir.join("run.toml");
    std::fs::write(&config, run_toml(&dir.join("run"), 1)).unwrap();
    let output = ITM
        .command()
        .args(["train", "--config", s(&config), "--progress-interval", "0"])
        .env("ITM_PROGRESS_INTERVAL", "3600")
        .output()
        .unwrap();
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    // The progress lines, not the epoch's summary ("epoch 0: loss …").
    let epoch: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.strip_prefix("epoch 0: ")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    assert!(epoch.len() > 1, "{log}");
    for line in &epoch {
        for needle in [" steps/s, ", ", loss ", ", ETA "] {
            assert!(line.contains(needle), "{line:?} lacks {needle:?}");
        }
    }
    let steps = epoch.len();
    assert!(
        epoch[0].starts_with(&format!("epoch 0: 1/{steps}, ")),
        "{log}"
    );
    let last = epoch[steps - 1];
    assert!(
        last.starts_with(&format!("epoch 0: {steps}/{steps}, ")),
        "{log}"
    );
    assert!(last.ends_with(", ETA 0:00:00"), "{last}");
    ITM.fails(
        &["train", "--progress-interval", "soon"],
        &["--progress-interval", "soon"],
    );
}

#[test]
fn bad_configurations_and_folders_are_named() {
    let dir = TempDir::new("cli-train-errors");
    let config = dir.join("run.toml");
    for (text, needles) in [
        (
            "[training]\nlearning_rat = 0.1\n",
            &["run.toml", "learning_rat"][..],
        ),
        ("colour = 1\n", &["run.toml", "colour"]),
        (
            "[training]\nmargin = -0.5\n",
            &["run.toml", "training.margin", "-0.5"],
        ),
        ("[training]\nepochs = 0\n", &["training.epochs"]),
        (
            "[model]\nname = \"nope\"\n",
            &["model.name", "nope", "scan_t2i"],
        ),
        ("device = \"tpu\"\n", &["run.toml", "device", "tpu"]),
        (
            "[data]\nkind = \"precomp\"\npath = \"/no/such/precomp\"\n",
            &["/no/such/precomp"],
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        ITM.fails(&["train", "--config", s(&config)], needles);
    }
    ITM.fails(&["train", "--batch-size", "1"], &["training.batch_size"]);
    ITM.fails(
        &["train", "--config", s(&dir.join("none.toml"))],
        &["none.toml"],
    );
    let missing = dir.join("missing");
    ITM.fails(
        &["train", "--resume", s(&missing)],
        &["missing", "no such run folder"],
    );
    std::fs::create_dir_all(&missing).unwrap();
    ITM.fails(&["train", "--resume", s(&missing)], &["run.toml"]);
    std::fs::remove_dir_all(&missing).unwrap();
    ITM.fails(
        &["evaluate", "--checkpoint", s(&missing)],
        &["missing", "no such checkpoint folder"],
    );
    ITM.fails(
        &[
            "encode",
            "--checkpoint",
            s(&missing),
            "--captions",
            "c.txt",
            "--output",
            "o.npy",
        ],
        &["missing", "no such checkpoint folder"],
    );
    ITM.fails(
        &["train", "--resume", s(&dir), "--model", "chan"],
        &["--model"],
    );
}

#[test]
fn every_subcommand_has_help() {
    for command in [
        &["train"][..],
        &["evaluate"],
        &["encode"],
        &["encode-text"],
        &["data", "check"],
    ] {
        let help = ITM.ok(&[command, &["--help"]].concat());
        assert!(help.len() > 300, "{command:?}: {help}");
    }
    let help = ITM.ok(&["train", "--help"]);
    for name in [
        "vse_infinity_bigru",
        "scan_i2t",
        "chan",
        "esl_h",
        "esl_a",
        "xdim",
        "CVPR 2021",
    ] {
        assert!(help.contains(name), "{name}");
    }
}

/// A pixel tower on a Karpathy JSON: training, evaluation from the run's data, and encoding a
/// folder of images, whose products with the caption embeddings are the evaluated scores.
#[test]
fn karpathy_pixels_run() {
    let dir = TempDir::new("cli-train-pixels");
    let data = ShapesDataset::generate(&ShapesConfig {
        train_images: 60,
        dev_images: 10,
        test_images: 10,
        ..SHAPES
    });
    let json = data.write_karpathy(&dir.join("shapes")).unwrap();
    let run = dir.join("run");
    let config = dir.join("run.toml");
    std::fs::write(
        &config,
        format!(
            "output = {run:?}\n[model]\nname = \"vse_infinity_bigru\"\nembed = 16\nword_dim = 16\n\
             images = \"resnet\"\nimage_size = 16\n[data]\nkind = \"karpathy\"\njson = {json:?}\n\
             [training]\nepochs = 1\nbatch_size = 30\n"
        ),
    )
    .unwrap();
    ITM.ok(&["train", "--config", s(&config), "--quiet"]);
    let path = dir.join("sims.npy");
    ITM.ok(&[
        "evaluate",
        "--checkpoint",
        s(&run),
        "--quiet",
        "--save-sims",
        s(&path),
    ]);
    let (shape, sims) = matrix(&path);
    assert_eq!(shape, [10, 50]);
    let images = dir.join("images.npy");
    let test_images = json.parent().unwrap().join("images").join("test");
    ITM.ok(&[
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
    ITM.ok(&[
        "encode",
        "--checkpoint",
        s(&run),
        "--captions",
        s(&captions_txt),
        "--output",
        s(&captions),
    ]);
    let ((image_shape, image_rows), (_, caption_rows)) = (matrix(&images), matrix(&captions));
    assert_eq!(image_shape, [10, 16]);
    // File-name order: 0.png, 1.png, ... sort as text, so map each row back to its index.
    let mut names: Vec<String> = (0..10).map(|i| format!("{i}.png")).collect();
    names.sort();
    for (row, name) in names.iter().enumerate() {
        let i: usize = name.trim_end_matches(".png").parse().unwrap();
        for j in 0..50 {
            let dot: f32 = (0..16)
                .map(|k| image_rows[row * 16 + k] * caption_rows[j * 16 + k])
                .sum();
            assert!((dot - sims[i * 50 + j]).abs() < 1e-4, "{i},{j}");
        }
    }
    ITM.fails(
        &[
            "encode",
            "--checkpoint",
            s(&run),
            "--images",
            s(&dir.join("sims.npy")),
            "--output",
            s(&images),
        ],
        &["sims.npy"],
    );
}
