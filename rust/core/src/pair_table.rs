//! Id-pair merge table for tiktoken's byte-rank merge: `(left id, right id) -> id of the
//! token whose bytes are bytes(left) ++ bytes(right)`, for *every* pair of tokens whose
//! concatenation is a token.
//!
//! # Why it gives tiktoken's result
//! tiktoken's merge keeps a list of parts (byte ranges of the piece), and repeatedly
//! merges the adjacent pair whose *concatenated bytes* form the token of lowest rank
//! (leftmost among equals); the rank of a token is its id. Every part is either a single
//! byte or the result of a merge, and a merge only happens when the concatenation is a
//! token, so every part of two or more bytes is a token. When every single byte is a token
//! too (true of every OpenAI vocabulary; [`PairTable::build`] refuses others), every part
//! is a token and is identified by its id: the bytes of a part are `bytes(id)`. The
//! candidate merge of two adjacent parts `l`, `r` is then available iff `bytes(l) ++
//! bytes(r)` is a token, with rank = that token's id. This table holds exactly those
//! pairs: it is built by splitting every token `t` at every inner position `k` and
//! recording `(id(t[..k]), id(t[k..])) -> id(t)` when both halves are tokens. Every pair
//! `(l, r)` whose concatenation is a token `t` appears (at `k = len(bytes(l))`), and no
//! other pair does, so a lookup here answers exactly the question tiktoken's byte lookup
//! answers — regardless of which pair "made" `t` during training (the table is not a
//! training merge list). The merge order (lowest id first, leftmost among equals) is
//! unchanged, so the output is identical. A lookup is one 64-bit hash and a compare with
//! no byte comparison, where the byte lookup hashes the concatenated bytes.
//!
//! # Layout
//! One `u64` per slot: bit 63 set for an occupied slot, then the 21-bit left id, the
//! 21-bit right id and the 21-bit merged id (so ids must be below 2^21, which every
//! vocabulary of up to two million tokens satisfies); linear probing over a power-of-two
//! array at a load factor of at most 1/2, so that a miss is almost always answered by one
//! cache line. o200k_base has 446,189 such pairs (8 MiB), cl100k_base 233,378 (4 MiB).

use crate::hugebuf::HugeBuf;
use crate::vocab::Vocab;

/// Ids stored in the table are below `1 << ID_BITS`.
const ID_BITS: u32 = 21;
const ID_MASK: u64 = (1 << ID_BITS) - 1;
const OCCUPIED: u64 = 1 << 63;

/// "No merge": returned by [`PairTable::get`] for pairs whose concatenation is no token.
pub const NO_MERGE: u32 = u32::MAX;

/// The pair table of one vocabulary (see the module docs).
pub struct PairTable {
    slots: HugeBuf<u64>,
    /// Blocked Bloom filter over the keys (two bits in one word, about 8 bits per pair),
    /// small enough to stay in L2: most pairs looked up are not in the table.
    bloom: HugeBuf<u64>,
    bloom_mask: u64,
    shift: u32,
    /// `byte_ids[b]`: the id of the single-byte token `b` (all present).
    byte_ids: [u32; 256],
    count: usize,
}

impl std::fmt::Debug for PairTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairTable")
            .field("pairs", &self.count)
            .field("slots", &self.slots.len())
            .finish()
    }
}

#[inline(always)]
fn pair_key(l: u32, r: u32) -> u64 {
    ((l as u64) << ID_BITS) | r as u64
}

impl PairTable {
    /// Build the table of `vocab`, or `None` if a single byte has no token of its own or
    /// an id is `2^21` or more (the table's packing; such vocabularies keep the byte-rank
    /// lookups).
    pub fn build(vocab: &Vocab) -> Option<PairTable> {
        if vocab.n_slots() as u64 > ID_MASK {
            return None;
        }
        let mut byte_ids = [0u32; 256];
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            *slot = vocab.byte_id(b as u8)?;
        }
        let mut entries: Vec<u64> = Vec::with_capacity(vocab.len() * 5 / 2);
        for (id, t) in vocab.iter() {
            for k in 1..t.len() {
                if let (Some(l), Some(r)) = (vocab.get(&t[..k]), vocab.get(&t[k..])) {
                    entries.push(OCCUPIED | pair_key(l, r) << ID_BITS | id as u64);
                }
            }
        }
        let dense = std::env::var("ST_DENSE").is_ok();
        let cap = if dense { (entries.len().max(8) * 8 / 7).next_power_of_two() } else { (entries.len().max(8) * 2).next_power_of_two() };
        let bloom_words = (entries.len().max(64) * 8 / 64).next_power_of_two();
        let bloom_mask = bloom_words as u64 - 1;
        let mut bloom: HugeBuf<u64> = HugeBuf::zeroed(bloom_words);
        let shift = 64 - cap.trailing_zeros();
        let mut slots: HugeBuf<u64> = HugeBuf::zeroed(cap);
        let mask = cap - 1;
        for &e in &entries {
            let key = (e >> ID_BITS) & (ID_MASK << ID_BITS | ID_MASK);
            let (w, bits) = Self::bloom_word(key, bloom_mask);
            bloom[w] |= bits;
            let mut i = Self::home(key, shift);
            // keys are distinct: the bytes of l ++ r determine the token
            while slots[i] != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = e;
        }
        Some(PairTable {
            slots,
            bloom,
            bloom_mask,
            shift,
            byte_ids,
            count: entries.len(),
        })
    }

    #[inline(always)]
    fn home(key: u64, shift: u32) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize
    }

    /// Word index and two-bit mask of `key` in the Bloom filter (from a second hash).
    #[inline(always)]
    fn bloom_word(key: u64, mask: u64) -> (usize, u64) {
        let h = key.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        let h = h ^ (h >> 32);
        ((h & mask) as usize, (1u64 << ((h >> 40) & 63)) | (1u64 << ((h >> 46) & 63)))
    }

    /// Number of pairs in the table.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the table holds no pair.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the slot array in bytes.
    pub fn size_bytes(&self) -> usize {
        self.slots.len() * 8
    }

    /// Id of the single-byte token `b`.
    #[inline(always)]
    pub fn byte_id(&self, b: u8) -> u32 {
        self.byte_ids[b as usize]
    }

    /// Id of the token whose bytes are `bytes(l) ++ bytes(r)`, or [`NO_MERGE`].
    #[inline(always)]
    pub fn get(&self, l: u32, r: u32) -> u32 {
        let key = pair_key(l, r);
        let (w, bits) = Self::bloom_word(key, self.bloom_mask);
        if self.bloom[w] & bits != bits {
            return NO_MERGE;
        }
        let tag = (OCCUPIED >> ID_BITS) | key;
        let mask = self.slots.len() - 1;
        let mut i = Self::home(key, self.shift);
        loop {
            let e = self.slots[i];
            if e >> ID_BITS == tag {
                return (e & ID_MASK) as u32;
            }
            if e == 0 {
                return NO_MERGE;
            }
            i = (i + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_every_pair_and_nothing_else() {
        let toks: [&[u8]; 8] = [b"ab", b"abc", b"bc", b"abcd", b"cd", b"aab", b"xyz", b"yz"];
        let v = crate::vocab::test_vocab(&toks);
        let t = PairTable::build(&v).unwrap();
        let id = |s: &[u8]| v.get(s).unwrap();
        let all: Vec<(u32, Vec<u8>)> = v.iter().map(|(i, b)| (i, b.to_vec())).collect();
        let mut n = 0;
        for (l, lb) in &all {
            for (r, rb) in &all {
                let mut cat = lb.clone();
                cat.extend_from_slice(rb);
                let want = v.get(&cat).unwrap_or(NO_MERGE);
                assert_eq!(t.get(*l, *r), want, "{lb:?} {rb:?}");
                n += (want != NO_MERGE) as usize;
            }
        }
        assert_eq!(n, t.len());
        // "abc" is reachable from both (ab, c) and (a, bc)
        assert_eq!(t.get(id(b"ab"), id(b"c")), id(b"abc"));
        assert_eq!(t.get(id(b"a"), id(b"bc")), id(b"abc"));
        assert_eq!(t.byte_id(b'q'), id(b"q"));
    }

    #[test]
    fn refuses_missing_bytes() {
        let v = Vocab::from_pairs(vec![(b"a".to_vec(), 0), (b"ab".to_vec(), 1)]).unwrap();
        assert!(PairTable::build(&v).is_none());
    }
}
