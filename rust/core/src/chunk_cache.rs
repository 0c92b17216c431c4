//! A small per-thread cache of the chunk merges of [`crate::backtrack`]'s chunked encoder.
//!
//! The chunked encoder cuts a long piece into chunks of at most [`CHUNK`] bytes and merges
//! each chunk on its own; the merge of a chunk depends on its bytes only, so it can be
//! remembered. Long pieces that repeat themselves (runs of an emoji ZWJ sequence, `=-=-`
//! rulers, repeated base64 blocks, ...) then cost one lookup per chunk instead of a merge:
//! with fixed-size chunks a piece of period `p` has at most `p` distinct chunks. The seams
//! between chunks are still checked by the encoder, so the output never depends on the
//! cache (it only ever returns the exact merge it stored).
//!
//! Direct-mapped, [`SETS`] entries of 256 bytes (64 KiB per thread, allocated on first
//! use), keyed by the vocabulary's owner id (see [`crate::piece_cache::new_owner`]) and
//! the chunk's bytes. The encoder stops consulting it for the rest of a piece that missed
//! on every one of its first chunks, so random text pays almost nothing.

use std::cell::RefCell;

/// Longest chunk that is cached (the chunked encoder's chunk size).
pub const CHUNK: usize = 48;
/// Number of entries.
pub const SETS: usize = 256;

/// One entry: 4 + 1 + 1 + 48 + 192 bytes, padded to 256.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Entry {
    owner: u32,
    len: u8,
    ntok: u8,
    bytes: [u8; CHUNK],
    toks: [u32; CHUNK],
}

const EMPTY: Entry = Entry {
    owner: 0,
    len: 0,
    ntok: 0,
    bytes: [0; CHUNK],
    toks: [0; CHUNK],
};

thread_local! {
    static CACHE: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

#[inline(always)]
fn slot(chunk: &[u8]) -> usize {
    (crate::piece_cache::mix(chunk) >> 48) as usize & (SETS - 1)
}

/// Append the cached merge of `chunk` under `owner` to `out`; false if absent.
#[inline]
pub fn get(owner: u32, chunk: &[u8], out: &mut Vec<u32>) -> bool {
    if chunk.is_empty() || chunk.len() > CHUNK {
        return false;
    }
    CACHE.with(|c| {
        let c = c.borrow();
        let Some(e) = c.get(slot(chunk)) else {
            return false;
        };
        if e.owner == owner && e.len as usize == chunk.len() && e.bytes[..chunk.len()] == *chunk {
            out.extend_from_slice(&e.toks[..e.ntok as usize]);
            true
        } else {
            false
        }
    })
}

/// Remember that `chunk` merges to `toks` under `owner` (replacing its slot's entry).
#[inline]
pub fn put(owner: u32, chunk: &[u8], toks: &[u32]) {
    if chunk.is_empty() || chunk.len() > CHUNK || toks.len() > CHUNK {
        return;
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_empty() {
            *c = vec![EMPTY; SETS];
        }
        let e = &mut c[slot(chunk)];
        e.owner = owner;
        e.len = chunk.len() as u8;
        e.ntok = toks.len() as u8;
        e.bytes[..chunk.len()].copy_from_slice(chunk);
        e.toks[..toks.len()].copy_from_slice(toks);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::piece_cache::new_owner;

    #[test]
    fn roundtrip_owner_and_bytes() {
        let a = new_owner();
        let b = new_owner();
        let mut out = vec![];
        assert_eq!(std::mem::size_of::<Entry>(), 256);
        for n in 1..=CHUNK {
            let p: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(91) ^ 0x3c).collect();
            let toks: Vec<u32> = (0..n as u32).collect();
            put(a, &p, &toks);
            out.clear();
            assert!(get(a, &p, &mut out));
            assert_eq!(out, toks);
            assert!(!get(b, &p, &mut out));
            for k in 0..n {
                let mut q = p.clone();
                q[k] ^= 1;
                assert!(!get(a, &q, &mut out), "{n} {k}");
            }
        }
        // too long or empty: never stored
        put(a, &[1u8; CHUNK + 1], &[1]);
        assert!(!get(a, &[1u8; CHUNK + 1], &mut out));
        put(a, &[], &[]);
        assert!(!get(a, &[], &mut out));
    }
}
