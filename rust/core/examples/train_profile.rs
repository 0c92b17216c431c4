//! Profile the trainer's phases on files: `cargo run --release --example train_profile -- VOCAB THREADS FILES...`
mod common;
use common::process_cpu;
use std::time::Instant;

use supertok_core::pretok::{patterns, Pretokenizer};
use supertok_core::train::{self, count::FnSplitter, TrainConfig, Utf8Errors};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let vocab: usize = args[1].parse().expect("vocab");
    let threads: usize = args[2].parse().expect("threads");
    let files: Vec<String> = args[3..].to_vec();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    let pt = Pretokenizer::new(patterns::CL100K).expect("pattern");
    pool.install(|| {
        // Hashing alone: split on spaces (no regex).
        let ws = FnSplitter::new(
            |t: &str, f: &mut dyn FnMut(&[u8])| {
                for p in t.as_bytes().split(|&b| b == b' ') {
                    if !p.is_empty() {
                        f(p)
                    }
                }
                Ok(())
            },
            None,
        );
        let t = Instant::now();
        let c0 = process_cpu();
        let c =
            train::count_files(&ws, &files, Utf8Errors::Strict, &mut |_| Ok(())).expect("count");
        println!(
            "split-on-space count: {:.3} s wall, {:.2} s cpu ({} distinct)",
            t.elapsed().as_secs_f64(),
            process_cpu() - c0,
            c.len()
        );
        let t = Instant::now();
        let c0 = process_cpu();
        let c = if std::env::var("LINES").is_ok() {
            train::count_files(
                train::LineSplitter(train::WholeChunks),
                &files,
                Utf8Errors::Strict,
                &mut |_| Ok(()),
            )
            .expect("count")
        } else {
            train::count_files(&pt, &files, Utf8Errors::Strict, &mut |_| Ok(())).expect("count")
        };
        println!(
            "regex count: {:.3} s wall, {:.2} s cpu ({} distinct)",
            t.elapsed().as_secs_f64(),
            process_cpu() - c0,
            c.len()
        );
        let cfg = TrainConfig {
            vocab_size: vocab,
            special_tokens: vec![],
            min_frequency: 1,
            max_token_length: None,
        };
        let t = Instant::now();
        let c0 = process_cpu();
        let tr = train::Trainer::new(c.iter()).expect("init");
        println!(
            "  init: {:.3} s wall, {:.2} s cpu",
            t.elapsed().as_secs_f64(),
            process_cpu() - c0
        );
        drop(tr);
        let t = Instant::now();
        let c0 = process_cpu();
        let mut marks: Vec<(usize, f64)> = vec![];
        let out = train::train_bpe(&c, &cfg, None, &mut |n| {
            marks.push((n, t.elapsed().as_secs_f64()));
            Ok(())
        })
        .expect("train");
        for want in [512usize, 1280, 4352, 8448, 16640, 33024, 65792] {
            if let Some((n, s)) = marks.iter().find(|(n, _)| *n >= want) {
                println!("  {n} tokens after {s:.3} s");
            }
        }
        println!(
            "merges: {:.3} s wall, {:.2} s cpu ({} merges)",
            t.elapsed().as_secs_f64(),
            process_cpu() - c0,
            out.merges.len()
        );
    });
}
