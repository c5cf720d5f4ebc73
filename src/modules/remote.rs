//! Building blocks for the shell scripts modules send to targets (POSIX sh + coreutils only).

/// Quotes a string for a POSIX shell (single quotes; embedded quotes closed and escaped).
pub fn quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}
