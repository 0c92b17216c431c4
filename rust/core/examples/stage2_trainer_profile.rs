//! Profile the stage-2 trainer of SuperBPE alone (build, lean pair rebuild, greedy loop),
//! repeated on the same replayed segmentation:
//! `cargo run --release --example stage2_trainer_profile -- FILE [VOCAB] [TRANSITION] [REPS]`
//! (paper presets, filters on, 2 threads). Stage 1 and the replay run once; each repetition
//! rebuilds the trainer from a copy of the replayed chunks and prints wall and per-thread
//! run time of the three phases, then the medians and an FNV digest of the merges (the
//! same as `superbpe_profile`'s).
mod common;
use std::time::Instant;
use supertok_core::util::thread_runs_since as thread_runs;

/// Summed run time (ms) of this process's threads since `before`.
fn cpu_ms(before: &[(String, u64)], now: &[(String, u64)]) -> f64 {
    now.iter()
        .filter(|(n, _)| n.ends_with(" run"))
        .map(|(n, ns)| {
            let b = before.iter().find(|(m, _)| m == n).map_or(0, |r| r.1);
            ns.saturating_sub(b) as f64 / 1e6
        })
        .sum()
}

use supertok_core::superbpe::{replay, Filters};
use supertok_core::train::{self, GreedyOptions, LineSplitter, Trainer, Utf8Errors};

fn main() {
    let run = common::SuperbpeRun::from_args(5);
    let (vocab, reps) = (run.vocab, run.n);
    let (s1, s2, files) = (&run.s1, &run.s2, &run.files);
    let pool = run.pool(2);
    pool.install(|| {
        let c1 = train::count_files(LineSplitter(s1), files, Utf8Errors::Strict, &mut |_| Ok(()))
            .expect("count 1");
        let cfg = run.stage1_config();
        let o1 = train::train_bpe(&c1, &cfg, None, &mut |_| Ok(())).expect("stage 1");
        let c2 = train::count_files(LineSplitter(s2), files, Utf8Errors::Strict, &mut |_| Ok(()))
            .expect("count 2");
        let vocab1: Vec<&[u8]> = o1.vocab.iter().map(|t| &t[..]).collect();
        let merges1: Vec<(u32, u32)> = o1.merges.iter().map(|m| (m.left, m.right)).collect();
        let table = replay::ReplayTable::from_ids(&vocab1, &merges1).expect("table");
        let n_chunks = c2.len();
        let seg = replay::replay_counts(&table, c2, &mut |_, _| Ok(())).expect("replay");
        let seg = table
            .finish(seg, train::ReplayPolicy::Keep)
            .expect("finish");
        let filters = Filters {
            forbid: vec![b": ".to_vec()],
            max_words: Some(4),
        };
        let veto = |l: &[u8], r: &[u8]| filters.rejects(l, r);
        let opts = GreedyOptions {
            target_tokens: vocab,
            veto: Some(&veto),
            ..Default::default()
        };
        let mut laps: Vec<[f64; 3]> = Vec::new();
        let mut cpus: Vec<[f64; 3]> = Vec::new();
        let mut digest = 0u64;
        for _ in 0..reps {
            let (tokens, merges, syms, starts, counts) = (
                seg.tokens.clone(),
                seg.merges.clone(),
                seg.syms.clone(),
                seg.starts.clone(),
                seg.counts.clone(),
            );
            let mut runs = thread_runs(&[]).1;
            let mut t0 = Instant::now();
            let mut lap = |what: &str, i: usize, l: &mut [f64; 3], cp: &mut [f64; 3]| {
                let now = Instant::now();
                let (per, cur) = thread_runs(&runs);
                cp[i] = cpu_ms(&runs, &cur);
                runs = cur;
                l[i] = (now - t0).as_secs_f64() * 1e3;
                eprintln!("{what:16} {:7.1} ms wall {:7.1} ms CPU  (threads ms: {per})", l[i], cp[i]);
                t0 = now;
            };
            let mut l = [0f64; 3];
            let mut cp = [0f64; 3];
            let mut t = Trainer::from_segments(tokens, merges, syms, starts, counts, n_chunks, true)
                .expect("build");
            lap("trainer build", 0, &mut l, &mut cp);
            t.prepare_greedy(vocab);
            lap("pair rebuild", 1, &mut l, &mut cp);
            t.train_greedy(&opts, &mut |_| Ok(())).expect("greedy");
            lap("greedy", 2, &mut l, &mut cp);
            laps.push(l);
            cpus.push(cp);
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for m in t.merges() {
                for b in t.tokens()[m.left as usize]
                    .iter()
                    .chain([0xffu8, 0xfe].iter())
                    .chain(t.tokens()[m.right as usize].iter())
                    .chain([0xfdu8].iter())
                {
                    h ^= *b as u64;
                    h = h.wrapping_mul(0x100_0000_01b3);
                }
            }
            digest = h;
            eprintln!();
        }
        let med = |x: &[[f64; 3]], i: usize| {
            let mut v: Vec<f64> = x.iter().map(|l| l[i]).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        for (what, x) in [("wall", &laps), ("CPU", &cpus)] {
            println!(
                "{what:4} medians of {reps}: build {:.1} ms, rebuild {:.1} ms, greedy {:.1} ms, total {:.1} ms",
                med(x, 0),
                med(x, 1),
                med(x, 2),
                med(x, 0) + med(x, 1) + med(x, 2)
            );
        }
        println!("digest {digest:016x}");
    });
}
