//! Seeded BPE-dropout (Provilkov, Emelianenko & Voita, ACL 2020).
//!
//! # Semantics
//! The algorithm of the paper, as its authors implemented it (`apply_bpe.py` of
//! subword-nmt, `dropout=p`). A piece starts as single bytes. At every merge step, **each
//! applicable merge** — every adjacent pair of parts that the merge table can merge, at
//! every position — is dropped independently with probability `p`. Among the survivors the
//! pair with the best priority (lowest rank, then leftmost) is chosen, and it is merged at
//! **all** its surviving positions (left to right, skipping overlaps: `x x x → xx x`). If
//! every applicable merge was dropped, the piece is final. Draws are fresh at every step.
//!
//! A piece in which no merge was dropped is encoded exactly as without dropout (for the
//! tiktoken-style encoder that includes "a piece that is itself a token is emitted whole";
//! for HF, `ignore_merges` and unknown bytes), so `p = 0` is plain encoding and `p = 1`
//! leaves the bytes.
//!
//! Draws are made lazily, in an order that gives exactly this distribution: candidates are
//! examined in priority order, one draw each, until the first survivor; then every other
//! occurrence of the chosen pair to its right gets one draw. Draws of candidates that
//! cannot affect the step are not made (nothing depends on them: the next step redraws).
//!
//! # Difference from Hugging Face `tokenizers` (`BPE(dropout=p)`, `word.rs::merge_all`)
//! HF pops candidates from a heap in priority order and skips each with probability `p` into
//! a list that is pushed back after the next *non-skipped pop*, merging one position at a
//! time. Its heap also holds stale entries (pairs destroyed by earlier merges), and HF draws
//! for those too: a stale entry that is "not skipped" re-inserts the skipped candidates
//! without any merge, giving them another chance. So HF's distribution depends on heap
//! internals and drops much less than the paper at the same `p` (BENCHMARKS.md, "stochastic").
//! HF also bypasses `ignore_merges` whenever dropout is on, and uses an unseeded thread RNG
//! and `f32`. At `p = 1` both give bytes.
//!
//! The plain encoder's code paths are untouched: dropout uses its own merge loop over
//! [`MergeTable::get`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::check_probability;
use super::rng::Rng;
use crate::bpe::{MergeTable, PSEUDO_BYTE_BASE};
use crate::encoding::CoreEncoding;
use crate::error::{Error, Result};
use crate::hf::model::BpeModel;
use crate::hf::HfTokenizer;
use crate::special::SpecialSet;

const NONE: u32 = u32::MAX;

/// Reusable buffers for [`merge_with_dropout`].
#[derive(Default, Debug)]
pub struct DropoutScratch {
    next: Vec<u32>,
    prev: Vec<u32>,
    rank: Vec<u32>,
    res: Vec<u32>,
    ver: Vec<u32>,
    heap: BinaryHeap<Reverse<(u32, u32, u32)>>,
    /// Dropped candidates of the current step.
    skipped: Vec<Reverse<(u32, u32, u32)>>,
    /// Candidates of the current step that cannot take part in it (same rank, other pair).
    deferred: Vec<Reverse<(u32, u32, u32)>>,
    /// Pairs created by the current step's merges (they compete from the next step on).
    fresh: Vec<Reverse<(u32, u32, u32)>>,
}

/// Merge `parts` in place with BPE-dropout (see the module documentation). Returns whether
/// any merge was dropped. Callers replace a result without drops by the plain encoding
/// (the two agree except for the whole-piece rules, and for vocabularies in which a merge
/// can create a pair ranked before the one just merged).
pub fn merge_with_dropout(
    table: &MergeTable,
    parts: &mut Vec<u32>,
    p: f64,
    rng: &mut Rng,
    s: &mut DropoutScratch,
) -> bool {
    let n = parts.len();
    if n < 2 {
        return false;
    }
    s.next.clear();
    s.next.extend(1..=n as u32);
    s.next[n - 1] = NONE;
    s.prev.clear();
    s.prev.extend((0..n as u32).map(|i| i.wrapping_sub(1)));
    s.rank.clear();
    s.rank.resize(n, NONE);
    s.res.clear();
    s.res.resize(n, 0);
    s.ver.clear();
    s.ver.resize(n, 0);
    s.heap.clear();
    s.skipped.clear();
    s.deferred.clear();
    s.fresh.clear();
    for i in 0..n - 1 {
        if let Some((r, t)) = table.get(parts[i], parts[i + 1]) {
            s.rank[i] = r;
            s.res[i] = t;
            s.heap.push(Reverse((r, i as u32, 0)));
        }
    }
    // Recompute the pair starting at `i` (its right neighbour changed); the new candidate
    // waits in `fresh` until the step ends.
    fn refresh(table: &MergeTable, parts: &[u32], s: &mut DropoutScratch, i: usize) {
        s.ver[i] = s.ver[i].wrapping_add(1);
        let j = s.next[i];
        s.rank[i] = NONE;
        if j != NONE {
            if let Some((r, t)) = table.get(parts[i], parts[j as usize]) {
                s.rank[i] = r;
                s.res[i] = t;
                s.fresh.push(Reverse((r, i as u32, s.ver[i])));
            }
        }
    }
    // Merge the pair starting at `i` (absorbing its right neighbour).
    fn merge_at(table: &MergeTable, parts: &mut [u32], s: &mut DropoutScratch, i: usize) {
        let j = s.next[i] as usize;
        parts[i] = s.res[i];
        s.rank[j] = NONE;
        s.ver[j] = s.ver[j].wrapping_add(1);
        let k = s.next[j];
        s.next[i] = k;
        if k != NONE {
            s.prev[k as usize] = i as u32;
        }
        refresh(table, parts, s, i);
        let pv = s.prev[i];
        if pv != NONE {
            refresh(table, parts, s, pv as usize);
        }
    }
    let valid = |s: &DropoutScratch, r: u32, i: u32, v: u32| {
        s.ver[i as usize] == v && s.rank[i as usize] == r
    };
    let mut dropped_any = false;
    'steps: loop {
        // the best surviving candidate
        let (r, i) = loop {
            let Some(entry) = s.heap.pop() else {
                break 'steps; // every applicable merge was dropped (or there is none)
            };
            let Reverse((r, i, v)) = entry;
            if !valid(s, r, i, v) {
                continue; // stale: this pair no longer exists
            }
            if rng.bernoulli(p) {
                dropped_any = true;
                s.skipped.push(entry);
                continue;
            }
            break (r, i as usize);
        };
        let pair = (parts[i], parts[s.next[i] as usize]);
        merge_at(table, parts, s, i);
        // its other occurrences to the right (they come next in the heap: same rank, larger
        // position); new pairs wait in `fresh`, so the heap holds only this step's candidates
        while let Some(&Reverse((r2, j, v2))) = s.heap.peek() {
            if r2 != r {
                break;
            }
            let entry = s.heap.pop().expect("peeked");
            if !valid(s, r2, j, v2) {
                continue; // overlapped by a merge of this step, or destroyed earlier
            }
            let ju = j as usize;
            if (parts[ju], parts[s.next[ju] as usize]) != pair {
                s.deferred.push(entry); // same rank, another pair: not part of this step
                continue;
            }
            if rng.bernoulli(p) {
                dropped_any = true;
                s.skipped.push(entry);
                continue;
            }
            merge_at(table, parts, s, ju);
        }
        // the next step redraws for everything still applicable
        for list in [&mut s.skipped, &mut s.deferred, &mut s.fresh] {
            s.heap.extend(list.drain(..));
        }
    }
    let mut w = 0usize;
    let mut i = 0u32;
    while i != NONE {
        parts[w] = parts[i as usize];
        w += 1;
        i = s.next[i as usize];
    }
    parts.truncate(w);
    dropped_any
}

/// Encode one piece of bytes with BPE-dropout, appending to `out`: merge from bytes with
/// dropout; if nothing was dropped, emit the plain encoding of the piece instead (which
/// emits a piece that is itself a token whole).
pub fn encode_piece_dropout(
    enc: &CoreEncoding,
    piece: &[u8],
    p: f64,
    rng: &mut Rng,
    parts: &mut Vec<u32>,
    scratch: &mut DropoutScratch,
    out: &mut Vec<u32>,
) -> Result<()> {
    if piece.is_empty() {
        return Ok(());
    }
    let merges = enc.merges();
    parts.clear();
    parts.extend(piece.iter().map(|&b| merges.byte_id(b)));
    if !merge_with_dropout(merges, parts, p, rng, scratch) {
        // nothing dropped: exactly the plain encoding
        return enc.encode_piece(piece, out);
    }
    if parts.iter().any(|&t| t >= PSEUDO_BYTE_BASE) {
        return Err(Error::UnencodableBytes(piece.to_vec()));
    }
    out.extend_from_slice(parts);
    Ok(())
}

/// [`CoreEncoding::encode`] with BPE-dropout: identical special-token handling and
/// pre-tokenization; every piece is merged by [`encode_piece_dropout`]. `p = 0` takes the
/// plain encoder itself.
pub fn encode_dropout(
    enc: &CoreEncoding,
    text: &str,
    allowed: &SpecialSet,
    disallowed: &SpecialSet,
    p: f64,
    seed: u64,
) -> Result<Vec<u32>> {
    check_probability(p, "dropout")?;
    if p == 0.0 {
        return enc.encode(text, allowed, disallowed);
    }
    let mut rng = Rng::new(seed, 0);
    let mut parts = Vec::new();
    let mut scratch = DropoutScratch::default();
    let mut out = Vec::with_capacity(text.len() / 2 + 1);
    let bytes = text.as_bytes();
    let specials = enc.specials();
    let check = !specials.overlapping() && !disallowed.is_empty();
    let mut start = 0usize;
    loop {
        // the next allowed special token, exactly as the plain encoder finds it
        let mut find_pos = start;
        let next = loop {
            match specials.find_from(text, find_pos) {
                None => break None,
                Some(m) => {
                    if check && disallowed.contains(m.index) {
                        return Err(Error::DisallowedSpecial(
                            specials.tokens()[m.index].0.clone(),
                        ));
                    }
                    if allowed.contains(m.index) {
                        break Some(m);
                    }
                    find_pos = m.start + 1;
                }
            }
        };
        let end = next.map_or(text.len(), |m| m.start);
        enc.pretokenizer()
            .for_each_piece(&text[start..end], |a, b| {
                encode_piece_dropout(
                    enc,
                    &bytes[start + a..start + b],
                    p,
                    &mut rng,
                    &mut parts,
                    &mut scratch,
                    &mut out,
                )
            })?;
        match next {
            Some(m) => {
                out.push(specials.tokens()[m.index].1);
                start = m.end;
            }
            None => break,
        }
    }
    Ok(out)
}

/// BPE-dropout for one piece of an HF byte-level BPE model, mirroring
/// [`BpeModel::encode_piece`]: maximal runs of bytes that have tokens are merged with
/// dropout; a byte without a token becomes the unk token (consecutive ones fused if
/// `fuse_unk`) or is dropped when there is no unk token. If no merge was dropped the piece
/// gets its plain encoding, so with `ignore_merges` a piece that is a token stays whole
/// unless a merge was dropped (HF instead bypasses `ignore_merges` under dropout).
pub fn hf_piece_dropout(
    model: &BpeModel,
    piece: &[u8],
    p: f64,
    rng: &mut Rng,
    parts: &mut Vec<u32>,
    scratch: &mut DropoutScratch,
    out: &mut Vec<u32>,
) -> Result<()> {
    if piece.is_empty() {
        return Ok(());
    }
    let vocab = model.byte_vocab();
    let table = model.merge_table();
    let start = out.len();
    let mut dropped = false;
    let unk = || -> Result<u32> {
        let name = model.unk_token.as_deref().unwrap_or("");
        model.token_to_id(name).ok_or_else(|| {
            Error::InvalidVocab(format!("unk_token {name:?} is not in the vocabulary"))
        })
    };
    let mut pending_unk = false;
    let mut i = 0usize;
    while i < piece.len() {
        if vocab.byte_id(piece[i]).is_some() {
            let j = i + piece[i..]
                .iter()
                .position(|&b| vocab.byte_id(b).is_none())
                .unwrap_or(piece.len() - i);
            if pending_unk {
                out.push(unk()?);
                pending_unk = false;
            }
            parts.clear();
            parts.extend(piece[i..j].iter().map(|&b| table.byte_id(b)));
            dropped |= merge_with_dropout(table, parts, p, rng, scratch);
            out.extend_from_slice(parts);
            i = j;
        } else {
            if model.unk_token.is_some() {
                if pending_unk && !model.fuse_unk {
                    out.push(unk()?);
                }
                pending_unk = true;
            }
            i += 1;
        }
    }
    if pending_unk {
        out.push(unk()?);
    }
    if !dropped {
        // nothing dropped: exactly the plain encoding (ignore_merges included)
        out.truncate(start);
        return model.encode_piece(piece, out, None);
    }
    Ok(())
}

/// [`HfTokenizer::encode`] with BPE-dropout probability `p` and generator `(seed, 0)`: the
/// pipeline is unchanged, every pre-tokenized piece is merged by [`hf_piece_dropout`].
/// `p = 0` takes the plain encoder.
pub fn hf_encode_dropout(
    tok: &HfTokenizer,
    text: &str,
    add_special_tokens: bool,
    p: f64,
    seed: u64,
) -> Result<Vec<u32>> {
    check_probability(p, "dropout")?;
    if p == 0.0 {
        return tok.encode(text, add_special_tokens);
    }
    let mut rng = Rng::new(seed, 0);
    let mut parts = Vec::new();
    let mut scratch = DropoutScratch::default();
    let model = tok.model();
    tok.encode_with_pieces(text, add_special_tokens, |piece, out| {
        hf_piece_dropout(model, piece, p, &mut rng, &mut parts, &mut scratch, out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::Vocab;

    fn enc(tokens: &[&[u8]], pattern: &str) -> CoreEncoding {
        let mut pairs: Vec<(Vec<u8>, u32)> = (0..=255u8).map(|b| (vec![b], b as u32)).collect();
        for (i, t) in tokens.iter().enumerate() {
            pairs.push((t.to_vec(), 256 + i as u32));
        }
        CoreEncoding::new(pairs, vec![("<|x|>".into(), 1000)], pattern).unwrap()
    }

    fn all(e: &CoreEncoding) -> SpecialSet {
        SpecialSet::all(e.specials().len())
    }

    #[test]
    fn p0_is_plain_and_p1_is_bytes() {
        let e = enc(&[b"ab", b"cd", b"abcd", b"ba", b"aba"], r"\S+|\s+");
        let text = "abcd ababab<|x|>cdcd abba";
        let a = all(&e);
        let none = SpecialSet::none(1);
        let plain = e.encode(text, &a, &none).unwrap();
        for seed in 0..20 {
            assert_eq!(
                encode_dropout(&e, text, &a, &none, 0.0, seed).unwrap(),
                plain
            );
            // tiny p: nothing is dropped (with overwhelming probability) -> plain
            assert_eq!(
                encode_dropout(&e, text, &a, &none, 1e-300, seed).unwrap(),
                plain
            );
            let bytes = encode_dropout(&e, text, &a, &none, 1.0, seed).unwrap();
            let expect: Vec<u32> = "abcd ababab"
                .bytes()
                .map(u32::from)
                .chain([1000])
                .chain("cdcd abba".bytes().map(u32::from))
                .collect();
            assert_eq!(bytes, expect);
        }
        assert!(encode_dropout(&e, text, &a, &none, -0.1, 0).is_err());
        assert!(encode_dropout(&e, text, &a, &none, 1.1, 0).is_err());
        let dis = SpecialSet::all(1);
        let err = encode_dropout(&e, text, &none, &dis, 0.5, 0).unwrap_err();
        assert!(matches!(err, Error::DisallowedSpecial(_)));
    }

    #[test]
    fn round_trip_and_reproducible() {
        let e = enc(&[b"ab", b"cd", b"abcd", b"ba", b"aba"], r"\S+|\s+");
        let text = "abcd ababab cdcd abba ".repeat(20);
        let none = SpecialSet::none(1);
        for &p in &[0.1, 0.5, 0.9] {
            for seed in 0..10 {
                let ids = encode_dropout(&e, &text, &none, &none, p, seed).unwrap();
                assert_eq!(e.decode_bytes(&ids).unwrap(), text.as_bytes());
                assert_eq!(
                    ids,
                    encode_dropout(&e, &text, &none, &none, p, seed).unwrap()
                );
            }
        }
    }

    /// Straightforward reference with the same lazy draw order: at each step, list the
    /// applicable merges in priority order, draw until the first survivor, then draw for the
    /// other occurrences of its pair to the right (skipping overlaps) and merge the survivors.
    fn reference(t: &MergeTable, parts: &[u32], drop: &mut dyn FnMut() -> bool) -> Vec<u32> {
        let mut ids = parts.to_vec();
        loop {
            let mut cands: Vec<(u32, usize)> = (0..ids.len().saturating_sub(1))
                .filter_map(|i| t.get(ids[i], ids[i + 1]).map(|(r, _)| (r, i)))
                .collect();
            cands.sort();
            let Some(k) = cands.iter().position(|_| !drop()) else {
                return ids;
            };
            let (r, i) = cands[k];
            let pair = (ids[i], ids[i + 1]);
            let mut merge = vec![i];
            for &(r2, j) in &cands[k + 1..] {
                if r2 != r {
                    break;
                }
                if (ids[j], ids[j + 1]) != pair || j == merge[merge.len() - 1] + 1 {
                    continue;
                }
                if !drop() {
                    merge.push(j);
                }
            }
            let res = t.get(pair.0, pair.1).map(|x| x.1).unwrap_or(0);
            for &j in merge.iter().rev() {
                ids[j] = res;
                ids.remove(j + 1);
            }
        }
    }

    #[test]
    fn same_draws_same_result_as_reference() {
        // Both consume one draw per examined candidate in priority order, so with the same
        // generator they must produce identical outputs.
        let v = Vocab::from_pairs((0..=255u8).map(|b| (vec![b], b as u32)).chain([
            (b"aa".to_vec(), 256),
            (b"ab".to_vec(), 257),
            (b"aab".to_vec(), 258),
            (b"ba".to_vec(), 259),
            (b"aaaa".to_vec(), 260),
            (b"bab".to_vec(), 261),
        ]))
        .unwrap();
        let t = MergeTable::from_vocab_ranks(&v);
        let mut scratch = DropoutScratch::default();
        let mut seed = 1u64;
        for len in 1..60 {
            for &p in &[0.0, 0.2, 0.5, 0.8, 1.0] {
                let piece: Vec<u32> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                        if (seed >> 33).is_multiple_of(3) {
                            b'b' as u32
                        } else {
                            b'a' as u32
                        }
                    })
                    .collect();
                let mut r1 = Rng::new(seed, 3);
                let mut r2 = Rng::new(seed, 3);
                let mut ours = piece.clone();
                merge_with_dropout(&t, &mut ours, p, &mut r1, &mut scratch);
                let theirs = reference(&t, &piece, &mut || r2.bernoulli(p));
                assert_eq!(ours, theirs, "len {len} p {p}");
                assert_eq!(r1, r2, "same number of draws");
            }
        }
    }
}
