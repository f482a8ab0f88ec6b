//! Property-based fuzzing of the parsers of user files: random bytes and random mutations of
//! valid files (byte edits, truncation, and for JSON, values swapped for values of other types
//! and sizes) are fed to the `.npy` reader, the Karpathy JSON loader, the vocabulary loader,
//! the BERT and CLIP `config.json` readers and the checkpoint's `model.json`. Errors are
//! expected; a panic fails the test. The case counts are bounded to run in seconds, and the
//! seed is fixed. Found so far: `.npy` shapes whose element count or strides overflow `u64`
//! made npyz panic (regression cases in `crates/itm-cli/tests/bad_input.rs`).

use itm::core::VseModelConfig;
use itm::data::karpathy::{self, KarpathySplit};
use itm::data::npy::{MappedF32, write_f32};
use itm::data::{PAD, Vocabulary};
use itm::train::{bert_config_from_json, clip_config_from_json};
use itm_test_support::{TempDir, train_fixtures};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Inputs per parser and kind (a few seconds in all).
const CASES: u32 = 400;

/// A fixture file of `itm-train` (the tiny BERT and CLIP folders' `config.json`).
fn fixture(path: &str) -> String {
    train_fixtures().text(path)
}

/// A byte edit: overwrite, insert or delete at a position (taken modulo the length).
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        2 => any::<usize>().prop_map(Edit::Delete),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn mutate(valid: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut bytes = valid.to_vec();
    for edit in edits {
        let n = bytes.len().max(1);
        match *edit {
            Edit::Set(i, b) if !bytes.is_empty() => bytes[i % n] = b,
            Edit::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
            Edit::Delete(i) if !bytes.is_empty() => {
                bytes.remove(i % n);
            }
            Edit::Truncate(i) => bytes.truncate(i % (bytes.len() + 1)),
            _ => {}
        }
    }
    bytes
}

/// Inputs: random bytes, or 1–8 byte edits of `valid`.
fn bytes_or_edits(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..400),
        3 => proptest::collection::vec(edit(), 1..8).prop_map(move |edits| mutate(&valid, &edits)),
    ]
}

/// A JSON value of another type or an extreme size.
fn odd_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    prop_oneof![
        Just(json!(null)),
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(u64::MAX)),
        Just(json!(1e300)),
        Just(json!(0.5)),
        Just(json!("")),
        Just(json!("gelu")),
        Just(json!([])),
        Just(json!({})),
        Just(json!(true)),
        any::<i64>().prop_map(|v| json!(v)),
        "[a-z<>]{0,6}".prop_map(|s| json!(s)),
    ]
}

/// Replaces the `k`-th node (depth first, modulo the count) of `value` with `new`, or removes
/// it from its object when `new` is `None`.
fn replace_node(value: &mut serde_json::Value, k: usize, new: Option<serde_json::Value>) {
    fn count(v: &serde_json::Value) -> usize {
        1 + match v {
            serde_json::Value::Array(a) => a.iter().map(count).sum(),
            serde_json::Value::Object(o) => o.values().map(count).sum(),
            _ => 0,
        }
    }
    fn walk(v: &mut serde_json::Value, k: &mut usize, new: &Option<serde_json::Value>) -> bool {
        let children: Vec<String> = match v {
            serde_json::Value::Object(o) => o.keys().cloned().collect(),
            serde_json::Value::Array(a) => (0..a.len()).map(|i| i.to_string()).collect(),
            _ => Vec::new(),
        };
        for key in children {
            if *k == 0 {
                match (v, new) {
                    (serde_json::Value::Object(o), None) => {
                        o.remove(&key);
                    }
                    (serde_json::Value::Object(o), Some(n)) => {
                        o.insert(key, n.clone());
                    }
                    (serde_json::Value::Array(a), n) => {
                        a[key.parse::<usize>().unwrap()] = n.clone().unwrap_or_default();
                    }
                    _ => unreachable!("only containers have children"),
                }
                return true;
            }
            *k -= 1;
            let child = match v {
                serde_json::Value::Object(o) => o.get_mut(&key).unwrap(),
                serde_json::Value::Array(a) => &mut a[key.parse::<usize>().unwrap()],
                _ => unreachable!("only containers have children"),
            };
            if walk(child, k, new) {
                return true;
            }
        }
        false
    }
    let total = count(value).saturating_sub(1).max(1);
    let mut k = k % total;
    walk(value, &mut k, &new);
}

/// Inputs for a JSON parser: random bytes, byte edits, or 1–4 values replaced or removed.
fn json_inputs(valid: String) -> impl Strategy<Value = Vec<u8>> {
    let value: serde_json::Value = serde_json::from_str(&valid).unwrap();
    prop_oneof![
        1 => bytes_or_edits(valid.into_bytes()),
        2 => proptest::collection::vec((any::<usize>(), proptest::option::weighted(0.8, odd_value())), 1..4)
            .prop_map(move |changes| {
                let mut v = value.clone();
                for (k, new) in changes {
                    replace_node(&mut v, k, new);
                }
                v.to_string().into_bytes()
            }),
    ]
}

/// A runner with a fixed seed, so that a failure in CI reproduces locally.
fn runner() -> TestRunner {
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

/// Runs `parse` on every input; a panic fails with the input that caused it.
fn fuzz(name: &str, inputs: impl Strategy<Value = Vec<u8>>, parse: impl Fn(&[u8])) {
    let outcome = runner().run(&inputs, |bytes| {
        parse(&bytes);
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{name}: {e}");
    }
}

/// A well-framed `.npy` file with a random dtype, shape (tiny to beyond `u64` in element count)
/// and body length.
fn npy_files() -> impl Strategy<Value = Vec<u8>> {
    let descr = prop_oneof![
        Just("<f4"),
        Just(">f4"),
        Just("<f8"),
        Just("|u1"),
        Just("<i4")
    ];
    let dim = prop_oneof![3 => 0u64..6, 1 => any::<u64>(), 1 => Just(1u64 << 32)];
    (
        descr,
        proptest::collection::vec(dim, 0..5),
        any::<bool>(),
        0usize..200,
    )
        .prop_map(|(descr, shape, fortran, body)| {
            let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
            let order = if fortran { "True" } else { "False" };
            let mut header = format!(
                "{{'descr': '{descr}', 'fortran_order': {order}, 'shape': ({}{}), }}",
                dims.join(", "),
                if dims.len() == 1 { "," } else { "" }
            );
            while (11 + header.len()) % 64 != 0 {
                header.push(' ');
            }
            header.push('\n');
            let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
            bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
            bytes.extend_from_slice(header.as_bytes());
            bytes.resize(bytes.len() + body, 0x3f);
            bytes
        })
}

#[test]
fn npy_reader_never_panics() {
    let dir = TempDir::new("fuzz-npy");
    let path = dir.join("x.npy");
    let values: Vec<f32> = (0..24).map(|k| k as f32 * 0.25).collect();
    write_f32(&path, &[2, 3, 4], &values).unwrap();
    let valid = std::fs::read(&path).unwrap();
    let inputs = prop_oneof![bytes_or_edits(valid), npy_files()];
    fuzz("npy", inputs, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        for rank in [2, 3] {
            if let Ok(array) = MappedF32::open(&path, rank, "[a, b, c]") {
                assert_eq!(
                    array.values().len(),
                    array.shape().iter().product::<usize>()
                );
            }
        }
    });
}

#[test]
fn karpathy_loader_never_panics() {
    let dir = TempDir::new("fuzz-karpathy");
    let json = dir.join("dataset.json");
    let images: Vec<serde_json::Value> = ["train", "val", "test"]
        .iter()
        .map(|split| {
            std::fs::write(dir.join(format!("{split}.jpg")), b"bytes").unwrap();
            serde_json::json!({"filename": format!("{split}.jpg"), "split": split, "imgid": 3,
                "sentences": (0..5).map(|k| serde_json::json!({"raw": format!("caption {k}")})).collect::<Vec<_>>()})
        })
        .collect();
    let valid = serde_json::json!({ "images": images }).to_string();
    fuzz("karpathy", json_inputs(valid), |bytes| {
        std::fs::write(&json, bytes).unwrap();
        for split in [
            KarpathySplit::Train,
            KarpathySplit::Dev,
            KarpathySplit::Test,
        ] {
            if let Ok(data) = karpathy::load(&json, &dir, split) {
                assert_eq!(data.captions.len(), 5 * data.images.len());
            }
        }
    });
}

#[test]
fn vocabulary_loader_never_panics() {
    let dir = TempDir::new("fuzz-vocab");
    let path = dir.join("vocab.json");
    Vocabulary::build(["a red circle", "two blue squares"], 1)
        .save(&path)
        .unwrap();
    let valid = std::fs::read_to_string(&path).unwrap();
    fuzz("vocabulary", json_inputs(valid), |bytes| {
        std::fs::write(&path, bytes).unwrap();
        if let Ok(vocab) = Vocabulary::load(&path) {
            let pad = vocab.index(PAD);
            assert_eq!(vocab.word(pad), Some(PAD));
            vocab.encode("a red circle and an unknown word");
        }
    });
}

#[test]
fn config_readers_never_panic() {
    fuzz(
        "bert config.json",
        json_inputs(fixture("tiny_bert/config.json")),
        |bytes| {
            if let Ok(config) = bert_config_from_json(&String::from_utf8_lossy(bytes)) {
                config.validate().unwrap();
            }
        },
    );
    fuzz(
        "clip config.json",
        json_inputs(fixture("tiny_clip/config.json")),
        |bytes| {
            let _ = clip_config_from_json(&String::from_utf8_lossy(bytes));
        },
    );
    let model = VseModelConfig::vse_infinity_bigru_sized(16, 40, 16, 8).to_string();
    fuzz("model.json", json_inputs(model), |bytes| {
        let _ = serde_json::from_slice::<VseModelConfig>(bytes);
    });
}
