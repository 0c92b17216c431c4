//! Hand-written splitters for the `"paper"` preset's pre-tokenizers. Stage 1
//! ([`paper_stage1`]): `Digits(individual_digits=False)` then
//! `Split((?=(\d{3})+(?!\d))| ?\p{L}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+, Isolated)`.
//! Stage 2 ([`paper_stage2`]): `Digits(individual_digits=False)` then
//! `Split((?=(\d{3})+(?!\d)), Isolated)`.
//!
//! Exactly equivalent to running the HF pipeline (differentially tested against it):
//! * a run of ASCII digits becomes its right-aligned groups of three (`1234567` →
//!   `1 | 234 | 567`): Digits isolates the run, and inside it only the empty lookahead
//!   matches, at every position followed by a multiple of three digits;
//! * any other text holds no number, so the regex reduces to GPT-2's word/punctuation/space
//!   rules without contractions and without the number rule.
//!
//! * stage 2: a text without numbers is one piece (the lookahead needs a digit), so the
//!   pieces are the maximal runs without ASCII digits and the groups of the digit runs.
//!
//! Texts with non-ASCII numbers (`²`, `½`, Arabic-Indic digits, ...) are left to the
//! general pipeline: both functions return `false` for them.

use crate::hf::unicode::{class, LETTER, NUMBER, OTHER, SPACE};

/// Class of the char at byte `i` (a char boundary below `s.len()`) and its length, or `None`
/// for a non-ASCII char that is numeric in any sense (then the caller falls back).
#[inline(always)]
fn at(s: &str, i: usize) -> Option<(u8, usize)> {
    let b = s.as_bytes()[i];
    if b < 0x80 {
        let k = if b.is_ascii_alphabetic() {
            LETTER
        } else if b.is_ascii_digit() {
            NUMBER
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C) {
            SPACE
        } else {
            OTHER
        };
        return Some((k, 1));
    }
    let c = s[i..].chars().next()?;
    let k = class(c);
    if k == NUMBER || c.is_numeric() {
        return None;
    }
    Some((k, c.len_utf8()))
}

/// End of the run of chars of class `k` from `i` (`None`: a non-ASCII number was seen).
#[inline(always)]
fn run(s: &str, mut i: usize, k: u8) -> Option<usize> {
    while i < s.len() {
        let (k2, l) = at(s, i)?;
        if k2 != k {
            break;
        }
        i += l;
    }
    Some(i)
}

/// Push the right-aligned groups of three of the ASCII digit run at `i` (`1234567` →
/// `1 | 234 | 567`) and return the end of the run.
fn digit_groups(b: &[u8], i: usize, out: &mut Vec<(usize, usize)>) -> usize {
    let mut e = i;
    while e < b.len() && b[e].is_ascii_digit() {
        e += 1;
    }
    let mut a = i;
    let first = (e - i) % 3;
    if first > 0 {
        out.push((a, a + first));
        a += first;
    }
    while a < e {
        out.push((a, a + 3));
        a += 3;
    }
    e
}

/// Split `text` into the pieces of the paper stage-1 pipeline, appending `(start, end)`
/// byte ranges to `out` (cleared first). Returns `false` (with `out` unspecified) when the
/// text holds a non-ASCII number, which this splitter does not handle.
pub fn paper_stage1(text: &str, out: &mut Vec<(usize, usize)>) -> bool {
    out.clear();
    let n = text.len();
    let b = text.as_bytes();
    let mut i = 0;
    while i < n {
        let Some((k, _)) = at(text, i) else {
            return false;
        };
        let end = match k {
            NUMBER => {
                i = digit_groups(b, i, out);
                continue;
            }
            LETTER => match run(text, i, LETTER) {
                Some(e) => e,
                None => return false,
            },
            OTHER => match run(text, i, OTHER) {
                Some(e) => e,
                None => return false,
            },
            _ => {
                // whitespace; " " followed by a letter or other char starts a word / mark run
                if b[i] == b' ' && i + 1 < n {
                    let Some((k2, _)) = at(text, i + 1) else {
                        return false;
                    };
                    if k2 == LETTER || k2 == OTHER {
                        let e = match run(text, i + 1, k2) {
                            Some(e) => e,
                            None => return false,
                        };
                        out.push((i, e));
                        i = e;
                        continue;
                    }
                }
                // \s+(?!\S) | \s+
                let mut e = i;
                let mut last = i;
                while e < n {
                    let Some((k2, l2)) = at(text, e) else {
                        return false;
                    };
                    if k2 != SPACE {
                        break;
                    }
                    last = e;
                    e += l2;
                }
                // a digit ends the Digits piece, so the run is at its end: no backtracking
                if e < n && last > i && !b[e].is_ascii_digit() {
                    last // leave the last space to the next piece
                } else {
                    e
                }
            }
        };
        out.push((i, end));
        i = end;
    }
    true
}

/// Split `text` into the pieces of the paper stage-2 pipeline (runs without ASCII digits,
/// and the right-aligned groups of three of every ASCII digit run), appending `(start, end)`
/// byte ranges to `out` (cleared first). Returns `false` (with `out` unspecified) when the
/// text holds a non-ASCII number, which this splitter does not handle.
pub fn paper_stage2(text: &str, out: &mut Vec<(usize, usize)>) -> bool {
    out.clear();
    let b = text.as_bytes();
    let n = b.len();
    let mut start = 0; // start of the current run without digits
    let mut i = 0;
    while i < n {
        let c = b[i];
        if c < 0x80 {
            if !c.is_ascii_digit() {
                i += 1;
                continue;
            }
            if start < i {
                out.push((start, i));
            }
            i = digit_groups(b, i, out);
            start = i;
            continue;
        }
        // non-ASCII: `i` is a char boundary (only whole chars are skipped)
        let Some(ch) = text.get(i..).and_then(|t| t.chars().next()) else {
            return false;
        };
        if class(ch) == NUMBER || ch.is_numeric() {
            return false;
        }
        i += ch.len_utf8();
    }
    if start < n {
        out.push((start, n));
    }
    true
}
