//! PyO3 bindings of supertok (`supertok._core`). Bindings only: argument conversion,
//! releasing the GIL, and mapping core errors to Python exceptions. All semantics live in
//! `supertok-core`; all sugar lives in the Python package.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::exceptions::{PyKeyError, PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use rayon::prelude::*;

use supertok_core::Error;

mod bytes;
mod encoding;
mod intcache;
mod mixture;
mod stochastic;
mod superbpe;
mod tokenizer;
mod train;
mod utf8str;

/// Map a core error to the Python exception a tiktoken user expects.
pub(crate) fn to_py(e: Error) -> PyErr {
    match e {
        Error::UnknownToken(_) => PyKeyError::new_err(e.to_string()),
        Error::UnknownTokenBytes(b) => {
            Python::attach(|py| PyKeyError::new_err(PyBytes::new(py, &b).unbind()))
        }
        Error::DisallowedSpecial(tok) => PyValueError::new_err(disallowed_message(&tok)),
        Error::Io { .. } => pyo3::exceptions::PyOSError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

fn py_repr_str(s: &str) -> String {
    Python::attach(|py| {
        PyString::new(py, s)
            .repr()
            .map(|r| r.to_string())
            .unwrap_or_else(|_| format!("{s:?}"))
    })
}

/// tiktoken's message for a disallowed special token, word for word.
pub(crate) fn disallowed_message(tok: &str) -> String {
    let r = py_repr_str(tok);
    format!(
        "Encountered text corresponding to disallowed special token {r}.\n\
         If you want this text to be encoded as a special token, pass it to `allowed_special`, e.g. `allowed_special={{{r}, ...}}`.\n\
         If you want this text to be encoded as normal text, disable the check for this token by passing `disallowed_special=(enc.special_tokens_set - {{{r}}})`.\n\
         To disable this check for all special tokens, pass `disallowed_special=()`.\n"
    )
}

/// Rayon pools by thread count (building a pool per call would cost more than encoding).
pub(crate) fn pool(n: usize) -> PyResult<Arc<rayon::ThreadPool>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let pools = POOLS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut g = pools
        .lock()
        .map_err(|_| PyValueError::new_err("thread pool registry poisoned"))?;
    if let Some(p) = g.get(&n) {
        return Ok(p.clone());
    }
    let p = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("supertok-{i}"))
            .build()
            .map_err(|e| PyValueError::new_err(format!("cannot start {n} threads: {e}")))?,
    );
    g.insert(n, p.clone());
    Ok(p)
}

/// Run `f` over `items` on `num_threads` threads, keeping order.
pub(crate) fn par_map<T, R, F>(items: &[T], num_threads: usize, f: F) -> PyResult<Vec<R>>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync + Send,
{
    if num_threads <= 1 || items.len() <= 1 {
        return Ok(items.iter().map(f).collect());
    }
    let p = pool(num_threads)?;
    Ok(p.install(|| items.par_iter().map(f).collect()))
}

/// Extract a token id list from any sequence of ints (list, tuple, numpy array, ...).
/// Non-integers raise `TypeError`; integers outside `[0, 2**32)` raise `OverflowError`
/// (what tiktoken raises for them).
pub(crate) fn extract_ids(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(format!(
            "expected a sequence of token ids (int), got {}",
            obj.get_type().name()?
        )));
    }
    match obj.extract::<Vec<u32>>() {
        Ok(v) => return Ok(v),
        Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => {
            return Err(PyOverflowError::new_err(
                "token id out of range: ids are integers in [0, 2**32)",
            ))
        }
        Err(_) => {}
    }
    let mut out = Vec::new();
    for item in obj.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "expected a sequence of token ids (int), got {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })? {
        let item = item?;
        let v: i128 = item
            .call_method0("__index__")
            .and_then(|i| i.extract())
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "token ids must be integers, got {}",
                    item.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?;
        let v = u32::try_from(v).map_err(|_| {
            PyOverflowError::new_err(format!(
                "token id {v} out of range: ids are integers in [0, 2**32)"
            ))
        })?;
        out.push(v);
    }
    Ok(out)
}

pub(crate) fn u32s_to_bytes<'py>(py: Python<'py>, v: &[u32]) -> Bound<'py, PyBytes> {
    PyBytes::new_with(py, v.len() * 4, |buf| {
        for (chunk, t) in buf.chunks_exact_mut(4).zip(v) {
            chunk.copy_from_slice(&t.to_ne_bytes());
        }
        Ok(())
    })
    .unwrap_or_else(|_| PyBytes::new(py, &[]))
}

pub(crate) fn u64s_to_bytes<'py>(py: Python<'py>, v: &[u64]) -> Bound<'py, PyBytes> {
    PyBytes::new_with(py, v.len() * 8, |buf| {
        for (chunk, t) in buf.chunks_exact_mut(8).zip(v) {
            chunk.copy_from_slice(&t.to_ne_bytes());
        }
        Ok(())
    })
    .unwrap_or_else(|_| PyBytes::new(py, &[]))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<encoding::CoreEncoding>()?;
    m.add_function(wrap_pyfunction!(encoding::_clear_piece_cache, m)?)?;
    m.add_class::<bytes::ByteTokenizer>()?;
    m.add_class::<bytes::ByteTree>()?;
    stochastic::register(m)?;
    m.add_class::<tokenizer::CoreTokenizer>()?;
    train::register(m)?;
    superbpe::register(m)?;
    mixture::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
