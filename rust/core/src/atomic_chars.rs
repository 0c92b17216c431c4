//! Two- and three-byte UTF-8 characters that tiktoken's byte-pair merge provably turns
//! into their own token, in their context, before any of their bytes merges with a
//! neighbour. [`crate::rank_bpe`] starts such occurrences as one part instead of two or
//! three bytes, which halves (Cyrillic, Greek, Arabic, ...) or thirds (CJK, Indic, ...)
//! the work of merging non-ASCII pieces, with identical output.
//!
//! # Why it is exact
//! Let `c` be a byte string that is a token and `M` the largest id created while merging
//! `c` alone (its internal merges; they must end in the single token `c`). Take an
//! occurrence of `c` in a piece, with neighbouring bytes `p` (before) and `q` (after), if
//! any. Look at the first merge that involves some of `c`'s bytes and some byte outside.
//! Until then every part lies wholly inside or wholly outside the occurrence, and the
//! parts inside are those of a stage of merging `c` alone; so that merge joins a part
//! ending in `p` to `c`'s current first part, or `c`'s current last part to a part
//! starting with `q`, and the new token ends with that first part or starts with that
//! last part. Before `c` is complete (it has two or three bytes), its first part is
//! `c[0]` or `c[0] c[1]`, its last part `c[last]` or `c[last-1] c[last]`: so the new
//! token has `p c[0]` as its last two bytes or as the two before its last byte, or
//! `c[last] q` as its first two bytes or as its second and third. Suppose every token
//! with `p c[0]` at one of those two places from its end, and every token with `c[last] q`
//! at one of those two places from its start, has an id above `M`. While `c` is
//! incomplete, one of its internal merges (id ≤ `M`) is always available, so the merge,
//! which always takes the lowest id, never picks a merge across its boundaries first;
//! internal merges involve no byte outside `c`. So the internal
//! merges of `c` interleave with merges elsewhere that neither depend on nor affect them,
//! and removing them leaves exactly the sequence of merges the same algorithm performs
//! when `c` starts as one part. This holds for each of several disjoint occurrences at
//! once, and is about bytes only, so it also holds for invalid UTF-8.
//!
//! The build records, for every candidate character, its id and `M`, and for every byte
//! pair the lowest id of a token that has it at one of the two places near its end
//! (`pair_min`, checked before an occurrence) or near its start (`right_min`, checked
//! after it); the check at each occurrence is two table lookups. (In CJK text this is far
//! sharper than "a token containing the pair": the tokens of two-character words contain
//! `c[last] q` in their middle, at low ids.)
//!
//! # Characters that end in two parts
//! The argument never uses that `c` is a token: if the merge of `c`'s bytes alone stops
//! at several parts `P1 … Pk` (no pair of them is a token), `M` is the largest id of the
//! merges it did and every token containing `p c[0]` or `c[last] q` has an id above `M`,
//! then in context the internal merges of `c` again run to completion (while they are
//! not complete one of id ≤ `M` is available, and the parts inside `c` face exactly the
//! candidates they face alone), before any merge across its boundaries, and independently
//! of everything else; removing them leaves the merge that starts `c` as the parts
//! `P1 … Pk`. [`AtomicChars::build`] records such *split* candidates for the three-byte
//! characters that are not tokens but have a two-byte sub-token (`xy` or `yz`): alone,
//! the lower of the two merges and the merge stops at `[xy][z]` or `[x][yz]` (`xyz` is
//! not a token), with `M` the id of that merge. In CJK text most characters are of this
//! kind (in o200k, 2,515 of the 20,902 unified ideographs are tokens), so this removes
//! most of the merge work there. [`AtomicChars::at_parts`] returns them;
//! [`AtomicChars::at`] (one part per occurrence) does not.
//!
//! # Four-byte characters (long pieces only)
//! [`AtomicChars::with_four_byte`] adds the four-byte characters (emoji, CJK extensions)
//! whose bytes merge alone into one token or into the parts `[3][1]`, `[1][3]` or
//! `[2][1][1]` (almost all emoji in o200k and cl100k: `F0 9F` and `F0 9F xx` are tokens,
//! the emoji themselves mostly not). The argument is the one above with up to three bytes
//! in an incomplete first or last part, so the pair across each boundary is checked at up
//! to three places, fewer where the shape fixes the part (a final single byte never grows).
//! Only [`crate::backtrack`]'s chunked merge uses the extended table.
//!
//! # HF merge lists
//! [`AtomicChars::from_merges`] builds the same table for an explicit merge list
//! ([`MergeTable`], HF's `merge_all`: lowest rank first, leftmost among equals), with
//! merge ranks in place of ids. The argument above carries over with one sharpening: before
//! the first merge that crosses a boundary of the occurrence, every part lies wholly inside
//! or wholly outside it, so that merge joins a part ending in `p` to a part starting with
//! `c[0]` (or one ending in `c[last]` to one starting with `q`). So `pair_min` holds, for
//! each byte pair `x y`, the lowest rank of a merge `(l, r)` whose left token ends in `x`
//! and whose right token starts with `y`; `M` is the largest rank among the merges of `c`'s
//! bytes alone, which must end in the single token `c`.

use crate::bpe::MergeTable;
use crate::vocab::Vocab;

const NONE: u32 = u32::MAX;

/// A candidate character: its token id and the largest id of its internal merges.
///
/// For a *split* candidate (a three-byte character that is not a token but whose bytes
/// merge alone into two parts, see "Characters that end in two parts" in the module docs)
/// `id` is the two-byte part and the top two bits of `max_merge` hold the length of the
/// first part (1 or 2); they are 0 for a whole-character candidate.
#[derive(Debug, Clone, Copy)]
struct Cand {
    id: u32,
    max_merge: u32,
}

/// Bits of [`Cand::max_merge`] holding the largest id (candidates with larger ids are
/// not recorded).
const MERGE_MASK: u32 = (1 << 30) - 1;

const NO_CAND: Cand = Cand {
    id: NONE,
    max_merge: NONE,
};

/// Table of the candidate characters of one vocabulary, indexed by their UTF-8 bytes.
#[derive(Debug, Clone)]
pub struct AtomicChars {
    /// Two-byte characters `C2..=DF 80..=BF`: `two[(b0 & 0x1f) << 6 | (b1 & 0x3f)]`.
    two: Box<[Cand]>,
    /// Three-byte characters `E0..=EF 80..=BF 80..=BF`, as a 16-bit index
    /// `(b0 & 0xf) << 12 | (b1 & 0x3f) << 6 | (b2 & 0x3f)`: block `top[index >> 8]` of
    /// `blocks` (block 0 is empty), entry `index & 0xff`.
    top: Box<[u16; 256]>,
    blocks: Vec<[Cand; 256]>,
    /// At `b0 << 8 | b1`: for [`AtomicChars::build`], the lowest id of a token that has
    /// the byte pair `b0 b1` as its last two bytes or as the two before its last; for
    /// [`AtomicChars::from_merges`], the junction ranks (see the module docs).
    pair_min: Box<[u32]>,
    /// For [`AtomicChars::build`]: the lowest id of a token that has the byte pair as its
    /// first two bytes or as its second and third (`None`: use `pair_min`).
    right_min: Option<Box<[u32]>>,
    /// Four-byte characters `F0..=F4 80..=BF 80..=BF 80..=BF` (only after
    /// [`AtomicChars::with_four_byte`]; empty otherwise): block `top4[index >> 8]` of
    /// `blocks` for the 21-bit index of [`idx4`], entry `index & 0xff`.
    top4: Box<[u16]>,
    /// At `(k - 1) << 11 | p << 3 | (b0 & 7)` for `k` in 1..=3: the lowest id of a token
    /// that has the byte pair `p b0` (`b0` the first byte of a four-byte character) ending
    /// at most `k - 1` bytes before its end.
    left4: Box<[u32]>,
    /// At `(k - 1) << 14 | (b3 & 0x3f) << 8 | q` for `k` in 1..=3: the lowest id of a token
    /// that has the byte pair `b3 q` (`b3` a continuation byte) starting at one of its
    /// first `k` bytes.
    right4: Box<[u32]>,
    /// Number of candidate characters (statistics and tests).
    count: usize,
}

impl AtomicChars {
    /// Pull the table of the three-byte characters into the caches.
    pub fn touch(&self) {
        crate::util::touch_lines(self.blocks.as_flattened());
    }
}

#[inline(always)]
fn cont(b: u8) -> bool {
    b & 0xc0 == 0x80
}

/// Index into `two` of a two-byte sequence of the right shape.
#[inline(always)]
fn idx2(b0: u8, b1: u8) -> Option<usize> {
    ((0xc2..=0xdf).contains(&b0) && cont(b1))
        .then_some(((b0 as usize & 0x1f) << 6) | (b1 as usize & 0x3f))
}

/// 21-bit index of a four-byte sequence of the right shape (lead byte `F0..=F7`).
#[inline(always)]
fn idx4(b0: u8, b1: u8, b2: u8, b3: u8) -> Option<usize> {
    (b0 & 0xf8 == 0xf0 && cont(b1) && cont(b2) && cont(b3)).then_some(
        ((b0 as usize & 0x07) << 18)
            | ((b1 as usize & 0x3f) << 12)
            | ((b2 as usize & 0x3f) << 6)
            | (b3 as usize & 0x3f),
    )
}

/// 16-bit index of a three-byte sequence of the right shape.
#[inline(always)]
fn idx3(b0: u8, b1: u8, b2: u8) -> Option<usize> {
    (b0 & 0xf0 == 0xe0 && cont(b1) && cont(b2)).then_some(
        ((b0 as usize & 0x0f) << 12) | ((b1 as usize & 0x3f) << 6) | (b2 as usize & 0x3f),
    )
}

impl AtomicChars {
    /// An empty table (no character starts as one part).
    pub fn empty() -> Self {
        AtomicChars {
            two: vec![NO_CAND; 2048].into_boxed_slice(),
            top: Box::new([0; 256]),
            blocks: vec![[NO_CAND; 256]],
            pair_min: vec![NONE; 65536].into_boxed_slice(),
            right_min: None,
            top4: Box::new([]),
            left4: Box::new([]),
            right4: Box::new([]),
            count: 0,
        }
    }

    /// This table (built by [`AtomicChars::build`] from `vocab`) extended with the
    /// four-byte characters (emoji, rare CJK ext.) whose bytes merge alone into one token,
    /// or into two parts of which one is a single byte (`[F0 9F xx][yy]`: most emoji in
    /// o200k), and whose internal merges provably run first in their context. This is the
    /// argument of the module docs ("Characters that end in two parts"), with the first
    /// (last) part of an incomplete character being one of its first (last) one to three
    /// bytes: the byte pair across each boundary is checked at three places from a token's
    /// end (start), and `M` is the largest id the character's own merge creates.
    ///
    /// Used by the long-piece encoder ([`crate::backtrack`]) only: on the short-piece path
    /// the extra candidates did not pay off on the corpora.
    pub fn with_four_byte(mut self, vocab: &Vocab) -> Self {
        let mut left4 = vec![NONE; 3 << 11].into_boxed_slice();
        let mut right4 = vec![NONE; 3 << 14].into_boxed_slice();
        let mut top4 = vec![0u16; 1 << 13].into_boxed_slice();
        for (id, t) in vocab.iter() {
            let n = t.len();
            for k in 1..=3usize.min(n.saturating_sub(1)) {
                // the pair at place k counts for every table of k or more places
                let (x, y) = (t[n - k - 1], t[n - k]);
                if y & 0xf8 == 0xf0 {
                    for kk in k..=3 {
                        let e = &mut left4[(kk - 1) << 11 | (x as usize) << 3 | (y as usize & 7)];
                        *e = (*e).min(id);
                    }
                }
                let (x, y) = (t[k - 1], t[k]);
                if cont(x) {
                    for kk in k..=3 {
                        let e = &mut right4[(kk - 1) << 14 | (x as usize & 0x3f) << 8 | y as usize];
                        *e = (*e).min(id);
                    }
                }
            }
        }
        // the characters that contain a token of two or more bytes (the others merge to
        // nothing alone): whole-character tokens, characters whose bytes merge alone into
        // a three-byte token and a single byte (most emoji in o200k: `F0 9F xx` + `yy`),
        // or into the token of their first two bytes and two single bytes (cl100k)
        let mut chars: Vec<[u8; 4]> = vec![];
        for (_, c) in vocab.iter() {
            match *c {
                [b0, b1, b2, b3] if idx4(b0, b1, b2, b3).is_some() => chars.push([b0, b1, b2, b3]),
                [b0, b1, b2] if idx4(b0, b1, b2, 0x80).is_some() => {
                    chars.extend((0x80..=0xbfu8).map(|b3| [b0, b1, b2, b3]))
                }
                [b0, b1] if idx4(b0, b1, 0x80, 0x80).is_some() => chars.extend(
                    (0..64 * 64u32).map(|k| [b0, b1, 0x80 | (k >> 6) as u8, 0x80 | (k & 63) as u8]),
                ),
                [b1, b2, b3] if cont(b1) && cont(b2) && cont(b3) => {
                    chars.extend((0xf0..=0xf4u8).map(|b0| [b0, b1, b2, b3]))
                }
                _ => {}
            }
        }
        chars.sort_unstable();
        chars.dedup();
        for c in chars {
            let Some(i) = idx4(c[0], c[1], c[2], c[3]) else {
                continue;
            };
            let Some((cut, m)) = solo_merge(vocab, &c) else {
                continue;
            };
            // one part (the token); two with the longer one a token (`first` = 1 or 3); or
            // the token of the first two bytes and two single bytes (`first` = 2)
            let (id, first) = match cut {
                Cut::Whole => (vocab.get(&c), 0u32),
                Cut::Two(3) => (vocab.get(&c[..3]), 3),
                Cut::Two(1) => (vocab.get(&c[1..]), 1),
                Cut::PairThenBytes => (vocab.get(&c[..2]), 2),
                Cut::Two(_) => continue,
            };
            let Some(id) = id else { continue };
            if m >= MERGE_MASK {
                continue; // ids this large are not recorded
            }
            let hi = i >> 8;
            if top4[hi] == 0 {
                if self.blocks.len() >= u16::MAX as usize {
                    continue;
                }
                self.blocks.push([NO_CAND; 256]);
                top4[hi] = (self.blocks.len() - 1) as u16;
            }
            self.blocks[top4[hi] as usize][i & 0xff] = Cand {
                id,
                max_merge: m | first << 30,
            };
            self.count += 1;
        }
        self.top4 = top4;
        self.left4 = left4;
        self.right4 = right4;
        self
    }

    /// Whether [`AtomicChars::with_four_byte`] extended this table.
    pub fn has_four_byte(&self) -> bool {
        !self.top4.is_empty()
    }

    /// Find the candidate characters of `vocab` (ids are ranks, as in tiktoken).
    pub fn build(vocab: &Vocab) -> Self {
        let mut table = AtomicChars::empty();
        let mut right = vec![NONE; 65536].into_boxed_slice();
        let key = |a: u8, b: u8| (a as usize) << 8 | b as usize;
        for (id, t) in vocab.iter() {
            let n = t.len();
            if n < 2 {
                continue;
            }
            let note = |table: &mut [u32], k: usize| table[k] = table[k].min(id);
            note(&mut table.pair_min, key(t[n - 2], t[n - 1]));
            note(&mut right, key(t[0], t[1]));
            if n >= 3 {
                note(&mut table.pair_min, key(t[n - 3], t[n - 2]));
                note(&mut right, key(t[1], t[2]));
            }
        }
        table.right_min = Some(right);
        for (id, c) in vocab.iter() {
            match *c {
                [x, y] => {
                    if let Some(i) = idx2(x, y).filter(|_| id < MERGE_MASK) {
                        // one internal merge, creating `id`
                        table.two[i] = Cand { id, max_merge: id };
                        table.count += 1;
                    }
                }
                [x, y, z] => {
                    let Some(i) = idx3(x, y, z) else { continue };
                    // alone, the bytes merge through the lower of `xy` and `yz`, then to
                    // `c` (no lower pair: the merge stops at three parts)
                    let first = match (vocab.get(&[x, y]), vocab.get(&[y, z])) {
                        (Some(a), Some(b)) => a.min(b),
                        (Some(a), None) | (None, Some(a)) => a,
                        (None, None) => continue,
                    };
                    table.set3(i, id, first.max(id), 0);
                }
                _ => {}
            }
        }
        // split candidates: three-byte characters that are not tokens
        for b0 in 0xe0..=0xefu8 {
            for b1 in 0x80..=0xbfu8 {
                let xy = vocab.get(&[b0, b1]);
                for b2 in 0x80..=0xbfu8 {
                    let Some(i) = idx3(b0, b1, b2) else { continue };
                    if vocab.get(&[b0, b1, b2]).is_some() {
                        continue;
                    }
                    // alone, the lower of `xy` and `yz` merges, then nothing (`xyz` is
                    // not a token)
                    let (first_len, id) = match (xy, vocab.get(&[b1, b2])) {
                        (Some(a), Some(b)) if a < b => (2, a),
                        (_, Some(b)) => (1, b),
                        (Some(a), None) => (2, a),
                        (None, None) => continue,
                    };
                    table.set3(i, id, id, first_len);
                }
            }
        }
        table
    }

    /// For a table made by [`AtomicChars::from_merges`]: the lowest rank of a merge joining
    /// a token that ends in byte `x` to one that starts with `y` (`u32::MAX` if none).
    #[inline(always)]
    pub(crate) fn junction_min(&self, x: u8, y: u8) -> u32 {
        self.pair_min[(x as usize) << 8 | y as usize]
    }

    /// Find the candidate characters of an HF merge list: `table` merges the tokens of
    /// `vocab` by rank (see the module docs, "HF merge lists").
    pub fn from_merges(vocab: &Vocab, table: &MergeTable) -> Self {
        let mut t = AtomicChars::empty();
        for (l, r, rank, _) in table.iter() {
            let (Some(a), Some(b)) = (vocab.bytes(l), vocab.bytes(r)) else {
                continue;
            };
            if let (Some(&x), Some(&y)) = (a.last(), b.first()) {
                let slot = &mut t.pair_min[(x as usize) << 8 | y as usize];
                *slot = (*slot).min(rank);
            }
        }
        for (id, c) in vocab.iter() {
            let i = match *c {
                [x, y] => idx2(x, y),
                [x, y, z] => idx3(x, y, z),
                _ => None,
            };
            let Some(i) = i else { continue };
            let Some(max_merge) = solo_max_rank(table, c, id) else {
                continue;
            };
            let cand = Cand { id, max_merge };
            if max_merge >= MERGE_MASK {
                continue; // ranks this large are not recorded
            }
            if c.len() == 2 {
                t.two[i] = cand;
                t.count += 1;
            } else {
                t.set3(i, id, max_merge, 0);
            }
        }
        t
    }

    /// Record a three-byte candidate: token `id`, largest internal merge `m`, length of
    /// the first part `split` (0: one part).
    fn set3(&mut self, i: usize, id: u32, m: u32, split: u32) {
        if m >= MERGE_MASK {
            return; // ids this large are not recorded
        }
        let cand = Cand {
            id,
            max_merge: m | split << 30,
        };
        let hi = i >> 8;
        if self.top[hi] == 0 {
            self.blocks.push([NO_CAND; 256]);
            self.top[hi] = (self.blocks.len() - 1) as u16;
        }
        self.blocks[self.top[hi] as usize][i & 0xff] = cand;
        self.count += 1;
    }

    /// Number of candidate characters.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there is no candidate character.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// If a character that may start as one part starts at `piece[i]` (in this context,
    /// see the module docs): its length in bytes and its token id.
    #[inline(always)]
    pub fn at(&self, piece: &[u8], i: usize) -> Option<(usize, u32)> {
        let (len, first, id) = self.at_parts(piece, i)?;
        (first == len).then_some((len, id))
    }

    /// If a candidate character starts at `piece[i]` and its internal merges provably run
    /// first in this context: `(len, first, id)` with its length in bytes, the length of
    /// its first part (`first == len`: one part, the token `id`; else two parts, of which
    /// the one of two bytes is the token `id` and the other a single byte). Split
    /// candidates only come from [`AtomicChars::build`].
    #[inline(always)]
    pub fn at_parts(&self, piece: &[u8], i: usize) -> Option<(usize, usize, u32)> {
        let b0 = *piece.get(i)?;
        if b0 >= 0xf0 {
            return self.at_four(piece, i);
        }
        let (len, cand) = if b0 < 0xe0 {
            (2, self.two[idx2(b0, *piece.get(i + 1)?)?])
        } else {
            let j = idx3(b0, *piece.get(i + 1)?, *piece.get(i + 2)?)?;
            (3, self.blocks[self.top[j >> 8] as usize][j & 0xff])
        };
        if cand.id == NONE {
            return None;
        }
        let m = cand.max_merge & MERGE_MASK;
        if i > 0 && self.pair_min[(piece[i - 1] as usize) << 8 | b0 as usize] <= m {
            return None;
        }
        if let Some(&q) = piece.get(i + len) {
            let right = self.right_min.as_deref().unwrap_or(&self.pair_min);
            if right[(piece[i + len - 1] as usize) << 8 | q as usize] <= m {
                return None;
            }
        }
        let first = match cand.max_merge >> 30 {
            0 => len,
            k => k as usize,
        };
        Some((len, first, cand.id))
    }
}

impl AtomicChars {
    /// [`AtomicChars::at_parts`] for a lead byte `F0..=FF`.
    #[inline]
    fn at_four(&self, piece: &[u8], i: usize) -> Option<(usize, usize, u32)> {
        if self.top4.is_empty() {
            return None;
        }
        let b0 = piece[i];
        let j = idx4(
            b0,
            *piece.get(i + 1)?,
            *piece.get(i + 2)?,
            *piece.get(i + 3)?,
        )?;
        let cand = self.blocks[self.top4[j >> 8] as usize][j & 0xff];
        if cand.id == NONE {
            return None;
        }
        let m = cand.max_merge & MERGE_MASK;
        let shape = cand.max_merge >> 30;
        // Until the character's own merges are done, its first part is a proper prefix of
        // its first final part, or that part itself (and symmetrically at the end): so a
        // token made across its left boundary has `p b0` ending at most `kl - 1` bytes
        // before its end, one across its right boundary `b3 q` at one of its first `kr`
        // bytes. Final parts by shape: 0 [4]; 1 [1][3]; 2 [2][1][1]; 3 [3][1].
        const PLACES: [(usize, usize); 4] = [(3, 3), (1, 3), (2, 1), (3, 1)];
        let (kl, kr) = PLACES[shape as usize & 3];
        if i > 0
            && self.left4[(kl - 1) << 11 | (piece[i - 1] as usize) << 3 | (b0 as usize & 7)] <= m
        {
            return None;
        }
        if let Some(&q) = piece.get(i + 4) {
            if self.right4[(kr - 1) << 14 | (piece[i + 3] as usize & 0x3f) << 8 | q as usize] <= m {
                return None;
            }
        }
        Some(match shape {
            0 => (4, 4, cand.id),
            // the two-byte token then two single bytes: report the token as a unit of
            // two bytes (the single bytes that follow start as parts anyway)
            2 => (2, 2, cand.id),
            k => (4, k as usize, cand.id),
        })
    }
}

/// Final parts of the merge of a four-byte character alone (see [`solo_merge`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// One part: the character is a token.
    Whole,
    /// Two parts, cut after this many bytes.
    Two(usize),
    /// The first two bytes, then the last two as single bytes.
    PairThenBytes,
}

/// tiktoken's merge of the four bytes `c` alone (ids are ranks: lowest first, leftmost
/// among equals): the shape of its final parts and the largest id created, if the shape
/// is one of [`Cut`]'s.
fn solo_merge(vocab: &Vocab, c: &[u8; 4]) -> Option<(Cut, u32)> {
    // parts as byte ranges of `c`: cuts[..k]
    let mut cuts = [0usize, 1, 2, 3, 4];
    let mut k = 5;
    let mut max = None;
    loop {
        let mut best: Option<(u32, usize)> = None;
        for j in 0..k - 2 {
            if let Some(t) = vocab.get(&c[cuts[j]..cuts[j + 2]]) {
                if best.is_none_or(|(b, _)| t < b) {
                    best = Some((t, j));
                }
            }
        }
        let Some((t, j)) = best else { break };
        cuts.copy_within(j + 2..k, j + 1);
        k -= 1;
        max = Some(max.map_or(t, |m: u32| m.max(t)));
    }
    let m = max?;
    match cuts[..k] {
        [0, 4] => Some((Cut::Whole, m)),
        [0, cut, 4] => Some((Cut::Two(cut), m)),
        [0, 2, 3, 4] => Some((Cut::PairThenBytes, m)),
        _ => None,
    }
}

/// Merge the bytes of `c` alone with `table`; if they end in the single token `id`, the
/// largest rank of the merges done.
fn solo_max_rank(table: &MergeTable, c: &[u8], id: u32) -> Option<u32> {
    let mut parts: Vec<u32> = c.iter().map(|&b| table.byte_id(b)).collect();
    let mut max = None;
    loop {
        let mut best: Option<(u32, usize, u32)> = None;
        for (i, w) in parts.windows(2).enumerate() {
            if let Some((rank, res)) = table.get(w[0], w[1]) {
                match best {
                    Some((r, _, _)) if r <= rank => {}
                    _ => best = Some((rank, i, res)),
                }
            }
        }
        let Some((rank, i, res)) = best else { break };
        parts[i] = res;
        parts.remove(i + 1);
        max = Some(max.map_or(rank, |m: u32| m.max(rank)));
    }
    (parts == [id]).then_some(max).flatten()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rank_bpe;

    /// A small deterministic generator: `next(m)` is uniform-ish in `0..m`.
    pub(crate) fn lcg(mut seed: u64) -> impl FnMut(usize) -> usize {
        move |m| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % m
        }
    }

    /// A piece of 1–24+ bytes mixing é, ж, 中 and bytes of `alphabet`.
    fn random_piece(next: &mut impl FnMut(usize) -> usize, alphabet: &[u8]) -> Vec<u8> {
        let len = 1 + next(24);
        let mut p = vec![];
        while p.len() < len {
            match next(4) {
                0 => p.extend_from_slice("é".as_bytes()),
                1 => p.extend_from_slice("ж".as_bytes()),
                2 => p.extend_from_slice("中".as_bytes()),
                _ => p.push(alphabet[next(alphabet.len())]),
            }
        }
        p
    }

    /// Merge with and without the table on many pieces; the results must agree.
    /// Returns the numbers of atomic two- and three-byte characters.
    fn check_equivalent(v: &Vocab, pieces: &[Vec<u8>]) -> (usize, usize, usize) {
        let t = AtomicChars::build(v);
        for p in pieces {
            let mut a = vec![];
            let mut b = vec![];
            let ra = rank_bpe::encode(v, p, &mut a);
            let rb = rank_bpe::encode_with_chars(v, &t, p, &mut b);
            assert_eq!(ra.is_ok(), rb.is_ok(), "{p:?}");
            assert_eq!(a, b, "{p:?}");
        }
        // occurrences of each kind that start as one part (or as two, split), over all
        // pieces
        let mut two = 0;
        let mut three = 0;
        let mut split = 0;
        for p in pieces {
            for i in 0..p.len() {
                match t.at_parts(p, i) {
                    Some((2, 2, _)) => two += 1,
                    Some((3, 3, _)) => three += 1,
                    Some(_) => split += 1,
                    _ => {}
                }
            }
        }
        (two, three, split)
    }

    #[test]
    fn competing_tokens_disable_an_occurrence() {
        // "é" = C3 A9; "ж" = D0 B6
        let e = "é".as_bytes();
        let zh = "ж".as_bytes();
        let v = crate::vocab::test_vocab(&[e, zh]);
        let t = AtomicChars::build(&v);
        assert_eq!(t.at(e, 0), Some((2, 256)));
        assert_eq!(t.at(b"a\xc3\xa9b", 1), Some((2, 256)));
        assert_eq!(t.at(zh, 0), Some((2, 257)));
        // a lower-ranked token across the left boundary
        let v = crate::vocab::test_vocab(&[b"a\xc3", e, zh]);
        let t = AtomicChars::build(&v);
        assert_eq!(t.at(b"a\xc3\xa9", 1), None);
        assert_eq!(t.at(b"b\xc3\xa9", 1), Some((2, 257)));
        assert_eq!(t.at(e, 0), Some((2, 257)));
        // ... across the right boundary
        let v = crate::vocab::test_vocab(&[b"x\xa9a", e]);
        let t = AtomicChars::build(&v);
        assert_eq!(t.at(b"\xc3\xa9a", 0), None);
        assert_eq!(t.at(b"\xc3\xa9b", 0), Some((2, 257)));
        // ... containing it
        let v = crate::vocab::test_vocab(&[b"a\xc3\xa9", e]);
        assert_eq!(AtomicChars::build(&v).at(b"a\xc3\xa9", 1), None);
        // higher-ranked competitors do not
        let v = crate::vocab::test_vocab(&[e, b"a\xc3", b"\xa9a", b"a\xc3\xa9"]);
        assert_eq!(AtomicChars::build(&v).at(b"a\xc3\xa9a", 1), Some((2, 256)));
    }

    #[test]
    fn three_byte_chars_need_their_whole_internal_chain() {
        let c = "中".as_bytes(); // E4 B8 AD
                                 // no two-byte sub-token: never reached by pair merges
        let v = crate::vocab::test_vocab(&[c]);
        assert_eq!(AtomicChars::build(&v).at(c, 0), None);
        let v = crate::vocab::test_vocab(&[&c[..2], c]);
        assert_eq!(AtomicChars::build(&v).at(c, 0), Some((3, 257)));
        // a competitor between the internal merges disables it
        let v = crate::vocab::test_vocab(&[&c[..2], b"\xadx", c]);
        assert_eq!(AtomicChars::build(&v).at(b"\xe4\xb8\xadx", 0), None);
        let v = crate::vocab::test_vocab(&[&c[..2], c, b"\xadx"]);
        assert_eq!(
            AtomicChars::build(&v).at(b"\xe4\xb8\xadx", 0),
            Some((3, 257))
        );
    }

    #[test]
    fn random_vocabularies_agree_with_byte_merges() {
        // small alphabet of bytes that form 2- and 3-byte UTF-8 shapes, plus ASCII
        let alphabet: &[u8] = &[b'a', b' ', 0xc3, 0xa9, 0xd0, 0xb6, 0xe4, 0xb8, 0xad, 0x80];
        let mut next = lcg(0x1234_5678_9abc_def0u64);
        let mut seen = (0, 0);
        let mut seen_split = 0;
        for _ in 0..300 {
            let mut toks: Vec<Vec<u8>> = vec![];
            let n_toks = 5 + next(40);
            while toks.len() < n_toks {
                let len = 2 + next(4);
                let t: Vec<u8> = (0..len).map(|_| alphabet[next(alphabet.len())]).collect();
                if !toks.contains(&t) {
                    toks.push(t);
                }
            }
            // make the characters tokens often, at random ranks
            for ch in ["é", "ж", "中"] {
                let b = ch.as_bytes().to_vec();
                if next(3) > 0 && !toks.contains(&b) {
                    let at = next(toks.len() + 1);
                    toks.insert(at, b.clone());
                    // a two-byte sub-token (the prefix or the suffix), usually lower
                    let sub = if next(2) == 0 { &b[..2] } else { &b[1..] };
                    if b.len() == 3 && !toks.iter().any(|t| t == sub) {
                        let pos = if next(4) == 0 {
                            next(toks.len() + 1)
                        } else {
                            next(at + 1)
                        };
                        toks.insert(pos, sub.to_vec());
                    }
                } else if b.len() == 3 {
                    // not a token: one or both two-byte sub-tokens (a split candidate)
                    for sub in [&b[..2], &b[1..]] {
                        if next(3) > 0 && !toks.iter().any(|t| t == sub) {
                            let pos = next(toks.len() + 1);
                            toks.insert(pos, sub.to_vec());
                        }
                    }
                }
            }
            let refs: Vec<&[u8]> = toks.iter().map(|t| t.as_slice()).collect();
            let v = crate::vocab::test_vocab(&refs);
            let pieces: Vec<Vec<u8>> = (0..60).map(|_| random_piece(&mut next, alphabet)).collect();
            let (two, three, split) = check_equivalent(&v, &pieces);
            seen = (seen.0 + two, seen.1 + three);
            seen_split += split;
        }
        // both kinds were exercised
        assert!(
            seen.0 > 500 && seen.1 > 200 && seen_split > 200,
            "{seen:?} {seen_split}"
        );
    }

    /// Four-byte characters ([`AtomicChars::with_four_byte`]) on random vocabularies made
    /// of emoji fragments (whole characters, `F0 9F`, `F0 9F xx`, `9F xx yy`, `xx yy`) and
    /// tokens across their boundaries at random ranks: the merge with the extended table
    /// must equal the plain byte merge, and every shape must have been accepted.
    #[test]
    fn four_byte_chars_agree_with_byte_merges() {
        let emoji: Vec<Vec<u8>> = [
            "\u{1F468}",
            "\u{1F469}",
            "\u{1F400}",
            "\u{1F3FD}",
            "\u{20000}",
        ]
        .iter()
        .map(|c| c.as_bytes().to_vec())
        .collect();
        let zwj = "\u{200D}".as_bytes().to_vec();
        let alphabet: &[u8] = &[b'a', b' ', 0xf0, 0x9f, 0x91, 0xa8, 0x8d, 0xe2, 0x80, 0x90];
        let mut next = lcg(0x4b1d_u64);
        let mut shapes = [0usize; 5];
        for _ in 0..400 {
            let mut toks: Vec<Vec<u8>> = vec![];
            let add = |toks: &mut Vec<Vec<u8>>, t: Vec<u8>, pos: usize| {
                if !toks.contains(&t) {
                    let pos = pos.min(toks.len());
                    toks.insert(pos, t);
                }
            };
            for _ in 0..5 + next(30) {
                let len = 2 + next(4);
                let t: Vec<u8> = (0..len).map(|_| alphabet[next(alphabet.len())]).collect();
                let at = next(toks.len() + 1);
                add(&mut toks, t, at);
            }
            for e in &emoji {
                for (a, b) in [(0, 2), (0, 3), (1, 4), (2, 4), (0, 4), (1, 3)] {
                    if next(3) == 0 {
                        let at = next(toks.len() + 1);
                        add(&mut toks, e[a..b].to_vec(), at);
                    }
                }
                // a token across a boundary (ZWJ or a neighbouring emoji)
                if next(2) == 0 {
                    let mut t = e[e.len() - 1 - next(2)..].to_vec();
                    t.extend_from_slice(&zwj[..1 + next(2)]);
                    let at = next(toks.len() + 1);
                    add(&mut toks, t, at);
                }
                if next(2) == 0 {
                    let mut t = zwj[2..].to_vec();
                    t.extend_from_slice(&e[..1 + next(3)]);
                    let at = next(toks.len() + 1);
                    add(&mut toks, t, at);
                }
            }
            let refs: Vec<&[u8]> = toks.iter().map(|t| t.as_slice()).collect();
            let v = crate::vocab::test_vocab(&refs);
            let t4 = AtomicChars::build(&v).with_four_byte(&v);
            assert!(t4.has_four_byte());
            for _ in 0..40 {
                let mut p = vec![];
                while p.len() < 1 + next(60) {
                    match next(4) {
                        0 | 1 => p.extend_from_slice(&emoji[next(emoji.len())]),
                        2 => p.extend_from_slice(&zwj),
                        _ => p.push(alphabet[next(alphabet.len())]),
                    }
                }
                let mut a = vec![];
                let mut b = vec![];
                let ra = rank_bpe::encode(&v, &p, &mut a);
                let rb = rank_bpe::encode_with_chars(&v, &t4, &p, &mut b);
                assert_eq!(ra.is_ok(), rb.is_ok(), "{p:x?}");
                assert_eq!(a, b, "{p:x?} {toks:x?}");
                for i in 0..p.len() {
                    if p[i] >= 0xf0 {
                        match t4.at_parts(&p, i) {
                            Some((4, 4, _)) => shapes[0] += 1,
                            Some((4, 1, _)) => shapes[1] += 1,
                            Some((2, 2, _)) => shapes[2] += 1,
                            Some((4, 3, _)) => shapes[3] += 1,
                            Some(other) => panic!("unexpected {other:?}"),
                            None => shapes[4] += 1,
                        }
                    }
                }
            }
        }
        assert!(shapes.iter().all(|&k| k > 100), "{shapes:?}");
    }

    /// A merge over tokens `toks` (indices into it) that makes or reuses their
    /// concatenation; returns the merge `(l, r, result)` and grows `toks`.
    fn merge_of(toks: &mut Vec<Vec<u8>>, l: usize, r: usize) -> (u32, u32, u32) {
        let mut cat = toks[l].clone();
        cat.extend_from_slice(&toks[r]);
        let res = match toks.iter().position(|t| *t == cat) {
            Some(k) => k,
            None => {
                toks.push(cat);
                toks.len() - 1
            }
        };
        (l as u32, r as u32, res as u32)
    }

    #[test]
    fn hf_merge_lists_agree_with_byte_merges() {
        // random HF-style merge lists (one token may be made by several merges, pairs may
        // repeat: the first wins) over bytes forming 2- and 3-byte UTF-8 shapes
        let alphabet: &[u8] = &[b'a', b' ', 0xc3, 0xa9, 0xd0, 0xb6, 0xe4, 0xb8, 0xad, 0x80];
        let mut next = lcg(0x0bad_5eed_1234_5678u64);
        let mut seen = (0, 0);
        for _ in 0..300 {
            let mut toks: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
            let mut merges: Vec<(u32, u32, u32)> = vec![];
            let n_merges = 5 + next(40);
            for _ in 0..n_merges {
                if next(3) == 0 {
                    // a step towards a whole character
                    let ch = ["é", "ж", "中"][next(3)].as_bytes();
                    let cut = 1 + next(ch.len() - 1);
                    let l = toks.iter().position(|t| t == &ch[..cut]);
                    let r = toks.iter().position(|t| t == &ch[cut..]);
                    if let (Some(l), Some(r)) = (l, r) {
                        merges.push(merge_of(&mut toks, l, r));
                        continue;
                    }
                    if cut == 2 || ch.len() == 2 {
                        let (x, y) = (ch[0] as usize, ch[1] as usize);
                        merges.push(merge_of(&mut toks, x, y));
                    } else {
                        let (x, y) = (ch[1] as usize, ch[2] as usize);
                        merges.push(merge_of(&mut toks, x, y));
                    }
                    continue;
                }
                // a random merge among the alphabet's bytes and the made tokens
                let usable: Vec<usize> = alphabet
                    .iter()
                    .map(|&b| b as usize)
                    .chain(256..toks.len())
                    .collect();
                let l = usable[next(usable.len())];
                let r = usable[next(usable.len())];
                if toks[l].len() + toks[r].len() <= 6 {
                    merges.push(merge_of(&mut toks, l, r));
                }
            }
            let pairs: Vec<(Vec<u8>, u32)> = toks
                .iter()
                .enumerate()
                .map(|(i, t)| (t.clone(), i as u32))
                .collect();
            let v = Vocab::from_pairs(pairs).unwrap();
            let table = MergeTable::from_merges(&v, &merges);
            let t = AtomicChars::from_merges(&v, &table);
            for _ in 0..60 {
                let p = random_piece(&mut next, alphabet);
                let mut want = vec![];
                table.encode_piece(&p, &mut want).unwrap();
                // start the atomic occurrences as one part, then merge
                let mut ids = vec![];
                let mut i = 0;
                while i < p.len() {
                    match t.at(&p, i) {
                        Some((len, id)) => {
                            if len == 2 {
                                seen.0 += 1;
                            } else {
                                seen.1 += 1;
                            }
                            ids.push(id);
                            i += len;
                        }
                        None => {
                            ids.push(table.byte_id(p[i]));
                            i += 1;
                        }
                    }
                }
                let mut got = vec![];
                table.merge_ids_heap(ids, &mut got);
                assert_eq!(got, want, "{p:?} with merges {merges:?}");
            }
        }
        assert!(seen.0 > 500 && seen.1 > 200, "{seen:?}");
    }
}
