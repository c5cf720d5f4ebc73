//! Conversions between template values and JSON variables, and Python-style text forms.
//!
//! Ansible renders values through Python's `str()`: `True`, `None`, `['a', 1]`, `{'k': 'v'}`.
//! Users see that form in messages and files, so containers print the same way here.

use std::fmt::Write as _;

use minijinja::value::{Value, ValueKind};
use serde_json::Value as Json;

use super::chain;

/// A template value as JSON (undefined and none become null).
pub fn to_json(value: &Value) -> Json {
    if chain::is_chain_undefined(value) {
        return Json::Null;
    }
    match value.kind() {
        ValueKind::Undefined | ValueKind::None | ValueKind::Invalid => Json::Null,
        ValueKind::Bool => Json::Bool(value.is_true()),
        ValueKind::Number => number_to_json(value),
        ValueKind::String => Json::String(value.as_str().unwrap_or_default().to_string()),
        ValueKind::Bytes => {
            Json::String(String::from_utf8_lossy(value.as_bytes().unwrap_or_default()).into_owned())
        }
        ValueKind::Seq | ValueKind::Iterable => match value.try_iter() {
            Ok(items) => Json::Array(items.map(|item| to_json(&item)).collect()),
            Err(_) => Json::Null,
        },
        ValueKind::Map => {
            let mut map = serde_json::Map::new();
            if let Ok(keys) = value.try_iter() {
                for key in keys {
                    let item = value.get_item(&key).unwrap_or_default();
                    map.insert(python_str(&key), to_json(&item));
                }
            }
            Json::Object(map)
        }
        _ => Json::String(value.to_string()),
    }
}

fn number_to_json(value: &Value) -> Json {
    if value.is_integer() {
        if let Some(i) = value.as_i64() {
            return Json::from(i);
        }
        if let Ok(u) = u64::try_from(value.clone()) {
            return Json::from(u);
        }
    }
    match f64::try_from(value.clone()) {
        Ok(f) => serde_json::Number::from_f64(f)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Err(_) => Json::Null,
    }
}

/// A JSON variable as a template value (maps keep their order).
pub fn from_json(value: &Json) -> Value {
    match value {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => Value::from(items.iter().map(from_json).collect::<Vec<_>>()),
        Json::Object(map) => Value::from_pairs(
            map.iter()
                .map(|(k, v)| (Value::from(k.as_str()), from_json(v))),
        ),
    }
}

/// Python's `str()` of a value: strings as they are, everything else as `repr()`.
pub fn python_str(value: &Value) -> String {
    match value.kind() {
        ValueKind::String => value.as_str().unwrap_or_default().to_string(),
        _ => {
            let mut out = String::new();
            python_repr(value, &mut out);
            out
        }
    }
}

/// Python's `repr()` of a value.
pub fn python_repr(value: &Value, out: &mut String) {
    match value.kind() {
        ValueKind::Undefined | ValueKind::Invalid => {}
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number => out.push_str(&python_number(value)),
        ValueKind::String => python_repr_str(value.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            if let Ok(items) = value.try_iter() {
                for (i, item) in items.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    python_repr(&item, out);
                }
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            if let Ok(keys) = value.try_iter() {
                for (i, key) in keys.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    python_repr(&key, out);
                    out.push_str(": ");
                    python_repr(&value.get_item(&key).unwrap_or_default(), out);
                }
            }
            out.push('}');
        }
        _ => {
            let _ = write!(out, "{value}");
        }
    }
}

/// A number as Python prints it (`1.0` for integral floats).
pub fn python_number(value: &Value) -> String {
    if value.is_integer() {
        return value.to_string();
    }
    match f64::try_from(value.clone()) {
        Ok(f) => python_float(f),
        Err(_) => value.to_string(),
    }
}

pub fn python_float(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else if f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        let text = format!("{f:?}");
        // Python writes exponents with a sign: 1e+20.
        match text.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => text,
        }
    }
}

/// Python's `repr()` of a string: single quotes unless the text holds a single quote only.
pub fn python_repr_str(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

#[cfg(test)]
mod unit {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trip_keeps_types_and_order() {
        let original = json!({"z": 1, "a": [true, null, 1.5, "x"], "m": {"k": -3}, "big": 18446744073709551615u64});
        assert_eq!(to_json(&from_json(&original)), original);
        let keys: Vec<String> = to_json(&from_json(&original))
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, ["z", "a", "m", "big"]);
    }

    #[test]
    fn undefined_becomes_null() {
        assert_eq!(to_json(&Value::UNDEFINED), Json::Null);
    }

    #[test]
    fn python_forms() {
        let v = from_json(&json!({"a": [1, "it's", true, null, 2.0], "b": "x"}));
        assert_eq!(
            python_str(&v),
            r#"{'a': [1, "it's", True, None, 2.0], 'b': 'x'}"#
        );
        assert_eq!(python_str(&Value::from("plain")), "plain");
        assert_eq!(python_float(1e20), "1e+20");
        assert_eq!(python_float(0.5), "0.5");
    }
}
