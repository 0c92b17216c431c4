//! Profile the SuperBPE stage-2 replay alone on one file:
//! `cargo run --release --example replay_profile -- FILE [VOCAB] [TRANSITION] [ROUNDS]`
//! (paper presets, 2 threads). Counts both stages and trains stage 1 once, then replays the
//! stage-1 merges on (a copy of) the stage-2 chunks `ROUNDS` times and prints the wall and
//! process-CPU time of each round and a digest of the replayed positions, tokens and counts
//! (to check that an optimisation of the replay changes nothing).
mod common;
use common::process_cpu;
use std::time::Instant;
use supertok_core::util::thread_runs_since as thread_runs;

use supertok_core::superbpe::{self, replay};
use supertok_core::train::{self, LineSplitter, Utf8Errors};

fn main() {
    let run = common::SuperbpeRun::from_args(5);
    let rounds = run.n;
    let (s1, s2, files) = (&run.s1, &run.s2, &run.files);
    let pool = run.pool(2);
    pool.install(|| {
        let c1 = train::count_files(LineSplitter(s1), files, Utf8Errors::Strict, &mut |_| Ok(()))
            .expect("count 1");
        let c2 = train::count_files(LineSplitter(s2), files, Utf8Errors::Strict, &mut |_| Ok(()))
            .expect("count 2");
        let cfg = run.stage1_config();
        let o1 = train::train_bpe(&c1, &cfg, None, &mut |_| Ok(())).expect("stage 1");
        let stage1 = superbpe::merges_as_bytes(&o1.vocab, &o1.merges);
        let table = replay::ReplayTable::new(&stage1).expect("table");
        for r in 0..rounds {
            let chunks = c2.clone();
            let runs = thread_runs(&[]).1;
            let (t0, c0) = (Instant::now(), process_cpu());
            let seg = replay::replay_counts(&table, chunks, &mut |_, _| Ok(())).expect("replay");
            let (wall, cpu) = (t0.elapsed().as_secs_f64(), process_cpu() - c0);
            let per = thread_runs(&runs).0;
            // Order-independent digest: chunks are emitted in the map's order.
            let mut h = 0u64;
            for (i, &s) in seg.starts.iter().enumerate() {
                let e = seg.starts.get(i + 1).map_or(seg.syms.len(), |&e| e as usize);
                let mut x: u64 = 0xcbf2_9ce4_8422_2325 ^ seg.counts[i];
                for &t in &seg.syms[s as usize..e] {
                    x = (x ^ t as u64).wrapping_mul(0x100_0000_01b3);
                }
                h = h.wrapping_add(x);
            }
            for (q, &c) in seg.merge_counts.iter().enumerate() {
                h = h.wrapping_add((c ^ q as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            }
            println!(
                "round {r}: replay {wall:.3} s wall {cpu:.2} s CPU (threads ms: {per}); {} chunks, {} positions, digest {h:016x}",
                seg.starts.len(),
                seg.syms.len()
            );
        }
    });
}
