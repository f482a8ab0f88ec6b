//! `itm index build`, `itm search` and `itm sheet` on a small model trained here on `shapes`:
//! the index holds the library's embeddings, exact search equals a full sort of the cosine
//! matrix, text search finds the described image, altered index folders are refused with the
//! file's name, and the contact sheet frames the ground truth where the JSON says it is. Built
//! with `--approximate`, the index carries HNSW graphs whose recall the build reports and
//! records, and `itm search` uses them (or not, with `--exact`) and says so. A fine-grained
//! model's index is searched in two stages, equal to the head's exhaustive ranking when the
//! first stage keeps every item.

use std::path::Path;
use std::process::Output;

use burn::tensor::Device;
use itm_core::VseModelConfig;
use itm_core::loss::NegativeMining;
use itm_core::models::SimilarityConfig;
use itm_core::similarity::top_k_of_row;
use itm_core::similarity::{COSINE_CHAN, ScanConfig};
use itm_data::shapes::{RegionFeatureConfig, ShapesConfig, ShapesDataset};
use itm_data::{CaptionTokenizer, Vocabulary};
use itm_serve::index::{
    CAPTION_GRAPH, CAPTION_SETS, Collection, Hit, IMAGE_GRAPH, IMAGE_SETS, Index, SET_LENGTHS,
};
use itm_serve::sheet::{
    Band, MARK, caption_band, caption_line, image_query_label, image_query_origin,
    image_sheet_size, score_band,
};
use itm_serve::{MATCH_COLOUR, OTHER_COLOUR, QUERY_COLOUR, frame_origin, sheet_size};
use itm_test_support::{Binary, TempDir, copy_tree, failed, itm_binary, succeeded};
use itm_train::{Checkpoint, Trainer, TrainingConfig, cosine_scores, encode_split, score_split};

const SEED: u64 = 11;
const TEST_IMAGES: usize = 100;

const ITM: Binary = itm_binary!();

fn shapes() -> ShapesConfig {
    ShapesConfig {
        seed: SEED,
        train_images: 600,
        dev_images: 50,
        test_images: TEST_IMAGES,
        regions: RegionFeatureConfig {
            d_feature: 64,
            n_regions: 8,
            noise: 1.0,
        },
    }
}

/// Trains a small BiGRU + GPO model for 2 epochs and leaves its checkpoint in `output`.
fn train(output: &Path, data: &ShapesDataset) {
    let vocab = Vocabulary::build(data.train.retrieval.captions.iter().map(String::as_str), 1);
    let model = VseModelConfig::vse_infinity_bigru_sized(64, vocab.len(), 64, 32);
    let training = TrainingConfig {
        epochs: 2,
        batch_size: 32,
        learning_rate: 2e-3,
        lr_decay_epoch: 1,
        mining: NegativeMining::All,
        seed: 3,
        ..TrainingConfig::default()
    };
    Trainer::new(training, Device::flex())
        .with_output(output)
        .with_quiet(true)
        .fit(
            &model,
            &data.train.retrieval,
            &data.dev.retrieval,
            &CaptionTokenizer::from(vocab),
        )
        .expect("training runs");
}

fn build(checkpoint: &Path, output: &Path, extra: &[&str]) -> Output {
    let (seed, images) = (SEED.to_string(), TEST_IMAGES.to_string());
    let mut args = vec![
        "index",
        "build",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--data",
        "shapes",
        "--shapes-seed",
        &seed,
        "--shapes-images",
        &images,
        "--shapes-regions",
        "8",
        "--output",
        output.to_str().unwrap(),
        "--quiet",
    ];
    args.extend(extra);
    ITM.run(&args)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn index_search_and_sheet() {
    let work = TempDir::new("index-main");
    let checkpoint = work.join("checkpoint");
    let data = ShapesDataset::generate(&shapes());
    train(&checkpoint, &data);
    let index_dir = work.join("index");
    let stdout = succeeded(build(&checkpoint, &index_dir, &[]));
    assert!(
        stdout.contains("indexed 100 images and 500 captions"),
        "{stdout}"
    );

    // The index holds the library's embeddings of the same split.
    let index = Index::open(&index_dir).expect("the index opens");
    let device = Device::flex();
    let (model, _, tokenizer) = Checkpoint::new(&checkpoint).load(&device).unwrap();
    let test = &data.test.retrieval;
    let embeddings = encode_split(&model, test, &tokenizer, &device, 64, true).unwrap();
    let dim = embeddings.dim;
    assert_eq!(index.manifest().dim, dim);
    for (matrix, expected) in [
        (index.images(), &embeddings.images),
        (index.captions(), &embeddings.captions),
    ] {
        for row in [0, 7, matrix.rows() - 1] {
            let stored = matrix.row(row).unwrap();
            let worst = stored
                .iter()
                .zip(&expected[row * dim..(row + 1) * dim])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "row {row} differs by {worst}");
        }
    }
    assert_eq!(index.items().captions[12].text, test.captions[12]);

    // Exact search equals a full argsort of the cosine matrix (computed by BlockedCosine).
    let scores = cosine_scores(&embeddings, &device);
    let n_cap = test.captions.len();
    let queries: Vec<f32> = (0..n_cap)
        .flat_map(|j| index.captions().row(j).unwrap())
        .collect();
    let found = index.images().top_k(&queries, TEST_IMAGES).unwrap();
    let mut worst_score = 0.0f32;
    for (j, hits) in found.iter().enumerate() {
        let mut order: Vec<Hit> = (0..TEST_IMAGES)
            .map(|i| Hit {
                index: i,
                score: scores[i * n_cap + j],
            })
            .collect();
        order.sort_by(Hit::rank_order);
        assert_eq!(hits.len(), TEST_IMAGES);
        for (hit, expected) in hits.iter().zip(&order) {
            worst_score = worst_score.max((hit.score - expected.score).abs());
            if hit.index != expected.index {
                // Only a tie within float rounding may swap two images.
                let other = scores[hit.index * n_cap + j];
                assert!(
                    (other - expected.score).abs() < 1e-5,
                    "caption {j}: image {} ({other}) ranked where {} ({}) belongs",
                    hit.index,
                    expected.index,
                    expected.score
                );
            }
        }
    }
    assert!(worst_score < 1e-5, "scores differ by {worst_score}");

    // Text → image through the binary: the described image is in the top 5 for most captions
    // (at least 40%; a random ranking of 100 images gives 5%).
    let mut in_top5 = 0;
    let asked = 40;
    for j in (0..n_cap).step_by(n_cap / asked) {
        let out = json(&succeeded(ITM.run(&[
            "search",
            "--index",
            index_dir.to_str().unwrap(),
            &test.captions[j],
            "--top",
            "5",
            "--json",
        ])));
        let results = out["results"].as_array().unwrap();
        assert_eq!(results.len(), 5);
        let ranked: Vec<u64> = results
            .iter()
            .map(|r| r["image"].as_u64().unwrap())
            .collect();
        let expected: Vec<u64> = found[j][..5].iter().map(|h| h.index as u64).collect();
        assert_eq!(
            ranked, expected,
            "caption {j}: the CLI ranks like the stored query"
        );
        if ranked.contains(&(test.caption_image[j] as u64)) {
            in_top5 += 1;
        }
    }
    eprintln!("text → image: ground truth in the top 5 for {in_top5}/{asked} captions");
    assert!(
        in_top5 * 5 >= asked * 2,
        "only {in_top5}/{asked} in the top 5"
    );

    // Image → text by id; the table form too.
    let out = json(&succeeded(ITM.run(&[
        "search",
        "--index",
        index_dir.to_str().unwrap(),
        "--image",
        "3",
        "--top",
        "5",
        "--json",
    ])));
    let own = out["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["image"].as_u64() == Some(3))
        .count();
    assert!(own >= 1, "no caption of image 3 in its top 5: {out}");
    let table = succeeded(ITM.run(&[
        "search",
        "--index",
        index_dir.to_str().unwrap(),
        "a red circle",
    ]));
    assert_eq!(table.lines().count(), 7, "{table}");
    assert!(
        table.starts_with("exact search over 100 images\n"),
        "{table}"
    );
    let err = failed(ITM.run(&[
        "search",
        "--index",
        index_dir.to_str().unwrap(),
        "--image",
        "no-such-id",
    ]));
    assert!(err.contains("neither an image id"), "{err}");

    // Contact sheet: size, frames where the JSON places the ground truth, the caption written
    // above each row and a score under each picture.
    let png = work.join("sheet.png");
    let rows = ["0", "55", "130", "260", "499"];
    let mut args = vec![
        "sheet",
        "--index",
        index_dir.to_str().unwrap(),
        "--output",
        png.to_str().unwrap(),
    ];
    for row in &rows {
        args.extend(["--caption", row]);
    }
    succeeded(ITM.run(&args));
    let sheet = image::open(&png).unwrap().to_rgb8();
    assert_eq!(sheet.dimensions(), sheet_size(rows.len(), 5));
    let described = json(&std::fs::read_to_string(work.join("sheet.json")).unwrap());
    let described = described.as_array().unwrap();
    assert_eq!(described.len(), rows.len());
    let mut framed = 0;
    for (row, entry) in described.iter().enumerate() {
        let caption = entry["caption"].as_u64().unwrap() as usize;
        assert_eq!(entry["text"], test.captions[caption].as_str());
        let (x, y) = frame_origin(row, 0);
        assert_eq!(sheet.get_pixel(x + 1, y + 1).0, QUERY_COLOUR);
        let ink = ink(&sheet, caption_band(row, 5));
        assert!(
            ink > 150,
            "row {row}: {ink} dark pixels in the caption band"
        );
        for column in 0..=5 {
            let ink = ink_or_green(&sheet, score_band(row, column));
            assert!(ink > 40, "row {row} column {column}: {ink} pixels of text");
        }
        for (column, hit) in entry["results"].as_array().unwrap().iter().enumerate() {
            let truth = hit["image"].as_u64().unwrap() as usize == test.caption_image[caption];
            assert_eq!(hit["ground_truth"].as_bool(), Some(truth));
            let (x, y) = frame_origin(row, column + 1);
            let colour = if truth { MATCH_COLOUR } else { OTHER_COLOUR };
            assert_eq!(
                sheet.get_pixel(x + 1, y + 1).0,
                colour,
                "row {row} column {column}"
            );
            framed += usize::from(truth);
        }
    }
    assert!(
        framed >= 2,
        "the ground truth is framed only {framed} times"
    );
    // The pictures are the rendered scenes: the centre of the first row's own image.
    let (x, y) = frame_origin(0, 0);
    let centre = sheet.get_pixel(x + 4 + 48, y + 4 + 48).0;
    assert_ne!(centre, QUERY_COLOUR);

    image_sheet(&index_dir, test, &work);
    approximate_search(&checkpoint, &index_dir, &test.captions, &work);
    refuses_altered_indexes(&index_dir, &work);
    replaces_only_indexes(&checkpoint, &index_dir, &work);
    searches_fine_grained_models(&data, &index_dir, &work);
}

/// Dark (text) pixels in `band`.
fn ink(sheet: &image::RgbImage, band: Band) -> usize {
    band_pixels(sheet, band, |p| p.iter().all(|&c| c < 100))
}

/// Dark or green (ground-truth text) pixels in `band`.
fn ink_or_green(sheet: &image::RgbImage, band: Band) -> usize {
    band_pixels(sheet, band, |p| {
        p.iter().all(|&c| c < 100) || (p[1] > 100 && p[0] < 100 && p[2] < 100)
    })
}

fn band_pixels(sheet: &image::RgbImage, band: Band, keep: impl Fn([u8; 3]) -> bool) -> usize {
    (band.y..band.y + band.height)
        .flat_map(|y| (band.x..band.x + band.width).map(move |x| (x, y)))
        .filter(|&(x, y)| keep(sheet.get_pixel(x, y).0))
        .count()
}

/// `itm sheet --image ID`: the image on the left, framed as the query, its id under it, and one
/// line of text per caption found, the image's own captions marked green where the JSON says;
/// an unknown id is refused.
fn image_sheet(index_dir: &Path, test: &itm_data::RetrievalSplit, work: &Path) {
    let png = work.join("image-sheet.png");
    let ids = ["3", "40", "99"];
    let mut args = vec![
        "sheet",
        "--index",
        index_dir.to_str().unwrap(),
        "--output",
        png.to_str().unwrap(),
        "--top",
        "6",
    ];
    for id in &ids {
        args.extend(["--image", id]);
    }
    let stdout = succeeded(ITM.run(&args));
    assert!(stdout.contains("3 images × top 6 captions"), "{stdout}");
    let sheet = image::open(&png).unwrap().to_rgb8();
    assert_eq!(sheet.dimensions(), image_sheet_size(ids.len(), 6));
    let described = json(&std::fs::read_to_string(work.join("image-sheet.json")).unwrap());
    let described = described.as_array().unwrap();
    let mut own = 0;
    for (row, entry) in described.iter().enumerate() {
        let image = entry["image"].as_u64().unwrap() as usize;
        assert_eq!(entry["id"], ids[row]);
        let (x, y) = image_query_origin(row, 6);
        assert_eq!(sheet.get_pixel(x + 1, y + 1).0, QUERY_COLOUR);
        assert!(
            ink(&sheet, image_query_label(row, 6)) > 40,
            "row {row}: no id"
        );
        let results = entry["results"].as_array().unwrap();
        assert_eq!(results.len(), 6);
        for (rank, hit) in results.iter().enumerate() {
            let caption = hit["caption"].as_u64().unwrap() as usize;
            assert_eq!(hit["text"], test.captions[caption].as_str());
            let truth = test.caption_image[caption] == image;
            assert_eq!(hit["ground_truth"].as_bool(), Some(truth));
            let line = caption_line(row, rank, 6);
            let mark = sheet
                .get_pixel(line.x + MARK / 2, line.y + line.height / 2)
                .0;
            assert_eq!(
                mark == MATCH_COLOUR,
                truth,
                "row {row} rank {rank}: mark {mark:?}"
            );
            let text = ink_or_green(
                &sheet,
                Band {
                    x: line.x + 2 * MARK,
                    width: line.width - 2 * MARK,
                    ..line
                },
            );
            assert!(text > 150, "row {row} rank {rank}: {text} pixels of text");
            own += usize::from(truth);
        }
    }
    assert!(
        own >= 3,
        "only {own} of the captions shown describe their image"
    );
    let err = failed(ITM.run(&[
        "sheet",
        "--index",
        index_dir.to_str().unwrap(),
        "--output",
        work.join("never.png").to_str().unwrap(),
        "--image",
        "no-such-id",
    ]));
    assert!(
        err.contains("no-such-id") && err.contains("not an image id"),
        "{err}"
    );
    assert!(!work.join("never.png").exists());
}

/// `itm index build --approximate`: the recall it prints is the one the manifest records, the
/// graphs are listed with their checksums, and `itm search` answers from them (top-1 as the
/// exact search for most captions), falling back to exact search when told to or when `--top`
/// exceeds ef_search, and saying which it used.
fn approximate_search(checkpoint: &Path, exact_dir: &Path, captions: &[String], work: &Path) {
    let index_dir = work.join("approximate");
    let stdout = succeeded(build(
        checkpoint,
        &index_dir,
        &[
            "--approximate",
            "--ef-construction",
            "80",
            "--ef-search",
            "40",
            "--hnsw-seed",
            "5",
            "--recall-queries",
            "300",
        ],
    ));
    eprintln!("{stdout}");
    let index = Index::open(&index_dir).expect("the approximate index opens");
    let approximate = index
        .manifest()
        .approximate
        .as_ref()
        .expect("graphs recorded");
    assert_eq!(approximate.parameters.ef_search, 40);
    assert_eq!(approximate.parameters.ef_construction, 80);
    assert_eq!(approximate.parameters.seed, 5);
    assert_eq!(approximate.graphs.len(), 2);
    for (rows, file, queries, queries_from) in [
        (Collection::Images, IMAGE_GRAPH, 300, Collection::Captions),
        (
            Collection::Captions,
            CAPTION_GRAPH,
            TEST_IMAGES,
            Collection::Images,
        ),
    ] {
        let graph = index.graph_record(rows).unwrap();
        assert_eq!(graph.file, file);
        assert_eq!(graph.recall_queries, queries);
        assert_eq!(graph.queries_from, queries_from);
        assert!(
            graph.recall_at_10 >= 0.9,
            "{file}: recall@10 {}",
            graph.recall_at_10
        );
        let line = format!(
            "recall@10 {:.4} against exact search over {queries} ",
            graph.recall_at_10
        );
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("HNSW {file} ")) && l.contains(&line)),
            "{file}: {line:?} not printed in {stdout}"
        );
        let record = index
            .manifest()
            .files
            .iter()
            .find(|f| f.name == file)
            .unwrap();
        assert_eq!(record.sha256.len(), 64);
        let loaded = index.load_graph(rows).unwrap().expect("the graph loads");
        assert_eq!(loaded.parameters(), &approximate.parameters);
    }
    assert_eq!(
        index
            .load_graph(Collection::Images)
            .unwrap()
            .unwrap()
            .rows(),
        TEST_IMAGES
    );

    let search = |index: &Path, query: &[&str]| {
        let mut args = vec!["search", "--index", index.to_str().unwrap(), "--json"];
        args.extend(query);
        json(&succeeded(ITM.run(&args)))
    };
    let rows = |out: &serde_json::Value, key: &str| -> Vec<u64> {
        out["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[key].as_u64().unwrap())
            .collect()
    };
    let mut same_top1 = 0;
    let asked = 25;
    for caption in captions.iter().step_by(captions.len() / asked).take(asked) {
        let approximate = search(&index_dir, &[caption, "--top", "5"]);
        assert_eq!(
            approximate["search"]["method"], "approximate",
            "{approximate}"
        );
        assert_eq!(approximate["search"]["graph"], IMAGE_GRAPH);
        let exact = search(exact_dir, &[caption, "--top", "5"]);
        assert_eq!(exact["search"]["method"], "exact");
        let forced = search(&index_dir, &[caption, "--top", "5", "--exact"]);
        assert_eq!(forced["search"]["method"], "exact");
        assert_eq!(
            rows(&forced, "image"),
            rows(&exact, "image"),
            "same embeddings"
        );
        same_top1 += usize::from(rows(&approximate, "image")[0] == rows(&exact, "image")[0]);
    }
    assert!(
        same_top1 * 10 >= asked * 9,
        "approximate top-1 is the exact one for only {same_top1}/{asked} captions"
    );
    // Image → text goes through the caption graph.
    let out = search(&index_dir, &["--image", "3", "--top", "5"]);
    assert_eq!(out["search"]["graph"], CAPTION_GRAPH, "{out}");
    // More results than ef_search: exact, and the reason given.
    let out = search(&index_dir, &["a red circle", "--top", "50"]);
    assert_eq!(out["search"]["method"], "exact");
    assert_eq!(rows(&out, "image").len(), 50);
    assert!(
        out["search"]["note"]
            .as_str()
            .unwrap()
            .contains("exceeds the ef_search 40")
    );
    let table = succeeded(ITM.run(&[
        "search",
        "--index",
        index_dir.to_str().unwrap(),
        "a red circle",
    ]));
    assert!(
        table.starts_with("approximate search: HNSW graph images.hnsw, ef_search 40"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 7, "{table}");

    // Parameters are checked before anything is encoded; they need --approximate.
    let err = failed(build(
        checkpoint,
        &work.join("bad-ef"),
        &["--approximate", "--ef-search", "5"],
    ));
    assert!(
        err.contains("ef_search 5") && err.contains("at least 10"),
        "{err}"
    );
    let err = failed(build(
        checkpoint,
        &work.join("bad-ef"),
        &["--ef-search", "50"],
    ));
    assert!(err.contains("--approximate"), "{err}");
    assert!(!work.join("bad-ef").exists());
}

fn search_error(index: &Path) -> String {
    failed(ITM.run(&["search", "--index", index.to_str().unwrap(), "a red circle"]))
}

fn refuses_altered_indexes(index: &Path, work: &Path) {
    let altered = |name: &str, change: &dyn Fn(&Path)| {
        let copy = work.join(format!("altered-{name}"));
        copy_tree(index, &copy);
        change(&copy);
        search_error(&copy)
    };
    let err = altered("truncated", &|dir| {
        let path = dir.join("images.npy");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 64]).unwrap();
    });
    assert!(
        err.contains("images.npy") && err.contains("truncated"),
        "{err}"
    );
    let err = altered("flipped", &|dir| {
        let path = dir.join("captions.npy");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
    });
    assert!(
        err.contains("captions.npy") && err.contains("checksum"),
        "{err}"
    );
    let err = altered("missing", &|dir| {
        std::fs::remove_file(dir.join("model").join("model.bpk")).unwrap();
    });
    assert!(err.contains("model.bpk"), "{err}");
    let err = altered("version", &|dir| {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"version\": 1", "\"version\": 2")).unwrap();
    });
    assert!(
        err.contains("manifest.json") && err.contains("version 2"),
        "{err}"
    );
    let err = altered("count", &|dir| {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"n_images\": 100", "\"n_images\": 99")).unwrap();
    });
    assert!(err.contains("images.npy") && err.contains("[99"), "{err}");
    let err = search_error(&work.join("no-such-index"));
    assert!(err.contains("no-such-index"), "{err}");
}

fn replaces_only_indexes(checkpoint: &Path, index: &Path, work: &Path) {
    // Rebuilding over an index replaces it; nothing is left beside it.
    succeeded(build(checkpoint, index, &[]));
    Index::open(index).expect("the rebuilt index opens");
    let leftovers: Vec<String> = std::fs::read_dir(work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A folder that is not an index is never replaced.
    let other = work.join("not-an-index");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("keep.txt"), "mine").unwrap();
    let err = failed(build(checkpoint, &other, &[]));
    assert!(
        err.contains("not-an-index") && err.contains("not an index"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(other.join("keep.txt")).unwrap(),
        "mine"
    );
}

/// A fine-grained model (SCAN) is indexed for two-stage search: the manifest lists its sets
/// with their checksums, `itm search` says which stages ran, and with `--rerank-top` covering
/// the collection both directions return the head's exhaustive ranking (the scores of
/// `score_split`). Re-ranking is refused, with how to rebuild, on an index without the sets:
/// one of a cosine model (as an older itm wrote) and one whose rerank section is gone.
fn searches_fine_grained_models(data: &ShapesDataset, cosine_index: &Path, work: &Path) {
    let vocab = Vocabulary::build(data.train.retrieval.captions.iter().map(String::as_str), 1);
    let config = VseModelConfig::vse_infinity_bigru_sized(64, vocab.len(), 64, 32)
        .with_similarity(SimilarityConfig::Scan(ScanConfig::new()));
    let device = Device::flex();
    device.seed(9);
    let folder = work.join("scan-checkpoint");
    let tokenizer = CaptionTokenizer::from(vocab);
    let model = config.init(&device);
    Checkpoint::new(&folder)
        .save(&model, &config, &tokenizer)
        .unwrap();
    let index_dir = work.join("scan-index");
    let stdout = succeeded(build(&folder, &index_dir, &[]));
    assert!(stdout.contains("indexed 100 images"), "{stdout}");
    let manifest = json(&std::fs::read_to_string(index_dir.join("manifest.json")).unwrap());
    assert_eq!(manifest["rerank"]["head"], "scan_t2i");
    for name in [IMAGE_SETS, CAPTION_SETS, SET_LENGTHS] {
        let listed = manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == name);
        assert!(listed, "{name} is not in the manifest");
    }
    let test = &data.test.retrieval;
    let (n_img, n_cap) = (test.n_images(), test.captions.len());
    let scores = score_split(&model, test, &tokenizer, &device, true).unwrap();
    let index = s(&index_dir);

    // Text → image, every image re-scored: the head's exhaustive ranking of the caption.
    let caption = 37;
    let out = json(&succeeded(ITM.run(&[
        "search",
        "--index",
        index,
        test.captions[caption].as_str(),
        "--top",
        "5",
        "--rerank-top",
        "100",
        "--json",
    ])));
    assert_eq!(out["search"]["method"], "two-stage");
    assert_eq!(out["search"]["second_stage"]["head"], "scan_t2i");
    assert_eq!(out["search"]["second_stage"]["rescored"], 100);
    assert_eq!(out["search"]["first_stage"]["method"], "exact");
    let column: Vec<f32> = (0..n_img).map(|i| scores[i * n_cap + caption]).collect();
    let expected = top_k_of_row(&column, 5);
    let results = out["results"].as_array().unwrap();
    for (hit, &image) in results.iter().zip(&expected) {
        assert_eq!(hit["image"].as_u64().unwrap() as usize, image, "{out}");
        let score = hit["score"].as_f64().unwrap() as f32;
        assert!(
            (score - column[image]).abs() < 1e-4,
            "{score} vs {}",
            column[image]
        );
    }
    assert_eq!(results.len(), 5);

    // Image → text, every caption re-scored: the head's exhaustive ranking of the image.
    let out = json(&succeeded(ITM.run(&[
        "search",
        "--index",
        index,
        "--image",
        "3",
        "--top",
        "4",
        "--rerank-top",
        "500",
        "--json",
    ])));
    let expected = top_k_of_row(&scores[3 * n_cap..4 * n_cap], 4);
    let found: Vec<usize> = out["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["caption"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(found, expected, "{out}");

    // The default: two stages, 100 candidates, said in the first line.
    let text = succeeded(ITM.run(&["search", "--index", index, "a red circle", "--top", "3"]));
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("two-stage search: 1. exact search over 100 images")
            && first.contains("top 100 kept; 2. scan_t2i re-scored 100 images"),
        "{text}"
    );
    let out = json(&succeeded(ITM.run(&[
        "search",
        "--index",
        index,
        "a red circle",
        "--top",
        "3",
        "--rerank-top",
        "10",
        "--json",
    ])));
    assert_eq!(out["search"]["rerank_top"], 10);
    assert_eq!(out["search"]["second_stage"]["rescored"], 10);

    // With HNSW graphs, the first stage walks the graph when k fits its ef_search and says so.
    let approximate = work.join("scan-index-hnsw");
    succeeded(build(
        &folder,
        &approximate,
        &["--approximate", "--ef-search", "50"],
    ));
    let query = ["a red circle", "--top", "3", "--json", "--rerank-top"];
    let run = |k: &str| {
        let mut args = vec!["search", "--index", s(&approximate)];
        args.extend(query);
        args.push(k);
        json(&succeeded(ITM.run(&args)))["search"].clone()
    };
    let graph = run("50");
    assert_eq!(graph["first_stage"]["method"], "approximate", "{graph}");
    assert_eq!(graph["second_stage"]["rescored"], 50);
    let exact = run("60");
    assert_eq!(exact["first_stage"]["method"], "exact", "{exact}");
    let note = exact["first_stage"]["note"].as_str().unwrap();
    assert!(
        note.contains("60 candidates exceed the ef_search 50"),
        "{note}"
    );

    // No second-stage features: a cosine model's index (what an older itm wrote) ...
    let err = failed(ITM.run(&[
        "search",
        "--index",
        s(cosine_index),
        "a red circle",
        "--rerank-top",
        "10",
    ]));
    assert!(
        err.contains("no second-stage features") && err.contains("itm index build"),
        "{err}"
    );
    // ... and a fine-grained model's index whose manifest lost its rerank section: refused,
    // not searched by the first stage alone; nothing in the folder is changed.
    let stripped = work.join("scan-index-old");
    copy_tree(&index_dir, &stripped);
    let path = stripped.join("manifest.json");
    let mut manifest = json(&std::fs::read_to_string(&path).unwrap());
    manifest.as_object_mut().unwrap().remove("rerank");
    let text = serde_json::to_string_pretty(&manifest).unwrap();
    std::fs::write(&path, &text).unwrap();
    let err = failed(ITM.run(&["search", "--index", s(&stripped), "a red circle"]));
    assert!(
        err.contains("no second-stage features") && err.contains(s(&stripped)),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    evaluates_in_two_stages(&folder);

    // A multi-grained model (AAHR's cosine + w · CHAN) is refused: an index searches the
    // pooled vectors or the sets, not their sum.
    let multi = config.with_similarity(COSINE_CHAN.config(64));
    let multi_folder = work.join("multi-grained-checkpoint");
    Checkpoint::new(&multi_folder)
        .save(&multi.init(&device), &multi, &tokenizer)
        .unwrap();
    let err = failed(build(&multi_folder, &work.join("multi-grained-index"), &[]));
    assert!(err.contains("multi-grained"), "{err}");
}

/// `itm evaluate --rerank-top K`: reported as two-stage, never as the protocol; with `K`
/// covering every caption its metrics are the full protocol's; an ensemble is refused.
fn evaluates_in_two_stages(checkpoint: &Path) {
    std::fs::write(
        checkpoint.join("run.toml"),
        format!(
            "[model]\nname = \"scan_t2i\"\nembed = 64\nword_dim = 32\n[data]\nkind = \"shapes\"\n\
             seed = {SEED}\ntrain_images = 600\ndev_images = 50\ntest_images = {TEST_IMAGES}\n\
             feature_width = 64\n"
        ),
    )
    .unwrap();
    let evaluate = |extra: &[&str]| {
        let mut args = vec!["evaluate", "--checkpoint", s(checkpoint), "--quiet"];
        args.extend(extra);
        succeeded(ITM.run(&args))
    };
    let mut full = json(&evaluate(&["--json"]));
    let mut two = json(&evaluate(&["--json", "--rerank-top", "500"]));
    assert_eq!(two["scoring"], "two-stage");
    assert_eq!(two["rerank_top"], 500);
    assert_eq!(two["pairs_rescored"], 2 * 100 * 500);
    for key in ["scoring", "rerank_top", "pairs_rescored", "full_pairs"] {
        two.as_object_mut().unwrap().remove(key);
    }
    assert!(full.get("scoring").is_none(), "{full}");
    full.as_object_mut().unwrap().remove("scoring");
    assert_eq!(two, full);
    let table = evaluate(&["--rerank-top", "5"]);
    assert!(
        table.starts_with("two-stage scoring, not the full protocol")
            && table.contains("re-scored 3000 pairs"),
        "{table}"
    );
    let err = failed(ITM.run(&[
        "evaluate",
        "--checkpoint",
        s(checkpoint),
        "--checkpoint",
        s(checkpoint),
        "--rerank-top",
        "5",
    ]));
    assert!(err.contains("not an ensemble"), "{err}");
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}
