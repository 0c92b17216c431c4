//! HF's `BPE` model over the byte-level alphabet.
//!
//! Vocabulary entries are strings of the byte-level alphabet; each is stored both as its
//! string (for `id_to_token`, serialization and `trim_offsets`) and, when every character
//! is in the alphabet, as bytes in a core [`Vocab`]. Merges are pairs of ids ranked by their
//! position in the list, merged with the core [`MergeTable`] (lowest rank first, leftmost
//! among equals), exactly HF's `merge_all`.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use super::atomic_pairs::AtomicPairs;
use super::bytelevel;
use super::json::{self, err, join};
use super::two_level::TwoLevel;
use crate::atomic_chars::AtomicChars;
use crate::bpe::{MergeTable, LINEAR_MAX};
use crate::error::{Error, Result};
use crate::vocab::Vocab;

pub mod incremental;

/// Pieces up to this many bytes are cached whole (per thread), as HF caches words; longer
/// ones are cut first and their parts cached (whole long lines rarely repeat and would
/// fill the key arena, turning the cache over too often).
const CACHE_MAX_PIECE: usize = 256;
/// Pieces longer than this are first cut at safe points (see `inner_pairs`).
const CUT_MIN_PIECE: usize = 64;
/// Uncached pieces up to this many bytes are merged whole; longer ones are cut first (see
/// `inner_pairs`) so that their parts go through the cache.
const MERGE_WHOLE_MAX: usize = 16;
/// With a two-level split, pieces longer than this are encoded in two levels.
const TWO_LEVEL_MIN_PIECE: usize = 12;
/// Entries per generation of the per-thread cache (see [`PieceCache`]).
const CACHE_CAPACITY: usize = 1 << 15;
/// Pieces up to this many bytes are merged by table lookups when they can be
/// ([`BpeModel::merge_tiny`]), without any cache.
const TINY_MAX: usize = 3;
/// Other pieces up to this many bytes are cached in the core's one-cache-line-per-entry
/// [`crate::piece_cache`] instead of the [`PieceCache`] (no arena, no `memcmp`).
const SMALL_CACHE_MAX: usize = 8;

static NEXT_MODEL_ID: AtomicUsize = AtomicUsize::new(1);

/// One generation of the cache. Keys and values live in two arenas so that filling and
/// clearing a generation allocates nothing once warm.
#[derive(Default)]
struct Generation {
    /// hash of the piece → (key offset, key length, ids offset, ids length)
    map: FxHashMap<u64, (u32, u32, u32, u32)>,
    keys: Vec<u8>,
    ids: Vec<u32>,
}

impl Generation {
    fn clear(&mut self) {
        self.map.clear();
        self.keys.clear();
        self.ids.clear();
    }

    fn is_full(&self) -> bool {
        self.map.len() >= CACHE_CAPACITY || self.keys.len() > (CACHE_CAPACITY << 5)
    }

    /// The cached ids of `piece` (whose hash is `h`).
    #[inline]
    fn get(&self, h: u64, piece: &[u8]) -> Option<&[u32]> {
        let &(k, kl, i, il) = self.map.get(&h)?;
        if &self.keys[k as usize..(k + kl) as usize] == piece {
            Some(&self.ids[i as usize..(i + il) as usize])
        } else {
            None
        }
    }

    #[inline]
    fn put(&mut self, h: u64, piece: &[u8], ids: &[u32]) {
        let k = self.keys.len() as u32;
        self.keys.extend_from_slice(piece);
        let i = self.ids.len() as u32;
        self.ids.extend_from_slice(ids);
        self.map
            .insert(h, (k, piece.len() as u32, i, ids.len() as u32));
    }
}

/// A per-thread cache of piece → ids for one model at a time, in two generations: new
/// entries go to the young one; when it is full, it becomes the old one (the previous old
/// one is dropped) and a fresh young one starts. A hit in the old generation is copied
/// back into the young one, so pieces in use survive every turnover (an approximation of
/// LRU that never clears everything at once, unlike a single table cleared when full).
#[derive(Default)]
pub(crate) struct PieceCache {
    owner: usize,
    young: Generation,
    old: Generation,
    /// Lookups and hits of long pieces (see [`PieceCache::skip_long`]), halved now and then
    /// so that they follow the current text.
    long_lookups: u32,
    long_hits: u32,
}

impl PieceCache {
    fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
    }

    /// Make the cache belong to `owner` (clearing it if it belonged to another model).
    #[inline]
    pub(crate) fn claim(&mut self, owner: usize) {
        if self.owner != owner {
            self.clear();
            self.owner = owner;
        }
    }

    /// Whether a long piece whose hash is `h` should bypass the cache: when long pieces
    /// have rarely been found in it lately (whole lines of text that never repeat would
    /// cost a lookup and an insertion each and push the parts that do repeat out). One
    /// piece in 16, chosen by hash, always goes through the cache, so that the hit rate
    /// keeps being measured and the bypass ends when long pieces start repeating. (Speed
    /// only: the cache never changes the output.)
    #[inline]
    pub(crate) fn skip_long(&self, h: u64) -> bool {
        h >> 60 != 0 && self.long_lookups >= 64 && self.long_hits * 16 < self.long_lookups
    }

    /// Count a lookup of a long piece (see [`PieceCache::skip_long`]).
    #[inline]
    pub(crate) fn count_long(&mut self, hit: bool) {
        self.long_lookups += 1;
        self.long_hits += hit as u32;
        if self.long_lookups >= 4096 {
            self.long_lookups /= 2;
            self.long_hits /= 2;
        }
    }

    /// Append the cached ids of `piece` to `out`; `false` when it is not cached.
    #[inline]
    pub(crate) fn lookup(&mut self, piece: &[u8], out: &mut Vec<u32>) -> bool {
        self.lookup_h(crate::util::bytes_hash(piece), piece, out)
    }

    /// [`PieceCache::lookup`] of a piece whose hash is `h`.
    #[inline]
    pub(crate) fn lookup_h(&mut self, h: u64, piece: &[u8], out: &mut Vec<u32>) -> bool {
        if let Some(ids) = self.young.get(h, piece) {
            out.extend_from_slice(ids);
            return true;
        }
        if let Some(ids) = self.old.get(h, piece) {
            let before = out.len();
            out.extend_from_slice(ids);
            self.put(h, piece, &out[before..]);
            return true;
        }
        false
    }

    /// Remember `ids` for `piece`.
    #[inline]
    pub(crate) fn insert(&mut self, piece: &[u8], ids: &[u32]) {
        self.put(crate::util::bytes_hash(piece), piece, ids);
    }

    /// Store `ids` for `piece` (whose hash is `h`) in the young generation.
    #[inline]
    pub(crate) fn put(&mut self, h: u64, piece: &[u8], ids: &[u32]) {
        if self.young.is_full() {
            self.turn_over();
        }
        self.young.put(h, piece, ids);
    }

    /// The young generation becomes the old one; a fresh young one starts.
    fn turn_over(&mut self) {
        std::mem::swap(&mut self.young, &mut self.old);
        self.young.clear();
    }
}

/// A fresh id for a per-thread cache owner.
pub(crate) fn next_cache_id() -> usize {
    NEXT_MODEL_ID.fetch_add(1, Ordering::Relaxed)
}

thread_local! {
    static CACHE: RefCell<PieceCache> = RefCell::new(PieceCache::default());
}

/// Options of the BPE model other than its vocabulary and merges.
#[derive(Clone, Debug, Default)]
pub struct BpeOptions {
    pub ignore_merges: bool,
    pub unk_token: Option<String>,
    pub fuse_unk: bool,
    pub dropout: Option<f64>,
    /// Write merges as `"a b"` strings (older HF) instead of pairs.
    pub legacy_merges: bool,
}

#[inline]
fn str_hash(s: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    h.write(s.as_bytes());
    h.write_usize(s.len());
    h.finish()
}

/// Token strings by id in one arena, with a hash index (no allocation per token).
#[derive(Clone, Debug, Default)]
struct StrTable {
    data: String,
    /// `starts[id]..starts[id + 1]` is the string of `id`; `present[id]` marks non-holes.
    starts: Vec<u32>,
    present: Vec<bool>,
    /// hash → id; strings whose hash is already taken by another string go to `collisions`
    index: FxHashMap<u64, u32>,
    collisions: FxHashMap<Box<str>, u32>,
}

impl StrTable {
    #[inline]
    fn name(&self, id: u32) -> Option<&str> {
        let i = id as usize;
        if !*self.present.get(i)? {
            return None;
        }
        Some(&self.data[self.starts[i] as usize..self.starts[i + 1] as usize])
    }

    #[inline]
    fn get(&self, s: &str) -> Option<u32> {
        if let Some(&id) = self.index.get(&str_hash(s)) {
            if self.name(id) == Some(s) {
                return Some(id);
            }
        }
        if self.collisions.is_empty() {
            None
        } else {
            self.collisions.get(s).copied()
        }
    }

    /// Insert `s` as `id`; returns the id that already has `s`, if any.
    fn insert(&mut self, s: &str, id: u32) -> Option<u32> {
        if let Some(prev) = self.get(s) {
            return Some(prev);
        }
        match self.index.entry(str_hash(s)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(id);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collisions.insert(s.into(), id);
            }
        }
        None
    }
}

/// The BPE model.
#[derive(Clone, Debug)]
pub struct BpeModel {
    /// id → string, string → id.
    names: StrTable,
    /// Number of entries (HF's `get_vocab_size` of the model).
    n_entries: usize,
    /// Entries whose strings are all in the byte-level alphabet, as bytes.
    bytes: Vocab,
    table: MergeTable,
    /// Merges as `(left, right)` ids in rank order, duplicates removed (HF keeps the last
    /// occurrence's rank).
    merges: Vec<(u32, u32)>,
    /// Whether the file wrote merges as `"a b"` strings (kept when saving).
    legacy_merges: bool,
    pub ignore_merges: bool,
    pub unk_token: Option<String>,
    unk_id: Option<u32>,
    pub fuse_unk: bool,
    pub dropout: Option<f64>,
    /// Leading/trailing counts of `Ġ`/whitespace chars in each token's string (for
    /// `trim_offsets`), indexed by id.
    trims: Vec<(u16, u16)>,
    /// Identifies this model in the per-thread piece cache.
    cache_id: usize,
    /// Identifies this model in the core's per-thread [`crate::piece_cache`].
    small_owner: u32,
    /// Bit `a << 8 | b` is set when the bytes `a b` are adjacent inside some token. A piece
    /// can be cut between two bytes whose pair is not set: no token can ever span the cut,
    /// so BPE on the parts gives BPE on the whole (merges on disjoint parts commute).
    inner_pairs: Vec<u64>,
    /// Low/high split of the merges for vocabularies with superwords (`two_level`).
    two_level: Option<TwoLevel>,
    /// Two- and three-byte characters that may start the merge as one part (see
    /// [`crate::atomic_chars`], "HF merge lists").
    chars: AtomicChars,
    /// Byte pairs that may start the merge as one part (see [`super::atomic_pairs`]).
    pairs: AtomicPairs,
    /// Whether every byte has a token (always so in a byte-level vocabulary): then no piece
    /// needs the unknown-byte path.
    all_bytes: bool,
}

/// Leading and trailing counts of characters that `ByteLevel`'s `trim_offsets` strips.
pub fn trim_counts(s: &str) -> (usize, usize) {
    let sp = |c: &char| *c == 'Ġ' || c.is_whitespace();
    let lead = s.chars().take_while(sp).count();
    let trail = s.chars().rev().take_while(sp).count();
    (lead, trail)
}

impl BpeModel {
    /// Build from `(string, id)` entries and merges given as pairs of strings.
    pub fn new(
        entries: Vec<(String, u32)>,
        merges: Vec<(String, String)>,
        options: BpeOptions,
        path: &str,
    ) -> Result<Self> {
        let n_entries = entries.len();
        let max_id = entries.iter().map(|e| e.1 as usize).max().unwrap_or(0);
        if n_entries > 0 && max_id > 4 * n_entries + (1 << 20) {
            return Err(err(
                &join(path, "vocab"),
                format!(
                    "token ids are too sparse: {n_entries} tokens but the largest id is {max_id}"
                ),
            ));
        }
        let slots = if n_entries == 0 { 0 } else { max_id + 1 };
        let mut entries = entries;
        entries.sort_unstable_by_key(|e| e.1);
        for w in entries.windows(2) {
            if w[0].1 == w[1].1 {
                return Err(err(
                    &join(path, "vocab"),
                    format!(
                        "id {} is used by both {:?} and {:?}",
                        w[0].1, w[0].0, w[1].0
                    ),
                ));
            }
        }
        let total: usize = entries.iter().map(|e| e.0.len()).sum();
        if total > u32::MAX as usize {
            return Err(err(&join(path, "vocab"), "vocabulary larger than 4 GiB"));
        }
        let mut names = StrTable {
            data: String::with_capacity(total),
            starts: Vec::with_capacity(slots + 1),
            present: vec![false; slots],
            index: FxHashMap::with_capacity_and_hasher(n_entries, Default::default()),
            collisions: FxHashMap::default(),
        };
        let mut byte_pairs = Vec::with_capacity(n_entries);
        let mut it = entries.iter().peekable();
        for id in 0..slots {
            names.starts.push(names.data.len() as u32);
            if let Some((s, eid)) = it.peek() {
                if *eid as usize == id {
                    it.next();
                    // the alphabet is a bijection, so distinct strings give distinct bytes
                    if let Some(b) = bytelevel::decode_str(s) {
                        if !b.is_empty() {
                            byte_pairs.push((b, id as u32));
                        }
                    }
                    names.data.push_str(s);
                    names.present[id] = true;
                }
            }
        }
        names.starts.push(names.data.len() as u32);
        for (s, id) in &entries {
            if let Some(prev) = names.insert(s, *id) {
                return Err(err(
                    &join(path, "vocab"),
                    format!("token {s:?} appears twice (ids {prev} and {id})"),
                ));
            }
        }
        let bytes = Vocab::from_pairs(byte_pairs).map_err(|e| err(&join(path, "vocab"), e))?;
        let mut pairs: Vec<(u32, u32, u32)> = Vec::with_capacity(merges.len());
        let mut joined = String::new();
        for (i, (a, b)) in merges.iter().enumerate() {
            let mp = || json::index(&join(path, "merges"), i);
            let l = names
                .get(a)
                .ok_or_else(|| err(&mp(), format!("merge token {a:?} is not in the vocabulary")))?;
            let r = names
                .get(b)
                .ok_or_else(|| err(&mp(), format!("merge token {b:?} is not in the vocabulary")))?;
            joined.clear();
            joined.push_str(a);
            joined.push_str(b);
            let res = names.get(&joined).ok_or_else(|| {
                err(
                    &mp(),
                    format!("merge result {joined:?} is not in the vocabulary"),
                )
            })?;
            pairs.push((l, r, res));
        }
        Ok(Self::from_tables(names, n_entries, bytes, pairs, options))
    }

    /// The part of [`BpeModel::new`] shared with the incremental constructor
    /// ([`incremental`]): everything derived from the token table, the byte vocabulary
    /// and the merges as `(left, right, result)` ids in rank order (duplicates allowed).
    fn from_tables(
        names: StrTable,
        n_entries: usize,
        bytes: Vocab,
        pairs: Vec<(u32, u32, u32)>,
        options: BpeOptions,
    ) -> Self {
        let BpeOptions {
            ignore_merges,
            unk_token,
            fuse_unk,
            dropout,
            legacy_merges,
        } = options;
        let slots = names.present.len();
        // HF builds its merge map with `collect()` into a hash map: for a repeated pair the
        // last occurrence's rank wins. Keep only last occurrences, in order. A repeated pair
        // has the same result both times, so when every result is distinct (always so for a
        // trained list; checked with a bitmap over the ids) there is nothing to remove.
        let mut seen = vec![false; slots];
        let distinct = pairs.iter().all(|p| match seen.get_mut(p.2 as usize) {
            Some(s) => !std::mem::replace(s, true),
            None => false,
        });
        let pairs: Vec<(u32, u32, u32)> = if distinct {
            pairs
        } else {
            let mut last: FxHashMap<(u32, u32), usize> = FxHashMap::default();
            for (i, p) in pairs.iter().enumerate() {
                last.insert((p.0, p.1), i);
            }
            pairs
                .iter()
                .enumerate()
                .filter(|(i, p)| last.get(&(p.0, p.1)) == Some(i))
                .map(|(_, p)| *p)
                .collect()
        };
        // The two-level split is independent of the rest: inside a rayon pool (training,
        // which builds the tokenizer on the critical path) it is computed on another worker
        // meanwhile; elsewhere (loading a file) everything runs here, no pool is started.
        let rest = || {
            let table = MergeTable::from_merges(&bytes, &pairs);
            let mut inner_pairs = vec![0u64; 1024];
            for (_, b) in bytes.iter() {
                for w in b.windows(2) {
                    let k = (w[0] as usize) << 8 | w[1] as usize;
                    inner_pairs[k >> 6] |= 1 << (k & 63);
                }
            }
            let chars = AtomicChars::from_merges(&bytes, &table);
            let atomic_pairs = AtomicPairs::new(&bytes, &table);
            let trims: Vec<(u16, u16)> = (0..slots as u32)
                .map(|id| {
                    names.name(id).map_or((0, 0), |s| {
                        let (a, b) = trim_counts(s);
                        (
                            a.min(u16::MAX as usize) as u16,
                            b.min(u16::MAX as usize) as u16,
                        )
                    })
                })
                .collect();
            (table, inner_pairs, chars, atomic_pairs, trims)
        };
        let two = || TwoLevel::for_model(&bytes, &pairs);
        let (two_level, (table, inner_pairs, chars, atomic_pairs, trims)) =
            if rayon::current_thread_index().is_some() && rayon::current_num_threads() > 1 {
                rayon::join(two, rest)
            } else {
                (two(), rest())
            };
        let all_bytes = (0..=255u8).all(|b| bytes.byte_id(b).is_some());
        let unk_id = unk_token.as_ref().and_then(|u| names.get(u));
        BpeModel {
            names,
            n_entries,
            bytes,
            table,
            merges: pairs.iter().map(|p| (p.0, p.1)).collect(),
            legacy_merges,
            ignore_merges,
            unk_token,
            unk_id,
            fuse_unk,
            dropout,
            trims,
            cache_id: NEXT_MODEL_ID.fetch_add(1, Ordering::Relaxed),
            small_owner: crate::piece_cache::new_owner(),
            inner_pairs,
            two_level,
            chars,
            pairs: atomic_pairs,
            all_bytes,
        }
    }

    /// Check the options of a `model` object (everything but `vocab` and `merges`).
    fn options(m: &Map<String, Value>, path: &str, legacy: bool) -> Result<BpeOptions> {
        let ty = match m.get("type") {
            Some(Value::String(s)) => s.as_str(),
            // HF accepts an untyped model object and tries each model kind; BPE is the only
            // one with "merges".
            None if m.contains_key("merges") => "BPE",
            _ => json::type_of(m, path)?,
        };
        if ty != "BPE" {
            return Err(err(
                &join(path, "type"),
                format!("unsupported model type {ty:?} (only byte-level BPE is supported)"),
            ));
        }
        let dropout = match m.get("dropout") {
            None | Some(Value::Null) => None,
            Some(x) => Some(
                x.as_f64()
                    .ok_or_else(|| err(&join(path, "dropout"), "expected a number or null"))?,
            ),
        };
        if let Some(d) = dropout {
            if !(0.0..=1.0).contains(&d) {
                return Err(err(
                    &join(path, "dropout"),
                    format!("dropout {d} is not in [0, 1]"),
                ));
            }
            if d != 0.0 {
                return Err(err(
                    &join(path, "dropout"),
                    format!(
                        "BPE dropout {d} in the file is not supported (it makes every encode \
                         random); set it to null and use encode(text, dropout=p, seed=s)"
                    ),
                ));
            }
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let Some(s) = json::opt_string(m, key, path)? {
                return Err(err(
                    &join(path, key),
                    format!("{key} {s:?} is not supported (only byte-level BPE without affixes)"),
                ));
            }
        }
        if json::boolean(m, "byte_fallback", path, false)? {
            return Err(err(
                &join(path, "byte_fallback"),
                "byte_fallback=true is not supported (a byte-level BPE never needs it)",
            ));
        }
        Ok(BpeOptions {
            ignore_merges: json::boolean(m, "ignore_merges", path, false)?,
            unk_token: json::opt_string(m, "unk_token", path)?,
            fuse_unk: json::boolean(m, "fuse_unk", path, false)?,
            dropout,
            legacy_merges: legacy,
        })
    }

    /// Build from a `model` object's other fields and its vocabulary and merges read
    /// separately (see [`read_model`]).
    pub fn from_parts(
        m: &Map<String, Value>,
        entries: Vec<(String, u32)>,
        merges: Vec<(String, String)>,
        legacy: bool,
        path: &str,
    ) -> Result<Self> {
        let options = Self::options(m, path, legacy)?;
        BpeModel::new(entries, merges, options, path)
    }

    /// Parse the `model` object.
    pub fn from_json(v: &Value, path: &str) -> Result<Self> {
        let m = json::obj(v, path)?;
        let vp = join(path, "vocab");
        let vocab = match m.get("vocab") {
            Some(Value::Object(o)) => o,
            None | Some(Value::Null) => &Map::new() as &Map<String, Value>,
            Some(x) => {
                return Err(err(
                    &vp,
                    format!("expected an object, got {}", json::kind(x)),
                ))
            }
        };
        let mut entries = Vec::with_capacity(vocab.len());
        for (k, v) in vocab.iter() {
            entries.push((k.clone(), json::as_u32(v, &json::join(&vp, k))?));
        }
        let mp = join(path, "merges");
        let mut merges = Vec::new();
        let mut legacy = false;
        match m.get("merges") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                merges.reserve(items.len());
                for (i, item) in items.iter().enumerate() {
                    let ip = json::index(&mp, i);
                    match item {
                        Value::String(s) => {
                            legacy = true;
                            let mut parts = s.split(' ');
                            match (parts.next(), parts.next(), parts.next()) {
                                (Some(a), Some(b), None) => {
                                    merges.push((a.to_string(), b.to_string()))
                                }
                                _ => {
                                    return Err(err(
                                        &ip,
                                        format!(
                                            "merge {s:?} is not two tokens separated by one space"
                                        ),
                                    ))
                                }
                            }
                        }
                        Value::Array(p) if p.len() == 2 => match (&p[0], &p[1]) {
                            (Value::String(a), Value::String(b)) => {
                                merges.push((a.clone(), b.clone()))
                            }
                            _ => return Err(err(&ip, "expected a pair of strings")),
                        },
                        other => {
                            return Err(err(
                                &ip,
                                format!("expected \"a b\" or [a, b], got {}", json::kind(other)),
                            ))
                        }
                    }
                }
            }
            Some(x) => {
                return Err(err(
                    &mp,
                    format!("expected an array, got {}", json::kind(x)),
                ))
            }
        }
        Self::from_parts(m, entries, merges, legacy, path)
    }

    /// The JSON object HF writes for this model.
    pub fn to_json(&self) -> Value {
        let mut vocab = Map::with_capacity(self.n_entries);
        for (s, id) in self.entries() {
            vocab.insert(s.to_string(), Value::from(id as u64));
        }
        let name = |id: u32| self.names.name(id).unwrap_or("").to_string();
        let merges: Vec<Value> = self
            .merges
            .iter()
            .map(|&(l, r)| {
                if self.legacy_merges {
                    Value::String(format!("{} {}", name(l), name(r)))
                } else {
                    Value::Array(vec![Value::String(name(l)), Value::String(name(r))])
                }
            })
            .collect();
        json::object([
            ("type", Value::String("BPE".into())),
            ("dropout", self.dropout.map_or(Value::Null, Value::from)),
            (
                "unk_token",
                self.unk_token.clone().map_or(Value::Null, Value::String),
            ),
            ("continuing_subword_prefix", Value::Null),
            ("end_of_word_suffix", Value::Null),
            ("fuse_unk", Value::Bool(self.fuse_unk)),
            ("byte_fallback", Value::Bool(false)),
            ("ignore_merges", Value::Bool(self.ignore_merges)),
            ("vocab", Value::Object(vocab)),
            ("merges", Value::Array(merges)),
        ])
    }

    pub fn n_entries(&self) -> usize {
        self.n_entries
    }

    /// One past the largest id.
    pub fn n_slots(&self) -> usize {
        self.names.present.len()
    }

    pub fn token_to_id(&self, s: &str) -> Option<u32> {
        self.names.get(s)
    }

    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        self.names.name(id)
    }

    /// Byte-level entries.
    pub fn byte_vocab(&self) -> &Vocab {
        &self.bytes
    }

    /// Merges as id pairs in rank order.
    pub fn merges(&self) -> &[(u32, u32)] {
        &self.merges
    }

    pub fn merge_table(&self) -> &MergeTable {
        &self.table
    }

    /// `(leading, trailing)` counts of strippable chars of token `id`'s string.
    #[inline]
    pub fn trims(&self, id: u32) -> (usize, usize) {
        self.trims
            .get(id as usize)
            .map_or((0, 0), |&(a, b)| (a as usize, b as usize))
    }

    /// Iterate over `(string, id)` in id order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, u32)> + '_ {
        (0..self.names.present.len() as u32)
            .filter_map(move |id| self.names.name(id).map(|s| (s, id)))
    }

    /// Encode one piece (its bytes) and append the ids; when `lens` is given, also append
    /// each token's length in bytes of the piece.
    pub fn encode_piece(
        &self,
        piece: &[u8],
        out: &mut Vec<u32>,
        mut lens: Option<&mut Vec<u32>>,
    ) -> Result<()> {
        if piece.is_empty() {
            return Ok(());
        }
        // (The Bloom filter answers most non-tokens without touching the index's slots.)
        if self.ignore_merges && piece.len() <= self.bytes.max_token_len() {
            if let Some(id) = self.bytes.get_filtered(piece) {
                out.push(id);
                if let Some(l) = lens {
                    l.push(piece.len() as u32);
                }
                return Ok(());
            }
        }
        let start = out.len();
        if self.all_bytes || piece.iter().all(|&b| self.bytes.byte_id(b).is_some()) {
            self.encode_known(piece, out)?;
        } else {
            // Bytes without a token never merge: encode the runs between them separately;
            // each unknown byte becomes the unk token (fused if `fuse_unk`) or is dropped.
            let mut run_start = 0;
            let mut pending_unk: Option<u32> = None; // length of the pending unk
            let mut pending_lens: Vec<u32> = Vec::new();
            let mut i = 0;
            while i <= piece.len() {
                let known = i < piece.len() && self.bytes.byte_id(piece[i]).is_some();
                if i == piece.len() || !known {
                    if run_start < i {
                        if let Some(n) = pending_unk.take() {
                            self.push_unk(out, &mut pending_lens, n)?;
                        }
                        let before = out.len();
                        self.table.encode_piece(&piece[run_start..i], out)?;
                        for &t in &out[before..] {
                            pending_lens.push(self.bytes.bytes(t).map_or(0, |b| b.len()) as u32);
                        }
                    }
                    if i < piece.len() && self.unk_token.is_some() {
                        pending_unk = match pending_unk {
                            Some(n) if self.fuse_unk => Some(n + 1),
                            Some(n) => {
                                self.push_unk(out, &mut pending_lens, n)?;
                                Some(1)
                            }
                            None => Some(1),
                        };
                    }
                    run_start = i + 1;
                }
                i += 1;
            }
            if let Some(n) = pending_unk.take() {
                self.push_unk(out, &mut pending_lens, n)?;
            }
            if let Some(l) = lens.as_deref_mut() {
                l.extend_from_slice(&pending_lens);
            }
            return Ok(());
        }
        if let Some(l) = lens {
            for &t in &out[start..] {
                l.push(self.bytes.bytes(t).map_or(0, |b| b.len()) as u32);
            }
        }
        Ok(())
    }

    /// The first high rank when long pieces are encoded in two levels (see `two_level`).
    pub fn two_level_split(&self) -> Option<usize> {
        self.two_level.as_ref().map(|t| t.split())
    }

    /// BPE of a piece whose bytes all have tokens, through the per-thread cache.
    fn encode_known(&self, piece: &[u8], out: &mut Vec<u32>) -> Result<()> {
        self.encode_cached(piece, true, out)
    }

    /// [`BpeModel::encode_known`]; with `may_cut` false (a part of a cut piece, which has
    /// no cut point left) a short piece is merged whole instead of being cut first.
    ///
    /// Pieces of up to [`TINY_MAX`] bytes are mostly a table lookup; other pieces of up to
    /// [`SMALL_CACHE_MAX`] bytes go through the small [`crate::piece_cache`]; longer ones
    /// through the [`PieceCache`], which the pieces that are cut into parts (longer than
    /// [`MERGE_WHOLE_MAX`] bytes; whole lines with SuperBPE's pre-tokenizer) bypass while
    /// they rarely hit ([`PieceCache::skip_long`]).
    #[inline(always)]
    fn encode_cached(&self, piece: &[u8], may_cut: bool, out: &mut Vec<u32>) -> Result<()> {
        if piece.len() <= TINY_MAX && self.merge_tiny(piece, out) {
            return Ok(());
        }
        if piece.len() <= SMALL_CACHE_MAX {
            if crate::piece_cache::get(self.small_owner, piece, out) {
                return Ok(());
            }
            let before = out.len();
            self.merge(piece, out);
            crate::piece_cache::put(self.small_owner, piece, &out[before..]);
            return Ok(());
        }
        if piece.len() > CACHE_MAX_PIECE {
            return self.encode_long(piece, out);
        }
        let h = crate::util::bytes_hash(piece);
        let long = may_cut && piece.len() > MERGE_WHOLE_MAX;
        let found = CACHE.with(|cell| {
            let mut c = cell.borrow_mut();
            c.claim(self.cache_id);
            if long && c.skip_long(h) {
                return None;
            }
            let hit = c.lookup_h(h, piece, out);
            if long {
                c.count_long(hit);
            }
            Some(hit)
        });
        match found {
            Some(true) => return Ok(()),
            None => return self.encode_long(piece, out),
            Some(false) => {}
        }
        let before = out.len();
        let short = match self.two_level {
            Some(_) => TWO_LEVEL_MIN_PIECE,
            None => CUT_MIN_PIECE,
        };
        let whole = if may_cut {
            short.min(MERGE_WHOLE_MAX)
        } else {
            short
        };
        if piece.len() <= whole {
            self.merge(piece, out);
        } else if piece.len() <= short {
            // cut where no token can span: the parts (words, mostly) hit the cache
            self.encode_cut(piece, out)?;
        } else {
            self.encode_long(piece, out)?;
        }
        CACHE.with(|cell| cell.borrow_mut().put(h, piece, &out[before..]));
        Ok(())
    }

    /// BPE of a long piece: in two levels when the merge list has a valid superword split,
    /// else cut where no token can span.
    #[inline]
    fn encode_long(&self, piece: &[u8], out: &mut Vec<u32>) -> Result<()> {
        match &self.two_level {
            Some(t) => t.encode(&self.table, piece, out),
            None => self.encode_cut(piece, out),
        }
    }

    /// Cut `piece` where no token can span and encode the parts (each through the cache
    /// when short, merged from atomic characters); without a cut, merge the piece as a
    /// whole.
    fn encode_cut(&self, piece: &[u8], out: &mut Vec<u32>) -> Result<()> {
        let mut a = 0;
        for p in 1..piece.len() {
            let k = (piece[p - 1] as usize) << 8 | piece[p] as usize;
            if self.inner_pairs[k >> 6] & (1 << (k & 63)) == 0 {
                self.encode_cached(&piece[a..p], false, out)?;
                a = p;
            }
        }
        if a == 0 {
            self.merge(piece, out);
            Ok(())
        } else {
            self.encode_cached(&piece[a..], false, out)
        }
    }

    /// BPE of a piece whose bytes all have tokens (no cache, no cuts): the characters and
    /// byte pairs that provably become one token before their bytes merge with a neighbour
    /// start as that token ([`AtomicChars::at`], [`AtomicPairs::at`]), the rest as single
    /// bytes; then the merge table runs to its fixpoint (linear scan for short sequences,
    /// heap for long ones).
    fn merge(&self, piece: &[u8], out: &mut Vec<u32>) {
        let mut ids = [0u32; LINEAR_MAX];
        let mut n = 0;
        let mut i = 0;
        while i < piece.len() {
            let (len, id) = self.part_at(piece, i);
            if n + 1 == LINEAR_MAX {
                return self.merge_heap(piece, &ids[..n], i, out);
            }
            ids[n] = id;
            n += 1;
            i += len;
        }
        if n >= 2 {
            n = self.table.merge_ids_linear(&mut ids, n);
        }
        out.extend_from_slice(&ids[..n]);
    }

    /// BPE of a piece of one to three bytes when it is a table lookup: one byte is its
    /// token; two bytes are the token of their merge if the list merges them (the only
    /// pair), else their two tokens; three bytes that form an atomic character alone
    /// ([`AtomicChars::at`] with no neighbours) are its token. Returns `false`, having
    /// appended nothing, otherwise.
    #[inline(always)]
    fn merge_tiny(&self, piece: &[u8], out: &mut Vec<u32>) -> bool {
        match *piece {
            [x] => out.push(self.table.byte_id(x)),
            [x, y] => match self.pairs.merged(x, y) {
                Some(id) => out.push(id),
                None => {
                    out.push(self.table.byte_id(x));
                    out.push(self.table.byte_id(y));
                }
            },
            [x, _, _] if x >= 0xe0 => match self.chars.at(piece, 0) {
                Some((3, id)) => out.push(id),
                _ => return false,
            },
            _ => return false,
        }
        true
    }

    /// The first part of `piece[i..]` for [`BpeModel::merge`]: its length and id.
    #[inline(always)]
    fn part_at(&self, piece: &[u8], i: usize) -> (usize, u32) {
        let b = piece[i];
        if b >= 0xc2 {
            if let Some(c) = self.chars.at(piece, i) {
                return c;
            }
        }
        match self.pairs.at(&self.chars, piece, i) {
            Some(id) => (2, id),
            None => (1, self.table.byte_id(b)),
        }
    }

    /// [`BpeModel::merge`] for a piece of `LINEAR_MAX` parts or more: `head` holds the
    /// parts of `piece[..i]`.
    #[cold]
    fn merge_heap(&self, piece: &[u8], head: &[u32], mut i: usize, out: &mut Vec<u32>) {
        let mut ids = head.to_vec();
        while i < piece.len() {
            let (len, id) = self.part_at(piece, i);
            ids.push(id);
            i += len;
        }
        self.table.merge_ids_heap(ids, out);
    }

    fn push_unk(&self, out: &mut Vec<u32>, lens: &mut Vec<u32>, n: u32) -> Result<()> {
        let id = self.unk_id.ok_or_else(|| {
            Error::InvalidVocab(format!(
                "unk_token {:?} is not in the vocabulary",
                self.unk_token.as_deref().unwrap_or("")
            ))
        })?;
        out.push(id);
        lens.push(n);
        Ok(())
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    fn get(c: &mut PieceCache, piece: &[u8]) -> Option<Vec<u32>> {
        let mut out = vec![7];
        c.lookup(piece, &mut out).then(|| out[1..].to_vec())
    }

    #[test]
    fn pieces_in_use_survive_turnovers() {
        let mut c = PieceCache::default();
        c.claim(1);
        c.insert(b"hot", &[1, 2]);
        // Fill several generations; `hot` is used now and then, so it is kept.
        for i in 0..(CACHE_CAPACITY * 3) as u32 {
            c.insert(format!("cold{i}").as_bytes(), &[i]);
            if i % 1000 == 0 {
                assert_eq!(get(&mut c, b"hot"), Some(vec![1, 2]), "{i}");
            }
        }
        assert_eq!(get(&mut c, b"hot"), Some(vec![1, 2]));
        // The oldest unused entries are gone, the newest are there.
        assert_eq!(get(&mut c, b"cold0"), None);
        let last = (CACHE_CAPACITY * 3 - 1) as u32;
        assert_eq!(
            get(&mut c, format!("cold{last}").as_bytes()),
            Some(vec![last])
        );
        assert_eq!(get(&mut c, b"missing"), None);
        // Another owner starts from an empty cache.
        c.claim(2);
        assert_eq!(get(&mut c, b"hot"), None);
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;
    use proptest::prelude::*;

    /// Characters of the random pieces: ASCII, a 2-byte and two 3-byte characters, and a
    /// lone continuation byte (invalid UTF-8 is merged like anything else).
    const ALPHABET: &[&[u8]] = &[
        b"a",
        b"b",
        b" ",
        "é".as_bytes(),
        "東".as_bytes(),
        "京".as_bytes(),
        b"\x9d",
    ];

    /// A byte-level model from a random merge list over the bytes of `ALPHABET`: each pick
    /// merges two existing tokens (indices modulo their number); a concatenation that is
    /// already a token reuses it (one token made by two merges, as HF's trainer does).
    fn model(picks: &[(usize, usize)]) -> BpeModel {
        let mut toks: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        let mut usable: Vec<usize> = Vec::new();
        for c in ALPHABET {
            for &b in c.iter() {
                if !usable.contains(&(b as usize)) {
                    usable.push(b as usize);
                }
            }
        }
        let mut merges = Vec::new();
        for &(x, y) in picks {
            let l = usable[x % usable.len()];
            let r = usable[y % usable.len()];
            let mut cat = toks[l].clone();
            cat.extend_from_slice(&toks[r]);
            if cat.len() > 9 {
                continue;
            }
            if !toks.contains(&cat) {
                toks.push(cat.clone());
                usable.push(toks.len() - 1);
            }
            merges.push((
                bytelevel::encode_str(&toks[l]),
                bytelevel::encode_str(&toks[r]),
            ));
        }
        let entries = toks
            .iter()
            .enumerate()
            .map(|(i, t)| (bytelevel::encode_str(t), i as u32))
            .collect();
        BpeModel::new(entries, merges, BpeOptions::default(), "model").unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// `encode_piece` (cuts, tiny pieces, both caches, atomic characters and pairs, the
        /// long-piece bypass) equals the plain merge of the piece's bytes, on pieces of every
        /// length, each encoded twice (cold, then from the caches).
        #[test]
        fn encode_piece_equals_plain_merge(
            picks in proptest::collection::vec((0usize..64, 0usize..64), 1..80),
            pieces in proptest::collection::vec(
                proptest::collection::vec(0..ALPHABET.len(), 1..120), 1..12),
        ) {
            let m = model(&picks);
            for _ in 0..2 {
                for p in &pieces {
                    let bytes: Vec<u8> = p.iter().flat_map(|&k| ALPHABET[k].iter().copied()).collect();
                    let mut want = vec![];
                    m.merge_table().encode_piece(&bytes, &mut want).unwrap();
                    let mut got = vec![];
                    let mut lens = vec![];
                    m.encode_piece(&bytes, &mut got, Some(&mut lens)).unwrap();
                    prop_assert_eq!(&got, &want, "{:?}", bytes);
                    prop_assert_eq!(lens.iter().sum::<u32>() as usize, bytes.len());
                }
            }
        }
    }

    #[test]
    fn long_pieces_bypass_the_cache_while_they_miss() {
        let mut c = PieceCache::default();
        c.claim(1);
        // a hash outside the always-sampled sixteenth
        let h = 1u64 << 62;
        assert!(!c.skip_long(h));
        for _ in 0..100 {
            c.count_long(false);
        }
        assert!(c.skip_long(h));
        assert!(!c.skip_long(h & (u64::MAX >> 4)));
        for _ in 0..400 {
            c.count_long(true);
        }
        assert!(!c.skip_long(h));
    }
}
