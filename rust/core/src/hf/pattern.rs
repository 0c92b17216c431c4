//! HF's `Pattern::find_matches` and `NormalizedString::split` semantics: a pattern cuts a
//! string into alternating non-matching and matching spans, then a delimiter behaviour
//! (`Removed`, `Isolated`, `MergedWithPrevious`, `MergedWithNext`, `Contiguous`) decides
//! which spans become pieces. Empty spans are dropped, as HF drops empty splits.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::pretok::{Pretokenizer, RegexSplitter};

/// HF's `SplitDelimiterBehavior`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behavior {
    Removed,
    Isolated,
    MergedWithPrevious,
    MergedWithNext,
    Contiguous,
}

impl Behavior {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Removed" => Behavior::Removed,
            "Isolated" => Behavior::Isolated,
            "MergedWithPrevious" => Behavior::MergedWithPrevious,
            "MergedWithNext" => Behavior::MergedWithNext,
            "Contiguous" => Behavior::Contiguous,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Behavior::Removed => "Removed",
            Behavior::Isolated => "Isolated",
            Behavior::MergedWithPrevious => "MergedWithPrevious",
            Behavior::MergedWithNext => "MergedWithNext",
            Behavior::Contiguous => "Contiguous",
        }
    }
}

/// The `pattern` field of `Split` / `Replace`: `{"String": ..}` or `{"Regex": ..}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatternSpec {
    String(String),
    Regex(String),
}

impl PatternSpec {
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        match self {
            PatternSpec::String(s) => m.insert("String".into(), Value::String(s.clone())),
            PatternSpec::Regex(s) => m.insert("Regex".into(), Value::String(s.clone())),
        };
        Value::Object(m)
    }
}

/// The right-aligned digit grouping idiom of SuperBPE's pre-tokenizer.
pub const DIGIT_GROUPS: &str = r"(?=(\d{3})+(?!\d))";

/// Something that finds matches in a string.
#[derive(Clone, Debug)]
pub enum Matcher {
    /// A regex (Oniguruma syntax) or an escaped literal, on the general regex path.
    Regex(RegexSplitter),
    /// `(?=(\d{3})+(?!\d))`, natively in O(n): an empty match before every position
    /// from which the rest of the run of decimal digits has a length divisible by 3.
    DigitGroups,
    /// Every character for which the predicate holds is one match.
    Chars(CharClass),
    /// A hand-written lexer equivalent to a well-known regex.
    Lexer(super::lexers::Lexer),
    /// The core pre-tokenizer for a tiktoken pattern that reads the same under both
    /// engines (o200k, r50k), so that the core's fastest implementation is used.
    Core(Pretokenizer),
}

/// Character predicates of HF's char-function patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CharClass {
    /// Rust's `char::is_numeric` (`Digits`).
    Numeric,
    /// Rust's `char::is_whitespace` (`WhitespaceSplit`).
    Whitespace,
    /// ASCII punctuation or Unicode general category P* (`Punctuation`).
    Punctuation,
}

impl CharClass {
    #[inline]
    pub(crate) fn test(self, c: char) -> bool {
        match self {
            // `char::is_numeric` (general category N), from a bitmap in the BMP (checked
            // over all code points in the tests)
            CharClass::Numeric => super::unicode::is_numeric(c),
            CharClass::Whitespace => c.is_whitespace(),
            CharClass::Punctuation => {
                c.is_ascii_punctuation() || (!c.is_ascii() && super::unicode::is_punctuation(c))
            }
        }
    }
}

impl Matcher {
    /// Compile a `Split`/`Replace` pattern.
    pub fn from_spec(spec: &PatternSpec) -> Result<Self> {
        match spec {
            PatternSpec::Regex(r) if r == DIGIT_GROUPS => Ok(Matcher::DigitGroups),
            PatternSpec::Regex(r) => match super::lexers::Lexer::for_pattern(r) {
                Some(lx) => Ok(Matcher::Lexer(lx)),
                // these patterns use no construct that Oniguruma reads differently
                None if r == crate::pretok::patterns::O200K
                    || r == crate::pretok::patterns::R50K =>
                {
                    Ok(Matcher::Core(Pretokenizer::new(r)?))
                }
                None => Ok(Matcher::Regex(regex(r)?)),
            },
            PatternSpec::String(s) => Ok(Matcher::Regex(regex(&fancy_regex::escape(s))?)),
        }
    }

    /// Append `(start, end, is_match)` spans covering `s` (HF's `find_matches`).
    pub fn find_matches(&self, s: &str, out: &mut Vec<(usize, usize, bool)>) -> Result<()> {
        if s.is_empty() {
            out.push((0, 0, false));
            return Ok(());
        }
        match self {
            Matcher::Regex(r) => {
                let mut prev = 0;
                for m in r.regex().find_iter(s) {
                    let m = m.map_err(|e| Error::RegexRuntime(e.to_string()))?;
                    if prev != m.start() {
                        out.push((prev, m.start(), false));
                    }
                    out.push((m.start(), m.end(), true));
                    prev = m.end();
                }
                if prev != s.len() {
                    out.push((prev, s.len(), false));
                }
            }
            Matcher::DigitGroups => {
                let mut prev = 0;
                for_each_digit_group_cut(s, |p| {
                    if prev != p {
                        out.push((prev, p, false));
                    }
                    out.push((p, p, true));
                    prev = p;
                });
                if prev != s.len() {
                    out.push((prev, s.len(), false));
                }
            }
            Matcher::Lexer(lx) => lx.for_each_match(s, |a, b| out.push((a, b, true))),
            Matcher::Core(p) => {
                let mut prev = 0;
                p.for_each_piece(s, |a, b| {
                    if prev != a {
                        out.push((prev, a, false));
                    }
                    out.push((a, b, true));
                    prev = b;
                    Ok(())
                })?;
                if prev != s.len() {
                    out.push((prev, s.len(), false));
                }
            }
            Matcher::Chars(class) => {
                let mut last = 0;
                for (i, c) in s.char_indices() {
                    if class.test(c) {
                        if last < i {
                            out.push((last, i, false));
                        }
                        let e = i + c.len_utf8();
                        out.push((i, e, true));
                        last = e;
                    }
                }
                if last < s.len() {
                    out.push((last, s.len(), false));
                }
            }
        }
        Ok(())
    }
}

/// Compile a regex written for Oniguruma.
pub fn regex(pattern: &str) -> Result<RegexSplitter> {
    let p = super::syntax::onig_classes(pattern).map_err(|m| Error::InvalidPattern {
        pattern: pattern.to_string(),
        message: m,
    })?;
    RegexSplitter::with_syntax(&p, true)
}

/// Call `f(p)` for every position `p` where `(?=(\d{3})+(?!\d))` matches (an empty match):
/// the decimal digits from `p` to the end of their run number a positive multiple of 3.
pub fn for_each_digit_group_cut<F: FnMut(usize)>(s: &str, mut f: F) {
    let b = s.as_bytes();
    let mut i = 0;
    // positions (byte offsets) of the digits of the current run
    let mut run: Vec<usize> = Vec::new();
    while i < b.len() {
        let (is_digit, len) = if b[i].is_ascii_digit() {
            (true, 1)
        } else if b[i] < 0x80 {
            (false, 1)
        } else {
            let c = s[i..].chars().next().unwrap_or('\u{FFFD}');
            (super::unicode::is_decimal_digit(c), c.len_utf8())
        };
        if is_digit {
            run.push(i);
        } else if !run.is_empty() {
            emit_run(&run, &mut f);
            run.clear();
        }
        i += len;
    }
    if !run.is_empty() {
        emit_run(&run, &mut f);
    }
}

fn emit_run<F: FnMut(usize)>(run: &[usize], f: &mut F) {
    let n = run.len();
    let mut k = n % 3;
    while k < n {
        f(run[k]);
        k += 3;
    }
}

/// Apply `behavior` to the spans of `s` and append the resulting non-empty pieces.
/// `invert` swaps matches and non-matches first (HF's `Invert`).
pub fn split(
    s: &str,
    matcher: &Matcher,
    invert: bool,
    behavior: Behavior,
    scratch: &mut Vec<(usize, usize, bool)>,
    out: &mut Vec<(usize, usize)>,
) -> Result<()> {
    scratch.clear();
    matcher.find_matches(s, scratch)?;
    if invert {
        for m in scratch.iter_mut() {
            m.2 = !m.2;
        }
    }
    let push = |out: &mut Vec<(usize, usize)>, a: usize, b: usize| {
        if a < b {
            out.push((a, b));
        }
    };
    match behavior {
        Behavior::Isolated => {
            for &(a, b, _) in scratch.iter() {
                push(out, a, b);
            }
        }
        Behavior::Removed => {
            for &(a, b, m) in scratch.iter() {
                if !m {
                    push(out, a, b);
                }
            }
        }
        Behavior::Contiguous | Behavior::MergedWithPrevious => {
            let mut acc: Vec<(usize, usize)> = Vec::with_capacity(scratch.len());
            let mut previous = false;
            for &(a, b, m) in scratch.iter() {
                let merge = if behavior == Behavior::Contiguous {
                    m == previous
                } else {
                    m && !previous
                };
                match acc.last_mut() {
                    Some(last) if merge => last.1 = b,
                    _ => acc.push((a, b)),
                }
                previous = m;
            }
            for (a, b) in acc {
                push(out, a, b);
            }
        }
        Behavior::MergedWithNext => {
            let mut acc: Vec<(usize, usize)> = Vec::with_capacity(scratch.len());
            let mut previous = false;
            for &(a, b, m) in scratch.iter().rev() {
                match acc.last_mut() {
                    Some(last) if m && !previous => last.0 = a,
                    _ => acc.push((a, b)),
                }
                previous = m;
            }
            for &(a, b) in acc.iter().rev() {
                push(out, a, b);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(s: &str, m: &Matcher, invert: bool, b: Behavior) -> Vec<String> {
        let mut scratch = vec![];
        let mut out = vec![];
        split(s, m, invert, b, &mut scratch, &mut out).unwrap();
        out.iter().map(|&(a, e)| s[a..e].to_string()).collect()
    }

    #[test]
    fn behaviors_match_hf_docs() {
        let m = Matcher::from_spec(&PatternSpec::String("-".into())).unwrap();
        let s = "the-final--countdown";
        assert_eq!(
            pieces(s, &m, false, Behavior::Removed),
            ["the", "final", "countdown"]
        );
        assert_eq!(
            pieces(s, &m, false, Behavior::Isolated),
            ["the", "-", "final", "-", "-", "countdown"]
        );
        assert_eq!(
            pieces(s, &m, false, Behavior::MergedWithPrevious),
            ["the-", "final-", "-", "countdown"]
        );
        assert_eq!(
            pieces(s, &m, false, Behavior::MergedWithNext),
            ["the", "-final", "-", "-countdown"]
        );
        assert_eq!(
            pieces(s, &m, false, Behavior::Contiguous),
            ["the", "-", "final", "--", "countdown"]
        );
    }

    #[test]
    fn digit_groups_equal_regex() {
        let native = Matcher::DigitGroups;
        let re = Matcher::Regex(regex(DIGIT_GROUPS).unwrap());
        for s in [
            "",
            "1",
            "12",
            "123",
            "1234",
            "1234567 dollars and 89 cents",
            "a1234b12345678c",
            "٣٤٥٦",
            "12٣4x99999",
            "x",
        ] {
            let (mut a, mut b) = (vec![], vec![]);
            native.find_matches(s, &mut a).unwrap();
            re.find_matches(s, &mut b).unwrap();
            assert_eq!(a, b, "{s:?}");
        }
    }
}
