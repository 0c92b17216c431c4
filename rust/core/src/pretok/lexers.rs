//! Hand-written lexers for the split patterns of r50k/gpt2, cl100k_base and o200k_base.
//!
//! Each lexer computes, for a start position, the end of the match that fancy-regex's
//! backtracking search (leftmost-first alternation, greedy quantifiers, possessive
//! quantifiers as atomic groups) finds for the pattern at that position. The derivations
//! are spelled out next to each function; the lexers are differentially tested against
//! the fancy-regex path (proptest here, hypothesis and the corpora in Python).
//!
//! Notation: `L` = `\p{L}`, `N` = `\p{N}`, `S` = `\s`, `Q` = `[^\s\p{L}\p{N}]`,
//! `P` = `[^\r\n\p{L}\p{N}]`. Every character is in exactly one of `L`, `N`, `S`, `Q`, and
//! every pattern matches at every position, so the pieces tile the text.
//!
//! A match starting at `i` depends only on `text[i..]` (no look-behind), which is what
//! makes [`Lexer::for_each_piece_in`] and parallel encoding at safe boundaries exact.
//!
//! Runs of ASCII letters (the word fast paths) and of spaces are scanned eight bytes at
//! a time (`ascii_run_end`, SWAR on one `u64`): the end of a word then costs one
//! well-predicted branch instead of a mispredicted per-byte loop exit. Pure-Rust
//! interleaved A/B on the whole-corpus stream (`examples/stream_profile.rs`, 5 rounds,
//! medians, load ~3): lexing o200k en.txt 2.12 → 1.65 ns/B, code.txt 2.41 → 2.05;
//! cl100k en 2.00 → 1.33, code 2.29 → 1.70; the whole stream o200k en +7 %, code +3 %,
//! cl100k en +15 %, code +11 %.
//!
//! o200k's non-word ASCII pieces (punctuation runs, digits, whitespace runs, capitals-only
//! words: 29 % of en.txt's pieces, 45 % of code.txt's) skip the general path when the byte
//! after their first is ASCII (`o200k_ascii_word`, `o200k_ascii_other`): lexing o200k en
//! 1.65 → 1.52 ns/B, code 2.06 → 1.87 (same harness, load 3-4). Within those fast paths
//! an o200k word's capitals and lower-case letters are counted from one 8-byte word, so
//! that random short words (base64) do not mispredict a branch per run: lexing o200k
//! base64 4.1 → 3.2 ns/B.

use super::unicode::{tables, Tables, L, N, U, W, WS};

/// Bytes `0x80` in every lane.
const HIGH: u64 = 0x8080_8080_8080_8080;
/// Bytes `0x01` in every lane.
const ONES: u64 = 0x0101_0101_0101_0101;

/// High bit of every byte of the little-endian word `x` that is *not* an ASCII byte in
/// `LO..=HI` (with `FOLD`, in `LO..=HI` once `0x20` is or-ed in: `a..=z` then also
/// accepts `A..=Z`, and no other byte, since `x | 0x20` only lands in `a..=z` from a
/// letter). Per lane: `low` is the byte without its high bit (at most `0x7f`), and the
/// additions below stay under `0x100`, so no carry crosses lanes.
#[inline(always)]
fn outside_mask<const LO: u8, const HI: u8, const FOLD: bool>(x: u64) -> u64 {
    let y = if FOLD { x | (ONES * 0x20) } else { x };
    let low = y & !HIGH;
    let ge_lo = low + ONES * (0x80 - LO as u64);
    let gt_hi = low + ONES * (0x7f - HI as u64);
    let inside = ge_lo & !gt_hi & !x & HIGH;
    !inside & HIGH
}

/// End of the run of ASCII bytes in `LO..=HI` (see [`outside_mask`] for `FOLD`) that
/// starts at `j`: eight bytes at a time, so that the end of a word costs one predictable
/// branch instead of a mispredicted per-byte loop exit.
#[inline(always)]
fn ascii_run_end<const LO: u8, const HI: u8, const FOLD: bool>(b: &[u8], mut j: usize) -> usize {
    // empty runs (no capital, a non-ASCII letter) are the common case of some callers
    match b.get(j) {
        Some(&c) if outside_mask::<LO, HI, FOLD>(c as u64) & 0x80 == 0 => {}
        _ => return j,
    }
    while let Some(w) = b.get(j..j + 8) {
        let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        let m = outside_mask::<LO, HI, FOLD>(x);
        if m != 0 {
            return j + (m.trailing_zeros() / 8) as usize;
        }
        j += 8;
    }
    while j < b.len() && outside_mask::<LO, HI, FOLD>(b[j] as u64) & 0x80 == 0 {
        j += 1;
    }
    j
}

/// End of the run of ASCII lowercase letters from `j`.
#[inline(always)]
fn lower_run_end(b: &[u8], j: usize) -> usize {
    ascii_run_end::<b'a', b'z', false>(b, j)
}

/// End of the run of ASCII uppercase letters from `j`.
#[inline(always)]
fn upper_run_end(b: &[u8], j: usize) -> usize {
    ascii_run_end::<b'A', b'Z', false>(b, j)
}

/// End of the run of ASCII letters from `j`.
#[inline(always)]
fn alpha_run_end(b: &[u8], j: usize) -> usize {
    ascii_run_end::<b'a', b'z', true>(b, j)
}

/// Which pattern a lexer implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LexerKind {
    /// `'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s`
    R50k,
    /// cl100k_base's pattern.
    Cl100k,
    /// o200k_base's pattern.
    O200k,
}

/// A hand-written lexer for one of the known patterns.
#[derive(Clone, Copy)]
pub struct Lexer {
    kind: LexerKind,
    t: &'static Tables,
}

impl std::fmt::Debug for Lexer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lexer").field("kind", &self.kind).finish()
    }
}

/// Decode the non-ASCII character starting at `b[i]` (the input is valid UTF-8).
#[inline(always)]
fn decode(b: &[u8], i: usize) -> (u32, usize) {
    let c = b[i] as u32;
    if c < 0xe0 {
        (((c & 0x1f) << 6) | (b[i + 1] as u32 & 0x3f), 2)
    } else if c < 0xf0 {
        (
            ((c & 0x0f) << 12) | ((b[i + 1] as u32 & 0x3f) << 6) | (b[i + 2] as u32 & 0x3f),
            3,
        )
    } else {
        (
            ((c & 0x07) << 18)
                | ((b[i + 1] as u32 & 0x3f) << 12)
                | ((b[i + 2] as u32 & 0x3f) << 6)
                | (b[i + 3] as u32 & 0x3f),
            4,
        )
    }
}

const NOT_Q: u8 = L | N | WS;

impl Lexer {
    /// A lexer for `kind` (builds the shared Unicode tables on first use).
    pub fn new(kind: LexerKind) -> Self {
        Lexer { kind, t: tables() }
    }

    /// The pattern this lexer implements.
    pub fn kind(&self) -> LexerKind {
        self.kind
    }

    /// Flags and length of the character at `i < b.len()`.
    #[inline(always)]
    fn class_at(&self, b: &[u8], i: usize) -> (u8, usize) {
        let c = b[i];
        if c < 0x80 {
            (self.t.ascii[c as usize], 1)
        } else {
            let (cp, l) = decode(b, i);
            (self.t.flags(cp), l)
        }
    }

    /// End of the run of characters whose flags intersect `mask`, from `i`.
    #[inline(always)]
    fn run_any(&self, b: &[u8], mut i: usize, mask: u8) -> usize {
        let n = b.len();
        if mask == L {
            // the ASCII letters are exactly the ASCII characters in L
            i = alpha_run_end(b, i);
        }
        while i < n {
            let c = b[i];
            if c < 0x80 {
                if self.t.ascii[c as usize] & mask == 0 {
                    break;
                }
                i += 1;
            } else {
                let (cp, l) = decode(b, i);
                if self.t.flags(cp) & mask == 0 {
                    break;
                }
                i += l;
            }
        }
        i
    }

    /// End of the run of `Q` characters from `i`.
    #[inline(always)]
    fn run_q(&self, b: &[u8], mut i: usize) -> usize {
        let n = b.len();
        while i < n {
            let c = b[i];
            if c < 0x80 {
                if self.t.ascii[c as usize] & NOT_Q != 0 {
                    break;
                }
                i += 1;
            } else {
                let (cp, l) = decode(b, i);
                if self.t.flags(cp) & NOT_Q != 0 {
                    break;
                }
                i += l;
            }
        }
        i
    }

    /// Up to three `N` characters from `i` (`\p{N}{1,3}`); `i` starts one.
    #[inline(always)]
    fn digits3(&self, b: &[u8], i: usize) -> usize {
        let mut e = i;
        for _ in 0..3 {
            if e < b.len() {
                let (f, l) = self.class_at(b, e);
                if f & N != 0 {
                    e += l;
                    continue;
                }
            }
            break;
        }
        e
    }

    /// Scan the whitespace run starting at `i` (which is whitespace): returns its end, the
    /// start of its last character and the end of its last `\r`/`\n` (0 if none).
    #[inline(always)]
    fn ws_run(&self, b: &[u8], mut i: usize) -> (usize, usize, usize) {
        let n = b.len();
        let mut last = i;
        let mut nl_end = 0;
        while i < n {
            let c = b[i];
            if c == b' ' {
                // runs of spaces (indentation) eight bytes at a time
                let e = ascii_run_end::<b' ', b' ', false>(b, i);
                last = e - 1;
                i = e;
            } else if c < 0x80 {
                if self.t.ascii[c as usize] & WS == 0 {
                    break;
                }
                last = i;
                i += 1;
                if c == b'\n' || c == b'\r' {
                    nl_end = i;
                }
            } else {
                let (cp, l) = decode(b, i);
                if self.t.flags(cp) & WS == 0 {
                    break;
                }
                last = i;
                i += l;
            }
        }
        (i, last, nl_end)
    }

    /// Length of the character at `i` if it case-insensitively matches contraction letter
    /// `k` (see [`super::unicode::FOLD_LETTERS`]), else 0.
    #[inline(always)]
    fn fold_at(&self, b: &[u8], i: usize, k: usize) -> usize {
        if i >= b.len() {
            return 0;
        }
        let c = b[i];
        if c < 0x80 {
            let folded = (c | 0x20) as char;
            if c.is_ascii_alphabetic() && folded == super::unicode::FOLD_LETTERS[k] {
                return 1;
            }
            // (?i) of an ASCII letter never matches a different ASCII character.
            return 0;
        }
        let (cp, l) = decode(b, i);
        match char::from_u32(cp) {
            Some(ch) if self.t.folds_to(k, ch) => l,
            _ => 0,
        }
    }

    /// cl100k/o200k contraction after an apostrophe at `i - 1`... at `i` is the first
    /// letter: `(?i:[sdmt]|ll|ve|re)` (cl100k) — returns the end or `None`.
    #[inline]
    fn contraction_cl100k(&self, b: &[u8], i: usize) -> Option<usize> {
        // [sdmt]
        for k in 0..4 {
            let l = self.fold_at(b, i, k);
            if l > 0 {
                return Some(i + l);
            }
        }
        // ll | ve | re
        for (k1, k2) in [(4, 4), (5, 7), (6, 7)] {
            let l1 = self.fold_at(b, i, k1);
            if l1 > 0 {
                let l2 = self.fold_at(b, i + l1, k2);
                if l2 > 0 {
                    return Some(i + l1 + l2);
                }
                return None;
            }
        }
        None
    }

    /// o200k's optional suffix `(?i:'s|'t|'re|'ve|'m|'ll|'d)?` at `e`: the new end.
    #[inline(always)]
    fn o200k_suffix(&self, b: &[u8], e: usize) -> usize {
        if e < b.len() && b[e] == b'\'' {
            // 's | 't | 'm | 'd are single letters (in FOLD_LETTERS: s=0, d=1, m=2, t=3)
            let i = e + 1;
            for k in 0..4 {
                let l = self.fold_at(b, i, k);
                if l > 0 {
                    return i + l;
                }
            }
            for (k1, k2) in [(6, 7), (5, 7), (4, 4)] {
                let l1 = self.fold_at(b, i, k1);
                if l1 > 0 {
                    let l2 = self.fold_at(b, i + l1, k2);
                    if l2 > 0 {
                        return i + l1 + l2;
                    }
                    return e;
                }
            }
        }
        e
    }

    /// o200k alternative 1 after the optional prefix: `U* W+` from `s < b.len()`, whose
    /// character has class `f` and length `l`.
    ///
    /// Backtracking: `U*` takes the maximal run `[s, m)`; if the character at `m` is in
    /// `W`, `W+` takes the `W` run from `m`. Otherwise `U*` gives characters back one by
    /// one: the first (i.e. last-positioned) `j` in `[s, m)` whose character is in `W`
    /// lets `W+` match exactly that character (every later character of the run is not
    /// in `W`, nor is the one at `m`). No such `j`: the alternative fails. The scan of
    /// the `U` run remembers the end of its last `W` character, so every character is
    /// decoded once (runs of `Lo` letters such as CJK are in both `U` and `W`, and end
    /// this way).
    #[inline(always)]
    fn o200k_a1(&self, b: &[u8], s: usize, mut f: u8, mut l: usize) -> Option<usize> {
        let n = b.len();
        let mut m = s;
        let mut last_w = None;
        loop {
            if f & U == 0 {
                if f & W != 0 {
                    return Some(self.run_any(b, m + l, W));
                }
                return last_w;
            }
            m += l;
            if f & W != 0 {
                last_w = Some(m);
            }
            if m >= n {
                return last_w;
            }
            (f, l) = self.class_at(b, m);
        }
    }

    /// o200k alternative 2 after the optional prefix: `U+ W*` from `s` (never needs to
    /// backtrack since `W*` may be empty).
    #[inline(always)]
    fn o200k_a2(&self, b: &[u8], s: usize) -> Option<usize> {
        if s >= b.len() {
            return None;
        }
        let m = self.run_any(b, s, U);
        if m == s {
            return None;
        }
        Some(self.run_any(b, m, W))
    }

    /// End of the piece starting at `i < b.len()`.
    #[inline(always)]
    pub fn next_end(&self, b: &[u8], i: usize) -> usize {
        match self.kind {
            LexerKind::R50k => self.next_r50k(b, i),
            LexerKind::Cl100k => self.next_cl100k(b, i),
            LexerKind::O200k => self.next_o200k(b, i),
        }
    }

    /// `'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s`
    #[inline(always)]
    fn next_r50k(&self, b: &[u8], i: usize) -> usize {
        let n = b.len();
        let c0 = b[i];
        if c0 == b'\'' && i + 1 < n {
            match b[i + 1] {
                b's' | b'd' | b'm' | b't' => return i + 2,
                b'l' if b.get(i + 2) == Some(&b'l') => return i + 3,
                b'v' | b'r' if b.get(i + 2) == Some(&b'e') => return i + 3,
                _ => {}
            }
        }
        let (f0, l0) = self.class_at(b, i);
        // ` ?X++`: with the optional space when the next character is not whitespace.
        let (s, f) = if c0 == b' ' && i + 1 < n {
            let (f1, _) = self.class_at(b, i + 1);
            if f1 & WS == 0 {
                (i + 1, f1)
            } else {
                (i, f0)
            }
        } else {
            (i, f0)
        };
        if f & L != 0 {
            return self.run_any(b, s, L);
        }
        if f & N != 0 {
            return self.run_any(b, s, N);
        }
        if f & WS == 0 {
            return self.run_q(b, s);
        }
        // whitespace at i: \s++$ | \s+(?!\S) | \s
        let (e, last, _) = self.ws_run(b, i);
        if e == n {
            n
        } else if last > i {
            last
        } else {
            i + l0
        }
    }

    /// Fast path of cl100k's `[^\r\n\p{L}\p{N}]?+\p{L}++` for ASCII words: an optional
    /// ASCII prefix in `P` other than `'` (which may start a contraction, the first
    /// alternative), then ASCII letters up to an ASCII non-letter or the end of the text.
    /// `None` (general path) if there is no letter or a non-ASCII byte could continue
    /// the run. Exactness: the contraction alternative needs a leading `'`; the prefix is
    /// possessive and `\p{L}++` takes the maximal run, which ends at an ASCII non-letter.
    #[inline(always)]
    fn cl100k_ascii_word(b: &[u8], i: usize) -> Option<usize> {
        let n = b.len();
        let c0 = b[i];
        let mut j = i;
        if !c0.is_ascii_alphabetic() {
            if c0 >= 0x80 || c0.is_ascii_digit() || matches!(c0, b'\r' | b'\n' | b'\'') {
                return None;
            }
            j += 1;
        }
        let m = j;
        j = alpha_run_end(b, j);
        if j == m || (j < n && b[j] >= 0x80) {
            return None;
        }
        Some(j)
    }

    /// `'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|
    ///  ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s`
    #[inline(always)]
    fn next_cl100k(&self, b: &[u8], i: usize) -> usize {
        if let Some(e) = Self::cl100k_ascii_word(b, i) {
            return e;
        }
        let n = b.len();
        let c0 = b[i];
        if c0 == b'\'' {
            if let Some(e) = self.contraction_cl100k(b, i + 1) {
                return e;
            }
        }
        let (f0, l0) = self.class_at(b, i);
        if f0 & L != 0 {
            return self.run_any(b, i + l0, L);
        }
        if f0 & N != 0 {
            return self.digits3(b, i);
        }
        // c0 is in S or Q. `[^\r\n\p{L}\p{N}]?+\p{L}++` with the prefix: c0 is in P unless
        // it is \r or \n; the prefix is possessive, but without it c0 would have to be a
        // letter, so only "prefix + letters" can match.
        let j = i + l0;
        let (f1, l1) = if j < n { self.class_at(b, j) } else { (0, 0) };
        if c0 != b'\r' && c0 != b'\n' && f1 & L != 0 {
            return self.run_any(b, j + l1, L);
        }
        // ` ?[^\s\p{L}\p{N}]++[\r\n]*+`
        let q = if f0 & WS == 0 {
            Some(i)
        } else if c0 == b' ' && j < n && f1 & NOT_Q == 0 {
            Some(j)
        } else {
            None
        };
        if let Some(q) = q {
            let mut e = self.run_q(b, q);
            while e < n && (b[e] == b'\r' || b[e] == b'\n') {
                e += 1;
            }
            return e;
        }
        // whitespace: \s++$ | \s*[\r\n] | \s+(?!\S) | \s
        let (e, last, nl_end) = self.ws_run(b, i);
        if e == n {
            n
        } else if nl_end != 0 {
            nl_end
        } else if last > i {
            last
        } else {
            j
        }
    }

    /// Fast path of o200k's first alternative `P?U*W+` for ASCII words: an optional
    /// ASCII prefix in `P` (not a letter, digit, `\r` or `\n`), ASCII capitals, then at
    /// least one ASCII lower-case letter, ended by an ASCII byte that is not a lower-case
    /// letter (or by the end of the text). Returns the end of `P?U*W+` (before the
    /// optional contraction suffix), or `None` whenever the general path is needed: a
    /// non-ASCII byte could continue a run (`U` and `W` include non-ASCII letters and
    /// marks), and capitals without a lower-case letter need the backtracking of `U*`.
    ///
    /// Exactness: with the prefix consumed, `U*` takes the maximal run of capitals (ASCII
    /// lower-case letters are not in `U`), and `W+` the maximal run of lower-case letters
    /// after it (capitals and other ASCII characters are not in `W`); this first attempt
    /// of the backtracking search succeeds, so it is the match. Without a prefix, a
    /// leading letter is what the general path's prefix-less `A1` attempt starts with.
    #[inline(always)]
    fn o200k_ascii_word(b: &[u8], i: usize) -> Option<usize> {
        let n = b.len();
        let c0 = b[i];
        let mut j = i;
        if !c0.is_ascii_alphabetic() {
            // ASCII prefix in P: not a letter or digit, not \r or \n (non-ASCII: general)
            if c0 >= 0x80 || c0.is_ascii_digit() || c0 == b'\r' || c0 == b'\n' {
                return None;
            }
            j += 1;
        }
        if let Some(w) = b.get(j..j + 8) {
            // Both runs from one word, without a branch on either's length: `nu` is
            // the bit index of the high bit of the first lane that is not a capital
            // (64 if all are), so `below` covers the capitals' lanes (and the low bits
            // of the next), and `k` is the first lane neither among them nor a
            // lower-case letter: the end of `U* W+` (or of `U+` when `W*` is empty).
            // A run reaching the word's end (`k == 8`) takes the loops below.
            let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            let up = !outside_mask::<b'A', b'Z', false>(x) & HIGH;
            let lo = !outside_mask::<b'a', b'z', false>(x) & HIGH;
            let nu = (!up & HIGH).trailing_zeros();
            let below = ((1u128 << nu) - 1) as u64;
            let k = (!((lo | below) & HIGH) & HIGH).trailing_zeros() / 8;
            if k < 8 {
                let e = j + k as usize;
                if e == j || b[e] >= 0x80 {
                    return None;
                }
                return Some(e);
            }
        }
        let u = j;
        j = upper_run_end(b, j);
        let m = j;
        j = lower_run_end(b, j);
        // capitals only (`m > u`, `j == m`): `A1` fails (no `W` after the capitals nor
        // among them), `A2` = `P?U+W*` takes the prefix and the capitals, `W*` empty.
        if (j == m && m == u) || (j < n && b[j] >= 0x80) {
            return None;
        }
        Some(j)
    }

    /// Fast path of o200k for pieces that start with an ASCII byte other than a letter
    /// and are not words (`o200k_ascii_word` returned `None`): digits, and punctuation or
    /// whitespace followed by an ASCII byte other than a letter (or by the end of the
    /// text). `None` sends the general path.
    ///
    /// Exactness, by `c0 = b[i]`:
    /// * a digit (not in `P`, `U` or `W`, so `A1` and `A2` fail whatever follows):
    ///   `\p{N}{1,3}` — ASCII digits up to three; a non-ASCII byte after fewer than
    ///   three could be another `N` (`None`).
    ///
    /// Otherwise `c1 = b[i + 1]` must be ASCII and not a letter (or absent), so neither
    /// `A1` nor `A2` can match (they need `c0` or the character after the prefix in `U`
    /// or `W`; no ASCII character other than a letter is in `\p{L}` or `\p{M}`).
    /// * `Q` (ASCII, not `\s`, not a letter or digit): ` ?Q+[\r\n/]*` from `i`.
    /// * a space and `c1` in `Q`: the same from `i + 1` (the optional space).
    /// * other whitespace (or a space before whitespace, a digit or the end): the
    ///   alternatives before `\s*[\r\n]+` fail (` ?Q+` needs a space then `Q`), so the
    ///   whitespace tail of [`Self::next_o200k`] decides.
    #[inline(always)]
    fn o200k_ascii_other(&self, b: &[u8], i: usize) -> Option<usize> {
        let n = b.len();
        let c0 = b[i];
        if c0 >= 0x80 {
            return None;
        }
        let f0 = self.t.ascii[c0 as usize];
        if f0 & N != 0 {
            let mut e = i + 1;
            while e < n && e < i + 3 && b[e].is_ascii_digit() {
                e += 1;
            }
            if e < n && e < i + 3 && b[e] >= 0x80 {
                return None;
            }
            return Some(e);
        }
        let c1 = if i + 1 < n { b[i + 1] } else { b' ' };
        if c1 >= 0x80 || c1.is_ascii_alphabetic() {
            return None;
        }
        let q = if f0 & NOT_Q == 0 {
            i
        } else if f0 & WS == 0 {
            // a letter before a non-ASCII byte (the word path declined)
            return None;
        } else if c0 == b' ' && i + 1 < n && self.t.ascii[c1 as usize] & NOT_Q == 0 {
            i + 1
        } else {
            return Some(self.o200k_ws(b, i));
        };
        let mut e = q + 1;
        while e < n && b[e] < 0x80 && self.t.ascii[b[e] as usize] & NOT_Q == 0 {
            e += 1;
        }
        if e < n && b[e] >= 0x80 {
            e = self.run_q(b, e);
        }
        while e < n && matches!(b[e], b'\r' | b'\n' | b'/') {
            e += 1;
        }
        Some(e)
    }

    /// o200k's whitespace alternatives `\s*[\r\n]+|\s+(?!\S)|\s+` at `i` (which is
    /// whitespace), once every earlier alternative failed.
    #[inline(always)]
    fn o200k_ws(&self, b: &[u8], i: usize) -> usize {
        let (e, last, nl_end) = self.ws_run(b, i);
        if nl_end != 0 {
            nl_end
        } else if e == b.len() || last == i {
            e
        } else {
            last
        }
    }

    /// o200k_base: `P?U*W+S?|P?U+W*S?|\p{N}{1,3}| ?Q+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    /// with `U`/`W` the upper/lower classes and `S` the contraction suffix.
    #[inline(always)]
    fn next_o200k(&self, b: &[u8], i: usize) -> usize {
        if let Some(e) = Self::o200k_ascii_word(b, i) {
            return self.o200k_suffix(b, e);
        }
        if let Some(e) = self.o200k_ascii_other(b, i) {
            return e;
        }
        let n = b.len();
        let c0 = b[i];
        let (f0, l0) = self.class_at(b, i);
        let letter_like = f0 & (U | W) != 0; // \p{L} or \p{M}
        let in_p = f0 & (L | N) == 0 && c0 != b'\r' && c0 != b'\n';
        if f0 & L != 0 {
            // not in P: only the prefix-less branches apply, and one of them always
            // matches a letter (Ll starts W+, the others start U+).
            let e = match self.o200k_a1(b, i, f0, l0) {
                Some(e) => e,
                None => self.o200k_a2(b, i).unwrap_or(i + l0),
            };
            return self.o200k_suffix(b, e);
        }
        // Both alternatives need a character of U or W right after the optional prefix
        // (U* W+ with an empty U* needs W; U+ needs U): skip them when neither c0 (a mark)
        // nor the character after it is one.
        let s1 = i + l0;
        let (f1, l1) = if in_p && s1 < n {
            self.class_at(b, s1)
        } else {
            (0, 0)
        };
        if in_p && (letter_like || f1 & (U | W) != 0) {
            // Order of attempts: A1 with prefix, A1 without, A2 with, A2 without. The
            // prefix-less attempts need c0 itself in U or W, i.e. a mark.
            if s1 < n {
                if let Some(e) = self.o200k_a1(b, s1, f1, l1) {
                    return self.o200k_suffix(b, e);
                }
            }
            if letter_like {
                if let Some(e) = self.o200k_a1(b, i, f0, l0) {
                    return self.o200k_suffix(b, e);
                }
            }
            if let Some(e) = self.o200k_a2(b, s1) {
                return self.o200k_suffix(b, e);
            }
            if letter_like {
                if let Some(e) = self.o200k_a2(b, i) {
                    return self.o200k_suffix(b, e);
                }
            }
        }
        if f0 & N != 0 {
            return self.digits3(b, i);
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n/]*`
        let q = if f0 & WS == 0 {
            Some(i)
        } else if c0 == b' ' && i + 1 < n && self.class_at(b, i + 1).0 & NOT_Q == 0 {
            Some(i + 1)
        } else {
            None
        };
        if let Some(q) = q {
            let mut e = self.run_q(b, q);
            while e < n && matches!(b[e], b'\r' | b'\n' | b'/') {
                e += 1;
            }
            return e;
        }
        // whitespace: \s*[\r\n]+ | \s+(?!\S) | \s+
        self.o200k_ws(b, i)
    }

    /// Call `f(start, end)` for every piece of `text`.
    #[inline]
    pub fn for_each_piece<F, E>(&self, text: &str, f: F) -> Result<(), E>
    where
        F: FnMut(usize, usize) -> Result<(), E>,
    {
        self.for_each_piece_in(text, 0, text.len(), f)
    }

    /// Call `f(start, end)` for every piece of `text` that starts in `[from, to)`, where
    /// `from` must be a piece boundary of `text` (0, or a boundary reported by
    /// [`Lexer::is_safe_boundary`]). The last piece may end after `to`.
    #[inline]
    pub fn for_each_piece_in<F, E>(
        &self,
        text: &str,
        from: usize,
        to: usize,
        mut f: F,
    ) -> Result<(), E>
    where
        F: FnMut(usize, usize) -> Result<(), E>,
    {
        let b = text.as_bytes();
        let to = to.min(b.len());
        let mut i = from;
        macro_rules! drive {
            ($next:ident) => {
                while i < to {
                    let e = self.$next(b, i);
                    f(i, e)?;
                    i = e;
                }
            };
        }
        match self.kind {
            LexerKind::R50k => drive!(next_r50k),
            LexerKind::Cl100k => drive!(next_cl100k),
            LexerKind::O200k => drive!(next_o200k),
        }
        Ok(())
    }

    /// Whether every one of the three known patterns provably starts a piece at byte `p`
    /// of `b` (`0 < p < b.len()`), whatever the rest of the text.
    ///
    /// Two rules, both on ASCII bytes only (so `p` is a character boundary):
    /// * `b[p-1]` is an ASCII letter and `b[p]` is ASCII, not a letter, not `'`: the piece
    ///   holding the letter is a letter run (r50k, cl100k), a contraction ending in a
    ///   letter, or o200k's `U*W+`/`U+W*` plus optional `'x` suffix; none of these can
    ///   continue with an ASCII non-letter other than the apostrophe.
    /// * `b[p-1] == b'\n'` and `b[p]` is ASCII, not whitespace and not `/`: the only
    ///   pieces that contain a newline are whitespace runs (which cannot continue with a
    ///   non-whitespace character), cl100k's `Q++[\r\n]*+` (ends in newlines) and o200k's
    ///   `Q+[\r\n/]*` (may continue with `/` only); the prefixes `P` exclude `\n`.
    ///
    /// As the pieces tile the text and a match depends only on the text after its start,
    /// the pieces from `p` on are the same whether the lexing started at 0 or at `p`.
    #[inline]
    pub fn is_safe_boundary(b: &[u8], p: usize) -> bool {
        if p == 0 || p >= b.len() {
            return false;
        }
        let (x, y) = (b[p - 1], b[p]);
        if y >= 0x80 {
            return false;
        }
        if x.is_ascii_alphabetic() {
            return !y.is_ascii_alphabetic() && y != b'\'';
        }
        // ASCII `\s` is \t, \n, \x0b, \x0c, \r and the space.
        x == b'\n' && !matches!(y, 0x09..=0x0d | b' ' | b'/')
    }
}

/// The lexer for `pattern` if it is exactly one of the known patterns.
pub fn for_pattern(pattern: &str) -> Option<Lexer> {
    use super::patterns::{CL100K, O200K, R50K};
    let kind = if pattern == R50K {
        LexerKind::R50k
    } else if pattern == CL100K {
        LexerKind::Cl100k
    } else if pattern == O200K {
        LexerKind::O200k
    } else {
        return None;
    };
    Some(Lexer::new(kind))
}

#[cfg(test)]
mod swar_tests {
    use super::*;

    fn scalar(b: &[u8], mut j: usize, f: impl Fn(u8) -> bool) -> usize {
        while j < b.len() && f(b[j]) {
            j += 1;
        }
        j
    }

    #[test]
    fn ascii_letters_are_the_ascii_characters_in_l() {
        let t = tables();
        for c in 0u8..0x80 {
            assert_eq!(t.ascii[c as usize] & L != 0, c.is_ascii_alphabetic(), "{c}");
        }
    }

    #[test]
    fn ascii_runs_match_the_byte_loops() {
        // every byte value at every lane, and random mixes biased to the range edges
        let edges = [
            b'@', b'A', b'Z', b'[', b'`', b'a', b'z', b'{', 0x7f, 0x80, 0xc1, 0xdb, 0xe1, 0xfa,
            0xff, 0, b' ', b'\'', b'0', b'!', 0xa0, b'\t',
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || crate::testutil::xorshift(&mut seed);
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for v in 0..=255u8 {
            for pos in 0..20 {
                let mut t = b"abcdefghijklmnopqrstuvwx".to_vec();
                t[pos] = v;
                cases.push(t.clone());
                cases.push(t.to_ascii_uppercase());
                let mut u = t.to_ascii_uppercase();
                u[pos] = v;
                cases.push(u);
                let mut w = vec![b' '; 24];
                w[pos] = v;
                cases.push(w);
            }
        }
        for _ in 0..20_000 {
            let n = (rnd() % 30) as usize;
            cases.push(
                (0..n)
                    .map(|_| match rnd() % 4 {
                        0 => edges[(rnd() % edges.len() as u64) as usize],
                        1 => b'a' + (rnd() % 26) as u8,
                        2 => b'A' + (rnd() % 26) as u8,
                        _ => rnd() as u8,
                    })
                    .collect(),
            );
        }
        for t in &cases {
            for j in 0..=t.len() {
                assert_eq!(
                    lower_run_end(t, j),
                    scalar(t, j, |c| c.is_ascii_lowercase())
                );
                assert_eq!(
                    upper_run_end(t, j),
                    scalar(t, j, |c| c.is_ascii_uppercase())
                );
                assert_eq!(
                    alpha_run_end(t, j),
                    scalar(t, j, |c| c.is_ascii_alphabetic())
                );
                assert_eq!(
                    ascii_run_end::<b' ', b' ', false>(t, j),
                    scalar(t, j, |c| c == b' ')
                );
            }
        }
    }
}
