//! TEMPORARY in-process A/B of `rank_bpe::AB_OLD`: the whole-corpus stream (documents of
//! <= 8 KB, piece cache cleared before each pass) and long single-piece files, old and
//! new interleaved, thread CPU time, medians.
use supertok_core::{piece_cache, rank_bpe};
use std::sync::atomic::Ordering;

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
    let (mut all_old, mut all_new) = (0.0, 0.0);
    let va: u32 = std::env::var("A").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let vb: u32 = std::env::var("B").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    println!("A = {va} (\"old\"), B = {vb} (\"new\")");
    for path in &args[3..] {
        let text = std::fs::read_to_string(path).expect("corpus");
        let long = path.contains("/w");
        let docs = if long { vec![&text[..]] } else { chunks(&text) };
        let mut out = Vec::new();
        let mut check = [Vec::new(), Vec::new()];
        let (mut t_old, mut t_new) = (vec![], vec![]);
        for r in 0..rounds {
            for old in [r % 2 == 0, r % 2 == 1] {
                rank_bpe::AB.store(if old { va } else { vb }, Ordering::Relaxed);
                supertok_core::backtrack::SEAMS.store(0, Ordering::Relaxed);
                supertok_core::backtrack::FAILS.store(0, Ordering::Relaxed);
                piece_cache::clear_thread();
                let t = thread_cpu();
                let mut n = 0;
                for d in &docs {
                    out.clear();
                    enc.encode_ordinary_into(d, &mut out).unwrap();
                    n += out.len();
                }
                let dt = thread_cpu() - t;
                if old { t_old.push(dt) } else { t_new.push(dt) }
                if r == 0 {
                    check[old as usize].push(n);
                    let sm = supertok_core::backtrack::SEAMS.load(Ordering::Relaxed);
                    if sm > 0 {
                        println!("   old={old}: seams {sm} failed {}", supertok_core::backtrack::FAILS.load(Ordering::Relaxed));
                    }
                }
            }
        }
        assert_eq!(check[0], check[1]);
        let (a, b) = (median(t_old), median(t_new));
        all_old += a;
        all_new += b;
        println!("{:>14}: old {:6.2} ns/B new {:6.2} ns/B  new/old speed {:.3}", path.rsplit('/').next().unwrap(), a * 1e9 / text.len() as f64, b * 1e9 / text.len() as f64, a / b);
    }
    println!("total: new/old speed {:.3}", all_old / all_new);
}
