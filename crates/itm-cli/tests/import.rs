//! `itm import` on checkpoints made by running the authors' own code
//! (`scripts/authors/*.py`, fixtures under `crates/itm-train/tests/fixtures/authors/`): the
//! imported model scores the authors' test split as their `evalrank` did, bad checkpoints are
//! refused naming the file and the problem, and an imported model fine-tunes.

use std::path::{Path, PathBuf};

use itm_data::npy::FloatArray;
use itm_test_support::{Binary, ShapesToml, TempDir, itm_binary, read_json, train_fixtures};

const ITM: Binary = itm_binary!();

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A folder of authors' fixtures.
fn authors(name: &str) -> PathBuf {
    train_fixtures().path(&format!("authors/{name}"))
}

fn matrix(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let array = FloatArray::open(path, 2, "[images, captions]").unwrap();
    (array.shape().to_vec(), array.values().to_vec())
}

/// `itm import` of the VSE∞ BiGRU fixture into `dir/run`.
fn import_vse_bigru(dir: &Path) -> PathBuf {
    let fixture = authors("vse_infty_bigru");
    let run = dir.join("run");
    let out = ITM.ok(&[
        "import",
        "--checkpoint",
        s(&fixture.join("model_best.pth")),
        "--vocab",
        s(&fixture.join("vocab.json")),
        "--output",
        s(&run),
    ]);
    assert!(out.contains("vse_infinity_bigru"), "{out}");
    run
}

/// The matrix `itm evaluate --checkpoint` computes on the fixture's test split equals the one
/// the authors' `evalrank` computed (float64 there, float32 here: ≤ 1e-4 asked, a few 1e-7
/// seen), and the metrics are identical.
fn assert_scores_as_the_authors(fixture: &Path, run: &Path, dir: &Path, tolerance: f32) {
    let sims = dir.join("sims.npy");
    let out = ITM.ok(&[
        "evaluate",
        "--checkpoint",
        s(run),
        "--data",
        s(fixture),
        "--split",
        "test",
        "--save-sims",
        s(&sims),
        "--json",
        "--quiet",
    ]);
    let (shape, ours) = matrix(&sims);
    let (theirs_shape, theirs) = matrix(&fixture.join("sims.npy"));
    assert_eq!(shape, theirs_shape);
    let worst = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= tolerance, "largest difference {worst:e}");
    println!("{}: largest difference {worst:e}", fixture.display());

    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let expected = read_json(&fixture.join("metrics.json"));
    for (direction, prefix) in [("i2t", "i2t"), ("t2i", "t2i")] {
        for metric in ["r1", "r5", "r10", "medr", "meanr"] {
            let theirs = expected[direction][metric].as_f64().unwrap();
            let ours = json[format!("{prefix}_{metric}")].as_f64().unwrap();
            assert!(
                (theirs - ours).abs() < 1e-9,
                "{direction} {metric}: authors {theirs}, itm {ours}"
            );
        }
    }
    assert_eq!(json["rsum"].as_f64(), expected["rsum"].as_f64());
}

/// `itm import` of the fixture folder `name` (its checkpoint `file`, with `extra` arguments)
/// prints `system`, and the imported run scores the test split `split` (a fixture folder
/// holding the data) as the authors' code did: their matrix and metrics beside the checkpoint.
fn import_scores_as_the_authors(name: &str, file: &str, extra: &[&str], system: &str, split: &str) {
    let dir = TempDir::new(name);
    let fixture = authors(name);
    let run = dir.join("run");
    let checkpoint = fixture.join(file);
    let mut args = vec![
        "import",
        "--checkpoint",
        s(&checkpoint),
        "--output",
        s(&run),
    ];
    args.extend(extra);
    let out = ITM.ok(&args);
    assert!(out.contains(system), "{out}");
    assert_eq!(read_json(&run.join("import.json"))["system"], system);
    let data = TempDir::copy_of(&format!("{name}-split"), &authors(split));
    for file in ["sims.npy", "metrics.json"] {
        std::fs::copy(fixture.join(file), data.join(file)).unwrap();
    }
    assert_scores_as_the_authors(&data, &run, &dir, 1e-4);
}

#[test]
fn vse_infinity_bigru_scores_as_the_authors_code() {
    let dir = TempDir::new("import-vse-bigru");
    let run = import_vse_bigru(&dir);
    for file in ["model.bpk", "model.json", "vocab.json", "import.json"] {
        assert!(run.join(file).is_file(), "{file}");
    }
    let report = read_json(&run.join("import.json"));
    assert_eq!(report["system"], "vse_infinity_bigru");
    assert_eq!(report["epoch"], 1);
    let fixture = authors("vse_infty_bigru");
    assert_scores_as_the_authors(&fixture, &run, &dir, 1e-4);

    // `itm encode` of the same run: the products of its image and caption rows are the
    // authors' scores too.
    let (images, captions) = (dir.join("images.npy"), dir.join("captions.npy"));
    for (flag, input, output) in [
        ("--images", fixture.join("test_ims.npy"), &images),
        ("--captions", fixture.join("test_caps.txt"), &captions),
    ] {
        ITM.ok(&[
            "encode",
            "--checkpoint",
            s(&run),
            flag,
            s(&input),
            "--output",
            s(output),
            "--quiet",
        ]);
    }
    let (image_shape, image_rows) = matrix(&images);
    let (caption_shape, caption_rows) = matrix(&captions);
    let (_, theirs) = matrix(&fixture.join("sims.npy"));
    let d = image_shape[1];
    assert_eq!((image_shape[0], caption_shape), (20, vec![100, d]));
    for i in 0..20 {
        for j in 0..100 {
            let ours: f32 = (0..d)
                .map(|k| image_rows[i * d + k] * caption_rows[j * d + k])
                .sum();
            let difference = (ours - theirs[i * 100 + j]).abs();
            assert!(difference <= 1e-4, "image {i}, caption {j}: {difference:e}");
        }
    }
}

/// VSE∞ with BERT (branch `master`): the BERT's sizes and tokenizer from `--bert`, its weights
/// from the checkpoint (`module.` keys). The fixture's BERT has no transformer layer (the
/// authors' code hard-codes a 768-wide BERT: one layer would add 9.6 MB); the layers' keys are
/// those of a Hugging Face folder, whose loader is checked against transformers elsewhere.
#[test]
fn vse_infinity_bert_scores_as_the_authors_code() {
    let fixture = authors("vse_infty_bert");
    // The test split is the BiGRU fixture's (byte-identical); the matrix is BERT's.
    let bert = fixture.join("bert");
    import_scores_as_the_authors(
        "vse_infty_bert",
        "model_best.pth",
        &["--bert", s(&bert)],
        "vse_infinity_bert",
        "vse_infty_bigru",
    );
    let dir = TempDir::new("import-vse-bert");

    // Without --bert, and with a BERT folder of another width: refused, naming the file.
    let output = dir.join("refused");
    let checkpoint = fixture.join("model_best.pth");
    ITM.fails(
        &[
            "import",
            "--checkpoint",
            s(&checkpoint),
            "--output",
            s(&output),
        ],
        &["model_best.pth", "--bert"],
    );
    let narrow = TempDir::copy_of("vse-bert-narrow", &fixture.join("bert"));
    let config = narrow.join("config.json");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("\"hidden_size\": 768", "\"hidden_size\": 384");
    std::fs::write(&config, text).unwrap();
    ITM.fails(
        &[
            "import",
            "--checkpoint",
            s(&checkpoint),
            "--bert",
            s(&narrow),
            "--output",
            s(&output),
        ],
        &["config.json", "384 wide", "768"],
    );
    assert!(!output.exists());
}

/// The four SCAN variants (t2i / i2t × Mean / LogSumExp), each trained and scored by the
/// authors' code. Their cross attention runs in float64 and ours in float32; the smallest gap
/// between a ground truth and a competitor in these matrices is 2.2e-7, so identical metrics
/// also show that no rank moved.
#[test]
fn scan_scores_as_the_authors_code() {
    let data = authors("scan_data");
    let vocab = data.join("vocab.json");
    for (name, system) in [
        ("scan_t2i_avg", "scan_t2i"),
        ("scan_i2t_avg", "scan_i2t"),
        ("scan_t2i_lse", "scan_t2i"),
        ("scan_i2t_lse", "scan_i2t"),
    ] {
        // The test split lives once in scan_data; the authors' matrix beside each checkpoint.
        import_scores_as_the_authors(
            name,
            "model_best.pth.tar",
            &["--vocab", s(&vocab)],
            system,
            "scan_data",
        );
    }
    // The legacy file of PyTorch < 1.6, as SCAN's published checkpoints are, imports the same.
    import_scores_as_the_authors(
        "scan_t2i_avg",
        "model_best_legacy.pth.tar",
        &["--vocab", s(&vocab)],
        "scan_t2i",
        "scan_data",
    );
}

/// CHAN's two scripts, each trained and scored by the authors' code on SCAN's fixture split:
/// the BiGRU one (fc + a pre-norm self-attention block over the regions, LogSumExp over words
/// at 0.1; its vocabulary is the `word2idx` pickled in `opt`, so no `--vocab`) and the BERT one
/// (fc alone, mean over words; a 0-layer BERT as for VSE∞).
#[test]
fn chan_scores_as_the_authors_code() {
    let data = authors("scan_data");
    import_scores_as_the_authors(
        "chan_bigru",
        "model_best.pth",
        &[],
        "chan_bigru",
        "scan_data",
    );
    let bert = authors("chan_bert").join("bert");
    import_scores_as_the_authors(
        "chan_bert",
        "model_best.pth",
        &["--bert", s(&bert)],
        "chan_bert",
        "scan_data",
    );
    // The vocabulary in opt is the one the split's vocab.json + <mask> gives: a --vocab of
    // another size is not consulted, and the imported vocabulary has the checkpoint's size.
    let dir = TempDir::new("chan-vocab");
    let run = dir.join("run");
    ITM.ok(&[
        "import",
        "--checkpoint",
        s(&authors("chan_bigru").join("model_best.pth")),
        "--output",
        s(&run),
    ]);
    let vocab = read_json(&run.join("vocab.json"));
    let words = vocab["word2idx"].as_object().unwrap();
    let saved = read_json(&data.join("vocab.json"));
    assert_eq!(
        words.len(),
        saved["word2idx"].as_object().unwrap().len() + 1
    );
    assert_eq!(words["<mask>"], words.len() - 1);
    assert_eq!(vocab["tokenizer"], "nltk");
}

/// X-Dim (BERT; `module.` keys; its dependency head with `Linear`-held scalars), trained and
/// scored by the authors' code at D = 32 on SCAN's fixture split (the script documents the
/// two in-memory fixes this width and current PyTorch need).
#[test]
fn xdim_scores_as_the_authors_code() {
    let bert = authors("xdim").join("bert");
    import_scores_as_the_authors(
        "xdim",
        "model_best.pth",
        &["--bert", s(&bert)],
        "xdim",
        "scan_data",
    );
}

/// ESL, adaptive and heuristic (BERT; `module.` keys; nine levels, so D = 256 at the least),
/// trained and scored by the authors' code on SCAN's fixture split; the strategy, which `opt`
/// does not record, is recognised from the level encoders' keys.
#[test]
fn esl_scores_as_the_authors_code() {
    let bert = authors("xdim").join("bert");
    for name in ["esl_a", "esl_h"] {
        import_scores_as_the_authors(
            name,
            "model_best.pth",
            &["--bert", s(&bert)],
            name,
            "scan_data",
        );
    }
    // Forced as the other strategy: refused, naming what is missing.
    let dir = TempDir::new("esl-forced");
    ITM.fails(
        &[
            "import",
            "--checkpoint",
            s(&authors("esl_a").join("model_best.pth")),
            "--bert",
            s(&authors("xdim").join("bert")),
            "--system",
            "esl_h",
            "--output",
            s(&dir.join("out")),
        ],
        &["model_best.pth", "heuristic", "kernel_img_k"],
    );
}

/// HREM (BERT; FC+MLP and a post-norm transformer aggregation on both sides, residual max-2
/// mean; cosine), trained and scored by the authors' code on SCAN's fixture split.
#[test]
fn hrem_scores_as_the_authors_code() {
    let bert = authors("xdim").join("bert");
    import_scores_as_the_authors(
        "hrem",
        "model_best.pth",
        &["--bert", s(&bert)],
        "hrem",
        "scan_data",
    );
}

/// The failures a user meets: each names the file and says what is wrong, and the output
/// folder is not created.
#[test]
fn bad_checkpoints_are_refused() {
    let dir = TempDir::new("import-bad");
    let fixture = authors("vse_infty_bigru");
    let checkpoint = fixture.join("model_best.pth");
    let vocab = fixture.join("vocab.json");
    let output = dir.join("out");
    let import = |checkpoint: &Path, vocab: Option<&Path>, extra: &[&str], needles: &[&str]| {
        let mut args = vec![
            "import",
            "--checkpoint",
            s(checkpoint),
            "--output",
            s(&output),
        ];
        if let Some(vocab) = vocab {
            args.extend(["--vocab", s(vocab)]);
        }
        args.extend(extra);
        let message = ITM.fails(&args, needles);
        assert!(!output.exists(), "{message}");
    };

    // Truncated: the zip's directory is at the end.
    let bytes = std::fs::read(&checkpoint).unwrap();
    let truncated = dir.join("truncated.pth");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    import(&truncated, Some(&vocab), &[], &["truncated.pth", "zip"]);

    // Not a checkpoint at all.
    let text = dir.join("notes.pth");
    std::fs::write(&text, "not a checkpoint\n").unwrap();
    import(&text, Some(&vocab), &[], &["notes.pth", "torch.save"]);

    // A missing file.
    import(&dir.join("absent.pth"), Some(&vocab), &[], &["absent.pth"]);

    // BiGRU systems need their vocabulary.
    import(&checkpoint, None, &[], &["model_best.pth", "--vocab"]);

    // A vocabulary of another size than the one the model was trained with.
    let small = dir.join("small_vocab.json");
    std::fs::write(
        &small,
        r#"{"word2idx":{"<pad>":0,"<start>":1,"<end>":2,"<unk>":3,"a":4},
            "idx2word":{"0":"<pad>","1":"<start>","2":"<end>","3":"<unk>","4":"a"},"idx":5}"#,
    )
    .unwrap();
    import(
        &checkpoint,
        Some(&small),
        &[],
        &["small_vocab.json", "opt.vocab_size is 63"],
    );

    // A checkpoint of another system forced with --system: the tensors that do not fit (SCAN
    // has `fc` alone on the image side and no GPO), or the options it lacks.
    let scan = authors("scan_t2i_avg").join("model_best.pth.tar");
    import(
        &scan,
        Some(&vocab),
        &["--system", "vse_infinity_bigru"],
        &[
            "model_best.pth.tar",
            "missing",
            "image.mlp_in.weight",
            "image_pooling",
        ],
    );
    import(
        &checkpoint,
        Some(&vocab),
        &["--system", "scan"],
        &["model_best.pth", "raw_feature_norm"],
    );
    // CHAN's self-attention checkpoint is not SCAN's, nor VSE∞'s CHAN's.
    import(
        &authors("chan_bigru").join("model_best.pth"),
        Some(&vocab),
        &["--system", "scan"],
        &["model_best.pth", "selfattention"],
    );
    import(
        &checkpoint,
        Some(&vocab),
        &["--system", "chan_bigru"],
        &["model_best.pth", "coding_type"],
    );
    // A checkpoint whose layout no system has: not recognised, with what it holds.
    import(
        &authors("no_system.pth"),
        Some(&vocab),
        &[],
        &[
            "no_system.pth",
            "not a checkpoint of a system itm imports",
            "model[0]: 2 tensors",
        ],
    );

    // An unknown --system.
    import(
        &checkpoint,
        Some(&vocab),
        &["--system", "vse_infinity_gpt"],
        &["vse_infinity_gpt", "vse_infinity_bigru"],
    );
}

/// An imported model fine-tunes with `itm train --init` (one epoch on `shapes`-sized data with
/// the checkpoint's 64-wide regions), and the fine-tuned checkpoint loads and scores again.
#[test]
fn an_imported_model_fine_tunes() {
    let dir = TempDir::new("import-fine-tune");
    let run = import_vse_bigru(&dir);
    let output = dir.join("tuned");
    let config = dir.join("tune.toml");
    let toml = ShapesToml {
        seed: 5,
        images: [100, 20, 20],
        feature_width: Some(64),
    }
    .run_file(
        &output,
        &format!("name = \"vse_infinity_bigru\"\ninit = \"{}\"\n", s(&run)),
        "epochs = 1\nbatch_size = 20\nseed = 1\n",
    );
    std::fs::write(&config, toml).unwrap();
    let table = ITM.ok(&["train", "--config", s(&config), "--quiet"]);
    assert!(table.contains("rsum"), "{table}");
    // The fine-tuned model is the imported architecture (D = 32, the fixture's 63 words).
    let model = read_json(&output.join("model.json"));
    let text = model["text"].to_string();
    assert!(text.contains("63") && text.contains("32"), "{text}");
    let out = ITM.ok(&[
        "evaluate",
        "--checkpoint",
        s(&output),
        "--data",
        s(&authors("vse_infty_bigru")),
        "--split",
        "test",
        "--json",
        "--quiet",
    ]);
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(json["rsum"].as_f64().unwrap() > 0.0, "{out}");

    // The data must have the checkpoint's region width.
    let narrow = ShapesToml {
        seed: 5,
        images: [100, 20, 20],
        feature_width: Some(32),
    }
    .run_file(
        &dir.join("narrow"),
        &format!("name = \"vse_infinity_bigru\"\ninit = \"{}\"\n", s(&run)),
        "epochs = 1\nbatch_size = 20\n",
    );
    std::fs::write(&config, narrow).unwrap();
    ITM.fails(
        &["train", "--config", s(&config), "--quiet"],
        &["model.init", "64-wide", "32-wide"],
    );
}

/// HAT's Lightning checkpoint (`scripts/authors/hat.py`: HAT's own Swin, BERT and
/// `xattn_score_i2t`, tiny sizes): `itm import` (recognised from its keys) gives the `hat` model,
/// whose scores of the fixture's Karpathy split (3 images, 15 captions) are HAT's within 1e-4;
/// a checkpoint of another system given as HAT is refused with what HAT needs, and so is a HAT
/// checkpoint without its BERT folder.
#[test]
fn hat_imports_and_scores_as_hats_own_code() {
    let dir = TempDir::new("import-hat");
    let fixture = authors("hat");
    let run = dir.join("run");
    let out = ITM.ok(&[
        "import",
        "--checkpoint",
        s(&fixture.join("hat.ckpt")),
        "--bert",
        s(&fixture.join("bert")),
        "--output",
        s(&run),
    ]);
    assert!(out.contains("hat"), "{out}");
    let sims = dir.join("sims.npy");
    let evaluated = ITM.ok(&[
        "evaluate",
        "--checkpoint",
        s(&run),
        "--data",
        s(&fixture.join("data/dataset.json")),
        "--json",
        "--quiet",
        "--save-sims",
        s(&sims),
    ]);
    let json: serde_json::Value = serde_json::from_str(&evaluated).unwrap();
    assert_eq!(json["levels"].as_array().map(Vec::len), Some(3), "{json}");
    let (shape, ours) = matrix(&sims);
    let (expected_shape, hats) = matrix(&fixture.join("sims.npy"));
    assert_eq!(shape, expected_shape);
    let worst = ours
        .iter()
        .zip(&hats)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("hat: largest difference from HAT's scores {worst:e}");
    assert!(worst <= 1e-4, "{worst}");

    // Another system's checkpoint as HAT, and HAT without its BERT folder.
    let other = authors("vse_infty_bigru").join("model_best.pth");
    ITM.fails(
        &[
            "import",
            "--checkpoint",
            s(&other),
            "--system",
            "hat",
            "--output",
            s(&dir.join("bad")),
        ],
        &["model_best.pth", "not a HAT checkpoint", "vit_model"],
    );
    ITM.fails(
        &[
            "import",
            "--checkpoint",
            s(&fixture.join("hat.ckpt")),
            "--output",
            s(&dir.join("bad")),
        ],
        &["hat.ckpt", "--bert DIR"],
    );
}
