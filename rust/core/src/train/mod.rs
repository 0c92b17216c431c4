//! BPE training: pretoken counting ([`count`], [`counts`]) and the merge loop
//! ([`trainer`]), plus the one-call [`train_bpe`].
//!
//! # Vocabulary layout
//! Ids `0..256` are the single bytes (id = byte value); merge `i` creates id `256 + i`
//! (unless its bytes already are a token, see [`trainer`]); special tokens come last, after
//! every learned token, in the order given. `vocab_size` counts all three kinds, so a
//! tokenizer trained with `vocab_size = V` and `k` special tokens learns at most
//! `V - 256 - k` tokens.
//!
//! # Hooks for later stages
//! * [`Trainer::replay`]: start from an existing merge list, replayed in order on the
//!   counts ([`ReplayPolicy`] says what happens to merges that never occur);
//! * [`GreedyOptions::veto`]: reject merges by their two sides' bytes (SuperBPE filters);
//! * [`count::Splitter`]: count arbitrary chunks, not just regex pretokens;
//! * [`Trainer::set_tracing`]: per-step changed pair counts (data-mixture inference).

pub mod count;
pub mod counts;
pub mod trainer;

pub use count::{
    count_files, count_texts, Counter, LineSplitter, Splitter, Utf8Errors, WholeChunks,
};
pub use counts::PretokenCounts;
pub use trainer::{GreedyOptions, Merge, ReplayPolicy, StepTrace, StopReason, Trainer, Veto};

use crate::error::{Error, Result};

/// Options of [`train_bpe`].
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Total vocabulary size: 256 bytes + learned tokens + special tokens.
    pub vocab_size: usize,
    /// Special tokens' texts (ids after the learned tokens, in this order).
    pub special_tokens: Vec<String>,
    /// Stop when the best pair occurs fewer times than this (≥ 1).
    pub min_frequency: u64,
    /// Never learn a token longer than this many bytes.
    pub max_token_length: Option<usize>,
}

/// The result of [`train_bpe`].
#[derive(Clone, Debug)]
pub struct TrainOutput {
    /// Token bytes by id (bytes, learned tokens, then special tokens).
    pub vocab: Vec<Vec<u8>>,
    /// Merges in rank order.
    pub merges: Vec<Merge>,
    /// Special tokens and their ids.
    pub special_tokens: Vec<(String, u32)>,
    pub stop: StopReason,
    /// Merges skipped because they would have produced a special token's text.
    pub special_collisions: Vec<String>,
    /// Distinct pretokens trained on.
    pub n_pretokens: usize,
}

/// Check the special tokens and the vocabulary size; returns the number of tokens to learn
/// to (bytes + learned).
pub fn check_config(cfg: &TrainConfig) -> Result<usize> {
    let mut seen = std::collections::HashSet::new();
    for s in &cfg.special_tokens {
        if s.is_empty() {
            return Err(Error::InvalidArgument(
                "special tokens must not be empty".into(),
            ));
        }
        if s.len() == 1 {
            return Err(Error::InvalidArgument(format!(
                "special token {s:?} is a single byte, which is already a base token"
            )));
        }
        if !seen.insert(s.as_str()) {
            return Err(Error::InvalidArgument(format!(
                "special token {s:?} is given twice"
            )));
        }
    }
    let min = N_BASE + cfg.special_tokens.len();
    if cfg.vocab_size < min {
        return Err(Error::InvalidArgument(format!(
            "vocab_size must be at least 256 + the number of special tokens = {min}, got {}",
            cfg.vocab_size
        )));
    }
    if cfg.vocab_size > u32::MAX as usize {
        return Err(Error::InvalidArgument(format!(
            "vocab_size {} is too large (ids are 32-bit)",
            cfg.vocab_size
        )));
    }
    Ok(cfg.vocab_size - cfg.special_tokens.len())
}

const N_BASE: usize = trainer::N_BYTES as usize;

/// Train a byte-level BPE tokenizer on `counts`.
pub fn train_bpe(
    counts: &PretokenCounts,
    cfg: &TrainConfig,
    veto: Option<Veto<'_>>,
    progress: &mut dyn FnMut(usize) -> Result<()>,
) -> Result<TrainOutput> {
    let target = check_config(cfg)?;
    let mut t = Trainer::new(counts.iter())?;
    let opts = GreedyOptions {
        target_tokens: target,
        min_frequency: cfg.min_frequency,
        max_token_length: cfg.max_token_length,
        forbidden_tokens: cfg
            .special_tokens
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect(),
        veto,
    };
    let stop = t.train_greedy(&opts, progress)?;
    Ok(finish(&t, cfg, stop))
}

/// The special tokens of `cfg` with their ids after `n_tokens` regular tokens (in order).
pub fn special_token_ids(n_tokens: usize, cfg: &TrainConfig) -> Vec<(String, u32)> {
    cfg.special_tokens
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), (n_tokens + i) as u32))
        .collect()
}

/// Assemble the output of a trainer (appends the special tokens).
pub fn finish(t: &Trainer, cfg: &TrainConfig, stop: StopReason) -> TrainOutput {
    let mut vocab: Vec<Vec<u8>> = t.tokens().iter().map(|b| b.to_vec()).collect();
    let special_tokens = special_token_ids(vocab.len(), cfg);
    vocab.extend(cfg.special_tokens.iter().map(|s| s.as_bytes().to_vec()));
    let special_collisions = t
        .special_collisions()
        .iter()
        .map(|(_, _, b)| String::from_utf8_lossy(b).into_owned())
        .collect();
    TrainOutput {
        vocab,
        merges: t.merges().to_vec(),
        special_tokens,
        stop,
        special_collisions,
        n_pretokens: t.n_pretokens(),
    }
}
