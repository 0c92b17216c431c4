//! Where the time of issue 3's worst cases goes (target 2, `BENCHMARKS.md`): for each input
//! file, medians of thread CPU time per byte over `REPS` runs (default 15) of
//!
//! - `full`: `encode_ordinary_into` of the whole input, warm (the same input encoded just
//!   before, so the tables it touches are cached);
//! - `cold`: the same after writing `EVICT` MiB (default 64) between runs, as when another
//!   library ran just before (the benchmark's interleaved calls);
//! - `lex`: the pre-tokenizer alone (the piece ends, nothing looked up);
//! - `whole`: the whole-piece vocabulary lookups of the lexed pieces alone (`Vocab::get`
//!   over the stored pieces);
//! - `merge`: the BPE merges of the pieces that are not tokens alone (`bpe_piece` over the
//!   stored pieces, no piece cache; long pieces take the backtracking chunks).
//!
//! and the work: pieces, pieces that are not tokens, the ids those produce, and the parts
//! merged away (bytes of the non-token pieces minus their ids: an upper bound of the merge
//! steps, since atomic characters start as one part). `full` and `lex + whole + merge` differ
//! by the piece cache (non-token pieces of at most 128 bytes that repeat are not merged
//! again) and by overlap between the stages.
//!
//! `cargo run --release -p supertok-core --example worst_profile -- VOCAB PATTERN FILE...`
//! (`FULL_ONLY=1`: only the warm `full` time, e.g. for `perf record`)

mod common;
use common::{median, thread_cpu};

/// Median thread CPU seconds of `f(s)` over `reps` runs, `before(s)` run (untimed) before
/// each.
fn time<S, F: FnMut(&mut S), G: FnMut(&mut S)>(
    reps: usize,
    s: &mut S,
    mut before: G,
    mut f: F,
) -> f64 {
    let mut ts = Vec::with_capacity(reps);
    for _ in 0..reps {
        before(s);
        let t = thread_cpu();
        f(s);
        ts.push(thread_cpu() - t);
    }
    median(ts)
}

fn main() {
    let (enc, paths) = common::encoder_args("worst_profile");
    let reps = common::reps(15);
    let evict = common::env_usize("EVICT", 64);
    let lexer = enc
        .pretokenizer()
        .lexer()
        .expect("a known pattern (hand-written lexer)");
    let mut junk = vec![0u8; evict << 20];
    let mut round = 0u8;
    println!(
        "{:>12} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} | {:>7} {:>7} {:>7} {:>8} {:>7}",
        "input",
        "bytes",
        "full",
        "cold",
        "lex",
        "whole",
        "merge",
        "pieces",
        "misses",
        "ids",
        "merged",
        "ns/mrg"
    );
    for path in &paths {
        let text = std::fs::read_to_string(path).expect("input");
        let bytes = text.as_bytes();
        let n = bytes.len() as f64;
        let mut out = Vec::with_capacity(bytes.len());
        enc.encode_ordinary_into(&text, &mut out).expect("encode");
        let ids = out.len();
        let full = time(
            reps,
            &mut out,
            |o| o.clear(),
            |o| enc.encode_ordinary_into(&text, o).expect("encode"),
        );
        if std::env::var_os("FULL_ONLY").is_some() {
            println!("{path} full {:8.2} ns/B", full / n * 1e9);
            continue;
        }
        let cold = time(
            reps,
            &mut out,
            |o| {
                round = round.wrapping_add(1) | 1;
                for i in (0..junk.len()).step_by(64) {
                    junk[i] = junk[i].wrapping_add(round);
                }
                std::hint::black_box(&junk);
                o.clear();
            },
            |o| enc.encode_ordinary_into(&text, o).expect("encode"),
        );
        let mut ends = Vec::new();
        let lex = time(
            reps,
            &mut ends,
            |v| v.clear(),
            |v| {
                let mut i = 0;
                while i < bytes.len() {
                    i = lexer.next_end(bytes, i);
                    v.push(i);
                }
            },
        );
        let mut pieces: Vec<&[u8]> = Vec::with_capacity(ends.len());
        let mut a = 0;
        for &e in &ends {
            pieces.push(&bytes[a..e]);
            a = e;
        }
        let vocab = enc.vocab();
        let mut hits = 0usize;
        let whole = time(
            reps,
            &mut hits,
            |h| *h = 0,
            |h| {
                for p in &pieces {
                    *h += vocab.get(p).is_some() as usize;
                }
            },
        );
        let misses: Vec<&[u8]> = pieces
            .iter()
            .copied()
            .filter(|p| vocab.get(p).is_none())
            .collect();
        let miss_bytes: usize = misses.iter().map(|p| p.len()).sum();
        let mut mout = Vec::with_capacity(miss_bytes);
        let merge = time(
            reps,
            &mut mout,
            |o| o.clear(),
            |o| {
                for p in &misses {
                    enc.bpe_piece(p, o).expect("merge");
                }
            },
        );
        let merged = miss_bytes - mout.len();
        let name = std::path::Path::new(path)
            .file_stem()
            .map_or_else(|| path.clone(), |s| s.to_string_lossy().into_owned());
        println!(
            "{:>12} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} | {:>7} {:>7} {:>7} {:>8} {:>7.1}",
            name,
            bytes.len(),
            full / n * 1e9,
            cold / n * 1e9,
            lex / n * 1e9,
            whole / n * 1e9,
            merge / n * 1e9,
            pieces.len(),
            misses.len(),
            ids,
            merged,
            if merged > 0 {
                merge / merged as f64 * 1e9
            } else {
                0.0
            },
        );
        assert_eq!(hits + misses.len(), pieces.len());
    }
}
