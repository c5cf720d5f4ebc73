//! Transports: how orch runs commands on a target.
//!
//! * [`connect`] opens ONE authenticated SSH session per host (optionally through ProxyJump hops);
//!   every [`Transport::exec`] is a new channel on it, so many commands can run concurrently.
//! * [`local`] runs commands on the controller with `sh -c`.
//! * [`wrap_become`] turns a command into its sudo/su form, the password travelling on stdin.
//!
//! Locale: every command runs with `LANG=C LC_ALL=C`. The SSH transport prefixes the command
//! text with `export LANG=C LC_ALL=C; ` (the remote login shell parses it, so the setting covers
//! compound commands too; sshd `AcceptEnv` is not relied upon); the local transport sets the
//! variables on the child process; the become wrapper exports them again under sudo/su.
#![allow(dead_code)]
// The re-exports are the API for the executor, which does not exist yet.
#![allow(unused_imports)]

mod r#become;
mod known_hosts;
mod local;
mod ssh;
mod ssh_config;
mod tunnel;

#[cfg(test)]
mod tests_ssh;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use known_hosts::{KnownHosts, KnownHostsVerdict};
pub use local::local;
pub use r#become::{become_failure, wrap_become, BecomeMethod, BecomeSpec};
pub use ssh::connect;
pub use tunnel::Tunnel;

/// What a finished command left behind. `rc` is the exit status; a command killed by a signal
/// gets `128 + signal number`, like a POSIX shell reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    pub rc: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Ansible reports connection, host-key and authentication failures alike as
/// "Failed to connect to the host via ssh: ...": those three variants are unreachable-class.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    #[error("Failed to connect to the host via ssh: {0}")]
    Unreachable(String),
    #[error("Failed to connect to the host via ssh: {0}")]
    HostKey(String),
    #[error("Failed to connect to the host via ssh: {0}")]
    Auth(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Other(String),
}

impl TransportError {
    /// True when the host should be marked UNREACHABLE rather than FAILED.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            TransportError::Unreachable(_) | TransportError::HostKey(_) | TransportError::Auth(_)
        )
    }
}

#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    /// Runs `command` verbatim as one SSH exec request (the remote user's shell parses it); stdin
    /// bytes are written then EOF is sent; stdout, stderr and exit status kept apart. Many may run
    /// concurrently on one session.
    async fn exec(
        &self,
        command: &str,
        stdin: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<ExecOutput, TransportError>;

    /// Opens a TCP connection to `host:port` as seen from the target (SSH direct-tcpip).
    async fn open_tunnel(&self, host: &str, port: u16) -> Result<Box<dyn Tunnel>, TransportError>;

    /// Ends the session (and its jump hosts). Later calls fail with an Unreachable error.
    async fn close(&self);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyChecking {
    /// Unknown or changed keys are refused.
    Strict,
    /// Unknown keys are recorded in known_hosts, changed keys are refused.
    AcceptNew,
    /// Anything is accepted (the caller warns about it).
    Off,
}

pub type PassphrasePrompt = Arc<dyn Fn(&Path) -> Option<String> + Send + Sync>;

/// Everything needed to reach one host. Explicit fields win over ~/.ssh/config values.
#[derive(Clone)]
pub struct ConnectOptions {
    /// Inventory hostname: used for ~/.ssh/config `Host` matching and in messages.
    pub alias: String,
    /// ansible_host: overrides the config's HostName.
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub identity_files: Vec<PathBuf>,
    /// "user@h1:22,h2": several hops, connected in order.
    pub proxy_jump: Option<String>,
    /// `None` = take StrictHostKeyChecking from ssh config, else `Strict`.
    pub host_key_checking: Option<HostKeyChecking>,
    /// Default: ssh config UserKnownHostsFile, else ~/.ssh/known_hosts.
    pub known_hosts: Option<PathBuf>,
    /// Default: ~/.ssh/config if it exists.
    pub ssh_config: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Keepalive interval; after 3 unanswered keepalives the session is declared dead.
    pub keepalive: Duration,
    /// Asked for the passphrase of an encrypted private key.
    pub passphrase: Option<PassphrasePrompt>,
}

impl ConnectOptions {
    pub fn new(alias: impl Into<String>) -> Self {
        ConnectOptions {
            alias: alias.into(),
            host: None,
            port: None,
            user: None,
            password: None,
            identity_files: Vec::new(),
            proxy_jump: None,
            host_key_checking: None,
            known_hosts: None,
            ssh_config: None,
            connect_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(15),
            passphrase: None,
        }
    }
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("alias", &self.alias)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "********"))
            .field("identity_files", &self.identity_files)
            .field("proxy_jump", &self.proxy_jump)
            .field("host_key_checking", &self.host_key_checking)
            .field("known_hosts", &self.known_hosts)
            .field("ssh_config", &self.ssh_config)
            .field("connect_timeout", &self.connect_timeout)
            .field("keepalive", &self.keepalive)
            .finish_non_exhaustive()
    }
}

/// Prefix that gives every remote command the C locale (see the module comment).
pub(crate) const C_LOCALE_PREFIX: &str = "export LANG=C LC_ALL=C; ";

/// Quotes a string for a POSIX shell (single quotes; embedded quotes closed and escaped).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}
