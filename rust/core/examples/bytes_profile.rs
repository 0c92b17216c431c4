//! Profile the Rust side of exact byte-level scoring (no LM: every node gets the same
//! synthetic row, so only the tokenizer-side work and the row reading are timed).
//!
//! `cargo run --release --example bytes_profile -- VOCAB.tiktoken en.txt [BYTES] [f32|f64] [REPEATS]`
use std::sync::Arc;
use std::time::Instant;

use supertok_core::bytes::tree::{ByteTokenizer, ByteTree};
use supertok_core::pretok::patterns;
use supertok_core::CoreEncoding;

mod common;
use common::thread_cpu;

fn held_out(text: &str, n_bytes: usize) -> Vec<String> {
    let tail = &text[text.len() * 9 / 10..];
    let tail = match tail.find('\n') {
        Some(i) => &tail[i + 1..],
        None => tail,
    };
    let mut chunks = Vec::new();
    let mut cur = String::new();
    let mut total = 0;
    for line in tail.split_inclusive('\n') {
        if line.len() <= 40 {
            continue;
        }
        cur.push_str(line);
        if cur.len() >= 1000 {
            total += cur.len();
            chunks.push(std::mem::take(&mut cur));
            if total >= n_bytes {
                break;
            }
        }
    }
    chunks
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let vocab = std::fs::read(&args[1]).expect("vocab file");
    let text = std::fs::read_to_string(&args[2]).expect("corpus");
    let n_bytes: usize = args.get(3).map_or(16000, |s| s.parse().expect("bytes"));
    let f32_rows = args.get(4).is_some_and(|s| s == "f32");
    let repeats: usize = args.get(5).map_or(3, |s| s.parse().expect("repeats"));
    let enc = CoreEncoding::from_tiktoken_bytes(
        &vocab,
        &args[1],
        vec![("<|endoftext|>".to_string(), 100257)],
        patterns::CL100K,
    )
    .expect("encoding");
    let t = Instant::now();
    let bt = Arc::new(ByteTokenizer::new(Arc::new(enc)).expect("analysis"));
    eprintln!("analysis {:.2} s", t.elapsed().as_secs_f64());
    let n = bt.n_ids();
    // a deterministic, normalised synthetic row
    let mut row: Vec<f64> = (0..n as u64)
        .map(|i| {
            let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) % 1000;
            -(h as f64) / 40.0
        })
        .collect();
    let z = supertok_core::bytes::math::logsumexp(&row);
    row.iter_mut().for_each(|x| *x -= z);
    let row32: Vec<f32> = row.iter().map(|&x| x as f32).collect();
    let chunks = held_out(&text, n_bytes);
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    // warm-up (look-ahead shapes, pair memo)
    for c in chunks.iter().take(2) {
        run(&bt, c, &row, &row32, f32_rows);
    }
    for _ in 0..repeats {
        let (mut tt, mut tr) = (0.0, 0.0);
        let mut st = supertok_core::bytes::tree::TreeStats::default();
        for c in &chunks {
            let (a, b, s) = run(&bt, c, &row, &row32, f32_rows);
            tt += a;
            tr += b;
            st.evaluated += s.evaluated;
            st.values_read += s.values_read;
            st.tree_ns += s.tree_ns;
            st.row_ns += s.row_ns;
        }
        let per = |x: u64| x as f64 / total as f64;
        println!(
            "{total} bytes: thread CPU: tree {:.2} µs/B, rows {:.2} µs/B | wall (internal): tree {:.2} µs/B, rows {:.2} µs/B | positions/B {:.3}, values read/B {:.0}",
            tt / total as f64 * 1e6,
            tr / total as f64 * 1e6,
            per(st.tree_ns) / 1e3,
            per(st.row_ns) / 1e3,
            per(st.evaluated),
            per(st.values_read),
        );
    }
}

fn run(
    bt: &Arc<ByteTokenizer>,
    text: &str,
    row: &[f64],
    row32: &[f32],
    f32_rows: bool,
) -> (f64, f64, supertok_core::bytes::tree::TreeStats) {
    let data = text.as_bytes();
    let mut tree = ByteTree::scoring(bt.clone(), data.to_vec());
    let (mut tt, mut tr) = (0.0, 0.0);
    let mut lp = 0.0;
    let feed = |tree: &mut ByteTree, tr: &mut f64| {
        let t = thread_cpu();
        let ids = tree.pending().to_vec();
        for id in ids {
            if f32_rows {
                tree.set_row_with(id, row32, None).expect("row");
            } else {
                tree.set_row_with(id, row, None).expect("row");
            }
        }
        *tr += thread_cpu() - t;
    };
    feed(&mut tree, &mut tr);
    for &b in data {
        let t = thread_cpu();
        lp += tree.target_logprob(Some(b)).expect("target");
        tree.push(b).expect("push");
        tt += thread_cpu() - t;
        feed(&mut tree, &mut tr);
    }
    lp += tree.target_logprob(None).expect("eot");
    assert!(lp.is_finite());
    (tt, tr, tree.stats())
}
