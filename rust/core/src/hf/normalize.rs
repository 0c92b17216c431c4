//! Normalizers, with HF's alignment bookkeeping (every byte of the normalized text knows
//! the original byte range it came from) so that offsets point into the original input.
//!
//! The alignment rules are HF's `NormalizedString::transform`: a transformation is a list of
//! `(char, change)` where `change` is 0 (the char replaces one original char), +1 (the char
//! is inserted: it shares the alignment of the byte before it) or -n (the char replaces one
//! char and n following chars are removed).

use std::borrow::Cow;

use serde_json::Value;
use unicode_normalization_alignments::UnicodeNormalization;

use super::json::{self, err, join};
use super::pattern::{Matcher, PatternSpec};
use crate::error::Result;

/// A segment of the input after normalization.
#[derive(Clone, Debug)]
pub struct NormText<'a> {
    /// The segment of the original input.
    orig: &'a str,
    /// Absolute offset of `orig` in the input.
    base: usize,
    /// The normalized text.
    pub text: Cow<'a, str>,
    /// Absolute original range of every byte of `text`; `None` while `text` is `orig`
    /// byte for byte (then a byte maps to the original character that contains it) or
    /// after an untracked change (see `identity`).
    align: Option<Vec<(usize, usize)>>,
    /// False once the text changed without alignment tracking; alignments are then
    /// unknown and every byte maps to the whole segment (only ids are computed then).
    identity: bool,
}

impl<'a> NormText<'a> {
    /// The identity normalization of `orig`, which starts at `base` in the input.
    pub fn new(orig: &'a str, base: usize) -> Self {
        NormText {
            orig,
            base,
            text: Cow::Borrowed(orig),
            align: None,
            identity: true,
        }
    }

    /// Original (absolute) byte range of normalized byte `i`.
    #[inline]
    pub fn align(&self, i: usize) -> (usize, usize) {
        match &self.align {
            Some(a) => a
                .get(i)
                .copied()
                .unwrap_or((self.base + self.orig.len(), self.base + self.orig.len())),
            None if !self.identity || i >= self.orig.len() => {
                (self.base, self.base + self.orig.len())
            }
            None => {
                let b = self.orig.as_bytes();
                let mut s = i;
                while s > 0 && (b[s] & 0xC0) == 0x80 {
                    s -= 1;
                }
                let len = crate::util::utf8_len(b[s]).max(1);
                (self.base + s, self.base + s + len)
            }
        }
    }

    /// Original (absolute) range covered by the normalized bytes `a..b` (HF's
    /// `convert_offsets` from the normalized referential).
    #[inline]
    pub fn original_range(&self, a: usize, b: usize) -> (usize, usize) {
        if a >= b {
            return (self.base + a, self.base + a);
        }
        (self.align(a).0, self.align(b - 1).1)
    }

    fn materialize(&mut self) -> &mut Vec<(usize, usize)> {
        if self.align.is_none() {
            let v: Vec<(usize, usize)> = (0..self.text.len()).map(|i| self.align(i)).collect();
            self.align = Some(v);
        }
        self.align.get_or_insert_with(Vec::new)
    }

    /// Replace the normalized bytes `range` by `dest` (HF's `transform_range`), updating the
    /// alignments when `track` is set. `initial_offset` chars at the start of the range are
    /// removed.
    fn transform_range<I>(
        &mut self,
        range: std::ops::Range<usize>,
        dest: I,
        initial_offset: usize,
        track: bool,
    ) where
        I: IntoIterator<Item = (char, isize)>,
    {
        let old = self.text[range.clone()].to_string();
        let mut new_text = String::with_capacity(old.len());
        if !track {
            for (c, _) in dest {
                new_text.push(c);
            }
        } else {
            let base = self.base;
            let align = self.materialize().clone();
            let mut replaced = old.chars();
            let initial_removed: usize = (&mut replaced)
                .take(initial_offset)
                .map(|c| c.len_utf8())
                .sum();
            let mut offset = initial_removed + range.start;
            let mut new_align = Vec::with_capacity(old.len());
            for (c, change) in dest {
                let a = if change > 0 {
                    if offset == 0 {
                        (base, base)
                    } else {
                        align.get(offset - 1).copied().unwrap_or((base, base))
                    }
                } else {
                    align.get(offset).copied().unwrap_or((base, base))
                };
                if change <= 0 {
                    if let Some(r) = replaced.next() {
                        offset += r.len_utf8();
                    }
                }
                if change < 0 {
                    offset += (&mut replaced)
                        .take((-change) as usize)
                        .map(|c| c.len_utf8())
                        .sum::<usize>();
                }
                for _ in 0..c.len_utf8() {
                    new_align.push(a);
                }
                new_text.push(c);
            }
            if let Some(v) = self.align.as_mut() {
                v.splice(range.clone(), new_align);
            }
        }
        if !track {
            self.identity = false;
            self.align = None;
        }
        let mut s = self.text.to_string();
        s.replace_range(range, &new_text);
        self.text = Cow::Owned(s);
    }

    fn transform<I>(&mut self, dest: I, initial_offset: usize, track: bool)
    where
        I: IntoIterator<Item = (char, isize)>,
    {
        let n = self.text.len();
        self.transform_range(0..n, dest, initial_offset, track);
    }
}

/// A normalizer of a byte-level BPE tokenizer.
#[derive(Clone, Debug)]
pub enum Normalizer {
    Nfc,
    Nfkc,
    Nfd,
    Nfkd,
    Lowercase,
    Prepend(String),
    Replace {
        pattern: PatternSpec,
        content: String,
        matcher: Matcher,
    },
    Strip {
        left: bool,
        right: bool,
    },
    Sequence(Vec<Normalizer>),
}

impl Normalizer {
    /// Parse a normalizer object; `path` names it in errors.
    pub fn from_json(v: &Value, path: &str) -> Result<Self> {
        let m = json::obj(v, path)?;
        let ty = json::type_of(m, path)?;
        Ok(match ty {
            "NFC" => Normalizer::Nfc,
            "NFKC" => Normalizer::Nfkc,
            "NFD" => Normalizer::Nfd,
            "NFKD" => Normalizer::Nfkd,
            "Lowercase" => Normalizer::Lowercase,
            "Prepend" => Normalizer::Prepend(json::string(m, "prepend", path)?),
            "Replace" => {
                let pattern = parse_pattern(m.get("pattern"), &join(path, "pattern"))?;
                let matcher = Matcher::from_spec(&pattern)
                    .map_err(|e| err(&join(path, "pattern"), e))?;
                Normalizer::Replace {
                    pattern,
                    content: json::string(m, "content", path)?,
                    matcher,
                }
            }
            "Strip" => Normalizer::Strip {
                left: json::boolean(m, "strip_left", path, true)?,
                right: json::boolean(m, "strip_right", path, true)?,
            },
            "Sequence" => {
                let p = join(path, "normalizers");
                let items = json::arr(m.get("normalizers").unwrap_or(&Value::Null), &p)?;
                let mut v = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    v.push(Normalizer::from_json(item, &json::index(&p, i))?);
                }
                Normalizer::Sequence(v)
            }
            other => {
                return Err(err(
                    path,
                    format!("unsupported normalizer type {other:?} (supported: NFC, NFKC, NFD, NFKD, Lowercase, Prepend, Replace, Strip, Sequence)"),
                ))
            }
        })
    }

    /// The JSON object HF writes for this normalizer.
    pub fn to_json(&self) -> Value {
        let t = |s: &str| ("type", Value::String(s.to_string()));
        match self {
            Normalizer::Nfc => json::object([t("NFC")]),
            Normalizer::Nfkc => json::object([t("NFKC")]),
            Normalizer::Nfd => json::object([t("NFD")]),
            Normalizer::Nfkd => json::object([t("NFKD")]),
            Normalizer::Lowercase => json::object([t("Lowercase")]),
            Normalizer::Prepend(p) => {
                json::object([t("Prepend"), ("prepend", Value::String(p.clone()))])
            }
            Normalizer::Replace {
                pattern, content, ..
            } => json::object([
                t("Replace"),
                ("pattern", pattern.to_json()),
                ("content", Value::String(content.clone())),
            ]),
            Normalizer::Strip { left, right } => json::object([
                t("Strip"),
                ("strip_left", Value::Bool(*left)),
                ("strip_right", Value::Bool(*right)),
            ]),
            Normalizer::Sequence(v) => json::object([
                t("Sequence"),
                (
                    "normalizers",
                    Value::Array(v.iter().map(|n| n.to_json()).collect()),
                ),
            ]),
        }
    }

    /// Normalize `nt` in place; alignments are kept up to date only when `track` is set.
    pub fn apply(&self, nt: &mut NormText<'_>, track: bool) -> Result<()> {
        match self {
            Normalizer::Nfc | Normalizer::Nfkc | Normalizer::Nfd | Normalizer::Nfkd => {
                if nt.text.is_ascii() {
                    return Ok(());
                }
                let out: Vec<(char, isize)> = {
                    let s: &str = &nt.text;
                    match self {
                        Normalizer::Nfc => s.nfc().collect(),
                        Normalizer::Nfkc => s.nfkc().collect(),
                        Normalizer::Nfd => s.nfd().collect(),
                        _ => s.nfkd().collect(),
                    }
                };
                let unchanged = out.iter().all(|&(_, ch)| ch == 0)
                    && out.len() == nt.text.chars().count()
                    && out.iter().map(|p| p.0).eq(nt.text.chars());
                if !unchanged {
                    nt.transform(out, 0, track);
                }
            }
            Normalizer::Lowercase => {
                if nt.text.is_ascii() {
                    if nt.text.bytes().any(|b| b.is_ascii_uppercase()) {
                        // one byte per char, alignment unchanged
                        let lower = nt.text.to_ascii_lowercase();
                        nt.text = Cow::Owned(lower);
                    }
                    return Ok(());
                }
                let mut v: Vec<(char, isize)> = Vec::with_capacity(nt.text.len());
                for c in nt.text.chars() {
                    for (i, l) in c.to_lowercase().enumerate() {
                        v.push((l, isize::from(i > 0)));
                    }
                }
                if !v.iter().map(|p| p.0).eq(nt.text.chars()) {
                    nt.transform(v, 0, track);
                }
            }
            Normalizer::Prepend(p) => {
                if let Some(first) = nt.text.chars().next() {
                    if p.is_empty() {
                        return Ok(());
                    }
                    let dest: Vec<(char, isize)> = p
                        .chars()
                        .enumerate()
                        .map(|(i, c)| (c, isize::from(i != 0)))
                        .chain(std::iter::once((first, 1)))
                        .collect();
                    nt.transform_range(0..first.len_utf8(), dest, 0, track);
                }
            }
            Normalizer::Replace {
                content, matcher, ..
            } => {
                let mut spans = Vec::new();
                matcher.find_matches(&nt.text, &mut spans)?;
                if !spans.iter().any(|s| s.2) {
                    return Ok(());
                }
                let old_text = nt.text.to_string();
                let mut new_text = String::with_capacity(old_text.len());
                let mut new_align = Vec::new();
                let old_align: Option<Vec<(usize, usize)>> = if track {
                    Some(nt.materialize().clone())
                } else {
                    None
                };
                let base = nt.base;
                let mut last = 0;
                for &(a, b, is_match) in &spans {
                    if !is_match {
                        continue;
                    }
                    new_text.push_str(&old_text[last..a]);
                    if let Some(al) = &old_align {
                        new_align.extend_from_slice(&al[last..a]);
                        // every replacement char is "inserted" after the removed match
                        let at = if b == 0 { (base, base) } else { al[b - 1] };
                        for c in content.chars() {
                            for _ in 0..c.len_utf8() {
                                new_align.push(at);
                            }
                        }
                    }
                    new_text.push_str(content);
                    last = b;
                }
                new_text.push_str(&old_text[last..]);
                if let Some(al) = &old_align {
                    new_align.extend_from_slice(&al[last..]);
                    nt.align = Some(new_align);
                } else {
                    nt.identity = false;
                    nt.align = None;
                }
                nt.text = Cow::Owned(new_text);
            }
            Normalizer::Strip { left, right } => {
                let lead = if *left {
                    nt.text.chars().take_while(|c| c.is_whitespace()).count()
                } else {
                    0
                };
                let trail = if *right {
                    nt.text
                        .chars()
                        .rev()
                        .take_while(|c| c.is_whitespace())
                        .count()
                } else {
                    0
                };
                if lead > 0 || trail > 0 {
                    let count = nt.text.chars().count();
                    let len = nt.text.len();
                    let dest: Vec<(char, isize)> = nt
                        .text
                        .chars()
                        .enumerate()
                        .filter_map(|(i, c)| {
                            if i < lead || i >= count - trail {
                                None
                            } else if i + trail + 1 == len {
                                // HF compares a char index with a byte length here; kept
                                Some((c, -(trail as isize)))
                            } else {
                                Some((c, 0))
                            }
                        })
                        .collect();
                    nt.transform(dest, lead, track);
                }
            }
            Normalizer::Sequence(v) => {
                for n in v {
                    n.apply(nt, track)?;
                }
            }
        }
        Ok(())
    }
}

/// Parse `{"String": s}` / `{"Regex": r}`.
pub fn parse_pattern(v: Option<&Value>, path: &str) -> Result<PatternSpec> {
    let v = v.ok_or_else(|| err(path, "missing pattern"))?;
    let m = json::obj(v, path)?;
    if let Some(s) = m.get("String") {
        return Ok(PatternSpec::String(
            s.as_str()
                .ok_or_else(|| err(&join(path, "String"), "expected a string"))?
                .to_string(),
        ));
    }
    if let Some(s) = m.get("Regex") {
        return Ok(PatternSpec::Regex(
            s.as_str()
                .ok_or_else(|| err(&join(path, "Regex"), "expected a string"))?
                .to_string(),
        ));
    }
    Err(err(path, "expected {\"String\": ...} or {\"Regex\": ...}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfc_alignment_points_into_original() {
        let s = "ae\u{301}b";
        let mut nt = NormText::new(s, 10);
        Normalizer::Nfc.apply(&mut nt, true).unwrap();
        assert_eq!(nt.text, "aéb");
        assert_eq!(nt.original_range(0, 1), (10, 11));
        assert_eq!(nt.original_range(3, 4), (14, 15));
    }

    #[test]
    fn lowercase_and_prepend() {
        let mut nt = NormText::new("AB", 0);
        Normalizer::Sequence(vec![Normalizer::Lowercase, Normalizer::Prepend("▁".into())])
            .apply(&mut nt, true)
            .unwrap();
        assert_eq!(nt.text, "▁ab");
        assert_eq!(nt.original_range(0, 3), (0, 1));
        assert_eq!(nt.original_range(3, 5), (0, 2));
    }
}
