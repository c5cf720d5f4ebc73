//! An orch invocation against a fleet: hermetic environment, bounded in time.

use super::process::run_bounded;
use super::run_output::RunOutput;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const ORCH_BIN: &str = env!("CARGO_BIN_EXE_orch");

/// Variables passed through from the test's environment; everything else is dropped so that a
/// developer's ANSIBLE_*, ORCH_*, SSH_AUTH_SOCK or ~/.ssh cannot change what a test sees.
const PASSED_THROUGH: &[&str] = &[
    "PATH",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "RUST_BACKTRACE",
    "RUST_LOG",
    "LLVM_PROFILE_FILE",
];

/// Default deadline for one orch run; `ORCH_TEST_TIMEOUT_SECS` overrides it for slow machines.
fn default_timeout() -> Duration {
    let seconds = std::env::var("ORCH_TEST_TIMEOUT_SECS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(180);
    Duration::from_secs(seconds)
}

/// Builder for one orch run: `fleet.orch_cmd(&[..]).env("K", "V").stdin("pw\n").run()`.
pub struct OrchCommand {
    args: Vec<String>,
    cwd: PathBuf,
    home: PathBuf,
    envs: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
}

impl OrchCommand {
    pub fn new(args: &[&str], cwd: &Path, home: &Path) -> OrchCommand {
        OrchCommand {
            args: args.iter().map(|arg| arg.to_string()).collect(),
            cwd: cwd.to_path_buf(),
            home: home.to_path_buf(),
            envs: Vec::new(),
            stdin: None,
            timeout: default_timeout(),
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }

    /// Bytes on orch's stdin (default: /dev/null, i.e. non-interactive).
    pub fn stdin(mut self, input: &str) -> Self {
        self.stdin = Some(input.as_bytes().to_vec());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = dir.to_path_buf();
        self
    }

    #[track_caller]
    pub fn run(self) -> RunOutput {
        let mut command = Command::new(ORCH_BIN);
        command.args(&self.args).current_dir(&self.cwd).env_clear();
        for key in PASSED_THROUGH {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        command
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_CACHE_HOME", self.home.join(".cache"))
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .env("XDG_STATE_HOME", self.home.join(".local/state"))
            .env("NO_COLOR", "1")
            .env("TERM", "dumb");
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        let finished = run_bounded(&mut command, self.stdin.as_deref(), self.timeout)
            .unwrap_or_else(|error| panic!("cannot run {ORCH_BIN}: {error}"));
        RunOutput {
            code: finished.code,
            stdout: finished.stdout,
            stderr: finished.stderr,
            timed_out: finished.timed_out,
            elapsed: finished.elapsed,
        }
    }
}

/// An orch run going on in the background while the test looks at the hosts.
pub struct RunningOrch(std::thread::JoinHandle<RunOutput>);

impl RunningOrch {
    #[track_caller]
    pub fn wait(self) -> RunOutput {
        self.0
            .join()
            .unwrap_or_else(|_| panic!("the orch runner thread panicked"))
    }
}

impl OrchCommand {
    /// Starts the run on a thread (bounded like [`OrchCommand::run`]); `wait()` returns its output.
    pub fn spawn(self) -> RunningOrch {
        RunningOrch(std::thread::spawn(move || self.run()))
    }
}
