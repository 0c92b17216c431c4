//! Bindings of SuperBPE (`supertok-core::superbpe`): counting with HF pre-tokenizer
//! objects, stage 2 (replay + filtered greedy continuation), presets, the merge list of an
//! existing tokenizer (for `inherit=`) and the newline-cut property. Sugar lives in
//! `python/supertok/superbpe.py`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::types::PyBytes;
use serde_json::Value;

use supertok_core::hf::syntax::tiktoken_to_onig;
use supertok_core::superbpe::{
    self, presets, Filters, HfSplitter, Stage1, Stage2Config, Stage2Progress,
};
use supertok_core::train::{
    self as core_train, LineSplitter, PretokenCounts as CoreCounts, TrainConfig,
};

use crate::tokenizer::{guard, wrap, CoreTokenizer};
use crate::train::{
    policy, stop_name, threads_or_default, utf8_errors, BackgroundCounter, DynSplitter, Progress,
    PyPretokenCounts,
};
use crate::{pool, to_py};

fn parse_objects(json: &str) -> PyResult<Vec<Value>> {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Array(a)) => Ok(a),
        Ok(_) => Err(PyValueError::new_err(
            "pre_tokenizer must be a JSON list of pre-tokenizer objects",
        )),
        Err(e) => Err(PyValueError::new_err(format!("pre_tokenizer: {e}"))),
    }
}

fn splitter(pre_tokenizer: &str, split_lines: bool) -> PyResult<DynSplitter> {
    let objs = parse_objects(pre_tokenizer)?;
    let s = HfSplitter::new(&objs).map_err(to_py)?;
    Ok(if split_lines {
        Box::new(LineSplitter(s))
    } else {
        Box::new(s)
    })
}

/// The pre-tokenizer objects (JSON list, before ByteLevel) of a SuperBPE preset
/// (``"paper"`` or ``"recommended"``) for ``stage`` 1 or 2, or of a single
/// ``Split(regex, Isolated)`` when ``spec`` is a regex in tiktoken (fancy-regex) syntax.
#[pyfunction]
pub fn superbpe_pre_tokenizer(spec: &str, stage: u8) -> PyResult<String> {
    let st = match stage {
        1 => presets::Stage::One,
        2 => presets::Stage::Two,
        _ => return Err(PyValueError::new_err("stage must be 1 or 2")),
    };
    let objs = match spec {
        "paper" | "recommended" => presets::preset(spec, st).map_err(to_py)?,
        "" => return Err(PyValueError::new_err("the pattern must not be empty")),
        regex => {
            let onig = tiktoken_to_onig(regex);
            // compile now, so that a bad regex fails with its own message
            HfSplitter::new(&presets::split_regex(&onig)).map_err(to_py)?;
            presets::split_regex(&onig)
        }
    };
    serde_json::to_string(&objs).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Count training units of text files split with HF pre-tokenizer objects (JSON list),
/// each line on its own when ``split_lines``. Streamed in blocks, GIL released.
#[pyfunction]
#[pyo3(signature = (paths, pre_tokenizer, threads=None, errors="strict", progress=None, split_lines=true))]
pub fn superbpe_count_files(
    py: Python<'_>,
    paths: Vec<String>,
    pre_tokenizer: &str,
    threads: Option<usize>,
    errors: &str,
    progress: Option<Py<PyAny>>,
    split_lines: bool,
) -> PyResult<PyPretokenCounts> {
    let errors = utf8_errors(errors)?;
    let sp = splitter(pre_tokenizer, split_lines)?;
    let p = pool(threads_or_default(threads))?;
    let mut prog = Progress::new(progress.as_ref());
    let r = py.detach(|| {
        p.install(|| core_train::count_files(&sp, &paths, errors, &mut |d| prog.tick(d, false)))
    });
    let inner = prog.finish(r)?;
    Ok(PyPretokenCounts { inner })
}

/// Counts training units of batches of Python strings with HF pre-tokenizer objects; a
/// batch is counted in the background while Python produces the next one.
#[pyclass(module = "supertok._core")]
pub struct SuperbpeCounter(BackgroundCounter);

#[pymethods]
impl SuperbpeCounter {
    #[new]
    #[pyo3(signature = (pre_tokenizer, threads=None, split_lines=true))]
    fn py_new(pre_tokenizer: &str, threads: Option<usize>, split_lines: bool) -> PyResult<Self> {
        Ok(SuperbpeCounter(BackgroundCounter::new(
            splitter(pre_tokenizer, split_lines)?,
            threads,
        )?))
    }

    /// Count a batch in the background (waits for the previous batch first).
    fn add_texts(&mut self, py: Python<'_>, texts: Vec<PyBackedStr>) -> PyResult<()> {
        self.0.add_texts(py, texts)
    }

    /// The counts so far (the counter is emptied).
    fn finish(&mut self, py: Python<'_>) -> PyResult<PyPretokenCounts> {
        self.0.finish(py)
    }
}

fn stage2_config(
    vocab_size: usize,
    special_tokens: Vec<String>,
    policy_name: &str,
    forbid: Vec<Vec<u8>>,
    max_words: Option<usize>,
) -> PyResult<Stage2Config> {
    let cfg = Stage2Config {
        train: TrainConfig {
            vocab_size,
            special_tokens,
            min_frequency: 1,
            max_token_length: None,
        },
        policy: policy(policy_name)?,
        filters: Filters { forbid, max_words },
    };
    core_train::check_config(&cfg.train).map_err(to_py)?;
    Ok(cfg)
}

/// Runs a stage-2 entry point on the chunk counts taken out of `chunks` (left empty), on a
/// pool of `threads` with the GIL released and panics mapped to errors; the "replay" phase
/// ticks `replay_progress`, every other phase `merge_progress`.
fn run_stage2<T: Send>(
    py: Python<'_>,
    mut chunks: PyRefMut<'_, PyPretokenCounts>,
    threads: Option<usize>,
    replay_progress: Option<Py<PyAny>>,
    merge_progress: Option<Py<PyAny>>,
    run: impl FnOnce(CoreCounts, &mut Stage2Progress<'_>) -> supertok_core::Result<T> + Send,
) -> PyResult<T> {
    let taken = std::mem::take(&mut chunks.inner);
    drop(chunks);
    let p = pool(threads_or_default(threads))?;
    let mut rp = Progress::new(replay_progress.as_ref());
    let mut mp = Progress::new(merge_progress.as_ref());
    let r = py.detach(|| {
        p.install(|| {
            guard(|| {
                run(taken, &mut |phase, d, _| {
                    if phase == "replay" {
                        rp.tick(d, false)
                    } else {
                        mp.tick(d, false)
                    }
                })
            })
        })
    });
    let r = mp.finish(r);
    rp.finish(Ok(())).and(r)
}

/// `(left, right)` byte pairs as Python `bytes` tuples.
fn byte_pairs<'py>(
    py: Python<'py>,
    pairs: &[(Vec<u8>, Vec<u8>)],
) -> Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    pairs
        .iter()
        .map(|(l, r)| (PyBytes::new(py, l), PyBytes::new(py, r)))
        .collect()
}

type Stage2Tuple<'py> = (
    Vec<Bound<'py, PyBytes>>,
    Vec<(u32, u32)>,
    Vec<u64>,
    Vec<(String, u32)>,
    &'static str,
    Vec<String>,
    (usize, usize, usize, u64),
    Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>,
);

/// SuperBPE stage 2 on chunk counts (which are consumed: the object is empty afterwards).
///
/// Returns ``(vocab, merges, merge_counts, special_tokens, stop_reason, special_collisions,
/// (n_replayed, n_chunks, n_positions, n_rejected), dropped_replays)``.
#[pyfunction]
#[pyo3(signature = (chunks, stage1, vocab_size, special_tokens, policy_name, forbid, max_words, threads=None, replay_progress=None, merge_progress=None))]
#[allow(clippy::too_many_arguments)]
pub fn superbpe_stage2<'py>(
    py: Python<'py>,
    chunks: PyRefMut<'_, PyPretokenCounts>,
    stage1: Vec<(Vec<u8>, Vec<u8>)>,
    vocab_size: usize,
    special_tokens: Vec<String>,
    policy_name: &str,
    forbid: Vec<Vec<u8>>,
    max_words: Option<usize>,
    threads: Option<usize>,
    replay_progress: Option<Py<PyAny>>,
    merge_progress: Option<Py<PyAny>>,
) -> PyResult<Stage2Tuple<'py>> {
    let cfg = stage2_config(vocab_size, special_tokens, policy_name, forbid, max_words)?;
    let o = run_stage2(
        py,
        chunks,
        threads,
        replay_progress,
        merge_progress,
        |taken, progress| superbpe::stage2(taken, &stage1, &cfg, progress),
    )?;
    let vocab = o.out.vocab.iter().map(|b| PyBytes::new(py, b)).collect();
    let merges = o.out.merges.iter().map(|m| (m.left, m.right)).collect();
    let mcounts = o.out.merges.iter().map(|m| m.count).collect();
    let dropped = byte_pairs(py, &o.dropped);
    Ok((
        vocab,
        merges,
        mcounts,
        o.out.special_tokens,
        stop_name(o.out.stop),
        o.out.special_collisions,
        (o.n_replayed, o.n_chunks, o.n_positions, o.rejected),
        dropped,
    ))
}

type Stage2TokTuple<'py> = (
    CoreTokenizer,
    usize,
    usize,
    Vec<(String, u32)>,
    &'static str,
    Vec<String>,
    (usize, usize, usize, u64),
    Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>,
);

/// SuperBPE stage 2 on chunk counts (consumed), returning the finished tokenizer
/// (``pre_tokenizer``: JSON list of the stage-2 pre-tokenizer objects, before ByteLevel)
/// instead of the token and merge lists; its stage-1 part is built while the stage-2 merge
/// loop runs. A trained stage 1 can be given as the trainer returns it instead of
/// ``stage1``: ``stage1_vocab`` (token bytes by id) and ``stage1_merges`` (id pairs), with
/// ``stage1`` empty (no byte pairs to make in Python).
///
/// Returns ``(tokenizer, vocab_size, n_merges, special_tokens, stop_reason,
/// special_collisions, (n_replayed, n_chunks, n_positions, n_rejected), dropped_replays)``.
#[pyfunction]
#[pyo3(signature = (chunks, stage1, vocab_size, special_tokens, policy_name, forbid, max_words, pre_tokenizer, threads=None, replay_progress=None, merge_progress=None, stage1_vocab=None, stage1_merges=None))]
#[allow(clippy::too_many_arguments)]
pub fn superbpe_stage2_tokenizer<'py>(
    py: Python<'py>,
    chunks: PyRefMut<'_, PyPretokenCounts>,
    stage1: Vec<(Vec<u8>, Vec<u8>)>,
    vocab_size: usize,
    special_tokens: Vec<String>,
    policy_name: &str,
    forbid: Vec<Vec<u8>>,
    max_words: Option<usize>,
    pre_tokenizer: &str,
    threads: Option<usize>,
    replay_progress: Option<Py<PyAny>>,
    merge_progress: Option<Py<PyAny>>,
    stage1_vocab: Option<Vec<PyBackedBytes>>,
    stage1_merges: Option<Vec<(u32, u32)>>,
) -> PyResult<Stage2TokTuple<'py>> {
    let cfg = stage2_config(vocab_size, special_tokens, policy_name, forbid, max_words)?;
    let objs = parse_objects(pre_tokenizer)?;
    let ids = match (stage1_vocab, stage1_merges) {
        (None, None) => None,
        (Some(v), Some(m)) if stage1.is_empty() => Some((v, m)),
        _ => {
            return Err(PyValueError::new_err(
                "give stage1_vocab and stage1_merges together, with an empty stage1",
            ))
        }
    };
    let (o, tok) = run_stage2(
        py,
        chunks,
        threads,
        replay_progress,
        merge_progress,
        |taken, progress| match &ids {
            Some((v, m)) => {
                let vocab: Vec<&[u8]> = v.iter().map(|b| &b[..]).collect();
                let s1 = Stage1::Ids {
                    vocab: &vocab,
                    merges: m,
                };
                superbpe::stage2_with_tokenizer(taken, s1, &cfg, objs, progress)
            }
            None => superbpe::stage2_with_tokenizer(taken, &stage1, &cfg, objs, progress),
        },
    )?;
    let dropped = byte_pairs(py, &o.dropped);
    Ok((
        wrap(tok),
        o.out.vocab.len(),
        o.out.merges.len(),
        o.out.special_tokens,
        stop_name(o.out.stop),
        o.out.special_collisions,
        (o.n_replayed, o.n_chunks, o.n_positions, o.rejected),
        dropped,
    ))
}

/// The merges of a tokenizer as ``(left bytes, right bytes)`` in rank order, and its
/// byte-level vocabulary as ``(id, bytes)``.
#[pyfunction]
#[allow(clippy::type_complexity)]
pub fn tokenizer_bpe_parts<'py>(
    py: Python<'py>,
    tok: PyRef<'_, CoreTokenizer>,
) -> PyResult<(
    Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>,
    Vec<(u32, Bound<'py, PyBytes>)>,
)> {
    let model = tok.inner.model();
    let bv = model.byte_vocab();
    let mut merges = Vec::with_capacity(model.merges().len());
    for (k, &(l, r)) in model.merges().iter().enumerate() {
        match (bv.bytes(l), bv.bytes(r)) {
            (Some(a), Some(b)) => merges.push((PyBytes::new(py, a), PyBytes::new(py, b))),
            _ => {
                return Err(PyValueError::new_err(format!(
                    "merge {k} of the tokenizer uses a token that is not byte-level"
                )))
            }
        }
    }
    let vocab = bv.iter().map(|(id, b)| (id, PyBytes::new(py, b))).collect();
    Ok((merges, vocab))
}

/// Whether no token of the tokenizer spans a newline cut (see ``Tokenizer.newline_shardable``).
#[pyfunction]
pub fn tokenizer_newline_shardable(tok: PyRef<'_, CoreTokenizer>) -> bool {
    tok.inner.newline_shardable()
}

/// The first high merge rank of the tokenizer's two-level encoder, or ``None`` when it
/// encodes long pieces in one level (see ``Tokenizer.two_level_split``).
#[pyfunction]
pub fn tokenizer_two_level_split(tok: PyRef<'_, CoreTokenizer>) -> Option<usize> {
    tok.inner.model().two_level_split()
}

/// Encode one long text on ``num_threads`` threads (identical ids to ``encode``).
#[pyfunction]
pub fn tokenizer_encode_parallel(
    py: Python<'_>,
    tok: PyRef<'_, CoreTokenizer>,
    text: PyBackedStr,
    add_special_tokens: bool,
    num_threads: usize,
    task_bytes: usize,
) -> PyResult<Vec<u32>> {
    let inner = tok.inner.clone();
    if num_threads <= 1 {
        return py
            .detach(|| inner.encode(&text, add_special_tokens))
            .map_err(to_py);
    }
    let p = pool(num_threads)?;
    py.detach(|| p.install(|| inner.encode_parallel(&text, add_special_tokens, task_bytes)))
        .map_err(to_py)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(tokenizer_encode_parallel, m)?)?;
    m.add_class::<SuperbpeCounter>()?;
    m.add_function(wrap_pyfunction!(superbpe_pre_tokenizer, m)?)?;
    m.add_function(wrap_pyfunction!(superbpe_count_files, m)?)?;
    m.add_function(wrap_pyfunction!(superbpe_stage2, m)?)?;
    m.add_function(wrap_pyfunction!(superbpe_stage2_tokenizer, m)?)?;
    m.add_function(wrap_pyfunction!(tokenizer_bpe_parts, m)?)?;
    m.add_function(wrap_pyfunction!(tokenizer_newline_shardable, m)?)?;
    m.add_function(wrap_pyfunction!(tokenizer_two_level_split, m)?)?;
    Ok(())
}
