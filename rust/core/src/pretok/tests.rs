//! Differential tests: every hand-written lexer against the fancy-regex path.

use proptest::prelude::*;

use super::lexers::Lexer;
use super::patterns::{CL100K, O200K, R50K};
use super::Pretokenizer;

/// Fragments that exercise every branch of the three patterns.
const ATOMS: &[&str] = &[
    "a",
    "b",
    "Z",
    "Q",
    "hello",
    "World",
    "HELLO",
    "camelCase",
    "ABCdef",
    "x",
    "é",
    "É",
    "e\u{301}",
    "\u{301}",
    "\u{300}\u{301}",
    "\u{94d}",
    "क्षि",
    "ß",
    "ſ",
    "\u{212a}",
    "ǅ",
    "ʰ",
    "ª",
    "中文",
    "日本語",
    "ｶﾀｶﾅ",
    "한국어",
    "ไทย",
    "Ελληνικά",
    "кириллица",
    "ქართული",
    "0",
    "7",
    "123",
    "12345",
    "½",
    "²",
    "Ⅻ",
    "٣٤",
    "१२",
    " ",
    "  ",
    "   ",
    "\t",
    "\n",
    "\r",
    "\r\n",
    "\n\n",
    "\x0b",
    "\x0c",
    "\u{85}",
    "\u{a0}",
    "\u{3000}",
    "\u{2028}",
    "\u{2029}",
    "\u{200b}",
    "\u{1680}",
    "\u{feff}",
    "'",
    "'s",
    "'S",
    "'t",
    "'T",
    "'re",
    "'RE",
    "'rE",
    "'ve",
    "'Ve",
    "'m",
    "'M",
    "'ll",
    "'LL",
    "'lL",
    "'d",
    "'D",
    "'ſ",
    "'x",
    "''",
    "/",
    "//",
    ".",
    ",",
    "!",
    "?",
    "(",
    ")",
    "{",
    "}",
    "-",
    "_",
    "=",
    "+",
    "*",
    "#",
    "@",
    "\"",
    "\\",
    "<|endoftext|>",
    "...",
    "—",
    "“",
    "”",
    "«",
    "»",
    "€",
    "©",
    "\u{1f600}",
    "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}",
    "\u{fe0f}",
    "\u{1f44d}\u{1f3fd}",
    "\u{200d}",
    "\u{10ffff}",
    "\u{e000}",
    "\u{0}",
    "\u{1f}",
    "\u{1c}",
    "\u{7f}",
];

fn atom() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(ATOMS).prop_map(|s| s.to_string()),
        1 => any::<char>().prop_map(|c| c.to_string()),
        1 => (prop::sample::select(&[" ", "\n", "\t", "a", "1", "中", "\u{3000}", "!"][..]), 2usize..40)
            .prop_map(|(s, n)| s.repeat(n)),
    ]
}

fn nasty_text() -> impl Strategy<Value = String> {
    prop::collection::vec(atom(), 0..40).prop_map(|v| v.concat())
}

fn check(pattern: &str, text: &str) -> Result<(), TestCaseError> {
    let fast = Pretokenizer::new(pattern).unwrap();
    assert!(fast.lexer().is_some());
    let slow = Pretokenizer::new_regex(pattern).unwrap();
    let a = fast.split(text).unwrap();
    let b = slow.split(text).unwrap();
    prop_assert_eq!(&a, &b, "pattern {:?} text {:?}", pattern, text);
    // the pieces tile the text
    let mut pos = 0;
    for &(s, e) in &a {
        prop_assert_eq!(s, pos);
        prop_assert!(e > s);
        pos = e;
    }
    prop_assert_eq!(pos, text.len());
    // safe boundaries are piece starts
    let starts: std::collections::HashSet<usize> = a.iter().map(|p| p.0).collect();
    for p in 1..text.len() {
        if Lexer::is_safe_boundary(text.as_bytes(), p) {
            prop_assert!(starts.contains(&p), "boundary {} in {:?}", p, text);
        }
    }
    Ok(())
}

proptest! {
    // PROPTEST_CASES raises the number of cases for long runs.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(600)
    ))]

    #[test]
    fn r50k_matches_regex(text in nasty_text()) {
        check(R50K, &text)?;
    }

    #[test]
    fn cl100k_matches_regex(text in nasty_text()) {
        check(CL100K, &text)?;
    }

    #[test]
    fn o200k_matches_regex(text in nasty_text()) {
        check(O200K, &text)?;
    }

    #[test]
    fn any_string_matches_regex(text in any::<String>()) {
        for p in [R50K, CL100K, O200K] {
            check(p, &text)?;
        }
    }
}

#[test]
fn fixed_cases() {
    let cases = [
        "",
        " ",
        "hello world",
        "  hello   world  ",
        "a\n\n b",
        "a \n\nb",
        "x\u{3000}日本",
        "\u{3000}\u{3000}日本",
        "don't DON'T it'S we'LL I'm",
        "1234567 12 ½½½½",
        "foo!!!\n\n/bar",
        "\t\tif x:\r\n\t\t\treturn",
        "ABCdEFG abc\u{301}DEF",
        "\u{301}\u{301}x",
        ".\u{301}a",
        "'ſ 'ſt",
        "a  \n",
        "a \n  ",
    ];
    for t in cases {
        for p in [R50K, CL100K, O200K] {
            check(p, t).unwrap();
        }
    }
}

#[test]
fn known_patterns_select_lexers() {
    for p in [R50K, CL100K, O200K] {
        assert!(Pretokenizer::new(p).unwrap().lexer().is_some());
        assert!(Pretokenizer::new_regex(p).unwrap().lexer().is_none());
        assert_eq!(Pretokenizer::new(p).unwrap().pattern(), p);
    }
    assert!(Pretokenizer::new(r"\w+").unwrap().lexer().is_none());
}

/// Characters of the classes the ASCII fast paths of the o200k lexer branch on, plus the
/// non-ASCII characters that could continue their runs (letters, marks, `N`, `Q`, `\s`).
const FAST_PATH_CHARS: &[char] = &[
    'a',
    'z',
    'q',
    'A',
    'Z',
    'Q',
    '0',
    '5',
    '9',
    ' ',
    ' ',
    ' ',
    '\n',
    '\r',
    '\t',
    '\x0b',
    '.',
    ',',
    '(',
    ')',
    '-',
    '_',
    '/',
    '\'',
    '"',
    '#',
    '=',
    ':',
    '{',
    '}',
    '\x1c',
    '\x7f',
    '\0',
    's',
    'S',
    't',
    'l',
    'L',
    'v',
    'e',
    'r',
    'm',
    'd',
    'é',
    'É',
    '\u{301}',
    '²',
    '٣',
    '½',
    '—',
    '“',
    '中',
    '\u{3000}',
    '\u{a0}',
    '\u{85}',
    'ſ',
    'ǅ',
    'ʰ',
    '\u{1f600}',
];

/// Texts of up to `runs` runs of one character of `chars`, each shorter than `run`
/// characters (so that digit runs, capitals, indentation and repeated letters occur).
fn char_runs(chars: &'static [char], run: usize, runs: usize) -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(chars), 1..run), 0..runs).prop_map(|v| {
        v.into_iter()
            .flat_map(|(c, k)| std::iter::repeat_n(c, k))
            .collect()
    })
}

/// `pattern`'s lexer against the regex from every character offset of `text` (a match
/// depends only on the text after its start), then the whole split ([`check`]).
fn check_every_offset(pattern: &str, text: &str) -> Result<(), TestCaseError> {
    let lexer = super::lexers::for_pattern(pattern).unwrap();
    let slow = Pretokenizer::new_regex(pattern).unwrap();
    for (k, _) in text.char_indices() {
        let first = slow.split(&text[k..]).unwrap()[0];
        prop_assert_eq!(
            lexer.next_end(text.as_bytes(), k) - k,
            first.1,
            "pattern {:?} text {:?} offset {}",
            pattern,
            text,
            k
        );
    }
    check(pattern, text)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(600)
    ))]

    /// The o200k lexer's ASCII fast paths (capitals-only words, digits, punctuation runs
    /// with or without a leading space, whitespace runs) against the regex, from every
    /// character offset (a match depends only on the text after its start).
    #[test]
    fn o200k_fast_paths_match_regex_at_every_offset(text in char_runs(FAST_PATH_CHARS, 5, 12)) {
        check_every_offset(O200K, &text)?;
        check(CL100K, &text)?;
    }
}

/// Characters of every class the non-ASCII word paths branch on: lower-case (`Ll`),
/// upper-case (`Lu`), title-case (`Lt`), modifier (`Lm`) and other (`Lo`) letters, marks
/// (`Mn`, `Mc`, `Me`), numbers (`Nd`, `Nl`, `No`), and the characters that can end or
/// prefix a word (ZWJ, NBSP, U+3000, other spaces, punctuation, emoji, `\r\n`), in one-,
/// two-, three- and four-byte UTF-8, with ASCII letters and the contraction letters.
const WORD_PATH_CHARS: &[char] = &[
    // ASCII
    'a',
    'z',
    's',
    't',
    'l',
    'e',
    'A',
    'Z',
    'S',
    'T',
    '0',
    '7',
    ' ',
    ' ',
    '\n',
    '\r',
    '\t',
    '.',
    '\'',
    '-',
    '/',
    '"',
    // Ll
    'é',
    'ß',
    'а',
    'я',
    'ω',
    'ı',
    'ſ',
    'ა',
    'ệ',
    '\u{1d41a}',
    // Lu
    'É',
    'Ж',
    'Ω',
    'Ệ',
    '\u{1c90}',
    '\u{212a}',
    '\u{1d400}',
    // Lt
    'ǅ',
    '\u{1f88}',
    // Lm
    'ʰ',
    'ˆ',
    'ー',
    '\u{16f93}',
    // Lo
    'ª',
    'א',
    'ب',
    'க',
    'क',
    '中',
    '한',
    '\u{20000}',
    // marks: Mn, Mc, Me in two, three and four bytes
    '\u{301}',
    '\u{64e}',
    '\u{94d}',
    '\u{bc1}',
    '\u{20dd}',
    '\u{1d167}',
    // numbers
    '٣',
    '१',
    '½',
    'Ⅻ',
    '\u{1d7d8}',
    // prefixes and ends
    '\u{200d}',
    '\u{a0}',
    '\u{3000}',
    '\u{2028}',
    '\u{85}',
    '—',
    '«',
    '€',
    '\u{feff}',
    '\u{1f600}',
    '\u{e000}',
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(600)
    ))]

    /// The three lexers on words of non-ASCII letters and marks (every case class, one-
    /// to four-byte UTF-8, after and before ASCII letters, prefixes and numbers) against
    /// the regex from every character offset.
    #[test]
    fn word_paths_match_regex_at_every_offset(text in char_runs(WORD_PATH_CHARS, 4, 14)) {
        for pattern in [CL100K, O200K, R50K] {
            check_every_offset(pattern, &text)?;
        }
    }
}

/// Base64 and its neighbours, one character at a time: random mixes of capitals,
/// lower-case letters, digits and `+/=`, with a few characters that end or continue the
/// ASCII fast paths (a contraction's apostrophe, `\r\n`, a space, a non-ASCII digit, a
/// combining mark, an accented letter, a non-ASCII capital).
const SHORT_PIECE_CHARS: &[char] = &[
    'A', 'B', 'Z', 'Q', 'a', 'b', 's', 't', 'z', '0', '1', '7', '9', '+', '/', '=', '\'', '\r',
    '\n', ' ', '\u{663}', '\u{301}', 'é', 'É',
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(600)
    ))]

    /// The lexers on random text of short pieces (o200k's word path, which counts a
    /// word's runs inside one 8-byte word, with their ends within or beyond it; digit
    /// groups; contractions) against the regex from every character offset.
    #[test]
    fn short_pieces_match_regex_at_every_offset(
        text in prop::collection::vec(
            prop_oneof![
                12 => prop::sample::select(&SHORT_PIECE_CHARS[..16]),
                1 => prop::sample::select(SHORT_PIECE_CHARS),
            ],
            0..48,
        ).prop_map(|v| v.into_iter().collect::<String>())
    ) {
        for pattern in [O200K, CL100K, R50K] {
            check_every_offset(pattern, &text)?;
        }
    }
}
