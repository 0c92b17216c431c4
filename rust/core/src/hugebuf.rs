//! Zero-initialised, 2 MiB-aligned buffers for the encoder's randomly accessed tables
//! (the piece index's slot array and Bloom filter, the per-thread piece cache).
//!
//! Each lookup of the encoder's hot path touches one or two random cache lines of tables
//! of several MiB (o200k's slot array alone is 8 MiB). With 4 KiB pages almost every one of
//! those accesses also misses the TLB, and the page walk costs about as much as the cache
//! miss itself. On Linux, where transparent huge pages are commonly enabled only for
//! regions that ask for them (`/sys/kernel/mm/transparent_hugepage/enabled` = `madvise`),
//! [`HugeBuf`] asks with `madvise(MADV_HUGEPAGE)` before the first touch, so a table is
//! covered by a few 2 MiB pages. Elsewhere, or if the kernel declines, it is an ordinary
//! zeroed allocation: the advice only changes speed, never contents.

use std::alloc::{alloc, alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::marker::PhantomData;
use std::ptr::NonNull;

/// Alignment (and advised granularity) of buffers of at least one huge page.
const HUGE: usize = 2 << 20;

/// Types whose all-zero bit pattern is a valid value (so [`HugeBuf::zeroed`] is sound).
///
/// # Safety
/// Implementors must be plain data: every field an integer, array of integers or another
/// `Zeroable` type, with no padding-sensitive invariants, no references and no `Drop`.
pub unsafe trait Zeroable: Copy {}

// SAFETY: integers are valid when all-zero.
unsafe impl Zeroable for u8 {}
// SAFETY: integers are valid when all-zero.
unsafe impl Zeroable for u32 {}
// SAFETY: integers are valid when all-zero.
unsafe impl Zeroable for u64 {}
// SAFETY: arrays of zeroable values are zeroable.
unsafe impl<T: Zeroable, const N: usize> Zeroable for [T; N] {}

/// A fixed-size, zero-initialised slice of `T`, aligned to 2 MiB when it spans at least
/// 2 MiB and advised for transparent huge pages (module docs).
pub struct HugeBuf<T: Zeroable> {
    ptr: NonNull<T>,
    len: usize,
    layout: Layout,
    _own: PhantomData<T>,
}

// SAFETY: `HugeBuf` owns its elements exclusively, like `Box<[T]>`.
unsafe impl<T: Zeroable + Send> Send for HugeBuf<T> {}
// SAFETY: shared access only hands out `&[T]`, like `Box<[T]>`.
unsafe impl<T: Zeroable + Sync> Sync for HugeBuf<T> {}

#[cfg(target_os = "linux")]
extern "C" {
    fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: std::ffi::c_int)
        -> std::ffi::c_int;
}

/// `MADV_HUGEPAGE` (the same value on every Linux architecture).
#[cfg(target_os = "linux")]
const MADV_HUGEPAGE: std::ffi::c_int = 14;

impl<T: Zeroable> HugeBuf<T> {
    /// `len` zero values of `T`.
    pub fn zeroed(len: usize) -> Self {
        let bytes = std::mem::size_of::<T>()
            .checked_mul(len)
            .expect("HugeBuf size overflows usize");
        if bytes == 0 {
            return HugeBuf {
                ptr: NonNull::dangling(),
                len,
                layout: Layout::new::<()>(),
                _own: PhantomData,
            };
        }
        let huge = bytes >= HUGE;
        let align = if huge {
            HUGE
        } else {
            std::mem::align_of::<T>()
        };
        // whole huge pages, so that the last one is not shared with other allocations
        let size = if huge {
            bytes.div_ceil(HUGE) * HUGE
        } else {
            bytes
        };
        let layout = Layout::from_size_align(size, align).expect("HugeBuf layout");
        let raw = if huge {
            // advise before the first touch (a zeroing allocator would fault 4 KiB pages in)
            // SAFETY: `layout` has a non-zero size.
            let raw = unsafe { alloc(layout) };
            if !raw.is_null() {
                // SAFETY: the range is exactly our own allocation; the advice changes
                // neither its contents nor its validity, and a failure is harmless.
                #[cfg(target_os = "linux")]
                unsafe {
                    madvise(raw as *mut std::ffi::c_void, size, MADV_HUGEPAGE);
                }
                // SAFETY: `raw` is valid for `size` bytes of writes.
                unsafe { std::ptr::write_bytes(raw, 0, size) };
            }
            raw
        } else {
            // SAFETY: `layout` has a non-zero size.
            unsafe { alloc_zeroed(layout) }
        };
        let Some(ptr) = NonNull::new(raw as *mut T) else {
            handle_alloc_error(layout)
        };
        HugeBuf {
            ptr,
            len,
            layout,
            _own: PhantomData,
        }
    }

    /// A buffer holding a copy of `values`.
    pub fn from_slice(values: &[T]) -> Self {
        let mut b = Self::zeroed(values.len());
        b.copy_from_slice(values);
        b
    }
}

impl<T: Zeroable> Drop for HugeBuf<T> {
    fn drop(&mut self) {
        if self.layout.size() != 0 {
            // SAFETY: allocated in `zeroed` with exactly this layout.
            unsafe { dealloc(self.ptr.as_ptr() as *mut u8, self.layout) }
        }
    }
}

impl<T: Zeroable> std::ops::Deref for HugeBuf<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` points to `len` initialised (zeroed or written) values that we own.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Zeroable> std::ops::DerefMut for HugeBuf<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Zeroable> Clone for HugeBuf<T> {
    fn clone(&self) -> Self {
        Self::from_slice(self)
    }
}

impl<T: Zeroable + std::fmt::Debug> std::fmt::Debug for HugeBuf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HugeBuf(len {})", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_writes_clone_and_sizes() {
        for n in [0usize, 1, 7, 1000, (3 << 20) / 8 + 5] {
            let mut b: HugeBuf<u64> = HugeBuf::zeroed(n);
            assert_eq!(b.len(), n);
            assert!(b.iter().all(|&x| x == 0));
            for (i, x) in b.iter_mut().enumerate() {
                *x = i as u64 * 3;
            }
            let c = b.clone();
            assert_eq!(&c[..], &b[..]);
            if n * 8 >= HUGE {
                assert_eq!(b.as_ptr() as usize % HUGE, 0);
            }
        }
        let a: HugeBuf<[u32; 4]> = HugeBuf::from_slice(&[[1, 2, 3, 4]; 3]);
        assert_eq!(a[2], [1, 2, 3, 4]);
    }
}
