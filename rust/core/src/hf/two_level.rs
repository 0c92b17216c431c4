//! Two-level BPE: exact encoding of long pieces for vocabularies whose late merges build
//! long tokens (SuperBPE superwords).
//!
//! # The split
//!
//! Cut the ordered merge list at a rank `R` into *low* merges (rank `< R`) and *high* merges
//! (rank `≥ R`). Let `H` be the set of tokens that some high merge outputs. The split is
//! **valid** when no low merge has an input token in `H` (checked when the model is
//! loaded, [`check_split`]).
//!
//! **Claim.** For a valid split, BPE on any piece (repeatedly merge the applicable pair of
//! lowest rank, the leftmost among equal ranks) equals: first the fixpoint of BPE with the
//! low merges only, then BPE with all merges started from that token sequence (on which
//! only high merges can ever apply).
//!
//! *Proof.* Follow BPE step by step. As long as some low pair is applicable, the pair BPE
//! picks is a low one (every low rank is below every high rank), and it is the pair that
//! low-only BPE picks in the same state (the same lowest rank, the same leftmost position),
//! so both runs go through the same states until the first state `S` with no applicable
//! low pair: `S` is the low fixpoint. From `S` on, BPE merges high pairs only: a high merge
//! replaces two adjacent tokens by its output `z ∈ H`, so the only new adjacencies are
//! `(x, z)` and `(z, y)`; neither is a low pair because `z` is the input of no low merge,
//! and all other adjacencies were already present in a state without applicable low pairs.
//! By induction no low pair ever becomes applicable again, and the remaining run is BPE
//! (with all merges, equivalently high ones only) started from `S`. ∎
//!
//! # Computing the low fixpoint part by part
//!
//! *Low tokens* are the single bytes and the outputs of low merges. If the byte pair
//! `(piece[p - 1], piece[p])` occurs adjacently inside no low token, no low merge can ever
//! join tokens on both sides of `p` (its output would be a low token containing that pair),
//! so the low-only BPE runs on `piece[..p]` and `piece[p..]` never interact: their merges
//! interleave, but each side performs exactly its own BPE (the rank order and the
//! leftmost-first rule compare positions within one side only, since a rank belongs to one
//! pair). The low fixpoint is therefore the concatenation of the low fixpoints of the parts
//! between such cuts. For a SuperBPE vocabulary with `R` at its first superword merge, low
//! tokens are stage-1 subwords, which never hold a letter followed by a space or a
//! punctuation mark: the cuts fall between words, the parts are words, and their low
//! fixpoints come from a per-thread cache almost always. The high merges then run on the
//! (several times shorter) token sequence of the piece — a linear scan when it is short, a
//! heap when it is long.
//!
//! # Choosing `R`
//!
//! [`superword_split`]: the rank of the first merge whose output contains a complete
//! non-whitespace character directly followed by a space (U+0020) — the first token
//! spanning two space-separated words. Stage-1 tokens of both SuperBPE presets never contain such a pair
//! (their spaces only lead a word or form whitespace runs), so this is the transition point
//! of a SuperBPE merge list. Vocabularies without such tokens, and those where it comes in
//! the first quarter of the merges (e.g. `t = 0`: whitespace-free BPE from bytes, where the
//! low level would cut almost everywhere and gain nothing), keep the ordinary path. The
//! choice only affects speed: exactness rests on the validity check alone.

use std::cell::RefCell;

use rustc_hash::FxHashMap;

use super::model::{next_cache_id, PieceCache};
use crate::bpe::{MergeTable, LINEAR_MAX};
use crate::error::{Error, Result};
use crate::vocab::Vocab;

/// Low-level parts up to this many bytes go through the per-thread cache.
const PART_CACHE_MAX: usize = 256;

thread_local! {
    static LOW_CACHE: RefCell<PieceCache> = RefCell::new(PieceCache::default());
}

/// A valid split of a merge list, ready to encode.
#[derive(Clone, Debug)]
pub struct TwoLevel {
    /// `R`: merges of rank `< split` are low.
    split: usize,
    /// The low merges alone (same ranks as in the full list).
    low: MergeTable,
    /// Bit `a << 8 | b` is set when the bytes `a b` are adjacent inside some low token.
    low_inner: Vec<u64>,
    /// Identifies this model's low fixpoints in the per-thread cache.
    cache_id: usize,
}

/// Whether `token` spans two space-separated words: a complete non-whitespace character
/// directly followed by a space (U+0020). A byte that ends no complete character (a token
/// starting inside a character) does not count.
pub fn is_superword(token: &[u8]) -> bool {
    memchr::memchr_iter(b' ', token).any(|i| {
        let before = &token[..i];
        (1..=4.min(before.len())).any(|len| {
            std::str::from_utf8(&before[before.len() - len..])
                .ok()
                .and_then(|s| {
                    let mut cs = s.chars();
                    let c = cs.next()?;
                    cs.next().is_none().then_some(c)
                })
                .is_some_and(|c| !c.is_whitespace())
        })
    })
}

/// The rank of the first merge whose output is a superword ([`is_superword`]), if it comes
/// after the first quarter of the merges (see the module documentation).
pub fn superword_split(vocab: &Vocab, merges: &[(u32, u32, u32)]) -> Option<usize> {
    let r = merges
        .iter()
        .position(|&(_, _, res)| vocab.bytes(res).is_some_and(is_superword))?;
    (r > 0 && r >= merges.len() / 4).then_some(r)
}

/// Check that splitting `merges` (`(left, right, result)` in rank order) at `split` is
/// valid: no low merge (rank `< split`) takes as input a token that a high merge outputs.
/// The error names the first offending low merge and a high merge producing its input.
pub fn check_split(merges: &[(u32, u32, u32)], split: usize) -> Result<()> {
    if split > merges.len() {
        return Err(Error::InvalidArgument(format!(
            "split rank {split} is beyond the {} merges",
            merges.len()
        )));
    }
    let mut high_out: FxHashMap<u32, usize> = FxHashMap::default();
    for (i, &(_, _, res)) in merges.iter().enumerate().skip(split) {
        high_out.entry(res).or_insert(i);
    }
    for (i, &(l, r, _)) in merges[..split].iter().enumerate() {
        for t in [l, r] {
            if let Some(&j) = high_out.get(&t) {
                return Err(Error::InvalidVocab(format!(
                    "merge list cannot be split at rank {split}: merge {i} (low) takes token \
                     {t} as input, which merge {j} (high) outputs"
                )));
            }
        }
    }
    Ok(())
}

impl TwoLevel {
    /// Build for `merges` split at `split`, after checking that the split is valid.
    pub fn new(vocab: &Vocab, merges: &[(u32, u32, u32)], split: usize) -> Result<Self> {
        check_split(merges, split)?;
        let low = MergeTable::from_merges(vocab, &merges[..split]);
        let mut low_inner = vec![0u64; 1024];
        for &(_, _, res) in &merges[..split] {
            if let Some(b) = vocab.bytes(res) {
                for w in b.windows(2) {
                    let k = (w[0] as usize) << 8 | w[1] as usize;
                    low_inner[k >> 6] |= 1 << (k & 63);
                }
            }
        }
        Ok(TwoLevel {
            split,
            low,
            low_inner,
            cache_id: next_cache_id(),
        })
    }

    /// The two-level encoder for a model, when its merge list has a superword split that
    /// is valid ([`superword_split`], [`check_split`]).
    pub fn for_model(vocab: &Vocab, merges: &[(u32, u32, u32)]) -> Option<Self> {
        let r = superword_split(vocab, merges)?;
        TwoLevel::new(vocab, merges, r).ok()
    }

    /// `R`, the first high rank.
    pub fn split(&self) -> usize {
        self.split
    }

    #[inline]
    fn is_cut(&self, a: u8, b: u8) -> bool {
        let k = (a as usize) << 8 | b as usize;
        self.low_inner[k >> 6] & (1 << (k & 63)) == 0
    }

    /// BPE of `piece` with all merges (`table` is the full merge table this split was made
    /// from), appended to `out`. Every byte of `piece` must have a token.
    pub fn encode(&self, table: &MergeTable, piece: &[u8], out: &mut Vec<u32>) -> Result<()> {
        let start = out.len();
        LOW_CACHE.with(|cell| -> Result<()> {
            let mut c = cell.borrow_mut();
            c.claim(self.cache_id);
            let mut a = 0;
            for p in 1..piece.len() {
                if self.is_cut(piece[p - 1], piece[p]) {
                    self.low_part(&mut c, &piece[a..p], out)?;
                    a = p;
                }
            }
            if a < piece.len() {
                self.low_part(&mut c, &piece[a..], out)?;
            }
            Ok(())
        })?;
        merge_tokens(table, out, start);
        Ok(())
    }

    /// Low fixpoint of one part, through the cache when short.
    #[inline]
    fn low_part(&self, c: &mut PieceCache, part: &[u8], out: &mut Vec<u32>) -> Result<()> {
        if part.len() == 1 {
            out.push(self.low.byte_id(part[0]));
            return Ok(());
        }
        if part.len() > PART_CACHE_MAX {
            return self.low.encode_piece(part, out);
        }
        if c.lookup(part, out) {
            return Ok(());
        }
        let before = out.len();
        self.low.encode_piece(part, out)?;
        c.insert(part, &out[before..]);
        Ok(())
    }
}

/// BPE with `table` on the token sequence `toks[start..]`, in place.
pub fn merge_tokens(table: &MergeTable, toks: &mut Vec<u32>, start: usize) {
    let n = toks.len() - start;
    if n < 2 {
        return;
    }
    if n < LINEAR_MAX {
        let mut ids: [u32; LINEAR_MAX] = [0; LINEAR_MAX];
        ids[..n].copy_from_slice(&toks[start..]);
        let len = table.merge_ids_linear(&mut ids, n);
        toks.truncate(start);
        toks.extend_from_slice(&ids[..len]);
    } else {
        let ids = toks.split_off(start);
        table.merge_ids_heap(ids, toks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Random merge lists (tokens of at most 12 bytes, each pair merged once).
    fn build(merge_picks: &[(usize, usize)]) -> (Vocab, Vec<(u32, u32, u32)>) {
        crate::bpe::random_merge_list(merge_picks, true, 12)
    }

    #[test]
    fn rejects_a_low_merge_fed_by_a_high_merge() {
        let v = crate::vocab::test_vocab(&[b"ab", b"abc"]);
        let (a, b, c, ab, abc) = (b'a' as u32, b'b' as u32, b'c' as u32, 256, 257);
        // (ab, c) is low but `ab` is only made by the high merge (a, b)
        let merges = [(ab, c, abc), (a, b, ab)];
        let e = check_split(&merges, 1).unwrap_err().to_string();
        assert!(e.contains("merge 0") && e.contains("merge 1"), "{e}");
        assert!(TwoLevel::new(&v, &merges, 1).is_err());
        assert!(check_split(&merges, 0).is_ok());
        assert!(check_split(&merges, 2).is_ok());
        assert!(check_split(&merges, 3).is_err());
        // a token made by both a low and a high merge may not feed a low merge
        let v = crate::vocab::test_vocab(&[b"ab", b"bc", b"abc", b"abcc"]);
        let (bc, abc, abcc) = (257, 258, 259);
        let merges = [
            (a, b, ab),
            (ab, c, abc),
            (abc, c, abcc),
            (b, c, bc),
            (a, bc, abc),
        ];
        assert!(check_split(&merges, 3).is_err());
        assert!(check_split(&merges, 4).is_err());
        assert!(check_split(&merges, 2).is_ok());
        let _ = v;
    }

    #[test]
    fn superword_rule() {
        assert!(is_superword(b"a b"));
        assert!(is_superword(b", "));
        assert!(!is_superword(b" word"));
        assert!(!is_superword(b"  \n "));
        assert!(!is_superword(b"\n "));
        assert!(is_superword("é ".as_bytes()));
        assert!(is_superword("\u{a0}y z".as_bytes()));
        assert!(!is_superword("x\u{a0} y".as_bytes()));
        // NBSP (whitespace) before a space, or a token starting inside a character
        assert!(!is_superword(" \u{a0} \u{a0}".as_bytes()));
        assert!(!is_superword(b"\xa0 "));
    }

    proptest! {
        /// For random merge lists and every valid split point, two-level encoding equals
        /// plain BPE on random pieces.
        #[test]
        fn two_level_equals_plain_bpe(
            picks in proptest::collection::vec((0usize..64, 0usize..64), 1..60),
            split_frac in 0.0f64..=1.0,
            pieces in proptest::collection::vec("[abc ]{1,200}", 1..6),
        ) {
            let (v, merges) = build(&picks);
            let split = ((merges.len() as f64) * split_frac) as usize;
            let table = MergeTable::from_merges(&v, &merges);
            match TwoLevel::new(&v, &merges, split) {
                Err(_) => prop_assert!(check_split(&merges, split).is_err()),
                Ok(tl) => {
                    for p in &pieces {
                        let mut want = vec![];
                        table.encode_piece(p.as_bytes(), &mut want).unwrap();
                        let mut got = vec![7u32];
                        tl.encode(&table, p.as_bytes(), &mut got).unwrap();
                        prop_assert_eq!(&got[1..], &want[..], "split {} piece {:?}", split, p);
                        // twice: the second time through the cache
                        let mut again = vec![];
                        tl.encode(&table, p.as_bytes(), &mut again).unwrap();
                        prop_assert_eq!(&again, &want);
                    }
                }
            }
        }

        /// The in-place token merge equals byte-level BPE when started from single bytes,
        /// both below and above the linear/heap threshold.
        #[test]
        fn merge_tokens_equals_encode_piece(
            picks in proptest::collection::vec((0usize..64, 0usize..64), 1..60),
            piece in "[abc ]{1,400}",
        ) {
            let (v, merges) = build(&picks);
            let table = MergeTable::from_merges(&v, &merges);
            let mut want = vec![];
            table.encode_piece(piece.as_bytes(), &mut want).unwrap();
            let mut got = vec![1u32, 2];
            got.extend(piece.bytes().map(|b| table.byte_id(b)));
            merge_tokens(&table, &mut got, 2);
            prop_assert_eq!(&got[2..], &want[..]);
        }
    }
}
