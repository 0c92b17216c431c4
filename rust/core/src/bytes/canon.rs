//! Canonicality of BPE token sequences inside one pre-token piece.
//!
//! BPE (merge-only, rank-ordered) has the *pairwise locality* property: a token sequence
//! is the BPE encoding of its own bytes iff every token is reachable (the BPE of its bytes
//! is itself) and every adjacent pair `(l, r)` is valid (the BPE of `bytes(l) ‖ bytes(r)`
//! is `[l, r]`). Hence canonical sequences are prefix- and suffix-closed, and validity can
//! be maintained with one pair check per appended token. The property tests check this
//! against full re-encoding.

use std::sync::Mutex;

use rustc_hash::FxHashMap;

use crate::bpe::MergeTable;
use crate::bytes::index::ByteIndex;
use crate::vocab::Vocab;

/// Pair validity and reachability for one merge table.
#[derive(Debug)]
pub struct Canon {
    /// `reachable[id]`: BPE of the token's own bytes is the token itself.
    reachable: Vec<bool>,
    memo: Mutex<FxHashMap<u64, bool>>,
}

impl Canon {
    /// Analyse every token of `vocab` under `merges`.
    pub fn new(vocab: &Vocab, merges: &MergeTable) -> Self {
        let mut reachable = vec![false; vocab.n_slots()];
        let mut out = Vec::new();
        for (id, b) in vocab.iter() {
            out.clear();
            if merges.encode_piece(b, &mut out).is_ok() && out.len() == 1 && out[0] == id {
                reachable[id as usize] = true;
            }
        }
        Canon {
            reachable,
            memo: Mutex::new(FxHashMap::default()),
        }
    }

    /// Whether `id` is the BPE encoding of its own bytes.
    #[inline]
    pub fn reachable(&self, id: u32) -> bool {
        self.reachable.get(id as usize).copied().unwrap_or(false)
    }

    /// Tokens that BPE can never produce from their own bytes (`bpe(bytes(t)) != [t]`).
    pub fn unreachable(&self, vocab: &Vocab) -> Vec<u32> {
        vocab
            .iter()
            .filter(|(id, _)| !self.reachable(*id))
            .map(|(id, _)| id)
            .collect()
    }

    /// Whether `(l, r)` can be adjacent inside one piece of a canonical encoding.
    pub fn pair_valid(&self, vocab: &Vocab, merges: &MergeTable, l: u32, r: u32) -> bool {
        if !self.reachable(l) || !self.reachable(r) {
            return false;
        }
        let key = ((l as u64) << 32) | r as u64;
        if let Ok(m) = self.memo.lock() {
            if let Some(&v) = m.get(&key) {
                return v;
            }
        }
        let v = match (vocab.bytes(l), vocab.bytes(r)) {
            (Some(a), Some(b)) => {
                let mut buf = Vec::with_capacity(a.len() + b.len());
                buf.extend_from_slice(a);
                buf.extend_from_slice(b);
                let mut out = Vec::with_capacity(2);
                merges.encode_piece(&buf, &mut out).is_ok() && out == [l, r]
            }
            _ => false,
        };
        if let Ok(mut m) = self.memo.lock() {
            if m.len() > 4_000_000 {
                m.clear();
            }
            m.insert(key, v);
        }
        v
    }

    /// Whether `ids` is the BPE encoding of its own bytes (pairwise test).
    pub fn is_canonical_piece(&self, vocab: &Vocab, merges: &MergeTable, ids: &[u32]) -> bool {
        ids.iter().all(|&t| self.reachable(t))
            && ids
                .windows(2)
                .all(|w| self.pair_valid(vocab, merges, w[0], w[1]))
    }

    /// Tokens `r` whose bytes start with `prefix` and that may follow `l` inside a piece.
    pub fn valid_successors(
        &self,
        vocab: &Vocab,
        merges: &MergeTable,
        index: &ByteIndex,
        l: u32,
        prefix: &[u8],
    ) -> Vec<u32> {
        let (lo, hi) = index.prefix_range(prefix, false);
        index.ids()[lo..hi]
            .iter()
            .copied()
            .filter(|&r| self.pair_valid(vocab, merges, l, r))
            .collect()
    }
}
