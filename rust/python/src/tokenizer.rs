//! `CoreTokenizer`: HF `tokenizer.json` byte-level BPE tokenizers. The Python class
//! `supertok.Tokenizer` wraps it; use that.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyBytes, PyDict, PyList};

use supertok_core::hf::HfTokenizer;

use crate::intcache::IntCache;
use crate::utf8str::Utf8Str;
use crate::{extract_ids, par_map, rows_to_bytes, to_py, u32s_to_bytes};

/// The core of an HF-compatible tokenizer. The Python class `supertok.Tokenizer` wraps it.
#[pyclass(frozen, module = "supertok._core")]
pub struct CoreTokenizer {
    pub(crate) inner: Arc<HfTokenizer>,
    /// Shared `int` objects for building id lists.
    ints: IntCache,
}

/// Run `f`, turning a panic (a bug) into an error instead of a `PanicException`.
pub(crate) fn guard<T>(f: impl FnOnce() -> supertok_core::Result<T>) -> supertok_core::Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(supertok_core::Error::InvalidArgument(format!(
                "internal error in supertok's HF tokenizer (please report it): {msg}"
            )))
        }
    }
}

pub(crate) fn wrap(t: HfTokenizer) -> CoreTokenizer {
    let ints = IntCache::new(t.vocab_size());
    CoreTokenizer {
        inner: Arc::new(t),
        ints,
    }
}

#[pymethods]
impl CoreTokenizer {
    /// Parse the text of a `tokenizer.json`.
    #[staticmethod]
    fn from_str(py: Python<'_>, json: PyBackedStr) -> PyResult<Self> {
        py.detach(|| guard(|| HfTokenizer::from_json_str(&json)))
            .map(wrap)
            .map_err(to_py)
    }

    /// Read a `tokenizer.json` file.
    #[staticmethod]
    fn from_file(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Self> {
        py.detach(|| guard(|| HfTokenizer::from_file(&path)))
            .map(wrap)
            .map_err(to_py)
    }

    /// A freshly trained byte-level BPE (see `supertok.Tokenizer.from_bpe`).
    /// `pre_tokenizer` is a JSON array of HF pre-tokenizer objects, as text.
    #[staticmethod]
    #[pyo3(signature = (vocab, merges, pre_tokenizer, pattern, special_tokens))]
    fn from_bpe(
        py: Python<'_>,
        vocab: &Bound<'_, PyList>,
        merges: Vec<(u32, u32)>,
        pre_tokenizer: Option<String>,
        pattern: Option<String>,
        special_tokens: HashMap<String, u32>,
    ) -> PyResult<Self> {
        let mut v = Vec::with_capacity(vocab.len());
        for (i, item) in vocab.iter().enumerate() {
            let b = item.cast::<PyBytes>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "vocab[{i}] must be bytes, got {}",
                    item.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?;
            v.push(b.as_bytes().to_vec());
        }
        let pre = match pre_tokenizer {
            None => None,
            Some(s) => {
                let val: serde_json::Value = serde_json::from_str(&s)
                    .map_err(|e| PyValueError::new_err(format!("pre_tokenizer: {e}")))?;
                match val {
                    serde_json::Value::Array(a) => Some(a),
                    _ => {
                        return Err(PyValueError::new_err(
                            "pre_tokenizer must be a list of pre-tokenizer objects",
                        ))
                    }
                }
            }
        };
        let specials: Vec<(String, u32)> = special_tokens.into_iter().collect();
        py.detach(move || {
            guard(|| HfTokenizer::from_bpe(v, &merges, pre, pattern.as_deref(), specials))
        })
        .map(wrap)
        .map_err(to_py)
    }

    /// An HF tokenizer equivalent to a tiktoken encoding.
    #[staticmethod]
    fn from_tiktoken(
        py: Python<'_>,
        mergeable_ranks: HashMap<Vec<u8>, u32>,
        special_tokens: HashMap<String, u32>,
        pattern: String,
    ) -> PyResult<Self> {
        let ranks: Vec<(Vec<u8>, u32)> = mergeable_ranks.into_iter().collect();
        let specials: Vec<(String, u32)> = special_tokens.into_iter().collect();
        py.detach(move || guard(|| HfTokenizer::from_tiktoken(ranks, specials, &pattern)))
            .map(wrap)
            .map_err(to_py)
    }

    /// `(mergeable_ranks, special_tokens, pattern)` of the equivalent tiktoken encoding.
    fn tiktoken_parts<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>, String)> {
        let parts = py
            .detach(|| guard(|| self.inner.tiktoken_parts()))
            .map_err(to_py)?;
        let ranks = PyDict::new(py);
        for (b, r) in &parts.mergeable_ranks {
            ranks.set_item(PyBytes::new(py, b), r)?;
        }
        let specials = PyDict::new(py);
        for (s, id) in &parts.special_tokens {
            specials.set_item(s, id)?;
        }
        Ok((ranks, specials, parts.pattern))
    }

    /// `tokenizer.json` text.
    #[pyo3(signature = (pretty=true))]
    fn to_json(&self, py: Python<'_>, pretty: bool) -> PyResult<String> {
        py.detach(|| guard(|| self.inner.to_json_string(pretty)))
            .map_err(to_py)
    }

    fn encode<'py>(
        &self,
        py: Python<'py>,
        text: Utf8Str<'_>,
        add_special_tokens: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let text: &str = &text;
        let ids = py
            .detach(|| guard(|| self.inner.encode(text, add_special_tokens)))
            .map_err(to_py)?;
        self.ints.list(py, &ids)
    }

    fn encode_with_offsets(
        &self,
        py: Python<'_>,
        text: PyBackedStr,
        add_special_tokens: bool,
        char_offsets: bool,
    ) -> PyResult<supertok_core::hf::IdsOffsets> {
        py.detach(|| {
            guard(|| {
                self.inner
                    .encode_with_offsets(&text, add_special_tokens, char_offsets)
            })
        })
        .map_err(to_py)
    }

    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<PyBackedStr>,
        add_special_tokens: bool,
        num_threads: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let inner = &self.inner;
        self.ints.encode_batch_lists(py, &texts, num_threads, |t| {
            guard(|| inner.encode(t, add_special_tokens)).map_err(to_py)
        })
    }

    /// Ids of one text as native-endian u32 bytes (for numpy).
    fn encode_to_bytes<'py>(
        &self,
        py: Python<'py>,
        text: Utf8Str<'_>,
        add_special_tokens: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let text: &str = &text;
        let ids = py
            .detach(|| guard(|| self.inner.encode(text, add_special_tokens)))
            .map_err(to_py)?;
        Ok(u32s_to_bytes(py, &ids))
    }

    /// Ids of many texts concatenated as u32 bytes, and the u64 end offset of each text.
    fn encode_batch_to_bytes<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<PyBackedStr>,
        add_special_tokens: bool,
        num_threads: usize,
    ) -> PyResult<(Bound<'py, PyBytes>, Vec<u64>)> {
        let inner = &self.inner;
        let rows = py.detach(|| -> PyResult<Vec<Vec<u32>>> {
            par_map(&texts, num_threads, |t| {
                guard(|| inner.encode(t, add_special_tokens))
            })?
            .into_iter()
            .map(|r| r.map_err(to_py))
            .collect()
        })?;
        rows_to_bytes(py, &rows, num_threads)
    }

    fn decode(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        skip_special_tokens: bool,
    ) -> PyResult<String> {
        let ids = extract_ids(ids)?;
        py.detach(|| guard(|| Ok(self.inner.decode(&ids, skip_special_tokens))))
            .map_err(to_py)
    }

    fn decode_bytes<'py>(
        &self,
        py: Python<'py>,
        ids: &Bound<'_, PyAny>,
        skip_special_tokens: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let ids = extract_ids(ids)?;
        let b = py
            .detach(|| guard(|| Ok(self.inner.decode_bytes(&ids, skip_special_tokens))))
            .map_err(to_py)?;
        Ok(PyBytes::new(py, &b))
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    fn id_to_token(&self, id: i64) -> Option<String> {
        u32::try_from(id)
            .ok()
            .and_then(|id| self.inner.id_to_token(id).map(|s| s.to_string()))
    }

    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    fn get_vocab<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (s, id) in self.inner.vocab() {
            d.set_item(s, id)?;
        }
        Ok(d)
    }

    /// Contents of the special added tokens, with their ids.
    fn special_tokens(&self) -> Vec<(String, u32)> {
        self.inner
            .added()
            .tokens()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(id, t)| (t.content.clone(), *id))
            .collect()
    }
}
