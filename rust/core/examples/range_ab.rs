//! In-process A/B of the ranged encoder behind `encode_ordinary_parallel` on one thread:
//! the text (the corpus repeated to at least `MB` MB, default 4) is cut into ~128 KB
//! blocks as the parallel call cuts it, and each pass encodes every block in order on
//! this thread with the piece cache cleared first. Variant 0 is the sequential call
//! (`encode_ordinary_into` of the whole text), 1 the ranged encoder
//! (`encode_ordinary_range`, deferring non-token pieces), 2 the ranged encoder without
//! the deferral (`encode_ordinary_range_undeferred`), 3 the same as 1 (an A/A pair for
//! the noise). `VARS=0,1,2` (the default) picks the variants; they run interleaved (the
//! order rotating every round); medians of thread CPU time, ratios against the first.
//!
//! `ROUNDS=7 cargo run --release -p supertok-core --example range_ab -- VOCAB PATTERN CORPUS...`

use supertok_core::CoreEncoding;

mod common;

fn run(enc: &CoreEncoding, v: usize, text: &str, ranges: &[(usize, usize)], out: &mut Vec<u32>) {
    match v {
        0 => enc.encode_ordinary_into(text, out).unwrap(),
        _ => {
            for &(a, b) in ranges {
                if v != 2 {
                    enc.encode_ordinary_range(text, a, b, out).unwrap();
                } else {
                    enc.encode_ordinary_range_undeferred(text, a, b, out)
                        .unwrap();
                }
            }
        }
    }
}

fn main() {
    let (enc, paths) = common::encoder_args("range_ab");
    let rounds = common::env_usize("ROUNDS", 5);
    let mb = common::env_usize("MB", 4);
    let vars = common::variants(&[0, 1, 2]);
    for path in &paths {
        let one = std::fs::read_to_string(path).expect("corpus");
        let mut text = String::new();
        while text.len() < mb << 20 {
            text.push_str(&one);
        }
        let ranges = enc.parallel_ranges(&text, (text.len() / (128 << 10)).max(2));
        let nb = text.len() as f64;
        let (mut out, mut want) = (Vec::new(), Vec::new());
        run(&enc, 0, &text, &ranges, &mut want);
        for &v in &vars {
            out.clear();
            run(&enc, v, &text, &ranges, &mut out);
            assert_eq!(out, want, "variant {v} differs");
        }
        let m = common::interleaved_medians(&vars, rounds, |v| {
            out.clear();
            run(&enc, v, &text, &ranges, &mut out);
        });
        let cols = common::variant_columns(&vars, &m, nb);
        println!("{path} ({} blocks): {cols}", ranges.len());
    }
}
