//! Profile of the whole-corpus stream (every document of <= 8 KB once per pass, the
//! piece cache cleared before each pass), as `benches/bench_encode.py --only stream` times it.
//!
//! `cargo run --release -p supertok-core --example stream_profile -- VOCAB.tiktoken PATTERN CORPUS...`
//! (PATTERN: r50k, cl100k or o200k). Prints, per corpus: the share of pieces that are
//! tokens, piece-cache hits and misses on the stream, and thread-CPU time of lexing
//! only, of the full stream, and of the merges of the misses alone (medians of `REPS`,
//! default 3).

use supertok_core::piece_cache;

mod common;
use common::{chunks, thread_cpu};

fn main() {
    let (enc, paths) = common::encoder_args("stream_profile");
    let reps: usize = common::reps(3);
    for path in &paths {
        let text = std::fs::read_to_string(path).expect("corpus");
        let docs = chunks(&text);
        let nb = text.len() as f64;
        // counts on one cold pass
        piece_cache::clear_thread();
        let (mut pieces, mut tokens, mut hits, mut misses, mut long) =
            (0u64, 0u64, 0u64, 0u64, 0u64);
        let mut missed: Vec<(usize, usize)> = Vec::new();
        let mut out = Vec::new();
        let mut distinct = std::collections::HashSet::new();
        // long non-token pieces: distinct ones, and their lengths and token counts
        let mut long_seen = std::collections::HashSet::new();
        let mut long_hist = [0u64; 8]; // by length: <=32, <=48, <=64, <=96, <=128, <=192, <=256, more
        let mut long_toks = [0u64; 6]; // by tokens: <=4, <=8, <=12, <=16, <=24, more
        let mut long_repeat_bytes = 0u64;
        for d in &docs {
            let b = d.as_bytes();
            let base = b.as_ptr() as usize - text.as_ptr() as usize;
            enc.pretokenizer()
                .for_each_piece(d, |a, e| {
                    let p = &b[a..e];
                    pieces += 1;
                    if enc.vocab().get(p).is_some() {
                        tokens += 1;
                    } else if p.len() > piece_cache::MAX_PIECE {
                        long += 1;
                        let n = p.len();
                        let b = [32, 48, 64, 96, 128, 192, 256]
                            .iter()
                            .position(|&x| n <= x)
                            .unwrap_or(7);
                        long_hist[b] += 1;
                        if !long_seen.insert(p) {
                            long_repeat_bytes += n as u64;
                        } else {
                            let mut v = vec![];
                            enc.bpe_piece(p, &mut v).unwrap();
                            let t = [4, 8, 12, 16, 24]
                                .iter()
                                .position(|&x| v.len() <= x)
                                .unwrap_or(5);
                            long_toks[t] += 1;
                        }
                    } else if piece_cache::get(u32::MAX, p, &mut out) {
                        hits += 1;
                    } else {
                        misses += 1;
                        distinct.insert(p);
                        missed.push((base + a, base + e));
                        let s = out.len();
                        enc.bpe_piece(p, &mut out).unwrap();
                        piece_cache::put(u32::MAX, p, &out[s..]);
                    }
                    Ok(())
                })
                .unwrap();
            out.clear();
        }
        println!(
            "{path}: {:.1} MB, {} docs, {pieces} pieces: tokens {:.1}%, cache hits {hits} ({:.1}% of non-tokens), misses {misses} (distinct {}), long {long}",
            nb / 1e6,
            docs.len(),
            100.0 * tokens as f64 / pieces as f64,
            100.0 * hits as f64 / (hits + misses).max(1) as f64,
            distinct.len()
        );
        println!(
            "  long: distinct {} (repeats {:.0}% of the text's bytes); by length <=32,48,64,96,128,192,256,more: {:?}; distinct by tokens <=4,8,12,16,24,more: {:?}",
            long_seen.len(),
            100.0 * long_repeat_bytes as f64 / nb,
            long_hist,
            long_toks
        );
        let tb = text.as_bytes();
        let (mut t_lex, mut t_all, mut t_miss) = (vec![], vec![], vec![]);
        for _ in 0..reps {
            let t = thread_cpu();
            let mut n = 0u64;
            for d in &docs {
                enc.pretokenizer()
                    .for_each_piece(d, |_, _| {
                        n += 1;
                        Ok(())
                    })
                    .unwrap();
            }
            t_lex.push(thread_cpu() - t);
            assert_eq!(n, pieces);
            piece_cache::clear_thread();
            let t = thread_cpu();
            for d in &docs {
                out.clear();
                enc.encode_ordinary_into(d, &mut out).unwrap();
            }
            t_all.push(thread_cpu() - t);
            let t = thread_cpu();
            for &(a, e) in &missed {
                out.clear();
                enc.bpe_piece(&tb[a..e], &mut out).unwrap();
            }
            t_miss.push(thread_cpu() - t);
        }
        let (l, a, m) = (
            common::median(t_lex),
            common::median(t_all),
            common::median(t_miss),
        );
        println!(
            "  stream {:.1} MB/s ({:.2} ns/B) | lex only {:.2} ns/B ({:.0}%) | merges of misses {:.2} ns/B ({:.0}%, {:.0} ns each) | rest {:.2} ns/B",
            nb / a / 1e6,
            a * 1e9 / nb,
            l * 1e9 / nb,
            100.0 * l / a,
            m * 1e9 / nb,
            100.0 * m / a,
            m * 1e9 / misses.max(1) as f64,
            (a - l - m) * 1e9 / nb
        );
    }
}
