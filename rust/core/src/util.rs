//! Small helpers shared across modules.

/// Render bytes the way Python's `repr(bytes)` does (used in error messages so that a
/// Python user sees the value they passed).
pub fn bytes_repr(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut s = String::with_capacity(b.len() + 3);
    s.push('b');
    s.push(quote);
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            c if c as char == quote => {
                s.push('\\');
                s.push(quote)
            }
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push(quote);
    s
}

/// Fast hash of a byte string (FxHash of the bytes and the length), for the per-thread
/// piece caches and the replay part cache.
#[inline]
pub fn bytes_hash(b: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    h.write(b);
    h.write_usize(b.len());
    h.finish()
}

/// Length in bytes of the UTF-8 sequence introduced by `lead`, or 0 for a continuation /
/// invalid lead byte.
#[inline]
pub fn utf8_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 0,
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" {
    /// glibc: return free heap memory to the operating system.
    fn malloc_trim(pad: usize) -> std::os::raw::c_int;
}

/// Return freed heap memory to the operating system, where the allocator supports it
/// (glibc's `malloc_trim`; a no-op elsewhere). Called between training phases, after a
/// large number of small blocks was freed, so that the next phase's peak does not stack
/// on top of pages the allocator keeps.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointers and only releases memory that is free.
    unsafe {
        malloc_trim(0);
    }
}

/// Drop `value` on a short-lived helper thread, for large structures whose freeing would
/// otherwise delay the caller. If no thread can be started, the closure that owns `value`
/// is dropped by `spawn` itself, so the value is then freed here.
pub fn drop_in_background<T: Send + 'static>(value: T) {
    let _ = std::thread::Builder::new()
        .name("supertok-free".into())
        .spawn(move || drop(value));
}

/// Hint the CPU to fetch the cache line holding `*p` (no effect on other architectures).
/// Only a hint: it never faults and has no observable effect, whatever the address.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` is a pure hint; it never dereferences (faults on) the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// `(thread id and name, run time or run-queue wait in ns)` of every thread of this process
/// (Linux `schedstat`; empty elsewhere), sorted: for profiles that show which phases
/// leave a core idle.
pub fn thread_run_times() -> Vec<(String, u64)> {
    let mut v = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            let p = e.path();
            let st = std::fs::read_to_string(p.join("schedstat")).unwrap_or_default();
            let mut f = st.split_whitespace().map(|x| x.parse::<u64>().ok());
            let name = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
            let tid = e.file_name().to_string_lossy().to_string();
            // run time, then time spent waiting for a CPU (other processes' load)
            if let (Some(Some(run)), Some(Some(wait))) = (f.next(), f.next()) {
                v.push((format!("{tid}:{} run", name.trim()), run));
                v.push((format!("{tid}:{} runq", name.trim()), wait));
            }
        }
    }
    v.sort();
    v
}

/// Run time (ms) of each thread of this process since `before` (Linux `schedstat`), as
/// `name ms, ...` for the threads that ran ≥ 0.5 ms, and the new snapshot.
pub fn thread_runs_since(before: &[(String, u64)]) -> (String, Vec<(String, u64)>) {
    let cur = thread_run_times();
    let s = cur
        .iter()
        .filter_map(|(n, ns)| {
            let b = before.iter().find(|(m, _)| m == n).map_or(0, |r| r.1);
            let d = ns.saturating_sub(b);
            (d >= 500_000).then(|| format!("{n} {:.1}", d as f64 / 1e6))
        })
        .collect::<Vec<_>>()
        .join(", ");
    (s, cur)
}

/// Read one element of every 64 bytes of `s` in address order, so that the hardware
/// prefetchers stream its lines: pulls a table into the caches in bulk before work that
/// would otherwise meet its lines one random miss at a time. Meant for elements of at
/// most 64 bytes (a larger element is read whole; flatten arrays of arrays first).
pub fn touch_lines<T: Copy>(s: &[T]) {
    let step = (64 / std::mem::size_of::<T>().max(1)).max(1);
    let mut i = 0;
    while i < s.len() {
        std::hint::black_box(s[i]);
        i += step;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_lines_reads_inside_any_slice() {
        // empty, shorter than a line, not a multiple of a line, several lines
        for n in [0usize, 1, 7, 63, 64, 65, 1000] {
            touch_lines(&vec![1u8; n]);
            touch_lines(&vec![1u64; n]);
        }
    }

    #[test]
    fn repr_matches_python() {
        assert_eq!(bytes_repr(b"abc"), "b'abc'");
        assert_eq!(bytes_repr(b"a'b"), "b\"a'b\"");
        assert_eq!(bytes_repr(b"\x00\xff\n"), "b'\\x00\\xff\\n'");
        assert_eq!(bytes_repr(b"a'\"b"), "b'a\\'\"b'");
    }

    #[test]
    fn drop_in_background_drops() {
        struct Signal(std::sync::mpsc::Sender<u32>);
        impl Drop for Signal {
            fn drop(&mut self) {
                let _ = self.0.send(7);
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        drop_in_background(Signal(tx));
        assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(30)), Ok(7));
    }
}
