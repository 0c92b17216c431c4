//! Fast `list[int]` construction for token ids.
//!
//! Building a Python list of ids costs one `int` allocation per token above 256, which is
//! a large share of an `encode` call. [`IntCache`] keeps one `int` object per token id,
//! created on first use, so that a list is filled with new references to shared objects
//! (as CPython does for small ints). Objects are immutable, so sharing is invisible.

use std::sync::{Condvar, Mutex, OnceLock};

use rayon::prelude::*;

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
    /// The lists must be built under the GIL, one thread at a time; so that this part
    /// does not serialize the batch, the calling thread turns each row into a list as
    /// soon as it is ready while the pool keeps encoding the following texts (the GIL is
    /// released while it waits, and the pool never holds it).
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
        if num_threads <= 1 || texts.len() <= 1 {
            let rows = py.detach(|| texts.iter().map(&encode).collect::<Vec<_>>());
            for r in rows {
                out.append(self.list(py, &r?)?)?;
            }
            return Ok(out);
        }
        let pool = crate::pool(num_threads)?;
        let ready: Mutex<Vec<Option<PyResult<Vec<u32>>>>> =
            Mutex::new((0..texts.len()).map(|_| None).collect());
        let cv = Condvar::new();
        let poisoned = || pyo3::exceptions::PyRuntimeError::new_err("batch worker panicked");
        let mut first_err: Option<PyErr> = None;
        std::thread::scope(|scope| {
            scope.spawn(|| {
                pool.install(|| {
                    texts.par_iter().enumerate().for_each(|(i, t)| {
                        let r = encode(t);
                        if let Ok(mut g) = ready.lock() {
                            g[i] = Some(r);
                        }
                        cv.notify_all();
                    })
                })
            });
            for i in 0..texts.len() {
                let row = py.detach(|| -> PyResult<PyResult<Vec<u32>>> {
                    let mut g = ready.lock().map_err(|_| poisoned())?;
                    loop {
                        if let Some(r) = g[i].take() {
                            return Ok(r);
                        }
                        g = cv.wait(g).map_err(|_| poisoned())?;
                    }
                });
                let res = row
                    .and_then(|r| r)
                    .and_then(|r| self.list(py, &r))
                    .and_then(|l| out.append(l));
                if let Err(e) = res {
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
