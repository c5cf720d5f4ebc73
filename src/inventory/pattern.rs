//! Host patterns (`hosts:` and `--limit`), resolved like Ansible's `InventoryManager.get_hosts`.
//!
//! Terms are separated by `,` (or, without any comma, by `:`). Plain terms are unions, `&term`
//! intersections and `!term` exclusions; all unions are applied first, then intersections, then
//! exclusions, whatever the order written. A term is a group or host name, a shell glob (`web*`),
//! or a regex (`~web0[12]`), optionally followed by a subscript: `[i]` (negative allowed),
//! `[a:b]` (inclusive), `[a:]`.

use std::collections::HashSet;

use regex::Regex;

use crate::error::Diagnostic;

use super::hostnames::parse_address;
use super::{Inventory, LOCALHOST_NAMES};

/// Hosts a pattern selects, in inventory order without duplicates, plus Ansible's warnings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selection {
    pub hosts: Vec<String>,
    pub warnings: Vec<String>,
}

pub fn select(inv: &Inventory, pattern: &str) -> Result<Selection, Diagnostic> {
    let mut warnings = Vec::new();
    if inv.hosts.is_empty() {
        warnings.push(
            "provided hosts list is empty, only localhost is available. Note that the implicit localhost does not match 'all'"
                .to_string(),
        );
    }
    let mut hosts: Vec<String> = Vec::new();
    for term in order_patterns(split_host_pattern(pattern)) {
        // A plain host name needs no matching (and gets no warning).
        if inv.hosts.contains_key(&term) {
            hosts.push(term);
            continue;
        }
        let matched = match_one_pattern(inv, &term, &mut warnings)?;
        if let Some(_excluded) = term.strip_prefix('!') {
            let matched: HashSet<&String> = matched.iter().collect();
            hosts.retain(|h| !matched.contains(h));
        } else if term.starts_with('&') {
            let matched: HashSet<&String> = matched.iter().collect();
            hosts.retain(|h| matched.contains(h));
        } else {
            let existing: HashSet<String> = hosts.iter().cloned().collect();
            hosts.extend(matched.into_iter().filter(|h| !existing.contains(h)));
        }
    }
    let mut seen = HashSet::new();
    hosts.retain(|h| seen.insert(h.clone()));
    Ok(Selection { hosts, warnings })
}

/// Ansible's `split_host_pattern`.
fn split_host_pattern(pattern: &str) -> Vec<String> {
    let parts: Vec<String> = if pattern.contains(',') {
        pattern.split(',').map(str::to_string).collect()
    } else if parse_address(pattern, true).is_some() {
        vec![pattern.to_string()]
    } else {
        static SPLIT: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
        let re =
            SPLIT.get_or_init(|| Regex::new(r"(?:[^\s:\[\]]|\[[^\]]*\])+").expect("static regex"));
        re.find_iter(pattern)
            .map(|m| m.as_str().to_string())
            .collect()
    };
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Unions first, then intersections, then exclusions; only `&`/`!` terms means starting from `all`.
fn order_patterns(terms: Vec<String>) -> Vec<String> {
    let (mut regular, mut intersect, mut exclude) = (Vec::new(), Vec::new(), Vec::new());
    for term in terms {
        if term.starts_with('!') {
            exclude.push(term);
        } else if term.starts_with('&') {
            intersect.push(term);
        } else {
            regular.push(term);
        }
    }
    if regular.is_empty() {
        regular.push("all".to_string());
    }
    regular.extend(intersect);
    regular.extend(exclude);
    regular
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Subscript {
    start: i64,
    /// `None` for `[i]`; `Some(-1)` for an open end `[a:]`.
    end: Option<i64>,
}

fn match_one_pattern(
    inv: &Inventory,
    term: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<String>, Diagnostic> {
    let pattern = term.strip_prefix(['&', '!']).unwrap_or(term);
    let (expr, subscript) = split_subscript(pattern, warnings);
    let hosts = enumerate_matches(inv, &expr, warnings)?;
    apply_subscript(hosts, subscript).ok_or_else(|| {
        Diagnostic::parse(
            format!("No hosts matched the subscripted pattern '{pattern}'"),
            None,
        )
    })
}

fn split_subscript(pattern: &str, warnings: &mut Vec<String>) -> (String, Option<Subscript>) {
    if pattern.starts_with('~') {
        return (pattern.to_string(), None);
    }
    static SUBSCRIPT: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = SUBSCRIPT.get_or_init(|| {
        Regex::new(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$").expect("static regex")
    });
    let Some(caps) = re.captures(pattern) else {
        return (pattern.to_string(), None);
    };
    let number = |i: usize| caps.get(i).and_then(|m| m.as_str().parse::<i64>().ok());
    let subscript = if let Some(index) = number(2) {
        Subscript {
            start: index,
            end: None,
        }
    } else {
        if caps.get(4).is_some_and(|m| m.as_str() == "-") {
            warnings.push(
                "Use [x:y] inclusive subscripts instead of [x-y] which has been removed".into(),
            );
        }
        Subscript {
            start: number(3).unwrap_or(0),
            end: Some(number(5).unwrap_or(-1)),
        }
    };
    (caps[1].to_string(), Some(subscript))
}

/// `None` when a single index is out of range (Ansible's IndexError).
fn apply_subscript(hosts: Vec<String>, subscript: Option<Subscript>) -> Option<Vec<String>> {
    let Some(Subscript { start, end }) = subscript else {
        return Some(hosts);
    };
    if hosts.is_empty() {
        return Some(hosts);
    }
    let len = hosts.len() as i64;
    match end {
        // Python treats an end of 0 as "no end": `[2:0]` selects only host 2.
        Some(end) if end != 0 => {
            let end = if end == -1 { len - 1 } else { end };
            let (from, to) = (
                start.clamp(0, len) as usize,
                (end + 1).clamp(0, len) as usize,
            );
            Some(if from < to {
                hosts[from..to].to_vec()
            } else {
                Vec::new()
            })
        }
        _ => {
            let index = if start < 0 { start + len } else { start };
            if (0..len).contains(&index) {
                Some(vec![hosts[index as usize].clone()])
            } else {
                None
            }
        }
    }
}

fn compile(expr: &str) -> Result<Regex, Diagnostic> {
    let source = match expr.strip_prefix('~') {
        Some(re) => format!("^(?:{re})"),
        None => format!("^(?s:{})$", glob_to_regex(expr)),
    };
    Regex::new(&source).map_err(|e| {
        Diagnostic::parse(format!("Invalid host list pattern: {expr}"), None).with_hint(match expr
            .starts_with('~')
        {
            true => format!(
                "the regular expression does not compile: {}",
                e.to_string().lines().last().unwrap_or_default()
            ),
            false => "check the brackets of the glob".to_string(),
        })
    })
}

fn enumerate_matches(
    inv: &Inventory,
    expr: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<String>, Diagnostic> {
    let matcher = compile(expr)?;
    let mut results = Vec::new();
    let matching_groups: Vec<&String> = inv.groups.keys().filter(|g| matcher.is_match(g)).collect();
    for group in &matching_groups {
        results.extend(inv.group_hosts(group).unwrap_or_default().iter().cloned());
    }
    let special = expr.starts_with('~') || expr.contains(['.', '?', '*', '[']);
    if matching_groups.is_empty() || special {
        results.extend(inv.hosts.keys().filter(|h| matcher.is_match(h)).cloned());
    }
    if results.is_empty() && LOCALHOST_NAMES.contains(&expr) {
        // The first localhost-like host of the inventory stands for all of them; else the implicit one.
        let defined = inv
            .hosts
            .keys()
            .find(|h| LOCALHOST_NAMES.contains(&h.as_str()));
        results.push(defined.cloned().unwrap_or_else(|| expr.to_string()));
    }
    if results.is_empty() && matching_groups.is_empty() && expr != "all" {
        warnings.push(format!(
            "Could not match supplied host pattern, ignoring: {expr}"
        ));
    }
    Ok(results)
}

/// Python's `fnmatch.translate`, producing Rust regex syntax (without anchors).
fn glob_to_regex(glob: &str) -> String {
    let chars: Vec<char> = glob.chars().collect();
    let escape = |c: char| format!("\\x{{{:X}}}", c as u32);
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => {
                if !out.ends_with(".*") {
                    out.push_str(".*");
                }
            }
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if j < chars.len() && chars[j] == '!' {
                    j += 1;
                }
                if j < chars.len() && chars[j] == ']' {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push_str(&escape('['));
                    continue;
                }
                let stuff: Vec<char> = chars[i..j].to_vec();
                i = j + 1;
                let (negated, body) = match stuff.split_first() {
                    Some(('!', rest)) => (true, rest),
                    _ => (false, stuff.as_slice()),
                };
                if stuff.is_empty() {
                    out.push_str("[^\\x{0}-\\x{10FFFF}]"); // matches nothing
                    continue;
                }
                if negated && body.is_empty() {
                    out.push('.');
                    continue;
                }
                let mut class = String::from(if negated { "[^" } else { "[" });
                for (k, ch) in body.iter().enumerate() {
                    if *ch == '-' && k > 0 && k + 1 < body.len() {
                        class.push('-');
                    } else {
                        class.push_str(&escape(*ch));
                    }
                }
                class.push(']');
                out.push_str(&class);
            }
            other => out.push_str(&escape(other)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting_like_ansible() {
        assert_eq!(split_host_pattern("web:!db"), ["web", "!db"]);
        assert_eq!(
            split_host_pattern("a, b[1], c[2:3] , d"),
            ["a", "b[1]", "c[2:3]", "d"]
        );
        assert_eq!(split_host_pattern("web[0:2]"), ["web[0:2]"]);
        assert_eq!(split_host_pattern("web[0:2]:&db"), ["web[0:2]", "&db"]);
        assert_eq!(split_host_pattern("2001:db8::1"), ["2001:db8::1"]);
        assert_eq!(split_host_pattern("web:!db,x"), ["web:!db", "x"]);
    }

    #[test]
    fn ordering_puts_unions_first() {
        let terms = vec!["!a".to_string(), "&b".to_string(), "c".to_string()];
        assert_eq!(order_patterns(terms), ["c", "&b", "!a"]);
        assert_eq!(order_patterns(vec!["!a".to_string()]), ["all", "!a"]);
    }

    #[test]
    fn globs() {
        let m = |g: &str, s: &str| {
            Regex::new(&format!("^(?s:{})$", glob_to_regex(g)))
                .unwrap()
                .is_match(s)
        };
        assert!(m("web*", "web01.lab"));
        assert!(!m("web*", "xweb"));
        assert!(m("db-[ab]", "db-a"));
        assert!(!m("db-[!ab]", "db-a"));
        assert!(m("n[0-9]", "n5"));
        assert!(m("a.b", "a.b"));
        assert!(!m("a.b", "axb"));
        assert!(m("x[", "x["));
        assert!(m("h?", "h1"));
    }

    #[test]
    fn subscripts() {
        let hosts: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let apply = |s: Subscript| apply_subscript(hosts.clone(), Some(s));
        assert_eq!(
            apply(Subscript {
                start: 0,
                end: None
            })
            .unwrap(),
            ["a"]
        );
        assert_eq!(
            apply(Subscript {
                start: -1,
                end: None
            })
            .unwrap(),
            ["d"]
        );
        assert_eq!(
            apply(Subscript {
                start: 1,
                end: Some(2)
            })
            .unwrap(),
            ["b", "c"]
        );
        assert_eq!(
            apply(Subscript {
                start: 2,
                end: Some(-1)
            })
            .unwrap(),
            ["c", "d"]
        );
        assert_eq!(
            apply(Subscript {
                start: 2,
                end: Some(0)
            })
            .unwrap(),
            ["c"]
        );
        assert_eq!(
            apply(Subscript {
                start: 3,
                end: Some(1)
            })
            .unwrap(),
            Vec::<String>::new()
        );
        assert!(apply(Subscript {
            start: 9,
            end: None
        })
        .is_none());
        assert!(apply(Subscript {
            start: -5,
            end: None
        })
        .is_none());
    }
}
