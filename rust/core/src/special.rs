//! Special tokens: literal strings that encode to one reserved id when allowed.

use aho_corasick::{AhoCorasick, Input, MatchKind};
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};

#[derive(Clone, Debug, Default)]
pub struct SpecialTokens {
    /// Sorted by string; index = position in this list.
    tokens: Vec<(String, u32)>,
    by_str: FxHashMap<String, usize>,
    by_id: FxHashMap<u32, usize>,
    ac: Option<AhoCorasick>,
    /// Whether two special strings can overlap (one contains another, or a proper suffix of
    /// one is a prefix of another). Only then can a scan from left to right miss an
    /// occurrence, so only then does exact tiktoken behaviour need the slow path.
    overlapping: bool,
}

/// A set of special tokens, as a bitmap over [`SpecialTokens`] indices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialSet {
    bits: Vec<bool>,
}

impl SpecialSet {
    pub fn none(n: usize) -> Self {
        SpecialSet {
            bits: vec![false; n],
        }
    }
    pub fn all(n: usize) -> Self {
        SpecialSet {
            bits: vec![true; n],
        }
    }
    #[inline]
    pub fn contains(&self, i: usize) -> bool {
        self.bits.get(i).copied().unwrap_or(false)
    }
    pub fn insert(&mut self, i: usize) {
        if i < self.bits.len() {
            self.bits[i] = true;
        }
    }
    pub fn is_empty(&self) -> bool {
        !self.bits.iter().any(|&b| b)
    }
}

/// A special token found in text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecialMatch {
    pub start: usize,
    pub end: usize,
    pub index: usize,
}

impl SpecialTokens {
    pub fn new<I: IntoIterator<Item = (String, u32)>>(tokens: I) -> Result<Self> {
        let mut tokens: Vec<(String, u32)> = tokens.into_iter().collect();
        tokens.sort();
        let mut by_str = FxHashMap::default();
        let mut by_id = FxHashMap::default();
        for (i, (s, id)) in tokens.iter().enumerate() {
            if s.is_empty() {
                return Err(Error::InvalidVocab("empty special token".into()));
            }
            if by_str.insert(s.clone(), i).is_some() {
                return Err(Error::InvalidVocab(format!(
                    "duplicate special token {s:?}"
                )));
            }
            if let Some(j) = by_id.insert(*id, i) {
                return Err(Error::InvalidVocab(format!(
                    "special tokens {:?} and {s:?} share id {id}",
                    tokens[j].0
                )));
            }
        }
        let ac = if tokens.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(tokens.iter().map(|t| t.0.as_bytes()))
                    .map_err(|e| Error::InvalidVocab(format!("special tokens: {e}")))?,
            )
        };
        let overlapping = Self::compute_overlapping(&tokens);
        Ok(SpecialTokens {
            tokens,
            by_str,
            by_id,
            ac,
            overlapping,
        })
    }

    fn compute_overlapping(tokens: &[(String, u32)]) -> bool {
        if tokens.len() > 4096 {
            return true;
        }
        for (a, _) in tokens {
            let a = a.as_bytes();
            for (b, _) in tokens {
                let b = b.as_bytes();
                if a != b && memchr::memmem::find(a, b).is_some() {
                    return true;
                }
                for k in 1..a.len() {
                    if b.starts_with(&a[k..]) {
                        return true;
                    }
                }
            }
        }
        false
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
    pub fn overlapping(&self) -> bool {
        self.overlapping
    }
    /// `(string, id)` in index order.
    pub fn tokens(&self) -> &[(String, u32)] {
        &self.tokens
    }
    pub fn index_of(&self, s: &str) -> Option<usize> {
        self.by_str.get(s).copied()
    }
    pub fn id_of(&self, s: &str) -> Option<u32> {
        self.index_of(s).map(|i| self.tokens[i].1)
    }
    pub fn str_of_id(&self, id: u32) -> Option<&str> {
        self.by_id.get(&id).map(|&i| self.tokens[i].0.as_str())
    }
    #[inline]
    pub fn is_special_id(&self, id: u32) -> bool {
        self.by_id.contains_key(&id)
    }
    pub fn max_id(&self) -> Option<u32> {
        self.tokens.iter().map(|t| t.1).max()
    }

    /// Leftmost(-longest) special token starting at or after `from`.
    #[inline]
    pub fn find_from(&self, text: &str, from: usize) -> Option<SpecialMatch> {
        let ac = self.ac.as_ref()?;
        if from >= text.len() {
            return None;
        }
        ac.find(Input::new(text).span(from..text.len()))
            .map(|m| SpecialMatch {
                start: m.start(),
                end: m.end(),
                index: m.pattern().as_usize(),
            })
    }

    /// The leftmost occurrence of any special token in `set` (overlaps included).
    pub fn find_first_in(&self, text: &str, set: &SpecialSet) -> Option<SpecialMatch> {
        let mut pos = 0;
        while let Some(m) = self.find_from(text, pos) {
            if set.contains(m.index) {
                // A longer/other token of `set` can only start here or later; leftmost wins.
                return Some(m);
            }
            pos = m.start + 1;
            if !self.overlapping {
                pos = m.end;
            }
        }
        None
    }
}
