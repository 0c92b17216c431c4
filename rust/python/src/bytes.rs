//! Bindings of `supertok_core::bytes`: the tokenizer-side analysis (`ByteTokenizer`) and
//! the streaming covering tree (`ByteTree`). The Python class `supertok.ByteLM` wraps them.

use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyBytes, PyDict};

use supertok_core::bytes::tree::{ByteTokenizer as CoreBT, ByteTree as CoreTree};
use supertok_core::bytes::{PieceTokenizer, RegexBpe};

use crate::encoding::CoreEncoding;
use crate::tokenizer::CoreTokenizer;
use crate::{extract_ids, to_py, u32s_to_bytes};

/// `([(bounds, open, eot)], certain)`.
type HypsOut = (Vec<(Vec<u32>, u32, bool)>, u32);

/// Tokenizer-side analysis for exact byte-level probabilities (shared, immutable).
#[pyclass(frozen, module = "supertok._core")]
pub struct ByteTokenizer {
    pub(crate) inner: Arc<CoreBT>,
}

fn rows_from_bytes(data: &[u8], dtype: &str, n_rows: usize) -> PyResult<Vec<Vec<f64>>> {
    let width = match dtype {
        "f8" => 8,
        "f4" => 4,
        other => {
            return Err(PyValueError::new_err(format!(
                "unsupported row dtype {other:?} (expected 'f4' or 'f8')"
            )))
        }
    };
    if n_rows == 0 {
        return Ok(Vec::new());
    }
    if !data.len().is_multiple_of(width * n_rows) {
        return Err(PyValueError::new_err(format!(
            "row buffer of {} bytes does not hold {n_rows} rows of {dtype}",
            data.len()
        )));
    }
    let per = data.len() / width / n_rows;
    let mut out = Vec::with_capacity(n_rows);
    for r in 0..n_rows {
        let chunk = &data[r * per * width..(r + 1) * per * width];
        let row: Vec<f64> = if width == 8 {
            chunk
                .chunks_exact(8)
                .map(|c| f64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect()
        } else {
            chunk
                .chunks_exact(4)
                .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect()
        };
        out.push(row);
    }
    Ok(out)
}

#[pymethods]
impl ByteTokenizer {
    /// Analyse a tiktoken-style encoding (`supertok.Encoding._core_bpe`).
    #[staticmethod]
    fn from_encoding(py: Python<'_>, enc: &Bound<'_, CoreEncoding>) -> PyResult<Self> {
        let core = enc.get().inner.clone();
        let tok: Arc<dyn PieceTokenizer> = core;
        let inner = py.detach(move || CoreBT::new(tok)).map_err(to_py)?;
        Ok(ByteTokenizer {
            inner: Arc::new(inner),
        })
    }

    /// Analyse an HF byte-level BPE tokenizer (`supertok.Tokenizer._core`); `eot` names its
    /// end-of-text special token (default `<|endoftext|>` when present).
    #[staticmethod]
    #[pyo3(signature = (tok, eot=None))]
    fn from_hf(
        py: Python<'_>,
        tok: &Bound<'_, CoreTokenizer>,
        eot: Option<String>,
    ) -> PyResult<Self> {
        let hf = (*tok.get().inner).clone();
        let inner = py
            .detach(move || -> supertok_core::Result<CoreBT> {
                let p = supertok_core::bytes::hf::HfPieces::new(hf, eot.as_deref())?;
                CoreBT::new(Arc::new(p))
            })
            .map_err(to_py)?;
        Ok(ByteTokenizer {
            inner: Arc::new(inner),
        })
    }

    /// Analyse a byte-level BPE tokenizer given as parts: `tokens` maps token bytes to
    /// ids, `merges` lists `(left id, right id)` pairs in rank order, `pattern` is the split
    /// regex, `special_tokens` maps strings to ids without bytes.
    #[staticmethod]
    #[pyo3(signature = (tokens, merges, pattern, special_tokens, eot=None, ignore_merges=false))]
    fn from_bpe(
        py: Python<'_>,
        tokens: &Bound<'_, PyDict>,
        merges: Vec<(u32, u32)>,
        pattern: &str,
        special_tokens: std::collections::HashMap<String, u32>,
        eot: Option<u32>,
        ignore_merges: bool,
    ) -> PyResult<Self> {
        let mut pairs = Vec::with_capacity(tokens.len());
        for (k, v) in tokens.iter() {
            let b = k
                .cast::<PyBytes>()
                .map_err(|_| PyTypeError::new_err("token keys must be bytes".to_string()))?;
            let id: u32 = v
                .extract()
                .map_err(|_| PyValueError::new_err("token ids must be ints in [0, 2**32)"))?;
            pairs.push((b.as_bytes().to_vec(), id));
        }
        let specials: Vec<(String, u32)> = special_tokens.into_iter().collect();
        let pattern = pattern.to_string();
        let inner = py
            .detach(move || -> supertok_core::Result<CoreBT> {
                let rb = RegexBpe::new(pairs, &merges, &pattern, specials, eot, ignore_merges)?;
                CoreBT::new(Arc::new(rb))
            })
            .map_err(to_py)?;
        Ok(ByteTokenizer {
            inner: Arc::new(inner),
        })
    }

    /// One past the largest token id.
    fn n_ids(&self) -> usize {
        self.inner.n_ids()
    }

    /// The tokenizer's end-of-text id (or None).
    fn eot(&self) -> Option<u32> {
        self.inner.eot()
    }

    /// Ids that carry no bytes (special tokens, holes).
    fn special_ids(&self) -> Vec<u32> {
        self.inner.special_ids().to_vec()
    }

    /// Longest token in bytes.
    fn max_token_len(&self) -> usize {
        self.inner.tokenizer().vocab().max_token_len()
    }

    /// Bytes of a token (None for ids without bytes).
    fn token_bytes<'py>(&self, py: Python<'py>, id: u32) -> Option<Bound<'py, PyBytes>> {
        self.inner
            .tokenizer()
            .vocab()
            .bytes(id)
            .map(|b| PyBytes::new(py, b))
    }

    /// Canonical encoding of a text (pre-tokenization + BPE, no special tokens).
    fn encode(&self, py: Python<'_>, text: PyBackedStr) -> PyResult<Vec<u32>> {
        py.detach(|| self.inner.tokenizer().encode_text(&text))
            .map_err(to_py)
    }

    /// Decode token ids to bytes (ids without bytes raise).
    fn decode<'py>(
        &self,
        py: Python<'py>,
        ids: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let ids = extract_ids(ids)?;
        let v = self.inner.tokenizer().vocab();
        let mut out = Vec::new();
        for id in ids {
            out.extend_from_slice(
                v.bytes(id)
                    .ok_or_else(|| PyValueError::new_err(format!("token {id} has no bytes")))?,
            );
        }
        Ok(PyBytes::new(py, &out))
    }

    /// Pure BPE of one piece under the merge table (no whole-piece shortcut).
    fn bpe(&self, py: Python<'_>, data: &[u8]) -> PyResult<Vec<u32>> {
        let mut out = Vec::new();
        let t = self.inner.tokenizer();
        py.detach(|| t.merges().encode_piece(data, &mut out))
            .map_err(to_py)?;
        Ok(out)
    }

    /// Token ids sorted by bytes, as native uint32 bytes.
    fn sorted_ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        u32s_to_bytes(py, self.inner.index().ids())
    }

    /// Positions `(lo, hi)` in `sorted_ids()` of the tokens starting with `prefix`.
    #[pyo3(signature = (prefix, strict=false))]
    fn prefix_range(&self, prefix: &[u8], strict: bool) -> (usize, usize) {
        self.inner.index().prefix_range(prefix, strict)
    }

    /// Whether `(left, right)` may be adjacent inside one pre-token piece of a canonical
    /// encoding.
    fn pair_valid(&self, left: u32, right: u32) -> bool {
        self.inner.pair_valid(left, right)
    }

    /// Whether a token is the BPE encoding of its own bytes.
    fn reachable(&self, id: u32) -> bool {
        self.inner.canon().reachable(id)
    }

    /// Tokens that are never the BPE encoding of their own bytes.
    fn unreachable(&self) -> Vec<u32> {
        self.inner
            .canon()
            .unreachable(self.inner.tokenizer().vocab())
    }

    /// Whether `ids` is the pure BPE encoding of its bytes (pairwise test).
    fn is_canonical_piece(&self, ids: &Bound<'_, PyAny>) -> PyResult<bool> {
        let ids = extract_ids(ids)?;
        let t = self.inner.tokenizer();
        Ok(self
            .inner
            .canon()
            .is_canonical_piece(t.vocab(), t.merges(), &ids))
    }

    /// Tokens starting with `prefix` that may follow `left` inside a piece.
    fn valid_successors(&self, py: Python<'_>, left: u32, prefix: &[u8]) -> Vec<u32> {
        let bt = self.inner.clone();
        let prefix = prefix.to_vec();
        py.detach(move || {
            let t = bt.tokenizer();
            bt.canon()
                .valid_successors(t.vocab(), t.merges(), bt.index(), left, &prefix)
        })
    }

    /// Pre-token hypotheses of a tail: `([(bounds, open, eot)], certain)` in characters.
    fn hypotheses(&self, py: Python<'_>, tail: &[u8]) -> PyResult<HypsOut> {
        let bt = self.inner.clone();
        let tail = tail.to_vec();
        let h = py
            .detach(move || bt.lookahead().hypotheses(bt.tokenizer(), &tail))
            .map_err(to_py)?;
        Ok((
            h.hyps
                .iter()
                .map(|x| (x.bounds.clone(), x.open, x.eot))
                .collect(),
            h.certain,
        ))
    }

    /// Number of probe continuations per new tail shape.
    fn n_probes(&self) -> usize {
        self.inner.lookahead().n_probes()
    }
}

/// The streaming valid covering tree of one byte stream.
#[pyclass(module = "supertok._core")]
pub struct ByteTree {
    inner: CoreTree,
}

#[pymethods]
impl ByteTree {
    /// A stream at the start of a text. With `known`, only that text can be pushed (in
    /// order) and rows are summarised for it only (cheaper scoring).
    #[new]
    #[pyo3(signature = (tokenizer, known=None))]
    fn py_new(tokenizer: &Bound<'_, ByteTokenizer>, known: Option<Vec<u8>>) -> Self {
        ByteTree {
            inner: CoreTree::new(tokenizer.get().inner.clone(), known),
        }
    }

    /// A copy of this stream.
    fn copy(&self) -> Self {
        ByteTree {
            inner: self.inner.clone(),
        }
    }

    /// Append one byte (0..=255). Evaluate `pending()` before reading distributions.
    fn push(&mut self, py: Python<'_>, byte: u32) -> PyResult<()> {
        let b = u8::try_from(byte)
            .map_err(|_| PyValueError::new_err(format!("byte out of range: {byte}")))?;
        let t = &mut self.inner;
        py.detach(|| t.push(b)).map_err(to_py)
    }

    /// Nodes waiting for LM rows: `(ids, paths)`, each path the token ids after the trunk.
    fn pending(&self) -> (Vec<u32>, Vec<Vec<u32>>) {
        let ids = self.inner.pending().to_vec();
        let paths = ids.iter().map(|&n| self.inner.path(n)).collect();
        (ids, paths)
    }

    /// Give LM rows for `ids` (in that order) as a C-contiguous buffer of `len(ids)` rows
    /// of float64 (`dtype="f8"`) or float32 (`"f4"`) natural-log probabilities.
    #[pyo3(signature = (ids, rows, dtype="f8", eot=None))]
    fn set_rows(
        &mut self,
        py: Python<'_>,
        ids: Vec<u32>,
        rows: &[u8],
        dtype: &str,
        eot: Option<u32>,
    ) -> PyResult<()> {
        let rows = rows_from_bytes(rows, dtype, ids.len())?;
        let t = &mut self.inner;
        py.detach(|| -> supertok_core::Result<()> {
            for (id, row) in ids.iter().zip(rows.iter()) {
                t.set_row(*id, row, eot)?;
            }
            Ok(())
        })
        .map_err(to_py)
    }

    /// Zero-copy variant of `set_rows` for the Python wrapper: `address` is the data pointer
    /// of a live, C-contiguous numpy array of `len(ids) * row_len` float64 (`"f8"`) or
    /// float32 (`"f4"`) values that the caller keeps alive for the duration of the call.
    #[pyo3(signature = (ids, address, row_len, dtype="f8", eot=None))]
    fn set_rows_ptr(
        &mut self,
        py: Python<'_>,
        ids: Vec<u32>,
        address: usize,
        row_len: usize,
        dtype: &str,
        eot: Option<u32>,
    ) -> PyResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        if address == 0 || row_len == 0 {
            return Err(PyValueError::new_err("empty row buffer"));
        }
        let n = ids
            .len()
            .checked_mul(row_len)
            .ok_or_else(|| PyValueError::new_err("row buffer too large"))?;
        let t = &mut self.inner;
        match dtype {
            "f8" => {
                if !address.is_multiple_of(std::mem::align_of::<f64>()) {
                    return Err(PyValueError::new_err("misaligned float64 buffer"));
                }
                // SAFETY: the Python wrapper passes the data pointer of a C-contiguous
                // float64 array of exactly `ids.len() * row_len` elements that it keeps
                // alive (and does not mutate) during this call.
                let all: &[f64] = unsafe { std::slice::from_raw_parts(address as *const f64, n) };
                py.detach(|| -> supertok_core::Result<()> {
                    for (k, id) in ids.iter().enumerate() {
                        t.set_row_with(*id, &all[k * row_len..(k + 1) * row_len], eot)?;
                    }
                    Ok(())
                })
                .map_err(to_py)
            }
            "f4" => {
                if !address.is_multiple_of(std::mem::align_of::<f32>()) {
                    return Err(PyValueError::new_err("misaligned float32 buffer"));
                }
                // SAFETY: as above, for float32.
                let all: &[f32] = unsafe { std::slice::from_raw_parts(address as *const f32, n) };
                py.detach(|| -> supertok_core::Result<()> {
                    for (k, id) in ids.iter().enumerate() {
                        t.set_row_with(*id, &all[k * row_len..(k + 1) * row_len], eot)?;
                    }
                    Ok(())
                })
                .map_err(to_py)
            }
            other => Err(PyValueError::new_err(format!(
                "unsupported row dtype {other:?} (expected 'f4' or 'f8')"
            ))),
        }
    }

    /// Normalised 257-way next-byte log-distribution (index 256 = end of text).
    fn distribution(&self, py: Python<'_>) -> PyResult<Vec<f64>> {
        let t = &self.inner;
        py.detach(|| t.distribution()).map_err(to_py)
    }

    /// Unnormalised `(log total, 257 log-masses)` relative to the trunk.
    fn masses(&self, py: Python<'_>) -> PyResult<(f64, Vec<f64>)> {
        let t = &self.inner;
        py.detach(|| t.masses()).map_err(to_py)
    }

    /// log P(next byte = `byte` | text) (`None` = end of text).
    #[pyo3(signature = (byte=None))]
    fn target_logprob(&self, byte: Option<u8>) -> PyResult<f64> {
        self.inner.target_logprob(byte).map_err(to_py)
    }

    /// Sample a cover of the text (see `supertok_core::bytes::ByteTree::sample_cover`).
    fn sample_cover(&self, u1: f64, u2: f64) -> PyResult<Option<Vec<u32>>> {
        self.inner.sample_cover(u1, u2).map_err(to_py)
    }

    /// Committed tokens.
    fn trunk(&self) -> Vec<u32> {
        self.inner.trunk().to_vec()
    }

    /// Tokens committed since the last call.
    fn take_committed(&mut self) -> Vec<u32> {
        self.inner.take_committed()
    }

    /// log-probability of the committed tokens.
    fn trunk_logprob(&self) -> f64 {
        self.inner.trunk_logprob()
    }

    /// Bytes pushed so far.
    fn text<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.text())
    }

    /// Live heads as `(path after trunk, end byte position)`.
    fn heads(&self) -> Vec<(Vec<u32>, usize)> {
        self.inner
            .heads()
            .iter()
            .map(|&h| (self.inner.path(h), self.inner.node_end(h)))
            .collect()
    }

    /// Path of the head that is the canonical encoding of the whole text (None if the
    /// text cannot end here).
    fn complete_path(&self) -> Option<Vec<u32>> {
        self.inner.complete_head().map(|h| self.inner.path(h))
    }

    /// Counters: evaluated, bytes, heads, max_heads, inconsistent.
    fn counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let d = PyDict::new(py);
        d.set_item("evaluated", s.evaluated)?;
        d.set_item("bytes", s.bytes)?;
        d.set_item("heads", s.heads)?;
        d.set_item("max_heads", s.max_heads)?;
        d.set_item("inconsistent", s.inconsistent)?;
        Ok(d)
    }
}
