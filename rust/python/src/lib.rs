//! PyO3 bindings of supertok (`supertok._core`). Bindings only: argument conversion,
//! releasing the GIL, and mapping core errors to Python exceptions. All semantics live in
//! `supertok-core`; all sugar lives in the Python package.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::exceptions::{PyKeyError, PyOverflowError, PyTypeError, PyValueError};
use pyo3::ffi;
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
///
/// Never takes the GIL: the exception's arguments that need Python objects (a token's
/// `repr`, a `bytes` value) are built lazily, when the error is raised on a thread that
/// holds the GIL. So pool threads map their errors without waiting for the GIL, whatever
/// the calling thread is doing (a thread that holds the GIL and waits for them would
/// otherwise deadlock).
pub(crate) fn to_py(e: Error) -> PyErr {
    match e {
        Error::UnknownToken(_) => PyKeyError::new_err(e.to_string()),
        Error::UnknownTokenBytes(b) => PyKeyError::new_err(BytesArg(b)),
        Error::DisallowedSpecial(tok) => PyValueError::new_err(DisallowedArg(tok)),
        Error::Io { .. } => pyo3::exceptions::PyOSError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// A `bytes` exception argument, made when the exception is raised.
struct BytesArg(Vec<u8>);

impl pyo3::PyErrArguments for BytesArg {
    fn arguments(self, py: Python<'_>) -> Py<PyAny> {
        PyBytes::new(py, &self.0).into_any().unbind()
    }
}

/// tiktoken's disallowed-special message as an exception argument, made (with the
/// token's Python `repr`) when the exception is raised.
struct DisallowedArg(String);

impl pyo3::PyErrArguments for DisallowedArg {
    fn arguments(self, py: Python<'_>) -> Py<PyAny> {
        PyString::new(py, &disallowed_message(py, &self.0))
            .into_any()
            .unbind()
    }
}

/// tiktoken's message for a disallowed special token, word for word.
pub(crate) fn disallowed_message(py: Python<'_>, tok: &str) -> String {
    let r = PyString::new(py, tok)
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| format!("{tok:?}"));
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

/// The raw bytes of `v` (native endianness: what `numpy.frombuffer` reads as its dtype).
fn native_bytes<T: Copy>(v: &[T]) -> &[u8] {
    // SAFETY: only called with u32 and u64, which have no padding and no invalid bit
    // patterns; a `u8` slice needs no alignment, and the length covers exactly the
    // memory of `v`, which the returned slice borrows.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

/// `v` as native-endian uint32 bytes (one copy).
pub(crate) fn u32s_to_bytes<'py>(py: Python<'py>, v: &[u32]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, native_bytes(v))
}

/// `v` as native-endian uint64 bytes (one copy).
pub(crate) fn u64s_to_bytes<'py>(py: Python<'py>, v: &[u64]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, native_bytes(v))
}

/// Rows of ids concatenated into one native-endian uint32 `bytes` object, and each row's
/// end offset (in ids).
///
/// The rows are copied straight into the new object's buffer, with no intermediate
/// vector and no zero-fill, without the GIL and, for large results, by `num_threads`
/// threads (each copies a contiguous run of rows, so first-touch page faults are shared
/// too).
pub(crate) fn rows_to_bytes<'py>(
    py: Python<'py>,
    rows: &[Vec<u32>],
    num_threads: usize,
) -> PyResult<(Bound<'py, PyBytes>, Vec<u64>)> {
    let mut ends = Vec::with_capacity(rows.len());
    let mut total = 0usize;
    for r in rows {
        total += r.len();
        ends.push(total as u64);
    }
    let nbytes = total
        .checked_mul(4)
        .and_then(|n| ffi::Py_ssize_t::try_from(n).ok())
        .ok_or_else(|| PyOverflowError::new_err("batch output too large"))?;
    // SAFETY: with a NULL source, PyBytes_FromStringAndSize returns a new reference to a
    // bytes object of `nbytes` uninitialized bytes (or NULL with an exception set). No
    // other code can reach the object before we return it, so we may fill its buffer,
    // without the GIL, before handing it out; every byte is written below (the rows'
    // sizes sum to `nbytes`).
    let obj = unsafe {
        let raw = ffi::PyBytes_FromStringAndSize(std::ptr::null(), nbytes);
        if raw.is_null() {
            return Err(PyErr::fetch(py));
        }
        Bound::from_owned_ptr(py, raw).cast_into_unchecked::<PyBytes>()
    };
    // SAFETY: see above: the buffer holds `nbytes` bytes and is ours alone until returned.
    let buf: &mut [u8] = unsafe {
        std::slice::from_raw_parts_mut(
            ffi::PyBytes_AsString(obj.as_ptr()) as *mut u8,
            nbytes as usize,
        )
    };
    /// Below this many bytes one thread copies everything.
    const PARALLEL_COPY: usize = 1 << 20;
    let groups = if buf.len() < PARALLEL_COPY {
        1
    } else {
        num_threads.clamp(1, rows.len().max(1))
    };
    py.detach(|| -> PyResult<()> {
        // Contiguous runs of rows of about equal size, each with its part of the buffer.
        let mut parts: Vec<(&[Vec<u32>], &mut [u8])> = Vec::with_capacity(groups);
        let mut rest = buf;
        let mut start = 0usize;
        for g in 1..=groups {
            let goal = total / groups * g;
            let mut end = start;
            while end < rows.len() && (g == groups || (ends[end] as usize) <= goal) {
                end += 1;
            }
            let bytes = rows[start..end].iter().map(|r| r.len() * 4).sum::<usize>();
            let (mine, tail) = std::mem::take(&mut rest).split_at_mut(bytes);
            parts.push((&rows[start..end], mine));
            rest = tail;
            start = end;
        }
        let copy = |(rs, out): (&[Vec<u32>], &mut [u8])| {
            let mut at = 0;
            for r in rs {
                let b = native_bytes(r);
                out[at..at + b.len()].copy_from_slice(b);
                at += b.len();
            }
        };
        if parts.len() <= 1 {
            parts.into_iter().for_each(copy);
        } else {
            pool(parts.len())?.install(|| parts.into_par_iter().for_each(copy));
        }
        Ok(())
    })?;
    Ok((obj, ends))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<encoding::CoreEncoding>()?;
    m.add_function(wrap_pyfunction!(encoding::_clear_piece_cache, m)?)?;
    m.add_function(wrap_pyfunction!(encoding::_last_caller_slices, m)?)?;
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
