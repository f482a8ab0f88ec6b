//! Bad input, file by file: every file the project reads is fed broken (corrupt headers, wrong
//! types, truncation, non-finite values, count mismatches, missing pieces) and must give a clear
//! error naming the file and the problem — never a panic — while every file that existed before
//! stays byte-identical and no stray file appears.
//!
//! Files read by a command go through the real `itm` binary (non-zero exit, stderr checked);
//! files read only by the library (checkpoints, BERT/CLIP folders, vocabularies) through the
//! library call, whose error's `Display` is checked. The count of cases is printed and must
//! reach 30.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use itm_core::VseModelConfig;
use itm_data::npy::write_f32;
use itm_data::precomp;
use itm_data::shapes::{RegionFeatureConfig, ShapesConfig, ShapesDataset};
use itm_data::{CaptionTokenizer, Vocabulary};
use itm_test_support::{Binary, TempDir, copy_tree, itm_binary, train_fixtures};
use itm_train::{Checkpoint, load_bert, load_clip};

/// Region feature width of the checkpoint and datasets made here.
const D_FEATURE: usize = 16;

const ITM: Binary = itm_binary!();

/// A fixture of `itm-train` (the tiny BERT and CLIP folders).
fn fixture(name: &str) -> PathBuf {
    train_fixtures().path(name)
}

/// Every file under `root` with its bytes.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// A `.npy` file written by hand: any `descr`, any shape, any body.
fn npy_bytes(descr: &str, shape: &[usize], body: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(body);
    bytes
}

fn f32_body(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Runs the cases and counts them.
struct Suite {
    passed: usize,
    failures: Vec<String>,
}

impl Suite {
    /// Checks that a message names `file` (a path fragment) and the problem (`word`).
    fn check_message(&mut self, case: &str, message: &str, file: &str, word: &str) -> bool {
        println!("{case}: {}", message.trim());
        let mut ok = true;
        if message.contains("panicked") {
            self.failures.push(format!("{case}: panicked: {message}"));
            ok = false;
        }
        if !message.contains(file) {
            self.failures
                .push(format!("{case}: does not name {file:?}: {message}"));
            ok = false;
        }
        if !message.to_lowercase().contains(&word.to_lowercase()) {
            self.failures
                .push(format!("{case}: does not say {word:?}: {message}"));
            ok = false;
        }
        ok
    }

    /// Runs `itm args` in `root` (every file under it is compared before and after): it must
    /// fail, name `file` and say `word` on stderr, not panic, and change no file.
    fn cli(&mut self, case: &str, root: &Path, args: &[&str], file: &str, word: &str) {
        let before = snapshot(root);
        let output = ITM.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let mut ok = self.check_message(case, &stderr, file, word);
        if output.status.success() {
            self.failures.push(format!("{case}: exit status 0"));
            ok = false;
        }
        let after = snapshot(root);
        if before != after {
            let changed: Vec<&PathBuf> = after
                .keys()
                .chain(before.keys())
                .filter(|p| before.get(*p) != after.get(*p))
                .collect();
            self.failures
                .push(format!("{case}: files changed or appeared: {changed:?}"));
            ok = false;
        }
        if ok {
            self.passed += 1;
        }
    }

    /// A library call must return an error whose message names `file` and says `word`.
    fn lib<T, E: Display>(&mut self, case: &str, result: Result<T, E>, file: &str, word: &str) {
        match result {
            Ok(_) => self.failures.push(format!("{case}: accepted")),
            Err(e) => {
                if self.check_message(case, &e.to_string(), file, word) {
                    self.passed += 1;
                }
            }
        }
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `itm evaluate --sims`: the `.npy` reader and the matrix checks.
fn similarity_files(suite: &mut Suite) {
    let dir = TempDir::new("bad-sims");
    let sims = dir.join("sims.npy");
    let good: Vec<f32> = (0..2 * 10).map(|k| k as f32 / 20.0).collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("npy: not an npy file", b"hello, world".to_vec(), "npy"),
        ("npy: empty file", Vec::new(), "npy"),
        (
            "npy: corrupt header",
            {
                let mut b = npy_bytes("<f4", &[2, 10], &f32_body(&good));
                b[20..30].copy_from_slice(b"@@@@@@@@@@");
                b
            },
            "npy",
        ),
        (
            "npy: wrong magic version",
            {
                let mut b = npy_bytes("<f4", &[2, 10], &f32_body(&good));
                b[6] = 9;
                b
            },
            "npy",
        ),
        (
            // float64 is read (converted) where a matrix is expected; a truncated one is not.
            "npy: truncated float64",
            npy_bytes("<f8", &[2, 10], &[0u8; 80]),
            "truncated",
        ),
        (
            "npy: big-endian float32",
            npy_bytes(">f4", &[2, 10], &[0u8; 80]),
            "float32",
        ),
        (
            "npy: int32",
            npy_bytes("<i4", &[2, 10], &[0u8; 80]),
            "float32",
        ),
        (
            "npy: truncated data",
            npy_bytes("<f4", &[2, 10], &f32_body(&good[..13])),
            "truncated",
        ),
        (
            "npy: trailing data",
            npy_bytes(
                "<f4",
                &[2, 10],
                &f32_body(&[good.clone(), vec![1.0]].concat()),
            ),
            "trailing",
        ),
        (
            "npy: rank 1",
            npy_bytes("<f4", &[20], &f32_body(&good)),
            "shape",
        ),
        ("npy: zero rows", npy_bytes("<f4", &[0, 10], &[]), "empty"),
        (
            "npy: huge shape",
            npy_bytes("<f4", &[1 << 40, 1 << 40], &[]),
            "shape",
        ),
        (
            "npy: no rows but huge strides",
            npy_bytes("<f4", &[0, 1 << 40, 1 << 40], &[]),
            "shape",
        ),
        (
            "sims: not [N, 5N]",
            npy_bytes("<f4", &[3, 7], &f32_body(&[0.5; 21])),
            "[N, 5N]",
        ),
        (
            "sims: NaN score",
            npy_bytes(
                "<f4",
                &[2, 10],
                &f32_body(&[&good[..7], &[f32::NAN], &good[8..]].concat()),
            ),
            "NaN",
        ),
        (
            "sims: infinite score",
            npy_bytes(
                "<f4",
                &[2, 10],
                &f32_body(&[&good[..3], &[f32::NEG_INFINITY], &good[4..]].concat()),
            ),
            "inf",
        ),
    ];
    for (case, bytes, word) in cases {
        std::fs::write(&sims, bytes).unwrap();
        suite.cli(
            case,
            &dir,
            &["evaluate", "--sims", path(&sims)],
            "sims.npy",
            word,
        );
    }
    write_f32(&sims, &[2, 10], &good).unwrap();
    suite.cli(
        "sims: coco1k with images not a multiple of 5",
        &dir,
        &["evaluate", "--sims", path(&sims), "--protocol", "coco1k"],
        "sims.npy",
        "multiple of 5",
    );
    suite.cli(
        "sims: missing file",
        &dir,
        &["evaluate", "--sims", path(&dir.join("absent.npy"))],
        "absent.npy",
        "no such file",
    );
}

/// A valid precomp folder (split `test`: 4 images × 3 regions, 20 captions, 4 ids).
fn write_precomp(dir: &Path) -> Vec<f32> {
    let features: Vec<f32> = (0..4 * 3 * D_FEATURE)
        .map(|k| (k % 7) as f32 / 7.0)
        .collect();
    write_f32(&dir.join("test_ims.npy"), &[4, 3, D_FEATURE], &features).unwrap();
    let captions: Vec<String> = (0..20)
        .map(|j| format!("a red circle number {j}"))
        .collect();
    std::fs::write(dir.join("test_caps.txt"), captions.join("\n") + "\n").unwrap();
    std::fs::write(dir.join("test_ids.txt"), "10\n11\n12\n13\n").unwrap();
    features
}

/// `itm data check DIR`: features, captions and ids of a precomp folder.
fn precomp_files(suite: &mut Suite) {
    let dir = TempDir::new("bad-precomp");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let features = write_precomp(&data);
    let [ims, caps, ids] = precomp::split_files(&data, "test");
    let check = |suite: &mut Suite, case: &str, file: &str, word: &str| {
        suite.cli(case, &dir, &["data", "check", path(&data)], file, word);
    };
    let mut with_nan = features.clone();
    with_nan[D_FEATURE * 3 + 5] = f32::NAN;
    write_f32(&ims, &[4, 3, D_FEATURE], &with_nan).unwrap();
    check(suite, "precomp: NaN feature", "test_ims.npy", "NaN");
    let mut with_inf = features.clone();
    with_inf[2] = f32::INFINITY;
    write_f32(&ims, &[4, 3, D_FEATURE], &with_inf).unwrap();
    check(suite, "precomp: infinite feature", "test_ims.npy", "inf");
    write_f32(&ims, &[4, 3 * D_FEATURE], &features).unwrap();
    check(
        suite,
        "precomp: features of rank 2",
        "test_ims.npy",
        "regions",
    );
    std::fs::write(&ims, npy_bytes("<f4", &[4, 3, D_FEATURE], &[0u8; 100])).unwrap();
    check(
        suite,
        "precomp: truncated features",
        "test_ims.npy",
        "truncated",
    );
    write_f32(&ims, &[4, 3, D_FEATURE], &features).unwrap();

    let good_caps = std::fs::read_to_string(&caps).unwrap();
    let lines: Vec<&str> = good_caps.lines().collect();
    std::fs::write(&caps, lines[..17].join("\n")).unwrap();
    check(
        suite,
        "precomp: 17 captions for 4 images",
        "test_caps.txt",
        "captions",
    );
    std::fs::write(&caps, good_caps.replacen("number 3\n", "number 3\n\n", 1)).unwrap();
    check(
        suite,
        "precomp: empty caption line",
        "test_caps.txt",
        "empty caption",
    );
    std::fs::write(
        &caps,
        [b"a caption\n".as_slice(), b"\xff\xfe broken\n"].concat(),
    )
    .unwrap();
    check(
        suite,
        "precomp: caption not UTF-8",
        "test_caps.txt",
        "UTF-8",
    );
    std::fs::remove_file(&caps).unwrap();
    check(
        suite,
        "precomp: captions file missing",
        "test_caps.txt",
        "no such file",
    );
    std::fs::write(&caps, &good_caps).unwrap();

    std::fs::write(&ids, "10\n11\n12\n").unwrap();
    check(suite, "precomp: 3 ids for 4 images", "test_ids.txt", "ids");
    std::fs::write(&ids, "10\n11\n12\n13\n").unwrap();

    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    suite.cli(
        "precomp: folder without a split",
        &dir,
        &["data", "check", path(&empty)],
        "empty",
        "_ims.npy",
    );
}

fn karpathy_image(name: &str, split: &str, captions: usize) -> serde_json::Value {
    let sentences: Vec<serde_json::Value> = (0..captions)
        .map(|k| serde_json::json!({"raw": format!("a photo of {name}, take {k}")}))
        .collect();
    serde_json::json!({"filename": name, "split": split, "sentences": sentences})
}

/// `itm data check JSON [--decode]`: Karpathy JSON, its images and `id_mapping.json`.
fn karpathy_files(suite: &mut Suite) {
    let dir = TempDir::new("bad-karpathy");
    let json = dir.join("dataset.json");
    let splits = ["train", "val", "test"];
    for (k, split) in splits.iter().enumerate() {
        let pixel = image::RgbImage::from_pixel(8, 8, image::Rgb([40 * k as u8, 90, 200]));
        pixel.save(dir.join(format!("{split}.png"))).unwrap();
    }
    let good = |images: Vec<serde_json::Value>| serde_json::json!({ "images": images }).to_string();
    let all = || -> Vec<serde_json::Value> {
        splits
            .iter()
            .map(|s| karpathy_image(&format!("{s}.png"), s, 5))
            .collect()
    };
    let check = |suite: &mut Suite, case: &str, text: &str, file: &str, word: &str| {
        std::fs::write(&json, text).unwrap();
        suite.cli(case, &dir, &["data", "check", path(&json)], file, word);
    };
    let valid = good(all());
    check(
        suite,
        "karpathy: JSON syntax error",
        &valid[..valid.len() - 5],
        "dataset.json",
        "not a Karpathy split JSON",
    );
    std::fs::write(&json, b"{\"images\": [\"\xff\"]}").unwrap();
    suite.cli(
        "karpathy: not UTF-8",
        &dir,
        &["data", "check", path(&json)],
        "dataset.json",
        "UTF-8",
    );
    let mut images = all();
    images[1].as_object_mut().unwrap().remove("sentences");
    check(
        suite,
        "karpathy: missing field",
        &good(images),
        "dataset.json",
        "sentences",
    );
    let mut images = all();
    images[0]["split"] = serde_json::json!(3);
    check(
        suite,
        "karpathy: split of the wrong type",
        &good(images),
        "dataset.json",
        "invalid type",
    );
    let mut images = all();
    images[2] = karpathy_image("test.png", "test", 4);
    check(
        suite,
        "karpathy: image with 4 captions",
        &good(images),
        "dataset.json",
        "fewer than 5",
    );
    let mut images = all();
    images[2]["sentences"][1]["raw"] = serde_json::json!("   ");
    check(
        suite,
        "karpathy: empty caption",
        &good(images),
        "dataset.json",
        "empty",
    );
    let mut images = all();
    images[1]["filename"] = serde_json::json!("absent.png");
    check(
        suite,
        "karpathy: missing image file",
        &good(images),
        "absent.png",
        "missing",
    );
    std::fs::write(&json, &valid).unwrap();
    std::fs::write(dir.join("id_mapping.json"), "[1, 2").unwrap();
    suite.cli(
        "karpathy: corrupt id_mapping.json",
        &dir,
        &["data", "check", path(&json)],
        "id_mapping.json",
        "expected",
    );
    std::fs::remove_file(dir.join("id_mapping.json")).unwrap();
    std::fs::write(dir.join("val.png"), b"\x89PNG\r\n\x1a\n not really").unwrap();
    suite.cli(
        "karpathy: undecodable image",
        &dir,
        &["data", "check", path(&json), "--decode"],
        "val.png",
        "cannot decode",
    );
}

/// A checkpoint of an untrained BiGRU + GPO region model (weights need not be trained to be
/// read) with the vocabulary of a small shapes dataset.
fn write_checkpoint(folder: &Path) {
    let data = ShapesDataset::generate(&ShapesConfig {
        seed: 5,
        train_images: 30,
        dev_images: 5,
        test_images: 5,
        regions: RegionFeatureConfig {
            d_feature: D_FEATURE,
            n_regions: 3,
            noise: 1.0,
        },
    });
    let vocab = Vocabulary::build(data.train.retrieval.captions.iter().map(String::as_str), 1);
    let config = VseModelConfig::vse_infinity_bigru_sized(D_FEATURE, vocab.len(), 16, 8);
    let model = config.init(&Device::flex());
    Checkpoint::new(folder)
        .save(&model, &config, &CaptionTokenizer::from(vocab))
        .unwrap();
}

/// `itm index build`: checkpoint files (weights, configuration, vocabulary) and precomp ids;
/// an existing index at `--output` must survive every failure.
fn checkpoint_files(suite: &mut Suite) {
    let dir = TempDir::new("bad-checkpoint");
    let good = dir.join("good");
    write_checkpoint(&good);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_precomp(&data);
    let index = dir.join("index");
    std::fs::create_dir_all(&index).unwrap();
    std::fs::write(index.join("manifest.json"), "an older index").unwrap();
    let checkpoint = dir.join("checkpoint");
    let build = |suite: &mut Suite, case: &str, file: &str, word: &str| {
        suite.cli(
            case,
            &dir,
            &[
                "index",
                "build",
                "--checkpoint",
                path(&checkpoint),
                "--data",
                path(&data),
                "--output",
                path(&index),
                "--quiet",
            ],
            file,
            word,
        );
    };
    let fresh = || {
        let _ = std::fs::remove_dir_all(&checkpoint);
        copy_tree(&good, &checkpoint);
    };
    fresh();
    std::fs::remove_file(checkpoint.join("model.bpk")).unwrap();
    build(
        suite,
        "checkpoint: model.bpk missing",
        "model.bpk",
        "no such file",
    );
    fresh();
    let weights = std::fs::read(good.join("model.bpk")).unwrap();
    std::fs::write(checkpoint.join("model.bpk"), &weights[..weights.len() / 2]).unwrap();
    build(
        suite,
        "checkpoint: model.bpk truncated",
        "model.bpk",
        "truncated",
    );
    fresh();
    std::fs::write(checkpoint.join("model.bpk"), b"not a burnpack at all").unwrap();
    build(suite, "checkpoint: model.bpk garbage", "model.bpk", "magic");
    fresh();
    std::fs::write(checkpoint.join("model.json"), "{\"image\": ").unwrap();
    build(
        suite,
        "checkpoint: corrupt model.json",
        "model.json",
        "not a model configuration",
    );
    fresh();
    std::fs::remove_file(checkpoint.join("vocab.json")).unwrap();
    build(
        suite,
        "checkpoint: vocabulary missing",
        "vocab.json",
        "missing",
    );
    fresh();
    let vocab_text = std::fs::read_to_string(good.join("vocab.json")).unwrap();
    let mut vocab: serde_json::Value = serde_json::from_str(&vocab_text).unwrap();
    let unk = vocab["word2idx"]["<unk>"].clone();
    let last = vocab["idx"].as_u64().unwrap() - 1;
    // Drop <unk> and move the last word into its index, so only the special token is missing.
    let last_word = vocab["idx2word"][last.to_string()]
        .as_str()
        .unwrap()
        .to_string();
    vocab["word2idx"].as_object_mut().unwrap().remove("<unk>");
    vocab["word2idx"][&last_word] = unk.clone();
    vocab["idx2word"][unk.to_string()] = serde_json::json!(last_word);
    vocab["idx2word"]
        .as_object_mut()
        .unwrap()
        .remove(&last.to_string());
    vocab["idx"] = serde_json::json!(last);
    std::fs::write(checkpoint.join("vocab.json"), vocab.to_string()).unwrap();
    build(suite, "vocabulary: <unk> missing", "vocab.json", "<unk>");
    std::fs::write(
        checkpoint.join("vocab.json"),
        vocab_text.replacen("\"idx\":", "\"idx\":\"many\",\"old\":", 1),
    )
    .unwrap();
    build(
        suite,
        "vocabulary: idx of the wrong type",
        "vocab.json",
        "invalid type",
    );
    std::fs::write(checkpoint.join("vocab.json"), "[]").unwrap();
    build(
        suite,
        "vocabulary: not an object",
        "vocab.json",
        "not a vocabulary JSON",
    );
    fresh();
    std::fs::write(data.join("test_ids.txt"), "1\n2\n3\n4\n5\n6\n").unwrap();
    build(
        suite,
        "precomp ids: 6 ids for 4 images",
        "test_ids.txt",
        "ids",
    );
    suite.cli(
        "checkpoint: no such folder",
        &dir,
        &[
            "index",
            "build",
            "--checkpoint",
            path(&dir.join("nowhere")),
            "--data",
            path(&data),
            "--output",
            path(&index),
        ],
        "nowhere",
        "no such checkpoint folder",
    );
    // The library path reads the same files.
    std::fs::write(checkpoint.join("model.json"), "{}").unwrap();
    suite.lib(
        "checkpoint (library): model.json without fields",
        Checkpoint::new(&checkpoint).load(&Device::flex()),
        "model.json",
        "missing field",
    );
}

/// `itm search --index` and `itm sheet --index`: altered index folders.
fn index_files(suite: &mut Suite) {
    let dir = TempDir::new("bad-index");
    let checkpoint = dir.join("checkpoint");
    write_checkpoint(&checkpoint);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_precomp(&data);
    let good = dir.join("good-index");
    ITM.ok(&[
        "index",
        "build",
        "--checkpoint",
        path(&checkpoint),
        "--data",
        path(&data),
        "--output",
        path(&good),
        "--quiet",
    ]);
    let index = dir.join("index");
    let sheet = dir.join("sheet.png");
    std::fs::write(&sheet, b"an older sheet").unwrap();
    let search = |suite: &mut Suite, case: &str, file: &str, word: &str| {
        suite.cli(
            case,
            &dir,
            &["search", "--index", path(&index), "a red circle"],
            file,
            word,
        );
    };
    let fresh = || {
        let _ = std::fs::remove_dir_all(&index);
        copy_tree(&good, &index);
    };
    fresh();
    let images = std::fs::read(good.join("images.npy")).unwrap();
    std::fs::write(index.join("images.npy"), &images[..images.len() - 8]).unwrap();
    search(
        suite,
        "index: images.npy truncated",
        "images.npy",
        "truncated",
    );
    fresh();
    let mut captions = std::fs::read(good.join("captions.npy")).unwrap();
    let last = captions.len() - 1;
    captions[last] ^= 0x55;
    std::fs::write(index.join("captions.npy"), &captions).unwrap();
    search(
        suite,
        "index: captions.npy edited",
        "captions.npy",
        "checksum",
    );
    fresh();
    let manifest = std::fs::read_to_string(good.join("manifest.json")).unwrap();
    std::fs::write(index.join("manifest.json"), &manifest[..manifest.len() / 2]).unwrap();
    search(
        suite,
        "index: manifest.json cut short",
        "manifest.json",
        "not JSON",
    );
    let mut edited: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    edited["n_images"] = serde_json::json!(edited["n_images"].as_u64().unwrap() + 1);
    std::fs::write(index.join("manifest.json"), edited.to_string()).unwrap();
    search(
        suite,
        "index: manifest.json edited",
        "images.npy",
        "the manifest records",
    );
    fresh();
    std::fs::remove_file(index.join("items.json")).unwrap();
    search(
        suite,
        "index: items.json missing",
        "items.json",
        "no such file",
    );
    fresh();
    std::fs::remove_file(index.join("manifest.json")).unwrap();
    suite.cli(
        "sheet: index without manifest",
        &dir,
        &["sheet", "--index", path(&index), "--output", path(&sheet)],
        "manifest.json",
        "no such file",
    );
    graph_files(suite, &dir, &checkpoint, &data);
}

/// `itm index build --approximate` of the precomp folder `data` into `output`.
fn build_approximate(checkpoint: &Path, data: &Path, output: &Path) {
    ITM.ok(&[
        "index",
        "build",
        "--checkpoint",
        path(checkpoint),
        "--data",
        path(data),
        "--output",
        path(output),
        "--quiet",
        "--approximate",
    ]);
}

/// Gives `name` in the manifest of `index` the length and SHA-256 of its current content, so
/// that only the checks past the checksum can refuse it.
fn rerecord(index: &Path, name: &str) {
    let manifest_path = index.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    let (sha256, bytes) = itm_serve::index::file_digest(&index.join(name)).unwrap();
    let record = manifest["files"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|f| f["name"] == name)
        .unwrap();
    record["sha256"] = serde_json::json!(sha256);
    record["bytes"] = serde_json::json!(bytes);
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
}

/// `itm search` of an index built with `--approximate`: its HNSW graph files.
fn graph_files(suite: &mut Suite, dir: &Path, checkpoint: &Path, data: &Path) {
    let good = dir.join("good-approximate");
    build_approximate(checkpoint, data, &good);
    // The same rows shifted: another index, whose graphs were built from other embeddings.
    let other_data = dir.join("other-data");
    std::fs::create_dir_all(&other_data).unwrap();
    let features = write_precomp(&other_data);
    let shifted: Vec<f32> = features.iter().map(|v| 1.0 - v).collect();
    write_f32(
        &other_data.join("test_ims.npy"),
        &[4, 3, D_FEATURE],
        &shifted,
    )
    .unwrap();
    let other = dir.join("other-approximate");
    build_approximate(checkpoint, &other_data, &other);

    let index = dir.join("approximate");
    let fresh = || {
        let _ = std::fs::remove_dir_all(&index);
        copy_tree(&good, &index);
    };
    let text_search = ["search", "--index", path(&index), "a red circle"];
    let image_search = ["search", "--index", path(&index), "--image", "10"];
    fresh();
    let graph = std::fs::read(good.join("images.hnsw")).unwrap();
    std::fs::write(index.join("images.hnsw"), &graph[..graph.len() / 2]).unwrap();
    suite.cli(
        "index: images.hnsw truncated",
        dir,
        &text_search,
        "images.hnsw",
        "truncated",
    );
    fresh();
    let mut graph = std::fs::read(good.join("captions.hnsw")).unwrap();
    let middle = graph.len() / 2;
    graph[middle] ^= 0x21;
    std::fs::write(index.join("captions.hnsw"), &graph).unwrap();
    suite.cli(
        "index: captions.hnsw edited",
        dir,
        &image_search,
        "captions.hnsw",
        "checksum",
    );
    // Cut short with the manifest updated to match: the graph's own checks refuse it.
    fresh();
    std::fs::write(index.join("captions.hnsw"), &graph[..middle]).unwrap();
    rerecord(&index, "captions.hnsw");
    suite.cli(
        "index: captions.hnsw cut short, manifest updated",
        dir,
        &image_search,
        "captions.hnsw",
        "truncated or corrupt graph",
    );
    fresh();
    std::fs::copy(good.join("captions.hnsw"), index.join("images.hnsw")).unwrap();
    rerecord(&index, "images.hnsw");
    suite.cli(
        "index: images.hnsw is the caption graph",
        dir,
        &text_search,
        "images.hnsw",
        "a graph over captions.npy",
    );
    fresh();
    std::fs::copy(other.join("images.hnsw"), index.join("images.hnsw")).unwrap();
    rerecord(&index, "images.hnsw");
    suite.cli(
        "index: images.hnsw of another index",
        dir,
        &text_search,
        "images.hnsw",
        "built from another images.npy",
    );
    fresh();
    std::fs::write(index.join("images.hnsw"), b"not a graph at all").unwrap();
    rerecord(&index, "images.hnsw");
    suite.cli(
        "index: images.hnsw not a graph",
        dir,
        &text_search,
        "images.hnsw",
        "not an itm HNSW graph",
    );
    fresh();
    let manifest_path = index.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    manifest["files"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["name"] != "images.hnsw");
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    suite.cli(
        "index: manifest.json without the checksum of images.hnsw",
        dir,
        &text_search,
        "manifest.json",
        "images.hnsw is not among the files",
    );
}

/// `itm encode-text --model`: Hugging Face folders (config.json, tokenizer.json,
/// model.safetensors) and the captions file; the existing output must survive.
fn bert_files(suite: &mut Suite) {
    let dir = TempDir::new("bad-bert");
    let model = dir.join("model");
    let input = dir.join("captions.txt");
    std::fs::write(&input, "a dog runs\na red ball\n").unwrap();
    let output = dir.join("emb.npy");
    std::fs::write(&output, b"older embeddings").unwrap();
    let fresh = || {
        let _ = std::fs::remove_dir_all(&model);
        copy_tree(&fixture("tiny_bert"), &model);
    };
    let encode = |suite: &mut Suite, case: &str, file: &str, word: &str| {
        suite.cli(
            case,
            &dir,
            &[
                "encode-text",
                "--model",
                path(&model),
                "--input",
                path(&input),
                "--output",
                path(&output),
            ],
            file,
            word,
        );
    };
    let config = std::fs::read_to_string(fixture("tiny_bert/config.json")).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&config).unwrap();
    fresh();
    std::fs::write(
        model.join("tokenizer.json"),
        "{\"model\": {\"type\": \"Bogus\"}}",
    )
    .unwrap();
    encode(
        suite,
        "tokenizer.json: corrupt",
        "tokenizer.json",
        "tokenizer.json",
    );
    fresh();
    std::fs::write(model.join("tokenizer.json"), "").unwrap();
    encode(
        suite,
        "tokenizer.json: empty",
        "tokenizer.json",
        "tokenizer.json",
    );
    fresh();
    value.as_object_mut().unwrap().remove("hidden_size");
    std::fs::write(model.join("config.json"), value.to_string()).unwrap();
    encode(
        suite,
        "config.json: missing key",
        "config.json",
        "hidden_size",
    );
    let mut value: serde_json::Value = serde_json::from_str(&config).unwrap();
    value["num_attention_heads"] = serde_json::json!("four");
    std::fs::write(model.join("config.json"), value.to_string()).unwrap();
    encode(
        suite,
        "config.json: wrong type",
        "config.json",
        "invalid type",
    );
    let mut value: serde_json::Value = serde_json::from_str(&config).unwrap();
    value["num_attention_heads"] = serde_json::json!(5);
    std::fs::write(model.join("config.json"), value.to_string()).unwrap();
    encode(
        suite,
        "config.json: heads do not divide",
        "config.json",
        "heads",
    );
    // Sizes that are valid but absurd must be refused before anything is allocated for them.
    let mut value: serde_json::Value = serde_json::from_str(&config).unwrap();
    value["vocab_size"] = serde_json::json!(1_000_000_000_000u64);
    std::fs::write(model.join("config.json"), value.to_string()).unwrap();
    encode(suite, "config.json: 10^12 words", "config.json", "can hold");
    let mut value: serde_json::Value = serde_json::from_str(&config).unwrap();
    value["intermediate_size"] = serde_json::json!(u64::MAX / 8);
    std::fs::write(model.join("config.json"), value.to_string()).unwrap();
    encode(
        suite,
        "config.json: 2^61 wide layers",
        "config.json",
        "can hold",
    );
    std::fs::write(model.join("config.json"), "{ not json").unwrap();
    encode(
        suite,
        "config.json: syntax error",
        "config.json",
        "not a usable",
    );
    fresh();
    let weights = std::fs::read(model.join("model.safetensors")).unwrap();
    std::fs::write(
        model.join("model.safetensors"),
        &weights[..weights.len() / 2],
    )
    .unwrap();
    encode(
        suite,
        "safetensors: truncated",
        "model.safetensors",
        "SafeTensors",
    );
    std::fs::write(model.join("model.safetensors"), &weights[..4]).unwrap();
    encode(
        suite,
        "safetensors: 4 bytes",
        "model.safetensors",
        "SafeTensors",
    );
    fresh();
    let mut value: serde_json::Value = serde_json::from_str(&config).unwrap();
    value["intermediate_size"] = serde_json::json!(41);
    std::fs::write(model.join("config.json"), value.to_string()).unwrap();
    encode(
        suite,
        "safetensors: wrong shape",
        "model.safetensors",
        "shape",
    );
    fresh();
    std::fs::write(&input, "a dog runs\n\na red ball\n").unwrap();
    encode(suite, "captions: empty line", "captions.txt", "empty");
    std::fs::write(&input, b"a dog \xc3\x28 runs\n").unwrap();
    encode(suite, "captions: not UTF-8", "captions.txt", "UTF-8");
}

/// CLIP folders, read only by the library.
fn clip_files(suite: &mut Suite) {
    let dir = TempDir::new("bad-clip");
    let model = dir.join("model");
    let fresh = || {
        let _ = std::fs::remove_dir_all(&model);
        copy_tree(&fixture("tiny_clip"), &model);
    };
    let device = Device::flex();
    fresh();
    let weights = std::fs::read(model.join("model.safetensors")).unwrap();
    std::fs::write(
        model.join("model.safetensors"),
        &weights[..weights.len() - 100],
    )
    .unwrap();
    suite.lib(
        "clip: safetensors truncated",
        load_clip(&model, &device),
        "model.safetensors",
        "SafeTensors",
    );
    fresh();
    let config = std::fs::read_to_string(model.join("config.json")).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&config).unwrap();
    value.as_object_mut().unwrap().remove("text_config");
    std::fs::write(model.join("config.json"), value.to_string()).unwrap();
    suite.lib(
        "clip: config.json without text_config",
        load_clip(&model, &device),
        "config.json",
        "text_config",
    );
    let mut value: serde_json::Value = serde_json::from_str(&config).unwrap();
    value["vision_config"]["intermediate_size"] = serde_json::json!(1u64 << 40);
    std::fs::write(model.join("config.json"), value.to_string()).unwrap();
    suite.lib(
        "clip: config.json with 2^40 wide vision layers",
        load_clip(&model, &device),
        "config.json",
        "can hold",
    );
    std::fs::remove_file(model.join("config.json")).unwrap();
    suite.lib(
        "clip: config.json missing",
        load_clip(&model, &device),
        "config.json",
        "no such file",
    );
    fresh();
    std::fs::write(
        model.join("config.json"),
        config.replace("\"hidden_size\": ", "\"hidden_size\": 1 + "),
    )
    .unwrap();
    suite.lib(
        "clip: config.json syntax error",
        load_clip(&model, &device),
        "config.json",
        "not a usable",
    );
    suite.lib(
        "bert (library): folder without files",
        load_bert(&dir.join("nowhere"), &device),
        "config.json",
        "no such file",
    );
}

#[test]
fn bad_input_gives_clear_errors_and_changes_nothing() {
    let mut suite = Suite {
        passed: 0,
        failures: Vec::new(),
    };
    similarity_files(&mut suite);
    precomp_files(&mut suite);
    karpathy_files(&mut suite);
    checkpoint_files(&mut suite);
    index_files(&mut suite);
    bert_files(&mut suite);
    clip_files(&mut suite);
    println!("bad-input cases: {} passed", suite.passed);
    assert!(
        suite.failures.is_empty(),
        "{} case(s) failed:\n{}",
        suite.failures.len(),
        suite.failures.join("\n")
    );
    assert!(suite.passed >= 30, "only {} cases", suite.passed);
}
