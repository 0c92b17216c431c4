//! Pure-Rust timing of long single pieces (issue 3's worst cases): each file is encoded
//! whole with `encode_ordinary`, `REPS` times (default 20), and the median thread CPU
//! time per byte printed.
//!
//! `cargo run --release -p supertok-core --example long_profile -- VOCAB.tiktoken PATTERN FILE...`
//! where PATTERN is r50k, cl100k or o200k. With `EVICT=MiB` set, that many MiB are
//! written between the timed calls (not timed), so each call starts with cold caches,
//! as in the interleaved benchmarks (`benches/encode_ab.py --worst`).

mod common;
use common::thread_cpu;

fn main() {
    let (enc, paths) = common::encoder_args("long_profile");
    let reps: usize = common::reps(20);
    let evict_mib: usize = std::env::var("EVICT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut junk = vec![0u8; evict_mib << 20];
    for path in &paths {
        let text = std::fs::read_to_string(path).expect("input");
        let mut out = Vec::new();
        let warm = (0..=text.len().min(1000))
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        enc.encode_ordinary_into(&text[..warm], &mut out)
            .expect("encode");
        let mut ts = Vec::with_capacity(reps);
        for r in 0..reps {
            for i in (0..junk.len()).step_by(64) {
                junk[i] = junk[i].wrapping_add(r as u8 | 1);
            }
            std::hint::black_box(&junk);
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
