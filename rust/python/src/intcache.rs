//! Fast `list[int]` construction for token ids.
//!
//! Building a Python list of ids costs one `int` allocation per token above 256, which is
//! a large share of an `encode` call. [`IntCache`] keeps one `int` object per token id,
//! created on first use, so that a list is filled with new references to shared objects
//! (as CPython does for small ints). Objects are immutable, so sharing is invisible.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyList};

/// Hint the CPU to load the cache line at `p` (no effect on other targets).
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Per-encoding cache of `int` objects for ids `0..n`.
pub(crate) struct IntCache {
    n: usize,
    slots: OnceLock<Box<[OnceLock<Py<PyInt>>]>>,
}

impl IntCache {
    pub(crate) fn new(n: usize) -> Self {
        IntCache {
            n,
            slots: OnceLock::new(),
        }
    }

    #[inline]
    fn slots(&self) -> &[OnceLock<Py<PyInt>>] {
        self.slots
            .get_or_init(|| (0..self.n).map(|_| OnceLock::new()).collect())
    }

    /// A list holding `ids`.
    pub(crate) fn list<'py>(&self, py: Python<'py>, ids: &[u32]) -> PyResult<Bound<'py, PyList>> {
        let slots = self.slots();
        // SAFETY: PyList_New returns a new reference (or NULL with an exception set) to a
        // list of `ids.len()` NULL items. Each index in range is filled exactly once with
        // PyList_SET_ITEM, which steals the reference it is given: a new reference to the
        // cached object (kept alive by `slots` for the life of the cache, incremented
        // here) or a freshly created int (ids past the cache). The list therefore owns
        // all of its items before it is returned. We hold the GIL (`py`).
        unsafe {
            let raw = ffi::PyList_New(ids.len() as ffi::Py_ssize_t);
            if raw.is_null() {
                return Err(PyErr::fetch(py));
            }
            let list = Bound::from_owned_ptr(py, raw);
            // Rare ids miss the CPU caches twice (their slot, then their object), and
            // the misses would be serialized by the loop: prefetch the slot
            // `SLOT_AHEAD` ids ahead and the object `OBJ_AHEAD` ids ahead.
            const SLOT_AHEAD: usize = 16;
            const OBJ_AHEAD: usize = 8;
            for (i, &id) in ids.iter().enumerate() {
                if let Some(&a) = ids.get(i + SLOT_AHEAD) {
                    if let Some(slot) = slots.get(a as usize) {
                        prefetch(slot as *const _ as *const u8);
                    }
                }
                if let Some(&a) = ids.get(i + OBJ_AHEAD) {
                    if let Some(obj) = slots.get(a as usize).and_then(|s| s.get()) {
                        prefetch(obj.as_ptr() as *const u8);
                    }
                }
                let obj = match slots.get(id as usize) {
                    Some(slot) => {
                        let p = slot.get_or_init(|| PyInt::new(py, id).unbind()).as_ptr();
                        ffi::Py_INCREF(p);
                        p
                    }
                    None => PyInt::new(py, id).into_ptr(),
                };
                ffi::PyList_SET_ITEM(raw, i as ffi::Py_ssize_t, obj);
            }
            Ok(list.cast_into_unchecked())
        }
    }

    /// Encode a batch on `num_threads` threads and return one list per text.
    ///
    /// The lists must be built under the GIL, one thread at a time. So that this part
    /// does not serialize the batch, and so that exactly `num_threads` threads run, the
    /// calling thread works too: it and `num_threads - 1` pool threads claim texts from
    /// one counter, and after each of its own texts the calling thread turns every row
    /// that is ready, in order, into a list. The GIL is released while the calling
    /// thread encodes or waits; the pool threads never take it.
    pub(crate) fn encode_batch_lists<'py, T, F>(
        &self,
        py: Python<'py>,
        texts: &[T],
        num_threads: usize,
        encode: F,
    ) -> PyResult<Bound<'py, PyList>>
    where
        T: Sync,
        F: Fn(&T) -> PyResult<Vec<u32>> + Sync,
    {
        let out = PyList::empty(py);
        let n = texts.len();
        if num_threads <= 1 || n <= 1 {
            let rows = py.detach(|| texts.iter().map(&encode).collect::<Vec<_>>());
            for r in rows {
                out.append(self.list(py, &r?)?)?;
            }
            return Ok(out);
        }
        let helpers = (num_threads - 1).min(n - 1);
        let pool = crate::pool(helpers)?;
        let batch = Batch {
            next: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            state: Mutex::new(Rows {
                rows: (0..n).map(|_| None).collect(),
                waiting: false,
            }),
            cv: Condvar::new(),
        };
        let run = |i: usize| -> PyResult<Vec<u32>> {
            std::panic::catch_unwind(AssertUnwindSafe(|| encode(&texts[i]))).unwrap_or_else(|_| {
                Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                    "internal error: encoding text[{i}] panicked"
                )))
            })
        };
        let mut built = 0usize;
        let mut first_err: Option<PyErr> = None;
        pool.in_place_scope(|scope| {
            for _ in 0..helpers {
                scope.spawn(|_| {
                    while !batch.stop.load(Ordering::Relaxed) {
                        let i = batch.next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        let r = run(i);
                        batch.put(i, r);
                    }
                });
            }
            while built < n {
                let i = batch.next.fetch_add(1, Ordering::Relaxed);
                if i < n {
                    let r = py.detach(|| run(i));
                    batch.put(i, r);
                }
                let step = (|| -> PyResult<()> {
                    // Lists for every row that is ready, in order.
                    while built < n {
                        let row = match batch.take(built)? {
                            Some(r) => r?,
                            None => break,
                        };
                        out.append(self.list(py, &row)?)?;
                        built += 1;
                    }
                    if i >= n && built < n {
                        // Nothing left to claim: wait for the next row in order.
                        let row = py.detach(|| batch.wait(built))?;
                        out.append(self.list(py, &row?)?)?;
                        built += 1;
                    }
                    Ok(())
                })();
                if let Err(e) = step {
                    batch.stop.store(true, Ordering::Relaxed);
                    first_err = Some(e);
                    break;
                }
            }
        });
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

/// Shared state of one [`IntCache::encode_batch_lists`] call.
struct Batch {
    /// Index of the next text to claim.
    next: AtomicUsize,
    /// Set when the calling thread gives up (an error): the pool threads stop claiming.
    stop: AtomicBool,
    state: Mutex<Rows>,
    cv: Condvar,
}

struct Rows {
    rows: Vec<Option<PyResult<Vec<u32>>>>,
    /// The calling thread sleeps on the condition variable (so a notification is needed).
    waiting: bool,
}

fn poisoned() -> PyErr {
    pyo3::exceptions::PyRuntimeError::new_err("batch state poisoned by a panic")
}

impl Batch {
    fn put(&self, i: usize, r: PyResult<Vec<u32>>) {
        // A poisoned lock only happens after a panic, which `run` already turned into an
        // error; the calling thread then reports `poisoned()` when it next locks.
        if let Ok(mut g) = self.state.lock() {
            g.rows[i] = Some(r);
            if g.waiting {
                self.cv.notify_one();
            }
        }
    }

    fn take(&self, i: usize) -> PyResult<Option<PyResult<Vec<u32>>>> {
        let mut g = self.state.lock().map_err(|_| poisoned())?;
        Ok(g.rows[i].take())
    }

    fn wait(&self, i: usize) -> PyResult<PyResult<Vec<u32>>> {
        let mut g = self.state.lock().map_err(|_| poisoned())?;
        loop {
            if let Some(r) = g.rows[i].take() {
                g.waiting = false;
                return Ok(r);
            }
            g.waiting = true;
            g = self.cv.wait(g).map_err(|_| poisoned())?;
        }
    }
}
