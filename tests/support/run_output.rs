//! What one orch invocation produced, with assertions that show both streams when they fail.

use super::recap::{parse_recap, recap_hosts, Recap};
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Exit code; 128+N if killed by signal N; -1 if unknown.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// True when the run exceeded its timeout and was killed.
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl RunOutput {
    /// Panics, printing the command's stdout and stderr, unless it exited with `expected`.
    #[track_caller]
    pub fn assert_code(&self, expected: i32) -> &Self {
        if self.timed_out || self.code != expected {
            panic!("expected exit code {expected}, got {}\n{self}", self.code);
        }
        self
    }

    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        self.assert_code(0)
    }

    #[track_caller]
    pub fn assert_stdout_contains(&self, needle: &str) -> &Self {
        if !self.stdout.contains(needle) {
            panic!("stdout does not contain {needle:?}\n{self}");
        }
        self
    }

    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        if !self.stderr.contains(needle) {
            panic!("stderr does not contain {needle:?}\n{self}");
        }
        self
    }

    /// The PLAY RECAP counters of `host` (inventory name), from stdout or else stderr.
    #[track_caller]
    pub fn recap(&self, host: &str) -> Recap {
        self.try_recap(host)
            .unwrap_or_else(|| panic!("no PLAY RECAP line for host {host:?}\n{self}"))
    }

    pub fn try_recap(&self, host: &str) -> Option<Recap> {
        parse_recap(&self.stdout, host).or_else(|| parse_recap(&self.stderr, host))
    }

    /// Host names listed in the last PLAY RECAP (stdout, or else stderr).
    pub fn recap_hosts(&self) -> Vec<String> {
        let hosts = recap_hosts(&self.stdout);
        if hosts.is_empty() {
            recap_hosts(&self.stderr)
        } else {
            hosts
        }
    }
}

impl fmt::Display for RunOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "--- exit code {}{} after {:.2?}",
            self.code,
            if self.timed_out {
                " (TIMED OUT, killed)"
            } else {
                ""
            },
            self.elapsed
        )?;
        writeln!(f, "--- stdout:\n{}", self.stdout)?;
        write!(f, "--- stderr:\n{}", self.stderr)
    }
}
