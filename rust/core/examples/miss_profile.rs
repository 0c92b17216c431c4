//! Miss merges of the stream: the distinct non-token pieces below 128 bytes of each
//! corpus, timed with the byte-rank merge and with the backtracking search.
//! `cargo run --release -p supertok-core --example miss_profile -- VOCAB PATTERN CORPUS...`

use supertok_core::atomic_chars::AtomicChars;
use supertok_core::backtrack::Backtrack;
use supertok_core::rank_bpe;

use supertok_core::vocab::Vocab;

const MAX: u32 = u32::MAX;
static mut PLAIN: bool = false;
const LM: usize = 128;

#[inline(always)]
fn rank(vocab: &Vocab, piece: &[u8], a: usize, b: usize, max_len: usize, st: &mut [u64; 4]) -> u32 {
    st[0] += 1;
    if b - a > max_len {
        return MAX;
    }
    let r = if unsafe { PLAIN } {
        vocab.get(&piece[a..b])
    } else {
        vocab.get_filtered(&piece[a..b])
    }
    .unwrap_or(MAX);
    if r != MAX {
        st[1] += 1;
    }
    r
}

/// copy of rank_bpe::linear with counters; `init_only` stops after the first lookups
#[inline(never)]
fn lin(
    vocab: &Vocab,
    chars: &AtomicChars,
    piece: &[u8],
    out: &mut Vec<u32>,
    st: &mut [u64; 4],
    mode: u32,
) {
    let n = piece.len();
    let max_len = vocab.max_token_len();
    let mut keys = [MAX; LM];
    let mut end = [0u8; LM];
    let mut prev = [0u8; LM];
    let mut ids = [MAX; LM];
    let key = |r: u32, i: usize| if r == MAX { MAX } else { (r << 7) | i as u32 };
    let mut last = usize::MAX;
    let mut i = 0;
    while i < n {
        let mut len = 1;
        if piece[i] >= 0xc2 {
            if let Some((l, first, id)) = chars.at_parts(piece, i) {
                if first == l {
                    ids[i] = id;
                    len = l;
                } else {
                    end[i] = (i + first) as u8;
                    prev[i] = last as u8;
                    last = i;
                    if first > 1 {
                        ids[i] = id;
                    }
                    i += first;
                    len = l - first;
                    if len > 1 {
                        ids[i] = id;
                    }
                }
            }
        }
        end[i] = (i + len) as u8;
        prev[i] = last as u8;
        last = i;
        i += len;
    }
    let mut i = 0;
    while end[i] as usize != n {
        let j = end[i] as usize;
        keys[i] = key(rank(vocab, piece, i, end[j] as usize, max_len, st), i);
        i = j;
    }
    if mode == 1 {
        out.push(keys[0]);
        return;
    }
    let keys_n = &mut keys[..n];
    if mode == 2 {
        loop {
            // two smallest keys (keys are distinct unless MAX)
            let (mut m1, mut m2) = (MAX, MAX);
            for &x in keys_n.iter() {
                m2 = m2.min(m1.max(x));
                m1 = m1.min(x);
            }
            if m1 == MAX {
                break;
            }
            st[2] += 1;
            let at = (m1 & 127) as usize;
            let j = end[at] as usize;
            let k = end[j] as usize;
            let ka = if k < n {
                key(rank(vocab, piece, at, end[k] as usize, max_len, st), at)
            } else {
                MAX
            };
            let p = prev[at] as usize;
            let kp = if at > 0 {
                key(rank(vocab, piece, p, k, max_len, st), p)
            } else {
                MAX
            };
            // second merge at b, if separated from at's by at least one part
            let mut second = None;
            if m2 != MAX {
                let b = (m2 & 127) as usize;
                let jb = end[b] as usize;
                let kb = end[jb] as usize;
                let far = if b > at {
                    k < n && b >= end[k] as usize
                } else {
                    kb < n && at >= end[kb] as usize
                };
                if far {
                    let kbb = if kb < n {
                        key(rank(vocab, piece, b, end[kb] as usize, max_len, st), b)
                    } else {
                        MAX
                    };
                    let pb = prev[b] as usize;
                    let kpb = if b > 0 {
                        key(rank(vocab, piece, pb, kb, max_len, st), pb)
                    } else {
                        MAX
                    };
                    if m2 < ka && m2 < kp {
                        second = Some((b, jb, kb, pb, kbb, kpb));
                    }
                }
            }
            ids[at] = m1 >> 7;
            end[at] = k as u8;
            keys_n[j] = MAX;
            keys_n[at] = ka;
            if k < n {
                prev[k] = at as u8;
            }
            if at > 0 {
                keys_n[p] = kp;
            }
            if let Some((b, jb, kb, pb, kbb, kpb)) = second {
                st[3] += 1;
                ids[b] = m2 >> 7;
                end[b] = kb as u8;
                keys_n[jb] = MAX;
                keys_n[b] = kbb;
                if kb < n {
                    prev[kb] = b as u8;
                }
                if b > 0 {
                    keys_n[pb] = kpb;
                }
            }
        }
    } else {
        loop {
            let k_min = keys_n.iter().fold(MAX, |a, &b| a.min(b));
            if k_min == MAX {
                break;
            }
            st[2] += 1;
            let at = (k_min & 127) as usize;
            let best = k_min >> 7;
            let j = end[at] as usize;
            let k = end[j] as usize;
            ids[at] = best;
            end[at] = k as u8;
            keys_n[j] = MAX;
            keys_n[at] = if k < n {
                prev[k] = at as u8;
                key(rank(vocab, piece, at, end[k] as usize, max_len, st), at)
            } else {
                MAX
            };
            if at > 0 {
                let p = prev[at] as usize;
                keys_n[p] = key(rank(vocab, piece, p, k, max_len, st), p);
            }
        }
    }
    let mut i = 0;
    while i < n {
        let e = end[i] as usize;
        out.push(if e - i == 1 {
            vocab.byte_id(piece[i]).unwrap()
        } else {
            ids[i]
        });
        i = e;
    }
}

mod common;
use common::{chunks, thread_cpu};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let enc = common::load_encoding(&args[1], &args[2]);
    let vocab = enc.vocab();
    let chars = AtomicChars::build(vocab);
    let bt = Backtrack::build(vocab).expect("backtrack");
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    for path in &args[3..] {
        let text = std::fs::read_to_string(path).expect("corpus");
        let mut seen = std::collections::HashSet::new();
        let mut pieces: Vec<&[u8]> = vec![];
        for d in chunks(&text) {
            let b = d.as_bytes();
            enc.pretokenizer()
                .for_each_piece(d, |a, e| {
                    let p = &b[a..e];
                    if p.len() < 128 && vocab.get(p).is_none() && seen.insert(p) {
                        pieces.push(p);
                    }
                    Ok(())
                })
                .unwrap();
        }
        let (mut bytes, mut parts, mut toks) = (0usize, 0usize, 0usize);
        let mut out = vec![];
        let mut out2 = vec![];
        let mut lens = [0usize; 5];
        for p in &pieces {
            bytes += p.len();
            lens[(p.len() / 8).min(4)] += 1;
            let mut i = 0;
            while i < p.len() {
                let l = match chars.at_parts(p, i) {
                    Some((l, f, _)) if f == l => l,
                    Some((_, f, _)) => {
                        parts += 1;
                        f + 1 // approx (split: first part then the rest)
                    }
                    None => 1,
                };
                parts += 1;
                i += l.max(1);
            }
            out.clear();
            rank_bpe::encode_with_chars(vocab, &chars, p, &mut out).unwrap();
            toks += out.len();
            out2.clear();
            assert_eq!(bt.encode(vocab, p, &mut out2), Ok(true));
            assert_eq!(out, out2, "{:?}", String::from_utf8_lossy(p));
            let mut st = [0u64; 4];
            out2.clear();
            lin(vocab, &chars, p, &mut out2, &mut st, 2);
            assert_eq!(out, out2, "top2 {:?}", String::from_utf8_lossy(p));
        }
        let np = pieces.len() as f64;
        let (mut ta, mut tb, mut tc, mut td) = (vec![], vec![], vec![], vec![]);
        let mut stats = [0u64; 4];
        let mut stats2 = [0u64; 4];
        let mut te = vec![];
        for _ in 0..reps {
            let t = thread_cpu();
            for p in &pieces {
                out.clear();
                rank_bpe::encode_with_chars(vocab, &chars, p, &mut out).unwrap();
            }
            ta.push(thread_cpu() - t);
            let mut st = [0u64; 4];
            unsafe { PLAIN = std::env::var("PLAIN").is_ok() };
            let t = thread_cpu();
            for p in &pieces {
                out.clear();
                lin(vocab, &chars, p, &mut out, &mut st, 0);
            }
            tc.push(thread_cpu() - t);
            stats = st;
            let t = thread_cpu();
            for p in &pieces {
                out.clear();
                lin(vocab, &chars, p, &mut out, &mut st, 1);
            }
            td.push(thread_cpu() - t);
            let mut st2 = [0u64; 4];
            let t = thread_cpu();
            for p in &pieces {
                out.clear();
                lin(vocab, &chars, p, &mut out, &mut st2, 2);
            }
            te.push(thread_cpu() - t);
            stats2 = st2;
            let t = thread_cpu();
            if std::env::var("SKIP_BT").is_err() {
                for p in &pieces {
                    out.clear();
                    let _ = bt.encode(vocab, p, &mut out);
                }
            }
            tb.push(thread_cpu() - t);
        }
        let (a, b) = (median(ta), median(tb));
        println!(
            "  copy {:.0} ns, init only {:.0} ns; lookups {:.1} hits {:.1} merges {:.1} per piece",
            median(tc) * 1e9 / np,
            median(td) * 1e9 / np,
            stats[0] as f64 / np,
            stats[1] as f64 / np,
            stats[2] as f64 / np
        );
        println!(
            "  top2 {:.0} ns: lookups {:.1} steps {:.1} doubles {:.1}",
            median(te) * 1e9 / np,
            stats2[0] as f64 / np,
            stats2[2] as f64 / np,
            stats2[3] as f64 / np
        );
        println!(
            "{}: {} pieces, {:.1} B, {:.1} parts, {:.1} tokens each, len/8 hist {:?} | rank_bpe {:.0} ns | backtrack {:.0} ns",
            path.rsplit('/').next().unwrap(),
            pieces.len(),
            bytes as f64 / np,
            parts as f64 / np,
            toks as f64 / np,
            lens,
            a * 1e9 / np,
            b * 1e9 / np
        );
    }
}
