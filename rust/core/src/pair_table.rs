//! The merge step's lookup by the two parts' ids: `(a, b) -> id(bytes(a) ++ bytes(b))`.
//!
//! tiktoken's byte-rank merge joins two adjacent parts iff their concatenated bytes are a
//! token (lowest id first, leftmost among equals). Every part of that merge is a token
//! (when every byte has a token of its own), so the question "is `a ++ b` a token, and
//! which?" only depends on the two parts' ids, and the answer for all pairs is the finite
//! set of *splits* of the tokens: `(a, b, t)` for every token `t` and every cut of its
//! bytes into two tokens `a`, `b` (o200k: 446 K pairs, cl100k: 233 K). [`PairTable`]
//! holds exactly that set, so a pair that is absent is not a token: the table is exact
//! and complete, no fallback to the byte index is needed.
//!
//! **Layout.** Entries are one `u64`: `(a << 21 | b) << 22 | (t + 1)` (ids below 2^21;
//! zero is an empty slot, whose value field 0 can never be mistaken for an answer).
//! Buckets are one cache line of 8 entries; each pair lives in one of two buckets chosen
//! by two multiplicative hashes of its key (bucketized cuckoo hashing, load ≤ 0.9). A
//! lookup loads both buckets (independent loads that overlap) and compares all 16 keys
//! without a branch per slot: the OR of the matching entries' value fields is `t + 1`, or
//! 0 if none matches. This replaces the byte-keyed lookup of the merge loop (the key
//! built from the bytes, the hash, the Bloom filter's test and the probe loop, whose
//! branches were mispredicted on most steps) with a few predictable instructions.
//!
//! The table is built on demand (the first piece that is not a token), from the
//! vocabulary's index: one pass over the tokens' cuts.

use crate::hugebuf::HugeBuf;
use crate::vocab::Vocab;

/// Bits of an id in a key.
const ID_BITS: u32 = 21;
/// Bits of the value field (`t + 1`).
const VAL_BITS: u32 = 22;
const VAL_MASK: u64 = (1 << VAL_BITS) - 1;
const KEY_MASK: u64 = !VAL_MASK;
const H1: u64 = 0x9E37_79B9_7F4A_7C15;
const H2: u64 = 0xC2B2_AE3D_27D4_EB4F;
/// Entries per bucket (one 64-byte cache line).
const WAYS: usize = 8;
/// Evictions tried before an insertion gives up (and the table doubles).
const MAX_KICKS: usize = 2000;

/// One cache line of entries.
type Bucket = [u64; WAYS];

/// Exact table of the pairs of tokens whose concatenation is a token (module docs).
pub struct PairTable {
    buckets: HugeBuf<Bucket>,
    mask: usize,
    shift: u32,
    pairs: usize,
}

impl std::fmt::Debug for PairTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairTable")
            .field("pairs", &self.pairs)
            .field("bytes", &self.size_bytes())
            .finish()
    }
}

#[inline(always)]
fn pack(a: u32, b: u32) -> u64 {
    (a as u64) << ID_BITS | b as u64
}

impl PairTable {
    /// Whether the table can serve `vocab`: every byte has a token (so every part of the
    /// merge is a token) and ids fit in [`ID_BITS`] bits.
    pub fn supports(vocab: &Vocab) -> bool {
        vocab.n_slots() < (1 << ID_BITS) - 1 && (0..=255u8).all(|b| vocab.byte_id(b).is_some())
    }

    /// The table of `vocab`'s splits, or `None` if [`PairTable::supports`] says no.
    pub fn build(vocab: &Vocab) -> Option<PairTable> {
        if !Self::supports(vocab) {
            return None;
        }
        let mut entries: Vec<u64> = Vec::with_capacity(vocab.len() * 3);
        for (t, bytes) in vocab.iter() {
            for k in 1..bytes.len() {
                let Some(a) = vocab.get(&bytes[..k]) else {
                    continue;
                };
                if let Some(b) = vocab.get(&bytes[k..]) {
                    entries.push(pack(a, b) << VAL_BITS | (t as u64 + 1));
                }
            }
        }
        let mut n_buckets = (entries.len() * 10 / 9 / WAYS + 1).next_power_of_two();
        loop {
            if let Some(t) = Self::fill(&entries, n_buckets) {
                return Some(t);
            }
            n_buckets *= 2;
        }
    }

    /// Cuckoo insertion of all `entries` into `n_buckets` buckets, `None` if one fails.
    fn fill(entries: &[u64], n_buckets: usize) -> Option<PairTable> {
        let bits = n_buckets.trailing_zeros();
        let mut t = PairTable {
            buckets: HugeBuf::zeroed(n_buckets),
            mask: n_buckets - 1,
            shift: 64 - bits.max(1),
            pairs: entries.len(),
        };
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        for &e in entries {
            let mut e = e;
            let mut placed = false;
            for _ in 0..MAX_KICKS {
                let key = e >> VAL_BITS;
                let (b1, b2) = t.homes(key);
                for b in [b1, b2] {
                    if let Some(slot) = t.buckets[b].iter_mut().find(|s| **s == 0) {
                        *slot = e;
                        placed = true;
                        break;
                    }
                }
                if placed {
                    break;
                }
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let b = if rng & 1 == 0 { b1 } else { b2 };
                let s = (rng >> 1) as usize % WAYS;
                std::mem::swap(&mut t.buckets[b][s], &mut e);
            }
            if !placed {
                return None;
            }
        }
        Some(t)
    }

    /// The two candidate buckets of a packed key.
    #[inline(always)]
    fn homes(&self, key: u64) -> (usize, usize) {
        let b1 = (key.wrapping_mul(H1) >> self.shift) as usize & self.mask;
        let b2 = (key.wrapping_mul(H2) >> self.shift) as usize & self.mask;
        (b1, b2)
    }

    /// The id of the token `bytes(a) ++ bytes(b)`, or `u32::MAX` if it is not a token
    /// (`a`, `b` any ids below 2^21). Branch-free: both buckets are loaded and all their
    /// keys compared.
    #[inline(always)]
    pub fn get(&self, a: u32, b: u32) -> u32 {
        let key = pack(a, b);
        let (b1, b2) = self.homes(key);
        let want = key << VAL_BITS;
        let (x, y) = (&self.buckets[b1], &self.buckets[b2]);
        let mut v = 0u64;
        for i in 0..WAYS {
            v |= if x[i] & KEY_MASK == want { x[i] & VAL_MASK } else { 0 };
            v |= if y[i] & KEY_MASK == want { y[i] & VAL_MASK } else { 0 };
        }
        (v as u32).wrapping_sub(1)
    }

    /// Number of pairs held.
    pub fn len(&self) -> usize {
        self.pairs
    }

    /// Whether no pair is held (no token of two or more bytes is a concatenation of two
    /// tokens).
    pub fn is_empty(&self) -> bool {
        self.pairs == 0
    }

    /// Memory held, in bytes.
    pub fn size_bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<Bucket>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_of_ids_agrees_with_the_byte_index() {
        let mut toks: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        for t in [
            &b"ab"[..],
            b"ba",
            b"abc",
            b"bca",
            b"abab",
            b"aaaa",
            b"aa",
            b"cab",
            b"abcabc",
        ] {
            toks.push(t.to_vec());
        }
        let v = Vocab::from_pairs(toks.iter().cloned().zip(0u32..)).unwrap();
        let t = PairTable::build(&v).unwrap();
        for a in 0..v.n_slots() as u32 {
            for b in 0..v.n_slots() as u32 {
                let mut cat = v.bytes(a).unwrap().to_vec();
                cat.extend_from_slice(v.bytes(b).unwrap());
                assert_eq!(t.get(a, b), v.get(&cat).unwrap_or(u32::MAX), "{a} {b}");
            }
        }
    }

    #[test]
    fn missing_byte_is_unsupported() {
        let v = Vocab::from_pairs(vec![(b"a".to_vec(), 0), (b"ab".to_vec(), 1)]).unwrap();
        assert!(PairTable::build(&v).is_none());
    }
}
