//! The test host images, built (or found in docker's cache) once per test process.

use super::process::run_bounded;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const BUILD_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/image/build.sh");
/// A cold build runs mmdebstrap; parallel test processes wait on build.sh's lock meanwhile.
const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// What the hosts of a fleet run as PID 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Image {
    /// sshd (the default test host: quick to start, no init system).
    #[default]
    Sshd,
    /// systemd, with sshd as a unit: for the service modules. Needs what systemd needs in a container
    /// (see `docker_run_args`).
    Systemd,
}

impl Image {
    /// `build.sh`'s variant name and the variable that overrides the tag (CI builds once and sets it).
    fn variant(self) -> (&'static str, &'static str) {
        match self {
            Image::Sshd => ("host", "ORCH_TEST_IMAGE"),
            Image::Systemd => ("systemd", "ORCH_TEST_SYSTEMD_IMAGE"),
        }
    }

    /// Extra `docker run` options. systemd as PID 1 needs its own /run and /run/lock (tmpfs) and the
    /// cgroup hierarchy; read-only is enough on this engine (cgroup v1), no `--privileged`.
    /// Its stop signal (SIGRTMIN+3) is set in the image.
    pub fn docker_run_args(self) -> &'static [&'static str] {
        match self {
            Image::Sshd => &[],
            Image::Systemd => &[
                "--tmpfs",
                "/run",
                "--tmpfs",
                "/run/lock",
                "-v",
                "/sys/fs/cgroup:/sys/fs/cgroup:ro",
            ],
        }
    }
}

/// Tag of the default (sshd) test host image.
pub fn test_image() -> &'static str {
    image_tag(Image::Sshd)
}

/// Tag of a test host image: `$ORCH_TEST_IMAGE` / `$ORCH_TEST_SYSTEMD_IMAGE`, else what build.sh prints.
pub fn image_tag(image: Image) -> &'static str {
    static SSHD: OnceLock<Result<String, String>> = OnceLock::new();
    static SYSTEMD: OnceLock<Result<String, String>> = OnceLock::new();
    let cell = match image {
        Image::Sshd => &SSHD,
        Image::Systemd => &SYSTEMD,
    };
    let (variant, variable) = image.variant();
    let tag = cell.get_or_init(|| {
        if let Ok(tag) = std::env::var(variable) {
            if !tag.is_empty() {
                return Ok(tag);
            }
        }
        build_image(variant)
    });
    match tag {
        Ok(tag) => tag,
        Err(error) => panic!("test host image ({variant}) unavailable: {error}"),
    }
}

fn build_image(variant: &str) -> Result<String, String> {
    let finished = run_bounded(Command::new(BUILD_SCRIPT).arg(variant), None, BUILD_TIMEOUT)
        .map_err(|error| format!("cannot run {BUILD_SCRIPT}: {error}"))?;
    let tag = finished
        .stdout
        .trim()
        .lines()
        .last()
        .unwrap_or("")
        .to_string();
    if finished.code != 0 || finished.timed_out || tag.is_empty() {
        return Err(format!(
            "{BUILD_SCRIPT} {variant} failed (code {}, timed out: {}):\n{}",
            finished.code, finished.timed_out, finished.stderr
        ));
    }
    Ok(tag)
}
