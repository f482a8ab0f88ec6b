//! Parity of the Swin image tower and its loaders with the reference implementations:
//!
//! - transformers' `SwinModel` (`scripts/generate_swin_fixture.py`): every stage's output of
//!   `tiny_swin` (shifted windows and their mask, a stage as small as its window) and of
//!   `tiny_swin_padded` (pixels, windows and mergings padded) within 1e-5, and the gradients
//!   of a scalar of the outputs with respect to the pixels and two weights;
//! - HAT's own `SwinTransformer` (`scripts/authors/hat_swin.py`): the four stage outputs HAT's
//!   `forward_features` returns (its stage norms included) within 1e-5, loaded from HAT's
//!   names under `vit_model.`.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use itm_core::encoders::SwinModel;
use itm_test_support::{
    Mismatch, TempDir, Within, assert_error_names, assert_mismatch, edit_config, floats, read_json,
    sizes, train_fixtures, values,
};
use itm_train::{
    HAT_SWIN_PREFIX, PretrainedError, load_swin, load_swin_hat, load_swin_hat_safetensors,
    safetensors_state_dict, swin_config_from_hat,
};
use serde_json::Value;

const TOLERANCE: f32 = 1e-5;

fn folder(name: &str) -> PathBuf {
    train_fixtures().path(name)
}

fn pixels(f: &Value, device: &Device) -> Tensor<4> {
    let shape: [usize; 4] = sizes(&f["pixels_shape"]).try_into().unwrap();
    Tensor::from_data(TensorData::new(floats(&f["pixels"]), shape), device)
}

/// Every stage's output against the reference's, shapes first.
fn assert_stages(model: &SwinModel, f: &Value, device: &Device, what: &str) {
    let out = model.forward(pixels(f, device));
    let shapes = f["stage_shapes"].as_array().unwrap();
    assert_eq!(out.stages.len(), shapes.len(), "{what}: stages");
    for (s, (stage, expected)) in out.stages.into_iter().zip(shapes).enumerate() {
        assert_eq!(
            stage.dims().to_vec(),
            sizes(expected),
            "{what}: stage {s} shape"
        );
        Within::Absolute(TOLERANCE).assert(
            &values(stage),
            &floats(&f["stages"][s]),
            &format!("{what}: stage {s}"),
        );
    }
}

#[test]
fn tiny_swin_matches_transformers() {
    let device = Device::default();
    let dir = folder("tiny_swin");
    let (model, config) = load_swin(&dir, &device).unwrap();
    assert_eq!((config.embed_dim, config.window_size), (8, 4));
    assert!(model.stage_norms.is_empty());
    // Stage 0 shifts its windows (the mask is used); the 4×4 last stage is one plain window.
    assert_eq!(model.stages[0].blocks[1].shift, 2);
    assert_eq!(model.stages[2].blocks[1].shift, 0);
    assert_stages(
        &model,
        &read_json(&dir.join("reference.json")),
        &device,
        "tiny_swin",
    );
}

#[test]
fn padded_swin_matches_transformers() {
    let device = Device::default();
    let dir = folder("tiny_swin_padded");
    let (model, _) = load_swin(&dir, &device).unwrap();
    let f = read_json(&dir.join("reference.json"));
    assert_eq!(sizes(&f["pixels_shape"]), [1, 3, 39, 37]);
    assert_stages(&model, &f, &device, "tiny_swin_padded");
}

/// `Σ_s Σ_k out_s[k] · sin(0.37·k + s)` (k the flat index), as the fixture script.
fn scalar(stages: Vec<Tensor<3>>, device: &Device) -> Tensor<1> {
    stages
        .into_iter()
        .enumerate()
        .map(|(s, out)| {
            let n = out.shape().num_elements();
            let weights: Vec<f32> = (0..n)
                .map(|k| (0.37 * k as f64 + s as f64).sin() as f32)
                .collect();
            let weights = Tensor::<1>::from_data(TensorData::new(weights, [n]), device);
            (out.reshape([n]) * weights).sum()
        })
        .reduce(|a, b| a + b)
        .unwrap()
}

#[test]
fn tiny_swin_gradients_match_pytorch() {
    let device = Device::default().autodiff();
    let dir = folder("tiny_swin");
    let f = read_json(&dir.join("reference.json"));
    let (model, _) = load_swin(&dir, &device).unwrap();
    let x = pixels(&f, &device).require_grad();
    let grads = scalar(model.forward(x.clone()).stages, &device).backward();
    let within = Within::ScaledAbsolute(TOLERANCE);
    within.assert(
        &values(x.grad(&grads).unwrap()),
        &floats(&f["grad_pixels"]),
        "d/d pixels",
    );
    let projection = model.embeddings.projection.weight.grad(&grads).unwrap();
    assert_eq!(
        projection.dims().to_vec(),
        sizes(&f["grad_projection_weight_shape"])
    );
    within.assert(
        &values(projection),
        &floats(&f["grad_projection_weight"]),
        "d/d patch projection",
    );
    let table = model.stages[0].blocks[1]
        .attention
        .relative_position_bias_table
        .grad(&grads)
        .unwrap();
    assert_eq!(table.dims().to_vec(), sizes(&f["grad_table_shape"]));
    within.assert(
        &values(table),
        &floats(&f["grad_table"]),
        "d/d relative position table of a shifted block",
    );
}

#[test]
fn swin_folders_that_do_not_fit_are_explained() {
    let copy = TempDir::copy_of("swin-mismatch", &folder("tiny_swin"));
    // A third block in the first stage: its parameters are missing, named as in the model.
    edit_config(&copy, "\"depths\": [\n    2,", "\"depths\": [\n    3,");
    let Mismatch {
        missing,
        unexpected,
        mismatched,
        message,
    } = assert_mismatch(load_swin(&copy, &Device::default()));
    assert!(unexpected.is_empty() && mismatched.is_empty(), "{message}");
    assert!(
        !missing.is_empty() && missing.iter().all(|m| m.starts_with("stages.0.blocks.2.")),
        "{message}"
    );
    // One block: the file's second block is unexpected, named as in the file.
    edit_config(&copy, "\"depths\": [\n    3,", "\"depths\": [\n    1,");
    let Mismatch {
        unexpected,
        message,
        ..
    } = assert_mismatch(load_swin(&copy, &Device::default()));
    assert!(
        unexpected.contains(&"encoder.layers.0.blocks.1.attention.self.query.weight".to_string()),
        "{message}"
    );
    edit_config(&copy, "\"depths\": [\n    1,", "\"depths\": [\n    2,");
    // A larger window: every relative position table is misshapen.
    edit_config(&copy, "\"window_size\": 4", "\"window_size\": 5");
    let Mismatch {
        mismatched,
        message,
        ..
    } = assert_mismatch(load_swin(&copy, &Device::default()));
    assert!(
        mismatched
            .iter()
            .any(|m| m.contains("relative_position_bias_table")),
        "{message}"
    );
    edit_config(&copy, "\"window_size\": 5", "\"window_size\": 4");

    std::fs::write(copy.join("model.safetensors"), b"not safetensors").unwrap();
    assert_error_names(
        load_swin(&copy, &Device::default()),
        &["model.safetensors", "SafeTensors"],
    );
    std::fs::remove_file(copy.join("model.safetensors")).unwrap();
    assert_error_names(load_swin(&copy, &Device::default()), &["model.safetensors"]);
    std::fs::write(copy.join("config.json"), "{\"model_type\": \"swinv2\"}").unwrap();
    assert_error_names(
        load_swin(&copy, &Device::default()),
        &["config.json", "swinv2"],
    );
    std::fs::remove_file(copy.join("config.json")).unwrap();
    assert_error_names(load_swin(&copy, &Device::default()), &["config.json"]);
}

fn hat_file() -> PathBuf {
    folder("authors/hat_swin").join("hat_swin.safetensors")
}

#[test]
fn hat_swin_matches_hats_module() {
    let device = Device::default();
    let f = read_json(&folder("authors/hat_swin").join("reference.json"));
    let path = hat_file();
    let dict = safetensors_state_dict(&path).unwrap();
    let config = swin_config_from_hat(&dict, HAT_SWIN_PREFIX, 64, &path).unwrap();
    assert_eq!(
        config.window_size,
        f["window_size"].as_u64().unwrap() as usize
    );
    assert_eq!(config.depths, sizes(&f["config"]["depths"]));
    assert_eq!(config.num_heads, sizes(&f["config"]["num_heads"]));
    assert_eq!((config.embed_dim, config.patch_size), (8, 4));
    assert_eq!(config.mlp_ratio, 2.0);
    assert!(config.stage_norms && config.qkv_bias);
    let model = load_swin_hat(&config, &dict, HAT_SWIN_PREFIX, &path, &device).unwrap();
    assert_eq!(model.stage_norms.len(), 3);
    assert_stages(&model, &f, &device, "HAT swin");
    // The same through the SafeTensors entry point; HAT's levels are the last three stages.
    let model = load_swin_hat_safetensors(&config, &path, HAT_SWIN_PREFIX, &device).unwrap();
    let levels = model.levels(pixels(&f, &device));
    Within::Absolute(TOLERANCE).assert(&values(levels.low), &floats(&f["stages"][1]), "low");
    Within::Absolute(TOLERANCE).assert(&values(levels.high), &floats(&f["stages"][3]), "high");
}

#[test]
fn hat_state_dicts_that_do_not_fit_are_explained() {
    let device = Device::default();
    let path = hat_file();
    let dict = safetensors_state_dict(&path).unwrap();
    let config = swin_config_from_hat(&dict, HAT_SWIN_PREFIX, 64, &path).unwrap();
    // Another prefix: nothing to load, and the message says which prefix.
    assert_error_names(
        load_swin_hat(&config, &dict, "model.", &path, &device),
        &["hat_swin.safetensors", "\"model.\""],
    );
    assert_error_names(
        swin_config_from_hat(&dict, "model.", 64, &path),
        &["hat_swin.safetensors", "model.patch_embed.proj.weight"],
    );
    // Sizes the file cannot fill are refused before the model is built.
    let mut huge = config.clone();
    huge.embed_dim = 1 << 20;
    assert_error_names(
        load_swin_hat(&huge, &dict, HAT_SWIN_PREFIX, &path, &device),
        &["hat_swin.safetensors", "weights"],
    );
    // Without stage norms the file's norm_0… are unexpected, named as in the file.
    let plain = config.clone().with_stage_norms(false);
    match load_swin_hat(&plain, &dict, HAT_SWIN_PREFIX, &path, &device) {
        Err(PretrainedError::Mismatch {
            unexpected,
            missing,
            ..
        }) => {
            assert!(missing.is_empty(), "{missing:?}");
            assert_eq!(unexpected.len(), 6, "{unexpected:?}");
            assert!(
                unexpected.contains(&"vit_model.norm_0.weight".to_string()),
                "{unexpected:?}"
            );
        }
        other => panic!("a mismatch was expected: {:?}", other.map(|_| ())),
    }
    // A 224-pixel config asks for 7×7 windows: the tables do not fit.
    let mut wrong = config.clone();
    (wrong.image_size, wrong.window_size) = (224, 7);
    match load_swin_hat(&wrong, &dict, HAT_SWIN_PREFIX, &path, &device) {
        Err(PretrainedError::Mismatch { mismatched, .. }) => {
            assert!(
                mismatched
                    .iter()
                    .any(|m| m.contains("attn.relative_position_bias_table")),
                "{mismatched:?}"
            );
        }
        other => panic!("a mismatch was expected: {:?}", other.map(|_| ())),
    }
}
