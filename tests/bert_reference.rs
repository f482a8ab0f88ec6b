//! Parity of the BERT encoder and its loader with Hugging Face transformers
//! (`scripts/generate_bert_fixture.py`): token features, pooler output and sentence embeddings
//! within 1e-5, for both key layouts of a checkpoint.

#[path = "common/bert.rs"]
mod bert;
mod common;

use bert::*;
use common::{fixture, floats, sizes, values};
use itm::burn::tensor::Device;
use itm::data::SubwordTokenizer;
use itm::train::{PretrainedError, load_bert};

const TOLERANCE: f32 = 1e-5;

fn fixture_ids() -> (Vec<i64>, Vec<usize>, usize) {
    let f = fixture("bert");
    let ids: Vec<i64> = f["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    (
        ids,
        sizes(&f["lengths"]),
        f["width"].as_u64().unwrap() as usize,
    )
}

#[test]
fn tiny_bert_matches_transformers() {
    let f = fixture("bert");
    let device = Device::default();
    let (model, config) = load_bert(&fixture_dir("tiny_bert"), &device).unwrap();
    assert_eq!(config.hidden_size, 32);
    assert_eq!(config.intermediate_size, 37);
    assert_eq!(config.num_hidden_layers, 2);
    assert!(config.add_pooling_layer && model.pooler.is_some());

    let (ids, lengths, width) = fixture_ids();
    let ids = bert::ids(&ids, lengths.len(), width, &device);
    let features = model.forward(ids.clone(), &lengths);
    assert_eq!(features.dims(), [lengths.len(), width, 32]);
    // Every position, padding included: HF masks padded keys only, as we do.
    assert_within(
        &values(features.clone()),
        &floats(&f["features"]),
        TOLERANCE,
        "token features",
    );
    let pooled = model.pooled(features).expect("the fixture has a pooler");
    assert_within(
        &values(pooled),
        &floats(&f["pooled"]),
        TOLERANCE,
        "pooler output",
    );
    assert_within(
        &values(model.sentence_embeddings(ids, &lengths)),
        &floats(&f["sentence_embeddings"]),
        TOLERANCE,
        "sentence embeddings",
    );
}

/// `bert.` prefix, `LayerNorm.gamma`/`beta`, a `cls.` head and no pooler: same features.
#[test]
fn legacy_key_layout_loads_the_same_weights() {
    let f = fixture("bert");
    let device = Device::default();
    let (model, config) = load_bert(&fixture_dir("tiny_bert_legacy"), &device).unwrap();
    assert!(!config.add_pooling_layer && model.pooler.is_none());
    let (ids, lengths, width) = fixture_ids();
    let ids = bert::ids(&ids, lengths.len(), width, &device);
    assert_within(
        &values(model.forward(ids.clone(), &lengths)),
        &floats(&f["features"]),
        TOLERANCE,
        "token features (legacy layout)",
    );
    assert_within(
        &values(model.sentence_embeddings(ids, &lengths)),
        &floats(&f["sentence_embeddings"]),
        TOLERANCE,
        "sentence embeddings (legacy layout)",
    );
}

/// The folder's tokenizer.json gives the ids of the Python tokenizer, and the embeddings match.
#[test]
fn captions_through_the_tokenizer_match() {
    let f = fixture("bert");
    let device = Device::default();
    let folder = fixture_dir("tiny_bert");
    let (model, config) = load_bert(&folder, &device).unwrap();
    let tokenizer = SubwordTokenizer::from_file(
        &folder.join("tokenizer.json"),
        config.max_position_embeddings,
    )
    .unwrap();
    let captions: Vec<&str> = f["captions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let batch = tokenizer.encode_batch(&captions).unwrap();
    assert_eq!(batch.truncated, 0);
    for (row, expected) in f["caption_ids"].as_array().unwrap().iter().enumerate() {
        let expected: Vec<i64> = expected
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let start = row * batch.max_len;
        assert_eq!(
            &batch.ids[start..start + batch.lengths[row]],
            expected.as_slice(),
            "{}",
            captions[row]
        );
    }
    let embeddings = model.sentence_embeddings(batch_ids(&batch, &device), &batch.lengths);
    assert_within(
        &values(embeddings),
        &floats(&f["caption_embeddings"]),
        TOLERANCE,
        "caption embeddings",
    );
}

fn edit_config(folder: &std::path::Path, from: &str, to: &str) {
    let path = folder.join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from}");
    std::fs::write(&path, text.replace(from, to)).unwrap();
}

fn mismatch(folder: &std::path::Path) -> (Vec<String>, Vec<String>, Vec<String>, String) {
    let err = load_bert(folder, &Device::default()).unwrap_err();
    let message = err.to_string();
    eprintln!("{message}");
    assert!(message.contains("model.safetensors"), "{message}");
    match err {
        PretrainedError::Mismatch {
            missing,
            unexpected,
            mismatched,
            ..
        } => (missing, unexpected, mismatched, message),
        other => panic!("not a mismatch: {other}"),
    }
}

#[test]
fn weights_that_do_not_fit_the_config_are_listed() {
    let folder = copy_folder(&fixture_dir("tiny_bert"), "narrow");
    edit_config(
        &folder,
        "\"intermediate_size\": 37",
        "\"intermediate_size\": 36",
    );
    let (missing, unexpected, mismatched, message) = mismatch(&folder);
    assert!(missing.is_empty() && unexpected.is_empty(), "{message}");
    // intermediate.dense weight and bias, output.dense weight, in both layers.
    assert_eq!(mismatched.len(), 6, "{message}");
    assert!(
        message.contains("encoder.layer.0.intermediate.dense.weight")
            && message.contains("[32, 36]")
            && message.contains("[32, 37]"),
        "{message}"
    );

    edit_config(
        &folder,
        "\"intermediate_size\": 36",
        "\"intermediate_size\": 37",
    );
    edit_config(
        &folder,
        "\"num_hidden_layers\": 2",
        "\"num_hidden_layers\": 3",
    );
    let (missing, unexpected, mismatched, message) = mismatch(&folder);
    assert!(unexpected.is_empty() && mismatched.is_empty(), "{message}");
    assert_eq!(missing.len(), 16, "{message}");
    assert!(
        missing.iter().all(|m| m.starts_with("encoder.layers.2.")),
        "{message}"
    );

    edit_config(
        &folder,
        "\"num_hidden_layers\": 3",
        "\"num_hidden_layers\": 1",
    );
    let (missing, unexpected, mismatched, message) = mismatch(&folder);
    assert!(missing.is_empty() && mismatched.is_empty(), "{message}");
    assert_eq!(unexpected.len(), 16, "{message}");
    assert!(
        unexpected.iter().all(|u| u.starts_with("encoder.layer.1.")),
        "{message}"
    );

    std::fs::remove_file(folder.join("config.json")).unwrap();
    let err = load_bert(&folder, &Device::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("config.json"), "{err}");
    std::fs::write(folder.join("config.json"), "{\"hidden_size\": 4}").unwrap();
    let err = load_bert(&folder, &Device::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("vocab_size"),
        "{err}"
    );
    std::fs::remove_dir_all(&folder).unwrap();
}
