//! Stage-2 replay of an existing merge list, chunk by chunk.
//!
//! # Semantics
//! The reference replays merge `0`, then merge `1`, ... over the whole corpus, each merge
//! applied left to right without overlap to every chunk that holds its pair
//! ([`crate::train::Trainer::replay`] does exactly that on a trainer). Merges act on one
//! chunk at a time, so the same result is obtained chunk by chunk: a heap of `(rank,
//! position)` pops the lowest rank first, the leftmost position among equal ranks, and a
//! pair that appears at rank `r` is given the first rank of that pair *after* `r` (the
//! global sweep has already passed the earlier ones). This equals HF's encode-time
//! `merge_all` whenever the list never re-creates a token (the usual case) and stays
//! identical to the sequential sweep when it does.
//!
//! # Why chunk by chunk
//! Stage-2 chunks are whole lines (KBs). Converting every distinct chunk to its post-replay
//! token sequence in parallel, and only then building the trainer, means the trainer holds
//! ~4× fewer positions than bytes (stage-1 tokens are ~4 bytes long) and never stores the
//! bytes of the corpus: the chunk text is freed block by block while it is converted.
//!
//! Ids during replay are those of a "keep" run: bytes are `0..256`, every listed merge
//! creates its token (or reuses it when its bytes already are a token). [`ReplayTable::finish`]
//! applies the policy for merges that never occurred and renumbers.

/// Record that the pair `k` is merged at `rank` into the token `res`: its first rank and
/// its result in `first`, every rank of a pair merged more than once in `more` (in order,
/// the first included). A pair always makes the same token (the token with the bytes of
/// its two sides), so one result per pair.
fn note_rank(
    first: &mut FxHashMap<u64, (u32, u32)>,
    more: &mut FxHashMap<u64, Vec<u32>>,
    k: u64,
    rank: u32,
    res: u32,
) {
    match first.get(&k) {
        None => {
            first.insert(k, (rank, res));
        }
        Some(&(f, _)) => more.entry(k).or_insert_with(|| vec![f]).push(rank),
    }
}

#[cfg(test)]
use std::cmp::Reverse;
#[cfg(test)]
use std::collections::BinaryHeap;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::train::counts::PretokenCounts;
use crate::train::{Merge, ReplayPolicy};

const NONE: u32 = u32::MAX;
const DEAD: u32 = u32::MAX - 1;

#[inline]
fn key(l: u32, r: u32) -> u64 {
    ((l as u64) << 32) | r as u64
}

/// One parallel part of a replayed block: the tokens of its chunks, their lengths and their
/// counts.
type ReplayedPart = (Vec<u32>, Vec<u32>, Vec<u64>);

/// The merge list to replay, in "keep" ids.
#[derive(Clone, Debug)]
pub struct ReplayTable {
    /// Token bytes by keep id.
    tokens: Vec<Box<[u8]>>,
    /// `(left, right, result)` by rank.
    merges: Vec<(u32, u32, u32)>,
    /// First rank of each pair, and the token it makes.
    first: FxHashMap<u64, (u32, u32)>,
    /// All ranks (ascending) of pairs listed more than once.
    more: FxHashMap<u64, Vec<u32>>,
    /// Bit `a << 8 | b` is set when the bytes `a b` are adjacent inside some token: a chunk
    /// can be cut between two bytes whose bit is clear (no token can span the cut).
    inner: Vec<u64>,
    /// `first` of the byte pairs, indexed by `a << 8 | b` (`(NONE, 0)` when the pair is not
    /// merged): a replayed part starts as bytes, and these entries sit in a few cache lines
    /// where the hash map's are spread over all of it.
    byte_first: Vec<(u32, u32)>,
}

impl ReplayTable {
    /// Build from merges given as the bytes of their two sides, in rank order. Every side
    /// must be a single byte or the result of an earlier merge.
    pub fn new(merges: &[(Vec<u8>, Vec<u8>)]) -> Result<Self> {
        let mut tokens: Vec<Box<[u8]>> = (0..=255u8).map(|b| vec![b].into_boxed_slice()).collect();
        let mut ids: FxHashMap<Box<[u8]>, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let mut list = Vec::with_capacity(merges.len());
        let mut first: FxHashMap<u64, (u32, u32)> = FxHashMap::default();
        let mut more: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
        for (i, (lb, rb)) in merges.iter().enumerate() {
            if lb.is_empty() || rb.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "merge {i} has an empty side"
                )));
            }
            let side = |b: &[u8]| {
                ids.get(b).copied().ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "merge {i} ({} + {}) uses the token {}, which no earlier merge creates",
                        crate::util::bytes_repr(lb),
                        crate::util::bytes_repr(rb),
                        crate::util::bytes_repr(b)
                    ))
                })
            };
            let l = side(lb)?;
            let r = side(rb)?;
            let mut nb = Vec::with_capacity(lb.len() + rb.len());
            nb.extend_from_slice(lb);
            nb.extend_from_slice(rb);
            let res = match ids.get(&nb[..]) {
                Some(&id) => id,
                None => {
                    if tokens.len() >= DEAD as usize {
                        return Err(Error::InvalidArgument("too many merges".into()));
                    }
                    let id = tokens.len() as u32;
                    let b: Box<[u8]> = nb.into_boxed_slice();
                    ids.insert(b.clone(), id);
                    tokens.push(b);
                    id
                }
            };
            let k = key(l, r);
            let rank = i as u32;
            note_rank(&mut first, &mut more, k, rank, res);
            list.push((l, r, res));
        }
        Ok(Self::assemble(tokens, list, first, more))
    }

    /// The table of a merge list as a BPE trainer returns it: `vocab` holds the token
    /// bytes by id (the 256 single bytes, then one new token per merge) and `merges` the id
    /// pairs in rank order, merge `i` creating token `256 + i`. The same table as
    /// [`ReplayTable::new`] on the merges' byte pairs, built without looking any token up
    /// by its bytes. `None` when the list is not of that form (a merge re-created an
    /// existing token, the tokens are not distinct, ...): use [`ReplayTable::new`] then.
    pub fn from_ids(vocab: &[&[u8]], merges: &[(u32, u32)]) -> Option<Self> {
        if vocab.len() != 256 + merges.len()
            || vocab[..256]
                .iter()
                .enumerate()
                .any(|(i, t)| t.len() != 1 || t[0] as usize != i)
        {
            return None;
        }
        // Distinct tokens: then `new` finds every side at its id here and creates every
        // result as the next id (no concatenation is an earlier token).
        let mut seen: rustc_hash::FxHashSet<&[u8]> =
            rustc_hash::FxHashSet::with_capacity_and_hasher(vocab.len(), Default::default());
        if !vocab.iter().all(|t| seen.insert(t)) {
            return None;
        }
        drop(seen);
        let mut list = Vec::with_capacity(merges.len());
        let mut first: FxHashMap<u64, (u32, u32)> =
            FxHashMap::with_capacity_and_hasher(merges.len(), Default::default());
        let mut more: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
        for (i, &(l, r)) in merges.iter().enumerate() {
            let id = 256 + i;
            if l as usize >= id || r as usize >= id {
                return None;
            }
            let (a, b, c) = (vocab[l as usize], vocab[r as usize], vocab[id]);
            if c.len() != a.len() + b.len() || &c[..a.len()] != a || &c[a.len()..] != b {
                return None;
            }
            let k = key(l, r);
            let rank = i as u32;
            note_rank(&mut first, &mut more, k, rank, id as u32);
            list.push((l, r, id as u32));
        }
        let tokens = vocab.iter().map(|&t| Box::from(t)).collect();
        Some(Self::assemble(tokens, list, first, more))
    }

    /// The rest of a table: the bitmap of the byte pairs inside tokens.
    fn assemble(
        tokens: Vec<Box<[u8]>>,
        merges: Vec<(u32, u32, u32)>,
        first: FxHashMap<u64, (u32, u32)>,
        more: FxHashMap<u64, Vec<u32>>,
    ) -> Self {
        let mut inner = vec![0u64; 1024];
        for t in &tokens {
            for w in t.windows(2) {
                let k = ((w[0] as usize) << 8) | w[1] as usize;
                inner[k >> 6] |= 1 << (k & 63);
            }
        }
        let mut byte_first = vec![(NONE, 0u32); 1 << 16];
        for (i, &(l, r, c)) in merges.iter().enumerate() {
            if l < 256 && r < 256 {
                let e = &mut byte_first[(l as usize) << 8 | r as usize];
                if e.0 == NONE {
                    *e = (i as u32, c);
                }
            }
        }
        ReplayTable {
            tokens,
            merges,
            first,
            more,
            inner,
            byte_first,
        }
    }

    /// Number of merges.
    pub fn len(&self) -> usize {
        self.merges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.merges.is_empty()
    }

    /// Token bytes by keep id.
    pub fn tokens(&self) -> &[Box<[u8]>] {
        &self.tokens
    }

    /// The first rank of the pair `(l, r)` after `after` (any rank when `None`).
    #[inline]
    fn next_rank(&self, l: u32, r: u32, after: Option<u32>) -> Option<u32> {
        self.next_merge(l, r, after).map(|m| m.0)
    }

    /// The first rank of the pair `(l, r)` after `after` (any rank when `None`), and the
    /// token the pair makes.
    #[inline]
    fn next_merge(&self, l: u32, r: u32, after: Option<u32>) -> Option<(u32, u32)> {
        let k = key(l, r);
        let (f, res) = *self.first.get(&k)?;
        match after {
            None => Some((f, res)),
            Some(a) if f > a => Some((f, res)),
            Some(_) if self.more.is_empty() => None,
            Some(a) => {
                let all = self.more.get(&k)?;
                let i = all.partition_point(|&x| x <= a);
                all.get(i).map(|&q| (q, res))
            }
        }
    }

    /// The first rank of the byte pair `(a, b)` and the token it makes (`(NONE, 0)` when
    /// the pair is not merged).
    #[inline(always)]
    fn byte_merge(&self, a: u8, b: u8) -> (u32, u32) {
        self.byte_first[(a as usize) << 8 | b as usize]
    }

    /// Replay every merge on one chunk. Appends the resulting keep ids to `out` and adds
    /// `weight × occurrences` to `counts[rank]` for every merge applied (occurrences are
    /// counted with overlaps, as the trainer counts pairs: `aaa` holds `(a, a)` twice).
    pub fn replay_chunk(
        &self,
        bytes: &[u8],
        weight: u64,
        out: &mut Vec<u32>,
        counts: &mut [u64],
        sc: &mut ReplayScratch,
    ) {
        let mut log = Vec::new();
        self.replay_logged(bytes, weight, out, counts, sc, &mut log);
    }

    /// Whether no token can span the boundary between the bytes `a` and `b`.
    #[inline]
    fn cut_between(&self, a: u8, b: u8) -> bool {
        let k = ((a as usize) << 8) | b as usize;
        self.inner[k >> 6] & (1 << (k & 63)) == 0
    }

    /// [`ReplayTable::replay_chunk`] that also appends `(rank, occurrences)` of every merge
    /// applied to `log` (unweighted), so that a cached result can be counted again.
    fn replay_logged(
        &self,
        bytes: &[u8],
        weight: u64,
        out: &mut Vec<u32>,
        counts: &mut [u64],
        sc: &mut ReplayScratch,
        log: &mut Vec<(u32, u32)>,
    ) {
        let n = bytes.len();
        if n == 0 {
            return;
        }
        if n == 1 || self.merges.is_empty() {
            out.extend(bytes.iter().map(|&b| b as u32));
            return;
        }
        if n <= LINEAR_MAX {
            self.replay_linear(bytes, weight, out, counts, sc, log);
        } else {
            self.replay_buckets(bytes, weight, out, counts, sc, log);
        }
    }

    /// [`ReplayTable::replay_logged`] for short parts: the live symbols and the rank of
    /// each adjacent pair in two compact arrays; each step merges the leftmost pair of
    /// lowest rank (a linear scan). Same order as the heap (the heap pops the lowest
    /// `(rank, position)`, and a pair's rank is fixed when the pair is created: the first
    /// rank of the pair after the merge that created it), so the same tokens and log.
    fn replay_linear(
        &self,
        bytes: &[u8],
        weight: u64,
        out: &mut Vec<u32>,
        counts: &mut [u64],
        sc: &mut ReplayScratch,
        log: &mut Vec<(u32, u32)>,
    ) {
        let ReplayScratch {
            syms,
            next: ranks,
            prev: made,
            ..
        } = sc;
        syms.clear();
        syms.extend(bytes.iter().map(|&b| b as u32));
        // the rank of each adjacent pair, and the token it makes (so that a merge step
        // does not look its rank up in the merge list)
        ranks.clear();
        made.clear();
        for w in bytes.windows(2) {
            let (q, c) = self.byte_merge(w[0], w[1]);
            ranks.push(q);
            made.push(c);
        }
        loop {
            // leftmost minimum
            let mut best = NONE;
            let mut at = 0usize;
            for (i, &q) in ranks.iter().enumerate() {
                if q < best {
                    best = q;
                    at = i;
                }
            }
            if best == NONE {
                break;
            }
            let q = best;
            // the pair at `at` is (syms[at], syms[at + 1]); rank q merges it into made[at]
            let (l, r, c) = (syms[at], syms[at + 1], made[at]);
            let mut occ = 1u64;
            if l == r && syms.get(at + 2) == Some(&r) {
                occ += 1; // the overlapping occurrence this merge absorbs
            }
            record(counts, log, q, occ, weight);
            syms[at] = c;
            syms.remove(at + 1);
            ranks.remove(at);
            made.remove(at);
            if at + 1 < syms.len() {
                (ranks[at], made[at]) = self
                    .next_merge(c, syms[at + 1], Some(q))
                    .unwrap_or((NONE, 0));
            }
            if at > 0 {
                (ranks[at - 1], made[at - 1]) = self
                    .next_merge(syms[at - 1], c, Some(q))
                    .unwrap_or((NONE, 0));
            }
        }
        out.extend_from_slice(syms);
    }

    /// [`ReplayTable::replay_logged`] for long parts, with a bucket queue instead of a
    /// heap: the same linked positions and the same order as [`ReplayTable::replay_heap`],
    /// but the pending `(rank, position)` entries are kept in one list per rank (linked
    /// nodes, `ReplayScratch::head` indexed by rank) and a bitmap of the ranks that have
    /// entries.
    ///
    /// Why the order is the same: the heap pops the lowest rank first and, among equal
    /// ranks, the lowest position. Every entry pushed while rank `q` is being processed has
    /// a rank above `q` (a created pair gets the first rank of that pair *after* `q`), so
    /// the ranks come out in increasing order and the entries of rank `q` are all known
    /// when `q` is reached: they are taken out of their list, sorted by position and
    /// processed in that order, exactly as the heap pops them (a duplicate or stale entry
    /// fails the same check as in the heap). The smallest pending rank is found by
    /// scanning the bitmap forward from the current rank, a cursor that never moves back.
    /// Long parts are mostly long runs of one character (spaces, table rules), where the
    /// heap's `log n` per push and pop dominated.
    fn replay_buckets(
        &self,
        bytes: &[u8],
        weight: u64,
        out: &mut Vec<u32>,
        counts: &mut [u64],
        sc: &mut ReplayScratch,
        log: &mut Vec<(u32, u32)>,
    ) {
        let n = bytes.len();
        let nm = self.merges.len();
        let ReplayScratch {
            syms,
            next,
            prev,
            head,
            bits,
            nodes,
            batch,
            ..
        } = sc;
        if head.len() < nm {
            head.clear();
            head.resize(nm, NONE);
            bits.clear();
            bits.resize(nm.div_ceil(64), 0);
        }
        syms.clear();
        syms.extend(bytes.iter().map(|&b| b as u32));
        next.clear();
        next.extend(1..=n as u32);
        next[n - 1] = NONE;
        prev.clear();
        prev.extend((0..n as u32).map(|i| i.wrapping_sub(1)));
        nodes.clear();
        // `head[q]`: last node of rank q's list (NONE when empty); a node is `(position,
        // previous node)`.
        #[inline(always)]
        fn push(q: u32, p: u32, head: &mut [u32], bits: &mut [u64], nodes: &mut Vec<(u32, u32)>) {
            let h = &mut head[q as usize];
            nodes.push((p, *h));
            *h = (nodes.len() - 1) as u32;
            bits[(q >> 6) as usize] |= 1u64 << (q & 63);
        }
        for (i, w) in bytes.windows(2).enumerate() {
            let (q, _) = self.byte_merge(w[0], w[1]);
            if q != NONE {
                push(q, i as u32, head, bits, nodes);
            }
        }
        let mut word = 0usize;
        loop {
            // The smallest rank with pending entries (never below the current one).
            let q = loop {
                match bits.get(word) {
                    None => break None,
                    Some(&0) => word += 1,
                    Some(&w) => break Some((word as u32) << 6 | w.trailing_zeros()),
                }
            };
            let Some(q) = q else { break };
            bits[(q >> 6) as usize] &= !(1u64 << (q & 63));
            batch.clear();
            let mut at = head[q as usize];
            head[q as usize] = NONE;
            while at != NONE {
                let (p, older) = nodes[at as usize];
                batch.push(p);
                at = older;
            }
            batch.sort_unstable();
            for &p in batch.iter() {
                let at = Links { syms, next, prev };
                self.merge_at(q, p as usize, at, counts, log, weight, |q2, p2| {
                    push(q2, p2, head, bits, nodes)
                });
            }
        }
        let mut p = 0u32;
        while p != NONE {
            out.push(syms[p as usize]);
            p = next[p as usize];
        }
    }

    /// One step of the linked-position replays: merge rank `q` at position `p` if its
    /// pair is still there (the queued entry may be stale), record the occurrence, and
    /// hand each pair the new symbol forms with its neighbours, as `(rank, position)`, to
    /// `push`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn merge_at(
        &self,
        q: u32,
        p: usize,
        at: Links<'_>,
        counts: &mut [u64],
        log: &mut Vec<(u32, u32)>,
        weight: u64,
        mut push: impl FnMut(u32, u32),
    ) {
        let Links { syms, next, prev } = at;
        let (l, r, c) = self.merges[q as usize];
        if syms[p] != l {
            return;
        }
        let nx = next[p];
        if nx == NONE || syms[nx as usize] != r {
            return;
        }
        let nx = nx as usize;
        let nn = next[nx];
        let mut occ = 1u64;
        if l == r && nn != NONE && syms[nn as usize] == r {
            occ += 1; // the overlapping occurrence this merge absorbs
        }
        record(counts, log, q, occ, weight);
        syms[p] = c;
        syms[nx] = DEAD;
        next[p] = nn;
        if nn != NONE {
            prev[nn as usize] = p as u32;
            if let Some(q2) = self.next_rank(c, syms[nn as usize], Some(q)) {
                push(q2, p as u32);
            }
        }
        let pp = prev[p];
        if pp != NONE {
            if let Some(q2) = self.next_rank(syms[pp as usize], c, Some(q)) {
                push(q2, pp);
            }
        }
    }

    /// [`ReplayTable::replay_logged`] with a heap of `(rank, position)` over linked
    /// positions: O(n log n) for long parts. The reference of
    /// [`ReplayTable::replay_buckets`] (tests).
    #[cfg(test)]
    fn replay_heap(
        &self,
        bytes: &[u8],
        weight: u64,
        out: &mut Vec<u32>,
        counts: &mut [u64],
        sc: &mut ReplayScratch,
        log: &mut Vec<(u32, u32)>,
    ) {
        let n = bytes.len();
        let ReplayScratch {
            syms,
            next,
            prev,
            heap,
            ..
        } = sc;
        syms.clear();
        syms.extend(bytes.iter().map(|&b| b as u32));
        next.clear();
        next.extend(1..=n as u32);
        next[n - 1] = NONE;
        prev.clear();
        prev.extend((0..n as u32).map(|i| i.wrapping_sub(1)));
        heap.clear();
        for i in 0..n - 1 {
            if let Some(q) = self.next_rank(syms[i], syms[i + 1], None) {
                heap.push(Reverse((q, i as u32)));
            }
        }
        while let Some(Reverse((q, p))) = heap.pop() {
            let at = Links { syms, next, prev };
            self.merge_at(q, p as usize, at, counts, log, weight, |q2, p2| {
                heap.push(Reverse((q2, p2)))
            });
        }
        let mut p = 0u32;
        while p != NONE {
            out.push(syms[p as usize]);
            p = next[p as usize];
        }
    }

    /// [`ReplayTable::replay_chunk`], cutting the chunk where no token can span (between
    /// two bytes that are never adjacent inside a token: merges on the two sides never
    /// interact, so replaying the parts gives the same tokens and counts) and caching the
    /// short parts (mostly single words) in `cache`. The merge counts of the cached parts
    /// (the first occurrence included) are added to `counts` by [`PartCache::flush`] (the
    /// caller must flush into the same counts when done).
    pub fn replay_chunk_cached(
        &self,
        bytes: &[u8],
        weight: u64,
        out: &mut Vec<u32>,
        counts: &mut [u64],
        sc: &mut ReplayScratch,
        cache: &mut PartCache,
    ) {
        let n = bytes.len();
        if n == 0 {
            return;
        }
        let mut a = 0usize;
        for p in 1..=n {
            if p < n && !self.cut_between(bytes[p - 1], bytes[p]) {
                continue;
            }
            let part = &bytes[a..p];
            a = p;
            if part.len() == 1 {
                out.push(part[0] as u32);
                continue;
            }
            if part.len() > CACHE_MAX_PART {
                sc.log.clear();
                let mut log = std::mem::take(&mut sc.log);
                self.replay_logged(part, weight, out, counts, sc, &mut log);
                sc.log = log;
                continue;
            }
            // Parts of up to 15 bytes are looked up by their bytes packed in one or two u64
            // (exact keys: no key comparison), longer ones by a hash of their bytes (then
            // compared).
            let key = PartKey::of(bytes, a - part.len(), part.len());
            let h = match key {
                PartKey::Short(k) => {
                    if let Some(en) = cache.short.get_mut(&k) {
                        en.emit(&cache.ids, out);
                        // The merge counts of a hit are added when the cache is flushed.
                        en.hits = en.hits.wrapping_add(weight);
                        continue;
                    }
                    0
                }
                PartKey::Mid(k) => {
                    if let Some(en) = cache.mid.get_mut(&k) {
                        en.emit(&cache.ids, out);
                        en.hits = en.hits.wrapping_add(weight);
                        continue;
                    }
                    0
                }
                PartKey::Long => {
                    let h = crate::util::bytes_hash(part);
                    if let Some(&e) = cache.map.get(&h) {
                        let (k, kl) = (cache.key_at[e as usize] as usize, part.len());
                        if cache.keys.get(k..k + kl) == Some(part) {
                            let en = &mut cache.entries[e as usize];
                            en.emit(&cache.ids, out);
                            en.hits = en.hits.wrapping_add(weight);
                            continue;
                        }
                    }
                    h
                }
            };
            let before = out.len();
            let mut log = std::mem::take(&mut sc.log);
            log.clear();
            // Only logged: the entry starts with this occurrence's weight as a hit, and
            // `flush` counts it with the later hits.
            self.replay_logged(part, weight, out, &mut [], sc, &mut log);
            if cache.len() >= CACHE_ENTRIES {
                cache.flush(counts);
                cache.clear();
            }
            let got = &out[before..];
            let (ids, id1) = match *got {
                [a] => (a, 0),
                [a, b] => (a, b),
                _ => {
                    let at = cache.ids.len() as u32;
                    cache.ids.extend_from_slice(got);
                    (at, 0)
                }
            };
            // A part holds at most CACHE_MAX_PART bytes: its ids and its log (one entry per
            // merge) both fit in 16 bits.
            let entry = CacheEntry {
                ids,
                id1,
                log: cache.logs.len() as u32,
                n: got.len() as u32 | (log.len() as u32) << 16,
                hits: weight,
            };
            match key {
                PartKey::Short(k) => {
                    cache.short.insert(k, entry);
                }
                PartKey::Mid(k) => {
                    cache.mid.insert(k, entry);
                }
                PartKey::Long => {
                    cache.key_at.push(cache.keys.len() as u32);
                    cache.keys.extend_from_slice(part);
                    cache.map.insert(h, cache.entries.len() as u32);
                    cache.entries.push(entry);
                }
            }
            cache.logs.extend_from_slice(&log);
            sc.log = log;
        }
    }

    /// Apply `policy` to the replay result and renumber: returns the tokens and merges the
    /// trainer starts from, and the chunks in those ids.
    pub fn finish(&self, seg: SegmentedKeep, policy: ReplayPolicy) -> Result<Segmented> {
        let SegmentedKeep {
            mut syms,
            starts,
            counts,
            merge_counts,
        } = seg;
        // Which merges are recorded.
        let recorded: Vec<bool> = match policy {
            ReplayPolicy::Keep => vec![true; self.merges.len()],
            ReplayPolicy::Skip => merge_counts.iter().map(|&c| c > 0).collect(),
            ReplayPolicy::Error => {
                if let Some(i) = merge_counts.iter().position(|&c| c == 0) {
                    let (l, r, _) = self.merges[i];
                    return Err(Error::InvalidArgument(format!(
                        "replayed merge {i} ({} + {}) does not occur in the data",
                        crate::util::bytes_repr(&self.tokens[l as usize]),
                        crate::util::bytes_repr(&self.tokens[r as usize])
                    )));
                }
                vec![true; self.merges.len()]
            }
        };
        // New ids: bytes keep theirs; a token gets the next id at its first recorded
        // creation.
        let mut map = vec![NONE; self.tokens.len()];
        for (b, m) in map.iter_mut().enumerate().take(256) {
            *m = b as u32;
        }
        let mut tokens: Vec<Box<[u8]>> = self.tokens[..256].to_vec();
        let mut merges = Vec::new();
        let mut dropped = Vec::new();
        for (i, &(l, r, c)) in self.merges.iter().enumerate() {
            if !recorded[i] {
                dropped.push((
                    self.tokens[l as usize].to_vec(),
                    self.tokens[r as usize].to_vec(),
                ));
                continue;
            }
            if map[c as usize] == NONE {
                map[c as usize] = tokens.len() as u32;
                tokens.push(self.tokens[c as usize].clone());
            }
            let (nl, nr) = (map[l as usize], map[r as usize]);
            if nl == NONE || nr == NONE {
                // Unreachable: a merge can only occur once its sides exist, and a side is
                // created by an earlier recorded merge.
                return Err(Error::InvalidArgument(format!(
                    "internal error: replayed merge {i} uses a token that was dropped"
                )));
            }
            merges.push(Merge {
                left: nl,
                right: nr,
                result: map[c as usize],
                count: merge_counts[i],
            });
        }
        if matches!(policy, ReplayPolicy::Skip) {
            let map = &map;
            let bad = syms
                .par_iter_mut()
                .with_min_len(1 << 16)
                .map(|s| {
                    let m = map[*s as usize];
                    *s = m;
                    (m == NONE) as usize
                })
                .sum::<usize>();
            if bad > 0 {
                return Err(Error::InvalidArgument(
                    "internal error: a replayed chunk holds a dropped token".into(),
                ));
            }
        }
        Ok(Segmented {
            tokens,
            merges,
            dropped,
            syms,
            starts,
            counts,
        })
    }
}

/// Reusable buffers of [`ReplayTable::replay_chunk`].
#[derive(Default)]
pub struct ReplayScratch {
    syms: Vec<u32>,
    next: Vec<u32>,
    prev: Vec<u32>,
    #[cfg(test)]
    heap: BinaryHeap<Reverse<(u32, u32)>>,
    log: Vec<(u32, u32)>,
    /// Bucket queue of [`ReplayTable::replay_buckets`]: last node of each rank's list
    /// (all `NONE` between calls), bitmap of the non-empty ranks (all clear between
    /// calls), the nodes `(position, previous node)` and one rank's sorted positions.
    head: Vec<u32>,
    bits: Vec<u64>,
    nodes: Vec<(u32, u32)>,
    batch: Vec<u32>,
}

/// Parts up to this many bytes are replayed with linear scans instead of a heap.
const LINEAR_MAX: usize = 24;
/// Parts up to this many bytes are cached.
const CACHE_MAX_PART: usize = 64;
/// The cache is cleared when it holds this many parts.
const CACHE_ENTRIES: usize = 1 << 20;

/// The cache key of a part of 2 ..= CACHE_MAX_PART bytes: its bytes packed with its
/// length when it has at most 15 (an exact key), else only its class (looked up by hash).
#[derive(Clone, Copy)]
enum PartKey {
    /// Up to 7 bytes: the bytes (little-endian) and the length in the top byte.
    Short(u64),
    /// 8 to 15 bytes: the first 8 bytes, then the rest and the length in the top byte.
    Mid((u64, u64)),
    /// Longer parts.
    Long,
}

impl PartKey {
    /// The key of the part `bytes[at..at + len]` (`len` ≥ 1).
    #[inline(always)]
    fn of(bytes: &[u8], at: usize, len: usize) -> PartKey {
        if len <= 7 {
            PartKey::Short(load_le(bytes, at, len) | (len as u64) << 56)
        } else if len <= 15 {
            let lo = load_le(bytes, at, 8);
            PartKey::Mid((lo, load_le(bytes, at + 8, len - 8) | (len as u64) << 56))
        } else {
            PartKey::Long
        }
    }
}

/// The `n` ≤ 8 bytes `bytes[at..at + n]` as a little-endian u64 (zero above them): one
/// unaligned load, masked, when 8 bytes can be read from `at`, else byte by byte.
#[inline(always)]
fn load_le(bytes: &[u8], at: usize, n: usize) -> u64 {
    if let Some(w) = bytes.get(at..at + 8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        let x = u64::from_le_bytes(b);
        if n >= 8 {
            x
        } else {
            x & ((1u64 << (8 * n)) - 1)
        }
    } else {
        let mut k = 0u64;
        for (i, &b) in bytes[at..at + n].iter().enumerate() {
            k |= (b as u64) << (8 * i);
        }
        k
    }
}

/// One cached part: where its ids and log are, and the total weight of its occurrences
/// whose merge counts are not added yet. Up to two ids are kept in the entry itself (`ids`,
/// `id1`); more are at `ids` in [`PartCache::ids`]. 24 bytes: a slot of the short map is
/// 32.
#[derive(Clone, Copy)]
struct CacheEntry {
    ids: u32,
    id1: u32,
    /// Start of the log in [`PartCache::logs`].
    log: u32,
    /// Number of ids (low 16 bits) and of log entries (high 16 bits).
    n: u32,
    hits: u64,
}

impl CacheEntry {
    /// Append the part's token ids to `out`.
    #[inline]
    fn emit(&self, ids: &[u32], out: &mut Vec<u32>) {
        match self.n & 0xffff {
            1 => out.push(self.ids),
            2 => out.extend_from_slice(&[self.ids, self.id1]),
            n => out.extend_from_slice(&ids[self.ids as usize..(self.ids + n) as usize]),
        }
    }

    /// The range of the log in [`PartCache::logs`].
    #[inline]
    fn log_range(&self) -> std::ops::Range<usize> {
        self.log as usize..(self.log + (self.n >> 16)) as usize
    }
}

/// Replayed short parts: part bytes → its token ids and its `(rank, occurrences)` log.
/// Parts of up to 15 bytes are keyed by their packed bytes (one or two u64); longer ones by
/// a hash of their bytes (a hash collision between two different parts only costs a cache
/// miss).
///
/// A new entry starts with the weight of the occurrence that made it, a hit only adds its
/// weight to the entry; the merge counts of those weights are added to the caller's counts
/// by [`PartCache::flush`] (called when the cache is full, and must be called once more
/// when done), one pass over each entry's log instead of one per occurrence.
#[derive(Default)]
pub struct PartCache {
    /// packed bytes → entry (parts of up to 7 bytes; the entry is stored in the map: a
    /// hit reads one slot)
    short: FxHashMap<u64, CacheEntry>,
    /// packed bytes → entry (parts of 8 to 15 bytes)
    mid: FxHashMap<(u64, u64), CacheEntry>,
    /// hash → index in `entries` (longer parts)
    map: FxHashMap<u64, u32>,
    /// Entries of the longer parts, and where their bytes start in `keys`.
    entries: Vec<CacheEntry>,
    key_at: Vec<u32>,
    keys: Vec<u8>,
    ids: Vec<u32>,
    logs: Vec<(u32, u32)>,
}

impl PartCache {
    fn clear(&mut self) {
        self.short.clear();
        self.mid.clear();
        self.map.clear();
        self.entries.clear();
        self.key_at.clear();
        self.keys.clear();
        self.ids.clear();
        self.logs.clear();
    }

    /// Number of cached parts.
    fn len(&self) -> usize {
        self.short.len() + self.mid.len() + self.entries.len()
    }

    /// Add the merge counts of the hits so far to `counts` (indexed by rank; weights ×
    /// occurrences, wrapping like the counts themselves) and reset the hit weights.
    pub fn flush(&mut self, counts: &mut [u64]) {
        for e in self
            .entries
            .iter_mut()
            .chain(self.short.values_mut())
            .chain(self.mid.values_mut())
        {
            if e.hits == 0 {
                continue;
            }
            for &(q, occ) in &self.logs[e.log_range()] {
                let c = &mut counts[q as usize];
                *c = c.wrapping_add((occ as u64).wrapping_mul(e.hits));
            }
            e.hits = 0;
        }
    }
}

/// Chunks after replay, in keep ids.
pub struct SegmentedKeep {
    /// All chunks' token ids back to back.
    pub syms: Vec<u32>,
    /// Start of each chunk in `syms`.
    pub starts: Vec<u32>,
    /// Count of each chunk.
    pub counts: Vec<u64>,
    /// Occurrences of each replayed merge's pair just before it was applied.
    pub merge_counts: Vec<u64>,
}

/// What the stage-2 trainer starts from.
pub struct Segmented {
    /// Token bytes by id (bytes, then the recorded replayed tokens).
    pub tokens: Vec<Box<[u8]>>,
    /// The recorded replayed merges (with their counts).
    pub merges: Vec<Merge>,
    /// Merges dropped by [`ReplayPolicy::Skip`], as bytes.
    pub dropped: Vec<(Vec<u8>, Vec<u8>)>,
    pub syms: Vec<u32>,
    pub starts: Vec<u32>,
    pub counts: Vec<u64>,
}

/// Chunks are converted in blocks of this many (their text is freed block by block).
const BLOCK: usize = 1 << 14;

/// Replay `table` on every chunk of `chunks` (in the current rayon pool), consuming the
/// counts. Chunks that end up as a single token are dropped (they hold no pair).
/// `progress(done, total)` counts chunks.
pub fn replay_counts(
    table: &ReplayTable,
    chunks: PretokenCounts,
    progress: &mut dyn FnMut(u64, u64) -> Result<()>,
) -> Result<SegmentedKeep> {
    let total = chunks.len() as u64;
    let bytes_total: u64 = chunks.iter().map(|(k, _)| k.len() as u64).sum();
    let mut syms: Vec<u32> = Vec::with_capacity((bytes_total / 3).min(u32::MAX as u64) as usize);
    let mut starts: Vec<u32> = Vec::new();
    let mut counts: Vec<u64> = Vec::new();
    let nm = table.len();
    let mut merge_counts = vec![0u64; nm];
    let mut it = chunks.into_map().into_iter();
    let mut done = 0u64;
    let workers = rayon::current_num_threads().max(1);
    // One part cache and one merge-count array per worker (the counts are summed once at
    // the end, not once per part).
    // (and one scratch: the bucket replay's per-rank heads are sized by the merge count)
    type Worker = (PartCache, Vec<u64>, ReplayScratch);
    let caches: Vec<std::sync::Mutex<Worker>> = (0..=workers)
        .map(|_| std::sync::Mutex::new(Default::default()))
        .collect();
    // Appends a replayed block to the output (sequential: it runs beside the next block's
    // replay, on whichever worker is free first).
    let mut append = |parts: Vec<ReplayedPart>| -> Result<()> {
        for (out, lens, cs) in parts {
            if syms.len() + out.len() >= (DEAD - 1) as usize {
                return Err(Error::InvalidArgument(
                    "the distinct stage-2 chunks hold 4 billion tokens or more after replay: \
                     too large to train on in one process (subsample the corpus)"
                        .into(),
                ));
            }
            let mut at = syms.len() as u32;
            for l in lens {
                starts.push(at);
                at += l;
            }
            syms.extend_from_slice(&out);
            counts.extend_from_slice(&cs);
        }
        Ok(())
    };
    let mut pending: Option<Vec<ReplayedPart>> = None;
    loop {
        let mut block: Vec<(Box<[u8]>, u64)> = it.by_ref().take(BLOCK).collect();
        if block.is_empty() {
            break;
        }
        let per = block.len().div_ceil(workers * 4).max(64);
        let previous = pending.take();
        let append = &mut append;
        let (parts, appended) = rayon::join(
            || {
                block
                    .par_chunks_mut(per)
                    .map(|part| {
                        let slot =
                            rayon::current_thread_index().map_or(workers, |i| i.min(workers));
                        let mut guard = match caches[slot].lock() {
                            Ok(g) => g,
                            Err(p) => p.into_inner(),
                        };
                        let (cache, mc, sc) = &mut *guard;
                        if mc.len() != nm {
                            *mc = vec![0u64; nm];
                        }
                        // About 4 bytes per token or more after replay: one allocation,
                        // no regrowth.
                        let mut out =
                            Vec::with_capacity(part.iter().map(|(b, _)| b.len() / 4 + 1).sum());
                        let mut lens = Vec::with_capacity(part.len());
                        let mut cs = Vec::with_capacity(part.len());
                        for (b, c) in part.iter_mut() {
                            let before = out.len();
                            // The chunk's text is freed here, by the worker (not
                            // afterwards, one block at a time on one thread).
                            let text = std::mem::take(b);
                            table.replay_chunk_cached(&text, *c, &mut out, mc, sc, cache);
                            drop(text);
                            let len = out.len() - before;
                            if len < 2 {
                                out.truncate(before);
                                continue;
                            }
                            lens.push(len as u32);
                            cs.push(*c);
                        }
                        (out, lens, cs)
                    })
                    .collect::<Vec<ReplayedPart>>()
            },
            // The previous block is appended while this one is replayed (the appending
            // was a sequential stretch between blocks that left one core idle).
            || previous.map_or(Ok(()), &mut *append),
        );
        appended?;
        drop(block);
        pending = Some(parts);
        done = (done + BLOCK as u64).min(total);
        progress(done, total)?;
    }
    if let Some(parts) = pending {
        append(parts)?;
    }
    for c in caches {
        let (mut c, mc, _) = match c.into_inner() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        c.flush(&mut merge_counts);
        for (a, b) in merge_counts.iter_mut().zip(mc) {
            *a = a.wrapping_add(b);
        }
    }
    Ok(SegmentedKeep {
        syms,
        starts,
        counts,
        merge_counts,
    })
}

/// The symbol and link arrays of a part being replayed position by position.
struct Links<'a> {
    syms: &'a mut [u32],
    next: &'a mut [u32],
    prev: &'a mut [u32],
}

/// Count `occ` occurrences of merge `q` (times `weight`) and log them unweighted, so a
/// cached replay can be counted again: shared by the linear and the linked replays. An
/// empty `counts` only logs (the cached replay counts a new part through its log, as a
/// hit: one random access into the counts fewer per merge).
#[inline(always)]
fn record(counts: &mut [u64], log: &mut Vec<(u32, u32)>, q: u32, occ: u64, weight: u64) {
    if let Some(c) = counts.get_mut(q as usize) {
        *c = c.wrapping_add(occ.wrapping_mul(weight));
    }
    log.push((q, occ as u32));
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testutil::xorshift as rng;

    /// `n` random merges over a 3-letter alphabet: sides drawn from the tokens made so
    /// far, so pairs are listed more than once and tokens are re-created by other splits.
    fn random_merge_list(seed: &mut u64, n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut toks: Vec<Vec<u8>> = vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()];
        let mut list = Vec::new();
        for _ in 0..n {
            let l = toks[(rng(seed) % toks.len() as u64) as usize].clone();
            let r = toks[(rng(seed) % toks.len() as u64) as usize].clone();
            let mut t = l.clone();
            t.extend_from_slice(&r);
            if !toks.contains(&t) {
                toks.push(t);
            }
            list.push((l, r));
        }
        list
    }

    type Replay = fn(
        &ReplayTable,
        &[u8],
        u64,
        &mut Vec<u32>,
        &mut [u64],
        &mut ReplayScratch,
        &mut Vec<(u32, u32)>,
    );

    /// `replay` and the heap replay give the same tokens, counts and merge log on `s`.
    fn assert_same_as_heap(
        table: &ReplayTable,
        replay: Replay,
        s: &[u8],
        w: u64,
        sc: &mut ReplayScratch,
        round: usize,
    ) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let (mut ca, mut cb) = (vec![0u64; table.len()], vec![0u64; table.len()]);
        let (mut la, mut lb) = (Vec::new(), Vec::new());
        replay(table, s, w, &mut a, &mut ca, sc, &mut la);
        table.replay_heap(s, w, &mut b, &mut cb, sc, &mut lb);
        assert_eq!(a, b, "round {round}: {:?}", String::from_utf8_lossy(s));
        assert_eq!(ca, cb, "round {round}");
        assert_eq!(la, lb, "round {round}");
    }

    #[test]
    fn linear_replay_equals_heap_replay() {
        // Random merge lists over a 3-letter alphabet: sides drawn from the tokens made so
        // far, so pairs are listed more than once, tokens are re-created by other splits
        // and runs like `aaaa` overlap; every string up to LINEAR_MAX bytes.
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for round in 0..300 {
            let list = random_merge_list(&mut seed, 3 + round % 40);
            let table = ReplayTable::new(&list).unwrap();
            let mut sc = ReplayScratch::default();
            for _ in 0..40 {
                let n = 2 + (rng(&mut seed) % (LINEAR_MAX as u64 - 1)) as usize;
                let k = 1 + rng(&mut seed) % 3;
                let s: Vec<u8> = (0..n).map(|_| b'a' + (rng(&mut seed) % k) as u8).collect();
                let w = 1 + rng(&mut seed) % 5;
                assert_same_as_heap(&table, ReplayTable::replay_linear, &s, w, &mut sc, round);
            }
        }
    }

    #[test]
    fn bucket_replay_equals_heap_replay() {
        // Same random merge lists as above (repeated pairs, re-created tokens, overlapping
        // runs), on longer strings: random text, long runs of one byte, and runs with a
        // few other bytes in between; one scratch reused across tables of different sizes.
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut sc = ReplayScratch::default();
        for round in 0..300 {
            let list = random_merge_list(&mut seed, 3 + round % 90);
            let table = ReplayTable::new(&list).unwrap();
            for _ in 0..20 {
                let n = 2 + (rng(&mut seed) % 600) as usize;
                let k = 1 + rng(&mut seed) % 3;
                let s: Vec<u8> = match rng(&mut seed) % 3 {
                    0 => (0..n).map(|_| b'a' + (rng(&mut seed) % k) as u8).collect(),
                    1 => vec![b'a' + (rng(&mut seed) % 3) as u8; n],
                    _ => (0..n)
                        .map(|_| {
                            if rng(&mut seed).is_multiple_of(50) {
                                b'a' + (rng(&mut seed) % 3) as u8
                            } else {
                                b'a'
                            }
                        })
                        .collect(),
                };
                let w = 1 + rng(&mut seed) % 5;
                assert_same_as_heap(&table, ReplayTable::replay_buckets, &s, w, &mut sc, round);
            }
        }
    }

    #[test]
    fn part_keys_are_exact() {
        // A part of up to 15 bytes gets the same key when read with wide loads (bytes
        // follow it) and byte by byte (it ends its chunk), and two different parts never
        // get the same key (NUL and 0xff bytes included, all lengths).
        let mut seed = 0x0DDB_1A5E_5BAD_5EEDu64;
        let alphabet = [0u8, 1, 0xff, b'a', b' ', 0x80];
        let mut seen: std::collections::HashMap<(u64, u64), Vec<u8>> = Default::default();
        for _ in 0..50_000 {
            let len = 1 + (rng(&mut seed) % 15) as usize;
            let part: Vec<u8> = (0..len)
                .map(|_| alphabet[(rng(&mut seed) % alphabet.len() as u64) as usize])
                .collect();
            let mut padded = vec![0x5a; 3];
            padded.extend_from_slice(&part);
            padded.extend_from_slice(&[0xa5; 20]);
            let k = match (PartKey::of(&padded, 3, len), PartKey::of(&part, 0, len)) {
                (PartKey::Short(a), PartKey::Short(b)) if len <= 7 => {
                    assert_eq!(a, b, "{part:?}");
                    (a, 0)
                }
                (PartKey::Mid(a), PartKey::Mid(b)) if len >= 8 => {
                    assert_eq!(a, b, "{part:?}");
                    a
                }
                _ => panic!("wrong key class for {len} bytes"),
            };
            if let Some(prev) = seen.insert(k, part.clone()) {
                assert_eq!(prev, part, "two parts share a key");
            }
        }
        assert!(matches!(PartKey::of(&[7u8; 16], 0, 16), PartKey::Long));
    }

    /// The fields of two tables are equal.
    fn assert_same_table(a: &ReplayTable, b: &ReplayTable, round: usize) {
        assert_eq!(a.tokens, b.tokens, "round {round}");
        assert_eq!(a.merges, b.merges, "round {round}");
        assert_eq!(a.first, b.first, "round {round}");
        assert_eq!(a.more, b.more, "round {round}");
        assert_eq!(a.inner, b.inner, "round {round}");
        assert!(a.byte_first == b.byte_first, "round {round}");
    }

    #[test]
    fn table_from_ids_equals_table_from_bytes() {
        // Random merge lists (repeated pairs, re-created tokens): `from_ids` on the
        // trainer's form of the list either builds exactly the table of `new`, or declines
        // (a merge re-created a token, so token ids and merge indices part ways).
        let mut seed = 0x1234_5678_9ABC_DEF1u64;
        let (mut built, mut declined) = (0, 0);
        for round in 0..400 {
            let list = random_merge_list(&mut seed, 1 + round % 30);
            let table = ReplayTable::new(&list).unwrap();
            // the trainer's form: token bytes by id (one new token per merge, duplicates
            // included) and the merges as ids of their sides' first occurrence
            let mut vocab: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
            let mut merges = Vec::new();
            for (l, r) in &list {
                let id = |t: &Vec<u8>| vocab.iter().position(|v| v == t).unwrap() as u32;
                merges.push((id(l), id(r)));
                vocab.push([&l[..], &r[..]].concat());
            }
            let refs: Vec<&[u8]> = vocab.iter().map(|v| &v[..]).collect();
            match ReplayTable::from_ids(&refs, &merges) {
                Some(t) => {
                    assert_same_table(&t, &table, round);
                    built += 1;
                }
                None => {
                    // declined only when a token is re-created
                    assert!(table.tokens.len() < 256 + list.len(), "round {round}");
                    declined += 1;
                }
            }
        }
        assert!(
            built > 50 && declined > 50,
            "{built} built, {declined} declined"
        );
        // Malformed input is declined, never a panic.
        let bytes: Vec<[u8; 1]> = (0..=255u8).map(|b| [b]).collect();
        let mut v2: Vec<&[u8]> = bytes.iter().map(|b| &b[..]).collect();
        assert!(ReplayTable::from_ids(&v2, &[(0, 1)]).is_none()); // missing token
        v2.push(b"ab");
        assert!(ReplayTable::from_ids(&v2, &[(97, 98)]).is_some());
        assert!(ReplayTable::from_ids(&v2, &[(97, 99)]).is_none()); // wrong bytes
        assert!(ReplayTable::from_ids(&v2, &[(97, 256)]).is_none()); // a later token
        assert!(ReplayTable::from_ids(&v2, &[(97, 9999)]).is_none()); // out of range
    }
}
