//! Parity of the CLIP dual encoder, its loader and its tokenizer with Hugging Face transformers
//! (`scripts/generate_clip_fixture.py`, a tiny randomly initialised `CLIPModel`): token ids
//! exactly, image and text embeddings, the logit scale and `logits_per_image` within 1e-5; the
//! zoo's `clip` entry started from the same folder embeds as transformers does and trains.

use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData, Tolerance};
use itm_core::encoders::ImageInput;
use itm_core::encoders::clip::{CLIP_PIXEL_MEAN, CLIP_PIXEL_STD};
use itm_data::TokenBatch;
use itm_test_support::{
    Mismatch, TempDir, assert_close, assert_error_names, assert_mismatch, batch_ids, edit_config,
    floats, ids, integers, read_json, sizes, train_fixtures, values,
};
use itm_train::{DataSection, RunConfig, RunOverrides, Trainer, clip_tokenizer, load_clip};
use serde_json::Value;

const TOLERANCE: f32 = 1e-5;

/// [`assert_close`] within `tolerance`, absolute.
fn assert_within(actual: &[f32], expected: &[f32], tolerance: f32, what: &str) {
    assert_close(actual, expected, Tolerance::absolute(tolerance), what);
}

/// The tiny CLIP folder of `scripts/generate_clip_fixture.py`.
fn folder() -> PathBuf {
    train_fixtures().path("tiny_clip")
}

/// Its transformers reference values.
fn reference() -> Value {
    read_json(&folder().join("reference.json"))
}

fn id_rows(value: &Value) -> Vec<Vec<i64>> {
    value.as_array().unwrap().iter().map(integers).collect()
}

/// The fixture's pixels (in `[0, 1]`) normalised with the CLIP constants, `[2, 3, 32, 32]`.
fn normalised_pixels(f: &Value, device: &Device) -> Tensor<4> {
    let mut pixels = floats(&f["pixels"]);
    let plane = 32 * 32;
    for (i, value) in pixels.iter_mut().enumerate() {
        let channel = (i / plane) % 3;
        *value = (*value - CLIP_PIXEL_MEAN[channel]) / CLIP_PIXEL_STD[channel];
    }
    Tensor::from_data(TensorData::new(pixels, [2, 3, 32, 32]), device)
}

#[test]
fn pixel_constants_are_transformers_openai_clip_ones() {
    let f = reference();
    assert_within(&CLIP_PIXEL_MEAN, &floats(&f["pixel_mean"]), 0.0, "mean");
    assert_within(&CLIP_PIXEL_STD, &floats(&f["pixel_std"]), 0.0, "std");
}

#[test]
fn tiny_clip_matches_transformers() {
    let f = reference();
    let device = Device::default();
    let (model, config) = load_clip(&folder(), &device).unwrap();
    assert_eq!(config.text.hidden_size, 32);
    assert_eq!(config.vision.hidden_size, 48);
    assert_eq!(config.projection_dim, 24);
    assert_eq!(model.embed_dim(), 24);

    let images = model.encode_images(normalised_pixels(&f, &device));
    assert_eq!(images.dims(), [2, 24]);
    assert_within(
        &values(images.clone()),
        &floats(&f["image_embeds"]),
        TOLERANCE,
        "image embeddings",
    );

    let rows = id_rows(&f["ids"]);
    let lengths = sizes(&f["lengths"]);
    let width = rows[0].len();
    let flat: Vec<i64> = rows.concat();
    let ids = ids(&flat, rows.len(), width, &device);
    // Every position, padding included: transformers masks padded keys as well.
    assert_within(
        &values(model.text_model.forward(ids.clone(), &lengths)),
        &floats(&f["text_last_hidden"]),
        TOLERANCE,
        "text token features",
    );
    let texts = model.encode_texts(ids, &lengths);
    assert_eq!(texts.dims(), [3, 24]);
    assert_within(
        &values(texts.clone()),
        &floats(&f["text_embeds"]),
        TOLERANCE,
        "text embeddings",
    );

    let scale = model.logit_scale().into_scalar::<f32>();
    let expected = f["logit_scale"].as_f64().unwrap() as f32;
    assert!(
        (scale - expected).abs() <= 1e-5 * expected,
        "{scale} vs {expected}"
    );
    // Logits are ~20× the cosines: the same relative tolerance.
    assert_within(
        &values(model.logits_per_image(images, texts)),
        &floats(&f["logits_per_image"]),
        TOLERANCE * expected,
        "logits_per_image",
    );
}

/// The folder's tokenizer.json gives transformers' ids (truncation keeps the end-of-text token),
/// and texts padded with another id than transformers' embed the same.
#[test]
fn tokenizer_gives_transformers_ids_and_embeddings() {
    let f = reference();
    let device = Device::default();
    let (model, config) = load_clip(&folder(), &device).unwrap();
    let tokenizer = clip_tokenizer(&folder(), &config).unwrap();
    let captions: Vec<&str> = f["captions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let batch = tokenizer.encode_batch(&captions).unwrap();
    let expected = id_rows(&f["ids"]);
    assert_eq!(batch.lengths, sizes(&f["lengths"]));
    assert_eq!(batch.truncated, 0);
    for (row, &len) in batch.lengths.iter().enumerate() {
        let start = row * batch.max_len;
        assert_eq!(
            &batch.ids[start..start + len],
            &expected[row][..len],
            "{}",
            captions[row]
        );
    }
    // Our padding id (tokenizer.json names none: 0) is not transformers' (`<|endoftext|>`).
    let pad_id = f["pad_id"].as_i64().unwrap();
    let padding: Vec<i64> = batch
        .lengths
        .iter()
        .enumerate()
        .flat_map(|(row, &len)| {
            batch.ids[row * batch.max_len + len..(row + 1) * batch.max_len].to_vec()
        })
        .collect();
    assert!(
        !padding.is_empty() && padding.iter().all(|&id| id != pad_id),
        "{padding:?}"
    );
    assert_within(
        &values(model.encode_texts(batch_ids(&batch, &device), &batch.lengths)),
        &floats(&f["text_embeds"]),
        TOLERANCE,
        "text embeddings from our tokenizer",
    );

    let long = f["long_caption"].as_str().unwrap();
    let cut = tokenizer.encode_batch(&[long]).unwrap();
    assert_eq!(cut.truncated, 1);
    let long_ids = integers(&f["long_ids"]);
    assert_eq!(cut.ids, long_ids);
    assert_eq!(*cut.ids.last().unwrap(), f["eos_id"].as_i64().unwrap());
    assert_within(
        &values(model.encode_texts(batch_ids(&cut, &device), &cut.lengths)),
        &floats(&f["long_embedding"]),
        TOLERANCE,
        "truncated caption embedding",
    );
}

/// With the pre-#24773 convention (`eos_token_id = 2`) the text is read at its largest id,
/// which is the end-of-text token of CLIP vocabularies: the same embeddings.
#[test]
fn legacy_end_of_text_convention_gives_the_same_embeddings() {
    let f = reference();
    let device = Device::default();
    let copy = TempDir::copy_of("clip-legacy", &folder());
    edit_config(&copy, "\"eos_token_id\": 640", "\"eos_token_id\": 2");
    let (model, config) = load_clip(&copy, &device).unwrap();
    assert_eq!(config.text.eos_token_id, 2);
    let rows = id_rows(&f["ids"]);
    let ids = ids(&rows.concat(), rows.len(), rows[0].len(), &device);
    assert_within(
        &values(model.encode_texts(ids, &sizes(&f["lengths"]))),
        &floats(&f["text_embeds"]),
        TOLERANCE,
        "text embeddings (legacy end-of-text)",
    );
}

#[test]
fn checkpoints_that_do_not_fit_are_explained() {
    let copy = TempDir::copy_of("clip-mismatch", &folder());
    // A wider feed-forward in the vision tower: fc1 weight and bias, fc2 weight, per layer.
    edit_config(
        &copy,
        "\"intermediate_size\": 60",
        "\"intermediate_size\": 64",
    );
    let Mismatch {
        missing,
        unexpected,
        mismatched,
        message,
    } = assert_mismatch(load_clip(&copy, &Device::default()));
    assert!(missing.is_empty() && unexpected.is_empty(), "{message}");
    assert_eq!(mismatched.len(), 6, "{message}");
    assert!(
        message.contains("vision_model.encoder.layers.0.mlp.fc1.weight")
            && message.contains("[48, 64]")
            && message.contains("[48, 60]"),
        "{message}"
    );
    edit_config(
        &copy,
        "\"intermediate_size\": 64",
        "\"intermediate_size\": 60",
    );

    // A third text layer: its 16 parameters are missing, named as in the model.
    edit_config(
        &copy,
        "\"num_hidden_layers\": 2,\n    \"pad_token_id\"",
        "\"num_hidden_layers\": 3,\n    \"pad_token_id\"",
    );
    let Mismatch {
        missing,
        unexpected,
        mismatched,
        message,
    } = assert_mismatch(load_clip(&copy, &Device::default()));
    assert!(unexpected.is_empty() && mismatched.is_empty(), "{message}");
    assert_eq!(missing.len(), 16, "{message}");
    assert!(
        missing
            .iter()
            .all(|m| m.starts_with("text_model.encoder.layers.2.")),
        "{message}"
    );
    assert!(
        missing.contains(&"text_model.encoder.layers.2.self_attn.query.weight".to_string()),
        "{message}"
    );
    edit_config(
        &copy,
        "\"num_hidden_layers\": 3,\n    \"pad_token_id\"",
        "\"num_hidden_layers\": 2,\n    \"pad_token_id\"",
    );

    // One text layer: the file's second layer is unexpected, named as in the file.
    edit_config(
        &copy,
        "\"num_hidden_layers\": 2,\n    \"pad_token_id\"",
        "\"num_hidden_layers\": 1,\n    \"pad_token_id\"",
    );
    let Mismatch {
        missing,
        unexpected,
        mismatched,
        message,
    } = assert_mismatch(load_clip(&copy, &Device::default()));
    assert!(missing.is_empty() && mismatched.is_empty(), "{message}");
    assert_eq!(unexpected.len(), 16, "{message}");
    assert!(
        unexpected.contains(&"text_model.encoder.layers.1.self_attn.q_proj.weight".to_string()),
        "{message}"
    );

    std::fs::write(copy.join("model.safetensors"), b"not safetensors").unwrap();
    assert_error_names(
        load_clip(&copy, &Device::default()),
        &["model.safetensors", "SafeTensors"],
    );
    std::fs::remove_file(copy.join("model.safetensors")).unwrap();
    assert_error_names(load_clip(&copy, &Device::default()), &["model.safetensors"]);

    std::fs::write(copy.join("config.json"), "{\"model_type\": \"clip\"}").unwrap();
    assert_error_names(
        load_clip(&copy, &Device::default()),
        &["config.json", "text_config is missing"],
    );
    std::fs::remove_file(copy.join("config.json")).unwrap();
    assert_error_names(load_clip(&copy, &Device::default()), &["config.json"]);
}

/// `itm train --model clip --clip tests/fixtures/tiny_clip` in the library: the run takes the
/// folder's sizes, its model embeds images and captions (through the run's tokenizer) as
/// transformers does within 1e-5, InfoNCE starts at the checkpoint's temperature, and an epoch
/// on `shapes` pixels trains it.
#[test]
fn zoo_clip_starts_from_the_folder_and_trains() {
    let f = reference();
    let work = TempDir::new("clip-zoo");
    let output = work.join("run");
    let config = RunConfig::from_overrides(RunOverrides {
        model: Some("clip".into()),
        clip: Some(folder()),
        data: Some(DataSection::Shapes {
            seed: 3,
            train_images: 16,
            dev_images: 4,
            test_images: 4,
            feature_width: 8,
        }),
        epochs: Some(1),
        batch_size: Some(8),
        seed: Some(1),
        output: Some(output.clone()),
        ..RunOverrides::default()
    })
    .unwrap();
    assert_eq!((config.model.embed, config.model.image_size), (24, 32));
    let [train, dev, _] = config.load_data().unwrap();
    let trainer = Trainer::new(config.training.clone(), Device::flex()).with_quiet(true);
    let built = config.build(&train, &trainer.training_device()).unwrap();
    let temperature = built.temperature.expect("the folder's temperature");
    let expected = f["logit_scale"].as_f64().unwrap();
    assert!(
        (temperature - expected).abs() <= 1e-5 * expected,
        "{temperature}"
    );
    let (model, model_config, tokenizer) = (built.model, built.config, built.tokenizer);

    let device = Device::flex();
    let pixels = normalised_pixels(&f, &device);
    let before = model.valid();
    let images = before.encode_images(ImageInput::Pixels(pixels.clone()));
    assert_within(
        &values(images.clone()),
        &floats(&f["image_embeds"]),
        TOLERANCE,
        "zoo clip image embeddings",
    );
    let captions: Vec<String> = f["captions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let encoded = tokenizer.encode_all(&captions).unwrap();
    let rows: Vec<&[i64]> = encoded.iter().map(Vec::as_slice).collect();
    let batch = TokenBatch::pad(&rows);
    assert_within(
        &values(before.encode_captions(batch.to_tensor(&device), &batch.lengths)),
        &floats(&f["text_embeds"]),
        TOLERANCE,
        "zoo clip text embeddings",
    );

    let outcome = trainer
        .with_temperature(Some(temperature))
        .fit_from(model, &model_config, &train, &dev, &tokenizer)
        .unwrap();
    let loss = outcome.history[0].mean_loss;
    assert!(
        loss.is_finite() && outcome.history[0].skipped_steps == 0,
        "{loss}"
    );
    let after = outcome.best_model.encode_images(ImageInput::Pixels(pixels));
    let moved = (after - images).abs().max().into_scalar::<f32>();
    assert!(
        moved > 1e-4,
        "an epoch left the image tower where it was ({moved})"
    );
}
