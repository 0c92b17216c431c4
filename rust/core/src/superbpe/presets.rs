//! The two regex generations of the SuperBPE reference code, as HF pre-tokenizer objects
//! (the part before `ByteLevel(add_prefix_space=false, use_regex=false)`).
//!
//! * `"paper"` (the released OLMo2-SuperBPE tokenizers, April–November 2025): both stages
//!   start with `Digits(individual_digits=false)`; stage 1 then splits with a GPT-2-like
//!   regex without contraction rules, stage 2 only cuts digit runs into right-aligned
//!   groups of three;
//! * `"recommended"` (the reference scripts since November 2025): no `Digits`; stage 1 is
//!   the GPT-4o (o200k) pattern without its contraction suffixes, stage 2 isolates 1–3
//!   digit groups, runs of ≥ 2 punctuation marks (with trailing `\r`, `\n`, `/`) and runs of
//!   spaces not followed by a non-space.
//!
//! All regexes are written in HF's (Oniguruma) syntax, exactly as in the reference.

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::hf::pattern::DIGIT_GROUPS;

/// Stage-1 split regex of the paper-era code (applied after `Digits`).
pub const PAPER_STAGE1: &str = r"(?=(\d{3})+(?!\d))| ?\p{L}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// Stage-2 split regex of the paper-era code (applied after `Digits`).
pub const PAPER_STAGE2: &str = DIGIT_GROUPS;
/// Stage-1 split regex of the recommended generation (o200k without contractions).
pub const RECOMMENDED_STAGE1: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Stage-2 split regex of the recommended generation.
pub const RECOMMENDED_STAGE2: &str = r"\p{N}{1,3}| ?[^\s\p{L}\p{N}]{2,}[\r\n/]*| +(?!\S)";

/// Which stage a preset is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    One,
    Two,
}

fn split(regex: &str) -> Value {
    json!({"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false})
}

fn digits() -> Value {
    json!({"type": "Digits", "individual_digits": false})
}

/// The pre-tokenizer objects of a preset (`"paper"` or `"recommended"`) for `stage`.
pub fn preset(name: &str, stage: Stage) -> Result<Vec<Value>> {
    Ok(match (name, stage) {
        ("paper", Stage::One) => vec![digits(), split(PAPER_STAGE1)],
        ("paper", Stage::Two) => vec![digits(), split(PAPER_STAGE2)],
        ("recommended", Stage::One) => vec![split(RECOMMENDED_STAGE1)],
        ("recommended", Stage::Two) => vec![split(RECOMMENDED_STAGE2)],
        _ => {
            return Err(Error::InvalidArgument(format!(
                "unknown SuperBPE preset {name:?} (expected \"paper\" or \"recommended\")"
            )))
        }
    })
}

/// A single `Split(regex, Isolated)` for a regex in HF (Oniguruma) syntax.
pub fn split_regex(onig_regex: &str) -> Vec<Value> {
    vec![split(onig_regex)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::superbpe::HfSplitter;

    fn pieces(objs: &[Value], text: &str) -> Vec<String> {
        let s = HfSplitter::new(objs).unwrap();
        let mut out = vec![];
        s.for_each_piece(text, &mut |a, b| {
            out.push(text[a..b].to_string());
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn paper_presets() {
        let s1 = preset("paper", Stage::One).unwrap();
        let s2 = preset("paper", Stage::Two).unwrap();
        let t = "1234567 dollars and 89 cents";
        assert_eq!(
            pieces(&s1, t),
            ["1", "234", "567", " dollars", " and", " ", "89", " cents"]
        );
        assert_eq!(
            pieces(&s2, t),
            ["1", "234", "567", " dollars and ", "89", " cents"]
        );
        assert_eq!(
            pieces(&s2, "By the way, I am a fan.\nNext"),
            ["By the way, I am a fan.\nNext"]
        );
    }

    #[test]
    fn recommended_presets() {
        let s2 = preset("recommended", Stage::Two).unwrap();
        assert_eq!(
            pieces(&s2, "a  b... c 12345"),
            ["a", " ", " b", "...", " c ", "123", "45"]
        );
        let s1 = preset("recommended", Stage::One).unwrap();
        assert_eq!(pieces(&s1, "It's HTTPServer"), ["It", "'s", " HTTPServer"]);
        assert!(preset("x", Stage::One).is_err());
    }
}
