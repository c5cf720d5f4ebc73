//! The fake Authentik (tests/support/fake_authentik/fake_authentik.py) started inside a fleet host
//! with `docker exec -d`, and what the tests read back from it (state file, request log, stderr).
//!
//! ```ignore
//! let options = FakeAuthentikOptions::new()
//!     .version("2026.5.6")
//!     .bind("127.0.0.1")
//!     .dotenv(&format!("AUTHENTIK_BOOTSTRAP_TOKEN={token}\n"));
//! let fake = FakeAuthentik::start(&fleet, 0, &options);
//! fake.wait_ready(&token);
//! assert_eq!(fake.state()["setup"], true);
//! ```

use std::time::{Duration, Instant};

use serde_json::Value;

use super::docker::docker_ok;
use super::Fleet;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/fake_authentik/fake_authentik.py"
);
const STANDIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/docker-standin/docker"
);
/// The compose `.env` of the Authentik host; the fake reads its bootstrap values there.
pub const ENV_FILE: &str = "/opt/authentik/.env";
/// Where the fake Authentik keeps its objects, in its host.
pub const FAKE_STATE: &str = "/var/lib/fake-authentik/state.json";
/// The fake's request log (JSON lines, never a token).
pub const FAKE_REQUESTS: &str = "/var/log/fake-authentik/requests.log";
const STDERR_LOG: &str = "/var/log/fake-authentik/stderr.log";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How the fake is started: each `Some` is passed as its command-line flag, `None` leaves the
/// fake's default (`--bind 0.0.0.0`, port 9000 only, its default version, no delays).
#[derive(Clone, Debug, Default)]
pub struct FakeAuthentikOptions {
    /// `--version`: `2024.12.3`, `2026.5.6`, …
    pub version: Option<String>,
    /// `--bind`: `127.0.0.1` keeps the API off the network (orch then tunnels through SSH).
    pub bind: Option<String>,
    /// `--https-port`: also serve HTTPS with the brand's web certificate, as Authentik does on 9443.
    pub https_port: Option<u16>,
    /// `--tls-reload-interval`: seconds before a new brand certificate is served.
    pub tls_reload_seconds: Option<u32>,
    /// `--ready-delay` and `--bootstrap-delay`, in seconds.
    pub delays: Option<(u32, u32)>,
    /// Written to [`ENV_FILE`] (mode 0600) before the start; `None` leaves it to the playbook.
    pub dotenv: Option<String>,
    /// Also install the `docker` stand-in (tests/support/docker-standin) as /usr/bin/docker.
    pub docker_standin: bool,
}

impl FakeAuthentikOptions {
    pub fn new() -> FakeAuthentikOptions {
        FakeAuthentikOptions::default()
    }

    pub fn version(mut self, version: &str) -> FakeAuthentikOptions {
        self.version = Some(version.into());
        self
    }

    pub fn bind(mut self, address: &str) -> FakeAuthentikOptions {
        self.bind = Some(address.into());
        self
    }

    pub fn https(mut self, port: u16) -> FakeAuthentikOptions {
        self.https_port = Some(port);
        self
    }

    pub fn tls_reload(mut self, seconds: u32) -> FakeAuthentikOptions {
        self.tls_reload_seconds = Some(seconds);
        self
    }

    pub fn delays(mut self, ready: u32, bootstrap: u32) -> FakeAuthentikOptions {
        self.delays = Some((ready, bootstrap));
        self
    }

    pub fn dotenv(mut self, contents: &str) -> FakeAuthentikOptions {
        self.dotenv = Some(contents.into());
        self
    }

    pub fn docker_standin(mut self) -> FakeAuthentikOptions {
        self.docker_standin = true;
        self
    }

    /// The fake's command line after the script's path.
    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut flag = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                args.push(format!("--{name} {value}"));
            }
        };
        flag("bind", self.bind.clone());
        flag("https-port", self.https_port.map(|p| p.to_string()));
        flag(
            "tls-reload-interval",
            self.tls_reload_seconds.map(|s| s.to_string()),
        );
        flag("env-file", Some(ENV_FILE.into()));
        flag("version", self.version.clone());
        flag(
            "ready-delay",
            self.delays.map(|(ready, _)| ready.to_string()),
        );
        flag(
            "bootstrap-delay",
            self.delays.map(|(_, bootstrap)| bootstrap.to_string()),
        );
        args
    }
}

/// `docker cp SRC CONTAINER:DEST`, panicking on failure.
#[track_caller]
pub fn docker_cp(container: &str, src: &str, dest: &str) {
    docker_ok(&["cp", src, &format!("{container}:{dest}")]);
}

/// The fake Authentik running in host `host` of `fleet`.
pub struct FakeAuthentik<'a> {
    fleet: &'a Fleet,
    host: usize,
}

impl<'a> FakeAuthentik<'a> {
    /// Copies the fake (and the `docker` stand-in if asked) into the host, writes `.env` if asked
    /// and starts the fake in the background; its stderr goes to /var/log/fake-authentik/stderr.log.
    /// Does not wait: see [`FakeAuthentik::wait_ready`].
    #[track_caller]
    pub fn start(
        fleet: &'a Fleet,
        host: usize,
        options: &FakeAuthentikOptions,
    ) -> FakeAuthentik<'a> {
        let container = fleet.host(host).container.as_str();
        docker_cp(container, SCRIPT, "/opt/fake_authentik.py");
        let mut setup = String::from("mkdir -p /var/log/fake-authentik");
        if options.docker_standin {
            docker_cp(container, STANDIN, "/usr/bin/docker");
            setup.push_str(" && chmod 0755 /usr/bin/docker");
        }
        if let Some(contents) = &options.dotenv {
            let quoted = contents.replace('\'', "'\\''");
            setup.push_str(&format!(
                " && mkdir -p /opt/authentik && printf '%s' '{quoted}' > {ENV_FILE} \
                 && chmod 600 {ENV_FILE}"
            ));
        }
        fleet.exec_ok(host, &setup);
        docker_ok(&[
            "exec",
            "-d",
            container,
            "sh",
            "-c",
            &format!(
                "exec python3 /opt/fake_authentik.py {} 2>{STDERR_LOG}",
                options.args().join(" ")
            ),
        ]);
        FakeAuthentik { fleet, host }
    }

    /// The fake already running in host `host` of `fleet` (started by [`FakeAuthentik::start`]).
    pub fn on(fleet: &'a Fleet, host: usize) -> FakeAuthentik<'a> {
        FakeAuthentik { fleet, host }
    }

    /// Waits (60 s at most) until the fake accepts `token` on its HTTP port on the host's loopback.
    #[track_caller]
    pub fn wait_ready(&self, token: &str) {
        self.wait_ready_at("http://127.0.0.1:9000", token);
    }

    /// Waits (60 s at most) until `GET {base_url}/api/v3/core/users/me/` with `token`, sent by curl
    /// inside the host (certificates not checked), answers 200.
    #[track_caller]
    pub fn wait_ready_at(&self, base_url: &str, token: &str) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let status = self.fleet.exec_ok(
                self.host,
                &format!(
                    "curl -sk -o /dev/null -w '%{{http_code}}' -H 'Authorization: Bearer {token}' \
                     {base_url}/api/v3/core/users/me/; true"
                ),
            );
            if status.trim() == "200" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "fake authentik not ready at {base_url}: {}",
                self.stderr_log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The fake's objects (its state file).
    #[track_caller]
    pub fn state(&self) -> Value {
        serde_json::from_str(&self.fleet.exec_ok(self.host, &format!("cat {FAKE_STATE}")))
            .expect("fake Authentik state is JSON")
    }

    /// The fake's request log.
    #[track_caller]
    pub fn requests_log(&self) -> String {
        self.fleet
            .exec_ok(self.host, &format!("cat {FAKE_REQUESTS}"))
    }

    /// What the fake wrote to stderr so far.
    pub fn stderr_log(&self) -> String {
        self.fleet
            .exec(self.host, &format!("cat {STDERR_LOG}"))
            .stdout
    }
}
