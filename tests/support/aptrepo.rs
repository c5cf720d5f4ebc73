//! A signed local apt repository with Docker's package names, served over HTTP on a fleet's network.
//!
//! Built once per test process on the controller (`dpkg-deb`, `gpg`, `gzip`, `tar`): small `.deb`s that
//! each install `/usr/libexec/orch-test-repo/<package>` (a script printing its name and version), a
//! `dists/bookworm/stable/binary-<arch>/Packages(.gz)`, a `Release` with sizes and hashes, and an
//! `InRelease` clear-signed with a GPG key generated for this process, so that apt's `signed-by`
//! verification on the targets is real. Each fleet gets its own server container (`python3 -m
//! http.server` in the test image, at a fixed address on the fleet's network):
//!
//! ```ignore
//! let mut fleet = support::Fleet::start("apt_install", 2);
//! let repo = support::AptRepo::serve(&mut fleet);      // also disables the hosts' Debian sources
//! // repo.url = http://IP/debian, repo.key_url = http://IP/debian/gpg (also http://IP/gpg)
//! ```
//!
//! Layout (like download.docker.com/linux/debian):
//! `debian/dists/bookworm/{Release,InRelease,Release.gpg}`, `debian/dists/bookworm/stable/binary-ARCH/Packages(.gz)`,
//! `debian/pool/stable/NAME_VERSION_ARCH.deb`, `debian/gpg` and `gpg` (the armored public key).

use super::fleet::Fleet;
use super::process::run_bounded;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

pub const SUITE: &str = "bookworm";
pub const COMPONENT: &str = "stable";
const HTTP_PORT: u16 = 80;
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// Where a package's marker file is installed on the target.
pub fn marker_path(package: &str) -> String {
    format!("/usr/libexec/orch-test-repo/{package}")
}

/// One package of the repository.
#[derive(Debug, Clone)]
pub struct RepoPackage {
    pub name: &'static str,
    pub version: &'static str,
    /// `true`: Architecture `all`; otherwise the controller's dpkg architecture.
    pub arch_all: bool,
    pub depends: Option<&'static str>,
    pub recommends: Option<&'static str>,
}

const DOCKER_VERSION: &str = "5:24.0.0-1~debian.12~bookworm";
/// The older and the newer `docker-compose-plugin` (both served; apt's candidate is the newer).
pub const COMPOSE_OLD: &str = "2.20.0-1~debian.12~bookworm";
pub const COMPOSE_NEW: &str = "2.21.0-1~debian.12~bookworm";

/// The five packages Docker's install guide names.
pub const DOCKER_PACKAGES: [&str; 5] = [
    "docker-ce",
    "docker-ce-cli",
    "containerd.io",
    "docker-buildx-plugin",
    "docker-compose-plugin",
];

pub fn packages() -> Vec<RepoPackage> {
    let native = |name, version| RepoPackage {
        name,
        version,
        arch_all: false,
        depends: None,
        recommends: None,
    };
    vec![
        native("containerd.io", "1.7.0-1"),
        native("docker-ce-cli", DOCKER_VERSION),
        RepoPackage {
            depends: Some("containerd.io (>= 1.6.4), docker-ce-cli"),
            recommends: Some("docker-ce-rootless-extras"),
            ..native("docker-ce", DOCKER_VERSION)
        },
        RepoPackage {
            depends: Some("docker-ce"),
            ..native("docker-ce-rootless-extras", DOCKER_VERSION)
        },
        native("docker-buildx-plugin", "0.11.0-1~debian.12~bookworm"),
        native("docker-compose-plugin", COMPOSE_OLD),
        native("docker-compose-plugin", COMPOSE_NEW),
        // A small package nothing depends on: for `deb:` and lock tests.
        RepoPackage {
            arch_all: true,
            ..native("orch-hello", "1.0-1")
        },
    ]
}

/// What a test needs to point a playbook at the repository.
#[derive(Debug, Clone)]
pub struct AptRepo {
    /// `http://IP/debian` (the `URIs:` of a deb822 source).
    pub url: String,
    /// `http://IP/debian/gpg`: the armored public key (Docker serves it at the same place).
    pub key_url: String,
    /// The signing key's fingerprint (40 hex digits, upper case).
    pub fingerprint: String,
    /// The armored public key itself.
    pub key_armored: String,
    pub ip: String,
    /// The dpkg architecture of the native packages (the controller's, e.g. `amd64`).
    pub arch: String,
    pub suite: &'static str,
    pub component: &'static str,
}

impl AptRepo {
    /// Serves the repository on `fleet`'s network and disables the hosts' own Debian sources so that
    /// `apt-get update` only ever talks to this server.
    #[track_caller]
    pub fn serve(fleet: &mut Fleet) -> AptRepo {
        let built = built_repo();
        let ip = fleet.start_service(
            "aptrepo",
            &built.tar,
            &[
                "python3",
                "-m",
                "http.server",
                "--directory",
                "/srv/aptrepo",
                &HTTP_PORT.to_string(),
            ],
            HTTP_PORT,
        );
        for index in 0..fleet.hosts().len() {
            fleet.exec_ok(
                index,
                "[ ! -e /etc/apt/sources.list ] || mv /etc/apt/sources.list /etc/apt/sources.list.orch-test-disabled; \
                 rm -f /etc/apt/sources.list.d/debian.sources",
            );
        }
        let url = format!("http://{ip}/debian");
        AptRepo {
            key_url: format!("{url}/gpg"),
            url,
            fingerprint: built.fingerprint.clone(),
            key_armored: built.key_armored.clone(),
            ip,
            arch: built.arch.clone(),
            suite: SUITE,
            component: COMPONENT,
        }
    }

    /// The one-line source Docker's guide writes: `deb [arch=A signed-by=KEYFILE] URL bookworm stable`.
    pub fn list_line(&self, keyfile: &str) -> String {
        format!(
            "deb [arch={} signed-by={keyfile}] {} {} {}",
            self.arch, self.url, self.suite, self.component
        )
    }

    /// Configures `host` for this repository without orch (key in `/etc/apt/keyrings/orch-test.asc`,
    /// one-line source in `/etc/apt/sources.list.d/orch-test.list`, `apt-get update`): for tests whose
    /// subject is not the repository setup itself.
    #[track_caller]
    pub fn preconfigure(&self, fleet: &Fleet, host: usize) {
        fleet.exec_ok(
            host,
            &format!(
                "mkdir -p /etc/apt/keyrings && curl -fsS {} -o /etc/apt/keyrings/orch-test.asc \
                 && echo '{}' > /etc/apt/sources.list.d/orch-test.list && apt-get update -q >/dev/null",
                self.key_url,
                self.list_line("/etc/apt/keyrings/orch-test.asc")
            ),
        );
    }

    /// The URL of a package's `.deb` in the pool.
    pub fn deb_url(&self, name: &str, version: &str) -> String {
        let arch = packages()
            .iter()
            .find(|p| p.name == name && p.version == version)
            .map(|p| {
                if p.arch_all {
                    "all".to_string()
                } else {
                    self.arch.clone()
                }
            })
            .unwrap_or_else(|| panic!("no package {name} {version} in the test repository"));
        format!("{}/{}", self.url, pool_path(name, version, &arch))
    }
}

/// The repository as built once for this process.
struct BuiltRepo {
    /// A tar of `srv/aptrepo/...`, unpacked at `/` in the server container.
    tar: Vec<u8>,
    fingerprint: String,
    key_armored: String,
    arch: String,
}

fn built_repo() -> &'static BuiltRepo {
    static REPO: OnceLock<Result<BuiltRepo, String>> = OnceLock::new();
    match REPO.get_or_init(build) {
        Ok(repo) => repo,
        Err(error) => panic!("cannot build the test apt repository: {error}"),
    }
}

fn pool_path(name: &str, version: &str, arch: &str) -> String {
    // Pool file names drop the epoch, as Debian archives do.
    let version = version.split_once(':').map_or(version, |(_, v)| v);
    format!("pool/{COMPONENT}/{name}_{version}_{arch}.deb")
}

fn tool(cmd: &mut Command, what: &str) -> Result<String, String> {
    let finished = run_bounded(cmd, None, TOOL_TIMEOUT)
        .map_err(|error| format!("cannot run {what}: {error}"))?;
    if finished.code != 0 || finished.timed_out {
        return Err(format!(
            "{what} failed (code {}): {}",
            finished.code, finished.stderr
        ));
    }
    Ok(finished.stdout)
}

fn build() -> Result<BuiltRepo, String> {
    let temp = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let work = temp.path();
    let srv = work.join("srv/aptrepo");
    let debian = srv.join("debian");
    let arch = tool(
        Command::new("dpkg").arg("--print-architecture"),
        "dpkg --print-architecture",
    )?
    .trim()
    .to_string();

    let mut packages_index = String::new();
    for package in packages() {
        let pkg_arch = if package.arch_all {
            "all"
        } else {
            arch.as_str()
        };
        let rel = pool_path(package.name, package.version, pkg_arch);
        let deb = debian.join(&rel);
        build_deb(work, &package, pkg_arch, &deb)?;
        let bytes = fs::read(&deb).map_err(|e| format!("read {deb:?}: {e}"))?;
        let _ = write!(packages_index, "Package: {}\nVersion: {}\nArchitecture: {pkg_arch}\nMaintainer: orch tests <tests@orch.invalid>\nInstalled-Size: 1\n", package.name, package.version);
        if let Some(depends) = package.depends {
            let _ = writeln!(packages_index, "Depends: {depends}");
        }
        if let Some(recommends) = package.recommends {
            let _ = writeln!(packages_index, "Recommends: {recommends}");
        }
        let _ = write!(
            packages_index,
            "Filename: {rel}\nSize: {}\nMD5sum: {}\nSHA256: {}\nSection: admin\nPriority: optional\nDescription: test stand-in for {}\n\n",
            bytes.len(),
            md5_hex(&bytes),
            hex::encode(Sha256::digest(&bytes)),
            package.name
        );
    }

    let dist = debian.join("dists").join(SUITE);
    let binary = dist.join(COMPONENT).join(format!("binary-{arch}"));
    fs::create_dir_all(&binary).map_err(|e| format!("mkdir: {e}"))?;
    fs::write(binary.join("Packages"), &packages_index).map_err(|e| e.to_string())?;
    tool(
        Command::new("gzip")
            .args(["-9", "-n", "-k"])
            .arg(binary.join("Packages")),
        "gzip",
    )?;

    let mut md5 = String::new();
    let mut sha256 = String::new();
    for name in ["Packages", "Packages.gz"] {
        let bytes = fs::read(binary.join(name)).map_err(|e| e.to_string())?;
        let rel = format!("{COMPONENT}/binary-{arch}/{name}");
        let _ = writeln!(md5, " {} {} {rel}", md5_hex(&bytes), bytes.len());
        let _ = writeln!(
            sha256,
            " {} {} {rel}",
            hex::encode(Sha256::digest(&bytes)),
            bytes.len()
        );
    }
    let date = tool(
        Command::new("date").args(["-u", "-R", "-d", "1 hour ago"]),
        "date",
    )?;
    let release = format!(
        "Origin: orch-test\nLabel: orch-test\nSuite: {SUITE}\nCodename: {SUITE}\nDate: {}\nArchitectures: {arch}\nComponents: {COMPONENT}\nDescription: orch test repository\nMD5Sum:\n{md5}SHA256:\n{sha256}",
        date.trim().replace("+0000", "UTC")
    );
    fs::write(dist.join("Release"), release).map_err(|e| e.to_string())?;

    let (fingerprint, key_armored) = sign(work, &dist)?;
    fs::write(debian.join("gpg"), &key_armored).map_err(|e| e.to_string())?;
    fs::write(srv.join("gpg"), &key_armored).map_err(|e| e.to_string())?;

    // A tar holds binary .debs: read it as bytes (run_bounded captures text).
    let output = Command::new("tar")
        .arg("-C")
        .arg(work)
        .args(["--owner=0", "--group=0", "-cf", "-", "srv"])
        .output()
        .map_err(|e| format!("tar: {e}"))?;
    Ok(BuiltRepo {
        tar: output.stdout,
        fingerprint,
        key_armored,
        arch,
    })
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Md5;
    hex::encode(Md5::digest(bytes))
}

fn build_deb(work: &Path, package: &RepoPackage, arch: &str, out: &Path) -> Result<(), String> {
    let root = work.join(format!(
        "build/{}_{}",
        package.name,
        package.version.replace(':', "_")
    ));
    let debian_dir = root.join("DEBIAN");
    let bin_dir = root.join("usr/libexec/orch-test-repo");
    fs::create_dir_all(&debian_dir).map_err(|e| e.to_string())?;
    fs::create_dir_all(&bin_dir).map_err(|e| e.to_string())?;
    let mut control = format!(
        "Package: {}\nVersion: {}\nArchitecture: {arch}\nMaintainer: orch tests <tests@orch.invalid>\nSection: admin\nPriority: optional\n",
        package.name, package.version
    );
    if let Some(depends) = package.depends {
        let _ = writeln!(control, "Depends: {depends}");
    }
    if let Some(recommends) = package.recommends {
        let _ = writeln!(control, "Recommends: {recommends}");
    }
    let _ = writeln!(control, "Description: test stand-in for {}", package.name);
    fs::write(debian_dir.join("control"), control).map_err(|e| e.to_string())?;
    let script = bin_dir.join(package.name);
    fs::write(
        &script,
        format!("#!/bin/sh\necho '{} {}'\n", package.name, package.version),
    )
    .map_err(|e| e.to_string())?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    if let Some(parent) = out.parent() {
        fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    tool(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "--build"])
            .arg(&root)
            .arg(out),
        "dpkg-deb --build (install dpkg on the controller)",
    )?;
    Ok(())
}

/// Generates a signing key in a throw-away GNUPGHOME and signs `dist/Release` (InRelease, Release.gpg).
/// Returns the key's fingerprint and armored public key.
fn sign(work: &Path, dist: &Path) -> Result<(String, String), String> {
    let home = work.join("gnupg");
    fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
    let gpg = |args: &[&str], what: &str| -> Result<String, String> {
        tool(
            Command::new("gpg")
                .arg("--homedir")
                .arg(&home)
                .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
                .args(args),
            what,
        )
    };
    let result = (|| {
        gpg(
            &[
                "--quick-gen-key",
                "orch test repository <repo@orch.invalid>",
                "ed25519",
                "sign",
                "never",
            ],
            "gpg --quick-gen-key (install gnupg on the controller)",
        )?;
        let listing = gpg(&["--with-colons", "--list-keys"], "gpg --list-keys")?;
        let fingerprint = listing
            .lines()
            .find_map(|line| line.strip_prefix("fpr:"))
            .and_then(|rest| rest.split(':').find(|field| !field.is_empty()))
            .ok_or_else(|| format!("no fingerprint in gpg output: {listing}"))?
            .to_string();
        let armored = gpg(&["--armor", "--export", &fingerprint], "gpg --export")?;
        let release = dist.join("Release");
        let release = release.to_string_lossy();
        let inrelease = dist.join("InRelease");
        let detached = dist.join("Release.gpg");
        gpg(
            &[
                "--local-user",
                &fingerprint,
                "--digest-algo",
                "SHA512",
                "--clearsign",
                "-o",
                &inrelease.to_string_lossy(),
                &release,
            ],
            "gpg --clearsign",
        )?;
        gpg(
            &[
                "--local-user",
                &fingerprint,
                "--digest-algo",
                "SHA512",
                "--armor",
                "--detach-sign",
                "-o",
                &detached.to_string_lossy(),
                &release,
            ],
            "gpg --detach-sign",
        )?;
        Ok((fingerprint, armored))
    })();
    // gpg started an agent for this home; stop it so that no process outlives the build.
    let _ = run_bounded(
        Command::new("gpgconf")
            .arg("--homedir")
            .arg(&home)
            .args(["--kill", "all"]),
        None,
        Duration::from_secs(10),
    );
    result
}
