//! Ansible's filters (and the few Jinja2 builtins whose minijinja form differs where users notice).
//!
//! Arguments bind like Python's: positionally or by keyword, with Ansible's parameter names.

use std::path::Path;

use base64::Engine as _;
use indexmap::IndexMap;
use minijinja::value::{Kwargs, Rest, Value, ValueKind, ValueOrKwargs};
use minijinja::{escape_formatter, Environment, Error, ErrorKind, Output, State};
use regex::Regex;
use serde_json::Value as Json;

use super::chain::{self, require_defined};
use super::convert::{from_json, python_repr, python_str, to_json};
use super::serialize::{python_json, pyyaml_dump, JsonStyle, YamlStyle};
use super::{bool_word, MANDATORY_PREFIX};

pub fn register(env: &mut Environment<'static>) {
    env.add_filter("default", default);
    env.add_filter("d", default);
    env.add_filter("mandatory", mandatory);
    env.add_filter("bool", to_bool);
    env.add_filter("int", int);
    env.add_filter("float", float);
    env.add_filter("string", string);
    env.add_filter("length", length);
    env.add_filter("count", length);
    env.add_filter("regex_replace", regex_replace);
    env.add_filter("regex_search", regex_search);
    env.add_filter("regex_findall", regex_findall);
    env.add_filter("regex_escape", regex_escape);
    env.add_filter("union", union);
    env.add_filter("intersect", intersect);
    env.add_filter("difference", difference);
    env.add_filter("symmetric_difference", symmetric_difference);
    env.add_filter("combine", combine);
    env.add_filter("dict2items", dict2items);
    env.add_filter("items2dict", items2dict);
    env.add_filter("to_json", to_json_filter);
    env.add_filter("to_nice_json", to_nice_json);
    env.add_filter("from_json", from_json_filter);
    env.add_filter("to_yaml", to_yaml);
    env.add_filter("to_nice_yaml", to_nice_yaml);
    env.add_filter("from_yaml", from_yaml);
    env.add_filter("from_yaml_all", from_yaml_all);
    env.add_filter("b64encode", b64encode);
    env.add_filter("b64decode", b64decode);
    env.add_filter("hash", hash);
    env.add_filter("checksum", |v: &Value| digest_hex("sha1", &input_str(v)?));
    env.add_filter("sha1", |v: &Value| digest_hex("sha1", &input_str(v)?));
    env.add_filter("md5", |v: &Value| digest_hex("md5", &input_str(v)?));
    env.add_filter("basename", |v: &Value| {
        Ok::<_, Error>(basename(&input_str(v)?))
    });
    env.add_filter("dirname", |v: &Value| {
        Ok::<_, Error>(dirname(&input_str(v)?))
    });
    env.add_filter("expanduser", |v: &Value| {
        Ok::<_, Error>(expanduser(&input_str(v)?))
    });
    env.add_filter("splitext", splitext);
    env.add_filter("path_join", path_join);
    env.add_filter("quote", |v: &Value| {
        Ok::<_, Error>(shell_quote(&input_str(v)?))
    });
    env.add_filter("ternary", ternary);
    env.add_filter("urlsplit", urlsplit);
    env.add_filter("flatten", flatten);
    env.add_filter("product", product);
    env.add_filter("zip_longest", zip_longest);
    env.add_filter("subelements", subelements);
    env.add_filter("extract", extract);
    env.add_filter("type_debug", |v: &Value| type_name(v));
    env.add_function("dict", dict);
}

/// Prints values as Python's `str()` does (containers as `['a', 1]`, `{'k': True}`).
pub fn python_formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    if chain::is_chain_undefined(value) {
        return require_defined(value);
    }
    match value.kind() {
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => {
            let mut text = String::new();
            python_repr(value, &mut text);
            out.write_str(&text)
                .map_err(|_| Error::new(ErrorKind::WriteFailure, "cannot write output"))
        }
        _ => escape_formatter(out, state, value),
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

/// Binds positional and keyword arguments to parameter names, as Python does.
pub(super) fn bind<const N: usize>(
    filter: &str,
    args: Rest<ValueOrKwargs>,
    names: [&str; N],
) -> Result<[Option<Value>; N], Error> {
    let mut bound: [Option<Value>; N] = std::array::from_fn(|_| None);
    let mut position = 0;
    for arg in args.into_values() {
        if arg.is_kwargs() {
            let kwargs = Kwargs::try_from(arg)?;
            for key in kwargs.args() {
                let index = names.iter().position(|n| *n == key).ok_or_else(|| {
                    Error::new(
                        ErrorKind::TooManyArguments,
                        format!("{filter}: unexpected keyword argument '{key}'"),
                    )
                })?;
                bound[index] = Some(kwargs.peek::<Value>(key)?);
            }
        } else {
            if position >= N {
                return Err(Error::new(
                    ErrorKind::TooManyArguments,
                    format!("{filter}: too many arguments"),
                ));
            }
            bound[position] = Some(arg);
            position += 1;
        }
    }
    Ok(bound)
}

fn flag(value: &Option<Value>, default: bool) -> bool {
    value
        .as_ref()
        .map_or(default, |v| to_bool(v).unwrap_or(false))
}

fn text_arg(value: &Option<Value>, default: &str) -> String {
    value
        .as_ref()
        .filter(|v| !v.is_none())
        .map_or_else(|| default.to_string(), python_str)
}

/// The text of a filter's input, as Python's `to_text` would give it.
fn input_str(value: &Value) -> Result<String, Error> {
    require_defined(value)?;
    Ok(python_str(value))
}

fn input_list(value: &Value) -> Result<Vec<Value>, Error> {
    require_defined(value)?;
    if value.kind() == ValueKind::String {
        return Err(invalid(format!(
            "expected a list, got a string ({})",
            python_str(value)
        )));
    }
    Ok(value.try_iter()?.collect())
}

fn default(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let [fallback, boolean] = bind("default", args, ["default_value", "boolean"])?;
    let fallback = fallback.unwrap_or_else(|| Value::from(""));
    if chain::is_undefined(value) || (flag(&boolean, false) && !value.is_true()) {
        Ok(fallback)
    } else {
        Ok(value.clone())
    }
}

fn mandatory(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let [msg] = bind("mandatory", args, ["msg"])?;
    if !chain::is_undefined(value) {
        return Ok(value.clone());
    }
    let message = text_arg(&msg, "Mandatory variable '{name}' not defined.");
    Err(Error::new(
        ErrorKind::UndefinedError,
        format!("{MANDATORY_PREFIX}{message}"),
    ))
}

/// Ansible's `bool`: `yes/on/1/true` (any case) and the number 1 are true, everything else false.
pub fn to_bool(value: &Value) -> Result<bool, Error> {
    require_defined(value)?;
    Ok(match value.kind() {
        ValueKind::Bool => value.is_true(),
        ValueKind::String => {
            matches!(
                value
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
                    .as_str(),
                "yes" | "on" | "1" | "true"
            )
        }
        ValueKind::Number => f64::try_from(value.clone()).is_ok_and(|f| f == 1.0),
        _ => false,
    })
}

fn int(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let [default, base] = bind("int", args, ["default", "base"])?;
    require_defined(value)?;
    let default = default.unwrap_or_else(|| Value::from(0));
    let base = match &base {
        Some(b) => u32::try_from(b.clone()).map_err(|_| invalid("int: base must be an integer"))?,
        None => 10,
    };
    Ok(parse_int(value, base).map(Value::from).unwrap_or(default))
}

fn parse_int(value: &Value, base: u32) -> Option<i64> {
    match value.kind() {
        ValueKind::Bool => Some(i64::from(value.is_true())),
        ValueKind::Number => value.as_i64().or_else(|| {
            f64::try_from(value.clone())
                .ok()
                .filter(|f| f.is_finite())
                .map(|f| f.trunc() as i64)
        }),
        ValueKind::String => {
            let text = value.as_str()?.trim().replace('_', "");
            parse_int_text(&text, base).or_else(|| {
                // Jinja2 falls back to int(float(value)): "1.9" gives 1.
                (base == 10).then(|| {
                    text.parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite())
                        .map(|f| f.trunc() as i64)
                })?
            })
        }
        _ => None,
    }
}

/// Python's `int(text, base)`, including base 0 (prefix decides) and matching prefixes.
fn parse_int_text(text: &str, base: u32) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let lower = digits.to_ascii_lowercase();
    let (base, digits) = match (base, lower.get(..2)) {
        (0 | 16, Some("0x")) => (16, &lower[2..]),
        (0 | 8, Some("0o")) => (8, &lower[2..]),
        (0 | 2, Some("0b")) => (2, &lower[2..]),
        (0, _) if lower.len() > 1 && lower.starts_with('0') => return None,
        (0, _) => (10, lower.as_str()),
        (b, _) => (b, lower.as_str()),
    };
    if !(2..=36).contains(&base) || digits.is_empty() {
        return None;
    }
    let magnitude = i64::from_str_radix(digits, base).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

fn float(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let [default] = bind("float", args, ["default"])?;
    require_defined(value)?;
    let parsed = match value.kind() {
        ValueKind::Bool => Some(if value.is_true() { 1.0 } else { 0.0 }),
        ValueKind::Number => f64::try_from(value.clone()).ok(),
        ValueKind::String => {
            let text = value
                .as_str()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            match text.as_str() {
                "inf" | "+inf" | "infinity" => Some(f64::INFINITY),
                "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
                "nan" => Some(f64::NAN),
                _ => text.replace('_', "").parse::<f64>().ok(),
            }
        }
        _ => None,
    };
    Ok(parsed
        .map(Value::from)
        .unwrap_or_else(|| default.unwrap_or_else(|| Value::from(0.0))))
}

fn string(value: &Value) -> Result<Value, Error> {
    Ok(Value::from(input_str(value)?))
}

fn length(value: &Value) -> Result<usize, Error> {
    require_defined(value)?;
    if let Some(len) = value.len() {
        return Ok(len);
    }
    match value.kind() {
        ValueKind::Iterable => Ok(value.try_iter()?.count()),
        kind => Err(invalid(format!("object of type {kind} has no len()"))),
    }
}

/// Compiles a Python `re` pattern (the syntax Rust's regex shares, plus `\Z`).
pub fn compile_regex(pattern: &str, ignorecase: bool, multiline: bool) -> Result<Regex, Error> {
    let mut flags = String::new();
    if ignorecase {
        flags.push('i');
    }
    if multiline {
        flags.push('m');
    }
    let translated = pattern.replace("\\Z", "\\z");
    let full = if flags.is_empty() {
        translated
    } else {
        format!("(?{flags}){translated}")
    };
    Regex::new(&full)
        .map_err(|e| invalid(format!("invalid regular expression {pattern:?}")).with_source(e))
}

/// A Python replacement template (`\1`, `\g<name>`, `\n`) in Rust's syntax (`${1}`, `${name}`).
fn python_replacement(template: &str) -> String {
    let chars: Vec<char> = template.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '$' {
            out.push_str("$$");
        } else if c == '\\' && i + 1 < chars.len() {
            let next = chars[i + 1];
            if next.is_ascii_digit() {
                let mut end = i + 2;
                if end < chars.len() && chars[end].is_ascii_digit() {
                    end += 1;
                }
                let group: String = chars[i + 1..end].iter().collect();
                out.push_str(&format!("${{{group}}}"));
                i = end;
                continue;
            }
            if next == 'g' && chars.get(i + 2) == Some(&'<') {
                if let Some(close) = chars[i + 3..].iter().position(|&c| c == '>') {
                    let group: String = chars[i + 3..i + 3 + close].iter().collect();
                    out.push_str(&format!("${{{group}}}"));
                    i += 4 + close;
                    continue;
                }
            }
            match next {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '\\' => out.push('\\'),
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
            i += 2;
            continue;
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

fn regex_replace(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let [pattern, replacement, ignorecase, multiline, count, mandatory_count] = bind(
        "regex_replace",
        args,
        [
            "pattern",
            "replacement",
            "ignorecase",
            "multiline",
            "count",
            "mandatory_count",
        ],
    )?;
    let text = input_str(value)?;
    let re = compile_regex(
        &text_arg(&pattern, ""),
        flag(&ignorecase, false),
        flag(&multiline, false),
    )?;
    let replacement = python_replacement(&text_arg(&replacement, ""));
    let count = count.and_then(|c| c.as_usize()).unwrap_or(0);
    let required = mandatory_count.and_then(|c| c.as_usize()).unwrap_or(0);
    if required > 0 {
        let found = re.find_iter(&text).count();
        if found != required {
            return Err(invalid(format!(
                "'{}' should match {required} times, but matches {found} times",
                re.as_str()
            )));
        }
    }
    Ok(Value::from(
        re.replacen(&text, count, replacement.as_str()).into_owned(),
    ))
}

fn regex_search(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let mut positional = Vec::new();
    let mut options = Vec::new();
    for arg in args.into_values() {
        if arg.is_kwargs() {
            options.push(ValueOrKwargs::from(arg));
        } else {
            positional.push(arg);
        }
    }
    let [ignorecase, multiline] = bind("regex_search", Rest(options), ["ignorecase", "multiline"])?;
    let text = input_str(value)?;
    let Some((pattern, group_args)) = positional.split_first() else {
        return Err(Error::new(
            ErrorKind::MissingArgument,
            "regex_search: missing the regular expression",
        ));
    };
    let re = compile_regex(
        &python_str(pattern),
        flag(&ignorecase, false),
        flag(&multiline, false),
    )?;
    let Some(captures) = re.captures(&text) else {
        return Ok(Value::from(()));
    };
    if group_args.is_empty() {
        return Ok(Value::from(captures.get(0).map_or("", |m| m.as_str())));
    }
    let mut groups = Vec::new();
    for arg in group_args {
        let spec = python_str(arg);
        let found = if let Some(name) = spec.strip_prefix("\\g<").and_then(|s| s.strip_suffix('>'))
        {
            match name.parse::<usize>() {
                Ok(index) => captures.get(index),
                Err(_) => captures.name(name),
            }
        } else if let Some(index) = spec
            .strip_prefix('\\')
            .and_then(|s| s.parse::<usize>().ok())
        {
            captures.get(index)
        } else {
            return Err(invalid(format!(
                "regex_search: unknown argument {spec:?} (use '\\\\1' or '\\\\g<name>')"
            )));
        };
        groups.push(found.map_or_else(|| Value::from(()), |m| Value::from(m.as_str())));
    }
    Ok(Value::from(groups))
}

fn regex_findall(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let [pattern, multiline, ignorecase] =
        bind("regex_findall", args, ["regex", "multiline", "ignorecase"])?;
    let text = input_str(value)?;
    let re = compile_regex(
        &text_arg(&pattern, ""),
        flag(&ignorecase, false),
        flag(&multiline, false),
    )?;
    let groups = re.captures_len() - 1;
    let found: Vec<Value> = re
        .captures_iter(&text)
        .map(|caps| {
            let group = |i: usize| Value::from(caps.get(i).map_or("", |m| m.as_str()));
            match groups {
                0 => group(0),
                1 => group(1),
                n => Value::from((1..=n).map(group).collect::<Vec<_>>()),
            }
        })
        .collect();
    Ok(Value::from(found))
}

fn regex_escape(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let [re_type] = bind("regex_escape", args, ["re_type"])?;
    let text = input_str(value)?;
    if text_arg(&re_type, "python") == "posix_basic" {
        let mut out = String::new();
        for c in text.chars() {
            if "\\^$.[]*".contains(c) {
                out.push('\\');
            }
            out.push(c);
        }
        return Ok(Value::from(out));
    }
    // Python's re.escape escapes every character that is not alphanumeric or '_'.
    let mut out = String::new();
    for c in text.chars() {
        if !(c.is_alphanumeric() || c == '_') {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(Value::from(out))
}

fn unique_values(items: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn union(a: &Value, b: &Value) -> Result<Value, Error> {
    let (a, b) = (input_list(a)?, input_list(b)?);
    Ok(Value::from(unique_values(a.into_iter().chain(b))))
}

fn intersect(a: &Value, b: &Value) -> Result<Value, Error> {
    let (a, b) = (input_list(a)?, input_list(b)?);
    Ok(Value::from(unique_values(
        a.into_iter().filter(|x| b.contains(x)),
    )))
}

fn difference(a: &Value, b: &Value) -> Result<Value, Error> {
    let (a, b) = (input_list(a)?, input_list(b)?);
    Ok(Value::from(unique_values(
        a.into_iter().filter(|x| !b.contains(x)),
    )))
}

fn symmetric_difference(a: &Value, b: &Value) -> Result<Value, Error> {
    let (a, b) = (input_list(a)?, input_list(b)?);
    let only_a = a.iter().filter(|x| !b.contains(x)).cloned();
    let only_b = b.iter().filter(|x| !a.contains(x)).cloned();
    Ok(Value::from(unique_values(only_a.chain(only_b))))
}

fn combine(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let mut terms = vec![value.clone()];
    let mut options = Vec::new();
    for arg in args.into_values() {
        if arg.is_kwargs() {
            options.push(ValueOrKwargs::from(arg));
        } else {
            terms.push(arg);
        }
    }
    let [recursive, list_merge] = bind("combine", Rest(options), ["recursive", "list_merge"])?;
    let recursive = flag(&recursive, false);
    let list_merge = text_arg(&list_merge, "replace");
    if ![
        "replace",
        "keep",
        "append",
        "prepend",
        "append_rp",
        "prepend_rp",
    ]
    .contains(&list_merge.as_str())
    {
        return Err(invalid(format!("combine: list_merge must be one of replace, keep, append, prepend, append_rp, prepend_rp, not {list_merge:?}")));
    }
    let mut dicts = Vec::new();
    for term in &terms {
        require_defined(term)?;
        collect_dicts(&to_json(term), &mut dicts)?;
    }
    let mut result = serde_json::Map::new();
    for dict in dicts {
        merge_hash(&mut result, dict, recursive, &list_merge);
    }
    Ok(from_json(&Json::Object(result)))
}

fn collect_dicts(term: &Json, out: &mut Vec<serde_json::Map<String, Json>>) -> Result<(), Error> {
    match term {
        Json::Object(map) => out.push(map.clone()),
        Json::Array(items) => {
            for item in items {
                collect_dicts(item, out)?;
            }
        }
        other => {
            return Err(invalid(format!(
                "combine expects dictionaries, got {other}"
            )))
        }
    }
    Ok(())
}

/// Ansible's `merge_hash`.
fn merge_hash(
    into: &mut serde_json::Map<String, Json>,
    from: serde_json::Map<String, Json>,
    recursive: bool,
    list_merge: &str,
) {
    for (key, new) in from {
        let Some(old) = into.get_mut(&key) else {
            into.insert(key, new);
            continue;
        };
        match (old, new) {
            (Json::Object(old_map), Json::Object(new_map)) if recursive => {
                merge_hash(old_map, new_map, recursive, list_merge)
            }
            (Json::Array(old_list), Json::Array(new_list)) => match list_merge {
                "keep" => {}
                "append" => old_list.extend(new_list),
                "prepend" => {
                    let mut merged = new_list;
                    merged.append(old_list);
                    *old_list = merged;
                }
                "append_rp" => {
                    old_list.retain(|x| !new_list.contains(x));
                    old_list.extend(new_list);
                }
                "prepend_rp" => {
                    let kept: Vec<Json> = old_list
                        .drain(..)
                        .filter(|x| !new_list.contains(x))
                        .collect();
                    *old_list = new_list;
                    old_list.extend(kept);
                }
                _ => *old_list = new_list,
            },
            (old, new) => *old = new,
        }
    }
}

fn dict2items(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let [key_name, value_name] = bind("dict2items", args, ["key_name", "value_name"])?;
    require_defined(value)?;
    if value.kind() != ValueKind::Map {
        return Err(invalid(format!(
            "dict2items requires a dictionary, got {}",
            value.kind()
        )));
    }
    let (key_name, value_name) = (text_arg(&key_name, "key"), text_arg(&value_name, "value"));
    let mut items = Vec::new();
    for key in value.try_iter()? {
        let item = value.get_item(&key)?;
        items.push(Value::from_pairs([
            (key_name.as_str(), key),
            (value_name.as_str(), item),
        ]));
    }
    Ok(Value::from(items))
}

fn items2dict(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let [key_name, value_name] = bind("items2dict", args, ["key_name", "value_name"])?;
    let (key_name, value_name) = (text_arg(&key_name, "key"), text_arg(&value_name, "value"));
    let mut map = IndexMap::new();
    for item in input_list(value)? {
        let key = item.get_attr(&key_name).ok().filter(|v| !v.is_undefined());
        let entry = item
            .get_attr(&value_name)
            .ok()
            .filter(|v| !v.is_undefined());
        match (key, entry) {
            (Some(key), Some(entry)) => {
                map.insert(key, entry);
            }
            _ => {
                return Err(invalid(format!(
                    "items2dict: each item needs '{key_name}' and '{value_name}' keys, got {}",
                    python_str(&item)
                )))
            }
        }
    }
    Ok(Value::from_pairs(map))
}

fn json_style(
    filter: &str,
    args: Rest<ValueOrKwargs>,
    indent: Option<usize>,
    sort_keys: bool,
) -> Result<JsonStyle, Error> {
    let [indent_arg, sort_arg, ascii_arg, _separators] = bind(
        filter,
        args,
        ["indent", "sort_keys", "ensure_ascii", "separators"],
    )?;
    Ok(JsonStyle {
        indent: indent_arg.and_then(|v| v.as_usize()).or(indent),
        sort_keys: flag(&sort_arg, sort_keys),
        ensure_ascii: flag(&ascii_arg, true),
    })
}

fn to_json_filter(value: &Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    require_defined(value)?;
    let style = json_style("to_json", args, None, false)?;
    Ok(python_json(&to_json(value), &style))
}

fn to_nice_json(value: &Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    require_defined(value)?;
    let style = json_style("to_nice_json", args, Some(4), true)?;
    Ok(python_json(&to_json(value), &style))
}

fn from_json_filter(value: &Value) -> Result<Value, Error> {
    let text = input_str(value)?;
    let parsed: Json = serde_json::from_str(&text)
        .map_err(|e| invalid("from_json: invalid JSON").with_source(e))?;
    Ok(from_json(&parsed))
}

fn yaml_style(
    filter: &str,
    args: Rest<ValueOrKwargs>,
    indent: usize,
    flow: Option<bool>,
) -> Result<YamlStyle, Error> {
    let [indent_arg, flow_arg, sort_arg, _width, _unicode] = bind(
        filter,
        args,
        [
            "indent",
            "default_flow_style",
            "sort_keys",
            "width",
            "allow_unicode",
        ],
    )?;
    Ok(YamlStyle {
        indent: indent_arg.and_then(|v| v.as_usize()).unwrap_or(indent),
        flow: match flow_arg {
            Some(v) if v.is_none() => None,
            Some(v) => Some(v.is_true()),
            None => flow,
        },
        sort_keys: flag(&sort_arg, true),
    })
}

fn to_yaml(value: &Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    require_defined(value)?;
    let style = yaml_style("to_yaml", args, 2, None)?;
    Ok(pyyaml_dump(&to_json(value), &style))
}

fn to_nice_yaml(value: &Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    require_defined(value)?;
    let style = yaml_style("to_nice_yaml", args, 4, Some(false))?;
    Ok(pyyaml_dump(&to_json(value), &style))
}

fn parse_yaml(value: &Value) -> Result<Vec<Json>, Error> {
    let text = input_str(value)?;
    let docs =
        crate::yaml::load_str(&text, Path::new("<from_yaml>")).map_err(|e| match &e.span {
            Some(span) => invalid(format!("from_yaml: {} (line {})", e.message, span.line)),
            None => invalid(format!("from_yaml: {}", e.message)),
        })?;
    Ok(docs.iter().map(|doc| doc.to_json()).collect())
}

fn from_yaml(value: &Value) -> Result<Value, Error> {
    Ok(parse_yaml(value)?
        .first()
        .map_or_else(|| Value::from(()), from_json))
}

fn from_yaml_all(value: &Value) -> Result<Value, Error> {
    Ok(Value::from(
        parse_yaml(value)?.iter().map(from_json).collect::<Vec<_>>(),
    ))
}

fn b64encode(value: &Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    let [_encoding] = bind("b64encode", args, ["encoding"])?;
    Ok(base64::engine::general_purpose::STANDARD.encode(input_str(value)?))
}

fn b64decode(value: &Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    let [_encoding] = bind("b64decode", args, ["encoding"])?;
    let text = input_str(value)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text.trim()))
        .map_err(|e| invalid("b64decode: invalid base64").with_source(e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn hash(value: &Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    let [algorithm] = bind("hash", args, ["hashtype"])?;
    digest_hex(&text_arg(&algorithm, "sha1"), &input_str(value)?)
}

fn digest_hex(algorithm: &str, text: &str) -> Result<String, Error> {
    use sha2::Digest as _;
    let bytes = text.as_bytes();
    Ok(match algorithm {
        "md5" => hex::encode(md5::Md5::digest(bytes)),
        "sha1" => hex::encode(sha1::Sha1::digest(bytes)),
        "sha224" => hex::encode(sha2::Sha224::digest(bytes)),
        "sha256" => hex::encode(sha2::Sha256::digest(bytes)),
        "sha384" => hex::encode(sha2::Sha384::digest(bytes)),
        "sha512" => hex::encode(sha2::Sha512::digest(bytes)),
        other => {
            return Err(invalid(format!(
                "hash: unsupported hash type {other:?} (md5, sha1, sha224, sha256, sha384, sha512)"
            )))
        }
    })
}

/// Python's `os.path.basename`.
fn basename(path: &str) -> String {
    path.rsplit('/').next().unwrap_or_default().to_string()
}

/// Python's `os.path.dirname`.
fn dirname(path: &str) -> String {
    let head = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => return String::new(),
    };
    if head.chars().all(|c| c == '/') {
        head.to_string()
    } else {
        head.trim_end_matches('/').to_string()
    }
}

fn expanduser(path: &str) -> String {
    let home = || dirs::home_dir().map(|h| h.to_string_lossy().into_owned());
    if path == "~" {
        return home().unwrap_or_else(|| path.to_string());
    }
    match (path.strip_prefix("~/"), home()) {
        (Some(rest), Some(home)) => format!("{}/{rest}", home.trim_end_matches('/')),
        _ => path.to_string(),
    }
}

/// Python's `os.path.splitext`: `[root, ext]`.
fn splitext(value: &Value) -> Result<Value, Error> {
    let path = input_str(value)?;
    let name_start = path.rfind('/').map_or(0, |i| i + 1);
    let name = &path[name_start..];
    let stem_start = name.len() - name.trim_start_matches('.').len();
    let (root, ext) = match name[stem_start..].rfind('.') {
        Some(i) => path.split_at(name_start + stem_start + i),
        None => (path.as_str(), ""),
    };
    Ok(Value::from(vec![Value::from(root), Value::from(ext)]))
}

/// Python's `os.path.join` over a list.
fn path_join(value: &Value) -> Result<String, Error> {
    let parts: Vec<String> = if value.kind() == ValueKind::String {
        vec![python_str(value)]
    } else {
        input_list(value)?.iter().map(python_str).collect()
    };
    let mut joined = String::new();
    for part in parts {
        if part.starts_with('/') || joined.is_empty() {
            joined = part;
        } else if joined.ends_with('/') {
            joined.push_str(&part);
        } else {
            joined.push('/');
            joined.push_str(&part);
        }
    }
    Ok(joined)
}

/// Python's `shlex.quote`.
pub fn shell_quote(text: &str) -> String {
    if text.is_empty() {
        return "''".into();
    }
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c);
    if text.chars().all(safe) {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', "'\"'\"'"))
}

fn ternary(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let [true_val, false_val, none_val] =
        bind("ternary", args, ["true_val", "false_val", "none_val"])?;
    require_defined(value)?;
    if value.is_none() {
        if let Some(none_val) = none_val {
            return Ok(none_val);
        }
    }
    let chosen = if value.is_true() { true_val } else { false_val };
    Ok(chosen.unwrap_or_else(|| Value::from(())))
}

/// Python's `urllib.parse.urlsplit`, as a dict or one of its parts.
fn urlsplit(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let [query] = bind("urlsplit", args, ["query"])?;
    let url = input_str(value)?;
    let (rest, fragment) = url.split_once('#').unwrap_or((url.as_str(), ""));
    let (rest, query_part) = rest.split_once('?').unwrap_or((rest, ""));
    let (scheme, rest) = match rest.find(':') {
        Some(i)
            if i > 0
                && rest[..i]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic())
                && rest[..i]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            (rest[..i].to_ascii_lowercase(), &rest[i + 1..])
        }
        _ => (String::new(), rest),
    };
    let (netloc, path) = match rest.strip_prefix("//") {
        Some(after) => after.split_at(after.find('/').unwrap_or(after.len())),
        None => ("", rest),
    };
    let (userinfo, hostport) = match netloc.rfind('@') {
        Some(i) => (Some(&netloc[..i]), &netloc[i + 1..]),
        None => (None, netloc),
    };
    let (username, password) = match userinfo {
        Some(info) => match info.split_once(':') {
            Some((user, pass)) => (Value::from(user), Value::from(pass)),
            None => (Value::from(info), Value::from(())),
        },
        None => (Value::from(()), Value::from(())),
    };
    let (host, port) = if let Some(stripped) = hostport.strip_prefix('[') {
        let end = stripped.find(']').unwrap_or(stripped.len());
        (
            &stripped[..end],
            stripped.get(end + 1..).and_then(|p| p.strip_prefix(':')),
        )
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let hostname = if host.is_empty() {
        Value::from(())
    } else {
        Value::from(host.to_ascii_lowercase())
    };
    let port = match port.filter(|p| !p.is_empty()) {
        Some(p) => Value::from(
            p.parse::<u16>()
                .map_err(|_| invalid(format!("urlsplit: invalid port in {url:?}")))?,
        ),
        None => Value::from(()),
    };
    let parts = [
        ("fragment", Value::from(fragment)),
        ("hostname", hostname),
        ("netloc", Value::from(netloc)),
        ("password", password),
        ("path", Value::from(path)),
        ("port", port),
        ("query", Value::from(query_part)),
        ("scheme", Value::from(scheme)),
        ("username", username),
    ];
    match query.map(|q| python_str(&q)).filter(|q| !q.is_empty()) {
        Some(name) => parts
            .into_iter()
            .find(|(key, _)| *key == name)
            .map(|(_, v)| v)
            .ok_or_else(|| invalid(format!("urlsplit: unknown URL component {name:?}"))),
        None => Ok(Value::from_pairs(parts)),
    }
}

fn flatten(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let [levels, skip_nulls] = bind("flatten", args, ["levels", "skip_nulls"])?;
    let levels = levels.and_then(|v| v.as_i64());
    let mut out = Vec::new();
    flatten_into(
        input_list(value)?,
        levels,
        flag(&skip_nulls, true),
        &mut out,
    );
    Ok(Value::from(out))
}

fn flatten_into(items: Vec<Value>, levels: Option<i64>, skip_nulls: bool, out: &mut Vec<Value>) {
    for item in items {
        if skip_nulls && (item.is_none() || matches!(item.as_str(), Some("None" | "null"))) {
            continue;
        }
        let is_list = matches!(item.kind(), ValueKind::Seq | ValueKind::Iterable);
        match levels {
            _ if !is_list => out.push(item),
            Some(level) if level < 1 => out.push(item),
            _ => {
                let inner: Vec<Value> = item.try_iter().map(|it| it.collect()).unwrap_or_default();
                flatten_into(inner, levels.map(|l| l - 1), skip_nulls, out);
            }
        }
    }
}

fn product(value: &Value, others: Rest<Value>) -> Result<Value, Error> {
    let mut lists = vec![input_list(value)?];
    for other in others.iter() {
        lists.push(input_list(other)?);
    }
    let mut combos: Vec<Vec<Value>> = vec![Vec::new()];
    for list in &lists {
        combos = combos
            .into_iter()
            .flat_map(|prefix| {
                list.iter().map(move |item| {
                    let mut next = prefix.clone();
                    next.push(item.clone());
                    next
                })
            })
            .collect();
    }
    Ok(Value::from(
        combos.into_iter().map(Value::from).collect::<Vec<_>>(),
    ))
}

fn zip_longest(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let mut lists = vec![input_list(value)?];
    let mut options = Vec::new();
    for arg in args.into_values() {
        if arg.is_kwargs() {
            options.push(ValueOrKwargs::from(arg));
        } else {
            lists.push(input_list(&arg)?);
        }
    }
    let [fill] = bind("zip_longest", Rest(options), ["fillvalue"])?;
    let fill = fill.unwrap_or_else(|| Value::from(()));
    let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
    let rows = (0..longest)
        .map(|i| {
            Value::from(
                lists
                    .iter()
                    .map(|l| l.get(i).cloned().unwrap_or_else(|| fill.clone()))
                    .collect::<Vec<_>>(),
            )
        })
        .collect::<Vec<_>>();
    Ok(Value::from(rows))
}

fn subelements(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let [path, skip_missing] = bind("subelements", args, ["subelements", "skip_missing"])?;
    let path = text_arg(&path, "");
    let skip_missing = flag(&skip_missing, false);
    let mut out = Vec::new();
    for item in input_list(value)? {
        let mut current = item.clone();
        for key in path.split('.') {
            current = current.get_attr(key).unwrap_or_default();
        }
        if current.is_undefined() {
            if skip_missing {
                continue;
            }
            return Err(invalid(format!(
                "subelements: could not find '{path}' in {}",
                python_str(&item)
            )));
        }
        for sub in input_list(&current)? {
            out.push(Value::from(vec![item.clone(), sub]));
        }
    }
    Ok(Value::from(out))
}

/// `key | extract(container, morekeys)`: `container[key]`, then deeper keys.
fn extract(key: &Value, container: &Value, morekeys: Option<Value>) -> Result<Value, Error> {
    require_defined(container)?;
    let mut value = container.get_item(key)?;
    if let Some(more) = morekeys {
        let keys = if more.kind() == ValueKind::Seq {
            more.try_iter()?.collect()
        } else {
            vec![more]
        };
        for k in keys {
            value = value.get_item(&k)?;
        }
    }
    Ok(value)
}

/// Python's type name of a value.
fn type_name(value: &Value) -> &'static str {
    match value.kind() {
        ValueKind::Undefined => "AnsibleUndefined",
        ValueKind::None => "NoneType",
        ValueKind::Bool => "bool",
        ValueKind::Number if value.is_integer() => "int",
        ValueKind::Number => "float",
        ValueKind::String => "str",
        ValueKind::Bytes => "bytes",
        ValueKind::Seq | ValueKind::Iterable => "list",
        ValueKind::Map => "dict",
        _ => "object",
    }
}

/// Python's `dict()`: from a mapping, a list of pairs, and/or keyword arguments.
fn dict(args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let mut map: IndexMap<Value, Value> = IndexMap::new();
    for arg in args.into_values() {
        if arg.is_kwargs() {
            let kwargs = Kwargs::try_from(arg)?;
            for key in kwargs.args() {
                map.insert(Value::from(key), kwargs.peek::<Value>(key)?);
            }
        } else if arg.kind() == ValueKind::Map {
            for key in arg.try_iter()? {
                let item = arg.get_item(&key)?;
                map.insert(key, item);
            }
        } else {
            for pair in input_list(&arg)? {
                let items: Vec<Value> = pair.try_iter()?.collect();
                match items.as_slice() {
                    [key, item] => {
                        map.insert(key.clone(), item.clone());
                    }
                    _ => {
                        return Err(invalid(format!(
                            "dict: expected pairs, got {}",
                            python_str(&pair)
                        )))
                    }
                }
            }
        }
    }
    Ok(Value::from_pairs(map))
}

/// Ansible's truthiness for `truthy`/`falsy` with `convert_bool`.
pub fn truthy(value: &Value, convert_bool: bool) -> bool {
    if convert_bool {
        if let Some(b) = value.as_str().and_then(bool_word) {
            return b;
        }
    }
    value.is_true()
}
