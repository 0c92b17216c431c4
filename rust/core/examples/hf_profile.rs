//! Pure-Rust timing of an HF `tokenizer.json` on documents: each document encoded with
//! one call, `REPS` rounds (default 5), median thread CPU time.
//!
//! `cargo run --release -p supertok-core --example hf_profile -- TOKENIZER.json DOCS`
//! where DOCS holds the documents separated by NUL bytes.

use supertok_core::hf::HfTokenizer;

mod common;
use common::thread_cpu;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: hf_profile TOKENIZER.json DOCS");
        std::process::exit(2);
    }
    let json = std::fs::read_to_string(&args[1]).expect("tokenizer.json");
    let tok = HfTokenizer::from_json_str(&json).expect("load");
    let text = std::fs::read_to_string(&args[2]).expect("docs");
    let docs: Vec<&str> = text.split('\0').collect();
    let bytes: usize = docs.iter().map(|d| d.len()).sum();
    let reps: usize = common::reps(5);
    let mut ts = Vec::with_capacity(reps);
    let mut n = 0;
    for _ in 0..reps {
        n = 0;
        let t = thread_cpu();
        for d in &docs {
            n += tok.encode(d, false).expect("encode").len();
        }
        ts.push(thread_cpu() - t);
    }
    ts.sort_by(f64::total_cmp);
    let med = ts[ts.len() / 2];
    println!(
        "{} docs, {bytes} bytes, {n} tokens, {:.1} MB/s",
        docs.len(),
        bytes as f64 / med / 1e6
    );
}
