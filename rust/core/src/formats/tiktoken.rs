//! The `.tiktoken` format: one token per line, `base64(bytes) rank`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::error::{Error, Result};
use crate::util::bytes_repr;

/// Parse the contents of a `.tiktoken` file. `source` names the file in error messages.
///
/// Blank lines are ignored. Errors (bad base64, a missing or non-integer rank, extra
/// fields, a duplicate token or rank) name the file and the 1-based line.
pub fn parse(data: &[u8], source: &str) -> Result<Vec<(Vec<u8>, u32)>> {
    let mut out: Vec<(Vec<u8>, u32)> = Vec::with_capacity(data.len() / 12);
    let err = |line: usize, message: String| Error::Parse {
        source: source.to_string(),
        line,
        message,
    };
    let mut lineno = 0usize;
    for raw in data.split(|&b| b == b'\n') {
        lineno += 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = trim_ascii(line);
        if line.is_empty() {
            continue;
        }
        let mut fields = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|f| !f.is_empty());
        let (tok, rank) = match (fields.next(), fields.next(), fields.next()) {
            (Some(t), Some(r), None) => (t, r),
            _ => {
                return Err(err(
                    lineno,
                    format!("expected `<base64 token> <rank>`, got {}", bytes_repr(line)),
                ))
            }
        };
        let bytes = STANDARD
            .decode(tok)
            .map_err(|e| err(lineno, format!("invalid base64 {}: {e}", bytes_repr(tok))))?;
        if bytes.is_empty() {
            return Err(err(lineno, "empty token".into()));
        }
        let rank = parse_rank(rank).ok_or_else(|| {
            err(
                lineno,
                format!(
                    "rank {} is not a non-negative integer < 2^32",
                    bytes_repr(rank)
                ),
            )
        })?;
        out.push((bytes, rank));
    }
    // duplicate checks with line numbers
    let mut by_rank: Vec<(u32, usize)> = out.iter().enumerate().map(|(i, p)| (p.1, i)).collect();
    by_rank.sort_unstable();
    if let Some(w) = by_rank.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(err(
            line_of(data, w[1].1),
            format!(
                "duplicate rank {} (also on line {})",
                w[0].0,
                line_of(data, w[0].1)
            ),
        ));
    }
    let mut by_tok: Vec<usize> = (0..out.len()).collect();
    by_tok.sort_unstable_by(|&a, &b| out[a].0.cmp(&out[b].0).then(a.cmp(&b)));
    if let Some(w) = by_tok.windows(2).find(|w| out[w[0]].0 == out[w[1]].0) {
        return Err(err(
            line_of(data, w[1]),
            format!(
                "duplicate token {} (also on line {})",
                bytes_repr(&out[w[0]].0),
                line_of(data, w[0])
            ),
        ));
    }
    Ok(out)
}

/// 1-based line number of the `k`-th non-blank line.
fn line_of(data: &[u8], k: usize) -> usize {
    let mut seen = 0usize;
    for (i, raw) in data.split(|&b| b == b'\n').enumerate() {
        if !trim_ascii(raw).is_empty() {
            if seen == k {
                return i + 1;
            }
            seen += 1;
        }
    }
    0
}

fn trim_ascii(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

fn parse_rank(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u64;
    }
    u32::try_from(v).ok()
}

/// Serialize ranks in the `.tiktoken` format (sorted by rank).
pub fn dump(pairs: &[(Vec<u8>, u32)]) -> Vec<u8> {
    let mut sorted: Vec<&(Vec<u8>, u32)> = pairs.iter().collect();
    sorted.sort_unstable_by_key(|p| p.1);
    let mut out = Vec::with_capacity(pairs.len() * 16);
    for (bytes, rank) in sorted {
        out.extend_from_slice(STANDARD.encode(bytes).as_bytes());
        out.push(b' ');
        out.extend_from_slice(rank.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let pairs = vec![(b"a".to_vec(), 0), (b"\xff\x00".to_vec(), 1)];
        let d = dump(&pairs);
        assert_eq!(parse(&d, "x").unwrap(), pairs);
    }

    #[test]
    fn errors_name_line() {
        let e = parse(b"YQ== 0\n\nYg== x\n", "f.tiktoken").unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.tiktoken: line 3: rank b'x' is not a non-negative integer < 2^32"
        );
        let e = parse(b"YQ== 0\n!!! 1\n", "f").unwrap_err();
        assert!(
            e.to_string().starts_with("f: line 2: invalid base64"),
            "{e}"
        );
        let e = parse(b"YQ== 0\nYg== 0\n", "f").unwrap_err();
        assert_eq!(
            e.to_string(),
            "f: line 2: duplicate rank 0 (also on line 1)"
        );
        let e = parse(b"YQ== 0\n\nYQ== 1\n", "f").unwrap_err();
        assert_eq!(
            e.to_string(),
            "f: line 3: duplicate token b'a' (also on line 1)"
        );
        let e = parse(b"YQ== 0 1\n", "f").unwrap_err();
        assert!(e.to_string().starts_with("f: line 1: expected"), "{e}");
    }
}
