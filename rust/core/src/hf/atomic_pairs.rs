//! Byte pairs that an HF merge list provably merges, in their context, before either byte
//! merges with a neighbour: [`super::model::BpeModel`] starts such occurrences as their
//! token, which saves the merge step and the pair lookups of the byte pair when a piece
//! misses the cache.
//!
//! # Why it is exact
//! This is the argument of [`crate::atomic_chars`] ("HF merge lists") for a token `c` of
//! two bytes `x y` made by the merge `(x, y)` of rank `M` (its only internal merge). At an
//! occurrence with neighbouring bytes `p` (before) and `q` (after), the first merge that
//! crosses a boundary of the occurrence joins a part ending in `p` to one starting with `x`,
//! or one ending in `y` to one starting with `q`. If every such merge has a rank above `M`,
//! the merge `(x, y)`, available from the start, is done before any of them, and nothing
//! else touches the two bytes: starting them as `c` gives the same merges minus that one.
//! The argument is about bytes only, so it holds for several disjoint occurrences at once
//! and together with the atomic characters of [`crate::atomic_chars`].

use crate::atomic_chars::AtomicChars;
use crate::bpe::MergeTable;
use crate::vocab::Vocab;

const NONE: u32 = u32::MAX;

/// The candidate byte pairs of one merge list. The ranks that can disable them are the
/// junction ranks of the same list's [`AtomicChars`] ([`AtomicChars::junction_min`]).
#[derive(Clone, Debug)]
pub(crate) struct AtomicPairs {
    /// `(rank, result)` of the merge of the single bytes `x y`, at `x << 8 | y`; rank
    /// [`NONE`] when there is none.
    pairs: Box<[(u32, u32)]>,
}

impl AtomicPairs {
    /// Build from the byte-level vocabulary and the merge table made from it.
    pub(crate) fn new(vocab: &Vocab, table: &MergeTable) -> Self {
        let mut pairs = vec![(NONE, 0u32); 1 << 16].into_boxed_slice();
        for (l, r, rank, res) in table.iter() {
            if let (Some(&[x]), Some(&[y])) = (vocab.bytes(l), vocab.bytes(r)) {
                pairs[(x as usize) << 8 | y as usize] = (rank, res);
            }
        }
        AtomicPairs { pairs }
    }

    /// The token that the merge of the single bytes `x y` makes, if the list has that merge.
    #[inline(always)]
    pub(crate) fn merged(&self, x: u8, y: u8) -> Option<u32> {
        let (m, res) = self.pairs[(x as usize) << 8 | y as usize];
        (m != NONE).then_some(res)
    }

    /// If the bytes `piece[i..i + 2]` may start as one part (see the module docs): the id
    /// of their token. `chars` is the [`AtomicChars::from_merges`] table of the same merge
    /// list, whose junction ranks are the ones that can disable a pair.
    #[inline(always)]
    pub(crate) fn at(&self, chars: &AtomicChars, piece: &[u8], i: usize) -> Option<u32> {
        let x = piece[i];
        let y = *piece.get(i + 1)?;
        let (m, res) = self.pairs[(x as usize) << 8 | y as usize];
        if m == NONE {
            return None;
        }
        if i > 0 && chars.junction_min(piece[i - 1], x) <= m {
            return None;
        }
        if let Some(&q) = piece.get(i + 2) {
            if chars.junction_min(y, q) <= m {
                return None;
            }
        }
        Some(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atomic_chars::AtomicChars;
    use proptest::prelude::*;

    /// Start atomic characters and atomic pairs as one part (as `BpeModel::merge` does),
    /// then merge.
    fn premerged(
        table: &MergeTable,
        chars: &AtomicChars,
        pairs: &AtomicPairs,
        p: &[u8],
    ) -> (Vec<u32>, usize) {
        let mut ids = vec![];
        let mut hits = 0;
        let mut i = 0;
        while i < p.len() {
            if let Some((len, id)) = chars.at(p, i) {
                ids.push(id);
                i += len;
            } else if let Some(id) = pairs.at(chars, p, i) {
                hits += 1;
                ids.push(id);
                i += 2;
            } else {
                ids.push(table.byte_id(p[i]));
                i += 1;
            }
        }
        let mut out = vec![];
        table.merge_ids_heap(ids, &mut out);
        (out, hits)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Random HF merge lists (repeated pairs, tokens made by several merges) over
        /// `a b c space`: starting atomic pairs as one part changes nothing.
        #[test]
        fn atomic_pairs_agree_with_byte_merges(
            picks in proptest::collection::vec((0usize..64, 0usize..64), 1..60),
            dedupe in any::<bool>(),
            pieces in proptest::collection::vec(
                proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'c'), Just(b' ')], 1..30),
                1..20,
            ),
        ) {
            let (v, merges) = crate::bpe::random_merge_list(&picks, dedupe, 8);
            let table = MergeTable::from_merges(&v, &merges);
            let chars = AtomicChars::from_merges(&v, &table);
            let pairs = AtomicPairs::new(&v, &table);
            for p in &pieces {
                let mut want = vec![];
                table.encode_piece(p, &mut want).unwrap();
                let (got, _) = premerged(&table, &chars, &pairs, p);
                prop_assert_eq!(got, want, "{:?} with merges {:?}", p, merges);
            }
        }
    }

    #[test]
    fn pairs_are_used_and_disabled_by_lower_junctions() {
        // merges: a b (rank 0), b c (rank 1)
        let (v, merges) = crate::bpe::random_merge_list(&[(0, 1), (1, 2)], true, 8);
        let table = MergeTable::from_merges(&v, &merges);
        let chars = AtomicChars::from_merges(&v, &table);
        let pairs = AtomicPairs::new(&v, &table);
        let ab = v.get(b"ab").unwrap();
        assert_eq!(pairs.at(&chars, b"abc", 0), Some(ab));
        // "b c" (rank 1) is not below "a b" (rank 0) ...
        assert_eq!(pairs.at(&chars, b"cab", 1), Some(ab));
        // ... but "a b" (rank 0) is below "b c" (rank 1): b c is not atomic before an a b
        assert_eq!(pairs.at(&chars, b"abc", 1), None);
        assert_eq!(pairs.at(&chars, b"bc", 0), Some(v.get(b"bc").unwrap()));
        let (_, hits) = premerged(&table, &chars, &pairs, b"abcab");
        assert_eq!(hits, 2);
    }
}
