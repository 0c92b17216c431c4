//! Fast `list[int]` construction for token ids.
//!
//! Building a Python list of ids costs one `int` allocation per token above 256, which is
//! a large share of an `encode` call. [`IntCache`] keeps one `int` object per token id,
//! created on first use, so that a list is filled with new references to shared objects
//! (as CPython does for small ints). Objects are immutable, so sharing is invisible.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

use pyo3::exceptions::{PyMemoryError, PyOverflowError};
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
///
/// `slots[id]` is null until the `int` of `id` is created, then an owned reference to
/// it (released on drop). Slots are plain 8-byte pointers (a `OnceLock<Py<PyInt>>` took
/// 16 bytes and a state check per id).
pub(crate) struct IntCache {
    n: usize,
    slots: OnceLock<Box<[AtomicPtr<ffi::PyObject>]>>,
}

impl IntCache {
    pub(crate) fn new(n: usize) -> Self {
        IntCache {
            n,
            slots: OnceLock::new(),
        }
    }

    #[inline]
    fn slots(&self) -> &[AtomicPtr<ffi::PyObject>] {
        self.slots.get_or_init(|| {
            (0..self.n)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect()
        })
    }

    /// A new reference to the `int` of `id`, created now and kept in `slots[id]` (which
    /// was null when `fill` read it).
    ///
    /// Created one at a time, on first use: the objects then lie in the order the ids
    /// first occur, so the ids a workload uses share pages and cache lines. Creating
    /// aligned blocks of 64 consecutive ids, or all ids at once, spreads them over
    /// unused neighbours and made the lists slower than the old `OnceLock` slots
    /// (DEVELOPING.md, "IntCache").
    #[cold]
    #[inline(never)]
    fn create(
        &self,
        py: Python<'_>,
        slots: &[AtomicPtr<ffi::PyObject>],
        id: u32,
    ) -> *mut ffi::PyObject {
        let mut p = PyInt::new(py, id).into_ptr();
        let Some(slot) = slots.get(id as usize) else {
            return p;
        };
        // With the GIL nobody else can fill the slot meanwhile; without one
        // (free-threaded builds) another thread may have: keep its object, drop ours.
        if let Err(other) =
            slot.compare_exchange(std::ptr::null_mut(), p, Ordering::AcqRel, Ordering::Acquire)
        {
            // SAFETY: `p` is the new reference made above, which nothing else holds;
            // `other` is a live `int` owned by the slot (slots are only cleared when the
            // cache is dropped); we are attached to the interpreter (`py`).
            unsafe {
                ffi::Py_DECREF(p);
                p = other;
            }
        }
        // SAFETY: `p` is the slot's live `int`; the new reference goes to the caller.
        unsafe { ffi::Py_INCREF(p) };
        p
    }

    /// Write a new reference to the `int` of every id of `ids` to `dst[0..ids.len()]`.
    ///
    /// # Safety
    /// `dst` must be valid for `ids.len()` pointer writes; the caller holds the GIL
    /// (`py`) and takes over the written references.
    #[inline]
    unsafe fn fill(&self, py: Python<'_>, ids: &[u32], dst: *mut *mut ffi::PyObject) {
        let slots = self.slots();
        // Rare ids miss the CPU caches twice (their slot, then their object), and the
        // misses would be serialized by the loop: prefetch the slot `SLOT_AHEAD` ids
        // ahead and the object `OBJ_AHEAD` ids ahead. 16 and 8 were best with the old
        // 16-byte `OnceLock` slots; with pointer slots 64 and 16 are 0.5-1.5 ns per id
        // faster on 8 KB documents (64/32, 128/64 and 128/16 were within the noise of
        // it): DEVELOPING.md, "IntCache".
        const SLOT_AHEAD: usize = 64;
        const OBJ_AHEAD: usize = 16;
        for (i, &id) in ids.iter().enumerate() {
            if let Some(&a) = ids.get(i + SLOT_AHEAD) {
                if let Some(slot) = slots.get(a as usize) {
                    prefetch(slot as *const _ as *const u8);
                }
            }
            if let Some(&a) = ids.get(i + OBJ_AHEAD) {
                if let Some(slot) = slots.get(a as usize) {
                    // A null pointer is a harmless prefetch target too.
                    prefetch(slot.load(Ordering::Acquire) as *const u8);
                }
            }
            let obj = match slots.get(id as usize) {
                Some(slot) => {
                    let p = slot.load(Ordering::Acquire);
                    if p.is_null() {
                        self.create(py, slots, id)
                    } else {
                        ffi::Py_INCREF(p);
                        p
                    }
                }
                None => PyInt::new(py, id).into_ptr(),
            };
            dst.add(i).write(obj);
        }
    }

    /// A list holding `ids`.
    ///
    /// The item array comes from `PyMem_Malloc`, not from `PyList_New(n)`'s
    /// `PyMem_Calloc`: `fill` writes every slot, so zeroing them first would only add a
    /// pass over 8 bytes per id (the calling thread's `memset` of the item arrays was
    /// ~0.2-0.3 ms of a 6.9 MB batch).
    pub(crate) fn list<'py>(&self, py: Python<'py>, ids: &[u32]) -> PyResult<Bound<'py, PyList>> {
        let n = ids.len();
        let bytes = n
            .checked_mul(std::mem::size_of::<*mut ffi::PyObject>())
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or_else(|| PyOverflowError::new_err("too many token ids for one list"))?;
        // SAFETY: PyList_New(0) returns a new reference (or NULL with an exception set) to
        // an empty list (NULL item array) that nothing else has seen. We give it an item
        // array from PyMem_Malloc, the allocator CPython's list frees its items with
        // (PyMem_Free), with room for `n` items, while its size stays 0 (a valid list:
        // `allocated` >= size); `fill` then writes a new reference to every one of the
        // `n` slots, which the list owns once its size is set to `n`. If `fill` unwound
        // part way, the list would free the array and leak the references written (no
        // slot is ever read before it is written). We hold the GIL (`py`).
        unsafe {
            let raw = ffi::PyList_New(0);
            if raw.is_null() {
                return Err(PyErr::fetch(py));
            }
            let list = Bound::from_owned_ptr(py, raw);
            if n > 0 {
                let items = ffi::PyMem_Malloc(bytes) as *mut *mut ffi::PyObject;
                if items.is_null() {
                    return Err(PyMemoryError::new_err(format!(
                        "cannot allocate a list of {n} token ids"
                    )));
                }
                let l = raw as *mut ffi::PyListObject;
                (*l).ob_item = items;
                (*l).allocated = n as ffi::Py_ssize_t;
                self.fill(py, ids, items);
                (*l).ob_base.ob_size = n as ffi::Py_ssize_t;
            }
            Ok(list.cast_into_unchecked())
        }
    }

    /// Encode a batch on `num_threads` threads and return one list per text (see
    /// [`ordered_parallel`]; the first failing text's error, in order, is raised).
    pub(crate) fn encode_batch_lists<'py, T, F>(
        &self,
        py: Python<'py>,
        texts: &[T],
        num_threads: usize,
        encode: F,
    ) -> PyResult<Bound<'py, PyList>>
    where
        T: std::ops::Deref<Target = str> + Sync,
        F: Fn(&T) -> PyResult<Vec<u32>> + Sync,
    {
        let out = PyList::empty(py);
        ordered_parallel(
            py,
            texts.len(),
            num_threads,
            |i| texts[i].len(),
            |i| encode(&texts[i]),
            |row| {
                let list = self.list(py, &row)?;
                // SAFETY: `list` is a new list, tracked by the cyclic GC, that nothing
                // else has seen; untracking a tracked object is always allowed (and
                // deallocating an untracked list is fine if we fail before re-tracking).
                unsafe { ffi::PyObject_GC_UnTrack(list.as_ptr() as *mut std::ffi::c_void) };
                out.append(list)
            },
        )?;
        // The rows were untracked while the batch was built: the collections that our
        // own allocations trigger (every 700 in generation 0) would otherwise walk every
        // id of every row built so far (12 % of a one-thread batch of English). Each row
        // is tracked again before anyone else can see it, so a cycle made through a
        // returned row later is collected as usual.
        for row in out.iter() {
            // SAFETY: every item of `out` is one of the lists made above; we untracked
            // each (tracking a tracked object would be a fatal error, hence the check),
            // and we hold the GIL.
            unsafe {
                if ffi::PyObject_GC_IsTracked(row.as_ptr()) == 0 {
                    ffi::PyObject_GC_Track(row.as_ptr() as *mut std::ffi::c_void);
                }
            }
        }
        Ok(out)
    }

    /// Encode `n` consecutive blocks of one text (block `k` weighing `weight(k)` bytes) on
    /// `num_threads` threads and return all their ids, in order, as one list (room for
    /// `size_hint` ids is made up front). The calling thread adds each finished block to
    /// the list's item array while the other threads keep encoding (see
    /// [`ordered_parallel`]), so only the last block's items are added after the encoding
    /// has ended.
    pub(crate) fn encode_blocks_list<'py, W, F>(
        &self,
        py: Python<'py>,
        n: usize,
        num_threads: usize,
        size_hint: usize,
        weight: W,
        encode: F,
    ) -> PyResult<Bound<'py, PyList>>
    where
        W: Fn(usize) -> usize + Sync,
        F: Fn(usize) -> PyResult<Vec<u32>> + Sync,
    {
        let mut items = Items::new(py);
        items.reserve(size_hint)?;
        ordered_parallel(py, n, num_threads, weight, encode, |ids| {
            items.reserve(ids.len())?;
            // SAFETY: `reserve` made room for `ids.len()` more items after the `len`
            // written ones; `fill` writes new references there, which `items` owns as
            // soon as `len` covers them (right below, before anything can fail).
            unsafe { self.fill(py, &ids, items.ptr.add(items.len)) };
            items.len += ids.len();
            Ok(())
        })?;
        items.into_list()
    }
}

impl Drop for IntCache {
    fn drop(&mut self) {
        let Some(slots) = self.slots.take() else {
            return;
        };
        // Release our references to the ints (leaked if the interpreter is gone).
        let _ = Python::try_attach(|_py| {
            for slot in slots.iter() {
                let p = slot.load(Ordering::Acquire);
                if !p.is_null() {
                    // SAFETY: every non-null slot holds one owned reference, released
                    // once here; we are attached to the interpreter.
                    unsafe { ffi::Py_DECREF(p) };
                }
            }
        });
    }
}

/// A growing array of owned references, allocated with `PyMem_Malloc` so that it can
/// become a list's item array without a copy ([`Items::into_list`]). Tied to the GIL
/// (`'py`): it is neither `Send` nor usable without the GIL, and it releases its
/// references when dropped (an error part way).
struct Items<'py> {
    py: Python<'py>,
    ptr: *mut *mut ffi::PyObject,
    len: usize,
    cap: usize,
}

impl<'py> Items<'py> {
    fn new(py: Python<'py>) -> Self {
        Items {
            py,
            ptr: std::ptr::null_mut(),
            len: 0,
            cap: 0,
        }
    }

    /// Make room for `extra` more items (at least doubling the capacity when it grows).
    fn reserve(&mut self, extra: usize) -> PyResult<()> {
        let need = self
            .len
            .checked_add(extra)
            .ok_or_else(|| PyOverflowError::new_err("too many token ids for one list"))?;
        if need <= self.cap {
            return Ok(());
        }
        let cap = need.max(self.cap.saturating_mul(2)).max(16);
        let bytes = cap
            .checked_mul(std::mem::size_of::<*mut ffi::PyObject>())
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or_else(|| PyOverflowError::new_err("too many token ids for one list"))?;
        // SAFETY: we hold the GIL (`self.py`), which PyMem_Realloc needs; `self.ptr` is
        // NULL or a block from an earlier PyMem_Realloc. On failure the old block is
        // left as it was (still ours).
        let p = unsafe { ffi::PyMem_Realloc(self.ptr as *mut std::ffi::c_void, bytes) };
        if p.is_null() {
            return Err(PyMemoryError::new_err(format!(
                "cannot allocate a list of {cap} token ids"
            )));
        }
        self.ptr = p as *mut *mut ffi::PyObject;
        self.cap = cap;
        Ok(())
    }

    /// The items as a list (the array becomes the list's own item array).
    fn into_list(mut self) -> PyResult<Bound<'py, PyList>> {
        let py = self.py;
        // SAFETY: PyList_New(0) returns a new, empty list (NULL item array, nothing
        // allocated) or NULL with an exception set. An empty list is ours alone, so we
        // may give it our item array: a PyMem block of `cap` slots whose first `len`
        // hold owned references, exactly what CPython's list keeps in `ob_item` (it
        // frees the array with PyMem_Free). Afterwards `self` owns nothing.
        unsafe {
            let raw = ffi::PyList_New(0);
            if raw.is_null() {
                return Err(PyErr::fetch(py));
            }
            if self.len > 0 {
                let l = raw as *mut ffi::PyListObject;
                (*l).ob_item = self.ptr;
                (*l).allocated = self.cap as ffi::Py_ssize_t;
                (*l).ob_base.ob_size = self.len as ffi::Py_ssize_t;
                self.ptr = std::ptr::null_mut();
                self.len = 0;
                self.cap = 0;
            }
            Ok(Bound::from_owned_ptr(py, raw).cast_into_unchecked())
        }
    }
}

impl Drop for Items<'_> {
    fn drop(&mut self) {
        // SAFETY: the first `len` slots hold owned references and the block comes from
        // PyMem_Realloc (or is NULL); we hold the GIL (`Items` cannot leave the thread
        // that holds it, and lives inside the GIL's lifetime `'py`).
        unsafe {
            for i in 0..self.len {
                ffi::Py_DECREF(*self.ptr.add(i));
            }
            ffi::PyMem_Free(self.ptr as *mut std::ffi::c_void);
        }
    }
}

/// Encode items `0..n` on `num_threads` threads and hand each one's ids, in order, to
/// `sink` on the calling thread, with the GIL.
///
/// The sink (building Python objects) must run under the GIL, one thread at a time. So
/// that it does not serialize the work, and so that exactly `num_threads` threads run,
/// the calling thread works too: it and `num_threads - 1` pool threads claim items from
/// one counter, and after each slice of its own items (half its share of the `weight`,
/// i.e. bytes of text, not yet claimed, within
/// [`CALLER_SLICE_MIN`]..=[`CALLER_SLICE_MAX`]; see [`caller_slice`]) the calling thread
/// sinks every item that is ready, in order.
/// The GIL is released while the calling thread encodes or waits, once per slice rather
/// than once per item (re-taking it can wait for a busy Python thread's switch
/// interval); the pool threads never take it. The first error in order (from `encode` or `sink`)
/// is returned; the pool threads then stop claiming, and nothing after it is sunk.
/// One thread (or one item): everything is encoded in one GIL release, then sunk.
pub(crate) fn ordered_parallel<W, E, S>(
    py: Python<'_>,
    n: usize,
    num_threads: usize,
    weight: W,
    encode: E,
    mut sink: S,
) -> PyResult<()>
where
    W: Fn(usize) -> usize + Sync,
    E: Fn(usize) -> PyResult<Vec<u32>> + Sync,
    S: FnMut(Vec<u32>) -> PyResult<()>,
{
    LAST_CALLER_SLICES.with(|c| c.set(0));
    if num_threads <= 1 || n <= 1 {
        let rows = py.detach(|| (0..n).map(&encode).collect::<Vec<_>>());
        for r in rows {
            sink(r?)?;
        }
        return Ok(());
    }
    let helpers = (num_threads - 1).min(n - 1);
    let pool = crate::pool(helpers)?;
    // `claimed[i]`: weight of items `0..i` (claims follow the index order).
    let claimed: Vec<usize> = std::iter::once(0)
        .chain((0..n).scan(0usize, |acc, i| {
            *acc = acc.saturating_add(weight(i).max(1));
            Some(*acc)
        }))
        .collect();
    let batch = Batch {
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        state: Mutex::new(Rows {
            rows: (0..n).map(|_| None).collect(),
            waiting: false,
            helpers_left: helpers,
        }),
        cv: Condvar::new(),
    };
    let run = |i: usize| -> PyResult<Vec<u32>> {
        std::panic::catch_unwind(AssertUnwindSafe(|| encode(i))).unwrap_or_else(|_| {
            Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                "internal error: encoding item {i} panicked"
            )))
        })
    };
    let mut built = 0usize;
    let mut slices = 0usize;
    let mut first_err: Option<PyErr> = None;
    pool.in_place_scope(|scope| {
        for _ in 0..helpers {
            scope.spawn(|_| {
                let _done = HelperDone(&batch);
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
        let mut claiming = true;
        while built < n {
            if claiming {
                // Without the GIL: encode items until `slice` bytes are done or none is
                // left to claim.
                let slice = caller_slice(&claimed, batch.next.load(Ordering::Relaxed), helpers + 1);
                slices += 1;
                claiming = py.detach(|| {
                    let mut done = 0usize;
                    while done < slice && !batch.stop.load(Ordering::Relaxed) {
                        let i = batch.next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return false;
                        }
                        let r = run(i);
                        batch.put(i, r);
                        done += weight(i).max(1);
                    }
                    true
                });
            }
            let step = (|| -> PyResult<()> {
                // Sink every item that is ready, in order.
                while built < n {
                    let row = match batch.take(built)? {
                        Some(r) => r?,
                        None => break,
                    };
                    built += 1;
                    sink(row)?;
                }
                if !claiming && built < n {
                    // Nothing left to claim: wait for the next item in order.
                    let row = py.detach(|| batch.wait(built))?;
                    built += 1;
                    sink(row?)?;
                }
                Ok(())
            })();
            if let Err(e) = step {
                batch.stop.store(true, Ordering::Relaxed);
                first_err = Some(e);
                break;
            }
        }
        // Wait for the pool threads without the GIL (after an error one may still be
        // encoding a long item); the scope's own wait then returns at once.
        py.detach(|| batch.wait_helpers());
    });
    LAST_CALLER_SLICES.with(|c| c.set(slices));
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

thread_local! {
    /// Slices the calling thread encoded in its last [`ordered_parallel`] call (0 for
    /// the one-thread path); see [`last_caller_slices`].
    static LAST_CALLER_SLICES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many slices the calling thread encoded in its last multi-threaded
/// [`ordered_parallel`] call (0 after a one-thread call): tests check the slice schedule
/// with it.
pub(crate) fn last_caller_slices() -> usize {
    LAST_CALLER_SLICES.with(|c| c.get())
}

/// Smallest and largest slice (bytes of text, `weight`) the calling thread of
/// [`ordered_parallel`] encodes between two visits to the GIL.
const CALLER_SLICE_MIN: usize = 64 * 1024;
const CALLER_SLICE_MAX: usize = 2 * 1024 * 1024;

/// The calling thread's next slice when items `0..next` are claimed (`claimed` holds the
/// prefix sums of the weights) and `threads` threads encode: half of its share of what is
/// left (a quarter on two threads), within [`CALLER_SLICE_MIN`]..=[`CALLER_SLICE_MAX`].
///
/// Large slices while much is left: every visit to the sink evicts the encoder's tables
/// from the caller's caches (and the sink starts on cold `int` objects), so fewer visits
/// cost less; small slices at the end: what the caller sinks after the last item is
/// claimed (its own last slice and what the pool encoded meanwhile) is the tail in which
/// the pool threads idle. (Fixed 128 KB slices meant ~27 visits per 6.9 MB batch on two
/// threads.) The share shrinks with more threads: the caller alone builds every list, so
/// the more threads produce rows, the sooner it must come back to them (only two threads
/// were measured: the machine had two cores).
fn caller_slice(claimed: &[usize], next: usize, threads: usize) -> usize {
    let total = claimed.last().copied().unwrap_or(0);
    let done = claimed.get(next).copied().unwrap_or(total);
    ((total - done) / threads.max(1).saturating_mul(2)).clamp(CALLER_SLICE_MIN, CALLER_SLICE_MAX)
}

/// Shared state of one [`ordered_parallel`] call.
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
    /// Pool threads of the call that have not finished yet.
    helpers_left: usize,
}

/// Dropped when a pool thread of [`ordered_parallel`] finishes (also by unwinding).
struct HelperDone<'a>(&'a Batch);

impl Drop for HelperDone<'_> {
    fn drop(&mut self) {
        let mut g = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
        g.helpers_left -= 1;
        if g.waiting {
            self.0.cv.notify_one();
        }
    }
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

    /// Block until every pool thread has finished.
    fn wait_helpers(&self) {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while g.helpers_left > 0 {
            g.waiting = true;
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        g.waiting = false;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(weights: &[usize]) -> Vec<usize> {
        std::iter::once(0)
            .chain(weights.iter().scan(0, |a, &w| {
                *a += w;
                Some(*a)
            }))
            .collect()
    }

    #[test]
    fn caller_slice_is_half_its_share_of_what_is_left_within_bounds() {
        let claimed = prefix(&[8192; 2000]); // 16.4 MB
        assert_eq!(caller_slice(&claimed, 0, 2), CALLER_SLICE_MAX); // a quarter: 4.1 MB
        assert_eq!(caller_slice(&claimed, 1500, 2), 500 * 8192 / 4);
        assert_eq!(caller_slice(&claimed, 1500, 8), 500 * 8192 / 16);
        assert_eq!(caller_slice(&claimed, 0, 8), 2000 * 8192 / 16);
        assert_eq!(caller_slice(&claimed, 1990, 2), CALLER_SLICE_MIN);
        assert_eq!(caller_slice(&claimed, 2000, 2), CALLER_SLICE_MIN);
        assert_eq!(caller_slice(&claimed, 9000, 3), CALLER_SLICE_MIN); // the counter runs past n
        assert_eq!(caller_slice(&[0], 0, 2), CALLER_SLICE_MIN);
        assert_eq!(caller_slice(&claimed, 0, usize::MAX), CALLER_SLICE_MIN);
    }

    #[test]
    fn caller_alone_needs_few_slices() {
        // Worst case for the schedule: the pool threads claim nothing. 862 documents of
        // 8 KB (the size of the benchmark's batch) take 15 slices; fixed 128 KB slices took 51.
        let w = vec![7970usize; 862];
        let claimed = prefix(&w);
        let (mut next, mut slices) = (0, 0);
        while next < w.len() {
            let slice = caller_slice(&claimed, next, 2);
            let mut done = 0;
            while done < slice && next < w.len() {
                done += w[next];
                next += 1;
            }
            slices += 1;
        }
        assert!((10..=20).contains(&slices), "{slices}");
    }
}
