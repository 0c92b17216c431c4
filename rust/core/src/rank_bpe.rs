//! tiktoken's byte-pair merge, driven directly by the vocabulary: two adjacent parts merge
//! iff their concatenated bytes are a token, lowest id (= rank) first, leftmost among
//! equals. This is the definition tiktoken uses, so no pair table is needed; every lookup
//! goes to the vocabulary's [`crate::piece_index::PieceIndex`], which the whole-piece
//! lookups keep hot in cache.
//!
//! * Pieces shorter than [`LINEAR_MAX`] bytes: parts in small stack arrays, linear scan
//!   for the minimum (cache friendly, no allocation).
//!
//!   The cost of this merge on missed pieces (about 20 lookups and 7 merges for an
//!   11-byte Finnish word with o200k) does not depend on the index's size (the same
//!   ~44 ns per merge with r50k's 1.5 MB index as with o200k's 6 MB one): branches and
//!   instructions dominate. So the merge loop keys its lookups from a zero-padded copy
//!   of the piece (head and tail words by masked loads, no branch on the length; the
//!   initial pairs of atomic characters too) and asks
//!   [`crate::piece_index::PieceIndex::get_filtered_key`] (Bloom filter, then the probe).
//!   The initial parts of atomic characters step over whole UTF-8 characters, so the
//!   next step does not wait for the character table's load. On x86-64 the loop is
//!   also compiled for AVX2 (runtime dispatch), and the minimum scan runs over whole
//!   blocks of 8 keys. The two keys a step computes are held apart until the next step
//!   stores them, and a predicted branch picks the next minimum (the scan's, unless one
//!   of the two new pairs is smaller, which is rare): the next step does not wait for
//!   this step's lookups. An exact pair table keyed by the parts' ids was measured and
//!   rejected (it cannot fit L2, where the index's Bloom filter answers most lookups;
//!   see `docs/DEVELOPING.md`).
//! * Longer pieces: [`crate::backtrack`] when the vocabulary supports it (linear time),
//!   else a binary heap with lazy invalidation over a linked list (`O(n log n)`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::atomic_chars::AtomicChars;
use crate::error::{Error, Result};
use crate::vocab::Vocab;

/// Pieces of fewer bytes than this use the linear scan.
pub const LINEAR_MAX: usize = 128;
const _: () = assert!(LINEAR_MAX <= 128);

const MAX: u32 = u32::MAX;

/// Whether [`linear`] can be used: its packed keys need ranks below 2^25.
#[inline(always)]
pub(crate) fn linear_ok(vocab: &Vocab) -> bool {
    vocab.n_slots() < 1 << 25
}

/// Rank of the token `piece[a..b]`, or `MAX`.
#[inline(always)]
fn rank(vocab: &Vocab, piece: &[u8], a: usize, b: usize, max_len: usize) -> u32 {
    if b - a > max_len {
        return MAX;
    }
    vocab.get_filtered(&piece[a..b]).unwrap_or(MAX)
}

/// A copy of a short piece, 8 zero bytes before it and at least 8 after, so that the
/// index key of any of its sub-slices (first and last 8 bytes) is two unaligned loads and
/// masks, without branches on the slice's length (whose mispredictions cost the merge
/// loop more than the loads).
/// `L` is the buffer's size: at least the piece's length + 16.
struct Padded<const L: usize = { LINEAR_MAX + 24 }> {
    buf: [u8; L],
}

impl<const L: usize> Padded<L> {
    #[inline(always)]
    fn new(piece: &[u8]) -> Self {
        let mut buf = [0u8; L];
        buf[8..8 + piece.len()].copy_from_slice(piece);
        Padded { buf }
    }

    #[inline(always)]
    fn word(&self, at: usize) -> u64 {
        let w: [u8; 8] = self.buf[at..at + 8].try_into().unwrap_or([0; 8]);
        u64::from_le_bytes(w)
    }

    /// The index key (head, tail) of `piece[a..b]` (see
    /// [`crate::piece_index::PieceIndex::get_filtered_key`]).
    #[inline(always)]
    fn key(&self, a: usize, b: usize) -> (u64, u64) {
        let n = b - a;
        let h = self.word(a + 8) & (u64::MAX >> (8 * (8 - n.min(8))));
        let t = self.word(b) & ((n > 8) as u64).wrapping_neg();
        (h, t)
    }
}

/// Length of the UTF-8 character starting at `piece[i]` if it is well formed as far as
/// [`AtomicChars::at_parts`] looks (a lead byte `C2..=F7` and enough continuation bytes),
/// else 1.
#[inline(always)]
fn char_len(piece: &[u8], i: usize) -> usize {
    let b0 = piece[i];
    let cl = match b0 {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => return 1,
    };
    if i + cl > piece.len() || piece[i + 1..i + cl].iter().any(|&b| b & 0xc0 != 0x80) {
        return 1;
    }
    cl
}

/// The initial parts of a piece whose atomic characters start as one part (or as the
/// two parts of their isolated merge; see the module docs), in order: `part(a, b, id)` for
/// each part `a..b`, with `id` its token id when it starts merged (an atomic character, or
/// the longer part of a split one) and `MAX` for a single byte. Steps over whole UTF-8
/// characters, so that the next step does not wait for this one's table lookup.
#[inline(always)]
fn atomic_parts(chars: &AtomicChars, piece: &[u8], mut part: impl FnMut(usize, usize, u32)) {
    let n = piece.len();
    let mut i = 0;
    while i < n {
        let cl = char_len(piece, i);
        let mut single = i; // first byte of the character left as single bytes
        if cl > 1 {
            if let Some((l, first, id)) = chars.at_parts(piece, i) {
                debug_assert!(l <= cl);
                if first == l {
                    part(i, i + l, id);
                } else {
                    // two parts; the longer one is the token `id`
                    let (x, y) = if first > 1 { (id, MAX) } else { (MAX, id) };
                    part(i, i + first, x);
                    part(i + first, i + l, y);
                }
                single = i + l;
            }
        }
        for a in single..i + cl {
            part(a, a + 1, MAX);
        }
        i += cl;
    }
}

/// The rank of the initial pair `piece[a..b]` ([`rank`] for two bytes, [`rank3`] else).
#[inline(always)]
fn pair_rank<const L: usize>(
    vocab: &Vocab,
    pad: &Padded<L>,
    piece: &[u8],
    a: usize,
    b: usize,
    max_len: usize,
) -> u32 {
    if b - a == 2 {
        rank(vocab, piece, a, b, max_len)
    } else {
        rank3(vocab, pad, piece, a, b, max_len)
    }
}

/// [`rank`] for `piece[a..b]` of at least 3 bytes, keyed through `pad` (a [`Padded`] copy
/// of `piece`).
#[inline(always)]
fn rank3<const L: usize>(
    vocab: &Vocab,
    pad: &Padded<L>,
    piece: &[u8],
    a: usize,
    b: usize,
    max_len: usize,
) -> u32 {
    if b - a > max_len {
        return MAX;
    }
    let (h, t) = pad.key(a, b);
    vocab.get_filtered_key(h, t, &piece[a..b]).unwrap_or(MAX)
}

/// Append the ids of the byte-pair merge of `piece` (no whole-piece shortcut) to `out`.
/// Fails if a byte without a token of its own survives the merging.
pub fn encode(vocab: &Vocab, piece: &[u8], out: &mut Vec<u32>) -> Result<()> {
    encode_impl(vocab, None, piece, out)
}

/// [`encode`], starting the atomic characters of `chars` (built from `vocab`) as one part
/// each: the same result with fewer merge steps (see [`crate::atomic_chars`]).
pub fn encode_with_chars(
    vocab: &Vocab,
    chars: &AtomicChars,
    piece: &[u8],
    out: &mut Vec<u32>,
) -> Result<()> {
    encode_impl(vocab, Some(chars), piece, out)
}

#[inline(always)]
fn encode_impl(
    vocab: &Vocab,
    chars: Option<&AtomicChars>,
    piece: &[u8],
    out: &mut Vec<u32>,
) -> Result<()> {
    let start = out.len();
    let ok = match piece.len() {
        0 => true,
        1 => match vocab.byte_id(piece[0]) {
            Some(id) => {
                out.push(id);
                true
            }
            None => false,
        },
        n if n < LINEAR_MAX && linear_ok(vocab) => linear(vocab, chars, piece, out, &mut |_, _| {}),
        _ => heap(vocab, piece, out, &mut |_, _| {}),
    };
    if !ok {
        out.truncate(start);
        return Err(Error::UnencodableBytes(piece.to_vec()));
    }
    Ok(())
}

/// Resolve the final parts: merged parts carry their id, single bytes need their own
/// token. Returns false if one is missing.
#[inline(always)]
fn emit(vocab: &Vocab, piece: &[u8], a: usize, b: usize, id: u32, out: &mut Vec<u32>) -> bool {
    if b - a == 1 {
        match vocab.byte_id(piece[a]) {
            Some(id) => out.push(id),
            None => return false,
        }
    } else {
        out.push(id);
    }
    true
}

/// `on_merge(start, mid)` is called for every merge of the part starting at `start` with
/// the part starting at `mid` (not for the atomic characters of `chars`, which start as
/// one part).
pub(crate) fn linear<M: FnMut(usize, usize)>(
    vocab: &Vocab,
    chars: Option<&AtomicChars>,
    piece: &[u8],
    out: &mut Vec<u32>,
    on_merge: &mut M,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if piece.len() <= regs::MAX_N && regs::available() {
        // SAFETY: the CPU has AVX-512F (checked just above).
        return unsafe { regs::linear_avx512(vocab, chars, piece, out, on_merge) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { linear_avx2(vocab, chars, piece, out, on_merge) };
    }
    linear_impl(vocab, chars, piece, out, on_merge)
}

/// [`linear_impl`] compiled for AVX2 (the minimum scans take 8 keys per instruction).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn linear_avx2<M: FnMut(usize, usize)>(
    vocab: &Vocab,
    chars: Option<&AtomicChars>,
    piece: &[u8],
    out: &mut Vec<u32>,
    on_merge: &mut M,
) -> bool {
    linear_impl(vocab, chars, piece, out, on_merge)
}

/// The linear merge of pieces of at most [`regs::MAX_N`] bytes with the pair keys in
/// AVX-512 registers (one 32-bit lane per byte position, as `keys` of [`linear_impl`])
/// and the part starts in one 64-bit mask: a step's minimum never waits for a store to
/// memory, and the parts' neighbours are bit scans instead of loads.
#[cfg(target_arch = "x86_64")]
pub(crate) mod regs {
    use super::{atomic_parts, emit, pair_rank, rank, rank3, AtomicChars, Padded, Vocab, MAX};
    use std::arch::x86_64::*;

    /// Longest piece this path takes (part starts and the end bit fit in a `u64`, the
    /// keys in four registers).
    pub(crate) const MAX_N: usize = 63;
    const _: () = assert!(MAX_N < 64 && MAX_N < super::LINEAR_MAX);

    /// Whether the CPU has what this path needs (AVX-512F).
    #[inline(always)]
    pub(crate) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
    }

    /// The start of the part after the one starting at `x` (`x` < the piece's length).
    #[inline(always)]
    fn next(starts: u64, x: usize) -> usize {
        ((starts >> x) & !1).trailing_zeros() as usize + x
    }

    /// The start of the part before the one starting at `x` (`x > 0`).
    #[inline(always)]
    fn prev(starts: u64, x: usize) -> usize {
        63 - (starts & ((1u64 << x) - 1)).leading_zeros() as usize
    }

    /// [`super::linear`] for `piece.len() <= MAX_N`, dispatched on the piece's length to
    /// 1, 2 or 4 registers of keys.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f,avx2")]
    pub(crate) unsafe fn linear_avx512<M: FnMut(usize, usize)>(
        vocab: &Vocab,
        chars: Option<&AtomicChars>,
        piece: &[u8],
        out: &mut Vec<u32>,
        on_merge: &mut M,
    ) -> bool {
        match piece.len() {
            0..=16 => merge::<1, M>(vocab, chars, piece, out, on_merge),
            17..=32 => merge::<2, M>(vocab, chars, piece, out, on_merge),
            _ => merge::<4, M>(vocab, chars, piece, out, on_merge),
        }
    }

    /// `v[r] = value` in the lanes of `v` whose bits are set in `lanes` (bit `16 r + l`
    /// is lane `l` of `v[r]`).
    #[inline]
    #[target_feature(enable = "avx512f,avx2")]
    fn set_lanes<const R: usize>(v: &mut [__m512i; R], lanes: u64, value: u32) {
        let x = _mm512_set1_epi32(value as i32);
        for (r, reg) in v.iter_mut().enumerate() {
            *reg = _mm512_mask_mov_epi32(*reg, (lanes >> (16 * r)) as u16, x);
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx2")]
    fn min_lanes<const R: usize>(v: &[__m512i; R]) -> u32 {
        let mut m = v[0];
        for reg in &v[1..] {
            m = _mm512_min_epu32(m, *reg);
        }
        _mm512_reduce_min_epu32(m)
    }

    /// [`rank3`] of `piece[a..b]` (at least 3 bytes); for 3 and 4 bytes the Bloom
    /// filter's positives go to the index's compact table (one line of 512 KiB for o200k,
    /// compared by AVX-512) instead of the slot array (4 MiB, in L3).
    #[inline]
    #[target_feature(enable = "avx512f,avx2")]
    pub(super) fn rank34<const L: usize>(
        vocab: &Vocab,
        pad: &Padded<L>,
        piece: &[u8],
        a: usize,
        b: usize,
        max_len: usize,
    ) -> u32 {
        let n = b - a;
        debug_assert!(n >= 3);
        debug_assert!(super::linear_ok(vocab));
        if n <= 4 {
            let (h, _) = pad.key(a, b);
            return vocab.get34_avx512(h, n);
        }
        rank3(vocab, pad, piece, a, b, max_len)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx2")]
    fn merge<const R: usize, M: FnMut(usize, usize)>(
        vocab: &Vocab,
        chars: Option<&AtomicChars>,
        piece: &[u8],
        out: &mut Vec<u32>,
        on_merge: &mut M,
    ) -> bool {
        let n = piece.len();
        debug_assert!(n <= 16 * R && n <= MAX_N);
        let max_len = vocab.max_token_len();
        // bit i of `starts`: a part starts at byte i (bit n: the end)
        let mut starts: u64;
        // ids[i]: the id of the part at i once merged; keys[i]: the key of its pair (as in
        // `linear_impl`)
        let mut ids = [MAX; 64];
        let mut keys = [MAX; 64];
        let key = |r: u32, i: usize| if r == MAX { MAX } else { (r << 7) | i as u32 };
        let pad: Padded<{ MAX_N + 17 }> = Padded::new(piece);
        match chars {
            Some(chars) if piece.iter().any(|&b| b >= 0xc2) => {
                // parts: atomic characters (already merged, with their id) and single bytes
                starts = 1 << n;
                atomic_parts(chars, piece, |a, _, id| {
                    starts |= 1 << a;
                    ids[a] = id;
                });
                let mut i = 0;
                loop {
                    let j = next(starts, i);
                    if j == n {
                        break;
                    }
                    let e = next(starts, j);
                    keys[i] = key(pair_rank(vocab, &pad, piece, i, e, max_len), i);
                    i = j;
                }
            }
            _ => {
                starts = u64::MAX >> (63 - n);
                for (i, k) in keys.iter_mut().enumerate().take(n.saturating_sub(1)) {
                    *k = key(rank(vocab, piece, i, i + 2, max_len), i);
                }
            }
        }
        let mut v = [_mm512_set1_epi32(-1); R];
        for (r, reg) in v.iter_mut().enumerate() {
            // SAFETY: `keys` has 64 >= 16 * R elements, so lanes 16 r .. 16 r + 16 are in it;
            // the load is unaligned.
            *reg = unsafe { _mm512_loadu_si512(keys.as_ptr().add(16 * r).cast()) };
        }
        // As in `linear_impl`: the two keys a step computes stay out of `v` (their lanes
        // MAX) until the next step puts them in; a predicted branch picks the next
        // minimum. Lane 63 is never a part start (n <= 63): the idle lane.
        let (mut pa, mut ka, mut pb, mut kb) = (63usize, MAX, 63usize, MAX);
        loop {
            let rest = min_lanes(&v);
            let fresh = ka.min(kb);
            let k_min = if fresh < rest {
                std::hint::black_box(fresh)
            } else {
                rest
            };
            if k_min == MAX {
                break;
            }
            let at = (k_min & 127) as usize;
            let best = k_min >> 7;
            let j = next(starts, at);
            let k = next(starts, j);
            on_merge(at, j);
            ids[at] = best;
            starts &= !(1u64 << j);
            set_lanes(&mut v, 1 << pa, ka);
            set_lanes(&mut v, 1 << pb, kb);
            pa = at;
            ka = if k < n {
                key(rank34(vocab, &pad, piece, at, next(starts, k), max_len), at)
            } else {
                MAX
            };
            if at > 0 {
                let p = prev(starts, at);
                set_lanes(&mut v, 1 << j | 1 << at | 1 << p, MAX);
                pb = p;
                kb = key(rank34(vocab, &pad, piece, p, k, max_len), p);
            } else {
                set_lanes(&mut v, 1 << j | 1 << at, MAX);
                pb = 63;
                kb = MAX;
            }
        }
        let mut i = 0;
        while i < n {
            let e = next(starts, i);
            if !emit(vocab, piece, i, e, ids[i], out) {
                return false;
            }
            i = e;
        }
        true
    }
}

/// The smallest of `keys[..m]` (`m` a multiple of 8): eight independent lanes, so that
/// the scan is vector instructions whatever the piece's length.
#[inline(always)]
fn min_key(keys: &[u32; LINEAR_MAX], m: usize) -> u32 {
    let mut acc = [MAX; 8];
    for c in keys[..m].chunks_exact(8) {
        for l in 0..8 {
            acc[l] = acc[l].min(c[l]);
        }
    }
    acc.iter().fold(MAX, |a, &b| a.min(b))
}

#[inline(always)]
fn linear_impl<M: FnMut(usize, usize)>(
    vocab: &Vocab,
    chars: Option<&AtomicChars>,
    piece: &[u8],
    out: &mut Vec<u32>,
    on_merge: &mut M,
) -> bool {
    let n = piece.len();
    let max_len = vocab.max_token_len();
    // Parts are indexed by their start byte. For a part start i: end[i] is its end,
    // prev[i] the previous part's start, ids[i] its id once merged, and keys[i] encodes
    // the rank r of merging it with the next part as `r << 7 | i` (MAX if none or if i is
    // not a part start), so that one vectorized minimum gives the lowest rank and, among
    // equal ranks, the leftmost position. No shifting on merges. Indices fit in u8.
    let mut keys = [MAX; LINEAR_MAX];
    let mut end = [0u8; LINEAR_MAX];
    let mut prev = [0u8; LINEAR_MAX];
    let mut ids = [MAX; LINEAR_MAX];
    let key = |r: u32, i: usize| if r == MAX { MAX } else { (r << 7) | i as u32 };
    let pad: Padded = Padded::new(piece);
    match chars {
        Some(chars) if piece.iter().any(|&b| b >= 0xc2) => {
            // parts: atomic characters (already merged, with their id) and single bytes
            let mut last = usize::MAX;
            atomic_parts(chars, piece, |a, b, id| {
                end[a] = b as u8;
                prev[a] = last as u8;
                ids[a] = id;
                last = a;
            });
            let mut i = 0;
            while end[i] as usize != n {
                let j = end[i] as usize;
                let e = end[j] as usize;
                keys[i] = key(pair_rank(vocab, &pad, piece, i, e, max_len), i);
                i = j;
            }
        }
        _ => {
            for i in 0..n {
                end[i] = (i + 1) as u8;
                prev[i] = i.wrapping_sub(1) as u8;
            }
            for (i, k) in keys.iter_mut().enumerate().take(n - 1) {
                *k = key(rank(vocab, piece, i, i + 2, max_len), i);
            }
        }
    }
    // keys[n..] stay MAX: the scans may cover them
    let m = (n + 7) & !7;
    // The two keys a step computes (`ka` for the part at `pa`, `kb` for the one at `pb`)
    // are held apart: their slots of `keys` hold MAX until the next step stores them.
    // The next merge is seldom one of those two new pairs (replayed merges of missed
    // pieces: fi 6 %, en 17 %, ja 3 %, random letters < 1 %), so the choice between
    // the scan's minimum and theirs is a branch (kept by `black_box`) that the CPU
    // predicts and runs past: the next step starts without waiting for this step's
    // lookups, and the lookups of consecutive steps overlap. Position `LINEAR_MAX - 1`
    // (never a part start, its key MAX) is the idle slot.
    let (mut pa, mut ka, mut pb, mut kb) = (LINEAR_MAX - 1, MAX, LINEAR_MAX - 1, MAX);
    loop {
        let rest = min_key(&keys, m);
        let fresh = ka.min(kb);
        let k_min = if fresh < rest {
            std::hint::black_box(fresh)
        } else {
            rest
        };
        if k_min == MAX {
            break;
        }
        let at = (k_min & 127) as usize;
        let best = k_min >> 7;
        let j = end[at] as usize;
        let k = end[j] as usize;
        on_merge(at, j);
        ids[at] = best;
        end[at] = k as u8;
        // store the last step's keys, then clear the slots this merge changes
        keys[pa] = ka;
        keys[pb] = kb;
        keys[j] = MAX;
        keys[at] = MAX;
        pa = at;
        ka = if k < n {
            prev[k] = at as u8;
            key(rank3(vocab, &pad, piece, at, end[k] as usize, max_len), at)
        } else {
            MAX
        };
        if at > 0 {
            let p = prev[at] as usize;
            keys[p] = MAX;
            pb = p;
            kb = key(rank3(vocab, &pad, piece, p, k, max_len), p);
        } else {
            pb = LINEAR_MAX - 1;
            kb = MAX;
        }
    }
    let mut i = 0;
    while i < n {
        let e = end[i] as usize;
        if !emit(vocab, piece, i, e, ids[i], out) {
            return false;
        }
        i = e;
    }
    true
}

/// `O(n log n)` merge for long pieces: a linked list of parts and a min-heap of
/// `(rank, start)` candidates with lazy invalidation.
pub(crate) fn heap<M: FnMut(usize, usize)>(
    vocab: &Vocab,
    piece: &[u8],
    out: &mut Vec<u32>,
    on_merge: &mut M,
) -> bool {
    const NIL: u32 = u32::MAX;
    let n = piece.len();
    let max_len = vocab.max_token_len();
    // Parts are identified by their start offset. end[i]: end of the part starting at i
    // (0 if i is not a part start); prev[i]: start of the previous part.
    let mut end: Vec<u32> = (1..=n as u32).collect();
    let mut prev: Vec<u32> = (0..n as u32).map(|i| i.wrapping_sub(1)).collect();
    let mut ids: Vec<u32> = vec![MAX; n];
    // cur[i]: rank of merging the part at i with its successor (MAX: none)
    let mut cur: Vec<u32> = vec![MAX; n];
    let mut heap: BinaryHeap<Reverse<(u32, u32)>> = BinaryHeap::with_capacity(n);
    for (i, c) in cur.iter_mut().enumerate().take(n - 1) {
        let r = rank(vocab, piece, i, i + 2, max_len);
        *c = r;
        if r != MAX {
            heap.push(Reverse((r, i as u32)));
        }
    }
    while let Some(Reverse((r, i))) = heap.pop() {
        let i = i as usize;
        if cur[i] != r {
            continue; // stale
        }
        let j = end[i] as usize; // start of the right part
        let k = end[j] as usize; // its end
        on_merge(i, j);
        ids[i] = r;
        end[i] = k as u32;
        end[j] = 0;
        cur[j] = MAX;
        if k < n {
            prev[k] = i as u32;
            let r2 = rank(vocab, piece, i, end[k] as usize, max_len);
            cur[i] = r2;
            if r2 != MAX {
                heap.push(Reverse((r2, i as u32)));
            }
        } else {
            cur[i] = MAX;
        }
        let p = prev[i];
        if p != NIL {
            let p = p as usize;
            let r2 = rank(vocab, piece, p, k, max_len);
            cur[p] = r2;
            if r2 != MAX {
                heap.push(Reverse((r2, p as u32)));
            }
        }
    }
    let mut i = 0usize;
    while i < n {
        let e = end[i] as usize;
        if !emit(vocab, piece, i, e, ids[i], out) {
            return false;
        }
        i = e;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpe::MergeTable;

    fn vocab(tokens: &[&[u8]]) -> Vocab {
        crate::vocab::test_vocab(tokens)
    }

    #[test]
    fn agrees_with_merge_table() {
        let v = vocab(&[
            b"aa",
            b"ab",
            b"ba",
            b"aaa",
            b"aaaa",
            b"bab",
            b"aab",
            b"abab",
            b"bb",
            b"bbb",
            b"aaaaaaaa",
            b"abba",
        ]);
        let t = MergeTable::from_vocab_ranks(&v);
        let mut seed = 7u64;
        for len in 1..300 {
            for _ in 0..4 {
                let piece: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        if (seed >> 33).is_multiple_of(3) {
                            b'b'
                        } else {
                            b'a'
                        }
                    })
                    .collect();
                let mut a = vec![];
                let mut b = vec![];
                let mut c = vec![];
                encode(&v, &piece, &mut a).unwrap();
                t.encode_piece(&piece, &mut b).unwrap();
                assert_eq!(a, b, "{len}");
                if len > 1 {
                    assert!(heap(&v, &piece, &mut c, &mut |_, _| {}));
                    assert_eq!(a, c, "{len}");
                }
            }
        }
    }

    /// Vocabularies where every merge makes the next one (the new pair is the next
    /// minimum: the merge loop's rarely taken branch, taken on every step), mixed with
    /// ones where it never does, on pieces up to the linear merge's limit.
    #[test]
    fn chains_of_fresh_pairs() {
        let text: Vec<u8> = (0..LINEAR_MAX as u8 - 1).map(|i| b'a' + i % 26).collect();
        // left to right: "ab", "abc", "abcd", ... (each new part merges with the next byte)
        let grow: Vec<Vec<u8>> = (2..12).map(|k| text[..k].to_vec()).collect();
        // right to left: "yz", "xyz", ... ending at byte 25
        let back: Vec<Vec<u8>> = (2..12).map(|k| text[26 - k..26].to_vec()).collect();
        // and pairs everywhere, at higher ranks
        let pairs: Vec<Vec<u8>> = (0..25).map(|i| text[i..i + 2].to_vec()).collect();
        for tokens in [
            [grow.clone(), pairs.clone()].concat(),
            [back.clone(), pairs.clone()].concat(),
            [pairs.clone(), grow.clone(), back.clone()].concat(),
            [grow.clone(), back.clone()].concat(),
        ] {
            let mut all: Vec<(Vec<u8>, u32)> = (0..=255u8).map(|b| (vec![b], b as u32)).collect();
            let mut seen = std::collections::HashSet::new();
            for t in tokens {
                if seen.insert(t.clone()) {
                    let id = all.len() as u32;
                    all.push((t, id));
                }
            }
            let v = Vocab::from_pairs(all).unwrap();
            let t = MergeTable::from_vocab_ranks(&v);
            for len in (2..LINEAR_MAX).step_by(5).chain([LINEAR_MAX - 1]) {
                for start in [0, 1, 13] {
                    let piece = &text[start..(start + len).min(text.len())];
                    let (mut a, mut b) = (vec![], vec![]);
                    assert!(linear(&v, None, piece, &mut a, &mut |_, _| {}));
                    t.encode_piece(piece, &mut b).unwrap();
                    assert_eq!(a, b, "{len} {start}");
                }
            }
        }
    }

    /// On a CPU with AVX-512F (this project's benchmark machine), `linear` must take the
    /// register merge for short pieces: fails if the dispatch silently falls back.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_path_is_taken() {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let listed = cpuinfo.split_whitespace().any(|w| w == "avx512f");
        assert_eq!(
            regs::available(),
            std::arch::is_x86_feature_detected!("avx512f")
        );
        if listed {
            assert!(
                regs::available(),
                "the CPU lists avx512f but the register merge is off"
            );
        } else {
            eprintln!("no AVX-512F: the register merge is not tested on this machine");
        }
        const { assert!(regs::MAX_N >= 32 && regs::MAX_N < 64) };
        // a missing byte token is reported by the register path too
        let v = Vocab::from_pairs(vec![(b"a".to_vec(), 0), (b"ab".to_vec(), 1)]).unwrap();
        let mut out = vec![];
        assert!(!linear(&v, None, b"abb", &mut out, &mut |_, _| {}));
        out.clear();
        assert!(linear(&v, None, b"a", &mut out, &mut |_, _| {}));
        assert_eq!(out, vec![0]);
        out.clear();
        let piece = b"ab".repeat(31);
        assert!(linear(&v, None, &piece, &mut out, &mut |_, _| {}));
        assert_eq!(out, vec![1; 31]);
    }

    /// On a CPU with AVX-512F, the register merge's 3- and 4-byte lookups must go to the
    /// compact table's vector lookup: fails if they silently take another path.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn compact_lookup_is_taken() {
        use crate::piece_index::tests::VECTOR34;
        let v = vocab(&[b"ab", b"aba", b"abab", b"ababa"]);
        let calls = || VECTOR34.with(|c| c.get());
        let before = calls();
        let mut out = vec![];
        assert!(linear(&v, None, b"ababab", &mut out, &mut |_, _| {}));
        let mut want = vec![];
        assert!(heap(&v, b"ababab", &mut want, &mut |_, _| {}));
        assert_eq!(out, want);
        if crate::testutil::cpu_lists(&["avx512f"]) {
            assert!(
                calls() > before,
                "the CPU lists avx512f but the merge did not use the compact table"
            );
        } else {
            eprintln!("no AVX-512F: the compact table's vector lookup is not tested here");
        }
    }

    #[test]
    fn missing_byte_is_error() {
        let v = Vocab::from_pairs(vec![(b"a".to_vec(), 0), (b"ab".to_vec(), 1)]).unwrap();
        let mut out = vec![];
        encode(&v, b"ab", &mut out).unwrap();
        assert_eq!(out, vec![1]);
        assert!(encode(&v, b"abb", &mut out).is_err());
        assert_eq!(out, vec![1]);
        let long = b"ab".repeat(100);
        encode(&v, &long, &mut out).unwrap();
        assert_eq!(out.len(), 101);
    }
}

#[cfg(test)]
pub(crate) mod proptests {
    use super::*;
    use crate::bpe::MergeTable;
    use proptest::prelude::*;

    /// Units that texts and tokens are made of: ASCII, two-, three- and four-byte
    /// characters and fragments of them (so that atomic and split characters occur).
    const UNITS: [&[u8]; 12] = [
        b"a",
        b"b",
        b" ",
        "é".as_bytes(),
        "ж".as_bytes(),
        "中".as_bytes(),
        "文".as_bytes(),
        "\u{1F600}".as_bytes(),
        b"\xe4\xb8",
        b"\xb8\xad",
        b"\xf0\x9f",
        b"\x98\x80",
    ];

    /// The bytes of `units`, each an index into `table` (modulo its length).
    pub(crate) fn concat_in(table: &[&[u8]], units: &[usize]) -> Vec<u8> {
        units
            .iter()
            .flat_map(|&u| table[u % table.len()].to_vec())
            .collect()
    }

    fn concat(units: &[usize]) -> Vec<u8> {
        concat_in(&UNITS, units)
    }

    /// Every byte, then the distinct non-empty token strings in the given order (ids are
    /// ranks, as in tiktoken).
    fn vocab_of(tokens: &[Vec<usize>]) -> Vocab {
        vocab_in(&UNITS, tokens)
    }

    /// [`vocab_of`] over units of `table`.
    pub(crate) fn vocab_in(table: &[&[u8]], tokens: &[Vec<usize>]) -> Vocab {
        let mut pairs: Vec<(Vec<u8>, u32)> = (0..=255u8).map(|b| (vec![b], b as u32)).collect();
        let mut seen = std::collections::HashSet::new();
        for t in tokens {
            let b = concat_in(table, t);
            if b.len() > 1 && seen.insert(b.clone()) {
                let id = pairs.len() as u32;
                pairs.push((b, id));
            }
        }
        Vocab::from_pairs(pairs).unwrap()
    }

    proptest! {
        /// Random vocabularies with tokens of up to 40 bytes (both key words of the
        /// index, and longer): the linear merge (AVX2 build and generic build, with and
        /// without atomic characters, with the four-byte extension) equals the heap merge
        /// and the merge-table reference on random pieces.
        #[test]
        fn linear_equals_heap_and_merge_table(
            tokens in proptest::collection::vec(proptest::collection::vec(0usize..12, 2..14), 1..80),
            pieces in proptest::collection::vec(proptest::collection::vec(0usize..12, 1..60), 1..8),
        ) {
            let v = vocab_of(&tokens);
            let table = MergeTable::from_vocab_ranks(&v);
            let chars = AtomicChars::build(&v);
            let chars4 = chars.clone().with_four_byte(&v);
            for p in &pieces {
                let mut piece = concat(p);
                piece.truncate(LINEAR_MAX - 1);
                if piece.len() < 2 {
                    continue;
                }
                let mut want = vec![];
                table.encode_piece(&piece, &mut want).unwrap();
                let mut h = vec![];
                let ok = heap(&v, &piece, &mut h, &mut |_, _| {});
                prop_assert!(ok);
                prop_assert_eq!(&h, &want);
                for c in [None, Some(&chars), Some(&chars4)] {
                    let mut a = vec![];
                    let ok = linear(&v, c, &piece, &mut a, &mut |_, _| {});
                    prop_assert!(ok);
                    prop_assert_eq!(&a, &want);
                    let mut b = vec![];
                    let ok = linear_impl(&v, c, &piece, &mut b, &mut |_, _| {});
                    prop_assert!(ok);
                    prop_assert_eq!(&b, &want);
                }
            }
        }

        /// Few distinct bytes, pieces up to the linear merge's limit: many equal pairs
        /// (leftmost among equals), tokens of any rank order (a concatenation of higher
        /// rank than other candidates, tokens ranked below their parts, unreachable
        /// ones), so that the new pairs of a step are often, and often not, the next
        /// minimum.
        #[test]
        fn linear_equals_merge_table_on_small_alphabets(
            tokens in proptest::collection::vec(proptest::collection::vec(0usize..3, 2..7), 1..40),
            pieces in proptest::collection::vec(proptest::collection::vec(0usize..3, 2..LINEAR_MAX), 1..4),
        ) {
            let v = vocab_of(&tokens);
            let table = MergeTable::from_vocab_ranks(&v);
            for p in &pieces {
                let mut piece = concat(p);
                piece.truncate(LINEAR_MAX - 1);
                let mut want = vec![];
                table.encode_piece(&piece, &mut want).unwrap();
                let mut a = vec![];
                let ok = linear(&v, None, &piece, &mut a, &mut |_, _| {});
                prop_assert!(ok);
                prop_assert_eq!(&a, &want);
                let mut b = vec![];
                let ok = linear_impl(&v, None, &piece, &mut b, &mut |_, _| {});
                prop_assert!(ok);
                prop_assert_eq!(&b, &want);
            }
        }

        /// The AVX-512 merge (`regs`, keys in registers), called directly, equals the
        /// merge-table reference and the portable loop on pieces of every length it takes
        /// (1, 2 and 4 registers), with and without atomic characters, and reports the
        /// same merges, in the same order, to `on_merge` (the backtracking encoder uses
        /// them). Skipped without AVX-512F (see `avx512_path_is_taken`).
        #[cfg(target_arch = "x86_64")]
        #[test]
        fn avx512_merge_equals_portable_and_merge_table(
            tokens in proptest::collection::vec(proptest::collection::vec(0usize..12, 2..14), 1..80),
            pieces in proptest::collection::vec(proptest::collection::vec(0usize..12, 1..70), 1..8),
            small in proptest::collection::vec(proptest::collection::vec(0usize..3, 2..7), 1..40),
            small_piece in proptest::collection::vec(0usize..3, 2..64),
        ) {
            if !regs::available() {
                return Ok(());
            }
            let v = vocab_of(&tokens);
            let table = MergeTable::from_vocab_ranks(&v);
            let chars = AtomicChars::build(&v);
            let chars4 = chars.clone().with_four_byte(&v);
            let vs = vocab_of(&small);
            let table_s = MergeTable::from_vocab_ranks(&vs);
            let mut cases: Vec<(&Vocab, &MergeTable, Vec<u8>, bool)> = pieces
                .iter()
                .map(|p| (&v, &table, concat(p), true))
                .collect();
            cases.push((&vs, &table_s, concat(&small_piece), false));
            for (v, table, mut piece, with_chars) in cases {
                piece.truncate(regs::MAX_N);
                if piece.len() < 2 {
                    continue;
                }
                let mut want = vec![];
                table.encode_piece(&piece, &mut want).unwrap();
                let all: &[Option<&AtomicChars>] = if with_chars {
                    &[None, Some(&chars), Some(&chars4)]
                } else {
                    &[None]
                };
                for &c in all {
                    let (mut a, mut ma) = (vec![], vec![]);
                    // SAFETY: the CPU has AVX-512F (checked above).
                    let ok = unsafe {
                        regs::linear_avx512(v, c, &piece, &mut a, &mut |x, y| ma.push((x, y)))
                    };
                    prop_assert!(ok);
                    prop_assert_eq!(&a, &want);
                    let (mut b, mut mb) = (vec![], vec![]);
                    let ok = linear_impl(v, c, &piece, &mut b, &mut |x, y| mb.push((x, y)));
                    prop_assert!(ok);
                    prop_assert_eq!(&b, &want);
                    prop_assert_eq!(&ma, &mb);
                }
            }
        }

        /// The merge loop's lookups: the key built from the padded copy and
        /// `get_filtered_key` agree with `Vocab::get` on every span of 3 or more bytes.
        #[test]
        fn padded_keys_find_the_same_tokens(
            tokens in proptest::collection::vec(proptest::collection::vec(0usize..12, 2..14), 1..60),
            text in proptest::collection::vec(0usize..12, 1..50),
        ) {
            let v = vocab_of(&tokens);
            // texts made mostly of tokens, so that many spans are tokens
            let mut piece = vec![];
            for (i, &u) in text.iter().enumerate() {
                if u < 6 {
                    piece.extend(concat(&tokens[i % tokens.len()]));
                } else {
                    piece.extend_from_slice(UNITS[u]);
                }
            }
            piece.truncate(LINEAR_MAX - 1);
            let pad: Padded = Padded::new(&piece);
            for a in 0..piece.len() {
                for b in a + 3..=piece.len() {
                    let want = v.get(&piece[a..b]).unwrap_or(MAX);
                    prop_assert_eq!(rank3(&v, &pad, &piece, a, b, usize::MAX), want);
                }
            }
        }
    }
}
