//! SuperBPE (Liu et al. 2025): two-stage superword BPE.
//!
//! Stage 1 is ordinary byte-level BPE with a whitespace-aware pre-tokenizer, trained until
//! the vocabulary has `transition` tokens. Stage 2 re-splits the same corpus with a
//! pre-tokenizer that (almost) never splits — training chunks are whole lines minus digit
//! groups — replays the stage-1 merges in order, then continues greedy BPE across
//! whitespace up to the final size, rejecting merges whose token would contain a forbidden
//! substring or span too many words. The output is a plain BPE model (vocabulary + ordered
//! merges) that encodes with the stage-2 pre-tokenizer.
//!
//! This module holds the parts specific to SuperBPE; everything else reuses the trainer
//! ([`crate::train`]) and the HF pipeline ([`crate::hf`]):
//! * [`presets`]: the two regex generations of the reference code ("paper", "recommended")
//!   as HF pre-tokenizer objects;
//! * [`HfSplitter`]: counts training units with exactly the HF pre-tokenizer the final
//!   tokenizer uses (so training and encoding split text identically);
//! * [`replay`]: stage-2 replay of the stage-1 merges chunk by chunk (parallel, and the
//!   trainer then only stores post-replay token sequences instead of bytes);
//! * [`Filters`]: the `forbid` / `max_words` veto of the stage-2 merge loop;
//! * [`stage2`]: replay + greedy continuation, returning the full tokenizer;
//! * [`newline`]: the vocabulary property that makes cutting input after newlines exact.

pub mod fastsplit;
pub mod newline;
pub mod presets;
pub mod replay;

use std::cell::RefCell;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::hf::model::incremental::ModelBuilder;
use crate::hf::pretokenize::{self, Piece, PreTokenizer, Scratch, Step};
use crate::hf::HfTokenizer;
use crate::train::{
    self, counts::PretokenCounts, GreedyOptions, Merge, ReplayPolicy, Splitter, StopReason,
    TrainConfig, TrainOutput, Trainer,
};

/// Splits text with a list of HF pre-tokenizer objects (the part of a `tokenizer.json`
/// pre-tokenizer that comes before `ByteLevel(use_regex=false)`), with HF's semantics:
/// `Split` keeps the text between matches as pieces (`Isolated`), `Digits` splits numeric
/// runs, and so on. Used to count training units so that training sees exactly the pieces
/// the final tokenizer will encode.
#[derive(Clone, Debug)]
pub struct HfSplitter {
    steps: Vec<Step>,
    description: String,
    /// The objects are the `"paper"` stage-1 preset: split with [`fastsplit::paper_stage1`]
    /// (texts with non-ASCII numbers still take the general pipeline).
    fast_paper1: bool,
    /// The objects are the `"paper"` stage-2 preset: split with [`fastsplit::paper_stage2`]
    /// (texts with non-ASCII numbers still take the general pipeline).
    fast_paper2: bool,
}

thread_local! {
    static SCRATCH: RefCell<(Vec<Piece>, Scratch)> = RefCell::new((Vec::new(), Scratch::default()));
    static RANGES: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
}

impl HfSplitter {
    /// Build from HF pre-tokenizer JSON objects (`ByteLevel` is not allowed here: the
    /// byte-level mapping is implied).
    pub fn new(objects: &[Value]) -> Result<Self> {
        Self::build(objects, true)
    }

    fn build(objects: &[Value], fuse: bool) -> Result<Self> {
        let mut parsed = Vec::with_capacity(objects.len());
        for (i, v) in objects.iter().enumerate() {
            let p = PreTokenizer::from_json(v, &format!("pre_tokenizer[{i}]"))?;
            parsed.push(p);
        }
        let mut flat = Vec::new();
        for (i, p) in parsed.iter().enumerate() {
            p.flatten(&format!("pre_tokenizer[{i}]"), &mut flat);
        }
        for (path, p) in &flat {
            if matches!(p, PreTokenizer::ByteLevel { .. }) {
                return Err(Error::InvalidArgument(format!(
                    "{path}: ByteLevel is implied and must not be listed"
                )));
            }
        }
        let steps = pretokenize::compile_with(&flat, fuse)?;
        let fast_paper1 = fuse
            && presets::preset("paper", presets::Stage::One).is_ok_and(|p| p.as_slice() == objects);
        let fast_paper2 = fuse
            && presets::preset("paper", presets::Stage::Two).is_ok_and(|p| p.as_slice() == objects);
        Ok(HfSplitter {
            steps,
            description: serde_json::to_string(&Value::Array(objects.to_vec())).unwrap_or_default(),
            fast_paper1,
            fast_paper2,
        })
    }

    /// The same splitter without the hand-written fast path (for differential tests).
    #[cfg(test)]
    pub(crate) fn without_fast_path(self) -> Self {
        let objects: Vec<Value> = serde_json::from_str(&self.description).unwrap_or_default();
        Self::build(&objects, false).unwrap_or(self)
    }

    /// Call `f(start, end)` for every piece of `text`.
    pub fn for_each_piece(
        &self,
        text: &str,
        f: &mut dyn FnMut(usize, usize) -> Result<()>,
    ) -> Result<()> {
        if self.fast_paper1 || self.fast_paper2 {
            let fast = if self.fast_paper1 {
                fastsplit::paper_stage1
            } else {
                fastsplit::paper_stage2
            };
            let done = RANGES.with(|cell| match cell.try_borrow_mut() {
                Ok(mut r) => {
                    if fast(text, &mut r) {
                        for &(a, b) in r.iter() {
                            f(a, b)?;
                        }
                        Ok(true)
                    } else {
                        Ok(false)
                    }
                }
                Err(_) => Ok(false),
            })?;
            if done {
                return Ok(());
            }
        }
        SCRATCH.with(|cell| {
            // Re-entrancy cannot happen (f never calls back into a splitter), but do not
            // panic if it did: fall back to fresh buffers.
            match cell.try_borrow_mut() {
                Ok(mut g) => {
                    let (pieces, sc) = &mut *g;
                    pretokenize::run(text, &self.steps, pieces, sc)?;
                    for p in pieces.iter() {
                        f(p.start, p.end)?;
                    }
                    Ok(())
                }
                Err(_) => {
                    let mut pieces = Vec::new();
                    let mut sc = Scratch::default();
                    pretokenize::run(text, &self.steps, &mut pieces, &mut sc)?;
                    for p in &pieces {
                        f(p.start, p.end)?;
                    }
                    Ok(())
                }
            }
        })
    }
}

impl Splitter for HfSplitter {
    fn split(&self, text: &str, f: &mut dyn FnMut(&[u8])) -> Result<()> {
        let b = text.as_bytes();
        self.for_each_piece(text, &mut |s, e| {
            f(&b[s..e]);
            Ok(())
        })
    }
    fn describe(&self) -> Option<String> {
        Some(self.description.clone())
    }
}

/// Phase timer of [`stage2`]: prints `stage2 <phase>: <seconds> s` to stderr when the
/// environment variable `SUPERTOK_TIMING` is set (for profiling; silent otherwise), with
/// the process CPU time, the memory, and each thread's run time in the phase (Linux
/// `schedstat`, ms), which shows the phases that leave a core idle.
struct Timing(Option<(std::time::Instant, Vec<(String, u64)>)>);

impl Timing {
    fn new() -> Self {
        Timing(
            std::env::var_os("SUPERTOK_TIMING")
                .map(|_| (std::time::Instant::now(), crate::util::thread_run_times())),
        )
    }
    fn lap(&mut self, phase: &str) {
        if let Some((t, runs)) = self.0.as_mut() {
            let now = std::time::Instant::now();
            let (per_thread, cur) = crate::util::thread_runs_since(runs);
            *runs = cur;
            let mem = std::fs::read_to_string("/proc/self/status")
                .map(|st| {
                    st.lines()
                        .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
                        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            // process CPU time (utime + stime, clock ticks of 10 ms)
            let cpu = std::fs::read_to_string("/proc/self/stat")
                .ok()
                .and_then(|st| {
                    let rest = st
                        .rsplit_once(')')?
                        .1
                        .split_whitespace()
                        .collect::<Vec<_>>();
                    let u: u64 = rest.get(11)?.parse().ok()?;
                    let s: u64 = rest.get(12)?.parse().ok()?;
                    Some((u + s) as f64 / 100.0)
                })
                .unwrap_or(f64::NAN);
            eprintln!(
                "stage2 {phase}: {:.3} s (process CPU {cpu:.2} s; {mem}; threads ms: {per_thread})",
                (now - *t).as_secs_f64()
            );
            *t = now;
        }
    }
}

/// The merge filters of SuperBPE's stage 2 (the reference fork hard-codes `": "` and 4).
#[derive(Clone, Debug, Default)]
pub struct Filters {
    /// Reject a merge whose token contains any of these byte strings.
    pub forbid: Vec<Vec<u8>>,
    /// Reject a merge whose token has more than this many words: non-empty pieces when
    /// split on the space byte (U+0020 only; tabs, newlines and NBSP are not separators).
    pub max_words: Option<usize>,
}

impl Filters {
    /// Whether the token `left ++ right` is rejected.
    pub fn rejects(&self, left: &[u8], right: &[u8]) -> bool {
        if let Some(max) = self.max_words {
            if count_words(left, right) > max {
                return true;
            }
        }
        if !self.forbid.is_empty() {
            let mut b = Vec::with_capacity(left.len() + right.len());
            b.extend_from_slice(left);
            b.extend_from_slice(right);
            for f in &self.forbid {
                if !f.is_empty() && memchr::memmem::find(&b, f).is_some() {
                    return true;
                }
            }
        }
        false
    }

    /// Whether no filter is active.
    pub fn is_empty(&self) -> bool {
        self.max_words.is_none() && self.forbid.iter().all(|f| f.is_empty())
    }
}

/// Number of non-empty pieces of `left ++ right` split on `b' '`.
pub fn count_words(left: &[u8], right: &[u8]) -> usize {
    let mut n = 0usize;
    let mut in_word = false;
    for &c in left.iter().chain(right.iter()) {
        if c == b' ' {
            in_word = false;
        } else if !in_word {
            in_word = true;
            n += 1;
        }
    }
    n
}

/// Options of [`stage2`].
#[derive(Clone, Debug)]
pub struct Stage2Config {
    /// Final vocabulary size (bytes + learned tokens + special tokens) and special tokens.
    pub train: TrainConfig,
    /// What replay does with a merge that never occurs in the stage-2 chunks.
    pub policy: ReplayPolicy,
    /// The merge filters of the greedy continuation.
    pub filters: Filters,
}

/// What [`stage2`] returns besides the tokenizer.
#[derive(Clone, Debug)]
pub struct Stage2Output {
    pub out: TrainOutput,
    /// Number of merges replayed (recorded) from the stage-1 list.
    pub n_replayed: usize,
    /// Replayed merges dropped because they never occur ([`ReplayPolicy::Skip`]).
    pub dropped: Vec<(Vec<u8>, Vec<u8>)>,
    /// Merges rejected by the filters (the token bytes), in the order they were rejected.
    pub rejected: u64,
    /// Distinct chunks, and chunk positions (tokens) the merge loop started with.
    pub n_chunks: usize,
    pub n_positions: usize,
}

/// The stage-1 merges that stage 2 replays.
#[derive(Clone, Copy, Debug)]
pub enum Stage1<'a> {
    /// As the bytes of their two sides, in rank order (e.g. inherited from a tokenizer).
    Bytes(&'a [(Vec<u8>, Vec<u8>)]),
    /// A trained stage 1 as the trainer returns it: the token bytes by id and the merges as
    /// id pairs in rank order. The replay table is then built from the ids (no token is
    /// looked up by its bytes, see [`replay::ReplayTable::from_ids`]), unless the list is
    /// not of that form, when the byte pairs are made and used.
    Ids {
        vocab: &'a [&'a [u8]],
        merges: &'a [(u32, u32)],
    },
}

impl<'a> From<&'a [(Vec<u8>, Vec<u8>)]> for Stage1<'a> {
    fn from(m: &'a [(Vec<u8>, Vec<u8>)]) -> Self {
        Stage1::Bytes(m)
    }
}

impl<'a> From<&'a Vec<(Vec<u8>, Vec<u8>)>> for Stage1<'a> {
    fn from(m: &'a Vec<(Vec<u8>, Vec<u8>)>) -> Self {
        Stage1::Bytes(m)
    }
}

impl Stage1<'_> {
    /// Number of merges.
    pub fn len(&self) -> usize {
        match self {
            Stage1::Bytes(m) => m.len(),
            Stage1::Ids { merges, .. } => merges.len(),
        }
    }

    /// Whether there is no merge.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The replay table of the merges.
    fn table(&self) -> Result<replay::ReplayTable> {
        match *self {
            Stage1::Bytes(m) => replay::ReplayTable::new(m),
            Stage1::Ids { vocab, merges } => {
                if let Some(t) = replay::ReplayTable::from_ids(vocab, merges) {
                    return Ok(t);
                }
                let side = |id: u32, k: usize| {
                    vocab.get(id as usize).map(|b| b.to_vec()).ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "stage-1 merge {k}: token {id} is not in the vocabulary ({} tokens)",
                            vocab.len()
                        ))
                    })
                };
                let pairs = merges
                    .iter()
                    .enumerate()
                    .map(|(k, &(l, r))| Ok((side(l, k)?, side(r, k)?)))
                    .collect::<Result<Vec<_>>>()?;
                replay::ReplayTable::new(&pairs)
            }
        }
    }
}

/// Progress of [`stage2`]: `(phase, done, total)` with phase `"replay"` (done = chunks
/// replayed) or `"merge"` (done = vocabulary size so far).
pub type Stage2Progress<'a> = dyn FnMut(&str, u64, u64) -> Result<()> + 'a;

/// Stage 2 of SuperBPE on stage-2 chunk counts: replay `stage1` (merges as the bytes of
/// their two sides, in rank order) chunk by chunk, then continue greedily to
/// `cfg.train.vocab_size` with the filters. Consumes the chunk counts (their memory is
/// released while the chunks are converted to token sequences). Runs in the current rayon
/// pool.
pub fn stage2(
    chunks: PretokenCounts,
    stage1: &[(Vec<u8>, Vec<u8>)],
    cfg: &Stage2Config,
    progress: &mut Stage2Progress<'_>,
) -> Result<Stage2Output> {
    stage2_with(
        chunks,
        Stage1::Bytes(stage1),
        cfg,
        progress,
        |_| (),
        |_, _, ()| Ok(()),
    )
    .map(|r| r.0)
}

/// [`stage2`], and the tokenizer of its result, as [`HfTokenizer::from_bpe`] builds it from
/// the regular tokens, the merges, `pre_tokenizer` (HF pre-tokenizer objects before
/// `ByteLevel`) and the special tokens. The stage-1 tokens of the tokenizer (byte-level
/// strings and their index, [`ModelBuilder`]) are built on another worker of the pool while
/// the single-threaded stage-2 merge loop runs; only the stage-2 tokens, the merges and the
/// derived structures are left for the end. `stage1`: the merges as byte pairs, or
/// [`Stage1::Ids`].
pub fn stage2_with_tokenizer<'a>(
    chunks: PretokenCounts,
    stage1: impl Into<Stage1<'a>>,
    cfg: &Stage2Config,
    pre_tokenizer: Vec<serde_json::Value>,
    progress: &mut Stage2Progress<'_>,
) -> Result<(Stage2Output, HfTokenizer)> {
    // The builder holds the replay table's tokens (the tokens of a "keep" replay); when
    // the final vocabulary does not start with them, `finish` rebuilds from scratch.
    let side = |table: &replay::ReplayTable| {
        ModelBuilder::new(table.tokens().iter().map(|t| t.to_vec()).collect())
    };
    // Built from the trainer itself, while the trainer's output is assembled beside it.
    let after = |t: &Trainer, train: &TrainConfig, builder: Result<ModelBuilder>| {
        let merges: Vec<(u32, u32)> = t.merges().iter().map(|m| (m.left, m.right)).collect();
        // a builder that failed (a stage-1 list that cannot be a vocabulary) is simply not
        // reused: the constructor reports the problem on the final tokens, if it is one
        HfTokenizer::from_bpe_builder(
            builder.unwrap_or_default(),
            t.tokens(),
            &merges,
            Some(pre_tokenizer),
            None,
            train::special_token_ids(t.tokens().len(), train),
        )
    };
    stage2_with(chunks, stage1.into(), cfg, progress, side, after)
}

/// [`stage2`], running `side` (given the replay table) on another worker of the pool while
/// the stage-2 merge loop runs on this one, then `after` (given the trainer, the training
/// options and the side result) while the output is assembled.
fn stage2_with<T, U, F, A>(
    chunks: PretokenCounts,
    stage1: Stage1<'_>,
    cfg: &Stage2Config,
    progress: &mut Stage2Progress<'_>,
    side: F,
    after: A,
) -> Result<(Stage2Output, U)>
where
    T: Send,
    U: Send,
    F: FnOnce(&replay::ReplayTable) -> T + Send,
    A: FnOnce(&Trainer, &TrainConfig, T) -> Result<U> + Send,
{
    let target = train::check_config(&cfg.train)?;
    if stage1.len() + 256 > target {
        return Err(Error::InvalidArgument(format!(
            "the stage-1 merges ({}) do not fit in the vocabulary: 256 + {} > {target} regular tokens",
            stage1.len(),
            stage1.len()
        )));
    }
    let mut clock = Timing::new();
    let table = stage1.table()?;
    clock.lap("replay table");
    let n_chunks = chunks.len();
    let seg = replay::replay_counts(&table, chunks, &mut |d, t| progress("replay", d, t))?;
    clock.lap("replay");
    let replay::Segmented {
        tokens,
        merges,
        dropped,
        syms,
        starts,
        counts,
    } = table.finish(seg, cfg.policy)?;
    let n_replayed = merges.len();
    let n_positions = syms.len();
    clock.lap("finish replay");
    // The chunk texts and the replay caches are freed; give their pages back (they are
    // mostly small blocks that the allocator would otherwise keep) while the trainer
    // builds its arrays: the trim runs on one worker, the build's parallel passes take
    // the other and steal back once the trim is done. The arrays are large fresh
    // allocations (mapped, not taken from the freed blocks), so the two do not compete
    // for the same pages.
    let (_, t) = rayon::join(crate::util::release_free_memory, || {
        Trainer::from_segments(tokens, merges, syms, starts, counts, n_chunks, true)
    });
    let mut t = t?;
    clock.lap("trainer build");
    let filters = &cfg.filters;
    let veto = |l: &[u8], r: &[u8]| filters.rejects(l, r);
    let rejected = std::sync::atomic::AtomicU64::new(0);
    let counting_veto = |l: &[u8], r: &[u8]| {
        let r = veto(l, r);
        if r {
            rejected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        r
    };
    let opts = GreedyOptions {
        target_tokens: target,
        min_frequency: cfg.train.min_frequency,
        max_token_length: cfg.train.max_token_length,
        forbidden_tokens: cfg
            .train
            .special_tokens
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect(),
        veto: if filters.is_empty() {
            None
        } else {
            Some(&counting_veto)
        },
    };
    t.prepare_greedy(target);
    clock.lap("pair rebuild");
    let total = target as u64;
    let mut side_out: Option<T> = None;
    let stop = rayon::in_place_scope(|sc| {
        // queued on this worker: the idle worker of the pool steals it, or this one runs
        // it when it next waits inside the loop (or right after it)
        let slot = &mut side_out;
        let table = &table;
        sc.spawn(move |_| *slot = Some(side(table)));
        t.train_greedy(&opts, &mut |n| progress("merge", n as u64, total))
    });
    let stop: StopReason = stop?;
    let side_out =
        side_out.ok_or_else(|| Error::InvalidArgument("stage 2: lost side work".into()))?;
    clock.lap("greedy");
    let (out, side_out) = rayon::join(
        || train::finish(&t, &cfg.train, stop),
        || after(&t, &cfg.train, side_out),
    );
    let side_out = side_out?;
    // Freeing the trainer (tens of MB in a few large arrays, the pair map, the token
    // table) is left to a helper thread.
    crate::util::drop_in_background((t, table));
    clock.lap("finish + tokenizer");
    Ok((
        Stage2Output {
            out,
            n_replayed,
            dropped,
            rejected: rejected.into_inner(),
            n_chunks,
            n_positions,
        },
        side_out,
    ))
}

/// The stage-1 merges of a trained output as the bytes of their two sides.
pub fn merges_as_bytes(vocab: &[Vec<u8>], merges: &[Merge]) -> Vec<(Vec<u8>, Vec<u8>)> {
    merges
        .iter()
        .map(|m| {
            (
                vocab[m.left as usize].clone(),
                vocab[m.right as usize].clone(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
