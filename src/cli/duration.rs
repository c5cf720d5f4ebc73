//! Durations on the command line: `90s`, `15m`, `1h`, `1h30m`, `2d` (a bare number is seconds).

use std::time::Duration;

/// Parses `1h30m`-style durations (clap value parser).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("'{text}': unknown unit '{c}' (use s, m, h or d)")),
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("'{text}': a number must come before '{c}'"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() {
        return Err(format!(
            "'{text}': '{number}' has no unit (use s, m, h or d)"
        ));
    }
    Ok(Duration::from_secs(total))
}

/// The systemd spelling of a duration (`1h 30min`), for timer units.
pub fn systemd_span(d: Duration) -> String {
    let mut secs = d.as_secs();
    let mut parts = Vec::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("min", 60)] {
        if secs >= size {
            parts.push(format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if secs > 0 || parts.is_empty() {
        parts.push(format!("{secs}s"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("42"), Ok(Duration::from_secs(42)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("1h5").is_err());
    }

    #[test]
    fn systemd_spans() {
        assert_eq!(systemd_span(Duration::from_secs(3600)), "1h");
        assert_eq!(systemd_span(Duration::from_secs(5430)), "1h 30min 30s");
        assert_eq!(systemd_span(Duration::from_secs(0)), "0s");
    }
}
