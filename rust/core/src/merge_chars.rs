//! Multi-byte UTF-8 characters that a merge-list BPE ([`MergeTable`], HF semantics)
//! provably completes into their own token before any of their bytes merges with a
//! neighbour, so that the merge may start them as one part: a third of the parts for CJK,
//! half for Cyrillic or Greek, a quarter for emoji, with identical output. This is the
//! merge-list counterpart of [`crate::atomic_chars`] (which serves tiktoken's byte ranks).
//!
//! # Why it is exact
//! Let `c` be a character whose bytes, merged alone, end as the single token `c`, and let
//! `M` be the largest rank among the merges performed on the way. A *seam merge* at the
//! byte pair `x y` is a merge `(l, r)` whose left token ends with byte `x` and whose right
//! token starts with byte `y`; `seam_min[x y]` is the lowest rank of one. Take an
//! occurrence of `c` in a piece with neighbouring bytes `p` (before) and `q` (after), if
//! any, and suppose `seam_min[p c₀] > M` and `seam_min[c_last q] > M`.
//!
//! Run BPE (lowest rank first, leftmost among equal ranks) on the piece. Until some merge
//! joins a part inside `c` with a part outside, the parts inside `c` change only by merges
//! among themselves, and since a rank names one pair, the candidate pairs inside `c` are
//! those of `c`'s isolated merge at the same step: while `c` is incomplete, its next
//! isolated merge, of rank `≤ M`, is available. The first merge across an edge of `c`
//! would be a seam merge at `p c₀` or `c_last q`, of rank `> M`, so it is never chosen
//! while `c` is incomplete: `c` completes first. Every merge chosen elsewhere meanwhile has
//! rank `≤ M` (or it would not beat `c`'s pending merge), so it beats, in the run that
//! starts `c` as one part, the pairs `(…, c)` and `(c, …)` too (seam merges, `> M`), and
//! the two runs choose the same merges outside `c`. After `c` completes the two states are
//! equal. Several disjoint occurrences satisfy this at once, and neighbouring atomic
//! characters check the pair between them against both of their `M`s. The argument is
//! about bytes and ranks only, so it holds for any merge list (ranks need not grow along
//! merges) and for any byte string.
//!
//! The build merges each candidate character alone once (four bytes at most); the check
//! at an occurrence is a table lookup for the character and two for its seams.

use crate::bpe::MergeTable;
use crate::vocab::Vocab;

const NONE: u32 = u32::MAX;

/// A character that may start as one part: its token id and the largest rank of its
/// isolated merge.
#[derive(Debug, Clone, Copy)]
struct Cand {
    id: u32,
    max_rank: u32,
}

const NO_CAND: Cand = Cand {
    id: NONE,
    max_rank: NONE,
};

/// The atomic characters of one merge table (see the module documentation).
#[derive(Debug, Clone)]
pub struct MergeChars {
    /// Block of 256 code points `top[cp >> 8]` of `blocks` (block 0 is empty).
    top: Box<[u16]>,
    blocks: Vec<[Cand; 256]>,
    /// Lowest rank of a seam merge at the byte pair `x y`, at `x << 8 | y`.
    seam_min: Box<[u32]>,
    count: usize,
}

/// `(code point, length)` of the well-formed multi-byte UTF-8 character starting
/// `piece[i]`, if any (overlong forms and surrogates are refused).
#[inline(always)]
fn decode(piece: &[u8], i: usize) -> Option<(u32, usize)> {
    let b0 = *piece.get(i)?;
    let cont = |k: usize| -> Option<u32> {
        let b = *piece.get(i + k)?;
        (b & 0xc0 == 0x80).then_some((b & 0x3f) as u32)
    };
    let (cp, len) = if b0 < 0xc2 {
        return None;
    } else if b0 < 0xe0 {
        (((b0 & 0x1f) as u32) << 6 | cont(1)?, 2)
    } else if b0 < 0xf0 {
        let cp = ((b0 & 0x0f) as u32) << 12 | cont(1)? << 6 | cont(2)?;
        if cp < 0x800 || (0xd800..0xe000).contains(&cp) {
            return None;
        }
        (cp, 3)
    } else if b0 < 0xf5 {
        let cp = ((b0 & 0x07) as u32) << 18 | cont(1)? << 12 | cont(2)? << 6 | cont(3)?;
        if !(0x10000..0x110000).contains(&cp) {
            return None;
        }
        (cp, 4)
    } else {
        return None;
    };
    Some((cp, len))
}

impl MergeChars {
    /// The table for `table` over `vocab` (the vocabulary the table's ids refer to).
    pub fn build(vocab: &Vocab, table: &MergeTable) -> Self {
        let mut seam_min = vec![NONE; 1 << 16].into_boxed_slice();
        for (l, r, rank, _) in table.iter() {
            let (Some(lb), Some(rb)) = (vocab.bytes(l), vocab.bytes(r)) else {
                continue;
            };
            let (Some(&x), Some(&y)) = (lb.last(), rb.first()) else {
                continue;
            };
            let k = (x as usize) << 8 | y as usize;
            seam_min[k] = seam_min[k].min(rank);
        }
        let mut out = MergeChars {
            top: vec![0u16; 0x110000 >> 8].into_boxed_slice(),
            blocks: vec![[NO_CAND; 256]],
            seam_min,
            count: 0,
        };
        for (id, bytes) in vocab.iter() {
            if !(2..=4).contains(&bytes.len()) {
                continue;
            }
            let Some((cp, len)) = decode(bytes, 0) else {
                continue;
            };
            if len != bytes.len() {
                continue;
            }
            if let Some(max_rank) = isolated_merge(table, bytes, id) {
                out.set(cp, Cand { id, max_rank });
            }
        }
        out
    }

    fn set(&mut self, cp: u32, cand: Cand) {
        let hi = (cp >> 8) as usize;
        if self.top[hi] == 0 {
            if self.blocks.len() > u16::MAX as usize {
                return;
            }
            self.blocks.push([NO_CAND; 256]);
            self.top[hi] = (self.blocks.len() - 1) as u16;
        }
        self.blocks[self.top[hi] as usize][(cp & 0xff) as usize] = cand;
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

    /// If an atomic character starts at `piece[i]` (in this context, see the module
    /// docs): its length in bytes and its token id.
    #[inline(always)]
    pub fn at(&self, piece: &[u8], i: usize) -> Option<(usize, u32)> {
        let (cp, len) = decode(piece, i)?;
        let cand = self.blocks[self.top[(cp >> 8) as usize] as usize][(cp & 0xff) as usize];
        if cand.id == NONE {
            return None;
        }
        let m = cand.max_rank;
        if i > 0 && self.seam_min[(piece[i - 1] as usize) << 8 | piece[i] as usize] <= m {
            return None;
        }
        if let Some(&q) = piece.get(i + len) {
            if self.seam_min[(piece[i + len - 1] as usize) << 8 | q as usize] <= m {
                return None;
            }
        }
        Some((len, cand.id))
    }

    /// The initial parts of `piece` for the merge: atomic characters as their token,
    /// other bytes as their byte id (appended to `ids`).
    #[inline]
    pub fn initial_ids(&self, table: &MergeTable, piece: &[u8], ids: &mut Vec<u32>) {
        let mut i = 0;
        while i < piece.len() {
            let b = piece[i];
            if b >= 0xc2 {
                if let Some((len, id)) = self.at(piece, i) {
                    ids.push(id);
                    i += len;
                    continue;
                }
            }
            ids.push(table.byte_id(b));
            i += 1;
        }
    }
}

/// Parts up to this many are merged by [`merge_small`] in fixed small arrays.
pub const SMALL_MAX: usize = 32;

/// BPE with `table` on the token sequence `toks[start..]`, in place (lowest rank first,
/// leftmost among equal ranks): for at most [`SMALL_MAX`] parts in small stack arrays
/// (words: nothing to clear but a few cache lines), else
/// [`crate::hf::two_level::merge_tokens`].
pub fn merge_small(table: &MergeTable, toks: &mut Vec<u32>, start: usize) {
    let n = toks.len() - start;
    if n < 2 {
        return;
    }
    if n > SMALL_MAX {
        crate::hf::two_level::merge_tokens(table, toks, start);
        return;
    }
    let ids = &mut toks[start..];
    // ranks[i]/res[i]: the pair (ids[i], ids[i + 1])
    let mut ranks = [NONE; SMALL_MAX];
    let mut res = [0u32; SMALL_MAX];
    for i in 0..n - 1 {
        if let Some((r, t)) = table.get(ids[i], ids[i + 1]) {
            ranks[i] = r;
            res[i] = t;
        }
    }
    let mut len = n;
    loop {
        let mut best = NONE;
        let mut at = 0;
        for (i, &r) in ranks[..len - 1].iter().enumerate() {
            if r < best {
                best = r;
                at = i;
            }
        }
        if best == NONE {
            break;
        }
        ids[at] = res[at];
        ids.copy_within(at + 2..len, at + 1);
        ranks.copy_within(at + 2..len, at + 1);
        res.copy_within(at + 2..len, at + 1);
        len -= 1;
        ranks[len - 1] = NONE;
        if at + 1 < len {
            match table.get(ids[at], ids[at + 1]) {
                Some((r, t)) => {
                    ranks[at] = r;
                    res[at] = t;
                }
                None => ranks[at] = NONE,
            }
        }
        if at > 0 {
            match table.get(ids[at - 1], ids[at]) {
                Some((r, t)) => {
                    ranks[at - 1] = r;
                    res[at - 1] = t;
                }
                None => ranks[at - 1] = NONE,
            }
        }
    }
    toks.truncate(start + len);
}

/// Merge `bytes` (2 to 4) alone with `table`; if the result is the single token `id`, the
/// largest rank merged on the way.
fn isolated_merge(table: &MergeTable, bytes: &[u8], id: u32) -> Option<u32> {
    let mut parts: Vec<u32> = bytes.iter().map(|&b| table.byte_id(b)).collect();
    let mut max_rank = 0u32;
    loop {
        let mut best: Option<(u32, usize, u32)> = None;
        for i in 0..parts.len().saturating_sub(1) {
            if let Some((r, t)) = table.get(parts[i], parts[i + 1]) {
                if best.is_none_or(|(br, _, _)| r < br) {
                    best = Some((r, i, t));
                }
            }
        }
        let Some((r, i, t)) = best else { break };
        max_rank = max_rank.max(r);
        parts[i] = t;
        parts.remove(i + 1);
    }
    (parts.len() == 1 && parts[0] == id).then_some(max_rank)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn merge_plain(t: &MergeTable, piece: &[u8]) -> Vec<u32> {
        let mut out = vec![];
        t.encode_piece(piece, &mut out).unwrap();
        out
    }

    fn merge_atomic(t: &MergeTable, chars: &MergeChars, piece: &[u8]) -> Vec<u32> {
        let mut ids = vec![];
        chars.initial_ids(t, piece, &mut ids);
        let mut out = vec![];
        crate::hf::two_level::merge_tokens(t, &mut ids, 0);
        out.extend_from_slice(&ids);
        out
    }

    #[test]
    fn decode_refuses_malformed() {
        assert_eq!(decode("é".as_bytes(), 0), Some((0xe9, 2)));
        assert_eq!(decode("中".as_bytes(), 0), Some((0x4e2d, 3)));
        assert_eq!(decode("😀".as_bytes(), 0), Some((0x1f600, 4)));
        assert_eq!(decode(b"\xc0\xaf", 0), None); // overlong
        assert_eq!(decode(b"\xe0\x80\xaf", 0), None); // overlong
        assert_eq!(decode(b"\xed\xa0\x80", 0), None); // surrogate
        assert_eq!(decode(b"\xf4\x90\x80\x80", 0), None); // beyond U+10FFFF
        assert_eq!(decode(b"\xe4\xb8", 0), None); // truncated
        assert_eq!(decode(b"a", 0), None);
    }

    /// Characters and sub-tokens at random ranks, seam competitors, random pieces of
    /// characters, fragments and ASCII: the merge from atomic parts equals the plain one.
    /// One random case per list: returns the number of atomic occurrences met.
    fn check_seed(mut seed: u64, lists: usize) -> usize {
        let chars: Vec<&[u8]> = vec![
            "é".as_bytes(),
            "ж".as_bytes(),
            "中".as_bytes(),
            "国".as_bytes(),
            "😀".as_bytes(),
            "\u{200d}".as_bytes(),
        ];
        let ascii: &[u8] = b"ab ";
        let mut next = |m: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % m
        };
        let mut atomic_seen = 0usize;
        for _ in 0..lists {
            // random merge list over fragments of the characters and ASCII
            let mut toks: Vec<Vec<u8>> = vec![];
            let mut merges_b: Vec<(Vec<u8>, Vec<u8>)> = vec![];
            let mut units: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
            let n_merges = 5 + next(60);
            for _ in 0..n_merges {
                // mostly extend something that occurs in the pieces
                let src: Vec<u8> = match next(3) {
                    0 => chars[next(chars.len())].to_vec(),
                    1 => {
                        let mut s = chars[next(chars.len())].to_vec();
                        s.extend_from_slice(chars[next(chars.len())]);
                        s
                    }
                    _ => {
                        let mut s = vec![ascii[next(ascii.len())]];
                        s.extend_from_slice(chars[next(chars.len())]);
                        s.push(ascii[next(ascii.len())]);
                        s
                    }
                };
                let a = next(src.len());
                let b = a + 1 + next(src.len() - a);
                if b - a < 2 {
                    continue;
                }
                let m = a + 1 + next(b - a - 1);
                let (l, r) = (src[a..m].to_vec(), src[m..b].to_vec());
                if !units.contains(&l) || !units.contains(&r) {
                    continue;
                }
                if merges_b.contains(&(l.clone(), r.clone())) {
                    continue;
                }
                let cat = [l.clone(), r.clone()].concat();
                if !units.contains(&cat) {
                    units.push(cat.clone());
                    toks.push(cat);
                }
                merges_b.push((l, r));
            }
            let refs: Vec<&[u8]> = toks.iter().map(|t| t.as_slice()).collect();
            let v = crate::vocab::test_vocab(&refs);
            let merges: Vec<(u32, u32, u32)> = merges_b
                .iter()
                .map(|(l, r)| {
                    let cat = [l.clone(), r.clone()].concat();
                    (v.get(l).unwrap(), v.get(r).unwrap(), v.get(&cat).unwrap())
                })
                .collect();
            let t = MergeTable::from_merges(&v, &merges);
            let mc = MergeChars::build(&v, &t);
            for _ in 0..40 {
                let mut p = vec![];
                let len = 1 + next(200);
                while p.len() < len {
                    match next(6) {
                        0 => p.push(ascii[next(ascii.len())]),
                        1 => {
                            // a fragment of a character
                            let c = chars[next(chars.len())];
                            p.extend_from_slice(&c[next(c.len())..]);
                        }
                        _ => p.extend_from_slice(chars[next(chars.len())]),
                    }
                }
                atomic_seen += (0..p.len()).filter(|&i| mc.at(&p, i).is_some()).count();
                assert_eq!(
                    merge_atomic(&t, &mc, &p),
                    merge_plain(&t, &p),
                    "{p:?} {merges_b:?}"
                );
            }
        }
        atomic_seen
    }

    #[test]
    fn random_merge_lists_agree_with_plain_merge() {
        let seen = check_seed(0x0123_4567_89ab_cdef, 300);
        assert!(seen > 1000, "{seen}");
    }

    proptest! {
        /// More random merge lists and pieces (see `check_seed`).
        #[test]
        fn proptest_agrees_with_plain_merge(seed in any::<u64>()) {
            check_seed(seed, 3);
        }
    }
}
