//! Hand-written lexers for the split regexes that byte-level HF tokenizers use most, exactly
//! equivalent to running the regex (Oniguruma semantics) with `find_iter`: GPT-2's
//! `ByteLevel` regex, and the Llama-3 family (Llama-3, Qwen2, cl100k as read by HF,
//! cl100k as supertok writes it). They are selected by the exact pattern string and are
//! differentially tested against the regex path.

use super::bytelevel::GPT2_PATTERN;
use super::unicode::{class, LETTER, NUMBER, OTHER, SPACE};

/// Llama-3's split pattern.
pub const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's split pattern (single digits).
pub const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// tiktoken's cl100k pattern verbatim; under Oniguruma `\p{N}{1,3}+` is `(?:\p{N}{1,3})+`.
pub const CL100K_RAW: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s";
/// cl100k converted to Oniguruma syntax (what `from_bpe`/`from_tiktoken` write).
pub const CL100K_ONIG: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|(?>\p{N}{1,3})| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s";

/// A hand-written lexer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lexer {
    /// GPT-2's `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    Gpt2,
    /// The Llama-3 family.
    Modern {
        /// Longest run of numbers in one piece (`None`: unlimited).
        max_digits: Option<usize>,
        /// Whether a whitespace run at the end of the text is one piece even when it holds
        /// a newline (cl100k's `\s++$` comes before `\s*[\r\n]`).
        end_first: bool,
    },
}

impl Lexer {
    /// The lexer for `pattern` (Oniguruma syntax), if there is one.
    pub fn for_pattern(pattern: &str) -> Option<Self> {
        Some(match pattern {
            GPT2_PATTERN => Lexer::Gpt2,
            LLAMA3 => Lexer::Modern {
                max_digits: Some(3),
                end_first: false,
            },
            QWEN2 => Lexer::Modern {
                max_digits: Some(1),
                end_first: false,
            },
            CL100K_RAW => Lexer::Modern {
                max_digits: None,
                end_first: true,
            },
            CL100K_ONIG => Lexer::Modern {
                max_digits: Some(3),
                end_first: true,
            },
            _ => return None,
        })
    }

    /// Call `f(start, end)` for every match, in order (the matches cover `s`).
    #[inline]
    pub fn for_each_match<F: FnMut(usize, usize)>(&self, s: &str, f: F) {
        match *self {
            Lexer::Gpt2 => gpt2(s, f),
            Lexer::Modern {
                max_digits,
                end_first,
            } => modern(s, max_digits.unwrap_or(usize::MAX), end_first, f),
        }
    }
}

/// Char, class and length at byte `i` (which must be a char boundary below `b.len()`).
#[inline(always)]
fn at(s: &str, i: usize) -> (char, u8, usize) {
    let b = s.as_bytes()[i];
    if b < 0x80 {
        let c = b as char;
        let k = if b.is_ascii_alphabetic() {
            LETTER
        } else if b.is_ascii_digit() {
            NUMBER
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C) {
            SPACE
        } else {
            OTHER
        };
        return (c, k, 1);
    }
    // `s` is valid UTF-8 and `i` a char boundary: decode the sequence from its bytes
    // (no re-validation, no slicing of the str)
    let bs = s.as_bytes();
    let cont = |k: usize| (bs.get(i + k).copied().unwrap_or(0x80) & 0x3f) as u32;
    let (cp, len) = if b < 0xe0 {
        ((b as u32 & 0x1f) << 6 | cont(1), 2)
    } else if b < 0xf0 {
        ((b as u32 & 0x0f) << 12 | cont(1) << 6 | cont(2), 3)
    } else {
        (
            (b as u32 & 0x07) << 18 | cont(1) << 12 | cont(2) << 6 | cont(3),
            4,
        )
    };
    let c = char::from_u32(cp).unwrap_or('\u{FFFD}');
    (c, class(c), len)
}

/// End of the run of chars of class `k` starting at `i`.
#[inline(always)]
fn run(s: &str, mut i: usize, k: u8) -> usize {
    let n = s.len();
    while i < n {
        let (_, k2, l) = at(s, i);
        if k2 != k {
            break;
        }
        i += l;
    }
    i
}

/// End of a whitespace run starting at `i`, and the start of its last char.
#[inline(always)]
fn space_run(s: &str, mut i: usize) -> (usize, usize) {
    let n = s.len();
    let mut last = i;
    while i < n {
        let (_, k, l) = at(s, i);
        if k != SPACE {
            break;
        }
        last = i;
        i += l;
    }
    (i, last)
}

/// Length of a contraction (`s`, `t`, `re`, `ve`, `m`, `ll`, `d`) at the start of `b` (the
/// bytes after an apostrophe).
#[inline(always)]
fn contraction(s: &str, i: usize, ci: bool) -> Option<usize> {
    let b = &s.as_bytes()[i..];
    let low = |x: u8| if ci { x.to_ascii_lowercase() } else { x };
    let c0 = low(*b.first()?);
    match c0 {
        b's' | b't' | b'm' | b'd' => return Some(1),
        b'r' | b'v' | b'l' => {
            let c1 = low(*b.get(1)?);
            let want = match c0 {
                b'r' | b'v' => b'e',
                _ => b'l',
            };
            return (c1 == want).then_some(2);
        }
        _ => {}
    }
    // Unicode simple case folding: U+017F LATIN SMALL LETTER LONG S matches `s`
    if ci && b.starts_with("ſ".as_bytes()) {
        return Some(2);
    }
    None
}

fn gpt2<F: FnMut(usize, usize)>(s: &str, mut f: F) {
    let n = s.len();
    let mut i = 0;
    while i < n {
        let (c, k, l) = at(s, i);
        if c == '\'' {
            if let Some(m) = contraction(s, i + 1, false) {
                f(i, i + 1 + m);
                i += 1 + m;
                continue;
            }
        }
        let (p, kind) = if c == ' ' && i + 1 < n {
            let (_, k2, _) = at(s, i + 1);
            if k2 != SPACE {
                (i + 1, k2)
            } else {
                (i, k)
            }
        } else {
            (i, k)
        };
        let end = match kind {
            LETTER | NUMBER | OTHER => run(s, p, kind),
            _ => {
                let (j, last) = space_run(s, i);
                if j == n || last == i {
                    j
                } else {
                    last
                }
            }
        };
        let end = end.max(i + l);
        f(i, end);
        i = end;
    }
}

fn modern<F: FnMut(usize, usize)>(s: &str, max_digits: usize, end_first: bool, mut f: F) {
    let n = s.len();
    let b = s.as_bytes();
    let mut i = 0;
    while i < n {
        let (c, k, l) = at(s, i);
        // 1. contractions, case-insensitive
        if c == '\'' {
            if let Some(m) = contraction(s, i + 1, true) {
                f(i, i + 1 + m);
                i += 1 + m;
                continue;
            }
        }
        // 2. [^\r\n\p{L}\p{N}]?\p{L}+
        if k == LETTER {
            let e = run(s, i + l, LETTER);
            f(i, e);
            i = e;
            continue;
        }
        if k != NUMBER && c != '\r' && c != '\n' && i + l < n {
            let (_, k2, l2) = at(s, i + l);
            if k2 == LETTER {
                let e = run(s, i + l + l2, LETTER);
                f(i, e);
                i = e;
                continue;
            }
        }
        // 3. \p{N}{1,max}
        if k == NUMBER {
            let mut e = i + l;
            let mut count = 1;
            while e < n && count < max_digits {
                let (_, k2, l2) = at(s, e);
                if k2 != NUMBER {
                    break;
                }
                e += l2;
                count += 1;
            }
            f(i, e);
            i = e;
            continue;
        }
        // 4. ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        let other_start = if k == OTHER {
            Some(i)
        } else if c == ' ' && i + 1 < n && at(s, i + 1).1 == OTHER {
            Some(i + 1)
        } else {
            None
        };
        if let Some(p) = other_start {
            let mut e = run(s, p, OTHER);
            while e < n && (b[e] == b'\r' || b[e] == b'\n') {
                e += 1;
            }
            f(i, e);
            i = e;
            continue;
        }
        // whitespace
        let (j, last) = space_run(s, i);
        if end_first && j == n {
            f(i, j);
            i = j;
            continue;
        }
        // \s*[\r\n]+ (or \s*[\r\n]): up to the last newline of the run
        let mut q = j;
        let mut found = false;
        while q > i {
            q -= 1;
            if b[q] == b'\r' || b[q] == b'\n' {
                found = true;
                break;
            }
        }
        if found {
            f(i, q + 1);
            i = q + 1;
            continue;
        }
        // \s+(?!\S) | \s+
        let e = if j == n || last == i { j } else { last };
        f(i, e);
        i = e;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hf::pattern::regex;

    fn lex(lx: Lexer, s: &str) -> Vec<(usize, usize)> {
        let mut v = vec![];
        lx.for_each_match(s, |a, b| v.push((a, b)));
        v
    }

    fn re(r: &crate::pretok::RegexSplitter, s: &str) -> Vec<(usize, usize)> {
        r.regex()
            .find_iter(s)
            .map(|m| {
                let m = m.unwrap();
                (m.start(), m.end())
            })
            .collect()
    }

    const ALPHABET: &[&str] = &[
        " ", "  ", "\t", "\n", "\r", "\r\n", "\u{3000}", "\u{a0}", "\u{85}", "\u{2028}", "a", "Z",
        "é", "ſ", "ß", "中", "'", "'s", "'S", "'re", "'RE", "'ll", "'Ll", "'ve", "'d", "'m", "'t",
        "'x", "'ſ", "1", "٣", "²", "½", "Ⅻ", ".", ",", "-", "😀", "\u{301}", "\u{200d}", "_", "/",
        "\u{b}", "\u{c}", "ǅ",
    ];

    #[test]
    fn cl100k_onig_is_the_converted_pattern() {
        assert_eq!(
            crate::hf::syntax::tiktoken_to_onig(crate::pretok::patterns::CL100K),
            CL100K_ONIG
        );
    }

    #[test]
    fn lexers_equal_regex_on_pseudo_random_text() {
        let cases = [GPT2_PATTERN, LLAMA3, QWEN2, CL100K_RAW, CL100K_ONIG]
            .map(|p| (p, regex(p).unwrap(), Lexer::for_pattern(p).unwrap()));
        let mut seed = 0x9E3779B97F4A7C15u64;
        for round in 0..20000 {
            let len = 1 + round % 24;
            let mut s = String::new();
            for _ in 0..len {
                crate::testutil::xorshift(&mut seed);
                s.push_str(ALPHABET[(seed % ALPHABET.len() as u64) as usize]);
            }
            for (p, r, lx) in &cases {
                assert_eq!(lex(*lx, &s), re(r, &s), "{p} on {s:?}");
            }
        }
    }
}
