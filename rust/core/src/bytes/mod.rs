//! Exact byte-level probabilities from token language models.
//!
//! A token LM defines a distribution over token strings; decoding turns it into a
//! distribution over byte strings. For a byte prefix `x`, `P(x)` is the sum of `P(τ)` over
//! the *covers* of `x`: canonical token prefixes whose last token starts inside `x` and
//! reaches its end (Phan et al. 2024; the Valid Covering Tree of Hayase et al. 2025). Next
//! byte probabilities group the covers by the byte that follows `x`.
//!
//! Everything except the LM forward pass lives here:
//! * [`index::ByteIndex`] — tokens sorted by bytes: every byte prefix is a contiguous range;
//! * [`canon::Canon`] — BPE pair validity, reachability, valid successors;
//! * [`lookahead::Lookahead`] — which pre-token boundaries of a prefix can still move;
//! * [`source::PieceTokenizer`] — what the machinery needs from a tokenizer, implemented
//!   for [`crate::CoreEncoding`] (tiktoken encodings) and [`source::RegexBpe`] (HF byte-level
//!   BPE and SuperBPE tokenizers assembled from vocab, merges and a split regex);
//! * [`tree::ByteTree`] — the streaming covering tree: push a byte, evaluate the new tree
//!   nodes with the LM (one batched query), read the 257-way next-byte distribution
//!   (256 bytes + end of text).
//!
//! Definitions: heads are exactly the canonical token prefixes (every head that some
//! continuation of the text can produce, and as few others as the tokenizer-side pruning
//! allows); leaves are all tokens with the right byte prefix (the model's own weights decide,
//! so for a model that puts no mass on non-canonical token strings the result is exactly the
//! byte-level marginal; otherwise it includes the model's leaf-level non-canonical mass, as
//! ByteSampler's default does). The distribution is renormalised over the 257 outcomes.

pub mod canon;
pub mod hf;
pub mod index;
pub mod lookahead;
pub mod math;
pub mod source;
pub mod tree;

pub use source::{PieceTokenizer, RegexBpe};
pub use tree::{ByteTokenizer, ByteTree};
