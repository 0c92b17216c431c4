//! Reading a `tokenizer.json` without building a JSON tree for the model's vocabulary and
//! merges (hundreds of thousands of small strings): those two are streamed straight into
//! vectors; everything else becomes a `serde_json::Value`.

use std::fmt;

use rustc_hash::FxHashMap;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::json::SOURCE;
use crate::error::{Error, Result};

/// A parsed document: top-level fields but `model`, and the model.
pub struct Doc {
    pub top: Map<String, Value>,
    pub model: Option<ModelDoc>,
}

/// The `model` object: its other fields, and the streamed vocabulary and merges.
pub struct ModelDoc {
    pub fields: Map<String, Value>,
    pub vocab: Vec<(String, u32)>,
    pub merges: Vec<(String, String)>,
    /// Whether merges were written as `"a b"` strings.
    pub legacy: bool,
}

/// Parse the text of a `tokenizer.json`.
pub fn parse(s: &str) -> Result<Doc> {
    let mut de = serde_json::Deserializer::from_str(s);
    let doc = DocSeed.deserialize(&mut de).and_then(|d| {
        de.end()?;
        Ok(d)
    });
    doc.map_err(|e| Error::Parse {
        source: SOURCE.to_string(),
        line: e.line(),
        message: format!("invalid JSON: {e}"),
    })
}

struct DocSeed;

impl<'de> DeserializeSeed<'de> for DocSeed {
    type Value = Doc;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Doc, D::Error> {
        d.deserialize_map(DocVisitor)
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Doc;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tokenizer.json object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Doc, A::Error> {
        let mut top = Map::new();
        let mut model = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "model" {
                model = Some(map.next_value_seed(ModelSeed)?);
            } else {
                let v: Value = map.next_value()?;
                top.insert(key, v);
            }
        }
        Ok(Doc { top, model })
    }
}

struct ModelSeed;

impl<'de> DeserializeSeed<'de> for ModelSeed {
    type Value = ModelDoc;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<ModelDoc, D::Error> {
        d.deserialize_map(ModelVisitor)
    }
}

struct ModelVisitor;

impl<'de> Visitor<'de> for ModelVisitor {
    type Value = ModelDoc;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the model object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<ModelDoc, A::Error> {
        let mut fields = Map::new();
        let mut vocab = Vec::new();
        let mut merges = Vec::new();
        let mut legacy = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "vocab" => vocab = map.next_value_seed(VocabSeed)?,
                "merges" => {
                    let (m, l) = map.next_value_seed(MergesSeed)?;
                    merges = m;
                    legacy = l;
                    // keep the key visible to the option checks (untyped models)
                    fields.insert(key, Value::Null);
                }
                _ => {
                    let v: Value = map.next_value()?;
                    fields.insert(key, v);
                }
            }
        }
        Ok(ModelDoc {
            fields,
            vocab,
            merges,
            legacy,
        })
    }
}

struct VocabSeed;

impl<'de> DeserializeSeed<'de> for VocabSeed {
    type Value = Vec<(String, u32)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_any(VocabVisitor)
    }
}

struct VocabVisitor;

impl<'de> Visitor<'de> for VocabVisitor {
    type Value = Vec<(String, u32)>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("model.vocab: an object of token -> id")
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut v: Vec<(String, u32)> = Vec::with_capacity(map.size_hint().unwrap_or(0));
        // hash of a key → index of its first occurrence (no copy of the key)
        let mut seen: FxHashMap<u64, usize> = FxHashMap::default();
        while let Some(k) = map.next_key::<String>()? {
            let id: u64 = map.next_value().map_err(|_| {
                de::Error::custom(format!(
                    "at model.vocab.{k}: expected an integer in [0, 2**32)"
                ))
            })?;
            let id = u32::try_from(id).map_err(|_| {
                de::Error::custom(format!(
                    "at model.vocab.{k}: expected an integer in [0, 2**32), got {id}"
                ))
            })?;
            // a repeated key: the last value wins, as when HF reads it into a hash map
            let h = {
                use std::hash::Hasher;
                let mut h = rustc_hash::FxHasher::default();
                h.write(k.as_bytes());
                h.finish()
            };
            match seen.get(&h) {
                Some(&i) if v[i].0 == k => v[i].1 = id,
                Some(_) => {
                    // a hash collision between different keys (practically never)
                    match v.iter().position(|e| e.0 == k) {
                        Some(i) => v[i].1 = id,
                        None => v.push((k, id)),
                    }
                }
                None => {
                    seen.insert(h, v.len());
                    v.push((k, id));
                }
            }
        }
        Ok(v)
    }
}

struct MergesSeed;

impl<'de> DeserializeSeed<'de> for MergesSeed {
    type Value = (Vec<(String, String)>, bool);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_any(MergesVisitor)
    }
}

struct MergesVisitor;

impl<'de> Visitor<'de> for MergesVisitor {
    type Value = (Vec<(String, String)>, bool);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("model.merges: an array of \"a b\" strings or [a, b] pairs")
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Ok((Vec::new(), false))
    }
    fn visit_seq<A: SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        let mut legacy = false;
        let mut i = 0usize;
        while let Some((pair, l)) = seq.next_element_seed(MergeSeed(i))? {
            legacy |= l;
            v.push(pair);
            i += 1;
        }
        Ok((v, legacy))
    }
}

struct MergeSeed(usize);

impl<'de> DeserializeSeed<'de> for MergeSeed {
    type Value = ((String, String), bool);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_any(MergeVisitor(self.0))
    }
}

struct MergeVisitor(usize);

impl<'de> Visitor<'de> for MergeVisitor {
    type Value = ((String, String), bool);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "at model.merges[{}]: \"a b\" or [a, b]", self.0)
    }
    fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Self::Value, E> {
        let mut parts = s.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), None) => Ok(((a.to_string(), b.to_string()), true)),
            _ => Err(E::custom(format!(
                "at model.merges[{}]: merge {s:?} is not two tokens separated by one space",
                self.0
            ))),
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let bad = || {
            de::Error::custom(format!(
                "at model.merges[{}]: expected a pair of strings",
                self.0
            ))
        };
        let a: String = seq.next_element()?.ok_or_else(bad)?;
        let b: String = seq.next_element()?.ok_or_else(bad)?;
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(bad());
        }
        Ok(((a, b), false))
    }
}
