//! Byte string → token id: a flat open-addressing hash table tuned for the encoder's hot
//! path (the whole-piece lookup of tiktoken semantics and the byte-rank merges).
//!
//! Each slot is 16 bytes: the first (up to) 8 bytes of the token packed little-endian,
//! the id and the length. Tokens of at most 8 bytes are therefore compared with one
//! integer comparison, without touching the token data; longer tokens compare their
//! tail against the vocabulary's byte buffer. Linear probing at a load factor ≤ 1/2.
//! Pieces of one or two bytes are answered from a direct table without hashing.
//!
//! Most lookups hit a few thousand frequent tokens, yet the slot array is several MB
//! (8 MB for o200k) and each probe misses the CPU's L2 cache. Tokens of 3 to 8 bytes
//! therefore also sit in a small *hot* table in front of it: [`HOT_BUCKETS`] buckets of
//! four slots (one cache line each, 256 KB in all), filled in id order, so that each
//! bucket holds the lowest-id tokens that hash to it (for tiktoken vocabularies, ids are
//! merge ranks and low ranks are frequent). A lookup reads one bucket; a bucket with a
//! free slot never overflowed and so holds every token of 3 to 8 bytes that hashes to it,
//! which answers misses too; only a query that hashes to a full bucket and is not in it
//! goes on to the main table.

/// An empty slot has `len == 0` (tokens are never empty).
#[derive(Clone, Copy, Default)]
#[repr(C, align(16))]
struct Slot {
    head: u64,
    id: u32,
    len: u32,
}

const NONE: u32 = u32::MAX;

/// Number of buckets of the hot table (a power of two; four 16-byte slots each).
pub const HOT_BUCKETS: usize = 4096;
/// Lengths of the tokens kept in the hot table.
const HOT_LEN: std::ops::RangeInclusive<usize> = 3..=8;

/// Outcome of a hot-table lookup.
enum Hot {
    Hit(u32),
    /// Certainly not a token.
    Absent,
    /// Not in the hot table: ask the main table.
    Unknown,
}

/// Index from token bytes to ids. Built once from `(bytes, id)`; see [`PieceIndex::get`].
#[derive(Clone)]
pub struct PieceIndex {
    slots: Box<[Slot]>,
    shift: u32,
    /// ids of the 1- and 2-byte tokens: `short[b0]` for one byte at index `b0`,
    /// `short[256 + (b0 << 8 | b1)]` for two bytes.
    short: Box<[u32]>,
    /// Blocked Bloom filter (two bits per token in one 64-bit word, about 10 bits per
    /// token, so it stays in L2)
    /// answering most lookups of non-tokens without touching the slot array.
    bloom: Box<[u64]>,
    bloom_mask: u64,
    /// The hot table (see the module docs): bucket `hv >> hot_shift`.
    hot: Box<[[Slot; 4]]>,
    hot_shift: u32,
}

impl std::fmt::Debug for PieceIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PieceIndex")
            .field("slots", &self.slots.len())
            .finish()
    }
}

#[inline(always)]
fn le32(b: &[u8], i: usize) -> u64 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as u64
}

/// First `min(len, 8)` bytes of `b`, little-endian, zero-padded (`b` non-empty). Uses
/// overlapping loads instead of a variable-length copy.
#[inline(always)]
fn head(b: &[u8]) -> u64 {
    let n = b.len();
    if n >= 8 {
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    } else if n >= 4 {
        // bytes n-4..n shifted into place overlap bytes 0..4 with equal values
        le32(b, 0) | (le32(b, n - 4) << (8 * (n - 4)))
    } else {
        let lo = b[0] as u64;
        let mid = (b[n / 2] as u64) << (8 * (n / 2));
        let hi = (b[n - 1] as u64) << (8 * (n - 1));
        lo | mid | hi
    }
}

/// Last 8 bytes of `b` (`b.len() > 8`).
#[inline(always)]
fn tail(b: &[u8]) -> u64 {
    let n = b.len();
    u64::from_le_bytes([
        b[n - 8],
        b[n - 7],
        b[n - 6],
        b[n - 5],
        b[n - 4],
        b[n - 3],
        b[n - 2],
        b[n - 1],
    ])
}

/// Equality of two slices of the same length `> 8` whose first 8 bytes are equal.
#[inline(always)]
fn same_tail(a: &[u8], b: &[u8]) -> bool {
    let n = b.len();
    if a.len() != n {
        return false;
    }
    if n <= 16 {
        return tail(a) == tail(b);
    }
    // 8-byte words from byte 8, the last one overlapping (no `memcmp` call)
    let word = |s: &[u8], i: usize| {
        u64::from_le_bytes([
            s[i],
            s[i + 1],
            s[i + 2],
            s[i + 3],
            s[i + 4],
            s[i + 5],
            s[i + 6],
            s[i + 7],
        ])
    };
    let mut i = 8;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    tail(a) == tail(b)
}

/// Blocked Bloom filter: the word index and a mask of two bits inside that word, from the
/// hash's low bits (slots use the high ones). One memory access per query.
#[inline(always)]
fn bloom_word(h: u64, word_mask: u64) -> (usize, u64) {
    let w = (h & word_mask) as usize;
    let bits = (1u64 << ((h >> 24) & 63)) | (1u64 << ((h >> 30) & 63));
    (w, bits)
}

#[inline(always)]
fn hash(head: u64, tail: u64, len: usize) -> u64 {
    let x = head ^ tail.rotate_left(23) ^ ((len as u64) << 58);
    let x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x ^ (x >> 32)).wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

/// First 8 bytes of `a ++ b` (`a.len() + b.len() >= 8`).
#[inline(always)]
fn head_concat(a: &[u8], b: &[u8]) -> u64 {
    if a.len() >= 8 {
        return head(a);
    }
    // head(a) is zero above its bytes; the shifted head(b) fills them (excess bits fall off)
    head(a) | (head(b) << (8 * a.len()))
}

/// The last `k` bytes of `a` (`1 <= k <= min(8, a.len())`), little-endian.
#[inline(always)]
fn last_k(a: &[u8], k: usize) -> u64 {
    let la = a.len();
    if la >= 8 {
        tail(a) >> (8 * (8 - k))
    } else {
        head(a) >> (8 * (la - k))
    }
}

/// Last 8 bytes of `a ++ b` (`a.len() + b.len() >= 8`).
#[inline(always)]
fn tail_concat(a: &[u8], b: &[u8]) -> u64 {
    let lb = b.len();
    if lb >= 8 {
        return tail(b);
    }
    let k = 8 - lb;
    last_k(a, k) | (head(b) << (8 * k))
}

impl PieceIndex {
    /// Build from the ids `ids`, whose bytes `bytes_of(id)` gives (non-empty). Returns the
    /// index and, if some byte string occurs twice, the first duplicate's
    /// `(earlier id, later id)` (the later id is then not indexed).
    pub fn build<'v, I, F>(ids: I, count: usize, bytes_of: F) -> (Self, Option<(u32, u32)>)
    where
        I: Iterator<Item = u32>,
        F: Fn(u32) -> &'v [u8],
    {
        let cap = (count.max(8) * 2).next_power_of_two();
        let shift = 64 - cap.trailing_zeros();
        let mut slots = vec![Slot::default(); cap].into_boxed_slice();
        let mut short = vec![NONE; 256 + 65536].into_boxed_slice();
        let mut dup = None;
        let mask = cap - 1;
        let bloom_bits = (count.max(64) * 10).next_power_of_two();
        let bloom_mask = (bloom_bits / 64) as u64 - 1;
        let mut bloom = vec![0u64; bloom_bits / 64].into_boxed_slice();
        let mut hot = vec![[Slot::default(); 4]; HOT_BUCKETS].into_boxed_slice();
        let hot_shift = 64 - HOT_BUCKETS.trailing_zeros();
        // ids in increasing order, so that each bucket keeps its lowest ids
        let mut ids: Vec<u32> = ids.collect();
        ids.sort_unstable();
        for id in ids {
            let b = bytes_of(id);
            let n = b.len();
            let h = head(b);
            let t = if n > 8 { tail(b) } else { 0 };
            let hv = hash(h, t, n);
            let (w, bits) = bloom_word(hv, bloom_mask);
            bloom[w] |= bits;
            let mut i = (hv >> shift) as usize;
            loop {
                let s = slots[i];
                if s.len == 0 {
                    slots[i] = Slot {
                        head: h,
                        id,
                        len: n as u32,
                    };
                    match n {
                        1 => short[b[0] as usize] = id,
                        2 => short[256 + ((b[0] as usize) << 8 | b[1] as usize)] = id,
                        _ if HOT_LEN.contains(&n) => {
                            let bucket = &mut hot[(hv >> hot_shift) as usize];
                            // a full bucket keeps its four tokens and answers only hits
                            if let Some(free) = bucket.iter_mut().find(|s| s.len == 0) {
                                *free = slots[i];
                            }
                        }
                        _ => {}
                    }
                    break;
                }
                if s.len as usize == n && s.head == h && (n <= 8 || bytes_of(s.id) == b) {
                    if dup.is_none() {
                        dup = Some((s.id, id));
                    }
                    break;
                }
                i = (i + 1) & mask;
            }
        }
        (
            PieceIndex {
                slots,
                shift,
                short,
                bloom,
                bloom_mask,
                hot,
                hot_shift,
            },
            dup,
        )
    }

    /// Like [`PieceIndex::get`], but consults the Bloom filter first: faster when most
    /// queries are not tokens (the byte-pair merge), slightly slower otherwise.
    #[inline(always)]
    pub fn get_filtered<'v, F>(&self, piece: &[u8], bytes_of: F) -> Option<u32>
    where
        F: Fn(u32) -> &'v [u8],
    {
        let n = piece.len();
        if n <= 2 {
            return self.get(piece, bytes_of);
        }
        let h = head(piece);
        let t = if n > 8 { tail(piece) } else { 0 };
        let hv = hash(h, t, n);
        if n <= 8 {
            match self.hot(hv, h, n) {
                Hot::Hit(id) => return Some(id),
                Hot::Absent => return None,
                Hot::Unknown => {}
            }
        }
        if !self.maybe(hv) {
            return None;
        }
        self.probe(hv, h, n, piece, bytes_of)
    }

    /// Look `h` (the head of a query of `n` bytes, `3 <= n <= 8`, hash `hv`) up in the
    /// hot table.
    #[inline(always)]
    fn hot(&self, hv: u64, h: u64, n: usize) -> Hot {
        let b = &self.hot[(hv >> self.hot_shift) as usize];
        for s in b {
            if s.head == h && s.len as usize == n {
                return Hot::Hit(s.id);
            }
        }
        // a free slot: the bucket never overflowed, so it holds every token of 3 to 8
        // bytes that hashes to it
        if b[3].len == 0 {
            Hot::Absent
        } else {
            Hot::Unknown
        }
    }

    #[inline(always)]
    fn maybe(&self, hv: u64) -> bool {
        let (w, bits) = bloom_word(hv, self.bloom_mask);
        self.bloom[w] & bits == bits
    }

    #[inline(always)]
    fn probe<'v, F>(&self, hv: u64, h: u64, n: usize, piece: &[u8], bytes_of: F) -> Option<u32>
    where
        F: Fn(u32) -> &'v [u8],
    {
        let mask = self.slots.len() - 1;
        let mut i = (hv >> self.shift) as usize;
        loop {
            let s = &self.slots[i];
            if s.len as usize == n && s.head == h && (n <= 8 || same_tail(bytes_of(s.id), piece)) {
                return Some(s.id);
            }
            if s.len == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Id of the token whose bytes are `a ++ b` (both non-empty), without building the
    /// concatenation.
    #[inline]
    pub fn get_concat<'v, F>(&self, a: &[u8], b: &[u8], bytes_of: F) -> Option<u32>
    where
        F: Fn(u32) -> &'v [u8],
    {
        let n = a.len() + b.len();
        if n <= 2 {
            let id = self.short[256 + ((a[0] as usize) << 8 | b[0] as usize)];
            return (id != NONE).then_some(id);
        }
        let h = head_concat(a, b);
        let t = if n > 8 { tail_concat(a, b) } else { 0 };
        let hv = hash(h, t, n);
        if n <= 8 {
            match self.hot(hv, h, n) {
                Hot::Hit(id) => return Some(id),
                Hot::Absent => return None,
                Hot::Unknown => {}
            }
        }
        if !self.maybe(hv) {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = (hv >> self.shift) as usize;
        loop {
            let s = &self.slots[i];
            if s.len as usize == n && s.head == h {
                if n <= 8 {
                    return Some(s.id);
                }
                let tok = bytes_of(s.id);
                if tail(tok) == t && (n <= 16 || (tok[..a.len()] == *a && tok[a.len()..] == *b)) {
                    return Some(s.id);
                }
            }
            if s.len == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Id of the token whose bytes are `piece`; `bytes_of` gives the bytes of an id (used
    /// only for tokens longer than 8 bytes).
    #[inline(always)]
    pub fn get<'v, F>(&self, piece: &[u8], bytes_of: F) -> Option<u32>
    where
        F: Fn(u32) -> &'v [u8],
    {
        let n = piece.len();
        if n <= 2 {
            if n == 0 {
                return None;
            }
            let k = if n == 1 {
                piece[0] as usize
            } else {
                256 + ((piece[0] as usize) << 8 | piece[1] as usize)
            };
            let id = self.short[k];
            return (id != NONE).then_some(id);
        }
        let h = head(piece);
        let t = if n > 8 { tail(piece) } else { 0 };
        let hv = hash(h, t, n);
        let mask = self.slots.len() - 1;
        let mut i = (hv >> self.shift) as usize;
        loop {
            let s = &self.slots[i];
            if s.len as usize == n && s.head == h && (n <= 8 || same_tail(bytes_of(s.id), piece)) {
                return Some(s.id);
            }
            if s.len == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Enough tokens to overflow most hot buckets, and as many absent queries of the same
    /// lengths: every lookup path agrees with a `HashMap`.
    #[test]
    fn hot_table_overflow_and_absent() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut toks: Vec<Vec<u8>> = Vec::new();
        let mut seen = std::collections::HashMap::new();
        while toks.len() < 40_000 {
            let n = 1 + (rnd() % 12) as usize;
            // a small alphabet (with NUL) makes zero-padded heads collide across lengths
            let t: Vec<u8> = (0..n).map(|_| b"\0ab"[(rnd() % 3) as usize]).collect();
            if !seen.contains_key(&t) {
                seen.insert(t.clone(), toks.len() as u32);
                toks.push(t);
            }
            if seen.len() > 30_000 {
                break;
            }
        }
        let bytes_of = |id: u32| toks[id as usize].as_slice();
        let (ix, dup) = PieceIndex::build(0..toks.len() as u32, toks.len(), bytes_of);
        assert!(dup.is_none());
        for _ in 0..200_000 {
            let n = 1 + (rnd() % 14) as usize;
            let q: Vec<u8> = (0..n).map(|_| b"\0abc"[(rnd() % 4) as usize]).collect();
            let want = seen.get(&q).copied();
            assert_eq!(ix.get(&q, bytes_of), want, "{q:?}");
            assert_eq!(ix.get_filtered(&q, bytes_of), want, "{q:?}");
            if n > 1 {
                let k = 1 + (rnd() as usize % (n - 1));
                assert_eq!(ix.get_concat(&q[..k], &q[k..], bytes_of), want, "{q:?}");
            }
        }
        let full = ix.hot.iter().filter(|b| b[3].len != 0).count();
        assert!(full > 0 && full < ix.hot.len(), "{full}");
    }

    #[test]
    fn concat_lookup_equals_plain_lookup() {
        let toks: Vec<Vec<u8>> = vec![
            b"a".to_vec(),
            b"ab".to_vec(),
            b"abc".to_vec(),
            b"abcdefgh".to_vec(),
            b"abcdefghi".to_vec(),
            b"abcdefghijklmnop".to_vec(),
            b"abcdefghijklmnopq".to_vec(),
            b"\x00".to_vec(),
            b"\x00\x00".to_vec(),
            b"a\x00".to_vec(),
            b"xyz".to_vec(),
        ];
        let bytes_of = |id: u32| toks[id as usize].as_slice();
        let (ix, dup) = PieceIndex::build(0..toks.len() as u32, toks.len(), bytes_of);
        assert!(dup.is_none());
        let probes: Vec<&[u8]> = vec![
            b"a",
            b"b",
            b"ab",
            b"abc",
            b"abcd",
            b"abcdefgh",
            b"abcdefghi",
            b"abcdefghij",
            b"abcdefghijklmnop",
            b"abcdefghijklmnopq",
            b"abcdefghijklmnopqr",
            b"\x00",
            b"\x00\x00",
            b"a\x00",
            b"\x00a",
            b"xyz",
            b"xy",
        ];
        for p in &probes {
            let want = ix.get(p, bytes_of);
            assert_eq!(want, toks.iter().position(|t| t == p).map(|i| i as u32));
            assert_eq!(ix.get_filtered(p, bytes_of), want);
            for k in 1..p.len() {
                assert_eq!(
                    ix.get_concat(&p[..k], &p[k..], bytes_of),
                    want,
                    "{p:?} at {k}"
                );
            }
        }
    }
}
