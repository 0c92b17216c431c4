//! The BPE merge loop.
//!
//! # Model
//! Byte-level: token ids `0..256` are the single bytes (id = byte value). Each merge joins
//! two adjacent tokens `(left, right)` into the token whose bytes are their concatenation.
//! A merge normally creates a new token with the next free id (so merge `i` produces id
//! `256 + i`); if those bytes already are a token (a *different* split of the same bytes,
//! e.g. `(ab, c)` then `(a, bc)`), the merge is still recorded but reuses that id and the
//! vocabulary does not grow — the rule of HF's `BpeTrainer`, which keeps every token's
//! bytes unique (required by `tokenizer.json` and `.tiktoken`).
//!
//! # Counting rule
//! The count of a pair is the number of adjacent positions holding it, weighted by the
//! pretoken's count (overlapping occurrences such as `aaa` count twice). A merge replaces
//! the occurrences in every pretoken from left to right without overlap.
//!
//! # Tie-break (documented and stable)
//! The pair with the highest count is merged; among equal counts the smallest
//! `(left id, right id)` in lexicographic order wins. Counts are exact `u64`s, so the result
//! is the same whatever the thread count, the pretoken order or the sharding of the counts.
//!
//! # Data structures
//! Pretokens are stored flat as `u32` symbols in doubly linked lists (a merge keeps the left
//! position and kills the right one), so a merge costs O(its occurrences), never a scan of
//! whole pretokens: KB-long chunks (SuperBPE stage 2, long letter runs) stay linear. Pairs
//! live in one hash map holding each pair's count and a write-once segment of an arena
//! listing the positions where the pair was created (entries may go stale; they are checked
//! when used). A pair's count can only grow during the step that creates the newer of its
//! two tokens (and at initialisation), and only shrink afterwards; so a lazy max-heap is
//! exact (an entry whose count is stale is re-pushed with the live count when popped), and
//! a pair's occurrence list is complete when it is created. Each step aggregates its count
//! changes in a small map, then updates the big map once per distinct pair.

use std::collections::hash_map::Entry;
use std::collections::BinaryHeap;

use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};

/// The arena is compacted once it holds this many entries more than twice its size after the
/// last compaction (small in unit tests so that they exercise compaction).
#[cfg(not(test))]
const COMPACT_MIN: usize = 4 << 20;
#[cfg(test)]
const COMPACT_MIN: usize = 16;

/// Bucket array size (log2) of a lean rebuild: between 1/16 and 1/8 of the number of
/// positions (a per-thread array that stays in the L2 cache on mid-size corpora: on 18 MB of
/// English, 2^18 buckets made the stage-2 rebuild faster than 2^20 and lowered the peak
/// memory, while 2^16 sent light pairs into the heavy buckets), within these bounds (tiny in
/// unit tests, so that they exercise bucket collisions).
#[cfg(not(test))]
const SKETCH_MIN_BITS: u32 = 12;
#[cfg(not(test))]
const SKETCH_MAX_BITS: u32 = 20;
#[cfg(test)]
const SKETCH_MIN_BITS: u32 = 2;
#[cfg(test)]
const SKETCH_MAX_BITS: u32 = 4;

/// The hashed bucket counts of a lean rebuild ([`Trainer::count_lean`]).
struct Sketch {
    counts: Vec<u32>,
    shift: u32,
    /// Pairs in buckets whose count reaches this are counted exactly.
    threshold: u32,
    /// Bit `b` set when bucket `b` reaches the threshold ([`Sketch::mark`]): the exact and
    /// fill passes test this bitmap (2^18 buckets = 32 KB, in L1) instead of the counts
    /// (1 MB, the whole L2), once per position.
    heavy: Vec<u64>,
}

impl Sketch {
    fn new(bits: u32) -> Self {
        Sketch {
            counts: vec![0; 1usize << bits],
            shift: 64 - bits,
            threshold: 1,
            heavy: Vec::new(),
        }
    }

    /// Record which buckets reach the threshold (call after every change of the counts or
    /// the threshold, before [`Sketch::contains`]).
    fn mark(&mut self) {
        self.heavy.clear();
        self.heavy.resize(self.counts.len().div_ceil(64), 0);
        for (b, &c) in self.counts.iter().enumerate() {
            if c >= self.threshold {
                self.heavy[b >> 6] |= 1u64 << (b & 63);
            }
        }
    }

    #[inline]
    fn bucket(&self, k: u64) -> usize {
        (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    /// Whether the pair `k` lies in a bucket that is counted exactly (every pair whose
    /// count reaches the threshold does).
    #[inline]
    fn contains(&self, k: u64) -> bool {
        let b = self.bucket(k);
        self.heavy[b >> 6] & (1u64 << (b & 63)) != 0
    }
}

/// Size (log2, in bits) of the bitmap of tracked pairs of a lean trainer
/// ([`Trainer::tracked`]): 32 KB, about 15 bits per tracked pair on SuperBPE's stage 2
/// (tiny in unit tests, so that untracked pairs share bits with tracked ones).
#[cfg(not(test))]
const TRACKED_BITS: u32 = 18;
#[cfg(test)]
const TRACKED_BITS: u32 = 6;

/// Bit of the pair `k` in [`Trainer::tracked`].
#[inline]
fn tracked_bit(k: u64) -> usize {
    (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - TRACKED_BITS)) as usize
}

/// Number of base (byte) tokens.
pub const N_BYTES: u32 = 256;

/// End of a pretoken in `next` / `prev`.
const NONE: u32 = u32::MAX;
/// Symbol of a position absorbed by a merge (never a token id: ids stay below 2^32 - 2).
const DEAD: u32 = u32::MAX - 1;

#[inline]
fn key(l: u32, r: u32) -> u64 {
    ((l as u64) << 32) | r as u64
}

#[inline]
fn unkey(k: u64) -> (u32, u32) {
    ((k >> 32) as u32, k as u32)
}

/// One range's counts of a rebuild: pair → (count, occurrences); reused as (cursor in the
/// pair's list, entries written) by the fill pass.
type RangeCounts = FxHashMap<u64, (u64, u32)>;

#[derive(Clone, Copy, Debug)]
struct PairInfo {
    count: u64,
    /// Start of this pair's occurrence list (positions) in the arena.
    off: usize,
    len: u32,
    /// Rejected by a veto; never merged by the greedy loop.
    banned: bool,
}

impl PairInfo {
    const fn new() -> Self {
        PairInfo {
            count: 0,
            off: 0,
            len: 0,
            banned: false,
        }
    }
}

/// Max-heap entry: higher count first, then the smaller pair key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct HeapEntry {
    count: u64,
    key: u64,
}

impl Ord for HeapEntry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.count
            .cmp(&other.count)
            .then_with(|| other.key.cmp(&self.key))
    }
}

impl PartialOrd for HeapEntry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One pair's change in one merge step: its count change (mod 2^64) and the chain (first
/// and last index in `Trainer::new_pos`, `NONE` when empty) of the positions where the step
/// created it. Positions are appended in non-decreasing order (occurrences are visited left
/// to right), so each chain comes out sorted, duplicates adjacent.
#[derive(Clone, Copy, Debug)]
struct StepDelta {
    d: u64,
    head: u32,
    tail: u32,
}

impl StepDelta {
    const ZERO: StepDelta = StepDelta {
        d: 0,
        head: NONE,
        tail: NONE,
    };
}

/// Add `-w` to the step change of `k`.
#[inline(always)]
fn step_sub(delta: &mut FxHashMap<u64, StepDelta>, k: u64, w: u64) {
    let e = delta.entry(k).or_insert(StepDelta::ZERO);
    e.d = e.d.wrapping_sub(w);
}

/// Add `w` to the step change of `k`, created at position `pos`.
#[inline(always)]
fn step_add(
    delta: &mut FxHashMap<u64, StepDelta>,
    new_pos: &mut Vec<(u32, u32)>,
    k: u64,
    w: u64,
    pos: u32,
) {
    let e = delta.entry(k).or_insert(StepDelta::ZERO);
    e.d = e.d.wrapping_add(w);
    if e.tail != NONE && new_pos[e.tail as usize].0 == pos {
        return; // already listed
    }
    let i = new_pos.len() as u32;
    new_pos.push((pos, NONE));
    if e.tail == NONE {
        e.head = i;
    } else {
        new_pos[e.tail as usize].1 = i;
    }
    e.tail = i;
}

/// One recorded merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Merge {
    pub left: u32,
    pub right: u32,
    /// Id of the resulting token.
    pub result: u32,
    /// Pair count just before the merge (0 for a replayed merge that never occurs).
    pub count: u64,
}

/// What replay does with a merge whose pair does not occur in the counts (or whose
/// operands do not exist because an earlier merge was dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayPolicy {
    /// Drop it: no merge is recorded and no token is created (SuperBPE's reference
    /// behaviour). Later merges that need its token are dropped too.
    Skip,
    /// Keep it: record the merge and create its token anyway, so ids stay aligned with the
    /// replayed list (needed when comparing pair counts across samples).
    Keep,
    /// Fail with an error naming the merge.
    Error,
}

/// Why the greedy loop stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The requested number of tokens was reached.
    VocabSize,
    /// No pair with a count ≥ `min_frequency` remains.
    MinFrequency,
    /// No pair is left at all (every pretoken is a single token).
    NoPairs,
}

/// Pair counts that changed in one step (for data-mixture inference).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepTrace {
    /// `(left, right, count after the step)` for every pair whose count changed in the step,
    /// sorted by pair.
    pub changes: Vec<(u32, u32, u64)>,
}

/// A predicate that may reject a merge: `veto(left_bytes, right_bytes)` returns `true` to
/// reject. It must depend only on its arguments (a rejected pair is never retried).
pub type Veto<'a> = &'a (dyn Fn(&[u8], &[u8]) -> bool + Sync);

/// Options of the greedy loop.
pub struct GreedyOptions<'a> {
    /// Stop when the vocabulary (base bytes + learned tokens, specials excluded) has this
    /// many tokens.
    pub target_tokens: usize,
    /// Stop when the best pair occurs fewer times than this.
    pub min_frequency: u64,
    /// Never create a token longer than this many bytes.
    pub max_token_length: Option<usize>,
    /// Byte strings that may not be created (special tokens' texts); a merge that would
    /// create one is skipped and reported in [`Trainer::special_collisions`].
    pub forbidden_tokens: Vec<Vec<u8>>,
    /// Extra predicate (SuperBPE's filters).
    pub veto: Option<Veto<'a>>,
}

impl Default for GreedyOptions<'_> {
    fn default() -> Self {
        GreedyOptions {
            target_tokens: N_BYTES as usize,
            min_frequency: 1,
            max_token_length: None,
            forbidden_tokens: Vec::new(),
            veto: None,
        }
    }
}

/// BPE training state over a set of weighted pretokens.
pub struct Trainer {
    /// Symbol at each position (all pretokens laid out back to back); `DEAD` once the
    /// position was absorbed by a merge into its left neighbour.
    syms: Vec<u32>,
    /// Next / previous live position in the same pretoken (`NONE` at the ends).
    next: Vec<u32>,
    prev: Vec<u32>,
    /// Pretoken of each position.
    word_of: Vec<u32>,
    /// First position of each pretoken (never dies: a merge keeps its left position).
    wstart: Vec<u32>,
    wcount: Vec<u64>,
    tokens: Vec<Box<[u8]>>,
    token_ids: FxHashMap<Box<[u8]>, u32>,
    pairs: FxHashMap<u64, PairInfo>,
    arena: Vec<u32>,
    /// Arena length after the last compaction (see `maybe_compact`).
    arena_compacted: usize,
    heap: BinaryHeap<HeapEntry>,
    merges: Vec<Merge>,
    /// Scratch: positions of the pairs created in the current step, chained per pair
    /// (`(position, index of the next entry of the same pair)`, see [`StepDelta`]).
    new_pos: Vec<(u32, u32)>,
    /// Scratch: this step's count changes by pair, and their new positions.
    delta: FxHashMap<u64, StepDelta>,
    /// Scratch: keys whose count changed in this step (only when tracing).
    touched: Vec<u64>,
    tracing: bool,
    trace: Vec<StepTrace>,
    special_collisions: Vec<(u32, u32, Vec<u8>)>,
    dropped_replays: Vec<(Vec<u8>, Vec<u8>)>,
    n_pretokens: usize,
    /// Pairs whose count is below this are not tracked ("dormant"): no map entry, no
    /// occurrence list, no heap entry. 1 = every pair is tracked (the default).
    admit: u64,
    /// Lean mode with dormant pairs (`admit > 1`): a bitmap with the bit
    /// [`tracked_bit`] of every pair that has been tracked since the last rebuild set (a
    /// superset of the tracked pairs; empty when every pair is tracked). A merge step does
    /// not record the changes of a neighbour pair whose bit is clear and that does not hold
    /// the new token (it is dormant, and the step would drop its change anyway), nor of the
    /// pair with the new token it becomes (see [`Trainer::apply`]).
    tracked: Vec<u64>,
    /// Lean mode (see [`Trainer::from_segments`]): pair tracking is built by the greedy loop
    /// for the merges it still has to make.
    lean: bool,
    /// Whether the pair map has been built.
    built: bool,
    /// Lean mode: how many pairs the current rebuild keeps tracked.
    lean_keep: usize,
    /// No merge has been applied since the arrays were built: every pretoken still holds
    /// the consecutive positions `wstart[w]..wstart[w + 1]`, so a pass over the pairs can
    /// read the symbols in order instead of following the links.
    fresh: bool,
}

/// In lean mode, the greedy loop tracks at least this many pairs per merge still to make
/// (plus [`LEAN_EXTRA`]).
#[cfg(not(test))]
const LEAN_PER_MERGE: usize = 2;
#[cfg(not(test))]
const LEAN_EXTRA: usize = 4096;
// Tiny in unit tests, so that they exercise dormant pairs and recounts.
#[cfg(test)]
const LEAN_PER_MERGE: usize = 1;
#[cfg(test)]
const LEAN_EXTRA: usize = 2;

impl Trainer {
    /// Build from `(pretoken bytes, count)` pairs. Pretokens of one byte are dropped (they
    /// hold no pair); the order of the input does not matter.
    pub fn new<'a, I>(pretokens: I) -> Result<Self>
    where
        I: IntoIterator<Item = (&'a [u8], u64)>,
    {
        let mut syms: Vec<u32> = Vec::new();
        let mut wstart: Vec<u32> = Vec::new();
        let mut wcount = Vec::new();
        let mut n_pretokens = 0usize;
        for (bytes, count) in pretokens {
            n_pretokens += 1;
            if bytes.len() < 2 || count == 0 {
                continue;
            }
            if syms.len() + bytes.len() >= DEAD as usize {
                return Err(Error::InvalidArgument(
                    "the distinct pretokens total 4 GiB or more: too large to train on in one \
                     process (use min-count filtering or fewer distinct pretokens)"
                        .into(),
                ));
            }
            wstart.push(syms.len() as u32);
            wcount.push(count);
            syms.extend(bytes.iter().map(|&b| b as u32));
        }
        let tokens: Vec<Box<[u8]>> = (0..=255u8).map(|b| vec![b].into_boxed_slice()).collect();
        let mut t = Self::build(syms, wstart, wcount, tokens, Vec::new(), n_pretokens, false);
        t.rebuild_pairs(None);
        Ok(t)
    }

    /// Build from pretokens that are already segmented into tokens (e.g. after replaying a
    /// merge list chunk by chunk, see `superbpe::replay`): `tokens` are the token bytes by
    /// id (the first 256 must be the single bytes, id = byte value, and all bytes must be
    /// distinct), `merges` the merges already made (recorded as the start of the merge
    /// list), `syms` all pretokens' token ids back to back, `starts` the start of each
    /// pretoken in `syms` (ascending, first 0) and `counts` their counts. Pretokens of
    /// fewer than two tokens hold no pair and may be left out; `n_pretokens` is the number
    /// reported by [`Trainer::n_pretokens`].
    ///
    /// With `lean`, pairs are not counted here: [`Trainer::train_greedy`] tracks only the
    /// pairs frequent enough to matter for the merges it still has to make (a pair whose
    /// count is below the `k`-th largest, `k` = twice the remaining merges + 4096, can only
    /// lose occurrences, so it cannot become the best pair before every tracked pair has
    /// fallen below it; if that happens the pairs are recounted from the current state).
    /// The merges are exactly those of a full trainer; memory drops to the frequent pairs.
    /// [`Trainer::replay`], [`Trainer::pair_counts`], [`Trainer::pair_count`] and tracing
    /// need every pair: call [`Trainer::track_all_pairs`] first (replay and tracing do).
    pub fn from_segments(
        tokens: Vec<Box<[u8]>>,
        merges: Vec<Merge>,
        syms: Vec<u32>,
        starts: Vec<u32>,
        counts: Vec<u64>,
        n_pretokens: usize,
        lean: bool,
    ) -> Result<Self> {
        let bad = |m: &str| Err(Error::InvalidArgument(format!("from_segments: {m}")));
        if tokens.len() < N_BYTES as usize
            || tokens[..N_BYTES as usize]
                .iter()
                .enumerate()
                .any(|(i, t)| t.len() != 1 || t[0] as usize != i)
        {
            return bad("the first 256 tokens must be the single bytes");
        }
        if tokens.len() >= DEAD as usize || syms.len() >= DEAD as usize {
            return bad("too many tokens or positions");
        }
        if starts.len() != counts.len() {
            return bad("starts and counts differ in length");
        }
        let n = syms.len();
        for (w, &s) in starts.iter().enumerate() {
            let end = starts.get(w + 1).map_or(n, |&e| e as usize);
            if (w == 0 && s != 0) || (s as usize) >= end {
                return bad("starts must be ascending, begin at 0, and every pretoken non-empty");
            }
        }
        if starts.is_empty() && n > 0 {
            return bad("symbols without pretokens");
        }
        let nt = tokens.len() as u32;
        if syms.par_iter().with_min_len(1 << 16).any(|&s| s >= nt) {
            return bad("a symbol is not a token id");
        }
        if merges
            .iter()
            .any(|m| m.left >= nt || m.right >= nt || m.result >= nt)
        {
            return bad("a merge refers to a missing token");
        }
        let mut t = Self::build(syms, starts, counts, tokens, merges, n_pretokens, lean);
        if !lean {
            t.rebuild_pairs(None);
        }
        Ok(t)
    }

    fn build(
        syms: Vec<u32>,
        wstart: Vec<u32>,
        wcount: Vec<u64>,
        tokens: Vec<Box<[u8]>>,
        merges: Vec<Merge>,
        n_pretokens: usize,
        lean: bool,
    ) -> Self {
        let token_ids = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let n = syms.len();
        // The links and word of every position, filled in parallel over position blocks
        // (each block finds its first word by binary search). `wstart` is ascending and
        // begins at 0 when there are positions (checked by the callers).
        let mut next = vec![0u32; n];
        let mut prev = vec![0u32; n];
        let mut word_of = vec![0u32; n];
        {
            const BLOCK: usize = 1 << 16;
            let ws = &wstart;
            next.par_chunks_mut(BLOCK)
                .zip(prev.par_chunks_mut(BLOCK))
                .zip(word_of.par_chunks_mut(BLOCK))
                .enumerate()
                .for_each(|(bi, ((nx, pv), wo))| {
                    let a = bi * BLOCK;
                    let mut w = ws.partition_point(|&s| s as usize <= a).saturating_sub(1);
                    let mut st = ws.get(w).map_or(0, |&s| s as usize);
                    let mut end = ws.get(w + 1).map_or(n, |&e| e as usize);
                    for (j, ((x, y), z)) in nx
                        .iter_mut()
                        .zip(pv.iter_mut())
                        .zip(wo.iter_mut())
                        .enumerate()
                    {
                        let i = a + j;
                        while i >= end {
                            w += 1;
                            st = end;
                            end = ws.get(w + 1).map_or(n, |&e| e as usize);
                        }
                        *x = if i + 1 == end { NONE } else { (i + 1) as u32 };
                        *y = if i == st { NONE } else { (i - 1) as u32 };
                        *z = w as u32;
                    }
                });
        }
        let mut t = Trainer {
            syms,
            next,
            prev,
            word_of,
            wstart,
            wcount,
            tokens,
            token_ids,
            pairs: FxHashMap::default(),
            arena: Vec::new(),
            arena_compacted: 0,
            heap: BinaryHeap::new(),
            merges,
            new_pos: Vec::new(),
            delta: FxHashMap::default(),
            touched: Vec::new(),
            tracing: false,
            trace: Vec::new(),
            special_collisions: Vec::new(),
            dropped_replays: Vec::new(),
            n_pretokens,
            admit: 1,
            tracked: Vec::new(),
            lean,
            built: false,
            lean_keep: 0,
            fresh: true,
        };
        t.word_of.shrink_to_fit();
        t
    }

    /// The words split into one contiguous range per worker thread (the passes of a rebuild
    /// run in parallel over them; ranges in word order, so in position order).
    fn word_ranges(&self) -> Vec<(usize, usize)> {
        let nw = self.wstart.len();
        let parts = rayon::current_num_threads().clamp(1, 64);
        let step = nw.div_ceil(parts).max(1);
        (0..nw)
            .step_by(step)
            .map(|a| (a, (a + step).min(nw)))
            .collect()
    }

    /// Call `f(pair key, pretoken count, left position)` for every adjacent pair of the words
    /// `a..b`, in position order.
    #[inline(always)]
    fn walk_range(&self, (a, b): (usize, usize), mut f: impl FnMut(u64, u64, u32)) {
        for w in a..b {
            let c = self.wcount[w];
            if self.fresh {
                // Consecutive positions (see `fresh`): no link reads.
                let s = self.wstart[w] as usize;
                let e = self
                    .wstart
                    .get(w + 1)
                    .map_or(self.syms.len(), |&e| e as usize);
                if let Some(run) = self.syms.get(s..e) {
                    for (i, pair) in run.windows(2).enumerate() {
                        f(key(pair[0], pair[1]), c, (s + i) as u32);
                    }
                }
                continue;
            }
            let mut p = self.wstart[w];
            loop {
                let q = self.next[p as usize];
                if q == NONE {
                    break;
                }
                f(key(self.syms[p as usize], self.syms[q as usize]), c, p);
                p = q;
            }
        }
    }

    /// Count the pairs of the current segmentation and build the occurrence lists of the
    /// tracked ones (two passes over the positions, no sorting: positions are visited in
    /// order, so each list comes out sorted). With `keep_top = Some(k)`, only the frequent
    /// pairs are tracked (about the `k` most frequent ones, see [`Trainer::rebuild_lean`]).
    /// Pairs rejected by a veto stay rejected.
    ///
    /// Both passes run in parallel over contiguous ranges of words: the counting pass keeps
    /// each range's count of every tracked pair, so each range knows where its occurrences
    /// go in the pair's list (after those of the earlier ranges) and fills them on its own;
    /// the lists are exactly those of a sequential scan.
    fn rebuild_pairs(&mut self, keep_top: Option<usize>) {
        let banned: rustc_hash::FxHashSet<u64> = self
            .pairs
            .iter()
            .filter(|(_, p)| p.banned)
            .map(|(&k, _)| k)
            .collect();
        self.pairs = FxHashMap::default();
        self.heap = BinaryHeap::new();
        self.arena = Vec::new();
        self.admit = 1;
        let ranges = self.word_ranges();
        let (mut pairs, mut parts, flags) = match keep_top {
            Some(k) => self.count_lean(k, &banned, &ranges),
            None => {
                let (p, r) = self.count_all(&ranges);
                (p, r, None)
            }
        };
        let mut off = 0usize;
        for p in pairs.values_mut() {
            p.off = off;
            off += p.len as usize;
            p.len = 0;
        }
        // Each range's cursor in each tracked pair's list (`.0`; `.1` counts the entries
        // written): the ranges' occurrences follow one another in range order.
        for part in parts.iter_mut() {
            part.retain(|k, e| match pairs.get_mut(k) {
                Some(p) => {
                    let cur = p.off + p.len as usize;
                    p.len += e.1;
                    *e = (cur as u64, 0);
                    true
                }
                None => false,
            });
        }
        // Pass 2: fill (in lean mode, pairs outside the counted buckets are skipped without
        // a map lookup). The ranges write disjoint slots.
        let arena: Vec<AtomicU32> = (0..off).map(|_| AtomicU32::new(u32::MAX)).collect();
        {
            let this = &*self;
            let flags = flags.as_ref();
            let arena = &arena;
            ranges
                .par_iter()
                .zip(parts.par_iter_mut())
                .for_each(|(&r, part)| {
                    this.walk_range(r, |k, _, p| {
                        if flags.is_none_or(|f| f.contains(k)) {
                            if let Some(e) = part.get_mut(&k) {
                                if let Some(slot) = arena.get(e.0 as usize + e.1 as usize) {
                                    slot.store(p, AtomicOrdering::Relaxed);
                                }
                                e.1 += 1;
                            }
                        }
                    });
                });
        }
        drop(parts);
        drop(flags);
        let arena: Vec<u32> = arena.into_iter().map(AtomicU32::into_inner).collect();
        for k in banned {
            if let Some(p) = pairs.get_mut(&k) {
                p.banned = true;
            }
        }
        self.heap = pairs
            .iter()
            .filter(|(_, p)| !p.banned)
            .map(|(&k, p)| HeapEntry {
                count: p.count,
                key: k,
            })
            .collect();
        self.tracked = Vec::new();
        if self.admit > 1 {
            self.tracked = vec![0u64; (1usize << TRACKED_BITS) / 64];
            for &k in pairs.keys() {
                let b = tracked_bit(k);
                self.tracked[b >> 6] |= 1u64 << (b & 63);
            }
        }
        self.pairs = pairs;
        self.arena_compacted = arena.len();
        self.arena = arena;
        self.built = true;
    }

    /// Sum per-range counts into one map of pairs (count and list length).
    fn sum_ranges(parts: &[RangeCounts]) -> FxHashMap<u64, PairInfo> {
        let cap = parts.iter().map(|m| m.len()).max().unwrap_or(0);
        let mut pairs: FxHashMap<u64, PairInfo> =
            FxHashMap::with_capacity_and_hasher(cap, Default::default());
        for m in parts {
            for (&kk, &(c, l)) in m {
                let e = pairs.entry(kk).or_insert(PairInfo::new());
                e.count = e.count.saturating_add(c);
                e.len += l;
            }
        }
        pairs
    }

    /// Pass 1 of a full rebuild: the count and list length of every pair, in total and per
    /// range.
    fn count_all(&self, ranges: &[(usize, usize)]) -> (FxHashMap<u64, PairInfo>, Vec<RangeCounts>) {
        let parts: Vec<RangeCounts> = ranges
            .par_iter()
            .map(|&r| {
                let mut m = RangeCounts::default();
                self.walk_range(r, |kk, c, _| {
                    let e = m.entry(kk).or_insert((0, 0));
                    e.0 = e.0.saturating_add(c);
                    e.1 += 1;
                });
                m
            })
            .collect();
        (Self::sum_ranges(&parts), parts)
    }

    /// Pass 1 of a lean rebuild: the count and list length (in total and per range) of
    /// (about) the `k` most frequent pairs, and of the `banned` ones; sets `self.admit` so
    /// that every pair whose count reaches it is returned (the invariant the greedy loop
    /// relies on; see [`Trainer::from_segments`]).
    ///
    /// Without a map of every pair: the pairs are first counted into a fixed array of
    /// hashed buckets (a bucket's count is the sum of its pairs' counts, an upper bound of
    /// each). With `T` the `k`-th largest bucket count, a pair whose count reaches `T` lies
    /// in a bucket whose count reaches `T`; only the pairs of those buckets are counted
    /// exactly. `admit` is then the larger of `T` and the `k`-th largest exact count, so
    /// every pair with a count ≥ `admit` is tracked, and the tracked pairs are about the top
    /// `k` (a few fewer when heavy pairs share a bucket). Memory: the bucket array instead
    /// of a map entry per distinct pair.
    fn count_lean(
        &mut self,
        k: usize,
        banned: &rustc_hash::FxHashSet<u64>,
        ranges: &[(usize, usize)],
    ) -> (FxHashMap<u64, PairInfo>, Vec<RangeCounts>, Option<Sketch>) {
        let n = self.syms.len();
        let bits =
            (usize::BITS - (n / 16).max(1).leading_zeros()).clamp(SKETCH_MIN_BITS, SKETCH_MAX_BITS);
        let this = &*self;
        // Pass 1: bucket counts (saturating at u32::MAX: a saturated bucket is counted
        // exactly whatever T is, so "pair count ≥ T implies bucket count ≥ T" still holds).
        let mut sketch = Sketch::new(bits);
        let partial: Vec<Vec<u32>> = ranges
            .par_iter()
            .map(|&r| {
                let mut s = vec![0u32; 1usize << bits];
                this.walk_range(r, |kk, c, _| {
                    let b = &mut s[sketch.bucket(kk)];
                    *b = b.saturating_add(c.min(u32::MAX as u64) as u32);
                });
                s
            })
            .collect();
        let mut partial = partial.into_iter();
        if let Some(first) = partial.next() {
            sketch.counts = first;
        }
        for s in partial {
            for (a, b) in sketch.counts.iter_mut().zip(s) {
                *a = a.saturating_add(b);
            }
        }
        sketch.threshold = {
            let mut nonzero: Vec<u32> = sketch.counts.iter().copied().filter(|&c| c > 0).collect();
            if nonzero.len() > k {
                let (_, kth, _) = nonzero.select_nth_unstable_by(k, |a, b| b.cmp(a));
                (*kth).max(1)
            } else {
                1
            }
        };
        // Banned pairs are always counted exactly (they stay banned).
        for &bk in banned {
            let b = sketch.bucket(bk);
            sketch.counts[b] = u32::MAX;
        }
        // Vetoed pairs never become merges: they must not take the `k` slots (if they
        // did, the heap could hold nothing but vetoed pairs and every rebuild would select
        // the same ones again).
        let need = (k / 2).max(1);
        loop {
            // Pass 2: exact counts of the pairs in the heavy buckets.
            sketch.mark();
            let sk = &sketch;
            let maps: Vec<RangeCounts> = ranges
                .par_iter()
                .map(|&r| {
                    let mut m = RangeCounts::default();
                    this.walk_range(r, |kk, c, _| {
                        if sk.contains(kk) {
                            let e = m.entry(kk).or_insert((0, 0));
                            e.0 = e.0.saturating_add(c);
                            e.1 += 1;
                        }
                    });
                    m
                })
                .collect();
            let mut pairs = Self::sum_ranges(&maps);
            if sketch.threshold <= 1 {
                // every pair was counted
                self.admit = 1;
                return (pairs, maps, None);
            }
            let t = sketch.threshold as u64;
            let mut counts: Vec<u64> = pairs
                .iter()
                .filter(|(key, p)| p.count >= t && !banned.contains(key))
                .map(|(_, p)| p.count)
                .collect();
            if counts.len() < need {
                // The heavy buckets were mostly made of light pairs: lower the bar (at
                // worst to 1 = count every pair), so that enough pairs are tracked and the
                // greedy loop always has one to pop.
                sketch.threshold /= 2;
                continue;
            }
            let mut admit = t;
            if counts.len() > k {
                let (_, kth, _) = counts.select_nth_unstable_by(k, |a, b| b.cmp(a));
                admit = admit.max(*kth);
            }
            drop(counts);
            pairs.retain(|key, p| p.count >= admit || banned.contains(key));
            pairs.shrink_to_fit();
            self.admit = admit;
            // The fill pass only needs the bitmap.
            sketch.counts = Vec::new();
            return (pairs, maps, Some(sketch));
        }
    }

    /// Track every pair (undo lean mode). Needed before [`Trainer::replay`],
    /// [`Trainer::pair_counts`] and [`Trainer::pair_count`] on a lean trainer.
    pub fn track_all_pairs(&mut self) {
        self.lean = false;
        if !self.built || self.admit > 1 {
            self.rebuild_pairs(None);
        }
    }

    /// Number of pairs currently tracked (all of them unless lean).
    pub fn n_tracked_pairs(&self) -> usize {
        self.pairs.len()
    }

    /// Drop the lists of dead pairs from the arena once it has grown to more than twice its
    /// size after the last compaction (amortized O(1) per list entry; keeps memory bounded
    /// by the live pairs' lists).
    fn maybe_compact(&mut self) {
        if self.arena.len() < 2 * self.arena_compacted + COMPACT_MIN {
            return;
        }
        let live: usize = self.pairs.values().map(|p| p.len as usize).sum();
        let mut arena = Vec::with_capacity(live + live / 4);
        for p in self.pairs.values_mut() {
            let off = arena.len();
            arena.extend_from_slice(&self.arena[p.off..p.off + p.len as usize]);
            p.off = off;
        }
        self.arena = arena;
        self.arena_compacted = self.arena.len();
    }

    /// Record, for every later step, which pair counts changed ([`Trainer::trace`]).
    pub fn set_tracing(&mut self, on: bool) {
        if on {
            self.track_all_pairs();
        }
        self.tracing = on;
    }

    /// Current count of every pair with a non-zero count, sorted by pair.
    pub fn pair_counts(&self) -> Vec<(u32, u32, u64)> {
        let mut v: Vec<(u32, u32, u64)> = self
            .pairs
            .iter()
            .filter(|(_, p)| p.count > 0)
            .map(|(&k, p)| {
                let (l, r) = unkey(k);
                (l, r, p.count)
            })
            .collect();
        v.sort_unstable();
        v
    }

    /// Current count of one pair.
    pub fn pair_count(&self, left: u32, right: u32) -> u64 {
        self.pairs.get(&key(left, right)).map_or(0, |p| p.count)
    }

    /// The per-step traces recorded while tracing was on (one per recorded step, in order).
    pub fn trace(&self) -> &[StepTrace] {
        &self.trace
    }

    /// Take the recorded traces.
    pub fn take_trace(&mut self) -> Vec<StepTrace> {
        std::mem::take(&mut self.trace)
    }

    /// Merges recorded so far.
    pub fn merges(&self) -> &[Merge] {
        &self.merges
    }

    /// Token bytes by id (index = id).
    pub fn tokens(&self) -> &[Box<[u8]>] {
        &self.tokens
    }

    /// Id of the token with these bytes.
    pub fn token_id(&self, bytes: &[u8]) -> Option<u32> {
        self.token_ids.get(bytes).copied()
    }

    /// Number of tokens (bytes + learned).
    pub fn n_tokens(&self) -> usize {
        self.tokens.len()
    }

    /// Number of distinct pretokens given to [`Trainer::new`].
    pub fn n_pretokens(&self) -> usize {
        self.n_pretokens
    }

    /// Merges skipped because they would have created a special token's text:
    /// `(left, right, bytes)`.
    pub fn special_collisions(&self) -> &[(u32, u32, Vec<u8>)] {
        &self.special_collisions
    }

    /// Replayed merges dropped by [`ReplayPolicy::Skip`], as `(left bytes, right bytes)`.
    pub fn dropped_replays(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.dropped_replays
    }

    /// The current segmentation of every pretoken (for tests and analysis): `(ids, count)`.
    pub fn segmentations(&self) -> Vec<(Vec<u32>, u64)> {
        (0..self.wcount.len())
            .map(|w| {
                let mut ids = Vec::new();
                let mut p = self.wstart[w];
                while p != NONE {
                    ids.push(self.syms[p as usize]);
                    p = self.next[p as usize];
                }
                (ids, self.wcount[w])
            })
            .collect()
    }

    /// Id for the bytes `left ++ right`: an existing token or a new one.
    fn result_id(&mut self, l: u32, r: u32) -> u32 {
        let mut b =
            Vec::with_capacity(self.tokens[l as usize].len() + self.tokens[r as usize].len());
        b.extend_from_slice(&self.tokens[l as usize]);
        b.extend_from_slice(&self.tokens[r as usize]);
        if let Some(&id) = self.token_ids.get(&b[..]) {
            return id;
        }
        let id = self.tokens.len() as u32;
        let b = b.into_boxed_slice();
        self.token_ids.insert(b.clone(), id);
        self.tokens.push(b);
        id
    }

    /// Prefetch the records of position `p` (symbol, links, pretoken) for a merge step.
    #[inline(always)]
    fn prefetch_records(&self, p: usize) {
        if p < self.syms.len() {
            crate::util::prefetch(self.syms.as_ptr().wrapping_add(p));
            crate::util::prefetch(self.next.as_ptr().wrapping_add(p));
            crate::util::prefetch(self.prev.as_ptr().wrapping_add(p));
            crate::util::prefetch(self.word_of.as_ptr().wrapping_add(p));
        }
    }

    /// Whether the pair `k` is surely dormant (lean mode: not tracked, and its bit in
    /// [`Trainer::tracked`] is clear); `new` says it holds the token the current step
    /// creates (never dormant: its count may grow in this step).
    #[inline]
    fn is_dormant(&self, k: u64, new: bool) -> bool {
        if self.tracked.is_empty() || new {
            return false;
        }
        let b = tracked_bit(k);
        self.tracked[b >> 6] & (1u64 << (b & 63)) == 0
    }

    /// Apply the merge `(a, b) -> c` to every pretoken containing the pair, updating counts.
    fn apply(&mut self, a: u32, b: u32, c: u32) {
        self.fresh = false;
        let pk = key(a, b);
        let (off, len) = match self.pairs.get(&pk) {
            Some(p) => (p.off, p.len as usize),
            None => (0, 0),
        };
        self.new_pos.clear();
        // Occurrences in ascending position order: left to right within each pretoken, so
        // overlapping runs (`aaaa`) merge exactly like a left-to-right scan.
        // The positions are scattered over arrays much larger than the caches: prefetch the
        // records of the occurrence `PF` entries ahead, and its pretoken's count and its
        // neighbours' records `PF / 2` ahead (its pretoken index and links were prefetched
        // by then).
        const PF: usize = 16;
        let end = off + len;
        // The loop prefetches `PF` entries ahead, so the first `PF` occurrences of a step
        // would each wait for their records one after the other (most steps are short:
        // half of SuperBPE's stage-2 steps visit fewer than 64 occurrences): request them
        // all at once first, then their pretoken counts.
        let head = end.min(off + PF);
        for &p in self.arena.get(off..head).unwrap_or(&[]) {
            self.prefetch_records(p as usize);
        }
        for &p in self.arena.get(off..end.min(off + PF / 2)).unwrap_or(&[]) {
            if let Some(&w) = self.word_of.get(p as usize) {
                crate::util::prefetch(self.wcount.as_ptr().wrapping_add(w as usize));
            }
        }
        for idx in off..end {
            if idx + PF < end {
                self.prefetch_records(self.arena[idx + PF] as usize);
            }
            if idx + PF / 2 < end {
                let p = self.arena[idx + PF / 2] as usize;
                if let Some(&w) = self.word_of.get(p) {
                    crate::util::prefetch(self.wcount.as_ptr().wrapping_add(w as usize));
                }
                // Its neighbours' symbols (and the right one's link), read through its links
                // (prefetched `PF / 2` entries ago): after merges they often lie on other
                // cache lines than the occurrence itself.
                if let (Some(&q), Some(&l)) = (self.next.get(p), self.prev.get(p)) {
                    let (q, l) = (q as usize, l as usize);
                    if q < self.syms.len() {
                        crate::util::prefetch(self.syms.as_ptr().wrapping_add(q));
                        crate::util::prefetch(self.next.as_ptr().wrapping_add(q));
                    }
                    if l < self.syms.len() {
                        crate::util::prefetch(self.syms.as_ptr().wrapping_add(l));
                    }
                }
            }
            let p = self.arena[idx] as usize;
            if self.syms[p] != a {
                continue; // stale: absorbed or already merged
            }
            let q = self.next[p];
            if q == NONE || self.syms[q as usize] != b {
                continue; // stale: the neighbour changed
            }
            let q = q as usize;
            let wc = self.wcount[self.word_of[p] as usize];
            // Deltas are aggregated per step in a small map (exact modulo 2^64, and the
            // true final counts fit in u64).
            // A surely dormant neighbour pair `(l, a)` (lean mode) needs no decrement, and
            // the pair `(l, c)` it turns into needs no increment either: every occurrence of
            // `(l, c)` made by this step was an occurrence of `(l, a)`, so its count stays
            // below `admit` too, and the step would not track it. (Not when `l` is the new
            // token: a pair with it may grow during this step.) Same on the right.
            let lp = self.prev[p];
            if lp != NONE {
                let l = self.syms[lp as usize];
                let k1 = key(l, a);
                if !self.is_dormant(k1, l == c) {
                    if k1 != pk {
                        step_sub(&mut self.delta, k1, wc);
                    }
                    step_add(&mut self.delta, &mut self.new_pos, key(l, c), wc, lp);
                }
            }
            let rp = self.next[q];
            if rp != NONE {
                let r = self.syms[rp as usize];
                let k2 = key(b, r);
                if !self.is_dormant(k2, r == c) {
                    if k2 != pk {
                        step_sub(&mut self.delta, k2, wc);
                    }
                    step_add(&mut self.delta, &mut self.new_pos, key(c, r), wc, p as u32);
                }
                self.prev[rp as usize] = p as u32;
            }
            self.syms[p] = c;
            self.syms[q] = DEAD;
            self.next[p] = rp;
        }
        // The merged pair is gone everywhere. (No pair created by this step is the merged
        // pair: the new token is longer than both of its sides.)
        if let Some(p) = self.pairs.remove(&pk) {
            if self.tracing && p.count > 0 {
                self.touched.push(pk);
            }
        }
        // Apply the aggregated deltas (one lookup per distinct pair), then write the lists of
        // the pairs this step created and queue them.
        let mut delta = std::mem::take(&mut self.delta);
        let new_pos = std::mem::take(&mut self.new_pos);
        let used = delta.len();
        for (k, e) in delta.drain() {
            let d = e.d;
            if d != 0 {
                if self.tracing {
                    self.touched.push(k);
                }
                let (l, r) = unkey(k);
                match self.pairs.entry(k) {
                    Entry::Occupied(mut e) => {
                        let p = e.get_mut();
                        p.count = p.count.wrapping_add(d);
                        // A pair without the new token can never grow again: forget it at
                        // zero.
                        if p.count == 0 && l != c && r != c {
                            e.remove();
                        }
                    }
                    Entry::Vacant(e) => {
                        // A missing pair without the new token is dormant (lean mode): its
                        // count only decreases, ignore it. A new pair is tracked if frequent
                        // enough.
                        debug_assert!(
                            self.admit > 1 || l == c || r == c,
                            "decrement of a missing pair"
                        );
                        if (l == c || r == c) && d >= self.admit && d < (1 << 63) {
                            e.insert(PairInfo {
                                count: d,
                                ..PairInfo::new()
                            });
                            if !self.tracked.is_empty() {
                                let b = tracked_bit(k);
                                self.tracked[b >> 6] |= 1u64 << (b & 63);
                            }
                        }
                    }
                }
            }
            if e.head == NONE {
                continue;
            }
            let (old_off, old_len) = match self.pairs.get(&k) {
                Some(p) if p.count > 0 => (p.off, p.len as usize),
                _ => {
                    self.pairs.remove(&k);
                    continue;
                }
            };
            let off = self.arena.len();
            if old_len == 0 {
                let mut i = e.head;
                while i != NONE {
                    let (pos, nx) = new_pos[i as usize];
                    self.arena.push(pos);
                    i = nx;
                }
            } else {
                // The merge re-created an existing token (same bytes, other split): the pair
                // already had a list; join both (rare).
                let mut all: Vec<u32> = self.arena[old_off..old_off + old_len].to_vec();
                let mut i = e.head;
                while i != NONE {
                    let (pos, nx) = new_pos[i as usize];
                    all.push(pos);
                    i = nx;
                }
                all.sort_unstable();
                all.dedup();
                self.arena.extend_from_slice(&all);
            }
            let new_len = self.arena.len() - off;
            if let Some(p) = self.pairs.get_mut(&k) {
                p.off = off;
                p.len = new_len as u32;
                self.heap.push(HeapEntry {
                    count: p.count,
                    key: k,
                });
            }
        }
        // A draining pass visits the whole table: after an unusually big step, do not keep
        // its capacity for all the small ones that follow.
        if delta.capacity() > 4096 && delta.capacity() > 16 * used {
            delta = FxHashMap::default();
        }
        self.delta = delta;
        let mut new_pos = new_pos;
        new_pos.clear();
        self.new_pos = new_pos;
        if self.tracing {
            let mut t = std::mem::take(&mut self.touched);
            t.sort_unstable();
            t.dedup();
            let changes = t
                .iter()
                .map(|&k| {
                    let (l, r) = unkey(k);
                    (l, r, self.pairs.get(&k).map_or(0, |p| p.count))
                })
                .collect();
            t.clear();
            self.touched = t;
            self.trace.push(StepTrace { changes });
        }
        self.maybe_compact();
    }

    /// Merge the pair `(left, right)` now (whatever its count) and record it. Returns the
    /// merge. Used by replay; also useful to force merges.
    pub fn merge_pair(&mut self, left: u32, right: u32) -> Result<Merge> {
        let n = self.tokens.len() as u32;
        if left >= n || right >= n {
            return Err(Error::InvalidArgument(format!(
                "merge ({left}, {right}) refers to a token that does not exist ({n} tokens)"
            )));
        }
        if !self.built || (self.admit > 1 && !self.pairs.contains_key(&key(left, right))) {
            self.track_all_pairs();
        }
        let count = self.pair_count(left, right);
        let before = self.tokens.len();
        let c = self.result_id(left, right);
        self.apply(left, right, c);
        if (c as usize) < before && self.admit > 1 {
            // The merge re-created an existing token: pairs with it may grow again, and
            // dormant ones are not counted. Recount.
            self.rebuild_pairs(Some(self.lean_keep));
        }
        let m = Merge {
            left,
            right,
            result: c,
            count,
        };
        self.merges.push(m);
        Ok(m)
    }

    /// Replay `merges` (given by the bytes of their two sides) in order, whatever their
    /// counts. A merge whose sides are not (yet) tokens, or whose pair does not occur, is
    /// handled by `policy`. Returns the number of merges recorded.
    pub fn replay(
        &mut self,
        merges: &[(Vec<u8>, Vec<u8>)],
        policy: ReplayPolicy,
        progress: &mut dyn FnMut(usize) -> Result<()>,
    ) -> Result<usize> {
        self.track_all_pairs();
        let mut recorded = 0usize;
        for (i, (lb, rb)) in merges.iter().enumerate() {
            if lb.is_empty() || rb.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "replayed merge {i} has an empty side"
                )));
            }
            let ids = (self.token_id(lb), self.token_id(rb));
            let occurs = match ids {
                (Some(l), Some(r)) => self.pair_count(l, r) > 0,
                _ => false,
            };
            if !occurs {
                match policy {
                    ReplayPolicy::Skip => {
                        self.dropped_replays.push((lb.clone(), rb.clone()));
                        if self.tracing {
                            self.trace.push(StepTrace::default());
                        }
                        continue;
                    }
                    ReplayPolicy::Error => {
                        return Err(Error::InvalidArgument(format!(
                            "replayed merge {i} ({} + {}) does not occur in the data",
                            crate::util::bytes_repr(lb),
                            crate::util::bytes_repr(rb)
                        )))
                    }
                    ReplayPolicy::Keep => {}
                }
            }
            let (l, r) = match ids {
                (Some(l), Some(r)) => (l, r),
                _ => {
                    // Only reachable with `Keep` (which creates every replayed token):
                    // the list itself is inconsistent.
                    return Err(Error::InvalidArgument(format!(
                        "replayed merge {i} ({} + {}) uses a token that no earlier merge creates",
                        crate::util::bytes_repr(lb),
                        crate::util::bytes_repr(rb)
                    )));
                }
            };
            self.merge_pair(l, r)?;
            recorded += 1;
            if (i & 63) == 63 {
                progress(i + 1)?;
            }
        }
        progress(merges.len())?;
        Ok(recorded)
    }

    /// Build the pair tracking [`Trainer::train_greedy`] starts from (its first step), so
    /// that a caller can time it or overlap other work with the loop alone; a no-op when
    /// it is built already.
    pub fn prepare_greedy(&mut self, target_tokens: usize) {
        if self.built {
            return;
        }
        if self.lean {
            self.lean_keep =
                target_tokens.saturating_sub(self.tokens.len()) * LEAN_PER_MERGE + LEAN_EXTRA;
            self.rebuild_pairs(Some(self.lean_keep));
        } else {
            self.rebuild_pairs(None);
        }
    }

    /// Greedy BPE: merge the best pair until the vocabulary has `opts.target_tokens`
    /// tokens, no pair reaches `opts.min_frequency`, or no pair is left.
    /// `progress(n_tokens)` is called every few merges.
    pub fn train_greedy(
        &mut self,
        opts: &GreedyOptions<'_>,
        progress: &mut dyn FnMut(usize) -> Result<()>,
    ) -> Result<StopReason> {
        let forbidden: rustc_hash::FxHashSet<&[u8]> =
            opts.forbidden_tokens.iter().map(|v| &v[..]).collect();
        let min_freq = opts.min_frequency.max(1);
        let keep_for = |t: &Trainer| {
            opts.target_tokens.saturating_sub(t.tokens.len()) * LEAN_PER_MERGE + LEAN_EXTRA
        };
        if self.lean {
            self.lean_keep = keep_for(self);
            if !self.built {
                self.rebuild_pairs(Some(self.lean_keep));
            }
        } else if !self.built {
            self.rebuild_pairs(None);
        }
        let mut since = 0usize;
        let reason = loop {
            if self.tokens.len() >= opts.target_tokens {
                break StopReason::VocabSize;
            }
            let Some(top) = self.heap.pop() else {
                if self.admit > 1 {
                    // every tracked pair is gone; dormant ones may remain
                    self.lean_keep = keep_for(self);
                    self.rebuild_pairs(Some(self.lean_keep));
                    continue;
                }
                break StopReason::NoPairs;
            };
            let live = match self.pairs.get(&top.key) {
                Some(p) if !p.banned => p.count,
                _ => continue,
            };
            if live != top.count {
                if live > 0 {
                    self.heap.push(HeapEntry {
                        count: live,
                        key: top.key,
                    });
                }
                continue;
            }
            if live < self.admit {
                // A dormant pair (count < admit) might now be the best: recount.
                self.heap.push(top);
                self.lean_keep = keep_for(self);
                self.rebuild_pairs(Some(self.lean_keep));
                continue;
            }
            if live < min_freq {
                self.heap.push(top);
                break StopReason::MinFrequency;
            }
            let (l, r) = unkey(top.key);
            let (lb, rb) = (&self.tokens[l as usize], &self.tokens[r as usize]);
            let mut reject = false;
            if let Some(max) = opts.max_token_length {
                reject = lb.len() + rb.len() > max;
            }
            if !reject && !forbidden.is_empty() {
                let mut b = Vec::with_capacity(lb.len() + rb.len());
                b.extend_from_slice(lb);
                b.extend_from_slice(rb);
                if forbidden.contains(&b[..]) {
                    self.special_collisions.push((l, r, b));
                    reject = true;
                }
            }
            if !reject {
                if let Some(v) = opts.veto {
                    reject = v(lb, rb);
                }
            }
            if reject {
                if let Some(p) = self.pairs.get_mut(&top.key) {
                    p.banned = true;
                }
                continue;
            }
            self.merge_pair(l, r)?;
            since += 1;
            if since >= 64 {
                since = 0;
                progress(self.tokens.len())?;
            }
        };
        progress(self.tokens.len())?;
        Ok(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force: recount every pair from scratch at every step; stop when the
    /// vocabulary has `target` tokens. Returns the merges as byte pairs.
    pub(crate) fn brute(words: &[(Vec<u8>, u64)], target: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut segs: Vec<(Vec<Vec<u8>>, u64)> = words
            .iter()
            .map(|(w, c)| (w.iter().map(|&b| vec![b]).collect(), *c))
            .collect();
        let mut ids: FxHashMap<Vec<u8>, u32> = (0..=255u8).map(|b| (vec![b], b as u32)).collect();
        let mut by_id: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        let mut out = vec![];
        while ids.len() < target {
            let mut counts: FxHashMap<(u32, u32), u64> = FxHashMap::default();
            for (s, c) in &segs {
                for w in s.windows(2) {
                    *counts.entry((ids[&w[0]], ids[&w[1]])).or_default() += c;
                }
            }
            let Some((&(l, r), _)) = counts
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            else {
                break;
            };
            let lb = by_id[l as usize].clone();
            let rb = by_id[r as usize].clone();
            let mut nb = lb.clone();
            nb.extend_from_slice(&rb);
            if !ids.contains_key(&nb) {
                ids.insert(nb.clone(), by_id.len() as u32);
                by_id.push(nb.clone());
            }
            for (s, _) in segs.iter_mut() {
                let mut o: Vec<Vec<u8>> = vec![];
                let mut i = 0;
                while i < s.len() {
                    if i + 1 < s.len() && s[i] == lb && s[i + 1] == rb {
                        o.push(nb.clone());
                        i += 2;
                    } else {
                        o.push(s[i].clone());
                        i += 1;
                    }
                }
                *s = o;
            }
            out.push((lb, rb));
        }
        out
    }

    fn fast(words: &[(Vec<u8>, u64)], target: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut t = Trainer::new(words.iter().map(|(w, c)| (&w[..], *c))).unwrap();
        let opts = GreedyOptions {
            target_tokens: target,
            ..Default::default()
        };
        t.train_greedy(&opts, &mut |_| Ok(())).unwrap();
        t.merges()
            .iter()
            .map(|m| {
                (
                    t.tokens()[m.left as usize].to_vec(),
                    t.tokens()[m.right as usize].to_vec(),
                )
            })
            .collect()
    }

    fn rng(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    #[test]
    fn matches_brute_force() {
        let mut seed = 1u64;
        for round in 0..300 {
            let alpha = 2 + (round % 4) as u64;
            let nw = 1 + rng(&mut seed) % 12;
            let mut words = vec![];
            let mut seen = std::collections::HashSet::new();
            for _ in 0..nw {
                let len = 1 + rng(&mut seed) % 12;
                let w: Vec<u8> = (0..len)
                    .map(|_| b'a' + (rng(&mut seed) % alpha) as u8)
                    .collect();
                if seen.insert(w.clone()) {
                    words.push((w, 1 + rng(&mut seed) % 5));
                }
            }
            assert_eq!(
                fast(&words, 296),
                brute(&words, 296),
                "round {round}: {words:?}"
            );
        }
    }

    #[test]
    fn long_pretokens_match_brute_force() {
        let mut seed = 99u64;
        for round in 0..6 {
            let mut words = vec![];
            for k in 0..3 {
                let len = 500 + 700 * k + round * 50;
                let w: Vec<u8> = (0..len)
                    .map(|_| b"aab c"[(rng(&mut seed) % 5) as usize])
                    .collect();
                words.push((w, 1 + k as u64));
            }
            assert_eq!(
                fast(&words, 256 + 60),
                brute(&words, 256 + 60),
                "round {round}"
            );
        }
    }

    /// Lean pair tracking (from_segments with lean=true) gives the same merges as full
    /// tracking, including merges that re-create tokens and vetoed pairs.
    #[test]
    fn lean_equals_full() {
        let mut seed = 21u64;
        for round in 0..200 {
            let alpha = 2 + (round % 4) as u64;
            let mut words = vec![];
            let mut seen = std::collections::HashSet::new();
            for _ in 0..(2 + rng(&mut seed) % 15) {
                let len = 1 + rng(&mut seed) % 30;
                let w: Vec<u8> = (0..len)
                    .map(|_| b'a' + (rng(&mut seed) % alpha) as u8)
                    .collect();
                if seen.insert(w.clone()) {
                    words.push((w, 1 + rng(&mut seed) % 6));
                }
            }
            let mut syms = vec![];
            let mut starts = vec![];
            let mut counts = vec![];
            for (w, c) in &words {
                if w.len() < 2 {
                    continue;
                }
                starts.push(syms.len() as u32);
                syms.extend(w.iter().map(|&b| b as u32));
                counts.push(*c);
            }
            let tokens: Vec<Box<[u8]>> = (0..=255u8).map(|b| vec![b].into_boxed_slice()).collect();
            let veto = |l: &[u8], r: &[u8]| l.len() + r.len() == 5 && l[0] == b'b';
            for use_veto in [false, true] {
                let o = GreedyOptions {
                    target_tokens: 256 + 40,
                    veto: if use_veto { Some(&veto) } else { None },
                    ..Default::default()
                };
                let mut full = Trainer::new(words.iter().map(|(w, c)| (&w[..], *c))).unwrap();
                full.train_greedy(&o, &mut |_| Ok(())).unwrap();
                let mut lean = Trainer::from_segments(
                    tokens.clone(),
                    vec![],
                    syms.clone(),
                    starts.clone(),
                    counts.clone(),
                    words.len(),
                    true,
                )
                .unwrap();
                lean.train_greedy(&o, &mut |_| Ok(())).unwrap();
                assert_eq!(full.merges(), lean.merges(), "round {round}: {words:?}");
                assert_eq!(full.tokens(), lean.tokens());
                lean.track_all_pairs();
                assert_eq!(full.pair_counts(), lean.pair_counts());
            }
        }
    }

    #[test]
    fn overlapping_runs() {
        let words = vec![
            (b"aaaaaaa".to_vec(), 3),
            (b"aaab".to_vec(), 2),
            (b"abab".to_vec(), 1),
        ];
        assert_eq!(fast(&words, 266), brute(&words, 266));
    }

    fn trainer(words: &[(&[u8], u64)]) -> Trainer {
        Trainer::new(words.iter().copied()).unwrap()
    }

    fn greedy(t: &mut Trainer, target: usize) -> StopReason {
        let o = GreedyOptions {
            target_tokens: target,
            ..Default::default()
        };
        t.train_greedy(&o, &mut |_| Ok(())).unwrap()
    }

    #[test]
    fn u64_counts_and_tie_break() {
        // Counts beyond 2^32 (HF's i32 would wrap); "cd" wins by one occurrence.
        let big = 1u64 << 40;
        let mut t = trainer(&[(b"ab", big), (b"cd", big + 1), (b"ef", big + 1)]);
        greedy(&mut t, 259);
        let m: Vec<(u32, u32, u64)> = t
            .merges()
            .iter()
            .map(|m| (m.left, m.right, m.count))
            .collect();
        // equal counts: smaller (left, right) first => (c, d) before (e, f)
        assert_eq!(
            m,
            vec![
                (b'c' as u32, b'd' as u32, big + 1),
                (b'e' as u32, b'f' as u32, big + 1),
                (b'a' as u32, b'b' as u32, big)
            ]
        );
    }

    #[test]
    fn duplicate_bytes_reuse_id() {
        // (b, c) first, then (a, b) elsewhere, then "a"+"bc" and "ab"+"c" both make "abc".
        let mut t = trainer(&[(b"bcx", 10), (b"aby", 9), (b"abc", 3), (b"xabc", 2)]);
        greedy(&mut t, 400);
        let abc: Vec<&Merge> = t
            .merges()
            .iter()
            .filter(|m| {
                let mut b = t.tokens()[m.left as usize].to_vec();
                b.extend_from_slice(&t.tokens()[m.right as usize]);
                b == b"abc"
            })
            .collect();
        assert!(!abc.is_empty());
        let ids: std::collections::HashSet<u32> = abc.iter().map(|m| m.result).collect();
        assert_eq!(ids.len(), 1, "all merges producing abc share one id");
        let uniq: std::collections::HashSet<&[u8]> = t.tokens().iter().map(|b| &b[..]).collect();
        assert_eq!(uniq.len(), t.tokens().len(), "token bytes are unique");
    }

    #[test]
    fn replay_reproduces_and_policies() {
        let words: Vec<(&[u8], u64)> = vec![
            (b"hello", 5),
            (b" hello", 7),
            (b" help", 3),
            (b"yellow", 2),
            (b" world", 4),
        ];
        let mut full = trainer(&words);
        greedy(&mut full, 256 + 12);
        let bm: Vec<(Vec<u8>, Vec<u8>)> = full
            .merges()
            .iter()
            .map(|m| {
                (
                    full.tokens()[m.left as usize].to_vec(),
                    full.tokens()[m.right as usize].to_vec(),
                )
            })
            .collect();
        // replay first 5 then continue greedily => identical
        let mut t = trainer(&words);
        assert_eq!(
            t.replay(&bm[..5], ReplayPolicy::Error, &mut |_| Ok(()))
                .unwrap(),
            5
        );
        greedy(&mut t, 256 + 12);
        assert_eq!(t.merges(), full.merges());
        // policies
        let never = vec![
            (b"z".to_vec(), b"z".to_vec()),
            (b"l".to_vec(), b"l".to_vec()),
        ];
        let mut s = trainer(&words);
        assert_eq!(
            s.replay(&never, ReplayPolicy::Skip, &mut |_| Ok(()))
                .unwrap(),
            1
        );
        assert_eq!(s.dropped_replays(), &never[..1]);
        assert_eq!(s.n_tokens(), 257);
        let mut k = trainer(&words);
        assert_eq!(
            k.replay(&never, ReplayPolicy::Keep, &mut |_| Ok(()))
                .unwrap(),
            2
        );
        assert_eq!(&*k.tokens()[256], b"zz");
        assert_eq!(k.merges()[0].count, 0);
        let mut e = trainer(&words);
        assert!(e
            .replay(&never, ReplayPolicy::Error, &mut |_| Ok(()))
            .is_err());
    }

    #[test]
    fn veto_forbidden_max_len_and_trace() {
        let words: Vec<(&[u8], u64)> = vec![(b"a: b", 50), (b"a:b", 40), (b"abcdef", 30)];
        let mut t = trainer(&words);
        t.set_tracing(true);
        let veto = |l: &[u8], r: &[u8]| {
            let mut b = l.to_vec();
            b.extend_from_slice(r);
            b.windows(2).any(|w| w == b": ")
        };
        let o = GreedyOptions {
            target_tokens: 400,
            max_token_length: Some(3),
            forbidden_tokens: vec![b"cd".to_vec()],
            veto: Some(&veto),
            ..Default::default()
        };
        t.train_greedy(&o, &mut |_| Ok(())).unwrap();
        for tok in t.tokens() {
            assert!(tok.len() <= 3);
            assert!(!tok.windows(2).any(|w| w == b": "));
            assert_ne!(&**tok, b"cd");
        }
        assert_eq!(t.special_collisions().len(), 1);
        // The trace replays the pair counts exactly.
        let mut live: FxHashMap<(u32, u32), u64> = FxHashMap::default();
        let fresh = trainer(&words);
        for (l, r, c) in fresh.pair_counts() {
            live.insert((l, r), c);
        }
        assert_eq!(t.trace().len(), t.merges().len());
        for (m, step) in t.merges().iter().zip(t.trace()) {
            assert_eq!(live.get(&(m.left, m.right)).copied().unwrap_or(0), m.count);
            for &(l, r, c) in &step.changes {
                if c == 0 {
                    live.remove(&(l, r));
                } else {
                    live.insert((l, r), c);
                }
            }
        }
        let now: FxHashMap<(u32, u32), u64> = t
            .pair_counts()
            .into_iter()
            .map(|(l, r, c)| ((l, r), c))
            .collect();
        assert_eq!(live, now);
    }

    #[test]
    fn min_frequency_and_no_pairs() {
        let mut t = trainer(&[(b"abab", 3), (b"cd", 1), (b"x", 100)]);
        let o = GreedyOptions {
            target_tokens: 400,
            min_frequency: 3,
            ..Default::default()
        };
        assert_eq!(
            t.train_greedy(&o, &mut |_| Ok(())).unwrap(),
            StopReason::MinFrequency
        );
        assert!(t.merges().iter().all(|m| m.count >= 3));
        assert_eq!(t.n_pretokens(), 3);
        let mut t = trainer(&[(b"ab", 1)]);
        assert_eq!(greedy(&mut t, 400), StopReason::NoPairs);
    }
}
