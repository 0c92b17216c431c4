//! A small per-thread cache of recently merged pieces.
//!
//! Pieces that are not tokens (about 7 % of English or code pieces, a third of
//! multilingual ones) need a byte-pair merge, which costs a dozen hash lookups; the same
//! rare words, identifiers and inflected forms come back again and again. This
//! set-associative cache remembers the tokens of recent pieces (up to
//! [`MAX_PIECE`] bytes): sets of four entries, the most recently used first, so a piece
//! only leaves the cache when four others that map to its set have been used after it (a direct-mapped cache of the same
//! size misses about three times as often on repeated text). It is per thread (no locks,
//! no sharing between threads), keyed by the encoding's unique id, bounded (14 MiB per
//! thread for the first [`FULL_THREADS`] threads that encode, 3.5 MiB for the others,
//! allocated on first use), and only ever returns the exact result of the merge
//! it stored, so output does not depend on it.
//!
//! Layout: three tables, chosen by the piece's length; an entry holds the piece's bytes
//! and then its ids packed in 24 bits. Pieces of at most [`SMALL_PIECE`] bytes (four in
//! five non-token pieces of the multilingual sample, nearly all of English and code)
//! live in compact half-line entries, four to a set of two cache lines (the two most
//! recently used in the first line, where most hits end), and 8 MiB hold 256 K of them;
//! pieces of at most [`MID_PIECE`]
//! bytes in one-line entries (16 K sets of four, 4 MiB; the first two lines are
//! prefetched); pieces of at most [`MAX_PIECE`] bytes in four-line entries (2 K sets of
//! four, 2 MiB; a hit moves to the front by copying only the bytes in use of the entries
//! before it). A piece whose ids do
//! not fit in its table's entry (cl100k's Georgian: 4 letters, 12 bytes, 8 tokens) is
//! stored in the first larger table where they fit, behind a redirect entry in the
//! smaller ones. While fewer than one in four long pieces hit, a long piece is stored
//! only when it is merged for the second time lately (`Tables::admit_long`); pieces
//! behind a redirect bypass the cache while fewer than one in four of them hit
//! (`Tables::skip_over`).
//!
//! Measured against one table of 16 K sets of one-line entries for all pieces
//! (the 2 MB o200k multilingual benchmark sample has 54 K distinct non-token pieces,
//! which overflowed it): pure-Rust interleaved A/B (`bench_core`, load ~2.6) o200k
//! multilingual +37 %, cl100k multilingual +30 %, en and code unchanged within the noise;
//! against one table of 32 K sets of one-line entries (same 4 MiB) multilingual +7–15 %.
//! The long table and the redirects (issue 3, 2026-11-29; `benches/encode_ab.py`, in
//! process against main, interleaved, load 2.7–3.2), whole-corpus stream / warm sample:
//! o200k ka +25 % / +90 %, ta 0 % / +52 %, kn +4 % / +45 %, ru +4 % / +15 %, fi +2 % /
//! +7 %, ja -3 % / -3 %, zh_CN +1 % / -3 %; cl100k ka +11 % /
//! +31 %, kn +6 % / +13 %, ru -3 % / +14 %, fi +3 % / +13 %, ja -3 % / -6 %, zh_CN -2 % /
//! -7 %; all 40 files in one stream, five runs each: o200k -6 to +0 % (median -3 %),
//! cl100k -4 to +11 % (the A/A noise of that run is about ±4 %); en and code within
//! ±6 % (noise); worst cases unchanged but base64 (o200k -2 %, cl100k +13 %).
//! Georgian, Tamil and Kannada words are over 26 bytes and repeat; Japanese and Chinese
//! runs seldom repeat (5 % and 2 % of their bytes).
//!
//! On the whole-corpus stream (every document once, the cache empty at the start;
//! `examples/stream_profile.rs`), the misses are nearly all first sightings: o200k en.txt
//! (20.6 MB) has 274 K non-token pieces of at most 26 bytes, 84 % of them
//! hits, and of the 43.9 K misses 42.1 K are distinct pieces (code.txt: 38.7 K misses,
//! 37.1 K distinct). Capacity and conflict misses are thus about 4 % of the misses, and
//! an admission policy (doorkeeper/TinyLFU) or a larger table cannot win more than that;
//! the merges of all misses cost 12–15 % of the stream's time.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::hugebuf::{HugeBuf, Zeroable};

/// Longest piece that is cached.
pub const MAX_PIECE: usize = 128;
/// Longest piece looked up in the compact (half-line) table.
pub const SMALL_PIECE: usize = 14;
/// Longest piece looked up in the one-line table (longer ones: the four-line table).
pub const MID_PIECE: usize = 26;
/// Number of sets ([`SMALL_WAYS`] half-line entries each) of the compact table.
pub const SMALL_SETS: usize = 65536;
/// Number of sets ([`MID_WAYS`] one-line entries each) of the one-line table.
pub const SETS: usize = 16384;
/// Bits of the filter of long pieces seen lately (32 KiB; see `Tables::admit_long`).
const SEEN_BITS: usize = 1 << 18;
/// Number of sets ([`LONG_WAYS`] four-line entries each) of the table of long pieces.
pub const LONG_SETS: usize = 2048;

/// Payload bytes (piece, then 3 bytes per id) of a compact entry.
const SMALL_DATA: usize = 26;
/// Payload bytes of a one-line entry.
const MID_DATA: usize = 58;
/// Payload bytes of a four-line entry.
const LONG_DATA: usize = 250;

/// `ntok` of an entry that only says "the ids are in the next larger table".
const REDIRECT: u8 = u8::MAX;

/// One entry: the owner (0: empty), the piece's length and bytes, then its ids as 24-bit
/// little-endian integers right after the bytes (`len + 3 * ntok <= P`), or `ntok ==
/// REDIRECT`. `6 + P` is a multiple of 4, so there is no padding.
#[derive(Clone, Copy)]
#[repr(C)]
struct Packed<const P: usize> {
    owner: u32,
    len: u8,
    ntok: u8,
    data: [u8; P],
}

/// `W` entries, the most recently used first, aligned to cache lines.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Set<const P: usize, const W: usize>([Packed<P>; W]);

// SAFETY: integers and integer arrays without padding (6 + P bytes, a multiple of 4 for
// the three sizes used, checked below; two of them fill whole cache lines); all-zero is
// `W` empty entries (owner 0).
unsafe impl<const P: usize, const W: usize> Zeroable for Set<P, W> {}

const _: () = assert!(std::mem::size_of::<Packed<SMALL_DATA>>() == 32);
const _: () = assert!(std::mem::size_of::<Packed<MID_DATA>>() == 64);
const _: () = assert!(std::mem::size_of::<Packed<LONG_DATA>>() == 256);
const _: () = assert!(std::mem::size_of::<Small>() == 32 * SMALL_WAYS);
const _: () = assert!(std::mem::size_of::<Mid>() == 64 * MID_WAYS);
const _: () = assert!(std::mem::size_of::<Long>() == 256 * LONG_WAYS);
const _: () = assert!(SMALL_PIECE < SMALL_DATA && MID_PIECE < MID_DATA && MAX_PIECE < LONG_DATA);

/// Ways of the compact table. With two ways (and 64 K sets) the 2 MB multilingual
/// benchmark sample (47 K distinct non-token pieces of at most [`SMALL_PIECE`] bytes with
/// cl100k, 40 K with o200k) missed 15 % of its short pieces on every warm pass (sets that
/// three or more of them map to thrash under LRU); with four ways and 128 K entries 2.5 %
/// (cl100k) and 1.7 % (o200k); with four ways and 256 K entries 0.5 % and 0.2 %. See
/// `docs/DEVELOPING.md`.
pub const SMALL_WAYS: usize = 4;
type Small = Set<SMALL_DATA, SMALL_WAYS>;
const _: () = assert!(SMALL_WAYS >= 2 && SMALL_WAYS <= 4);
/// Ways of the one-line table (four: 1 647 -> 720 misses per warm pass of the cl100k
/// multilingual sample, at the same 2 MiB; 16 K sets, 4 MiB: 124).
pub const MID_WAYS: usize = 4;
type Mid = Set<MID_DATA, MID_WAYS>;
/// Ways of the four-line table.
pub const LONG_WAYS: usize = 4;
type Long = Set<LONG_DATA, LONG_WAYS>;

/// Threads that get full-size tables ([`TABLE_BYTES`], 14 MiB); the tables of further
/// threads have a quarter of the sets (3.5 MiB), so that a batch on many threads does not
/// take 14 MiB per thread.
pub const FULL_THREADS: usize = 4;

/// Bytes of one thread's full-size tables.
pub const TABLE_BYTES: usize = SMALL_SETS * 32 * SMALL_WAYS
    + SETS * 64 * MID_WAYS
    + LONG_SETS * 256 * LONG_WAYS
    + SEEN_BITS / 8;

/// The word of `Tables::seen` and the bit in it for the hash `h`.
#[inline(always)]
fn seen_bit(h: u64) -> (usize, u64) {
    let b = (h >> 20) as usize & (SEEN_BITS - 1);
    (b / 64, 1u64 << (b % 64))
}

/// Threads holding full-size tables now.
static FULL_LIVE: AtomicUsize = AtomicUsize::new(0);

/// The tables of one thread.
struct Tables {
    /// Whether these are full-size tables (counted in [`FULL_LIVE`]).
    full: bool,
    /// Pieces of at most [`SMALL_PIECE`] bytes (8 MiB at full size).
    small: HugeBuf<Small>,
    /// Pieces of at most [`MID_PIECE`] bytes (4 MiB at full size).
    mid: HugeBuf<Mid>,
    /// Pieces of at most [`MAX_PIECE`] bytes (2 MiB at full size).
    long: HugeBuf<Long>,
    /// Lookups and hits of pieces longer than [`MID_PIECE`] (see [`Tables::admit_long`]).
    long_rate: Rate,
    /// Pieces longer than [`MID_PIECE`] seen lately: one bit per hash class, a Bloom
    /// filter with one hash (see [`Tables::admit_long`]).
    seen: HugeBuf<u64>,
    /// Bits set in `seen` since it was last emptied.
    seen_bits: u32,
    /// Insertions and hits of pieces stored behind a redirect (see [`Tables::skip_over`]).
    over_rate: Rate,
}

/// Tries and hits, halved now and then so that they follow the current text.
#[derive(Default)]
struct Rate {
    tries: u32,
    hits: u32,
}

impl Rate {
    /// Whether fewer than one in four of at least 64 tries hit.
    #[inline(always)]
    fn low(&self) -> bool {
        self.tries >= 64 && self.hits * 4 < self.tries
    }

    #[inline(always)]
    fn count(&mut self, hit: bool) {
        self.tries += 1;
        self.hits += hit as u32;
        if self.tries >= 4096 {
            self.tries /= 2;
            self.hits /= 2;
        }
    }
}

impl Drop for Tables {
    fn drop(&mut self) {
        if self.full {
            FULL_LIVE.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Tables {
    #[inline(always)]
    fn small_set(&mut self, h: u64) -> &mut Small {
        let n = self.small.len();
        &mut self.small[slot(h, n)]
    }

    #[inline(always)]
    fn mid_set(&mut self, h: u64) -> &mut Mid {
        let n = self.mid.len();
        &mut self.mid[slot(h, n)]
    }

    #[inline(always)]
    fn long_set(&mut self, h: u64) -> &mut Long {
        let n = self.long.len();
        &mut self.long[slot(h, n)]
    }

    /// Full-size tables if fewer than [`FULL_THREADS`] threads hold full-size ones, else
    /// tables of a quarter of the sets.
    fn new() -> Self {
        let full = FULL_LIVE.fetch_add(1, Ordering::Relaxed) < FULL_THREADS;
        if !full {
            FULL_LIVE.fetch_sub(1, Ordering::Relaxed);
        }
        Self::with_shift(if full { 0 } else { 2 }, full)
    }

    /// Tables of `SMALL_SETS >> shift`, `SETS >> shift` and `LONG_SETS >> shift` sets;
    /// `full` if they count in [`FULL_LIVE`].
    fn with_shift(shift: u32, full: bool) -> Self {
        Tables {
            full,
            small: HugeBuf::zeroed(SMALL_SETS >> shift),
            mid: HugeBuf::zeroed(SETS >> shift),
            long: HugeBuf::zeroed(LONG_SETS >> shift),
            long_rate: Rate::default(),
            seen: HugeBuf::zeroed(SEEN_BITS / 64),
            seen_bits: 0,
            over_rate: Rate::default(),
        }
    }

    /// Whether `h` is in `seen`.
    #[inline(always)]
    fn was_seen(&self, h: u64) -> bool {
        let (w, bit) = seen_bit(h);
        self.seen[w] & bit != 0
    }

    /// Put `h` into `seen`; whether it was there. `seen` is emptied when an eighth of its
    /// bits are set (so that at most one unseen piece in eight passes for seen).
    #[inline(always)]
    fn mark_seen(&mut self, h: u64) -> bool {
        let (w, bit) = seen_bit(h);
        if self.seen[w] & bit != 0 {
            return true;
        }
        if self.seen_bits as usize >= SEEN_BITS / 8 {
            self.seen.fill(0);
            self.seen_bits = 0;
        }
        self.seen[w] |= bit;
        self.seen_bits += 1;
        false
    }

    /// Whether a piece longer than [`MID_PIECE`] bytes whose hash is `h`, just merged, is
    /// stored. While at least one in four long pieces has been found in the cache lately,
    /// every one is; otherwise (Japanese or Chinese runs of text, which seldom repeat, would
    /// cost an insertion each, more than the merges the rare hits save) only one seen
    /// before (a one-hash Bloom filter of the long pieces merged lately), and lookups skip
    /// the table for pieces never seen. A piece that repeats is thus stored at its second
    /// sighting even while the hit rate is low, and the hits then raise the rate again.
    /// (A hard bypass of all long pieces but one in 16 while the rate was low kept a
    /// repeated text's long pieces out: 500 of the 3 900 long non-token pieces of the
    /// o200k multilingual benchmark sample missed on every warm pass.)
    #[inline(always)]
    fn admit_long(&mut self, h: u64) -> bool {
        let seen = self.mark_seen(h);
        seen || !self.long_rate.low()
    }

    /// Whether a piece whose ids do not fit in its own table (and whose hash is `h`) is
    /// not stored: when fewer than one in four such pieces have been found lately
    /// (random strings such as base64, whose short pieces have many tokens, would cost
    /// two insertions each and never hit), except one in 16 by hash, so that the hit rate
    /// keeps being measured and the bypass ends when such pieces start repeating.
    #[inline(always)]
    fn skip_over(&self, h: u64) -> bool {
        self.over_rate.low() && h >> 60 != 0
    }
}

thread_local! {
    /// The tables (14 MiB, or 3.5 MiB beyond [`FULL_THREADS`] threads; huge pages where
    /// available), allocated on the first `put`.
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

/// Set index for the hash `h` in a table of `sets` sets.
#[inline(always)]
fn slot(h: u64, sets: usize) -> usize {
    (h >> 40) as usize & (sets - 1)
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

impl<const P: usize> Packed<P> {
    /// Whether this entry holds `piece` for `owner`.
    #[inline(always)]
    fn holds(&self, owner: u32, piece: &[u8]) -> bool {
        self.owner == owner && self.len as usize == piece.len() && same(&self.data, piece)
    }

    /// Append the ids to `out` (not for a redirect).
    #[inline(always)]
    fn emit(&self, out: &mut Vec<u32>) {
        let mut at = self.len as usize;
        for _ in 0..self.ntok {
            let t = &self.data[at..at + 3];
            out.push(t[0] as u32 | (t[1] as u32) << 8 | (t[2] as u32) << 16);
            at += 3;
        }
    }

    /// Store `piece` with `toks` (`None`: a redirect); the caller checked that they fit.
    #[inline(always)]
    fn fill(&mut self, owner: u32, piece: &[u8], toks: Option<&[u32]>) {
        let n = piece.len();
        self.owner = owner;
        self.len = n as u8;
        self.data[..n].copy_from_slice(piece);
        match toks {
            None => self.ntok = REDIRECT,
            Some(toks) => {
                self.ntok = toks.len() as u8;
                for (k, &t) in toks.iter().enumerate() {
                    self.data[n + 3 * k..n + 3 * k + 3].copy_from_slice(&t.to_le_bytes()[..3]);
                }
            }
        }
    }
}

/// What a lookup in one table found.
enum Found {
    Hit,
    Miss,
    /// A redirect: the ids are in the next larger table.
    Next,
}

impl<const P: usize, const W: usize> Set<P, W> {
    /// Look `piece` up (a hit becomes the most recently used entry). The compact and
    /// one-line sets (four ways) are probed with AVX-512 where the CPU has it
    /// ([`vector::available`]), the others (and other CPUs) by [`Set::find_portable`];
    /// both give the same result and leave the set in the same state.
    #[inline(always)]
    fn find(&mut self, owner: u32, piece: &[u8], out: &mut Vec<u32>) -> Found {
        #[cfg(target_arch = "x86_64")]
        // chosen by the entry size (32 or 64 bytes), not by the tables' names, so that
        // a change of the table layouts cannot send a set to the wrong probe
        if W == 4 && (6 + P == 32 || 6 + P == 64) && piece.len() <= P && vector::available() {
            let set = (self as *mut Self).cast::<u8>();
            // SAFETY: the CPU has the features `vector` needs (checked above); `set` is
            // this set, `W` = 4 entries of `6 + P` bytes (32 or 64), aligned to 64 bytes
            // (`Set` is `align(64)`), exclusively borrowed; `piece.len() <= P`.
            return unsafe {
                if 6 + P == 32 {
                    vector::find_compact(set, owner, piece, out)
                } else {
                    vector::find_line(set, owner, piece, out)
                }
            };
        }
        self.find_portable(owner, piece, out)
    }

    /// [`Set::find`] without vector instructions.
    #[inline(always)]
    fn find_portable(&mut self, owner: u32, piece: &[u8], out: &mut Vec<u32>) -> Found {
        let mut k = 0;
        while k < W && !self.0[k].holds(owner, piece) {
            k += 1;
        }
        if k == W {
            return Found::Miss;
        }
        let w = if P > 64 {
            // four-line entries: the entries before the hit move back by their bytes in
            // use only (a long piece's entry is mostly empty)
            if k > 0 {
                let e = self.0[k];
                self.shift_back(k);
                self.0[0] = e;
            }
            0
        } else {
            // the hit moves to the front, the entries before it one place back (a
            // fixed-size copy per position: `rotate_right` would call `memmove`)
            let e = self.0[k];
            match k {
                0 => {}
                1 => self.0[1] = self.0[0],
                2 => self.0.copy_within(0..2, 1),
                3 => self.0.copy_within(0..3, 1),
                _ => self.0.copy_within(0..k, 1),
            }
            self.0[0] = e;
            0
        };
        let e = &self.0[w];
        if e.ntok == REDIRECT {
            return Found::Next;
        }
        e.emit(out);
        Found::Hit
    }

    /// Move entries `0..k` one way back (over entry `k`), copying only the bytes in use.
    #[inline(always)]
    fn shift_back(&mut self, k: usize) {
        for j in (1..=k).rev() {
            let (lo, hi) = self.0.split_at_mut(j);
            let (a, b) = (&lo[j - 1], &mut hi[0]);
            let used = a.len as usize
                + if a.ntok == REDIRECT {
                    0
                } else {
                    3 * a.ntok as usize
                };
            b.owner = a.owner;
            b.len = a.len;
            b.ntok = a.ntok;
            b.data[..used].copy_from_slice(&a.data[..used]);
        }
    }

    /// Store `piece` as the most recently used entry (over its own older entry if there
    /// is one, else over the least recently used one).
    #[inline(always)]
    fn insert(&mut self, owner: u32, piece: &[u8], toks: Option<&[u32]>) {
        if !self.0[0].holds(owner, piece) {
            if P > 64 {
                self.shift_back(W - 1);
            } else {
                self.0.copy_within(0..W - 1, 1);
            }
        }
        self.0[0].fill(owner, piece, toks);
    }
}

/// Whether the CPU has the AVX-512 subsets (F, BW, VL, VBMI) of this module's vector
/// probe and of the deferred pieces' vector moves (checked once per process).
#[inline(always)]
pub(crate) fn vector_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return vector::available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The probe of the four-way compact and one-line sets with AVX-512 (F, BW, VL, VBMI):
/// the piece's key image (owner, length, bytes at their offsets in an entry) is built
/// once, with a masked load of the piece's bytes, and compared with all four entries at
/// once under a byte mask of the key's positions; the hit way comes from the compare
/// masks (no loop exit to mispredict), the hit moves to the front by a fixed
/// permutation or masked stores chosen by its way, and its 24-bit ids are widened to
/// `u32` by one `vpermb` and stored with one unaligned store into reserved capacity.
#[cfg(target_arch = "x86_64")]
mod vector {
    use super::{Found, REDIRECT};
    use std::arch::x86_64::*;
    use std::sync::atomic::{AtomicU8, Ordering};

    /// Whether the CPU has AVX-512 F, BW, VL and VBMI (checked once per process).
    #[inline(always)]
    pub(super) fn available() -> bool {
        static STATE: AtomicU8 = AtomicU8::new(0);
        match STATE.load(Ordering::Relaxed) {
            1 => false,
            2 => true,
            _ => {
                let ok = std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512vbmi");
                STATE.store(1 + ok as u8, Ordering::Relaxed);
                ok
            }
        }
    }

    #[cfg(test)]
    thread_local! {
        /// Vector probes on this thread (for the test that the path is taken).
        pub(super) static PROBES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// Byte `b` of lane `l` of a 32-bit id: the index of that byte among an entry's
    /// ids (the fourth byte is zeroed by the mask `0x7777...`).
    const fn id_bytes<const N: usize>() -> [u8; N] {
        let mut a = [0u8; N];
        let mut i = 0;
        while i < N {
            a[i] = (3 * (i / 4) + i % 4) as u8;
            i += 1;
        }
        a
    }
    static ID_BYTES: [u8; 64] = id_bytes::<64>();

    /// The compact set's qwords (entry `j`: qwords `4j..4j+4` of the two lines) after a
    /// hit in way `k` moves to the front: first line, second line.
    const fn front(k: usize) -> [[i64; 8]; 2] {
        let mut order = [0usize; 4];
        order[0] = k;
        let mut j = 0;
        let mut at = 1;
        while j < 4 {
            if j != k {
                order[at] = j;
                at += 1;
            }
            j += 1;
        }
        let mut q = [[0i64; 8]; 2];
        let mut i = 0;
        while i < 16 {
            q[i / 8][i % 8] = (4 * order[i / 4] + i % 4) as i64;
            i += 1;
        }
        q
    }
    #[repr(C, align(64))]
    struct Fronts([[[i64; 8]; 2]; 4]);
    static FRONT: Fronts = Fronts([front(0), front(1), front(2), front(3)]);

    /// Append the ids of the entry at the start of `e` (its `6 + n` first bytes the
    /// header and the piece, then `ntok` ids of 3 bytes) to `out`: a one-line entry
    /// (`ntok <= 19`: more than 16 ids, only from pieces of at most 9 bytes behind a
    /// redirect, take a scalar loop), or a compact entry in the first half of its line
    /// (`ntok <= 8`; the lanes past its ids read the next entry's bytes, and are not
    /// kept).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
    fn emit_line(e: __m512i, n: usize, ntok: usize, out: &mut Vec<u32>) {
        if ntok > 16 {
            return emit_many(e, n, ntok, out);
        }
        // SAFETY: ID_BYTES has 64 bytes: an unaligned 64-byte load of them
        let base = unsafe { _mm512_loadu_si512(ID_BYTES.as_ptr().cast()) };
        let idx = _mm512_add_epi8(base, _mm512_set1_epi8((6 + n) as i8));
        let ids = _mm512_maskz_permutexvar_epi8(0x7777_7777_7777_7777, idx, e);
        out.reserve(16);
        let len = out.len();
        // SAFETY: `reserve(16)` left room for 16 more `u32`s after `len`: the store writes
        // exactly those 64 bytes; the first `ntok.min(16)` of them are the ids (at most 16
        // here), initialised by the store.
        unsafe {
            _mm512_storeu_si512(out.as_mut_ptr().add(len).cast(), ids);
            out.set_len(len + ntok.min(16));
        }
    }

    /// [`emit_line`] of more than 16 ids (out of line: rare).
    #[cold]
    #[inline(never)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
    fn emit_many(e: __m512i, n: usize, ntok: usize, out: &mut Vec<u32>) {
        let mut b = [0u8; 64];
        // SAFETY: an unaligned 64-byte store into the 64-byte array `b`
        unsafe { _mm512_storeu_si512(b.as_mut_ptr().cast(), e) };
        for t in b[6 + n..].chunks_exact(3).take(ntok) {
            out.push(t[0] as u32 | (t[1] as u32) << 8 | (t[2] as u32) << 16);
        }
    }

    /// The key image of `piece` for `owner`: bytes 0-3 the owner, byte 4 the length,
    /// bytes `6..6 + n` the piece, the rest 0 (`n <= 26` for the 32-byte image; the
    /// 64-byte one is two copies); and the byte mask of the positions to compare (all
    /// but the id count, byte 5).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
    fn key(owner: u32, piece: &[u8], bytes: u64) -> (__m512i, u64) {
        let n = piece.len();
        debug_assert!(n <= 58);
        let m = ((1u64 << n) - 1) << 6;
        // SAFETY: a masked load: only the bytes whose mask bits are set are read, bytes
        // 6..6 + n of the image, i.e. `piece[0..n]` (masked-off bytes are never accessed
        // and cannot fault, whatever the address: AVX-512 fault suppression); the
        // pointer is formed with `wrapping_sub` and only the piece's bytes are read.
        let p = piece.as_ptr().wrapping_sub(6).cast::<i8>();
        let hdr = owner as i64 | (n as i64) << 32;
        let v = if bytes == 32 {
            let b = unsafe { _mm256_maskz_loadu_epi8(m as u32, p) };
            _mm512_broadcast_i64x4(_mm256_or_si256(b, _mm256_set_epi64x(0, 0, 0, hdr)))
        } else {
            let b = unsafe { _mm512_maskz_loadu_epi8(m, p) };
            _mm512_or_si512(b, _mm512_set_epi64(0, 0, 0, 0, 0, 0, 0, hdr))
        };
        (v, m | 0x1f)
    }

    /// [`super::Set::find`] of a compact set (four 32-byte entries).
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW, VL and VBMI; `set` points to four 32-byte entries
    /// (`Packed<26>`), aligned to 64 bytes, not aliased during the call; `piece.len() <= 26`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
    pub(super) unsafe fn find_compact(
        set: *mut u8,
        owner: u32,
        piece: &[u8],
        out: &mut Vec<u32>,
    ) -> Found {
        #[cfg(test)]
        PROBES.with(|c| c.set(c.get() + 1));
        let n = piece.len();
        let (key, m) = key(owner, piece, 32);
        let m = m | m << 32;
        let p = set.cast::<__m512i>();
        // SAFETY: the set's two aligned lines (the caller's contract)
        let (z0, z1) = unsafe { (_mm512_load_si512(p), _mm512_load_si512(p.add(1))) };
        let d0 = _mm512_mask_cmpneq_epi8_mask(m, z0, key);
        let d1 = _mm512_mask_cmpneq_epi8_mask(m, z1, key);
        let hits = (d0 as u32 == 0) as u32
            | ((d0 >> 32 == 0) as u32) << 1
            | ((d1 as u32 == 0) as u32) << 2
            | ((d1 >> 32 == 0) as u32) << 3;
        if hits == 0 {
            return Found::Miss;
        }
        let k = hits.trailing_zeros() as usize;
        // the hit to the front, the entries before it one place back: a fixed
        // permutation of the set's qwords by the hit way
        let f = &FRONT.0[k];
        // SAFETY: `f` is two aligned arrays of 8 qwords
        let (i0, i1) = unsafe {
            (
                _mm512_load_si512(f[0].as_ptr().cast()),
                _mm512_load_si512(f[1].as_ptr().cast()),
            )
        };
        let y0 = _mm512_permutex2var_epi64(z0, i0, z1);
        let y1 = _mm512_permutex2var_epi64(z0, i1, z1);
        // lines that change: the first unless k = 0, the second if k >= 2
        let (s0, s1) = (
            0u8.wrapping_sub((k > 0) as u8),
            0u8.wrapping_sub((k > 1) as u8),
        );
        // SAFETY: the set's two aligned lines; masked-off stores write nothing
        unsafe {
            _mm512_mask_store_epi64(p.cast(), s0, y0);
            _mm512_mask_store_epi64(p.add(1).cast(), s1, y1);
        }
        let e = _mm512_castsi512_si256(y0);
        let ntok = _mm256_extract_epi8::<5>(e) as u8;
        if ntok == REDIRECT {
            return Found::Next;
        }
        emit_line(y0, n, ntok as usize, out);
        Found::Hit
    }

    /// [`super::Set::find`] of a one-line set (four 64-byte entries).
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW, VL and VBMI; `set` points to four 64-byte entries
    /// (`Packed<58>`), aligned to 64 bytes, not aliased during the call; `piece.len() <= 58`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
    pub(super) unsafe fn find_line(
        set: *mut u8,
        owner: u32,
        piece: &[u8],
        out: &mut Vec<u32>,
    ) -> Found {
        #[cfg(test)]
        PROBES.with(|c| c.set(c.get() + 1));
        let n = piece.len();
        let (key, m) = key(owner, piece, 64);
        let p = set.cast::<__m512i>();
        // SAFETY: the set's four aligned lines (the caller's contract)
        let z = unsafe { [0, 1, 2, 3].map(|j| _mm512_load_si512(p.add(j))) };
        let mut hits = 0u32;
        for (j, zj) in z.iter().enumerate() {
            hits |= ((_mm512_mask_cmpneq_epi8_mask(m, *zj, key) == 0) as u32) << j;
        }
        if hits == 0 {
            return Found::Miss;
        }
        let k = hits.trailing_zeros() as usize;
        // SAFETY: line `k < 4` of the set, loaded before the stores below
        let e = unsafe { _mm512_load_si512(p.add(k)) };
        // the hit to the front, lines `0..k` one place back (masked-off stores write
        // nothing)
        let at = |j: usize| 0u8.wrapping_sub((j <= k) as u8);
        // SAFETY: the set's aligned lines 0..4
        unsafe {
            _mm512_mask_store_epi64(p.cast(), at(1), e);
            _mm512_mask_store_epi64(p.add(1).cast(), at(1), z[0]);
            _mm512_mask_store_epi64(p.add(2).cast(), at(2), z[1]);
            _mm512_mask_store_epi64(p.add(3).cast(), at(3), z[2]);
        }
        let ntok = _mm256_extract_epi8::<5>(_mm512_castsi512_si256(e)) as u8;
        if ntok == REDIRECT {
            return Found::Next;
        }
        emit_line(e, n, ntok as usize, out);
        Found::Hit
    }
}

/// Append the cached tokens of `piece` for encoding `owner` to `out`; false if absent.
#[inline]
pub fn get(owner: u32, piece: &[u8], out: &mut Vec<u32>) -> bool {
    let n = piece.len();
    if n > MAX_PIECE {
        return false;
    }
    with_thread(|t| t.get_hashed(owner, piece, mix(piece), out))
}

/// The calling thread's cache, for a run of operations ([`with_thread`]): one access to
/// the thread-local instead of one per piece (in a dynamically loaded library each is a
/// `__tls_get_addr` call).
pub struct ThreadCache<'a>(&'a RefCell<Option<Tables>>);

/// Run `f` with the calling thread's cache.
#[inline]
pub fn with_thread<R>(f: impl FnOnce(&ThreadCache<'_>) -> R) -> R {
    CACHE.with(|c| f(&ThreadCache(c)))
}

impl ThreadCache<'_> {
    /// The hash [`ThreadCache::get_hashed`] and [`ThreadCache::put_hashed`] take for
    /// `piece` (of at most [`MID_PIECE`] bytes); the set it selects is fetched into the
    /// cache, so that a lookup a few pieces later does not wait for it.
    #[inline(always)]
    pub fn prefetch(&self, piece: &[u8]) -> u64 {
        let h = mix(piece);
        if let Some(c) = self.0.borrow().as_ref() {
            if piece.len() <= SMALL_PIECE {
                let s: *const Small = &c.small[slot(h, c.small.len())];
                crate::util::prefetch(s);
                if SMALL_WAYS > 2 {
                    crate::util::prefetch(s.cast::<u8>().wrapping_add(64));
                }
            } else {
                // a one-line entry per line: the set's two lines
                let s: *const Mid = &c.mid[slot(h, c.mid.len())];
                crate::util::prefetch(s);
                crate::util::prefetch(s.cast::<u8>().wrapping_add(64));
            }
        }
        h
    }

    /// [`get`] with the piece's hash `h` ([`mix`], e.g. from [`ThreadCache::prefetch`]).
    #[inline(always)]
    pub fn get_hashed(&self, owner: u32, piece: &[u8], h: u64, out: &mut Vec<u32>) -> bool {
        let n = piece.len();
        if n > MAX_PIECE {
            return false;
        }
        debug_assert!(h == mix(piece));
        let mut c = self.0.borrow_mut();
        let Some(c) = c.as_mut() else {
            return false;
        };
        if n > MID_PIECE {
            return get_long(c, owner, piece, h, out);
        }
        let mid = if n <= SMALL_PIECE {
            match c.small_set(h).find(owner, piece, out) {
                Found::Hit => return true,
                Found::Miss => return false,
                Found::Next => c.mid_set(h).find(owner, piece, out),
            }
        } else {
            match c.mid_set(h).find(owner, piece, out) {
                Found::Hit => return true,
                Found::Miss => return false,
                Found::Next => Found::Next,
            }
        };
        // behind a redirect: the ids are in the mid table or the long one (a miss is
        // counted by the `put` that follows it)
        let hit = match mid {
            Found::Hit => true,
            Found::Miss => false,
            Found::Next => matches!(c.long_set(h).find(owner, piece, out), Found::Hit),
        };
        if hit {
            c.over_rate.count(true);
        }
        hit
    }

    /// [`put`] with the piece's hash `h` ([`mix`], e.g. from [`ThreadCache::prefetch`]).
    #[inline]
    pub fn put_hashed(&self, owner: u32, piece: &[u8], h: u64, toks: &[u32]) {
        let n = piece.len();
        let need = n + 3 * toks.len();
        if n > MAX_PIECE || need > LONG_DATA || toks.iter().any(|&t| t >= 1 << 24) {
            return;
        }
        debug_assert!(h == mix(piece));
        let mut c = self.0.borrow_mut();
        let c = c.get_or_insert_with(Tables::new);
        if n > MID_PIECE && !c.admit_long(h) {
            return;
        }
        let over = if n <= SMALL_PIECE {
            need > SMALL_DATA
        } else {
            n <= MID_PIECE && need > MID_DATA
        };
        if over {
            if c.skip_over(h) {
                return;
            }
            c.over_rate.count(false);
        }
        if n <= SMALL_PIECE {
            let fits = need <= SMALL_DATA;
            c.small_set(h).insert(owner, piece, fits.then_some(toks));
            if fits {
                return;
            }
        }
        if n <= MID_PIECE {
            let fits = need <= MID_DATA;
            c.mid_set(h).insert(owner, piece, fits.then_some(toks));
            if fits {
                return;
            }
        }
        c.long_set(h).insert(owner, piece, Some(toks));
    }
}

/// [`get`] for a piece longer than [`MID_PIECE`] bytes (out of line: rare).
#[inline(never)]
fn get_long(c: &mut Tables, owner: u32, piece: &[u8], h: u64, out: &mut Vec<u32>) -> bool {
    if c.long_rate.low() && !c.was_seen(h) {
        // never merged lately, so not stored (see `Tables::admit_long`)
        c.long_rate.count(false);
        return false;
    }
    let hit = matches!(c.long_set(h).find(owner, piece, out), Found::Hit);
    c.long_rate.count(hit);
    hit
}

/// Remember that `piece` encodes to `toks` under encoding `owner`, as the most recently
/// used entry of its set (the least recently used one is evicted). The entry goes to the
/// table of the piece's length if the piece and its ids (3 bytes each) fit there, else
/// to the first larger table where they fit, with a redirect left in the smaller ones.
/// Not kept: pieces longer than [`MAX_PIECE`], ids of `2^24` or more, pieces that fit
/// nowhere, and long pieces while long pieces rarely repeat (see [`get`]).
#[inline]
pub fn put(owner: u32, piece: &[u8], toks: &[u32]) {
    let n = piece.len();
    if n > MAX_PIECE {
        return;
    }
    with_thread(|t| t.put_hashed(owner, piece, mix(piece), toks))
}

/// Empty the calling thread's cache (for benchmarks that want cold runs).
pub fn clear_thread() {
    CACHE.with(|c| *c.borrow_mut() = None);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a CPU with AVX-512 F/BW/VL/VBMI (this project's benchmark machine), lookups in
    /// the compact and one-line tables must take the vector probe: fails if the dispatch
    /// silently falls back to the portable loop.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_probe_is_taken() {
        let listed = crate::testutil::cpu_lists(&["avx512f", "avx512bw", "avx512vl", "avx512vbmi"]);
        if !listed {
            eprintln!("no AVX-512 VBMI: the vector probe is not tested on this machine");
            return;
        }
        assert!(
            vector::available(),
            "the CPU lists AVX-512 VBMI but the vector probe is off"
        );
        clear_thread();
        let a = new_owner();
        let mut out = vec![];
        // a compact-table piece, a one-line one, and a short piece behind a redirect
        // (19 ids: the compact entry redirects to the one-line table)
        let many: Vec<u32> = (0..19).collect();
        for (piece, toks) in [
            (&b"vector"[..], &[1u32, 2][..]),
            (&[b'm'; 20][..], &[3][..]),
            (&b"r"[..], &many[..]),
        ] {
            put(a, piece, toks);
            let before = vector::PROBES.with(|c| c.get());
            out.clear();
            assert!(get(a, piece, &mut out));
            assert_eq!(out, toks);
            let probes = vector::PROBES.with(|c| c.get()) - before;
            assert_eq!(probes, if piece.len() == 1 { 2 } else { 1 }, "{piece:?}");
        }
        clear_thread();
    }

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
        // every length up to MAX_PIECE, and a one-byte difference at every position (a
        // fresh cache for each length: the misses would make long pieces bypass it)
        for n in 1..=MAX_PIECE {
            clear_thread();
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
        clear_thread();
        assert!(!get(a, b"hello", &mut out));
    }

    #[test]
    fn ids_are_kept_exactly_and_what_does_not_fit_is_refused() {
        let a = new_owner();
        let mut out = vec![];
        // the largest 24-bit id and ids with every byte set survive the packing
        let toks = [0x00ff_ffff, 0x0001_0203, 0, 0x0080_8080];
        put(a, b"short", &toks);
        assert!(get(a, b"short", &mut out));
        assert_eq!(out, toks);
        // an id of 2^24 or more: not kept
        put(a, b"huge", &[1 << 24]);
        assert!(!get(a, b"huge", &mut out));
        // too many ids for the largest table: not kept
        let p = [b'y'; MAX_PIECE];
        let most = (LONG_DATA - MAX_PIECE) / 3;
        put(a, &p, &vec![3; most + 1]);
        assert!(!get(a, &p, &mut out));
        put(a, &p, &vec![3; most]);
        out.clear();
        assert!(get(a, &p, &mut out));
        assert_eq!(out, vec![3; most]);
        // every length, with as many ids as fit in each table and one more (which goes
        // to a larger table behind a redirect)
        for n in 1..=MAX_PIECE {
            let p: Vec<u8> = (0..n).map(|i| (i * 7 + n) as u8).collect();
            for data in [SMALL_DATA, MID_DATA, LONG_DATA] {
                for k in [
                    (data.saturating_sub(n)) / 3,
                    (data.saturating_sub(n)) / 3 + 1,
                ] {
                    if n + 3 * k > LONG_DATA {
                        continue;
                    }
                    let toks: Vec<u32> = (0..k as u32).map(|i| i * 0x1_0101 + n as u32).collect();
                    put(a, &p, &toks);
                    out.clear();
                    assert!(get(a, &p, &mut out), "{n} {k}");
                    assert_eq!(out, toks, "{n} {k}");
                }
            }
        }
        clear_thread();
    }

    #[test]
    fn threads_beyond_the_first_four_get_quarter_tables() {
        // other tests' threads may hold full-size tables too: of FULL_THREADS + 1 tables
        // alive at once, at least one is small
        let ts: Vec<Tables> = (0..=FULL_THREADS).map(|_| Tables::new()).collect();
        assert!(ts.iter().any(|t| !t.full));
        for t in &ts {
            let shift = if t.full { 0 } else { 2 };
            assert_eq!(t.small.len(), SMALL_SETS >> shift);
            assert_eq!(t.mid.len(), SETS >> shift);
            assert_eq!(t.long.len(), LONG_SETS >> shift);
        }
        let full = ts.iter().filter(|t| t.full).count();
        assert!(full <= FULL_THREADS);
        drop(ts);
        // dropped full tables are given back
        assert!(FULL_LIVE.load(Ordering::Relaxed) <= FULL_THREADS);
        assert_eq!(
            TABLE_BYTES,
            std::mem::size_of::<Small>() * SMALL_SETS
                + std::mem::size_of::<Mid>() * SETS
                + std::mem::size_of::<Long>() * LONG_SETS
                + SEEN_BITS / 8
        );
    }

    #[test]
    fn quarter_tables_return_exactly_what_was_stored() {
        CACHE.with(|c| *c.borrow_mut() = Some(Tables::with_shift(2, false)));
        let a = new_owner();
        let piece = |k: usize| format!("{}{k}", "q".repeat(k % 90)).into_bytes();
        for k in 0..3000 {
            put(a, &piece(k), &[k as u32, 7]);
        }
        let mut hits = 0;
        for k in 0..3000 {
            let mut out = vec![];
            if get(a, &piece(k), &mut out) {
                assert_eq!(out, [k as u32, 7], "{k}");
                hits += 1;
            }
        }
        // 3000 pieces in 16 K + 4 K + 512 four-way sets: nearly all are still there
        assert!(hits > 2500, "{hits}");
        CACHE.with(|c| {
            assert!(c
                .borrow()
                .as_ref()
                .is_some_and(|t| !t.full && t.small.len() == SMALL_SETS / 4))
        });
        clear_thread();
    }

    #[test]
    fn pieces_share_a_set_of_four_in_lru_order() {
        // in the compact table, the one-line one and the four-line one
        for (pad, sets) in [
            (0, SMALL_SETS),
            (SMALL_PIECE + 1, SETS),
            (MID_PIECE + 1, LONG_SETS),
        ] {
            four_ways_lru(pad, sets);
        }
    }

    /// `n` pieces of `pad + 2..` bytes that map to one set of a table of `sets` sets.
    fn same_set(pad: usize, sets: usize, n: usize) -> Vec<Vec<u8>> {
        let mut by_set: std::collections::HashMap<usize, Vec<Vec<u8>>> = Default::default();
        let mut k = 0u32;
        loop {
            let p = format!("{}w{k}", "_".repeat(pad)).into_bytes();
            k += 1;
            let g = by_set.entry(slot(mix(&p), sets)).or_default();
            g.push(p);
            if g.len() == n {
                return g.clone();
            }
        }
    }

    fn four_ways_lru(pad: usize, sets: usize) {
        assert_eq!((SMALL_WAYS, MID_WAYS, LONG_WAYS), (4, 4, 4));
        // six pieces that map to the same set
        let group = same_set(pad, sets, SMALL_WAYS + 2);
        clear_thread();
        let a = new_owner();
        let mut out = vec![];
        let ids = |i: usize| [i as u32, 1000 + i as u32];
        let hit = |i: usize, out: &mut Vec<u32>| {
            out.clear();
            let h = get(a, &group[i], out);
            assert!(!h || out[..] == ids(i), "{i}: {out:?}");
            h
        };
        for (i, p) in group.iter().enumerate().take(SMALL_WAYS) {
            put(a, p, &ids(i));
        }
        for i in 0..SMALL_WAYS {
            assert!(hit(i, &mut out), "{i}");
        }
        // recency now 3, 2, 1, 0 (most recent first); a hit on 0 moves it to the front,
        // so the next insertion evicts 1
        assert!(hit(0, &mut out));
        put(a, &group[SMALL_WAYS], &ids(SMALL_WAYS));
        assert!(!hit(1, &mut out));
        for i in [0, 2, 3, SMALL_WAYS] {
            assert!(hit(i, &mut out), "{i}");
        }
        // recency 4, 3, 2, 0: the next one evicts 0
        put(a, &group[SMALL_WAYS + 1], &ids(SMALL_WAYS + 1));

        assert!(!hit(0, &mut out));
        for i in [2, 3, SMALL_WAYS, SMALL_WAYS + 1] {
            assert!(hit(i, &mut out), "{i}");
        }
        // storing a piece again replaces its entry in place (no duplicate)
        put(a, &group[2], &ids(2));
        put(a, &group[2], &ids(2));
        for i in [2, 3, SMALL_WAYS, SMALL_WAYS + 1] {
            assert!(hit(i, &mut out), "{i}");
        }
        clear_thread();
    }

    #[test]
    fn long_pieces_are_stored_at_their_second_sighting_while_they_do_not_repeat() {
        clear_thread();
        let a = new_owner();
        let mut out = vec![];
        let piece = |k: u32| format!("{k:_<40}").into_bytes();
        // 200 distinct long pieces, each looked up and stored once: all miss
        for k in 0..200 {
            assert!(!get(a, &piece(k), &mut out));
            put(a, &piece(k), &[k]);
        }
        // now a new piece is stored only when it is merged a second time
        for k in 1000..1010 {
            put(a, &piece(k), &[k]);
            assert!(!get(a, &piece(k), &mut out), "{k}");
            put(a, &piece(k), &[k]);
            out.clear();
            assert!(get(a, &piece(k), &mut out), "{k}");
            assert_eq!(out, [k]);
        }
        // the pieces merged before are stored at once
        put(a, &piece(7), &[7]);
        assert!(get(a, &piece(7), &mut out));
        // once long pieces repeat, every one is stored again
        for _ in 0..40 {
            for k in 1000..1010 {
                assert!(get(a, &piece(k), &mut out));
            }
        }
        put(a, &piece(2000), &[2000]);
        assert!(get(a, &piece(2000), &mut out));
        // and pieces longer than `MAX_PIECE` never
        let huge = vec![b'h'; MAX_PIECE + 1];
        put(a, &huge, &[1]);
        put(a, &huge, &[1]);
        assert!(!get(a, &huge, &mut out));
        // short pieces are never held back
        put(a, b"short", &[1]);
        assert!(get(a, b"short", &mut out));
        clear_thread();
    }

    #[test]
    fn the_filter_of_seen_long_pieces_is_emptied_when_an_eighth_is_set() {
        let mut t = Tables::new();
        let h = |k: u64| k << 20;
        assert!(!t.mark_seen(h(0)));
        assert!(t.mark_seen(h(0)) && t.was_seen(h(0)));
        for k in 1..(SEEN_BITS / 8) as u64 {
            assert!(!t.mark_seen(h(k)), "{k}");
        }
        assert!(t.was_seen(h(0)) && t.was_seen(h(100)));
        // the next new hash empties it first
        assert!(!t.mark_seen(h(SEEN_BITS as u64 - 1)));
        assert!(!t.was_seen(h(0)) && !t.was_seen(h(100)));
        assert!(t.was_seen(h(SEEN_BITS as u64 - 1)));
        assert_eq!(t.seen_bits, 1);
    }

    #[test]
    fn pieces_behind_redirects_are_bypassed_while_they_do_not_repeat() {
        let a = new_owner();
        let mut out = vec![];
        // short pieces with more ids than their table holds (as base64 has them)
        let piece = |k: u32| format!("b{k:07}").into_bytes();
        let many = [1u32; 9];
        for k in 0..200 {
            assert!(!get(a, &piece(k), &mut out));
            put(a, &piece(k), &many);
        }
        let class = |k: u32| mix(&piece(k)) >> 60 == 0;
        for k in 200..400 {
            put(a, &piece(k), &many);
        }
        assert!((200..400).any(class));
        for k in 200..400 {
            assert_eq!(get(a, &piece(k), &mut out), class(k), "{k}");
        }
        // pieces whose ids fit their own table are never bypassed
        put(a, b"b0000001", &[5]);
        out.clear();
        assert!(get(a, b"b0000001", &mut out));
        assert_eq!(out, [5]);
        // once such pieces repeat, the bypass ends
        let stored: Vec<u32> = (200..400).filter(|&k| class(k)).collect();
        for _ in 0..40 {
            for &k in &stored {
                assert!(get(a, &piece(k), &mut out));
            }
        }
        put(a, &piece(1000), &many);
        assert!(get(a, &piece(1000), &mut out));
        clear_thread();
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// An entry of a test set: `None` empty (owner 0), else (owner 1 or 2, piece from
    /// [`pool`], id count, or a redirect when the count is 0 or does not fit).
    type Way = Option<(u32, usize, usize)>;

    /// Pieces that differ in one byte, in length, or only in bytes past the shorter one.
    fn pool(max: usize) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = vec![];
        for n in [1, 2, 3, 4, 5, 7, 8, 9, 13, max.min(14), max] {
            let p: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            let mut q = p.clone();
            q[n - 1] ^= 0x80;
            let mut r = p.clone();
            r[0] = 0xe3;
            v.extend([p, q, r]);
        }
        v
    }

    /// A set of `W` ways holding `ways`, the bytes past each entry's ids filled with
    /// `junk` (an entry's unused bytes are whatever an earlier occupant left).
    fn build<const P: usize>(ways: &[Way], junk: u8) -> Set<P, 4> {
        let pool = pool(P.min(MID_PIECE));
        let e = Packed::<P> {
            owner: 0,
            len: 0,
            ntok: 0,
            data: [junk; P],
        };
        let mut s = Set([e; 4]);
        for (k, w) in ways.iter().enumerate() {
            if let Some((owner, i, t)) = *w {
                let piece = &pool[i % pool.len()];
                let room = (P - piece.len()) / 3;
                let toks: Vec<u32> = (0..t.min(room) as u32)
                    .map(|j| j * 0x0102_0305 % (1 << 24))
                    .collect();
                s.0[k].fill(owner, piece, (t != 0 && t <= room).then_some(&toks[..]));
            } else {
                s.0[k].owner = 0;
                s.0[k].len = junk % 8;
            }
        }
        s
    }

    fn image<const P: usize>(s: &Set<P, 4>) -> Vec<(u32, u8, u8, Vec<u8>)> {
        s.0.iter()
            .map(|e| (e.owner, e.len, e.ntok, e.data.to_vec()))
            .collect()
    }

    fn found(f: Found) -> u8 {
        match f {
            Found::Hit => 0,
            Found::Miss => 1,
            Found::Next => 2,
        }
    }

    /// The vector probe ([`Set::find`] on this CPU) and [`Set::find_portable`] give the
    /// same answer, the same ids and the same set afterwards.
    fn same_as_portable<const P: usize>(
        ways: &[Way],
        junk: u8,
        owner: u32,
        probe: usize,
    ) -> Result<(), TestCaseError> {
        let pool = pool(P.min(MID_PIECE));
        let piece = &pool[probe % pool.len()];
        // the probed piece at the start of its own allocation (the masked load's
        // address is 6 bytes before it)
        let piece = piece.clone().into_boxed_slice();
        let (mut a, mut b) = (build::<P>(ways, junk), build::<P>(ways, junk));
        let (mut oa, mut ob) = (vec![9u32; 3], vec![9u32; 3]);
        let before = vector::PROBES.with(|c| c.get());
        let fa = found(a.find(owner, &piece, &mut oa));
        if vector::available() {
            prop_assert_eq!(vector::PROBES.with(|c| c.get()), before + 1);
        }
        let fb = found(b.find_portable(owner, &piece, &mut ob));
        prop_assert_eq!(fa, fb);
        prop_assert_eq!(oa, ob);
        prop_assert_eq!(image(&a), image(&b));
        Ok(())
    }

    fn way() -> impl Strategy<Value = Way> {
        proptest::option::of((1u32..3, 0usize..40, 0usize..22))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn vector_probe_matches_portable(
            ways in proptest::collection::vec(way(), 4),
            junk: u8,
            owner in 1u32..3,
            probe in 0usize..40,
            hit in proptest::option::of(0usize..4),
        ) {
            // often probe a piece that is in the set
            let probe = match hit.and_then(|k| ways[k]) {
                Some((o, i, _)) if owner == o => i,
                _ => probe,
            };
            same_as_portable::<SMALL_DATA>(&ways, junk, owner, probe)?;
            same_as_portable::<MID_DATA>(&ways, junk, owner, probe)?;
        }
    }

    proptest! {
        /// Random puts and gets against a map (each piece has one list of ids, as in the
        /// encoder): a hit always returns exactly the piece's ids, and a piece of at most
        /// [`MID_PIECE`] bytes whose ids fit its own table is found right after it is
        /// stored (long pieces and the others may be bypassed).
        #[test]
        fn hits_are_exact(
            ops in proptest::collection::vec(
                (0usize..40, 1usize..140, proptest::collection::vec(0u32..1 << 25, 0..90)),
                1..300,
            ),
        ) {
            clear_thread();
            let owner = new_owner();
            let mut model: HashMap<Vec<u8>, Vec<u32>> = HashMap::new();
            for (key, len, toks) in ops {
                let lookup_only = toks.len() % 3 == 0;
                // few distinct pieces, so that gets hit; lengths across all tables
                let piece: Vec<u8> = (0..len).map(|i| (key * 31 + i * (key % 5 + 1)) as u8).collect();
                let toks = model.entry(piece.clone()).or_insert(toks).clone();
                let mut out = vec![7];
                if get(owner, &piece, &mut out) {
                    prop_assert_eq!(&out[1..], &toks[..]);
                } else {
                    prop_assert_eq!(out.len(), 1);
                }
                if lookup_only {
                    continue;
                }
                put(owner, &piece, &toks);
                let storable = piece.len() <= MAX_PIECE
                    && piece.len() + 3 * toks.len() <= LONG_DATA
                    && toks.iter().all(|&t| t < 1 << 24);
                out.clear();
                let found = get(owner, &piece, &mut out);
                if found {
                    prop_assert!(storable);
                    prop_assert_eq!(&out, &toks);
                } else {
                    // long pieces, and pieces whose ids do not fit their own table, may
                    // be bypassed
                    let n = piece.len();
                    let need = n + 3 * toks.len();
                    let over = if n <= SMALL_PIECE { need > SMALL_DATA } else { need > MID_DATA };
                    prop_assert!(!storable || n > MID_PIECE || over);
                }
            }
            clear_thread();
        }
    }
}
