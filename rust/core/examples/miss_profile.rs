//! The merges of the stream's misses in isolation: the distinct non-token pieces of
//! fewer than 128 bytes of each corpus, merged with the byte-rank merge
//! (`rank_bpe::encode_with_chars`, what the encoder uses) and with the backtracking search
//! (`Backtrack::encode`, checked equal), medians of thread CPU time per piece.
//!
//! `cargo run --release -p supertok-core --example miss_profile -- VOCAB PATTERN CORPUS...`
//! (PATTERN: r50k, cl100k or o200k; `REPS`, default 5). `HOT=k` merges only the first `k`
//! pieces, cycled to the same count (a small working set: the index's lines stay in cache,
//! and the branch predictor learns the pieces' outcomes).

use supertok_core::atomic_chars::AtomicChars;
use supertok_core::backtrack::Backtrack;
use supertok_core::rank_bpe;

mod common;
use common::{chunks, thread_cpu};

fn main() {
    let (enc, paths) = common::encoder_args("miss_profile");
    let vocab = enc.vocab();
    let chars = AtomicChars::build(vocab);
    let bt = Backtrack::build(vocab).expect("the vocabulary qualifies for backtracking");
    let reps: usize = common::reps(5);
    for path in &paths {
        let text = std::fs::read_to_string(path).expect("corpus");
        let mut seen = std::collections::HashSet::new();
        let mut pieces: Vec<&[u8]> = vec![];
        for d in chunks(&text) {
            let b = d.as_bytes();
            enc.pretokenizer()
                .for_each_piece(d, |a, e| {
                    let p = &b[a..e];
                    if p.len() < rank_bpe::LINEAR_MAX && vocab.get(p).is_none() && seen.insert(p) {
                        pieces.push(p);
                    }
                    Ok(())
                })
                .expect("lexing");
        }
        if let Some(h) = std::env::var("HOT")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
        {
            let total = pieces.len();
            let hot: Vec<&[u8]> = pieces[..h.min(total)].to_vec();
            pieces = hot.iter().cycle().take(total).copied().collect();
        }
        let (mut bytes, mut toks) = (0usize, 0usize);
        let (mut out, mut out2) = (vec![], vec![]);
        for p in &pieces {
            bytes += p.len();
            out.clear();
            rank_bpe::encode_with_chars(vocab, &chars, p, &mut out).expect("merge");
            toks += out.len();
            out2.clear();
            assert_eq!(bt.encode(vocab, p, &mut out2), Ok(true));
            assert_eq!(out, out2, "{:?}", String::from_utf8_lossy(p));
        }
        let np = pieces.len().max(1) as f64;
        let (mut ta, mut tb) = (vec![], vec![]);
        for _ in 0..reps {
            let t = thread_cpu();
            for p in &pieces {
                out.clear();
                rank_bpe::encode_with_chars(vocab, &chars, p, &mut out).expect("merge");
            }
            ta.push(thread_cpu() - t);
            let t = thread_cpu();
            for p in &pieces {
                out.clear();
                let _ = bt.encode(vocab, p, &mut out);
            }
            tb.push(thread_cpu() - t);
        }
        println!(
            "{}: {} pieces, {:.1} bytes and {:.1} tokens each | rank_bpe {:.0} ns | backtrack {:.0} ns",
            path.rsplit('/').next().unwrap_or(path),
            pieces.len(),
            bytes as f64 / np,
            toks as f64 / np,
            common::median(ta) * 1e9 / np,
            common::median(tb) * 1e9 / np
        );
    }
}
