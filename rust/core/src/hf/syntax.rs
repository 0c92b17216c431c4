//! Conversion of split patterns between tiktoken's regex syntax (fancy-regex) and HF's
//! (Oniguruma).
//!
//! The two syntaxes differ where a quantifier follows an interval `{n,m}`:
//! * tiktoken/fancy-regex: `x{n,m}+` is possessive; `x{n}?` is lazy (a no-op for a fixed
//!   count);
//! * Oniguruma (Ruby syntax): `x{n,m}+` means `(?:x{n,m})+` and `x{n}?` means `(?:x{n})?`.
//!
//! So cl100k's `\p{N}{1,3}+` groups digits by three under tiktoken but not at all under
//! HF. The converters below rewrite these forms (possessive → atomic group `(?>...)`, which
//! both engines read the same way) and leave everything else untouched.

/// Which way to convert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    TiktokenToOnig,
    OnigToTiktoken,
}

/// Rewrite a tiktoken (fancy-regex) pattern so that Oniguruma reads it the same way.
pub fn tiktoken_to_onig(p: &str) -> String {
    convert(p, Dir::TiktokenToOnig)
}

/// Rewrite an Oniguruma pattern so that fancy-regex (non-Oniguruma mode) reads it the same
/// way.
pub fn onig_to_tiktoken(p: &str) -> String {
    convert(p, Dir::OnigToTiktoken)
}

/// Oniguruma's `\w` (Unicode): Alphabetic, marks, decimal digits, connector punctuation,
/// and the Latin-1 number signs ² ³ ¹ ¼ ½ ¾ (measured against HF over all code points;
/// regex-syntax's `\w` differs on those six and on U+200C/U+200D).
const ONIG_WORD: &str = r"\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{B2}\x{B3}\x{B9}\x{BC}-\x{BE}";
/// Oniguruma's `\w` inside a bracket class: without the Latin-1 number signs.
const ONIG_WORD_IN_CLASS: &str = r"\p{Alphabetic}\p{M}\p{Nd}\p{Pc}";

/// Make an Oniguruma pattern mean the same under fancy-regex's Oniguruma mode where the two
/// engines' classes differ: `\w`/`\W` are rewritten to Oniguruma's definition. POSIX
/// bracket classes (`[:alpha:]`, Unicode in Oniguruma, ASCII in fancy-regex) are rejected.
pub fn onig_classes(p: &str) -> Result<String, String> {
    let mut out = String::with_capacity(p.len());
    let mut depth = 0usize;
    let mut it = p.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        match c {
            '\\' => {
                let Some((_, e)) = it.next() else {
                    out.push(c);
                    break;
                };
                match (e, depth > 0) {
                    ('w', false) => {
                        out.push('[');
                        out.push_str(ONIG_WORD);
                        out.push(']');
                    }
                    ('W', false) => {
                        out.push_str("[^");
                        out.push_str(ONIG_WORD);
                        out.push(']');
                    }
                    ('w', true) => out.push_str(ONIG_WORD_IN_CLASS),
                    ('W', true) => {
                        out.push_str("[^");
                        out.push_str(ONIG_WORD_IN_CLASS);
                        out.push(']');
                    }
                    _ => {
                        out.push('\\');
                        out.push(e);
                    }
                }
            }
            '[' => {
                if depth > 0 && p[i..].starts_with("[:") {
                    if let Some(end) = p[i + 2..].find(":]") {
                        return Err(format!(
                            "POSIX bracket class {:?} is not supported (Unicode in Oniguruma, ASCII in fancy-regex)",
                            &p[i..i + 2 + end + 2]
                        ));
                    }
                }
                depth += 1;
                out.push(c);
                // a `]` right after `[` or `[^` is a literal
                if let Some(&(_, '^')) = it.peek() {
                    out.push('^');
                    it.next();
                }
                if let Some(&(_, ']')) = it.peek() {
                    out.push(']');
                    it.next();
                }
            }
            ']' if depth > 0 => {
                depth -= 1;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// Length in bytes of an interval quantifier `{n}`, `{n,}`, `{n,m}`, `{,m}` at the start of
/// `s`, if there is one.
fn interval_len(s: &[u8]) -> Option<(usize, bool)> {
    if s.first() != Some(&b'{') {
        return None;
    }
    let mut i = 1;
    let mut digits = 0;
    let mut comma = false;
    while i < s.len() {
        match s[i] {
            b'0'..=b'9' => digits += 1,
            b',' if !comma => comma = true,
            b'}' => {
                return if digits > 0 {
                    Some((i + 1, !comma))
                } else {
                    None
                };
            }
            _ => return None,
        }
        i += 1;
    }
    None
}

fn convert(p: &str, dir: Dir) -> String {
    let b = p.as_bytes();
    let mut out = String::with_capacity(p.len() + 8);
    // output index where the most recent atom starts
    let mut atom: Option<usize> = None;
    let mut groups: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\\' => {
                let start = i;
                i += 1;
                if i < b.len() {
                    let e = b[i];
                    i += p[i..].chars().next().map_or(1, |ch| ch.len_utf8());
                    if matches!(e, b'p' | b'P' | b'x' | b'k' | b'g')
                        && i < b.len()
                        && (b[i] == b'{' || b[i] == b'<')
                    {
                        let close = if b[i] == b'{' { b'}' } else { b'>' };
                        while i < b.len() && b[i] != close {
                            i += 1;
                        }
                        i = (i + 1).min(b.len());
                    }
                }
                atom = Some(out.len());
                out.push_str(&p[start..i]);
            }
            b'[' => {
                let start = i;
                let mut depth = 0usize;
                i += 1;
                if i < b.len() && b[i] == b'^' {
                    i += 1;
                }
                if i < b.len() && b[i] == b']' {
                    i += 1;
                }
                while i < b.len() {
                    match b[i] {
                        b'\\' => {
                            i += 1 + p[(i + 1).min(b.len())..]
                                .chars()
                                .next()
                                .map_or(0, |ch| ch.len_utf8())
                        }
                        b'[' => {
                            depth += 1;
                            i += 1;
                        }
                        b']' => {
                            i += 1;
                            if depth == 0 {
                                break;
                            }
                            depth -= 1;
                        }
                        _ => i += 1,
                    }
                }
                let i2 = i.min(b.len());
                atom = Some(out.len());
                out.push_str(&p[start..i2]);
                i = i2;
            }
            b'(' => {
                groups.push(out.len());
                out.push('(');
                i += 1;
                atom = None;
            }
            b')' => {
                out.push(')');
                i += 1;
                atom = groups.pop();
            }
            b'|' => {
                out.push('|');
                i += 1;
                atom = None;
            }
            b'{' => {
                if let (Some((len, fixed)), Some(a)) = (interval_len(&b[i..]), atom) {
                    let q = &p[i..i + len];
                    let next = b.get(i + len).copied();
                    match (dir, next) {
                        (Dir::TiktokenToOnig, Some(b'+')) => {
                            out.insert_str(a, "(?>");
                            out.push_str(q);
                            out.push(')');
                            i += len + 1;
                        }
                        (Dir::TiktokenToOnig, Some(b'?')) if fixed => {
                            // lazy fixed count == fixed count
                            out.push_str(q);
                            i += len + 1;
                        }
                        (Dir::OnigToTiktoken, Some(n @ (b'+' | b'?'))) if n == b'+' || fixed => {
                            out.insert_str(a, "(?:");
                            out.push_str(q);
                            out.push(')');
                            i += len;
                            // the following quantifier now applies to the group
                        }
                        _ => {
                            out.push_str(q);
                            i += len;
                        }
                    }
                } else {
                    atom = Some(out.len());
                    out.push('{');
                    i += 1;
                }
            }
            b'*' | b'+' | b'?' => {
                out.push(c as char);
                i += 1;
            }
            _ => {
                let ch_len = p[i..].chars().next().map_or(1, |ch| ch.len_utf8());
                atom = Some(out.len());
                out.push_str(&p[i..i + ch_len]);
                i += ch_len;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onig_word_class() {
        assert_eq!(
            onig_classes(r"\w+|[^\w\s]").unwrap(),
            format!(r"[{ONIG_WORD}]+|[^{ONIG_WORD_IN_CLASS}\s]")
        );
        assert_eq!(onig_classes(r"\\w").unwrap(), r"\\w");
        assert_eq!(onig_classes(r"[]w]").unwrap(), r"[]w]");
        assert!(onig_classes(r"[[:alpha:]]").is_err());
    }

    #[test]
    fn possessive_intervals() {
        assert_eq!(tiktoken_to_onig(r"\p{N}{1,3}+|a"), r"(?>\p{N}{1,3})|a");
        assert_eq!(tiktoken_to_onig(r"x{2}?"), r"x{2}");
        assert_eq!(onig_to_tiktoken(r"\p{N}{1,3}+"), r"(?:\p{N}{1,3})+");
        assert_eq!(onig_to_tiktoken(r"[a-z]{3}?"), r"(?:[a-z]{3})?");
        assert_eq!(onig_to_tiktoken(r"(ab){2,}+c"), r"(?:(ab){2,})+c");
        assert_eq!(tiktoken_to_onig(r"a++b?+\s++$"), r"a++b?+\s++$");
        assert_eq!(tiktoken_to_onig(r"[\]{]{1,2}+"), r"(?>[\]{]{1,2})");
        assert_eq!(tiktoken_to_onig(r"a{b"), r"a{b");
        for p in [
            crate::pretok::patterns::R50K,
            crate::pretok::patterns::CL100K,
            crate::pretok::patterns::O200K,
        ] {
            // no interval is followed by + or ? except cl100k's
            let o = tiktoken_to_onig(p);
            assert_eq!(onig_to_tiktoken(&o), o);
        }
    }
}
