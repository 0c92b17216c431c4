//! [`PretokenCounts`]: how often each pretoken (or chunk) occurs in a corpus.
//!
//! The counts are the only thing the merge loop needs from the corpus, so they are the unit
//! of scale-out: shards are counted separately (other processes, other machines), merged
//! with [`PretokenCounts::merge`] and trained on once. Counts are `u64`; merging is
//! associative and commutative, and the serialized form is canonical (entries sorted by
//! bytes), so the same corpus always gives the same bytes whatever the thread count or the
//! sharding.

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};

/// Magic prefix of the serialized form (version 1).
const MAGIC: &[u8; 8] = b"STPCNT\x00\x01";

/// Pretoken → occurrence count, plus the pattern (or description of the chunker) that
/// produced the pretokens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PretokenCounts {
    map: FxHashMap<Box<[u8]>, u64>,
    pattern: Option<String>,
}

impl PretokenCounts {
    /// Empty counts for `pattern` (`None` = unknown / arbitrary chunks).
    pub fn new(pattern: Option<String>) -> Self {
        PretokenCounts {
            map: FxHashMap::default(),
            pattern,
        }
    }

    /// Wrap an existing map.
    pub fn from_map(map: FxHashMap<Box<[u8]>, u64>, pattern: Option<String>) -> Self {
        PretokenCounts { map, pattern }
    }

    /// The pattern the pretokens were split with, if known.
    pub fn pattern(&self) -> Option<&str> {
        self.pattern.as_deref()
    }

    /// Set the pattern (e.g. after building counts by hand).
    pub fn set_pattern(&mut self, pattern: Option<String>) {
        self.pattern = pattern;
    }

    /// Number of distinct pretokens.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Sum of all counts (number of pretoken occurrences).
    pub fn total(&self) -> u64 {
        self.map.values().fold(0u64, |a, &c| a.saturating_add(c))
    }

    /// Total number of bytes covered (Σ count × length).
    pub fn total_bytes(&self) -> u64 {
        self.map.iter().fold(0u64, |a, (k, &c)| {
            a.saturating_add(c.saturating_mul(k.len() as u64))
        })
    }

    /// Whether every pretoken is whitespace only (true for empty counts): training on such
    /// counts is almost certainly a mistake (an empty or blank corpus).
    pub fn all_whitespace(&self) -> bool {
        self.map.keys().all(|k| {
            String::from_utf8_lossy(k)
                .chars()
                .all(|c| c.is_whitespace())
        })
    }

    /// Count of one pretoken (0 when absent).
    pub fn get(&self, piece: &[u8]) -> u64 {
        self.map.get(piece).copied().unwrap_or(0)
    }

    /// Add `count` occurrences of `piece` (empty pieces are ignored).
    #[inline]
    pub fn add(&mut self, piece: &[u8], count: u64) {
        if piece.is_empty() || count == 0 {
            return;
        }
        if let Some(c) = self.map.get_mut(piece) {
            *c = c.saturating_add(count);
        } else {
            self.map.insert(piece.into(), count);
        }
    }

    /// Iterate over `(pretoken, count)` in unspecified order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], u64)> + '_ {
        self.map.iter().map(|(k, &c)| (&**k, c))
    }

    /// Entries sorted by bytes (the canonical order).
    pub fn sorted(&self) -> Vec<(&[u8], u64)> {
        let mut v: Vec<(&[u8], u64)> = self.iter().collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// The underlying map.
    pub fn map(&self) -> &FxHashMap<Box<[u8]>, u64> {
        &self.map
    }

    /// Consume into the underlying map.
    pub fn into_map(self) -> FxHashMap<Box<[u8]>, u64> {
        self.map
    }

    /// Check that two counts can be merged (same pattern, or one of them unknown).
    fn check_compatible(&self, other: &PretokenCounts) -> Result<()> {
        match (&self.pattern, &other.pattern) {
            (Some(a), Some(b)) if a != b => Err(Error::InvalidArgument(format!(
                "cannot add pretoken counts made with different patterns ({a:?} and {b:?})"
            ))),
            _ => Ok(()),
        }
    }

    /// Add all counts of `other` into `self` (the larger map is kept to save work).
    pub fn merge(&mut self, other: PretokenCounts) -> Result<()> {
        self.check_compatible(&other)?;
        if self.pattern.is_none() {
            self.pattern = other.pattern.clone();
        }
        let mut small = other.map;
        if small.len() > self.map.len() {
            std::mem::swap(&mut small, &mut self.map);
        }
        self.map.reserve(small.len());
        for (k, c) in small {
            let e = self.map.entry(k).or_insert(0);
            *e = e.saturating_add(c);
        }
        Ok(())
    }

    /// Add all counts of `other` (borrowed) into `self`.
    pub fn merge_ref(&mut self, other: &PretokenCounts) -> Result<()> {
        self.check_compatible(other)?;
        if self.pattern.is_none() {
            self.pattern = other.pattern.clone();
        }
        for (k, &c) in other.map.iter() {
            self.add(k, c);
        }
        Ok(())
    }

    /// Serialize (canonical: entries sorted by bytes, LEB128 lengths and counts).
    pub fn to_bytes(&self) -> Vec<u8> {
        let entries = self.sorted();
        let approx: usize = entries.iter().map(|(k, _)| k.len() + 3).sum();
        let mut out = Vec::with_capacity(approx + 32);
        out.extend_from_slice(MAGIC);
        match &self.pattern {
            None => put_varint(&mut out, 0),
            Some(p) => {
                put_varint(&mut out, p.len() as u64 + 1);
                out.extend_from_slice(p.as_bytes());
            }
        }
        put_varint(&mut out, entries.len() as u64);
        for (k, c) in entries {
            put_varint(&mut out, k.len() as u64);
            out.extend_from_slice(k);
            put_varint(&mut out, c);
        }
        out
    }

    /// Parse the output of [`to_bytes`](Self::to_bytes). `source` names the input in errors.
    pub fn from_bytes(data: &[u8], source: &str) -> Result<Self> {
        let err = |pos: usize, m: &str| Error::Parse {
            source: source.to_string(),
            line: 0,
            message: format!("byte offset {pos}: {m}"),
        };
        if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
            return Err(err(0, "not a supertok pretoken-counts file (bad magic)"));
        }
        let mut pos = MAGIC.len();
        let plen = get_varint(data, &mut pos).ok_or_else(|| err(pos, "truncated header"))?;
        let pattern = if plen == 0 {
            None
        } else {
            let n = (plen - 1) as usize;
            let end = pos
                .checked_add(n)
                .filter(|&e| e <= data.len())
                .ok_or_else(|| err(pos, "truncated pattern"))?;
            let p = std::str::from_utf8(&data[pos..end])
                .map_err(|_| err(pos, "pattern is not UTF-8"))?
                .to_string();
            pos = end;
            Some(p)
        };
        let n = get_varint(data, &mut pos).ok_or_else(|| err(pos, "truncated header"))?;
        // Every entry needs at least 3 bytes: do not trust `n` for the allocation.
        let cap = (n as usize).min(data.len() / 3 + 1);
        let mut map = FxHashMap::with_capacity_and_hasher(cap, Default::default());
        for _ in 0..n {
            let at = pos;
            let len = get_varint(data, &mut pos).ok_or_else(|| err(at, "truncated entry"))?;
            let end = pos
                .checked_add(len as usize)
                .filter(|&e| e <= data.len())
                .ok_or_else(|| err(at, "truncated entry"))?;
            let key: Box<[u8]> = data[pos..end].into();
            pos = end;
            let c = get_varint(data, &mut pos).ok_or_else(|| err(at, "truncated count"))?;
            if key.is_empty() || c == 0 {
                return Err(err(at, "empty pretoken or zero count"));
            }
            if map.insert(key, c).is_some() {
                return Err(err(at, "duplicate pretoken"));
            }
        }
        if pos != data.len() {
            return Err(err(pos, "trailing bytes after the last entry"));
        }
        Ok(PretokenCounts { map, pattern })
    }

    /// Write to a file.
    pub fn save(&self, path: &str) -> Result<()> {
        std::fs::write(path, self.to_bytes()).map_err(|e| Error::Io {
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    /// Read from a file written by [`save`](Self::save).
    pub fn load(path: &str) -> Result<Self> {
        let data = std::fs::read(path).map_err(|e| Error::Io {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        Self::from_bytes(&data, path)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0u32;
    loop {
        let b = *data.get(*pos)?;
        *pos += 1;
        if shift >= 64 || (shift == 63 && b > 1) {
            return None;
        }
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_merge() {
        let mut a = PretokenCounts::new(Some("p".into()));
        a.add(b"hello", 3);
        a.add(b" world", u64::MAX / 2);
        a.add(b"", 5);
        let bytes = a.to_bytes();
        let b = PretokenCounts::from_bytes(&bytes, "x").unwrap();
        assert_eq!(a, b);
        let mut c = PretokenCounts::new(None);
        c.add(b"hello", 1);
        c.merge(b).unwrap();
        assert_eq!(c.get(b"hello"), 4);
        assert_eq!(c.pattern(), Some("p"));
        let d = PretokenCounts::new(Some("q".into()));
        assert!(c.merge(d).is_err());
        for cut in 0..bytes.len() {
            assert!(PretokenCounts::from_bytes(&bytes[..cut], "x").is_err());
        }
    }

    #[test]
    fn varint_edges() {
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            let mut o = vec![];
            put_varint(&mut o, v);
            let mut p = 0;
            assert_eq!(get_varint(&o, &mut p), Some(v));
            assert_eq!(p, o.len());
        }
        let mut p = 0;
        assert_eq!(get_varint(&[0xff; 11], &mut p), None);
    }
}
