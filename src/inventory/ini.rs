//! INI inventory files, as Ansible's `ini` inventory plugin reads them.
//!
//! Lines before the first section belong to `ungrouped`. `[g]` lists hosts (`name[:port] k=v …`,
//! ranges allowed), `[g:vars]` lists `k = v` lines, `[g:children]` lists group names that may be
//! declared later in the file. `#` and `;` start comment lines; on host lines only `#` starts a
//! trailing comment (host lines are shell-split). Values are evaluated like Python literals
//! (see `py_literal`).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use indexmap::IndexMap;
use regex::Regex;

use crate::error::{Diagnostic, Span};

use super::hostnames;
use super::py_literal::literal_or_string;
use super::Inventory;

#[derive(Clone, Copy, PartialEq)]
enum State {
    Hosts,
    Vars,
    Children,
}

/// A group named before it was declared, resolved (or reported) later like Ansible does.
struct Pending {
    span: Span,
    state: State,
    /// Groups whose `:children` section named this group, with the line that did.
    parents: Vec<(String, Span)>,
}

fn section_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$").expect("static regex"))
}

fn group_name_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^([^:\]\s]+)\s*(?:#.*)?$").expect("static regex"))
}

pub fn parse(inv: &mut Inventory, path: &Path, text: &str) -> Result<(), Diagnostic> {
    let file = Arc::new(path.to_path_buf());
    let mut pending: IndexMap<String, Pending> = IndexMap::new();
    let mut group = "ungrouped".to_string();
    let mut state = State::Hosts;
    for (index, raw_line) in text.lines().enumerate() {
        let indent = raw_line.len() - raw_line.trim_start().len();
        let line = raw_line.trim();
        let span = Span::new(file.clone(), index + 1, indent + 1);
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(caps) = section_regex().captures(line) {
            group = caps[1].to_string();
            let kind = caps.get(2).map_or("hosts", |m| m.as_str());
            state = match kind {
                "hosts" => State::Hosts,
                "vars" => State::Vars,
                "children" => State::Children,
                other => {
                    return Err(Diagnostic::parse(
                        format!("section [{group}:{other}] has unknown type: {other}"),
                        Some(span),
                    )
                    .with_hint("a section is [group], [group:vars] or [group:children]"))
                }
            };
            if !inv.groups.contains_key(&group) {
                // `[g]` and `[g:children]` declare a group; `[g:vars]` needs a declaration somewhere.
                if state == State::Vars && !pending.contains_key(&group) {
                    pending.insert(
                        group.clone(),
                        Pending {
                            span: span.clone(),
                            state,
                            parents: Vec::new(),
                        },
                    );
                }
                inv.add_group(&group, Some(span.clone()));
            }
            if state != State::Vars {
                match pending.get(&group).map(|p| p.state) {
                    Some(State::Children) => add_pending_children(inv, &group, &mut pending)?,
                    Some(State::Vars) => {
                        pending.shift_remove(&group);
                    }
                    _ => {}
                }
            }
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            return Err(
                Diagnostic::parse(format!("invalid section entry: `{line}`"), Some(span))
                    .with_hint(
                    "make sure there are no spaces or other invalid characters in the section name",
                ),
            );
        }
        match state {
            State::Hosts => parse_host_line(inv, &group, line, &span)?,
            State::Vars => {
                let Some((key, value)) = line.split_once('=') else {
                    return Err(Diagnostic::parse(
                        format!("expected key=value, got: {line}"),
                        Some(span),
                    )
                    .with_hint(format!(
                        "lines in [{group}:vars] set variables, e.g. `ansible_user=root`"
                    )));
                };
                inv.set_group_var(
                    &group,
                    key.trim(),
                    literal_or_string(value.trim()),
                    Some(&span),
                )?;
            }
            State::Children => {
                let Some(caps) = group_name_regex().captures(line) else {
                    return Err(Diagnostic::parse(
                        format!("expected group name, got: {line}"),
                        Some(span),
                    ));
                };
                let child = caps[1].to_string();
                if inv.groups.contains_key(&child) {
                    inv.add_child(&group, &child, Some(&span))?;
                } else {
                    let entry = pending.entry(child).or_insert(Pending {
                        span: span.clone(),
                        state,
                        parents: Vec::new(),
                    });
                    entry.parents.push((group.clone(), span.clone()));
                }
            }
        }
    }
    if let Some((name, decl)) = pending.first() {
        let message = match decl.state {
            State::Vars => format!("section [{name}:vars] not valid for undefined group `{name}`"),
            _ => {
                let parent = decl.parents.last().map_or("?", |(p, _)| p.as_str());
                format!("section [{parent}:children] includes undefined group `{name}`")
            }
        };
        let span = decl
            .parents
            .last()
            .map_or(decl.span.clone(), |(_, s)| s.clone());
        let hint = match crate::error::did_you_mean(name, inv.groups.keys().map(String::as_str)) {
            Some(candidate) => {
                format!("did you mean `{candidate}`? Otherwise declare it with a [{name}] section")
            }
            None => format!("declare it with a [{name}] section (it may be empty)"),
        };
        return Err(Diagnostic::parse(message, Some(span)).with_hint(hint));
    }
    Ok(())
}

fn add_pending_children(
    inv: &mut Inventory,
    group: &str,
    pending: &mut IndexMap<String, Pending>,
) -> Result<(), Diagnostic> {
    let Some(decl) = pending.shift_remove(group) else {
        return Ok(());
    };
    for (parent, span) in decl.parents {
        inv.add_child(&parent, group, Some(&span))?;
        if pending
            .get(&parent)
            .is_some_and(|p| p.state == State::Children)
        {
            add_pending_children(inv, &parent, pending)?;
        }
    }
    Ok(())
}

fn parse_host_line(
    inv: &mut Inventory,
    group: &str,
    line: &str,
    span: &Span,
) -> Result<(), Diagnostic> {
    let tokens = shlex_split(line).map_err(|e| {
        Diagnostic::parse(
            format!("error parsing host definition `{line}`: {e}"),
            Some(span.clone()),
        )
    })?;
    let Some((pattern, assignments)) = tokens.split_first() else {
        return Ok(());
    };
    let (names, port) = hostnames::expand_host_pattern(pattern).map_err(|e| {
        Diagnostic::parse(
            format!("bad host range in `{pattern}`: {e}"),
            Some(span.clone()),
        )
    })?;
    if pattern.trim().ends_with(':') && port.is_none() {
        return Err(Diagnostic::parse(
            format!("invalid host pattern `{pattern}`: ending in ':' is not allowed, this character is reserved to provide a port"),
            Some(span.clone()),
        ));
    }
    if names.iter().any(|n| n.trim() == "---") {
        return Err(Diagnostic::parse(
            format!(
                "invalid host pattern `{pattern}`: '---' is normally a sign this is a YAML file"
            ),
            Some(span.clone()),
        )
        .with_hint("give YAML inventories a .yml or .yaml extension"));
    }
    let mut vars = Vec::new();
    for token in assignments {
        let Some((key, value)) = token.split_once('=') else {
            return Err(Diagnostic::parse(
                format!("expected key=value host variable assignment, got: {token}"),
                Some(span.clone()),
            )
            .with_hint("only `#` starts a comment at the end of a host line"));
        };
        vars.push((key.to_string(), literal_or_string(value)));
    }
    for name in &names {
        inv.add_host(name, Some(group), port, Some(span.clone()));
        for (key, value) in &vars {
            inv.set_host_var(name, key, value.clone());
        }
    }
    Ok(())
}

/// Python's `shlex.split(line, comments=True)` (POSIX mode): quotes, backslash escapes, `#` comments.
fn shlex_split(line: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut token = String::new();
    let mut in_token = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_token {
                    tokens.push(std::mem::take(&mut token));
                    in_token = false;
                }
            }
            '#' => break,
            '\\' => {
                in_token = true;
                match chars.next() {
                    Some(next) => token.push(next),
                    None => return Err("No escaped character".into()),
                }
            }
            '\'' => {
                in_token = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => token.push(ch),
                        None => return Err("No closing quotation".into()),
                    }
                }
            }
            '"' => {
                in_token = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.peek() {
                            Some(&next @ ('\\' | '"' | '$' | '`')) => {
                                token.push(next);
                                chars.next();
                            }
                            _ => token.push('\\'),
                        },
                        Some(ch) => token.push(ch),
                        None => return Err("No closing quotation".into()),
                    }
                }
            }
            other => {
                in_token = true;
                token.push(other);
            }
        }
    }
    if in_token {
        tokens.push(token);
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shlex_like_python() {
        assert_eq!(
            shlex_split("h x='a b' y=\"c\\\"d\" # rest").unwrap(),
            ["h", "x=a b", "y=c\"d"]
        );
        assert_eq!(shlex_split("h a#b").unwrap(), ["h", "a"]);
        assert_eq!(shlex_split("h e=''").unwrap(), ["h", "e="]);
        assert!(shlex_split("h x='open").is_err());
    }
}
