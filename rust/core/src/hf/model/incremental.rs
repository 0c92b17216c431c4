//! Building the model of a freshly trained byte-level BPE in two steps.
//!
//! [`BpeModel::new`] takes the tokens as byte-level strings and the merges as pairs of
//! strings (the `tokenizer.json` form), so a trainer's output has to be converted to strings
//! and looked up again. A [`ModelBuilder`] takes the trainer's form directly (token bytes by
//! id, merges as id pairs) and lets the expensive per-token part — byte-level strings, the
//! string arena and its hash index — be built for a known prefix of the vocabulary ahead of
//! time: SuperBPE builds the stage-1 tokens while its stage-2 merge loop runs
//! ([`crate::superbpe::stage2_with_tokenizer`]) and only appends the stage-2 tokens at the
//! end.
//!
//! The result is the model [`BpeModel::new`] builds from the same tokens and merges (same
//! table, index insertion order, merge ranks, byte vocabulary and derived structures): both
//! end in [`BpeModel::from_tables`]. `HfTokenizer::from_bpe` and
//! `HfTokenizer::from_bpe_builder` are compared on their JSON and encodes in the tests.

use super::{bytelevel, BpeModel, BpeOptions, StrTable};
use crate::error::{Error, Result};
use crate::vocab::Vocab;

/// The token table of a byte-level BPE built token by token (ids `0, 1, 2, ...`), ready to
/// be completed with the remaining tokens, the special tokens and the merges.
#[derive(Debug, Default)]
pub struct ModelBuilder {
    names: StrTable,
    /// The bytes of each token so far, by id.
    tokens: Vec<Vec<u8>>,
}

impl ModelBuilder {
    /// A builder holding `prefix` as tokens `0 .. prefix.len()`.
    pub fn new(prefix: Vec<Vec<u8>>) -> Result<Self> {
        let mut b = ModelBuilder::default();
        b.tokens.reserve(prefix.len());
        for t in prefix {
            b.push(t)?;
        }
        Ok(b)
    }

    /// The tokens of a byte-level BPE whose merges are given as the bytes of their two
    /// sides, in rank order: the 256 single bytes, then each merge's concatenation.
    pub fn from_byte_merges(merges: &[(Vec<u8>, Vec<u8>)]) -> Result<Self> {
        let prefix = (0..=255u8)
            .map(|b| vec![b])
            .chain(merges.iter().map(|(l, r)| {
                let mut t = Vec::with_capacity(l.len() + r.len());
                t.extend_from_slice(l);
                t.extend_from_slice(r);
                t
            }))
            .collect();
        Self::new(prefix)
    }

    /// Number of tokens so far.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether no token has been added.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Append the next regular token.
    fn push(&mut self, t: Vec<u8>) -> Result<()> {
        let id = self.tokens.len() as u32;
        if t.is_empty() {
            return Err(Error::InvalidVocab(format!("token {id} has no bytes")));
        }
        let s = bytelevel::encode_str(&t);
        push_name(&mut self.names, &s, id)?;
        self.tokens.push(t);
        Ok(())
    }

    /// The model of `vocab` (token bytes by id), `merges` (id pairs in rank order, each
    /// merging into the token whose bytes are the concatenation) and `special_tokens`
    /// (sorted by id, every id at least `vocab.len()`), with default options. The tokens
    /// already in the builder are reused where `vocab` starts with them; it is rebuilt
    /// from scratch otherwise.
    pub fn finish<V: AsRef<[u8]>>(
        self,
        vocab: &[V],
        merges: &[(u32, u32)],
        special_tokens: &[(String, u32)],
    ) -> Result<BpeModel> {
        let keep = self.tokens.len() <= vocab.len()
            && self
                .tokens
                .iter()
                .zip(vocab)
                .all(|(a, b)| a[..] == *b.as_ref());
        let mut b = if keep { self } else { ModelBuilder::default() };
        let n = vocab.len();
        b.tokens.reserve(n - b.tokens.len());
        for t in &vocab[b.tokens.len()..] {
            b.push(t.as_ref().to_vec())?;
        }
        let n_entries = n + special_tokens.len();
        let max_id = special_tokens
            .iter()
            .map(|s| s.1 as usize)
            .max()
            .unwrap_or(0)
            .max(n.saturating_sub(1));
        if n_entries > 0 && max_id > 4 * n_entries + (1 << 20) {
            return Err(Error::InvalidVocab(format!(
                "token ids are too sparse: {n_entries} tokens but the largest id is {max_id}"
            )));
        }
        let ModelBuilder { mut names, tokens } = b;
        let mut byte_pairs: Vec<(Vec<u8>, u32)> = Vec::with_capacity(n_entries);
        byte_pairs.extend(tokens.into_iter().zip(0u32..));
        let mut prev_id: Option<u32> = None;
        for (s, id) in special_tokens {
            if (*id as usize) < n {
                return Err(Error::InvalidArgument(format!(
                    "special token {s:?} has id {id}, which belongs to a regular token (vocabulary size {n})"
                )));
            }
            if prev_id.is_some_and(|p| p >= *id) {
                return Err(Error::InvalidArgument(format!(
                    "special tokens must have distinct ids in increasing order ({s:?} has id {id})"
                )));
            }
            prev_id = Some(*id);
            // holes between the regular tokens and the special ones
            while names.present.len() < *id as usize {
                names.starts.push(names.data.len() as u32);
                names.present.push(false);
            }
            push_name(&mut names, s, *id)?;
            if let Some(bytes) = bytelevel::decode_str(s) {
                if !bytes.is_empty() {
                    byte_pairs.push((bytes, *id));
                }
            }
        }
        names.starts.push(names.data.len() as u32);
        if names.data.len() > u32::MAX as usize {
            return Err(Error::InvalidVocab("vocabulary larger than 4 GiB".into()));
        }
        let bytes = Vocab::from_pairs(byte_pairs)?;
        let mut pairs: Vec<(u32, u32, u32)> = Vec::with_capacity(merges.len());
        for (k, &(l, r)) in merges.iter().enumerate() {
            for id in [l, r] {
                if id as usize >= n {
                    return Err(Error::InvalidArgument(format!(
                        "merges[{k}]: id {id} is not in the vocabulary (size {n})"
                    )));
                }
            }
            let (a, c) = match (bytes.bytes(l), bytes.bytes(r)) {
                (Some(a), Some(c)) => (a, c),
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "merges[{k}]: a side is not a byte-level token"
                    )))
                }
            };
            let res = bytes.get_concat(a, c).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "merges[{k}]: merge result {:?} is not in the vocabulary",
                    bytelevel::encode_str(&[a, c].concat())
                ))
            })?;
            pairs.push((l, r, res));
        }
        Ok(BpeModel::from_tables(
            names,
            n_entries,
            bytes,
            pairs,
            BpeOptions::default(),
        ))
    }
}

/// Append `s` as the string of `id` (the next slot of `n`) and index it, as
/// [`BpeModel::new`] does (same insertion order, so the same index and collision table).
fn push_name(n: &mut StrTable, s: &str, id: u32) -> Result<()> {
    n.starts.push(n.data.len() as u32);
    n.data.push_str(s);
    n.present.push(true);
    // `insert` reads the strings of the ids it finds: close this one's range first
    n.starts.push(n.data.len() as u32);
    let prev = n.insert(s, id);
    n.starts.pop();
    match prev {
        Some(p) => Err(Error::InvalidVocab(format!(
            "token {s:?} appears twice (ids {p} and {id})"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::ModelBuilder;
    use crate::hf::HfTokenizer;

    /// Token bytes and id merges of a small byte-level BPE (a chain of merges, some with
    /// newlines, spaces and multi-byte characters).
    fn bpe() -> (Vec<Vec<u8>>, Vec<(u32, u32)>) {
        let mut vocab: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        let mut merges = Vec::new();
        let sides: [(&[u8], &[u8]); 10] = [
            (b"\xe3", b"\x80"),
            (b"\xe3\x80", b"\x80"),
            (b"t", b"h"),
            (b"th", b"e"),
            (b" ", b"the"),
            (b"\n", b"\n"),
            (b"a", b"b"),
            (b"ab", b"ab"),
            (b" the", b" the"),
            ("\u{3000}".as_bytes(), b"x"),
        ];
        for (l, r) in sides {
            let id = |b: &[u8], v: &Vec<Vec<u8>>| v.iter().position(|t| t == b).unwrap() as u32;
            merges.push((id(l, &vocab), id(r, &vocab)));
            vocab.push([l, r].concat());
        }
        (vocab, merges)
    }

    fn same(a: &HfTokenizer, b: &HfTokenizer) {
        assert_eq!(
            a.to_json_string(false).unwrap(),
            b.to_json_string(false).unwrap()
        );
        let text = "the the\n\nabab x\u{3000}x <s> ab<pad>the";
        assert_eq!(a.encode(text, true).unwrap(), b.encode(text, true).unwrap());
        assert_eq!(a.newline_shardable(), b.newline_shardable());
    }

    #[test]
    fn builder_equals_from_bpe() {
        let (vocab, merges) = bpe();
        let n = vocab.len() as u32;
        for specials in [
            vec![],
            vec![("<s>".to_string(), n), ("<pad>".to_string(), n + 3)],
        ] {
            let pre = Some(vec![
                serde_json::json!({"type": "Digits", "individual_digits": false}),
            ]);
            let want =
                HfTokenizer::from_bpe(vocab.clone(), &merges, pre.clone(), None, specials.clone())
                    .unwrap();
            // empty builder, a prefix, the whole vocabulary, a prefix that is not one
            let mut wrong = vocab[..262].to_vec();
            wrong[259] = b"zz".to_vec();
            for prefix in [vec![], vocab[..260].to_vec(), vocab.clone(), wrong] {
                let b = ModelBuilder::new(prefix).unwrap();
                let got = HfTokenizer::from_bpe_builder(
                    b,
                    &vocab,
                    &merges,
                    pre.clone(),
                    None,
                    specials.clone(),
                )
                .unwrap();
                same(&got, &want);
            }
            // a repeated pair: the last rank wins on both paths
            let mut rep = merges.clone();
            rep.insert(1, merges[4]);
            let want_rep =
                HfTokenizer::from_bpe(vocab.clone(), &rep, pre.clone(), None, specials.clone())
                    .unwrap();
            let got = HfTokenizer::from_bpe_builder(
                ModelBuilder::default(),
                &vocab,
                &rep,
                pre.clone(),
                None,
                specials.clone(),
            )
            .unwrap();
            same(&got, &want_rep);
            assert_eq!(got.model().merges().len(), merges.len());
            let b = ModelBuilder::from_byte_merges(&[(b"t".to_vec(), b"h".to_vec())]).unwrap();
            assert_eq!(b.len(), 257);
            let got =
                HfTokenizer::from_bpe_builder(b, &vocab, &merges, pre, None, specials).unwrap();
            same(&got, &want);
        }
    }

    #[test]
    fn builder_rejects_what_from_bpe_rejects() {
        let (vocab, merges) = bpe();
        let n = vocab.len() as u32;
        let build = |v: &[Vec<u8>], m: &[(u32, u32)], s: Vec<(String, u32)>| {
            HfTokenizer::from_bpe_builder(ModelBuilder::default(), v, m, None, None, s)
        };
        let mut dup = vocab.clone();
        dup.push(b"the".to_vec());
        assert!(build(&dup, &merges, vec![]).is_err());
        let mut empty = vocab.clone();
        empty.push(vec![]);
        assert!(build(&empty, &merges, vec![]).is_err());
        assert!(build(&vocab, &[(0, n)], vec![]).is_err());
        // the result of 'a' + 'c' is not a token
        assert!(build(&vocab, &[(b'a' as u32, b'c' as u32)], vec![]).is_err());
        assert!(build(&vocab, &merges, vec![("<s>".into(), 5)]).is_err());
        assert!(build(&vocab, &merges, vec![("the".into(), n)]).is_err());
        assert!(ModelBuilder::new(vec![b"a".to_vec(), b"a".to_vec()]).is_err());
    }
}
