//! Host identifiers as Ansible reads them: `host:port` splitting and `[x:y(:step)]` range expansion
//! (`ansible/parsing/utils/addresses.py` and `expand_hostname_range` in `plugins/inventory/__init__.py`).

use std::sync::OnceLock;

use regex::Regex;

const NUMERIC_RANGE: &str = r"\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\]";
const HEXADECIMAL_RANGE: &str = r"\[(?:[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\]";
const ALPHANUMERIC_RANGE: &str = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]";

struct AddressPatterns {
    bracketed_hostport: Regex,
    hostport: Regex,
    ipv4: Regex,
    ipv6: Regex,
    hostname: Regex,
}

fn patterns() -> &'static AddressPatterns {
    static PATTERNS: OnceLock<AddressPatterns> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let i4 = format!(r"(?:[01]?[0-9]{{1,2}}|2[0-4][0-9]|25[0-5]|{NUMERIC_RANGE})");
        let i6 = format!(r"(?:[0-9a-f]{{1,4}}|{HEXADECIMAL_RANGE})");
        let ipv6 = [
            format!(r"(?:{i6}:){{7}}{i6}"),
            format!(r"(?:{i6}:){{1,6}}:"),
            format!(r"(?:{i6}:)(?::{i6}){{1,6}}"),
            format!(r"(?:{i6}:){{2}}(?::{i6}){{1,5}}"),
            format!(r"(?:{i6}:){{3}}(?::{i6}){{1,4}}"),
            format!(r"(?:{i6}:){{4}}(?::{i6}){{1,3}}"),
            format!(r"(?:{i6}:){{5}}(?::{i6}){{1,2}}"),
            format!(r"(?:{i6}:){{6}}(?::{i6})"),
            format!(r":(?::{i6}){{1,6}}"),
            format!(r"{i6}?::"),
            format!(r"(?:0:){{6}}(?:{i6}\.){{3}}{i6}"),
            format!(r"::(?:ffff:)?(?:{i6}\.){{3}}{i6}"),
            format!(r"(?:0:){{5}}ffff:(?:{i6}\.){{3}}{i6}"),
        ]
        .join("|");
        // Python's label regex ends with the lookbehind `(?<![_-])`; without lookbehind we spell out
        // "the last unit is not `_` or `-`".
        let r = ALPHANUMERIC_RANGE;
        let label = format!(r"(?:(?:[^\W_]|{r})|(?:\w|{r})(?:[\w-]|{r})*(?:[^\W_]|{r}))");
        let build = |src: String| Regex::new(&src).expect("static address regex compiles");
        AddressPatterns {
            bracketed_hostport: build(r"^\[(.+)\]:([0-9]+)$".to_string()),
            hostport: build(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$".to_string()),
            ipv4: build(format!(r"(?i)^(?:{i4}\.){{3}}{i4}$")),
            ipv6: build(format!(r"(?i)^(?:{ipv6})$")),
            hostname: build(format!(r"(?i)^{label}(?:\.{label})*$")),
        }
    })
}

/// Splits `host[:port]` like Ansible's `parse_address`; `None` when the text is not a host identifier.
pub fn parse_address(address: &str, allow_ranges: bool) -> Option<(String, Option<u32>)> {
    let p = patterns();
    let mut host = address.to_string();
    let mut port = None;
    for re in [&p.bracketed_hostport, &p.hostport] {
        if let Some(c) = re.captures(&host.clone()) {
            port = Some(c[2].parse::<u32>().ok()?);
            host = c[1].to_string();
        }
    }
    let valid = p.ipv4.is_match(&host) || p.ipv6.is_match(&host) || p.hostname.is_match(&host);
    if !valid || (!allow_ranges && host.contains('[')) {
        return None;
    }
    Some((host, port))
}

/// Expands every `[begin:end(:step)]` in a host name, left to right, as Ansible does.
pub fn expand_hostname_range(line: &str) -> Result<Vec<String>, String> {
    let Some(open) = line.find('[') else {
        return Ok(vec![line.to_string()]);
    };
    let Some(close_rel) = line[open + 1..].find(']') else {
        return Err(format!("unclosed host range in `{line}`"));
    };
    let close = open + 1 + close_rel;
    let (head, range, tail) = (&line[..open], &line[open + 1..close], &line[close + 1..]);
    let bounds: Vec<&str> = range.split(':').collect();
    if bounds.len() != 2 && bounds.len() != 3 {
        return Err("host range must be begin:end or begin:end:step".into());
    }
    let begin = if bounds[0].is_empty() { "0" } else { bounds[0] };
    let end = bounds[1];
    if end.is_empty() {
        return Err("host range must specify end value".into());
    }
    let step: usize = match bounds.get(2) {
        None => 1,
        Some(s) => s
            .parse()
            .map_err(|_| format!("host range step `{s}` is not a number"))?,
    };
    if step == 0 {
        return Err("host range step must not be zero".into());
    }
    let width = if begin.starts_with('0') && begin.len() > 1 {
        if begin.len() != end.len() {
            return Err("host range must specify equal-length begin and end formats".into());
        }
        begin.len()
    } else {
        0
    };
    let letters: Vec<char> = ('a'..='z').chain('A'..='Z').collect();
    let letter_index = |s: &str| {
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => letters.iter().position(|l| *l == c),
            _ => None,
        }
    };
    let items: Vec<String> = match (letter_index(begin), letter_index(end)) {
        (Some(b), Some(e)) => {
            if b > e {
                return Err("host range must have begin <= end".into());
            }
            letters[b..=e]
                .iter()
                .step_by(step)
                .map(|c| c.to_string())
                .collect()
        }
        _ => {
            let parse = |s: &str| {
                s.parse::<u64>()
                    .map_err(|_| format!("host range bound `{s}` is not a number"))
            };
            let (b, e) = (parse(begin)?, parse(end)?);
            // Like Python's range(): begin > end gives no hosts at all.
            (b..=e)
                .step_by(step)
                .map(|n| format!("{n:0width$}"))
                .collect()
        }
    };
    let mut hosts = Vec::new();
    for item in items {
        let name = format!("{head}{item}{tail}");
        if name.contains('[') {
            hosts.extend(expand_hostname_range(&name)?);
        } else {
            hosts.push(name);
        }
    }
    Ok(hosts)
}

/// A host line's first token: names (ranges expanded) and an optional port, as in Ansible's
/// `_expand_hostpattern`; text that is not a host identifier is kept whole without a port.
pub fn expand_host_pattern(pattern: &str) -> Result<(Vec<String>, Option<u32>), String> {
    let (host, port) = parse_address(pattern, true).unwrap_or_else(|| (pattern.to_string(), None));
    let names = if host.contains('[') {
        expand_hostname_range(&host)?
    } else {
        vec![host]
    };
    Ok((names, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_with_ports() {
        assert_eq!(
            parse_address("pve1:2222", false),
            Some(("pve1".into(), Some(2222)))
        );
        assert_eq!(
            parse_address("10.0.0.1:22", false),
            Some(("10.0.0.1".into(), Some(22)))
        );
        assert_eq!(
            parse_address("[2001:db8::1]:2222", false),
            Some(("2001:db8::1".into(), Some(2222)))
        );
        assert_eq!(
            parse_address("2001:db8::1", false),
            Some(("2001:db8::1".into(), None))
        );
        assert_eq!(
            parse_address("pve[01:03].lab:22", true),
            Some(("pve[01:03].lab".into(), Some(22)))
        );
        assert_eq!(parse_address("pve[01:03].lab", false), None);
        assert_eq!(parse_address("web:!db", true), None);
        assert_eq!(parse_address("host_", true), None);
        assert_eq!(parse_address("_host", true), Some(("_host".into(), None)));
    }

    #[test]
    fn ranges_expand_like_ansible() {
        assert_eq!(
            expand_hostname_range("pve[01:03].lab").unwrap(),
            ["pve01.lab", "pve02.lab", "pve03.lab"]
        );
        assert_eq!(
            expand_hostname_range("db-[a:c]").unwrap(),
            ["db-a", "db-b", "db-c"]
        );
        assert_eq!(
            expand_hostname_range("n[1:10:4]").unwrap(),
            ["n1", "n5", "n9"]
        );
        assert_eq!(
            expand_hostname_range("r[1:2]c[a:b]").unwrap(),
            ["r1ca", "r1cb", "r2ca", "r2cb"]
        );
        assert_eq!(expand_hostname_range("h[:2]").unwrap(), ["h0", "h1", "h2"]);
        assert!(expand_hostname_range("h[5:1]").unwrap().is_empty());
    }

    #[test]
    fn bad_ranges_are_errors() {
        assert_eq!(
            expand_hostname_range("h[1:]").unwrap_err(),
            "host range must specify end value"
        );
        assert!(expand_hostname_range("h[01:5]")
            .unwrap_err()
            .contains("equal-length"));
        assert!(expand_hostname_range("h[c:a]")
            .unwrap_err()
            .contains("begin <= end"));
        assert!(expand_hostname_range("h[a:5]").is_err());
        assert!(expand_hostname_range("h[1:2:3:4]").is_err());
    }
}
