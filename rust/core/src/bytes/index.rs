//! Sorted byte index over a vocabulary: every byte prefix is a contiguous range of
//! positions in the token list sorted lexicographically by bytes.

use crate::vocab::Vocab;

/// Token ids sorted by their bytes, with the bytes laid out flat in the same order.
///
/// Position `i` (a "rank" in sorted order) holds token `ids[i]`. For a byte string `p`,
/// [`ByteIndex::prefix_range`] returns the positions of all tokens whose bytes start with
/// `p`; the token equal to `p` (if any) is the first of them.
#[derive(Clone, Debug)]
pub struct ByteIndex {
    ids: Vec<u32>,
    data: Vec<u8>,
    starts: Vec<u32>,
    /// `first[b]..first[b + 1]` are the positions of tokens whose first byte is `b`.
    first: [u32; 257],
    /// `ids` with each first-byte group sorted by id (for summing a whole group over a
    /// model row in memory order).
    by_id: Vec<u32>,
}

impl ByteIndex {
    /// Build the index over every token of `vocab`.
    pub fn new(vocab: &Vocab) -> Self {
        let ids = vocab.ids_sorted_by_bytes();
        let mut data = Vec::new();
        let mut starts = Vec::with_capacity(ids.len() + 1);
        for &id in &ids {
            starts.push(data.len() as u32);
            data.extend_from_slice(vocab.bytes(id).unwrap_or(&[]));
        }
        starts.push(data.len() as u32);
        let mut idx = ByteIndex {
            ids,
            data,
            starts,
            first: [0; 257],
            by_id: Vec::new(),
        };
        let mut first = [0u32; 257];
        for (b, slot) in first.iter_mut().enumerate().take(256) {
            *slot = idx.lower_bound_first(b as u8) as u32;
        }
        first[256] = idx.ids.len() as u32;
        idx.first = first;
        let mut by_id = idx.ids.clone();
        for b in 0..256 {
            by_id[first[b] as usize..first[b + 1] as usize].sort_unstable();
        }
        idx.by_id = by_id;
        idx
    }

    fn lower_bound_first(&self, b: u8) -> usize {
        let mut lo = 0usize;
        let mut hi = self.ids.len();
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.at(mid)[0] < b {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Number of indexed tokens.
    #[inline]
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the index is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Token ids in sorted order.
    #[inline]
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Bytes of the token at sorted position `i`.
    #[inline]
    pub fn at(&self, i: usize) -> &[u8] {
        &self.data[self.starts[i] as usize..self.starts[i + 1] as usize]
    }

    /// The ids of the tokens whose first byte is `b` (the set `ids()[first_byte_range(b)]`),
    /// in increasing id order.
    #[inline]
    pub fn first_byte_ids_by_id(&self, b: u8) -> &[u32] {
        let (lo, hi) = self.first_byte_range(b);
        &self.by_id[lo..hi]
    }

    /// Positions of the tokens whose first byte is `b`.
    #[inline]
    pub fn first_byte_range(&self, b: u8) -> (usize, usize) {
        (
            self.first[b as usize] as usize,
            self.first[b as usize + 1] as usize,
        )
    }

    /// Positions `lo..hi` of all tokens whose bytes start with `p` (all tokens for an empty
    /// `p`). With `strict`, a token equal to `p` is excluded.
    pub fn prefix_range(&self, p: &[u8], strict: bool) -> (usize, usize) {
        if p.is_empty() {
            return (0, self.ids.len());
        }
        let (mut lo, mut hi) = self.first_byte_range(p[0]);
        for (k, &b) in p.iter().enumerate().skip(1) {
            (lo, hi) = self.narrow(lo, hi, k, b);
            if lo == hi {
                return (lo, lo);
            }
        }
        if strict && lo < hi && self.at(lo).len() == p.len() {
            lo += 1;
        }
        (lo, hi)
    }

    /// Within `lo..hi`, where all tokens share their first `k` bytes, the sub-range of
    /// tokens whose byte at offset `k` is `b` (tokens of length `k` sort first and are
    /// never included).
    #[inline]
    pub fn narrow(&self, lo: usize, hi: usize, k: usize, b: u8) -> (usize, usize) {
        let key = |i: usize| -> i32 { self.at(i).get(k).map_or(-1, |&c| c as i32) };
        let b = b as i32;
        let mut a = lo;
        let mut z = hi;
        while a < z {
            let m = (a + z) / 2;
            if key(m) < b {
                a = m + 1;
            } else {
                z = m;
            }
        }
        let start = a;
        let mut z = hi;
        while a < z {
            let m = (a + z) / 2;
            if key(m) <= b {
                a = m + 1;
            } else {
                z = m;
            }
        }
        (start, a)
    }

    /// Iterate over the sub-ranges of `lo..hi` by the byte at offset `k`, as
    /// `(byte, lo, hi)`, skipping tokens of length `k`. All tokens in `lo..hi` must share
    /// their first `k` bytes.
    pub fn children(&self, lo: usize, hi: usize, k: usize) -> Vec<(u8, usize, usize)> {
        let mut out = Vec::new();
        let mut i = lo;
        while i < hi && self.at(i).len() <= k {
            i += 1;
        }
        while i < hi {
            let b = self.at(i)[k];
            let (_, e) = self.narrow(i, hi, k, b);
            out.push((b, i, e));
            i = e;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(tokens: &[&[u8]]) -> Vocab {
        Vocab::from_pairs(
            tokens
                .iter()
                .enumerate()
                .map(|(i, t)| (t.to_vec(), i as u32)),
        )
        .unwrap()
    }

    #[test]
    fn ranges_match_brute_force() {
        let toks: Vec<&[u8]> = vec![
            b"a",
            b"ab",
            b"abc",
            b"abd",
            b"b",
            b"ba",
            b"\xff",
            b"\xff\xff",
            b"\xff\x00",
            b" ",
            b"  ",
            b"x",
            b"abcd",
        ];
        let v = vocab(&toks);
        let idx = ByteIndex::new(&v);
        let probes: Vec<&[u8]> = vec![
            b"",
            b"a",
            b"ab",
            b"abc",
            b"abcd",
            b"abcde",
            b"b",
            b"c",
            b"\xff",
            b"\xff\xff",
            b" ",
            b"z",
        ];
        for p in probes {
            for strict in [false, true] {
                let (lo, hi) = idx.prefix_range(p, strict);
                let got: std::collections::BTreeSet<u32> =
                    idx.ids()[lo..hi].iter().copied().collect();
                let want: std::collections::BTreeSet<u32> = v
                    .iter()
                    .filter(|(_, b)| b.starts_with(p) && !(strict && *b == p))
                    .map(|(id, _)| id)
                    .collect();
                assert_eq!(got, want, "{p:?} {strict}");
            }
        }
        // first-byte groups in id order: the same sets, sorted
        for b in 0..=255u8 {
            let (lo, hi) = idx.first_byte_range(b);
            let by_id = idx.first_byte_ids_by_id(b);
            assert!(by_id.windows(2).all(|w| w[0] < w[1]), "{b}");
            let mut want = idx.ids()[lo..hi].to_vec();
            want.sort_unstable();
            assert_eq!(by_id, &want[..], "{b}");
        }
        let (lo, hi) = idx.prefix_range(b"ab", false);
        let ch = idx.children(lo, hi, 2);
        assert_eq!(ch.len(), 2);
        assert_eq!(ch[0].0, b'c');
        assert_eq!(ch[1].0, b'd');
    }
}
