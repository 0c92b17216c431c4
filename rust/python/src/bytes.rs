//! Bindings of `supertok_core::bytes`: the tokenizer-side analysis (`ByteTokenizer`) and
//! the streaming covering tree (`ByteTree`). The Python class `supertok.ByteLM` wraps them.

use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyCapsule, PyDict, PyType};

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

/// A read-only view of a numpy array of LM rows (no copy). The array object is kept
/// referenced by the caller for the duration of the call; like numpy's own GIL-free loops,
/// the values are read without the GIL.
enum RowsView<'a> {
    F64(&'a [f64]),
    F32(&'a [f32]),
}

/// numpy's `PyArrayInterface` (the C-struct version of the array interface, documented and
/// unchanged since numpy 1.0), as returned in the `__array_struct__` capsule.
#[repr(C)]
struct ArrayInterface {
    two: std::os::raw::c_int,
    nd: std::os::raw::c_int,
    typekind: std::os::raw::c_char,
    itemsize: std::os::raw::c_int,
    flags: std::os::raw::c_int,
    shape: *const isize,
    strides: *const isize,
    data: *const std::os::raw::c_void,
    descr: *mut pyo3::ffi::PyObject,
}

const NPY_C_CONTIGUOUS: std::os::raw::c_int = 0x0001;
const NPY_ALIGNED: std::os::raw::c_int = 0x0100;
const NPY_NOTSWAPPED: std::os::raw::c_int = 0x0200;

/// `(view, number of rows, row length)` of a C-contiguous 1-D or 2-D float32/float64
/// `numpy.ndarray` (exactly that type: its `__array_struct__` is numpy's own). About a
/// microsecond per call (`__array_interface__` builds a dict and costs several).
fn rows_view<'a>(arr: &'a Bound<'_, PyAny>) -> PyResult<(RowsView<'a>, usize, usize)> {
    static NDARRAY: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let py = arr.py();
    let ndarray = NDARRAY.import(py, "numpy", "ndarray")?;
    if !arr.get_type().is(ndarray) {
        return Err(PyTypeError::new_err(format!(
            "rows must be a numpy.ndarray, not {}",
            arr.get_type().name()?
        )));
    }
    let capsule = arr.getattr("__array_struct__")?;
    let capsule = capsule
        .cast::<PyCapsule>()
        .map_err(|_| PyTypeError::new_err("numpy returned no array-interface capsule"))?;
    let ptr = capsule.pointer_checked(None)?;
    // SAFETY: numpy.ndarray.__array_struct__ is a capsule holding a PyArrayInterface that
    // lives as long as the capsule (kept alive until the end of this function) and
    // describes the array's memory.
    let ai = unsafe { &*(ptr.as_ptr() as *const ArrayInterface) };
    if ai.two != 2 {
        return Err(PyValueError::new_err("unexpected numpy array interface"));
    }
    if ai.nd < 1 || ai.nd > 2 || ai.shape.is_null() {
        return Err(PyValueError::new_err(format!(
            "rows must be 1-D or 2-D, got {} dimensions",
            ai.nd
        )));
    }
    // SAFETY: `shape` holds `nd` entries.
    let shape = unsafe { std::slice::from_raw_parts(ai.shape, ai.nd as usize) };
    let (n_rows, width) = match *shape {
        [w] => (1usize, w as usize),
        [r, w] => (r as usize, w as usize),
        _ => unreachable!(),
    };
    let need = NPY_C_CONTIGUOUS | NPY_ALIGNED | NPY_NOTSWAPPED;
    if ai.flags & need != need {
        return Err(PyValueError::new_err(
            "rows must be a C-contiguous, aligned, native-endian array",
        ));
    }
    let n = n_rows
        .checked_mul(width)
        .ok_or_else(|| PyValueError::new_err("row array too large"))?;
    let kind = ai.typekind as u8;
    if n == 0 || ai.data.is_null() {
        return match (kind, ai.itemsize) {
            (b'f', 8) | (b'f', 4) => Ok((RowsView::F64(&[]), n_rows, width)),
            _ => Err(PyTypeError::new_err("rows must be float32 or float64")),
        };
    }
    match (kind, ai.itemsize) {
        // SAFETY: a live (the caller holds `arr`), aligned, C-contiguous buffer of `n`
        // native float64 values, as numpy describes it.
        (b'f', 8) => Ok((
            RowsView::F64(unsafe { std::slice::from_raw_parts(ai.data as *const f64, n) }),
            n_rows,
            width,
        )),
        // SAFETY: as above, float32.
        (b'f', 4) => Ok((
            RowsView::F32(unsafe { std::slice::from_raw_parts(ai.data as *const f32, n) }),
            n_rows,
            width,
        )),
        _ => Err(PyTypeError::new_err(format!(
            "rows must be float32 or float64 (got kind {:?}, {} bytes)",
            kind as char, ai.itemsize
        ))),
    }
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

/// `(ids, tokens, parents, rows)` of [`ByteTree::pending_tree`].
type PendingTree = (Vec<u32>, Vec<u32>, Vec<i64>, Vec<i64>);

/// The streaming valid covering tree of one byte stream.
#[pyclass(module = "supertok._core")]
pub struct ByteTree {
    inner: CoreTree,
}

#[pymethods]
impl ByteTree {
    /// A stream at the start of a text. With `known`, that text must be pushed first (in
    /// order) and rows are summarised for it only (cheaper scoring). With `scoring`, only
    /// the known bytes and the end of the text can be scored (nothing is kept for later).
    /// With `prompt`, `known` is a prompt that is only asked about after its end: its bytes
    /// may be pushed without evaluating the pending nodes in between, so nodes that die
    /// inside the prompt are never evaluated.
    #[new]
    #[pyo3(signature = (tokenizer, known=None, scoring=false, prompt=false))]
    fn py_new(
        tokenizer: &Bound<'_, ByteTokenizer>,
        known: Option<Vec<u8>>,
        scoring: bool,
        prompt: bool,
    ) -> PyResult<Self> {
        let bt = tokenizer.get().inner.clone();
        let inner = match (known, scoring, prompt) {
            (_, true, true) => {
                return Err(PyValueError::new_err(
                    "scoring=True and prompt=True exclude each other",
                ));
            }
            (None, true, _) => {
                return Err(PyValueError::new_err("scoring=True needs the known text"));
            }
            (None, _, true) => {
                return Err(PyValueError::new_err("prompt=True needs the known prompt"));
            }
            (Some(k), true, false) => CoreTree::scoring(bt, k),
            (Some(k), false, true) => CoreTree::prompt(bt, k),
            (k, false, false) => CoreTree::new(bt, k),
        };
        Ok(ByteTree { inner })
    }

    /// Whether this is a prompt stream still inside its prompt (pending nodes may wait).
    fn in_prompt(&self) -> bool {
        self.inner.in_prompt()
    }

    /// The pending nodes as one token tree below the trunk: `(ids, tokens, parents, rows)`.
    /// Tree node `k` is `tokens[k]` after tree node `parents[k]` (-1: right after the
    /// trunk), parents first; pending node `ids[i]` is tree node `rows[i]` (-1: the trunk
    /// itself).
    fn pending_tree(&self) -> PendingTree {
        let ids = self.inner.pending().to_vec();
        let (tokens, parents, rows) = self.inner.pending_tree();
        (ids, tokens, parents, rows)
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

    /// `target_logprob(byte)`, then `push(byte)`, in one call (the per-byte step of
    /// scoring a known text).
    fn score_push(&mut self, py: Python<'_>, byte: u32) -> PyResult<f64> {
        let b = u8::try_from(byte)
            .map_err(|_| PyValueError::new_err(format!("byte out of range: {byte}")))?;
        let t = &mut self.inner;
        py.detach(|| -> supertok_core::Result<f64> {
            let lp = t.target_logprob(Some(b))?;
            t.push(b)?;
            Ok(lp)
        })
        .map_err(to_py)
    }

    /// Push the next bytes of the prompt of a `prompt=True` stream without evaluating the
    /// pending nodes in between (evaluate them afterwards). On error the bytes before the
    /// failing one stay pushed.
    fn push_prompt(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        let t = &mut self.inner;
        py.detach(|| -> supertok_core::Result<()> {
            for &b in data {
                if !t.in_prompt() {
                    return Err(supertok_core::Error::InvalidArgument(
                        "push_prompt: the stream is not inside its prompt".into(),
                    ));
                }
                t.push(b)?;
            }
            Ok(())
        })
        .map_err(to_py)
    }

    /// Nodes waiting for LM rows: `(ids, paths)`, each path the token ids after the trunk.
    fn pending(&self) -> (Vec<u32>, Vec<Vec<u32>>) {
        let ids = self.inner.pending().to_vec();
        let paths = ids.iter().map(|&n| self.inner.path(n)).collect();
        (ids, paths)
    }

    /// Give LM rows for the pending nodes `ids`: `rows` is a C-contiguous float32 or
    /// float64 numpy array of natural-log probabilities (read in place, without the GIL);
    /// node `ids[k]` gets row `index[k]` (default `k`). `eot` overrides the end-of-text id.
    #[pyo3(signature = (ids, rows, index=None, eot=None))]
    fn set_rows(
        &mut self,
        py: Python<'_>,
        ids: Vec<u32>,
        rows: &Bound<'_, PyAny>,
        index: Option<Vec<usize>>,
        eot: Option<u32>,
    ) -> PyResult<()> {
        let (view, n_rows, width) = rows_view(rows)?;
        let index: Vec<usize> = match index {
            Some(ix) => {
                if ix.len() != ids.len() {
                    return Err(PyValueError::new_err(format!(
                        "index has {} entries for {} ids",
                        ix.len(),
                        ids.len()
                    )));
                }
                ix
            }
            None => (0..ids.len()).collect(),
        };
        if let Some(&bad) = index.iter().find(|&&r| r >= n_rows) {
            return Err(PyValueError::new_err(format!(
                "row {bad} requested from an array of {n_rows} rows"
            )));
        }
        let t = &mut self.inner;
        py.detach(|| -> supertok_core::Result<()> {
            for (id, &r) in ids.iter().zip(index.iter()) {
                match &view {
                    RowsView::F64(v) => t.set_row_with(*id, &v[r * width..(r + 1) * width], eot)?,
                    RowsView::F32(v) => t.set_row_with(*id, &v[r * width..(r + 1) * width], eot)?,
                }
            }
            Ok(())
        })
        .map_err(to_py)
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

    /// Counters: evaluated, bytes, heads, max_heads, inconsistent, values_read, and the
    /// nanoseconds spent in tree work (`tree_ns`: pushes and probability queries) and in
    /// reading rows (`row_ns`).
    fn counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let d = PyDict::new(py);
        d.set_item("values_read", s.values_read)?;
        d.set_item("tree_ns", s.tree_ns)?;
        d.set_item("row_ns", s.row_ns)?;
        d.set_item("evaluated", s.evaluated)?;
        d.set_item("bytes", s.bytes)?;
        d.set_item("heads", s.heads)?;
        d.set_item("max_heads", s.max_heads)?;
        d.set_item("inconsistent", s.inconsistent)?;
        Ok(d)
    }
}
