//! `nltk_word_tokenize` against NLTK's own output: `tests/fixtures/nltk_word_tokenize.json`,
//! written by `scripts/generate_nltk_tokens.py` with `nltk.word_tokenize(caption.lower(),
//! preserve_line=True)`. `ITM_NLTK_FIXTURE=PATH` checks another file of the same layout as well
//! (the script's `--random N --out PATH`).

use std::path::{Path, PathBuf};

use itm_data::{Tokenization, Vocabulary, nltk_word_tokenize};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    nltk_version: String,
    lowercase: bool,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    caption: String,
    lowercased: String,
    tokens: Vec<String>,
}

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nltk_word_tokenize.json")
}

fn read(path: &Path) -> Fixture {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every case whose lower-casing or tokens differ from Python's, one line each.
fn mismatches(fixture: &Fixture) -> Vec<String> {
    let mut out = Vec::new();
    for case in &fixture.cases {
        let text = if fixture.lowercase {
            let lowered = case.caption.to_lowercase();
            if lowered != case.lowercased {
                out.push(format!(
                    "{:?}: lower-cased to {lowered:?}, Python gives {:?}",
                    case.caption, case.lowercased
                ));
                continue;
            }
            lowered
        } else {
            case.caption.clone()
        };
        let tokens = nltk_word_tokenize(&text);
        if tokens != case.tokens {
            out.push(format!(
                "{:?}: got {tokens:?}, NLTK {} gives {:?}",
                case.caption, fixture.nltk_version, case.tokens
            ));
        }
    }
    out
}

#[test]
fn every_fixture_caption_tokenizes_as_in_nltk() {
    let fixture = read(&fixture_path());
    assert!(fixture.lowercase);
    assert!(fixture.cases.len() >= 150, "{} cases", fixture.cases.len());
    let wrong = mismatches(&fixture);
    assert!(
        wrong.is_empty(),
        "{} of {} captions differ from NLTK:\n{}",
        wrong.len(),
        fixture.cases.len(),
        wrong.join("\n")
    );
}

#[test]
#[ignore = "needs ITM_NLTK_FIXTURE=PATH, written by scripts/generate_nltk_tokens.py --random N --out PATH with NLTK installed (.ci/run does this)"]
fn an_extra_fixture_tokenizes_as_in_nltk() {
    let path = std::env::var_os("ITM_NLTK_FIXTURE")
        .expect("ITM_NLTK_FIXTURE must name a file written by scripts/generate_nltk_tokens.py");
    let fixture = read(Path::new(&path));
    let wrong = mismatches(&fixture);
    assert!(
        wrong.is_empty(),
        "{} of {} strings differ from NLTK:\n{}",
        wrong.len(),
        fixture.cases.len(),
        wrong.join("\n")
    );
}

#[test]
fn an_nltk_vocabulary_encodes_nltk_words() {
    let fixture = read(&fixture_path());
    let captions: Vec<&str> = fixture.cases.iter().map(|c| c.caption.as_str()).collect();
    let vocab = Vocabulary::build_with(captions.iter().copied(), 1, Tokenization::Nltk);
    assert_eq!(vocab.tokenization(), Tokenization::Nltk);
    for case in &fixture.cases {
        let mut expected = vec![vocab.index(itm_data::START) as i64];
        expected.extend(case.tokens.iter().map(|t| vocab.index(t) as i64));
        expected.push(vocab.index(itm_data::END) as i64);
        assert_eq!(vocab.encode(&case.caption), expected, "{:?}", case.caption);
        assert!(!expected.contains(&(vocab.index(itm_data::UNK) as i64)));
    }
    // Words that only the simple rule produces are unknown to this vocabulary.
    let simple = vocab.encode_with("a man's t-shirt", Tokenization::Simple);
    assert_eq!(
        simple[2],
        vocab.index(itm_data::UNK) as i64,
        "\"man's\" is not an NLTK word"
    );
}
