//! The module contract and registry.
//!
//! A module reads the host in `plan` (never changing it) and changes it in `apply`, which the executor
//! calls only when the plan has changes and the run is not in check mode. Check mode is therefore
//! "plan only" for every module, enforced in one place.

use std::any::Any;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::transport::{ExecOutput, TransportError};

pub mod args;
pub mod command;
pub mod control;
pub mod registry;
pub mod remote;

pub mod apt;
pub mod apt_repository;
pub mod authentik;
pub mod authentik_wait;
pub mod blockinfile;
pub mod compose_v2;
pub mod copy;
pub mod deb822_repository;
pub mod docker_compose_v2;
pub mod docker_compose_v2_pull;
pub mod env_file;
pub mod file;
pub mod filecommon;
pub mod get_url;
pub mod group;
pub mod lineinfile;
pub mod pve;
pub mod pyregex;
pub mod service;
pub mod setup;
pub mod slurp;
pub mod stat;
pub mod systemd_service;
pub mod template;
#[cfg(test)]
pub mod testenv;
#[cfg(test)]
pub mod testhttp;
pub mod textedit;
pub mod tls;
pub mod uri;
pub mod urlfetch;
pub mod user;
pub mod wait_for;

pub use args::Args;

/// What a module may do with the host and the run it is part of.
#[async_trait::async_trait]
pub trait TaskEnv: Send + Sync {
    /// Runs a POSIX `sh` script on the target (with become and the task's environment applied, `LANG=C`).
    /// Secrets go in `stdin`, never in the script text.
    async fn run(&self, script: &str, stdin: Option<Vec<u8>>) -> Result<ExecOutput, ModuleError>;
    /// Opens a TCP connection to `host:port` as seen from the target, through the host's SSH session
    /// (modules that talk to an API on the target from the controller use it).
    #[allow(dead_code)] // first user: the Authentik API modules
    async fn open_tunnel(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Box<dyn crate::transport::Tunnel>, ModuleError>;
    /// Renders a template file on the controller with the task's variables.
    fn render_template_file(&self, path: &Path) -> Result<String, String>;
    /// Finds a controller-side file named by a task (`src:`), searching `files/` or `templates/` beside the
    /// task file and the playbook, then those directories themselves, like Ansible.
    fn find_file(&self, subdir: &str, name: &str) -> Option<PathBuf>;
    /// Evaluates a Jinja expression with the task's variables (`debug var=`, `assert that:`).
    fn eval_expr(&self, expr: &str) -> Result<Value, String>;
    fn check_mode(&self) -> bool;
    fn diff_mode(&self) -> bool;
}

/// The argument names a module accepts, for static validation before any host is contacted.
pub struct ArgSpec {
    pub args: &'static [Arg],
    /// A free-form string (`command: echo hi`) is stored under this argument name.
    pub free_form: Option<&'static str>,
    /// Any `key: value` is accepted (set_fact).
    pub any_keys: bool,
}

pub struct Arg {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub required: bool,
    pub choices: &'static [&'static str],
    /// Not templated before the module runs: the module evaluates it itself (assert's `that`).
    pub raw: bool,
    /// Ansible accepts it; orch does not implement it. Given (and not `false`), it is refused
    /// before any host is touched rather than ignored.
    pub unsupported: bool,
}

impl Arg {
    pub const fn opt(name: &'static str) -> Arg {
        Arg {
            name,
            aliases: &[],
            required: false,
            choices: &[],
            raw: false,
            unsupported: false,
        }
    }
    pub const fn req(name: &'static str) -> Arg {
        Arg {
            name,
            aliases: &[],
            required: true,
            choices: &[],
            raw: false,
            unsupported: false,
        }
    }
    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> Arg {
        self.aliases = aliases;
        self
    }
    pub const fn raw(mut self) -> Arg {
        self.raw = true;
        self
    }
    pub const fn unsupported(mut self) -> Arg {
        self.unsupported = true;
        self
    }
    pub const fn choices(mut self, choices: &'static [&'static str]) -> Arg {
        self.choices = choices;
        self
    }
}

impl ArgSpec {
    /// The first argument given that orch does not implement, as the error to report.
    pub fn refused(&self, module: &str, args: &Map<String, Value>) -> Option<String> {
        self.args
            .iter()
            .filter(|a| a.unsupported)
            .find(|a| {
                args.get(a.name)
                    .is_some_and(|v| !v.is_null() && *v != Value::Bool(false))
            })
            .map(|a| format!("{module}: argument '{}' is not supported by orch", a.name))
    }
}

/// An [`ArgSpec`] with the module's own arguments, then Ansible's common file arguments (its
/// `files` documentation fragment): mode, owner, group, and the file attributes and SELinux
/// context orch does not manage.
macro_rules! file_spec {
    ($($arg:expr),* $(,)?) => {
        $crate::modules::ArgSpec {
            args: &[
                $($arg,)*
                $crate::modules::Arg::opt("mode"),
                $crate::modules::Arg::opt("owner"),
                $crate::modules::Arg::opt("group"),
                $crate::modules::Arg::opt("unsafe_writes"),
                $crate::modules::Arg::opt("attributes").aliases(&["attr"]).unsupported(),
                $crate::modules::Arg::opt("seuser").unsupported(),
                $crate::modules::Arg::opt("serole").unsupported(),
                $crate::modules::Arg::opt("setype").unsupported(),
                $crate::modules::Arg::opt("selevel").unsupported(),
            ],
            free_form: None,
            any_keys: false,
        }
    };
}
pub(crate) use file_spec;

/// Result key under which a module lists secret values it returned (generated passwords, client
/// secrets, private keys). The executor masks them everywhere from then on and removes the key;
/// registered variables keep the values themselves.
pub const SECRETS_KEY: &str = "_orch_secrets";

/// A before/after pair for `--diff`.
#[derive(Clone, Debug, Default)]
pub struct Diff {
    pub before_header: String,
    pub after_header: String,
    pub before: String,
    pub after: String,
}

/// What `plan` found: whether the host differs from the desired state, and how.
#[derive(Default)]
pub struct Plan {
    pub changed: bool,
    pub diffs: Vec<Diff>,
    /// Result keys known at plan time (returned as-is in check mode and when nothing changes).
    pub result: Map<String, Value>,
    /// In check mode, the module cannot predict the outcome: the task is reported skipped with this message.
    pub skip_in_check: Option<String>,
    /// Whatever `apply` needs, so that it does not probe the host again.
    pub data: Option<Box<dyn Any + Send + Sync>>,
}

impl Plan {
    pub fn unchanged(result: Map<String, Value>) -> Plan {
        Plan {
            changed: false,
            result,
            ..Plan::default()
        }
    }
}

/// A module failure (the task fails) or a lost connection (the host becomes unreachable).
#[derive(Debug)]
pub enum ModuleError {
    Failed {
        msg: String,
        result: Map<String, Value>,
    },
    Transport(TransportError),
}

impl ModuleError {
    pub fn msg(msg: impl Into<String>) -> ModuleError {
        ModuleError::Failed {
            msg: msg.into(),
            result: Map::new(),
        }
    }
    pub fn with_result(msg: impl Into<String>, result: Map<String, Value>) -> ModuleError {
        ModuleError::Failed {
            msg: msg.into(),
            result,
        }
    }
}

impl From<TransportError> for ModuleError {
    fn from(e: TransportError) -> Self {
        ModuleError::Transport(e)
    }
}

#[async_trait::async_trait]
pub trait Module: Send + Sync {
    fn name(&self) -> &'static str;
    fn spec(&self) -> &'static ArgSpec;
    /// Read-only: what differs between the host and `args`. Must not change the host.
    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError>;
    /// Makes the planned change; returns the result keys (`changed` is set by the executor).
    async fn apply(
        &self,
        env: &dyn TaskEnv,
        args: &Args,
        plan: Plan,
    ) -> Result<Map<String, Value>, ModuleError> {
        let _ = (env, args);
        Ok(plan.result)
    }
}

#[cfg(test)]
mod spec_tests {
    use serde_json::json;

    #[test]
    fn arguments_orch_does_not_implement_are_refused_unless_false() {
        let spec = &super::copy::SPEC;
        let refused = |v: serde_json::Value| match v {
            serde_json::Value::Object(m) => spec.refused("copy", &m),
            _ => None,
        };
        assert_eq!(
            refused(json!({"dest": "/x", "selevel": "s0"})).as_deref(),
            Some("copy: argument 'selevel' is not supported by orch")
        );
        assert_eq!(refused(json!({"dest": "/x", "attributes": false})), None);
        assert_eq!(refused(json!({"dest": "/x", "attributes": null})), None);
        assert_eq!(refused(json!({"dest": "/x", "mode": "0644"})), None);
    }
}
