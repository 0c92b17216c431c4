//! Merge-list replay for data-mixture inference (Hayase et al. 2024).
//!
//! [`replay`] counts a sample's pretokens with the BPE trainer's own counting
//! ([`crate::train::count_texts`]) and replays a merge list on them with the trainer's own
//! merge loop ([`crate::train::Trainer::replay`], [`ReplayPolicy::Keep`] so that ids are the
//! same for every sample), with tracing on: the result holds the count of every pair before
//! the first merge and, per merge, every pair whose count changed. From these, the count of
//! every pair before every merge can be reconstructed (the input of the mixture LP).
//!
//! SuperBPE-aware: a replay can have several *stages*, each with its own splitter (stage 1
//! splits at whitespace, stage 2 does not). When a stage starts at merge `s`, the sample is
//! counted again with the new splitter, merges `0..s` are applied to it again (untraced: they
//! were chosen under the previous stage's counts) and the changes recorded for step `s - 1`
//! become the full difference between the two countings, so that "counts before merge `s`"
//! are the new stage's counts.
//!
//! Pair keys are `(left << 32) | right`.

use crate::error::{Error, Result};
use crate::hf::normalize::NormText;
use crate::hf::pretokenize::{self, Piece, Scratch, Step};
use crate::hf::HfTokenizer;
use crate::train::{count_texts, ReplayPolicy, Splitter, StepTrace, Trainer};

/// Pair key of `(left, right)`.
#[inline]
pub fn pair_key(left: u32, right: u32) -> u64 {
    ((left as u64) << 32) | right as u64
}

/// The replay of one sample: counts before every merge, as a sparse change log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayTrace {
    /// Pair key of every replayed merge, in order.
    pub merge_keys: Vec<u64>,
    /// Pairs with a non-zero count before the first merge, sorted by key.
    pub init_keys: Vec<u64>,
    /// Their counts.
    pub init_counts: Vec<u64>,
    /// The changes of step `t` are `change_*[step_ptr[t]..step_ptr[t + 1]]`
    /// (`merge_keys.len() + 1` entries).
    pub step_ptr: Vec<u64>,
    /// Pairs whose count changed in a step (sorted by key within the step).
    pub change_keys: Vec<u64>,
    /// Their counts after the step.
    pub change_counts: Vec<u64>,
    /// UTF-8 bytes of the sample.
    pub n_bytes: u64,
    /// Total pair count before the first merge (sum of `init_counts`).
    pub n_pairs: u64,
}

impl ReplayTrace {
    /// Every non-zero pair count just before merge `t` (`0 <= t <= merges`), sorted by key
    /// (reconstructed from the change log; for tests and analysis).
    pub fn counts_before(&self, t: usize) -> Result<Vec<(u64, u64)>> {
        if t > self.merge_keys.len() {
            return Err(Error::InvalidArgument(format!(
                "step {t} is outside 0..={}",
                self.merge_keys.len()
            )));
        }
        let mut m: std::collections::BTreeMap<u64, u64> = self
            .init_keys
            .iter()
            .copied()
            .zip(self.init_counts.iter().copied())
            .collect();
        let end = self.step_ptr[t] as usize;
        for (&k, &c) in self.change_keys[..end]
            .iter()
            .zip(&self.change_counts[..end])
        {
            if c == 0 {
                m.remove(&k);
            } else {
                m.insert(k, c);
            }
        }
        Ok(m.into_iter().collect())
    }
}

/// One stage of a replay: from merge `start` on, the sample is split by `splitter`.
pub struct Stage<'a> {
    /// Index of the first merge of the stage (the first stage must start at 0).
    pub start: usize,
    /// How the sample is cut into the units whose pairs are counted.
    pub splitter: &'a dyn Splitter,
}

fn push_step(trace: &mut ReplayTrace, step: &StepTrace) {
    for &(l, r, c) in &step.changes {
        trace.change_keys.push(pair_key(l, r));
        trace.change_counts.push(c);
    }
    trace.step_ptr.push(trace.change_keys.len() as u64);
}

fn no_progress(_: usize) -> Result<()> {
    Ok(())
}

/// Replay `merges` (given by the bytes of their sides, in rank order) on `texts`, split in
/// stages (see the module docs). Counting runs in the caller's rayon pool.
///
/// Errors: no stage, a first stage not starting at 0, stages out of order or past the end
/// of the list, an empty merge side, or a merge using a token no earlier merge creates.
pub fn replay<T: AsRef<str> + Sync>(
    merges: &[(Vec<u8>, Vec<u8>)],
    texts: &[T],
    stages: &[Stage<'_>],
) -> Result<ReplayTrace> {
    let first = stages
        .first()
        .ok_or_else(|| Error::InvalidArgument("a replay needs at least one stage".into()))?;
    if first.start != 0 {
        return Err(Error::InvalidArgument(
            "the first stage must start at merge 0".into(),
        ));
    }
    for w in stages.windows(2) {
        if w[1].start <= w[0].start {
            return Err(Error::InvalidArgument(format!(
                "stages must start at increasing merges (got {} then {})",
                w[0].start, w[1].start
            )));
        }
    }
    if let Some(last) = stages.last() {
        if last.start > merges.len() {
            return Err(Error::InvalidArgument(format!(
                "a stage starts at merge {} but there are only {} merges",
                last.start,
                merges.len()
            )));
        }
    }
    let n_bytes: u64 = texts.iter().map(|t| t.as_ref().len() as u64).sum();
    let mut trace = ReplayTrace {
        n_bytes,
        step_ptr: vec![0],
        ..Default::default()
    };
    let mut trainer: Option<Trainer> = None;
    for (k, stage) in stages.iter().enumerate() {
        let end = stages.get(k + 1).map_or(merges.len(), |s| s.start);
        let counts = count_texts(stage.splitter, texts)?;
        let mut t = Trainer::new(counts.iter())?;
        // re-apply the earlier stages' merges to the new counting (untraced)
        t.replay(&merges[..stage.start], ReplayPolicy::Keep, &mut no_progress)?;
        let now = t.pair_counts();
        match trainer.take() {
            None => {
                for &(l, r, c) in &now {
                    trace.init_keys.push(pair_key(l, r));
                    trace.init_counts.push(c);
                }
                trace.n_pairs = trace.init_counts.iter().sum();
            }
            Some(prev) => {
                // the last step of the previous stage ends with the switch: record the full
                // difference (the previous counts are overwritten by the new ones)
                let mut keys: Vec<u64> = prev
                    .pair_counts()
                    .iter()
                    .map(|&(l, r, _)| pair_key(l, r))
                    .chain(now.iter().map(|&(l, r, _)| pair_key(l, r)))
                    .collect();
                let last = trace.step_ptr.len() - 2;
                let from = trace.step_ptr[last] as usize;
                keys.extend_from_slice(&trace.change_keys[from..]);
                keys.sort_unstable();
                keys.dedup();
                let new: rustc_hash::FxHashMap<u64, u64> =
                    now.iter().map(|&(l, r, c)| (pair_key(l, r), c)).collect();
                trace.change_keys.truncate(from);
                trace.change_counts.truncate(from);
                for k in keys {
                    trace.change_keys.push(k);
                    trace.change_counts.push(new.get(&k).copied().unwrap_or(0));
                }
                trace.step_ptr.pop();
                trace.step_ptr.push(trace.change_keys.len() as u64);
            }
        }
        let done = t.merges().len();
        t.set_tracing(true);
        t.replay(
            &merges[stage.start..end],
            ReplayPolicy::Keep,
            &mut no_progress,
        )?;
        for step in t.take_trace() {
            push_step(&mut trace, &step);
        }
        for m in &t.merges()[done..] {
            trace.merge_keys.push(pair_key(m.left, m.right));
        }
        trainer = Some(t);
    }
    // A stage starting at 0 after the first has no previous step to attach to: then the
    // initial counts are the ones of the last stage starting at 0 (rejected above).
    debug_assert_eq!(trace.step_ptr.len(), trace.merge_keys.len() + 1);
    Ok(trace)
}

/// The pieces an HF `tokenizer.json` pipeline hands to its BPE model (added tokens removed,
/// normalizer and pre-tokenizer applied): what the tokenizer's own trainer counted.
pub struct HfSplitter {
    tok: HfTokenizer,
    steps: Vec<Step>,
}

impl HfSplitter {
    /// Split like `tok`.
    pub fn new(tok: HfTokenizer) -> Result<Self> {
        let mut flat = Vec::new();
        if let Some(p) = tok.pre_tokenizer() {
            p.flatten("pre_tokenizer", &mut flat);
        }
        let steps = pretokenize::compile(&flat)?;
        Ok(HfSplitter { tok, steps })
    }
}

impl Splitter for HfSplitter {
    fn split(&self, text: &str, f: &mut dyn FnMut(&[u8])) -> Result<()> {
        let mut raw = Vec::new();
        let mut norm = Vec::new();
        let mut pieces: Vec<Piece> = Vec::new();
        let mut sc = Scratch::default();
        let mut buf = Vec::new();
        self.tok.added().split_raw(text, &mut raw);
        for &(id, a, b) in &raw {
            if id.is_some() {
                continue;
            }
            let mut nt = NormText::new(&text[a..b], a);
            if let Some(n) = self.tok.normalizer() {
                n.apply(&mut nt, false)?;
            }
            norm.clear();
            self.tok.added().split_normalized(&nt.text, &mut norm);
            for &(nid, c, d) in &norm {
                if nid.is_some() {
                    continue;
                }
                let seg = &nt.text[c..d];
                pretokenize::run(seg, &self.steps, &mut pieces, &mut sc)?;
                for p in &pieces {
                    let s = &seg.as_bytes()[p.start..p.end];
                    if p.prefix {
                        buf.clear();
                        buf.push(b' ');
                        buf.extend_from_slice(s);
                        f(&buf);
                    } else {
                        f(s);
                    }
                }
            }
        }
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pretok::{patterns, Pretokenizer};
    use crate::train::WholeChunks;
    use std::collections::BTreeMap;

    /// Brute force: segment every pretoken, recount all pairs before every merge.
    fn brute(pieces: &[(Vec<u8>, u64)], merges: &[(Vec<u8>, Vec<u8>)]) -> Vec<BTreeMap<u64, u64>> {
        let mut vocab: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        let mut ids: std::collections::HashMap<Vec<u8>, u32> = vocab
            .iter()
            .enumerate()
            .map(|(i, b)| (b.clone(), i as u32))
            .collect();
        let mut segs: Vec<(Vec<u32>, u64)> = pieces
            .iter()
            .map(|(p, c)| (p.iter().map(|&b| b as u32).collect(), *c))
            .collect();
        let count = |segs: &Vec<(Vec<u32>, u64)>| {
            let mut m = BTreeMap::new();
            for (s, c) in segs {
                for w in s.windows(2) {
                    *m.entry(pair_key(w[0], w[1])).or_insert(0) += c;
                }
            }
            m
        };
        let mut out = vec![];
        for (lb, rb) in merges {
            out.push(count(&segs));
            let (a, b) = (ids[lb], ids[rb]);
            let mut nb = lb.clone();
            nb.extend_from_slice(rb);
            let c = *ids.entry(nb.clone()).or_insert_with(|| {
                vocab.push(nb.clone());
                vocab.len() as u32 - 1
            });
            for (s, _) in segs.iter_mut() {
                let mut o = vec![];
                let mut i = 0;
                while i < s.len() {
                    if i + 1 < s.len() && s[i] == a && s[i + 1] == b {
                        o.push(c);
                        i += 2;
                    } else {
                        o.push(s[i]);
                        i += 1;
                    }
                }
                *s = o;
            }
        }
        out.push(count(&segs));
        out
    }

    fn pieces_of(split: &dyn Splitter, texts: &[&str]) -> Vec<(Vec<u8>, u64)> {
        let mut m: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for t in texts {
            split
                .split(t, &mut |p| *m.entry(p.to_vec()).or_insert(0) += 1)
                .unwrap();
        }
        m.into_iter().collect()
    }

    fn m(a: &str, b: &str) -> (Vec<u8>, Vec<u8>) {
        (a.as_bytes().to_vec(), b.as_bytes().to_vec())
    }

    const TEXTS: [&str; 3] = [
        "the cat sat on the mat. the cat ate the rat.\nthe end",
        "at the theatre, that rat sat at the mat; aaaa aaa",
        "in the morning the cat and the rat sat together",
    ];

    fn merges() -> Vec<(Vec<u8>, Vec<u8>)> {
        vec![
            m("t", "h"),
            m("th", "e"),
            m(" ", "the"),
            m("a", "t"),
            m("a", "a"),
            m("zz", "q"), // never occurs: uses tokens no merge creates -> error test below
        ]
    }

    #[test]
    fn single_stage_matches_brute_force() {
        let pt = Pretokenizer::new(patterns::CL100K).unwrap();
        let ms: Vec<_> = merges()[..5].to_vec();
        let tr = replay(
            &ms,
            &TEXTS,
            &[Stage {
                start: 0,
                splitter: &pt,
            }],
        )
        .unwrap();
        let bf = brute(&pieces_of(&pt, &TEXTS), &ms);
        for (t, want) in bf.iter().enumerate() {
            let got: BTreeMap<u64, u64> = tr.counts_before(t).unwrap().into_iter().collect();
            assert_eq!(&got, want, "step {t}");
        }
        assert_eq!(tr.merge_keys[0], pair_key(b't' as u32, b'h' as u32));
        assert_eq!(tr.merge_keys[1], pair_key(256, b'e' as u32));
        assert_eq!(tr.n_pairs, bf[0].values().sum::<u64>());
        assert_eq!(
            tr.n_bytes,
            TEXTS.iter().map(|t| t.len() as u64).sum::<u64>()
        );
    }

    #[test]
    fn two_stages_switch_the_counting() {
        let pt = Pretokenizer::new(patterns::CL100K).unwrap();
        let ms: Vec<_> = merges()[..5].to_vec();
        let tr = replay(
            &ms,
            &TEXTS,
            &[
                Stage {
                    start: 0,
                    splitter: &pt,
                },
                Stage {
                    start: 3,
                    splitter: &WholeChunks,
                },
            ],
        )
        .unwrap();
        let bf1 = brute(&pieces_of(&pt, &TEXTS), &ms);
        let bf2 = brute(&pieces_of(&WholeChunks, &TEXTS), &ms);
        for t in 0..=ms.len() {
            let got: BTreeMap<u64, u64> = tr.counts_before(t).unwrap().into_iter().collect();
            let want = if t < 3 { &bf1[t] } else { &bf2[t] };
            assert_eq!(&got, want, "step {t}");
        }
        // stage 2 from the start (SuperBPE t = 0)
        let tr0 = replay(
            &ms,
            &TEXTS,
            &[Stage {
                start: 0,
                splitter: &WholeChunks,
            }],
        )
        .unwrap();
        let got: BTreeMap<u64, u64> = tr0.counts_before(2).unwrap().into_iter().collect();
        assert_eq!(got, bf2[2]);
    }

    #[test]
    fn missing_merges_are_kept_and_bad_lists_rejected() {
        let pt = Pretokenizer::new(patterns::CL100K).unwrap();
        // "q"+"x" never occurs: kept (count 0), ids stay aligned
        let ms = vec![m("q", "x"), m("t", "h")];
        let tr = replay(
            &ms,
            &TEXTS,
            &[Stage {
                start: 0,
                splitter: &pt,
            }],
        )
        .unwrap();
        assert_eq!(
            tr.merge_keys,
            vec![
                pair_key(b'q' as u32, b'x' as u32),
                pair_key(b't' as u32, b'h' as u32)
            ]
        );
        assert_eq!(
            tr.step_ptr[1], 0,
            "a merge that does not occur changes nothing"
        );
        let err = replay(
            &merges(),
            &TEXTS,
            &[Stage {
                start: 0,
                splitter: &pt,
            }],
        );
        assert!(err.is_err());
        assert!(replay(&ms, &TEXTS, &[]).is_err());
        assert!(replay(
            &ms,
            &TEXTS,
            &[Stage {
                start: 1,
                splitter: &pt
            }]
        )
        .is_err());
        assert!(replay(
            &ms,
            &TEXTS,
            &[
                Stage {
                    start: 0,
                    splitter: &pt
                },
                Stage {
                    start: 5,
                    splitter: &pt
                }
            ]
        )
        .is_err());
    }

    fn trained_merges(texts: &[String], n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let pt = Pretokenizer::new(patterns::R50K).unwrap();
        let counts = count_texts(&pt, texts).unwrap();
        let mut t = Trainer::new(counts.iter()).unwrap();
        let opts = crate::train::GreedyOptions {
            target_tokens: 256 + n,
            ..Default::default()
        };
        t.train_greedy(&opts, &mut no_progress).unwrap();
        t.merges()
            .iter()
            .map(|m| {
                (
                    t.tokens()[m.left as usize].to_vec(),
                    t.tokens()[m.right as usize].to_vec(),
                )
            })
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Merges learned on one random text, replayed (one or two stages) on another:
        /// every reconstructed count equals a full recount.
        #[test]
        fn replay_equals_recount(
            train in proptest::collection::vec("[ab c\\n]{0,12}", 1..12),
            sample in proptest::collection::vec("[abc \\n]{0,12}", 1..12),
            n in 1usize..25,
            switch in 0usize..25,
        ) {
            let ms = trained_merges(&train, n);
            let pt = Pretokenizer::new(patterns::R50K).unwrap();
            let texts: Vec<&str> = sample.iter().map(|s| s.as_str()).collect();
            let bf1 = brute(&pieces_of(&pt, &texts), &ms);
            let tr = replay(&ms, &texts, &[Stage { start: 0, splitter: &pt }]).unwrap();
            for (t, want) in bf1.iter().enumerate() {
                let got: BTreeMap<u64, u64> = tr.counts_before(t).unwrap().into_iter().collect();
                proptest::prop_assert_eq!(&got, want);
            }
            let s = switch.min(ms.len());
            if s > 0 {
                let tr2 = replay(
                    &ms,
                    &texts,
                    &[Stage { start: 0, splitter: &pt }, Stage { start: s, splitter: &WholeChunks }],
                )
                .unwrap();
                let bf2 = brute(&pieces_of(&WholeChunks, &texts), &ms);
                for t in 0..=ms.len() {
                    let got: BTreeMap<u64, u64> = tr2.counts_before(t).unwrap().into_iter().collect();
                    let want = if t < s { &bf1[t] } else { &bf2[t] };
                    proptest::prop_assert_eq!(&got, want);
                }
            }
        }
    }

    #[test]
    fn hf_splitter_matches_pretokenizer() {
        let pt = Pretokenizer::new(patterns::CL100K).unwrap();
        let vocab: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        let tok = HfTokenizer::from_bpe(vocab, &[], None, Some(patterns::CL100K), vec![]).unwrap();
        let hs = HfSplitter::new(tok).unwrap();
        assert_eq!(pieces_of(&hs, &TEXTS), pieces_of(&pt, &TEXTS));
    }
}
