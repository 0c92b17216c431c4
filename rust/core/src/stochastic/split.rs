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
//! current tokens, not on their order. So the current tokens are kept as an unordered
//! vector of leaves of a forest (one binary tree per input token): a split replaces the
//! chosen leaf in place by its left half and appends the right half. Every attempt is
//! O(1); the order is restored at the end by an in-order walk of each tree. The output has
//! the reference's distribution exactly (not its random stream).

use rayon::prelude::*;
use rustc_hash::FxHashSet;

use super::check_probability;
use super::rng::Rng;
use crate::error::{Error, Result};
use crate::vocab::Vocab;

const NONE: u32 = u32::MAX;

/// For every token, all its legal binary splits, in CSR form.
///
/// The splits of id `t` are `(left[k], right[k])` for `k` in `offsets[t]..offsets[t + 1]`,
/// in increasing order of the cut position. Ids outside the vocabulary, single-byte tokens
/// and special tokens have none.
#[derive(Clone, Debug)]
pub struct SplitTable {
    offsets: Vec<u32>,
    left: Vec<u32>,
    right: Vec<u32>,
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
        let mut left = Vec::new();
        let mut right = Vec::new();
        offsets.push(0u32);
        for id in 0..slots as u32 {
            if let Some(bytes) = vocab.bytes(id) {
                known[id as usize / 64] |= 1 << (id % 64);
                if !special_set.contains(&id) {
                    for j in 1..bytes.len() {
                        if let (Some(l), Some(r)) = (is_half(&bytes[..j]), is_half(&bytes[j..])) {
                            left.push(l);
                            right.push(r);
                        }
                    }
                }
            }
            // Vocab::from_pairs guarantees the total byte size fits in u32, and there is
            // at most one split per byte.
            offsets.push(left.len() as u32);
        }
        SplitTable {
            offsets,
            left,
            right,
            known,
            known_high,
        }
    }

    /// Number of id slots covered by the CSR arrays (one past the largest token id).
    pub fn n_slots(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Total number of legal splits.
    pub fn n_splits(&self) -> usize {
        self.left.len()
    }

    /// CSR arrays `(offsets, left, right)`; `offsets` has `n_slots() + 1` entries.
    pub fn csr(&self) -> (&[u32], &[u32], &[u32]) {
        (&self.offsets, &self.left, &self.right)
    }

    /// Legal splits of `id` as parallel slices `(left, right)` (empty if none).
    #[inline]
    pub fn splits(&self, id: u32) -> (&[u32], &[u32]) {
        let i = id as usize;
        if i + 1 >= self.offsets.len() {
            return (&[], &[]);
        }
        let (a, b) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        (&self.left[a..b], &self.right[a..b])
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
        // Nodes 0..n are the input tokens; a split node's halves are two consecutive nodes
        // starting at `child[node]`. Bounded by n + 2·min(attempts, cap) nodes.
        let max_new = attempts.min(cap);
        let total = (n as u64).saturating_add(max_new.saturating_mul(2));
        if total >= NONE as u64 {
            return Err(Error::InvalidArgument(format!(
                "sequence too long for one StochasTok call ({n} ids, up to {max_new} splits); \
                 split it into chunks"
            )));
        }
        let reserve = total as usize;
        let mut tok: Vec<u32> = Vec::with_capacity(reserve);
        tok.extend_from_slice(ids);
        let mut child: Vec<u32> = vec![NONE; n];
        child.reserve(reserve - n);
        let mut leaves: Vec<u32> = (0..n as u32).collect();
        let mut done = 0u64;
        for _ in 0..attempts {
            let k = rng.below(leaves.len() as u64) as usize;
            let node = leaves[k] as usize;
            let (ls, rs) = self.splits(tok[node]);
            if ls.is_empty() {
                continue;
            }
            let j = if ls.len() == 1 {
                0
            } else {
                rng.below(ls.len() as u64) as usize
            };
            let a = tok.len() as u32;
            tok.push(ls[j]);
            tok.push(rs[j]);
            child.push(NONE);
            child.push(NONE);
            child[node] = a;
            leaves[k] = a;
            leaves.push(a + 1);
            done += 1;
            if done >= cap {
                break;
            }
        }
        drop(leaves);
        out.reserve(n + done as usize);
        if done == 0 {
            out.extend_from_slice(ids);
            return Ok(0);
        }
        let mut stack: Vec<u32> = Vec::new();
        for i in 0..n {
            if child[i] == NONE {
                out.push(tok[i]);
                continue;
            }
            stack.push(i as u32);
            while let Some(v) = stack.pop() {
                let c = child[v as usize];
                if c == NONE {
                    out.push(tok[v as usize]);
                } else {
                    stack.push(c + 1);
                    stack.push(c);
                }
            }
        }
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

    /// StochasTok-expand every row independently; row `i` uses stream `i` of `seed`, so
    /// row 0 equals [`SplitTable::stochastok`] with the same seed and the output does not
    /// depend on the number of threads. Runs on the current rayon pool.
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
            .map(|(i, row)| {
                let mut out = Vec::new();
                let mut rng = Rng::new(seed, i as u64);
                self.stochastok_into(row.as_ref(), p, max_expansions, &mut rng, &mut out)
                    .map_err(|e| match e {
                        Error::InvalidArgument(m) => {
                            Error::InvalidArgument(format!("row {i}: {m}"))
                        }
                        e => e,
                    })?;
                Ok(out)
            })
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

/// Validate ragged offsets (non-decreasing, starting at 0, ending at `values.len()`) and
/// slice the rows.
pub fn ragged_rows<'a>(values: &'a [u32], offsets: &[u64]) -> Result<Vec<&'a [u32]>> {
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
    if last != values.len() as u64 {
        return bad(format!(
            "the last offset must equal the number of values ({}), got {last}",
            values.len()
        ));
    }
    let mut rows = Vec::with_capacity(offsets.len() - 1);
    for (i, w) in offsets.windows(2).enumerate() {
        if w[1] < w[0] {
            return bad(format!(
                "offsets[{}] = {} < offsets[{i}] = {}",
                i + 1,
                w[1],
                w[0]
            ));
        }
        rows.push(&values[w[0] as usize..w[1] as usize]);
    }
    Ok(rows)
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
        let (l, r) = t.splits(abc);
        // a|bc and ab|c, in cut order
        assert_eq!(l, &[b'a' as u32, v.get(b"ab").unwrap()]);
        assert_eq!(r, &[v.get(b"bc").unwrap(), b'c' as u32]);
        let abcd = v.get(b"abcd").unwrap();
        let (l, r) = t.splits(abcd);
        // a|bcd no (bcd not a token), ab|cd yes, abc|d yes
        assert_eq!(l, &[v.get(b"ab").unwrap(), abc]);
        assert_eq!(r, &[v.get(b"cd").unwrap(), b'd' as u32]);
        assert_eq!(t.splits(b'a' as u32).0.len(), 0);
        assert_eq!(t.splits(100_000).0.len(), 0);
        assert_eq!(t.n_splits(), 1 + 1 + 2 + 2 + 1);
    }

    #[test]
    fn specials_are_known_but_never_split_or_produced() {
        let v = vocab(&[b"<s", b"<s>", b"<s>x"]);
        let s = v.get(b"<s>").unwrap();
        let t = SplitTable::new(&v, [s, 5000]);
        assert!(t.is_known(s) && t.is_known(5000) && !t.is_known(5001));
        assert_eq!(t.splits(s).0.len(), 0);
        let (l, _) = t.splits(v.get(b"<s>x").unwrap());
        assert!(!l.contains(&s));
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
