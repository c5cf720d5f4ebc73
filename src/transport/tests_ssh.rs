//! SSH integration tests against real sshd containers (image from tests/support/image).
//! Each test builds its own small lab (docker network(s), key pair, container(s)) and removes it
//! on Drop. Without docker or the image the tests print why and pass without checking anything.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::known_hosts::fingerprint;
use super::*;

const PREFIX: &str = "orchtest-transport-";
const T: Duration = Duration::from_secs(30);
static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("docker: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn image() -> Result<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/image/build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "image build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Removes containers/networks left by test processes that died before their Drop ran.
fn remove_stale() {
    let Ok(list) = docker(&[
        "ps",
        "-a",
        "--filter",
        "label=orchtest-transport-pid",
        "--format",
        "{{.Names}} {{.Label \"orchtest-transport-pid\"}}",
    ]) else {
        return;
    };
    for line in list.lines() {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(pid)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = docker(&["rm", "-f", name]);
        }
    }
    if let Ok(nets) = docker(&[
        "network",
        "ls",
        "--filter",
        "label=orchtest-transport-pid",
        "--format",
        "{{.Name}} {{.Label \"orchtest-transport-pid\"}}",
    ]) {
        for line in nets.lines() {
            let mut parts = line.split_whitespace();
            let (Some(name), Some(pid)) = (parts.next(), parts.next()) else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = docker(&["network", "rm", name]);
            }
        }
    }
}

struct Lab {
    id: String,
    image: String,
    dir: tempfile::TempDir,
    key: PathBuf,
    pubkey: String,
    networks: Vec<String>,
    containers: Vec<String>,
}

#[derive(Clone)]
struct TestHost {
    name: String,
    /// IP address on each network, in the order given to `Lab::host`.
    ips: Vec<String>,
}

impl Lab {
    /// None (with the reason printed) when docker or the test image is unavailable.
    fn new() -> Option<Lab> {
        if let Err(why) = docker(&["info", "--format", "{{.ServerVersion}}"]) {
            eprintln!("SKIPPED: docker unavailable: {why}");
            return None;
        }
        let image = match image() {
            Ok(image) => image,
            Err(why) => {
                eprintln!("SKIPPED: {why}");
                return None;
            }
        };
        remove_stale();
        let id = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id_ed25519");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "orch-test", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(status.success());
        let pubkey = std::fs::read_to_string(key.with_extension("pub"))
            .unwrap()
            .trim()
            .to_string();
        let mut lab = Lab {
            id,
            image,
            dir,
            key,
            pubkey,
            networks: Vec::new(),
            containers: Vec::new(),
        };
        lab.network();
        Some(lab)
    }

    fn network(&mut self) -> String {
        let name = format!("{}-net{}", self.id, self.networks.len());
        let label = format!("orchtest-transport-pid={}", std::process::id());
        docker(&["network", "create", "--label", &label, &name]).unwrap();
        self.networks.push(name.clone());
        name
    }

    /// Starts a test host attached to the given networks (default: the lab's first network).
    fn host(&mut self, networks: &[&str]) -> TestHost {
        let first_network = self.networks[0].clone();
        let networks: Vec<String> = if networks.is_empty() {
            vec![first_network]
        } else {
            networks.iter().map(|n| n.to_string()).collect()
        };
        let name = format!("{}-h{}", self.id, self.containers.len());
        let label = format!("orchtest-transport-pid={}", std::process::id());
        let env = format!("ORCH_TEST_PUBKEY={}", self.pubkey);
        docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            &label,
            "--network",
            &networks[0],
            "-e",
            &env,
            &self.image,
        ])
        .unwrap();
        self.containers.push(name.clone());
        for extra in &networks[1..] {
            docker(&["network", "connect", extra, &name]).unwrap();
        }
        let ips = networks
            .iter()
            .map(|net| {
                let format =
                    format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}");
                docker(&["inspect", "-f", &format, &name]).unwrap()
            })
            .collect::<Vec<_>>();
        // Wait until sshd answers on the first network (the one the tests reach).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if docker(&["exec", &name, "sh", "-c", "ss -ltn | grep -q ':22 '"]).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "sshd in {name} did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
        TestHost { name, ips }
    }

    fn exec(&self, host: &TestHost, script: &str) -> String {
        docker(&["exec", &host.name, "sh", "-c", script]).unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Options for `host` on its first network: key auth, accept-new into a lab-local file.
    fn options(&self, host: &TestHost, user: &str) -> ConnectOptions {
        let empty_config = self.path("ssh_config");
        if !empty_config.exists() {
            std::fs::write(&empty_config, "").unwrap();
        }
        let mut opts = ConnectOptions::new(format!("alias-{}", host.name));
        opts.host = Some(host.ips[0].clone());
        opts.user = Some(user.to_string());
        opts.identity_files = vec![self.key.clone()];
        opts.host_key_checking = Some(HostKeyChecking::AcceptNew);
        opts.known_hosts = Some(self.path("known_hosts"));
        opts.ssh_config = Some(empty_config);
        opts.connect_timeout = Duration::from_secs(10);
        opts.keepalive = Duration::from_secs(1);
        opts
    }

    fn accepted_logins(&self, host: &TestHost) -> usize {
        self.exec(
            host,
            "grep -c 'Accepted publickey' /var/log/sshd.log || true",
        )
        .parse()
        .unwrap_or(0)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for container in &self.containers {
            let _ = docker(&["rm", "-f", container]);
        }
        for network in &self.networks {
            let _ = docker(&["network", "rm", network]);
        }
    }
}

macro_rules! lab_or_skip {
    () => {
        match Lab::new() {
            Some(lab) => lab,
            None => return,
        }
    };
}

async fn run(transport: &Arc<dyn Transport>, command: &str) -> ExecOutput {
    transport.exec(command, None, T).await.unwrap()
}

#[tokio::test]
async fn exec_separates_stdout_stderr_and_status_in_c_locale() {
    let mut lab = lab_or_skip!();
    let host = lab.host(&[]);
    let transport = connect(&lab.options(&host, "root")).await.unwrap();
    let out = run(
        &transport,
        "echo out; echo err >&2; echo \"$LANG,$LC_ALL\"; exit 7",
    )
    .await;
    assert_eq!(out.rc, 7);
    assert_eq!(out.stdout_lossy(), "out\nC,C\n");
    assert_eq!(out.stderr_lossy(), "err\n");
    let out = run(&transport, "kill -TERM $$").await;
    assert_eq!(out.rc, 128 + 15, "{out:?}");
    transport.close().await;
    let err = transport.exec("true", None, T).await.unwrap_err();
    assert!(err.is_unreachable(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_execs_share_one_session() {
    let mut lab = lab_or_skip!();
    let host = lab.host(&[]);
    let transport = connect(&lab.options(&host, "root")).await.unwrap();
    let started = Instant::now();
    let runs = (0..50).map(|i| {
        let transport = transport.clone();
        async move {
            transport
                .exec(&format!("sleep 2; echo {i}; echo e{i} >&2"), None, T)
                .await
        }
    });
    let results = futures::future::join_all(runs).await;
    let elapsed = started.elapsed();
    for (i, result) in results.into_iter().enumerate() {
        let out = result.unwrap();
        assert_eq!(out.stdout_lossy(), format!("{i}\n"));
        assert_eq!(out.stderr_lossy(), format!("e{i}\n"));
        assert_eq!(out.rc, 0);
    }
    assert!(
        elapsed < Duration::from_secs(15),
        "not concurrent: {elapsed:?}"
    );
    assert_eq!(lab.accepted_logins(&host), 1, "one SSH login for all execs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_execs_than_sshd_max_sessions_wait_for_a_channel() {
    let mut lab = lab_or_skip!();
    let host = lab.host(&[]);
    let transport = connect(&lab.options(&host, "root")).await.unwrap();
    // The test image allows 64 sessions per connection.
    let runs = (0..100).map(|i| {
        let transport = transport.clone();
        async move { transport.exec(&format!("sleep 1; echo {i}"), None, T).await }
    });
    let results = futures::future::join_all(runs).await;
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result.unwrap().stdout_lossy(), format!("{i}\n"));
    }
}

#[tokio::test]
async fn one_mebibyte_of_stdin_passes_through_unchanged() {
    let mut lab = lab_or_skip!();
    let host = lab.host(&[]);
    let transport = connect(&lab.options(&host, "root")).await.unwrap();
    let data: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let out = transport.exec("cat", Some(data.clone()), T).await.unwrap();
    assert_eq!(out.rc, 0);
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "stdin round trip differs");
    let out = transport
        .exec("sha256sum", Some(data.clone()), T)
        .await
        .unwrap();
    let expected = hex::encode(sha2::Sha256::digest(&data));
    assert!(out.stdout_lossy().starts_with(&expected), "{out:?}");
    // A command that ignores its stdin must not hang the exec.
    let out = transport.exec("echo ignored", Some(data), T).await.unwrap();
    assert_eq!(out.stdout_lossy(), "ignored\n");
}

fn recorded_key(path: &Path) -> (String, String) {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().next().unwrap().to_string();
    let fields: Vec<&str> = line.split_whitespace().collect();
    (
        fields[1].to_string(),
        format!("{} {}", fields[1], fields[2]),
    )
}

#[tokio::test]
async fn known_hosts_strict_accept_new_changed_and_hashed() {
    let mut lab = lab_or_skip!();
    let host = lab.host(&[]);
    let kh = lab.path("kh/known_hosts");
    let mut opts = lab.options(&host, "root");
    opts.known_hosts = Some(kh.clone());

    // Strict + unknown: refused, nothing written.
    opts.host_key_checking = Some(HostKeyChecking::Strict);
    let err = connect(&opts)
        .await
        .err()
        .expect("strict must refuse an unknown key");
    assert!(matches!(err, TransportError::HostKey(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("is not known"), "{message}");
    assert!(message.contains("accept-new"), "{message}");
    assert!(!kh.exists());

    // accept-new: recorded under the address and the alias (directory created).
    opts.host_key_checking = Some(HostKeyChecking::AcceptNew);
    let transport = connect(&opts).await.unwrap();
    assert_eq!(run(&transport, "echo hi").await.stdout_lossy(), "hi\n");
    let text = std::fs::read_to_string(&kh).unwrap();
    let (key_type, key_text) = recorded_key(&kh);
    let server_pub = lab.exec(
        &host,
        &format!(
            "cat /etc/ssh/ssh_host_{}_key.pub",
            match key_type.as_str() {
                "ssh-ed25519" => "ed25519",
                "ssh-rsa" => "rsa",
                _ => "ecdsa",
            }
        ),
    );
    assert!(
        server_pub.starts_with(&key_text),
        "{server_pub} vs {key_text}"
    );
    assert!(
        text.starts_with(&format!("{},{} ", host.ips[0], opts.alias)),
        "{text}"
    );

    // Now known: strict accepts.
    opts.host_key_checking = Some(HostKeyChecking::Strict);
    connect(&opts).await.unwrap().close().await;

    // Hashed entries (ssh-keygen -H) are accepted.
    let status = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&kh)
        .output()
        .unwrap();
    assert!(status.status.success());
    let hashed = std::fs::read_to_string(&kh).unwrap();
    assert!(
        hashed.starts_with("|1|") && !hashed.contains(&host.ips[0]),
        "{hashed}"
    );
    connect(&opts).await.unwrap().close().await;

    // Changed: another key of the same type recorded for the address -> refused, both prints.
    let other = lab.path("other_key");
    let keygen_type = match key_type.as_str() {
        "ssh-ed25519" => "ed25519",
        "ssh-rsa" => "rsa",
        _ => "ecdsa",
    };
    assert!(Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", keygen_type, "-f"])
        .arg(&other)
        .status()
        .unwrap()
        .success());
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let other_key = russh::keys::PublicKey::from_openssh(other_pub.trim()).unwrap();
    let server_key = russh::keys::PublicKey::from_openssh(&key_text).unwrap();
    std::fs::write(
        &kh,
        format!("# stale\n{} {}", host.ips[0], other_pub.trim()),
    )
    .unwrap();
    for checking in [HostKeyChecking::Strict, HostKeyChecking::AcceptNew] {
        opts.host_key_checking = Some(checking);
        let err = connect(&opts)
            .await
            .err()
            .expect("changed key must be refused");
        let message = err.to_string();
        assert!(
            message.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
            "{message}"
        );
        assert!(message.contains(&fingerprint(&server_key)), "{message}");
        assert!(message.contains(&fingerprint(&other_key)), "{message}");
        assert!(
            message.contains(&opts.alias) && message.contains(&key_type),
            "{message}"
        );
        assert!(message.contains("known_hosts:2"), "{message}");
    }
    // Off accepts anything.
    opts.host_key_checking = Some(HostKeyChecking::Off);
    connect(&opts).await.unwrap().close().await;
}

#[tokio::test]
async fn password_authentication_and_permission_denied_message() {
    let mut lab = lab_or_skip!();
    let host = lab.host(&[]);
    let mut opts = lab.options(&host, "deploy");
    opts.identity_files.clear();
    opts.password = Some("deploy-sudo-pw".into());
    let transport = connect(&opts).await.unwrap();
    assert_eq!(run(&transport, "id -un").await.stdout_lossy(), "deploy\n");

    opts.password = Some("wrong".into());
    let err = connect(&opts)
        .await
        .err()
        .expect("wrong password must fail");
    assert!(err.is_unreachable());
    let message = err.to_string();
    assert!(
        message.starts_with("Failed to connect to the host via ssh: deploy@"),
        "{message}"
    );
    assert!(
        message.contains("Permission denied (publickey,password)"),
        "{message}"
    );
    assert!(message.contains("Tried: password"), "{message}");
}

#[tokio::test]
async fn encrypted_key_uses_passphrase_callback() {
    let mut lab = lab_or_skip!();
    let host = lab.host(&[]);
    let encrypted = lab.path("id_encrypted");
    std::fs::copy(&lab.key, &encrypted).unwrap();
    assert!(Command::new("ssh-keygen")
        .args(["-q", "-p", "-N", "pass phrase", "-P", "", "-f"])
        .arg(&encrypted)
        .status()
        .unwrap()
        .success());
    let asked = Arc::new(AtomicUsize::new(0));
    let mut opts = lab.options(&host, "root");
    opts.identity_files = vec![encrypted.clone()];
    let counter = asked.clone();
    opts.passphrase = Some(Arc::new(move |path: &Path| {
        assert!(path.ends_with("id_encrypted"));
        counter.fetch_add(1, Ordering::SeqCst);
        Some("pass phrase".to_string())
    }));
    let transport = connect(&opts).await.unwrap();
    assert_eq!(run(&transport, "id -u").await.stdout_lossy(), "0\n");
    assert_eq!(asked.load(Ordering::SeqCst), 1);

    opts.passphrase = None;
    let err = connect(&opts).await.err().expect("no passphrase, no key");
    assert!(err.to_string().contains("encrypted"), "{err}");
}

#[tokio::test]
async fn ssh_config_supplies_hostname_user_key_and_known_hosts_policy() {
    let mut lab = lab_or_skip!();
    let host = lab.host(&[]);
    let config = lab.path("config");
    let kh = lab.path("config_known_hosts");
    std::fs::write(
        &config,
        format!(
            "Host web-*\n  HostName {}\n  User deploy\n  IdentityFile {}\n  \
             StrictHostKeyChecking accept-new\n  UserKnownHostsFile {}\n\
             Host *\n  User nobody\n  Port 2222\n",
            host.ips[0],
            lab.key.display(),
            kh.display()
        ),
    )
    .unwrap();
    let mut opts = ConnectOptions::new("web-1");
    opts.ssh_config = Some(config);
    opts.connect_timeout = Duration::from_secs(10);
    // Port 2222 from `Host *` would fail: explicit options win over config.
    opts.port = Some(22);
    let transport = connect(&opts).await.unwrap();
    assert_eq!(run(&transport, "id -un").await.stdout_lossy(), "deploy\n");
    let recorded = std::fs::read_to_string(&kh).unwrap();
    assert!(
        recorded.starts_with(&format!("{},web-1 ", host.ips[0])),
        "{recorded}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn become_sudo_with_password_keeps_it_off_argv_and_output() {
    let mut lab = lab_or_skip!();
    let host = lab.host(&[]);
    let transport = connect(&lab.options(&host, "deploy")).await.unwrap();
    let spec = BecomeSpec {
        method: BecomeMethod::Sudo,
        user: "root".into(),
        password: Some("deploy-sudo-pw".into()),
        flags: None,
    };
    let (command, stdin) = wrap_become("id -u", None, &spec).unwrap();
    let out = transport.exec(&command, stdin, T).await.unwrap();
    assert_eq!(out.stdout_lossy(), "0\n", "{out:?}");
    assert_eq!(out.rc, 0);
    assert!(!out.stderr_lossy().contains("deploy-sudo-pw"));

    // stdin after the password reaches the command exactly.
    let (command, stdin) = wrap_become("cat", Some(b"hello\nworld".to_vec()), &spec).unwrap();
    let out = transport.exec(&command, stdin, T).await.unwrap();
    assert_eq!(out.stdout, b"hello\nworld");

    // While a become command runs, no process shows the password.
    let (command, stdin) = wrap_become("sleep 4; id -u", None, &spec).unwrap();
    let long = {
        let transport = transport.clone();
        tokio::spawn(async move { transport.exec(&command, stdin, T).await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ps = lab.exec(&host, "ps -eo args");
    assert!(
        ps.contains("sleep 4"),
        "the long command should be running: {ps}"
    );
    assert!(!ps.contains("deploy-sudo-pw"), "{ps}");
    let out = long.await.unwrap().unwrap();
    assert_eq!(out.stdout_lossy(), "0\n");
    assert!(!out.stdout_lossy().contains("deploy-sudo-pw"));
    assert!(!out.stderr_lossy().contains("deploy-sudo-pw"));

    // Wrong password: clear error, the caller's data was never tried as a password.
    let wrong = BecomeSpec {
        password: Some("not-it".into()),
        ..spec.clone()
    };
    let (command, stdin) = wrap_become("cat", Some(b"secret-data\n".to_vec()), &wrong).unwrap();
    let out = transport.exec(&command, stdin, T).await.unwrap();
    assert_ne!(out.rc, 0);
    assert_eq!(
        become_failure(&wrong, &out).as_deref(),
        Some("Incorrect sudo password")
    );
    assert!(!out.stdout_lossy().contains("secret-data"));

    // No password where one is needed: fails at once instead of reading stdin.
    let none = BecomeSpec {
        password: None,
        ..spec.clone()
    };
    let (command, stdin) = wrap_become("id -u", None, &none).unwrap();
    let out = transport.exec(&command, stdin, T).await.unwrap();
    assert_eq!(
        become_failure(&none, &out).as_deref(),
        Some("Missing sudo password")
    );

    // NOPASSWD: sudo reads nothing, the wrapper still drops the password line.
    lab.exec(
        &host,
        "echo 'deploy ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/zz-nopasswd; chmod 440 /etc/sudoers.d/zz-nopasswd",
    );
    let (command, stdin) = wrap_become("cat", Some(b"only this".to_vec()), &spec).unwrap();
    let out = transport.exec(&command, stdin, T).await.unwrap();
    assert_eq!(out.stdout, b"only this", "{out:?}");
}

#[tokio::test]
async fn proxy_jump_reaches_a_host_on_a_private_network() {
    let mut lab = lab_or_skip!();
    let outer = lab.networks[0].clone();
    let inner = lab.network();
    let jump = lab.host(&[&outer, &inner]);
    let target = lab.host(&[&inner]);
    let mut opts = lab.options(&target, "root");
    opts.host = Some(target.ips[0].clone());
    opts.proxy_jump = Some(format!("root@{}:22", jump.ips[0]));
    let transport = connect(&opts).await.unwrap();
    let hostname = run(&transport, "hostname").await.stdout_lossy();
    let target_hostname = lab.exec(&target, "hostname");
    assert_eq!(hostname.trim(), target_hostname);
    assert_ne!(hostname.trim(), lab.exec(&jump, "hostname"));
    // Both hops' keys were recorded.
    let recorded = std::fs::read_to_string(lab.path("known_hosts")).unwrap();
    assert!(
        recorded.contains(&jump.ips[0]) && recorded.contains(&target.ips[0]),
        "{recorded}"
    );
    // Tunnels work through the hop too.
    let out = run(&transport, "echo ok").await;
    assert_eq!(out.stdout_lossy(), "ok\n");
}

#[tokio::test]
async fn command_timeout_leaves_the_session_usable() {
    let mut lab = lab_or_skip!();
    let host = lab.host(&[]);
    let transport = connect(&lab.options(&host, "root")).await.unwrap();
    let started = Instant::now();
    let err = transport
        .exec("sleep 20", None, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        run(&transport, "echo still").await.stdout_lossy(),
        "still\n"
    );
}

#[tokio::test]
async fn connection_refused_and_timeout_are_unreachable() {
    let mut lab = lab_or_skip!();
    let host = lab.host(&[]);
    let mut opts = lab.options(&host, "root");
    opts.port = Some(2);
    let err = connect(&opts).await.err().unwrap();
    assert!(err.is_unreachable());
    assert!(
        err.to_string().contains(&format!(
            "ssh: connect to host {} port 2: Connection refused",
            host.ips[0]
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_host_fails_fast() {
    let mut lab = lab_or_skip!();
    let host = lab.host(&[]);
    let transport = connect(&lab.options(&host, "root")).await.unwrap();
    let running = {
        let transport = transport.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = transport
                .exec("sleep 120", None, Duration::from_secs(300))
                .await;
            (result, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let name = host.name.clone();
    tokio::task::spawn_blocking(move || docker(&["kill", &name]).unwrap())
        .await
        .unwrap();
    let (result, elapsed) = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("exec on a dead host must not hang")
        .unwrap();
    let err = result.unwrap_err();
    assert!(err.is_unreachable(), "{err:?}");
    assert!(elapsed < Duration::from_secs(12), "took {elapsed:?}");
    let started = Instant::now();
    assert!(transport.exec("true", None, T).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn tunnel_reaches_a_loopback_http_server_on_the_target() {
    let mut lab = lab_or_skip!();
    let host = lab.host(&[]);
    let transport = connect(&lab.options(&host, "root")).await.unwrap();
    run(
        &transport,
        "mkdir -p /srv/t && echo tunnel-ok > /srv/t/index.txt; \
         (cd /srv/t && exec python3 -m http.server 9000 --bind 127.0.0.1) >/dev/null 2>&1 </dev/null &",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while run(&transport, "ss -ltn | grep -q '127.0.0.1:9000 '")
        .await
        .rc
        != 0
    {
        assert!(Instant::now() < deadline, "http.server did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut tunnel = transport.open_tunnel("127.0.0.1", 9000).await.unwrap();
    tunnel
        .write_all(b"GET /index.txt HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(T, tunnel.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(response.ends_with("tunnel-ok\n"), "{response}");
    // Nothing listens on 9001: the tunnel cannot open.
    assert!(transport.open_tunnel("127.0.0.1", 9001).await.is_err());
}

fn keygen(path: &Path, key_type: &str) -> String {
    assert!(Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", key_type, "-f"])
        .arg(path)
        .status()
        .unwrap()
        .success());
    std::fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string()
}

/// OpenSSH 8.8+ refuses SHA-1 RSA signatures: this passes only with rsa-sha2-256/512.
#[tokio::test]
async fn rsa_key_file_authenticates_with_sha2() {
    let mut lab = lab_or_skip!();
    let host = lab.host(&[]);
    let rsa = lab.path("id_rsa");
    let rsa_pub = keygen(&rsa, "rsa");
    lab.exec(
        &host,
        &format!("echo '{rsa_pub}' >> /root/.ssh/authorized_keys"),
    );
    let mut opts = lab.options(&host, "root");
    opts.identity_files = vec![rsa];
    let transport = connect(&opts).await.unwrap();
    assert_eq!(run(&transport, "id -u").await.stdout_lossy(), "0\n");
    let log = lab.exec(&host, "grep 'Accepted publickey' /var/log/sshd.log");
    assert!(log.contains(": RSA SHA256:"), "{log}");
}

/// Agent use depends on SSH_AUTH_SOCK, a process-wide variable: the check runs in a child
/// test process (this binary, filtered to `agent_child`) so parallel tests are unaffected.
#[test]
fn ssh_agent_keys_are_used() {
    if std::env::var_os("ORCH_TEST_AGENT_CHILD").is_some() {
        return;
    }
    if Lab::new().is_none() {
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "transport::tests_ssh::agent_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ORCH_TEST_AGENT_CHILD", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
    assert!(text.contains("AGENT-CHILD-CHECKED"), "{text}");
}

#[tokio::test]
async fn agent_child() {
    if std::env::var_os("ORCH_TEST_AGENT_CHILD").is_none() {
        return; // only meaningful inside ssh_agent_keys_are_used
    }
    let mut lab = lab_or_skip!();
    let host = lab.host(&[]);
    let socket = lab.path("agent.sock");
    let agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _agent = KillOnDrop(agent);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "ssh-agent did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Only test in this process (see ssh_agent_keys_are_used), so changing the environment
    // cannot race with another thread.
    std::env::set_var("SSH_AUTH_SOCK", &socket);
    // An RSA key in the agent must be signed with rsa-sha2-*, and a useless key before it
    // must not prevent the right one from being tried.
    let useless = lab.path("useless");
    keygen(&useless, "ed25519");
    let rsa = lab.path("agent_rsa");
    let rsa_pub = keygen(&rsa, "rsa");
    lab.exec(
        &host,
        &format!("echo '{rsa_pub}' >> /home/deploy/.ssh/authorized_keys"),
    );
    for key in [&useless, &rsa] {
        assert!(Command::new("ssh-add")
            .arg("-q")
            .arg(key)
            .status()
            .unwrap()
            .success());
    }
    let mut opts = lab.options(&host, "deploy");
    opts.identity_files.clear();
    let transport = connect(&opts).await.unwrap();
    assert_eq!(run(&transport, "id -un").await.stdout_lossy(), "deploy\n");
    let log = lab.exec(&host, "grep 'Accepted publickey' /var/log/sshd.log");
    assert!(log.contains("RSA SHA256:"), "{log}");
    println!("AGENT-CHILD-CHECKED");
}
