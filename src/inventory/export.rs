//! `ansible-inventory` compatible output: `--list`, `--graph [group]`, `--host NAME`.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::Diagnostic;

use super::{Inventory, INTERNAL_HOST_VARS};

/// A host's merged variables without the ones `ansible-inventory` hides.
fn printable_vars(inv: &Inventory, host: &str) -> Map<String, Value> {
    let mut vars = inv.vars_for_host(host);
    for internal in INTERNAL_HOST_VARS {
        vars.shift_remove(internal);
    }
    vars
}

pub fn list_json(inv: &Inventory) -> Value {
    let available: Vec<String> = inv.host_names();
    let available_set: HashSet<&str> = available.iter().map(String::as_str).collect();
    let mut results = Map::new();
    let mut seen = HashSet::new();
    format_group(inv, "all", &available_set, &mut seen, &mut results);
    let mut hostvars = Map::new();
    for host in &available {
        let vars = printable_vars(inv, host);
        if !vars.is_empty() {
            hostvars.insert(host.clone(), Value::Object(vars));
        }
    }
    let mut meta = Map::new();
    meta.insert("hostvars".into(), Value::Object(hostvars));
    meta.insert("profile".into(), Value::from("inventory_legacy"));
    results.insert("_meta".into(), Value::Object(meta));
    Value::Object(results)
}

fn format_group(
    inv: &Inventory,
    name: &str,
    available: &HashSet<&str>,
    seen: &mut HashSet<String>,
    results: &mut Map<String, Value>,
) {
    let Some(group) = inv.groups.get(name) else {
        return;
    };
    let mut entry = Map::new();
    if name != "all" {
        let hosts: Vec<Value> = group
            .hosts
            .iter()
            .filter(|h| available.contains(h.as_str()))
            .map(|h| Value::from(h.as_str()))
            .collect();
        if !hosts.is_empty() {
            entry.insert("hosts".into(), Value::Array(hosts));
        }
    }
    if !group.children.is_empty() {
        entry.insert("children".into(), Value::from(group.children.clone()));
    }
    for child in &group.children {
        if seen.insert(child.clone()) {
            format_group(inv, child, available, seen, results);
        }
    }
    if !entry.is_empty() {
        results.insert(name.to_string(), Value::Object(entry));
    }
}

pub fn graph(inv: &Inventory, group: Option<&str>) -> Result<String, Diagnostic> {
    let start = group.unwrap_or("all");
    if !inv.groups.contains_key(start) {
        let mut error = Diagnostic::options(format!(
            "Pattern must be valid group name when using --graph: {start}"
        ));
        if let Some(candidate) =
            crate::error::did_you_mean(start, inv.groups.keys().map(String::as_str))
        {
            error = error.with_hint(format!("did you mean `{candidate}`?"));
        }
        return Err(error);
    }
    let mut lines = Vec::new();
    graph_group(inv, start, 0, &mut lines);
    Ok(lines.join("\n"))
}

fn graph_line(name: &str, depth: usize) -> String {
    if depth == 0 {
        name.to_string()
    } else {
        format!("{}--{name}", "  |".repeat(depth))
    }
}

fn graph_group(inv: &Inventory, name: &str, depth: usize, lines: &mut Vec<String>) {
    let Some(group) = inv.groups.get(name) else {
        return;
    };
    lines.push(graph_line(&format!("@{name}:"), depth));
    for child in &group.children {
        graph_group(inv, child, depth + 1, lines);
    }
    if name != "all" {
        for host in &group.hosts {
            lines.push(graph_line(host, depth + 1));
        }
    }
}

pub fn host_json(inv: &Inventory, host: &str) -> Option<Value> {
    if !inv.has_host(host) && !inv.is_implicit_localhost(host) {
        return None;
    }
    Some(Value::Object(printable_vars(inv, host)))
}

/// Renders JSON exactly as `ansible-inventory` does (Python `json.dumps(sort_keys=True, indent=4)`):
/// sorted keys, four-space indent, non-ASCII characters escaped.
pub fn to_ansible_json(value: &Value) -> String {
    let sorted = sort_keys(value);
    let mut buffer = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut buffer, formatter);
    if sorted.serialize(&mut serializer).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buffer);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

fn sort_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut sorted = Map::new();
            for key in keys {
                sorted.insert(key.clone(), sort_keys(&map[key]));
            }
            Value::Object(sorted)
        }
        Value::Array(items) => Value::Array(items.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}
