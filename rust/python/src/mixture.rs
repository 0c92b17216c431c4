//! Bindings of `supertok_core::mixture` (merge-list replay for data-mixture inference).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use rayon::prelude::*;

use supertok_core::hf::HfTokenizer;
use supertok_core::mixture::{self, HfSplitter, ReplayTrace, Stage};
use supertok_core::pretok::Pretokenizer;
use supertok_core::train::{LineSplitter, Splitter, WholeChunks};

use crate::{pool, to_py, u64s_to_bytes};

type DynSplitter = Box<dyn Splitter + Send>;

/// Build a stage's splitter: `kind` is `"regex"` (supertok/tiktoken syntax), `"oniguruma"`
/// (HF syntax), `"hf"` (`spec` = a tokenizer.json text: its whole pipeline) or `"none"`
/// (whole texts).
fn splitter(kind: &str, spec: &str, split_lines: bool) -> PyResult<DynSplitter> {
    let base: DynSplitter = match kind {
        "regex" => Box::new(Pretokenizer::new(spec).map_err(to_py)?),
        "oniguruma" => Box::new(Pretokenizer::new_oniguruma(spec).map_err(to_py)?),
        "hf" => Box::new(
            HfSplitter::new(HfTokenizer::from_json_str(spec).map_err(to_py)?).map_err(to_py)?,
        ),
        "none" => Box::new(WholeChunks),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown splitter kind {other:?} (expected regex, oniguruma, hf or none)"
            )))
        }
    };
    Ok(if split_lines {
        Box::new(LineSplitter(base))
    } else {
        base
    })
}

fn to_tuple<'py>(py: Python<'py>, t: &ReplayTrace) -> PyResult<Bound<'py, PyTuple>> {
    let items: Vec<Bound<'py, PyAny>> = vec![
        u64s_to_bytes(py, &t.merge_keys).into_any(),
        u64s_to_bytes(py, &t.init_keys).into_any(),
        u64s_to_bytes(py, &t.init_counts).into_any(),
        u64s_to_bytes(py, &t.step_ptr).into_any(),
        u64s_to_bytes(py, &t.change_keys).into_any(),
        u64s_to_bytes(py, &t.change_counts).into_any(),
        t.n_bytes.into_pyobject(py)?.into_any(),
        t.n_pairs.into_pyobject(py)?.into_any(),
    ];
    PyTuple::new(py, items)
}

/// Replay `merges` on every sample (categories in parallel); returns one tuple per sample:
/// `(merge_keys, init_keys, init_counts, step_ptr, change_keys, change_counts)` as native
/// `u64` buffers, then `n_bytes`, `n_pairs`.
#[pyfunction]
#[pyo3(signature = (merges, samples, stages, split_lines, threads=None))]
pub fn mixture_replay<'py>(
    py: Python<'py>,
    merges: Vec<(Vec<u8>, Vec<u8>)>,
    samples: Vec<Vec<String>>,
    stages: Vec<(usize, String, String)>,
    split_lines: bool,
    threads: Option<usize>,
) -> PyResult<Vec<Bound<'py, PyTuple>>> {
    let splitters: Vec<(usize, DynSplitter)> = stages
        .iter()
        .map(|(start, kind, spec)| Ok((*start, splitter(kind, spec, split_lines)?)))
        .collect::<PyResult<_>>()?;
    let n = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let p = pool(n.max(1))?;
    let traces: Vec<supertok_core::Result<ReplayTrace>> = py.detach(|| {
        p.install(|| {
            samples
                .par_iter()
                .with_min_len(1)
                .map(|texts| {
                    let st: Vec<Stage<'_>> = splitters
                        .iter()
                        .map(|(start, s)| Stage {
                            start: *start,
                            splitter: s.as_ref() as &dyn Splitter,
                        })
                        .collect();
                    mixture::replay(&merges, texts, &st)
                })
                .collect()
        })
    });
    let mut out = Vec::with_capacity(traces.len());
    for t in traces {
        out.push(to_tuple(py, &t.map_err(to_py)?)?);
    }
    Ok(out)
}

/// Register the mixture functions.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mixture_replay, m)?)?;
    Ok(())
}
