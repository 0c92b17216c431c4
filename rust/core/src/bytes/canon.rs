//! Canonicality of BPE token sequences inside one pre-token piece.
//!
//! BPE (merge-only, rank-ordered) has the *pairwise locality* property: a token sequence
//! is the BPE encoding of its own bytes iff every token is reachable (the BPE of its bytes
//! is itself) and every adjacent pair `(l, r)` is valid (the BPE of `bytes(l) ‖ bytes(r)`
//! is `[l, r]`). Hence canonical sequences are prefix- and suffix-closed, and validity can
//! be maintained with one pair check per appended token. The property tests check this
//! against full re-encoding.

use std::sync::{Mutex, OnceLock};

use rustc_hash::FxHashMap;

use crate::bpe::MergeTable;
use crate::bytes::index::ByteIndex;
use crate::vocab::Vocab;

/// Memo of [`Canon::exists_valid_successor`]: `(left token, prefix) -> answer`.
type SuccMemo = FxHashMap<(u32, Box<[u8]>), bool>;

/// Pair validity and reachability for one merge table.
#[derive(Debug)]
pub struct Canon {
    /// `reachable[id]`: BPE of the token's own bytes is the token itself.
    reachable: Vec<bool>,
    memo: Mutex<FxHashMap<u64, bool>>,
    /// left-edge forest: `children[x]` = `(rank, t)` for every reachable `t` whose BPE
    /// history ends with a merge `(x, y)`, sorted by rank
    forest: OnceLock<Vec<Vec<(u32, u32)>>>,
    succ_memo: Mutex<SuccMemo>,
}

/// Simulate BPE on `a ‖ b` and return the first merge that spans the boundary between them,
/// as `(rank, length in bytes of its right part)`; `None` if no merge ever spans it.
pub fn first_crossing(merges: &MergeTable, a: &[u8], b: &[u8]) -> Option<(u32, usize)> {
    let cut = a.len();
    // (id, end) of each part; starts are the previous part's end
    let mut parts: Vec<(u32, usize)> = a
        .iter()
        .chain(b.iter())
        .enumerate()
        .map(|(i, &c)| (merges.byte_id(c), i + 1))
        .collect();
    loop {
        let mut best: Option<(u32, usize, u32)> = None;
        for i in 0..parts.len().saturating_sub(1) {
            if let Some((r, res)) = merges.get(parts[i].0, parts[i + 1].0) {
                if !matches!(best, Some((br, _, _)) if br <= r) {
                    best = Some((r, i, res));
                }
            }
        }
        let (r, i, res) = best?;
        if parts[i].1 == cut {
            return Some((r, parts[i + 1].1 - cut));
        }
        parts[i] = (res, parts[i + 1].1);
        parts.remove(i + 1);
    }
}

/// The last merge of the BPE of `t`: `(left part, rank)`.
fn last_merge(merges: &MergeTable, t: &[u8]) -> Option<(u32, u32)> {
    let mut parts: Vec<u32> = t.iter().map(|&c| merges.byte_id(c)).collect();
    while parts.len() > 1 {
        let mut best: Option<(u32, usize, u32)> = None;
        for i in 0..parts.len() - 1 {
            if let Some((r, res)) = merges.get(parts[i], parts[i + 1]) {
                if !matches!(best, Some((br, _, _)) if br <= r) {
                    best = Some((r, i, res));
                }
            }
        }
        let (r, i, res) = best?;
        if parts.len() == 2 {
            return Some((parts[0], r));
        }
        parts[i] = res;
        parts.remove(i + 1);
    }
    None
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
            forest: OnceLock::new(),
            succ_memo: Mutex::new(FxHashMap::default()),
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

    fn forest(&self, vocab: &Vocab, merges: &MergeTable) -> &Vec<Vec<(u32, u32)>> {
        self.forest.get_or_init(|| {
            let mut ch: Vec<Vec<(u32, u32)>> = vec![Vec::new(); vocab.n_slots()];
            for (id, b) in vocab.iter() {
                if b.len() < 2 || !self.reachable(id) {
                    continue;
                }
                if let Some((x, r)) = last_merge(merges, b) {
                    if (x as usize) < ch.len() {
                        ch[x as usize].push((r, id));
                    }
                }
            }
            for c in ch.iter_mut() {
                c.sort_unstable();
            }
            ch
        })
    }

    /// Whether some token starting with `prefix` may follow `l` inside a piece (exact: a
    /// `true` is confirmed by [`pair_valid`](Self::pair_valid); a `false` rests on a search
    /// of the tokens' merge histories that only discards tokens whose BPE with `l` provably
    /// merges across the boundary).
    pub fn exists_valid_successor(
        &self,
        vocab: &Vocab,
        merges: &MergeTable,
        l: u32,
        prefix: &[u8],
    ) -> bool {
        if prefix.is_empty() || !self.reachable(l) {
            return true;
        }
        let key = (l, prefix.to_vec().into_boxed_slice());
        if let Ok(m) = self.succ_memo.lock() {
            if let Some(&v) = m.get(&key) {
                return v;
            }
        }
        let v = self.search_successor(vocab, merges, l, prefix);
        if let Ok(mut m) = self.succ_memo.lock() {
            if m.len() > 1_000_000 {
                m.clear();
            }
            m.insert(key, v);
        }
        v
    }

    fn search_successor(&self, vocab: &Vocab, merges: &MergeTable, l: u32, prefix: &[u8]) -> bool {
        let Some(root) = vocab.byte_id(prefix[0]) else {
            return true;
        };
        let Some(lb) = vocab.bytes(l) else {
            return true;
        };
        let forest = self.forest(vocab, merges);
        let mut stack = vec![root];
        let mut steps = 0usize;
        while let Some(c) = stack.pop() {
            steps += 1;
            if steps > 200_000 {
                return true; // give up conservatively
            }
            let Some(cb) = vocab.bytes(c) else { continue };
            let covers = cb.starts_with(prefix);
            if !covers && !prefix.starts_with(cb) {
                continue;
            }
            if covers && self.pair_valid(vocab, merges, l, c) {
                return true;
            }
            let kids = forest.get(c as usize).map_or(&[][..], |v| &v[..]);
            match first_crossing(merges, lb, cb) {
                None => stack.extend(kids.iter().map(|&(_, t)| t)),
                Some((rho, right)) => {
                    if right < cb.len() {
                        continue;
                    }
                    stack.extend(kids.iter().take_while(|&&(r, _)| r <= rho).map(|&(_, t)| t));
                }
            }
        }
        false
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
