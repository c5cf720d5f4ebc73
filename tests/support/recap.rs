//! Parsing of the Ansible-style PLAY RECAP block:
//! `h1                         : ok=2    changed=1    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0`

/// One host's counters from the PLAY RECAP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recap {
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub skipped: u32,
    pub rescued: u32,
    pub ignored: u32,
}

/// The recap line for `host` in the LAST "PLAY RECAP" block of `output`, if there is one.
/// Colour codes are ignored, so this works whether or not NO_COLOR was honoured.
pub fn parse_recap(output: &str, host: &str) -> Option<Recap> {
    let plain = strip_ansi(output);
    let lines: Vec<&str> = plain.lines().collect();
    let start = lines.iter().rposition(|line| line.contains("PLAY RECAP"))?;
    lines[start + 1..]
        .iter()
        .find_map(|line| parse_recap_line(line, host))
}

/// Every host named in the last PLAY RECAP block, in output order.
pub fn recap_hosts(output: &str) -> Vec<String> {
    let plain = strip_ansi(output);
    let lines: Vec<&str> = plain.lines().collect();
    let Some(start) = lines.iter().rposition(|line| line.contains("PLAY RECAP")) else {
        return Vec::new();
    };
    lines[start + 1..]
        .iter()
        .filter_map(|line| {
            let (name, counters) = line.split_once(" : ").or_else(|| line.split_once(':'))?;
            counters.contains("ok=").then(|| name.trim().to_string())
        })
        .collect()
}

fn parse_recap_line(line: &str, host: &str) -> Option<Recap> {
    let (name, counters) = line.split_once(':')?;
    if name.trim() != host {
        return None;
    }
    let mut recap = Recap::default();
    let mut seen_ok = false;
    for pair in counters.split_whitespace() {
        let (key, value) = pair.split_once('=')?;
        let value: u32 = value.parse().ok()?;
        let slot = match key {
            "ok" => {
                seen_ok = true;
                &mut recap.ok
            }
            "changed" => &mut recap.changed,
            "unreachable" => &mut recap.unreachable,
            "failed" => &mut recap.failed,
            "skipped" => &mut recap.skipped,
            "rescued" => &mut recap.rescued,
            "ignored" => &mut recap.ignored,
            _ => continue,
        };
        *slot = value;
    }
    seen_ok.then_some(recap)
}

/// Removes ANSI CSI escape sequences (`ESC [ ... final-byte`).
pub fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}
