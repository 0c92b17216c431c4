//! Pure-Rust timing of long single pieces (issue 3's worst cases): each file is encoded
//! whole with `encode_ordinary`, `REPS` times (default 20), and the median thread CPU
//! time per byte printed.
//!
//! `cargo run --release -p supertok-core --example long_profile -- VOCAB.tiktoken PATTERN FILE...`
//! where PATTERN is r50k, cl100k or o200k.

mod common;
use common::thread_cpu;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: long_profile VOCAB PATTERN(r50k|cl100k|o200k) FILE...");
        std::process::exit(2);
    }
    let enc = common::load_encoding(&args[1], &args[2]);
    let reps: usize = common::reps(20);
    for path in &args[3..] {
        let text = std::fs::read_to_string(path).expect("input");
        let mut out = Vec::new();
        let warm = (0..=text.len().min(1000))
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        enc.encode_ordinary_into(&text[..warm], &mut out)
            .expect("encode");
        let mut ts = Vec::with_capacity(reps);
        for _ in 0..reps {
            out.clear();
            let t = thread_cpu();
            enc.encode_ordinary_into(&text, &mut out).expect("encode");
            ts.push(thread_cpu() - t);
        }
        ts.sort_by(f64::total_cmp);
        let med = ts[ts.len() / 2];
        println!(
            "{path}: {} bytes, {} tokens, {:.1} MB/s, {:.1} ns/byte",
            text.len(),
            out.len(),
            text.len() as f64 / med / 1e6,
            med / text.len() as f64 * 1e9
        );
    }
}
