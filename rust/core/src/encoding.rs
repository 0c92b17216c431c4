//! tiktoken-compatible encoding: split pattern + byte-rank BPE + special tokens.
//!
//! Semantics follow tiktoken 0.14 exactly: each regex piece that is itself a token is
//! emitted directly ("whole piece first"); other pieces are merged by rank; special tokens
//! are matched only when allowed, and text between them is split independently.

use std::cell::Cell;
use std::sync::OnceLock;

use crate::atomic_chars::AtomicChars;
use crate::backtrack::Backtrack;
use crate::bpe::MergeTable;
use crate::error::{Error, Result};
use crate::formats;
use crate::piece_cache;
use crate::pretok::{Lexer, Pretokenizer};
use crate::rank_bpe;
use crate::special::{SpecialSet, SpecialTokens};
use crate::vocab::Vocab;

/// Pieces of at least this many bytes that are not tokens use the linear-time
/// backtracking encoder (shorter ones the byte-rank merge).
pub const BACKTRACK_MIN: usize = 192;

/// [`CoreEncoding::parallel_ranges`] makes no range smaller than this.
pub const PARALLEL_MIN_BYTES: usize = 64 * 1024;

#[derive(Debug)]
pub struct CoreEncoding {
    vocab: Vocab,
    /// Linear-time encoder for long pieces, built on the first one (`None` inside: the
    /// vocabulary does not qualify and long pieces use the heap merge).
    backtrack: OnceLock<Option<Backtrack>>,
    /// Pair table, built on first use (the encoder itself merges by byte ranks).
    merges: OnceLock<MergeTable>,
    /// Characters that start as one part in the merge, built on the first merge.
    chars: OnceLock<AtomicChars>,
    pretok: Pretokenizer,
    specials: SpecialTokens,
    sorted_ids: OnceLock<Vec<u32>>,
    /// Key of this encoding in the per-thread piece caches.
    cache_owner: u32,
}

/// Non-token pieces the piece loop defers before it encodes them together (see
/// [`CoreEncoding::encode_span`]): their prefetched piece-cache sets (at most 32 KiB)
/// stay in the core's caches until they are asked.
pub const DEFER_BATCH: usize = 256;

/// A deferred non-token piece: `text[a..e]`, its ids due at `out[at]`, its piece-cache
/// hash `h` (then its number of ids).
#[derive(Clone, Copy)]
struct Deferred {
    a: usize,
    e: usize,
    at: usize,
    h: u64,
}

thread_local! {
    /// The piece loop's deferred pieces and their ids, kept between calls.
    static DEFER_SCRATCH: Cell<(Vec<Deferred>, Vec<u32>)> =
        const { Cell::new((Vec::new(), Vec::new())) };
}

/// Result of [`CoreEncoding::encode_with_unstable`]: stable tokens and the set of possible
/// completions (sorted, deduplicated).
pub type Unstable = (Vec<u32>, Vec<Vec<u32>>);

/// Insert the deferred pieces' ids (`extra`, piece after piece, `d.h` of them for the
/// piece `d`) into `out` at their places `d.at` (increasing), in one backward pass: the
/// ids pushed after a piece move right, then its own ids go before them. With AVX-512
/// ([`crate::piece_cache::vector_available`]) each move is 8-id vector copies and one
/// masked copy of the rest ([`place_ids_vector`]), else `copy_within` and
/// `copy_from_slice` (libc `memmove`/`memcpy` calls).
///
/// # Safety
/// The `d.at` do not decrease and are at most `out.len()`, and the counts `d.h` sum to
/// `extra.len()` (the vector path relies on it; the portable one would panic).
#[inline(always)]
unsafe fn place_ids(out: &mut Vec<u32>, extra: &[u32], defs: &[Deferred]) {
    #[cfg(target_arch = "x86_64")]
    if piece_cache::vector_available() {
        // SAFETY: the CPU has AVX-512 F and VL (checked above); `defs` and `extra` are
        // as `place_ids_vector` needs them (this function's contract).
        unsafe { place_ids_vector(out, extra, defs) };
        return;
    }
    place_ids_portable(out, extra, defs);
}

/// [`place_ids`] without vector instructions.
fn place_ids_portable(out: &mut Vec<u32>, extra: &[u32], defs: &[Deferred]) {
    let old = out.len();
    let mut to = old + extra.len();
    out.resize(to, 0);
    let (mut from, mut src) = (old, extra.len());
    for d in defs.iter().rev() {
        let (at, k) = (d.at, d.h as usize);
        // the ids pushed after this piece move right, then its own ids go before them
        let moved = from - at;
        out.copy_within(at..from, to - moved);
        to -= moved;
        out[to - k..to].copy_from_slice(&extra[src - k..src]);
        to -= k;
        src -= k;
        from = at;
    }
    debug_assert!(to == from && src == 0);
}

/// [`place_ids`] with AVX-512 F/VL: every move in 8-id (32-byte) vector copies from its
/// end and one masked copy of its first `len % 8` ids (no `memmove` call, no branch on
/// short lengths), into the vector's reserved spare capacity (no zero fill).
///
/// # Safety
/// The CPU has AVX-512 F and VL; the `d.at` do not decrease and are at most
/// `out.len()`, and the counts `d.h` sum to `extra.len()` (as `place_deferred` and the
/// piece loop build them: `at` is `out.len()` when the piece is queued).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn place_ids_vector(out: &mut Vec<u32>, extra: &[u32], defs: &[Deferred]) {
    use std::arch::x86_64::*;
    #[cfg(test)]
    tests::count_vector_moves();
    let old = out.len();
    let total = extra.len();
    debug_assert!(defs.windows(2).all(|w| w[0].at <= w[1].at));
    debug_assert!(defs.last().is_none_or(|d| d.at <= old));
    debug_assert_eq!(defs.iter().map(|d| d.h as usize).sum::<usize>(), total);
    out.reserve(total);
    let o = out.as_mut_ptr();
    let x = extra.as_ptr();
    /// Copy `n` ids from `s` to `t` (`t >= s` or no overlap), backward by 8.
    ///
    /// Safety: `s[..n]` readable, `t[..n]` writable, in one allocation each.
    #[inline(always)]
    unsafe fn copy(s: *const u32, t: *mut u32, n: usize) {
        let mut n = n;
        // SAFETY: each 8-id load and store is within `s[..n]` / `t[..n]`; every chunk
        // is loaded before it is stored, and with `t >= s` a store lands at or after
        // the start of the chunk just loaded, never on ids still to be read (they are
        // at lower addresses)
        unsafe {
            while n >= 8 {
                n -= 8;
                let v = _mm256_loadu_si256(s.add(n).cast());
                _mm256_storeu_si256(t.add(n).cast(), v);
            }
            // the first `n < 8` ids: a masked load and store touch only those lanes
            let m = ((1u32 << n) - 1) as u8;
            let v = _mm256_maskz_loadu_epi32(m, s.cast());
            _mm256_mask_storeu_epi32(t.cast(), m, v);
        }
    }
    let (mut to, mut from, mut src) = (old + total, old, total);
    for d in defs.iter().rev() {
        let (at, k) = (d.at, d.h as usize);
        let moved = from - at;
        to -= moved;
        // SAFETY: `at + moved = from <= old`: initialised ids; the target
        // `to..to + moved` ends at most at `old + total`, within the capacity reserved
        // above, and `to >= at` (the counts of the pieces before this one are still
        // ahead: `to - at = src >= 0`)
        unsafe { copy(o.add(at), o.add(to), moved) };
        to -= k;
        src -= k;
        // SAFETY: `extra[src..src + k]` (the counts sum to `extra.len()`) to
        // `out[to..to + k]`, within the reserved capacity; different allocations
        unsafe { copy(x.add(src), o.add(to), k) };
        from = at;
    }
    debug_assert!(to == from && src == 0);
    // SAFETY: every position of `old..old + total` was written above (the
    // positions `from..old + total` all are, and `from <= old`)
    unsafe { out.set_len(old + total) };
}

impl CoreEncoding {
    /// Build from mergeable ranks, special tokens and a split pattern.
    pub fn new(
        mergeable_ranks: Vec<(Vec<u8>, u32)>,
        special_tokens: Vec<(String, u32)>,
        pattern: &str,
    ) -> Result<Self> {
        let vocab = Vocab::from_pairs(mergeable_ranks)?;
        let pretok = Pretokenizer::new(pattern)?;
        Self::from_parts(vocab, special_tokens, pretok)
    }

    /// Build from the bytes of a `.tiktoken` file.
    pub fn from_tiktoken_bytes(
        data: &[u8],
        source: &str,
        special_tokens: Vec<(String, u32)>,
        pattern: &str,
    ) -> Result<Self> {
        let pairs = formats::tiktoken::parse(data, source)?;
        Self::new(pairs, special_tokens, pattern)
    }

    pub fn from_parts(
        vocab: Vocab,
        special_tokens: Vec<(String, u32)>,
        pretok: Pretokenizer,
    ) -> Result<Self> {
        let specials = SpecialTokens::new(special_tokens)?;
        Ok(CoreEncoding {
            vocab,
            merges: OnceLock::new(),
            chars: OnceLock::new(),
            backtrack: OnceLock::new(),
            pretok,
            specials,
            sorted_ids: OnceLock::new(),
            cache_owner: piece_cache::new_owner(),
        })
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }
    /// The `(left, right) -> (rank, result)` table equivalent to this encoding's ranks
    /// (built on first call).
    pub fn merges(&self) -> &MergeTable {
        self.merges
            .get_or_init(|| MergeTable::from_vocab_ranks(&self.vocab))
    }
    pub fn pretokenizer(&self) -> &Pretokenizer {
        &self.pretok
    }
    pub fn specials(&self) -> &SpecialTokens {
        &self.specials
    }

    /// Largest id of any token, mergeable or special.
    pub fn max_token_value(&self) -> u32 {
        let m = self.vocab.n_slots().saturating_sub(1) as u32;
        m.max(self.specials.max_id().unwrap_or(0))
    }

    // ------------------------------------------------------------------ encoding

    /// Encode one piece: the whole piece if it is a token, else BPE.
    #[inline]
    pub fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) -> Result<()> {
        // Non-ASCII pieces are often not tokens (a third of multilingual ones): ask the
        // Bloom filter first, which saves a far memory access per miss.
        let whole = match piece.last() {
            Some(&b) if b >= 0x80 => self.vocab.get_filtered(piece),
            _ => self.vocab.get(piece),
        };
        if let Some(id) = whole {
            out.push(id);
            return Ok(());
        }
        self.encode_missing_piece(piece, out)
    }

    /// [`CoreEncoding::encode_piece`] of `text[a..e]`, with the branch-light whole-piece
    /// lookup [`Vocab::get_in`] wherever 8 bytes can be read from `a` (all but the last
    /// few bytes of a text). It reads the piece's head and tail as whole words, with no
    /// branch on the piece's length, and asks the Bloom filter first for every piece.
    /// In-process A/B on the whole-corpus stream (`examples/stream_ab.rs`, with the
    /// direct lexer loop of [`CoreEncoding::encode_ordinary_into`]; interleaved rounds,
    /// thread CPU time, load ~3): o200k en.txt +15-17 %, code.txt +5-11 %, multilingual
    /// +3-6 % over [`CoreEncoding::encode_piece`] per callback. The length branches of
    /// `head`, `tail` and the 1-2 byte direct table were mispredicted; a prefetching
    /// two-pass batch of lookups lost (see `docs/DEVELOPING.md`).
    #[inline(always)]
    fn encode_piece_in(&self, text: &[u8], a: usize, e: usize, out: &mut Vec<u32>) -> Result<()> {
        if a + 8 > text.len() {
            return self.encode_piece(&text[a..e], out);
        }
        if let Some(id) = self.vocab.get_in(text, a, e) {
            out.push(id);
            return Ok(());
        }
        self.encode_missing_piece(&text[a..e], out)
    }

    /// Encode a piece that is not a token (through the piece cache).
    #[inline(never)]
    fn encode_missing_piece(&self, piece: &[u8], out: &mut Vec<u32>) -> Result<()> {
        if piece.len() <= piece_cache::MAX_PIECE {
            // one hash for the lookup and the insertion
            return piece_cache::with_thread(|tc| {
                let h = piece_cache::mix(piece);
                if tc.get_hashed(self.cache_owner, piece, h, out) {
                    return Ok(());
                }
                let start = out.len();
                self.bpe_piece(piece, out)?;
                tc.put_hashed(self.cache_owner, piece, h, &out[start..]);
                Ok(())
            });
        }
        self.bpe_piece(piece, out)
    }

    /// Encode the deferred pieces `defs` of [`CoreEncoding::encode_span`] (their ids into
    /// `extra` first, through the piece cache) and insert their ids into `out` where each
    /// was lexed, in one backward pass over the ids pushed since the first of them; empty
    /// `defs`. Returns how many ids the last one has.
    #[inline(never)]
    fn place_deferred(
        &self,
        tc: &piece_cache::ThreadCache<'_>,
        bytes: &[u8],
        defs: &mut Vec<Deferred>,
        extra: &mut Vec<u32>,
        out: &mut Vec<u32>,
    ) -> Result<usize> {
        extra.clear();
        for d in defs.iter_mut() {
            let piece = &bytes[d.a..d.e];
            let before = extra.len();
            if !tc.get_hashed(self.cache_owner, piece, d.h, extra) {
                self.bpe_piece(piece, extra)?;
                tc.put_hashed(self.cache_owner, piece, d.h, &extra[before..]);
            }
            // the hash is no longer needed: keep the piece's id count there
            d.h = (extra.len() - before) as u64;
        }
        // SAFETY: each `d.at` is `out.len()` when the piece was queued (`lex_pieces`),
        // and `out` only grew since (in order); `d.h` is the piece's number of ids in
        // `extra`, which was cleared above
        unsafe { place_ids(out, extra, defs) };
        let k = defs.last().map_or(0, |d| d.h as usize);
        defs.clear();
        #[cfg(test)]
        tests::count_placed();
        Ok(k)
    }

    /// BPE-merge a piece without the whole-piece shortcut (tiktoken's `byte_pair_encode`).
    pub fn bpe_piece(&self, piece: &[u8], out: &mut Vec<u32>) -> Result<()> {
        let chars = self.chars.get_or_init(|| AtomicChars::build(&self.vocab));
        if piece.len() >= BACKTRACK_MIN {
            let bt = self.backtrack.get_or_init(|| Backtrack::build(&self.vocab));
            if let Some(bt) = bt {
                if bt.encode_long(&self.vocab, Some(chars), piece, out) {
                    return Ok(());
                }
            }
        }
        rank_bpe::encode_with_chars(&self.vocab, chars, piece, out)
    }

    /// Encode ignoring special tokens.
    pub fn encode_ordinary_into(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        self.encode_span::<true>(text, 0, text.len(), out)
            .map(|_| ())
    }

    /// [`CoreEncoding::encode_ordinary_into`] without deferring non-token pieces (the
    /// piece loop as it was before; for `examples/stream_ab.rs` and the tests).
    #[doc(hidden)]
    pub fn encode_ordinary_undeferred(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        self.encode_span::<false>(text, 0, text.len(), out)
            .map(|_| ())
    }

    /// Encode the pieces of `text[start..end]`, pre-tokenized on its own (`end` ends a
    /// piece; the whole-piece lookups may read the bytes of `text` around the span).
    /// Hand-written lexers are driven directly ([`CoreEncoding::lex_pieces`]), without a
    /// callback. Returns how many ids the span's last piece produced (0 for an empty
    /// span).
    #[inline(always)]
    fn encode_span<const DEFER: bool>(
        &self,
        text: &str,
        start: usize,
        end: usize,
        out: &mut Vec<u32>,
    ) -> Result<usize> {
        let bytes = text.as_bytes();
        if let Some(lexer) = self.pretok.lexer() {
            return self.lex_pieces::<DEFER>(lexer, bytes, start, end, 0, end - start, out);
        }
        let mut last = 0;
        self.pretok.for_each_piece(&text[start..end], |a, b| {
            let before = out.len();
            self.encode_piece_in(bytes, start + a, start + b, out)?;
            last = out.len() - before;
            Ok(())
        })?;
        Ok(last)
    }

    /// The piece loop of [`CoreEncoding::encode_span`] and
    /// [`CoreEncoding::encode_ordinary_range`]: lex `seg = bytes[base..lim]` with
    /// `lexer` and encode the pieces that start at offsets `from..stop` of `seg` (`from`
    /// a piece boundary of `seg`; the last piece may end after `stop`). The sequential
    /// call lexes its span on its own (`from` 0, `stop` the span's length), the ranged
    /// one a block of the whole text in its context (`base` 0, `lim` the text's
    /// length). Returns how many ids the last piece produced (0 if none).
    ///
    /// With `DEFER`, a non-token piece of at most [`piece_cache::MID_PIECE`] bytes is not
    /// encoded when it is lexed: its piece-cache set is prefetched, and it is encoded
    /// (from the cache or by the merge) with up to [`DEFER_BATCH`] - 1 others after
    /// later pieces, its ids then moved into place ([`CoreEncoding::place_deferred`]).
    /// The load of that set was the piece loop's longest stall (half the samples of the
    /// cache's lookup on the o200k multilingual stream); a piece deferred only to the
    /// next non-token piece left too little time for the prefetch (see
    /// `docs/DEVELOPING.md`).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn lex_pieces<const DEFER: bool>(
        &self,
        lexer: &Lexer,
        bytes: &[u8],
        base: usize,
        lim: usize,
        from: usize,
        stop: usize,
        out: &mut Vec<u32>,
    ) -> Result<usize> {
        /// `last` while the last piece is deferred.
        const DEFERRED: usize = usize::MAX;
        let mut last = 0;
        let seg = &bytes[base..lim];
        let stop = stop.min(seg.len());
        let mut i = from;
        if !DEFER {
            while i < stop {
                let e = lexer.next_end(seg, i);
                let before = out.len();
                self.encode_piece_in(bytes, base + i, base + e, out)?;
                last = out.len() - before;
                i = e;
            }
            return Ok(last);
        }
        // the thread's piece cache, taken once for the loop
        piece_cache::with_thread(|tc| {
            // the deferred pieces and the ids they encode to; both taken from the
            // thread's scratch at the first deferred piece (no allocation per call)
            let (mut defs, mut extra) = (Vec::new(), Vec::new());
            while i < stop {
                let e = lexer.next_end(seg, i);
                let (a, b) = (base + i, base + e);
                i = e;
                if a + 8 > bytes.len() {
                    // the last few bytes of the text
                    let before = out.len();
                    self.encode_piece(&bytes[a..b], out)?;
                    last = out.len() - before;
                    continue;
                }
                if let Some(id) = self.vocab.get_in(bytes, a, b) {
                    out.push(id);
                    last = 1;
                    continue;
                }
                if b - a > piece_cache::MID_PIECE {
                    let before = out.len();
                    self.encode_missing_piece(&bytes[a..b], out)?;
                    last = out.len() - before;
                    continue;
                }
                if defs.len() == DEFER_BATCH {
                    self.place_deferred(tc, bytes, &mut defs, &mut extra, out)?;
                } else if defs.capacity() == 0 {
                    (defs, extra) = DEFER_SCRATCH.take();
                    defs.clear();
                    defs.reserve(DEFER_BATCH);
                }
                let h = tc.prefetch(&bytes[a..b]);
                defs.push(Deferred {
                    a,
                    e: b,
                    at: out.len(),
                    h,
                });
                last = DEFERRED;
            }
            if !defs.is_empty() {
                let k = self.place_deferred(tc, bytes, &mut defs, &mut extra, out)?;
                if last == DEFERRED {
                    last = k;
                }
            }
            if defs.capacity() != 0 {
                DEFER_SCRATCH.set((defs, extra));
            }
            Ok(last)
        })
    }

    /// Byte ranges `[a, b)` covering `text` that can be encoded independently (with
    /// [`CoreEncoding::encode_ordinary_range`]) and concatenated to give exactly
    /// [`CoreEncoding::encode_ordinary`]: at most `parts` ranges of similar size, cut
    /// only at positions where every known pattern provably starts a piece
    /// ([`crate::pretok::Lexer::is_safe_boundary`]). One range if the pre-tokenizer is
    /// the general regex path (no boundary is provable for an arbitrary pattern) or no
    /// boundary is found.
    pub fn parallel_ranges(&self, text: &str, parts: usize) -> Vec<(usize, usize)> {
        self.parallel_ranges_min(text, parts, PARALLEL_MIN_BYTES)
    }

    /// [`CoreEncoding::parallel_ranges`] with ranges of at least `min_bytes`.
    pub fn parallel_ranges_min(
        &self,
        text: &str,
        parts: usize,
        min_bytes: usize,
    ) -> Vec<(usize, usize)> {
        let b = text.as_bytes();
        let n = b.len();
        let min_bytes = min_bytes.max(1);
        if parts <= 1 || self.pretok.lexer().is_none() || n < 2 * min_bytes {
            return vec![(0, n)];
        }
        let parts = parts.min(n / min_bytes).max(1);
        let mut cuts = vec![0usize];
        for k in 1..parts {
            let target = n * k / parts;
            let lo = *cuts.last().unwrap_or(&0);
            // nearest safe boundary after the target, else before it (within the part)
            let window = n / parts / 2;
            let fwd = (target..(target + window).min(n)).find(|&p| Lexer::is_safe_boundary(b, p));
            let cut = fwd.or_else(|| {
                (lo + 1..target)
                    .rev()
                    .take(window)
                    .find(|&p| Lexer::is_safe_boundary(b, p))
            });
            if let Some(c) = cut {
                if c > lo {
                    cuts.push(c);
                }
            }
        }
        cuts.push(n);
        cuts.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// Encode the pieces of `text` that start in `[from, to)`, where `from` and `to` come
    /// from [`CoreEncoding::parallel_ranges`] (the pieces are those of the whole text).
    pub fn encode_ordinary_range(
        &self,
        text: &str,
        from: usize,
        to: usize,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        if from == 0 && to >= text.len() {
            return self.encode_ordinary_into(text, out);
        }
        self.encode_range::<true>(text, from, to, out)
    }

    /// [`CoreEncoding::encode_ordinary_range`] without deferring non-token pieces (for
    /// `examples/range_ab.rs` and the tests).
    #[doc(hidden)]
    pub fn encode_ordinary_range_undeferred(
        &self,
        text: &str,
        from: usize,
        to: usize,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        if from == 0 && to >= text.len() {
            return self.encode_ordinary_undeferred(text, out);
        }
        self.encode_range::<false>(text, from, to, out)
    }

    /// The pieces of the whole `text` that start in `[from, to)` (`from` a piece
    /// boundary), through the piece loop of the sequential call.
    #[inline(always)]
    fn encode_range<const DEFER: bool>(
        &self,
        text: &str,
        from: usize,
        to: usize,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        let lexer = self.pretok.lexer().ok_or_else(|| {
            Error::InvalidArgument("ranged encoding needs a hand-written lexer".into())
        })?;
        let bytes = text.as_bytes();
        self.lex_pieces::<DEFER>(lexer, bytes, 0, bytes.len(), from, to, out)
            .map(|_| ())
    }

    pub fn encode_ordinary(&self, text: &str) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        self.encode_ordinary_into(text, &mut out)?;
        Ok(out)
    }

    /// Encode with special tokens: those in `allowed` become their ids; if the special set
    /// is free of overlaps, an occurrence of a token in `disallowed` is an error (otherwise
    /// the caller must check, see [`SpecialTokens::overlapping`]).
    ///
    /// Returns the number of tokens produced by the last regex piece (0 if the text ends
    /// with a special token), as tiktoken does, for unstable-token logic.
    pub fn encode_into(
        &self,
        text: &str,
        allowed: &SpecialSet,
        disallowed: &SpecialSet,
        out: &mut Vec<u32>,
    ) -> Result<usize> {
        let check = !self.specials.overlapping() && !disallowed.is_empty();
        let mut start = 0usize;
        loop {
            // find the next allowed special token (tiktoken restarts one byte after a
            // match that is not allowed)
            let mut find_pos = start;
            let next = loop {
                match self.specials.find_from(text, find_pos) {
                    None => break None,
                    Some(m) => {
                        // tiktoken checks disallowed tokens over the whole text before
                        // encoding, so a token that is both allowed and disallowed raises
                        if check && disallowed.contains(m.index) {
                            return Err(Error::DisallowedSpecial(
                                self.specials.tokens()[m.index].0.clone(),
                            ));
                        }
                        if allowed.contains(m.index) {
                            break Some(m);
                        }
                        find_pos = m.start + 1;
                    }
                }
            };
            let end = next.map_or(text.len(), |m| m.start);
            let last_piece_len = self.encode_span::<true>(text, start, end, out)?;
            match next {
                Some(m) => {
                    out.push(self.specials.tokens()[m.index].1);
                    start = m.end;
                }
                None => return Ok(last_piece_len),
            }
        }
    }

    pub fn encode(
        &self,
        text: &str,
        allowed: &SpecialSet,
        disallowed: &SpecialSet,
    ) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        self.encode_into(text, allowed, disallowed, &mut out)?;
        Ok(out)
    }

    /// Encode arbitrary bytes (tiktoken's `_encode_bytes`): valid UTF-8 is encoded
    /// normally; for invalid UTF-8 the valid prefix is encoded, then the tokens of its last
    /// (whitespace-extended) piece are re-merged together with the remaining bytes.
    pub fn encode_bytes(&self, data: &[u8]) -> Result<Vec<u32>> {
        match std::str::from_utf8(data) {
            Ok(text) => self.encode_ordinary(text),
            Err(e) => {
                let valid = e.valid_up_to();
                // SAFETY-free: the prefix is valid UTF-8 by construction.
                let text = std::str::from_utf8(&data[..valid])
                    .map_err(|e| Error::InvalidArgument(format!("internal UTF-8 error: {e}")))?;
                let none = SpecialSet::none(self.specials.len());
                let mut tokens = Vec::new();
                let last = self.encode_into(text, &none, &none, &mut tokens)?;
                let last = self.increase_last_piece_token_len(&tokens, last);
                let mut unstable: Vec<u8>;
                if !tokens.is_empty() && last > 0 {
                    unstable = Vec::new();
                    self.decode_bytes_into(&tokens[tokens.len() - last..], &mut unstable)?;
                    unstable.extend_from_slice(&data[valid..]);
                    tokens.truncate(tokens.len() - last);
                } else {
                    unstable = data[valid..].to_vec();
                }
                if !unstable.is_empty() {
                    self.encode_piece(&unstable, &mut tokens)?;
                }
                Ok(tokens)
            }
        }
    }

    fn is_all_space_token(&self, id: u32) -> bool {
        self.vocab
            .bytes(id)
            .is_some_and(|b| b.iter().all(|c| matches!(c, b' ' | b'\n' | b'\t')))
    }

    /// Extend the last piece backwards over whitespace-only tokens: a regex split between
    /// whitespace runs may disappear when more text is appended.
    fn increase_last_piece_token_len(&self, tokens: &[u32], mut last: usize) -> usize {
        if last > 0 && self.is_all_space_token(tokens[tokens.len() - last]) {
            while last < tokens.len() && self.is_all_space_token(tokens[tokens.len() - last - 1]) {
                last += 1;
            }
        }
        last
    }

    fn sorted_ids(&self) -> &[u32] {
        self.sorted_ids
            .get_or_init(|| self.vocab.ids_sorted_by_bytes())
    }

    /// Ids of all tokens whose bytes start with `prefix`, in byte order.
    pub fn ids_with_prefix(&self, prefix: &[u8]) -> &[u32] {
        let ids = self.sorted_ids();
        let bytes = |id: u32| self.vocab.bytes(id).unwrap_or(&[]);
        let lo = ids.partition_point(|&id| bytes(id) < prefix);
        let hi = lo + ids[lo..].partition_point(|&id| bytes(id).starts_with(prefix));
        &ids[lo..hi]
    }

    /// tiktoken's `encode_with_unstable`: the tokens that cannot change when more text is
    /// appended, and every token sequence that could continue the unstable tail.
    pub fn encode_with_unstable(
        &self,
        text: &str,
        allowed: &SpecialSet,
        disallowed: &SpecialSet,
    ) -> Result<Unstable> {
        let mut tokens = Vec::new();
        let last = self.encode_into(text, allowed, disallowed, &mut tokens)?;
        if last == 0 {
            return Ok((tokens, Vec::new()));
        }
        let last = self.increase_last_piece_token_len(&tokens, last);
        let mut unstable = Vec::new();
        self.decode_bytes_into(&tokens[tokens.len() - last..], &mut unstable)?;
        tokens.truncate(tokens.len() - last);

        let mut completions: std::collections::BTreeSet<Vec<u32>> = Default::default();
        if unstable.is_empty() {
            return Ok((tokens, Vec::new()));
        }
        for &id in self.ids_with_prefix(&unstable) {
            completions.insert(vec![id]);
        }
        for i in 1..unstable.len() {
            let (prefix, suffix) = unstable.split_at(i);
            for &id in self.ids_with_prefix(suffix) {
                let tb = self.vocab.bytes(id).unwrap_or(&[]);
                let mut possibility = prefix.to_vec();
                possibility.extend_from_slice(tb);
                let encoded = match std::str::from_utf8(&possibility) {
                    Ok(s) => self.encode_ordinary(s)?,
                    Err(_) => {
                        let mut v = Vec::new();
                        self.bpe_piece(&possibility, &mut v)?;
                        v
                    }
                };
                let mut seq = Vec::new();
                let mut seq_len = 0usize;
                for t in encoded {
                    seq.push(t);
                    seq_len += self.vocab.bytes(t).map_or(0, |b| b.len());
                    if seq_len >= unstable.len() {
                        break;
                    }
                }
                completions.insert(seq);
            }
        }
        if unstable.len() > 1 {
            if let Some((c, size)) = last_char(&unstable) {
                if unstable.len() > size && c.is_whitespace() {
                    let cut = unstable.len() - size;
                    let mut re = Vec::new();
                    self.bpe_piece(&unstable[..cut], &mut re)?;
                    self.bpe_piece(&unstable[cut..], &mut re)?;
                    completions.insert(re);
                }
            }
        }
        Ok((tokens, completions.into_iter().collect()))
    }

    /// Encode `bytes` as exactly one token (mergeable or special).
    pub fn encode_single_token(&self, bytes: &[u8]) -> Result<u32> {
        if let Some(id) = self.vocab.get(bytes) {
            return Ok(id);
        }
        if let Ok(s) = std::str::from_utf8(bytes) {
            if let Some(id) = self.specials.id_of(s) {
                return Ok(id);
            }
        }
        Err(Error::UnknownTokenBytes(bytes.to_vec()))
    }

    // ------------------------------------------------------------------ decoding

    /// Bytes of one token (mergeable or special).
    #[inline]
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.vocab
            .bytes(id)
            .or_else(|| self.specials.str_of_id(id).map(|s| s.as_bytes()))
    }

    pub fn decode_bytes_into(&self, ids: &[u32], out: &mut Vec<u8>) -> Result<()> {
        for &id in ids {
            out.extend_from_slice(self.token_bytes(id).ok_or(Error::UnknownToken(id))?);
        }
        Ok(())
    }

    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        self.decode_bytes_into(ids, &mut out)?;
        Ok(out)
    }

    /// Decoded bytes and, for every token, the index of the first character that contains
    /// bytes from it (tiktoken's `decode_with_offsets`, before UTF-8 validation).
    pub fn decode_with_offsets(&self, ids: &[u32]) -> Result<(Vec<u8>, Vec<usize>)> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        let mut offsets = Vec::with_capacity(ids.len());
        let mut chars = 0usize;
        for &id in ids {
            let b = self.token_bytes(id).ok_or(Error::UnknownToken(id))?;
            let starts_mid = b.first().is_some_and(|&c| (0x80..0xc0).contains(&c));
            offsets.push(chars.saturating_sub(starts_mid as usize));
            chars += b.iter().filter(|&&c| !(0x80..0xc0).contains(&c)).count();
            out.extend_from_slice(b);
        }
        Ok((out, offsets))
    }

    /// All mergeable token byte strings, sorted.
    pub fn token_byte_values(&self) -> Vec<&[u8]> {
        self.sorted_ids()
            .iter()
            .filter_map(|&id| self.vocab.bytes(id))
            .collect()
    }
}

/// The last UTF-8 character of `b` and its length, if `b` ends with a valid character.
fn last_char(b: &[u8]) -> Option<(char, usize)> {
    for k in 1..=b.len().min(4) {
        if let Ok(s) = std::str::from_utf8(&b[b.len() - k..]) {
            let mut it = s.chars();
            if let (Some(c), None) = (it.next(), it.next()) {
                return Some((c, k));
            }
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pretok::patterns;

    fn bundled(file: &str, pattern: &str) -> Option<CoreEncoding> {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python/supertok/data");
        let data = std::fs::read(dir.join(file)).ok()?;
        Some(CoreEncoding::from_tiktoken_bytes(&data, file, vec![], pattern).unwrap())
    }

    /// The bundled o200k, cl100k and r50k encodings that are present.
    fn bundled_all() -> Vec<(&'static str, CoreEncoding)> {
        [
            ("o200k_base.tiktoken", patterns::O200K),
            ("cl100k_base.tiktoken", patterns::CL100K),
            ("r50k_base.tiktoken", patterns::R50K),
        ]
        .into_iter()
        .filter_map(|(file, pat)| Some((file, bundled(file, pat)?)))
        .collect()
    }

    thread_local! {
        /// Calls of `place_ids_vector` on this thread.
        static VECTOR_MOVES: Cell<usize> = const { Cell::new(0) };
    }

    pub(super) fn count_vector_moves() {
        VECTOR_MOVES.set(VECTOR_MOVES.get() + 1);
    }

    /// `place_ids` (the vector moves on this CPU) against the portable moves and a naive
    /// insertion, on random batches: pieces at the start, the end, adjacent, with 0 to
    /// 20 ids (across the 8-id chunks) and 0 to 40 ids between them; fails if the
    /// vector moves are not taken on a CPU with AVX-512 VBMI.
    #[test]
    fn vector_moves_match_portable() {
        let listed = crate::testutil::cpu_lists(&["avx512f", "avx512bw", "avx512vl", "avx512vbmi"]);
        let mut seed = 7u64;
        let mut r = |n: u64| crate::testutil::xorshift(&mut seed) % n;
        for round in 0..20_000 {
            let old = r(60) as usize;
            let out: Vec<u32> = (0..old as u32).map(|i| 1_000_000 + i).collect();
            let mut ats: Vec<usize> = (0..r(12)).map(|_| r(old as u64 + 1) as usize).collect();
            ats.sort_unstable();
            let counts: Vec<usize> = ats.iter().map(|_| r(21) as usize).collect();
            let mut extra = vec![];
            let mut defs = vec![];
            for (&at, &k) in ats.iter().zip(&counts) {
                defs.push(Deferred {
                    a: 0,
                    e: 0,
                    at,
                    h: k as u64,
                });
                extra.extend((0..k as u32).map(|j| 10_000 * (defs.len() as u32) + j));
            }
            let mut want = out.clone();
            let mut shift = 0;
            let mut src = 0;
            for d in &defs {
                let k = d.h as usize;
                for (j, &id) in extra[src..src + k].iter().enumerate() {
                    want.insert(d.at + shift + j, id);
                }
                shift += k;
                src += k;
            }
            let mut portable = out.clone();
            place_ids_portable(&mut portable, &extra, &defs);
            assert_eq!(portable, want, "{round}");
            let mut got = out.clone();
            // an exact capacity half of the time (the vector moves reserve their room)
            if round % 2 == 0 {
                got.shrink_to_fit();
            }
            let before = VECTOR_MOVES.get();
            // SAFETY: `ats` sorted and at most `old`; `extra` holds the counts' ids
            unsafe { place_ids(&mut got, &extra, &defs) };
            assert_eq!(got, want, "{round}");
            if listed {
                assert_eq!(VECTOR_MOVES.get(), before + 1, "vector moves not taken");
            }
        }
    }

    /// The piece loop against the per-piece reference: texts of frequent words (tokens)
    /// and rare ones (merged, through the piece cache), in many arrangements, with the
    /// rare ones adjacent, first, last and within the last 8 bytes, cold and warm; and
    /// `encode_into`'s count of the last piece's ids.
    #[test]
    fn piece_loop_equals_the_reference_and_counts_the_last_piece() {
        let frags = [
            " the",
            " of",
            " and",
            ",",
            ".",
            "\n",
            " a",
            "  ",
            "\n    ",
            " Zyxqwv",
            " unfathomably",
            " flibbertigibbet",
            "Qjxz",
            " sesquipedalianism",
            " 9876543210",
            " ääkkönen",
            " 中文字符测试",
            "_xq",
            "(Zq)",
            "'xyzzy",
        ];
        let mut seed = 7u64;
        for (file, enc) in bundled_all() {
            let none = SpecialSet::none(0);
            for len in 0..400 {
                let mut text = String::new();
                for _ in 0..len % 40 {
                    crate::testutil::xorshift(&mut seed);
                    text.push_str(frags[(seed % frags.len() as u64) as usize]);
                }
                let b = text.as_bytes();
                let (mut want, mut last) = (vec![], 0);
                enc.pretokenizer()
                    .for_each_piece(&text, |x, y| {
                        let before = want.len();
                        match enc.vocab().get(&b[x..y]) {
                            Some(id) => want.push(id),
                            None => enc.bpe_piece(&b[x..y], &mut want)?,
                        }
                        last = want.len() - before;
                        Ok(())
                    })
                    .unwrap();
                if len % 3 == 0 {
                    piece_cache::clear_thread();
                }
                for _ in 0..2 {
                    let mut out = vec![];
                    assert_eq!(
                        enc.encode_into(&text, &none, &none, &mut out).unwrap(),
                        last
                    );
                    assert_eq!(out, want, "{file} {text:?}");
                }
            }
        }
    }

    thread_local! {
        /// Calls of `place_deferred` on this thread.
        static PLACED: Cell<usize> = const { Cell::new(0) };
    }

    pub(super) fn count_placed() {
        PLACED.set(PLACED.get() + 1);
    }

    /// Frequent words and rare ones (indices [`RARE`]: not tokens, most of them deferred).
    const DEFER_FRAGS: [&str; 10] = [
        " the",
        " Zyxqwv",
        " ääkkönen",
        " of",
        "Qjxz",
        " flibbertigibbet",
        ",",
        " жжжщ",
        "\n",
        ".\n",
    ];
    const RARE: [usize; 5] = [1, 2, 4, 5, 7];

    /// Random fragments of the first `k` of [`DEFER_FRAGS`] until `rare` rare ones.
    fn rare_text(k: usize, seed: &mut u64, rare: usize) -> String {
        let mut text = String::new();
        let mut n = 0;
        while n < rare {
            crate::testutil::xorshift(seed);
            let f = (*seed % k as u64) as usize;
            text.push_str(DEFER_FRAGS[f]);
            n += RARE.contains(&f) as usize;
        }
        text
    }

    /// The per-piece reference ids of `text`, the start of every piece the loop defers
    /// (not a token, at most [`piece_cache::MID_PIECE`] bytes, not in the last 8 bytes)
    /// and the last piece's number of ids.
    fn defer_reference(enc: &CoreEncoding, text: &str) -> (Vec<u32>, Vec<usize>, usize) {
        let b = text.as_bytes();
        let (mut want, mut starts, mut last) = (vec![], vec![], 0);
        enc.pretokenizer()
            .for_each_piece(text, |x, y| {
                let before = want.len();
                match enc.vocab().get(&b[x..y]) {
                    Some(id) => want.push(id),
                    None => {
                        if x + 8 <= b.len() && y - x <= piece_cache::MID_PIECE {
                            starts.push(x);
                        }
                        enc.bpe_piece(&b[x..y], &mut want)?
                    }
                }
                last = want.len() - before;
                Ok(())
            })
            .unwrap();
        (want, starts, last)
    }

    /// Texts with more deferred pieces than a batch holds (rare words between frequent
    /// ones, adjacent, first and last): the piece loop equals the undeferred loop and
    /// the per-piece reference, counts the last piece's ids, and does defer (a loop that
    /// silently stopped deferring would not call `place_deferred`, once per batch).
    #[test]
    fn deferred_pieces_are_placed_in_order_across_batches() {
        let mut seed = 99u64;
        for (file, enc) in bundled_all() {
            let none = SpecialSet::none(0);
            for n in [1, 2, 255, 256, 257, 511, 512, 513, 1500] {
                let text = rare_text(9, &mut seed, n);
                let (want, starts, last) = defer_reference(&enc, &text);
                let deferrable = starts.len();
                for cold in [true, false] {
                    if cold {
                        piece_cache::clear_thread();
                    }
                    let placed = PLACED.get();
                    let mut out = vec![];
                    assert_eq!(
                        enc.encode_into(&text, &none, &none, &mut out).unwrap(),
                        last
                    );
                    assert_eq!(out, want, "{file} {n}");
                    assert_eq!(
                        PLACED.get() - placed,
                        deferrable.div_ceil(DEFER_BATCH),
                        "{file} {n}"
                    );
                    out.clear();
                    enc.encode_ordinary_undeferred(&text, &mut out).unwrap();
                    assert_eq!(out, want, "{file} {n}");
                }
            }
        }
    }

    /// The ranged encoder of `encode_ordinary_parallel` defers as the sequential call
    /// does: blocks holding several deferral batches each (and batches cut by the
    /// block ends), cold and warm, concatenate to the per-piece reference, each block
    /// calls `place_deferred` once per batch of its deferrable pieces (a ranged path
    /// that stopped deferring would call it never), and the undeferred ranged loop
    /// agrees.
    #[test]
    fn ranged_encoding_defers_across_blocks() {
        let mut seed = 5u64;
        let text = rare_text(DEFER_FRAGS.len(), &mut seed, 3000);
        for (file, enc) in bundled_all() {
            let (want, starts, _) = defer_reference(&enc, &text);
            assert!(starts.len() > 4 * DEFER_BATCH, "{file}");
            for parts in [2, 3, 7] {
                let ranges = enc.parallel_ranges_min(&text, parts, 1000);
                assert!(ranges.len() > 1, "{file} {parts}");
                for cold in [true, false] {
                    if cold {
                        piece_cache::clear_thread();
                    }
                    let mut out = Vec::new();
                    for &(x, y) in &ranges {
                        let placed = PLACED.get();
                        enc.encode_ordinary_range(&text, x, y, &mut out).unwrap();
                        let n = starts.iter().filter(|&&s| x <= s && s < y).count();
                        assert!(n > 0, "{file} {parts}");
                        assert_eq!(
                            PLACED.get() - placed,
                            n.div_ceil(DEFER_BATCH),
                            "{file} {parts} {x}..{y}"
                        );
                    }
                    assert_eq!(out, want, "{file} {parts}");
                    out.clear();
                    for &(x, y) in &ranges {
                        enc.encode_ordinary_range_undeferred(&text, x, y, &mut out)
                            .unwrap();
                    }
                    assert_eq!(out, want, "{file} {parts}");
                }
            }
        }
    }

    #[test]
    fn ranged_encoding_concatenates_to_the_whole() {
        let frags = [
            "Hello world. ",
            "don't ",
            "\n",
            "\n\n",
            "  indented\n",
            "x = f(y)\n",
            "//comment\n",
            "\n/path",
            "日本語のテキスト",
            "\u{3000}",
            "123456 ",
            "é\u{301}",
            "\t\tcode;\n",
            "'s ",
            "ABC def ",
            "\r\n",
            "...",
            "—",
            "\u{1F600} ",
        ];
        let mut seed = 42u64;
        let mut text = String::new();
        while text.len() < 40_000 {
            crate::testutil::xorshift(&mut seed);
            text.push_str(frags[(seed % frags.len() as u64) as usize]);
        }
        for (file, enc) in bundled_all() {
            let whole = enc.encode_ordinary(&text).unwrap();
            for parts in [2, 3, 7, 50] {
                let ranges = enc.parallel_ranges_min(&text, parts, 100);
                assert!(ranges.len() > 1);
                let mut out = Vec::new();
                for &(a, b) in &ranges {
                    enc.encode_ordinary_range(&text, a, b, &mut out).unwrap();
                }
                assert_eq!(out, whole, "{file} {parts}");
            }
        }
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use crate::pretok::patterns;
    use proptest::prelude::*;

    /// Letters texts and tokens are made of: ASCII, Georgian and CJK (three bytes each),
    /// Cyrillic (two bytes).
    const UNITS: [&str; 10] = ["a", "b", "e", "ა", "ბ", "გ", "中", "文", "ж", "и"];

    fn word(units: &[usize]) -> String {
        units.iter().map(|&u| UNITS[u % UNITS.len()]).collect()
    }

    proptest! {
        /// Random vocabularies and texts of repeated words of up to ~90 bytes (every table
        /// of the piece cache, pieces with more ids than their table holds, long pieces
        /// and their bypass): the encoder, cold and then warm, equals the plain
        /// merge-table encoding of every piece.
        #[test]
        fn cached_encoding_equals_the_plain_merge(
            tokens in proptest::collection::vec(proptest::collection::vec(0usize..10, 2..6), 0..60),
            words in proptest::collection::vec(proptest::collection::vec(0usize..10, 1..30), 1..12),
            order in proptest::collection::vec(0usize..12, 1..120),
        ) {
            let mut pairs: Vec<(Vec<u8>, u32)> = (0..=255u8).map(|b| (vec![b], b as u32)).collect();
            let mut seen = std::collections::HashSet::new();
            for t in &tokens {
                let b = word(t).into_bytes();
                if b.len() > 1 && seen.insert(b.clone()) {
                    let id = pairs.len() as u32;
                    pairs.push((b, id));
                }
            }
            let enc = CoreEncoding::new(pairs, vec![], patterns::O200K).unwrap();
            let table = MergeTable::from_vocab_ranks(enc.vocab());
            let text: String = order
                .iter()
                .map(|&k| format!(" {}", word(&words[k % words.len()])))
                .collect();
            let mut want = vec![];
            enc.pretokenizer()
                .for_each_piece(&text, |a, b| {
                    let p = &text.as_bytes()[a..b];
                    match enc.vocab().get(p) {
                        Some(id) => want.push(id),
                        None => table.encode_piece(p, &mut want)?,
                    }
                    Ok(())
                })
                .unwrap();
            piece_cache::clear_thread();
            for _ in 0..3 {
                prop_assert_eq!(&enc.encode_ordinary(&text).unwrap(), &want);
            }
            // the number of ids of the last piece
            let last = enc.pretokenizer().split(&text).unwrap().last().map(|&(a, b)| {
                let mut v = vec![];
                table.encode_piece(&text.as_bytes()[a..b], &mut v).unwrap();
                match enc.vocab().get(&text.as_bytes()[a..b]) {
                    Some(_) => 1,
                    None => v.len(),
                }
            });
            let none = SpecialSet::none(0);
            let mut out = vec![];
            let n = enc.encode_into(&text, &none, &none, &mut out).unwrap();
            prop_assert_eq!(&out, &want);
            prop_assert_eq!(n, last.unwrap_or(0));
        }
    }
}
