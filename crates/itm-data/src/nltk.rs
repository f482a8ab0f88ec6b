//! The word tokenizer of NLTK (`nltk.word_tokenize`), which the published recurrent models use.
//!
//! VSE∞, SCAN and CHAN turn a caption into words with `nltk.word_tokenize(caption.lower())`, and
//! their vocabularies hold NLTK's tokens: "isn't" is "is" "n't", "man's" is "man" "'s",
//! "t-shirt" and "1,000" stay whole, a period inside a caption stays on its word ("st."), and a
//! double quote becomes "``" or "''". [`nltk_word_tokenize`] reproduces that call with
//! `preserve_line=True` (no sentence splitting), checked against NLTK 3.10 on the captions of
//! `tests/fixtures/nltk_word_tokenize.json` (written by `scripts/generate_nltk_tokens.py`).
//!
//! NLTK's tokenizer is a fixed sequence of regular-expression substitutions that pad tokens with
//! spaces, followed by a split on whitespace. The same sequence runs here, in the same order, so
//! that its quirks (which depend on the order) come out the same. Most steps are substitutions
//! with the `regex` crate; the three that need look-around (an opening single quote, the
//! contractions, the final split) are small scanners.

use std::sync::LazyLock;

use regex::Regex;

/// One substitution: every non-overlapping match of the pattern, left to right, is replaced by
/// the template (`$0`, `${1}` … refer to the match and its groups).
struct Rule {
    pattern: Regex,
    template: &'static str,
}

impl Rule {
    fn new(pattern: &str, template: &'static str) -> Self {
        Self {
            pattern: Regex::new(pattern).expect("a valid tokenizer pattern"),
            template,
        }
    }

    fn apply(&self, text: &mut String) {
        if let std::borrow::Cow::Owned(replaced) =
            self.pattern.replace_all(text.as_str(), self.template)
        {
            *text = replaced;
        }
    }
}

/// The substitutions, in three groups that run in this order, with the scanners in between.
struct Rules {
    /// Opening quotes: guillemets and curly quotes, runs of backticks, a double quote that opens
    /// the text or follows a space or an opening bracket (it becomes "``").
    opening: Vec<Rule>,
    /// Punctuation: the final period, commas and colons not followed by a digit, ellipses,
    /// `; @ # $ % &`, figure and em dashes, `? !`, a single quote before a space, `*`, brackets
    /// and parentheses, double hyphens.
    punctuation: Vec<Rule>,
    /// Closing quotes and the clitics at the end of a word ('s 'm 'd 'll 're 've n't), after
    /// whitespace runs become single spaces.
    closing: Vec<Rule>,
}

/// Characters that may follow the final period and still leave it final (closing brackets and
/// quotes, spaces), as a class body for the first final-period rule.
const AFTER_FINAL_PERIOD: &str = r#"\]\)\}>"'»”’ "#;

static RULES: LazyLock<Rules> = LazyLock::new(|| Rules {
    opening: vec![
        Rule::new("[«“‘„]|`+", " $0 "),
        Rule::new(r#"\A""#, "``"),
        Rule::new("``", " $0 "),
        Rule::new(r#"([ (\[{<])("|'')"#, "$1 `` "),
    ],
    punctuation: vec![
        // The last period, when only closing brackets, quotes and whitespace follow it and no
        // period precedes it (NLTK's `$` also matches before a final newline, but `\s*` has
        // taken that newline already, so `\z` is the same here). It is applied twice, the
        // second time (below) without spaces in the class, as NLTK does.
        Rule::new(
            &format!(r"([^.])(\.)([{AFTER_FINAL_PERIOD}]*)\s*\z"),
            "$1 $2 $3 ",
        ),
        Rule::new(r"([:,])([^\d])", " $1 $2"),
        // `$` in Python also matches just before a final newline.
        Rule::new(r"([:,])(\n?)\z", " $1 $2"),
        Rule::new(r"\.\.+", " $0 "),
        Rule::new(r"[;@#$%&]", " $0 "),
        Rule::new("[\u{2012}-\u{2015}]", " $0 "),
        Rule::new(r#"([^.])(\.)([\]\)\}>"']*)\s*\z"#, "$1 $2$3 "),
        Rule::new(r"[?!]", " $0 "),
        Rule::new(r"([^'])' ", "$1 ' "),
        Rule::new(r"\*", " $0 "),
        Rule::new(r"[\]\[(){}<>]", " $0 "),
        Rule::new("--", " $0 "),
    ],
    closing: vec![
        Rule::new("[»”’]", " $0 "),
        Rule::new("''", " '' "),
        Rule::new("\"", " '' "),
        Rule::new(r"\s+", " "),
        Rule::new("([^' ])('[sS]|'[mM]|'[dD]|') ", "$1 $2 "),
        Rule::new("([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", "$1 $2 "),
    ],
});

/// Splits `text` into words as `nltk.word_tokenize(text, preserve_line=True)` does (NLTK's
/// `NLTKWordTokenizer`, an extension of the Penn Treebank rules).
///
/// The published models lower-case the caption first; so does [`crate::Vocabulary`] when it
/// encodes with [`crate::Tokenization::Nltk`], but this function takes the text as it is (its
/// rules are case-insensitive where NLTK's are). In order, it
///
/// 1. pads opening quotes: `« “ ‘ „`, runs of backticks, and turns a `"` at the start of the
///    text or after a space or `( [ { <` into "``"; a `'` that is not preceded by a word
///    character and starts a word other than `re ve ll m t s d n` is split from that word;
/// 2. pads punctuation: the final period (one that only closing brackets, quotes and whitespace
///    follow, and that does not end an ellipsis), `,` and `:` unless a digit follows (so "1,000"
///    and "12:30" stay whole), runs of two or more periods, `; @ # $ % & ? ! *`, the figure, en
///    and em dashes and the horizontal bar (U+2012–U+2015), a `'` before a space, brackets,
///    parentheses and `--`; a period inside the text stays on its word ("st.", "a.m.") and a
///    single hyphen never splits;
/// 3. pads closing quotes `» ” ’` and turns every other `"` and `''` into "''";
/// 4. collapses whitespace and splits the clitics `'s 'm 'd 'll 're 've n't` (and a lone `'`)
///    from the end of a word followed by a space ("isn't" → "is" "n't", "can't" → "ca" "n't");
/// 5. splits the fixed contractions "cannot", "d'ye", "gimme", "gonna", "gotta", "lemme",
///    "more'n", "wanna" (only before whitespace), "'tis" and "'twas";
/// 6. splits on whitespace.
///
/// Known differences. NLTK's word characters come from Python's Unicode tables (the `regex`
/// package's for steps 1–2, Python's own `re` for step 5) and this function's from the `regex`
/// crate (Unicode 16): they agree on every character that both sides' Unicode versions assign
/// (checked against Python 3.11 and `regex` 2026.12), and differ only on characters that one
/// side is too old to know. NLTK's rules also changed over its releases, and these are those of
/// NLTK 3.10: NLTK 3.8 and older keep a quote on the word it opens unless that word is a single
/// character ("'love'" is "'love" "'", here "'" "love" "'"; "'tis" is "'t" "is", here "'" "tis"),
/// and do not split the figure, en and em dashes ("1990–2000" stays whole); NLTK 3.5 and older
/// also split "'n" into "'" "n". Plain captions come out the same under all of them.
pub fn nltk_word_tokenize(text: &str) -> Vec<String> {
    let rules = &*RULES;
    let mut text = text.to_string();
    for rule in &rules.opening {
        rule.apply(&mut text);
    }
    split_opening_single_quotes(&mut text);
    for rule in &rules.punctuation {
        rule.apply(&mut text);
    }
    let mut text = format!(" {text} ");
    for rule in &rules.closing {
        rule.apply(&mut text);
    }
    for (first, second, end) in CONTRACTIONS {
        split_contraction(&mut text, None, first, second, end);
    }
    for (first, second) in SPACE_CONTRACTIONS {
        split_contraction(&mut text, Some(' '), first, second, Ending::WordBoundary);
    }
    text.split(is_python_space)
        .filter(|token| !token.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether `c` is a word character for the opening-quote rule (Unicode letters, marks, decimal
/// digits, connector punctuation and joiners, as Python's `regex` package counts them).
fn is_regex_word(c: char) -> bool {
    static WORD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\A\w\z").expect("valid"));
    let mut buf = [0; 4];
    WORD.is_match(c.encode_utf8(&mut buf))
}

/// Whether `c` is a word character for the contraction rules: letters, numbers and `_`, as
/// Python's `re` counts them (`str.isalnum`; unlike `char::is_alphanumeric`, no combining marks).
fn is_re_word(c: char) -> bool {
    static WORD: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\A[\p{L}\p{N}_]\z").expect("valid"));
    let mut buf = [0; 4];
    WORD.is_match(c.encode_utf8(&mut buf))
}

/// Python's `str.isspace`, which `str.split` splits on: Unicode white space and the four
/// information separators U+001C–U+001F.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Whether `c` equals the ASCII lower-case letter `letter` ignoring case, as Python's `re` with
/// `IGNORECASE` compares them (which also pairs `ſ` with `s`, the Kelvin sign with `k`, and the
/// dotted and dotless capital and small i with `i`).
fn same_letter_ignoring_case(c: char, letter: char) -> bool {
    c.to_ascii_lowercase() == letter
        || matches!(
            (letter, c),
            ('s', 'ſ') | ('k', '\u{212a}') | ('i', '\u{130}' | '\u{131}')
        )
}

/// Splits a `'` from the word it opens ("'hello" → "' hello"), unless a word character precedes
/// it or the word is one of the clitics `re ve ll m t s d n` ("'s" stays whole).
fn split_opening_single_quotes(text: &mut String) {
    const CLITICS: [&str; 8] = ["re", "ve", "ll", "m", "t", "s", "d", "n"];
    if !text.contains('\'') {
        return;
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        out.push(c);
        if c != '\'' || (i > 0 && is_regex_word(chars[i - 1])) {
            continue;
        }
        let word_len = chars[i + 1..]
            .iter()
            .take_while(|&&w| is_regex_word(w))
            .count();
        if word_len == 0 {
            continue;
        }
        let word = &chars[i + 1..i + 1 + word_len];
        let clitic = CLITICS.iter().any(|clitic| {
            clitic.chars().count() == word.len()
                && clitic.chars().zip(word).all(|(l, &w)| {
                    // This rule comes from the `regex` package, whose case folding pairs `ſ`
                    // with `s` but not the dotless i with `i` (no clitic has an i).
                    same_letter_ignoring_case(w, l)
                })
        });
        if !clitic {
            out.push(' ');
        }
    }
    *text = out;
}

/// What must follow a contraction for it to split.
#[derive(Clone, Copy)]
enum Ending {
    /// A non-word character or the end of the text.
    WordBoundary,
    /// A whitespace character.
    Space,
}

/// Contractions split into two tokens wherever they form a whole word.
const CONTRACTIONS: [(&str, &str, Ending); 8] = [
    ("can", "not", Ending::WordBoundary),
    ("d", "'ye", Ending::WordBoundary),
    ("gim", "me", Ending::WordBoundary),
    ("gon", "na", Ending::WordBoundary),
    ("got", "ta", Ending::WordBoundary),
    ("lem", "me", Ending::WordBoundary),
    ("more", "'n", Ending::WordBoundary),
    ("wan", "na", Ending::Space),
];

/// Contractions split only after a space (they start with a quote).
const SPACE_CONTRACTIONS: [(&str, &str); 2] = [("'t", "is"), ("'t", "was")];

/// Replaces each occurrence of `first second` (ignoring case) by ` first second `, keeping the
/// text's own letters. The occurrence must start the text or follow a non-word character (or,
/// with `after`, follow that character, which the replacement drops), and be followed as
/// `ending` says.
fn split_contraction(
    text: &mut String,
    after: Option<char>,
    first: &str,
    second: &str,
    ending: Ending,
) {
    // Most captions hold no contraction: an ASCII text without the letters is left alone
    // (non-ASCII text is scanned, since `ſ`, `ı`, `İ` and the Kelvin sign match letters too).
    let needle = format!("{first}{second}");
    if text.is_ascii()
        && !text
            .as_bytes()
            .windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
    {
        return;
    }
    let chars: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = first.chars().chain(second.chars()).collect();
    let split = first.chars().count();
    let fits = |start: usize| -> bool {
        let body = start + usize::from(after.is_some());
        let end = body + pattern.len();
        if end > chars.len() {
            return false;
        }
        let body_ok = chars[body..end]
            .iter()
            .zip(&pattern)
            .all(|(&c, &p)| c == p || (p.is_ascii_lowercase() && same_letter_ignoring_case(c, p)));
        let before_ok = || match after {
            Some(c) => chars[start] == c,
            None => start == 0 || !is_re_word(chars[start - 1]),
        };
        let end_ok = || match ending {
            Ending::WordBoundary => chars.get(end).is_none_or(|&c| !is_re_word(c)),
            Ending::Space => chars.get(end).is_some_and(|&c| is_python_space(c)),
        };
        body_ok && before_ok() && end_ok()
    };
    let mut out = String::with_capacity(text.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        if !fits(i) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let body = i + usize::from(after.is_some());
        out.push(' ');
        out.extend(&chars[body..body + split]);
        out.push(' ');
        out.extend(&chars[body + split..body + pattern.len()]);
        out.push(' ');
        i = body + pattern.len();
    }
    *text = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        nltk_word_tokenize(text)
    }

    #[test]
    fn splits_clitics_and_keeps_hyphens_and_numbers() {
        assert_eq!(
            tokens("the dog isn't sleeping, it's a man's t-shirt."),
            [
                "the", "dog", "is", "n't", "sleeping", ",", "it", "'s", "a", "man", "'s",
                "t-shirt", "."
            ]
        );
        assert_eq!(
            tokens("1,000 dogs at 12:30 cost $3.50 (roughly)"),
            [
                "1,000", "dogs", "at", "12:30", "cost", "$", "3.50", "(", "roughly", ")"
            ]
        );
    }

    #[test]
    fn quotes_become_treebank_quotes() {
        assert_eq!(
            tokens(r#""stop" says the 'sign'"#),
            ["``", "stop", "''", "says", "the", "'", "sign", "'"]
        );
        assert_eq!(tokens("'s at the start"), ["'s", "at", "the", "start"]);
        assert_eq!(
            tokens("the players' uniforms"),
            ["the", "players", "'", "uniforms"]
        );
    }

    #[test]
    fn only_the_final_period_splits() {
        assert_eq!(
            tokens("st. louis at 10 a.m. today..."),
            ["st.", "louis", "at", "10", "a.m.", "today", "..."]
        );
        assert_eq!(
            tokens("a clock at 10 a.m."),
            ["a", "clock", "at", "10", "a.m", "."]
        );
        assert_eq!(
            tokens("(in parentheses.)"),
            ["(", "in", "parentheses", ".", ")"]
        );
    }

    #[test]
    fn fixed_contractions() {
        assert_eq!(
            tokens("i cannot, gonna wanna. wanna 'tis"),
            [
                "i", "can", "not", ",", "gon", "na", "wanna.", "wan", "na", "'", "tis"
            ]
        );
        assert_eq!(tokens("cannotcannot"), ["cannotcannot"]);
        assert_eq!(tokens("CANNOT"), ["CAN", "NOT"]);
    }

    #[test]
    fn whitespace_only_gives_no_tokens() {
        assert!(tokens("").is_empty());
        assert!(tokens(" \t\n ").is_empty());
        assert_eq!(tokens("  two\twords\n"), ["two", "words"]);
    }
}
