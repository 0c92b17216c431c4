//! Added tokens (HF's `AddedVocabulary`): literal strings matched before the model, in two
//! passes: tokens with `normalized=false` on the raw input, then tokens with
//! `normalized=true` on each normalized remaining segment.

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, MatchKind};
use fancy_regex::Regex;
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::Value;

use super::json::{self, err};
use super::normalize::{NormText, Normalizer};
use crate::error::{Error, Result};

/// One entry of `added_tokens`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedToken {
    pub content: String,
    pub single_word: bool,
    pub lstrip: bool,
    pub rstrip: bool,
    pub normalized: bool,
    pub special: bool,
}

impl AddedToken {
    /// A special token as trainers write them (`normalized=false`, no stripping).
    pub fn special(content: &str) -> Self {
        AddedToken {
            content: content.to_string(),
            single_word: false,
            lstrip: false,
            rstrip: false,
            normalized: false,
            special: true,
        }
    }

    /// Parse one entry (its `"id"` is read but, as in HF, not trusted).
    pub fn from_json(v: &Value, path: &str) -> Result<(Option<u32>, Self)> {
        let m = json::obj(v, path)?;
        let id = match m.get("id") {
            None | Some(Value::Null) => None,
            Some(x) => Some(json::as_u32(x, &json::join(path, "id"))?),
        };
        let special = json::boolean(m, "special", path, false)?;
        Ok((
            id,
            AddedToken {
                content: json::string(m, "content", path)?,
                single_word: json::boolean(m, "single_word", path, false)?,
                lstrip: json::boolean(m, "lstrip", path, false)?,
                rstrip: json::boolean(m, "rstrip", path, false)?,
                normalized: json::boolean(m, "normalized", path, !special)?,
                special,
            },
        ))
    }

    pub fn to_json(&self, id: u32) -> Value {
        json::object([
            ("id", Value::from(id)),
            ("content", Value::String(self.content.clone())),
            ("single_word", Value::Bool(self.single_word)),
            ("lstrip", Value::Bool(self.lstrip)),
            ("rstrip", Value::Bool(self.rstrip)),
            ("normalized", Value::Bool(self.normalized)),
            ("special", Value::Bool(self.special)),
        ])
    }
}

#[derive(Clone, Debug)]
struct Trie {
    ac: AhoCorasick,
    ids: Vec<u32>,
}

impl Trie {
    fn build(pairs: Vec<(String, u32)>) -> Result<Option<Self>> {
        if pairs.is_empty() {
            return Ok(None);
        }
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(pairs.iter().map(|p| p.0.as_bytes()))
            .map_err(|e| Error::InvalidVocab(format!("added tokens: {e}")))?;
        Ok(Some(Trie {
            ac,
            ids: pairs.into_iter().map(|p| p.1).collect(),
        }))
    }
}

/// A piece of text produced by added-token splitting: a token id (for an added token) or
/// `None` (text left for the model), and its byte range.
pub type AddedSplit = (Option<u32>, usize, usize);

/// HF's `AddedVocabulary`.
#[derive(Clone, Debug, Default)]
pub struct AddedVocab {
    /// `(id, token)` in id order (HF serializes them so).
    tokens: Vec<(u32, AddedToken)>,
    by_content: FxHashMap<String, u32>,
    by_id: FxHashMap<u32, usize>,
    /// Normalized form of `normalized=true` tokens whose form differs from the content.
    normalized_form: FxHashMap<u32, String>,
    specials: FxHashSet<String>,
    raw: Option<Trie>,
    norm: Option<Trie>,
}

fn word_regex() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^\w$").ok()).as_ref()
}

fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    let mut buf = [0u8; 4];
    word_regex().is_some_and(|re| re.is_match(c.encode_utf8(&mut buf)).unwrap_or(false))
}

impl AddedVocab {
    /// Add `tokens` in one call, as HF's `add_tokens` does when loading a file: a token whose
    /// content is already known (added before, or in the model vocabulary via
    /// `model_lookup`) keeps that id; others get fresh ids from `model_size` upwards.
    pub fn build<F>(
        tokens: Vec<AddedToken>,
        model_lookup: F,
        model_size: usize,
        normalizer: Option<&Normalizer>,
    ) -> Result<Self>
    where
        F: Fn(&str) -> Option<u32>,
    {
        let mut by_id: FxHashMap<u32, AddedToken> = FxHashMap::default();
        let mut by_content: FxHashMap<String, u32> = FxHashMap::default();
        let mut normalized_form: FxHashMap<u32, String> = FxHashMap::default();
        let mut specials = FxHashSet::default();
        let mut next_id = model_size as u32;
        for token in tokens {
            if token.content.is_empty() {
                continue;
            }
            if let Some(id) = by_content.get(&token.content) {
                if by_id.get(id) == Some(&token) {
                    continue;
                }
            }
            let id = match by_content
                .get(&token.content)
                .copied()
                .or_else(|| model_lookup(&token.content))
            {
                Some(id) => id,
                None => {
                    let id = next_id;
                    next_id = next_id.checked_add(1).ok_or_else(|| {
                        Error::InvalidVocab("too many added tokens: ids overflow u32".into())
                    })?;
                    id
                }
            };
            if token.normalized {
                if let Some(n) = normalizer {
                    let mut nt = NormText::new(&token.content, 0);
                    n.apply(&mut nt, false)?;
                    if nt.text != token.content {
                        normalized_form.insert(id, nt.text.to_string());
                    }
                }
            }
            by_content.insert(token.content.clone(), id);
            if token.special {
                specials.insert(token.content.clone());
            }
            by_id.insert(id, token);
        }
        let mut list: Vec<(u32, AddedToken)> = by_id.into_iter().collect();
        list.sort_by_key(|p| p.0);
        let mut raw_pairs = Vec::new();
        let mut norm_pairs = Vec::new();
        for (id, t) in &list {
            if t.normalized {
                let p = normalized_form
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| t.content.clone());
                norm_pairs.push((p, *id));
            } else {
                raw_pairs.push((t.content.clone(), *id));
            }
        }
        for pairs in [&raw_pairs, &norm_pairs] {
            let mut seen = FxHashSet::default();
            for (p, _) in pairs.iter() {
                if p.is_empty() || !seen.insert(p.as_str()) {
                    return Err(Error::InvalidVocab(format!(
                        "added tokens: two tokens match the same text {p:?}"
                    )));
                }
            }
        }
        let by_id_index = list
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (*id, i))
            .collect();
        Ok(AddedVocab {
            raw: Trie::build(raw_pairs)?,
            norm: Trie::build(norm_pairs)?,
            tokens: list,
            by_content,
            by_id: by_id_index,
            normalized_form,
            specials,
        })
    }

    /// Parse `added_tokens` (`path` names it in errors).
    pub fn parse_list(v: &Value, path: &str) -> Result<Vec<(Option<u32>, AddedToken)>> {
        if v.is_null() {
            return Ok(Vec::new());
        }
        let items = json::arr(v, path)?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| AddedToken::from_json(item, &json::index(path, i)))
            .collect()
    }

    pub fn to_json(&self) -> Value {
        Value::Array(self.tokens.iter().map(|(id, t)| t.to_json(*id)).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// `(id, token)` in id order.
    pub fn tokens(&self) -> &[(u32, AddedToken)] {
        &self.tokens
    }

    pub fn id_of(&self, content: &str) -> Option<u32> {
        self.by_content.get(content).copied()
    }

    pub fn token(&self, id: u32) -> Option<&AddedToken> {
        self.by_id.get(&id).map(|&i| &self.tokens[i].1)
    }

    /// The string HF's decoder sees for an added token (its normalized form if it has one).
    pub fn decode_form(&self, id: u32) -> Option<&str> {
        let t = self.token(id)?;
        Some(
            self.normalized_form
                .get(&id)
                .map(|s| s.as_str())
                .unwrap_or(t.content.as_str()),
        )
    }

    /// Whether `s` is the content of a special added token.
    pub fn is_special(&self, s: &str) -> bool {
        self.specials.contains(s)
    }

    pub fn has_raw(&self) -> bool {
        self.raw.is_some()
    }

    pub fn has_normalized(&self) -> bool {
        self.norm.is_some()
    }

    /// Split `s` on the raw (`normalized=false`) tokens. Offsets are relative to `s`.
    pub fn split_raw(&self, s: &str, out: &mut Vec<AddedSplit>) {
        self.find(s, self.raw.as_ref(), out)
    }

    /// Split `s` on the normalized (`normalized=true`) tokens.
    pub fn split_normalized(&self, s: &str, out: &mut Vec<AddedSplit>) {
        self.find(s, self.norm.as_ref(), out)
    }

    /// HF's `find_matches`: leftmost-longest non-overlapping matches, filtered by
    /// `single_word`, widened by `lstrip`/`rstrip`; the splits cover `s`.
    fn find(&self, s: &str, trie: Option<&Trie>, out: &mut Vec<AddedSplit>) {
        let trie = match trie {
            Some(t) if !s.is_empty() => t,
            _ => {
                if !s.is_empty() {
                    out.push((None, 0, s.len()));
                }
                return;
            }
        };
        let mut start_offset = 0;
        for m in trie.ac.find_iter(s) {
            let id = trie.ids[m.pattern().as_usize()];
            let Some(tok) = self.token(id) else { continue };
            let (mut start, mut stop) = (m.start(), m.end());
            if tok.single_word {
                let start_space =
                    start == 0 || !s[..start].chars().next_back().is_some_and(is_word_char);
                let stop_space =
                    stop == s.len() || !s[stop..].chars().next().is_some_and(is_word_char);
                if !start_space || !stop_space {
                    continue;
                }
            }
            if tok.lstrip {
                let ws: usize = s[..start]
                    .chars()
                    .rev()
                    .take_while(|c| c.is_whitespace())
                    .map(|c| c.len_utf8())
                    .sum();
                start = (start - ws).max(start_offset);
            }
            if tok.rstrip {
                stop += s[stop..]
                    .chars()
                    .take_while(|c| c.is_whitespace())
                    .map(|c| c.len_utf8())
                    .sum::<usize>();
            }
            if start_offset < start {
                out.push((None, start_offset, start));
            }
            out.push((Some(id), start, stop));
            start_offset = stop;
        }
        if start_offset < s.len() {
            out.push((None, start_offset, s.len()));
        }
    }
}

/// Check an `added_tokens` list for ids that HF would silently reassign, and report the
/// first one (HF only logs a warning; we keep HF's ids).
pub fn check_ids(
    listed: &[(Option<u32>, AddedToken)],
    vocab: &AddedVocab,
    path: &str,
) -> Option<Error> {
    for (i, (id, t)) in listed.iter().enumerate() {
        if let (Some(id), Some(real)) = (id, vocab.id_of(&t.content)) {
            if *id != real {
                return Some(err(
                    &json::index(path, i),
                    format!(
                        "added token {:?} is listed with id {id} but HF tokenizers assigns it id {real}",
                        t.content
                    ),
                ));
            }
        }
    }
    None
}
