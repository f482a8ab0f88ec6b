//! `itm encode-text` on the tiny BERT fixture (`scripts/generate_bert_fixture.py`): the rows are
//! the transformers reference embeddings, in input order, with unit norms.

use std::path::Path;
use std::process::Output;

use burn::tensor::{Device, Int, Tensor, TensorData};
use itm_data::SubwordTokenizer;
use itm_data::npy::MappedF32;
use itm_test_support::{Binary, TempDir, itm_binary, stderr, train_fixtures};
use itm_train::load_bert;

const ITM: Binary = itm_binary!();

fn reference() -> (Vec<String>, Vec<f32>) {
    let f = train_fixtures().json("bert");
    let captions = f["captions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let embeddings = f["caption_embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    (captions, embeddings)
}

fn run(model: &Path, input: &Path, output: &Path, batch_size: &str) -> Output {
    ITM.run(&[
        "encode-text",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--batch-size",
        batch_size,
    ])
}

#[test]
fn embeddings_follow_the_input_order_and_match_transformers() {
    let dir = TempDir::new("encode-text-order");
    let (captions, expected) = reference();
    let hidden = 32;
    // Reversed, with CRLF line ends and a final newline.
    let order: Vec<usize> = (0..captions.len()).rev().collect();
    let text: String = order
        .iter()
        .map(|&i| format!("{}\r\n", captions[i]))
        .collect();
    let input = dir.join("captions.txt");
    std::fs::write(&input, text).unwrap();
    let output = dir.join("emb.npy");
    let result = run(&train_fixtures().path("tiny_bert"), &input, &output, "2");
    assert!(result.status.success(), "{}", stderr(&result));
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        stdout.contains("0 caption(s) truncated to 40 tokens"),
        "{stdout}"
    );

    let emb = MappedF32::open(&output, 2, "[captions, hidden]").unwrap();
    assert_eq!(emb.shape(), &[captions.len(), hidden]);
    let values = emb.values();
    let mut worst = 0.0f32;
    for (row, &caption) in order.iter().enumerate() {
        let got = &values[row * hidden..(row + 1) * hidden];
        let norm = got.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "row {row}: norm {norm}");
        let want = &expected[caption * hidden..(caption + 1) * hidden];
        for (a, b) in got.iter().zip(want) {
            worst = worst.max((a - b).abs());
        }
    }
    eprintln!("encode-text vs transformers: max abs difference {worst:.3e}");
    assert!(worst <= 1e-5, "max abs difference {worst}");
}

/// `sentence_bert_config.json` sets the truncation; the count is reported and the truncated
/// caption is encoded from its first `max_seq_length` tokens.
#[test]
fn long_captions_are_truncated_and_counted() {
    let dir = TempDir::new("encode-text-truncate");
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    for name in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(
            train_fixtures().path("tiny_bert").join(name),
            model.join(name),
        )
        .unwrap();
    }
    std::fs::write(
        model.join("sentence_bert_config.json"),
        r#"{"max_seq_length": 6, "do_lower_case": false}"#,
    )
    .unwrap();
    let captions = [
        "a red circle",
        "two small blue squares left of a large green triangle",
        "the big star",
    ];
    let input = dir.join("captions.txt");
    std::fs::write(&input, captions.join("\n")).unwrap();
    let output = dir.join("emb.npy");
    let result = run(&model, &input, &output, "8");
    assert!(result.status.success(), "{}", stderr(&result));
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        stdout.contains("1 caption(s) truncated to 6 tokens"),
        "{stdout}"
    );

    let device = Device::default();
    let (bert, _) = load_bert(&model, &device).unwrap();
    let tokenizer = SubwordTokenizer::from_file(&model.join("tokenizer.json"), 6).unwrap();
    let emb = MappedF32::open(&output, 2, "[captions, hidden]").unwrap();
    for (row, caption) in captions.iter().enumerate() {
        let batch = tokenizer.encode_batch(&[caption]).unwrap();
        assert!(batch.max_len <= 6);
        let ids =
            Tensor::<2, Int>::from_data(TensorData::new(batch.ids, [1, batch.max_len]), &device);
        let want = bert
            .sentence_embeddings(ids, &batch.lengths)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let got = &emb.values()[row * 32..(row + 1) * 32];
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "{caption}: {worst}");
    }
}

#[test]
fn bad_input_fails_with_the_file_and_line() {
    let dir = TempDir::new("encode-text-errors");
    let model = train_fixtures().path("tiny_bert");
    let output = dir.join("emb.npy");
    let input = dir.join("captions.txt");

    std::fs::write(&input, "a red circle\n\nthe big star\n").unwrap();
    let result = run(&model, &input, &output, "4");
    assert!(!result.status.success());
    let message = stderr(&result);
    assert!(
        message.contains("captions.txt:2") && message.contains("empty caption"),
        "{message}"
    );

    std::fs::write(&input, b"a red circle\nthe big star\nbad \xff byte\n").unwrap();
    let result = run(&model, &input, &output, "4");
    assert!(!result.status.success());
    let message = stderr(&result);
    assert!(
        message.contains("captions.txt:3") && message.contains("UTF-8"),
        "{message}"
    );

    std::fs::write(&input, "a red circle\n").unwrap();
    let result = run(&model, &input, &output, "0");
    assert!(!result.status.success());
    assert!(
        stderr(&result).contains("--batch-size"),
        "{}",
        stderr(&result)
    );

    let result = run(&dir.join("no-model"), &input, &output, "4");
    assert!(!result.status.success());
    assert!(
        stderr(&result).contains("config.json"),
        "{}",
        stderr(&result)
    );

    assert!(!output.exists(), "nothing is written on failure");
}
