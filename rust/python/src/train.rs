//! Bindings of the BPE trainer (`supertok-core::train`): pretoken counting, the merge loop
//! and the lower-level `BpeTrainer` (replay / veto / trace hooks). Sugar lives in
//! `python/supertok/train.py`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use supertok_core::pretok::Pretokenizer;
use supertok_core::train::{
    self, Counter, GreedyOptions, LineSplitter, PretokenCounts as CoreCounts, ReplayPolicy,
    Splitter, StopReason, TrainConfig, Trainer, Utf8Errors,
};
use supertok_core::Error;

use crate::{pool, to_py};

/// Calls a Python progress callback at most every 100 ms (re-acquiring the GIL), and
/// checks for Ctrl-C. A Python error stops the Rust loop and is re-raised afterwards.
pub(crate) struct Progress<'a> {
    cb: Option<&'a Py<PyAny>>,
    last: Instant,
    err: Option<PyErr>,
}

impl<'a> Progress<'a> {
    pub(crate) fn new(cb: Option<&'a Py<PyAny>>) -> Self {
        Progress {
            cb,
            last: Instant::now(),
            err: None,
        }
    }

    pub(crate) fn tick(&mut self, done: u64, force: bool) -> supertok_core::Result<()> {
        if !force && self.last.elapsed() < Duration::from_millis(100) {
            return Ok(());
        }
        self.last = Instant::now();
        let r = Python::attach(|py| -> PyResult<()> {
            py.check_signals()?;
            if let Some(cb) = self.cb {
                cb.call1(py, (done,))?;
            }
            Ok(())
        });
        match r {
            Ok(()) => Ok(()),
            Err(e) => {
                self.err = Some(e);
                Err(Error::InvalidArgument("interrupted".into()))
            }
        }
    }

    pub(crate) fn finish<T>(self, r: supertok_core::Result<T>) -> PyResult<T> {
        match (r, self.err) {
            (_, Some(e)) => Err(e),
            (Ok(v), None) => Ok(v),
            (Err(e), None) => Err(to_py(e)),
        }
    }
}

pub(crate) fn threads_or_default(threads: Option<usize>) -> usize {
    match threads {
        Some(n) if n > 0 => n,
        _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

pub(crate) fn utf8_errors(errors: &str) -> PyResult<Utf8Errors> {
    match errors {
        "strict" => Ok(Utf8Errors::Strict),
        "replace" => Ok(Utf8Errors::Replace),
        other => Err(PyValueError::new_err(format!(
            "errors must be \"strict\" or \"replace\", got {other:?}"
        ))),
    }
}

fn piece_bytes(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(s.to_cow()?.as_bytes().to_vec());
    }
    Err(PyTypeError::new_err(format!(
        "pretokens must be bytes or str, got {}",
        obj.get_type().name()?
    )))
}

/// Pretoken → count (u64), with the split pattern that produced them.
///
/// Mergeable with ``+``/``+=`` (counts made with different patterns cannot be added),
/// picklable (compact canonical bytes), saveable with :meth:`save` / :meth:`load`.
#[pyclass(module = "supertok._core", name = "PretokenCounts")]
#[derive(Clone)]
pub struct PyPretokenCounts {
    pub(crate) inner: CoreCounts,
}

#[pymethods]
impl PyPretokenCounts {
    #[new]
    #[pyo3(signature = (pattern=None))]
    fn py_new(pattern: Option<String>) -> Self {
        PyPretokenCounts {
            inner: CoreCounts::new(pattern),
        }
    }

    /// The split pattern the counts were made with (``None`` when unknown).
    #[getter]
    fn pattern(&self) -> Option<String> {
        self.inner.pattern().map(str::to_string)
    }

    /// Add ``count`` occurrences of ``piece`` (bytes or str).
    #[pyo3(signature = (piece, count=1))]
    fn add(&mut self, piece: &Bound<'_, PyAny>, count: u64) -> PyResult<()> {
        let b = piece_bytes(piece)?;
        if b.is_empty() {
            return Err(PyValueError::new_err("a pretoken cannot be empty"));
        }
        self.inner.add(&b, count);
        Ok(())
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __getitem__(&self, piece: &Bound<'_, PyAny>) -> PyResult<u64> {
        Ok(self.inner.get(&piece_bytes(piece)?))
    }

    fn __contains__(&self, piece: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.inner.get(&piece_bytes(piece)?) > 0)
    }

    /// Number of pretoken occurrences (sum of counts).
    fn total(&self) -> u64 {
        self.inner.total()
    }

    /// Number of bytes covered (sum of count × length).
    fn total_bytes(&self) -> u64 {
        self.inner.total_bytes()
    }

    /// True when there are no pretokens or every pretoken is whitespace only.
    fn all_whitespace(&self) -> bool {
        self.inner.all_whitespace()
    }

    /// All ``(pretoken, count)`` pairs sorted by bytes.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let v = self.inner.sorted();
        PyList::new(
            py,
            v.iter()
                .map(|(k, c)| (PyBytes::new(py, k), *c))
                .collect::<Vec<_>>(),
        )
    }

    /// The ``n`` most frequent pretokens (ties by bytes), like ``Counter.most_common``.
    #[pyo3(signature = (n=None))]
    fn most_common<'py>(&self, py: Python<'py>, n: Option<usize>) -> PyResult<Bound<'py, PyList>> {
        let mut v = self.inner.sorted();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        v.truncate(n.unwrap_or(usize::MAX));
        PyList::new(
            py,
            v.iter()
                .map(|(k, c)| (PyBytes::new(py, k), *c))
                .collect::<Vec<_>>(),
        )
    }

    fn __add__(&self, other: PyRef<'_, PyPretokenCounts>) -> PyResult<PyPretokenCounts> {
        let mut a = self.inner.clone();
        a.merge_ref(&other.inner).map_err(to_py)?;
        Ok(PyPretokenCounts { inner: a })
    }

    fn __iadd__(&mut self, other: PyRef<'_, PyPretokenCounts>) -> PyResult<()> {
        self.inner.merge_ref(&other.inner).map_err(to_py)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        match other.cast::<PyPretokenCounts>() {
            Ok(o) => o.borrow().inner == self.inner,
            Err(_) => false,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "PretokenCounts({} distinct, {} total, pattern={})",
            self.inner.len(),
            self.inner.total(),
            match self.inner.pattern() {
                Some(p) => format!("{p:?}"),
                None => "None".into(),
            }
        )
    }

    /// Canonical compact serialization.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let b = py.detach(|| self.inner.to_bytes());
        PyBytes::new(py, &b)
    }

    /// Parse :meth:`to_bytes` output.
    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<PyPretokenCounts> {
        let inner = py
            .detach(|| CoreCounts::from_bytes(data, "<bytes>"))
            .map_err(to_py)?;
        Ok(PyPretokenCounts { inner })
    }

    /// Write to ``path``.
    fn save(&self, py: Python<'_>, path: &str) -> PyResult<()> {
        py.detach(|| self.inner.save(path)).map_err(to_py)
    }

    /// Read a file written by :meth:`save`.
    #[staticmethod]
    fn load(py: Python<'_>, path: &str) -> PyResult<PyPretokenCounts> {
        let inner = py.detach(|| CoreCounts::load(path)).map_err(to_py)?;
        Ok(PyPretokenCounts { inner })
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let data = slf.borrow().to_bytes(py);
        let cls = slf.get_type();
        PyTuple::new(
            py,
            [
                cls.into_any(),
                PyTuple::empty(py).into_any(),
                data.into_any(),
            ],
        )
    }

    fn __setstate__(&mut self, py: Python<'_>, state: &[u8]) -> PyResult<()> {
        self.inner = py
            .detach(|| CoreCounts::from_bytes(state, "<pickle>"))
            .map_err(to_py)?;
        Ok(())
    }
}

/// Count the pretokens of text files (streamed in blocks, GIL released).
#[pyfunction]
#[pyo3(signature = (paths, pattern, threads=None, errors="strict", progress=None, split_lines=false))]
pub fn count_files(
    py: Python<'_>,
    paths: Vec<String>,
    pattern: &str,
    threads: Option<usize>,
    errors: &str,
    progress: Option<Py<PyAny>>,
    split_lines: bool,
) -> PyResult<PyPretokenCounts> {
    let errors = utf8_errors(errors)?;
    let pt = splitter(pattern, split_lines)?;
    let p = pool(threads_or_default(threads))?;
    let mut prog = Progress::new(progress.as_ref());
    let r = py.detach(|| {
        p.install(|| train::count_files(&pt, &paths, errors, &mut |d| prog.tick(d, false)))
    });
    let inner = prog.finish(r)?;
    Ok(PyPretokenCounts { inner })
}

type Pending = std::thread::JoinHandle<supertok_core::Result<()>>;

pub(crate) type DynSplitter = Box<dyn Splitter + Send>;

fn splitter(pattern: &str, split_lines: bool) -> PyResult<DynSplitter> {
    let pt = Pretokenizer::new(pattern).map_err(to_py)?;
    Ok(if split_lines {
        Box::new(LineSplitter(pt))
    } else {
        Box::new(pt)
    })
}

/// Counts batches of Python strings with any splitter on a thread pool; a batch is counted
/// in the background while Python produces the next one. Shared by the pretoken counter and
/// SuperBPE's chunk counter.
pub(crate) struct BackgroundCounter {
    counter: Arc<Counter<DynSplitter>>,
    pool: Arc<rayon::ThreadPool>,
    pending: Option<Pending>,
}

impl BackgroundCounter {
    pub(crate) fn new(sp: DynSplitter, threads: Option<usize>) -> PyResult<Self> {
        let p = pool(threads_or_default(threads))?;
        let counter = Arc::new(p.install(|| Counter::new(sp)));
        Ok(BackgroundCounter {
            counter,
            pool: p,
            pending: None,
        })
    }

    fn wait(&mut self, py: Python<'_>) -> PyResult<()> {
        if let Some(h) = self.pending.take() {
            match py.detach(|| h.join()) {
                Ok(r) => r.map_err(to_py)?,
                Err(_) => return Err(PyValueError::new_err("counting thread panicked")),
            }
        }
        Ok(())
    }

    /// Count a batch in the background (waits for the previous batch first); errors of a
    /// batch surface at the next call or at `finish`.
    pub(crate) fn add_texts(&mut self, py: Python<'_>, texts: Vec<PyBackedStr>) -> PyResult<()> {
        self.wait(py)?;
        let p = self.pool.clone();
        let c = self.counter.clone();
        self.pending = Some(std::thread::spawn(move || {
            p.install(|| c.add_texts(&texts))
        }));
        Ok(())
    }

    /// The counts so far (the counter is emptied).
    pub(crate) fn finish(&mut self, py: Python<'_>) -> PyResult<PyPretokenCounts> {
        self.wait(py)?;
        let c = Arc::get_mut(&mut self.counter)
            .ok_or_else(|| PyValueError::new_err("counter still in use"))?;
        let inner = py.detach(|| c.take());
        Ok(PyPretokenCounts { inner })
    }
}

/// Accumulates pretoken counts from batches of Python strings. Counting a batch runs in the
/// background while Python produces the next one.
#[pyclass(module = "supertok._core")]
pub struct PretokenCounter(BackgroundCounter);

#[pymethods]
impl PretokenCounter {
    #[new]
    #[pyo3(signature = (pattern, threads=None, split_lines=false))]
    fn py_new(pattern: &str, threads: Option<usize>, split_lines: bool) -> PyResult<Self> {
        Ok(PretokenCounter(BackgroundCounter::new(
            splitter(pattern, split_lines)?,
            threads,
        )?))
    }

    /// Count a batch of texts in the background (in parallel, GIL released). Waits for the
    /// previous batch first; errors of a batch surface at the next call or at `finish`.
    fn add_texts(&mut self, py: Python<'_>, texts: Vec<PyBackedStr>) -> PyResult<()> {
        self.0.add_texts(py, texts)
    }

    /// The counts so far (the counter is emptied).
    fn finish(&mut self, py: Python<'_>) -> PyResult<PyPretokenCounts> {
        self.0.finish(py)
    }
}

pub(crate) fn stop_name(s: StopReason) -> &'static str {
    match s {
        StopReason::VocabSize => "vocab_size",
        StopReason::MinFrequency => "min_frequency",
        StopReason::NoPairs => "no_pairs",
    }
}

type TrainTuple<'py> = (
    Vec<Bound<'py, PyBytes>>,
    Vec<(u32, u32)>,
    Vec<u64>,
    Vec<(String, u32)>,
    &'static str,
    Vec<String>,
    usize,
);

/// Train on counts. Returns ``(vocab, merges, merge_counts, special_tokens, stop_reason,
/// special_collisions, n_pretokens)``.
#[pyfunction]
#[pyo3(signature = (counts, vocab_size, special_tokens=Vec::new(), min_frequency=1, max_token_length=None, progress=None))]
#[allow(clippy::too_many_arguments)]
pub fn train_from_counts<'py>(
    py: Python<'py>,
    counts: PyRef<'_, PyPretokenCounts>,
    vocab_size: usize,
    special_tokens: Vec<String>,
    min_frequency: u64,
    max_token_length: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<TrainTuple<'py>> {
    let cfg = TrainConfig {
        vocab_size,
        special_tokens,
        min_frequency,
        max_token_length,
    };
    train::check_config(&cfg).map_err(to_py)?;
    let mut prog = Progress::new(progress.as_ref());
    let c = &counts.inner;
    let r = py.detach(|| train::train_bpe(c, &cfg, None, &mut |n| prog.tick(n as u64, false)));
    let out = prog.finish(r)?;
    let vocab = out.vocab.iter().map(|b| PyBytes::new(py, b)).collect();
    let merges = out.merges.iter().map(|m| (m.left, m.right)).collect();
    let mcounts = out.merges.iter().map(|m| m.count).collect();
    Ok((
        vocab,
        merges,
        mcounts,
        out.special_tokens,
        stop_name(out.stop),
        out.special_collisions,
        out.n_pretokens,
    ))
}

pub(crate) fn policy(s: &str) -> PyResult<ReplayPolicy> {
    match s {
        "skip" => Ok(ReplayPolicy::Skip),
        "keep" => Ok(ReplayPolicy::Keep),
        "error" => Ok(ReplayPolicy::Error),
        o => Err(PyValueError::new_err(format!(
            "policy must be \"skip\", \"keep\" or \"error\", got {o:?}"
        ))),
    }
}

/// Low-level BPE training state over pretoken counts: replay an existing merge list, run
/// the greedy loop with a veto, and record per-step pair counts. Ids: bytes are ``0..256``,
/// learned tokens follow in creation order.
#[pyclass(module = "supertok._core")]
pub struct BpeTrainer {
    inner: Trainer,
}

#[pymethods]
impl BpeTrainer {
    #[new]
    fn py_new(py: Python<'_>, counts: PyRef<'_, PyPretokenCounts>) -> PyResult<Self> {
        let c = &counts.inner;
        let inner = py.detach(|| Trainer::new(c.iter())).map_err(to_py)?;
        Ok(BpeTrainer { inner })
    }

    /// Record the pair counts changed by each later step (see :meth:`take_trace`).
    fn set_tracing(&mut self, on: bool) {
        self.inner.set_tracing(on);
    }

    /// Replay ``merges`` (pairs of bytes) in order; ``policy`` ("skip", "keep", "error")
    /// decides what happens to merges that do not occur. Returns the number recorded.
    #[pyo3(signature = (merges, policy="skip"))]
    fn replay(
        &mut self,
        py: Python<'_>,
        merges: Vec<(Vec<u8>, Vec<u8>)>,
        policy: &str,
    ) -> PyResult<usize> {
        let pol = self::policy(policy)?;
        let mut prog = Progress::new(None);
        let t = &mut self.inner;
        let r = py.detach(|| t.replay(&merges, pol, &mut |n| prog.tick(n as u64, false)));
        prog.finish(r)
    }

    /// Greedy BPE until ``target_tokens`` tokens (bytes + learned). ``veto(left: bytes,
    /// right: bytes) -> bool`` may reject merges (it is called with the GIL, so keep it
    /// cheap). Returns the stop reason.
    #[pyo3(signature = (target_tokens, min_frequency=1, max_token_length=None, forbidden=Vec::new(), veto=None))]
    fn train(
        &mut self,
        py: Python<'_>,
        target_tokens: usize,
        min_frequency: u64,
        max_token_length: Option<usize>,
        forbidden: Vec<Vec<u8>>,
        veto: Option<Py<PyAny>>,
    ) -> PyResult<&'static str> {
        let veto_err: std::sync::Mutex<Option<PyErr>> = std::sync::Mutex::new(None);
        let call = |l: &[u8], r: &[u8]| -> bool {
            let Some(v) = veto.as_ref() else {
                return false;
            };
            Python::attach(|py| {
                match v
                    .call1(py, (PyBytes::new(py, l), PyBytes::new(py, r)))
                    .and_then(|x| x.is_truthy(py))
                {
                    Ok(b) => b,
                    Err(e) => {
                        if let Ok(mut g) = veto_err.lock() {
                            g.get_or_insert(e);
                        }
                        true
                    }
                }
            })
        };
        let opts = GreedyOptions {
            target_tokens,
            min_frequency,
            max_token_length,
            forbidden_tokens: forbidden,
            veto: if veto.is_some() { Some(&call) } else { None },
        };
        let mut prog = Progress::new(None);
        let t = &mut self.inner;
        let r = py.detach(|| t.train_greedy(&opts, &mut |n| prog.tick(n as u64, false)));
        if let Ok(mut g) = veto_err.lock() {
            if let Some(e) = g.take() {
                return Err(e);
            }
        }
        prog.finish(r).map(stop_name)
    }

    /// Merges so far as ``(left, right, result, count)``.
    fn merges(&self) -> Vec<(u32, u32, u32, u64)> {
        self.inner
            .merges()
            .iter()
            .map(|m| (m.left, m.right, m.result, m.count))
            .collect()
    }

    /// Token bytes by id.
    fn vocab<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.inner
            .tokens()
            .iter()
            .map(|b| PyBytes::new(py, b))
            .collect()
    }

    /// Current non-zero pair counts as ``(left, right, count)``, sorted.
    fn pair_counts(&self) -> Vec<(u32, u32, u64)> {
        self.inner.pair_counts()
    }

    /// Per-step changes recorded since tracing was turned on: one list per recorded step of
    /// ``(left, right, count_after)`` (an empty list for a replayed merge that was skipped).
    fn take_trace(&mut self) -> Vec<Vec<(u32, u32, u64)>> {
        self.inner
            .take_trace()
            .into_iter()
            .map(|s| s.changes)
            .collect()
    }

    /// Replayed merges dropped by the "skip" policy, as ``(left, right)`` bytes.
    fn dropped_replays<'py>(
        &self,
        py: Python<'py>,
    ) -> Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
        self.inner
            .dropped_replays()
            .iter()
            .map(|(l, r)| (PyBytes::new(py, l), PyBytes::new(py, r)))
            .collect()
    }

    /// Merges skipped because they would have produced a forbidden token, as bytes.
    fn special_collisions<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.inner
            .special_collisions()
            .iter()
            .map(|(_, _, b)| PyBytes::new(py, b))
            .collect()
    }

    /// Number of distinct pretokens trained on.
    #[getter]
    fn n_pretokens(&self) -> usize {
        self.inner.n_pretokens()
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPretokenCounts>()?;
    m.add_class::<PretokenCounter>()?;
    m.add_class::<BpeTrainer>()?;
    m.add_function(wrap_pyfunction!(count_files, m)?)?;
    m.add_function(wrap_pyfunction!(train_from_counts, m)?)?;
    Ok(())
}
