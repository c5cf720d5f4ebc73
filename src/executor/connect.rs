//! Connection settings from a host's variables, and the per-run pool of sessions (one per host).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use crate::transport::{self, ConnectOptions, HostKeyChecking, Transport, TransportError};

fn var_str(vars: &Map<String, Value>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| match vars.get(*n) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// What a host needs to be reached: either the controller itself or SSH with these options.
pub enum Target {
    Local,
    Ssh(Box<ConnectOptions>),
}

/// Builds the connection target from (templated) host variables, as Ansible's connection vars.
pub fn target_for(
    host: &str,
    vars: &Map<String, Value>,
    remote_user: Option<&str>,
    defaults: &ConnectDefaults,
) -> Result<Target, String> {
    let connection = var_str(vars, &["ansible_connection"]).unwrap_or_else(|| "ssh".into());
    match connection.as_str() {
        "local" => return Ok(Target::Local),
        "ssh" | "smart" | "paramiko" => {}
        other => {
            return Err(format!(
                "connection type '{other}' is not supported (use ssh or local)"
            ))
        }
    }
    let port = match var_str(vars, &["ansible_port", "ansible_ssh_port"]) {
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| format!("ansible_port '{p}' is not a port number"))?,
        ),
        None => None,
    };
    let mut proxy_jump = None;
    if let Some(args) = var_str(vars, &["ansible_ssh_common_args", "ansible_ssh_extra_args"]) {
        proxy_jump = parse_proxy_jump(&args);
    }
    Ok(Target::Ssh(Box::new(ConnectOptions {
        alias: host.to_string(),
        host: var_str(vars, &["ansible_host", "ansible_ssh_host"]),
        port,
        user: var_str(vars, &["ansible_user", "ansible_ssh_user"])
            .or_else(|| remote_user.map(str::to_string)),
        password: var_str(
            vars,
            &[
                "ansible_password",
                "ansible_ssh_pass",
                "ansible_ssh_password",
            ],
        ),
        identity_files: var_str(
            vars,
            &["ansible_ssh_private_key_file", "ansible_private_key_file"],
        )
        .map(|p| vec![expand_tilde(&p)])
        .unwrap_or_default(),
        proxy_jump,
        host_key_checking: defaults.host_key_checking,
        known_hosts: None,
        ssh_config: None,
        connect_timeout: defaults.connect_timeout,
        keepalive: Duration::from_secs(15),
        passphrase: passphrase_prompt(),
    })))
}

/// Asks once per key file for its passphrase, when a person is at the terminal.
fn passphrase_prompt() -> Option<crate::transport::PassphrasePrompt> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return None;
    }
    static ASKED: Mutex<Vec<(PathBuf, Option<String>)>> = Mutex::new(Vec::new());
    Some(Arc::new(|path: &std::path::Path| {
        // Hosts connect in parallel: one prompt at a time, and each key asked for once.
        let mut asked = ASKED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, answer)) = asked.iter().find(|(p, _)| p == path) {
            return answer.clone();
        }
        let answer =
            rpassword::prompt_password(format!("Enter passphrase for key '{}': ", path.display()))
                .ok();
        asked.push((path.to_path_buf(), answer.clone()));
        answer
    }))
}

/// `-o ProxyJump=a,b` or `-J a` inside ansible_ssh_common_args.
fn parse_proxy_jump(args: &str) -> Option<String> {
    let words = shlex::split(args)?;
    let mut iter = words.iter();
    while let Some(w) = iter.next() {
        if w == "-J" {
            return iter.next().cloned();
        }
        let option = if w == "-o" {
            iter.next().map(String::as_str)
        } else {
            w.strip_prefix("-o")
        };
        if let Some(opt) = option {
            let (key, value) = opt.split_once(['=', ' ']).unwrap_or((opt, ""));
            if key.eq_ignore_ascii_case("proxyjump") {
                return Some(value.trim().to_string());
            }
        }
    }
    None
}

fn expand_tilde(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), dirs::home_dir()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(p),
    }
}

#[derive(Clone)]
pub struct ConnectDefaults {
    /// None: as ~/.ssh/config says (StrictHostKeyChecking), else strict.
    pub host_key_checking: Option<HostKeyChecking>,
    pub connect_timeout: Duration,
}

type Slot = Arc<OnceCell<Result<Arc<dyn Transport>, TransportError>>>;

/// One session per (host, address, user) for the whole run, opened on first use.
#[derive(Default)]
pub struct Pool {
    slots: Mutex<HashMap<String, Slot>>,
    /// Hosts whose run lock this run holds (a second session to a host must not wait for it).
    locked: Mutex<std::collections::HashSet<String>>,
    /// Hosts whose run lock could not be taken over a session opened unlocked.
    lock_failures: Mutex<HashMap<String, TransportError>>,
}

impl Pool {
    /// The run's session to a host, opened on first use (and, with the run lock on, locked).
    pub async fn get(
        &self,
        key: &str,
        target: Target,
    ) -> Result<Arc<dyn Transport>, TransportError> {
        let alias = match &target {
            Target::Ssh(opts) => Some(opts.alias.clone()),
            Target::Local => None,
        };
        let session = self.open(key, target, true).await?;
        // By host, not by session: another session to a host whose lock failed must not run.
        let failure = alias.and_then(|alias| {
            self.lock_failures
                .lock()
                .ok()
                .and_then(|f| f.get(&alias).cloned())
        });
        match failure {
            Some(failure) => Err(failure),
            None => Ok(session),
        }
    }

    /// Opens the session without taking the run lock: `prelock` connects to every host in
    /// parallel, then locks them one by one in a fixed order with [`Pool::lock`].
    pub async fn connect_only(
        &self,
        key: &str,
        target: Target,
    ) -> Result<Arc<dyn Transport>, TransportError> {
        self.open(key, target, false).await
    }

    /// Takes the run lock over an open session (once per host); a failure is what every later
    /// use of the session reports.
    pub async fn lock(&self, alias: &str, session: &Arc<dyn Transport>) {
        let Some(timeout) = super::runlock::lock_timeout() else {
            return;
        };
        let first = self
            .locked
            .lock()
            .map(|mut l| l.insert(alias.to_string()))
            .unwrap_or(false);
        if !first {
            return;
        }
        if let Err(failure) = super::runlock::acquire(session, alias, timeout).await {
            if let Ok(mut failures) = self.lock_failures.lock() {
                failures.insert(alias.to_string(), failure);
            }
        }
    }

    async fn open(
        &self,
        key: &str,
        target: Target,
        lock: bool,
    ) -> Result<Arc<dyn Transport>, TransportError> {
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .map_err(|_| TransportError::Other("connection pool poisoned".into()))?;
            slots.entry(key.to_string()).or_default().clone()
        };
        let result = slot
            .get_or_init(|| async move {
                match target {
                    Target::Local => Ok(transport::local()),
                    Target::Ssh(opts) => {
                        let session = transport::connect(&opts).await?;
                        if let (Some(timeout), true) = (super::runlock::lock_timeout(), lock) {
                            let first = self
                                .locked
                                .lock()
                                .map(|mut l| l.insert(opts.alias.clone()))
                                .unwrap_or(false);
                            if first {
                                super::runlock::acquire(&session, &opts.alias, timeout).await?;
                            }
                        }
                        Ok(session)
                    }
                }
            })
            .await;
        result.clone()
    }

    pub async fn close_all(&self) {
        let slots: Vec<Slot> = match self.slots.lock() {
            Ok(s) => s.values().cloned().collect(),
            Err(_) => return,
        };
        for slot in slots {
            if let Some(Ok(t)) = slot.get() {
                t.close().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_jump_forms() {
        assert_eq!(
            parse_proxy_jump("-o ProxyJump=jump@bastion:2222"),
            Some("jump@bastion:2222".into())
        );
        assert_eq!(
            parse_proxy_jump("-o 'ProxyJump a,b' -o Foo=bar"),
            Some("a,b".into())
        );
        assert_eq!(parse_proxy_jump("-J bastion"), Some("bastion".into()));
        assert_eq!(parse_proxy_jump("-o StrictHostKeyChecking=no"), None);
    }
}
