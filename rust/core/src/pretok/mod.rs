//! Pre-tokenization: splitting text into pieces that are encoded independently.
//!
//! [`Pretokenizer`] is an enum so that hand-written lexers for well-known patterns can sit
//! beside the general regex path and be dispatched without dynamic calls. Every variant
//! must produce exactly the pieces that the reference regex engine (fancy-regex, as used by
//! tiktoken) produces for the same pattern.

pub mod lexers;
pub mod patterns;
mod regex;
pub mod unicode;

pub use self::lexers::{Lexer, LexerKind};
pub use self::regex::RegexSplitter;

use crate::error::Result;

/// A pre-tokenizer for one split pattern.
#[derive(Clone, Debug)]
pub enum Pretokenizer {
    /// General path: any pattern fancy-regex accepts (tiktoken's engine).
    Regex(RegexSplitter),
    /// Hand-written lexer for a known pattern (r50k, cl100k, o200k), exactly equivalent
    /// to the regex path for that pattern.
    Lexer(Lexer),
}

impl Pretokenizer {
    /// Compile `pattern`, choosing the fastest exact implementation available for it: a
    /// hand-written lexer when `pattern` is exactly one of the patterns in [`patterns`],
    /// else the general regex path.
    pub fn new(pattern: &str) -> Result<Self> {
        if let Some(lx) = lexers::for_pattern(pattern) {
            return Ok(Pretokenizer::Lexer(lx));
        }
        Self::new_regex(pattern)
    }

    /// Always the general regex path (used to differentially test the fast lexers).
    pub fn new_regex(pattern: &str) -> Result<Self> {
        Ok(Pretokenizer::Regex(RegexSplitter::new(pattern)?))
    }

    /// Compile a pattern written for Oniguruma (HF `tokenizers`' regex engine) on the
    /// general regex path.
    pub fn new_oniguruma(pattern: &str) -> Result<Self> {
        Ok(Pretokenizer::Regex(RegexSplitter::with_syntax(
            pattern, true,
        )?))
    }

    /// The pattern this pre-tokenizer implements.
    pub fn pattern(&self) -> &str {
        match self {
            Pretokenizer::Regex(r) => r.pattern(),
            Pretokenizer::Lexer(l) => match l.kind() {
                LexerKind::R50k => patterns::R50K,
                LexerKind::Cl100k => patterns::CL100K,
                LexerKind::O200k => patterns::O200K,
            },
        }
    }

    /// The hand-written lexer, if this pre-tokenizer uses one.
    pub fn lexer(&self) -> Option<&Lexer> {
        match self {
            Pretokenizer::Lexer(l) => Some(l),
            Pretokenizer::Regex(_) => None,
        }
    }

    /// Call `f(start, end)` for every piece of `text`, in order. Pieces are byte ranges;
    /// text between matches (if the pattern does not cover everything) is skipped, exactly
    /// like `find_iter`.
    #[inline]
    pub fn for_each_piece<F>(&self, text: &str, f: F) -> Result<()>
    where
        F: FnMut(usize, usize) -> Result<()>,
    {
        match self {
            Pretokenizer::Lexer(l) => l.for_each_piece(text, f),
            Pretokenizer::Regex(r) => r.for_each_piece(text, f),
        }
    }

    /// Convenience: all pieces as byte ranges.
    pub fn split(&self, text: &str) -> Result<Vec<(usize, usize)>> {
        let mut v = Vec::new();
        self.for_each_piece(text, |a, b| {
            v.push((a, b));
            Ok(())
        })?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests;
