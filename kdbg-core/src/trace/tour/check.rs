//! A tour file checked field by field, so that an error names the field (`waypoints[2].functions`)
//! and its fix, not only serde's line and column.

use serde_json::Value;

/// What a field must hold.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Texts,
    /// At least one string.
    SomeTexts,
    Waypoints,
}

/// `(field, kind, required)` of a tour's top level and of each waypoint.
const TOUR_FIELDS: &[(&str, Kind, bool)] = &[
    ("name", Kind::Text, true),
    ("component", Kind::Text, true),
    ("story", Kind::Text, true),
    ("waypoints", Kind::Waypoints, true),
];
const WAYPOINT_FIELDS: &[(&str, Kind, bool)] = &[
    ("name", Kind::Text, true),
    ("functions", Kind::SomeTexts, true),
    ("means", Kind::Text, true),
    ("capture", Kind::Texts, false),
    ("cond", Kind::Text, false),
];

/// A field that is wrong: where (`waypoints[2].functions`, empty for the whole file), what, the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: String,
    pub problem: String,
    pub fix: String,
}

/// The first wrong field of `doc` (a parsed tour file), if any.
pub fn check(doc: &Value) -> Option<FieldProblem> {
    object(doc, "", TOUR_FIELDS).err()
}

fn object(v: &Value, at: &str, fields: &[(&str, Kind, bool)]) -> Result<(), FieldProblem> {
    let Some(map) = v.as_object() else {
        return Err(wrong(at, v, "an object", "an object: `{ \"name\": ..., ... }`"));
    };
    let known: Vec<&str> = fields.iter().map(|f| f.0).collect();
    if let Some(k) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(FieldProblem {
            field: join(at, k),
            problem: "unknown field".into(),
            fix: format!("remove it or correct its spelling; the fields here are {}", known.join(", ")),
        });
    }
    for (name, kind, required) in fields {
        let field = join(at, name);
        match map.get(*name) {
            None | Some(Value::Null) if *required => {
                return Err(FieldProblem {
                    field,
                    problem: "missing".into(),
                    fix: format!("add it: {}", example(*kind)),
                })
            }
            // `null` is an absent optional string (serde's `Option`), not an absent array.
            None | Some(Value::Null) if matches!(kind, Kind::Text) => {}
            None => {}
            Some(value) => content(value, &field, *kind)?,
        }
    }
    Ok(())
}

fn content(v: &Value, field: &str, kind: Kind) -> Result<(), FieldProblem> {
    match kind {
        Kind::Text => match v.as_str() {
            Some(s) if s.trim().is_empty() => Err(empty(field, "an empty string", example(kind))),
            Some(_) => Ok(()),
            None => Err(wrong(field, v, "a string", example(kind))),
        },
        Kind::Texts | Kind::SomeTexts | Kind::Waypoints => {
            let Some(items) = v.as_array() else { return Err(wrong(field, v, "an array", example(kind))) };
            if !matches!(kind, Kind::Texts) && items.is_empty() {
                return Err(empty(field, "an empty array", example(kind)));
            }
            for (i, item) in items.iter().enumerate() {
                let at = format!("{field}[{i}]");
                match kind {
                    Kind::Waypoints => object(item, &at, WAYPOINT_FIELDS)?,
                    _ => content(item, &at, Kind::Text)?,
                }
            }
            Ok(())
        }
    }
}

fn example(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "a string, e.g. \"the handler answers\"",
        Kind::Texts | Kind::SomeTexts => "an array of strings, e.g. [\"net/http.(*ServeMux).ServeHTTP\"]",
        Kind::Waypoints => {
            "an array of waypoints, each { \"name\", \"functions\", \"means\" } (see README, \"Writing a tour\")"
        }
    }
}

fn wrong(field: &str, v: &Value, expected: &str, fix: &str) -> FieldProblem {
    FieldProblem {
        field: field.into(),
        problem: format!("expected {expected}, found {}", found(v)),
        fix: format!("make it {fix}"),
    }
}

fn empty(field: &str, what: &str, fix: &str) -> FieldProblem {
    FieldProblem { field: field.into(), problem: what.into(), fix: format!("give it a value: {fix}") }
}

fn found(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn join(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.into()
    } else {
        format!("{at}.{name}")
    }
}
