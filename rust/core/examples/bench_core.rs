//! Pure-Rust timing of the encoder stages (no Python): lexing only, and full
//! `encode_ordinary`, over documents of <= 8 KB cut at line boundaries.
//!
//! `cargo run --release -p supertok-core --example bench_core -- VOCAB.tiktoken PATTERN CORPUS...`
//! where PATTERN is r50k, cl100k or o200k.

use std::time::Instant;

use supertok_core::pretok::patterns;
use supertok_core::CoreEncoding;

fn chunks(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut last = 0;
    for (i, _) in text.match_indices('\n') {
        let end = i + 1;
        if end - start > 8192 && last > start {
            out.push(&text[start..last]);
            start = last;
        }
        last = end;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: bench_core VOCAB PATTERN(r50k|cl100k|o200k) CORPUS...");
        std::process::exit(2);
    }
    let pat = match args[2].as_str() {
        "r50k" => patterns::R50K,
        "cl100k" => patterns::CL100K,
        _ => patterns::O200K,
    };
    let t = Instant::now();
    let data = std::fs::read(&args[1]).expect("vocab");
    let enc = CoreEncoding::from_tiktoken_bytes(&data, &args[1], vec![], pat).expect("load");
    eprintln!("load {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    let mode = std::env::var("MODE").unwrap_or_default();
    for path in &args[3..] {
        let text = std::fs::read_to_string(path).expect("corpus");
        let docs = chunks(&text);
        let nb = text.len() as f64;
        let mut best_lex = f64::MAX;
        let mut best_enc = f64::MAX;
        let mut ntok = 0;
        let mut npieces = 0;
        for _ in 0..3 {
            if mode != "enc" {
                let t = Instant::now();
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
                best_lex = best_lex.min(t.elapsed().as_secs_f64());
            }
            if mode != "lex" {
                let t = Instant::now();
                let mut nt = 0;
                let mut out = Vec::new();
                for d in &docs {
                    out.clear();
                    enc.encode_ordinary_into(d, &mut out).unwrap();
                    nt += out.len();
                }
                ntok = nt;
                best_enc = best_enc.min(t.elapsed().as_secs_f64());
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
