//! Linear-time exact byte-pair encoding of long pieces (tiktoken semantics).
//!
//! The idea is GitHub rust-gems' backtracking encoder; this is an independent
//! implementation whose pair test follows tiktoken's rule exactly (two parts merge iff
//! their concatenated bytes are a token, lowest rank first, leftmost among equals).
//!
//! **Why it is exact.** Call a token *reachable* if the byte-pair merge of its own bytes
//! gives that token, and call two adjacent tokens *compatible* if the merge of their
//! concatenated bytes gives exactly the two of them. Then:
//!
//! 1. In the merge of any string, the parts covering the final tokens' byte ranges never
//!    merge across a final boundary, and the merges inside one range only depend on that
//!    range's bytes. So every output token is reachable and, looking at two neighbours in
//!    isolation, nothing else competes with their cross candidates, so neighbours are
//!    compatible.
//! 2. Conversely, if a sequence of reachable tokens is pairwise compatible, no cross merge
//!    can ever fire when merging the whole string: the first one would fire at a boundary
//!    whose two sides are, at that moment, in the same state as in the isolated pair,
//!    where it would fire as well (it is the minimum there too, and leftmost among equal
//!    ranks), contradicting compatibility. Hence the sequence is *the* encoding.
//! 3. So the encoding of every prefix is the unique pairwise-compatible tokenization of
//!    that prefix. A depth-first search that extends a compatible prefix with the longest
//!    reachable token first and falls back to shorter prefixes of it, backtracking when
//!    none fits, finds the encoding; and because the tokenization of the text before a
//!    position is unique, a position from which no continuation works can be marked dead
//!    once and for all. Each position dies at most once: amortized linear time.
//!
//! **The compatibility test** walks down the two tokens' merge trees along the boundary
//! (the right spine of the left token, the left spine of the right token), undoing the
//! later of the two boundary merges each step, and checks whether the cross pair of that
//! state would merge before the merge that ended it. This replays the isolated pair merge
//! exactly when merges inside every token happen in increasing rank order, i.e. when each
//! reachable token's last merge joins two tokens of smaller rank, recursively. This is
//! checked for every token the encoder touches; a piece that meets a token violating it
//! is handed back to the heap merge.
//!
//! Per-token facts (reachable? last merge?) are computed on first use by merging the
//! token's own bytes, and cached, so there is nothing to build up front.
//!
//! **Strategies** ([`Backtrack::encode_long`]): runs of few distinct bytes use the
//! backtracking search; pieces whose first 256 bytes hold many safe cuts ([`SafeCuts`]:
//! positions no token can cross, e.g. random CJK; pieces with four-byte characters need
//! twice as many, the chunked merge handles emoji well) and that do not repeat
//! themselves are encoded segment by segment ([`Backtrack::encode_segmented`]: exact
//! without any seam check); the others use the chunked merge with
//! compatibility-checked seams ([`Backtrack::encode_chunked`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::atomic_chars::AtomicChars;
use crate::chunk_cache;
use crate::piece_cache;
use crate::rank_bpe;
use crate::vocab::Vocab;

const NONE: u32 = u32::MAX;

/// Chunk size of [`Backtrack::encode_chunked`].
pub const CHUNK: usize = chunk_cache::CHUNK;

/// [`Backtrack::encode_chunked`] stops consulting the chunk cache for the rest of a piece
/// whose first this many chunks all missed.
const CACHE_PROBE_CHUNKS: u32 = 64;

/// Positions [`Backtrack::cut_near`] considers for the end of a chunk.
const CUT_WINDOW: usize = 16;

/// Entries of the per-call cache of seam compatibility results (a power of two).
const SEAM_CACHE: usize = 64;

/// Long pieces with at least one safe cut ([`SafeCuts`]) per this many bytes among their
/// first 256 are encoded segment by segment ([`Backtrack::encode_segmented`]).
const SEGMENT_DENSITY: usize = 8;

/// log2 of the number of bits of [`SafeCuts`]'s table of 4-byte windows.
const QUAD_BITS: u32 = 21;

/// Pieces whose first 256 bytes hold at most this many distinct bytes use the backtracking
/// search (runs of one character and other short periods), the others the chunked merge.
pub const BACKTRACK_DISTINCT: u32 = 4;

// Per-token codes in `Backtrack::info`.
const NOT_COMPUTED: u64 = u64::MAX;
/// A single byte: a leaf of every merge tree.
const LEAF: u64 = u64::MAX - 1;
/// The merge of its own bytes does not give the token: it never appears in an encoding.
const UNREACHABLE: u64 = u64::MAX - 2;
/// Reachable, but some merge in its tree joins a token of larger rank (unsupported).
const NON_MONOTONE: u64 = u64::MAX - 3;

/// The piece met a token outside the supported class (a reachable token whose merge
/// tree is not monotone); the caller falls back to the heap merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsupported;

/// Outcome of a step that may meet an unsupported token.
type Step<T> = Result<T, Unsupported>;

/// Pieces of at least this many bytes that are not periodic load in bulk first the
/// tables they will look up at random: segmented ones the [`SafeCuts`] bitmaps, the
/// three-byte characters' table and the index's Bloom filter, chunked ASCII ones the
/// index's Bloom filter and compact table of the 3- and 4-byte tokens.
const SWEEP_MIN: usize = 1 << 16;

/// The linear-time encoder of long pieces for one vocabulary.
pub struct Backtrack {
    /// Per id: `left << 32 | right` of its last merge, or one of the codes above.
    info: Vec<AtomicU64>,
    /// Byte length of each id.
    len: Vec<u32>,
    /// Longest token starting with each byte pair (`b0 << 8 | b1`), 0 if none.
    max_len2: Vec<u8>,
    /// Key of this vocabulary in the per-thread chunk caches.
    owner: u32,
    /// The caller's atomic characters extended with four-byte ones
    /// ([`AtomicChars::with_four_byte`]), built on the first piece that has a byte `F0+`.
    chars4: OnceLock<AtomicChars>,
    /// Where no token can cross (see [`SafeCuts`]), built on the first long piece that is
    /// not a run.
    cuts: OnceLock<SafeCuts>,
}

impl std::fmt::Debug for Backtrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backtrack")
            .field("tokens", &self.len.len())
            .finish()
    }
}

impl Backtrack {
    /// Prepare the encoder (one pass over the vocabulary), or `None` if the vocabulary
    /// does not qualify: a byte without its own token, a token longer than 255 bytes, or
    /// ranks too large for the byte-rank merge's packed keys.
    pub fn build(vocab: &Vocab) -> Option<Backtrack> {
        if (0..=255u8).any(|b| vocab.byte_id(b).is_none())
            || vocab.max_token_len() > 255
            || !rank_bpe::linear_ok(vocab)
        {
            return None;
        }
        let slots = vocab.n_slots();
        let mut len = vec![0u32; slots];
        let mut max_len2 = vec![0u8; 1 << 16];
        for (id, bytes) in vocab.iter() {
            len[id as usize] = bytes.len() as u32;
            if bytes.len() >= 2 {
                let k = (bytes[0] as usize) << 8 | bytes[1] as usize;
                max_len2[k] = max_len2[k].max(bytes.len() as u8);
            }
        }
        let info = (0..slots).map(|_| AtomicU64::new(NOT_COMPUTED)).collect();
        Some(Backtrack {
            info,
            len,
            max_len2,
            owner: piece_cache::new_owner(),
            chars4: OnceLock::new(),
            cuts: OnceLock::new(),
        })
    }

    /// The cached code of token `t` (computing it on first use).
    #[inline]
    fn info(&self, vocab: &Vocab, t: u32) -> u64 {
        let v = self.info[t as usize].load(Ordering::Relaxed);
        if v != NOT_COMPUTED {
            return v;
        }
        let v = self.compute(vocab, t);
        self.info[t as usize].store(v, Ordering::Relaxed);
        v
    }

    fn compute(&self, vocab: &Vocab, t: u32) -> u64 {
        let Some(bytes) = vocab.bytes(t) else {
            return UNREACHABLE;
        };
        if bytes.len() == 1 {
            return LEAF;
        }
        let mut out = Vec::with_capacity(4);
        let mut last = (0usize, 0usize);
        let ok = if bytes.len() < rank_bpe::LINEAR_MAX {
            rank_bpe::linear(vocab, None, bytes, &mut out, &mut |a, m| last = (a, m))
        } else {
            rank_bpe::heap(vocab, bytes, &mut out, &mut |a, m| last = (a, m))
        };
        if !ok || out.len() != 1 || out[0] != t {
            return UNREACHABLE;
        }
        let m = last.1;
        let (Some(l), Some(r)) = (vocab.get(&bytes[..m]), vocab.get(&bytes[m..])) else {
            return UNREACHABLE;
        };
        if l >= t || r >= t {
            return NON_MONOTONE;
        }
        // children are reachable (they are parts of a merge); their trees must be
        // monotone too
        if self.info(vocab, l) == NON_MONOTONE || self.info(vocab, r) == NON_MONOTONE {
            return NON_MONOTONE;
        }
        ((l as u64) << 32) | r as u64
    }

    /// `(left, right)` of a reachable token's last merge, `None` for a single byte.
    #[inline]
    fn split(&self, vocab: &Vocab, t: u32) -> Step<Option<(u32, u32)>> {
        match self.info(vocab, t) {
            LEAF => Ok(None),
            UNREACHABLE | NON_MONOTONE => Err(Unsupported),
            v => Ok(Some(((v >> 32) as u32, v as u32))),
        }
    }

    /// Whether the merge of `bytes(a) ++ bytes(b)` gives exactly `[a, b]` (see the module
    /// documentation). `Err` if a token on the way is not supported.
    #[inline]
    fn compatible(&self, vocab: &Vocab, mut a: u32, mut b: u32) -> Step<bool> {
        let mut limit = NONE;
        loop {
            if let (Some(x), Some(y)) = (vocab.bytes(a), vocab.bytes(b)) {
                if let Some(c) = vocab.get_concat(x, y) {
                    if c < limit {
                        return Ok(false);
                    }
                }
            }
            let sa = self.split(vocab, a)?;
            let sb = self.split(vocab, b)?;
            match (sa, sb) {
                (None, None) => return Ok(true),
                // undo the later of the two boundary merges (on equal ranks the right
                // one, which fired after the left one)
                (Some((_, ar)), None) => {
                    limit = a;
                    a = ar;
                }
                (Some((_, ar)), Some(_)) if a > b => {
                    limit = a;
                    a = ar;
                }
                (_, Some((bl, _))) => {
                    limit = b.saturating_add(1);
                    b = bl;
                }
            }
        }
    }

    /// Append the encoding of `piece` to `out` (linear time), choosing the faster of the
    /// two strategies: the backtracking search for repetitive pieces (few distinct bytes,
    /// e.g. runs of one character, whose tokens are long), chunked merging otherwise.
    /// Returns false (leaving `out` as it was) if the piece meets an unsupported token
    /// or the search fails (which the theory rules out); the caller then uses the heap
    /// merge.
    ///
    /// `chars` (built from `vocab`) lets the chunked merge start atomic characters as one
    /// part (see [`crate::atomic_chars`]; each chunk is merged on its own, so this is the
    /// plain merge of the chunk). `chars` must be [`AtomicChars::build`] of `vocab`: when
    /// the piece's first 256 bytes hold a four-byte character's lead byte, the chunks use
    /// that table extended with four-byte characters (emoji).
    pub fn encode_long(
        &self,
        vocab: &Vocab,
        chars: Option<&AtomicChars>,
        piece: &[u8],
        out: &mut Vec<u32>,
    ) -> bool {
        let mut seen = [0u64; 4];
        let mut distinct = 0u32;
        for &b in &piece[..piece.len().min(256)] {
            let (w, bit) = ((b >> 6) as usize, 1u64 << (b & 63));
            if seen[w] & bit == 0 {
                seen[w] |= bit;
                distinct += 1;
            }
        }
        let base = out.len();
        let ok = if distinct <= BACKTRACK_DISTINCT {
            self.encode(vocab, piece, out)
        } else {
            // lead bytes F0..=FF are the bits 48.. of word 3
            let chars = match chars {
                Some(c) if seen[3] >> 48 != 0 => {
                    Some(self.chars4.get_or_init(|| c.clone().with_four_byte(vocab)))
                }
                c => c,
            };
            let cuts = self.cuts.get_or_init(|| SafeCuts::build(vocab));
            let sample = &piece[..piece.len().min(256)];
            // (with four-byte characters, per-segment work costs more than the chunk
            // merges with their atomic emoji unless the segments are very short)
            let min_cuts = if seen[3] >> 48 == 0 {
                sample.len() / SEGMENT_DENSITY
            } else {
                sample.len() / 2
            };
            let per = periodic(sample);
            if !per && cuts.count(sample) >= min_cuts {
                if piece.len() >= SWEEP_MIN {
                    // a long piece tests the bitmaps at nearly every position and looks up
                    // most of its characters and their pairs: load those tables in one
                    // stream each first (cold random CJK +8-29 %, see docs/DEVELOPING.md)
                    cuts.touch();
                    if let Some(c) = chars {
                        c.touch();
                    }
                    vocab.touch_bloom();
                }
                self.encode_segmented(vocab, chars, cuts, piece, out)
            } else {
                if piece.len() >= SWEEP_MIN && !per && seen[2] | seen[3] == 0 {
                    // a long ASCII piece merges chunk after chunk, each step looking up
                    // random short tokens: load the index's Bloom filter and compact
                    // table of 3-4 byte tokens in one stream each first (cold random
                    // letters +20 to +40 %, see docs/DEVELOPING.md)
                    vocab.touch_index();
                }
                self.encode_chunked(vocab, chars, piece, out)
            }
        };
        if ok != Ok(true) {
            out.truncate(base);
            return false;
        }
        true
    }

    /// Cut `piece` at every position [`SafeCuts`] proves that no token crosses and encode
    /// the segments independently: no merge can join parts across such a position (every
    /// part is a token), so the merge of the piece is the concatenation of the segments'
    /// merges. Segments of one or two bytes, or one atomic character, are emitted
    /// directly; segments that are reachable tokens are that token; the others are merged
    /// ([`Backtrack::encode_chunked`] when long).
    pub fn encode_segmented(
        &self,
        vocab: &Vocab,
        chars: Option<&AtomicChars>,
        cuts: &SafeCuts,
        piece: &[u8],
        out: &mut Vec<u32>,
    ) -> Step<bool> {
        let n = piece.len();
        let mut start = 0usize;
        // safe positions in blocks of 64 (`from..from + 64`), found without branches
        let mut from = 0usize;
        while from < n {
            let mut mask = cuts.mask(piece, from);
            while mask != 0 {
                let c = from + mask.trailing_zeros() as usize;
                mask &= mask - 1;
                if !self.encode_segment(vocab, chars, &piece[start..c], out)? {
                    return Ok(false);
                }
                start = c;
            }
            from += 64;
        }
        if !self.encode_segment(vocab, chars, &piece[start..n], out)? {
            return Ok(false);
        }
        Ok(true)
    }

    /// Append the merge of `seg` (a segment of [`Backtrack::encode_segmented`]) to `out`.
    #[inline]
    fn encode_segment(
        &self,
        vocab: &Vocab,
        chars: Option<&AtomicChars>,
        seg: &[u8],
        out: &mut Vec<u32>,
    ) -> Step<bool> {
        let byte = |b: u8| vocab.byte_id(b).unwrap_or(NONE);
        match seg.len() {
            0 => return Ok(true),
            1 => {
                out.push(byte(seg[0]));
                return Ok(true);
            }
            2 => {
                match vocab.get(seg) {
                    Some(t) => out.push(t),
                    None => out.extend([byte(seg[0]), byte(seg[1])]),
                }
                return Ok(true);
            }
            _ => {}
        }
        if let Some((l, first, id)) = chars.and_then(|c| c.at_parts(seg, 0)) {
            // one atomic character alone: its isolated merge (one part, or a token of
            // two bytes and a single byte)
            if l == seg.len() {
                if first == l {
                    out.push(id);
                    return Ok(true);
                }
                if first == 1 && l == 3 {
                    out.extend([byte(seg[0]), id]);
                    return Ok(true);
                }
                if first == 2 && l == 3 {
                    out.extend([id, byte(seg[2])]);
                    return Ok(true);
                }
            }
        }
        if seg.len() == 3 {
            // the merge of three bytes: the lower-ranked of the two pairs (the left one
            // among equals), then the whole if it is a token
            let r01 = vocab.get(&seg[..2]).unwrap_or(NONE);
            let r12 = vocab.get(&seg[1..]).unwrap_or(NONE);
            if r01 == NONE && r12 == NONE {
                out.extend([byte(seg[0]), byte(seg[1]), byte(seg[2])]);
            } else if let Some(t) = vocab.get_filtered(seg) {
                out.push(t);
            } else if r01 <= r12 {
                out.extend([r01, byte(seg[2])]);
            } else {
                out.extend([byte(seg[0]), r12]);
            }
            return Ok(true);
        }
        if let Some(t) = vocab.get_filtered(seg) {
            // the merge of a token's own bytes gives it unless it is unreachable
            if self.info(vocab, t) != UNREACHABLE {
                out.push(t);
                return Ok(true);
            }
        }
        if seg.len() <= CHUNK {
            return Ok(rank_bpe::linear(vocab, chars, seg, out, &mut |_, _| {}));
        }
        // (periodic pieces, whose chunks repeat, are not segmented)
        self.encode_chunks(vocab, chars, seg, out, false)
    }

    /// Cut `piece` into chunks of about [`CHUNK`] bytes, merge each independently with
    /// the (fast, small) byte-rank merge and check the seams: the result is the encoding
    /// iff every seam's two tokens are compatible (a chunk's own neighbours are, being a
    /// merge output). A failed seam is repaired by re-merging a few tokens on each side
    /// and checking the two new seams; if that does not settle quickly (runs whose tokens
    /// are longer than a chunk), the whole piece goes to [`Backtrack::encode`].
    ///
    /// Chunk merges are remembered in the per-thread [`chunk_cache`] (a piece that repeats
    /// itself merges each distinct chunk once), and seam checks in a small per-call table.
    pub fn encode_chunked(
        &self,
        vocab: &Vocab,
        chars: Option<&AtomicChars>,
        piece: &[u8],
        out: &mut Vec<u32>,
    ) -> Step<bool> {
        self.encode_chunks(vocab, chars, piece, out, true)
    }

    /// [`Backtrack::encode_chunked`]; `cache`: whether to consult the chunk cache.
    fn encode_chunks(
        &self,
        vocab: &Vocab,
        chars: Option<&AtomicChars>,
        piece: &[u8],
        out: &mut Vec<u32>,
        cache: bool,
    ) -> Step<bool> {
        let n = piece.len();
        let base = out.len();
        let mut tmp: Vec<u32> = Vec::with_capacity(CHUNK);
        let mut region: Vec<u32> = Vec::with_capacity(CHUNK);
        let mut pos = 0usize;
        let (mut use_cache, mut tries, mut hits) = (cache, 0u32, 0u32);
        // seam results: key `a << 32 | b` (ids are below 2^25, so u64::MAX is free)
        let mut seam_keys = [u64::MAX; SEAM_CACHE];
        let mut seam_ok = [false; SEAM_CACHE];
        while pos < n {
            let mut cut = (pos + CHUNK).min(n);
            if cut < n && piece[cut] < 0x80 && piece[cut - 1] < 0x80 {
                // ASCII: where the pair across the cut merges last (fewer failed seams)
                cut = self.cut_near(vocab, piece, cut);
            } else {
                // cut at a UTF-8 character start when possible (fewer failed seams)
                while cut < n && cut > pos + CHUNK / 2 && (piece[cut] & 0xc0) == 0x80 {
                    cut -= 1;
                }
            }
            tmp.clear();
            let chunk = &piece[pos..cut];
            if use_cache && chunk_cache::get(self.owner, chunk, &mut tmp) {
                hits += 1;
            } else {
                if !rank_bpe::linear(vocab, chars, chunk, &mut tmp, &mut |_, _| {}) {
                    return Ok(false);
                }
                if use_cache {
                    chunk_cache::put(self.owner, chunk, &tmp);
                }
            }
            if use_cache {
                tries += 1;
                use_cache = hits > 0 || tries < CACHE_PROBE_CHUNKS;
            }
            let seam_fits = if out.len() == base {
                true
            } else {
                let (a, b) = (out[out.len() - 1], tmp[0]);
                let key = (a as u64) << 32 | b as u64;
                let h = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % SEAM_CACHE;
                if seam_keys[h] == key {
                    seam_ok[h]
                } else {
                    let ok = self.compatible(vocab, a, b)?;
                    seam_keys[h] = key;
                    seam_ok[h] = ok;
                    ok
                }
            };
            if seam_fits {
                out.extend_from_slice(&tmp);
                pos = cut;
                continue;
            }
            // repair: re-merge the last r tokens before the seam and the first r after
            let mut r = 1usize;
            loop {
                let have = out.len() - base;
                let left: usize = out[out.len() - r.min(have)..]
                    .iter()
                    .map(|&t| self.len[t as usize] as usize)
                    .sum();
                let right: usize = tmp[..r.min(tmp.len())]
                    .iter()
                    .map(|&t| self.len[t as usize] as usize)
                    .sum();
                if r > have || r > tmp.len() || left + right >= rank_bpe::LINEAR_MAX {
                    out.truncate(base);
                    return self.encode(vocab, piece, out);
                }
                region.clear();
                let span = &piece[pos - left..pos + right];
                if !rank_bpe::linear(vocab, chars, span, &mut region, &mut |_, _| {}) {
                    return Ok(false);
                }
                let before = out.len() - r;
                let left_ok =
                    before == base || self.compatible(vocab, out[before - 1], region[0])?;
                let right_ok =
                    r == tmp.len() || self.compatible(vocab, region[region.len() - 1], tmp[r])?;
                if left_ok && right_ok {
                    out.truncate(before);
                    out.extend_from_slice(&region);
                    out.extend_from_slice(&tmp[r..]);
                    break;
                }
                r *= 2;
            }
            pos = cut;
        }
        Ok(true)
    }

    /// Where to end a chunk near `target` (`CUT_WINDOW <= target < text.len()`): at a
    /// UTF-8 character start whose byte pair across the cut is not a token or the token
    /// of highest id among the last `CUT_WINDOW` positions (such pairs merge last, so the
    /// seam is seldom crossed by the encoding), the latest among equals.
    #[inline]
    fn cut_near(&self, vocab: &Vocab, text: &[u8], target: usize) -> usize {
        let mut best = target;
        let mut best_r = 0u32;
        for c in target + 1 - CUT_WINDOW..=target {
            if text[c] >= 0x80 || text[c - 1] >= 0x80 {
                continue;
            }
            let r = vocab.get(&text[c - 1..c + 1]).unwrap_or(NONE);
            if r >= best_r {
                best_r = r;
                best = c;
            }
        }
        best
    }

    /// The longest reachable token that is a prefix of `text[pos..]` and at most
    /// `max` bytes long, if any.
    #[inline]
    fn longest(&self, vocab: &Vocab, text: &[u8], pos: usize, max: usize) -> Step<u32> {
        let rest = text.len() - pos;
        let mut l = max.min(rest);
        if rest >= 2 {
            let k = (text[pos] as usize) << 8 | text[pos + 1] as usize;
            l = l.min((self.max_len2[k] as usize).max(1));
        } else {
            l = l.min(1);
        }
        while l >= 1 {
            let found = if l == 1 {
                vocab.byte_id(text[pos])
            } else {
                vocab.get_filtered(&text[pos..pos + l])
            };
            if let Some(t) = found {
                match self.info(vocab, t) {
                    UNREACHABLE => {}
                    NON_MONOTONE => return Err(Unsupported),
                    _ => return Ok(t),
                }
            }
            l -= 1;
        }
        Ok(NONE)
    }

    /// Append the encoding of `piece` to `out` by the backtracking search.
    pub fn encode(&self, vocab: &Vocab, piece: &[u8], out: &mut Vec<u32>) -> Step<bool> {
        let n = piece.len();
        let base = out.len();
        // dead[p]: a search from position p (after the unique tokenization of the text
        // before it) already failed
        let mut dead = vec![0u64; n / 64 + 1];
        let is_dead = |d: &[u64], p: usize| d[p >> 6] >> (p & 63) & 1 == 1;
        let mut pos = 0usize;
        let mut cand = self.longest(vocab, piece, 0, usize::MAX)?;
        while pos < n {
            let last = if out.len() > base {
                out[out.len() - 1]
            } else {
                NONE
            };
            let mut t = cand;
            loop {
                if t == NONE {
                    if last == NONE {
                        return Ok(false);
                    }
                    dead[pos >> 6] |= 1 << (pos & 63);
                    out.pop();
                    let l = self.len[last as usize] as usize;
                    pos -= l;
                    cand = if l > 1 {
                        self.longest(vocab, piece, pos, l - 1)?
                    } else {
                        NONE
                    };
                    break;
                }
                let tl = self.len[t as usize] as usize;
                let e = pos + tl;
                if !is_dead(&dead, e) && (last == NONE || self.compatible(vocab, last, t)?) {
                    out.push(t);
                    pos = e;
                    if pos < n {
                        cand = self.longest(vocab, piece, pos, usize::MAX)?;
                    }
                    break;
                }
                t = if tl > 1 {
                    self.longest(vocab, piece, pos, tl - 1)?
                } else {
                    NONE
                };
            }
        }
        Ok(true)
    }
}

/// Whether `text` repeats itself with a period of at most half its length (such pieces
/// are left to the chunked merge, whose chunk cache serves the repeats).
fn periodic(text: &[u8]) -> bool {
    let n = text.len();
    if n < 16 {
        return false;
    }
    let head = u64::from_le_bytes(text[..8].try_into().unwrap_or([0; 8]));
    (1..=n / 2).any(|p| {
        u64::from_le_bytes(text[p..p + 8].try_into().unwrap_or([0; 8])) == head
            && text[p..] == text[..n - p]
    })
}

/// Positions inside a piece that no token crosses, so that the piece's merge is the
/// concatenation of the merges on both sides.
///
/// A token occurrence `[s, e)` crosses position `c` (the boundary before byte `c`) when
/// `s < c < e`. Then either `s = c - 1` and the token starts with the two bytes
/// `text[c-1..c+1]`; or `e = c + 1` and it ends with them; or `s <= c - 2` and `e >= c + 2`
/// and it contains the four bytes `text[c-2..c+2]`. So `c` is safe when the pair is
/// neither a prefix nor a suffix of a token of two or more bytes (an exact bitmap) and the
/// window is not inside any token (a hashed bitmap: a collision only forbids a cut). In
/// the merge every part is a token, so no part ever contains both bytes `c - 1` and `c`.
/// Random CJK and emoji have many such positions (o200k: about 40 % of the byte
/// positions), random letters few (2-5 %).
#[derive(Debug)]
pub struct SafeCuts {
    /// Bit `b0 | b1 << 8`: some token of two or more bytes starts or ends with `b0 b1`.
    pair: Vec<u64>,
    /// Bit [`SafeCuts::quad_bit`] of every 4-byte window inside a token.
    quad: Vec<u64>,
}

impl SafeCuts {
    /// One pass over the vocabulary.
    pub fn build(vocab: &Vocab) -> SafeCuts {
        let mut pair = vec![0u64; 1024];
        let mut quad = vec![0u64; 1 << (QUAD_BITS - 6)];
        let set = |v: &mut Vec<u64>, i: usize| v[i >> 6] |= 1 << (i & 63);
        for (_, b) in vocab.iter() {
            let n = b.len();
            if n < 2 {
                continue;
            }
            set(&mut pair, b[0] as usize | (b[1] as usize) << 8);
            set(&mut pair, b[n - 2] as usize | (b[n - 1] as usize) << 8);
            for w in b.windows(4) {
                set(
                    &mut quad,
                    Self::quad_bit(u32::from_le_bytes([w[0], w[1], w[2], w[3]])),
                );
            }
        }
        SafeCuts { pair, quad }
    }

    /// Index in `pair` of the two middle bytes of the window `w` (little-endian).
    #[inline(always)]
    fn pair_index(w: u32) -> usize {
        (w >> 8) as usize & 0xffff
    }

    #[inline(always)]
    fn quad_bit(w: u32) -> usize {
        (w.wrapping_mul(0x9E37_79B1) >> (32 - QUAD_BITS)) as usize
    }

    /// Whether no token can cross position `c` of `text` (`2 <= c`, `c + 2 <= text.len()`).
    #[inline(always)]
    pub fn safe(&self, text: &[u8], c: usize) -> bool {
        self.safe_window(u32::from_le_bytes([
            text[c - 2],
            text[c - 1],
            text[c],
            text[c + 1],
        ]))
    }

    /// Whether no token can cross the middle of the 4-byte window `w` (little-endian):
    /// its two middle bytes neither start nor end a token, and it is not inside one.
    /// Branch-free, so that [`SafeCuts::mask`]'s 64 tests overlap.
    #[inline(always)]
    fn safe_window(&self, w: u32) -> bool {
        let p = Self::pair_index(w);
        let q = Self::quad_bit(w);
        (self.pair[p >> 6] >> (p & 63) | self.quad[q >> 6] >> (q & 63)) & 1 == 0
    }

    /// Bit `k` set iff position `from + k` of `text` is safe (positions outside
    /// `2..=text.len() - 2` never are). Branch-free: the 64 tests' loads overlap.
    #[inline]
    pub fn mask(&self, text: &[u8], from: usize) -> u64 {
        let n = text.len();
        let lo = from.max(2);
        let hi = (from + 64).min((n + 1).saturating_sub(2));
        let mut m = 0u64;
        if lo >= hi {
            return 0;
        }
        // the windows text[c-2..c+2] for c in lo..hi
        let span = &text[lo - 2..hi + 1];
        for (k, win) in span.windows(4).enumerate() {
            let c = lo + k;
            let w = u32::from_le_bytes([win[0], win[1], win[2], win[3]]);
            m |= (self.safe_window(w) as u64) << (c - from);
        }
        m
    }

    /// Pull both bitmaps into the caches ([`crate::util::touch_lines`]; 264 KB).
    pub fn touch(&self) {
        crate::util::touch_lines(&self.pair);
        crate::util::touch_lines(&self.quad);
    }

    /// Number of safe positions in `text`.
    pub fn count(&self, text: &[u8]) -> usize {
        (2..(text.len() + 1).saturating_sub(2))
            .filter(|&c| self.safe(text, c))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atomic_chars::tests::lcg;

    fn vocab(tokens: &[&[u8]]) -> Vocab {
        crate::vocab::test_vocab(tokens)
    }

    fn heap(v: &Vocab, piece: &[u8]) -> Vec<u32> {
        let mut out = vec![];
        assert!(rank_bpe::heap(v, piece, &mut out, &mut |_, _| {}));
        out
    }

    #[test]
    fn matches_heap_on_small_vocab() {
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
            b"ca",
            b"cab",
            b"abc",
        ]);
        let bt = Backtrack::build(&v).expect("qualifies");
        let mut seed = 99u64;
        for len in 1..400 {
            for alphabet in [2u64, 3] {
                let piece: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        b'a' + ((seed >> 33) % alphabet) as u8
                    })
                    .collect();
                let mut out = vec![];
                assert_eq!(bt.encode(&v, &piece, &mut out), Ok(true));
                let expect = heap(&v, &piece);
                assert_eq!(out, expect, "{:?}", String::from_utf8_lossy(&piece));
                out.clear();
                assert_eq!(bt.encode_chunked(&v, None, &piece, &mut out), Ok(true));
                assert_eq!(out, expect, "{:?}", String::from_utf8_lossy(&piece));
            }
        }
        for piece in [
            &b"a".repeat(1000)[..],
            &b"ab".repeat(500),
            &b"abc".repeat(333),
        ] {
            let mut out = vec![];
            assert_eq!(bt.encode(&v, piece, &mut out), Ok(true));
            assert_eq!(out, heap(&v, piece));
            out.clear();
            assert_eq!(bt.encode_chunked(&v, None, piece, &mut out), Ok(true));
            assert_eq!(out, heap(&v, piece));
        }
    }

    /// Periodic pieces (the chunk cache hits) with random edits, on two vocabularies
    /// alternately (the cache is per thread and keyed by the vocabulary).
    #[test]
    fn chunk_cache_keeps_results_exact() {
        let v1 = vocab(&[b"ab", b"bc", b"abc", b"ca", b"cab", b"aa", b"bcab", b"cc"]);
        let v2 = vocab(&[b"bc", b"ab", b"ca", b"aa", b"abc", b"bb", b"bca", b"abca"]);
        let b1 = Backtrack::build(&v1).unwrap();
        let b2 = Backtrack::build(&v2).unwrap();
        let mut next = lcg(0x5eed_u64);
        for _ in 0..300 {
            let unit: Vec<u8> = (0..1 + next(70)).map(|_| b"abcd"[next(4)]).collect();
            let n = 200 + next(5000);
            let mut piece: Vec<u8> = unit.iter().copied().cycle().take(n).collect();
            for _ in 0..next(4) {
                let at = next(piece.len());
                piece[at] = b"abcd"[next(4)];
            }
            for (v, bt) in [(&v1, &b1), (&v2, &b2), (&v1, &b1)] {
                let mut out = vec![];
                assert_eq!(bt.encode_chunked(v, None, &piece, &mut out), Ok(true));
                assert_eq!(out, heap(v, &piece));
            }
        }
    }

    /// Long pieces of random emoji ZWJ sequences on random vocabularies of emoji fragments
    /// (four-byte atomic characters in the chunked merge, with seams inside and between
    /// sequences) against the heap merge.
    #[test]
    fn four_byte_chars_in_long_pieces_match_heap() {
        let emoji: Vec<Vec<u8>> = [
            "\u{1F468}",
            "\u{1F469}",
            "\u{1F400}",
            "\u{1F3FD}",
            "\u{1F680}",
        ]
        .iter()
        .map(|c| c.as_bytes().to_vec())
        .collect();
        let zwj = "\u{200D}".as_bytes().to_vec();
        let mut next = lcg(0xfeed_u64);
        let (mut four, mut done) = (0usize, 0usize);
        for _ in 0..60 {
            let mut toks: Vec<Vec<u8>> = vec![];
            for e in &emoji {
                for (a, b) in [(0, 2), (0, 3), (1, 4), (2, 4), (0, 4), (1, 3)] {
                    if next(3) == 0 {
                        toks.push(e[a..b].to_vec());
                    }
                }
                // tokens across the boundaries with the joiner and the next character
                let mut t = e[3..].to_vec();
                t.extend_from_slice(&zwj[..1 + next(3)]);
                toks.push(t);
                let mut t = zwj[1 + next(2)..].to_vec();
                t.extend_from_slice(&e[..1 + next(4)]);
                toks.push(t);
            }
            toks.push(zwj.clone());
            // random ranks, no duplicates
            let mut shuffled: Vec<Vec<u8>> = vec![];
            while !toks.is_empty() {
                let t = toks.swap_remove(next(toks.len()));
                if !shuffled.contains(&t) {
                    shuffled.push(t);
                }
            }
            let refs: Vec<&[u8]> = shuffled.iter().map(|t| t.as_slice()).collect();
            let v = vocab(&refs);
            let bt = Backtrack::build(&v).expect("qualifies");
            let chars = AtomicChars::build(&v);
            for _ in 0..4 {
                let mut piece = vec![];
                while piece.len() < 200 + next(1500) {
                    piece.extend_from_slice(&emoji[next(emoji.len())]);
                    if next(3) > 0 {
                        piece.extend_from_slice(&zwj);
                    }
                }
                let mut out = vec![];
                if bt.encode_long(&v, Some(&chars), &piece, &mut out) {
                    assert_eq!(out, heap(&v, &piece), "{piece:x?}");
                    done += 1;
                }
            }
            let c4 = bt
                .chars4
                .get()
                .expect("built for pieces with four-byte characters");
            four += (0..emoji.len())
                .filter(|&k| c4.at_parts(&emoji[k], 0).is_some())
                .count();
        }
        // many vocabularies are monotone (the others hand the piece to the heap merge)
        assert!(four > 60 && done > 40, "{four} {done}");
    }

    #[test]
    fn refuses_unsupported_vocabs() {
        // BPE("abc"): bc (256) first, then a + bc = abc (257): monotone
        let v = vocab(&[b"bc", b"abc", b"ab"]);
        let bt = Backtrack::build(&v).unwrap();
        let piece = b"abc".repeat(100);
        let mut out = vec![];
        assert!(bt.encode_long(&v, None, &piece, &mut out));
        assert_eq!(out, heap(&v, &piece));
        // BPE("abc"): ab (257), then ab + c = abc (256 < 257): not monotone, so a piece
        // that meets "abc" is refused (and `out` left untouched)
        let v = vocab(&[b"abc", b"ab"]);
        let bt = Backtrack::build(&v).unwrap();
        let mut out = vec![7];
        assert!(!bt.encode_long(&v, None, &piece, &mut out));
        assert_eq!(out, vec![7]);
        let v2 = Vocab::from_pairs(vec![
            (b"a".to_vec(), 3),
            (b"b".to_vec(), 4),
            (b"c".to_vec(), 5),
            (b"ab".to_vec(), 2),
            (b"abc".to_vec(), 1),
        ])
        .unwrap();
        // bytes must all be tokens: this vocabulary lacks most bytes
        assert!(Backtrack::build(&v2).is_none());
    }

    /// The bundled vocabularies: long pieces of many kinds, chunked and backtracking
    /// encoders against the heap merge.
    #[test]
    fn matches_heap_on_bundled_vocabs() {
        let alphabets: Vec<Vec<char>> = vec![
            "abcdefghijklmnopqrstuvwxyz".chars().collect(),
            "ab".chars().collect(),
            "x".chars().collect(),
            " ".chars().collect(),
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                .chars()
                .collect(),
            (0x4e00..0x4e00 + 3000).filter_map(char::from_u32).collect(),
            "\u{1F468}\u{200D}\u{1F469}\u{1F467}\u{1F466}\u{fe0f}\u{1f3fd}"
                .chars()
                .collect(),
            "приветмир".chars().collect(),
            "-=".chars().collect(),
            "\u{e9}\u{301}\u{e8}e".chars().collect(),
            // random emoji with ZWJ and skin tones (four-byte atomic characters)
            (0x1F400..0x1F43F)
                .chain(0x1F680..0x1F6C5)
                .chain(0x1F3FB..0x1F400)
                .chain([0x1F468, 0x1F469, 0x1F9D1, 0x200D, 0x200D, 0x200D, 0x20021])
                .filter_map(char::from_u32)
                .collect(),
        ];
        for (file, pairs) in crate::testutil::bundled_pairs() {
            let v = Vocab::from_pairs(pairs).unwrap();
            let bt = Backtrack::build(&v).expect("bundled vocabularies qualify");
            let chars = AtomicChars::build(&v);
            let mut seed = 0x9e3779b97f4a7c15u64;
            let mut rnd = move || crate::testutil::xorshift(&mut seed);
            for case in 0..88 {
                let alpha = &alphabets[case % alphabets.len()];
                let nchars = 150 + (rnd() % 900) as usize;
                let text: String = (0..nchars)
                    .map(|_| alpha[(rnd() % alpha.len() as u64) as usize])
                    .collect();
                let piece = text.as_bytes();
                let expect = heap(&v, piece);
                let mut a = vec![];
                assert_eq!(bt.encode(&v, piece, &mut a), Ok(true));
                assert_eq!(a, expect, "{file} backtracking {text:?}");
                let mut b = vec![];
                assert_eq!(bt.encode_chunked(&v, None, piece, &mut b), Ok(true));
                assert_eq!(b, expect, "{file} chunked {text:?}");
                let mut c = vec![];
                assert!(bt.encode_long(&v, Some(&chars), piece, &mut c));
                assert_eq!(c, expect, "{file} chunked with atomic characters {text:?}");
                let cuts = bt.cuts.get_or_init(|| SafeCuts::build(&v));
                for ch in [None, Some(&chars)] {
                    let mut d = vec![];
                    assert_eq!(bt.encode_segmented(&v, ch, cuts, piece, &mut d), Ok(true));
                    assert_eq!(d, expect, "{file} segmented {text:?}");
                }
            }
        }
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use crate::bpe::MergeTable;
    use proptest::prelude::*;

    /// Units of texts and tokens: ASCII, two-, three- and four-byte characters, a joiner
    /// and fragments of characters (so that atomic, split and partial characters occur).
    const UNITS: [&[u8]; 14] = [
        b"a",
        b"b",
        b"c",
        "\u{e9}".as_bytes(),
        "\u{4e2d}".as_bytes(),
        "\u{6587}".as_bytes(),
        "\u{5b57}".as_bytes(),
        "\u{200d}".as_bytes(),
        "\u{1F468}".as_bytes(),
        "\u{1F469}".as_bytes(),
        b"\xe4\xb8",
        b"\xb8\xad",
        b"\xf0\x9f",
        b"\x98\x80",
    ];

    fn concat(units: &[usize]) -> Vec<u8> {
        crate::rank_bpe::proptests::concat_in(&UNITS, units)
    }

    /// Every byte, then the distinct token strings in the given order (ids are ranks).
    fn vocab_of(tokens: &[Vec<usize>]) -> Vocab {
        crate::rank_bpe::proptests::vocab_in(&UNITS, tokens)
    }

    /// A long text: random units, runs of one unit and repeats of tokens.
    fn text_of(tokens: &[Vec<usize>], plan: &[(usize, usize)]) -> Vec<u8> {
        let mut text = vec![];
        for &(kind, u) in plan {
            match kind % 4 {
                0 => text.extend(concat(&tokens[u % tokens.len()])),
                1 => text.extend(concat(&[u]).repeat(1 + u % 5)),
                _ => text.extend(concat(&[u, u / 3 + kind])),
            }
        }
        text
    }

    proptest! {
        /// Safe cuts are sound: no token occurs across a position [`SafeCuts::safe`]
        /// accepts (brute force over every occurrence), and [`SafeCuts::mask`] agrees with
        /// [`SafeCuts::safe`] at every position.
        #[test]
        fn safe_cuts_are_never_crossed(
            tokens in proptest::collection::vec(proptest::collection::vec(0usize..14, 2..7), 1..60),
            plan in proptest::collection::vec((0usize..4, 0usize..100), 1..200),
        ) {
            let v = vocab_of(&tokens);
            let cuts = SafeCuts::build(&v);
            let text = text_of(&tokens, &plan);
            let n = text.len();
            let max = v.max_token_len();
            for c in 2..(n + 1).saturating_sub(2) {
                if !cuts.safe(&text, c) {
                    continue;
                }
                for s in c.saturating_sub(max)..c {
                    for e in c + 1..=(s + max).min(n) {
                        prop_assert!(v.get(&text[s..e]).is_none(), "token {:x?} crosses {}", &text[s..e], c);
                    }
                }
            }
            let mut from = 0;
            while from <= n {
                let m = cuts.mask(&text, from);
                for k in 0..64 {
                    let c = from + k;
                    let want = c >= 2 && c + 2 <= n && cuts.safe(&text, c);
                    prop_assert_eq!(m >> k & 1 == 1, want, "position {}", c);
                }
                from += 64;
            }
        }

        /// The segmented encoder (with and without atomic characters, four-byte ones
        /// included), the chunked one and `encode_long` equal the plain merge-table
        /// encoding on random vocabularies and long random pieces.
        #[test]
        fn segmented_equals_the_plain_merge(
            tokens in proptest::collection::vec(proptest::collection::vec(0usize..14, 2..7), 1..80),
            plan in proptest::collection::vec((0usize..4, 0usize..100), 40..300),
        ) {
            let v = vocab_of(&tokens);
            let table = MergeTable::from_vocab_ranks(&v);
            let Some(bt) = Backtrack::build(&v) else {
                return Ok(());
            };
            let chars = AtomicChars::build(&v);
            let chars4 = chars.clone().with_four_byte(&v);
            let cuts = SafeCuts::build(&v);
            let text = text_of(&tokens, &plan);
            let mut want = vec![];
            table.encode_piece(&text, &mut want).unwrap();
            for c in [None, Some(&chars), Some(&chars4)] {
                let mut got = vec![];
                match bt.encode_segmented(&v, c, &cuts, &text, &mut got) {
                    // a token outside the supported class: the caller uses the heap merge
                    Err(Unsupported) => continue,
                    Ok(ok) => {
                        prop_assert!(ok);
                        prop_assert_eq!(&got, &want);
                    }
                }
            }
            let mut got = vec![];
            if bt.encode_long(&v, Some(&chars), &text, &mut got) {
                prop_assert_eq!(&got, &want);
            }
        }
    }
}
