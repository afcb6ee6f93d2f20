//! In-place edits of JSONC files (VSCode's `launch.json`, `tasks.json`) through jsonc-parser's CST.
//!
//! Only what must change is touched: an entry is found by its identifying key (`name`, `label`),
//! each of its properties is replaced only when its value differs, new entries are appended.
//! So comments, trailing commas, formatting, the user's entries and the user's extra properties
//! on kdbg's entries survive, and a second run changes nothing.

use jsonc_parser::cst::{CstInputValue, CstNode, CstObject, CstRootNode, TrailingCommaMode};
use jsonc_parser::ParseOptions;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("it is not valid JSONC: {0}")]
    Parse(String),
    #[error("its top level is not an object")]
    NotAnObject,
    #[error("`{0}` is not an array")]
    NotAnArray(String),
}

/// An object whose keys keep the order they are given in.
pub(crate) fn obj(fields: Vec<(&str, CstInputValue)>) -> CstInputValue {
    CstInputValue::Object(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

pub(crate) fn strs<S: AsRef<str>>(items: &[S]) -> CstInputValue {
    CstInputValue::Array(items.iter().map(|s| CstInputValue::String(s.as_ref().to_string())).collect())
}

/// `text` with `entries` merged into the array at `array_key`, each matched by `id_key`;
/// `header` properties are added only when missing.
pub(crate) fn merge(
    text: &str,
    header: &[(&str, CstInputValue)],
    array_key: &str,
    id_key: &str,
    entries: &[CstInputValue],
) -> Result<String, MergeError> {
    let root = CstRootNode::parse(text, &ParseOptions::default()).map_err(|e| MergeError::Parse(e.to_string()))?;
    let top = root.object_value().ok_or(MergeError::NotAnObject)?;
    for (i, (key, value)) in header.iter().enumerate() {
        if top.get(key).is_none() {
            top.insert(i, key, escaped(value));
        }
    }
    let array = match top.get(array_key) {
        Some(prop) => prop.array_value().ok_or_else(|| MergeError::NotAnArray(array_key.to_string()))?,
        None => top.append(array_key, CstInputValue::Array(Vec::new())).array_value().expect("just added"),
    };
    for entry in entries {
        let CstInputValue::Object(fields) = entry else { continue };
        let id = fields.iter().find(|(k, _)| k == id_key).map(|(_, v)| to_value(v));
        let existing = array.elements().into_iter().filter_map(|e| e.as_object()).find(|o| {
            o.get(id_key).and_then(|p| p.value()).and_then(|v| node_value(&v)).is_some_and(|v| Some(v) == id)
        });
        match existing {
            Some(o) => update(&o, fields),
            None => {
                array.append(escaped(entry));
            }
        }
    }
    Ok(root.to_string())
}

/// Sets each of `fields` on `o` whose value differs; other properties stay as they are.
fn update(o: &CstObject, fields: &[(String, CstInputValue)]) {
    for (key, want) in fields {
        match o.get(key) {
            Some(prop) => {
                let have = prop.value().and_then(|v| node_value(&v));
                if have.as_ref() != Some(&to_value(want)) {
                    prop.set_value(escaped(want));
                    // A replaced array or object follows the entry's trailing-comma style.
                    if o.uses_trailing_commas() {
                        follow_trailing_commas(prop.value());
                    }
                }
            }
            None => {
                o.append(key, escaped(want));
            }
        }
    }
}

fn follow_trailing_commas(value: Option<CstNode>) {
    let mode = TrailingCommaMode::IfMultiline;
    if let Some(CstNode::Container(c)) = value {
        if let Some(a) = c.as_array() {
            a.set_trailing_commas(mode);
        } else if let Some(o) = c.as_object() {
            o.set_trailing_commas(mode);
        }
    }
}

/// `v` ready for the CST: jsonc-parser 0.26 writes a string as `"` + its text with only `"`
/// escaped + `"` (`CstStringLit::new_escaped`; later versions escape fully), so backslashes and
/// control characters are escaped here. The golden tests (a regexp with `\d`) pin this.
fn escaped(v: &CstInputValue) -> CstInputValue {
    match v {
        CstInputValue::String(s) => {
            let json = serde_json::to_string(s).expect("a string serializes");
            // Undo the quote escaping (the crate adds it) and the surrounding quotes.
            CstInputValue::String(json[1..json.len() - 1].replace(r#"\""#, "\""))
        }
        CstInputValue::Array(items) => CstInputValue::Array(items.iter().map(escaped).collect()),
        CstInputValue::Object(fields) => {
            CstInputValue::Object(fields.iter().map(|(k, v)| (k.clone(), escaped(v))).collect())
        }
        other => other.clone(),
    }
}

/// The JSON value a CST node spells (comments dropped).
pub(crate) fn node_value(node: &CstNode) -> Option<Value> {
    jsonc_parser::parse_to_serde_value(&node.to_string(), &ParseOptions::default()).ok().flatten()
}

pub(crate) fn to_value(v: &CstInputValue) -> Value {
    match v {
        CstInputValue::Null => Value::Null,
        CstInputValue::Bool(b) => Value::Bool(*b),
        CstInputValue::Number(n) => serde_json::from_str(n).unwrap_or(Value::Null),
        CstInputValue::String(s) => Value::String(s.clone()),
        CstInputValue::Array(items) => Value::Array(items.iter().map(to_value).collect()),
        CstInputValue::Object(fields) => Value::Object(fields.iter().map(|(k, v)| (k.clone(), to_value(v))).collect()),
    }
}

/// The elements of the array at `array_key` of a JSONC document, comments dropped.
pub(crate) fn read_array(text: &str, array_key: &str) -> Result<Vec<Value>, MergeError> {
    let value = jsonc_parser::parse_to_serde_value(text, &ParseOptions::default())
        .map_err(|e| MergeError::Parse(e.to_string()))?;
    match value {
        Some(Value::Object(mut top)) => match top.remove(array_key) {
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(MergeError::NotAnArray(array_key.to_string())),
            None => Ok(Vec::new()),
        },
        _ => Err(MergeError::NotAnObject),
    }
}
