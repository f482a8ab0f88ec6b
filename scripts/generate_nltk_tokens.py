#!/usr/bin/env python3
"""Reference word tokens for itm's `nltk_word_tokenize`, computed with NLTK itself.

The published recurrent models (VSE∞, SCAN, CHAN) split a caption into words with
`nltk.word_tokenize(caption.lower())`. This script runs exactly that call (with
`preserve_line=True`, so no sentence splitter and no NLTK data download is involved) on a list
of captions chosen to exercise every rule of NLTK's word tokenizer, and writes

    crates/itm-data/tests/fixtures/nltk_word_tokenize.json

an object with the NLTK version, the call, and `cases`: a list of {"caption", "lowercased",
"tokens"} (`lowercased` is Python's `caption.lower()`, which the Rust test compares with
`str::to_lowercase` before comparing the tokens). `--keep-case` skips the lower-casing (the
tokenizer's rules are partly case-insensitive; `lowercase` in the file says which was done).

With `--random N --out PATH` it instead writes N random strings built from the characters and
fragments the rules care about (same layout), for a broader check that is not committed:

    ITM_NLTK_FIXTURE=PATH cargo test --workspace --test nltk_tokenize

Run it from the repository root:

    python3 -m venv .venv && .venv/bin/pip install nltk
    .venv/bin/python scripts/generate_nltk_tokens.py
"""

import argparse
import json
import random
from pathlib import Path

import nltk

OUT = Path(__file__).resolve().parent.parent / "crates/itm-data/tests/fixtures/nltk_word_tokenize.json"

CAPTIONS = [
    # Plain COCO / Flickr30k-like captions.
    "A man riding a wave on top of a surfboard.",
    "A group of people standing around a kitchen.",
    "Two dogs playing with a frisbee in the park",
    "a plate of food with broccoli, rice and chicken",
    "A woman is holding an umbrella while walking down the street.",
    "There is a cat sitting on the couch next to a remote control",
    "An elephant walking through tall grass near trees.",
    "A young boy in a red shirt is swinging a baseball bat.",
    "Several motorcycles parked in a row along a city street .",
    "A bathroom with a toilet, sink, and shower.",
    "The giraffe is eating leaves from the top of the tree",
    "A double decker bus driving down a busy road.",
    "a clock tower with a sky background",
    "A skier is going down a snowy slope.",
    "Children play soccer on a grassy field.",
    "A man in a black jacket and a woman in a white dress.",
    "An old fashioned train pulling into a station",
    "Kites flying high over a crowded beach on a sunny day.",
    "A sandwich cut in half sitting on a white plate",
    "People are waiting for the train at the platform.",
    # Hyphens and dashes.
    "A man in a t-shirt and a baseball cap.",
    "A well-dressed woman in a black-and-white photo.",
    "A three-year-old child eating an ice-cream cone.",
    "A pizza with a thin crust -- cheese and pepperoni.",
    "A boy--about ten--holds a kite.",
    "Some people sit on a bench - one is reading.",
    "A dog - brown and white - runs on the sand.",
    "The score was 3-2 at half-time.",
    "A long---dash and a trailing dash-",
    "-leading dash on a caption",
    "An en dash 1990\u20132000 and an em dash\u2014like this.",
    "A figure dash \u2012 and a horizontal bar \u2015 here.",
    "Non-breaking\u2011hyphen and a minus \u2212 sign.",
    # Contractions of every kind the rules know.
    "The dog isn't sleeping, it's playing.",
    "A man's hat is on the woman's head.",
    "They're standing by the bus stop.",
    "We've got two cats and they've got none.",
    "She'll ride the horse and he'll walk.",
    "He'd like a sandwich; I'd like soup.",
    "I'm sitting on the bench and you're standing.",
    "The kids can't reach the shelf and won't try.",
    "It doesn't matter, they don't care, he didn't go.",
    "You cannot park here.",
    "The crowd is gonna cheer and I wanna watch.",
    "Gimme the ball, lemme see, we gotta go.",
    "He is more'n happy, d'ye see?",
    "'Tis the season and 'twas the night before.",
    "wanna, wanna. wanna",
    "The players' uniforms are blue.",
    "The boys' bikes and the girls' scooters.",
    "James' car is parked by Chris's house.",
    "Rock 'n' roll band playing in the '90s.",
    "An ol' truck in the yard.",
    "y'all come back now",
    "O'Neil's pub on the corner",
    "ma'am, it's 5 o'clock",
    "Don't you know it's the dog's bowl?",
    "I'M HERE AND YOU'RE THERE, WE'VE WON, THEY'LL GO, HE'D SAY, IT'S OK, DON'T.",
    "CANNOT GONNA GIMME LEMME WANNA GOTTA",
    "cannotcannot cannot's scannot uncannot",
    "the cat's' toy",
    "it's' done",
    # Quotes.
    'A sign that says "STOP" on a pole.',
    '"A dog on a couch," she said.',
    "A shirt with the word 'love' printed on it.",
    "'A quoted caption'",
    "A ''doubly quoted'' phrase and a ``backtick'' phrase.",
    "A sign reading \u201cfresh fruit\u201d over a stand.",
    "The \u2018best\u2019 pizza in town.",
    "A \u00abFrench\u00bb quote and a \u201elow\u201c quote.",
    'He said "hi"and left.',
    '("quoted in parens")',
    '["quoted in brackets"]',
    '<"quoted in angles">',
    "A ```triple``` backtick.",
    "'s at the start",
    "'re 've 'll 'm 't 'd 'n",
    "x 'hello' y 'a' z",
    "The word 'n' and the word 'tis'.",
    "it' s odd",
    # Parentheses and brackets.
    "A cat (black) sleeping on a bed.",
    "A bowl of fruit [apples and oranges] on a table.",
    "A sign {with braces} and <angle brackets>.",
    "(A caption in parentheses.)",
    "A man (left) and a woman (right).",
    # Numbers.
    "A sign that says 1,000 miles to go.",
    "The price is $3.50 for a coffee.",
    "A 2.5 liter bottle on the counter.",
    "The time is 12:30 on the clock.",
    "Score: 10,5 and ratio 3:2.",
    "A sale of 50% off everything.",
    "A 1,000,000 dollar check.",
    "There are 3 dogs, 2 cats, and 1 bird.",
    "Version 1.2.3 of the software.",
    "A temperature of -5.5 degrees.",
    "A bus numbered 42.",
    "The year was 1999.",
    "a 100m race and a 4x4 truck",
    # Periods, abbreviations, ellipsis.
    "A clock showing 10 a.m. on a wall",
    "A clock showing 10 a.m.",
    "Mr. Smith and Dr. Jones at the U.S. embassy.",
    "A bus going to St. Louis. It is red.",
    "A sign saying e.g. and i.e. and etc.",
    "A dog waiting...",
    "A dog waiting... for its owner.",
    "A dog waiting.. and a cat..",
    "A dog waiting\u2026 unicode ellipsis.",
    "Hello.World and www.example.com",
    "A caption that ends with a period and a quote.\"",
    "A caption ending in period and paren.)",
    "A caption ending in period, quote, paren.\")",
    "A caption ending with period then spaces.   ",
    "A caption ending with period then a tab.\t",
    "A caption ending with a period and a newline.\n",
    "A caption ending with a comma,",
    "A caption ending with a colon:",
    "A caption ending with a comma and newline,\n",
    "...",
    ".",
    "a.",
    "..a",
    "A sentence. Another sentence. A third.",
    "A sentence ending in two periods..",
    "Period before quote.' and more",
    # Other punctuation.
    "Is that a dog?",
    "What a beautiful view!",
    "Wow!!! Really???",
    "A menu: burgers; fries; drinks.",
    "Salt & pepper shakers on the table.",
    "Email me @ home #1 choice",
    "A sign saying * sale * today",
    "A sign with a 5*star rating",
    "A price tag of \u00a35 and \u20ac10.",
    "A slash/backslash\\pipe|tilde~caret^ and plus+equals=.",
    "An underscore_word and a_b_c.",
    "A comma,without space and a colon:without space.",
    "Odd spacing ,like this ;and this :here",
    "A caption with ,, double commas and :: double colons.",
    "a,b,c and 1,b and a,1",
    "??!!",
    # Unicode letters and whitespace.
    "A caf\u00e9 with na\u00efve d\u00e9cor.",
    "A CAF\u00c9 SIGN IN UPPER CASE",
    "\u00dcber a gro\u00dfe Stra\u00dfe.",
    "A cafe\u0301 written with a combining accent.",
    "\u039c\u0399\u0391 \u039f\u0394\u039f\u03a3 in Greek.",
    "\u041a\u043e\u0448\u043a\u0430 \u043d\u0430 \u0434\u0438\u0432\u0430\u043d\u0435.",
    "\u4e00\u53ea\u732b\u5728\u6c99\u53d1\u4e0a\u3002",
    "An emoji \U0001f600 in a caption.",
    "Multiple   spaces    between words.",
    "Tabs\tbetween\twords.",
    "Line\nbreaks\nin a caption.",
    "A non\u00a0breaking space and a thin\u2009space.",
    "  Leading and trailing spaces.  ",
    "",
    "   ",
    "\t",
    "word",
    "'",
    '"',
    "''",
    "--",
    "I",
    "\u0130stanbul street",
    "the \u212aelvin sign and the long \u017f",
]

# Fragments for --random: every character class and context a rule looks at.
FRAGMENTS = [
    "a", "b", "n", "s", "t", "d", "m", "re", "ve", "ll", "is", "was", "e", "1", "2", "0", "\u00e9",
    "\u0301", "_", "A", "S", "N'T", "n't", "'", "''", '"', "`", "``", ".", "..", "...", ",", ":",
    ";", "?", "!", "(", ")", "[", "]", "{", "}", "<", ">", "-", "--", "&", "%", "$", "@", "#",
    "*", "\u00ab", "\u00bb", "\u201c", "\u201d", "\u2018", "\u2019", "\u201e", "\u2013", "\u2014",
    "\u2012", "\u2015", " ", " ", " ", "  ", "\t", "\n", "\u00a0", "\u2009", "\x1c", "cannot",
    "gonna", "wanna", "gimme", "lemme", "gotta", "more'n", "d'ye", "'tis", "'twas", "can",
    "not", "ye", "'t", "\u017f", "\u0131", "\u0130", "\u212a", "\u0660", "\u00b2", "\u2167",
    # Upper and mixed case, for --keep-case.
    "CANNOT", "CanNot", "GIMME", "WANNA", "D'YE", "MORE'N", "'TIS", "'Twas", "'T", "IS", "WAS",
    "'S", "'RE", "'Ll", "'VE", "'M", "'D", "N'T", "N't", "LL", "RE", "VE", "G\u0131mme", "\u0130S",
]


def random_strings(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        out.append("".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 14))))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, help="write N random strings instead")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--keep-case", action="store_true", help="do not lower-case first")
    args = parser.parse_args()
    captions = CAPTIONS if args.random is None else random_strings(args.random, args.seed)
    cases = []
    for caption in captions:
        lowered = caption if args.keep_case else caption.lower()
        tokens = nltk.word_tokenize(lowered, preserve_line=True)
        cases.append({"caption": caption, "lowercased": lowered, "tokens": tokens})
    document = {
        "nltk_version": nltk.__version__,
        "lowercase": not args.keep_case,
        "call": "nltk.word_tokenize(caption%s, preserve_line=True)"
        % ("" if args.keep_case else ".lower()"),
        "cases": cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # One case a line, so that a diff of the file shows which captions changed.
    head = json.dumps({k: v for k, v in document.items() if k != "cases"}, ensure_ascii=False)
    lines = ",\n".join("  " + json.dumps(case, ensure_ascii=False) for case in cases)
    text = head[:-1] + ', "cases": [\n' + lines + "\n]}\n"
    assert json.loads(text) == document
    args.out.write_text(text, encoding="utf-8")
    print(f"{len(cases)} captions -> {args.out} (nltk {nltk.__version__})")


if __name__ == "__main__":
    main()
