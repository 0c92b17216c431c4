//! Small helpers to read a `serde_json::Value` with errors that name the JSON path.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Source name used in errors until the caller substitutes a file path.
pub const SOURCE: &str = "tokenizer.json";

/// An error about the value at `path` (a JSON path such as `pre_tokenizer.pretokenizers[1]`).
pub fn err(path: &str, message: impl std::fmt::Display) -> Error {
    Error::Parse {
        source: SOURCE.to_string(),
        line: 0,
        message: if path.is_empty() {
            message.to_string()
        } else {
            format!("at {path}: {message}")
        },
    }
}

/// Replace the source name of a parse error (used when the JSON came from a file).
pub fn with_source(e: Error, source: &str) -> Error {
    match e {
        Error::Parse { line, message, .. } => Error::Parse {
            source: source.to_string(),
            line,
            message,
        },
        other => other,
    }
}

/// `path.key`
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `path[i]`
pub fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// The value as an object.
pub fn obj<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| err(path, format!("expected an object, got {}", kind(v))))
}

/// The value as an array.
pub fn arr<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>> {
    v.as_array()
        .ok_or_else(|| err(path, format!("expected an array, got {}", kind(v))))
}

/// A short description of a JSON value's type.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The `"type"` field of a component.
pub fn type_of<'a>(m: &'a Map<String, Value>, path: &str) -> Result<&'a str> {
    match m.get("type") {
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(err(
            &join(path, "type"),
            format!("expected a string, got {}", kind(v)),
        )),
        None => Err(err(path, "missing \"type\"")),
    }
}

/// A required string field.
pub fn string(m: &Map<String, Value>, key: &str, path: &str) -> Result<String> {
    match m.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(err(
            &join(path, key),
            format!("expected a string, got {}", kind(v)),
        )),
        None => Err(err(path, format!("missing \"{key}\""))),
    }
}

/// An optional string field (`null` or absent → `None`).
pub fn opt_string(m: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(err(
            &join(path, key),
            format!("expected a string or null, got {}", kind(v)),
        )),
    }
}

/// A boolean field with a default (absent or `null` → `default`).
pub fn boolean(m: &Map<String, Value>, key: &str, path: &str, default: bool) -> Result<bool> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(err(
            &join(path, key),
            format!("expected a boolean, got {}", kind(v)),
        )),
    }
}

/// A required boolean field.
pub fn req_boolean(m: &Map<String, Value>, key: &str, path: &str) -> Result<bool> {
    match m.get(key) {
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(err(
            &join(path, key),
            format!("expected a boolean, got {}", kind(v)),
        )),
        None => Err(err(path, format!("missing \"{key}\""))),
    }
}

/// A u32 value.
pub fn as_u32(v: &Value, path: &str) -> Result<u32> {
    v.as_u64()
        .and_then(|x| u32::try_from(x).ok())
        .ok_or_else(|| err(path, format!("expected an integer in [0, 2**32), got {v}")))
}

/// Build a JSON object from `(key, value)` pairs, keeping their order.
pub fn object<I: IntoIterator<Item = (&'static str, Value)>>(items: I) -> Value {
    let mut m = Map::new();
    for (k, v) in items {
        m.insert(k.to_string(), v);
    }
    Value::Object(m)
}
