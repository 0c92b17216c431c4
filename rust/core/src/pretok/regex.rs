//! General pre-tokenizer: fancy-regex `find_iter`, the engine tiktoken uses, so any
//! tiktoken pattern (possessive quantifiers, look-around, `\p{..}`, `(?i:..)`) behaves
//! identically.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use fancy_regex::{Regex, RegexBuilder};

use crate::error::{Error, Result};

/// fancy-regex's `find_at` path shares scratch space inside each `Regex`; concurrent use
/// from many threads contends on it. Each thread therefore gets one of a fixed set of
/// clones, picked by a per-thread slot number.
const CLONES: usize = 32;

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn thread_slot() -> usize {
    SLOT.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % CLONES;
        s.set(v);
        v
    })
}

#[derive(Clone, Debug)]
pub struct RegexSplitter {
    pattern: Arc<str>,
    clones: Arc<Vec<Regex>>,
}

impl RegexSplitter {
    pub fn new(pattern: &str) -> Result<Self> {
        Self::with_syntax(pattern, false)
    }

    /// Compile `pattern` with Oniguruma's parsing rules (`x{n,m}+` is a repetition of
    /// `x{n,m}`, not a possessive; see fancy-regex's `oniguruma_mode`) when `oniguruma`
    /// is true. HF `tokenizers` compiles its regexes with Oniguruma.
    pub fn with_syntax(pattern: &str, oniguruma: bool) -> Result<Self> {
        let re = RegexBuilder::new(pattern)
            .oniguruma_mode(oniguruma)
            .build()
            .map_err(|e| Error::InvalidPattern {
                pattern: pattern.to_string(),
                message: e.to_string(),
            })?;
        let clones = (0..CLONES).map(|_| re.clone()).collect();
        Ok(RegexSplitter {
            pattern: pattern.into(),
            clones: Arc::new(clones),
        })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    #[inline]
    pub fn regex(&self) -> &Regex {
        &self.clones[thread_slot()]
    }

    pub fn for_each_piece<F>(&self, text: &str, mut f: F) -> Result<()>
    where
        F: FnMut(usize, usize) -> Result<()>,
    {
        for m in self.regex().find_iter(text) {
            let m = m.map_err(|e| Error::RegexRuntime(e.to_string()))?;
            if m.start() < m.end() {
                f(m.start(), m.end())?;
            }
        }
        Ok(())
    }
}
