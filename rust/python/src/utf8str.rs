//! Zero-copy access to the UTF-8 form of a Python `str`.
//!
//! `PyBackedStr` under pyo3's `abi3-py39` limited API (which this crate used until it
//! switched to per-version builds; kept so that the bindings do not depend on that choice)
//! has to ask CPython for a fresh UTF-8 `bytes` copy of the text on every call
//! (`PyUnicode_AsUTF8String`): an allocation and a full copy per `encode` call.
//! `PyUnicode_AsUTF8AndSize` instead returns the UTF-8
//! buffer that CPython keeps inside the `str` object: for ASCII strings (most code and
//! much English) that is the string's own storage, and for other strings it is built once
//! and cached on the object, as every non-abi3 extension (tiktoken included) does. The
//! function is part of the stable ABI since 3.10 and exported by every CPython 3 build,
//! so it is declared here for the 3.9 limited-API build too.

use std::ops::Deref;
use std::os::raw::c_char;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

extern "C" {
    fn PyUnicode_AsUTF8AndSize(
        unicode: *mut ffi::PyObject,
        size: *mut ffi::Py_ssize_t,
    ) -> *const c_char;
}

/// A Python `str` (or subclass) borrowed as `&str`, without copying. Lone surrogates
/// raise `UnicodeEncodeError`, as with `PyBackedStr`.
pub(crate) struct Utf8Str<'py> {
    /// Keeps the string, and so its UTF-8 buffer, alive.
    _owner: Bound<'py, PyString>,
    ptr: *const u8,
    len: usize,
}

impl<'a, 'py> FromPyObject<'a, 'py> for Utf8Str<'py> {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let s: Bound<'py, PyString> = obj.cast::<PyString>()?.to_owned();
        let mut len: ffi::Py_ssize_t = 0;
        // SAFETY: `s` is a live `str` object (checked by the cast) and we hold the GIL;
        // the function writes the length into `len` and returns a pointer into the
        // object's immutable UTF-8 buffer, or NULL with an exception set.
        let p = unsafe { PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut len) };
        if p.is_null() {
            return Err(PyErr::fetch(obj.py()));
        }
        Ok(Utf8Str {
            _owner: s,
            ptr: p as *const u8,
            len: len as usize,
        })
    }
}

impl Deref for Utf8Str<'_> {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        // SAFETY: CPython guarantees the buffer holds `len` bytes of valid UTF-8 and
        // stays unchanged for the life of the string object, which `_owner` keeps alive
        // for at least as long as the returned borrow of `self`.
        unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(self.ptr, self.len)) }
    }
}
