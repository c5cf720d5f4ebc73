//! JSON and YAML text as Ansible's filters write them (Python's `json.dumps`, PyYAML's `dump`).
//!
//! Generated config files are diffed against what Ansible would write, so separators, key order,
//! indentation and quoting follow the Python libraries rather than serde's conventions.

use std::fmt::Write as _;

use serde_json::Value as Json;

use super::convert::python_float;
use crate::yaml::{resolve_plain, Yaml};

pub struct JsonStyle {
    pub indent: Option<usize>,
    pub sort_keys: bool,
    pub ensure_ascii: bool,
}

/// `json.dumps(value, indent=…, sort_keys=…, ensure_ascii=…)` with Python's default separators
/// (`", "` and `": "` when compact, `","` and `": "` when indented).
pub fn python_json(value: &Json, style: &JsonStyle) -> String {
    let mut out = String::new();
    write_json(value, style, 0, &mut out);
    out
}

fn write_json(value: &Json, style: &JsonStyle, level: usize, out: &mut String) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => out.push_str(&json_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Json::String(s) => write_json_str(s, style.ensure_ascii, out),
        Json::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                separator(style, level + 1, i == 0, out);
                write_json(item, style, level + 1, out);
            }
            closing(style, level, out);
            out.push(']');
        }
        Json::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut entries: Vec<(&String, &Json)> = map.iter().collect();
            if style.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                separator(style, level + 1, i == 0, out);
                write_json_str(key, style.ensure_ascii, out);
                out.push_str(": ");
                write_json(item, style, level + 1, out);
            }
            closing(style, level, out);
            out.push('}');
        }
    }
}

fn separator(style: &JsonStyle, level: usize, first: bool, out: &mut String) {
    match style.indent {
        Some(indent) => {
            if !first {
                out.push(',');
            }
            out.push('\n');
            out.push_str(&" ".repeat(indent * level));
        }
        None if !first => out.push_str(", "),
        None => {}
    }
}

fn closing(style: &JsonStyle, level: usize, out: &mut String) {
    if let Some(indent) = style.indent {
        out.push('\n');
        out.push_str(&" ".repeat(indent * level));
    }
}

fn json_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else {
        python_float(f)
    }
}

fn write_json_str(s: &str, ensure_ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if ensure_ascii && !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

pub struct YamlStyle {
    pub indent: usize,
    /// PyYAML's `default_flow_style`: `None` writes collections of scalars inline.
    pub flow: Option<bool>,
    pub sort_keys: bool,
}

/// `yaml.dump(value, allow_unicode=True, default_flow_style=…, indent=…, sort_keys=…)`.
/// Long lines are not folded at 80 columns as PyYAML does; the YAML means the same.
pub fn pyyaml_dump(value: &Json, style: &YamlStyle) -> String {
    let indent = style.indent.clamp(2, 9);
    if !is_collection(value) || is_empty_collection(value) || use_flow(value, style) {
        let text = flow(value, style);
        // PyYAML closes a document whose root is a plain scalar with "...".
        let plain_root = !is_collection(value) && !text.starts_with(['\'', '"']);
        return if plain_root {
            format!("{text}\n...\n")
        } else {
            format!("{text}\n")
        };
    }
    let mut out = String::new();
    block(value, style, indent, 0, &mut out);
    out
}

fn is_collection(value: &Json) -> bool {
    matches!(value, Json::Array(_) | Json::Object(_))
}

fn is_empty_collection(value: &Json) -> bool {
    match value {
        Json::Array(items) => items.is_empty(),
        Json::Object(map) => map.is_empty(),
        _ => false,
    }
}

fn use_flow(value: &Json, style: &YamlStyle) -> bool {
    match style.flow {
        Some(flow) => flow,
        None => match value {
            Json::Array(items) => !items.iter().any(is_collection),
            Json::Object(map) => !map.values().any(is_collection),
            _ => true,
        },
    }
}

fn entries<'a>(
    map: &'a serde_json::Map<String, Json>,
    style: &YamlStyle,
) -> Vec<(&'a String, &'a Json)> {
    let mut entries: Vec<_> = map.iter().collect();
    if style.sort_keys {
        entries.sort_by(|a, b| a.0.cmp(b.0));
    }
    entries
}

/// Writes a non-empty block collection whose lines start at `column`.
fn block(value: &Json, style: &YamlStyle, indent: usize, column: usize, out: &mut String) {
    let pad = " ".repeat(column);
    match value {
        Json::Object(map) => {
            for (key, item) in entries(map, style) {
                out.push_str(&pad);
                out.push_str(&scalar_text(&Json::String(key.clone()), false));
                out.push(':');
                if !is_collection(item) || is_empty_collection(item) || use_flow(item, style) {
                    out.push(' ');
                    out.push_str(&flow(item, style));
                    out.push('\n');
                } else if matches!(item, Json::Array(_)) {
                    // PyYAML writes sequences inside mappings without extra indentation.
                    out.push('\n');
                    block(item, style, indent, column, out);
                } else {
                    out.push('\n');
                    block(item, style, indent, column + indent, out);
                }
            }
        }
        Json::Array(items) => {
            for item in items {
                if !is_collection(item) || is_empty_collection(item) || use_flow(item, style) {
                    out.push_str(&pad);
                    out.push_str("- ");
                    out.push_str(&flow(item, style));
                    out.push('\n');
                } else {
                    // The nested block starts on the dash's line: "-   key: value" with indent 4.
                    let mut nested = String::new();
                    block(item, style, indent, column + indent, &mut nested);
                    out.push_str(&pad);
                    out.push('-');
                    out.push_str(&" ".repeat(indent - 1));
                    out.push_str(&nested[column + indent..]);
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&flow(other, style));
            out.push('\n');
        }
    }
}

fn flow(value: &Json, style: &YamlStyle) -> String {
    match value {
        Json::Array(items) => {
            let parts: Vec<String> = items.iter().map(|item| flow_item(item, style)).collect();
            format!("[{}]", parts.join(", "))
        }
        Json::Object(map) => {
            let parts: Vec<String> = entries(map, style)
                .into_iter()
                .map(|(k, v)| {
                    format!(
                        "{}: {}",
                        scalar_text(&Json::String(k.clone()), true),
                        flow_item(v, style)
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        scalar => scalar_text(scalar, false),
    }
}

fn flow_item(value: &Json, style: &YamlStyle) -> String {
    if is_collection(value) {
        flow(value, style)
    } else {
        scalar_text(value, true)
    }
}

fn scalar_text(value: &Json, in_flow: bool) -> String {
    match value {
        Json::Null => "null".into(),
        Json::Bool(b) => (if *b { "true" } else { "false" }).into(),
        Json::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) if f.is_nan() => ".nan".into(),
            (_, _, Some(f)) if f.is_infinite() => (if f > 0.0 { ".inf" } else { "-.inf" }).into(),
            (_, _, Some(f)) => python_float(f),
            _ => n.to_string(),
        },
        Json::String(s) => yaml_string(s, in_flow),
        other => flow(
            other,
            &YamlStyle {
                indent: 2,
                flow: Some(true),
                sort_keys: true,
            },
        ),
    }
}

fn yaml_string(s: &str, in_flow: bool) -> String {
    if s.chars()
        .any(|c| (c.is_control() && c != '\n') || c == '\u{feff}')
        || s.contains('\n')
    {
        return double_quoted(s);
    }
    if needs_quotes(s, in_flow) {
        return format!("'{}'", s.replace('\'', "''"));
    }
    s.to_string()
}

fn needs_quotes(s: &str, in_flow: bool) -> bool {
    if s.is_empty() || s.starts_with([' ', '\t']) || s.ends_with([' ', '\t']) {
        return true;
    }
    if s.starts_with([
        '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@',
        '`',
    ]) {
        // "-x" and "key:x" style texts are plain in PyYAML only when no space follows; keep it simple and safe.
        let second = s.chars().nth(1);
        let indicator_ok = s.starts_with(['-', '?', ':'])
            && second.is_some_and(|c| !c.is_whitespace())
            && !in_flow;
        if !indicator_ok {
            return true;
        }
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return true;
    }
    if in_flow && s.contains([',', '[', ']', '{', '}']) {
        return true;
    }
    !matches!(resolve_plain(s), Yaml::Str(_)) || looks_like_timestamp(s)
}

fn looks_like_timestamp(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.len() >= 8
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && s[5..]
            .split(['-', 'T', 't', ' '])
            .next()
            .is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{feff}' => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod unit {
    use super::*;
    use serde_json::json;

    fn nice_json(v: &Json) -> String {
        python_json(
            v,
            &JsonStyle {
                indent: Some(4),
                sort_keys: true,
                ensure_ascii: true,
            },
        )
    }

    #[test]
    fn json_like_python() {
        let v = json!({"b": [1, 2.0, "é"], "a": {}, "c": null});
        assert_eq!(
            python_json(
                &v,
                &JsonStyle {
                    indent: None,
                    sort_keys: false,
                    ensure_ascii: true
                }
            ),
            r#"{"b": [1, 2.0, "\u00e9"], "a": {}, "c": null}"#
        );
        assert_eq!(
            nice_json(&v),
            "{\n    \"a\": {},\n    \"b\": [\n        1,\n        2.0,\n        \"\\u00e9\"\n    ],\n    \"c\": null\n}"
        );
    }

    #[test]
    fn yaml_like_pyyaml() {
        let v = json!({"name": "web", "ports": [80, 443], "env": {"A": "yes", "B": "1.0"}, "list": [{"x": 1, "y": "a: b"}]});
        let nice = pyyaml_dump(
            &v,
            &YamlStyle {
                indent: 4,
                flow: Some(false),
                sort_keys: true,
            },
        );
        assert_eq!(
            nice,
            "env:\n    A: 'yes'\n    B: '1.0'\nlist:\n-   x: 1\n    y: 'a: b'\nname: web\nports:\n- 80\n- 443\n"
        );
        let plain = pyyaml_dump(
            &v,
            &YamlStyle {
                indent: 2,
                flow: None,
                sort_keys: true,
            },
        );
        assert_eq!(
            plain,
            "env: {A: 'yes', B: '1.0'}\nlist:\n- {x: 1, y: 'a: b'}\nname: web\nports: [80, 443]\n"
        );
        assert_eq!(
            pyyaml_dump(
                &json!("abc"),
                &YamlStyle {
                    indent: 2,
                    flow: None,
                    sort_keys: true
                }
            ),
            "abc\n...\n"
        );
        assert_eq!(
            pyyaml_dump(
                &json!("multi\nline"),
                &YamlStyle {
                    indent: 2,
                    flow: None,
                    sort_keys: true
                }
            ),
            "\"multi\\nline\"\n"
        );
    }
}
