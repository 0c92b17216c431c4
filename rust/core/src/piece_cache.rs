//! A small per-thread cache of recently merged pieces.
//!
//! Pieces that are not tokens (about 7 % of English or code pieces, a third of
//! multilingual ones) need a byte-pair merge, which costs a dozen hash lookups; the same
//! rare words, identifiers and inflected forms come back again and again. This
//! two-way set-associative cache remembers the tokens of recent pieces (up to
//! [`MAX_PIECE`] bytes and [`MAX_TOKENS`] tokens): sets of two entries, the most
//! recently used first, so a piece only leaves the cache when two
//! others that map to its set have been used after it (a direct-mapped cache of the same
//! size misses about three times as often on repeated text). It is per thread (no locks,
//! no sharing between threads), keyed by the encoding's unique id, bounded (4 MiB per
//! thread, allocated on first use), and only ever returns the exact result of the merge
//! it stored, so output does not depend on it.
//!
//! Layout: pieces of at most [`SMALL_PIECE`] bytes (four in five non-token pieces of the
//! multilingual sample, nearly all of English and code) live in compact half-line entries (their ids packed in 24 bits, at most
//! [`SMALL_TOKENS`] of them), two to a cache line, so one line answers a lookup, hit or
//! miss, and 2 MiB hold 64 K of them; longer pieces live in one-line entries (16 K sets,
//! 2 MiB). Measured against one table of 16 K sets of one-line entries for all pieces
//! (the 2 MB o200k multilingual benchmark sample has 54 K distinct non-token pieces,
//! which overflowed it): pure-Rust interleaved A/B (`bench_core`, load ~2.6) o200k
//! multilingual +37 %, cl100k multilingual +30 %, en and code unchanged within the noise;
//! against one table of 32 K sets of one-line entries (same 4 MiB) multilingual +7–15 %.
//!
//! On the whole-corpus stream (every document once, the cache empty at the start;
//! `examples/stream_profile.rs`), the misses are nearly all first sightings: o200k en.txt
//! (20.6 MB) has 274 K non-token pieces of at most [`MAX_PIECE`] bytes, 84 % of them
//! hits, and of the 43.9 K misses 42.1 K are distinct pieces (code.txt: 38.7 K misses,
//! 37.1 K distinct). Capacity and conflict misses are thus about 4 % of the misses, and
//! an admission policy (doorkeeper/TinyLFU) or a larger table cannot win more than that;
//! the merges of all misses cost 12–15 % of the stream's time.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::hugebuf::{HugeBuf, Zeroable};

/// Longest piece that is cached.
pub const MAX_PIECE: usize = 26;
/// Most tokens a cached piece may have.
pub const MAX_TOKENS: usize = 8;
/// Number of sets (of two entries each) for pieces longer than [`SMALL_PIECE`] bytes.
pub const SETS: usize = 16384;
/// Longest piece kept in a compact (half-line) entry.
pub const SMALL_PIECE: usize = 14;
/// Most tokens of a piece kept in a compact entry.
pub const SMALL_TOKENS: usize = 4;
/// Number of sets (of two compact entries, one cache line each) for pieces of at most
/// [`SMALL_PIECE`] bytes.
pub const SMALL_SETS: usize = 32768;

/// One cache line: 4 + 1 + 1 + 26 + 32 = 64 bytes.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Entry {
    owner: u32,
    len: u8,
    ntok: u8,
    bytes: [u8; MAX_PIECE],
    toks: [u32; MAX_TOKENS],
}

// SAFETY: integers and integer arrays without padding (4 + 1 + 1 + 26 + 32 = 64 bytes);
// all-zero is an empty entry (owner 0).
unsafe impl Zeroable for Entry {}

/// Half a cache line: 4 + 1 + 1 + 14 + 12 = 32 bytes; ids as 24-bit little-endian.
#[derive(Clone, Copy)]
#[repr(C)]
struct Small {
    owner: u32,
    len: u8,
    ntok: u8,
    bytes: [u8; SMALL_PIECE],
    toks: [u8; 3 * SMALL_TOKENS],
}

/// Two compact entries in one cache line, the most recently used first.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct SmallSet([Small; 2]);

// SAFETY: integers and integer arrays without padding (2 x 32 = 64 bytes); all-zero is
// a pair of empty entries (owner 0).
unsafe impl Zeroable for SmallSet {}

const _: () = assert!(std::mem::size_of::<Entry>() == 64);
const _: () = assert!(std::mem::size_of::<SmallSet>() == 64);

/// The two tables of one thread.
struct Tables {
    /// Pieces of at most [`SMALL_PIECE`] bytes (2 MiB).
    small: HugeBuf<SmallSet>,
    /// Longer pieces (2 MiB).
    big: HugeBuf<[Entry; 2]>,
}

thread_local! {
    /// The tables (4 MiB, two huge pages where available), allocated on the first `put`.
    static CACHE: RefCell<Option<Tables>> = const { RefCell::new(None) };
}

static NEXT_OWNER: AtomicU32 = AtomicU32::new(1);

/// A fresh owner id for an encoding (0 marks empty slots).
pub fn new_owner() -> u32 {
    let id = NEXT_OWNER.fetch_add(1, Ordering::Relaxed);
    if id == 0 {
        NEXT_OWNER.fetch_add(1, Ordering::Relaxed)
    } else {
        id
    }
}

/// Set index of `piece` in its table (the table is chosen by its length).
#[inline(always)]
fn slot(piece: &[u8]) -> usize {
    let sets = if piece.len() <= SMALL_PIECE {
        SMALL_SETS
    } else {
        SETS
    };
    (mix(piece) >> 40) as usize & (sets - 1)
}

/// FNV-style mix over 8-byte words, finalised with a multiply: cheap and good enough for
/// direct-mapped caches (this one and [`crate::chunk_cache`]); take the high bits.
#[inline(always)]
pub(crate) fn mix(piece: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ piece.len() as u64;
    let mut chunks = piece.chunks_exact(8);
    for c in &mut chunks {
        h = (h ^ word(c, 0)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    for &b in chunks.remainder() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h ^ (h >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[inline(always)]
fn word(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes([
        b[i],
        b[i + 1],
        b[i + 2],
        b[i + 3],
        b[i + 4],
        b[i + 5],
        b[i + 6],
        b[i + 7],
    ])
}

#[inline(always)]
fn word4(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Whether `stored[..piece.len()] == piece`, with word-sized overlapping loads instead of
/// a `memcmp` call (`piece.len() <= N`).
#[inline(always)]
fn same<const N: usize>(stored: &[u8; N], piece: &[u8]) -> bool {
    let n = piece.len();
    if n < 8 {
        // overlapping loads cover every byte: [0, 4) and [n-4, n) for n >= 4; positions
        // 0, n/2 and n-1 for n <= 3
        if n >= 4 {
            return word4(stored, 0) == word4(piece, 0)
                && word4(stored, n - 4) == word4(piece, n - 4);
        }
        return n == 0
            || (stored[0] == piece[0]
                && stored[n / 2] == piece[n / 2]
                && stored[n - 1] == piece[n - 1]);
    }
    let mut i = 0;
    while i + 8 < n {
        if word(stored, i) != word(piece, i) {
            return false;
        }
        i += 8;
    }
    word(stored, n - 8) == word(piece, n - 8)
}

/// Whether `e` holds `piece` for `owner`.
#[inline(always)]
fn holds(e: &Entry, owner: u32, piece: &[u8]) -> bool {
    e.owner == owner && e.len as usize == piece.len() && same(&e.bytes, piece)
}

/// Whether `e` holds `piece` for `owner`.
#[inline(always)]
fn holds_small(e: &Small, owner: u32, piece: &[u8]) -> bool {
    e.owner == owner && e.len as usize == piece.len() && same(&e.bytes, piece)
}

/// Append the ids of a compact entry to `out`.
#[inline(always)]
fn emit_small(e: &Small, out: &mut Vec<u32>) {
    for k in 0..e.ntok as usize {
        let t = &e.toks[3 * k..3 * k + 3];
        out.push(t[0] as u32 | (t[1] as u32) << 8 | (t[2] as u32) << 16);
    }
}

/// Append the cached tokens of `piece` for encoding `owner` to `out`; false if absent.
#[inline]
pub fn get(owner: u32, piece: &[u8], out: &mut Vec<u32>) -> bool {
    if piece.len() > MAX_PIECE {
        return false;
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let Some(c) = c.as_mut() else {
            return false;
        };
        if piece.len() <= SMALL_PIECE {
            let set = &mut c.small[slot(piece)].0;
            if holds_small(&set[0], owner, piece) {
                emit_small(&set[0], out);
                true
            } else if holds_small(&set[1], owner, piece) {
                emit_small(&set[1], out);
                set.swap(0, 1);
                true
            } else {
                false
            }
        } else {
            let set = &mut c.big[slot(piece)];
            if holds(&set[0], owner, piece) {
                out.extend_from_slice(&set[0].toks[..set[0].ntok as usize]);
                true
            } else if holds(&set[1], owner, piece) {
                out.extend_from_slice(&set[1].toks[..set[1].ntok as usize]);
                set.swap(0, 1);
                true
            } else {
                false
            }
        }
    })
}

/// Remember that `piece` encodes to `toks` under encoding `owner` (as the most recently
/// used entry of its set; the least recently used one is evicted). Pieces of at most
/// [`SMALL_PIECE`] bytes with more than [`SMALL_TOKENS`] tokens, or an id of `2^24` or
/// more, are not kept.
#[inline]
pub fn put(owner: u32, piece: &[u8], toks: &[u32]) {
    let n = piece.len();
    let small = n <= SMALL_PIECE;
    if n > MAX_PIECE
        || toks.len() > MAX_TOKENS
        || (small && (toks.len() > SMALL_TOKENS || toks.iter().any(|&t| t >= 1 << 24)))
    {
        return;
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let c = c.get_or_insert_with(|| Tables {
            small: HugeBuf::zeroed(SMALL_SETS),
            big: HugeBuf::zeroed(SETS),
        });
        if small {
            let set = &mut c.small[slot(piece)].0;
            set[1] = set[0];
            let e = &mut set[0];
            e.owner = owner;
            e.len = n as u8;
            e.ntok = toks.len() as u8;
            e.bytes[..n].copy_from_slice(piece);
            for (k, &t) in toks.iter().enumerate() {
                e.toks[3 * k..3 * k + 3].copy_from_slice(&t.to_le_bytes()[..3]);
            }
        } else {
            let set = &mut c.big[slot(piece)];
            set[1] = set[0];
            let e = &mut set[0];
            e.owner = owner;
            e.len = n as u8;
            e.ntok = toks.len() as u8;
            e.bytes[..n].copy_from_slice(piece);
            e.toks[..toks.len()].copy_from_slice(toks);
        }
    })
}

/// Empty the calling thread's cache (for benchmarks that want cold runs).
pub fn clear_thread() {
    CACHE.with(|c| *c.borrow_mut() = None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_owner() {
        let a = new_owner();
        let b = new_owner();
        let mut out = vec![];
        assert!(!get(a, b"hello", &mut out));
        put(a, b"hello", &[1, 2]);
        assert!(get(a, b"hello", &mut out));
        assert_eq!(out, vec![1, 2]);
        assert!(!get(b, b"hello", &mut out));
        assert!(!get(a, b"hellp", &mut out));
        // every length up to MAX_PIECE, and a one-byte difference at every position
        for n in 1..=MAX_PIECE {
            let p: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37) ^ 0x55).collect();
            put(a, &p, &[n as u32]);
            let mut o = vec![];
            assert!(get(a, &p, &mut o));
            assert_eq!(o, vec![n as u32]);
            for k in 0..n {
                let mut q = p.clone();
                q[k] ^= 1;
                assert!(!get(a, &q, &mut o), "{n} {k}");
            }
        }
        put(a, &[7u8; MAX_PIECE + 1], &[1]);
        assert!(!get(a, &[7u8; MAX_PIECE + 1], &mut out));
        assert_eq!(std::mem::size_of::<Entry>(), 64);
        assert_eq!(std::mem::size_of::<SmallSet>(), 64);
        clear_thread();
        assert!(!get(a, b"hello", &mut out));
    }

    #[test]
    fn compact_entries_keep_ids_exactly_and_refuse_what_does_not_fit() {
        let a = new_owner();
        let mut out = vec![];
        // the largest 24-bit id and ids with every byte set survive the packing
        let toks = [0x00ff_ffff, 0x0001_0203, 0, 0x0080_8080];
        put(a, b"short", &toks);
        assert!(get(a, b"short", &mut out));
        assert_eq!(out, toks);
        // more than SMALL_TOKENS tokens, or an id of 2^24 or more: not kept
        put(a, b"five!", &[1, 2, 3, 4, 5]);
        assert!(!get(a, b"five!", &mut out));
        put(a, b"huge", &[1 << 24]);
        assert!(!get(a, b"huge", &mut out));
        // both sides of the SMALL_PIECE boundary, with the most tokens each table holds
        let p14 = [b'x'; SMALL_PIECE];
        let p15 = [b'x'; SMALL_PIECE + 1];
        put(a, &p14, &[7; SMALL_TOKENS]);
        put(a, &p15, &[9; MAX_TOKENS]);
        out.clear();
        assert!(get(a, &p14, &mut out));
        assert!(get(a, &p15, &mut out));
        let mut want = vec![7; SMALL_TOKENS];
        want.extend([9; MAX_TOKENS]);
        assert_eq!(out, want);
        clear_thread();
    }

    #[test]
    fn two_ways_least_recently_used_is_evicted() {
        // in the compact table (short pieces) and in the one of long pieces
        for pad in [0usize, SMALL_PIECE + 1] {
            let a = new_owner();
            let piece = |k: u32| format!("{}p{k}", "_".repeat(pad)).into_bytes();
            // three pieces of one set
            let mut same_set: Vec<Vec<u8>> = Vec::new();
            let target = slot(&piece(0));
            let mut k = 0u32;
            while same_set.len() < 3 {
                let p = piece(k);
                if slot(&p) == target {
                    same_set.push(p);
                }
                k += 1;
            }
            let mut out = vec![];
            put(a, &same_set[0], &[10]);
            put(a, &same_set[1], &[11]);
            assert!(get(a, &same_set[0], &mut out)); // now most recent
            put(a, &same_set[2], &[12]); // evicts same_set[1]
            assert!(get(a, &same_set[0], &mut out));
            assert!(get(a, &same_set[2], &mut out));
            assert!(!get(a, &same_set[1], &mut out));
            assert_eq!(out, vec![10, 10, 12], "pad {pad}");
            clear_thread();
        }
    }
}
