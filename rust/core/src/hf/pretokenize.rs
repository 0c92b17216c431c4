//! Pre-tokenizers of byte-level BPE tokenizers, with HF's semantics.
//!
//! A piece is a byte range of the (normalized) segment, optionally preceded by a space that
//! `ByteLevel(add_prefix_space=true)` inserted (HF prepends it to the piece's text; it is
//! aligned with the piece's first character).

use serde_json::Value;

use super::json::{self, err, join};
use super::normalize::parse_pattern;
use super::pattern::{self, Behavior, CharClass, Matcher, PatternSpec};
use crate::error::Result;

/// One pre-tokenizer component.
#[derive(Clone, Debug)]
pub enum PreTokenizer {
    ByteLevel {
        add_prefix_space: bool,
        trim_offsets: bool,
        use_regex: bool,
    },
    Split {
        pattern: PatternSpec,
        behavior: Behavior,
        invert: bool,
        matcher: Matcher,
    },
    Digits {
        individual_digits: bool,
    },
    Whitespace,
    WhitespaceSplit,
    Punctuation {
        behavior: Behavior,
    },
    Sequence(Vec<PreTokenizer>),
}

/// A piece: `text[start..end]`, preceded by an inserted space when `prefix` is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub start: usize,
    pub end: usize,
    pub prefix: bool,
}

fn behavior(
    m: &serde_json::Map<String, Value>,
    path: &str,
    default: Option<Behavior>,
) -> Result<Behavior> {
    match m.get("behavior") {
        None | Some(Value::Null) => default.ok_or_else(|| err(path, "missing \"behavior\"")),
        Some(Value::String(s)) => Behavior::parse(s).ok_or_else(|| {
            err(
                &join(path, "behavior"),
                format!("unknown behavior {s:?} (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)"),
            )
        }),
        Some(v) => Err(err(
            &join(path, "behavior"),
            format!("expected a string, got {}", json::kind(v)),
        )),
    }
}

impl PreTokenizer {
    /// `Split(pattern, behavior, invert)`.
    pub fn split(pattern: PatternSpec, behavior: Behavior, invert: bool) -> Result<Self> {
        let matcher = Matcher::from_spec(&pattern)?;
        Ok(PreTokenizer::Split {
            pattern,
            behavior,
            invert,
            matcher,
        })
    }

    /// Parse a pre-tokenizer object; `path` names it in errors.
    pub fn from_json(v: &Value, path: &str) -> Result<Self> {
        let m = json::obj(v, path)?;
        let ty = json::type_of(m, path)?;
        Ok(match ty {
            "ByteLevel" => PreTokenizer::ByteLevel {
                add_prefix_space: json::boolean(m, "add_prefix_space", path, true)?,
                trim_offsets: json::boolean(m, "trim_offsets", path, true)?,
                use_regex: json::boolean(m, "use_regex", path, true)?,
            },
            "Split" => {
                let p = join(path, "pattern");
                let pattern = parse_pattern(m.get("pattern"), &p)?;
                let matcher = Matcher::from_spec(&pattern).map_err(|e| err(&p, e))?;
                PreTokenizer::Split {
                    pattern,
                    behavior: behavior(m, path, None)?,
                    invert: json::boolean(m, "invert", path, false)?,
                    matcher,
                }
            }
            "Digits" => PreTokenizer::Digits {
                individual_digits: json::boolean(m, "individual_digits", path, false)?,
            },
            "Whitespace" => PreTokenizer::Whitespace,
            "WhitespaceSplit" => PreTokenizer::WhitespaceSplit,
            "Punctuation" => PreTokenizer::Punctuation {
                behavior: behavior(m, path, Some(Behavior::Isolated))?,
            },
            "Sequence" => {
                let p = join(path, "pretokenizers");
                let items = json::arr(m.get("pretokenizers").unwrap_or(&Value::Null), &p)?;
                let mut v = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    v.push(PreTokenizer::from_json(item, &json::index(&p, i))?);
                }
                PreTokenizer::Sequence(v)
            }
            other => {
                return Err(err(
                    path,
                    format!("unsupported pre-tokenizer type {other:?} (supported: ByteLevel, Split, Digits, Whitespace, WhitespaceSplit, Punctuation, Sequence)"),
                ))
            }
        })
    }

    /// The JSON object HF writes for this pre-tokenizer.
    pub fn to_json(&self) -> Value {
        let t = |s: &str| ("type", Value::String(s.to_string()));
        match self {
            PreTokenizer::ByteLevel {
                add_prefix_space,
                trim_offsets,
                use_regex,
            } => json::object([
                t("ByteLevel"),
                ("add_prefix_space", Value::Bool(*add_prefix_space)),
                ("trim_offsets", Value::Bool(*trim_offsets)),
                ("use_regex", Value::Bool(*use_regex)),
            ]),
            PreTokenizer::Split {
                pattern,
                behavior,
                invert,
                ..
            } => json::object([
                t("Split"),
                ("pattern", pattern.to_json()),
                ("behavior", Value::String(behavior.name().to_string())),
                ("invert", Value::Bool(*invert)),
            ]),
            PreTokenizer::Digits { individual_digits } => json::object([
                t("Digits"),
                ("individual_digits", Value::Bool(*individual_digits)),
            ]),
            PreTokenizer::Whitespace => json::object([t("Whitespace")]),
            PreTokenizer::WhitespaceSplit => json::object([t("WhitespaceSplit")]),
            PreTokenizer::Punctuation { behavior } => json::object([
                t("Punctuation"),
                ("behavior", Value::String(behavior.name().to_string())),
            ]),
            PreTokenizer::Sequence(v) => json::object([
                t("Sequence"),
                (
                    "pretokenizers",
                    Value::Array(v.iter().map(|p| p.to_json()).collect()),
                ),
            ]),
        }
    }

    /// Flatten nested sequences into `out` (with each step's JSON path).
    pub fn flatten<'a>(&'a self, path: &str, out: &mut Vec<(String, &'a PreTokenizer)>) {
        match self {
            PreTokenizer::Sequence(v) => {
                for (i, p) in v.iter().enumerate() {
                    p.flatten(&json::index(&join(path, "pretokenizers"), i), out);
                }
            }
            other => out.push((path.to_string(), other)),
        }
    }
}

/// One executable step of a flattened pre-tokenizer.
#[derive(Clone, Debug)]
pub enum Step {
    /// Insert a space before pieces that do not start with one.
    PrefixSpace,
    /// Split every piece.
    Split {
        matcher: Matcher,
        invert: bool,
        behavior: Behavior,
    },
    /// `Digits(individual_digits=false)` followed by `Split(<paper stage-1 regex>,
    /// Isolated)` (SuperBPE's `"paper"` stage-1 pre-tokenizer) in one pass with the
    /// hand-written [`crate::superbpe::fastsplit::paper_stage1`]; pieces it does not handle
    /// (non-ASCII numbers) take the two general steps, the regex being `matcher`.
    PaperStage1 { matcher: Matcher },
    /// `Digits(individual_digits=false)` followed by `Split((?=(\d{3})+(?!\d)), Isolated)`
    /// (the SuperBPE paper tokenizers' pre-tokenizer) in one pass, [`digits_groups`].
    DigitsGroups,
}

/// Build the steps of a flattened pre-tokenizer (everything up to and including the
/// `ByteLevel` step; `ByteLevel`'s byte mapping itself is done by the model).
pub fn compile(steps: &[(String, &PreTokenizer)]) -> Result<Vec<Step>> {
    compile_with(steps, true)
}

/// [`compile`], with `fuse = false` keeping every component a general step (no
/// [`Step::PaperStage1`]; for differential tests).
pub fn compile_with(steps: &[(String, &PreTokenizer)], fuse: bool) -> Result<Vec<Step>> {
    let mut out = Vec::new();
    let mut skip_next = false;
    for (k, (path, p)) in steps.iter().enumerate() {
        if std::mem::take(&mut skip_next) {
            continue;
        }
        if fuse && digits_groups_pair(p, steps.get(k + 1).map(|x| x.1)) {
            out.push(Step::DigitsGroups);
            skip_next = true;
            continue;
        }
        if let Some(matcher) = paper_stage1_pair(p, steps.get(k + 1).map(|x| x.1)).filter(|_| fuse)
        {
            out.push(Step::PaperStage1 {
                matcher: matcher.clone(),
            });
            skip_next = true;
            continue;
        }
        match p {
            PreTokenizer::ByteLevel {
                add_prefix_space,
                use_regex,
                ..
            } => {
                if *add_prefix_space {
                    out.push(Step::PrefixSpace);
                }
                if *use_regex {
                    out.push(Step::Split {
                        matcher: Matcher::Lexer(super::lexers::Lexer::Gpt2),
                        invert: false,
                        behavior: Behavior::Isolated,
                    });
                }
            }
            PreTokenizer::Split {
                matcher,
                invert,
                behavior,
                ..
            } => out.push(Step::Split {
                matcher: matcher.clone(),
                invert: *invert,
                behavior: *behavior,
            }),
            PreTokenizer::Digits { individual_digits } => out.push(Step::Split {
                matcher: Matcher::Chars(CharClass::Numeric),
                invert: false,
                behavior: if *individual_digits {
                    Behavior::Isolated
                } else {
                    Behavior::Contiguous
                },
            }),
            PreTokenizer::Whitespace => out.push(Step::Split {
                matcher: Matcher::Regex(
                    crate::pretok::RegexSplitter::new(r"\w+|[^\w\s]+").map_err(|e| err(path, e))?,
                ),
                invert: true,
                behavior: Behavior::Removed,
            }),
            PreTokenizer::WhitespaceSplit => out.push(Step::Split {
                matcher: Matcher::Chars(CharClass::Whitespace),
                invert: false,
                behavior: Behavior::Removed,
            }),
            PreTokenizer::Punctuation { behavior } => out.push(Step::Split {
                matcher: Matcher::Chars(CharClass::Punctuation),
                invert: false,
                behavior: *behavior,
            }),
            PreTokenizer::Sequence(_) => {}
        }
    }
    Ok(out)
}

/// Whether `a, b` are `Digits(individual_digits=false)` and `Split((?=(\d{3})+(?!\d)),
/// Isolated, invert=false)`.
fn digits_groups_pair(a: &PreTokenizer, b: Option<&PreTokenizer>) -> bool {
    matches!(
        (a, b),
        (
            PreTokenizer::Digits {
                individual_digits: false,
            },
            Some(PreTokenizer::Split {
                matcher: Matcher::DigitGroups,
                behavior: Behavior::Isolated,
                invert: false,
                ..
            }),
        )
    )
}

/// `Digits(individual_digits=false)` then `Split((?=(\d{3})+(?!\d)), Isolated)` on `s`
/// in one pass: push the non-empty pieces (`base + start`, `base + end`) to `next`.
///
/// `Digits` (behavior `Contiguous`) cuts `s` into maximal runs of numeric characters
/// (`char::is_numeric`) and maximal runs of other characters. The digit-group regex then
/// only cuts inside runs of decimal digits (general category Nd), which are numeric, so a
/// run of other characters stays whole; a numeric run is cut exactly where the regex
/// matches in it alone ([`pattern::for_each_digit_group_cut`]).
fn digits_groups(s: &str, base: usize, next: &mut Vec<Piece>) {
    let b = s.as_bytes();
    let push = |next: &mut Vec<Piece>, a: usize, e: usize| {
        if a < e {
            next.push(Piece {
                start: base + a,
                end: base + e,
                prefix: false,
            });
        }
    };
    let numeric_at = |i: usize| -> (bool, usize) {
        let x = b[i];
        if x < 0x80 {
            return (x.is_ascii_digit(), 1);
        }
        // two- and three-byte characters (`s` is valid UTF-8) decoded in place
        if x < 0xe0 {
            if let Some(&y) = b.get(i + 1) {
                let cp = (x as u32 & 0x1f) << 6 | (y as u32 & 0x3f);
                return (super::unicode::is_numeric_bmp(cp), 2);
            }
        } else if x < 0xf0 {
            if let (Some(&y), Some(&z)) = (b.get(i + 1), b.get(i + 2)) {
                let cp = (x as u32 & 0x0f) << 12 | (y as u32 & 0x3f) << 6 | (z as u32 & 0x3f);
                return (super::unicode::is_numeric_bmp(cp), 3);
            }
        }
        let c = s[i..].chars().next().unwrap_or('\u{FFFD}');
        (CharClass::Numeric.test(c), c.len_utf8())
    };
    let mut start = 0;
    let mut i = 0;
    let mut in_num = false;
    while i < b.len() {
        let (num, len) = numeric_at(i);
        if num != in_num {
            if in_num {
                let run = &s[start..i];
                let mut prev = 0;
                pattern::for_each_digit_group_cut(run, |p| {
                    push(next, start + prev, start + p);
                    prev = p;
                });
                push(next, start + prev, i);
            } else {
                push(next, start, i);
            }
            start = i;
            in_num = num;
        }
        i += len;
    }
    if in_num {
        let run = &s[start..];
        let mut prev = 0;
        pattern::for_each_digit_group_cut(run, |p| {
            push(next, start + prev, start + p);
            prev = p;
        });
        push(next, start + prev, b.len());
    } else {
        push(next, start, b.len());
    }
}

/// The split regex's matcher when `a, b` are `Digits(individual_digits=false)` and
/// `Split(<paper stage-1 regex>, Isolated, invert=false)`.
fn paper_stage1_pair<'a>(a: &PreTokenizer, b: Option<&'a PreTokenizer>) -> Option<&'a Matcher> {
    match (a, b) {
        (
            PreTokenizer::Digits {
                individual_digits: false,
            },
            Some(PreTokenizer::Split {
                pattern: PatternSpec::Regex(r),
                behavior: Behavior::Isolated,
                invert: false,
                matcher,
            }),
        ) if r == crate::superbpe::presets::PAPER_STAGE1 => Some(matcher),
        _ => None,
    }
}

/// Split piece `p` of `text` with `matcher`, appending the resulting pieces to `next`.
#[allow(clippy::too_many_arguments)]
fn split_piece(
    text: &str,
    p: &Piece,
    matcher: &Matcher,
    invert: bool,
    behavior: Behavior,
    spans: &mut Vec<(usize, usize, bool)>,
    ranges: &mut Vec<(usize, usize)>,
    tmp: &mut String,
    next: &mut Vec<Piece>,
) -> Result<()> {
    ranges.clear();
    if p.prefix {
        tmp.clear();
        tmp.push(' ');
        tmp.push_str(&text[p.start..p.end]);
        pattern::split(tmp, matcher, invert, behavior, spans, ranges)?;
        for &(a, b) in ranges.iter() {
            if a == 0 {
                next.push(Piece {
                    start: p.start,
                    end: p.start + b - 1,
                    prefix: true,
                });
            } else {
                next.push(Piece {
                    start: p.start + a - 1,
                    end: p.start + b - 1,
                    prefix: false,
                });
            }
        }
    } else {
        pattern::split(
            &text[p.start..p.end],
            matcher,
            invert,
            behavior,
            spans,
            ranges,
        )?;
        for &(a, b) in ranges.iter() {
            next.push(Piece {
                start: p.start + a,
                end: p.start + b,
                prefix: false,
            });
        }
    }
    Ok(())
}

/// Scratch buffers for [`run`].
#[derive(Default)]
pub struct Scratch {
    spans: Vec<(usize, usize, bool)>,
    ranges: Vec<(usize, usize)>,
    next: Vec<Piece>,
    mid: Vec<Piece>,
    tmp: String,
}

/// `Digits(individual_digits=false)` then `Split(matcher, Isolated)` on piece `p`, as two
/// general steps, appending to `sc.next`.
fn digits_then_split(text: &str, p: &Piece, matcher: &Matcher, sc: &mut Scratch) -> Result<()> {
    let mut mid = std::mem::take(&mut sc.mid);
    mid.clear();
    split_piece(
        text,
        p,
        &Matcher::Chars(CharClass::Numeric),
        false,
        Behavior::Contiguous,
        &mut sc.spans,
        &mut sc.ranges,
        &mut sc.tmp,
        &mut mid,
    )?;
    for q in &mid {
        split_piece(
            text,
            q,
            matcher,
            false,
            Behavior::Isolated,
            &mut sc.spans,
            &mut sc.ranges,
            &mut sc.tmp,
            &mut sc.next,
        )?;
    }
    sc.mid = mid;
    Ok(())
}

/// Run `steps` on `text`, replacing `pieces` with the result.
pub fn run(text: &str, steps: &[Step], pieces: &mut Vec<Piece>, sc: &mut Scratch) -> Result<()> {
    pieces.clear();
    if text.is_empty() {
        return Ok(());
    }
    pieces.push(Piece {
        start: 0,
        end: text.len(),
        prefix: false,
    });
    for step in steps {
        sc.next.clear();
        match step {
            Step::PrefixSpace => {
                for p in pieces.iter() {
                    let starts_with_space = if p.prefix {
                        true
                    } else {
                        text.as_bytes()[p.start] == b' '
                    };
                    sc.next.push(Piece {
                        prefix: p.prefix || !starts_with_space,
                        ..*p
                    });
                }
            }
            Step::Split {
                matcher,
                invert,
                behavior,
            } => {
                for p in pieces.iter() {
                    split_piece(
                        text,
                        p,
                        matcher,
                        *invert,
                        *behavior,
                        &mut sc.spans,
                        &mut sc.ranges,
                        &mut sc.tmp,
                        &mut sc.next,
                    )?;
                }
            }
            Step::DigitsGroups => {
                for p in pieces.iter() {
                    if !p.prefix {
                        digits_groups(&text[p.start..p.end], p.start, &mut sc.next);
                        continue;
                    }
                    digits_then_split(text, p, &Matcher::DigitGroups, sc)?;
                }
            }
            Step::PaperStage1 { matcher } => {
                for p in pieces.iter() {
                    if !p.prefix
                        && crate::superbpe::fastsplit::paper_stage1(
                            &text[p.start..p.end],
                            &mut sc.ranges,
                        )
                    {
                        for &(a, b) in sc.ranges.iter() {
                            sc.next.push(Piece {
                                start: p.start + a,
                                end: p.start + b,
                                prefix: false,
                            });
                        }
                        continue;
                    }
                    // the general pipeline: Digits, then the regex on each of its pieces
                    digits_then_split(text, p, matcher, sc)?;
                }
            }
        }
        std::mem::swap(pieces, &mut sc.next);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn paper_steps(fuse: bool) -> Vec<Step> {
        let objs = crate::superbpe::presets::preset("paper", crate::superbpe::presets::Stage::One)
            .unwrap();
        let mut all: Vec<Value> = objs;
        all.push(
            serde_json::json!({"type": "ByteLevel", "add_prefix_space": false,
            "trim_offsets": true, "use_regex": false}),
        );
        let seq = serde_json::json!({"type": "Sequence", "pretokenizers": all});
        let p = PreTokenizer::from_json(&seq, "pre_tokenizer").unwrap();
        let mut flat = Vec::new();
        p.flatten("pre_tokenizer", &mut flat);
        compile_with(&flat, fuse).unwrap()
    }

    fn pieces(steps: &[Step], text: &str) -> Vec<Piece> {
        let mut out = Vec::new();
        run(text, steps, &mut out, &mut Scratch::default()).unwrap();
        out
    }

    const ALPHABET: &[&str] = &[
        " ", "  ", "\t", "\n", "\r\n", "\x0b", "\u{85}", "\u{a0}", "\u{3000}", "\u{2028}", "a",
        "Z", "é", "e\u{301}", "\u{301}", "東", "ß", "ǅ", "ʰ", "ª", "0", "1", "12", "123", "4567",
        "²", "½", "٣", "Ⅻ", "①", "'", "'s", ".", ",", "!?", "-", "_", "😀", "\u{0}", "\u{7f}",
    ];

    /// The steps of the SuperBPE paper tokenizers' pre-tokenizer: `Digits`, the digit
    /// groups, `ByteLevel` (with `add_prefix_space` when `prefix`).
    fn digit_group_steps(fuse: bool, prefix: bool) -> Vec<Step> {
        let seq = serde_json::json!({"type": "Sequence", "pretokenizers": [
            {"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": true, "use_regex": false},
            {"type": "Digits", "individual_digits": false},
            {"type": "Split", "pattern": {"Regex": crate::hf::pattern::DIGIT_GROUPS},
             "behavior": "Isolated", "invert": false},
        ]});
        let p = PreTokenizer::from_json(&seq, "pre_tokenizer").unwrap();
        let mut flat = Vec::new();
        p.flatten("pre_tokenizer", &mut flat);
        compile_with(&flat, fuse).unwrap()
    }

    #[test]
    fn digit_groups_are_fused() {
        for prefix in [false, true] {
            assert!(digit_group_steps(true, prefix)
                .iter()
                .any(|s| matches!(s, Step::DigitsGroups)));
            assert!(digit_group_steps(false, prefix)
                .iter()
                .all(|s| !matches!(s, Step::DigitsGroups)));
        }
    }

    /// Every non-ASCII character of the BMP (decoded in place by the fused step) between
    /// letters and digits: the fused step equals the general ones.
    #[test]
    fn fused_digit_groups_decode_every_bmp_character() {
        let fused = digit_group_steps(true, false);
        let general = digit_group_steps(false, false);
        for block in 0..256u32 {
            let mut text = String::new();
            for cp in block << 8..(block + 1) << 8 {
                if let Some(c) = char::from_u32(cp).filter(|c| !c.is_ascii()) {
                    text.push(c);
                    text.push('1');
                    text.push(c);
                    text.push(c);
                    text.push('a');
                }
            }
            assert_eq!(
                pieces(&fused, &text),
                pieces(&general, &text),
                "block {block:02X}"
            );
        }
    }

    #[test]
    fn paper_stage1_is_fused() {
        assert!(matches!(paper_steps(true)[0], Step::PaperStage1 { .. }));
        assert!(paper_steps(false)
            .iter()
            .all(|s| !matches!(s, Step::PaperStage1 { .. })));
    }

    proptest! {
        /// The fused paper stage-1 step equals `Digits` + `Split(regex)` on random text
        /// (non-ASCII numbers included, which take the general fallback inside the step).
        #[test]
        fn fused_paper_stage1_equals_general_steps(
            parts in proptest::collection::vec((0..ALPHABET.len(), 1usize..6), 0..40),
        ) {
            let mut text = String::new();
            for (k, reps) in parts {
                for _ in 0..reps {
                    text.push_str(ALPHABET[k]);
                }
            }
            let fused = paper_steps(true);
            let general = paper_steps(false);
            prop_assert_eq!(pieces(&fused, &text), pieces(&general, &text), "{:?}", text);
        }

        /// The fused `Digits` + digit-groups step equals the two general steps on random
        /// text (decimal and other numeric characters, runs of them, letters, spaces), with
        /// and without a prefix space.
        #[test]
        fn fused_digit_groups_equal_general_steps(
            parts in proptest::collection::vec((0..ALPHABET.len(), 1usize..8), 0..40),
            prefix in any::<bool>(),
        ) {
            let mut text = String::new();
            for (k, reps) in parts {
                for _ in 0..reps {
                    text.push_str(ALPHABET[k]);
                }
            }
            let fused = digit_group_steps(true, prefix);
            let general = digit_group_steps(false, prefix);
            prop_assert_eq!(pieces(&fused, &text), pieces(&general, &text), "{:?}", text);
        }
    }
}
