//! A fleet of throw-away sshd hosts in Docker for one test: its own network, containers, SSH key,
//! inventory, known_hosts and a HOME for orch. Everything is removed when the Fleet is dropped,
//! also when the test panicked. (A killed test process leaves things behind: cleanup.sh sweeps them.)

use super::docker::{docker, docker_ok, docker_raw};
use super::image::{image_tag, Image};
use super::network::{ownership_labels, PinnedNetwork};
use super::orch_command::OrchCommand;
use super::process::run_bounded;
use super::run_output::RunOutput;
use std::fmt;
use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Docker label on everything a fleet creates; cleanup.sh matches it.
const LABEL: &str = "orch-test";
const CLEANUP_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/cleanup.sh");
/// How long a (re)started container may take until sshd sends its banner.
const SSHD_READY_TIMEOUT: Duration = Duration::from_secs(30);
const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// One container host. `name` is its inventory hostname (`h1`, `h2`, ...; also its hostname).
#[derive(Debug, Clone)]
pub struct TestHost {
    pub name: String,
    pub container: String,
    pub ip: String,
}

/// Result of a command run on a host with `docker exec` (an independent view of the host's state).
#[derive(Debug, Clone)]
pub struct ExecResult {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ExecResult {
    /// Stdout, panicking with both streams unless the command exited 0.
    #[track_caller]
    pub fn assert_ok(&self) -> &str {
        if self.code != 0 {
            panic!("command failed: {self}");
        }
        &self.stdout
    }
}

impl fmt::Display for ExecResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Extra `docker run` settings for one host, for [`Fleet::start_with`].
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// Named volumes to mount, as (key, path in the container). The fleet creates the volume
    /// `<fleet prefix>-<key>` once, shares it between all hosts naming the same key, and removes
    /// it with the fleet.
    pub volumes: Vec<(String, String)>,
    /// Further `docker run` arguments, placed before the image name.
    pub run_args: Vec<String>,
    /// What the host runs as PID 1.
    pub image: Image,
}

pub struct Fleet {
    /// Container names, known before the containers exist so that Drop removes partial starts too.
    containers: Vec<String>,
    /// Docker volumes the fleet created (removed after the containers on Drop).
    volumes: Vec<String>,
    /// `orch-<test>-<pid>[-n]`: the start of every container, network and volume name.
    prefix: String,
    hosts: Vec<TestHost>,
    network: Option<PinnedNetwork>,
    root: PathBuf,
    temp: Option<tempfile::TempDir>,
    private_key: PathBuf,
    public_key: String,
}

impl Fleet {
    /// Starts `n` hosts named h1..hN for the test `test_name`, and waits until each sshd answers.
    /// Host indexes in the other methods are 0-based: `hosts()[0].name == "h1"`.
    #[track_caller]
    pub fn start(test_name: &str, n: usize) -> Fleet {
        Fleet::start_with(test_name, &vec![HostOptions::default(); n])
    }

    /// Like [`Fleet::start`], with hosts running `image` (`Image::Systemd`: systemd as PID 1).
    #[track_caller]
    pub fn start_image(test_name: &str, n: usize, image: Image) -> Fleet {
        let options = HostOptions {
            image,
            ..HostOptions::default()
        };
        Fleet::start_with(test_name, &vec![options; n])
    }

    /// Like [`Fleet::start`], one host per entry of `options`, each with its own image, extra
    /// volumes and `docker run` arguments.
    #[track_caller]
    pub fn start_with(test_name: &str, options: &[HostOptions]) -> Fleet {
        let n = options.len();
        sweep_stale_once();
        let prefix = unique_prefix(test_name);

        let temp = tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir()
            .unwrap_or_else(|error| panic!("cannot create temp dir: {error}"));
        let root = temp.path().to_path_buf();
        let ssh_dir = root.join("home/.ssh");
        fs::create_dir_all(&ssh_dir).expect("create home/.ssh");
        fs::set_permissions(&ssh_dir, fs::Permissions::from_mode(0o700)).expect("chmod .ssh");
        fs::create_dir_all(root.join("keys")).expect("create keys dir");
        let private_key = root.join("keys/id_ed25519");
        let public_key = generate_key(&private_key);

        let mut fleet = Fleet {
            containers: (1..=n).map(|i| format!("{prefix}-h{i}")).collect(),
            volumes: Vec::new(),
            prefix: prefix.clone(),
            hosts: Vec::new(),
            network: None,
            root,
            temp: Some(temp),
            private_key,
            public_key,
        };
        let network =
            PinnedNetwork::create(&prefix, LABEL).unwrap_or_else(|error| panic!("{error}"));
        fleet.network = Some(network.clone());
        let run_args: Vec<Vec<String>> = options
            .iter()
            .map(|host_options| fleet.docker_run_args(host_options))
            .collect();

        let hosts: Vec<TestHost> = (0..n)
            .map(|index| TestHost {
                name: format!("h{}", index + 1),
                container: fleet.containers[index].clone(),
                ip: network
                    .host_address(index)
                    .unwrap_or_else(|error| panic!("{error}"))
                    .to_string(),
            })
            .collect();
        let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = hosts
                .iter()
                .zip(&run_args)
                .zip(options)
                .map(|((host, extra), host_options)| {
                    let kind = host_options.image;
                    let (network, public_key) = (&network.name, &fleet.public_key);
                    scope.spawn(move || {
                        run_container(host, network, kind, image_tag(kind), public_key, extra)?;
                        wait_for_sshd(host)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| {
                    handle
                        .join()
                        .unwrap_or_else(|_| Err("thread panicked".into()))
                })
                .collect()
        });
        fleet.hosts = hosts;
        let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        if !errors.is_empty() {
            panic!("fleet {prefix} did not start:\n{}", errors.join("\n"));
        }
        fleet.write_known_hosts();
        fleet.write_inventory();
        fleet
    }

    /// The docker name of the volume `key` of [`HostOptions::volumes`].
    pub fn volume(&self, key: &str) -> String {
        format!("{}-{key}", self.prefix)
    }

    /// Creates the host's volumes (once per key) and returns its extra `docker run` arguments.
    fn docker_run_args(&mut self, options: &HostOptions) -> Vec<String> {
        let mut args = Vec::new();
        for (key, target) in &options.volumes {
            let name = self.volume(key);
            if !self.volumes.contains(&name) {
                let mut create = vec!["volume", "create"];
                let labels = ownership_labels(LABEL);
                for label in &labels {
                    create.push("--label");
                    create.push(label);
                }
                create.push(&name);
                docker_ok(&create);
                self.volumes.push(name.clone());
            }
            args.push("-v".to_string());
            args.push(format!("{name}:{target}"));
        }
        args.extend(options.run_args.iter().cloned());
        args
    }

    pub fn hosts(&self) -> &[TestHost] {
        &self.hosts
    }

    pub fn host(&self, index: usize) -> &TestHost {
        &self.hosts[index]
    }

    /// The fleet's temp dir: orch's working directory; write playbooks here.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// HOME for orch (contains `.ssh/known_hosts` and nothing else to begin with).
    pub fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    /// Writes `content` to `dir()/rel` (creating parent dirs) and returns the full path.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.root.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent dir");
        }
        fs::write(&path, content).unwrap_or_else(|error| panic!("write {path:?}: {error}"));
        path
    }

    /// INI inventory: `[targets]` with `hN ansible_host=IP ansible_user=root ansible_ssh_private_key_file=KEY`.
    pub fn inventory(&self) -> PathBuf {
        self.root.join("inventory.ini")
    }

    /// `~/.ssh/known_hosts` of orch's HOME, holding each container's real ed25519 host key.
    pub fn known_hosts(&self) -> PathBuf {
        self.home().join(".ssh/known_hosts")
    }

    /// The private key authorized for root and deploy on every host (not in ~/.ssh: tests that
    /// want orch to find a default key copy it there themselves).
    pub fn private_key(&self) -> &Path {
        &self.private_key
    }

    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Runs the orch binary under test: cwd = dir(), HOME = home(), NO_COLOR=1, stdin /dev/null.
    #[track_caller]
    pub fn orch(&self, args: &[&str]) -> RunOutput {
        self.orch_cmd(args).run()
    }

    /// Like [`Fleet::orch`] but adjustable: `.env()`, `.stdin()`, `.timeout()`, `.cwd()`, then `.run()`.
    pub fn orch_cmd(&self, args: &[&str]) -> OrchCommand {
        OrchCommand::new(args, &self.root, &self.home())
    }

    /// `docker exec CONTAINER sh -c CMD` as root: the host's state as seen without orch or SSH.
    #[track_caller]
    pub fn exec(&self, host: usize, cmd: &str) -> ExecResult {
        let container = &self.hosts[host].container;
        let finished = run_bounded(
            Command::new("docker").args(["exec", container, "sh", "-c", cmd]),
            None,
            EXEC_TIMEOUT,
        )
        .unwrap_or_else(|error| panic!("cannot run docker exec: {error}"));
        if finished.timed_out {
            panic!("`docker exec {container} sh -c {cmd:?}` timed out after {EXEC_TIMEOUT:?}");
        }
        ExecResult {
            code: finished.code,
            stdout: finished.stdout,
            stderr: finished.stderr,
        }
    }

    /// Stdout of [`Fleet::exec`], panicking unless the command exited 0.
    #[track_caller]
    pub fn exec_ok(&self, host: usize, cmd: &str) -> String {
        self.exec(host, cmd).assert_ok().to_string()
    }

    /// Runs `cmd` over SSH with the OpenSSH client as `user`, using the fleet's key and known_hosts
    /// (strict checking, no agent, no user ssh config). A reference client to compare orch with.
    #[track_caller]
    pub fn ssh(&self, host: usize, user: &str, cmd: &str) -> ExecResult {
        let known_hosts = self.known_hosts();
        let target = format!("{user}@{}", self.hosts[host].ip);
        let mut command = Command::new("ssh");
        command
            .args(["-F", "/dev/null", "-i"])
            .arg(&self.private_key)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
                "-o",
                "ConnectTimeout=10",
                &target,
                cmd,
            ]);
        let finished = run_bounded(&mut command, None, EXEC_TIMEOUT).unwrap_or_else(|error| {
            panic!("cannot run ssh (is openssh-client installed?): {error}")
        });
        ExecResult {
            code: if finished.timed_out {
                -1
            } else {
                finished.code
            },
            stdout: finished.stdout,
            stderr: finished.stderr,
        }
    }

    /// Starts a helper container (not an inventory host) from the test image on the fleet's network,
    /// with a fixed address: `files` (a tar stream) is unpacked at `/` before `cmd` starts, then the
    /// call waits until `port` accepts TCP connections. Removed with the fleet. Returns its address.
    #[track_caller]
    pub fn start_service(
        &mut self,
        name: &str,
        files_tar: &[u8],
        cmd: &[&str],
        port: u16,
    ) -> String {
        let network = self.network.clone().expect("fleet network");
        let container = format!("{}-{name}", network.name);
        let ip = network
            .host_address(self.containers.len())
            .unwrap_or_else(|error| panic!("{error}"))
            .to_string();
        self.containers.push(container.clone());
        let labels = ownership_labels(LABEL);
        let mut args = vec![
            "create",
            "--name",
            &container,
            "--network",
            &network.name,
            "--ip",
            &ip,
        ];
        for label in &labels {
            args.push("--label");
            args.push(label);
        }
        args.push(image_tag(Image::Sshd));
        args.extend_from_slice(cmd);
        docker_ok(&args);
        let copied = run_bounded(
            Command::new("docker").args(["cp", "-", &format!("{container}:/")]),
            Some(files_tar),
            EXEC_TIMEOUT,
        )
        .unwrap_or_else(|error| panic!("cannot run docker cp: {error}"));
        if copied.code != 0 || copied.timed_out {
            panic!("docker cp into {container} failed: {}", copied.stderr);
        }
        docker_ok(&["start", &container]);
        let address: SocketAddr = format!("{ip}:{port}").parse().expect("service address");
        let deadline = Instant::now() + SSHD_READY_TIMEOUT;
        while TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_err() {
            if Instant::now() > deadline {
                let logs = docker_raw(&["logs", "--tail", "20", &container])
                    .map(|output| output.stdout + &output.stderr)
                    .unwrap_or_default();
                panic!("service {container} not listening on {address}:\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        ip
    }

    /// Connects a container of another fleet to this fleet's network at a fixed address (after the
    /// hosts' and services' ones), so that this fleet's hosts can reach it; returns that address.
    /// Drop the other fleet first: a network with a foreign endpoint cannot be removed.
    #[track_caller]
    pub fn connect_foreign(&self, container: &str, slot: usize) -> String {
        let network = self.network.as_ref().expect("fleet network");
        let ip = network
            .host_address(64 + slot)
            .unwrap_or_else(|error| panic!("{error}"))
            .to_string();
        docker_ok(&["network", "connect", "--ip", &ip, &network.name, container]);
        ip
    }

    /// Graceful stop (`docker stop`, SIGTERM then SIGKILL after 2 s): sshd closes its connections.
    #[track_caller]
    pub fn stop(&self, host: usize) {
        docker_ok(&["stop", "-t", "2", &self.hosts[host].container]);
    }

    /// Hard stop (`docker kill`, SIGKILL): connections die without a goodbye.
    #[track_caller]
    pub fn kill(&self, host: usize) {
        docker_ok(&["kill", &self.hosts[host].container]);
    }

    /// Starts a stopped or killed host again (same address, same host key) and waits for sshd.
    #[track_caller]
    pub fn start_again(&self, host: usize) {
        docker_ok(&["start", &self.hosts[host].container]);
        if let Err(error) = wait_for_sshd(&self.hosts[host]) {
            panic!("{error}");
        }
    }

    /// Freezes every process of the host (`docker pause`): TCP connects and sessions hang.
    #[track_caller]
    pub fn pause(&self, host: usize) {
        docker_ok(&["pause", &self.hosts[host].container]);
    }

    #[track_caller]
    pub fn unpause(&self, host: usize) {
        docker_ok(&["unpause", &self.hosts[host].container]);
    }

    /// The host's sshd log (LogLevel VERBOSE).
    #[track_caller]
    pub fn sshd_log(&self, host: usize) -> String {
        self.exec_ok(host, "cat /var/log/sshd.log")
    }

    /// Successful SSH authentications so far: "Accepted publickey|password|keyboard-interactive for" lines.
    #[track_caller]
    pub fn auth_count(&self, host: usize) -> usize {
        count_authentications(&self.sshd_log(host))
    }

    fn write_known_hosts(&self) {
        let mut lines = String::new();
        for (index, host) in self.hosts.iter().enumerate() {
            let key = self.exec_ok(index, "cat /etc/ssh/ssh_host_ed25519_key.pub");
            let mut fields = key.split_whitespace();
            match (fields.next(), fields.next()) {
                (Some(kind), Some(blob)) => lines.push_str(&format!("{} {kind} {blob}\n", host.ip)),
                _ => panic!("unexpected host key on {}: {key:?}", host.container),
            }
        }
        fs::write(self.known_hosts(), lines).expect("write known_hosts");
    }

    fn write_inventory(&self) {
        let mut text = String::from("[targets]\n");
        for host in &self.hosts {
            text.push_str(&format!(
                "{} ansible_host={} ansible_user=root ansible_ssh_private_key_file={}\n",
                host.name,
                host.ip,
                self.private_key.display()
            ));
        }
        fs::write(self.inventory(), text).expect("write inventory");
    }

    /// The tail of each host's sshd log and docker log, shown when a test fails.
    fn print_diagnostics(&self) {
        for host in &self.hosts {
            let log = docker_raw(&[
                "exec",
                &host.container,
                "tail",
                "-n",
                "25",
                "/var/log/sshd.log",
            ])
            .map(|output| output.stdout + &output.stderr)
            .unwrap_or_else(|error| error);
            eprintln!("--- {} ({}) sshd.log tail:\n{log}", host.name, host.ip);
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_diagnostics();
        }
        if std::env::var_os("ORCH_TEST_KEEP").is_some() {
            let kept = self.temp.take().map(tempfile::TempDir::keep);
            eprintln!(
                "ORCH_TEST_KEEP: kept containers {:?}, volumes {:?}, network {:?}, dir {kept:?}",
                self.containers,
                self.volumes,
                self.network.as_ref().map(|network| &network.name)
            );
            return;
        }
        let mut args = vec!["rm", "-f"];
        args.extend(self.containers.iter().map(String::as_str));
        // Removing a container that was never created fails; the others are removed regardless.
        let _ = docker_raw(&args);
        if !self.volumes.is_empty() {
            let mut args = vec!["volume", "rm", "-f"];
            args.extend(self.volumes.iter().map(String::as_str));
            let _ = docker_raw(&args);
        }
        if let Some(network) = &self.network {
            // Endpoint teardown can lag behind `rm -f` for a moment.
            for _ in 0..10 {
                if network.remove().is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// `orch-<test>-<pid>`, plus `-<n>` for the second and later fleets of the same process.
fn unique_prefix(test_name: &str) -> String {
    static SEQUENCE: AtomicUsize = AtomicUsize::new(0);
    let mut name: String = test_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(32);
    let name = name.trim_matches('-');
    let prefix = format!("orch-{name}-{}", std::process::id());
    match SEQUENCE.fetch_add(1, Ordering::SeqCst) {
        0 => prefix,
        n => format!("{prefix}-{n}"),
    }
}

fn sweep_stale_once() {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| {
        let _ = run_bounded(
            Command::new(CLEANUP_SCRIPT).arg(LABEL),
            None,
            Duration::from_secs(120),
        );
    });
}

fn generate_key(path: &Path) -> String {
    let finished = run_bounded(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "orch-test", "-f"])
            .arg(path),
        None,
        Duration::from_secs(30),
    )
    .unwrap_or_else(|error| panic!("cannot run ssh-keygen (install openssh-client): {error}"));
    if finished.code != 0 {
        panic!("ssh-keygen failed: {}", finished.stderr);
    }
    let public = path.with_extension("pub");
    fs::read_to_string(&public)
        .unwrap_or_else(|error| panic!("read {public:?}: {error}"))
        .trim()
        .to_string()
}

fn run_container(
    host: &TestHost,
    network: &str,
    kind: Image,
    image: &str,
    public_key: &str,
    extra: &[String],
) -> Result<(), String> {
    let hostname = host.name.as_str();
    let pubkey_env = format!("ORCH_TEST_PUBKEY={public_key}");
    let mut args = vec![
        "run",
        "-d",
        "--name",
        &host.container,
        "--hostname",
        hostname,
        "--network",
        network,
        "--ip",
        &host.ip,
        "-e",
        &pubkey_env,
    ];
    let labels = ownership_labels(LABEL);
    for label in &labels {
        args.push("--label");
        args.push(label);
    }
    args.extend_from_slice(kind.docker_run_args());
    args.extend(extra.iter().map(String::as_str));
    args.push(image);
    docker(&args).map(|_| ())
}

/// Polls until sshd on `host` sends its "SSH-2.0-..." banner. A bare TCP probe is not logged as
/// an authentication, so it does not disturb `auth_count`.
fn wait_for_sshd(host: &TestHost) -> Result<(), String> {
    let address: SocketAddr = format!("{}:22", host.ip)
        .parse()
        .map_err(|error| format!("bad address {}: {error}", host.ip))?;
    let deadline = Instant::now() + SSHD_READY_TIMEOUT;
    let mut last_error = String::from("no attempt");
    while Instant::now() < deadline {
        match read_banner(&address) {
            Ok(banner) if banner.starts_with("SSH-") => return Ok(()),
            Ok(banner) => last_error = format!("unexpected banner {banner:?}"),
            Err(error) => last_error = error.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let logs = docker_raw(&["logs", "--tail", "20", &host.container])
        .map(|output| output.stdout + &output.stderr)
        .unwrap_or_default();
    Err(format!(
        "sshd on {} ({}) not ready after {SSHD_READY_TIMEOUT:?}: {last_error}\ncontainer log:\n{logs}",
        host.container, host.ip
    ))
}

fn read_banner(address: &SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(address, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buffer = [0u8; 64];
    let read = stream.read(&mut buffer)?;
    Ok(String::from_utf8_lossy(&buffer[..read]).into_owned())
}

/// Counts successful authentications in an sshd log.
pub fn count_authentications(log: &str) -> usize {
    log.lines()
        .filter(|line| {
            [
                "Accepted publickey for ",
                "Accepted password for ",
                "Accepted keyboard-interactive",
            ]
            .iter()
            .any(|marker| line.contains(marker))
        })
        .count()
}
