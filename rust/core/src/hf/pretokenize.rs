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
}

/// Build the steps of a flattened pre-tokenizer (everything up to and including the
/// `ByteLevel` step; `ByteLevel`'s byte mapping itself is done by the model).
pub fn compile(steps: &[(String, &PreTokenizer)]) -> Result<Vec<Step>> {
    let mut out = Vec::new();
    for (path, p) in steps {
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

/// Scratch buffers for [`run`].
#[derive(Default)]
pub struct Scratch {
    spans: Vec<(usize, usize, bool)>,
    ranges: Vec<(usize, usize)>,
    next: Vec<Piece>,
    tmp: String,
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
                    sc.ranges.clear();
                    if p.prefix {
                        sc.tmp.clear();
                        sc.tmp.push(' ');
                        sc.tmp.push_str(&text[p.start..p.end]);
                        pattern::split(
                            &sc.tmp,
                            matcher,
                            *invert,
                            *behavior,
                            &mut sc.spans,
                            &mut sc.ranges,
                        )?;
                        for &(a, b) in sc.ranges.iter() {
                            if a == 0 {
                                sc.next.push(Piece {
                                    start: p.start,
                                    end: p.start + b - 1,
                                    prefix: true,
                                });
                            } else {
                                sc.next.push(Piece {
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
                            *invert,
                            *behavior,
                            &mut sc.spans,
                            &mut sc.ranges,
                        )?;
                        for &(a, b) in sc.ranges.iter() {
                            sc.next.push(Piece {
                                start: p.start + a,
                                end: p.start + b,
                                prefix: false,
                            });
                        }
                    }
                }
            }
        }
        std::mem::swap(pieces, &mut sc.next);
    }
    Ok(())
}
