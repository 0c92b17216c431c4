//! Token vocabulary: id ⇄ bytes, stored flat.
//!
//! Ids may have holes (tiktoken vocabularies are allowed to skip ranks); a hole has no
//! bytes. Every present token has at least one byte.

use crate::error::{Error, Result};
use crate::piece_index::PieceIndex;

/// Largest accepted id. Ids index dense arrays, so a vocabulary whose ids are far larger
/// than its size is rejected instead of allocating gigabytes.
const MAX_SPARSITY_SLACK: usize = 1 << 20;

#[derive(Clone, Debug)]
pub struct Vocab {
    data: Vec<u8>,
    /// `starts[id]..starts[id + 1]` is the byte range of `id`; empty for holes.
    starts: Vec<u32>,
    index: PieceIndex,
    /// `byte_ids[b]` is the id of the single-byte token `b`, or `u32::MAX`.
    byte_ids: [u32; 256],
    max_token_len: usize,
    len: usize,
}

impl Vocab {
    /// Build from `(bytes, id)` pairs. Rejects empty tokens, duplicate byte strings and
    /// duplicate ids.
    pub fn from_pairs<I>(pairs: I) -> Result<Self>
    where
        I: IntoIterator<Item = (Vec<u8>, u32)>,
    {
        let mut pairs: Vec<(Vec<u8>, u32)> = pairs.into_iter().collect();
        let n = pairs.len();
        let max_id = pairs.iter().map(|p| p.1 as usize).max().unwrap_or(0);
        if n > 0 && max_id > 4 * n + MAX_SPARSITY_SLACK {
            return Err(Error::InvalidVocab(format!(
                "token ids are too sparse: {n} tokens but the largest id is {max_id}"
            )));
        }
        pairs.sort_unstable_by_key(|p| p.1);
        for w in pairs.windows(2) {
            if w[0].1 == w[1].1 {
                return Err(Error::InvalidVocab(format!(
                    "duplicate id {}: {} and {}",
                    w[0].1,
                    crate::util::bytes_repr(&w[0].0),
                    crate::util::bytes_repr(&w[1].0)
                )));
            }
        }
        let total: usize = pairs.iter().map(|p| p.0.len()).sum();
        if total > u32::MAX as usize {
            return Err(Error::InvalidVocab("vocabulary larger than 4 GiB".into()));
        }
        let slots = if n == 0 { 0 } else { max_id + 1 };
        let mut data = Vec::with_capacity(total);
        let mut starts = Vec::with_capacity(slots + 1);
        let mut byte_ids = [u32::MAX; 256];
        let mut max_token_len = 0;
        let mut present = Vec::with_capacity(n);
        let mut it = pairs.into_iter().peekable();
        for id in 0..slots {
            starts.push(data.len() as u32);
            if let Some((_, pid)) = it.peek() {
                if *pid as usize == id {
                    let (bytes, pid) = it.next().expect("peeked");
                    if bytes.is_empty() {
                        return Err(Error::InvalidVocab(format!("token {pid} has no bytes")));
                    }
                    if bytes.len() == 1 {
                        byte_ids[bytes[0] as usize] = pid;
                    }
                    max_token_len = max_token_len.max(bytes.len());
                    data.extend_from_slice(&bytes);
                    present.push(pid);
                }
            }
        }
        starts.push(data.len() as u32);
        Self::from_flat(data, starts, present, byte_ids, max_token_len)
    }

    /// Build from the flat byte buffer and per-id start offsets (`starts.len()` is the
    /// number of slots + 1); `present` lists the ids that have bytes.
    fn from_flat(
        data: Vec<u8>,
        starts: Vec<u32>,
        present: Vec<u32>,
        byte_ids: [u32; 256],
        max_token_len: usize,
    ) -> Result<Self> {
        let bytes_of =
            |id: u32| &data[starts[id as usize] as usize..starts[id as usize + 1] as usize];
        let (index, dup) = PieceIndex::build(present.iter().copied(), present.len(), bytes_of);
        if let Some((prev, pid)) = dup {
            return Err(Error::InvalidVocab(format!(
                "duplicate token {} (ids {prev} and {pid})",
                crate::util::bytes_repr(bytes_of(pid))
            )));
        }
        let len = present.len();
        Ok(Vocab {
            data,
            starts,
            index,
            byte_ids,
            max_token_len,
            len,
        })
    }

    /// Number of tokens (not counting holes).
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One past the largest id (the size of an id-indexed array).
    #[inline]
    pub fn n_slots(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    #[inline]
    pub fn max_token_len(&self) -> usize {
        self.max_token_len
    }

    /// Pull the index's Bloom filter and its compact table of the 3- and 4-byte tokens
    /// into the caches (what the merge steps of a long ASCII piece look up).
    pub fn touch_index(&self) {
        self.index.touch_bloom();
        self.index.touch_lines34();
    }

    /// Pull the index's Bloom filter into the caches.
    pub fn touch_bloom(&self) {
        self.index.touch_bloom();
    }

    /// Bytes of token `id`, `None` for holes and out-of-range ids.
    #[inline]
    pub fn bytes(&self, id: u32) -> Option<&[u8]> {
        let i = id as usize;
        if i + 1 >= self.starts.len() {
            return None;
        }
        let (a, b) = (self.starts[i] as usize, self.starts[i + 1] as usize);
        if a == b {
            None
        } else {
            Some(&self.data[a..b])
        }
    }

    /// Id of the token whose bytes are exactly `bytes`.
    #[inline]
    pub fn get(&self, bytes: &[u8]) -> Option<u32> {
        self.index.get(bytes, |id| self.bytes_present(id))
    }

    /// [`Vocab::get`] tuned for queries that are mostly not tokens (Bloom filter first).
    #[inline]
    pub fn get_filtered(&self, bytes: &[u8]) -> Option<u32> {
        self.index.get_filtered(bytes, |id| self.bytes_present(id))
    }

    /// [`Vocab::get`] of `text[a..e]` (`a < e`, `a + 8 <= text.len()`), branch-light
    /// (see [`crate::piece_index::PieceIndex::get_in`]).
    #[inline(always)]
    pub fn get_in(&self, text: &[u8], a: usize, e: usize) -> Option<u32> {
        self.index.get_in(text, a, e, |id| self.bytes_present(id))
    }

    /// [`Vocab::get_filtered`] of `bytes` (at least 3 of them) with its index key already
    /// computed (see [`crate::piece_index::PieceIndex::get_filtered_key`]).
    #[inline(always)]
    pub(crate) fn get_filtered_key(&self, h: u64, t: u64, bytes: &[u8]) -> Option<u32> {
        self.index
            .get_filtered_key(h, t, bytes, |id| self.bytes_present(id))
    }

    /// Id of the 3- or 4-byte token whose bytes (little-endian, zero-padded) are `h`, or
    /// `u32::MAX` (`n` is 3 or 4; exact when [`Vocab::n_slots`] is at most `2^29`, which
    /// [`crate::rank_bpe::linear_ok`] implies): the Bloom filter, then the index's compact
    /// table, its bucket compared by AVX-512F (see
    /// [`crate::piece_index::PieceIndex::get34_avx512`]).
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn get34_avx512(&self, h: u64, n: usize) -> u32 {
        self.index.get34_avx512(h, n)
    }

    /// Id of the token whose bytes are `a ++ b` (both non-empty).
    #[inline]
    pub fn get_concat(&self, a: &[u8], b: &[u8]) -> Option<u32> {
        self.index.get_concat(a, b, |id| self.bytes_present(id))
    }

    /// Bytes of an id known to be present (used by the index).
    #[inline(always)]
    fn bytes_present(&self, id: u32) -> &[u8] {
        let i = id as usize;
        &self.data[self.starts[i] as usize..self.starts[i + 1] as usize]
    }

    /// Id of the single-byte token `b` (`None` if the vocabulary lacks it).
    #[inline]
    pub fn byte_id(&self, b: u8) -> Option<u32> {
        let id = self.byte_ids[b as usize];
        (id != u32::MAX).then_some(id)
    }

    /// Iterate over `(id, bytes)` in id order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &[u8])> + '_ {
        (0..self.n_slots() as u32).filter_map(move |id| self.bytes(id).map(|b| (id, b)))
    }

    /// Token ids sorted by their bytes (lexicographically).
    pub fn ids_sorted_by_bytes(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.iter().map(|(id, _)| id).collect();
        ids.sort_unstable_by(|&a, &b| self.bytes(a).cmp(&self.bytes(b)));
        ids
    }
}

/// Test helper: the 256 byte tokens followed by `tokens` (ids 256, 257, ...).
#[cfg(test)]
pub(crate) fn test_vocab(tokens: &[&[u8]]) -> Vocab {
    let mut pairs: Vec<(Vec<u8>, u32)> = (0..=255u8).map(|b| (vec![b], b as u32)).collect();
    for (i, t) in tokens.iter().enumerate() {
        pairs.push((t.to_vec(), 256 + i as u32));
    }
    Vocab::from_pairs(pairs).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_and_lookup() {
        let v = Vocab::from_pairs(vec![(b"a".to_vec(), 0), (b"bc".to_vec(), 3)]).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v.n_slots(), 4);
        assert_eq!(v.bytes(0), Some(&b"a"[..]));
        assert_eq!(v.bytes(1), None);
        assert_eq!(v.bytes(3), Some(&b"bc"[..]));
        assert_eq!(v.bytes(4), None);
        assert_eq!(v.get(b"bc"), Some(3));
        assert_eq!(v.byte_id(b'a'), Some(0));
        assert_eq!(v.byte_id(b'b'), None);
    }

    #[test]
    fn rejects_duplicates() {
        assert!(Vocab::from_pairs(vec![(b"a".to_vec(), 0), (b"a".to_vec(), 1)]).is_err());
        assert!(Vocab::from_pairs(vec![(b"a".to_vec(), 0), (b"b".to_vec(), 0)]).is_err());
        assert!(Vocab::from_pairs(vec![(Vec::new(), 0)]).is_err());
        assert!(Vocab::from_pairs(vec![(b"a".to_vec(), u32::MAX - 1)]).is_err());
    }
}
