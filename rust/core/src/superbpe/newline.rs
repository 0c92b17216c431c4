//! Newline sharding: when cutting a piece after a newline cannot change its encoding.
//!
//! A *newline cut* of a byte string is a position `p` with `s[p - 1] == b'\n'` and a
//! non-whitespace character starting at `p`. If no token of the vocabulary contains a
//! newline immediately followed by (the first byte of) a non-whitespace character, no token
//! can span a newline cut, so no merge ever joins bytes from both sides of it. BPE's
//! rank-ordered merging on two disjoint spans whose pairs never interact gives the same
//! tokens as merging each span alone, so the encoding of a piece is the concatenation of
//! the encodings of its newline-cut parts: the parts can be encoded independently (in
//! parallel, or cached line by line).
//!
//! SuperBPE tokenizers trained line by line have this property (a newline is always the
//! last byte of a training chunk); stage-2 pieces are whole paragraphs, so this is what makes
//! their encoding parallel. The property is a statement about the vocabulary alone and is
//! checked in O(total token bytes) when a tokenizer is loaded.

/// Whether `c` counts as whitespace for newline cuts (Unicode `White_Space`).
#[inline]
fn is_ws(c: char) -> bool {
    c.is_whitespace()
}

/// Whether the bytes `rest` (what follows a `\n` inside a token) could start a
/// non-whitespace character. A token that ends in the middle of a character is treated as
/// if it could (conservative).
fn starts_non_ws(rest: &[u8]) -> bool {
    let Some(&lead) = rest.first() else {
        return false;
    };
    let n = crate::util::utf8_len(lead);
    if n == 0 {
        // a continuation or invalid byte cannot start a character of valid text, so the
        // token cannot match across a cut whose right side starts a character there
        return false;
    }
    if rest.len() < n {
        return true;
    }
    match std::str::from_utf8(&rest[..n]) {
        Ok(s) => s.chars().next().is_some_and(|c| !is_ws(c)),
        Err(_) => false,
    }
}

/// Whether the token bytes contain a newline followed by the start of a non-whitespace
/// character (which would let the token span a newline cut).
pub fn token_spans_cut(token: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', token).any(|i| starts_non_ws(&token[i + 1..]))
}

/// Whether no token spans a newline cut (see the module documentation).
pub fn vocab_allows_newline_cuts<'a, I>(tokens: I) -> bool
where
    I: IntoIterator<Item = &'a [u8]>,
{
    tokens.into_iter().all(|t| !token_spans_cut(t))
}

/// Call `f(start, end)` for the parts of `piece` between its newline cuts, in order.
/// Pieces shorter than `min_part` bytes are passed whole; parts are merged until they reach
/// `min_part` bytes (fewer, larger parts when the caller only wants parallel work).
pub fn for_each_part<F: FnMut(usize, usize)>(piece: &[u8], min_part: usize, mut f: F) {
    let n = piece.len();
    if n <= min_part.max(1) {
        if n > 0 {
            f(0, n);
        }
        return;
    }
    let mut start = 0usize;
    for nl in memchr::memchr_iter(b'\n', piece) {
        let p = nl + 1;
        if p >= n || p - start < min_part {
            continue;
        }
        if starts_non_ws_text(&piece[p..]) {
            f(start, p);
            start = p;
        }
    }
    if start < n {
        f(start, n);
    }
}

/// Like [`starts_non_ws`] for text (the bytes come from valid UTF-8, possibly byte-level
/// mapped pieces of it): an incomplete character is not a cut.
#[inline]
fn starts_non_ws_text(rest: &[u8]) -> bool {
    let Some(&lead) = rest.first() else {
        return false;
    };
    if lead < 0x80 {
        return !(lead as char).is_whitespace();
    }
    let n = crate::util::utf8_len(lead);
    if n == 0 || rest.len() < n {
        return false;
    }
    match std::str::from_utf8(&rest[..n]) {
        Ok(s) => s.chars().next().is_some_and(|c| !is_ws(c)),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property() {
        assert!(!token_spans_cut(b"abc\n"));
        assert!(!token_spans_cut(b".\n\n"));
        assert!(!token_spans_cut(b"\n \n\t"));
        assert!(token_spans_cut(b"\nabc"));
        assert!(token_spans_cut(b"x\n/"));
        // a partial character after the newline might be a non-space one
        assert!(token_spans_cut(b"\n\xe3"));
        // U+3000 IDEOGRAPHIC SPACE is whitespace; U+3042 is not
        assert!(!token_spans_cut("\n\u{3000}".as_bytes()));
        assert!(token_spans_cut("\n\u{3042}".as_bytes()));
        assert!(vocab_allows_newline_cuts([&b"a\n"[..], b"b"]));
        assert!(!vocab_allows_newline_cuts([&b"a\n"[..], b"\nb"]));
    }

    fn parts(s: &str, min: usize) -> Vec<&str> {
        let mut v = vec![];
        for_each_part(s.as_bytes(), min, |a, b| v.push(&s[a..b]));
        v
    }

    #[test]
    fn cuts() {
        assert_eq!(parts("a\nb\n\nc\n d", 0), ["a\n", "b\n\n", "c\n d"]);
        assert_eq!(parts("a\nb\n\nc\n d", 4), ["a\nb\n\n", "c\n d"]);
        assert_eq!(parts("\n\nx", 0), ["\n\n", "x"]);
        assert_eq!(parts("abc", 0), ["abc"]);
        assert_eq!(parts("", 0), Vec::<&str>::new());
        assert_eq!(parts("a\n\u{3042}", 0), ["a\n", "\u{3042}"]);
        assert_eq!(parts("a\n\u{3000}b", 0), ["a\n\u{3000}b"]);
    }
}
