//! The test host image, built (or found in docker's cache) once per test process.

use super::process::run_bounded;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const BUILD_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/image/build.sh");
/// A cold build runs mmdebstrap; parallel test processes wait on build.sh's lock meanwhile.
const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Tag of the test host image. `ORCH_TEST_IMAGE` overrides (CI builds once up front and sets it).
pub fn test_image() -> &'static str {
    static IMAGE: OnceLock<Result<String, String>> = OnceLock::new();
    let image = IMAGE.get_or_init(|| {
        if let Ok(tag) = std::env::var("ORCH_TEST_IMAGE") {
            if !tag.is_empty() {
                return Ok(tag);
            }
        }
        build_image()
    });
    match image {
        Ok(tag) => tag,
        Err(error) => panic!("test host image unavailable: {error}"),
    }
}

fn build_image() -> Result<String, String> {
    let finished = run_bounded(&mut Command::new(BUILD_SCRIPT), None, BUILD_TIMEOUT)
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
            "{BUILD_SCRIPT} failed (code {}, timed out: {}):\n{}",
            finished.code, finished.timed_out, finished.stderr
        ));
    }
    Ok(tag)
}
