//! Profile SuperBPE training phase by phase on one file:
//! `cargo run --release --example superbpe_profile -- FILE [VOCAB] [TRANSITION] [THREADS]`
//! (paper presets, filters on; stage 2 also builds the tokenizer). Prints wall / process-CPU time per phase and an FNV digest
//! of the final merge list (to check that an optimisation changes no merge).
mod common;
use common::process_cpu;
use std::time::Instant;
use supertok_core::util::thread_runs_since as thread_runs;

use supertok_core::superbpe::{self, presets, Filters, Stage2Config};
use supertok_core::train::{self, LineSplitter, ReplayPolicy, TrainConfig, Utf8Errors};

fn main() {
    let run = common::SuperbpeRun::from_args(2);
    let (vocab, threads) = (run.vocab, run.n);
    let (s1, s2, files) = (&run.s1, &run.s2, &run.files);
    let pool = run.pool(threads);
    let (t0, c0) = (Instant::now(), process_cpu());
    let mut lap = {
        let mut t = Instant::now();
        let mut c = process_cpu();
        let mut runs = thread_runs(&[]).1;
        move |what: &str| {
            let (nt, nc) = (Instant::now(), process_cpu());
            let (per, cur) = thread_runs(&runs);
            runs = cur;
            eprintln!(
                "{what:24} {:.3} s wall  {:.2} s CPU  (threads ms: {per})",
                (nt - t).as_secs_f64(),
                nc - c
            );
            t = nt;
            c = nc;
        }
    };
    let out = pool.install(|| {
        let c1 = train::count_files(LineSplitter(s1), files, Utf8Errors::Strict, &mut |_| Ok(()))
            .expect("count 1");
        lap("stage-1 count");
        let (o1, c2) = rayon::join(
            || {
                let cfg = run.stage1_config();
                train::train_bpe(&c1, &cfg, None, &mut |_| Ok(())).expect("stage 1")
            },
            || {
                train::count_files(LineSplitter(s2), files, Utf8Errors::Strict, &mut |_| Ok(()))
                    .expect("count 2")
            },
        );
        lap("stage-1 train || count 2");
        // as `train_superbpe` hands stage 1 on: the trainer's tokens and id merges
        let vocab1: Vec<&[u8]> = o1.vocab.iter().map(|t| &t[..]).collect();
        let merges1: Vec<(u32, u32)> = o1.merges.iter().map(|m| (m.left, m.right)).collect();
        let stage1 = superbpe::Stage1::Ids {
            vocab: &vocab1,
            merges: &merges1,
        };
        let cfg = Stage2Config {
            train: TrainConfig {
                vocab_size: vocab,
                special_tokens: vec![],
                min_frequency: 1,
                max_token_length: None,
            },
            policy: ReplayPolicy::Keep,
            filters: Filters {
                forbid: vec![b": ".to_vec()],
                max_words: Some(4),
            },
        };
        // the tokenizer too, as `train_superbpe` does (its stage-1 part is built during the
        // stage-2 merge loop)
        let pre = presets::preset("paper", presets::Stage::Two).expect("p2");
        let (o, tok) =
            superbpe::stage2_with_tokenizer(c2, stage1, &cfg, pre, &mut |_, _, _| Ok(()))
                .expect("stage 2");
        lap("stage 2 + tokenizer");
        drop(tok);
        o
    });
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for m in &out.out.merges {
        for b in out.out.vocab[m.left as usize]
            .iter()
            .chain([0xffu8, 0xfe].iter())
            .chain(out.out.vocab[m.right as usize].iter())
            .chain([0xfdu8].iter())
        {
            h ^= *b as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    println!(
        "total {:.3} s wall {:.2} s CPU; {} merges, digest {h:016x}",
        t0.elapsed().as_secs_f64(),
        process_cpu() - c0,
        out.out.merges.len()
    );
}
