//! In-process A/B of the encoder's piece loop on the whole-corpus stream: variant 0 is
//! the reference loop (the pre-tokenizer's callback and [`CoreEncoding::encode_piece`]
//! per piece), variant 1 `encode_ordinary_into`, variant 2 the same without deferred non-token pieces
//! (`encode_ordinary_undeferred`). Each pass encodes every document of
//! <= 8 KB once with the piece cache cleared first; the variants run interleaved (the
//! order rotating every round) and the medians of thread CPU time are compared. Add a
//! variant here to measure an alternative against both.
//!
//! `ROUNDS=7 VARS=0,1 cargo run --release -p supertok-core --example stream_ab -- VOCAB PATTERN CORPUS...`

use supertok_core::CoreEncoding;

mod common;
use common::chunks;

/// Encode `d` with variant `v` into `out`.
fn run(enc: &CoreEncoding, v: usize, d: &str, out: &mut Vec<u32>) {
    match v {
        0 => {
            let b = d.as_bytes();
            enc.pretokenizer()
                .for_each_piece(d, |x, y| enc.encode_piece(&b[x..y], out))
                .unwrap()
        }
        // the piece loop without deferred non-token pieces
        2 => enc.encode_ordinary_undeferred(d, out).unwrap(),
        _ => enc.encode_ordinary_into(d, out).unwrap(),
    }
}

fn main() {
    let (enc, paths) = common::encoder_args("stream_ab");
    let rounds = common::env_usize("ROUNDS", 5);
    let vars = common::variants(&[0, 1]);
    for path in &paths {
        let text = std::fs::read_to_string(path).expect("corpus");
        let docs = chunks(&text);
        let nb = text.len() as f64;
        let (mut out, mut want) = (Vec::new(), Vec::new());
        for d in &docs {
            want.clear();
            run(&enc, 0, d, &mut want);
            for &v in &vars {
                out.clear();
                run(&enc, v, d, &mut out);
                assert_eq!(out, want, "variant {v} differs");
            }
        }
        let m = common::interleaved_medians(&vars, rounds, |v| {
            for d in &docs {
                out.clear();
                run(&enc, v, d, &mut out);
            }
        });
        let cols = common::variant_columns(&vars, &m, nb);
        println!("{path}: {cols}");
    }
}
