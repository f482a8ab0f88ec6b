//! `itm encode-text --model DIR --input captions.txt --output emb.npy`.

use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};
use itm_data::SubwordTokenizer;
use itm_data::npy::write_f32;
use itm_train::{Progress, load_bert, sentence_max_length};

/// Reads one caption per line; an empty or non-UTF-8 line is an error naming the file and line.
/// A final newline does not make an empty last caption; `\r\n` line ends are accepted.
pub fn read_captions(path: &Path) -> Result<Vec<String>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    if body.is_empty() {
        return Err(format!("{}: no captions", path.display()));
    }
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(index, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let text = std::str::from_utf8(line)
                .map_err(|e| format!("{}:{}: not valid UTF-8 ({e})", path.display(), index + 1))?;
            if text.trim().is_empty() {
                return Err(format!("{}:{}: empty caption", path.display(), index + 1));
            }
            Ok(text.to_string())
        })
        .collect()
}

/// Encodes every caption of `input` with the BERT-family model in `model` and writes the
/// mean-pooled, l2-normalised embeddings `[n, hidden]` (float32, input order) to `output`.
pub fn run(model: &Path, input: &Path, output: &Path, batch_size: usize) -> Result<(), String> {
    if batch_size == 0 {
        return Err("--batch-size must be at least 1".to_string());
    }
    let captions = read_captions(input)?;
    let device = Device::default();
    let (bert, config) = load_bert(model, &device).map_err(|e| e.to_string())?;
    let max_len = sentence_max_length(model, &config).map_err(|e| e.to_string())?;
    let tokenizer = SubwordTokenizer::from_file(&model.join("tokenizer.json"), max_len)
        .map_err(|e| e.to_string())?;
    let hidden = config.hidden_size;

    // Longest first, so that each batch holds captions of similar length (less padding);
    // mean pooling ignores padding, and the rows are put back in input order.
    let mut order: Vec<usize> = (0..captions.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(captions[i].len()));

    let mut embeddings = vec![0.0f32; captions.len() * hidden];
    let mut truncated = 0;
    let mut progress = Progress::new("encode-text", captions.len().div_ceil(batch_size), false);
    for chunk in order.chunks(batch_size) {
        let texts: Vec<&str> = chunk.iter().map(|&i| captions[i].as_str()).collect();
        let batch = tokenizer.encode_batch(&texts).map_err(|e| e.to_string())?;
        truncated += batch.truncated;
        let ids = Tensor::<2, Int>::from_data(
            TensorData::new(batch.ids, [chunk.len(), batch.max_len]),
            &device,
        );
        let values = bert
            .sentence_embeddings(ids, &batch.lengths)
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| format!("cannot read the embeddings back: {e:?}"))?;
        for (row, &index) in chunk.iter().enumerate() {
            embeddings[index * hidden..(index + 1) * hidden]
                .copy_from_slice(&values[row * hidden..(row + 1) * hidden]);
        }
        progress.step(|| format!("(padded to {} tokens)", batch.max_len));
    }
    progress.finish();

    if let Some(position) = embeddings.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "{}:{}: the embedding of this caption is not finite",
            input.display(),
            position / hidden + 1
        ));
    }
    write_f32(output, &[captions.len(), hidden], &embeddings).map_err(|e| e.to_string())?;
    println!(
        "encoded {} captions into {} [{}, {hidden}]",
        captions.len(),
        output.display(),
        captions.len()
    );
    println!("{truncated} caption(s) truncated to {max_len} tokens");
    Ok(())
}
