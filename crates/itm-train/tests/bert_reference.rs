//! Parity of the BERT encoder and its loader with Hugging Face transformers
//! (`scripts/generate_bert_fixture.py`): token features, pooler output, sentence embeddings and
//! the hidden states of chosen layers within 1e-5, for both key layouts of a checkpoint.

use std::path::PathBuf;

use burn::tensor::{Device, Tolerance};
use itm_data::SubwordTokenizer;
use itm_test_support::{
    Mismatch, TempDir, assert_close, assert_error_names, assert_mismatch, batch_ids, edit_config,
    floats, integers, sizes, train_fixtures, values,
};
use itm_train::load_bert;
use serde_json::Value;

const TOLERANCE: f32 = 1e-5;

/// [`assert_close`] within [`TOLERANCE`], absolute.
fn assert_within(actual: &[f32], expected: &[f32], what: &str) {
    assert_close(actual, expected, Tolerance::absolute(TOLERANCE), what);
}

/// `bert.json`, the transformers reference of `scripts/generate_bert_fixture.py`.
fn fixture() -> Value {
    train_fixtures().json("bert")
}

/// A fixture folder (`tiny_bert`, `tiny_bert_legacy`).
fn fixture_dir(name: &str) -> PathBuf {
    train_fixtures().path(name)
}

fn fixture_ids() -> (Vec<i64>, Vec<usize>, usize) {
    let f = fixture();
    let ids = integers(&f["ids"]);
    (
        ids,
        sizes(&f["lengths"]),
        f["width"].as_u64().unwrap() as usize,
    )
}

#[test]
fn tiny_bert_matches_transformers() {
    let f = fixture();
    let device = Device::default();
    let (model, config) = load_bert(&fixture_dir("tiny_bert"), &device).unwrap();
    assert_eq!(config.hidden_size, 32);
    assert_eq!(config.intermediate_size, 37);
    assert_eq!(config.num_hidden_layers, 2);
    assert!(config.add_pooling_layer && model.pooler.is_some());

    let (ids, lengths, width) = fixture_ids();
    let ids = itm_test_support::ids(&ids, lengths.len(), width, &device);
    let features = model.forward(ids.clone(), &lengths);
    assert_eq!(features.dims(), [lengths.len(), width, 32]);
    // Every position, padding included: HF masks padded keys only, as we do.
    assert_within(
        &values(features.clone()),
        &floats(&f["features"]),
        "token features",
    );
    let pooled = model.pooled(features).expect("the fixture has a pooler");
    assert_within(&values(pooled), &floats(&f["pooled"]), "pooler output");
    assert_within(
        &values(model.sentence_embeddings(ids, &lengths)),
        &floats(&f["sentence_embeddings"]),
        "sentence embeddings",
    );
}

/// `forward_layers`: the embeddings' output and the first layer's match transformers'
/// `hidden_states[0]` and `[1]`, and the last layer is the plain forward.
#[test]
fn chosen_layers_match_transformers_hidden_states() {
    let f = fixture();
    let device = Device::default();
    let (model, _) = load_bert(&fixture_dir("tiny_bert"), &device).unwrap();
    let (ids, lengths, width) = fixture_ids();
    let ids = itm_test_support::ids(&ids, lengths.len(), width, &device);
    let states = model.forward_layers(ids.clone(), &lengths, &[1, 0, 2]);
    for (state, layer) in states.iter().zip(["1", "0"]) {
        assert_eq!(state.dims(), [lengths.len(), width, 32]);
        assert_within(
            &values(state.clone()),
            &floats(&f["hidden_states"][layer]),
            &format!("hidden state {layer}"),
        );
    }
    assert_eq!(
        values(states[2].clone()),
        values(model.forward(ids, &lengths)),
        "the last layer is the plain forward"
    );
}

/// `bert.` prefix, `LayerNorm.gamma`/`beta`, a `cls.` head and no pooler: same features.
#[test]
fn legacy_key_layout_loads_the_same_weights() {
    let f = fixture();
    let device = Device::default();
    let (model, config) = load_bert(&fixture_dir("tiny_bert_legacy"), &device).unwrap();
    assert!(!config.add_pooling_layer && model.pooler.is_none());
    let (ids, lengths, width) = fixture_ids();
    let ids = itm_test_support::ids(&ids, lengths.len(), width, &device);
    assert_within(
        &values(model.forward(ids.clone(), &lengths)),
        &floats(&f["features"]),
        "token features (legacy layout)",
    );
    assert_within(
        &values(model.sentence_embeddings(ids, &lengths)),
        &floats(&f["sentence_embeddings"]),
        "sentence embeddings (legacy layout)",
    );
}

/// The folder's tokenizer.json gives the ids of the Python tokenizer, and the embeddings match.
#[test]
fn captions_through_the_tokenizer_match() {
    let f = fixture();
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
        let expected = integers(expected);
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
        "caption embeddings",
    );
}

#[test]
fn weights_that_do_not_fit_the_config_are_listed() {
    let folder = TempDir::copy_of("bert-narrow", &fixture_dir("tiny_bert"));
    edit_config(
        &folder,
        "\"intermediate_size\": 37",
        "\"intermediate_size\": 36",
    );
    let Mismatch {
        missing,
        unexpected,
        mismatched,
        message,
    } = assert_mismatch(load_bert(&folder, &Device::default()));
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
    let Mismatch {
        missing,
        unexpected,
        mismatched,
        message,
    } = assert_mismatch(load_bert(&folder, &Device::default()));
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
    let Mismatch {
        missing,
        unexpected,
        mismatched,
        message,
    } = assert_mismatch(load_bert(&folder, &Device::default()));
    assert!(missing.is_empty() && mismatched.is_empty(), "{message}");
    assert_eq!(unexpected.len(), 16, "{message}");
    assert!(
        unexpected.iter().all(|u| u.starts_with("encoder.layer.1.")),
        "{message}"
    );

    std::fs::remove_file(folder.join("config.json")).unwrap();
    assert_error_names(load_bert(&folder, &Device::default()), &["config.json"]);
    std::fs::write(folder.join("config.json"), "{\"hidden_size\": 4}").unwrap();
    assert_error_names(
        load_bert(&folder, &Device::default()),
        &["config.json", "vocab_size"],
    );
}
