//! A `TaskEnv` for tests: scripts run with the local `sh` in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;

use super::{Args, Module, ModuleError, Plan, TaskEnv};
use crate::transport::ExecOutput;

pub struct LocalEnv {
    pub dir: tempfile::TempDir,
    pub check: bool,
    pub diff: bool,
    /// Variables for the tiny `{{ name }}` template substitution.
    pub vars: Map<String, Value>,
    pub runs: AtomicUsize,
    /// Every script run, in order (tests check that secrets travel on stdin, not in scripts).
    pub scripts: Mutex<Vec<String>>,
}

impl LocalEnv {
    pub fn new() -> LocalEnv {
        LocalEnv {
            dir: tempfile::tempdir().expect("tempdir"),
            check: false,
            diff: false,
            vars: Map::new(),
            runs: AtomicUsize::new(0),
            scripts: Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    pub fn scripts(&self) -> Vec<String> {
        self.scripts.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl TaskEnv for LocalEnv {
    async fn run(&self, script: &str, stdin: Option<Vec<u8>>) -> Result<ExecOutput, ModuleError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut scripts) = self.scripts.lock() {
            scripts.push(script.to_string());
        }
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(self.dir.path())
            .env("LANG", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ModuleError::msg(format!("spawn sh: {e}")))?;
        let mut input = child.stdin.take().expect("stdin");
        let data = stdin.unwrap_or_default();
        let writer = tokio::spawn(async move {
            let _ = input.write_all(&data).await;
        });
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| ModuleError::msg(format!("wait sh: {e}")))?;
        let _ = writer.await;
        Ok(ExecOutput {
            rc: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    async fn open_tunnel(
        &self,
        _host: &str,
        _port: u16,
    ) -> Result<Box<dyn crate::transport::Tunnel>, ModuleError> {
        Err(ModuleError::msg("no tunnels in the test environment"))
    }

    fn render_template_file(&self, path: &Path) -> Result<String, String> {
        let mut text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        for (name, value) in &self.vars {
            let shown = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            text = text.replace(&format!("{{{{ {name} }}}}"), &shown);
        }
        Ok(text)
    }

    fn find_file(&self, subdir: &str, name: &str) -> Option<PathBuf> {
        let candidate = if Path::new(name).is_absolute() {
            PathBuf::from(name)
        } else {
            self.dir.path().join(subdir).join(name)
        };
        candidate.exists().then_some(candidate)
    }

    fn eval_expr(&self, expr: &str) -> Result<serde_json::Value, String> {
        Err(format!(
            "expressions are not evaluated by the test environment: {expr}"
        ))
    }

    fn check_mode(&self) -> bool {
        self.check
    }

    fn diff_mode(&self) -> bool {
        self.diff
    }
}

/// Builds `Args` from a JSON object literal.
pub fn args(module: &'static str, value: Value) -> Args {
    match value {
        Value::Object(map) => Args::new(module, map),
        _ => panic!("args must be an object"),
    }
}

/// What one task run produced, as the executor would see it.
pub struct Outcome {
    pub changed: bool,
    pub result: Map<String, Value>,
    pub diffs: Vec<super::Diff>,
    pub skipped: Option<String>,
}

/// Plans and (unless in check mode or unchanged) applies, like the executor; checks the round trip budget.
pub async fn run_module(
    module: &dyn Module,
    env: &LocalEnv,
    args: &Args,
) -> Result<Outcome, ModuleError> {
    let before = env.runs();
    let plan: Plan = module.plan(env, args).await?;
    assert!(
        env.runs() - before <= 1,
        "plan of {} used {} round trips",
        module.name(),
        env.runs() - before
    );
    let changed = plan.changed;
    let diffs = plan.diffs.clone();
    if env.check {
        let skipped = plan.skip_in_check.clone();
        return Ok(Outcome {
            changed,
            result: plan.result,
            diffs,
            skipped,
        });
    }
    if !changed {
        return Ok(Outcome {
            changed,
            result: plan.result,
            diffs,
            skipped: None,
        });
    }
    let mid = env.runs();
    let result = module.apply(env, args, plan).await?;
    assert!(
        env.runs() - mid <= 1,
        "apply of {} used {} round trips",
        module.name(),
        env.runs() - mid
    );
    Ok(Outcome {
        changed,
        result,
        diffs,
        skipped: None,
    })
}

/// The message of a failed module run.
pub fn failure(result: Result<Outcome, ModuleError>) -> (String, Map<String, Value>) {
    match result {
        Err(ModuleError::Failed { msg, result }) => (msg, result),
        Err(ModuleError::Transport(e)) => panic!("transport error: {e}"),
        Ok(o) => panic!("expected a failure, got {:?}", o.result),
    }
}

/// The local user's and group's names (tests run as whoever runs cargo).
pub fn current_user() -> (String, String) {
    let run = |flag: &str| {
        let out = std::process::Command::new("id")
            .arg(flag)
            .output()
            .expect("id");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    (run("-un"), run("-gn"))
}

/// The permission bits of a local path.
pub fn mode_of(path: &str) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}
