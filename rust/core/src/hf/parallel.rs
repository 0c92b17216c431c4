//! Encoding one long text on several threads, with identical ids.
//!
//! Pieces (the pre-tokenizer's output) are always encoded independently, so encoding them
//! on different threads is exact. SuperBPE-style pre-tokenizers make pieces paragraph- or
//! document-sized, so when the vocabulary has the newline-cut property
//! ([`crate::superbpe::newline`]) long pieces are additionally cut after newlines into
//! parts that are encoded independently — exact by that property, and also faster on one
//! thread (each line is merged while it sits in cache).

use rayon::prelude::*;

use super::post::Encoded;
use super::HfTokenizer;
use crate::error::Result;
use crate::superbpe::newline;

/// Pieces shorter than this are never cut.
pub const SHARD_MIN: usize = 256;

impl HfTokenizer {
    /// Whether no token spans a newline cut (a newline followed by a non-whitespace
    /// character), so long pieces can be cut there. Checked when the tokenizer is built.
    pub fn newline_shardable(&self) -> bool {
        self.newline_cuts
    }

    /// Encode one piece (its bytes), cut after newlines when the vocabulary allows it.
    pub(crate) fn encode_piece_sharded(
        &self,
        piece: &[u8],
        out: &mut Vec<u32>,
        mut lens: Option<&mut Vec<u32>>,
    ) -> Result<()> {
        if !self.newline_cuts || piece.len() < SHARD_MIN {
            return self.model.encode_piece(piece, out, lens);
        }
        let mut cuts: Vec<(usize, usize)> = Vec::new();
        newline::for_each_part(piece, 0, |a, b| cuts.push((a, b)));
        for (a, b) in cuts {
            self.model
                .encode_piece(&piece[a..b], out, lens.as_deref_mut())?;
        }
        Ok(())
    }

    /// Encode `text` to ids like [`HfTokenizer::encode`], distributing the work over the
    /// current rayon pool: the text is normalized and pre-tokenized on the calling thread,
    /// then pieces (and, with the newline-cut property, the lines of long pieces) are merged
    /// in parallel in tasks of about `task_bytes` bytes. The ids are identical to
    /// [`HfTokenizer::encode`] for every tokenizer.
    pub fn encode_parallel(
        &self,
        text: &str,
        add_special_tokens: bool,
        task_bytes: usize,
    ) -> Result<Vec<u32>> {
        let task_bytes = task_bytes.max(1);
        // Phase 1: pieces (copied into one buffer) and where their ids go.
        let mut buf: Vec<u8> = Vec::with_capacity(text.len() + 16);
        let mut pieces: Vec<(usize, usize)> = Vec::new();
        let mut slots: Vec<usize> = Vec::new();
        let mut enc = Encoded {
            ids: Vec::new(),
            offsets: None,
            trims: Vec::new(),
        };
        self.run_with(text, &mut enc, |b, out, _| {
            let s = buf.len();
            buf.extend_from_slice(b);
            pieces.push((s, buf.len()));
            slots.push(out.len());
            Ok(())
        })?;
        // Phase 2: units (pieces or their newline parts), grouped into tasks.
        let mut units: Vec<(usize, usize, u32)> = Vec::with_capacity(pieces.len());
        for (k, &(s, e)) in pieces.iter().enumerate() {
            if self.newline_cuts && e - s >= SHARD_MIN {
                newline::for_each_part(&buf[s..e], task_bytes / 4, |a, b| {
                    units.push((s + a, s + b, k as u32))
                });
            } else {
                units.push((s, e, k as u32));
            }
        }
        let mut tasks: Vec<(usize, usize)> = Vec::new();
        let mut t0 = 0usize;
        let mut size = 0usize;
        for (i, u) in units.iter().enumerate() {
            size += u.1 - u.0;
            if size >= task_bytes {
                tasks.push((t0, i + 1));
                t0 = i + 1;
                size = 0;
            }
        }
        if t0 < units.len() {
            tasks.push((t0, units.len()));
        }
        let buf = &buf;
        let units_ref = &units;
        let results: Vec<Result<(Vec<u32>, Vec<u32>)>> = tasks
            .par_iter()
            .with_max_len(1)
            .map(|&(a, b)| {
                let mut ids = Vec::with_capacity((b - a).max(1) * 4);
                let mut counts = Vec::with_capacity(b - a);
                for &(s, e, _) in &units_ref[a..b] {
                    let before = ids.len();
                    self.model.encode_piece(&buf[s..e], &mut ids, None)?;
                    counts.push((ids.len() - before) as u32);
                }
                Ok((ids, counts))
            })
            .collect();
        // Phase 3: splice the pieces' ids between the added tokens.
        let mut piece_ids: Vec<u32> = Vec::with_capacity(text.len() / 3 + 2);
        let mut piece_end: Vec<usize> = vec![0; pieces.len()];
        let mut u = 0usize;
        for r in results {
            let (ids, counts) = r?;
            let mut at = 0usize;
            for c in counts {
                let k = units[u].2 as usize;
                piece_ids.extend_from_slice(&ids[at..at + c as usize]);
                at += c as usize;
                piece_end[k] = piece_ids.len();
                u += 1;
            }
        }
        let mut out = Vec::with_capacity(piece_ids.len() + enc.ids.len() + 2);
        let mut prev_end = 0usize;
        let mut added_at = 0usize;
        for (k, &slot) in slots.iter().enumerate() {
            out.extend_from_slice(&enc.ids[added_at..slot]);
            added_at = slot;
            out.extend_from_slice(&piece_ids[prev_end..piece_end[k].max(prev_end)]);
            prev_end = piece_end[k].max(prev_end);
        }
        out.extend_from_slice(&enc.ids[added_at..]);
        enc.ids = out;
        if let Some(p) = &self.post {
            if p.adds_tokens() {
                p.process(&mut enc, add_special_tokens);
            }
        }
        Ok(enc.ids)
    }
}
