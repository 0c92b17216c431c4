//! Fast `list[int]` construction for token ids.
//!
//! Building a Python list of ids costs one `int` allocation per token above 256, which is
//! a large share of an `encode` call. [`IntCache`] keeps one `int` object per token id,
//! created on first use, so that a list is filled with new references to shared objects
//! (as CPython does for small ints). Objects are immutable, so sharing is invisible.

use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyList};

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
        // list of `ids.len()` NULL items; each PyList_SetItem below fills one distinct index
        // in range and steals the (new) reference it is given, so the list is complete and
        // owns its items before it is returned.
        unsafe {
            let raw = ffi::PyList_New(ids.len() as ffi::Py_ssize_t);
            if raw.is_null() {
                return Err(PyErr::fetch(py));
            }
            let list = Bound::from_owned_ptr(py, raw);
            for (i, &id) in ids.iter().enumerate() {
                let obj: Bound<'py, PyInt> = match slots.get(id as usize) {
                    Some(slot) => slot
                        .get_or_init(|| PyInt::new(py, id).unbind())
                        .bind(py)
                        .clone(),
                    None => PyInt::new(py, id),
                };
                if ffi::PyList_SetItem(list.as_ptr(), i as ffi::Py_ssize_t, obj.into_ptr()) != 0 {
                    return Err(PyErr::fetch(py));
                }
            }
            Ok(list.cast_into_unchecked())
        }
    }

    /// Lists for a batch.
    pub(crate) fn lists<'py>(
        &self,
        py: Python<'py>,
        rows: &[Vec<u32>],
    ) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for r in rows {
            out.append(self.list(py, r)?)?;
        }
        Ok(out)
    }
}
