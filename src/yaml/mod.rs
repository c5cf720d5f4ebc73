//! YAML loading with source positions and YAML 1.1 scalar rules (as PyYAML, hence Ansible, reads them).
//!
//! Every node keeps the file:line:column it came from, so that later layers can point at the exact
//! spot of a mistake. Plain scalars resolve like YAML 1.1: `yes/no/on/off` are booleans, `0755` is
//! octal, `~` is null; quoted scalars always stay strings. Merge keys (`<<`) are applied.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::error::{Diagnostic, Span};

#[derive(Clone, Debug, PartialEq)]
pub enum Yaml {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Yaml,
    pub span: Span,
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Yaml::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Yaml::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Yaml::Null)
    }

    /// The value under a string key of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.key_string().as_deref() == Some(key))
            .map(|(_, v)| v)
    }

    /// A mapping key as text (numbers and booleans as Ansible would print them).
    pub fn key_string(&self) -> Option<String> {
        match &self.value {
            Yaml::Str(s) => Some(s.clone()),
            Yaml::Int(i) => Some(i.to_string()),
            Yaml::Float(f) => Some(f.to_string()),
            Yaml::Bool(b) => Some(if *b { "True".into() } else { "False".into() }),
            Yaml::Null => Some("None".into()),
            _ => None,
        }
    }

    /// A short name of the node's type for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.value {
            Yaml::Null => "null",
            Yaml::Bool(_) => "a boolean",
            Yaml::Int(_) => "an integer",
            Yaml::Float(_) => "a number",
            Yaml::Str(_) => "a string",
            Yaml::Seq(_) => "a list",
            Yaml::Map(_) => "a mapping",
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.value {
            Yaml::Null => Value::Null,
            Yaml::Bool(b) => Value::Bool(*b),
            Yaml::Int(i) => Value::from(*i),
            Yaml::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Yaml::Str(s) => Value::String(s.clone()),
            Yaml::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Yaml::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    map.insert(k.key_string().unwrap_or_default(), v.to_json());
                }
                Value::Object(map)
            }
        }
    }
}

/// Parses every document of a file.
pub fn load_file(path: &Path) -> Result<Vec<Node>, Diagnostic> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Diagnostic::parse(format!("cannot read {}: {e}", path.display()), None))?;
    load_str(&text, path)
}

/// Parses every document of `text`, attributing positions to `path`.
pub fn load_str(text: &str, path: &Path) -> Result<Vec<Node>, Diagnostic> {
    let file = Arc::new(path.to_path_buf());
    let mut builder = Builder {
        file: file.clone(),
        stack: Vec::new(),
        docs: Vec::new(),
        anchors: HashMap::new(),
        error: None,
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        let m = e.marker();
        return Err(Diagnostic::parse(
            format!("YAML syntax error: {}", e.info()),
            Some(Span::new(file, m.line(), m.col() + 1)),
        ));
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.docs)
}

/// Parses a file holding exactly one document (an empty file gives null).
pub fn load_single(path: &Path) -> Result<Node, Diagnostic> {
    let mut docs = load_file(path)?;
    match docs.len() {
        0 => Ok(Node {
            value: Yaml::Null,
            span: Span::new(Arc::new(path.to_path_buf()), 1, 1),
        }),
        1 => Ok(docs.remove(0)),
        _ => Err(Diagnostic::parse(
            "expected a single YAML document, found several",
            Some(docs[1].span.clone()),
        )),
    }
}

enum Frame {
    Seq {
        span: Span,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        span: Span,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
    },
}

struct Builder {
    file: Arc<PathBuf>,
    stack: Vec<Frame>,
    docs: Vec<Node>,
    anchors: HashMap<usize, Node>,
    error: Option<Diagnostic>,
}

use std::path::PathBuf;

impl Builder {
    fn span(&self, mark: &Marker) -> Span {
        Span::new(self.file.clone(), mark.line(), mark.col() + 1)
    }

    fn push_node(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let span = self.span(&mark);
                let forced_str = tag
                    .as_ref()
                    .is_some_and(|t| t.suffix == "str" || t.suffix == "unsafe");
                let value = if style == TScalarStyle::Plain && !forced_str {
                    resolve_plain(&text)
                } else {
                    Yaml::Str(text)
                };
                let node = Node { value, span };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push_node(node);
            }
            Event::SequenceStart(anchor, _) => {
                let span = self.span(&mark);
                self.stack.push(Frame::Seq {
                    span,
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(anchor, _) => {
                let span = self.span(&mark);
                self.stack.push(Frame::Map {
                    span,
                    anchor,
                    entries: Vec::new(),
                    pending_key: None,
                });
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq {
                    span,
                    anchor,
                    items,
                }) = self.stack.pop()
                {
                    let node = Node {
                        value: Yaml::Seq(items),
                        span,
                    };
                    if anchor > 0 {
                        self.anchors.insert(anchor, node.clone());
                    }
                    self.push_node(node);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    span,
                    anchor,
                    entries,
                    ..
                }) = self.stack.pop()
                {
                    let entries = match apply_merge_keys(entries) {
                        Ok(e) => e,
                        Err(err) => {
                            self.error = Some(err);
                            return;
                        }
                    };
                    if let Some(err) = duplicate_key_error(&entries) {
                        self.error = Some(err);
                        return;
                    }
                    // The parser marks a block mapping where its first value starts; its first key is
                    // where a person sees the mapping begin.
                    let span = entries.first().map(|(k, _)| k.span.clone()).unwrap_or(span);
                    let node = Node {
                        value: Yaml::Map(entries),
                        span,
                    };
                    if anchor > 0 {
                        self.anchors.insert(anchor, node.clone());
                    }
                    self.push_node(node);
                }
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(node) => {
                    let node = node.clone();
                    self.push_node(node);
                }
                None => {
                    self.error = Some(Diagnostic::parse(
                        "YAML alias refers to an unknown anchor",
                        Some(self.span(&mark)),
                    ));
                }
            },
            Event::DocumentEnd => {
                // An empty document still counts: keep document indices aligned.
            }
            _ => {}
        }
    }
}

/// YAML `<<` merge keys: entries of the merged mapping(s) come first, explicit keys win.
fn apply_merge_keys(entries: Vec<(Node, Node)>) -> Result<Vec<(Node, Node)>, Diagnostic> {
    if !entries.iter().any(|(k, _)| k.as_str() == Some("<<")) {
        return Ok(entries);
    }
    let mut explicit = Vec::new();
    let mut merged: Vec<(Node, Node)> = Vec::new();
    for (k, v) in entries {
        if k.as_str() != Some("<<") {
            explicit.push((k, v));
            continue;
        }
        let sources: Vec<Node> = match v.value {
            Yaml::Map(_) => vec![v],
            Yaml::Seq(items) => items,
            _ => {
                return Err(Diagnostic::parse(
                    "a merge key `<<` needs a mapping or a list of mappings",
                    Some(v.span),
                ))
            }
        };
        for source in sources {
            match source.value {
                Yaml::Map(inner) => {
                    for (ik, iv) in inner {
                        if !merged
                            .iter()
                            .any(|(mk, _)| mk.key_string() == ik.key_string())
                        {
                            merged.push((ik, iv));
                        }
                    }
                }
                _ => {
                    return Err(Diagnostic::parse(
                        "a merge key `<<` needs mappings",
                        Some(source.span),
                    ))
                }
            }
        }
    }
    merged.retain(|(mk, _)| {
        !explicit
            .iter()
            .any(|(ek, _)| ek.key_string() == mk.key_string())
    });
    merged.extend(explicit);
    Ok(merged)
}

/// Ansible warns and keeps the last value; a duplicate key is nearly always a mistake, so it is an error here.
fn duplicate_key_error(entries: &[(Node, Node)]) -> Option<Diagnostic> {
    let mut seen: HashMap<String, &Span> = HashMap::new();
    for (k, _) in entries {
        if let Some(name) = k.key_string() {
            if let Some(first) = seen.get(&name) {
                return Some(
                    Diagnostic::parse(
                        format!("duplicate key `{name}` in a mapping"),
                        Some(k.span.clone()),
                    )
                    .with_hint(format!("it was first set at {first}")),
                );
            }
            seen.insert(name, &k.span);
        }
    }
    None
}

/// Resolves an unquoted scalar the way YAML 1.1 (PyYAML) does.
pub fn resolve_plain(text: &str) -> Yaml {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Yaml::Null,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Yaml::Bool(true)
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Yaml::Bool(false)
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Yaml::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Yaml::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Yaml::Float(f64::NAN),
        _ => {}
    }
    if let Some(i) = parse_yaml11_int(text) {
        return Yaml::Int(i);
    }
    if is_yaml11_float(text) {
        if let Ok(f) = text.replace('_', "").parse::<f64>() {
            return Yaml::Float(f);
        }
    }
    Yaml::Str(text.to_string())
}

fn parse_yaml11_int(text: &str) -> Option<i64> {
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if body.is_empty() || body.starts_with('_') {
        return None;
    }
    let digits = body.replace('_', "");
    let value = if let Some(bin) = digits.strip_prefix("0b") {
        i64::from_str_radix(bin, 2).ok()?
    } else if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else if digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse::<i64>().ok()?
    } else {
        return None;
    };
    Some(if negative { -value } else { value })
}

fn is_yaml11_float(text: &str) -> bool {
    // [-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?  (YAML 1.1 needs the dot)
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let Some(dot) = mantissa.find('.') else {
        return false;
    };
    let (int_part, frac_part) = (&mantissa[..dot], &mantissa[dot + 1..]);
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if !digits_ok(int_part)
        || !digits_ok(frac_part)
        || (int_part.is_empty() && frac_part.is_empty())
    {
        return false;
    }
    match exponent {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(src: &str) -> Node {
        load_str(src, Path::new("t.yml")).expect("parses").remove(0)
    }

    #[test]
    fn yaml11_scalars() {
        let n = one("a: yes\nb: 'yes'\nc: 0755\nd: 1.5\ne: ~\nf: On\ng: 1e3\nh: 0x1F\n");
        assert_eq!(n.get("a").map(|n| &n.value), Some(&Yaml::Bool(true)));
        assert_eq!(n.get("b").map(|n| &n.value), Some(&Yaml::Str("yes".into())));
        assert_eq!(n.get("c").map(|n| &n.value), Some(&Yaml::Int(0o755)));
        assert_eq!(n.get("d").map(|n| &n.value), Some(&Yaml::Float(1.5)));
        assert_eq!(n.get("e").map(|n| &n.value), Some(&Yaml::Null));
        assert_eq!(n.get("f").map(|n| &n.value), Some(&Yaml::Bool(true)));
        assert_eq!(n.get("g").map(|n| &n.value), Some(&Yaml::Str("1e3".into())));
        assert_eq!(n.get("h").map(|n| &n.value), Some(&Yaml::Int(31)));
    }

    #[test]
    fn positions_are_one_based() {
        let n = one("- name: x\n  comand: echo\n");
        let task = match &n.value {
            Yaml::Seq(items) => &items[0],
            _ => panic!("expected a sequence"),
        };
        let (k, _) = &task.as_map().expect("map")[1];
        assert_eq!((k.span.line, k.span.col), (2, 3));
    }

    #[test]
    fn syntax_error_has_position() {
        let err = load_str("a: [1, 2\nb: 3\n", Path::new("t.yml")).expect_err("fails");
        assert!(err.span.is_some());
    }

    #[test]
    fn merge_keys_and_aliases() {
        let n = one("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n");
        let other = n.get("other").expect("other").to_json();
        assert_eq!(other, serde_json::json!({"x": 1, "y": 3}));
    }

    #[test]
    fn duplicate_keys_rejected() {
        assert!(load_str("a: 1\na: 2\n", Path::new("t.yml")).is_err());
    }
}
