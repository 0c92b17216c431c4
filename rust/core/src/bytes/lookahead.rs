//! Which pre-token boundaries of a text prefix can still move.
//!
//! Pre-tokenizers decide boundaries with look-ahead (`\s+(?!\S)`, `\s*[\r\n]`, right-aligned
//! digit groups, contractions, o200k's case classes), so the pieces of a prefix `x` are not
//! the pieces that `x` gets inside a longer text. This module computes, for the tail `u` of
//! the text after the last *certain* boundary, every configuration
//! ("hypothesis") that the pieces of `u · z` restricted to `u` can take over all
//! continuations `z`: the piece ends inside `u` and the start of the piece that is still
//! open at the end of `u`.
//!
//! It does so generically, by running the tokenizer's own pre-tokenizer on `u · z` for a
//! finite set of probe continuations `z`. Pre-tokenizers decide on characters only through
//! their Unicode general category, White_Space property and whether they are one of the
//! pattern's literal characters (the [`PieceTokenizer`] contract), so one representative
//! character per class stands for all characters of the class, and the probes are: the end
//! of the text, every representative character, and every representative after a
//! representative of the "run" classes (whitespace, numbers, literal punctuation). Results
//! are cached by the class string of the tail, so the probes run once per distinct shape.
//! The property tests check every hypothesis set against brute-force continuations.

use std::sync::{Arc, Mutex};

use regex::RegexSet;
use rustc_hash::FxHashMap;

use crate::bytes::source::PieceTokenizer;
use crate::error::{Error, Result};

/// Unicode general categories, in the order of [`GC_NAMES`].
const GC_NAMES: [&str; 29] = [
    "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi",
    "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Co", "Cn",
];

/// Preferred representatives (any character of a class would do).
const PREFERRED: &[char] = &[
    'a',
    'A',
    '\u{1c5}',
    '\u{2b0}',
    '\u{4e2d}',
    '\u{301}',
    '\u{903}',
    '\u{20dd}',
    '1',
    '\u{216b}',
    '\u{bd}',
    '_',
    '-',
    '(',
    ')',
    '\u{ab}',
    '\u{bb}',
    '!',
    '+',
    '$',
    '^',
    '\u{a9}',
    '\u{a0}',
    '\u{2028}',
    '\u{2029}',
    '\t',
    '\0',
    '\u{ad}',
    '\u{e000}',
    '\u{378}',
    ' ',
    '\n',
    '\r',
    '\u{3000}',
    '\u{1f600}',
    '\u{200d}',
    '\u{85}',
    '\u{b}',
];

/// One boundary configuration of a tail, in character indices relative to the tail.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hyp {
    /// Ends of complete pieces inside the tail (ascending, all > 0, all <= `open`).
    pub bounds: Vec<u32>,
    /// Start of the piece that is open at the end of the tail; equal to the tail's length
    /// in characters when a piece ends exactly there.
    pub open: u32,
    /// Whether the text may end here with this configuration (the end-of-text probe).
    pub eot: bool,
}

/// All hypotheses of one tail shape and the furthest certain boundary.
#[derive(Clone, Debug)]
pub struct Hyps {
    pub hyps: Vec<Hyp>,
    /// Largest character index that is a boundary in every hypothesis, with identical
    /// boundaries before it (0 if none).
    pub certain: u32,
}

#[derive(Debug)]
struct Classes {
    set: RegexSet,
    /// the pre-tokenizer's own class atoms, when known
    atoms: Option<RegexSet>,
    literals: Vec<char>,
    /// class key -> representative
    reps: FxHashMap<u32, char>,
    cache: FxHashMap<char, char>,
}

impl Classes {
    fn key(&self, c: char) -> u32 {
        if let Ok(i) = self.literals.binary_search(&c) {
            return 1_000_000 + i as u32;
        }
        self.class_key(c)
    }

    fn class_key(&self, c: char) -> u32 {
        let mut buf = [0u8; 4];
        if let Some(atoms) = &self.atoms {
            let s = c.encode_utf8(&mut buf);
            let m = atoms.matches(s);
            return m.iter().fold(0u32, |acc, i| acc | (1 << i));
        }
        let s = c.encode_utf8(&mut buf);
        let m = self.set.matches(s);
        let gc = m
            .iter()
            .find(|&i| i < GC_NAMES.len())
            .unwrap_or(GC_NAMES.len() - 1) as u32;
        let ws = m.matched(GC_NAMES.len()) as u32;
        gc * 2 + ws
    }

    /// Representative of `c`'s class ignoring whether it is a literal.
    fn class_rep(&mut self, c: char) -> char {
        let k = self.class_key(c);
        // a class without a non-literal representative keeps the character itself
        self.reps.get(&k).copied().unwrap_or(c)
    }

    fn rep(&mut self, c: char) -> char {
        if self.literals.binary_search(&c).is_ok() {
            return c;
        }
        if let Some(&r) = self.cache.get(&c) {
            return r;
        }
        let k = self.key(c);
        let r = *self.reps.entry(k).or_insert(c);
        if self.cache.len() < 1 << 20 {
            self.cache.insert(c, r);
        }
        r
    }
}

/// Hypothesis engine for one tokenizer (thread-safe, shared by all streams).
#[derive(Debug)]
pub struct Lookahead {
    classes: Mutex<Classes>,
    /// single-character probes
    r1: Vec<char>,
    /// first characters of the two-character probes
    r2: Vec<char>,
    cache: Mutex<FxHashMap<String, Arc<Hyps>>>,
    partial_cache: Mutex<FxHashMap<Vec<u8>, Vec<char>>>,
    /// literal letters outside these anchors' reach act as their class
    letter_context: Option<(Vec<char>, usize)>,
}

impl Lookahead {
    /// Build for a tokenizer's pattern literals.
    pub fn new(tok: &dyn PieceTokenizer) -> Result<Self> {
        let mut pats: Vec<String> = GC_NAMES.iter().map(|g| format!(r"\A\p{{{g}}}\z")).collect();
        pats.push(r"\A\s\z".to_string());
        let set = RegexSet::new(&pats).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let mut literals = tok.pattern_literals();
        literals.sort_unstable();
        literals.dedup();
        let atoms = match tok.class_atoms() {
            Some(a) if a.len() <= 24 => {
                let pats: Vec<String> = a.iter().map(|x| format!(r"\A(?:{x})\z")).collect();
                RegexSet::new(&pats).ok()
            }
            _ => None,
        };
        let mut classes = Classes {
            set,
            atoms,
            literals: literals.clone(),
            reps: FxHashMap::default(),
            cache: FxHashMap::default(),
        };
        let ascii: Vec<char> = (0u8..128).map(|b| b as char).collect();
        for &c in PREFERRED.iter().chain(ascii.iter()) {
            if classes.literals.binary_search(&c).is_err() {
                let k = classes.key(c);
                classes.reps.entry(k).or_insert(c);
            }
        }
        let mut r1: Vec<char> = classes.reps.values().copied().collect();
        r1.extend(literals.iter().copied());
        r1.sort_unstable();
        r1.dedup();
        let r2: Vec<char> = r1
            .iter()
            .copied()
            .filter(|&c| {
                let is_lit = classes.literals.binary_search(&c).is_ok();
                c.is_whitespace() || c.is_numeric() || (is_lit && !c.is_alphabetic())
            })
            .collect();
        Ok(Lookahead {
            classes: Mutex::new(classes),
            r1,
            r2,
            cache: Mutex::new(FxHashMap::default()),
            partial_cache: Mutex::new(FxHashMap::default()),
            letter_context: tok.letter_context(),
        })
    }

    /// Number of probe continuations tried per new tail shape.
    pub fn n_probes(&self) -> usize {
        1 + self.r1.len() + self.r2.len() * self.r1.len()
    }

    fn rep(&self, c: char) -> char {
        match self.classes.lock() {
            Ok(mut g) => g.rep(c),
            Err(_) => c,
        }
    }

    /// Representatives of every character whose UTF-8 encoding starts with `partial`.
    fn completions(&self, partial: &[u8]) -> Vec<char> {
        if let Ok(g) = self.partial_cache.lock() {
            if let Some(v) = g.get(partial) {
                return v.clone();
            }
        }
        let mut reps: Vec<char> = Vec::new();
        let need = crate::util::utf8_len(partial[0]);
        if need > partial.len() {
            let free = need - partial.len();
            let total = 1u32 << (6 * free);
            let mut buf = [0u8; 4];
            buf[..partial.len()].copy_from_slice(partial);
            let mut seen = std::collections::BTreeSet::new();
            for v in 0..total {
                for k in 0..free {
                    buf[partial.len() + k] = 0x80 | ((v >> (6 * (free - 1 - k))) & 0x3f) as u8;
                }
                if let Ok(s) = std::str::from_utf8(&buf[..need]) {
                    if let Some(c) = s.chars().next() {
                        let r = self.rep(c);
                        if seen.insert(r) {
                            reps.push(r);
                        }
                    }
                }
            }
        }
        if let Ok(mut g) = self.partial_cache.lock() {
            g.insert(partial.to_vec(), reps.clone());
        }
        reps
    }

    /// Hypotheses for a tail (raw bytes; all complete characters except possibly a
    /// partial one at the end). `Err` if the tail is not a prefix of valid UTF-8.
    pub fn hypotheses(&self, tok: &dyn PieceTokenizer, tail: &[u8]) -> Result<Arc<Hyps>> {
        let (text, partial) = match std::str::from_utf8(tail) {
            Ok(s) => (s, &tail[tail.len()..]),
            Err(e) => {
                let v = e.valid_up_to();
                if e.error_len().is_some() {
                    return Err(Error::InvalidArgument(
                        "the text is not valid UTF-8".to_string(),
                    ));
                }
                // SAFETY-free: prefix is valid
                let s = std::str::from_utf8(&tail[..v])
                    .map_err(|e| Error::InvalidArgument(e.to_string()))?;
                (s, &tail[v..])
            }
        };
        let mut key: String = match (&self.letter_context, self.classes.lock()) {
            (Some((anchors, w)), Ok(mut g)) => {
                let cs: Vec<char> = text.chars().collect();
                let mut out = String::with_capacity(text.len());
                for (i, &c) in cs.iter().enumerate() {
                    let r = g.rep(c);
                    if r == c && c.is_alphabetic() {
                        let near = cs[i.saturating_sub(*w)..i]
                            .iter()
                            .any(|a| anchors.contains(a));
                        out.push(if near { c } else { g.class_rep(c) });
                    } else {
                        out.push(r);
                    }
                }
                out
            }
            _ => text.chars().map(|c| self.rep(c)).collect(),
        };
        let completions = if partial.is_empty() {
            None
        } else {
            let c = self.completions(partial);
            key.push('\u{fffe}');
            key.extend(c.iter());
            Some(c)
        };
        if let Ok(g) = self.cache.lock() {
            if let Some(h) = g.get(&key) {
                return Ok(h.clone());
            }
        }
        if std::env::var_os("SUPERTOK_DEBUG_LOOKAHEAD").is_some() {
            eprintln!("lookahead miss {key:?}");
        }
        let h = Arc::new(self.compute(tok, &key, completions.as_deref())?);
        if let Ok(mut g) = self.cache.lock() {
            if g.len() > 200_000 {
                g.clear();
            }
            g.insert(key, h.clone());
        }
        Ok(h)
    }

    fn compute(
        &self,
        tok: &dyn PieceTokenizer,
        key: &str,
        completions: Option<&[char]>,
    ) -> Result<Hyps> {
        let base: &str = match completions {
            Some(_) => key.split('\u{fffe}').next().unwrap_or(""),
            None => key,
        };
        let k = base.chars().count() as u32;
        let mut set: Vec<Hyp> = Vec::new();
        let mut probe = String::with_capacity(base.len() + 16);
        let mut pieces = Vec::new();
        let mut run = |z: &[char], eot: bool, set: &mut Vec<Hyp>| -> Result<()> {
            probe.clear();
            probe.push_str(base);
            probe.extend(z.iter());
            pieces.clear();
            tok.split(&probe, &mut pieces)?;
            if let Some(h) = restrict(&probe, &pieces, k, eot) {
                if let Some(old) = set
                    .iter_mut()
                    .find(|o| o.bounds == h.bounds && o.open == h.open)
                {
                    old.eot |= h.eot;
                } else {
                    set.push(h);
                }
            }
            Ok(())
        };
        let mut probes = |pre: &[char], eot: bool, set: &mut Vec<Hyp>| -> Result<()> {
            let mut z: Vec<char> = pre.to_vec();
            run(&z, eot, set)?;
            for &c in &self.r1 {
                z.truncate(pre.len());
                z.push(c);
                run(&z, false, set)?;
            }
            for &c in &self.r2 {
                for &d in &self.r1 {
                    z.truncate(pre.len());
                    z.push(c);
                    z.push(d);
                    run(&z, false, set)?;
                }
            }
            Ok(())
        };
        match completions {
            None => probes(&[], true, &mut set)?,
            Some(comp) => {
                for &c in comp {
                    probes(&[c], false, &mut set)?;
                }
            }
        }
        set.sort();
        let certain = certain_boundary(&set);
        Ok(Hyps { hyps: set, certain })
    }
}

/// Restrict the pieces of a probe text to its first `k` characters. `None` if the
/// pre-tokenizer drops a character of the known text.
fn restrict(text: &str, pieces: &[(usize, usize)], k: u32, eot: bool) -> Option<Hyp> {
    let mut char_at = FxHashMap::default();
    let mut n = 0u32;
    for (ci, (bi, _)) in text.char_indices().enumerate() {
        char_at.insert(bi, ci as u32);
        n = ci as u32 + 1;
    }
    char_at.insert(text.len(), n);
    let mut bounds = Vec::new();
    let mut pos = 0u32;
    let mut open = None;
    for &(a, b) in pieces {
        let ca = *char_at.get(&a)?;
        let cb = *char_at.get(&b)?;
        if ca != pos && pos < k {
            return None;
        }
        if cb > k {
            open = Some(ca.min(k));
            break;
        }
        bounds.push(cb);
        pos = cb;
    }
    let open = match open {
        Some(o) => o,
        None if pos == k => k,
        None => return None,
    };
    bounds.retain(|&b| b > 0 && b < open);
    Some(Hyp { bounds, open, eot })
}

fn certain_boundary(hyps: &[Hyp]) -> u32 {
    let Some(first) = hyps.first() else { return 0 };
    let all = |h: &Hyp| -> Vec<u32> {
        let mut v = h.bounds.clone();
        v.push(h.open);
        v
    };
    let min_open = hyps.iter().map(|h| h.open).min().unwrap_or(0);
    let mut cands = all(first);
    cands.retain(|&p| p <= min_open);
    for &p in cands.iter().rev() {
        let prefix = |h: &Hyp| -> Vec<u32> { all(h).into_iter().filter(|&b| b <= p).collect() };
        let fp = prefix(first);
        if hyps
            .iter()
            .all(|h| prefix(h) == fp && fp.last() == Some(&p))
        {
            return p;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::CoreEncoding;
    use crate::pretok::patterns;

    fn enc(pat: &str) -> CoreEncoding {
        let pairs: Vec<(Vec<u8>, u32)> = (0..=255u8).map(|b| (vec![b], b as u32)).collect();
        CoreEncoding::new(pairs, vec![], pat).unwrap()
    }

    #[test]
    fn whitespace_lookahead() {
        let e = enc(patterns::CL100K);
        let la = Lookahead::new(&e).unwrap();
        let h = la.hypotheses(&e, b"a  ").unwrap();
        // "a", then either "  " ends here (text end / newline...) or " " + " b" or all open
        let opens: Vec<u32> = h.hyps.iter().map(|h| h.open).collect();
        assert!(opens.contains(&2), "{h:?}");
        assert!(opens.contains(&3), "{h:?}");
        assert!(opens.contains(&1), "{h:?}");
        assert_eq!(h.certain, 1, "{h:?}");
    }

    #[test]
    fn digits_right_aligned() {
        let e = enc(r"\p{N}{1,3}(?=(?:\p{N}{3})*(?!\p{N}))|\P{N}+");
        let la = Lookahead::new(&e).unwrap();
        let h = la.hypotheses(&e, b"1234").unwrap();
        let mut opens: Vec<u32> = h.hyps.iter().map(|h| h.open).collect();
        opens.sort();
        opens.dedup();
        assert_eq!(opens, vec![2, 3, 4], "{h:?}");
        assert_eq!(h.certain, 0);
    }
}
