//! In-process A/B of two encoder paths on the whole-corpus stream (temporary).
use supertok_core::piece_cache;

mod common;
use common::{chunks, thread_cpu};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let enc = common::load_encoding(&args[1], &args[2]);
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    for path in &args[3..] {
        let text = std::fs::read_to_string(path).expect("corpus");
        let docs = chunks(&text);
        let nb = text.len() as f64;
        let mut out = Vec::new();
        let mut out2 = Vec::new();
        for d in &docs {
            out.clear();
            out2.clear();
            enc.encode_ordinary_into(d, &mut out).unwrap();
            enc.encode_ordinary_into_unbatched(d, &mut out2).unwrap();
            assert_eq!(out, out2);
        }
        let (mut ta, mut tb) = (vec![], vec![]);
        for r in 0..rounds {
            let only: Option<usize> = std::env::var("ONLY").ok().and_then(|s| s.parse().ok());
            for v in [r % 2, 1 - r % 2] {
                if only.is_some_and(|o| o != v) {
                    ta.push(0.0);
                    continue;
                }
                piece_cache::clear_thread();
                let t = thread_cpu();
                for d in &docs {
                    out.clear();
                    if v == 0 {
                        enc.encode_ordinary_into_unbatched(d, &mut out).unwrap();
                    } else {
                        enc.encode_ordinary_into(d, &mut out).unwrap();
                    }
                }
                let dt = thread_cpu() - t;
                if v == 0 { ta.push(dt) } else { tb.push(dt) }
            }
        }
        let (a, b) = (median(ta), median(tb));
        println!(
            "{path}: A(old) {:.2} ns/B  B(new) {:.2} ns/B  B/A speed {:.3}x",
            a * 1e9 / nb,
            b * 1e9 / nb,
            a / b
        );
    }
}
