//! Micro-benchmark of the log-sum-exp row kernels: ns per value for every instruction set,
//! contiguous and gathered, f64 and f32 rows.
//!
//! `cargo run --release --example exp_kernels -- [VALUES] [ROW] [REPEATS]`

use supertok_core::bytes::math::{exp_sum, Isa, LogProb};

mod common;
use common::thread_cpu;

fn lcg(s: &mut u64) -> u64 {
    *s = s
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *s >> 33
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(45_000, |s| s.parse().expect("values"));
    let width: usize = args.get(2).map_or(100_256, |s| s.parse().expect("row"));
    let reps: usize = args.get(3).map_or(200, |s| s.parse().expect("repeats"));
    let mut st = 1u64;
    let row: Vec<f64> = (0..width)
        .map(|_| -((lcg(&mut st) % 30_000) as f64) / 1000.0)
        .collect();
    let row32: Vec<f32> = row.iter().map(|&x| x as f32).collect();
    let mut idx: Vec<u32> = (0..width as u32).collect();
    for i in (1..idx.len()).rev() {
        idx.swap(i, (lcg(&mut st) as usize) % (i + 1));
    }
    idx.truncate(n);
    let mut sorted = idx.clone();
    sorted.sort_unstable();
    let slice = &row[..n];
    for isa in Isa::available() {
        let time = |f: &dyn Fn() -> f64| {
            let mut best = f64::INFINITY;
            let mut sink = 0.0;
            for _ in 0..5 {
                let t = thread_cpu();
                for _ in 0..reps {
                    sink += f();
                }
                best = best.min((thread_cpu() - t) / (reps * n) as f64 * 1e9);
            }
            std::hint::black_box(sink);
            best
        };
        let a = time(&|| exp_sum(std::hint::black_box(slice), isa).sum);
        let b = time(&|| f64::gather_exp_sum(&row, std::hint::black_box(&idx), isa).sum);
        let c = time(&|| f64::gather_exp_sum(&row, std::hint::black_box(&sorted), isa).sum);
        let d = time(&|| f32::gather_exp_sum(&row32, std::hint::black_box(&idx), isa).sum);
        println!(
            "{isa:?}: slice {a:.3} ns/value, gather f64 random {b:.3}, sorted {c:.3}, gather f32 random {d:.3}"
        );
    }
}
