//! HF `tokenizer.json` interop for byte-level BPE: load, encode, decode and save exactly like
//! HF `tokenizers` 0.23.
//!
//! Pipeline (HF's order): added tokens with `normalized=false` are cut out of the raw input;
//! each remaining segment is normalized; added tokens with `normalized=true` are cut out of
//! the normalized text; the rest is pre-tokenized into pieces; each piece's bytes are encoded
//! by the BPE model (byte-level alphabet, merge ranks from the merge list, `ignore_merges`);
//! the post-processor adds template tokens and trims offsets. Offsets are byte (or char)
//! ranges of the original input, computed through the normalizer's alignments.
//!
//! Components outside the supported set are rejected with an error naming the component and
//! its JSON path, never silently tokenized differently.

pub mod added;
pub(crate) mod atomic_pairs;
pub mod bytelevel;
pub mod fastjson;
pub mod json;
pub mod lexers;
pub mod model;
pub mod normalize;
pub mod parallel;
pub mod pattern;
pub mod post;
pub mod pretokenize;
pub mod syntax;
pub mod two_level;
pub mod unicode;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::pretok::patterns;
use added::{AddedToken, AddedVocab};
use json::err;
use model::incremental::ModelBuilder;
use model::{BpeModel, BpeOptions};
use normalize::{NormText, Normalizer};
use pattern::{Behavior, PatternSpec};
use post::{Decoder, Encoded, PostProcessor};
use pretokenize::{Piece, PreTokenizer, Scratch, Step};

/// An HF byte-level BPE tokenizer.
#[derive(Clone, Debug)]
pub struct HfTokenizer {
    normalizer: Option<Normalizer>,
    pre_tokenizer: Option<PreTokenizer>,
    steps: Vec<Step>,
    model: BpeModel,
    added: AddedVocab,
    post: Option<PostProcessor>,
    decoder: Option<Decoder>,
    /// No token spans a newline cut (`superbpe::newline`): long pieces are encoded line by
    /// line (and in parallel by [`HfTokenizer::encode_parallel`]).
    newline_cuts: bool,
}

/// Ids and offsets of an encoding.
pub type IdsOffsets = (Vec<u32>, Vec<(usize, usize)>);

impl HfTokenizer {
    // ------------------------------------------------------------------ loading

    /// Parse the text of a `tokenizer.json`.
    pub fn from_json_str(s: &str) -> Result<Self> {
        let doc = fastjson::parse(s)?;
        let model = match doc.model {
            Some(md) => BpeModel::from_parts(&md.fields, md.vocab, md.merges, md.legacy, "model")?,
            None => return Err(err("", "missing \"model\"")),
        };
        Self::from_top(&doc.top, model)
    }

    /// Read a `tokenizer.json` file.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let name = path.display().to_string();
        let data = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: name.clone(),
            message: e.to_string(),
        })?;
        Self::from_json_str(&data).map_err(|e| json::with_source(e, &name))
    }

    /// Build from a parsed `tokenizer.json`.
    pub fn from_value(v: &Value) -> Result<Self> {
        let m = json::obj(v, "")?;
        let model = BpeModel::from_json(
            m.get("model").ok_or_else(|| err("", "missing \"model\""))?,
            "model",
        )?;
        Self::from_top(m, model)
    }

    /// Build from the top-level fields (other than `model`) and the model.
    fn from_top(m: &serde_json::Map<String, Value>, model: BpeModel) -> Result<Self> {
        if let Some(ver) = m.get("version") {
            if ver.as_str() != Some("1.0") {
                return Err(err("version", format!("unknown tokenizer version {ver}")));
            }
        }
        for key in ["truncation", "padding"] {
            if let Some(x) = m.get(key) {
                if !x.is_null() {
                    return Err(err(
                        key,
                        format!("{key} is not supported; set it to null (it changes the ids HF returns)"),
                    ));
                }
            }
        }
        let normalizer = match m.get("normalizer") {
            None | Some(Value::Null) => None,
            Some(x) => Some(Normalizer::from_json(x, "normalizer")?),
        };
        let pre_tokenizer = match m.get("pre_tokenizer") {
            None | Some(Value::Null) => None,
            Some(x) => Some(PreTokenizer::from_json(x, "pre_tokenizer")?),
        };
        let post = match m.get("post_processor") {
            None | Some(Value::Null) => None,
            Some(x) => Some(PostProcessor::from_json(x, "post_processor")?),
        };
        let decoder = match m.get("decoder") {
            None | Some(Value::Null) => None,
            Some(x) => Some(Decoder::from_json(x, "decoder")?),
        };
        let listed = AddedVocab::parse_list(
            m.get("added_tokens").unwrap_or(&Value::Null),
            "added_tokens",
        )?;
        Self::assemble(
            normalizer,
            pre_tokenizer,
            model,
            listed.into_iter().map(|p| p.1).collect(),
            post,
            decoder,
        )
    }

    fn assemble(
        normalizer: Option<Normalizer>,
        pre_tokenizer: Option<PreTokenizer>,
        model: BpeModel,
        added_tokens: Vec<AddedToken>,
        post: Option<PostProcessor>,
        decoder: Option<Decoder>,
    ) -> Result<Self> {
        let steps = {
            let mut flat = Vec::new();
            if let Some(p) = &pre_tokenizer {
                p.flatten("pre_tokenizer", &mut flat);
            }
            let pos = flat
                .iter()
                .position(|(_, p)| matches!(p, PreTokenizer::ByteLevel { .. }));
            match pos {
                None => {
                    return Err(err(
                        "pre_tokenizer",
                        "no ByteLevel pre-tokenizer: only byte-level BPE tokenizers are supported",
                    ))
                }
                Some(i) if i + 1 != flat.len() => {
                    return Err(err(
                        &flat[i + 1].0,
                        "a pre-tokenizer after ByteLevel is not supported (it would see byte-level characters)",
                    ))
                }
                Some(_) => pretokenize::compile(&flat)?,
            }
        };
        let added = AddedVocab::build(
            added_tokens,
            |s| model.token_to_id(s),
            model.n_entries(),
            normalizer.as_ref(),
        )?;
        let newline_cuts = crate::superbpe::newline::vocab_allows_newline_cuts(
            model.byte_vocab().iter().map(|(_, b)| b),
        );
        Ok(HfTokenizer {
            normalizer,
            pre_tokenizer,
            steps,
            model,
            added,
            post,
            decoder,
            newline_cuts,
        })
    }

    /// A freshly trained byte-level BPE: `vocab[id]` are the token bytes, `merges` the merged
    /// id pairs in rank order (the result of a merge is the token whose bytes are the
    /// concatenation). `pre_tokenizer` are HF pre-tokenizer objects applied before
    /// `ByteLevel(add_prefix_space=false, use_regex=false)`; `pattern` (tiktoken syntax) is a
    /// shortcut for `[Split(pattern, Isolated)]`; with neither, cl100k's pattern is used.
    /// Special tokens become special added tokens and keep their ids (they are also stored
    /// in the model vocabulary, as HF's trainer does, so that HF assigns the same ids).
    pub fn from_bpe(
        vocab: Vec<Vec<u8>>,
        merges: &[(u32, u32)],
        pre_tokenizer: Option<Vec<Value>>,
        pattern: Option<&str>,
        special_tokens: Vec<(String, u32)>,
    ) -> Result<Self> {
        Self::from_bpe_builder(
            ModelBuilder::default(),
            &vocab,
            merges,
            pre_tokenizer,
            pattern,
            special_tokens,
        )
    }

    /// [`HfTokenizer::from_bpe`] from a [`ModelBuilder`] that may already hold
    /// a prefix of `vocab` (see [`model::incremental`]): the tokens it holds are not
    /// converted again, and the merges are resolved by id instead of by string.
    pub fn from_bpe_builder<V: AsRef<[u8]>>(
        builder: ModelBuilder,
        vocab: &[V],
        merges: &[(u32, u32)],
        pre_tokenizer: Option<Vec<Value>>,
        pattern: Option<&str>,
        special_tokens: Vec<(String, u32)>,
    ) -> Result<Self> {
        let seq = Self::bpe_pre_tokenizer(pre_tokenizer, pattern)?;
        let mut specials = special_tokens;
        specials.sort_by_key(|s| s.1);
        let model = builder.finish(vocab, merges, &specials)?;
        Self::finish_bpe(seq, model, &specials)
    }

    /// The pre-tokenizer sequence of [`HfTokenizer::from_bpe`] (without its `ByteLevel`).
    fn bpe_pre_tokenizer(
        pre_tokenizer: Option<Vec<Value>>,
        pattern: Option<&str>,
    ) -> Result<Vec<PreTokenizer>> {
        let mut seq: Vec<PreTokenizer> = Vec::new();
        match (pre_tokenizer, pattern) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidArgument(
                    "give either pre_tokenizer or pattern, not both".into(),
                ))
            }
            (Some(list), None) => {
                for (i, v) in list.iter().enumerate() {
                    seq.push(PreTokenizer::from_json(v, &format!("pre_tokenizer[{i}]"))?);
                }
            }
            (None, p) => {
                let p = p.unwrap_or(patterns::CL100K);
                let onig = syntax::tiktoken_to_onig(p);
                seq.push(PreTokenizer::split(
                    PatternSpec::Regex(onig),
                    Behavior::Isolated,
                    false,
                )?);
            }
        }
        Ok(seq)
    }

    /// The rest of [`HfTokenizer::from_bpe`]: `ByteLevel` after `seq`, the special tokens
    /// (sorted by id) as special added tokens keeping their ids, the byte-level decoder.
    fn finish_bpe(
        mut seq: Vec<PreTokenizer>,
        model: BpeModel,
        specials: &[(String, u32)],
    ) -> Result<Self> {
        seq.push(PreTokenizer::ByteLevel {
            add_prefix_space: false,
            trim_offsets: true,
            use_regex: false,
        });
        let added = specials
            .iter()
            .map(|(s, _)| AddedToken::special(s))
            .collect();
        let tok = Self::assemble(
            None,
            Some(PreTokenizer::Sequence(seq)),
            model,
            added,
            None,
            Some(Decoder::ByteLevel {
                add_prefix_space: true,
                trim_offsets: true,
                use_regex: true,
            }),
        )?;
        for (s, id) in specials {
            if tok.added.id_of(s) != Some(*id) {
                return Err(Error::InvalidArgument(format!(
                    "special token {s:?} would get id {:?} instead of {id}",
                    tok.added.id_of(s)
                )));
            }
        }
        Ok(tok)
    }

    // ------------------------------------------------------------------ saving

    /// The `tokenizer.json` object, with HF's key order.
    pub fn to_value(&self) -> Value {
        json::object([
            ("version", Value::String("1.0".into())),
            ("truncation", Value::Null),
            ("padding", Value::Null),
            ("added_tokens", self.added.to_json()),
            (
                "normalizer",
                self.normalizer
                    .as_ref()
                    .map_or(Value::Null, |n| n.to_json()),
            ),
            (
                "pre_tokenizer",
                self.pre_tokenizer
                    .as_ref()
                    .map_or(Value::Null, |p| p.to_json()),
            ),
            (
                "post_processor",
                self.post.as_ref().map_or(Value::Null, |p| p.to_json()),
            ),
            (
                "decoder",
                self.decoder.as_ref().map_or(Value::Null, |d| d.to_json()),
            ),
            ("model", self.model.to_json()),
        ])
    }

    /// `tokenizer.json` text (pretty: 2-space indentation, as HF's `save(pretty=True)`).
    pub fn to_json_string(&self, pretty: bool) -> Result<String> {
        let v = self.to_value();
        let s = if pretty {
            serde_json::to_string_pretty(&v)
        } else {
            serde_json::to_string(&v)
        };
        s.map_err(|e| Error::InvalidArgument(format!("cannot serialize tokenizer: {e}")))
    }

    // ------------------------------------------------------------------ accessors

    pub fn model(&self) -> &BpeModel {
        &self.model
    }
    pub fn added(&self) -> &AddedVocab {
        &self.added
    }
    pub fn normalizer(&self) -> Option<&Normalizer> {
        self.normalizer.as_ref()
    }
    pub fn pre_tokenizer(&self) -> Option<&PreTokenizer> {
        self.pre_tokenizer.as_ref()
    }
    pub fn post_processor(&self) -> Option<&PostProcessor> {
        self.post.as_ref()
    }
    pub fn decoder(&self) -> Option<&Decoder> {
        self.decoder.as_ref()
    }

    /// Id of a token string (added tokens first, then the model).
    pub fn token_to_id(&self, s: &str) -> Option<u32> {
        self.added.id_of(s).or_else(|| self.model.token_to_id(s))
    }

    /// String of a token id (added tokens first, then the model).
    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        self.added
            .token(id)
            .map(|t| t.content.as_str())
            .or_else(|| self.model.id_to_token(id))
    }

    /// The full vocabulary (model entries and added tokens), as HF's `get_vocab(True)`.
    pub fn vocab(&self) -> Vec<(String, u32)> {
        let mut m: rustc_hash::FxHashMap<&str, u32> = self.model.entries().collect();
        for (id, t) in self.added.tokens() {
            m.insert(t.content.as_str(), *id);
        }
        let mut v: Vec<(String, u32)> = m.into_iter().map(|(s, i)| (s.to_string(), i)).collect();
        v.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        v
    }

    /// Number of distinct token strings (HF's `get_vocab_size(with_added_tokens=True)`).
    pub fn vocab_size(&self) -> usize {
        let extra = self
            .added
            .tokens()
            .iter()
            .filter(|(_, t)| self.model.token_to_id(&t.content).is_none())
            .count();
        self.model.n_entries() + extra
    }

    // ------------------------------------------------------------------ encoding

    /// Encode `text` to ids.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let mut enc = Encoded {
            ids: Vec::with_capacity(text.len() / 3 + 2),
            offsets: None,
            trims: Vec::new(),
        };
        self.run(text, &mut enc)?;
        if let Some(p) = &self.post {
            if p.adds_tokens() {
                p.process(&mut enc, add_special_tokens);
            }
        }
        Ok(enc.ids)
    }

    /// Encode `text` to ids and offsets into `text`: char offsets exactly as HF's Python
    /// `encode(text).offsets` when `char_offsets` is set, else the same offsets as byte
    /// positions in the UTF-8 text.
    pub fn encode_with_offsets(
        &self,
        text: &str,
        add_special_tokens: bool,
        char_offsets: bool,
    ) -> Result<IdsOffsets> {
        let mut enc = Encoded {
            ids: Vec::with_capacity(text.len() / 3 + 2),
            offsets: Some(Vec::with_capacity(text.len() / 3 + 2)),
            trims: Vec::with_capacity(text.len() / 3 + 2),
        };
        self.run(text, &mut enc)?;
        // HF's Python API (char offsets) is the reference: `trim_offsets` counts chars, so
        // byte offsets are the char offsets expressed in bytes (HF's Rust byte mode would
        // add char counts to byte offsets and could land inside a character).
        if let Some(offs) = enc.offsets.as_mut() {
            to_char_offsets(text, offs);
        }
        if let Some(p) = &self.post {
            p.process(&mut enc, add_special_tokens);
        }
        let mut offs = enc.offsets.unwrap_or_default();
        if !char_offsets {
            let mut pos: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
            pos.push(text.len());
            for o in offs.iter_mut() {
                o.0 = pos.get(o.0).copied().unwrap_or(o.0);
                o.1 = pos.get(o.1).copied().unwrap_or(o.1);
            }
        }
        Ok((enc.ids, offs))
    }

    fn push_added(&self, enc: &mut Encoded, id: u32, range: (usize, usize), value: &str) {
        enc.ids.push(id);
        if let Some(o) = enc.offsets.as_mut() {
            o.push(range);
            enc.trims.push(model::trim_counts(value));
        }
    }

    /// Encode `text` to ids, encoding each pre-tokenized piece (its bytes) with `piece`
    /// instead of the BPE model; added tokens, normalization, pre-tokenization and
    /// post-processing are exactly those of [`HfTokenizer::encode`]. (Hook for BPE-dropout.)
    pub fn encode_with_pieces<F>(
        &self,
        text: &str,
        add_special_tokens: bool,
        mut piece: F,
    ) -> Result<Vec<u32>>
    where
        F: FnMut(&[u8], &mut Vec<u32>) -> Result<()>,
    {
        let mut enc = Encoded {
            ids: Vec::with_capacity(text.len() / 3 + 2),
            offsets: None,
            trims: Vec::new(),
        };
        self.run_with(text, &mut enc, |b, out, _| piece(b, out))?;
        if let Some(p) = &self.post {
            if p.adds_tokens() {
                p.process(&mut enc, add_special_tokens);
            }
        }
        Ok(enc.ids)
    }

    /// The pipeline up to (not including) post-processing.
    fn run(&self, text: &str, enc: &mut Encoded) -> Result<()> {
        self.run_with(text, enc, |b, out, lens| {
            self.encode_piece_sharded(b, out, lens)
        })
    }

    /// [`HfTokenizer::run`] with a custom piece encoder `piece(bytes, ids, lens)`.
    fn run_with<F>(&self, text: &str, enc: &mut Encoded, mut piece: F) -> Result<()>
    where
        F: FnMut(&[u8], &mut Vec<u32>, Option<&mut Vec<u32>>) -> Result<()>,
    {
        let track = enc.offsets.is_some();
        let mut raw = Vec::new();
        self.added.split_raw(text, &mut raw);
        let mut norm_splits = Vec::new();
        let mut pieces: Vec<Piece> = Vec::new();
        let mut sc = Scratch::default();
        let mut buf: Vec<u8> = Vec::new();
        let mut lens: Vec<u32> = Vec::new();
        for &(id, a, b) in &raw {
            if let Some(id) = id {
                self.push_added(enc, id, (a, b), &text[a..b]);
                continue;
            }
            let mut nt = NormText::new(&text[a..b], a);
            if let Some(n) = &self.normalizer {
                n.apply(&mut nt, track)?;
            }
            norm_splits.clear();
            self.added.split_normalized(&nt.text, &mut norm_splits);
            for &(nid, c, d) in &norm_splits {
                if let Some(nid) = nid {
                    let r = if track {
                        nt.original_range(c, d)
                    } else {
                        (0, 0)
                    };
                    self.push_added(enc, nid, r, &nt.text[c..d]);
                    continue;
                }
                let seg = &nt.text[c..d];
                pretokenize::run(seg, &self.steps, &mut pieces, &mut sc)?;
                for p in &pieces {
                    let bytes: &[u8] = if p.prefix {
                        buf.clear();
                        buf.push(b' ');
                        buf.extend_from_slice(&seg.as_bytes()[p.start..p.end]);
                        &buf
                    } else {
                        &seg.as_bytes()[p.start..p.end]
                    };
                    if !track {
                        piece(bytes, &mut enc.ids, None)?;
                        continue;
                    }
                    lens.clear();
                    let before = enc.ids.len();
                    piece(bytes, &mut enc.ids, Some(&mut lens))?;
                    let offs = enc.offsets.get_or_insert_with(Vec::new);
                    let mut k = 0usize;
                    // normalized byte index of piece byte j
                    let norm_index = |j: usize| -> usize {
                        if p.prefix {
                            if j == 0 {
                                c + p.start
                            } else {
                                c + p.start + j - 1
                            }
                        } else {
                            c + p.start + j
                        }
                    };
                    for (t, &len) in enc.ids[before..].iter().zip(&lens) {
                        let len = len as usize;
                        let first = norm_index(k);
                        let last = norm_index(k + len.max(1) - 1);
                        offs.push((nt.align(first).0, nt.align(last).1));
                        enc.trims.push(self.model.trims(*t));
                        k += len;
                    }
                }
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ decoding

    fn push_decoded(&self, id: u32, out: &mut Vec<u8>, skip_special: bool, first: &mut bool) {
        let s = match self.added.decode_form(id) {
            Some(s) => s,
            None => match self.model.id_to_token(id) {
                Some(s) => s,
                None => return,
            },
        };
        if skip_special && self.added.is_special(s) {
            return;
        }
        match &self.decoder {
            Some(Decoder::ByteLevel { .. }) => {
                if self.added.token(id).is_none() {
                    if let Some(b) = self.model.byte_vocab().bytes(id) {
                        out.extend_from_slice(b);
                        return;
                    }
                }
                match bytelevel::decode_str(s) {
                    Some(b) => out.extend_from_slice(&b),
                    None => out.extend_from_slice(s.as_bytes()),
                }
            }
            None => {
                if !*first {
                    out.push(b' ');
                }
                out.extend_from_slice(s.as_bytes());
            }
        }
        *first = false;
    }

    /// The bytes HF's decoder produces before its UTF-8 (lossy) conversion. Unknown ids are
    /// skipped, as HF does.
    pub fn decode_bytes(&self, ids: &[u32], skip_special_tokens: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        let mut first = true;
        for &id in ids {
            self.push_decoded(id, &mut out, skip_special_tokens, &mut first);
        }
        out
    }

    /// Decode like HF's `decode`.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> String {
        String::from_utf8_lossy(&self.decode_bytes(ids, skip_special_tokens)).into_owned()
    }

    // ------------------------------------------------------------------ tiktoken

    /// The pieces of the equivalent tiktoken encoding (`mergeable_ranks`, special tokens and
    /// split pattern in tiktoken syntax), or the reason why tiktoken's semantics cannot
    /// reproduce this tokenizer.
    pub fn tiktoken_parts(&self) -> Result<TiktokenParts> {
        let no = |why: String| {
            Err(Error::InvalidArgument(format!(
                "cannot convert to tiktoken: {why}"
            )))
        };
        if self.normalizer.is_some() {
            return no("tiktoken has no normalizer".into());
        }
        if let Some(p) = &self.post {
            if p.adds_tokens() {
                return no("tiktoken cannot add template tokens (post_processor)".into());
            }
        }
        // the pre-tokenizer must be one regex split then ByteLevel(prefix=false)
        let mut flat = Vec::new();
        if let Some(p) = &self.pre_tokenizer {
            p.flatten("pre_tokenizer", &mut flat);
        }
        let pattern = match flat.as_slice() {
            [(_, PreTokenizer::ByteLevel {
                add_prefix_space: false,
                use_regex: true,
                ..
            })] => bytelevel::GPT2_PATTERN.to_string(),
            [(_, PreTokenizer::Split {
                pattern: PatternSpec::Regex(r),
                behavior: Behavior::Isolated,
                invert: false,
                ..
            }), (_, PreTokenizer::ByteLevel {
                add_prefix_space: false,
                use_regex: false,
                ..
            })] => syntax::onig_to_tiktoken(r),
            _ => {
                return no(
                    "the pre-tokenizer must be ByteLevel(add_prefix_space=false) alone or one Split(regex, Isolated) followed by ByteLevel(add_prefix_space=false, use_regex=false)".into(),
                )
            }
        };
        let bytes = self.model.byte_vocab();
        let mut specials = Vec::new();
        let mut special_ids = rustc_hash::FxHashSet::default();
        for (id, t) in self.added.tokens() {
            specials.push((t.content.clone(), *id));
            special_ids.insert(*id);
        }
        let mut ranks = Vec::with_capacity(bytes.len());
        for (id, b) in bytes.iter() {
            if !special_ids.contains(&id) {
                ranks.push((b.to_vec(), id));
            }
        }
        // tiktoken merges any adjacent pair whose concatenation is a token, by the token's
        // id, and emits a whole piece that is a token. Both agree with HF's merge list when
        // every token is built by its own merge list from its bytes and merge ranks follow
        // ids.
        let table = self.model.merge_table();
        let mut prev: Option<u32> = None;
        for &(l, r) in self.model.merges() {
            let res = table.get(l, r).map(|x| x.1).unwrap_or(u32::MAX);
            if let Some(p) = prev {
                if res <= p {
                    return no(format!(
                        "merge results are not in increasing id order (id {res} after {p})"
                    ));
                }
            }
            prev = Some(res);
        }
        let mut out = Vec::new();
        for (id, b) in bytes.iter() {
            if special_ids.contains(&id) || b.len() < 2 {
                continue;
            }
            out.clear();
            self.model.encode_piece(b, &mut out, None)?;
            if out.as_slice() != [id] {
                return no(format!(
                    "token {id} ({}) is not produced by the merges from its own bytes",
                    crate::util::bytes_repr(b)
                ));
            }
        }
        Ok(TiktokenParts {
            mergeable_ranks: ranks,
            special_tokens: specials,
            pattern,
        })
    }

    /// An HF tokenizer equivalent to a tiktoken encoding: merges derived from the ranks
    /// (each token's merge is the split that rank-limited BPE gives for its bytes),
    /// `ignore_merges=true` (tiktoken's whole-piece-first rule), the pattern converted to
    /// Oniguruma syntax, special tokens as special added tokens.
    pub fn from_tiktoken(
        mergeable_ranks: Vec<(Vec<u8>, u32)>,
        special_tokens: Vec<(String, u32)>,
        pattern: &str,
    ) -> Result<Self> {
        let vocab = crate::vocab::Vocab::from_pairs(mergeable_ranks)?;
        let table = crate::bpe::MergeTable::from_vocab_ranks(&vocab);
        let mut merges: Vec<(u32, u32, u32)> = Vec::new();
        for (id, b) in vocab.iter() {
            if b.len() < 2 {
                continue;
            }
            // BPE the token's bytes with merges of lower rank only
            let parts = bpe_limited(&table, b, id);
            match parts.as_slice() {
                [l, r] => merges.push((id, *l, *r)),
                _ => {
                    return Err(Error::InvalidVocab(format!(
                        "token {id} ({}) cannot be built by one merge of lower-ranked tokens",
                        crate::util::bytes_repr(b)
                    )))
                }
            }
        }
        merges.sort_by_key(|m| m.0);
        let mut entries: Vec<(String, u32)> = vocab
            .iter()
            .map(|(id, b)| (bytelevel::encode_str(b), id))
            .collect();
        let name = |id: u32| bytelevel::encode_str(vocab.bytes(id).unwrap_or(&[]));
        let merge_strs: Vec<(String, String)> =
            merges.iter().map(|m| (name(m.1), name(m.2))).collect();
        let mut specials = special_tokens;
        specials.sort_by_key(|s| s.1);
        let mut added = Vec::new();
        for (s, id) in &specials {
            if vocab.bytes(*id).is_some() {
                return Err(Error::InvalidVocab(format!(
                    "special token {s:?} has id {id}, which is a mergeable token"
                )));
            }
            entries.push((s.clone(), *id));
            added.push(AddedToken::special(s));
        }
        let model = BpeModel::new(
            entries,
            merge_strs,
            BpeOptions {
                ignore_merges: true,
                ..BpeOptions::default()
            },
            "model",
        )?;
        let onig = syntax::tiktoken_to_onig(pattern);
        let seq = vec![
            PreTokenizer::split(PatternSpec::Regex(onig), Behavior::Isolated, false)?,
            PreTokenizer::ByteLevel {
                add_prefix_space: false,
                trim_offsets: true,
                use_regex: false,
            },
        ];
        Self::assemble(
            None,
            Some(PreTokenizer::Sequence(seq)),
            model,
            added,
            None,
            Some(Decoder::ByteLevel {
                add_prefix_space: true,
                trim_offsets: true,
                use_regex: true,
            }),
        )
    }
}

/// What [`HfTokenizer::tiktoken_parts`] returns.
#[derive(Clone, Debug)]
pub struct TiktokenParts {
    pub mergeable_ranks: Vec<(Vec<u8>, u32)>,
    pub special_tokens: Vec<(String, u32)>,
    /// In tiktoken (fancy-regex) syntax.
    pub pattern: String,
}

/// tiktoken-style BPE of `piece` using only merges whose rank is below `max_rank`.
fn bpe_limited(table: &crate::bpe::MergeTable, piece: &[u8], max_rank: u32) -> Vec<u32> {
    let mut ids: Vec<u32> = piece.iter().map(|&b| table.byte_id(b)).collect();
    loop {
        let mut best: Option<(u32, usize, u32)> = None;
        for i in 0..ids.len().saturating_sub(1) {
            if let Some((r, res)) = table.get(ids[i], ids[i + 1]) {
                if r < max_rank && best.is_none_or(|b| r < b.0) {
                    best = Some((r, i, res));
                }
            }
        }
        match best {
            None => return ids,
            Some((_, i, res)) => {
                ids[i] = res;
                ids.remove(i + 1);
            }
        }
    }
}

/// Convert byte offsets into char offsets as HF does (a byte inside a char maps to that
/// char; an end at the end of the text maps past the last char; a start past the end is
/// left as it is).
fn to_char_offsets(text: &str, offs: &mut [(usize, usize)]) {
    if offs.is_empty() {
        return;
    }
    let n = text.len();
    // char index of every byte
    let mut map = Vec::with_capacity(n);
    for (ci, c) in text.chars().enumerate() {
        for _ in 0..c.len_utf8() {
            map.push(ci);
        }
    }
    for o in offs.iter_mut() {
        if o.0 >= n {
            continue;
        }
        let s = map[o.0];
        let e = if o.1 < n {
            map[o.1]
        } else if o.1 >= 1 {
            map[(o.1 - 1).min(n - 1)] + 1
        } else {
            s + 1
        };
        *o = (s, e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> HfTokenizer {
        let mut vocab: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        vocab.push(b"ab".to_vec()); // 256
        vocab.push(b" ab".to_vec()); // 257
        vocab.push(b"123".to_vec()); // 258
        let merges = [(97, 98), (32, 256), (49, 50)];
        // (49, 50) -> "12" is missing from the vocabulary: rejected below; use valid ones
        let err = HfTokenizer::from_bpe(vocab.clone(), &merges, None, None, vec![]);
        assert!(err.is_err());
        vocab.push(b"12".to_vec()); // 259
        let merges = [(97, 98), (32, 256), (49, 50), (259, 51)];
        HfTokenizer::from_bpe(vocab, &merges, None, None, vec![("<eos>".into(), 260)]).unwrap()
    }

    #[test]
    fn from_bpe_encode_decode_round_trip() {
        let t = small();
        assert_eq!(
            t.encode("ab ab1234", true).unwrap(),
            vec![256, 257, 258, 52]
        );
        assert_eq!(t.encode("x<eos>ab", true).unwrap(), vec![120, 260, 256]);
        let (ids, offs) = t.encode_with_offsets("é ab", true, false).unwrap();
        assert_eq!(ids, vec![0xC3, 0xA9, 257]);
        assert_eq!(offs, vec![(0, 2), (0, 2), (2, 5)]);
        let (_, coffs) = t.encode_with_offsets("é ab", true, true).unwrap();
        assert_eq!(coffs, vec![(0, 1), (0, 1), (1, 4)]);
        assert_eq!(t.decode(&[256, 260, 0xC3], false), "ab<eos>\u{FFFD}");
        assert_eq!(t.decode(&[256, 260], true), "ab");
        let json = t.to_json_string(true).unwrap();
        let t2 = HfTokenizer::from_json_str(&json).unwrap();
        assert_eq!(t2.to_json_string(true).unwrap(), json);
        assert_eq!(
            t2.encode("ab ab1234<eos>", true).unwrap(),
            vec![256, 257, 258, 52, 260]
        );
        let v: Value = serde_json::from_str(&json).unwrap();
        let t3 = HfTokenizer::from_value(&v).unwrap();
        assert_eq!(
            t3.to_json_string(false).unwrap(),
            t.to_json_string(false).unwrap()
        );
    }

    #[test]
    fn errors_name_json_paths() {
        let t = small();
        let mut v: Value = serde_json::from_str(&t.to_json_string(false).unwrap()).unwrap();
        v["normalizer"] = serde_json::json!({"type": "Precompiled"});
        let e = HfTokenizer::from_value(&v).unwrap_err().to_string();
        assert!(
            e.contains("at normalizer: unsupported normalizer type \"Precompiled\""),
            "{e}"
        );
        let e = HfTokenizer::from_json_str("{\"model\": 3}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid JSON"), "{e}");
        let e = HfTokenizer::from_json_str("[]").unwrap_err().to_string();
        assert!(e.contains("tokenizer.json"), "{e}");
    }
}
