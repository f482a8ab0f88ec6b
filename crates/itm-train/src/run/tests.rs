//! The run's behaviour as a user sees it: defaults, merging, checks, written runs.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use itm_data::images::ImageTransform;
use itm_data::shapes::{ShapesConfig, ShapesDataset};

use super::*;
use crate::config::LossKind;
use crate::towers::ImageTower;

fn parse(text: &str) -> Result<ResolvedRun, RunError> {
    let file: toml::Table = toml::from_str(text).map_err(|e| RunError::File {
        path: "run.toml".into(),
        message: e.to_string(),
    })?;
    RunConfig::merged(file, RunOverrides::default(), "run.toml")
}

/// Each run file `text` is refused with a message naming all of its `needles`.
fn assert_refused(cases: &[(&str, &[&str])]) {
    for (text, needles) in cases {
        let Err(error) = parse(text) else {
            panic!("{text} is refused")
        };
        let message = error.to_string();
        assert!(
            needles.iter().all(|needle| message.contains(needle)),
            "{text}: {message}"
        );
    }
}

#[test]
fn defaults_come_from_the_system_and_the_file_overrides_them() {
    let config = parse(
        "[model]\nname = \"chan\"\nembed = 32\n[training]\nepochs = 2\n\
         [data]\nkind = \"shapes\"\ntrain_images = 50\n",
    )
    .unwrap();
    assert_eq!(config.training.margin, 0.05);
    assert_eq!(config.training.epochs, 2);
    assert_eq!(config.training.lr_decay_epoch, 15);
    assert_eq!(config.model.embed, 32);
    let DataSection::Shapes {
        train_images,
        feature_width,
        ..
    } = config.data
    else {
        panic!("shapes")
    };
    assert_eq!((train_images, feature_width), (50, 256));
    let overridden = RunConfig::merged(
        toml::from_str("[training]\nepochs = 2\n").unwrap(),
        RunOverrides {
            epochs: Some(7),
            model: Some("xdim".into()),
            ..RunOverrides::default()
        },
        "x",
    )
    .unwrap();
    assert_eq!(
        (overridden.training.epochs, overridden.model.embed),
        (7, 1024)
    );
    let hrem = parse("[model]\nname = \"hrem\"\n").unwrap();
    assert_eq!(hrem.training.relation_warmup_steps, 8000);
    let hrem = parse("[model]\nname = \"hrem\"\n[training]\nrelation_warmup_steps = 5\n");
    assert_eq!(hrem.unwrap().training.relation_warmup_steps, 5);
}

/// The clip entry reads shapes pixels through CLIP's tower with CLIP's statistics; a
/// pretrained folder gives the joint width and the image side unless the run sets them.
#[test]
fn clip_runs_take_their_sizes_from_the_folder() {
    let config = parse("[model]\nname = \"clip\"\n").unwrap();
    assert_eq!(config.model.images, ImageTower::Clip);
    assert_eq!(config.training.loss, LossKind::InfoNce);
    assert_eq!((config.model.embed, config.model.image_size), (512, 224));
    assert_eq!(config.pixel_transform(), Some(ImageTransform::clip(224)));
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_clip");
    let config = parse(&format!("[model]\nname = \"clip\"\nclip = {folder:?}\n")).unwrap();
    assert_eq!((config.model.embed, config.model.image_size), (24, 32));
    // The written run names both sizes: reading it back needs no folder.
    let mut moved = config.config().clone();
    moved.model.clip = Some(PathBuf::from("/no/such/clip"));
    let text = toml::to_string(&moved).unwrap();
    assert_eq!(parse(&text).unwrap().config(), &moved);
    // A size the checkpoint does not have is refused when the model is built.
    let explicit = parse(&format!(
        "[model]\nname = \"clip\"\nclip = {folder:?}\nembed = 16\n"
    ))
    .unwrap();
    assert_eq!(explicit.model.image_size, 32);
    let train = ShapesDataset::generate(&ShapesConfig {
        train_images: 2,
        dev_images: 1,
        test_images: 1,
        ..ShapesConfig::default()
    })
    .train
    .pixels(ImageTransform::clip(32));
    let Err(error) = explicit.build(&train, &Device::flex()) else {
        panic!("a width the checkpoint does not have")
    };
    let message = error.to_string();
    assert!(
        message.contains("config.json")
            && message.contains("model.embed")
            && message.contains("24"),
        "{message}"
    );
    assert_eq!(
        parse("[model]\nimages = \"resnet\"\nimage_size = 16\n")
            .unwrap()
            .pixel_transform(),
        Some(ImageTransform::new(16))
    );
}

#[test]
fn the_written_configuration_reads_back_identically() {
    let config = parse(
        "device = \"flex\"\n[model]\nname = \"esl_h\"\n[data]\nkind = \"precomp\"\n\
         path = \"data/f30k_precomp\"\n",
    )
    .unwrap();
    let text = toml::to_string(config.config()).unwrap();
    assert_eq!(parse(&text).unwrap(), config);
    let strict: RunConfig = toml::from_str(&text).unwrap();
    assert_eq!(&strict, config.config());
}

#[test]
fn unknown_keys_and_bad_values_name_the_key() {
    for (text, needles) in [
        ("[training]\nlearning_rat = 1.0\n", &["learning_rat"][..]),
        ("[model]\nsize = 3\n", &["size"]),
        (
            "[data]\nkind = \"shapes\"\ntrain_imgs = 3\n",
            &["train_imgs"],
        ),
        ("[data]\nkind = \"coco\"\n", &["coco"]),
        ("[training]\nepochs = \"many\"\n", &["epochs"]),
        (
            "[training]\nlearning_rate = -1.0\n",
            &["training.learning_rate", "-1"],
        ),
        ("[training]\nbatch_size = 1\n", &["training.batch_size"]),
        ("[training]\nregion_drop = 1.5\n", &["training.region_drop"]),
        (
            "[model]\nname = \"clip9\"\n",
            &["model.name", "clip9", "vse_infinity_bigru"],
        ),
        ("[model]\nname = \"vse_infinity_bert\"\n", &["model.bert"]),
        (
            "[model]\nimages = \"vit\"\n[data]\nkind = \"precomp\"\npath = \"x\"\n",
            &["model.images", "precomp"],
        ),
        (
            "[model]\nname = \"clip\"\nbert = \"x\"\n",
            &["model.bert", "model.clip"],
        ),
        ("[model]\nclip = \"x\"\n", &["model.clip"]),
        ("[model]\nimages = \"clip\"\n", &["model.images"]),
        (
            "[model]\nname = \"clip\"\nimages = \"vit\"\n",
            &["model.images", "\"clip\""],
        ),
        (
            "[model]\nname = \"clip\"\nimage_size = 36\n",
            &["model.image_size", "36"],
        ),
        (
            "[model]\nname = \"clip\"\nclip = \"/no/such/clip\"\n",
            &["/no/such/clip/config.json"],
        ),
        ("[training]\nloss = \"triplet\"\n", &["loss", "triplet"]),
        (
            "[training]\ndistinguishability = -0.1\n",
            &["training.distinguishability"],
        ),
        (
            "[model]\nname = \"chan\"\n[training]\nloss = \"ambiguity_aware\"\n",
            &["training.loss", "chan"],
        ),
        (
            "[model]\nname = \"scan_t2i\"\n[training]\ndistinguishability = 0.1\n",
            &["training.distinguishability"],
        ),
        (
            "[model]\nname = \"hrem\"\nembed = 100\n",
            &["model.embed", "16"],
        ),
    ] {
        let message = parse(text).unwrap_err().to_string();
        for needle in needles {
            assert!(message.contains(needle), "{text:?}: {message}");
        }
    }
}

/// A configuration built in code is checked like a file before anything uses it: an unknown
/// system or a bad value is an error that names the key, never a panic.
#[test]
fn a_configuration_built_in_code_is_checked_when_resolved() {
    let good = parse("[model]\nname = \"chan\"\n").unwrap().into_config();
    assert_eq!(good.clone().resolve().unwrap().entry().name, "chan");
    let mut unknown = good.clone();
    unknown.model.name = "chan9".into();
    let message = unknown.resolve().unwrap_err().to_string();
    assert!(
        message.contains("model.name") && message.contains("chan9"),
        "{message}"
    );
    let mut wrong_loss = good.clone();
    wrong_loss.training.loss = LossKind::AmbiguityAware;
    let message = wrong_loss.resolve().unwrap_err().to_string();
    assert!(message.contains("training.loss"), "{message}");
    let mut no_bert = good;
    no_bert.model.name = "vse_infinity_bert".into();
    let message = no_bert.resolve().unwrap_err().to_string();
    assert!(message.contains("model.bert"), "{message}");
}

/// A run builds its system's own region tower unless `model.towers = "vse_infinity"`; a width
/// that CHAN's 8 attention heads do not divide is refused, naming the key.
#[test]
fn runs_build_the_system_towers_or_vse_infinity_s() {
    let data = ShapesDataset::generate(&ShapesConfig {
        train_images: 8,
        dev_images: 2,
        test_images: 2,
        ..ShapesConfig::default()
    });
    let device = Device::flex();
    let regions = |text: &str| {
        let run = parse(text).unwrap();
        assert!(
            toml::to_string(run.config()).unwrap().contains("towers") == text.contains("towers")
        );
        let built = run.build(&data.train.retrieval, &device).unwrap();
        match built.config.image {
            itm_core::encoders::ImageEncoderConfig::Regions(r) => (r.mlp, r.self_attention),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        regions("[model]\nname = \"chan\"\nembed = 16\n"),
        (false, Some(8))
    );
    assert_eq!(
        regions("[model]\nname = \"chan\"\nembed = 16\ntowers = \"vse_infinity\"\n"),
        (true, None)
    );
    assert_eq!(
        regions("[model]\nname = \"scan_t2i\"\nembed = 16\n"),
        (false, None)
    );
    let message = parse("[model]\nname = \"chan\"\nembed = 12\n")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("model.embed") && message.contains("8 heads"),
        "{message}"
    );
    assert!(parse("[model]\nname = \"chan\"\nembed = 12\ntowers = \"vse_infinity\"\n").is_ok());
    let message = parse("[model]\nname = \"chan\"\ntowers = \"scan\"\n")
        .unwrap_err()
        .to_string();
    assert!(message.contains("towers"), "{message}");
}

/// `model.tokenizer = "nltk"` builds the BiGRU vocabulary with NLTK's rule and records it; the
/// default stays itm's rule and is left out of the written run.
#[test]
fn the_vocabulary_tokenizer_is_a_run_key() {
    let data = ShapesDataset::generate(&ShapesConfig {
        train_images: 8,
        dev_images: 2,
        test_images: 2,
        ..ShapesConfig::default()
    });
    let device = Device::flex();
    for (text, expected) in [
        ("", itm_data::Tokenization::Simple),
        ("tokenizer = \"nltk\"\n", itm_data::Tokenization::Nltk),
    ] {
        let run = parse(&format!(
            "[model]\nname = \"vse_infinity_bigru\"\nembed = 16\n{text}"
        ))
        .unwrap();
        assert_eq!(
            toml::to_string(run.config()).unwrap().contains("tokenizer"),
            !text.is_empty()
        );
        let built = run.build(&data.train.retrieval, &device).unwrap();
        let itm_data::CaptionTokenizer::Words(vocab) = &built.tokenizer else {
            panic!("a word vocabulary")
        };
        assert_eq!(vocab.tokenization(), expected);
    }
    let message = parse("[model]\nname = \"chan\"\ntokenizer = \"spacy\"\n")
        .unwrap_err()
        .to_string();
    assert!(message.contains("tokenizer"), "{message}");
}

/// `training.log_steps` sets the trainer's logging interval (default 20); 0 is refused, naming
/// the key.
#[test]
fn the_logging_interval_is_a_run_key() {
    let device = Device::flex();
    let default = parse("[model]\nname = \"chan\"\n").unwrap();
    assert_eq!(default.training.log_steps, crate::trainer::LOG_STEPS);
    let run = parse("[model]\nname = \"chan\"\n[training]\nlog_steps = 7\n").unwrap();
    assert_eq!(
        crate::Trainer::new(run.training.clone(), device).log_steps,
        7
    );
    let message = parse("[model]\nname = \"chan\"\n[training]\nlog_steps = 0\n")
        .unwrap_err()
        .to_string();
    assert!(message.contains("training.log_steps"), "{message}");
}

/// Flags win over the file, the file over the defaults; a `[data]` given replaces the
/// default one whole, and a flag's `[data]` the file's.
#[test]
fn flags_win_over_the_file_and_data_is_one_choice() {
    let file: toml::Table = toml::from_str(
        "output = \"from-file\"\n[model]\nname = \"scan_t2i\"\nembed = 8\n\
         [training]\nepochs = 4\nmargin = 0.3\n\
         [data]\nkind = \"precomp\"\npath = \"data/x\"\n",
    )
    .unwrap();
    let run = RunConfig::merged(
        file,
        RunOverrides {
            epochs: Some(9),
            data: Some(DataSection::default()),
            ..RunOverrides::default()
        },
        "run.toml",
    )
    .unwrap();
    assert_eq!((run.training.epochs, run.training.margin), (9, 0.3));
    // The entry's own defaults fill what neither gives.
    assert_eq!(run.training.learning_rate, 2e-4);
    assert_eq!(
        (run.model.embed, run.output.as_path()),
        (8, Path::new("from-file"))
    );
    assert_eq!(run.data, DataSection::default());
    assert_eq!(run.entry().name, "scan_t2i");
}

/// AAHR's pieces are run keys: the defaults are the entry's, each piece switches off
/// (`model.instance_relation`, `model.local_weight = 0`, `training.loss = "hinge"`), the
/// written run reads back, the flag wins over the file, and a key a system cannot use is
/// refused by name.
#[test]
fn aahr_pieces_are_run_keys() {
    use crate::zoo::{self, Pieces};
    let aahr = parse("[model]\nname = \"aahr\"\n").unwrap();
    assert_eq!(aahr.pieces(), zoo::lookup("aahr").unwrap().pieces());
    assert_eq!(
        (aahr.model.instance_relation, aahr.model.local_weight),
        (true, Some(1.0))
    );
    assert_eq!(aahr.training.loss, LossKind::AmbiguityAware);
    let off = parse(
        "[model]\nname = \"aahr\"\ninstance_relation = false\nlocal_weight = 0.0\n\
         [training]\nloss = \"hinge\"\n",
    )
    .unwrap();
    assert_eq!(
        off.pieces(),
        Pieces {
            instance_relation: false,
            local_weight: Some(0.0)
        }
    );
    assert_eq!(off.training.loss, LossKind::Hinge);
    let text = toml::to_string(off.config()).unwrap();
    assert_eq!(parse(&text).unwrap(), off);
    let flagged = RunConfig::merged(
        toml::from_str("[model]\nname = \"aahr\"\nlocal_weight = 2.0\n").unwrap(),
        RunOverrides {
            local_weight: Some(0.5),
            ..RunOverrides::default()
        },
        "x",
    )
    .unwrap();
    assert_eq!(flagged.model.local_weight, Some(0.5));
    // HREM's layer may join any system with pooled vectors; other systems keep theirs off.
    let vse = parse("[model]\nname = \"vse_infinity_bigru\"\ninstance_relation = true\n");
    assert!(vse.unwrap().pieces().instance_relation);
    assert!(
        !parse("[model]\nname = \"chan\"\n")
            .unwrap()
            .model
            .instance_relation
    );
    assert_refused(&[
        (
            "[model]\nname = \"chan\"\nlocal_weight = 1.0\n",
            &["model.local_weight", "aahr"][..],
        ),
        (
            "[model]\nname = \"aahr\"\nlocal_weight = -1.0\n",
            &["model.local_weight", "-1"],
        ),
        (
            "[model]\nname = \"chan\"\ninstance_relation = true\n",
            &["model.instance_relation", "chan"],
        ),
        (
            "[model]\nname = \"aahr\"\nembed = 24\n",
            &["model.embed", "16"],
        ),
    ]);
}

/// `model.levels` keeps the highest levels of a multi-level system (an ablation), reads back
/// from the written run, and is refused by name out of its range or on a system without
/// levels.
#[test]
fn multi_level_systems_take_a_level_count() {
    let hat = parse("[model]\nname = \"hat\"\n").unwrap();
    assert_eq!(hat.model.levels, None);
    let single = parse("[model]\nname = \"daim\"\nlevels = 1\n").unwrap();
    assert_eq!(single.model.levels, Some(1));
    let text = toml::to_string(single.config()).unwrap();
    assert!(text.contains("levels = 1"), "{text}");
    assert_eq!(parse(&text).unwrap(), single);
    assert_refused(&[
        (
            "[model]\nname = \"hat\"\nlevels = 4\n",
            &["model.levels", "4"][..],
        ),
        (
            "[model]\nname = \"hat\"\nlevels = 0\n",
            &["model.levels", "0"],
        ),
        (
            "[model]\nname = \"scan_i2t\"\nlevels = 1\n",
            &["model.levels", "scan_i2t", "hat"],
        ),
        (
            "[model]\nname = \"chan\"\n[training]\nfrozen_backbone_epochs = 2\n",
            &["training.frozen_backbone_epochs", "chan"],
        ),
    ]);
}
