//! Character classes for the hand-written lexers, derived from `regex-syntax`'s Unicode
//! tables — the very tables that fancy-regex (through regex-automata) uses for `\p{L}`,
//! `\s`, ... — so that a lexer and the regex path can never disagree because of a
//! different Unicode version.
//!
//! The classes are packed into one flag byte per code point and stored as a two-level
//! table (256-code-point blocks, deduplicated), built once on first use (~1 ms).

use std::sync::OnceLock;

use regex_syntax::hir::{Class, HirKind};

/// `\p{L}`.
pub const L: u8 = 1;
/// `\p{N}`.
pub const N: u8 = 2;
/// `\s` (Unicode `White_Space`).
pub const WS: u8 = 4;
/// o200k's "upper" class `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`.
pub const U: u8 = 8;
/// o200k's "lower" class `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`.
pub const W: u8 = 16;
/// `\p{M}`.
pub const M: u8 = 32;

/// The letters of the contraction suffixes (`'s`, `'ll`, ...), in [`Tables::folds`] order.
pub const FOLD_LETTERS: [char; 8] = ['s', 'd', 'm', 't', 'l', 'v', 'r', 'e'];

/// Packed class tables.
pub struct Tables {
    /// Flags of the ASCII characters.
    pub ascii: [u8; 128],
    stage1: Box<[u16]>,
    stage2: Box<[u8]>,
    /// For each letter of [`FOLD_LETTERS`], every character that `(?i)letter` matches.
    pub folds: [Vec<char>; 8],
}

impl Tables {
    /// Flags of code point `cp`.
    #[inline(always)]
    pub fn flags(&self, cp: u32) -> u8 {
        let cp = cp as usize;
        let block = self.stage1[(cp >> 8) & 0x1fff] as usize;
        self.stage2[(block << 8) | (cp & 0xff)]
    }

    /// Whether `c` matches the case-insensitive contraction letter `FOLD_LETTERS[k]`.
    #[inline]
    pub fn folds_to(&self, k: usize, c: char) -> bool {
        self.folds[k].contains(&c)
    }
}

fn class_of(pattern: &str) -> Vec<(u32, u32)> {
    // The patterns are constant and known to be valid single classes; a failure here is a
    // programming error caught by the unit tests, never user input.
    let hir = regex_syntax::parse(pattern).expect("constant class pattern");
    match hir.kind() {
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .map(|r| (r.start() as u32, r.end() as u32))
            .collect(),
        HirKind::Literal(lit) => {
            let s = std::str::from_utf8(&lit.0).expect("literal is UTF-8");
            s.chars().map(|c| (c as u32, c as u32)).collect()
        }
        k => panic!("unexpected HIR for {pattern}: {k:?}"),
    }
}

fn build() -> Tables {
    const MAXCP: usize = 0x110000;
    let mut flat = vec![0u8; MAXCP];
    let classes: [(&str, u8); 6] = [
        (r"\p{L}", L),
        (r"\p{N}", N),
        (r"\s", WS),
        (r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", U),
        (r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]", W),
        (r"\p{M}", M),
    ];
    for (pat, bit) in classes {
        for (a, b) in class_of(pat) {
            for f in &mut flat[a as usize..=b as usize] {
                *f |= bit;
            }
        }
    }
    let mut ascii = [0u8; 128];
    ascii.copy_from_slice(&flat[..128]);
    let mut stage1 = vec![0u16; MAXCP >> 8];
    let mut stage2: Vec<u8> = Vec::new();
    let mut seen: std::collections::HashMap<&[u8], u16> = std::collections::HashMap::new();
    for (blk, chunk) in flat.chunks_exact(256).enumerate() {
        let next = seen.len() as u16;
        let id = *seen.entry(chunk).or_insert_with(|| {
            stage2.extend_from_slice(chunk);
            next
        });
        stage1[blk] = id;
    }
    let folds = FOLD_LETTERS.map(|c| {
        let mut v: Vec<char> = class_of(&format!("(?i){c}"))
            .into_iter()
            .flat_map(|(a, b)| (a..=b).filter_map(char::from_u32))
            .collect();
        v.sort_unstable();
        v
    });
    Tables {
        ascii,
        stage1: stage1.into_boxed_slice(),
        stage2: stage2.into_boxed_slice(),
        folds,
    }
}

/// The process-wide tables.
#[inline]
pub fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let t = tables();
        let f = |c: char| t.flags(c as u32);
        assert_eq!(f('a'), L | W);
        assert_eq!(f('A'), L | U);
        assert_eq!(f('7'), N);
        assert_eq!(f(' '), WS);
        assert_eq!(f('\u{3000}'), WS);
        assert_eq!(f('\u{a0}'), WS);
        assert_eq!(f('\u{85}'), WS);
        assert_eq!(f('中'), L | U | W);
        assert_eq!(f('\u{301}'), U | W | M);
        assert_eq!(f('ʰ'), L | U | W); // Lm
        assert_eq!(f('ǅ'), L | U); // Lt
        assert_eq!(f('½'), N);
        assert_eq!(f('.'), 0);
        assert_eq!(f('\u{10FFFF}'), 0);
        for c in 0u32..128 {
            assert_eq!(t.ascii[c as usize], t.flags(c));
        }
        assert_eq!(t.folds[0], vec!['S', 's', 'ſ']);
        assert_eq!(t.folds[3], vec!['T', 't']);
    }
}
