//! Bindings of `supertok_core::stochastic`: the split table, StochasTok and BPE-dropout
//! encoding. The Python API lives in `supertok.stochastic`.

use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyString};
use rayon::prelude::*;

use supertok_core::stochastic::{
    check_probability, check_ragged_offsets, encode_dropout as core_encode_dropout,
    hf_encode_dropout as core_hf_encode_dropout, SplitTable as Core,
};
use supertok_core::vocab::Vocab;

use crate::encoding::CoreEncoding;
use crate::tokenizer::CoreTokenizer;
use crate::{pool, to_py, u32s_to_bytes};

/// The legal binary splits of every token of a vocabulary (built once per vocabulary),
/// and StochasTok over it. Use `supertok.split_table(tokenizer)` to get one.
#[pyclass(frozen, module = "supertok._core", name = "SplitTable")]
pub struct SplitTable {
    inner: Arc<Core>,
}

/// Token ids from a Python sequence of ints, with errors that name the offending item.
fn extract_token_ids(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
    if let Ok(v) = obj.extract::<Vec<u32>>() {
        return Ok(v);
    }
    let type_name = |o: &Bound<'_, PyAny>| {
        o.get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default()
    };
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(format!(
            "expected a sequence of token ids (int), got {}",
            type_name(obj)
        )));
    }
    let iter = obj.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "expected a sequence of token ids (int), got {}",
            type_name(obj)
        ))
    })?;
    let mut out = Vec::new();
    for (pos, item) in iter.enumerate() {
        let item = item?;
        if item.is_instance_of::<pyo3::types::PyBool>() {
            return Err(PyTypeError::new_err(format!(
                "token ids must be integers, got bool at position {pos}"
            )));
        }
        let v = item
            .call_method0("__index__")
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "token ids must be integers, got {} at position {pos}",
                    type_name(&item)
                ))
            })?
            .extract::<i128>()
            .map_err(|_| {
                PyValueError::new_err(format!(
                    "token id at position {pos} is out of range: {}",
                    item.repr().map(|r| r.to_string()).unwrap_or_default()
                ))
            })?;
        let v = u32::try_from(v).map_err(|_| {
            PyValueError::new_err(format!(
                "token id {v} at position {pos} is not in the vocabulary"
            ))
        })?;
        out.push(v);
    }
    Ok(out)
}

/// Native-endian `u32` values from a bytes buffer.
fn u32s_from_bytes(data: &[u8], what: &str) -> PyResult<Vec<u32>> {
    if !data.len().is_multiple_of(4) {
        return Err(PyValueError::new_err(format!(
            "{what}: buffer length {} is not a multiple of 4",
            data.len()
        )));
    }
    Ok(data
        .chunks_exact(4)
        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn u64s_from_bytes(data: &[u8], what: &str) -> PyResult<Vec<u64>> {
    if !data.len().is_multiple_of(8) {
        return Err(PyValueError::new_err(format!(
            "{what}: buffer length {} is not a multiple of 8",
            data.len()
        )));
    }
    Ok(data
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect())
}

fn bytearray_u32<'py>(py: Python<'py>, v: &[u32]) -> PyResult<Bound<'py, PyByteArray>> {
    PyByteArray::new_with(py, v.len() * 4, |buf| {
        for (chunk, t) in buf.chunks_exact_mut(4).zip(v) {
            chunk.copy_from_slice(&t.to_ne_bytes());
        }
        Ok(())
    })
}

fn bytearray_u64<'py>(py: Python<'py>, v: &[u64]) -> PyResult<Bound<'py, PyByteArray>> {
    PyByteArray::new_with(py, v.len() * 8, |buf| {
        for (chunk, t) in buf.chunks_exact_mut(8).zip(v) {
            chunk.copy_from_slice(&t.to_ne_bytes());
        }
        Ok(())
    })
}

#[pymethods]
impl SplitTable {
    /// The split table of a tiktoken-style encoding (its special tokens are never split).
    #[staticmethod]
    fn from_encoding(py: Python<'_>, encoding: PyRef<'_, CoreEncoding>) -> Self {
        let enc = encoding.inner.clone();
        let inner = py.detach(move || {
            let specials = enc.specials().tokens().iter().map(|t| t.1);
            Core::new(enc.vocab(), specials)
        });
        SplitTable {
            inner: Arc::new(inner),
        }
    }

    /// The split table of an HF byte-level BPE tokenizer (`supertok.Tokenizer`); added
    /// tokens are never split.
    #[staticmethod]
    fn from_tokenizer(py: Python<'_>, tokenizer: PyRef<'_, CoreTokenizer>) -> Self {
        let tok = tokenizer.inner.clone();
        let inner = py.detach(move || Core::from_hf(&tok));
        SplitTable {
            inner: Arc::new(inner),
        }
    }

    /// Build from `(token bytes, id)` pairs and the ids of special (never split) tokens.
    #[staticmethod]
    fn from_tokens(
        py: Python<'_>,
        tokens: Vec<(Vec<u8>, u32)>,
        special_ids: Vec<u32>,
    ) -> PyResult<Self> {
        let inner = py
            .detach(move || -> supertok_core::Result<Core> {
                let vocab = Vocab::from_pairs(tokens)?;
                Ok(Core::new(&vocab, special_ids))
            })
            .map_err(to_py)?;
        Ok(SplitTable {
            inner: Arc::new(inner),
        })
    }

    /// One past the largest token id covered by the CSR arrays.
    #[getter]
    fn n_slots(&self) -> usize {
        self.inner.n_slots()
    }

    /// Total number of legal splits.
    #[getter]
    fn n_splits(&self) -> usize {
        self.inner.n_splits()
    }

    /// The largest id (token or special) the table knows, or None.
    #[getter]
    fn max_id(&self) -> Option<u32> {
        self.inner.max_known_id()
    }

    /// Legal splits of `id` as `(left, right)` pairs, in cut order.
    fn splits(&self, id: i64) -> Vec<(u32, u32)> {
        match u32::try_from(id) {
            Ok(id) => self.inner.splits(id).iter().map(|p| (p[0], p[1])).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Whether `id` is a token or special token of the vocabulary.
    fn is_known(&self, id: i64) -> bool {
        u32::try_from(id).is_ok_and(|id| self.inner.is_known(id))
    }

    /// CSR arrays as native-endian uint32 buffers `(offsets, left, right)`.
    fn csr_bytes<'py>(
        &self,
        py: Python<'py>,
    ) -> (
        Bound<'py, PyBytes>,
        Bound<'py, PyBytes>,
        Bound<'py, PyBytes>,
    ) {
        let (o, pairs) = self.inner.csr();
        let l: Vec<u32> = pairs.iter().map(|p| p[0]).collect();
        let r: Vec<u32> = pairs.iter().map(|p| p[1]).collect();
        (
            u32s_to_bytes(py, o),
            u32s_to_bytes(py, &l),
            u32s_to_bytes(py, &r),
        )
    }

    /// StochasTok on a sequence of ints; returns a list.
    #[pyo3(signature = (ids, p, max_expansions, seed))]
    fn stochastok(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        p: f64,
        max_expansions: Option<u64>,
        seed: u64,
    ) -> PyResult<Vec<u32>> {
        let ids = extract_token_ids(ids)?;
        py.detach(|| self.inner.stochastok(&ids, p, max_expansions, seed))
            .map_err(to_py)
    }

    /// StochasTok on native-endian uint32 bytes; returns a bytearray of uint32.
    #[pyo3(signature = (data, p, max_expansions, seed))]
    fn stochastok_buffer<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        p: f64,
        max_expansions: Option<u64>,
        seed: u64,
    ) -> PyResult<Bound<'py, PyByteArray>> {
        let out = py.detach(|| -> PyResult<Vec<u32>> {
            let ids = u32s_from_bytes(data, "ids")?;
            self.inner
                .stochastok(&ids, p, max_expansions, seed)
                .map_err(to_py)
        })?;
        bytearray_u32(py, &out)
    }

    /// StochasTok on every row of a list of int sequences (row i uses stream i).
    #[pyo3(signature = (rows, p, max_expansions, seed, num_threads))]
    fn stochastok_batch<'py>(
        &self,
        py: Python<'py>,
        rows: &Bound<'py, PyAny>,
        p: f64,
        max_expansions: Option<u64>,
        seed: u64,
        num_threads: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut ids: Vec<Vec<u32>> = Vec::new();
        for (i, row) in rows.try_iter()?.enumerate() {
            let row = row?;
            ids.push(extract_token_ids(&row).map_err(|e| {
                let msg = format!("row {i}: {}", e.value(py));
                if e.is_instance_of::<PyTypeError>(py) {
                    PyTypeError::new_err(msg)
                } else {
                    PyValueError::new_err(msg)
                }
            })?);
        }
        let pool = pool(num_threads.max(1))?;
        let res = py
            .detach(|| pool.install(|| self.inner.stochastok_batch(&ids, p, max_expansions, seed)))
            .map_err(to_py)?;
        PyList::new(py, res)
    }

    /// Ragged StochasTok: `values` (uint32 bytes) and `offsets` (uint64 bytes, rows + 1)
    /// in, `(values, offsets)` bytearrays out. Row `i` of this call is row `first_row + i`
    /// of the batch (its generator stream), so a batch can be processed in chunks.
    #[pyo3(signature = (values, offsets, p, max_expansions, seed, num_threads, first_row = 0))]
    #[allow(clippy::too_many_arguments)]
    fn stochastok_ragged<'py>(
        &self,
        py: Python<'py>,
        values: &[u8],
        offsets: &[u8],
        p: f64,
        max_expansions: Option<u64>,
        seed: u64,
        num_threads: usize,
        first_row: u64,
    ) -> PyResult<(Bound<'py, PyByteArray>, Bound<'py, PyByteArray>)> {
        let pool = pool(num_threads.max(1))?;
        let rows = py.detach(|| -> PyResult<Vec<Vec<u32>>> {
            if !values.len().is_multiple_of(4) {
                return Err(PyValueError::new_err(format!(
                    "values: buffer length {} is not a multiple of 4",
                    values.len()
                )));
            }
            let offsets = u64s_from_bytes(offsets, "offsets")?;
            check_ragged_offsets(values.len() / 4, &offsets).map_err(to_py)?;
            check_probability(p, "p").map_err(to_py)?;
            // rows are converted from the byte buffer inside the workers (no full copy)
            let n_rows = offsets.len() - 1;
            pool.install(|| {
                (0..n_rows)
                    .into_par_iter()
                    .map(|i| {
                        let (a, b) = (offsets[i] as usize * 4, offsets[i + 1] as usize * 4);
                        let row: Vec<u32> = values[a..b]
                            .chunks_exact(4)
                            .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                            .collect();
                        let stream = first_row.wrapping_add(i as u64);
                        self.inner
                            .stochastok_row(&row, p, max_expansions, seed, stream)
                    })
                    .collect::<supertok_core::Result<Vec<Vec<u32>>>>()
            })
            .map_err(to_py)
        })?;
        // write the rows straight into the output buffers (no intermediate flat copy)
        let total: usize = rows.iter().map(Vec::len).sum();
        let mut offs = Vec::with_capacity(rows.len() + 1);
        offs.push(0u64);
        let values = PyByteArray::new_with(py, total * 4, |buf| {
            let mut at = 0usize;
            for r in &rows {
                for (chunk, t) in buf[at * 4..(at + r.len()) * 4].chunks_exact_mut(4).zip(r) {
                    chunk.copy_from_slice(&t.to_ne_bytes());
                }
                at += r.len();
                offs.push(at as u64);
            }
            Ok(())
        })?;
        Ok((values, bytearray_u64(py, &offs)?))
    }
}

/// `CoreEncoding.encode` with seeded BPE-dropout probability `p`.
#[pyfunction]
#[pyo3(signature = (encoding, text, allowed, disallowed, p, seed))]
fn encode_dropout(
    py: Python<'_>,
    encoding: PyRef<'_, CoreEncoding>,
    text: PyBackedStr,
    allowed: &Bound<'_, PyAny>,
    disallowed: &Bound<'_, PyAny>,
    p: f64,
    seed: u64,
) -> PyResult<Vec<u32>> {
    let a = encoding.special_set(allowed)?;
    let d = encoding.special_set(disallowed)?;
    let enc = encoding.inner.clone();
    py.detach(move || core_encode_dropout(&enc, &text, &a, &d, p, seed))
        .map_err(to_py)
}

/// `CoreTokenizer.encode` with seeded BPE-dropout probability `p`.
#[pyfunction]
#[pyo3(signature = (tokenizer, text, add_special_tokens, p, seed))]
fn encode_dropout_hf(
    py: Python<'_>,
    tokenizer: PyRef<'_, CoreTokenizer>,
    text: PyBackedStr,
    add_special_tokens: bool,
    p: f64,
    seed: u64,
) -> PyResult<Vec<u32>> {
    let tok = tokenizer.inner.clone();
    py.detach(move || core_hf_encode_dropout(&tok, &text, add_special_tokens, p, seed))
        .map_err(to_py)
}

/// Register this module's classes and functions.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SplitTable>()?;
    m.add_function(wrap_pyfunction!(encode_dropout, m)?)?;
    m.add_function(wrap_pyfunction!(encode_dropout_hf, m)?)?;
    Ok(())
}
