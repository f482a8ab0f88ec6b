//! Indexes of the other sources: a Karpathy JSON with image files under a pixel model (queries by
//! file equal queries by id; the contact sheet shows the decoded files), and a precomp folder
//! (ids from its ids file; no pictures for a sheet). The models are untrained: these tests are
//! about plumbing, not quality.

use std::path::Path;

use burn::tensor::Device;
use image::imageops::FilterType;
use itm_core::VseModelConfig;
use itm_data::images::decode;
use itm_data::shapes::ShapesDataset;
use itm_data::{CaptionTokenizer, Vocabulary, precomp};
use itm_serve::index::Index;
use itm_serve::{BORDER, CELL, frame_origin, sheet_size};
use itm_test_support::{Binary, TempDir, itm_binary, shapes, succeeded};
use itm_train::Checkpoint;

const ITM: Binary = itm_binary!();

fn data() -> ShapesDataset {
    shapes(4, [0, 0, 12], 24, 6)
}

fn save(config: &VseModelConfig, vocab: Vocabulary, folder: &Path) {
    Checkpoint::new(folder)
        .save(
            &config.init(&Device::flex()),
            config,
            &CaptionTokenizer::from(vocab),
        )
        .unwrap();
}

fn results(text: &str) -> Vec<(u64, f64)> {
    let value: serde_json::Value = serde_json::from_str(text).unwrap();
    value["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["caption"].as_u64().unwrap(), r["score"].as_f64().unwrap()))
        .collect()
}

#[test]
fn karpathy_images_under_a_pixel_model() {
    let work = TempDir::new("index-karpathy");
    let data = data();
    let json = data.write_karpathy(&work.join("shapes")).unwrap();
    let root = work.join("shapes").join("images");
    let vocab = Vocabulary::build(data.test.retrieval.captions.iter().map(String::as_str), 1);
    let checkpoint = work.join("resnet");
    save(
        &VseModelConfig::resnet_bigru(vec![8, 16], vocab.len(), 16, 8),
        vocab,
        &checkpoint,
    );
    let index_dir = work.join("index");
    succeeded(ITM.run(&[
        "index",
        "build",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--data",
        json.to_str().unwrap(),
        "--images",
        root.to_str().unwrap(),
        "--pixel-size",
        "32",
        "--output",
        index_dir.to_str().unwrap(),
        "--quiet",
    ]));
    let index = Index::open(&index_dir).unwrap();
    let items = index.items();
    assert_eq!(items.images.len(), 12);
    assert_eq!(items.images[3].file.as_deref(), Some("test/3.png"));

    // A query by file is encoded like the stored row of that image.
    let id = items.images[3].id.clone();
    let file = root.join("test").join("3.png");
    let search = |image: &str| {
        results(&succeeded(ITM.run(&[
            "search",
            "--index",
            index_dir.to_str().unwrap(),
            "--image",
            image,
            "--top",
            "60",
            "--json",
        ])))
    };
    let (by_id, by_file) = (search(&id), search(file.to_str().unwrap()));
    assert_eq!(by_id.len(), 60, "every caption, ranked");
    for ((a, sa), (b, sb)) in by_id.iter().zip(&by_file) {
        assert!((sa - sb).abs() < 1e-5, "scores {sa} and {sb}");
        if a != b {
            let tie = by_id.iter().find(|(c, _)| c == b).unwrap().1;
            assert!((tie - sa).abs() < 1e-5, "caption {b} out of place");
        }
    }

    // `--data shapes` renders the same split for a pixel model: the same embeddings.
    let rendered = work.join("rendered");
    succeeded(ITM.run(&[
        "index",
        "build",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--data",
        "shapes",
        "--shapes-seed",
        "4",
        "--shapes-images",
        "12",
        "--pixel-size",
        "32",
        "--output",
        rendered.to_str().unwrap(),
        "--quiet",
    ]));
    let rendered = Index::open(&rendered).unwrap();
    for row in 0..12 {
        assert_eq!(
            rendered.images().row(row).unwrap(),
            index.images().row(row).unwrap()
        );
    }
    assert!(
        !rendered.folder().join(".pixels").exists(),
        "the rendered files are not kept"
    );

    // The sheet shows the decoded files.
    let png = work.join("sheet.png");
    succeeded(ITM.run(&[
        "sheet",
        "--index",
        index_dir.to_str().unwrap(),
        "--output",
        png.to_str().unwrap(),
        "--caption",
        "15",
        "--top",
        "3",
    ]));
    let sheet = image::open(&png).unwrap().to_rgb8();
    assert_eq!(sheet.dimensions(), sheet_size(1, 3));
    let own = image::imageops::resize(
        &decode(&root.join("test").join("3.png")).unwrap(),
        CELL,
        CELL,
        FilterType::Triangle,
    );
    let (x, y) = frame_origin(0, 0);
    for (px, py) in [(10, 10), (48, 48), (90, 30)] {
        assert_eq!(
            sheet.get_pixel(x + BORDER + px, y + BORDER + py),
            own.get_pixel(px, py),
            "caption 15 describes image 3"
        );
    }
}

#[test]
fn precomp_folder_under_a_region_model() {
    let work = TempDir::new("index-precomp");
    let data = data();
    let ids: Vec<u64> = (0..12).map(|i| 1000 + i).collect();
    precomp::write_split(&work.join("precomp"), "test", &data.test.retrieval, &ids).unwrap();
    let vocab = Vocabulary::build(data.test.retrieval.captions.iter().map(String::as_str), 1);
    let checkpoint = work.join("regions");
    save(
        &VseModelConfig::vse_infinity_bigru_sized(24, vocab.len(), 16, 8),
        vocab.clone(),
        &checkpoint,
    );
    let index_dir = work.join("index");
    let build = |model: &Path| {
        ITM.run(&[
            "index",
            "build",
            "--checkpoint",
            model.to_str().unwrap(),
            "--data",
            work.join("precomp").to_str().unwrap(),
            "--output",
            index_dir.to_str().unwrap(),
            "--quiet",
        ])
    };
    succeeded(build(&checkpoint));
    let index = Index::open(&index_dir).unwrap();
    assert_eq!(index.items().images[5].id, "1005");
    assert_eq!(index.items().captions.len(), 60);
    let out = succeeded(ITM.run(&[
        "search",
        "--index",
        index_dir.to_str().unwrap(),
        "--image",
        "1005",
    ]));
    assert_eq!(out.lines().count(), 7, "{out}");
    assert!(out.starts_with("exact search over 60 captions\n"), "{out}");
    let sheet = ITM.run(&[
        "sheet",
        "--index",
        index_dir.to_str().unwrap(),
        "--output",
        work.join("sheet.png").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&sheet.stderr);
    assert!(
        !sheet.status.success() && err.contains("no pictures"),
        "{err}"
    );
    assert!(!work.join("sheet.png").exists());
    // A pixel model cannot index region features.
    let pixels = work.join("pixels");
    save(
        &VseModelConfig::resnet_bigru(vec![8], vocab.len(), 16, 8),
        vocab,
        &pixels,
    );
    let refused = build(&pixels);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("reads pixels"),
        "{err}"
    );
}
