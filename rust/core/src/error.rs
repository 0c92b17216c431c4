//! Error type shared by the whole core. Every fallible public function returns
//! [`Result<T>`]; nothing in this crate panics on user-controlled data.

use std::fmt;

/// Errors raised by the core. The Python bindings map each variant to a Python
/// exception type (see `rust/python`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A vocabulary / tokenizer file could not be parsed. `source` names the file (or
    /// "<bytes>"), `line` is 1-based (0 when not applicable).
    Parse {
        source: String,
        line: usize,
        message: String,
    },
    /// The vocabulary is inconsistent (duplicate ranks, missing bytes, ...).
    InvalidVocab(String),
    /// A token id that does not exist in the vocabulary.
    UnknownToken(u32),
    /// A byte string that is not a token (for `encode_single_token`).
    UnknownTokenBytes(Vec<u8>),
    /// Text contained a special token that the caller disallowed.
    DisallowedSpecial(String),
    /// The split pattern could not be compiled.
    InvalidPattern { pattern: String, message: String },
    /// The regex engine failed at run time (e.g. backtrack limit exceeded).
    RegexRuntime(String),
    /// A byte that has no single-byte token appeared in a piece that could not be merged away.
    UnencodableBytes(Vec<u8>),
    /// Invalid argument value.
    InvalidArgument(String),
    /// I/O error with the path that caused it.
    Io { path: String, message: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Parse {
                source,
                line,
                message,
            } => {
                if *line > 0 {
                    write!(f, "{source}: line {line}: {message}")
                } else {
                    write!(f, "{source}: {message}")
                }
            }
            Error::InvalidVocab(m) => write!(f, "invalid vocabulary: {m}"),
            Error::UnknownToken(t) => write!(f, "Invalid token for decoding: {t}"),
            Error::UnknownTokenBytes(b) => write!(f, "{}", crate::util::bytes_repr(b)),
            Error::DisallowedSpecial(tok) => write!(
                f,
                "Encountered text corresponding to disallowed special token {tok:?}."
            ),
            Error::InvalidPattern { pattern, message } => {
                write!(f, "invalid split pattern {pattern:?}: {message}")
            }
            Error::RegexRuntime(m) => write!(f, "Regex error while tokenizing: {m}"),
            Error::UnencodableBytes(b) => write!(
                f,
                "cannot encode {}: a byte of it has no single-byte token in this vocabulary",
                crate::util::bytes_repr(b)
            ),
            Error::InvalidArgument(m) => write!(f, "{m}"),
            Error::Io { path, message } => write!(f, "{path}: {message}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
