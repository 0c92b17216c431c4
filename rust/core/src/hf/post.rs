//! Post-processors (`ByteLevel` offset trimming, `TemplateProcessing`, `Sequence`) and the
//! `ByteLevel` decoder.

use serde_json::{Map, Value};

use super::json::{self, err, join};
use crate::error::Result;

/// A special token of a template: its name and the ids/strings it expands to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateSpecial {
    pub name: String,
    pub ids: Vec<u32>,
    pub tokens: Vec<String>,
}

/// One element of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplatePiece {
    /// `$A` / `$B` with its type id.
    Sequence { id: String, type_id: u32 },
    /// A special token (by name) with its type id.
    Special { id: String, type_id: u32 },
}

/// A post-processor.
#[derive(Clone, Debug)]
pub enum PostProcessor {
    ByteLevel {
        add_prefix_space: bool,
        trim_offsets: bool,
        use_regex: bool,
    },
    Template {
        single: Vec<TemplatePiece>,
        pair: Vec<TemplatePiece>,
        specials: Vec<TemplateSpecial>,
    },
    Sequence(Vec<PostProcessor>),
}

fn parse_template(v: Option<&Value>, path: &str) -> Result<Vec<TemplatePiece>> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let items = json::arr(v, path)?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let ip = json::index(path, i);
        let m = json::obj(item, &ip)?;
        let (kind, inner) = m.iter().next().ok_or_else(|| {
            err(
                &ip,
                "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}",
            )
        })?;
        let kp = join(&ip, kind);
        let im = json::obj(inner, &kp)?;
        let id = json::string(im, "id", &kp)?;
        let type_id = match im.get("type_id") {
            None | Some(Value::Null) => 0,
            Some(x) => json::as_u32(x, &join(&kp, "type_id"))?,
        };
        out.push(match kind.as_str() {
            "Sequence" => {
                if id != "A" && id != "B" {
                    return Err(err(
                        &join(&kp, "id"),
                        format!("sequence id must be \"A\" or \"B\", got {id:?}"),
                    ));
                }
                TemplatePiece::Sequence { id, type_id }
            }
            "SpecialToken" => TemplatePiece::Special { id, type_id },
            other => return Err(err(&ip, format!("unknown template piece {other:?}"))),
        });
    }
    Ok(out)
}

fn template_to_json(t: &[TemplatePiece]) -> Value {
    Value::Array(
        t.iter()
            .map(|p| {
                let (k, id, type_id) = match p {
                    TemplatePiece::Sequence { id, type_id } => ("Sequence", id, type_id),
                    TemplatePiece::Special { id, type_id } => ("SpecialToken", id, type_id),
                };
                let mut m = Map::new();
                m.insert(
                    k.to_string(),
                    json::object([
                        ("id", Value::String(id.clone())),
                        ("type_id", Value::from(*type_id)),
                    ]),
                );
                Value::Object(m)
            })
            .collect(),
    )
}

impl PostProcessor {
    /// Parse a post-processor object; `path` names it in errors.
    pub fn from_json(v: &Value, path: &str) -> Result<Self> {
        let m = json::obj(v, path)?;
        let ty = json::type_of(m, path)?;
        Ok(match ty {
            "ByteLevel" => PostProcessor::ByteLevel {
                add_prefix_space: json::boolean(m, "add_prefix_space", path, true)?,
                trim_offsets: json::boolean(m, "trim_offsets", path, true)?,
                use_regex: json::boolean(m, "use_regex", path, true)?,
            },
            "TemplateProcessing" => {
                let single = parse_template(m.get("single"), &join(path, "single"))?;
                let pair = parse_template(m.get("pair"), &join(path, "pair"))?;
                let sp = join(path, "special_tokens");
                let mut specials = Vec::new();
                if let Some(st) = m.get("special_tokens") {
                    for (name, spec) in json::obj(st, &sp)? {
                        let np = join(&sp, name);
                        let sm = json::obj(spec, &np)?;
                        let ids_p = join(&np, "ids");
                        let ids = json::arr(sm.get("ids").unwrap_or(&Value::Null), &ids_p)?
                            .iter()
                            .enumerate()
                            .map(|(i, x)| json::as_u32(x, &json::index(&ids_p, i)))
                            .collect::<Result<Vec<u32>>>()?;
                        let tp = join(&np, "tokens");
                        let tokens = json::arr(sm.get("tokens").unwrap_or(&Value::Null), &tp)?
                            .iter()
                            .enumerate()
                            .map(|(i, x)| {
                                x.as_str()
                                    .map(|s| s.to_string())
                                    .ok_or_else(|| err(&json::index(&tp, i), "expected a string"))
                            })
                            .collect::<Result<Vec<String>>>()?;
                        if ids.len() != tokens.len() {
                            return Err(err(&np, "\"ids\" and \"tokens\" have different lengths"));
                        }
                        specials.push(TemplateSpecial {
                            name: json::opt_string(sm, "id", &np)?.unwrap_or_else(|| name.clone()),
                            ids,
                            tokens,
                        });
                    }
                }
                for (t, tp) in [(&single, "single"), (&pair, "pair")] {
                    for (i, p) in t.iter().enumerate() {
                        if let TemplatePiece::Special { id, .. } = p {
                            if !specials.iter().any(|s| &s.name == id) {
                                return Err(err(
                                    &json::index(&join(path, tp), i),
                                    format!("special token {id:?} is missing from special_tokens"),
                                ));
                            }
                        }
                    }
                }
                for (i, p) in single.iter().enumerate() {
                    if let TemplatePiece::Sequence { id, .. } = p {
                        if id != "A" {
                            return Err(err(
                                &json::index(&join(path, "single"), i),
                                "the single-sequence template may only use $A",
                            ));
                        }
                    }
                }
                PostProcessor::Template {
                    single,
                    pair,
                    specials,
                }
            }
            "Sequence" => {
                let p = join(path, "processors");
                let items = json::arr(m.get("processors").unwrap_or(&Value::Null), &p)?;
                let mut v = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    v.push(PostProcessor::from_json(item, &json::index(&p, i))?);
                }
                PostProcessor::Sequence(v)
            }
            other => {
                return Err(err(
                    path,
                    format!("unsupported post-processor type {other:?} (supported: ByteLevel, TemplateProcessing, Sequence)"),
                ))
            }
        })
    }

    /// The JSON object HF writes for this post-processor.
    pub fn to_json(&self) -> Value {
        match self {
            PostProcessor::ByteLevel {
                add_prefix_space,
                trim_offsets,
                use_regex,
            } => json::object([
                ("type", Value::String("ByteLevel".into())),
                ("add_prefix_space", Value::Bool(*add_prefix_space)),
                ("trim_offsets", Value::Bool(*trim_offsets)),
                ("use_regex", Value::Bool(*use_regex)),
            ]),
            PostProcessor::Template {
                single,
                pair,
                specials,
            } => {
                let mut sm = Map::new();
                let mut sorted: Vec<&TemplateSpecial> = specials.iter().collect();
                sorted.sort_by(|a, b| a.name.cmp(&b.name));
                for s in sorted {
                    sm.insert(
                        s.name.clone(),
                        json::object([
                            ("id", Value::String(s.name.clone())),
                            (
                                "ids",
                                Value::Array(s.ids.iter().map(|&i| Value::from(i)).collect()),
                            ),
                            (
                                "tokens",
                                Value::Array(
                                    s.tokens.iter().map(|t| Value::String(t.clone())).collect(),
                                ),
                            ),
                        ]),
                    );
                }
                json::object([
                    ("type", Value::String("TemplateProcessing".into())),
                    ("single", template_to_json(single)),
                    ("pair", template_to_json(pair)),
                    ("special_tokens", Value::Object(sm)),
                ])
            }
            PostProcessor::Sequence(v) => json::object([
                ("type", Value::String("Sequence".into())),
                (
                    "processors",
                    Value::Array(v.iter().map(|p| p.to_json()).collect()),
                ),
            ]),
        }
    }
}

/// An encoding being post-processed: ids, and (when offsets are wanted) offsets and each
/// token's strippable leading/trailing char counts.
pub struct Encoded {
    pub ids: Vec<u32>,
    pub offsets: Option<Vec<(usize, usize)>>,
    pub trims: Vec<(usize, usize)>,
}

impl PostProcessor {
    /// Apply to a single-sequence encoding.
    pub fn process(&self, enc: &mut Encoded, add_special_tokens: bool) {
        match self {
            PostProcessor::ByteLevel {
                add_prefix_space,
                trim_offsets,
                ..
            } => {
                if *trim_offsets {
                    if let Some(offs) = enc.offsets.as_mut() {
                        for (i, (o, &(lead, trail))) in offs.iter_mut().zip(&enc.trims).enumerate()
                        {
                            let mut lead = lead;
                            if lead > 0 {
                                let is_first = i == 0 || o.0 == 0;
                                if is_first && *add_prefix_space && lead == 1 {
                                    lead = 0;
                                }
                                o.0 = (o.0 + lead).min(o.1);
                            }
                            if trail > 0 && o.1 >= trail {
                                o.1 = (o.1 - trail).max(o.0);
                            }
                        }
                    }
                }
            }
            PostProcessor::Template {
                single, specials, ..
            } => {
                let mut ids = Vec::with_capacity(enc.ids.len() + 4);
                let mut offs = enc
                    .offsets
                    .as_ref()
                    .map(|o| Vec::with_capacity(o.len() + 4));
                let mut trims = Vec::with_capacity(enc.trims.len() + 4);
                for p in single {
                    match p {
                        TemplatePiece::Sequence { .. } => {
                            ids.extend_from_slice(&enc.ids);
                            if let (Some(o), Some(src)) = (offs.as_mut(), enc.offsets.as_ref()) {
                                o.extend_from_slice(src);
                            }
                            trims.extend_from_slice(&enc.trims);
                        }
                        TemplatePiece::Special { id, .. } => {
                            if !add_special_tokens {
                                continue;
                            }
                            if let Some(s) = specials.iter().find(|s| &s.name == id) {
                                ids.extend_from_slice(&s.ids);
                                if let Some(o) = offs.as_mut() {
                                    o.extend(std::iter::repeat_n((0, 0), s.ids.len()));
                                }
                                for t in &s.tokens {
                                    trims.push(super::model::trim_counts(t));
                                }
                            }
                        }
                    }
                }
                enc.ids = ids;
                enc.offsets = offs;
                enc.trims = trims;
            }
            PostProcessor::Sequence(v) => {
                for p in v {
                    p.process(enc, add_special_tokens);
                }
            }
        }
    }

    /// Whether processing can change ids (a template adds tokens).
    pub fn adds_tokens(&self) -> bool {
        match self {
            PostProcessor::ByteLevel { .. } => false,
            PostProcessor::Template { .. } => true,
            PostProcessor::Sequence(v) => v.iter().any(|p| p.adds_tokens()),
        }
    }
}

/// A decoder.
#[derive(Clone, Debug)]
pub enum Decoder {
    ByteLevel {
        add_prefix_space: bool,
        trim_offsets: bool,
        use_regex: bool,
    },
}

impl Decoder {
    pub fn from_json(v: &Value, path: &str) -> Result<Self> {
        let m = json::obj(v, path)?;
        match json::type_of(m, path)? {
            "ByteLevel" => Ok(Decoder::ByteLevel {
                add_prefix_space: json::boolean(m, "add_prefix_space", path, true)?,
                trim_offsets: json::boolean(m, "trim_offsets", path, true)?,
                use_regex: json::boolean(m, "use_regex", path, true)?,
            }),
            other => Err(err(
                path,
                format!("unsupported decoder type {other:?} (supported: ByteLevel)"),
            )),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Decoder::ByteLevel {
                add_prefix_space,
                trim_offsets,
                use_regex,
            } => json::object([
                ("type", Value::String("ByteLevel".into())),
                ("add_prefix_space", Value::Bool(*add_prefix_space)),
                ("trim_offsets", Value::Bool(*trim_offsets)),
                ("use_regex", Value::Bool(*use_regex)),
            ]),
        }
    }
}
