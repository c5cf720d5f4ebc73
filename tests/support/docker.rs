//! The docker CLI, bounded in time. Every failure carries docker's own stderr.

use super::process::run_bounded;
use std::process::Command;
use std::time::Duration;

/// Long enough for a loaded 2-core machine, short enough that a wedged daemon fails the test.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);

/// Output of a docker command that ran to completion (whatever its exit code).
#[derive(Debug, Clone)]
pub struct DockerOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `docker ARGS`; Err only when docker could not be started or did not finish in time.
pub fn docker_raw(args: &[&str]) -> Result<DockerOutput, String> {
    let finished = run_bounded(Command::new("docker").args(args), None, DOCKER_TIMEOUT)
        .map_err(|error| format!("cannot run `docker {}`: {error}", args.join(" ")))?;
    if finished.timed_out {
        return Err(format!(
            "`docker {}` did not finish within {DOCKER_TIMEOUT:?}",
            args.join(" ")
        ));
    }
    Ok(DockerOutput {
        code: finished.code,
        stdout: finished.stdout,
        stderr: finished.stderr,
    })
}

/// Runs `docker ARGS` and returns its trimmed stdout; Err with stderr when it exits non-zero.
pub fn docker(args: &[&str]) -> Result<String, String> {
    let output = docker_raw(args)?;
    if output.code != 0 {
        return Err(format!(
            "`docker {}` exited {}: {}",
            args.join(" "),
            output.code,
            output.stderr.trim()
        ));
    }
    Ok(output.stdout.trim().to_string())
}

/// Like [`docker`], panicking on failure: for harness steps without which the test cannot go on.
pub fn docker_ok(args: &[&str]) -> String {
    docker(args).unwrap_or_else(|error| panic!("{error}"))
}
