//! The `itm` binary: results equal the library's, bad input fails with a clear message.

use std::path::Path;

use itm_core::eval::{Protocol, evaluate};
use itm_data::npy::write_f32;
use itm_test_support::{Binary, TempDir, itm_binary, shapes, stderr};
use rand::{Rng, SeedableRng, rngs::StdRng};

const ITM: Binary = itm_binary!();

fn random_sims(n_img: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n_img * 5 * n_img)
        .map(|k| {
            rng.random_range(-1.0f32..1.0)
                + if (k % (5 * n_img)) / 5 == k / (5 * n_img) {
                    0.8
                } else {
                    0.0
                }
        })
        .collect()
}

#[test]
fn evaluate_json_equals_the_library() {
    let dir = TempDir::new("cli-eval");
    let sims = random_sims(20, 1);
    let path = dir.join("sims.npy");
    write_f32(&path, &[20, 100], &sims).unwrap();
    let caption_image: Vec<usize> = (0..100).map(|j| j / 5).collect();
    for (name, protocol) in [
        ("f30k", Protocol::Flickr30k),
        ("coco1k", Protocol::Coco1k),
        ("coco5k", Protocol::Coco5k),
    ] {
        let output = ITM.run(&[
            "evaluate",
            "--sims",
            path.to_str().unwrap(),
            "--protocol",
            name,
            "--json",
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let expected = evaluate(&sims, 20, &caption_image, protocol).metrics;
        assert_eq!(json["i2t_r1"].as_f64().unwrap(), expected.i2t_recall[0]);
        assert_eq!(json["t2i_r10"].as_f64().unwrap(), expected.t2i_recall[2]);
        assert_eq!(json["t2i_meanr"].as_f64().unwrap(), expected.t2i_meanr);
        assert_eq!(json["rsum"].as_f64().unwrap(), expected.rsum());
        assert_eq!(json["i2t_ties"].as_u64().unwrap(), expected.i2t_ties as u64);
        assert_eq!(json["degenerate"].as_bool(), Some(false));
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 14);
    }
    let table = ITM.run(&["evaluate", "--sims", path.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("rsum"));
}

/// A float64 `.npy` of `shape`, written by hand (NumPy's default dtype; the authors' evaluation
/// code keeps its matrices in it).
fn write_f64(path: &Path, shape: [usize; 2], values: &[f64]) {
    let mut header = format!(
        "{{'descr': '<f8', 'fortran_order': False, 'shape': ({}, {}), }}",
        shape[0], shape[1]
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for v in values {
        bytes.extend(v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// `--sims` accepts float64 matrices by converting them, says so on stderr (the JSON on stdout
/// stays clean), and gives the float32 matrix's metrics.
#[test]
fn evaluate_reads_float64_matrices() {
    let dir = TempDir::new("cli-eval-f64");
    let sims = random_sims(20, 3);
    let wide: Vec<f64> = sims.iter().map(|&v| f64::from(v)).collect();
    let path = dir.join("sims64.npy");
    write_f64(&path, [20, 100], &wide);
    let output = ITM.run(&["evaluate", "--sims", path.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("float64"), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let caption_image: Vec<usize> = (0..100).map(|j| j / 5).collect();
    let expected = evaluate(&sims, 20, &caption_image, Protocol::Flickr30k).metrics;
    assert_eq!(json["rsum"].as_f64().unwrap(), expected.rsum());
    assert_eq!(json["t2i_meanr"].as_f64().unwrap(), expected.t2i_meanr);

    // Finite in float64 but not in float32: refused with the position.
    let mut huge = wide.clone();
    huge[7] = 1e300;
    write_f64(&path, [20, 100], &huge);
    let output = ITM.run(&["evaluate", "--sims", path.to_str().unwrap()]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("sims64.npy")
            && message.contains("value 7")
            && message.contains("float32"),
        "{message}"
    );
}

/// A collapsed model's all-zero [100, 500] matrix: every query ties at its ground truth, so it
/// ranks last (recall 0, not 100) in every protocol, and the report says so.
#[test]
fn evaluate_never_rewards_ties() {
    let dir = TempDir::new("cli-ties");
    let path = dir.join("zeros.npy");
    write_f32(&path, &[100, 500], &vec![0.0; 100 * 500]).unwrap();
    for (name, images) in [("f30k", 100.0), ("coco1k", 20.0), ("coco5k", 100.0)] {
        let output = ITM.run(&[
            "evaluate",
            "--sims",
            path.to_str().unwrap(),
            "--protocol",
            name,
            "--json",
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(json["rsum"].as_f64(), Some(0.0), "{name}: {json}");
        assert_eq!(json["t2i_medr"].as_f64(), Some(images), "{name}: {json}");
        assert_eq!(json["i2t_ties"].as_u64(), Some(100), "{name}: {json}");
        assert_eq!(json["t2i_ties"].as_u64(), Some(500), "{name}: {json}");
        assert_eq!(json["degenerate"].as_bool(), Some(true), "{name}: {json}");
    }
    let table = ITM.run(&["evaluate", "--sims", path.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("rsum 0.0"), "{text}");
    assert!(text.contains("ties") && text.contains("  500"), "{text}");
    assert!(text.contains("warning: degenerate scores"), "{text}");
}

#[test]
fn evaluate_refuses_bad_matrices() {
    let dir = TempDir::new("cli-bad-sims");
    let path = dir.join("sims.npy");
    let p = path.to_str().unwrap();
    write_f32(&path, &[4, 10], &[0.0; 40]).unwrap();
    ITM.fails(
        &["evaluate", "--sims", p],
        &["sims.npy", "[N, 5N]", "[4, 10]"],
    );
    let mut sims = random_sims(2, 2);
    sims[13] = f32::NAN;
    write_f32(&path, &[2, 10], &sims).unwrap();
    ITM.fails(
        &["evaluate", "--sims", p],
        &["sims.npy", "image 1 and caption 3", "NaN"],
    );
    write_f32(&path, &[3, 5, 1], &[0.0; 15]).unwrap();
    ITM.fails(
        &["evaluate", "--sims", p],
        &["sims.npy", "[images, captions]"],
    );
    write_f32(&path, &[3, 15], &random_sims(3, 3)).unwrap();
    ITM.fails(
        &["evaluate", "--sims", p, "--protocol", "coco1k"],
        &["multiple of 5"],
    );
    std::fs::write(&path, b"not numpy").unwrap();
    ITM.fails(
        &["evaluate", "--sims", p],
        &["sims.npy", "not a valid .npy"],
    );
    ITM.fails(
        &["evaluate", "--sims", dir.join("none.npy").to_str().unwrap()],
        &["none.npy"],
    );
}

fn write_precomp(dir: &Path) {
    let split = itm_data::RetrievalSplit::new(
        itm_data::ImageSource::Regions(itm_data::RegionFeatures::new(vec![0.25; 2 * 3 * 4], 3, 4)),
        (0..10)
            .map(|j| format!("a red circle number {j}"))
            .collect(),
        (0..10).map(|j| j / 5).collect(),
    )
    .unwrap();
    itm_data::precomp::write_split(dir, "test", &split, &[7, 8]).unwrap();
}

#[test]
fn data_check_summarises_and_finds_problems() {
    let dir = TempDir::new("cli-check");
    write_precomp(&dir);
    let output = ITM.run(&["data", "check", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(
        summary.contains("test: 2 images × 3 regions × 4 features, 10 captions (5 per image)"),
        "{summary}"
    );
    std::fs::write(dir.join("test_caps.txt"), "one\ntwo\n\nfour\n").unwrap();
    ITM.fails(&["data", "check", dir.to_str().unwrap()], &["1 problem(s)"]);
    let empty = TempDir::new("cli-check-empty");
    ITM.fails(
        &["data", "check", empty.to_str().unwrap()],
        &["1 problem(s)"],
    );
    ITM.fails(
        &["data", "check", dir.join("nothing").to_str().unwrap()],
        &["no such file or folder"],
    );
}

#[test]
fn data_check_reads_karpathy_and_decodes_images() {
    let dir = TempDir::new("cli-karpathy");
    let data = shapes(1, [5, 2, 3], 8, 4);
    let json = data.write_karpathy(&dir).unwrap();
    let images = dir.join("images");
    let args = [
        "data",
        "check",
        json.to_str().unwrap(),
        "--images",
        images.to_str().unwrap(),
        "--decode",
    ];
    let output = ITM.run(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(
        summary.contains("Train: 5 images, 25 captions") && summary.contains("Test: 3 images"),
        "{summary}"
    );
    std::fs::write(images.join("test/1.png"), b"broken").unwrap();
    ITM.fails(&args, &["1 problem(s)"]);
    let output = ITM.run(&args);
    assert!(stderr(&output).contains("test/1.png"));
}
