//! `CoreEncoding`: the tiktoken-compatible encoding.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::exceptions::{PyKeyError, PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyBytes, PyDict, PyList};

use supertok_core::special::SpecialSet;
use supertok_core::CoreEncoding as Core;

use crate::intcache::IntCache;
use crate::utf8str::Utf8Str;
use crate::{extract_ids, par_map, rows_to_bytes, to_py, u32s_to_bytes, u64s_to_bytes};

/// The core of a tiktoken-compatible encoding. The Python class `supertok.Encoding`
/// wraps it; use that.
#[pyclass(frozen, module = "supertok._core")]
pub struct CoreEncoding {
    pub(crate) inner: Arc<Core>,
    /// Shared `int` objects for building id lists.
    ints: IntCache,
}

impl CoreEncoding {
    pub(crate) fn wrap(inner: Core) -> Self {
        let n = inner.max_token_value() as usize + 1;
        CoreEncoding {
            inner: Arc::new(inner),
            ints: IntCache::new(n),
        }
    }
}

impl CoreEncoding {
    /// Run `encode` (without the GIL) into this thread's reusable id buffer and return
    /// the ids as a list. Reusing the buffer spares a fresh allocation (and its page
    /// touches) per call: Python-level A/B on the whole-corpus stream (o200k, 9
    /// interleaved rounds, load ~3): en.txt +7 %, code.txt +2-5 %.
    /// `text_len` (bytes) sizes the buffer.
    fn list_from_buf<'py, F>(
        &self,
        py: Python<'py>,
        text_len: usize,
        encode: F,
    ) -> PyResult<Bound<'py, PyList>>
    where
        F: FnOnce(&mut Vec<u32>) -> supertok_core::Result<()> + Send,
    {
        let mut buf = take_buf();
        let r = py.detach(|| {
            buf.reserve(text_len / 3 + 1);
            encode(&mut buf)
        });
        let list = r.map_err(to_py).and_then(|_| self.ints.list(py, &buf));
        give_buf(buf);
        list
    }

    /// `spec` is `True` (all), `False`/`None` (none) or an iterable of special-token
    /// strings (strings that are not special tokens are ignored here; the Python layer
    /// handles them).
    pub(crate) fn special_set(&self, spec: &Bound<'_, PyAny>) -> PyResult<SpecialSet> {
        let n = self.inner.specials().len();
        if spec.is_none() {
            return Ok(SpecialSet::none(n));
        }
        if let Ok(b) = spec.extract::<bool>() {
            return Ok(if b {
                SpecialSet::all(n)
            } else {
                SpecialSet::none(n)
            });
        }
        let mut set = SpecialSet::none(n);
        for item in spec.try_iter()? {
            let item = item?;
            let s: PyBackedStr = item.extract().map_err(|_| {
                PyTypeError::new_err("special token sets must contain only str".to_string())
            })?;
            if let Some(i) = self.inner.specials().index_of(&s) {
                set.insert(i);
            }
        }
        Ok(set)
    }
}

#[pymethods]
impl CoreEncoding {
    /// Build from a dict of mergeable ranks, a dict of special tokens and a pattern.
    #[new]
    fn py_new(
        py: Python<'_>,
        mergeable_ranks: &Bound<'_, PyDict>,
        special_tokens: HashMap<String, u32>,
        pattern: &str,
    ) -> PyResult<Self> {
        let mut pairs = Vec::with_capacity(mergeable_ranks.len());
        for (k, v) in mergeable_ranks.iter() {
            let b = k.cast::<PyBytes>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "mergeable_ranks keys must be bytes, got {}",
                    k.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?;
            let r: u32 = v.extract().map_err(|_| {
                PyValueError::new_err(format!(
                    "rank of {} must be an int in [0, 2**32), got {}",
                    b.repr().map(|r| r.to_string()).unwrap_or_default(),
                    v.repr().map(|r| r.to_string()).unwrap_or_default()
                ))
            })?;
            pairs.push((b.as_bytes().to_vec(), r));
        }
        let specials: Vec<(String, u32)> = special_tokens.into_iter().collect();
        let pattern = pattern.to_string();
        let inner = py
            .detach(move || Core::new(pairs, specials, &pattern))
            .map_err(to_py)?;
        Ok(CoreEncoding::wrap(inner))
    }

    /// Build from a `.tiktoken` file without materialising a Python dict.
    #[staticmethod]
    fn from_tiktoken_file(
        py: Python<'_>,
        path: std::path::PathBuf,
        special_tokens: HashMap<String, u32>,
        pattern: &str,
    ) -> PyResult<Self> {
        let specials: Vec<(String, u32)> = special_tokens.into_iter().collect();
        let pattern = pattern.to_string();
        let inner = py.detach(move || -> PyResult<Core> {
            let data = std::fs::read(&path)?;
            Core::from_tiktoken_bytes(&data, &path.display().to_string(), specials, &pattern)
                .map_err(to_py)
        })?;
        Ok(CoreEncoding::wrap(inner))
    }

    /// Parse a `.tiktoken` file into a dict (bytes -> rank).
    #[staticmethod]
    fn load_tiktoken_bpe<'py>(
        py: Python<'py>,
        data: &[u8],
        source: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let pairs = supertok_core::formats::tiktoken::parse(data, source).map_err(to_py)?;
        let d = PyDict::new(py);
        for (b, r) in pairs {
            d.set_item(PyBytes::new(py, &b), r)?;
        }
        Ok(d)
    }

    /// Serialize a dict of ranks in the `.tiktoken` format.
    #[staticmethod]
    fn dump_tiktoken_bpe<'py>(
        py: Python<'py>,
        ranks: HashMap<Vec<u8>, u32>,
    ) -> Bound<'py, PyBytes> {
        let pairs: Vec<(Vec<u8>, u32)> = ranks.into_iter().collect();
        PyBytes::new(py, &supertok_core::formats::tiktoken::dump(&pairs))
    }

    // ----------------------------------------------------------------- encoding

    fn encode_ordinary<'py>(
        &self,
        py: Python<'py>,
        text: Utf8Str<'_>,
    ) -> PyResult<Bound<'py, PyList>> {
        let text: &str = &text;
        self.list_from_buf(py, text.len(), |buf| {
            self.inner.encode_ordinary_into(text, buf)
        })
    }

    /// Encode one long text on `num_threads` threads (identical result; see
    /// `supertok_core::CoreEncoding::parallel_ranges`).
    ///
    /// The text is cut into blocks of about [`PARALLEL_BLOCK`] bytes (more blocks than
    /// threads), which the calling thread and `num_threads - 1` pool threads claim in
    /// order; the calling thread adds each finished block's ids to the result list while
    /// the others keep encoding, so the list is not built after the encoding (see
    /// `IntCache::encode_blocks_list`).
    fn encode_ordinary_parallel<'py>(
        &self,
        py: Python<'py>,
        text: Utf8Str<'_>,
        num_threads: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let text: &str = &text;
        let ranges = if num_threads <= 1 {
            Vec::new()
        } else {
            let parts = (text.len() / PARALLEL_BLOCK).max(num_threads);
            py.detach(|| self.inner.parallel_ranges(text, parts))
        };
        if ranges.len() <= 1 {
            return self.list_from_buf(py, text.len(), |buf| {
                self.inner.encode_ordinary_into(text, buf)
            });
        }
        self.ints.encode_blocks_list(
            py,
            ranges.len(),
            num_threads,
            text.len() / 4,
            |k| ranges[k].1 - ranges[k].0,
            |k| {
                let (a, b) = ranges[k];
                let mut out = Vec::with_capacity((b - a) / 3 + 16);
                self.inner
                    .encode_ordinary_range(text, a, b, &mut out)
                    .map_err(to_py)?;
                Ok(out)
            },
        )
    }

    fn encode<'py>(
        &self,
        py: Python<'py>,
        text: Utf8Str<'_>,
        allowed: &Bound<'py, PyAny>,
        disallowed: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let text: &str = &text;
        let a = self.special_set(allowed)?;
        let d = self.special_set(disallowed)?;
        self.list_from_buf(py, text.len(), |buf| {
            self.inner.encode_into(text, &a, &d, buf).map(|_| ())
        })
    }

    /// Like `encode`, but returns the ids as native-endian uint32 bytes (for numpy).
    fn encode_to_bytes<'py>(
        &self,
        py: Python<'py>,
        text: Utf8Str<'_>,
        allowed: &Bound<'py, PyAny>,
        disallowed: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let text: &str = &text;
        let a = self.special_set(allowed)?;
        let d = self.special_set(disallowed)?;
        let v = py
            .detach(|| self.inner.encode(text, &a, &d))
            .map_err(to_py)?;
        Ok(u32s_to_bytes(py, &v))
    }

    /// Number of tokens `encode` would return, without building the list.
    fn count(
        &self,
        py: Python<'_>,
        text: Utf8Str<'_>,
        allowed: &Bound<'_, PyAny>,
        disallowed: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let text: &str = &text;
        let a = self.special_set(allowed)?;
        let d = self.special_set(disallowed)?;
        let mut buf = take_buf();
        let r = py.detach(|| {
            self.inner
                .encode_into(text, &a, &d, &mut buf)
                .map(|_| buf.len() as u64)
        });
        give_buf(buf);
        r.map_err(to_py)
    }

    #[pyo3(signature = (texts, num_threads, allowed, disallowed))]
    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<PyBackedStr>,
        num_threads: usize,
        allowed: &Bound<'py, PyAny>,
        disallowed: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let a = self.special_set(allowed)?;
        let d = self.special_set(disallowed)?;
        self.ints.encode_batch_lists(py, &texts, num_threads, |t| {
            self.inner.encode(t, &a, &d).map_err(to_py)
        })
    }

    fn encode_ordinary_batch<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<PyBackedStr>,
        num_threads: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        self.ints.encode_batch_lists(py, &texts, num_threads, |t| {
            self.inner.encode_ordinary(t).map_err(to_py)
        })
    }

    /// Batch encode to two buffers: all ids (uint32) and row offsets (uint64, len n+1).
    fn encode_batch_to_bytes<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<PyBackedStr>,
        num_threads: usize,
        allowed: &Bound<'py, PyAny>,
        disallowed: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
        let a = self.special_set(allowed)?;
        let d = self.special_set(disallowed)?;
        let rows = py.detach(|| -> PyResult<Vec<Vec<u32>>> {
            par_map(&texts, num_threads, |t| self.inner.encode(t, &a, &d))?
                .into_iter()
                .map(|r| r.map_err(to_py))
                .collect()
        })?;
        let (ids, ends) = rows_to_bytes(py, &rows, num_threads)?;
        let offsets: Vec<u64> = std::iter::once(0).chain(ends).collect();
        Ok((ids, u64s_to_bytes(py, &offsets)))
    }

    /// tiktoken's `_encode_bytes`: encode arbitrary bytes, including invalid UTF-8.
    fn encode_bytes(&self, py: Python<'_>, data: &[u8]) -> PyResult<Vec<u32>> {
        py.detach(|| self.inner.encode_bytes(data)).map_err(to_py)
    }

    /// Encode one piece without regex splitting (whole piece first, then BPE).
    fn encode_single_piece(&self, data: &[u8]) -> PyResult<Vec<u32>> {
        let mut out = Vec::new();
        self.inner.encode_piece(data, &mut out).map_err(to_py)?;
        Ok(out)
    }

    fn encode_with_unstable<'py>(
        &self,
        py: Python<'py>,
        text: Utf8Str<'_>,
        allowed: &Bound<'py, PyAny>,
        disallowed: &Bound<'py, PyAny>,
    ) -> PyResult<(Vec<u32>, Bound<'py, PyList>)> {
        let text: &str = &text;
        let a = self.special_set(allowed)?;
        let d = self.special_set(disallowed)?;
        let (tokens, completions) = py
            .detach(|| self.inner.encode_with_unstable(text, &a, &d))
            .map_err(to_py)?;
        let list = PyList::empty(py);
        for c in completions {
            list.append(PyList::new(py, c)?)?;
        }
        Ok((tokens, list))
    }

    fn encode_single_token(&self, data: &[u8]) -> PyResult<u32> {
        self.inner.encode_single_token(data).map_err(to_py)
    }

    // ----------------------------------------------------------------- decoding

    fn decode_bytes<'py>(
        &self,
        py: Python<'py>,
        tokens: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let ids = extract_ids(tokens)?;
        let b = py.detach(|| self.inner.decode_bytes(&ids)).map_err(to_py)?;
        Ok(PyBytes::new(py, &b))
    }

    fn decode_bytes_batch<'py>(
        &self,
        py: Python<'py>,
        batch: Vec<Bound<'py, PyAny>>,
        num_threads: usize,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let ids: Vec<Vec<u32>> = batch.iter().map(extract_ids).collect::<PyResult<_>>()?;
        let res = py.detach(|| par_map(&ids, num_threads, |v| self.inner.decode_bytes(v)))?;
        res.into_iter()
            .map(|r| r.map(|b| PyBytes::new(py, &b)).map_err(to_py))
            .collect()
    }

    fn decode_single_token_bytes<'py>(
        &self,
        py: Python<'py>,
        token: i128,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let t = u32::try_from(token).map_err(|_| {
            PyOverflowError::new_err(format!(
                "token id {token} out of range: ids are integers in [0, 2**32)"
            ))
        })?;
        self.inner
            .token_bytes(t)
            .map(|b| PyBytes::new(py, b))
            .ok_or_else(|| PyKeyError::new_err(token.to_string()))
    }

    fn decode_tokens_bytes<'py>(
        &self,
        py: Python<'py>,
        tokens: &Bound<'py, PyAny>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let ids = extract_ids(tokens)?;
        ids.iter()
            .map(|&t| {
                self.inner
                    .token_bytes(t)
                    .map(|b| PyBytes::new(py, b))
                    .ok_or_else(|| PyKeyError::new_err(t.to_string()))
            })
            .collect()
    }

    /// `(bytes, offsets)` where offsets follow tiktoken's `decode_with_offsets`.
    fn decode_with_offsets_bytes<'py>(
        &self,
        py: Python<'py>,
        tokens: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyBytes>, Vec<usize>)> {
        let ids = extract_ids(tokens)?;
        let (b, o) = self.inner.decode_with_offsets(&ids).map_err(to_py)?;
        Ok((PyBytes::new(py, &b), o))
    }

    // ----------------------------------------------------------------- misc

    fn token_byte_values<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.inner
            .token_byte_values()
            .into_iter()
            .map(|b| PyBytes::new(py, b))
            .collect()
    }

    /// The mergeable ranks as a new dict (bytes -> rank).
    fn mergeable_ranks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (id, b) in self.inner.vocab().iter() {
            d.set_item(PyBytes::new(py, b), id)?;
        }
        Ok(d)
    }

    /// Number of mergeable tokens.
    fn n_mergeable(&self) -> usize {
        self.inner.vocab().len()
    }

    fn max_token_value(&self) -> u32 {
        self.inner.max_token_value()
    }

    /// Whether two special tokens can overlap in text (then the Python layer checks
    /// disallowed specials itself, exactly as tiktoken does).
    fn specials_overlap(&self) -> bool {
        self.inner.specials().overlapping()
    }

    fn pattern(&self) -> String {
        self.inner.pretokenizer().pattern().to_string()
    }
}

/// Target size (bytes) of the blocks `encode_ordinary_parallel` cuts a long text into.
const PARALLEL_BLOCK: usize = 128 * 1024;

/// Largest id buffer (in ids) kept for the next call on the same thread.
const KEEP_BUF: usize = 1 << 20;

thread_local! {
    /// The id buffer of the last list-returning encode (or `count`) on this thread, reused
    /// by the next one (taken out while in use, so a re-entrant call allocates its own).
    static ENC_BUF: std::cell::Cell<Vec<u32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// An empty id buffer (the thread's cached one if it is free).
fn take_buf() -> Vec<u32> {
    let mut v = ENC_BUF.with(|c| c.take());
    v.clear();
    v
}

/// Give `v` back to the thread's cache (dropped if it grew past [`KEEP_BUF`] ids).
fn give_buf(v: Vec<u32>) {
    if v.capacity() <= KEEP_BUF {
        ENC_BUF.with(|c| c.set(v));
    }
}

/// Empty the calling thread's cache of merged pieces (benchmarks call it before a timed
/// run so that the cache starts cold, as on first use).
#[pyfunction]
pub(crate) fn _clear_piece_cache() {
    supertok_core::piece_cache::clear_thread();
}

/// Slices the calling thread encoded itself in its last multi-threaded batch or
/// `encode_ordinary_parallel` call (0 after a one-thread call); for tests of the schedule.
#[pyfunction]
pub(crate) fn _last_caller_slices() -> usize {
    crate::intcache::last_caller_slices()
}
