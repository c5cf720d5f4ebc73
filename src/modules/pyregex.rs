//! Python `re` patterns evaluated on the controller with the `regex` crate.
//!
//! Ansible compiles `regexp`/`insertafter`/… as *bytes* patterns, so `\w`, `\d`, `\s` are ASCII-only and
//! `.` matches one byte: that is the regex crate's bytes API with Unicode disabled. Python-only syntax is
//! translated (`\Z` → `\z`); what the regex crate cannot do (look-around, backreferences) is a clear error.
#![allow(dead_code)]

use regex::bytes::{Captures, Regex, RegexBuilder};

/// Compiles a Python pattern; the error names the pattern and the reason.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    let translated = translate(pattern)
        .map_err(|why| format!("Invalid regular expression '{pattern}': {why}"))?;
    RegexBuilder::new(&translated)
        .unicode(false)
        .build()
        .or_else(|_| RegexBuilder::new(&translated).build())
        .map_err(|e| {
            let detail = e.to_string();
            let last = detail
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string();
            format!("Invalid regular expression '{pattern}': {last}")
        })
}

/// True when the pattern turns on Python's MULTILINE flag inline (`(?m)…`).
pub fn is_multiline(pattern: &str) -> bool {
    pattern
        .strip_prefix("(?")
        .and_then(|rest| rest.split(')').next())
        .is_some_and(|flags| flags.chars().all(|c| c.is_ascii_alphabetic()) && flags.contains('m'))
}

fn translate(pattern: &str) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    return Err("bad escape (end of pattern)".into());
                };
                match next {
                    'Z' if !in_class => out.push_str("\\z"),
                    '1'..='9' if !in_class => {
                        return Err("backreferences are not supported by orch".into())
                    }
                    _ => {
                        out.push('\\');
                        out.push(next);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A leading `]` (or `^]`) is a literal in Python.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push_str("\\]");
                    chars.next();
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '(' if !in_class && chars.peek() == Some(&'?') => {
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with("?=")
                    || rest.starts_with("?!")
                    || rest.starts_with("?<=")
                    || rest.starts_with("?<!")
                {
                    return Err("look-around assertions are not supported by orch".into());
                }
                if rest.starts_with("?P=") {
                    return Err("backreferences are not supported by orch".into());
                }
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// Python's `match.expand(template)`: `\1`, `\g<1>`, `\g<name>`, and the escapes `\n \t \r \\ …`.
pub fn expand(caps: &Captures, re: &Regex, template: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(template.len());
    let mut i = 0;
    let group = |out: &mut Vec<u8>, name: &str| -> Result<(), String> {
        let m = match name.parse::<usize>() {
            Ok(n) if n < re.captures_len() => caps.get(n),
            Ok(n) => return Err(format!("invalid group reference {n}")),
            Err(_) if re.capture_names().any(|c| c == Some(name)) => caps.name(name),
            Err(_) => return Err(format!("unknown group name '{name}'")),
        };
        out.extend_from_slice(m.map(|m| m.as_bytes()).unwrap_or(b""));
        Ok(())
    };
    while i < template.len() {
        let c = template[i];
        if c != b'\\' || i + 1 >= template.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let next = template[i + 1];
        match next {
            b'0'..=b'9' => {
                let mut end = i + 2;
                if end < template.len() && template[end].is_ascii_digit() {
                    end += 1;
                }
                let digits = std::str::from_utf8(&template[i + 1..end]).unwrap_or("0");
                if next == b'0' {
                    // `\0` is an octal escape in Python, not a group.
                    out.push(0);
                } else {
                    group(&mut out, digits)?;
                }
                i = end;
            }
            b'g' if template.get(i + 2) == Some(&b'<') => {
                let close = template[i + 3..]
                    .iter()
                    .position(|&b| b == b'>')
                    .ok_or("missing >, unterminated name")?;
                let name = String::from_utf8_lossy(&template[i + 3..i + 3 + close]).into_owned();
                group(&mut out, &name)?;
                i += 4 + close;
            }
            b'n' => {
                out.push(b'\n');
                i += 2;
            }
            b't' => {
                out.push(b'\t');
                i += 2;
            }
            b'r' => {
                out.push(b'\r');
                i += 2;
            }
            b'a' => {
                out.push(7);
                i += 2;
            }
            b'f' => {
                out.push(12);
                i += 2;
            }
            b'v' => {
                out.push(11);
                i += 2;
            }
            b'b' => {
                out.push(8);
                i += 2;
            }
            b'\\' => {
                out.push(b'\\');
                i += 2;
            }
            c if c.is_ascii_alphabetic() => return Err(format!("bad escape \\{}", c as char)),
            _ => {
                // Unknown non-letter escapes stay as written.
                out.push(b'\\');
                out.push(next);
                i += 2;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_classes_and_anchors() {
        let re = compile(r"^\w+\Z").unwrap();
        assert!(re.is_match(b"abc"));
        assert!(!re.is_match("é".as_bytes()));
        assert!(compile(r"^#?PermitRootLogin\s")
            .unwrap()
            .is_match(b"#PermitRootLogin yes"));
        assert!(compile("é+").unwrap().is_match("xéé".as_bytes()));
    }

    #[test]
    fn unsupported_constructs_are_clear_errors() {
        assert!(compile(r"foo(?=bar)").unwrap_err().contains("look-around"));
        assert!(compile(r"(a)\1").unwrap_err().contains("backreferences"));
        assert!(compile(r"(unclosed")
            .unwrap_err()
            .starts_with("Invalid regular expression '(unclosed'"));
    }

    #[test]
    fn expands_python_templates() {
        let re = compile(r"^(?P<key>\w+)=(\d+)").unwrap();
        let caps = re.captures(b"port=22").unwrap();
        assert_eq!(
            expand(&caps, &re, br"\g<key> = \2\n").unwrap(),
            b"port = 22\n"
        );
        assert_eq!(expand(&caps, &re, br"\1\\x").unwrap(), b"port\\x");
        assert!(expand(&caps, &re, br"\5").is_err());
        assert!(expand(&caps, &re, br"\q").is_err());
    }

    #[test]
    fn detects_inline_multiline_flag() {
        assert!(is_multiline("(?m)^foo"));
        assert!(is_multiline("(?im)^foo"));
        assert!(!is_multiline("(?P<x>m)"));
        assert!(!is_multiline("^foo"));
    }
}
