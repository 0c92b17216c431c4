//! The BPE merge engine, shared by tiktoken-style and HF-style tokenizers.
//!
//! A piece of bytes starts as single-byte tokens; adjacent pairs are merged by a
//! [`MergeTable`] that maps `(left, right)` to `(rank, result)`. The pair with the lowest
//! rank is merged first, the leftmost one among equal ranks. This is exactly HF's
//! `merge_all` (pair ranks from the merge list) and exactly tiktoken's byte-rank merge once
//! the table holds, for every token `t`, every split `(l, r)` of `t` into two tokens with
//! rank `rank(t)` (see [`MergeTable::from_vocab_ranks`]).
//!
//! Short pieces use a linear scan over a small array (cache friendly); long pieces a heap
//! with lazy invalidation over a linked list: `O(n log n)` whatever the input.
//!
//! The pairs live in one flat open-addressing table (16-byte slots, at most half full)
//! behind a bit filter (16 bits per pair) that answers most lookups of absent pairs — the
//! majority of lookups in a merge — without touching the slots.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

#[cfg(test)]
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::vocab::Vocab;

/// Pseudo ids for single bytes that have no token of their own. They are merged like
/// tokens (tiktoken merges byte strings, not ids) but may never be emitted.
pub const PSEUDO_BYTE_BASE: u32 = u32::MAX - 256;

/// Below this many bytes a piece is merged with the linear scan.
pub const LINEAR_MAX: usize = 128;

#[inline]
fn key(l: u32, r: u32) -> u64 {
    ((l as u64) << 32) | r as u64
}

/// Key of no pair (ids and pseudo ids are below `u32::MAX`).
const EMPTY_KEY: u64 = u64::MAX;

/// One slot of a [`PairMap`]: 16 bytes, four to a cache line.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(16))]
struct Slot {
    key: u64,
    rank: u32,
    res: u32,
}

/// Bits of the [`PairMap`] filter per pair (rounded to a power of two).
const FILTER_BITS_PER_PAIR: usize = 16;

/// `(left, right) -> (rank, result)` as one flat open-addressing table (linear probing, at
/// most half full) in front of which a bit filter answers most absent pairs: a lookup of
/// a present pair touches one cache line of slots, most lookups of absent pairs only one
/// bit of a table small enough to stay in the CPU caches. (BPE merges look up every
/// adjacent pair; most of them, in the end, have no merge.)
#[derive(Clone, Debug)]
struct PairMap {
    slots: Vec<Slot>,
    /// `64 - log2(slots.len())`: the slot of a hash `h` is `h >> shift`.
    shift: u32,
    /// One bit per `h >> fshift`, set for the hashes of present keys.
    filter: Vec<u64>,
    fshift: u32,
    len: usize,
}

#[inline(always)]
fn pair_hash(k: u64) -> u64 {
    (k ^ (k >> 31)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl PairMap {
    /// An empty map with room for `n` pairs.
    fn with_capacity(n: usize) -> Self {
        let slots = (2 * n).next_power_of_two().max(4);
        let bits = (FILTER_BITS_PER_PAIR * n).next_power_of_two().max(64);
        PairMap {
            slots: vec![
                Slot {
                    key: EMPTY_KEY,
                    rank: 0,
                    res: 0
                };
                slots
            ],
            shift: 64 - slots.trailing_zeros(),
            filter: vec![0; bits / 64],
            fshift: 64 - bits.trailing_zeros(),
            len: 0,
        }
    }

    /// Insert `k` (`k != EMPTY_KEY`); an existing value is replaced only with `replace`.
    fn insert(&mut self, k: u64, v: (u32, u32), replace: bool) {
        debug_assert!(k != EMPTY_KEY);
        if 2 * (self.len + 1) > self.slots.len() {
            self.grow();
        }
        let h = pair_hash(k);
        let mask = self.slots.len() - 1;
        let mut i = (h >> self.shift) as usize;
        loop {
            let s = &mut self.slots[i];
            if s.key == EMPTY_KEY {
                *s = Slot {
                    key: k,
                    rank: v.0,
                    res: v.1,
                };
                self.len += 1;
                let f = (h >> self.fshift) as usize;
                self.filter[f >> 6] |= 1 << (f & 63);
                return;
            }
            if s.key == k {
                if replace {
                    s.rank = v.0;
                    s.res = v.1;
                }
                return;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let mut bigger = PairMap::with_capacity(2 * self.len.max(2));
        for s in &self.slots {
            if s.key != EMPTY_KEY {
                bigger.insert(s.key, (s.rank, s.res), true);
            }
        }
        *self = bigger;
    }

    #[inline(always)]
    fn get(&self, k: u64) -> Option<(u32, u32)> {
        let h = pair_hash(k);
        let f = (h >> self.fshift) as usize;
        if self.filter[f >> 6] & (1 << (f & 63)) == 0 {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = (h >> self.shift) as usize;
        loop {
            let s = &self.slots[i];
            if s.key == k {
                return Some((s.rank, s.res));
            }
            if s.key == EMPTY_KEY {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    fn iter(&self) -> impl Iterator<Item = (u64, (u32, u32))> + '_ {
        self.slots
            .iter()
            .filter(|s| s.key != EMPTY_KEY)
            .map(|s| (s.key, (s.rank, s.res)))
    }
}

impl Default for PairMap {
    fn default() -> Self {
        PairMap::with_capacity(0)
    }
}

/// `(left, right) -> (rank, result)`.
#[derive(Clone, Debug, Default)]
pub struct MergeTable {
    map: PairMap,
    /// id (or pseudo id) of each single byte.
    byte_ids: Vec<u32>,
}

impl MergeTable {
    /// tiktoken semantics: ranks are ids, and two adjacent parts merge iff their
    /// concatenation is a token; its rank is the token's id.
    pub fn from_vocab_ranks(vocab: &Vocab) -> Self {
        let byte_ids: Vec<u32> = (0..=255u8)
            .map(|b| vocab.byte_id(b).unwrap_or(PSEUDO_BYTE_BASE + b as u32))
            .collect();
        let lookup = |s: &[u8]| -> Option<u32> {
            if s.len() == 1 {
                Some(byte_ids[s[0] as usize])
            } else {
                vocab.get(s)
            }
        };
        let mut map = PairMap::with_capacity(vocab.len() * 2);
        for (id, bytes) in vocab.iter() {
            for j in 1..bytes.len() {
                if let (Some(l), Some(r)) = (lookup(&bytes[..j]), lookup(&bytes[j..])) {
                    map.insert(key(l, r), (id, id), true);
                }
            }
        }
        MergeTable { map, byte_ids }
    }

    /// HF semantics: an explicit ordered merge list `(left, right, result)`; the rank of a
    /// merge is its position. Later duplicates of a pair are ignored (HF keeps the first).
    pub fn from_merges(vocab: &Vocab, merges: &[(u32, u32, u32)]) -> Self {
        let byte_ids: Vec<u32> = (0..=255u8)
            .map(|b| vocab.byte_id(b).unwrap_or(PSEUDO_BYTE_BASE + b as u32))
            .collect();
        let mut map = PairMap::with_capacity(merges.len());
        for (rank, &(l, r, res)) in merges.iter().enumerate() {
            map.insert(key(l, r), (rank as u32, res), false);
        }
        MergeTable { map, byte_ids }
    }

    /// Look up a pair: `(rank, result)`.
    #[inline]
    pub fn get(&self, l: u32, r: u32) -> Option<(u32, u32)> {
        self.map.get(key(l, r))
    }

    /// Number of pairs in the table.
    pub fn len(&self) -> usize {
        self.map.len
    }

    pub fn is_empty(&self) -> bool {
        self.map.len == 0
    }

    /// Id (or pseudo id) of the single byte `b`.
    #[inline]
    pub fn byte_id(&self, b: u8) -> u32 {
        self.byte_ids[b as usize]
    }

    /// Iterate over all pairs `(left, right, rank, result)` (unordered).
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32, u32, u32)> + '_ {
        self.map
            .iter()
            .map(|(k, (rank, res))| ((k >> 32) as u32, k as u32, rank, res))
    }

    /// Merge `piece` and append the resulting ids to `out`.
    ///
    /// Fails only if a byte without a token of its own survives the merging.
    pub fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) -> Result<()> {
        let start = out.len();
        match piece.len() {
            0 => {}
            1 => out.push(self.byte_id(piece[0])),
            n if n < LINEAR_MAX => self.merge_linear(piece, out),
            _ => self.merge_heap(piece, out),
        }
        if out[start..].iter().any(|&t| t >= PSEUDO_BYTE_BASE) {
            out.truncate(start);
            return Err(Error::UnencodableBytes(piece.to_vec()));
        }
        Ok(())
    }

    fn merge_linear(&self, piece: &[u8], out: &mut Vec<u32>) {
        let mut ids: [u32; LINEAR_MAX] = [0; LINEAR_MAX];
        for (i, &b) in piece.iter().enumerate() {
            ids[i] = self.byte_id(b);
        }
        let len = self.merge_ids_linear(&mut ids, piece.len());
        out.extend_from_slice(&ids[..len]);
    }

    /// Merge the token sequence `ids[..n]` (`2 <= n < LINEAR_MAX`) to its fixpoint in place
    /// by linear scans over a small array (cache friendly); returns the new length.
    pub(crate) fn merge_ids_linear(&self, ids: &mut [u32; LINEAR_MAX], n: usize) -> usize {
        debug_assert!((2..LINEAR_MAX).contains(&n));
        // ids[i] is the i-th part; ranks[i]/res[i] describe the pair (ids[i], ids[i+1]).
        let mut ranks: [u32; LINEAR_MAX] = [u32::MAX; LINEAR_MAX];
        let mut res: [u32; LINEAR_MAX] = [0; LINEAR_MAX];
        for i in 0..n - 1 {
            if let Some((r, t)) = self.get(ids[i], ids[i + 1]) {
                ranks[i] = r;
                res[i] = t;
            }
        }
        let mut len = n;
        loop {
            let mut best = u32::MAX;
            let mut at = usize::MAX;
            for (i, &r) in ranks[..len - 1].iter().enumerate() {
                if r < best {
                    best = r;
                    at = i;
                }
            }
            if best == u32::MAX {
                break;
            }
            ids[at] = res[at];
            // remove part at+1
            ids.copy_within(at + 2..len, at + 1);
            ranks.copy_within(at + 2..len, at + 1);
            res.copy_within(at + 2..len, at + 1);
            len -= 1;
            ranks[len - 1] = u32::MAX;
            if at + 1 < len {
                match self.get(ids[at], ids[at + 1]) {
                    Some((r, t)) => {
                        ranks[at] = r;
                        res[at] = t;
                    }
                    None => ranks[at] = u32::MAX,
                }
            } else {
                ranks[at] = u32::MAX;
            }
            if at > 0 {
                match self.get(ids[at - 1], ids[at]) {
                    Some((r, t)) => {
                        ranks[at - 1] = r;
                        res[at - 1] = t;
                    }
                    None => ranks[at - 1] = u32::MAX,
                }
            }
        }
        len
    }

    /// Heap merge of a long piece (see [`MergeTable::merge_ids_heap`]).
    fn merge_heap(&self, piece: &[u8], out: &mut Vec<u32>) {
        let ids: Vec<u32> = piece.iter().map(|&b| self.byte_id(b)).collect();
        self.merge_ids_heap(ids, out);
    }

    /// Merge the token sequence `ids` to its fixpoint and append the result to `out`:
    /// `O(n log n)` with a heap (lazy invalidation) over a linked list. Heap entries are
    /// packed `rank << 32 | position` keys in one `u64`, so that "lowest rank, leftmost
    /// among equals" is one integer comparison (a position is the index of a part's first
    /// element, increasing left to right).
    pub(crate) fn merge_ids_heap(&self, mut ids: Vec<u32>, out: &mut Vec<u32>) {
        const NONE: u32 = u32::MAX;
        #[inline]
        fn pack(rank: u32, pos: usize) -> Reverse<u64> {
            Reverse(((rank as u64) << 32) | pos as u64)
        }
        let n = ids.len();
        if n < 2 {
            out.extend_from_slice(&ids);
            return;
        }
        let mut next: Vec<u32> = (1..=n as u32).collect();
        let mut prev: Vec<u32> = (0..n as u32).map(|i| i.wrapping_sub(1)).collect();
        next[n - 1] = NONE;
        // rank/result of the pair starting at i (u32::MAX = none)
        let mut ranks = vec![u32::MAX; n];
        let mut res = vec![0u32; n];
        let mut initial: Vec<Reverse<u64>> = Vec::with_capacity(n);
        for i in 0..n - 1 {
            if let Some((r, t)) = self.get(ids[i], ids[i + 1]) {
                ranks[i] = r;
                res[i] = t;
                initial.push(pack(r, i));
            }
        }
        // Heapify in O(n) rather than n pushes.
        let mut heap: BinaryHeap<Reverse<u64>> = BinaryHeap::from(initial);
        while let Some(Reverse(key)) = heap.pop() {
            let r = (key >> 32) as u32;
            let i = key as u32 as usize;
            if ranks[i] != r {
                continue; // stale
            }
            let j = next[i] as usize; // right part (exists since ranks[i] != MAX)
            ids[i] = res[i];
            ranks[j] = u32::MAX;
            let k = next[j];
            next[i] = k;
            if k != NONE {
                prev[k as usize] = i as u32;
                match self.get(ids[i], ids[k as usize]) {
                    Some((r2, t2)) => {
                        ranks[i] = r2;
                        res[i] = t2;
                        heap.push(pack(r2, i));
                    }
                    None => ranks[i] = u32::MAX,
                }
            } else {
                ranks[i] = u32::MAX;
            }
            let p = prev[i];
            if p != NONE {
                let p = p as usize;
                match self.get(ids[p], ids[i]) {
                    Some((r2, t2)) => {
                        ranks[p] = r2;
                        res[p] = t2;
                        heap.push(pack(r2, p));
                    }
                    None => ranks[p] = u32::MAX,
                }
            }
        }
        let mut i = 0u32;
        while i != NONE {
            out.push(ids[i as usize]);
            i = next[i as usize];
        }
    }
}

/// Test support: byte tokens plus a random HF-style merge list over the alphabet
/// `a b c space`. Each pick `(x, y)` merges two usable tokens (indices taken modulo their
/// number); a merge whose concatenation already exists reuses that token (one token made
/// by two different merges, as HF's trainer does). With `dedupe`, a pair is merged at most
/// once; concatenations longer than `max_len` bytes are skipped.
#[cfg(test)]
pub(crate) fn random_merge_list(
    picks: &[(usize, usize)],
    dedupe: bool,
    max_len: usize,
) -> (Vocab, Vec<(u32, u32, u32)>) {
    let mut toks: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    let mut index: FxHashMap<Vec<u8>, u32> = toks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let mut usable: Vec<u32> = vec![b'a' as u32, b'b' as u32, b'c' as u32, b' ' as u32];
    let mut merges = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for &(x, y) in picks {
        let l = usable[x % usable.len()];
        let r = usable[y % usable.len()];
        if dedupe && !seen.insert((l, r)) {
            continue;
        }
        let mut cat = toks[l as usize].clone();
        cat.extend_from_slice(&toks[r as usize]);
        if cat.len() > max_len {
            continue;
        }
        let id = match index.get(&cat) {
            Some(&id) => id,
            None => {
                let id = toks.len() as u32;
                toks.push(cat.clone());
                index.insert(cat, id);
                usable.push(id);
                id
            }
        };
        merges.push((l, r, id));
    }
    let pairs: Vec<(Vec<u8>, u32)> = toks
        .into_iter()
        .enumerate()
        .map(|(i, t)| (t, i as u32))
        .collect();
    (Vocab::from_pairs(pairs).unwrap(), merges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(tokens: &[&[u8]]) -> Vocab {
        crate::vocab::test_vocab(tokens)
    }

    #[test]
    fn simple_merges() {
        let v = vocab(&[b"ab", b"cd", b"abcd"]);
        let t = MergeTable::from_vocab_ranks(&v);
        let mut out = vec![];
        t.encode_piece(b"abcd", &mut out).unwrap();
        assert_eq!(out, vec![258]);
        out.clear();
        t.encode_piece(b"abab", &mut out).unwrap();
        assert_eq!(out, vec![256, 256]);
    }

    #[test]
    fn heap_equals_linear() {
        let v = vocab(&[b"aa", b"aaaa", b"ab", b"ba", b"aab", b"bab"]);
        let t = MergeTable::from_vocab_ranks(&v);
        let mut seed = 12345u64;
        for len in 2..200 {
            let piece: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    if (seed >> 33).is_multiple_of(3) {
                        b'b'
                    } else {
                        b'a'
                    }
                })
                .collect();
            let mut a = vec![];
            let mut b = vec![];
            if len < LINEAR_MAX {
                t.merge_linear(&piece, &mut a);
            } else {
                a = naive(&t, &piece);
            }
            t.merge_heap(&piece, &mut b);
            assert_eq!(a, b, "{len}");
            assert_eq!(naive(&t, &piece), b);
        }
    }

    fn naive(t: &MergeTable, piece: &[u8]) -> Vec<u32> {
        let mut ids: Vec<u32> = piece.iter().map(|&b| t.byte_id(b)).collect();
        loop {
            let best = (0..ids.len().saturating_sub(1))
                .filter_map(|i| t.get(ids[i], ids[i + 1]).map(|(r, res)| (r, i, res)))
                .min();
            match best {
                None => return ids,
                Some((_, i, res)) => {
                    ids[i] = res;
                    ids.remove(i + 1);
                }
            }
        }
    }

    #[test]
    fn pair_map_equals_hash_map() {
        let mut seed = 99u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 40
        };
        for n in [0usize, 1, 3, 100, 5000] {
            // start small so that the map grows several times
            let mut m = PairMap::with_capacity(n / 8);
            let mut want: FxHashMap<u64, (u32, u32)> = FxHashMap::default();
            for i in 0..n {
                let k = key(rnd() as u32 % 700, rnd() as u32 % 700);
                let replace = i % 2 == 0;
                m.insert(k, (i as u32, k as u32), replace);
                if replace {
                    want.insert(k, (i as u32, k as u32));
                } else {
                    want.entry(k).or_insert((i as u32, k as u32));
                }
            }
            assert_eq!(m.len, want.len());
            for l in 0..700u32 {
                for r in 0..700u32 {
                    assert_eq!(m.get(key(l, r)), want.get(&key(l, r)).copied());
                }
            }
            let mut got: Vec<_> = m.iter().collect();
            got.sort_unstable();
            let mut all: Vec<_> = want.into_iter().collect();
            all.sort_unstable();
            assert_eq!(got, all);
        }
        assert_eq!(PairMap::default().get(key(1, 2)), None);
    }

    #[test]
    fn missing_byte_is_error() {
        let v = Vocab::from_pairs(vec![(b"a".to_vec(), 0), (b"ab".to_vec(), 1)]).unwrap();
        let t = MergeTable::from_vocab_ranks(&v);
        let mut out = vec![];
        t.encode_piece(b"ab", &mut out).unwrap();
        assert_eq!(out, vec![1]);
        assert!(t.encode_piece(b"abb", &mut out).is_err());
        assert_eq!(out, vec![1]);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn naive(t: &MergeTable, piece: &[u8]) -> Vec<u32> {
        let mut ids: Vec<u32> = piece.iter().map(|&b| t.byte_id(b)).collect();
        loop {
            let best = (0..ids.len().saturating_sub(1))
                .filter_map(|i| t.get(ids[i], ids[i + 1]).map(|(r, res)| (r, i, res)))
                .min();
            match best {
                None => return ids,
                Some((_, i, res)) => {
                    ids[i] = res;
                    ids.remove(i + 1);
                }
            }
        }
    }

    proptest! {
        /// Random vocabularies over a 3-letter alphabet: the linear scan, the heap and a
        /// naive reference agree on random pieces of every length.
        #[test]
        fn engines_agree(
            tokens in proptest::collection::vec("[abc]{2,5}", 1..30),
            piece in "[abc]{1,300}",
        ) {
            let mut pairs: Vec<(Vec<u8>, u32)> = (0..=255u8).map(|b| (vec![b], b as u32)).collect();
            let mut seen = std::collections::HashSet::new();
            for t in tokens {
                if seen.insert(t.clone()) {
                    let id = pairs.len() as u32;
                    pairs.push((t.into_bytes(), id));
                }
            }
            let v = Vocab::from_pairs(pairs).unwrap();
            let t = MergeTable::from_vocab_ranks(&v);
            let p = piece.as_bytes();
            let expected = naive(&t, p);
            let mut h = vec![];
            t.merge_heap(p, &mut h);
            prop_assert_eq!(&h, &expected);
            if p.len() < LINEAR_MAX && p.len() > 1 {
                let mut l = vec![];
                t.merge_linear(p, &mut l);
                prop_assert_eq!(&l, &expected);
            }
        }

        /// Random HF merge lists (`from_merges`) over the alphabet `a b c space`, where a
        /// merge whose concatenation already exists reuses that token (one token made by
        /// two different merges, as HF's trainer does): the packed-key heap, the linear
        /// scan, `encode_piece` and the naive reference agree on long random pieces.
        #[test]
        fn merge_lists_agree(
            picks in proptest::collection::vec((0usize..64, 0usize..64), 1..60),
            piece in "[abc ]{1,400}",
        ) {
            let (v, merges) = random_merge_list(&picks, false, usize::MAX);
            let t = MergeTable::from_merges(&v, &merges);
            let p = piece.as_bytes();
            let expected = naive(&t, p);
            let mut h = vec![];
            t.merge_heap(p, &mut h);
            prop_assert_eq!(&h, &expected);
            let mut e = vec![];
            t.encode_piece(p, &mut e).unwrap();
            prop_assert_eq!(&e, &expected);
            if p.len() < LINEAR_MAX && p.len() > 1 {
                let mut l = vec![];
                t.merge_linear(p, &mut l);
                prop_assert_eq!(&l, &expected);
            }
        }
    }
}
