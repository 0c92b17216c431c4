//! Lexer profile: the pieces of a corpus grouped by shape (counts and bytes), and the
//! thread-CPU time of lexing alone.
//!
//! `cargo run --release -p supertok-core --example lex_shapes -- PATTERN CORPUS...`
//! (PATTERN: r50k, cl100k or o200k; `REPS` repetitions of the timing, default 5). The
//! documents are cut as the benches cut them (<= 8 KB at line ends). A shape names the
//! piece's content (ASCII word, digits, punctuation, whitespace, non-ASCII word with the
//! longest UTF-8 length of its letters, ...), its prefix and whether the byte after it
//! is non-ASCII; it tells which fast path a piece could take, not which one it took.

use std::collections::HashMap;

use supertok_core::pretok::unicode::{tables, L, M, N, WS};
use supertok_core::pretok::Pretokenizer;

mod common;
use common::{chunks, thread_cpu};

/// Characters of `p` with their flags and UTF-8 lengths.
fn chars(p: &str) -> Vec<(char, u8, usize)> {
    let t = tables();
    p.chars()
        .map(|c| (c, t.flags(c as u32), c.len_utf8()))
        .collect()
}

fn shape(p: &str, next: Option<u8>) -> String {
    let cs = chars(p);
    let after = match next {
        Some(b) if b >= 0x80 => " >nonascii",
        _ => "",
    };
    let ascii = p.is_ascii();
    let (c0, f0, _) = cs[0];
    let letters: Vec<&(char, u8, usize)> = cs.iter().filter(|c| c.1 & (L | M) != 0).collect();
    if !letters.is_empty() {
        let prefix = if f0 & (L | M) != 0 {
            ""
        } else if c0 == ' ' {
            "sp+"
        } else if c0 == '\'' {
            "'+"
        } else if c0.is_ascii() {
            "p+"
        } else {
            "P+"
        };
        let maxlen = letters.iter().map(|c| c.2).max().unwrap_or(1);
        let has_ascii = letters.iter().any(|c| c.2 == 1);
        let marks = letters.iter().any(|c| c.1 & M != 0);
        let apos = p.contains('\'');
        let kind = if ascii {
            if letters.iter().all(|c| c.0.is_ascii_uppercase()) {
                "ascii CAPS".to_string()
            } else {
                "ascii word".to_string()
            }
        } else {
            format!(
                "word {maxlen}B{}{}",
                if has_ascii { " +ascii" } else { "" },
                if marks { " +marks" } else { "" }
            )
        };
        return format!(
            "{prefix}{kind}{}{after}",
            if apos && prefix != "'+" { " 's" } else { "" }
        );
    }
    if cs.iter().all(|c| c.1 & N != 0) {
        return format!("digits{}{after}", if ascii { "" } else { " nonascii" });
    }
    if cs.iter().all(|c| c.1 & WS != 0) {
        let nl = if p.contains('\n') || p.contains('\r') {
            " nl"
        } else {
            ""
        };
        let kind = if p.bytes().all(|b| b == b' ') {
            "spaces"
        } else {
            "ws"
        };
        return format!("{kind}{nl}{}{after}", if ascii { "" } else { " nonascii" });
    }
    let sp = if c0 == ' ' { "sp+" } else { "" };
    let nl = if p.ends_with('\n') || p.ends_with('\r') {
        " nl"
    } else {
        ""
    };
    format!(
        "{sp}punct{nl}{}{after}",
        if ascii { "" } else { " nonascii" }
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: lex_shapes PATTERN(r50k|cl100k|o200k) CORPUS...");
        std::process::exit(2);
    }
    let pt = Pretokenizer::new(common::pattern(&args[1])).expect("pattern");
    let pt = *pt.lexer().expect("a known pattern");
    let reps = common::reps(5);
    for path in &args[2..] {
        let text = std::fs::read_to_string(path).expect("corpus");
        let docs = chunks(&text);
        let nb = text.len() as f64;
        let mut by: HashMap<String, (u64, u64)> = HashMap::new();
        let mut total = 0u64;
        for d in &docs {
            let b = d.as_bytes();
            pt.for_each_piece(d, |a, e| {
                let s = shape(&d[a..e], b.get(e).copied());
                let x = by.entry(s).or_default();
                x.0 += 1;
                x.1 += (e - a) as u64;
                total += 1;
                Ok::<(), ()>(())
            })
            .unwrap();
        }
        let mut t = vec![];
        for _ in 0..reps {
            let t0 = thread_cpu();
            let mut n = 0u64;
            for d in &docs {
                pt.for_each_piece(d, |_, _| {
                    n += 1;
                    Ok::<(), ()>(())
                })
                .unwrap();
            }
            t.push(thread_cpu() - t0);
            assert_eq!(n, total);
        }
        println!(
            "{path}: {:.1} MB, {total} pieces, lex only {:.3} ns/B",
            nb / 1e6,
            common::median(t) * 1e9 / nb
        );
        if std::env::var("QUIET").is_ok() {
            continue;
        }
        let mut v: Vec<_> = by.into_iter().collect();
        v.sort_by_key(|x| std::cmp::Reverse(x.1 .0));
        let tb: u64 = v.iter().map(|x| x.1 .1).sum();
        for (s, (c, bytes)) in v.iter().take(40) {
            println!(
                "  {:6.2}% pieces {:6.2}% bytes  {s}",
                100.0 * *c as f64 / total as f64,
                100.0 * *bytes as f64 / tb as f64
            );
        }
    }
}
