//! In-process A/B of encoder paths on the whole-corpus stream (temporary).
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
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let vars: Vec<usize> = std::env::var("VARS")
        .ok()
        .map(|s| s.split(',').map(|x| x.parse().unwrap()).collect())
        .unwrap_or(vec![1, 2, 3, 4]);
    let run = |v: usize, d: &str, out: &mut Vec<u32>| match v {
        0 => enc.encode_ordinary_into_unbatched(d, out).unwrap(),
        1 => enc.encode_ordinary_into_v::<0>(d, out).unwrap(),
        2 => enc.encode_ordinary_into_v::<1>(d, out).unwrap(),
        3 => enc.encode_ordinary_into_v::<2>(d, out).unwrap(),
        _ => enc.encode_ordinary_into_v::<4>(d, out).unwrap(),
    };
    for path in &args[3..] {
        let text = std::fs::read_to_string(path).expect("corpus");
        let docs = chunks(&text);
        let nb = text.len() as f64;
        let mut out = Vec::new();
        let mut out2 = Vec::new();
        for d in &docs {
            out2.clear();
            run(0, d, &mut out2);
            for &v in &vars {
                out.clear();
                run(v, d, &mut out);
                assert_eq!(out, out2);
            }
        }
        let mut t: Vec<Vec<f64>> = vec![vec![]; vars.len()];
        for r in 0..rounds {
            for k in 0..vars.len() {
                let k = (k + r) % vars.len();
                piece_cache::clear_thread();
                let t0 = thread_cpu();
                for d in &docs {
                    out.clear();
                    run(vars[k], d, &mut out);
                }
                t[k].push(thread_cpu() - t0);
            }
        }
        let m: Vec<f64> = t.into_iter().map(median).collect();
        let s: Vec<String> = vars
            .iter()
            .zip(&m)
            .map(|(v, x)| format!("v{v} {:.2} ns/B ({:.3}x)", x * 1e9 / nb, m[0] / x))
            .collect();
        println!("{}: {}", path.rsplit('/').next().unwrap(), s.join("  "));
    }
}
