//! Piece-cache behaviour on a repeated sample (the steady state of `bench_encode.py`'s
//! single-thread table): passes over the same documents without clearing the cache;
//! counts hits and misses of the last pass by length class (and the wall-clock time of the
//! misses' merges) and times warm passes (median and minimum).
//!
//! `cargo run --release -p supertok-core --example sample_cache -- VOCAB PATTERN CORPUS...`

use supertok_core::piece_cache;

mod common;
use common::{chunks, thread_cpu};

fn main() {
    let (enc, paths) = common::encoder_args("sample_cache");
    let reps: usize = common::reps(5);
    for path in &paths {
        let text = std::fs::read_to_string(path).expect("corpus");
        let docs = chunks(&text);
        let nb = text.len() as f64;
        piece_cache::clear_thread();
        let mut out = Vec::new();
        let mut last = [[0u64; 2]; 4];
        let mut last_ns = [0f64; 4];
        for pass in 0..common::env_usize("PASSES", 3) {
            let mut counts = [[0u64; 2]; 4];
            let mut ns = [0f64; 4];
            for d in &docs {
                let b = d.as_bytes();
                enc.pretokenizer()
                    .for_each_piece(d, |a, e| {
                        let p = &b[a..e];
                        if enc.vocab().get(p).is_some() {
                            return Ok(());
                        }
                        let c = if p.len() > piece_cache::MAX_PIECE {
                            3
                        } else if p.len() <= piece_cache::SMALL_PIECE {
                            0
                        } else if p.len() <= piece_cache::MID_PIECE {
                            1
                        } else {
                            2
                        };
                        out.clear();
                        if piece_cache::get(u32::MAX, p, &mut out) {
                            counts[c][0] += 1;
                        } else {
                            counts[c][1] += 1;
                            let t0 = std::time::Instant::now();
                            enc.bpe_piece(p, &mut out).unwrap();
                            ns[c] += t0.elapsed().as_nanos() as f64;
                            piece_cache::put(u32::MAX, p, &out);
                        }
                        Ok(())
                    })
                    .unwrap();
            }
            let _ = pass;
            last = counts;
            last_ns = ns;
        }
        println!(
            "{path}: {:.2} MB, {} docs; last pass [hits, misses] small/mid/long/over: {:?}",
            nb / 1e6,
            docs.len(),
            last
        );
        println!(
            "  merge time of the last pass's misses per class: {:?} us (wall clock)",
            last_ns.map(|x| (x / 1e3).round())
        );
        piece_cache::clear_thread();
        for d in &docs {
            out.clear();
            enc.encode_ordinary_into(d, &mut out).unwrap();
        }
        let mut t = vec![];
        for _ in 0..reps {
            let t0 = thread_cpu();
            for d in &docs {
                out.clear();
                enc.encode_ordinary_into(d, &mut out).unwrap();
            }
            t.push(thread_cpu() - t0);
        }
        let min = t.iter().cloned().fold(f64::INFINITY, f64::min);
        println!("  warm pass {:.2} ns/B", common::median(t) * 1e9 / nb);
        println!("  warm pass min {:.3} ns/B", min * 1e9 / nb);
    }
}
