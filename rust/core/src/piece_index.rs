//! Byte string → token id: a flat open-addressing hash table tuned for the encoder's hot
//! path (the whole-piece lookup of tiktoken semantics and the byte-rank merges).
//!
//! Each slot is 16 bytes: the first (up to) 8 bytes of the token packed little-endian,
//! the id and the length. Tokens of at most 8 bytes are therefore compared with one
//! integer comparison, without touching the token data. A parallel array holds the last
//! 8 bytes of every token longer than 8 bytes (indexed like the slots, so its load
//! overlaps the slot's): tokens of up to 16 bytes compare with two integer comparisons,
//! longer ones also compare their middle against the vocabulary's byte buffer (this saved
//! two dependent loads per long hit: 6–11 % of English and code encoding with o200k).
//! Linear probing at a load factor ≤ 0.8. The slot array, the tails and the Bloom filter
//! live in [`crate::hugebuf::HugeBuf`]s (those of 2 MiB or more on transparent huge pages
//! where the kernel allows: about 3 % faster encoding). Pieces of one or two bytes are
//! answered from a direct table without hashing by [`PieceIndex::get`] and by the
//! encoder's whole-piece lookup [`PieceIndex::get_in`]; the latter reads longer pieces
//! from their text with masked 8-byte loads and hashes every length from 3 alike, which
//! avoids the mispredicted branches on the piece's length (o200k whole-corpus stream: en
//! +15 %, code +5-11 %). Its one branch on `n <= 2` costs the streams nothing measurable
//! and spares random short pieces the Bloom word and the slot (base64: o200k -14 %).

/// An empty slot has `len == 0` (tokens are never empty).
#[derive(Clone, Copy, Default)]
#[repr(C, align(16))]
struct Slot {
    head: u64,
    id: u32,
    len: u32,
}

// SAFETY: integers only, no padding (8 + 4 + 4 bytes); all-zero is the empty slot.
unsafe impl Zeroable for Slot {}

use crate::hugebuf::{HugeBuf, Zeroable};

const NONE: u32 = u32::MAX;

/// One bucket of the compact table of 3- and 4-byte tokens: eight entries in one cache
/// line, each `key | id << KEY34_BITS` with `key = bytes | len << 32` (the bytes
/// little-endian, zero-padded; see [`key34`]); all zero = empty. A bucket's entries fill
/// from lane 0, so the first empty lane ends its probe sequence.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Line34([u64; 8]);

// SAFETY: an array of integers, no padding (64 bytes, aligned to 64); all-zero is empty.
unsafe impl Zeroable for Line34 {}

/// Bits of a compact entry's key (32 bits of bytes, the length 3 or 4 above them).
const KEY34_BITS: u32 = 35;
const KEY34_MASK: u64 = (1 << KEY34_BITS) - 1;

/// The compact table's key of a 3- or 4-byte string whose bytes, little-endian and
/// zero-padded, are `h` (never 0: the length is in bits 32-34).
#[inline(always)]
fn key34(h: u64, n: usize) -> u64 {
    h | (n as u64) << 32
}

/// Index from token bytes to ids. Built once from `(bytes, id)`; see [`PieceIndex::get`].
#[derive(Clone)]
pub struct PieceIndex {
    slots: HugeBuf<Slot>,
    /// `ext[i]`: the last 8 bytes of the token in `slots[i]` if it is longer than 8 bytes,
    /// so that tokens of up to 16 bytes are compared without touching the vocabulary's
    /// byte buffer (its address is known with the slot's, so both loads overlap).
    ext: HugeBuf<u64>,
    shift: u32,
    /// ids of the 1- and 2-byte tokens: `short[b0]` for one byte at index `b0`,
    /// `short[256 + (b0 << 8 | b1)]` for two bytes.
    short: Box<[u32]>,
    /// Blocked Bloom filter (two bits per token in one 64-bit word, about 10 bits per
    /// token, so it stays in L2)
    /// answering most lookups of non-tokens without touching the slot array.
    bloom: HugeBuf<u64>,
    bloom_mask: u64,
    /// The tokens of 3 and 4 bytes again, in cache-line buckets of 8 compact entries
    /// ([`Line34`]), power-of-two many, linear probing by bucket: a 3/4-byte lookup of the
    /// merge is one line (o200k: 44 K tokens, 512 KiB, so it stays in L2) instead of the
    /// Bloom word and, on a positive, the slot. Holds exactly the indexed tokens of 3-4
    /// bytes whose id is below `2^29` (all of them when `Vocab::n_slots() < 2^29`, which
    /// the merge that uses it requires).
    lines34: HugeBuf<Line34>,
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    shift34: u32,
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

/// The 8 bytes of `b` from `i` (`i + 8 <= b.len()`), little-endian.
#[inline(always)]
fn word_at(b: &[u8], i: usize) -> u64 {
    let w = &b[i..i + 8];
    u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])
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

/// The compact table's home bucket of key `q`.
#[inline(always)]
fn bucket34(q: u64, shift: u32) -> usize {
    // the slot array's hash (its high bits), so that the merge hashes once for the
    // Bloom filter and the compact table
    (hash(q & 0xFFFF_FFFF, 0, (q >> 32) as usize) >> shift) as usize
}

/// The compact table of the 3- and 4-byte tokens `toks` (`(key34, id)`, distinct keys,
/// ids below `2^29`): buckets for at most 0.8 entries per lane, at least two (so
/// that the shift is below 64), so some lane stays empty and every probe ends.
fn build34(toks: &[(u64, u32)]) -> (HugeBuf<Line34>, u32) {
    let n_lines = (toks.len() * 5 / 4).div_ceil(8).max(2).next_power_of_two();
    let shift = 64 - n_lines.trailing_zeros();
    let mut lines: HugeBuf<Line34> = HugeBuf::zeroed(n_lines);
    let mask = n_lines - 1;
    for &(q, id) in toks {
        debug_assert!(q != 0 && q & !KEY34_MASK == 0 && id < 1 << (64 - KEY34_BITS));
        let mut b = bucket34(q, shift);
        'place: loop {
            for e in lines[b].0.iter_mut() {
                if *e == 0 {
                    *e = q | (id as u64) << KEY34_BITS;
                    break 'place;
                }
            }
            b = (b + 1) & mask;
        }
    }
    (lines, shift)
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
        // load factor in (0.4, 0.8]: o200k's 200K tokens in 256K slots (4 MiB). Denser
        // than 1/2 so that more of the frequently used tokens share cache lines; the
        // longer probe sequences stay within one or two lines (A/B: +1–8 %).
        let cap = (count.max(8) * 5 / 4).next_power_of_two();
        let shift = 64 - cap.trailing_zeros();
        let mut slots: HugeBuf<Slot> = HugeBuf::zeroed(cap);
        let mut ext: HugeBuf<u64> = HugeBuf::zeroed(cap);
        let mut short = vec![NONE; 256 + 65536].into_boxed_slice();
        let mut dup = None;
        let mask = cap - 1;
        let bloom_bits = (count.max(64) * 10).next_power_of_two();
        let bloom_mask = (bloom_bits / 64) as u64 - 1;
        let mut bloom: HugeBuf<u64> = HugeBuf::zeroed(bloom_bits / 64);
        let mut toks34: Vec<(u64, u32)> = Vec::new();
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
                    ext[i] = t;
                    match n {
                        1 => short[b[0] as usize] = id,
                        2 => short[256 + ((b[0] as usize) << 8 | b[1] as usize)] = id,
                        3 | 4 if id < 1 << (64 - KEY34_BITS) => toks34.push((key34(h, n), id)),
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
        let (lines34, shift34) = build34(&toks34);
        (
            PieceIndex {
                slots,
                ext,
                shift,
                short,
                bloom,
                bloom_mask,
                lines34,
                shift34,
            },
            dup,
        )
    }

    /// Id of the 3- or 4-byte token (`n` is 3 or 4) whose bytes, little-endian and
    /// zero-padded, are `h`, or `u32::MAX`, for the merge: the Bloom filter first (most
    /// merge lookups are not tokens, and its word is an L2 hit), then, on a positive, the
    /// compact table instead of the slot array (one line of 512 KiB for o200k instead of
    /// one of 4 MiB). Portable, the tests' reference for [`PieceIndex::get34_avx512`]:
    /// the portable merge keeps the slot array (with this lookup its missed pieces
    /// merged 7-30 % slower, see `docs/DEVELOPING.md`).
    #[cfg(test)]
    pub(crate) fn get34(&self, h: u64, n: usize) -> u32 {
        debug_assert!((3..=4).contains(&n) && h >> (8 * n) == 0);
        let hv = hash(h, 0, n);
        if !self.maybe(hv) {
            return NONE;
        }
        self.find34(key34(h, n), (hv >> self.shift34) as usize)
    }

    /// [`PieceIndex::get34`] with the compact bucket's eight entries compared at once.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn get34_avx512(&self, h: u64, n: usize) -> u32 {
        debug_assert!((3..=4).contains(&n) && h >> (8 * n) == 0);
        #[cfg(test)]
        tests::VECTOR34.with(|c| c.set(c.get() + 1));
        let hv = hash(h, 0, n);
        if !self.maybe(hv) {
            return NONE;
        }
        self.find34_avx512(key34(h, n), (hv >> self.shift34) as usize)
    }

    /// The id in the compact table of the key `q` whose home bucket is `b`, or `u32::MAX`
    /// (portable: the entries in order up to the first empty one).
    #[cfg(test)]
    fn find34(&self, q: u64, mut b: usize) -> u32 {
        let mask = self.lines34.len() - 1;
        loop {
            for &e in &self.lines34[b].0 {
                if e == 0 {
                    return NONE;
                }
                if (e ^ q) & KEY34_MASK == 0 {
                    return (e >> KEY34_BITS) as u32;
                }
            }
            b = (b + 1) & mask;
        }
    }

    /// [`PieceIndex::find34`] by AVX-512F: the bucket's eight keys compared with one
    /// `vptestnmq`, one branch on a hit, and one (taken for about a fifth of the buckets
    /// at o200k's load, rarely when the filter let a token through) to the next bucket
    /// when this one is full.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn find34_avx512(&self, q: u64, mut b: usize) -> u32 {
        use std::arch::x86_64::*;
        let qv = _mm512_set1_epi64(q as i64);
        let mv = _mm512_set1_epi64(KEY34_MASK as i64);
        let mask = self.lines34.len() - 1;
        loop {
            let line = &self.lines34[b];
            // SAFETY: `line` is 64 readable bytes aligned to 64 (`Line34`).
            let v = unsafe { _mm512_load_si512((line as *const Line34).cast()) };
            let hit = _mm512_testn_epi64_mask(_mm512_xor_si512(v, qv), mv);
            if hit != 0 {
                return (line.0[(hit.trailing_zeros() & 7) as usize] >> KEY34_BITS) as u32;
            }
            if _mm512_testn_epi64_mask(v, v) != 0 {
                return NONE;
            }
            b = (b + 1) & mask;
        }
    }

    /// The compact table alone (no filter) for `piece` of 3 or 4 bytes, by both lookups
    /// (tests: the table must agree with the slot array).
    #[cfg(test)]
    fn table34(&self, piece: &[u8]) -> (u32, Option<u32>) {
        let (h, n) = (head(piece), piece.len());
        let q = key34(h, n);
        let b = (hash(h, 0, n) >> self.shift34) as usize;
        #[cfg(target_arch = "x86_64")]
        let vector = std::arch::is_x86_feature_detected!("avx512f")
            // SAFETY: the CPU has AVX-512F (checked just before).
            .then(|| unsafe { self.find34_avx512(q, b) });
        #[cfg(not(target_arch = "x86_64"))]
        let vector = None;
        (self.find34(q, b), vector)
    }

    /// Bytes of the compact table of 3- and 4-byte tokens (its memory).
    #[cfg(test)]
    fn bytes34(&self) -> usize {
        self.lines34.len() * std::mem::size_of::<Line34>()
    }

    /// Pull the Bloom filter into the caches ([`crate::util::touch_lines`]).
    pub fn touch_bloom(&self) {
        crate::util::touch_lines(&self.bloom);
    }

    /// Pull the compact table of the 3- and 4-byte tokens into the caches.
    pub fn touch_lines34(&self) {
        crate::util::touch_lines(&self.lines34);
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
        if !self.maybe(hv) {
            return None;
        }
        self.probe(hv, h, t, n, piece, bytes_of)
    }

    /// [`PieceIndex::get_filtered`] for a query of at least 3 bytes whose key the caller
    /// computed: `h` its first `min(len, 8)` bytes and `t` its last 8 bytes if it is
    /// longer than 8 bytes (else 0), both little-endian and zero-padded, as in the
    /// index. The byte-rank merge builds them from a padded copy of its piece without
    /// branching on the length.
    #[inline(always)]
    pub fn get_filtered_key<'v, F>(&self, h: u64, t: u64, piece: &[u8], bytes_of: F) -> Option<u32>
    where
        F: Fn(u32) -> &'v [u8],
    {
        let n = piece.len();
        debug_assert!(n >= 3 && h == head(piece) && t == if n > 8 { tail(piece) } else { 0 });
        let hv = hash(h, t, n);
        if !self.maybe(hv) {
            return None;
        }
        self.probe(hv, h, t, n, piece, bytes_of)
    }

    #[inline(always)]
    fn maybe(&self, hv: u64) -> bool {
        let (w, bits) = bloom_word(hv, self.bloom_mask);
        self.bloom[w] & bits == bits
    }

    #[inline(always)]
    fn probe<'v, F>(
        &self,
        hv: u64,
        h: u64,
        t: u64,
        n: usize,
        piece: &[u8],
        bytes_of: F,
    ) -> Option<u32>
    where
        F: Fn(u32) -> &'v [u8],
    {
        let mask = self.slots.len() - 1;
        let mut i = (hv >> self.shift) as usize;
        loop {
            let s = &self.slots[i];
            if s.len as usize == n
                && s.head == h
                && (n <= 8 || (self.ext[i] == t && (n <= 16 || same_tail(bytes_of(s.id), piece))))
            {
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
                if self.ext[i] == t
                    && (n <= 16 || {
                        let tok = bytes_of(s.id);
                        tok[..a.len()] == *a && tok[a.len()..] == *b
                    })
                {
                    return Some(s.id);
                }
            }
            if s.len == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// [`PieceIndex::get`] of `text[a..e]` (`a < e <= text.len()`, `a + 8 <=
    /// text.len()`; panics otherwise), branch-light: pieces of one or two bytes are
    /// answered by the direct table (one branch, on `n <= 2`); for longer ones the head
    /// is one 8-byte load masked to the piece's length, the tail one load that ends at
    /// `e` (so bytes of `text` around the piece are read but never compared), and the
    /// Bloom filter (an L2 hit) is asked first, which spares the probe sequence of the
    /// pieces that are not tokens (long at a load factor of 0.8).
    #[inline(always)]
    pub fn get_in<'v, F>(&self, text: &[u8], a: usize, e: usize, bytes_of: F) -> Option<u32>
    where
        F: Fn(u32) -> &'v [u8],
    {
        let n = e - a;
        let w = word_at(text, a);
        if n > 2 {
            let k = n.min(8);
            let h = w & (u64::MAX >> (64 - 8 * k));
            let t = if n > 8 { word_at(text, e - 8) } else { 0 };
            let hv = hash(h, t, n);
            if !self.maybe(hv) {
                return None;
            }
            return self.probe(hv, h, t, n, &text[a..e], bytes_of);
        }
        // one or two bytes: the direct table (one well-predicted branch on real text,
        // no Bloom word or slot)
        let k = if n == 1 {
            (w & 0xff) as usize
        } else {
            256 + ((w & 0xff) << 8 | (w >> 8) & 0xff) as usize
        };
        let id = self.short[k];
        (id != NONE).then_some(id)
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
        let mask = self.slots.len() - 1;
        let mut i = (hash(h, t, n) >> self.shift) as usize;
        loop {
            let s = &self.slots[i];
            if s.len as usize == n
                && s.head == h
                && (n <= 8 || (self.ext[i] == t && (n <= 16 || same_tail(bytes_of(s.id), piece))))
            {
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
pub(crate) mod tests {
    use super::*;

    thread_local! {
        /// Calls of [`PieceIndex::get34_avx512`] on this thread (the path-taken test of
        /// `rank_bpe`).
        pub(crate) static VECTOR34: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// The compact table of `ix` against the slot array for `queries` of 3 or 4 bytes:
    /// both lookups of the table alone, and `get34` (filter first), give `get`'s id.
    fn check34<'v>(
        ix: &PieceIndex,
        bytes_of: impl Fn(u32) -> &'v [u8] + Copy,
        queries: &[Vec<u8>],
    ) {
        for q in queries {
            assert!((3..=4).contains(&q.len()));
            let want = ix.get(q, bytes_of).unwrap_or(NONE);
            let (portable, vector) = ix.table34(q);
            assert_eq!(portable, want, "{q:?}");
            if let Some(v) = vector {
                assert_eq!(v, want, "{q:?}");
            }
            assert_eq!(ix.get34(head(q), q.len()), want, "{q:?}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F (checked just before).
                assert_eq!(unsafe { ix.get34_avx512(head(q), q.len()) }, want, "{q:?}");
            }
        }
    }

    /// Every 3-4 byte token, those padded or cut to the other length (`abc` / `abc\0`,
    /// `abcd` / `abc`), one byte changed, and random strings of a small alphabet (with
    /// zero bytes): many tokens and many near misses.
    fn queries34(toks: &[Vec<u8>], seed: u64) -> Vec<Vec<u8>> {
        let mut s = seed | 1;
        let mut rnd = move || crate::testutil::xorshift(&mut s);
        let mut qs = vec![];
        for t in toks.iter().filter(|t| (3..=4).contains(&t.len())) {
            qs.push(t.clone());
            if t.len() == 3 {
                qs.push([t.as_slice(), &[0]].concat());
            } else {
                qs.push(t[..3].to_vec());
            }
            let mut u = t.clone();
            let i = (rnd() % t.len() as u64) as usize;
            u[i] = u[i].wrapping_add(1 + (rnd() % 3) as u8);
            qs.push(u);
        }
        let alphabet = b"ab\x00\xff e";
        for _ in 0..20_000 {
            let n = 3 + (rnd() % 2) as usize;
            qs.push((0..n).map(|_| alphabet[(rnd() % 6) as usize]).collect());
        }
        qs
    }

    /// The compact table agrees with the slot array on random vocabularies dense enough
    /// that buckets overflow into the next ones.
    #[test]
    fn compact_table_agrees_on_random_vocabularies() {
        for seed in [3u64, 99, 0xdead_beef] {
            let mut s = seed;
            let mut rnd = move || crate::testutil::xorshift(&mut s);
            let alphabet = b"ab\x00\xff ecdxyz";
            let mut toks: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
            for _ in 0..6000 {
                let n = match rnd() % 8 {
                    0 => 2,
                    1 => 5 + (rnd() % 6) as usize,
                    k => 3 + (k % 2) as usize,
                };
                toks.push((0..n).map(|_| alphabet[(rnd() % 11) as usize]).collect());
            }
            let bytes_of = |id: u32| toks[id as usize].as_slice();
            let (ix, _) = PieceIndex::build(0..toks.len() as u32, toks.len(), bytes_of);
            let full = ix.lines34.iter().filter(|l| l.0[7] != 0).count();
            assert!(
                full > 0,
                "no bucket overflows: the probe's continuation is untested"
            );
            check34(&ix, bytes_of, &queries34(&toks, seed));
        }
        // no token of 3 or 4 bytes: the table is two empty buckets
        let toks: Vec<Vec<u8>> = vec![b"a".to_vec(), b"ab".to_vec(), b"abcde".to_vec()];
        let bytes_of = |id: u32| toks[id as usize].as_slice();
        let (ix, _) = PieceIndex::build(0..3, 3, bytes_of);
        assert_eq!(ix.bytes34(), 128);
        check34(
            &ix,
            bytes_of,
            &[b"abc".to_vec(), b"abcd".to_vec(), b"\0\0\0".to_vec()],
        );
    }

    /// The compact table of the bundled vocabularies agrees with the slot array on every
    /// 3-4 byte token and on near misses.
    #[test]
    fn compact_table_agrees_on_bundled_vocabularies() {
        for (file, pairs) in crate::testutil::bundled_pairs() {
            let mut toks: Vec<Vec<u8>> = vec![];
            for (b, id) in pairs {
                let i = id as usize;
                if toks.len() <= i {
                    toks.resize(i + 1, vec![]);
                }
                toks[i] = b;
            }
            let ids = (0..toks.len() as u32).filter(|&i| !toks[i as usize].is_empty());
            let bytes_of = |id: u32| toks[id as usize].as_slice();
            let (ix, dup) = PieceIndex::build(ids, toks.len(), bytes_of);
            assert!(dup.is_none());
            let n34 = toks.iter().filter(|t| (3..=4).contains(&t.len())).count();
            let stored: usize = ix
                .lines34
                .iter()
                .map(|l| l.0.iter().filter(|&&e| e != 0).count())
                .sum();
            assert_eq!(stored, n34, "{file}");
            check34(&ix, bytes_of, &queries34(&toks, 5));
        }
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

    /// A random vocabulary (short, 8/16-byte-boundary and long tokens, ASCII and
    /// multi-byte, and every byte) and random texts: `get_in` of every span agrees with
    /// `get` and with a `HashMap`, wherever the span sits in the text.
    fn check_get_in(seed: u64) {
        use std::collections::HashMap;
        let mut s = seed | 1;
        let mut rnd = move |m: u64| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s % m
        };
        let alphabet: &[u8] = b"ab \n\xc3\xa9\xe4\xb8\x80\x00\xff";
        let mut toks: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        for _ in 0..3000 {
            let len = match rnd(4) {
                0 => 2 + rnd(3),
                1 => 7 + rnd(3),
                2 => 15 + rnd(3),
                _ => 3 + rnd(40),
            } as usize;
            toks.push(
                (0..len)
                    .map(|_| alphabet[rnd(alphabet.len() as u64) as usize])
                    .collect(),
            );
        }
        let mut map: HashMap<Vec<u8>, u32> = HashMap::new();
        for (i, t) in toks.iter().enumerate() {
            map.entry(t.clone()).or_insert(i as u32);
        }
        let bytes_of = |id: u32| toks[id as usize].as_slice();
        let (ix, _) = PieceIndex::build(0..toks.len() as u32, toks.len(), bytes_of);
        for _ in 0..60 {
            // texts made of tokens and random bytes, so that many spans are tokens
            let mut text = Vec::new();
            while text.len() < 120 {
                if rnd(2) == 0 {
                    text.extend_from_slice(&toks[rnd(toks.len() as u64) as usize]);
                } else {
                    text.push(alphabet[rnd(alphabet.len() as u64) as usize]);
                }
            }
            for a in 0..text.len().saturating_sub(8) {
                for e in a + 1..(a + 50).min(text.len()) {
                    let want = map.get(&text[a..e]).copied();
                    assert_eq!(ix.get(&text[a..e], bytes_of), want);
                    assert_eq!(ix.get_in(&text, a, e, bytes_of), want, "{:?}", &text[a..e]);
                }
            }
        }
    }

    #[test]
    fn get_in_equals_get_on_random_vocabularies() {
        for seed in [1, 7, 12345, 0x9e37_79b9] {
            check_get_in(seed);
        }
    }
}
