//! A small per-thread cache of recently merged pieces.
//!
//! Pieces that are not tokens (about 7 % of English or code pieces, a third of
//! multilingual ones) need a byte-pair merge, which costs a dozen hash lookups; the same
//! rare words, identifiers and inflected forms come back again and again. This
//! two-way set-associative cache remembers the tokens of recent pieces (up to
//! [`MAX_PIECE`] bytes and [`MAX_TOKENS`] tokens): [`SETS`] sets of two one-cache-line
//! entries, the most recently used first, so a piece only leaves the cache when two
//! others that map to its set have been used after it (a direct-mapped cache of the same
//! size misses about three times as often on repeated text). It is per thread (no locks,
//! no sharing between threads), keyed by the encoding's unique id, bounded (4 MiB per
//! thread, allocated on first use), and only ever returns the exact result of the merge
//! it stored, so output does not depend on it.
//!
//! Size: 32 K sets (64 K entries, 4 MiB). With 16 K sets the 2 MB multilingual benchmark
//! sample (54 K distinct non-token pieces under o200k) overflowed the cache; doubling it
//! measured, through Python (interleaved processes, 5 rounds, load ~2.5), o200k en +4 %,
//! code +6 %, multilingual +18 %, cl100k en +3 %, code +4 %, multilingual +10 %.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::hugebuf::{HugeBuf, Zeroable};

/// Longest piece that is cached.
pub const MAX_PIECE: usize = 26;
/// Most tokens a cached piece may have.
pub const MAX_TOKENS: usize = 8;
/// Number of sets (of two entries each).
pub const SETS: usize = 32768;

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

thread_local! {
    /// The sets (4 MiB, two huge pages where available), allocated on the first `put`.
    static CACHE: RefCell<Option<HugeBuf<[Entry; 2]>>> = const { RefCell::new(None) };
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

#[inline(always)]
fn slot(piece: &[u8]) -> usize {
    (mix(piece) >> 40) as usize & (SETS - 1)
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
/// a `memcmp` call (`piece.len() <= MAX_PIECE`, `stored.len() == MAX_PIECE`).
#[inline(always)]
fn same(stored: &[u8; MAX_PIECE], piece: &[u8]) -> bool {
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
        let set = &mut c[slot(piece)];
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
    })
}

/// Remember that `piece` encodes to `toks` under encoding `owner` (as the most recently
/// used entry of its set; the least recently used one is evicted).
#[inline]
pub fn put(owner: u32, piece: &[u8], toks: &[u32]) {
    if piece.len() > MAX_PIECE || toks.len() > MAX_TOKENS {
        return;
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let c = c.get_or_insert_with(|| HugeBuf::zeroed(SETS));
        let set = &mut c[slot(piece)];
        set[1] = set[0];
        let e = &mut set[0];
        e.owner = owner;
        e.len = piece.len() as u8;
        e.ntok = toks.len() as u8;
        e.bytes[..piece.len()].copy_from_slice(piece);
        e.toks[..toks.len()].copy_from_slice(toks);
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
        clear_thread();
        assert!(!get(a, b"hello", &mut out));
    }

    #[test]
    fn two_ways_least_recently_used_is_evicted() {
        let a = new_owner();
        // three pieces of one set
        let mut same_set: Vec<Vec<u8>> = Vec::new();
        let target = slot(b"p0");
        let mut k = 0u32;
        while same_set.len() < 3 {
            let p = format!("p{k}").into_bytes();
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
        assert_eq!(out, vec![10, 10, 12]);
        clear_thread();
    }
}
