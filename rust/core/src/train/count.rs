//! Parallel, streaming pretoken counting.
//!
//! A [`Counter`] accumulates counts from batches of texts in per-thread maps (one per rayon
//! worker of the pool the caller installed), so memory grows with the number of *distinct*
//! pretokens, never with the corpus. Texts are split by a [`Splitter`]: the core
//! [`Pretokenizer`] (any pattern; hand-written lexers are picked automatically), whole
//! chunks ([`WholeChunks`], e.g. SuperBPE's stage-2 lines), or any closure.
//!
//! Files are streamed in blocks of about [`BLOCK_SIZE`] bytes (see [`count_files`] for where
//! blocks are cut and why that is invisible to the standard patterns).

use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::pretok::Pretokenizer;
use crate::train::counts::PretokenCounts;

/// Target size of one file block.
pub const BLOCK_SIZE: usize = 1 << 20;
/// A block grows past [`BLOCK_SIZE`] until a safe cut is found, but never past this; then it
/// is cut at the last UTF-8 character boundary (documented fallback for texts without
/// suitable newlines).
pub const MAX_BLOCK_SIZE: usize = 64 << 20;

/// Splits a text into the units that are counted.
pub trait Splitter: Sync {
    /// Call `f` with every unit of `text`, in order.
    fn split(&self, text: &str, f: &mut dyn FnMut(&[u8])) -> Result<()>;
    /// A description stored with the counts (the pattern), if any.
    fn describe(&self) -> Option<String>;
}

impl<T: Splitter + ?Sized> Splitter for &T {
    fn split(&self, text: &str, f: &mut dyn FnMut(&[u8])) -> Result<()> {
        (**self).split(text, f)
    }
    fn describe(&self) -> Option<String> {
        (**self).describe()
    }
}

impl Splitter for Pretokenizer {
    fn split(&self, text: &str, f: &mut dyn FnMut(&[u8])) -> Result<()> {
        let b = text.as_bytes();
        self.for_each_piece(text, |s, e| {
            f(&b[s..e]);
            Ok(())
        })
    }
    fn describe(&self) -> Option<String> {
        Some(self.pattern().to_string())
    }
}

impl<T: Splitter + ?Sized> Splitter for Box<T> {
    fn split(&self, text: &str, f: &mut dyn FnMut(&[u8])) -> Result<()> {
        (**self).split(text, f)
    }
    fn describe(&self) -> Option<String> {
        (**self).describe()
    }
}

/// Cuts every text into lines (each keeps its `\n`) and splits each line with `S` — what
/// HF's `train_from_files` does, and SuperBPE's stage-2 chunking.
#[derive(Clone, Debug)]
pub struct LineSplitter<S>(pub S);

impl<S: Splitter> Splitter for LineSplitter<S> {
    fn split(&self, text: &str, f: &mut dyn FnMut(&[u8])) -> Result<()> {
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', text.as_bytes()) {
            // `\n` is ASCII, so `nl + 1` is a char boundary.
            self.0.split(&text[start..nl + 1], f)?;
            start = nl + 1;
        }
        if start < text.len() {
            self.0.split(&text[start..], f)?;
        }
        Ok(())
    }
    fn describe(&self) -> Option<String> {
        self.0.describe()
    }
}

/// Counts every text as one unit (no splitting).
#[derive(Clone, Copy, Debug, Default)]
pub struct WholeChunks;

impl Splitter for WholeChunks {
    fn split(&self, text: &str, f: &mut dyn FnMut(&[u8])) -> Result<()> {
        if !text.is_empty() {
            f(text.as_bytes());
        }
        Ok(())
    }
    fn describe(&self) -> Option<String> {
        None
    }
}

/// A splitter from a closure (for custom chunking such as SuperBPE's digit-group split).
pub struct FnSplitter<F> {
    f: F,
    description: Option<String>,
}

impl<F> FnSplitter<F>
where
    F: Fn(&str, &mut dyn FnMut(&[u8])) -> Result<()> + Sync,
{
    pub fn new(f: F, description: Option<String>) -> Self {
        FnSplitter { f, description }
    }
}

impl<F> Splitter for FnSplitter<F>
where
    F: Fn(&str, &mut dyn FnMut(&[u8])) -> Result<()> + Sync,
{
    fn split(&self, text: &str, f: &mut dyn FnMut(&[u8])) -> Result<()> {
        (self.f)(text, f)
    }
    fn describe(&self) -> Option<String> {
        self.description.clone()
    }
}

/// A pretoken as a hash-map key: short ones (the vast majority) inline, so that counting
/// neither allocates per new key nor chases a pointer to compare keys.
#[derive(Clone, Debug)]
enum Key {
    Inline { len: u8, data: [u8; INLINE] },
    Heap(Box<[u8]>),
}

const INLINE: usize = 22;

impl Key {
    #[inline]
    fn new(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut data = [0u8; INLINE];
            data[..b.len()].copy_from_slice(b);
            Key::Inline {
                len: b.len() as u8,
                data,
            }
        } else {
            Key::Heap(b.into())
        }
    }

    #[inline]
    fn as_slice(&self) -> &[u8] {
        match self {
            Key::Inline { len, data } => &data[..*len as usize],
            Key::Heap(b) => b,
        }
    }
}

impl std::borrow::Borrow<[u8]> for Key {
    #[inline]
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::hash::Hash for Key {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        // Must hash exactly like `[u8]` (lookups are by slice).
        self.as_slice().hash(h)
    }
}

impl PartialEq for Key {
    #[inline]
    fn eq(&self, o: &Self) -> bool {
        self.as_slice() == o.as_slice()
    }
}

impl Eq for Key {}

type Map = FxHashMap<Key, u64>;

/// Accumulates pretoken counts over many batches.
///
/// Call [`add_texts`](Self::add_texts) inside the rayon pool that should do the work (its
/// thread count decides the parallelism); [`finish`](Self::finish) merges the per-thread
/// maps. The result does not depend on the thread count or batch boundaries.
pub struct Counter<S: Splitter> {
    splitter: S,
    maps: Vec<Mutex<Map>>,
    bytes: AtomicU64,
}

#[inline]
fn bump(map: &mut Map, piece: &[u8]) {
    if let Some(c) = map.get_mut(piece) {
        *c += 1;
    } else {
        map.insert(Key::new(piece), 1);
    }
}

impl<S: Splitter> Counter<S> {
    pub fn new(splitter: S) -> Self {
        // One slot per worker of the current pool, plus one for callers outside it.
        let n = rayon::current_num_threads() + 1;
        Counter {
            splitter,
            maps: (0..n).map(|_| Mutex::new(Map::default())).collect(),
            bytes: AtomicU64::new(0),
        }
    }

    /// Bytes of text seen so far.
    pub fn bytes_seen(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn slot(&self) -> usize {
        match rayon::current_thread_index() {
            Some(i) if i + 1 < self.maps.len() => i,
            _ => self.maps.len() - 1,
        }
    }

    /// Count one text on the calling thread (into that thread's map).
    pub fn count_one(&self, text: &str) -> Result<()> {
        self.bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
        let slot = self.slot();
        // Uncontended: each worker owns its slot. A poisoned lock only means another task
        // panicked, which cannot happen here; recover the data anyway.
        let mut guard = match self.maps[slot].lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let map = &mut *guard;
        self.splitter.split(text, &mut |piece| bump(map, piece))
    }

    /// Count a batch of texts in parallel (in the current rayon pool).
    pub fn add_texts<T: AsRef<str> + Sync>(&self, texts: &[T]) -> Result<()> {
        texts
            .par_iter()
            .with_min_len(1)
            .try_for_each(|t| self.count_one(t.as_ref()))
    }

    /// The splitter.
    pub fn splitter(&self) -> &S {
        &self.splitter
    }

    /// Merge the per-thread maps into the counts so far, leaving the counter empty (it can
    /// be reused).
    pub fn take(&mut self) -> PretokenCounts {
        let n = self.maps.len();
        let maps = std::mem::replace(
            &mut self.maps,
            (0..n).map(|_| Mutex::new(Map::default())).collect(),
        );
        self.bytes.store(0, Ordering::Relaxed);
        Self::merge_maps(maps, self.splitter.describe())
    }

    /// Merge the per-thread maps into the final counts.
    pub fn finish(mut self) -> PretokenCounts {
        self.take()
    }

    fn merge_maps(maps: Vec<Mutex<Map>>, description: Option<String>) -> PretokenCounts {
        let mut maps: Vec<Map> = maps
            .into_iter()
            .map(|m| match m.into_inner() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            })
            .collect();
        maps.sort_by_key(|m| std::cmp::Reverse(m.len()));
        let mut it = maps.into_iter();
        let mut acc = it.next().unwrap_or_default();
        for m in it {
            acc.reserve(m.len());
            for (k, c) in m {
                *acc.entry(k).or_insert(0) += c;
            }
        }
        let mut out: FxHashMap<Box<[u8]>, u64> =
            FxHashMap::with_capacity_and_hasher(acc.len(), Default::default());
        out.extend(acc.into_iter().map(|(k, c)| {
            let b: Box<[u8]> = match k {
                Key::Heap(b) => b,
                k => k.as_slice().into(),
            };
            (b, c)
        }));
        PretokenCounts::from_map(out, description)
    }
}

/// What to do with invalid UTF-8 in files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Utf8Errors {
    /// Fail with the file name and byte offset.
    Strict,
    /// Replace invalid sequences with U+FFFD.
    Replace,
}

/// Is the char ending right before `end` (exclusive) whitespace? `None` if not decodable.
fn char_before_is_ws(buf: &[u8], end: usize) -> Option<bool> {
    let mut s = end.checked_sub(1)?;
    while s > 0 && end - s < 4 && (buf[s] & 0xc0) == 0x80 {
        s -= 1;
    }
    let c = std::str::from_utf8(&buf[s..end]).ok()?.chars().next()?;
    Some(c.is_whitespace())
}

/// Is the char starting at `start` whitespace? `None` if not decodable (or at the end).
fn char_at_is_ws(buf: &[u8], start: usize) -> Option<bool> {
    let lead = *buf.get(start)?;
    let n = crate::util::utf8_len(lead);
    if n == 0 || start + n > buf.len() {
        return None;
    }
    let c = std::str::from_utf8(&buf[start..start + n])
        .ok()?
        .chars()
        .next()?;
    Some(c.is_whitespace())
}

/// The last safe cut in `buf` at or after `min`: a position `p` with `buf[p-1] == '\n'`,
/// the character before that newline not whitespace and the character at `p` not
/// whitespace. With the GPT-2, cl100k and o200k patterns a piece always ends at such a
/// newline and the next piece starts after it, so cutting there changes nothing.
fn find_cut(buf: &[u8], min: usize) -> Option<usize> {
    let mut hay_end = buf.len();
    while let Some(nl) = memchr::memrchr(b'\n', &buf[..hay_end]) {
        let p = nl + 1;
        if p <= min {
            return None;
        }
        if nl > 0
            && char_before_is_ws(buf, nl) == Some(false)
            && char_at_is_ws(buf, p) == Some(false)
        {
            return Some(p);
        }
        hay_end = nl;
    }
    None
}

/// Last UTF-8 character boundary at or before `p` (fallback cut).
fn char_boundary_before(buf: &[u8], mut p: usize) -> usize {
    let lo = p.saturating_sub(3);
    while p > lo && p < buf.len() && (buf[p] & 0xc0) == 0x80 {
        p -= 1;
    }
    p
}

fn io_err(path: &str, e: std::io::Error) -> Error {
    Error::Io {
        path: path.to_string(),
        message: e.to_string(),
    }
}

/// Decode one block; `offset` is the block's position in the file (for errors).
fn decode_block(block: Vec<u8>, path: &str, offset: u64, errors: Utf8Errors) -> Result<String> {
    match String::from_utf8(block) {
        Ok(s) => Ok(s),
        Err(e) => match errors {
            Utf8Errors::Replace => Ok(String::from_utf8_lossy(e.as_bytes()).into_owned()),
            Utf8Errors::Strict => {
                let at = offset + e.utf8_error().valid_up_to() as u64;
                Err(Error::Parse {
                    source: path.to_string(),
                    line: 0,
                    message: format!(
                        "invalid UTF-8 at byte offset {at} (pass errors=\"replace\" to replace invalid bytes)"
                    ),
                })
            }
        },
    }
}

/// Streams one file as a sequence of text blocks.
pub struct BlockReader {
    path: String,
    file: File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    offset: u64,
    eof: bool,
    errors: Utf8Errors,
    block_size: usize,
}

impl BlockReader {
    pub fn open(path: &str, errors: Utf8Errors) -> Result<Self> {
        let file = File::open(path).map_err(|e| io_err(path, e))?;
        Ok(BlockReader {
            path: path.to_string(),
            file,
            buf: Vec::new(),
            offset: 0,
            eof: false,
            errors,
            block_size: BLOCK_SIZE,
        })
    }

    /// Use a different target block size (tests).
    pub fn with_block_size(mut self, n: usize) -> Self {
        self.block_size = n.max(1);
        self
    }

    fn fill(&mut self, want: usize) -> Result<()> {
        while !self.eof && self.buf.len() < want {
            let old = self.buf.len();
            let add = (want - old).max(64 << 10);
            self.buf.resize(old + add, 0);
            let n = loop {
                match self.file.read(&mut self.buf[old..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.buf.truncate(old);
                        return Err(io_err(&self.path, e));
                    }
                }
            };
            self.buf.truncate(old + n);
            if n == 0 {
                self.eof = true;
            }
        }
        Ok(())
    }

    /// The next block of text (`None` at the end of the file).
    pub fn next_block(&mut self) -> Result<Option<String>> {
        let mut want = self.block_size;
        let cut = loop {
            self.fill(want)?;
            if self.eof && self.buf.len() <= want {
                break self.buf.len();
            }
            if let Some(c) = find_cut(&self.buf[..want.min(self.buf.len())], want / 2) {
                break c;
            }
            if want >= MAX_BLOCK_SIZE.max(self.block_size) {
                let c = char_boundary_before(&self.buf, want);
                break if c == 0 { want } else { c };
            }
            want = (want * 2).min(MAX_BLOCK_SIZE.max(self.block_size));
        };
        if cut == 0 {
            return Ok(None);
        }
        let rest = self.buf.split_off(cut);
        let block = std::mem::replace(&mut self.buf, rest);
        let off = self.offset;
        self.offset += cut as u64;
        decode_block(block, &self.path, off, self.errors).map(Some)
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.offset
    }
}

/// Count the pretokens of `paths` in the current rayon pool.
///
/// Each file is a separate text (pretokens never span two files). A file is read in blocks
/// of about 1 MiB, cut only at a newline that has a non-whitespace character on both sides;
/// the GPT-2, cl100k and o200k patterns always end a piece at such a newline, so the counts
/// equal those of the whole file in one piece. (For an arbitrary pattern a cut could, in
/// principle, change the pieces around it; the cut positions depend only on the file's
/// content, so the result is still deterministic.) A block without such a newline grows up
/// to 64 MiB and is then cut at a character boundary.
///
/// A reader thread streams blocks through a bounded channel (at most two blocks per worker
/// in flight) to as many counting threads as the current rayon pool has (each with its own
/// map), so reading overlaps counting and memory stays bounded. `progress(bytes_done)` is
/// called from the counting threads (never concurrently).
pub fn count_files<S: Splitter>(
    splitter: S,
    paths: &[String],
    errors: Utf8Errors,
    progress: &mut (dyn FnMut(u64) -> Result<()> + Send),
) -> Result<PretokenCounts> {
    let workers = rayon::current_num_threads().max(1);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(String, u64)>>(workers * 2);
    let rx = Mutex::new(rx);
    let done = AtomicU64::new(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let progress = Mutex::new(progress);
    let splitter = &splitter;
    let results: Vec<Result<Map>> = std::thread::scope(|scope| {
        let stop_r = &stop;
        scope.spawn(move || {
            for path in paths {
                if stop_r.load(Ordering::Relaxed) {
                    return;
                }
                let mut reader = match BlockReader::open(path, errors) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                loop {
                    if stop_r.load(Ordering::Relaxed) {
                        return; // a worker failed
                    }
                    let before = reader.position();
                    match reader.next_block() {
                        Ok(Some(b)) => {
                            let n = reader.position() - before;
                            if tx.send(Ok((b, n))).is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
            }
        });
        // Plain threads blocking on the channel (no spinning while the reader works); each
        // owns its map.
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let (rx, done, stop, progress) = (&rx, &done, &stop, &progress);
                scope.spawn(move || -> Result<Map> {
                    let mut map = Map::default();
                    let mut failed: Option<Error> = None;
                    loop {
                        let item = match rx.lock() {
                            Ok(g) => g.recv(),
                            Err(_) => break,
                        };
                        let Ok(item) = item else {
                            break; // channel closed: the reader is done
                        };
                        if failed.is_some() || stop.load(Ordering::Relaxed) {
                            continue; // drain so that the reader never blocks
                        }
                        let r = item.and_then(|(block, n)| {
                            splitter.split(&block, &mut |piece| bump(&mut map, piece))?;
                            let d = done.fetch_add(n, Ordering::Relaxed) + n;
                            if let Ok(mut p) = progress.try_lock() {
                                (*p)(d)?;
                            }
                            Ok(())
                        });
                        if let Err(e) = r {
                            stop.store(true, Ordering::Relaxed);
                            failed = Some(e);
                        }
                    }
                    match failed {
                        Some(e) => Err(e),
                        None => Ok(map),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r,
                Err(_) => Err(Error::InvalidArgument("a counting thread panicked".into())),
            })
            .collect()
    });
    let mut maps = Vec::with_capacity(results.len());
    for r in results {
        maps.push(Mutex::new(r?));
    }
    Ok(Counter::<S>::merge_maps(maps, splitter.describe()))
}

/// Count a slice of texts (each text is split on its own).
pub fn count_texts<S: Splitter, T: AsRef<str> + Sync>(
    splitter: S,
    texts: &[T],
) -> Result<PretokenCounts> {
    let c = Counter::new(splitter);
    c.add_texts(texts)?;
    Ok(c.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pretok::patterns;

    fn tmp(name: &str, data: &[u8]) -> String {
        let dir = std::env::temp_dir().join(format!("supertok-count-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p.to_string_lossy().into_owned()
    }

    #[test]
    fn blocks_equal_whole_file() {
        let mut text = String::new();
        let mut seed = 7u64;
        let parts = [
            "word", " ", "\n", "\n\n", "  ", "\t", "é", "中文", ".", "!?", "123", "'s", "\r\n",
            "\u{3000}", "\u{85}", "x", "A", " the",
        ];
        for _ in 0..20000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.push_str(parts[(seed >> 33) as usize % parts.len()]);
        }
        let path = tmp("blocks.txt", text.as_bytes());
        for pat in [patterns::R50K, patterns::CL100K, patterns::O200K] {
            let pt = Pretokenizer::new(pat).unwrap();
            let whole = count_texts(&pt, &[text.as_str()]).unwrap();
            for bs in [16usize, 100, 1000, 7777] {
                let mut r = BlockReader::open(&path, Utf8Errors::Strict)
                    .unwrap()
                    .with_block_size(bs);
                let mut blocks = vec![];
                while let Some(b) = r.next_block().unwrap() {
                    blocks.push(b);
                }
                assert_eq!(blocks.concat(), text);
                let c = count_texts(&pt, &blocks).unwrap();
                assert_eq!(c, whole, "pattern {pat} block size {bs}");
            }
        }
    }

    #[test]
    fn invalid_utf8_names_offset() {
        let mut data = b"hello world\n".repeat(10);
        data.push(0xff);
        data.extend_from_slice(b" tail");
        let path = tmp("bad.txt", &data);
        let pt = Pretokenizer::new(patterns::CL100K).unwrap();
        let e = count_files(
            &pt,
            std::slice::from_ref(&path),
            Utf8Errors::Strict,
            &mut |_| Ok(()),
        )
        .unwrap_err();
        let m = e.to_string();
        assert!(m.contains("byte offset 120"), "{m}");
        assert!(m.contains("bad.txt"), "{m}");
        // An error in a later file (after many good blocks) stops cleanly.
        let good = tmp(
            "good.txt",
            "word word\nmore text\n".repeat(300_000).as_bytes(),
        );
        let e = count_files(
            &pt,
            &[good.clone(), path.clone(), good.clone()],
            Utf8Errors::Strict,
            &mut |_| Ok(()),
        )
        .unwrap_err();
        assert!(e.to_string().contains("bad.txt"), "{e}");
        // A failing progress callback stops counting too.
        let e = count_files(&pt, &[good], Utf8Errors::Strict, &mut |_| {
            Err(Error::InvalidArgument("stop".into()))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "stop");
        let c = count_files(&pt, &[path], Utf8Errors::Replace, &mut |_| Ok(())).unwrap();
        assert_eq!(c.get(" world".as_bytes()), 10);
        assert_eq!(c.get("\u{fffd}".as_bytes()), 1);
        let e = count_files(
            &pt,
            &["/nonexistent/x.txt".to_string()],
            Utf8Errors::Strict,
            &mut |_| Ok(()),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.txt"));
    }

    #[test]
    fn line_splitter() {
        let pt = Pretokenizer::new(patterns::R50K).unwrap();
        let text = "a\n\nb  \n c\r\nd";
        let c = count_texts(LineSplitter(&pt), &[text]).unwrap();
        let mut want = PretokenCounts::new(Some(patterns::R50K.into()));
        for line in ["a\n", "\n", "b  \n", " c\r\n", "d"] {
            for (a, b) in pt.split(line).unwrap() {
                want.add(&line.as_bytes()[a..b], 1);
            }
        }
        assert_eq!(c, want);
        assert_eq!(c.get(b"\n"), 2);
    }

    #[test]
    fn whole_lines_from_files() {
        let mut text = String::new();
        for i in 0..50_000 {
            text.push_str(&format!("line {} {}\n", i % 977, "x".repeat(i % 13)));
            if i % 7 == 0 {
                text.push_str("\n  \n");
            }
        }
        let path = tmp("lines.txt", text.as_bytes());
        let c = count_files(
            LineSplitter(WholeChunks),
            std::slice::from_ref(&path),
            Utf8Errors::Strict,
            &mut |_| Ok(()),
        )
        .unwrap();
        let mut want = PretokenCounts::new(None);
        for l in text.split_inclusive('\n') {
            want.add(l.as_bytes(), 1);
        }
        assert_eq!(c.len(), want.len());
        assert_eq!(c, want);
    }

    #[test]
    fn long_line_fallback() {
        let text = "ab".repeat(5000);
        let path = tmp("long.txt", text.as_bytes());
        let mut r = BlockReader::open(&path, Utf8Errors::Strict)
            .unwrap()
            .with_block_size(64);
        let mut n = 0;
        let mut all = String::new();
        while let Some(b) = r.next_block().unwrap() {
            n += 1;
            all.push_str(&b);
        }
        assert_eq!(all, text);
        assert!(n >= 1);
    }
}
