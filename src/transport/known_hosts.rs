//! OpenSSH known_hosts: lookup (plain, wildcard, negated and hashed `|1|salt|hash` patterns,
//! `[host]:port` for non-22 ports, `@revoked` lines) and appending new keys.
//!
//! russh::keys::known_hosts is not used: it splits on single spaces, ignores markers and
//! wildcards, and does not return the recorded key, which the "changed" message needs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use russh::keys::{HashAlg, PublicKey};
use sha1::{Digest, Sha1};

/// One key line of a known_hosts file.
#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    revoked: bool,
    patterns: String,
    key: PublicKey,
}

#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
    entries: Vec<Entry>,
}

/// The outcome of checking a presented host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnownHostsVerdict {
    Known,
    /// No key of any type is recorded for these names (`other_types` lists recorded types of
    /// other algorithms, if any).
    Unknown {
        other_types: Vec<String>,
    },
    /// A key of the same type is recorded but differs.
    Changed {
        old_fingerprint: String,
        line: usize,
    },
    /// The presented key is marked `@revoked`.
    Revoked {
        line: usize,
    },
}

/// Serialises appends from concurrent connections in this process.
static APPEND_LOCK: Mutex<()> = Mutex::new(());

/// `host` for port 22, `[host]:port` otherwise, as OpenSSH writes them.
pub fn host_port_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_ascii_lowercase()
    } else {
        format!("[{}]:{port}", host.to_ascii_lowercase())
    }
}

/// OpenSSH-style fingerprint: `SHA256:` followed by unpadded base64.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

impl KnownHosts {
    /// Reads `path`; a missing file is an empty list. Unparsable lines are skipped, like OpenSSH.
    pub fn load(path: &Path) -> std::io::Result<KnownHosts> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(err) => return Err(err),
        };
        Ok(KnownHosts {
            path: path.to_path_buf(),
            entries: parse(&text),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks `key` for any of `names` (each already in `host_port_name` form).
    /// A conflicting same-type key for any name wins over a match for another name: an
    /// alias pointing at a stale key is as suspicious as the address doing so.
    pub fn check(&self, names: &[String], key: &PublicKey) -> KnownHostsVerdict {
        let mut known = false;
        let mut changed: Option<(String, usize)> = None;
        let mut other_types = Vec::new();
        for entry in &self.entries {
            if !names
                .iter()
                .any(|name| patterns_match(&entry.patterns, name))
            {
                continue;
            }
            let same_key = entry.key.key_data() == key.key_data();
            if entry.revoked {
                if same_key {
                    return KnownHostsVerdict::Revoked { line: entry.line };
                }
                continue;
            }
            if same_key {
                known = true;
            } else if entry.key.algorithm() == key.algorithm() {
                if changed.is_none() {
                    changed = Some((fingerprint(&entry.key), entry.line));
                }
            } else {
                let name = entry.key.algorithm().as_str().to_string();
                if !other_types.contains(&name) {
                    other_types.push(name);
                }
            }
        }
        match (changed, known) {
            (Some((old_fingerprint, line)), _) => KnownHostsVerdict::Changed {
                old_fingerprint,
                line,
            },
            (None, true) => KnownHostsVerdict::Known,
            (None, false) => KnownHostsVerdict::Unknown { other_types },
        }
    }

    /// Appends `names key` to the file, creating it (0600) and its directory (0700) if needed.
    pub fn append(path: &Path, names: &[String], key: &PublicKey) -> std::io::Result<()> {
        let _guard = APPEND_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.exists() {
                std::fs::create_dir_all(parent)?;
                set_mode(parent, 0o700);
            }
        }
        let needs_newline = match std::fs::read(path) {
            Ok(bytes) => !bytes.is_empty() && !bytes.ends_with(b"\n"),
            Err(_) => false,
        };
        let existed = path.exists();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        if !existed {
            set_mode(path, 0o600);
        }
        let key_text = key
            .to_openssh()
            .map_err(|err| std::io::Error::other(err.to_string()))?;
        // The key's comment is dropped: known_hosts comments are ours to choose.
        let key_text = key_text
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let mut line = String::new();
        if needs_newline {
            line.push('\n');
        }
        line.push_str(&names.join(","));
        line.push(' ');
        line.push_str(&key_text);
        line.push('\n');
        // One write call so concurrent writers from other processes do not interleave lines.
        file.write_all(line.as_bytes())
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) {}

fn parse(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let Some(mut first) = fields.next() else {
            continue;
        };
        let mut revoked = false;
        if first.starts_with('@') {
            match first {
                "@revoked" => revoked = true,
                // Host certificates are not supported; such lines must not count as keys.
                _ => continue,
            }
            let Some(next) = fields.next() else { continue };
            first = next;
        }
        let (Some(key_type), Some(key_base64)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(key) = PublicKey::from_openssh(&format!("{key_type} {key_base64}")) else {
            continue;
        };
        entries.push(Entry {
            line: index + 1,
            revoked,
            patterns: first.to_string(),
            key,
        });
    }
    entries
}

/// A comma-separated pattern list matches when some positive pattern matches and no negated
/// one does (OpenSSH match_hostname semantics).
fn patterns_match(patterns: &str, name: &str) -> bool {
    if patterns.starts_with("|1|") {
        return hashed_match(patterns, name);
    }
    let name = name.to_ascii_lowercase();
    let mut matched = false;
    for pattern in patterns.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        if glob_match(&pattern.to_ascii_lowercase(), &name) {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

fn hashed_match(entry: &str, name: &str) -> bool {
    let mut parts = entry.split('|').skip(2);
    let engine = base64::engine::general_purpose::STANDARD;
    let (Some(Ok(salt)), Some(Ok(hash))) = (
        parts.next().map(|p| engine.decode(p)),
        parts.next().map(|p| engine.decode(p)),
    ) else {
        return false;
    };
    hmac_sha1(&salt, name.to_ascii_lowercase().as_bytes()).as_slice() == hash.as_slice()
}

/// HMAC-SHA1 (RFC 2104); written out to avoid a dependency for 15 lines.
pub(crate) fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    const BLOCK: usize = 64;
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha1::new();
    inner.update(block_key.map(|b| b ^ 0x36));
    inner.update(message);
    let inner_hash = inner.finalize();
    let mut outer = Sha1::new();
    outer.update(block_key.map(|b| b ^ 0x5c));
    outer.update(inner_hash);
    outer.finalize().into()
}

/// `*` and `?` wildcards, as in OpenSSH host patterns.
fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == '*' {
        p += 1;
    }
    p == pattern.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";

    fn key(text: &str) -> PublicKey {
        PublicKey::from_openssh(text).unwrap()
    }

    fn hashed(name: &str, salt: &[u8]) -> String {
        let engine = base64::engine::general_purpose::STANDARD;
        let hash = hmac_sha1(salt, name.as_bytes());
        format!("|1|{}|{}", engine.encode(salt), engine.encode(hash))
    }

    fn load(text: &str) -> KnownHosts {
        KnownHosts {
            path: PathBuf::from("/nonexistent"),
            entries: parse(text),
        }
    }

    #[test]
    fn hmac_matches_rfc2202_vector() {
        let mac = hmac_sha1(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(mac), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn plain_entry_with_port_and_tabs() {
        let kh = load(&format!("[web1]:2222,10.0.0.5\t{KEY_A} comment\n"));
        let names = vec![host_port_name("web1", 2222)];
        assert_eq!(kh.check(&names, &key(KEY_A)), KnownHostsVerdict::Known);
        // Port 22 form must not match a [host]:2222 entry.
        let names22 = vec![host_port_name("web1", 22)];
        assert!(matches!(
            kh.check(&names22, &key(KEY_A)),
            KnownHostsVerdict::Unknown { .. }
        ));
        assert_eq!(
            kh.check(&["10.0.0.5".into()], &key(KEY_A)),
            KnownHostsVerdict::Known
        );
    }

    #[test]
    fn hashed_entry_matches_only_its_host() {
        let kh = load(&format!(
            "{} {KEY_A}\n",
            hashed("[pve1]:2200", b"0123456789abcdef0123")
        ));
        assert_eq!(
            kh.check(&[host_port_name("PVE1", 2200)], &key(KEY_A)),
            KnownHostsVerdict::Known
        );
        assert!(matches!(
            kh.check(&[host_port_name("pve2", 2200)], &key(KEY_A)),
            KnownHostsVerdict::Unknown { .. }
        ));
    }

    #[test]
    fn changed_key_reports_old_fingerprint_and_line() {
        let kh = load(&format!("# comment\nother {KEY_B}\npve1 {KEY_A}\n"));
        let verdict = kh.check(&["pve1".into()], &key(KEY_B));
        assert_eq!(
            verdict,
            KnownHostsVerdict::Changed {
                old_fingerprint: fingerprint(&key(KEY_A)),
                line: 3
            }
        );
        assert!(fingerprint(&key(KEY_A)).starts_with("SHA256:"));
    }

    #[test]
    fn conflict_for_alias_wins_over_match_for_address() {
        let kh = load(&format!("pve1 {KEY_A}\n10.0.0.11 {KEY_B}\n"));
        let verdict = kh.check(&["10.0.0.11".into(), "pve1".into()], &key(KEY_B));
        assert!(matches!(
            verdict,
            KnownHostsVerdict::Changed { line: 1, .. }
        ));
    }

    #[test]
    fn wildcard_negation_and_revoked() {
        let kh = load(&format!("*.lan,!db.lan {KEY_A}\n@revoked * {KEY_B}\n"));
        assert_eq!(
            kh.check(&["web.lan".into()], &key(KEY_A)),
            KnownHostsVerdict::Known
        );
        assert!(matches!(
            kh.check(&["db.lan".into()], &key(KEY_A)),
            KnownHostsVerdict::Unknown { .. }
        ));
        assert_eq!(
            kh.check(&["anything".into()], &key(KEY_B)),
            KnownHostsVerdict::Revoked { line: 2 }
        );
    }

    #[test]
    fn other_key_types_are_reported_not_changed() {
        let ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBLGFFCV449QS6RwgGSHu+z2qqu2uOclJNB7xQ5bREA5eekV1UMhz5QY5we1rTQhW7ob62iEdu1RJ1guuoMXsfvc=";
        let kh = load(&format!("h {ecdsa}\n"));
        assert_eq!(kh.entries.len(), 1);
        let verdict = kh.check(&["h".into()], &key(KEY_A));
        assert_eq!(
            verdict,
            KnownHostsVerdict::Unknown {
                other_types: vec!["ecdsa-sha2-nistp256".into()]
            }
        );
    }

    #[test]
    fn append_creates_file_and_is_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        let names = vec!["pve1".to_string(), host_port_name("10.0.0.11", 2222)];
        KnownHosts::append(&path, &names, &key(KEY_A)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("pve1,[10.0.0.11]:2222 {KEY_A}\n"));
        let kh = KnownHosts::load(&path).unwrap();
        assert_eq!(
            kh.check(&["pve1".into()], &key(KEY_A)),
            KnownHostsVerdict::Known
        );
    }

    #[test]
    fn glob_cases() {
        assert!(glob_match("*", ""));
        assert!(glob_match("a*c", "abbbc"));
        assert!(glob_match("10.0.?.1", "10.0.5.1"));
        assert!(!glob_match("10.0.?.1", "10.0.55.1"));
        assert!(!glob_match("a*c", "abd"));
    }
}
