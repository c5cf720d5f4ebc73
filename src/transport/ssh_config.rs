//! ~/.ssh/config resolution on top of the `ssh2-config` parser (Host patterns with `*`, `?`,
//! `!negation`, Include, first-value-wins merging, `~` expansion of IdentityFile).
//! Options ssh2-config does not model (StrictHostKeyChecking, UserKnownHostsFile) are read from
//! its "unsupported fields" map.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ssh2_config::{HostParams, ParseRule, SshConfig};

use super::{HostKeyChecking, TransportError};

/// A parsed ssh config, or none at all (no file): every lookup then yields empty params.
#[derive(Debug, Default)]
pub struct SshConfigFile {
    config: Option<SshConfig>,
}

/// What the ssh config says about one host name (unset fields are `None`/empty).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostConfig {
    pub host_name: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_files: Vec<PathBuf>,
    pub proxy_jump: Option<String>,
    pub known_hosts_files: Vec<PathBuf>,
    pub strict_host_key_checking: Option<HostKeyChecking>,
    pub connect_timeout: Option<Duration>,
    pub server_alive_interval: Option<Duration>,
}

/// One ProxyJump hop as written: `[user@]host[:port]` or `ssh://[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpSpec {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl SshConfigFile {
    /// `explicit`: a path the user named (must be readable). Otherwise ~/.ssh/config if present.
    pub fn load(explicit: Option<&Path>) -> Result<SshConfigFile, TransportError> {
        let path = match explicit {
            Some(path) => path.to_path_buf(),
            None => match dirs::home_dir() {
                Some(home) => home.join(".ssh").join("config"),
                None => return Ok(SshConfigFile::default()),
            },
        };
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(err) if explicit.is_none() && err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(SshConfigFile::default());
            }
            Err(err) => {
                return Err(TransportError::Other(format!(
                    "cannot read ssh config {}: {err}",
                    path.display()
                )))
            }
        };
        Self::parse(&mut BufReader::new(file), &path)
    }

    pub fn parse(
        reader: &mut impl std::io::BufRead,
        path: &Path,
    ) -> Result<SshConfigFile, TransportError> {
        let rules = ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS;
        let config = SshConfig::default().parse(reader, rules).map_err(|err| {
            TransportError::Other(format!("cannot parse ssh config {}: {err}", path.display()))
        })?;
        Ok(SshConfigFile {
            config: Some(config),
        })
    }

    pub fn lookup(&self, alias: &str) -> HostConfig {
        let Some(config) = &self.config else {
            return HostConfig::default();
        };
        let params = config.query(alias);
        host_config_from(&params, alias)
    }
}

fn host_config_from(params: &HostParams, alias: &str) -> HostConfig {
    let unsupported = |name: &str| -> Option<&Vec<String>> {
        params
            .unsupported_fields
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    };
    let strict_host_key_checking = unsupported("stricthostkeychecking")
        .and_then(|args| args.first())
        .and_then(|value| match value.to_ascii_lowercase().as_str() {
            "yes" | "ask" => Some(HostKeyChecking::Strict),
            "accept-new" => Some(HostKeyChecking::AcceptNew),
            "no" | "off" => Some(HostKeyChecking::Off),
            _ => None,
        });
    let known_hosts_files = unsupported("userknownhostsfile")
        .map(|args| {
            args.iter()
                .flat_map(|arg| arg.split_whitespace())
                .filter(|file| !file.eq_ignore_ascii_case("none"))
                .map(expand_path)
                .collect()
        })
        .unwrap_or_default();
    let proxy_jump = params
        .proxy_jump
        .as_ref()
        .map(|hops| hops.join(","))
        .filter(|hops| !hops.eq_ignore_ascii_case("none"));
    HostConfig {
        host_name: params
            .host_name
            .as_ref()
            .map(|name| name.replace("%h", alias).replace("%%", "%")),
        port: params.port,
        user: params.user.clone(),
        identity_files: params.identity_file.clone().unwrap_or_default(),
        proxy_jump,
        known_hosts_files,
        strict_host_key_checking,
        connect_timeout: params.connect_timeout,
        server_alive_interval: params.server_alive_interval,
    }
}

/// Expands a leading `~` and the `%d` (home directory) token.
pub fn expand_path(raw: &str) -> PathBuf {
    let home = dirs::home_dir().unwrap_or_else(|| PathBuf::from("/"));
    let home_text = home.to_string_lossy();
    let expanded = raw.replace("%d", &home_text).replace("%%", "%");
    if expanded == "~" {
        return home;
    }
    if let Some(rest) = expanded.strip_prefix("~/") {
        return home.join(rest);
    }
    PathBuf::from(expanded)
}

/// Splits "user@h1:22,h2,ssh://u@h3:2222" into hops.
pub fn parse_proxy_jump(text: &str) -> Result<Vec<JumpSpec>, TransportError> {
    text.split(',')
        .map(str::trim)
        .filter(|hop| !hop.is_empty())
        .map(parse_jump_hop)
        .collect()
}

fn parse_jump_hop(hop: &str) -> Result<JumpSpec, TransportError> {
    let bad = || TransportError::Other(format!("invalid ProxyJump hop {hop:?}"));
    let rest = hop.strip_prefix("ssh://").unwrap_or(hop);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (user, host_port) = match rest.rsplit_once('@') {
        Some((user, host_port)) if !user.is_empty() => (Some(user.to_string()), host_port),
        Some(_) => return Err(bad()),
        None => (None, rest),
    };
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        // [ipv6]:port or [host]
        let (host, after) = bracketed.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port.parse::<u16>().map_err(|_| bad())?),
            None if after.is_empty() => None,
            None => return Err(bad()),
        };
        (host.to_string(), port)
    } else if host_port.matches(':').count() == 1 {
        let (host, port) = host_port.split_once(':').ok_or_else(bad)?;
        (
            host.to_string(),
            Some(port.parse::<u16>().map_err(|_| bad())?),
        )
    } else {
        (host_port.to_string(), None)
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok(JumpSpec { user, host, port })
}

/// The user orch runs as, the default SSH login like OpenSSH's.
pub fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "root".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> SshConfigFile {
        SshConfigFile::parse(&mut text.as_bytes(), Path::new("test-config")).unwrap()
    }

    #[test]
    fn first_value_wins_and_patterns_apply() {
        let cfg = config(
            "Host pve1\n  HostName 10.0.0.11\n  User admin\n\
             Host pve* !pve9\n  Port 2222\n  IdentityFile ~/.ssh/pve_key\n\
             Host *\n  User fallback\n  Port 22\n  StrictHostKeyChecking accept-new\n\
               UserKnownHostsFile ~/.ssh/kh_a /tmp/kh_b\n",
        );
        let pve1 = cfg.lookup("pve1");
        assert_eq!(pve1.host_name.as_deref(), Some("10.0.0.11"));
        assert_eq!(pve1.user.as_deref(), Some("admin"));
        assert_eq!(pve1.port, Some(2222));
        let home = dirs::home_dir().unwrap();
        assert_eq!(pve1.identity_files, vec![home.join(".ssh/pve_key")]);
        assert_eq!(
            pve1.strict_host_key_checking,
            Some(HostKeyChecking::AcceptNew)
        );
        assert_eq!(
            pve1.known_hosts_files,
            vec![home.join(".ssh/kh_a"), PathBuf::from("/tmp/kh_b")]
        );

        let pve9 = cfg.lookup("pve9");
        assert_eq!(pve9.port, Some(22), "negated pattern must exclude pve9");
        assert_eq!(pve9.user.as_deref(), Some("fallback"));
        assert!(pve9.identity_files.is_empty());
    }

    #[test]
    fn proxy_jump_from_config_keeps_all_hops() {
        let cfg = config("Host target\n  ProxyJump admin@bastion:2200,inner\n");
        assert_eq!(
            cfg.lookup("target").proxy_jump.as_deref(),
            Some("admin@bastion:2200,inner")
        );
        assert_eq!(cfg.lookup("other").proxy_jump, None);
    }

    #[test]
    fn hostname_token_expansion() {
        let cfg = config("Host *.short\n  HostName %h.example.com\n");
        assert_eq!(
            cfg.lookup("web.short").host_name.as_deref(),
            Some("web.short.example.com")
        );
    }

    #[test]
    fn jump_specs() {
        let hops = parse_proxy_jump("user@h1:22, h2,ssh://u@[::1]:2222,[h4]").unwrap();
        assert_eq!(
            hops,
            vec![
                JumpSpec {
                    user: Some("user".into()),
                    host: "h1".into(),
                    port: Some(22)
                },
                JumpSpec {
                    user: None,
                    host: "h2".into(),
                    port: None
                },
                JumpSpec {
                    user: Some("u".into()),
                    host: "::1".into(),
                    port: Some(2222)
                },
                JumpSpec {
                    user: None,
                    host: "h4".into(),
                    port: None
                },
            ]
        );
        assert!(parse_proxy_jump("h1:notaport").is_err());
        assert!(parse_proxy_jump("@h1").is_err());
    }

    #[test]
    fn missing_default_config_is_empty_but_missing_explicit_is_error() {
        assert!(SshConfigFile::load(Some(Path::new("/nonexistent/orch/config"))).is_err());
        let empty = SshConfigFile::default();
        assert_eq!(empty.lookup("x"), HostConfig::default());
    }
}
