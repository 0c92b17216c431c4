//! Pure-Rust timing of the encoder stages (no Python): lexing only, and full
//! `encode_ordinary`, over documents of <= 8 KB cut at line boundaries.
//!
//! `cargo run --release -p supertok-core --example bench_core -- VOCAB.tiktoken PATTERN CORPUS...`
//! where PATTERN is r50k, cl100k or o200k.

use std::time::Instant;

mod common;
use common::{chunks, thread_cpu};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: bench_core VOCAB PATTERN(r50k|cl100k|o200k) CORPUS...");
        std::process::exit(2);
    }
    let t = Instant::now();
    let enc = common::load_encoding(&args[1], &args[2]);
    eprintln!("load {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    let mode = std::env::var("MODE").unwrap_or_default();
    if mode == "build" {
        for _ in 0..3 {
            let t = thread_cpu();
            let bt = supertok_core::backtrack::Backtrack::build(enc.vocab());
            println!(
                "backtrack build {:.1} ms ({})",
                (thread_cpu() - t) * 1e3,
                bt.is_some()
            );
            let t = thread_cpu();
            let chars = supertok_core::atomic_chars::AtomicChars::build(enc.vocab());
            println!(
                "atomic chars build {:.1} ms ({} candidates)",
                (thread_cpu() - t) * 1e3,
                chars.len()
            );
        }
        return;
    }
    if mode == "worst" {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let b64: Vec<u8> =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".to_vec();
        let cases: Vec<(&str, String)> = vec![
            ("x*1M", "x".repeat(1_000_000)),
            (
                "100K letters",
                (0..100_000)
                    .map(|_| (b'a' + (rnd() % 26) as u8) as char)
                    .collect(),
            ),
            ("100K spaces", " ".repeat(100_000)),
            (
                "1M digits",
                (0..1_000_000)
                    .map(|_| (b'0' + (rnd() % 10) as u8) as char)
                    .collect(),
            ),
            (
                "1MB base64",
                (0..1_000_000)
                    .map(|_| b64[(rnd() % 64) as usize] as char)
                    .collect(),
            ),
            (
                "100KB CJK",
                (0..33_333)
                    .map(|_| char::from_u32(0x4e00 + (rnd() % 20000) as u32).unwrap())
                    .collect(),
            ),
            (
                "100KB emoji ZWJ",
                "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466}".repeat(100_000 / 25),
            ),
        ];
        let only = std::env::var("ONLY").unwrap_or_default();
        for (name, text) in &cases {
            if !only.is_empty() && !name.contains(only.as_str()) {
                continue;
            }
            let mut best = f64::MAX;
            let mut nt = 0;
            for _ in 0..common::reps(3) {
                let t = thread_cpu();
                nt = enc.encode_ordinary(text).unwrap().len();
                best = best.min(thread_cpu() - t);
            }
            println!(
                "{name:16} {:8} bytes {nt:8} tokens {:8.1} MB/s {:6.1} ns/B",
                text.len(),
                text.len() as f64 / best / 1e6,
                best * 1e9 / text.len() as f64
            );
        }
        return;
    }
    if mode == "stats" {
        for path in &args[3..] {
            let text = std::fs::read_to_string(path).expect("corpus");
            let mut hist = [[0u64; 2]; 34];
            let mut toks_miss = 0u64;
            let mut idhist = [0u64; 5];
            let mut distinct = std::collections::HashSet::new();
            enc.pretokenizer()
                .for_each_piece(&text, |a, b| {
                    let p = &text.as_bytes()[a..b];
                    let got = enc.vocab().get(p);
                    let hit = got.is_some();
                    if let Some(id) = got {
                        for (k, lim) in [4096u32, 8192, 16384, 32768, 65536].iter().enumerate() {
                            if id < *lim {
                                idhist[k] += 1;
                            }
                        }
                    }
                    hist[p.len().min(33)][hit as usize] += 1;
                    if !hit {
                        distinct.insert(p.to_vec());
                        let mut v = Vec::new();
                        enc.bpe_piece(p, &mut v).unwrap();
                        toks_miss += v.len() as u64;
                    }
                    Ok(())
                })
                .unwrap();
            let tot: u64 = hist.iter().map(|h| h[0] + h[1]).sum();
            let miss: u64 = hist.iter().map(|h| h[0]).sum();
            println!("distinct missed pieces: {}", distinct.len());
            println!("hit ids below 4k/8k/16k/32k/64k: {idhist:?}");
            println!(
                "{path}: pieces {tot}, misses {miss} ({:.1}%), tokens from misses {toks_miss}",
                100.0 * miss as f64 / tot as f64
            );
            for (l, h) in hist.iter().enumerate() {
                if h[0] + h[1] > 0 {
                    println!("  len {l:2}: hit {:8} miss {:8}", h[1], h[0]);
                }
            }
        }
        let mut lens = [0usize; 5];
        for (_, b) in enc.vocab().iter() {
            lens[match b.len() {
                1..=2 => 0,
                3..=8 => 1,
                9..=16 => 2,
                17..=32 => 3,
                _ => 4,
            }] += 1;
        }
        println!(
            "vocab lengths 1-2 / 3-8 / 9-16 / 17-32 / >32: {lens:?}, max {}",
            enc.vocab().max_token_len()
        );
        return;
    }
    for path in &args[3..] {
        let text = std::fs::read_to_string(path).expect("corpus");
        let docs = chunks(&text);
        let nb = text.len() as f64;
        let mut best_lex = f64::MAX;
        let mut best_enc = f64::MAX;
        let mut ntok = 0;
        let mut npieces = 0;
        for _ in 0..5 {
            if mode != "enc" {
                let t = thread_cpu();
                let mut np = 0usize;
                for d in &docs {
                    enc.pretokenizer()
                        .for_each_piece(d, |_, _| {
                            np += 1;
                            Ok(())
                        })
                        .unwrap();
                }
                npieces = np;
                best_lex = best_lex.min(thread_cpu() - t);
            }
            if mode == "lookup" {
                // lexing + whole-piece lookup only (the fixed cost per piece)
                let t = thread_cpu();
                let mut hits = 0usize;
                for d in &docs {
                    let b = d.as_bytes();
                    enc.pretokenizer()
                        .for_each_piece(d, |x, y| {
                            hits += enc.vocab().get(&b[x..y]).is_some() as usize;
                            Ok(())
                        })
                        .unwrap();
                }
                ntok = hits;
                best_enc = best_enc.min(thread_cpu() - t);
                continue;
            }
            if mode != "lex" {
                if std::env::var("CLEAR").is_ok() {
                    supertok_core::piece_cache::clear_thread();
                }
                let t = thread_cpu();
                let mut nt = 0;
                let mut out = Vec::new();
                for d in &docs {
                    out.clear();
                    enc.encode_ordinary_into(d, &mut out).unwrap();
                    nt += out.len();
                }
                ntok = nt;
                best_enc = best_enc.min(thread_cpu() - t);
            }
        }
        println!(
            "{path}: {:.1} MB, {} docs, {npieces} pieces, {ntok} tokens | lex {:.0} MB/s | encode {:.1} MB/s",
            nb / 1e6,
            docs.len(),
            nb / best_lex / 1e6,
            nb / best_enc / 1e6
        );
    }
}
