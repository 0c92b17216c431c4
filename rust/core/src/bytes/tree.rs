//! The streaming valid covering tree.
//!
//! State after `n` bytes `x`:
//! * the *trunk*: committed tokens, a prefix of every canonical encoding of every
//!   continuation of `x`;
//! * a tree of token nodes below the trunk (each node = one token string = one LM position);
//! * *streams*: for every pre-token hypothesis of the tail (see [`crate::bytes::lookahead`]),
//!   the node that encodes the complete pieces before the open piece, and the live heads
//!   inside the open piece (the BPE encodings of the open piece's prefixes, maintained with
//!   one pair-validity check per byte and head);
//! * the live *heads*: nodes whose bytes end at `j <= n` and from which some token reaches
//!   or passes `n`.
//!
//! Each push creates at most a few nodes (usually zero or one); those are evaluated with
//! the LM in one batch ([`ByteTree::pending`] / [`ByteTree::set_row`]) before the
//! distribution is read ([`ByteTree::distribution`], [`ByteTree::target_logprob`]).

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::bytes::canon::Canon;
use crate::bytes::index::ByteIndex;
use crate::bytes::lookahead::Lookahead;
use crate::bytes::math::{logaddexp, logsumexp, lse, LogProb, Lse};
use crate::bytes::source::PieceTokenizer;
use crate::error::{Error, Result};

const NONE: u32 = u32::MAX;
/// Key of a stream whose piece root lies inside the committed trunk.
const COMMITTED: u32 = u32::MAX - 1;

/// The node at the end of an inserted path and the nodes at each position on it.
type PathEnds = (u32, Vec<(usize, u32)>);

/// Tokenizer-side analysis shared by all streams of one tokenizer.
#[derive(Debug)]
pub struct ByteTokenizer {
    tok: Arc<dyn PieceTokenizer>,
    index: ByteIndex,
    /// sorted position of each id (`u32::MAX` for ids without bytes)
    rank: Vec<u32>,
    canon: Canon,
    look: Lookahead,
    specials: Vec<u32>,
    eot: Option<u32>,
    n_ids: usize,
    max_len: usize,
}

impl ByteTokenizer {
    /// Analyse a tokenizer (sorts the vocabulary, checks every token's reachability).
    pub fn new(tok: Arc<dyn PieceTokenizer>) -> Result<Self> {
        let vocab = tok.vocab();
        if vocab.is_empty() {
            return Err(Error::InvalidVocab("empty vocabulary".into()));
        }
        let index = ByteIndex::new(vocab);
        let mut rank = vec![u32::MAX; vocab.n_slots()];
        for (i, &id) in index.ids().iter().enumerate() {
            rank[id as usize] = i as u32;
        }
        let canon = Canon::new(vocab, tok.merges());
        let look = Lookahead::new(tok.as_ref())?;
        let specials = tok.special_ids();
        let eot = tok.eot();
        let n_ids = tok.n_ids();
        let max_len = vocab.max_token_len();
        Ok(ByteTokenizer {
            tok,
            index,
            rank,
            canon,
            look,
            specials,
            eot,
            n_ids,
            max_len,
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &dyn PieceTokenizer {
        self.tok.as_ref()
    }
    /// The sorted prefix index.
    pub fn index(&self) -> &ByteIndex {
        &self.index
    }
    /// Pair validity and reachability.
    pub fn canon(&self) -> &Canon {
        &self.canon
    }
    /// The pre-token hypothesis engine.
    pub fn lookahead(&self) -> &Lookahead {
        &self.look
    }
    /// Default end-of-text id.
    pub fn eot(&self) -> Option<u32> {
        self.eot
    }
    /// One past the largest id.
    pub fn n_ids(&self) -> usize {
        self.n_ids
    }
    /// Ids without bytes.
    pub fn special_ids(&self) -> &[u32] {
        &self.specials
    }

    /// Whether `(l, r)` may be adjacent inside one piece.
    pub fn pair_valid(&self, l: u32, r: u32) -> bool {
        self.canon
            .pair_valid(self.tok.vocab(), self.tok.merges(), l, r)
    }
}

/// Which of the 257 outcomes (256 bytes, end of text) keep `text` a prefix of valid UTF-8.
pub fn valid_next(text: &[u8]) -> [bool; 257] {
    // start of the last character (at most 3 continuation bytes back)
    let mut start = text.len();
    while start > 0 && text.len() - start < 4 {
        start -= 1;
        if text[start] & 0xC0 != 0x80 {
            break;
        }
    }
    // the incomplete character at the end, if any
    let tail: &[u8] = match std::str::from_utf8(&text[start..]) {
        Ok(_) => &[],
        Err(e) if e.error_len().is_none() => &text[start + e.valid_up_to()..],
        Err(_) => &text[text.len()..],
    };
    let mut out = [false; 257];
    let mut buf = [0u8; 4];
    buf[..tail.len()].copy_from_slice(tail);
    for b in 0..=255u8 {
        buf[tail.len()] = b;
        out[b as usize] = match std::str::from_utf8(&buf[..tail.len() + 1]) {
            Ok(_) => true,
            Err(e) => e.error_len().is_none(),
        };
    }
    out[256] = tail.is_empty();
    out
}

/// First-byte ranges at least this large are summed in id order (see `set_row_inner`).
const BY_ID_MIN: usize = 2048;

/// What the tree keeps of one node's LM row: only the sums it will need.
#[derive(Clone, Debug, Default)]
struct Summary {
    /// Known-text chain: `chain[k - 1] = (log-sum-exp over the tokens whose bytes start
    /// with the `k` known bytes after the node, the token equal to those bytes (or
    /// [`NONE`]), its log-probability)`; it stops at the first empty range.
    chain: Vec<(f64, u32, f64)>,
    /// Sorted positions `lo..hi` whose row values are kept in `vals` (for questions about
    /// bytes after the known text).
    lo: usize,
    hi: usize,
    vals: Vec<f64>,
    /// Log-sum-exp per first byte (nodes whose next byte is not known).
    first: Option<Box<[f64; 256]>>,
    /// log-probability of the end-of-text token
    eot: f64,
}

impl Summary {
    /// Log-sum-exp over sorted positions `a..b` from the kept values.
    fn range_lse(&self, a: usize, b: usize) -> Result<f64> {
        if a >= b {
            return Ok(f64::NEG_INFINITY);
        }
        if a < self.lo || b > self.hi {
            return Err(Error::InvalidArgument(format!(
                "internal: range {a}..{b} outside the evaluated range {}..{}",
                self.lo, self.hi
            )));
        }
        Ok(lse(&self.vals[a - self.lo..b - self.lo]))
    }

    /// Kept values at sorted positions `a..b`.
    fn kept(&self, a: usize, b: usize) -> Result<&[f64]> {
        if a > b || a < self.lo || b > self.hi {
            return Err(Error::InvalidArgument(format!(
                "internal: range {a}..{b} outside the evaluated range {}..{}",
                self.lo, self.hi
            )));
        }
        Ok(&self.vals[a - self.lo..b - self.lo])
    }
}

#[derive(Clone, Debug)]
struct Node {
    token: u32,
    parent: u32,
    /// absolute byte position where the node's bytes end
    end: usize,
    /// absolute number of tokens from the start of the text
    depth: usize,
    /// log P(path | trunk), valid once evaluated
    cum: f64,
    summary: Option<Arc<Summary>>,
    alive: bool,
    mark: u32,
}

#[derive(Clone, Debug)]
struct Stream {
    /// absolute start of the open piece
    s: usize,
    /// node encoding everything before `s` (or [`COMMITTED`])
    key: u32,
    /// `(end, node)` heads inside the open piece
    heads: Vec<(usize, u32)>,
}

/// Counters for benchmarks and tests.
#[derive(Clone, Debug, Default)]
pub struct TreeStats {
    /// LM positions requested (nodes evaluated).
    pub evaluated: u64,
    /// Bytes pushed.
    pub bytes: u64,
    /// Sum over pushes of the number of live heads.
    pub heads: u64,
    /// Maximum number of live heads.
    pub max_heads: u64,
    /// Hypotheses that contradicted the committed trunk (must stay 0).
    pub inconsistent: u64,
    /// Row entries read (summed or kept) over all evaluated nodes.
    pub values_read: u64,
    /// Nanoseconds spent maintaining the tree ([`ByteTree::push`] and the probability
    /// queries).
    pub tree_ns: u64,
    /// Nanoseconds spent reading LM rows ([`ByteTree::set_row_with`]).
    pub row_ns: u64,
}

/// One stream of bytes and its covering tree.
#[derive(Clone, Debug)]
pub struct ByteTree {
    bt: Arc<ByteTokenizer>,
    text: Vec<u8>,
    /// the whole text when it is known in advance (scoring): node rows are then summarised
    /// over the tokens that start with the byte after the node only
    known: Option<Vec<u8>>,
    /// only per-byte scores of the known text (and its end) will be asked for
    scoring: bool,
    /// prompt mode: nothing is asked inside the known text, so its bytes are pushed without
    /// evaluating nodes, and only the nodes still alive at its end are evaluated
    lazy: bool,
    trunk: Vec<u32>,
    trunk_logp: f64,
    committed_unread: usize,
    root: u32,
    root_pos: usize,
    pre_start: usize,
    pre_node: u32,
    nodes: Vec<Node>,
    child: FxHashMap<(u32, u32), u32>,
    streams: Vec<Stream>,
    heads: Vec<u32>,
    /// log prefix mass of the text relative to the trunk (the outcome mass of the last
    /// pushed byte at the step before it)
    prefix_mass: f64,
    eot_head: u32,
    pending: Vec<u32>,
    /// nodes created since the last evaluation (cumulative log-prob unknown)
    fresh: Vec<u32>,
    /// alive nodes
    live: Vec<u32>,
    /// buffers of dropped node summaries, reused
    pool: Vec<Vec<f64>>,
    gen: u32,
    stats: TreeStats,
    /// time spent in the read-only probability queries
    query_ns: Timer,
}

/// A nanosecond counter that read-only methods can add to.
#[derive(Debug, Default)]
struct Timer(std::sync::atomic::AtomicU64);

impl Timer {
    fn add(&self, since: std::time::Instant) {
        self.0.fetch_add(
            since.elapsed().as_nanos() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Clone for Timer {
    fn clone(&self) -> Self {
        Timer(std::sync::atomic::AtomicU64::new(self.get()))
    }
}

impl ByteTree {
    /// A fresh stream at the start of a text. With `known`, the stream must first be fed
    /// those bytes (in order): rows of nodes that end inside them are then summarised over
    /// the tokens that start with the next known byte only, which makes evaluation cheaper.
    pub fn new(bt: Arc<ByteTokenizer>, known: Option<Vec<u8>>) -> Self {
        let root = Node {
            token: NONE,
            parent: NONE,
            end: 0,
            depth: 0,
            cum: 0.0,
            summary: None,
            alive: true,
            mark: 0,
        };
        ByteTree {
            bt,
            text: Vec::new(),
            known,
            scoring: false,
            lazy: false,
            trunk: Vec::new(),
            trunk_logp: 0.0,
            committed_unread: 0,
            root: 0,
            root_pos: 0,
            pre_start: 0,
            pre_node: 0,
            nodes: vec![root],
            child: FxHashMap::default(),
            streams: vec![Stream {
                s: 0,
                key: 0,
                heads: vec![(0, 0)],
            }],
            heads: vec![0],
            prefix_mass: 0.0,
            eot_head: 0,
            pending: vec![0],
            fresh: Vec::new(),
            live: vec![0],
            pool: Vec::new(),
            gen: 0,
            stats: TreeStats::default(),
            query_ns: Timer::default(),
        }
    }

    /// A stream that scores a known text byte by byte: only
    /// [`target_logprob`](Self::target_logprob) of the known bytes and of the end of the
    /// text can be asked, which lets each row be reduced to a few sums when it arrives
    /// (nothing is kept for bytes after the text).
    pub fn scoring(bt: Arc<ByteTokenizer>, text: Vec<u8>) -> Self {
        let mut t = Self::new(bt, Some(text));
        t.scoring = true;
        t
    }

    /// A stream that starts with a known prompt and is only asked about what follows it
    /// (next-byte distributions, sampling, scoring of later bytes). The prompt's bytes can be
    /// pushed without evaluating [`pending`](Self::pending) nodes in between: nodes that die
    /// before the end of the prompt are never evaluated, and the rows of the others are only
    /// read where the prompt's end needs them. Evaluate the pending nodes once the whole
    /// prompt is pushed.
    pub fn prompt(bt: Arc<ByteTokenizer>, prompt: Vec<u8>) -> Self {
        let mut t = Self::new(bt, Some(prompt));
        t.lazy = true;
        t
    }

    /// Whether this stream was made by [`scoring`](Self::scoring).
    pub fn is_scoring(&self) -> bool {
        self.scoring
    }

    /// The shared tokenizer analysis.
    pub fn byte_tokenizer(&self) -> &Arc<ByteTokenizer> {
        &self.bt
    }

    /// Bytes pushed so far.
    pub fn text(&self) -> &[u8] {
        &self.text
    }

    /// Committed tokens.
    pub fn trunk(&self) -> &[u32] {
        &self.trunk
    }

    /// log P(trunk) under the model (sum of the committed tokens' log-probabilities).
    pub fn trunk_logprob(&self) -> f64 {
        self.trunk_logp
    }

    /// Counters (the tree time includes the probability queries).
    pub fn stats(&self) -> TreeStats {
        let mut s = self.stats.clone();
        s.tree_ns += self.query_ns.get();
        s
    }

    /// Nodes waiting for an LM row, in creation order (parents first).
    pub fn pending(&self) -> &[u32] {
        &self.pending
    }

    /// The pending nodes as one token tree below the trunk, for a single batched LM call:
    /// `(tokens, parents, rows)`. Tree node `k` is token `tokens[k]` after tree node
    /// `parents[k]` (`-1`: directly after the trunk); parents come first. Pending node
    /// `pending()[i]` is tree node `rows[i]` (`-1`: the trunk itself). The tree holds the
    /// pending nodes and their ancestors below the trunk, each once.
    pub fn pending_tree(&self) -> (Vec<u32>, Vec<i64>, Vec<i64>) {
        let mut at: FxHashMap<u32, i64> = FxHashMap::default();
        at.insert(self.root, -1);
        let mut tokens = Vec::new();
        let mut parents = Vec::new();
        let mut rows = Vec::with_capacity(self.pending.len());
        let mut chain: Vec<u32> = Vec::new();
        for &p in &self.pending {
            // climb to the first ancestor already in the tree (the root at the latest)
            chain.clear();
            let mut n = p;
            while n != NONE && !at.contains_key(&n) {
                chain.push(n);
                n = self.nodes[n as usize].parent;
            }
            let mut parent = at.get(&n).copied().unwrap_or(-1);
            for &c in chain.iter().rev() {
                let k = tokens.len() as i64;
                tokens.push(self.nodes[c as usize].token);
                parents.push(parent);
                at.insert(c, k);
                parent = k;
            }
            rows.push(at.get(&p).copied().unwrap_or(-1));
        }
        (tokens, parents, rows)
    }

    /// Whether this stream was made by [`prompt`](Self::prompt) and is still inside its
    /// prompt (its pending nodes may wait until the end of the prompt).
    pub fn in_prompt(&self) -> bool {
        self.lazy
            && self
                .known
                .as_ref()
                .is_some_and(|k| k.len() > self.text.len())
    }

    /// Token path of a node below the trunk (root excluded).
    pub fn path(&self, node: u32) -> Vec<u32> {
        let mut v = Vec::new();
        let mut n = node;
        while n != self.root && n != NONE {
            v.push(self.nodes[n as usize].token);
            n = self.nodes[n as usize].parent;
        }
        v.reverse();
        v
    }

    /// Number of tokens before the node's next-token prediction (its LM position).
    pub fn depth(&self, node: u32) -> usize {
        self.nodes[node as usize].depth
    }

    /// Token and parent of a node (`u32::MAX` for the root's parent).
    pub fn token_parent(&self, node: u32) -> (u32, u32) {
        let n = &self.nodes[node as usize];
        (n.token, n.parent)
    }

    /// Live heads (distinct nodes).
    pub fn heads(&self) -> &[u32] {
        &self.heads
    }

    /// Byte position where a node's bytes end.
    pub fn node_end(&self, node: u32) -> usize {
        self.nodes[node as usize].end
    }

    /// The head equal to the canonical encoding of the whole text so far (if the text can
    /// end here).
    pub fn complete_head(&self) -> Option<u32> {
        (self.eot_head != NONE).then_some(self.eot_head)
    }

    /// Tokens committed since the last call.
    pub fn take_committed(&mut self) -> Vec<u32> {
        let v = self.trunk[self.trunk.len() - self.committed_unread..].to_vec();
        self.committed_unread = 0;
        v
    }

    /// Give the LM row (natural-log next-token probabilities, any length) of a pending
    /// node. `eot` overrides the tokenizer's end-of-text id.
    pub fn set_row(&mut self, node: u32, row: &[f64], eot: Option<u32>) -> Result<()> {
        self.set_row_with(node, row, eot)
    }

    /// [`set_row`](Self::set_row) for `f32` or `f64` rows. Only the entries the tree needs
    /// are read: inside a known text, the tokens that start with the known byte after the
    /// node (summed once per depth, innermost range first, so each entry is read once);
    /// otherwise the whole row, summed per first byte and kept for later bytes. Entries past
    /// the end of the row count as probability zero.
    pub fn set_row_with<T: LogProb>(
        &mut self,
        node: u32,
        row: &[T],
        eot: Option<u32>,
    ) -> Result<()> {
        let t0 = std::time::Instant::now();
        let r = self.set_row_inner(node, row, eot);
        self.stats.row_ns += t0.elapsed().as_nanos() as u64;
        r
    }

    fn set_row_inner<T: LogProb>(&mut self, node: u32, row: &[T], eot: Option<u32>) -> Result<()> {
        let Some(pos) = self.pending.iter().position(|&p| p == node) else {
            return Err(Error::InvalidArgument(format!(
                "node {node} is not waiting for a row"
            )));
        };
        let bad =
            || Error::InvalidArgument("the model returned NaN or +inf log-probabilities".into());
        let eot_id = eot.or(self.bt.eot);
        let eot_lp = match eot_id.and_then(|i| row.get(i as usize)) {
            Some(v) => v.to_f64(),
            None => f64::NEG_INFINITY,
        };
        if eot_lp.is_nan() || eot_lp == f64::INFINITY {
            return Err(bad());
        }
        let j = self.nodes[node as usize].end;
        let known: &[u8] = self.known.as_deref().unwrap_or(&[]);
        let idx = &self.bt.index;
        let ids = idx.ids();
        let mut sm = Summary {
            eot: eot_lp,
            ..Default::default()
        };
        let mut read = 0usize;
        if j < known.len() {
            // nested ranges R_1 ⊇ R_2 ⊇ … of the tokens starting with known[j..j + k]
            let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(8);
            let (mut lo, mut hi) = idx.first_byte_range(known[j]);
            let mut k = 1;
            while lo < hi {
                ranges.push((lo, hi));
                if j + k >= known.len() {
                    break;
                }
                (lo, hi) = idx.narrow(lo, hi, k, known[j + k]);
                k += 1;
            }
            // a node whose ranges reach the end of the known text may be asked about the
            // bytes after it: keep the values of the innermost range
            let keep = !self.scoring && !ranges.is_empty() && j + ranges.len() == known.len();
            sm.chain = vec![(f64::NEG_INFINITY, NONE, f64::NEG_INFINITY); ranges.len()];
            if self.lazy {
                // prompt mode: nothing is asked inside the prompt; only the values of the
                // child tokens (the exact tokens of the chain) and the innermost range
                for (k, &(lo, _)) in ranges.iter().enumerate() {
                    if idx.at(lo).len() == k + 1 {
                        let id = ids[lo];
                        let v = row
                            .get(id as usize)
                            .map_or(f64::NEG_INFINITY, |v| v.to_f64());
                        if v.is_nan() || v == f64::INFINITY {
                            return Err(bad());
                        }
                        sm.chain[k] = (f64::NAN, id, v);
                        read += 1;
                    }
                }
                if keep {
                    let (lo, hi) = ranges[ranges.len() - 1];
                    let mut vals = self.pool.pop().unwrap_or_default();
                    vals.clear();
                    vals.resize(hi - lo, 0.0);
                    crate::bytes::math::gather(row, &ids[lo..hi], &mut vals);
                    let mut acc = Lse::new();
                    acc.add(&vals);
                    if acc.bad() {
                        return Err(bad());
                    }
                    read += hi - lo;
                    sm.lo = lo;
                    sm.hi = hi;
                    sm.vals = vals;
                }
                ranges.clear();
            }
            let mut acc = Lse::new();
            for k in (0..ranges.len()).rev() {
                let (lo, hi) = ranges[k];
                if k + 1 == ranges.len() {
                    if keep {
                        let mut vals = self.pool.pop().unwrap_or_default();
                        vals.clear();
                        vals.resize(hi - lo, 0.0);
                        crate::bytes::math::gather(row, &ids[lo..hi], &mut vals);
                        acc.add(&vals);
                        sm.lo = lo;
                        sm.hi = hi;
                        sm.vals = vals;
                    } else {
                        acc.add_gather(row, &ids[lo..hi]);
                    }
                    read += hi - lo;
                } else if k == 0 && hi - lo >= BY_ID_MIN {
                    // a large first-byte range (e.g. all tokens starting with a space): sum it
                    // whole in id order (row memory order, much friendlier to the caches than
                    // the byte order when the row does not fit in them); its inner range is
                    // read a second time
                    let mut all = Lse::new();
                    all.add_gather(row, idx.first_byte_ids_by_id(known[j]));
                    acc = all;
                    read += hi - lo;
                } else {
                    let (ilo, ihi) = ranges[k + 1];
                    acc.add_gather(row, &ids[lo..ilo]);
                    acc.add_gather(row, &ids[ihi..hi]);
                    read += (ilo - lo) + (hi - ihi);
                }
                if acc.bad() {
                    return Err(bad());
                }
                // the token equal to known[j..j + k + 1] sorts first in its range
                let (exact, lp) = if idx.at(lo).len() == k + 1 {
                    let id = ids[lo];
                    let v = row
                        .get(id as usize)
                        .map_or(f64::NEG_INFINITY, |v| v.to_f64());
                    (id, v)
                } else {
                    (NONE, f64::NEG_INFINITY)
                };
                sm.chain[k] = (acc.value(), exact, lp);
            }
        } else if !self.scoring {
            // the next byte is unknown: keep the whole row in sorted order, sum per first byte
            let mut vals = self.pool.pop().unwrap_or_default();
            vals.clear();
            vals.resize(ids.len(), 0.0);
            crate::bytes::math::gather(row, ids, &mut vals);
            let mut first = Box::new([f64::NEG_INFINITY; 256]);
            for (b, f) in first.iter_mut().enumerate() {
                let (lo, hi) = idx.first_byte_range(b as u8);
                if lo < hi {
                    let mut acc = Lse::new();
                    acc.add(&vals[lo..hi]);
                    if acc.bad() {
                        return Err(bad());
                    }
                    *f = acc.value();
                }
            }
            read += ids.len();
            sm.lo = 0;
            sm.hi = ids.len();
            sm.vals = vals;
            sm.first = Some(first);
        }
        self.stats.values_read += read as u64;
        self.stats.evaluated += 1;
        self.nodes[node as usize].summary = Some(Arc::new(sm));
        self.pending.remove(pos);
        // children created before this row arrived get their cumulative log-probability
        // when every pending node is done
        if self.pending.is_empty() {
            self.finish_eval()?;
        }
        Ok(())
    }

    /// log P(token | path of `parent`) for a child token of the node.
    fn token_lp(&self, parent: u32, token: u32) -> Result<f64> {
        let p = &self.nodes[parent as usize];
        let sm = p.summary.as_ref().ok_or_else(|| {
            Error::InvalidArgument("internal: parent evaluated after child".into())
        })?;
        let len = self.bt.tok.vocab().bytes(token).map_or(0, |b| b.len());
        if len >= 1 && len <= sm.chain.len() && sm.chain[len - 1].1 == token {
            return Ok(sm.chain[len - 1].2);
        }
        let r = self
            .bt
            .rank
            .get(token as usize)
            .copied()
            .unwrap_or(u32::MAX) as usize;
        Ok(sm.kept(r, r + 1)?[0])
    }

    /// Called when all pending nodes have rows: fill in cumulative log-probs (creation order
    /// is topological) and commit the trunk.
    fn finish_eval(&mut self) -> Result<()> {
        let order = std::mem::take(&mut self.fresh);
        for n in order {
            if !self.nodes[n as usize].alive {
                continue;
            }
            let parent = self.nodes[n as usize].parent;
            let token = self.nodes[n as usize].token;
            let lp = self.token_lp(parent, token)?;
            let c = self.nodes[parent as usize].cum + lp;
            self.nodes[n as usize].cum = c;
        }
        self.settle()
    }

    /// With every pending node evaluated: commit the trunk and, at the end of a prompt,
    /// compute the prefix mass (the sum over the covers of the text).
    fn settle(&mut self) -> Result<()> {
        self.commit();
        let at_end = self
            .known
            .as_ref()
            .is_none_or(|k| k.len() <= self.text.len());
        if self.prefix_mass.is_nan() && at_end {
            self.prefix_mass = self.cover_mass()?;
        }
        Ok(())
    }

    /// Log mass (relative to the trunk) of all covers of the text.
    fn cover_mass(&self) -> Result<f64> {
        let n = self.text.len();
        if n == 0 {
            return Ok(0.0);
        }
        let idx = &self.bt.index;
        let mut m = f64::NEG_INFINITY;
        for &h in &self.heads {
            let nd = &self.nodes[h as usize];
            if nd.end < n {
                let (lo, hi) = idx.prefix_range(&self.text[nd.end..n], false);
                m = logaddexp(m, nd.cum + self.summary(h)?.range_lse(lo, hi)?);
            }
        }
        Ok(m)
    }

    fn node(&mut self, parent: u32, token: u32, end: usize) -> u32 {
        if let Some(&c) = self.child.get(&(parent, token)) {
            return c;
        }
        let id = self.nodes.len() as u32;
        let depth = self.nodes[parent as usize].depth + 1;
        self.nodes.push(Node {
            token,
            parent,
            end,
            depth,
            cum: f64::NAN,
            summary: None,
            alive: true,
            mark: 0,
        });
        self.child.insert((parent, token), id);
        self.pending.push(id);
        self.fresh.push(id);
        self.live.push(id);
        id
    }

    /// Insert the path of complete pieces `start..b1, b1..b2, …, bk..s` below the node at
    /// `start`; returns the node at `s` (or [`COMMITTED`]) and the nodes at each bound.
    fn insert_path(
        &mut self,
        start: usize,
        start_node: u32,
        bounds: &[usize],
        s: usize,
    ) -> Result<Option<PathEnds>> {
        let tok = self.bt.tok.clone();
        let mut toks: Vec<(u32, usize)> = Vec::new();
        let mut a = start;
        let mut buf = Vec::new();
        for &b in bounds.iter().chain(std::iter::once(&s)) {
            if b == a {
                continue;
            }
            buf.clear();
            tok.encode_piece(&self.text[a..b], &mut buf)?;
            let mut e = a;
            for &t in &buf {
                e += tok.vocab().bytes(t).map_or(0, |x| x.len());
                toks.push((t, e));
            }
            if e != b {
                return Err(Error::InvalidArgument(
                    "internal: piece encoding does not cover the piece".into(),
                ));
            }
            a = b;
        }
        let mut at = Vec::new();
        let (mut cur, mut pos) = if start_node == COMMITTED || start < self.root_pos {
            // skip committed tokens
            let mut pos = start;
            let mut k = 0;
            while k < toks.len() && toks[k].1 <= self.root_pos {
                pos = toks[k].1;
                k += 1;
            }
            if s < self.root_pos {
                return Ok(Some((COMMITTED, at)));
            }
            if pos != self.root_pos {
                self.stats.inconsistent += 1;
                return Ok(None);
            }
            toks.drain(..k);
            (self.root, pos)
        } else {
            (start_node, start)
        };
        at.push((pos, cur));
        for (t, e) in toks {
            cur = self.node(cur, t, e);
            pos = e;
            at.push((pos, cur));
        }
        debug_assert_eq!(pos, s);
        Ok(Some((cur, at)))
    }

    /// Advance stream `si` to `n` bytes: drop heads no token can extend over the new byte
    /// and add the (at most one) new head that ends at `n`. With `next` (the byte after
    /// `n`, when known), a new head is only created if some token starting with it may
    /// follow inside the piece.
    fn extend_stream(&mut self, si: usize, n: usize, next: Option<u8>) {
        let bt = self.bt.clone();
        let vocab = bt.tok.vocab();
        let mut new_heads: Vec<(usize, u32)> = Vec::new();
        let s = self.streams[si].s;
        let heads = std::mem::take(&mut self.streams[si].heads);
        {
            for &(j, node) in &heads {
                if n - j > bt.max_len {
                    continue;
                }
                if let Some(t) = vocab.get(&self.text[j..n]) {
                    let ok = if j == s {
                        bt.canon.reachable(t)
                    } else {
                        let l = self.nodes[node as usize].token;
                        bt.pair_valid(l, t)
                    };
                    let useful = match next {
                        Some(b) => bt
                            .canon
                            .exists_valid_successor(vocab, bt.tok.merges(), t, &[b]),
                        None => true,
                    };
                    if ok && useful {
                        let c = self.node(node, t, n);
                        if !new_heads.iter().any(|h| h.1 == c) {
                            new_heads.push((n, c));
                        }
                    }
                }
            }
        }
        let mut kept: Vec<(usize, u32)> = heads
            .into_iter()
            .filter(|&(j, _)| {
                n - j <= bt.max_len && {
                    let (lo, hi) = bt.index.prefix_range(&self.text[j..n], false);
                    lo < hi
                }
            })
            .collect();
        kept.extend(new_heads);
        self.streams[si].heads = kept;
    }

    /// Keep only the heads of stream `si` from which a cover of the text extended by the
    /// known next byte `b` can pass (a token starting with the rest of the text and `b`,
    /// valid after the head inside the piece).
    fn prune_stream(&mut self, si: usize, n: usize, b: u8, check_full: bool) {
        let bt = self.bt.clone();
        let vocab = bt.tok.vocab();
        let s = self.streams[si].s;
        let heads = std::mem::take(&mut self.streams[si].heads);
        let mut p: Vec<u8> = Vec::new();
        let kept = heads
            .into_iter()
            .filter(|&(j, node)| {
                p.clear();
                p.extend_from_slice(&self.text[j..n]);
                p.push(b);
                if p.len() > bt.max_len {
                    return false;
                }
                let (lo, hi) = bt.index.prefix_range(&p, false);
                if lo == hi {
                    return false;
                }
                if j == s || (j == n && !check_full) {
                    // piece roots are unconstrained; full heads of a known text were checked
                    // when they were created
                    return true;
                }
                let l = self.nodes[node as usize].token;
                bt.canon
                    .exists_valid_successor(vocab, bt.tok.merges(), l, &p)
            })
            .collect();
        self.streams[si].heads = kept;
    }

    /// Append one byte. Afterwards, evaluate [`pending`](Self::pending) nodes. On error
    /// the stream is unchanged (no node is left pending).
    pub fn push(&mut self, b: u8) -> Result<()> {
        let t0 = std::time::Instant::now();
        let r = self.push_inner(b);
        self.stats.tree_ns += t0.elapsed().as_nanos() as u64;
        r
    }

    fn push_inner(&mut self, b: u8) -> Result<()> {
        let n = self.text.len();
        let in_prompt = self.in_prompt();
        if !self.pending.is_empty() && !in_prompt {
            return Err(Error::InvalidArgument(
                "evaluate the pending tree nodes before pushing more bytes".into(),
            ));
        }
        match self.known.as_ref().and_then(|k| k.get(n)) {
            Some(&kb) if kb != b => {
                return Err(Error::InvalidArgument(
                    "this stream was created for a known prefix; push its bytes in order first"
                        .into(),
                ));
            }
            None if self.scoring => {
                return Err(Error::InvalidArgument(
                    "this stream scores a known text: it cannot be extended past its end".into(),
                ));
            }
            _ => {}
        }
        let saved_streams = self.streams.clone();
        let saved_heads = self.heads.clone();
        let known_here = self.known.as_ref().is_some_and(|k| k.len() > n);
        if !known_here {
            // the heads a known text would have kept: those from which a cover of the text
            // and `b` can pass (full heads included, as they were not checked at creation)
            for si in 0..self.streams.len() {
                self.prune_stream(si, n, b, true);
            }
            self.collect_heads();
        }
        let mass = if in_prompt {
            // computed from the heads once the prompt's nodes are evaluated
            f64::NAN
        } else {
            match self.outcome_mass(Some(b)) {
                Ok(m) => m,
                Err(e) => {
                    self.streams = saved_streams;
                    self.heads = saved_heads;
                    return Err(e);
                }
            }
        };
        let saved = std::mem::replace(&mut self.prefix_mass, mass);
        let mark = self.nodes.len();
        let inconsistent = self.stats.inconsistent;
        self.text.push(b);
        let r = self.advance();
        if r.is_err() {
            self.text.pop();
            self.prefix_mass = saved;
            self.streams = saved_streams;
            self.heads = saved_heads;
            self.stats.inconsistent = inconsistent;
            self.drop_nodes_from(mark);
        }
        r
    }

    /// Forget the nodes created since `nodes.len()` was `mark` (a failed push creates them
    /// before any garbage collection or compaction can renumber nodes).
    fn drop_nodes_from(&mut self, mark: usize) {
        let m = mark as u32;
        for i in mark..self.nodes.len() {
            let nd = &self.nodes[i];
            if nd.parent != NONE && self.child.get(&(nd.parent, nd.token)) == Some(&(i as u32)) {
                self.child.remove(&(nd.parent, nd.token));
            }
        }
        self.nodes.truncate(mark);
        self.pending.retain(|&p| p < m);
        self.fresh.retain(|&p| p < m);
        self.live.retain(|&p| p < m);
    }

    fn char_offsets(base: usize, tail: &[u8]) -> Vec<usize> {
        let mut offs: Vec<usize> = Vec::with_capacity(tail.len() + 1);
        let mut i = 0;
        while i < tail.len() {
            offs.push(base + i);
            i += crate::util::utf8_len(tail[i]).max(1);
        }
        if i == tail.len() {
            offs.push(base + tail.len());
        }
        offs
    }

    fn advance(&mut self) -> Result<()> {
        let n = self.text.len();
        let bt = self.bt.clone();
        let next = self.known.as_ref().and_then(|k| k.get(n).copied());
        let tail = &self.text[self.pre_start..n];
        let hyps = bt.look.hypotheses(bt.tok.as_ref(), tail)?;
        if hyps.hyps.is_empty() {
            return Err(Error::InvalidArgument(
                "this text cannot be produced by the tokenizer (its pre-tokenizer drops part of it)"
                    .into(),
            ));
        }
        let offs = Self::char_offsets(self.pre_start, tail);
        // configurations that the known next byte keeps possible
        let consistent: Option<Vec<(Vec<usize>, usize)>> = match next {
            None => None,
            Some(b) => {
                // boundaries before the certain one never move: probe from there
                let base = offs[hyps.certain as usize];
                let mut ext = self.text[base..n].to_vec();
                ext.push(b);
                match bt.look.hypotheses(bt.tok.as_ref(), &ext) {
                    Ok(nh) => {
                        let offs2 = Self::char_offsets(base, &ext);
                        let mut v = Vec::new();
                        for h in &nh.hyps {
                            let open2 = offs2[h.open as usize];
                            let mut starts: Vec<usize> =
                                h.bounds.iter().map(|&c| offs2[c as usize]).collect();
                            starts.push(open2);
                            let open_r = starts
                                .iter()
                                .copied()
                                .filter(|&p| p <= n)
                                .max()
                                .unwrap_or(base);
                            let bounds_r: Vec<usize> = starts
                                .iter()
                                .copied()
                                .filter(|&p| p > base && p < open_r)
                                .collect();
                            v.push((bounds_r, open_r));
                        }
                        Some(v)
                    }
                    // the next byte cannot continue the text: nothing is consistent with it
                    Err(_) => Some(Vec::new()),
                }
            }
        };
        let old_streams = std::mem::take(&mut self.streams);
        let mut old: Vec<Option<Stream>> = old_streams.into_iter().map(Some).collect();
        let mut new_streams: Vec<Stream> = Vec::new();
        let mut eot_head = NONE;
        let mut certain_node: Option<u32> = None;
        let certain_abs = offs[hyps.certain as usize];
        for h in &hyps.hyps {
            let s_abs = offs[h.open as usize];
            let bounds: Vec<usize> = h.bounds.iter().map(|&c| offs[c as usize]).collect();
            let certain_at = offs[hyps.certain as usize];
            let ok = match consistent.as_ref() {
                None => true,
                Some(v) => {
                    let late: Vec<usize> =
                        bounds.iter().copied().filter(|&p| p > certain_at).collect();
                    v.iter().any(|(bb, o)| *o == s_abs && *bb == late)
                }
            };
            if !ok {
                continue;
            }
            let Some((key, at)) =
                self.insert_path(self.pre_start, self.pre_node, &bounds, s_abs)?
            else {
                continue;
            };
            if certain_node.is_none() {
                if let Some(&(_, nd)) = at.iter().find(|(p, _)| *p == certain_abs) {
                    certain_node = Some(nd);
                }
            }
            if next.is_none() && h.eot && s_abs == n && key != COMMITTED {
                eot_head = key;
            }
            if new_streams.iter().any(|st| st.key == key && st.s == s_abs) {
                continue;
            }
            let found = old
                .iter_mut()
                .find(|o| o.as_ref().is_some_and(|st| st.key == key && st.s == s_abs))
                .and_then(|o| o.take());
            match found {
                Some(st) => {
                    new_streams.push(st);
                    let si = new_streams.len() - 1;
                    self.streams = std::mem::take(&mut new_streams);
                    self.extend_stream(si, n, next);
                    new_streams = std::mem::take(&mut self.streams);
                }
                None => {
                    if key == COMMITTED {
                        self.stats.inconsistent += 1;
                        continue;
                    }
                    new_streams.push(Stream {
                        s: s_abs,
                        key,
                        heads: vec![(s_abs, key)],
                    });
                    let si = new_streams.len() - 1;
                    self.streams = std::mem::take(&mut new_streams);
                    for p in s_abs + 1..=n {
                        let nb = if p < n { Some(self.text[p]) } else { next };
                        self.extend_stream(si, p, nb);
                        if let Some(b) = nb {
                            if p < n {
                                self.prune_stream(si, p, b, false);
                            }
                        }
                    }
                    new_streams = std::mem::take(&mut self.streams);
                }
            }
        }
        self.streams = new_streams;
        if let Some(b) = next {
            for si in 0..self.streams.len() {
                self.prune_stream(si, n, b, false);
            }
        }
        self.streams.retain(|st| !st.heads.is_empty());
        self.eot_head = eot_head;
        if certain_abs > self.pre_start {
            if let Some(nd) = certain_node {
                self.pre_start = certain_abs;
                self.pre_node = nd;
            } else if certain_abs <= self.root_pos {
                self.pre_start = certain_abs;
                self.pre_node = COMMITTED;
            }
        }
        self.collect_heads();
        self.stats.bytes += 1;
        self.stats.heads += self.heads.len() as u64;
        self.stats.max_heads = self.stats.max_heads.max(self.heads.len() as u64);
        self.gc();
        if self.pending.is_empty() {
            self.settle()?;
        }
        Ok(())
    }

    fn collect_heads(&mut self) {
        let mut heads: Vec<u32> = Vec::new();
        for st in &self.streams {
            for &(_, nd) in &st.heads {
                if nd != COMMITTED && !heads.contains(&nd) {
                    heads.push(nd);
                }
            }
        }
        self.heads = heads;
    }

    /// Drop nodes that are neither ancestors of live heads nor stream keys.
    fn gc(&mut self) {
        self.gen = self.gen.wrapping_add(1);
        let gen = self.gen;
        let mut stack: Vec<u32> = self.heads.clone();
        for st in &self.streams {
            if st.key != COMMITTED {
                stack.push(st.key);
            }
        }
        if self.pre_node != COMMITTED {
            stack.push(self.pre_node);
        }
        stack.push(self.root);
        for mut n in stack {
            while n != NONE && self.nodes[n as usize].mark != gen {
                self.nodes[n as usize].mark = gen;
                if n == self.root {
                    break;
                }
                n = self.nodes[n as usize].parent;
            }
        }
        let live = std::mem::take(&mut self.live);
        let mut keep = Vec::with_capacity(live.len());
        for i in live {
            let nd = &mut self.nodes[i as usize];
            if nd.alive && nd.mark == gen {
                keep.push(i);
            } else if nd.alive {
                nd.alive = false;
                if let Some(st) = nd.summary.take().and_then(|a| Arc::try_unwrap(a).ok()) {
                    if self.pool.len() < 8 && st.vals.capacity() > 0 {
                        self.pool.push(st.vals);
                    }
                }
                if nd.parent != NONE {
                    let key = (nd.parent, nd.token);
                    self.child.remove(&key);
                }
            }
        }
        self.live = keep;
        let nodes = &self.nodes;
        self.pending.retain(|&p| nodes[p as usize].alive);
        if self.nodes.len() > 4096 && self.nodes.len() > 4 * self.live.len() {
            self.compact();
        }
    }

    /// Renumber alive nodes densely (dead nodes never come back).
    fn compact(&mut self) {
        let mut map = vec![NONE; self.nodes.len()];
        let mut live = self.live.clone();
        live.sort_unstable();
        let mut nodes = Vec::with_capacity(live.len());
        for (k, &i) in live.iter().enumerate() {
            map[i as usize] = k as u32;
            nodes.push(self.nodes[i as usize].clone());
        }
        let m = |x: u32| -> u32 {
            if x == NONE || x == COMMITTED {
                x
            } else {
                map[x as usize]
            }
        };
        for nd in nodes.iter_mut() {
            nd.parent = m(nd.parent);
        }
        self.child = nodes
            .iter()
            .enumerate()
            .filter(|(_, nd)| nd.parent != NONE)
            .map(|(k, nd)| ((nd.parent, nd.token), k as u32))
            .collect();
        self.nodes = nodes;
        self.root = m(self.root);
        self.pre_node = m(self.pre_node);
        self.eot_head = m(self.eot_head);
        for h in self.heads.iter_mut() {
            *h = m(*h);
        }

        for p in self.pending.iter_mut() {
            *p = m(*p);
        }
        self.fresh = self
            .fresh
            .iter()
            .map(|&x| m(x))
            .filter(|&x| x != NONE)
            .collect();
        for st in self.streams.iter_mut() {
            st.key = m(st.key);
            for h in st.heads.iter_mut() {
                h.1 = m(h.1);
            }
        }
        self.live = (0..self.nodes.len() as u32).collect();
    }

    /// Move the root down to the deepest common ancestor of all live heads and stream
    /// keys.
    fn commit(&mut self) {
        if self.heads.is_empty() {
            return;
        }
        let path_to = |tree: &ByteTree, n: u32| -> Vec<u32> {
            let mut v = Vec::new();
            let mut c = n;
            while c != tree.root && c != NONE {
                v.push(c);
                c = tree.nodes[c as usize].parent;
            }
            v.reverse();
            v
        };
        let first = path_to(self, self.heads[0]);
        let mut common = first.len();
        let others: Vec<u32> = self.heads[1..].to_vec();
        for &h in &others {
            let p = path_to(self, h);
            let c = first
                .iter()
                .zip(p.iter())
                .take_while(|(a, b)| a == b)
                .count();
            common = common.min(c);
            if common == 0 {
                return;
            }
        }
        if common == 0 {
            return;
        }
        let new_root = first[common - 1];
        for &nd in &first[..common] {
            let n = &self.nodes[nd as usize];
            let parent_cum = self.nodes[n.parent as usize].cum;
            self.trunk.push(n.token);
            self.trunk_logp += n.cum - parent_cum;
            self.committed_unread += 1;
        }
        let shift = self.nodes[new_root as usize].cum;
        let shift = if shift.is_finite() { shift } else { 0.0 };
        let old_root = self.root;
        self.root = new_root;
        self.root_pos = self.nodes[new_root as usize].end;
        // nodes above the new root are committed
        let mut c = self.nodes[new_root as usize].parent;
        while c != NONE {
            let nd = &mut self.nodes[c as usize];
            nd.alive = false;
            nd.summary = None;
            let (p, t) = (nd.parent, nd.token);
            if p != NONE {
                self.child.remove(&(p, t));
            }
            if c == old_root {
                break;
            }
            c = p;
        }
        self.nodes[new_root as usize].parent = NONE;
        if self.pre_node != COMMITTED && !self.nodes[self.pre_node as usize].alive {
            self.pre_node = COMMITTED;
        }
        for st in &mut self.streams {
            if st.key != COMMITTED && !self.nodes[st.key as usize].alive {
                st.key = COMMITTED;
            }
        }
        for &i in &self.live {
            let nd = &mut self.nodes[i as usize];
            if nd.alive && !nd.cum.is_nan() {
                nd.cum -= shift;
            }
        }
        self.prefix_mass -= shift;
    }

    /// The 257-way next-byte distribution (natural logs; index 256 = end of text),
    /// normalised. Requires every pending node to be evaluated and, for streams created for a
    /// known text, is only available at the end of the text.
    pub fn distribution(&self) -> Result<Vec<f64>> {
        let (z, m) = self.masses()?;
        let mut out = m;
        if z.is_finite() {
            for x in out.iter_mut() {
                *x -= z;
            }
        }
        Ok(out)
    }

    /// Unnormalised log-masses of the 257 outcomes relative to the trunk, and their total.
    pub fn masses(&self) -> Result<(f64, Vec<f64>)> {
        let t0 = std::time::Instant::now();
        let r = self.masses_inner();
        self.query_ns.add(t0);
        r
    }

    fn masses_inner(&self) -> Result<(f64, Vec<f64>)> {
        self.ready()?;
        if self.scoring {
            return Err(Error::InvalidArgument(
                "this stream only scores its known text: create it without `scoring` for full distributions"
                    .into(),
            ));
        }
        if self
            .known
            .as_ref()
            .is_some_and(|k| k.len() > self.text.len())
        {
            return Err(Error::InvalidArgument(
                "the full next-byte distribution is only available after the known prefix".into(),
            ));
        }
        let n = self.text.len();
        let idx = &self.bt.index;
        let mut out = vec![f64::NEG_INFINITY; 257];
        for &h in &self.heads {
            let nd = &self.nodes[h as usize];
            let st = self.summary(h)?;
            let j = nd.end;
            if j < n {
                let p = &self.text[j..n];
                let (lo, hi) = idx.prefix_range(p, true);
                for (b, a, e) in idx.children(lo, hi, p.len()) {
                    let v = nd.cum + st.range_lse(a, e)?;
                    out[b as usize] = logaddexp(out[b as usize], v);
                }
            } else {
                for b in 0..=255u8 {
                    let v = match &st.first {
                        Some(f) => f[b as usize],
                        None => {
                            let (a, e) = idx.first_byte_range(b);
                            st.range_lse(a, e)?
                        }
                    };
                    out[b as usize] = logaddexp(out[b as usize], nd.cum + v);
                }
                if h == self.eot_head {
                    out[256] = logaddexp(out[256], nd.cum + st.eot);
                }
            }
        }
        // outcomes that would make the text invalid UTF-8 cannot happen (such bytes cannot be
        // pushed, and canonical encodings only exist for valid text)
        let ok = valid_next(&self.text);
        for (o, &v) in out.iter_mut().zip(ok.iter()) {
            if !v {
                *o = f64::NEG_INFINITY;
            }
        }
        let z = logsumexp(&out);
        Ok((z, out))
    }

    fn ready(&self) -> Result<()> {
        if !self.pending.is_empty() {
            return Err(Error::InvalidArgument(
                "evaluate the pending tree nodes first".into(),
            ));
        }
        Ok(())
    }

    /// log P(next = `b` | text) for a byte (`Some`) or the end of text (`None`), without
    /// computing the other outcomes: the ratio of the prefix masses (sums over covers) of
    /// the text with and without the outcome. The ratios chain exactly: their sum over a
    /// text plus the end-of-text term is the log-probability of its canonical encoding
    /// followed by end-of-text, for any model; for a model that puts no mass on
    /// non-canonical token strings they equal [`distribution`](Self::distribution).
    /// Inside a known prefix only the known next byte can be asked for.
    pub fn target_logprob(&self, b: Option<u8>) -> Result<f64> {
        let t0 = std::time::Instant::now();
        let r = self.target_masses(b);
        self.query_ns.add(t0);
        let (z, m) = r?;
        Ok(if z.is_finite() {
            m - z
        } else {
            f64::NEG_INFINITY
        })
    }

    /// `(log prefix mass of the text, log mass of the text followed by the outcome)`,
    /// relative to the trunk.
    pub fn target_masses(&self, b: Option<u8>) -> Result<(f64, f64)> {
        self.ready()?;
        let n = self.text.len();
        let known_next = self.known.as_ref().and_then(|k| k.get(n).copied());
        if self.lazy && known_next.is_some() {
            return Err(Error::InvalidArgument(
                "a prompt stream answers only after its prompt".into(),
            ));
        }
        if known_next.is_some() && known_next != b {
            return Err(Error::InvalidArgument(
                "inside the known prefix only the known next byte can be scored".into(),
            ));
        }
        Ok((self.prefix_mass, self.outcome_mass(b)?))
    }

    /// Log mass (relative to the trunk) of the covers of the text followed by `b`
    /// (`None`: of the canonical encoding followed by end-of-text).
    fn outcome_mass(&self, b: Option<u8>) -> Result<f64> {
        self.ready()?;
        let n = self.text.len();
        let known_next = self.known.as_ref().and_then(|k| k.get(n).copied());
        let idx = &self.bt.index;
        let mut m = f64::NEG_INFINITY;
        let mut p: Vec<u8> = Vec::new();
        for &h in &self.heads {
            let nd = &self.nodes[h as usize];
            let st = self.summary(h)?;
            match b {
                Some(b) => {
                    let j = nd.end;
                    let v = if known_next == Some(b) {
                        // inside the known text: the row was summed for exactly this range
                        // (the chain stops where no token covers the bytes any more)
                        st.chain.get(n - j).map_or(f64::NEG_INFINITY, |c| c.0)
                    } else if j == n {
                        match &st.first {
                            Some(f) => f[b as usize],
                            None => {
                                let (lo, hi) = idx.first_byte_range(b);
                                st.range_lse(lo, hi)?
                            }
                        }
                    } else {
                        p.clear();
                        p.extend_from_slice(&self.text[j..n]);
                        p.push(b);
                        let (lo, hi) = idx.prefix_range(&p, false);
                        st.range_lse(lo, hi)?
                    };
                    m = logaddexp(m, nd.cum + v);
                }
                None => {
                    if h == self.eot_head {
                        m = logaddexp(m, nd.cum + st.eot);
                    }
                }
            }
        }
        Ok(m)
    }

    fn summary(&self, h: u32) -> Result<&Summary> {
        self.nodes[h as usize]
            .summary
            .as_deref()
            .ok_or_else(|| Error::InvalidArgument("internal: head without evaluation".into()))
    }

    /// Sample one cover of the text (a token path from the trunk whose decoding starts
    /// with the text and whose last token reaches or passes its end) with probability
    /// proportional to the model's probability of the path. `u1`, `u2` are uniforms in
    /// `[0, 1)`. Returns the path below the trunk, or `None` if every cover has probability
    /// zero. Only after the known prefix (if any).
    pub fn sample_cover(&self, u1: f64, u2: f64) -> Result<Option<Vec<u32>>> {
        self.ready()?;
        if self.scoring
            || self
                .known
                .as_ref()
                .is_some_and(|k| k.len() > self.text.len())
        {
            return Err(Error::InvalidArgument(
                "sample_cover is only available after the known prefix".into(),
            ));
        }
        let n = self.text.len();
        let idx = &self.bt.index;
        let mut parts: Vec<(u32, f64)> = Vec::new();
        for &h in &self.heads {
            let nd = &self.nodes[h as usize];
            let st = self.summary(h)?;
            if nd.end < n {
                let (lo, hi) = idx.prefix_range(&self.text[nd.end..n], true);
                parts.push((h, nd.cum + st.range_lse(lo, hi)?));
            } else {
                parts.push((h, nd.cum));
            }
        }
        let z = logsumexp(&parts.iter().map(|p| p.1).collect::<Vec<_>>());
        if !z.is_finite() {
            return Ok(None);
        }
        let mut t = u1.clamp(0.0, 1.0);
        let mut chosen = None;
        for (i, p) in parts.iter().enumerate() {
            let w = (p.1 - z).exp();
            if w > 0.0 {
                chosen = Some(i);
                if t < w {
                    break;
                }
                t -= w;
            }
        }
        let Some(chosen) = chosen else {
            return Ok(None);
        };
        let h = parts[chosen].0;
        let nd = &self.nodes[h as usize];
        let mut path = self.path(h);
        if nd.end == n {
            return Ok(Some(path));
        }
        let st = self.summary(h)?;
        let (lo, hi) = idx.prefix_range(&self.text[nd.end..n], true);
        let vals = st.kept(lo, hi)?;
        let lz = logsumexp(vals);
        let mut t = u2.clamp(0.0, 1.0);
        let mut pick = None;
        for (k, &v) in vals.iter().enumerate() {
            let w = (v - lz).exp();
            if w > 0.0 {
                pick = Some(lo + k);
                if t < w {
                    break;
                }
                t -= w;
            }
        }
        let Some(pick) = pick else {
            return Ok(None);
        };
        path.push(idx.ids()[pick]);
        Ok(Some(path))
    }
}

#[cfg(test)]
mod tests {
    use super::valid_next;

    #[test]
    fn utf8_continuations() {
        let ok = |t: &[u8]| valid_next(t);
        let v = ok("\u{e9}a\u{e9}".as_bytes());
        assert!(v[b'a' as usize] && v[256] && !v[0x80]);
        let v = ok(b"\xc3\xa9a\xc3");
        assert!(v[0xa9] && !v[b'a' as usize] && !v[256]);
        let v = ok(b"\xe4\xb8");
        assert!(v[0xad] && !v[0xc3]);
        let v = ok(b"");
        assert!(v[b'a' as usize] && !v[0xff] && !v[0x80] && v[256]);
    }
}
