//! supertok-core: the pure-Rust heart of supertok.
//!
//! * [`vocab`] — token ids ⇄ bytes;
//! * [`bpe`] — the merge engine shared by tiktoken-style and HF-style tokenizers;
//! * [`pretok`] — pre-tokenizers (general regex path; hand-written lexers for known patterns);
//! * [`special`] — special-token matching;
//! * [`encoding`] — the tiktoken-compatible encoding;
//! * [`formats`] — file formats (`.tiktoken`);
//! * [`hf`] — HF `tokenizer.json` byte-level BPE tokenizers;
//! * [`mixture`] — merge-list replay for data-mixture inference;
//! * [`stochastic`] — StochasTok and seeded BPE-dropout;
//! * [`superbpe`] — SuperBPE two-stage superword training and newline sharding.
//!
//! Nothing here depends on Python; `rust/python` holds the bindings.

pub mod atomic_chars;
pub mod backtrack;
pub mod bpe;
pub mod bytes;
pub mod chunk_cache;
pub mod encoding;
pub mod error;
pub mod formats;
pub mod hf;
pub mod hugebuf;
pub mod mixture;
pub mod piece_cache;
pub mod piece_index;
pub mod pretok;
pub mod rank_bpe;
pub mod special;
pub mod stochastic;
pub mod superbpe;
pub mod train;
pub mod util;
pub mod vocab;

pub use encoding::CoreEncoding;
pub use error::{Error, Result};

/// Helpers shared by the unit tests.
#[cfg(test)]
pub(crate) mod testutil {
    /// One step of Marsaglia's xorshift64 (13, 7, 17): the tests' deterministic
    /// pseudo-random numbers (`seed` must not be 0).
    pub(crate) fn xorshift(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// A vocabulary's `(bytes, id)` pairs.
    pub(crate) type Pairs = Vec<(Vec<u8>, u32)>;

    /// The `(bytes, id)` pairs of each bundled vocabulary (o200k, cl100k, r50k) that is
    /// present in `python/supertok/data`, with its file name (an absent one is skipped
    /// with a message).
    pub(crate) fn bundled_pairs() -> Vec<(&'static str, Pairs)> {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python/supertok/data");
        let mut all = vec![];
        for file in [
            "o200k_base.tiktoken",
            "cl100k_base.tiktoken",
            "r50k_base.tiktoken",
        ] {
            let Ok(data) = std::fs::read(dir.join(file)) else {
                eprintln!("skipping {file}: not found");
                continue;
            };
            all.push((file, crate::formats::tiktoken::parse(&data, file).unwrap()));
        }
        all
    }

    /// Whether `/proc/cpuinfo` lists every one of `flags` (false where it cannot be
    /// read): the tests that fail when a vector path is silently not taken use it.
    pub(crate) fn cpu_lists(flags: &[&str]) -> bool {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let listed: Vec<&str> = cpuinfo.split_whitespace().collect();
        flags.iter().all(|f| listed.contains(f))
    }
}
