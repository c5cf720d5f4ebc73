//! The `TaskEnv` a module sees: the host's session with become and environment applied, and the
//! task's variables for templates.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::modules::remote::quote;
use crate::modules::{ModuleError, TaskEnv};
use crate::template::Templar;
use crate::transport::{become_failure, wrap_become, BecomeSpec, ExecOutput, Transport};

pub struct HostEnv {
    pub transport: Arc<dyn Transport>,
    pub become_spec: Option<BecomeSpec>,
    pub environment: Vec<(String, String)>,
    pub templar: Arc<Templar>,
    pub vars: minijinja::Value,
    pub check_mode: bool,
    pub diff_mode: bool,
    /// Directories searched for `src:` files: the task file's directory, then the playbook's.
    pub search_dirs: Vec<PathBuf>,
    pub timeout: Duration,
    /// Names whose values only a real run gives, behind templates the module failed to evaluate
    /// itself (`template`, `assert`); check mode then skips the task instead of failing it.
    pub unknown: Mutex<Vec<String>>,
}

impl HostEnv {
    /// See `unknown`.
    pub fn unknown_seen(&self) -> Vec<String> {
        self.unknown
            .lock()
            .map(|u| u.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn note_unknown(&self, error: &crate::template::TemplateError) {
        let mut seen = self.unknown.lock().unwrap_or_else(|e| e.into_inner());
        for name in &error.unknown {
            if !seen.contains(name) {
                seen.push(name.clone());
            }
        }
    }

    /// The full command line for a script: POSIX sh with the task's environment, then become.
    /// (The transport itself gives every command the C locale.)
    pub fn command_for(
        &self,
        script: &str,
        stdin: Option<Vec<u8>>,
    ) -> Result<(String, Option<Vec<u8>>), ModuleError> {
        let mut prelude = String::new();
        for (k, v) in &self.environment {
            prelude.push_str(&format!("{k}={}; export {k}\n", quote(v)));
        }
        let full = format!("{prelude}{script}");
        let command = format!("/bin/sh -c {}", quote(&full));
        match &self.become_spec {
            Some(spec) => Ok(wrap_become(&command, stdin, spec)?),
            None => Ok((command, stdin)),
        }
    }
}

#[async_trait::async_trait]
impl TaskEnv for HostEnv {
    async fn run(&self, script: &str, stdin: Option<Vec<u8>>) -> Result<ExecOutput, ModuleError> {
        let (command, stdin) = self.command_for(script, stdin)?;
        let out = self.transport.exec(&command, stdin, self.timeout).await?;
        if let Some(spec) = &self.become_spec {
            if let Some(problem) = become_failure(spec, &out) {
                return Err(ModuleError::msg(problem));
            }
        }
        Ok(out)
    }

    async fn open_tunnel(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Box<dyn crate::transport::Tunnel>, ModuleError> {
        // A refused or failed channel is the module's failure (nothing listens there); only a lost
        // session makes the host unreachable.
        match self.transport.open_tunnel(host, port).await {
            Ok(tunnel) => Ok(tunnel),
            Err(e) if e.is_unreachable() => Err(ModuleError::Transport(e)),
            Err(e) => Err(ModuleError::msg(e.to_string())),
        }
    }

    fn render_template_file(&self, path: &Path) -> Result<String, String> {
        self.templar.render_file(path, &self.vars).map_err(|e| {
            self.note_unknown(&e);
            e.message
        })
    }

    fn find_file(&self, subdir: &str, name: &str) -> Option<PathBuf> {
        let name_path = Path::new(name);
        if name_path.is_absolute() {
            return name_path.exists().then(|| name_path.to_path_buf());
        }
        self.search_dirs
            .iter()
            .flat_map(|d| [d.join(subdir).join(name), d.join(name)])
            .find(|p| p.exists())
    }

    fn eval_expr(&self, expr: &str) -> Result<Value, String> {
        self.templar.eval(expr, &self.vars).map_err(|e| {
            self.note_unknown(&e);
            e.message
        })
    }

    fn check_mode(&self) -> bool {
        self.check_mode
    }

    fn diff_mode(&self) -> bool {
        self.diff_mode
    }
}
