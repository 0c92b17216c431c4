//! The split table and StochasTok (Sims et al. 2025).
//!
//! # The procedure (the reference's distribution, exactly)
//! Given an already-tokenized sequence of `n` ids and a proportion `p`:
//! 1. make `N = floor(n · p)` attempts (`n · p` in IEEE double precision, truncated,
//!    exactly like the reference's `int(len(ids) * p)`);
//! 2. each attempt picks a position uniformly at random in the *current* sequence (which
//!    grows as tokens are split); if the token there has no legal split the attempt is
//!    wasted, otherwise it is replaced by one of its legal splits `(left, right)`, chosen
//!    uniformly; the halves may be picked (and split) again by later attempts;
//! 3. with `max_expansions = Some(m)`, the procedure stops after `m` successful splits.
//!
//! A legal split of a token is any cut of its bytes into two non-empty halves that are
//! both (non-special) tokens; special tokens are never split and never produced.
//!
//! # Algorithm: O(n + N)
//! Drawing a position uniformly in the current sequence only depends on the *multiset* of
//! current tokens, not on their order. So the current tokens live in an unordered array of
//! slots (slot `i < n` starts as input token `i`): a split overwrites the chosen slot with
//! its left half and appends the right half as a new slot, linked right after it in a
//! singly linked list that records the order. Every attempt is O(1) (one uniform draw over
//! the slots, one table lookup); at the end, runs of input tokens that were never split are
//! copied as they are and the list is followed only from the split ones. The output has
//! the reference's distribution exactly (not its random stream).

use rayon::prelude::*;
use rustc_hash::FxHashSet;

use super::check_probability;
use super::rng::Rng;
use crate::error::{Error, Result};
use crate::hf::HfTokenizer;
use crate::vocab::Vocab;

/// End of the slot list.
const END: u32 = u32::MAX;

/// For every token, all its legal binary splits, in CSR form.
///
/// The splits of id `t` are `pairs[k] = [left, right]` for `k` in `offsets[t]..offsets[t + 1]`,
/// in increasing order of the cut position. Ids outside the vocabulary, single-byte tokens
/// and special tokens have none.
#[derive(Clone, Debug)]
pub struct SplitTable {
    offsets: Vec<u32>,
    pairs: Vec<[u32; 2]>,
    /// Bit `id` set iff `id < offsets.len() - 1` is a token (or special token) in range.
    known: Vec<u64>,
    /// Known special ids at or beyond `offsets.len() - 1`.
    known_high: FxHashSet<u32>,
}

impl SplitTable {
    /// Build the table of `vocab`; `specials` are ids that may occur in sequences but are
    /// never split and never produced as halves (special tokens, added tokens).
    ///
    /// `O(Σ len(token))` hash probes.
    pub fn new(vocab: &Vocab, specials: impl IntoIterator<Item = u32>) -> Self {
        let slots = vocab.n_slots();
        let mut known = vec![0u64; slots.div_ceil(64)];
        let mut known_high = FxHashSet::default();
        let mut special_set = FxHashSet::default();
        for s in specials {
            special_set.insert(s);
            if (s as usize) < slots {
                known[s as usize / 64] |= 1 << (s % 64);
            } else {
                known_high.insert(s);
            }
        }
        let is_half = |b: &[u8]| vocab.get(b).filter(|h| !special_set.contains(h));
        let mut offsets = Vec::with_capacity(slots + 1);
        let mut pairs = Vec::new();
        offsets.push(0u32);
        for id in 0..slots as u32 {
            if let Some(bytes) = vocab.bytes(id) {
                known[id as usize / 64] |= 1 << (id % 64);
                if !special_set.contains(&id) {
                    for j in 1..bytes.len() {
                        if let (Some(l), Some(r)) = (is_half(&bytes[..j]), is_half(&bytes[j..])) {
                            pairs.push([l, r]);
                        }
                    }
                }
            }
            // Vocab::from_pairs guarantees the total byte size fits in u32, and there is
            // at most one split per byte.
            offsets.push(pairs.len() as u32);
        }
        SplitTable {
            offsets,
            pairs,
            known,
            known_high,
        }
    }

    /// The split table of an HF byte-level BPE tokenizer: its byte-level model entries are
    /// the tokens; added tokens (special or not) and entries that are not byte strings are
    /// known but never split and never produced.
    pub fn from_hf(tok: &HfTokenizer) -> Self {
        let model = tok.model();
        let bytes = model.byte_vocab();
        let mut fixed: Vec<u32> = tok.added().tokens().iter().map(|(id, _)| *id).collect();
        fixed.extend(
            model
                .entries()
                .filter(|&(_, id)| bytes.bytes(id).is_none())
                .map(|(_, id)| id),
        );
        SplitTable::new(bytes, fixed)
    }

    /// Number of id slots covered by the CSR arrays (one past the largest token id).
    pub fn n_slots(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Total number of legal splits.
    pub fn n_splits(&self) -> usize {
        self.pairs.len()
    }

    /// CSR arrays `(offsets, pairs)`: `offsets` has `n_slots() + 1` entries; the splits of
    /// `t` are `pairs[offsets[t]..offsets[t + 1]]`, each `[left, right]`.
    pub fn csr(&self) -> (&[u32], &[[u32; 2]]) {
        (&self.offsets, &self.pairs)
    }

    /// Legal splits of `id`, each `[left, right]`, in cut order (empty if none).
    #[inline]
    pub fn splits(&self, id: u32) -> &[[u32; 2]] {
        let i = id as usize;
        if i + 1 >= self.offsets.len() {
            return &[];
        }
        &self.pairs[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// The largest known id (token or special), `None` for an empty vocabulary.
    pub fn max_known_id(&self) -> Option<u32> {
        let high = self.known_high.iter().copied().max();
        let low = (0..self.n_slots()).rev().find(|&i| self.is_known(i as u32));
        high.or(low.map(|i| i as u32))
    }

    /// Whether `id` is a token or special token of the vocabulary.
    #[inline]
    pub fn is_known(&self, id: u32) -> bool {
        let i = id as usize;
        if i < self.n_slots() {
            self.known[i / 64] >> (i % 64) & 1 == 1
        } else {
            self.known_high.contains(&id)
        }
    }

    /// Fail with a message naming the first id (and its position) that is not a token.
    pub fn check_ids(&self, ids: &[u32]) -> Result<()> {
        match ids.iter().position(|&t| !self.is_known(t)) {
            None => Ok(()),
            Some(pos) => Err(Error::InvalidArgument(format!(
                "token id {} at position {pos} is not in the vocabulary",
                ids[pos]
            ))),
        }
    }

    /// StochasTok-expand `ids` (see the module documentation) with generator `rng`,
    /// appending the result to `out`. Returns the number of successful splits.
    ///
    /// Draw order (part of the reproducibility contract): per attempt, one
    /// `below(current length)` for the slot, then, only if the token there has two or more
    /// legal splits, one `below(number of splits)` for the split.
    pub fn stochastok_into(
        &self,
        ids: &[u32],
        p: f64,
        max_expansions: Option<u64>,
        rng: &mut Rng,
        out: &mut Vec<u32>,
    ) -> Result<u64> {
        check_probability(p, "p")?;
        self.check_ids(ids)?;
        let n = ids.len();
        let attempts = num_attempts(n, p);
        let cap = max_expansions.unwrap_or(u64::MAX);
        if attempts == 0 || cap == 0 {
            out.extend_from_slice(ids);
            return Ok(0);
        }
        let max_new = attempts.min(cap);
        let slots = (n as u64).saturating_add(max_new);
        if slots >= END as u64 {
            return Err(Error::InvalidArgument(format!(
                "sequence too long for one StochasTok call ({n} ids, up to {max_new} splits); \
                 split it into chunks"
            )));
        }
        let slots = slots as usize;
        // slot[k] = [token, next]: the token in slot k and the slot after it in sequence
        // order. For an input slot, next == 0 means "not split: the next input slot" (slot
        // 0 is never anyone's successor). Token and link share a cache line: one miss per
        // attempt on long sequences.
        let mut slot: Vec<[u32; 2]> = Vec::with_capacity(slots);
        slot.extend(ids.iter().map(|&t| [t, 0]));
        // bit k: input slot k was split
        let mut split_bits: Vec<u64> = vec![0; n.div_ceil(64)];
        let mut done = 0u64;
        for _ in 0..attempts {
            let len = slot.len();
            let k = rng.below(len as u64) as usize;
            let [t, nx] = slot[k];
            let options = self.splits(t);
            let [l, r] = match options.len() {
                0 => continue,
                1 => options[0],
                m => options[rng.below(m as u64) as usize],
            };
            let succ = if nx == 0 {
                // an input slot split for the first time (appended slots never hold 0)
                split_bits[k / 64] |= 1 << (k % 64);
                if k + 1 < n {
                    (k + 1) as u32
                } else {
                    END
                }
            } else {
                nx
            };
            slot[k] = [l, len as u32];
            slot.push([r, succ]);
            done += 1;
            if done >= cap {
                break;
            }
        }
        out.reserve(slot.len());
        if done == 0 {
            out.extend_from_slice(ids);
            return Ok(0);
        }
        // runs of unsplit input slots are copied; from each split input slot, the chain of
        // right halves is followed up to the next input slot (or the end)
        let mut pos = 0usize;
        for (w, &bits) in split_bits.iter().enumerate() {
            let mut b = bits;
            while b != 0 {
                let h = w * 64 + b.trailing_zeros() as usize;
                b &= b - 1;
                out.extend(slot[pos..h].iter().map(|s| s[0]));
                let mut i = h;
                loop {
                    let [t, nx] = slot[i];
                    out.push(t);
                    if nx == END || (nx as usize) < n {
                        break;
                    }
                    i = nx as usize;
                }
                pos = h + 1;
            }
        }
        out.extend(slot[pos..n].iter().map(|s| s[0]));
        Ok(done)
    }

    /// StochasTok-expand one sequence with the generator of `(seed, stream 0)`.
    pub fn stochastok(
        &self,
        ids: &[u32],
        p: f64,
        max_expansions: Option<u64>,
        seed: u64,
    ) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        let mut rng = Rng::new(seed, 0);
        self.stochastok_into(ids, p, max_expansions, &mut rng, &mut out)?;
        Ok(out)
    }

    /// StochasTok-expand row `row` of a batch: the generator is stream `row` of `seed`
    /// (row 0 is [`SplitTable::stochastok`]). Errors name the row.
    pub fn stochastok_row(
        &self,
        ids: &[u32],
        p: f64,
        max_expansions: Option<u64>,
        seed: u64,
        row: u64,
    ) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        let mut rng = Rng::new(seed, row);
        self.stochastok_into(ids, p, max_expansions, &mut rng, &mut out)
            .map_err(|e| match e {
                Error::InvalidArgument(m) => Error::InvalidArgument(format!("row {row}: {m}")),
                e => e,
            })?;
        Ok(out)
    }

    /// StochasTok-expand every row independently with [`SplitTable::stochastok_row`] (row
    /// `i` uses stream `i` of `seed`), so the output does not depend on the number of
    /// threads. Runs on the current rayon pool.
    pub fn stochastok_batch<R: AsRef<[u32]> + Sync>(
        &self,
        rows: &[R],
        p: f64,
        max_expansions: Option<u64>,
        seed: u64,
    ) -> Result<Vec<Vec<u32>>> {
        check_probability(p, "p")?;
        rows.par_iter()
            .enumerate()
            .map(|(i, row)| self.stochastok_row(row.as_ref(), p, max_expansions, seed, i as u64))
            .collect()
    }

    /// Ragged form of [`SplitTable::stochastok_batch`]: row `i` is
    /// `values[offsets[i]..offsets[i + 1]]`. Returns the expanded values and offsets.
    pub fn stochastok_ragged(
        &self,
        values: &[u32],
        offsets: &[u64],
        p: f64,
        max_expansions: Option<u64>,
        seed: u64,
    ) -> Result<(Vec<u32>, Vec<u64>)> {
        let rows = ragged_rows(values, offsets)?;
        let res = self.stochastok_batch(&rows, p, max_expansions, seed)?;
        let total: usize = res.iter().map(Vec::len).sum();
        let mut flat = Vec::with_capacity(total);
        let mut offs = Vec::with_capacity(res.len() + 1);
        offs.push(0u64);
        for r in res {
            flat.extend_from_slice(&r);
            offs.push(flat.len() as u64);
        }
        Ok((flat, offs))
    }
}

/// The number of attempts for `n` ids: `floor(n · p)` computed in double precision, as
/// the reference's `int(len(ids) * p)`.
pub fn num_attempts(n: usize, p: f64) -> u64 {
    let x = n as f64 * p;
    if x.is_finite() && x > 0.0 {
        x as u64
    } else {
        0
    }
}

/// Validate ragged offsets: at least one, non-decreasing, starting at 0 and ending at
/// `n_values`.
pub fn check_ragged_offsets(n_values: usize, offsets: &[u64]) -> Result<()> {
    let bad = |m: String| {
        Err(Error::InvalidArgument(format!(
            "invalid ragged offsets: {m}"
        )))
    };
    if offsets.is_empty() {
        return bad("need at least one offset (0)".into());
    }
    if offsets[0] != 0 {
        return bad(format!("the first offset must be 0, got {}", offsets[0]));
    }
    let last = offsets[offsets.len() - 1];
    if last != n_values as u64 {
        return bad(format!(
            "the last offset must equal the number of values ({n_values}), got {last}"
        ));
    }
    for (i, w) in offsets.windows(2).enumerate() {
        if w[1] < w[0] {
            return bad(format!(
                "offsets[{}] = {} < offsets[{i}] = {}",
                i + 1,
                w[1],
                w[0]
            ));
        }
    }
    Ok(())
}

/// Validate ragged offsets (see [`check_ragged_offsets`]) and slice the rows.
pub fn ragged_rows<'a>(values: &'a [u32], offsets: &[u64]) -> Result<Vec<&'a [u32]>> {
    check_ragged_offsets(values.len(), offsets)?;
    Ok(offsets
        .windows(2)
        .map(|w| &values[w[0] as usize..w[1] as usize])
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(tokens: &[&[u8]]) -> Vocab {
        let mut pairs: Vec<(Vec<u8>, u32)> = (0..=255u8).map(|b| (vec![b], b as u32)).collect();
        for (i, t) in tokens.iter().enumerate() {
            pairs.push((t.to_vec(), 256 + i as u32));
        }
        Vocab::from_pairs(pairs).unwrap()
    }

    fn decode(v: &Vocab, ids: &[u32]) -> Vec<u8> {
        ids.iter()
            .flat_map(|&t| v.bytes(t).unwrap().to_vec())
            .collect()
    }

    #[test]
    fn table_lists_every_legal_cut() {
        let v = vocab(&[b"ab", b"bc", b"abc", b"abcd", b"cd"]);
        let t = SplitTable::new(&v, []);
        let abc = v.get(b"abc").unwrap();
        // a|bc and ab|c, in cut order
        assert_eq!(
            t.splits(abc),
            &[
                [b'a' as u32, v.get(b"bc").unwrap()],
                [v.get(b"ab").unwrap(), b'c' as u32]
            ]
        );
        let abcd = v.get(b"abcd").unwrap();
        // a|bcd no (bcd not a token), ab|cd yes, abc|d yes
        assert_eq!(
            t.splits(abcd),
            &[
                [v.get(b"ab").unwrap(), v.get(b"cd").unwrap()],
                [abc, b'd' as u32]
            ]
        );
        assert!(t.splits(b'a' as u32).is_empty());
        assert!(t.splits(100_000).is_empty());
        assert_eq!(t.n_splits(), 1 + 1 + 2 + 2 + 1);
    }

    #[test]
    fn specials_are_known_but_never_split_or_produced() {
        let v = vocab(&[b"<s", b"<s>", b"<s>x"]);
        let s = v.get(b"<s>").unwrap();
        let t = SplitTable::new(&v, [s, 5000]);
        assert!(t.is_known(s) && t.is_known(5000) && !t.is_known(5001));
        assert!(t.splits(s).is_empty());
        assert!(t.splits(v.get(b"<s>x").unwrap()).iter().all(|p| p[0] != s));
        assert!(t.check_ids(&[1, 5000, 7]).is_ok());
        let e = t.check_ids(&[1, 2, 5001]).unwrap_err();
        assert!(e.to_string().contains("5001") && e.to_string().contains("position 2"));
    }

    #[test]
    fn round_trip_length_and_seed() {
        let v = vocab(&[b"ab", b"bc", b"abc", b"abcd", b"cd", b"abcdabcd"]);
        let t = SplitTable::new(&v, []);
        let ids: Vec<u32> = (0..500).map(|i| 256 + (i * 7 % 6) as u32).collect();
        for &p in &[0.0, 0.05, 0.3, 1.0] {
            for seed in 0..5 {
                let out = t.stochastok(&ids, p, None, seed).unwrap();
                assert_eq!(decode(&v, &out), decode(&v, &ids));
                assert!(out.len() - ids.len() <= num_attempts(ids.len(), p) as usize);
                assert_eq!(out, t.stochastok(&ids, p, None, seed).unwrap());
            }
        }
        let out = t.stochastok(&ids, 1.0, Some(3), 1).unwrap();
        assert_eq!(out.len(), ids.len() + 3);
        assert_eq!(t.stochastok(&ids, 1.0, Some(0), 1).unwrap(), ids);
        assert!(t.stochastok(&ids, 1.5, None, 1).is_err());
        assert!(t.stochastok(&ids, f64::NAN, None, 1).is_err());
        assert!(t.stochastok(&[], 1.0, None, 1).unwrap().is_empty());
    }

    #[test]
    fn batch_rows_use_their_streams() {
        let v = vocab(&[b"ab", b"abc", b"abcd"]);
        let t = SplitTable::new(&v, []);
        let rows: Vec<Vec<u32>> = (0..20).map(|i| vec![258; 10 + i]).collect();
        let b = t.stochastok_batch(&rows, 0.5, None, 9).unwrap();
        assert_eq!(b[0], t.stochastok(&rows[0], 0.5, None, 9).unwrap());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let b3 = pool.install(|| t.stochastok_batch(&rows, 0.5, None, 9).unwrap());
        assert_eq!(b, b3);
        let values: Vec<u32> = rows.concat();
        let mut offs = vec![0u64];
        for r in &rows {
            offs.push(offs.last().unwrap() + r.len() as u64);
        }
        let (fv, fo) = t.stochastok_ragged(&values, &offs, 0.5, None, 9).unwrap();
        assert_eq!(fv, b.concat());
        assert_eq!(fo.len(), rows.len() + 1);
        assert!(ragged_rows(&values, &[0, 5, 3, values.len() as u64]).is_err());
        assert!(ragged_rows(&values, &[1, values.len() as u64]).is_err());
        assert!(ragged_rows(&values, &[0, 1]).is_err());
        assert!(ragged_rows(&values, &[]).is_err());
    }

    #[test]
    fn attempts_match_python_int() {
        assert_eq!(num_attempts(10, 0.3), 3); // 3.0000000000000004
        assert_eq!(num_attempts(100, 0.29), 28); // 28.999999999999996
        assert_eq!(num_attempts(7, 1.0), 7);
        assert_eq!(num_attempts(0, 1.0), 0);
    }
}
