//! Stochastic tokenization.
//!
//! * [`split`] — the split table of a vocabulary and **StochasTok** (Sims et al. 2025):
//!   random post-hoc splitting of already-tokenized ids, the reference procedure's
//!   distribution exactly, in `O(n + attempts)`;
//! * [`dropout`] — seeded **BPE-dropout** (Provilkov et al. 2020) for the encoder;
//! * [`rng`] — the documented, platform-independent generator both use.
//!
//! Every operation takes an explicit `u64` seed; the output is a pure function of the
//! inputs and the seed (batched operations give row `i` stream `i`, so the thread count
//! never matters).

pub mod dropout;
pub mod rng;
pub mod split;

pub use dropout::{encode_dropout, hf_encode_dropout, merge_with_dropout, DropoutScratch};
pub use rng::Rng;
pub use split::{check_ragged_offsets, num_attempts, ragged_rows, SplitTable};

use crate::error::{Error, Result};

/// Check that `p` is a probability (finite, in `[0, 1]`); `what` names the argument.
pub fn check_probability(p: f64, what: &str) -> Result<()> {
    if p.is_finite() && (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{what} must be a probability in [0, 1], got {p}"
        )))
    }
}
