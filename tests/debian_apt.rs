//! apt, deb822_repository and apt_repository against a signed local repository
//! (tests/support/aptrepo.rs), with the end state read back with `docker exec`.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::aptrepo::{marker_path, COMPOSE_NEW, COMPOSE_OLD, DOCKER_PACKAGES};
use support::{AptRepo, Fleet};

fn inventory(fleet: &Fleet) -> String {
    fleet.inventory().to_str().expect("utf-8 path").to_string()
}

/// `Package Version` lines of the packages that are fully installed (`install ok installed`).
fn installed(fleet: &Fleet, host: usize, packages: &[&str]) -> Vec<String> {
    let out = fleet.exec(
        host,
        &format!(
            "dpkg-query -W -f='${{Package}} ${{Version}} ${{Status}}\\n' {} 2>/dev/null",
            packages.join(" ")
        ),
    );
    out.stdout
        .lines()
        .filter(|l| l.ends_with(" install ok installed"))
        .map(|l| l.trim_end_matches(" install ok installed").to_string())
        .collect()
}

#[test]
fn fixture_repository_verifies_with_signed_by() {
    let mut fleet = Fleet::start("apt_fixture", 1);
    let repo = AptRepo::serve(&mut fleet);
    fleet.exec_ok(
        0,
        &format!(
            "mkdir -p /etc/apt/keyrings && curl -fsS {} -o /etc/apt/keyrings/t.asc",
            repo.key_url
        ),
    );
    fleet.exec_ok(
        0,
        &format!(
            "echo '{}' > /etc/apt/sources.list.d/t.list",
            repo.list_line("/etc/apt/keyrings/t.asc")
        ),
    );
    let update = fleet.exec(0, "apt-get update --error-on=any 2>&1");
    assert_eq!(update.code, 0, "{update}");
    let policy = fleet.exec_ok(0, "apt-cache policy docker-compose-plugin");
    assert!(
        policy.contains(&format!("Candidate: {COMPOSE_NEW}")),
        "{policy}"
    );
    assert!(policy.contains(COMPOSE_OLD), "{policy}");
    // A wrong key makes the signature check fail: verification is real.
    fleet.exec_ok(0, "rm -rf /var/lib/apt/lists/*; gpg --batch --passphrase '' --quick-gen-key other@x ed25519 sign never 2>/dev/null; gpg --armor --export other@x > /etc/apt/keyrings/t.asc");
    let bad = fleet.exec(0, "apt-get update --error-on=any 2>&1");
    assert_ne!(bad.code, 0, "{bad}");
    assert!(
        bad.stdout.contains("NO_PUBKEY") || bad.stdout.contains("not signed"),
        "{bad}"
    );
}

fn docker_playbook(repo: &AptRepo) -> String {
    format!(
        r#"
- hosts: targets
  gather_facts: no
  tasks:
    - name: Docker's repository
      deb822_repository:
        name: docker
        types: [deb]
        uris: "{url}"
        suites: "{suite}"
        components: [stable]
        architectures: "{arch}"
        signed_by: "{key_url}"
    - name: Docker's packages
      apt:
        name: [{packages}]
        update_cache: yes
"#,
        url = repo.url,
        suite = repo.suite,
        arch = repo.arch,
        key_url = repo.key_url,
        packages = DOCKER_PACKAGES.join(", "),
    )
}

/// deb822 source + signed key + five packages: check mode predicts the first run exactly, the
/// first run installs, the second changes nothing.
#[test]
fn docker_repository_and_packages_converge() {
    let mut fleet = Fleet::start("apt_docker", 2);
    let repo = AptRepo::serve(&mut fleet);
    fleet.write("site.yml", &docker_playbook(&repo));
    let inv = inventory(&fleet);

    let check = fleet.orch(&["run", "site.yml", "-i", &inv, "--check", "--diff"]);
    check.assert_code(0);
    for host in fleet.hosts() {
        assert_eq!(check.recap(&host.name).changed, 2, "{check}");
    }
    for i in 0..2 {
        fleet.exec_ok(i, "test ! -e /etc/apt/sources.list.d/docker.sources");
        fleet.exec_ok(i, "test ! -e /etc/apt/keyrings/docker.asc");
        assert!(installed(&fleet, i, &DOCKER_PACKAGES).is_empty());
    }

    let first = fleet.orch(&["run", "site.yml", "-i", &inv]);
    first.assert_code(0);
    for host in fleet.hosts() {
        let recap = first.recap(&host.name);
        assert_eq!((recap.changed, recap.failed), (2, 0), "{first}");
    }
    for i in 0..2 {
        assert_eq!(
            fleet.exec_ok(i, "cat /etc/apt/sources.list.d/docker.sources"),
            format!(
                "Architectures: {}\nComponents: stable\nX-Repolib-Name: docker\nSigned-By: /etc/apt/keyrings/docker.asc\nSuites: bookworm\nTypes: deb\nURIs: {}\n",
                repo.arch, repo.url
            )
        );
        assert_eq!(
            fleet.exec_ok(i, "cat /etc/apt/keyrings/docker.asc"),
            repo.key_armored
        );
        assert_eq!(
            fleet
                .exec_ok(i, "stat -c %a /etc/apt/keyrings/docker.asc /etc/apt/sources.list.d/docker.sources /etc/apt/keyrings"),
            "644\n644\n755\n"
        );
        let mut have = installed(&fleet, i, &DOCKER_PACKAGES);
        have.sort();
        assert_eq!(have.len(), 5, "{have:?}");
        assert!(have.contains(&format!("docker-compose-plugin {COMPOSE_NEW}")));
        for package in DOCKER_PACKAGES {
            fleet.exec_ok(i, &marker_path(package));
        }
        // Installed from the signed repository, not as local files.
        let policy = fleet.exec_ok(i, "apt-cache policy docker-ce");
        assert!(policy.contains(&repo.url), "{policy}");
    }

    let second = fleet.orch(&["run", "site.yml", "-i", &inv]);
    second.assert_code(0);
    for host in fleet.hosts() {
        assert_eq!(second.recap(&host.name).changed, 0, "{second}");
    }
    let recheck = fleet.orch(&["run", "site.yml", "-i", &inv, "--check"]);
    recheck.assert_code(0);
    assert_eq!(recheck.recap("h1").changed, 0, "{recheck}");
}

/// apt_repository's one-line form, a pinned version, `state: latest`, `deb:` from a URL, `absent`.
#[test]
fn one_line_source_versions_latest_deb_and_absent() {
    let mut fleet = Fleet::start("apt_versions", 1);
    let repo = AptRepo::serve(&mut fleet);
    let inv = inventory(&fleet);
    let line = repo.list_line("/etc/apt/keyrings/orch.asc");
    let key = repo.key_armored.replace('\n', "\\n");
    fleet.write(
        "repo.yml",
        &format!(
            r#"
- hosts: targets
  gather_facts: no
  tasks:
    - file: {{path: /etc/apt/keyrings, state: directory, mode: "0755"}}
    - copy: {{content: "{key}", dest: /etc/apt/keyrings/orch.asc, mode: "0644"}}
    - apt_repository: {{repo: "{line}"}}
      register: added
    - assert:
        that:
          - added.sources_added | length == 1
          - added.repo == "{line}"
      when: added is changed
    - apt:
        name: docker-compose-plugin={COMPOSE_OLD}
"#
        ),
    );
    let first = fleet.orch(&["run", "repo.yml", "-i", &inv]);
    first.assert_code(0);
    // Debian 12 already has /etc/apt/keyrings: the file task is ok, the other three change.
    assert_eq!(first.recap("h1").changed, 3, "{first}");
    let list_file = format!(
        "/etc/apt/sources.list.d/{}_debian.list",
        repo.ip.replace('.', "_")
    );
    assert_eq!(
        fleet.exec_ok(0, &format!("cat {list_file}")),
        format!("{line}\n")
    );
    assert_eq!(
        installed(&fleet, 0, &["docker-compose-plugin"]),
        vec![format!("docker-compose-plugin {COMPOSE_OLD}")]
    );
    let again = fleet.orch(&["run", "repo.yml", "-i", &inv]);
    again.assert_code(0);
    assert_eq!(again.recap("h1").changed, 0, "{again}");

    fleet.write(
        "latest.yml",
        &format!(
            r#"
- hosts: targets
  gather_facts: no
  tasks:
    - apt: {{upgrade: safe}}
    - apt: {{name: docker-compose-plugin, state: latest}}
      register: latest
    - assert:
        that:
          - latest is changed
          - "'docker-compose-plugin' in latest.stdout"
    - apt: {{deb: "{deb}"}}
    - apt: {{name: [orch-hello, docker-compose-plugin], state: absent, purge: yes}}
"#,
            deb = repo.deb_url("orch-hello", "1.0-1"),
        ),
    );
    let check = fleet.orch(&["run", "latest.yml", "-i", &inv, "--check"]);
    // Check mode predicts: the safe upgrade and `latest` (2.20 → 2.21), the .deb, the removal.
    check.assert_code(0);
    assert_eq!(check.recap("h1").changed, 4, "{check}");
    assert_eq!(
        installed(&fleet, 0, &["docker-compose-plugin"]),
        vec![format!("docker-compose-plugin {COMPOSE_OLD}")]
    );

    fleet.write(
        "upgrade.yml",
        &format!(
            r#"
- hosts: targets
  gather_facts: no
  tasks:
    - apt: {{name: docker-compose-plugin, state: latest}}
    - apt: {{deb: "{deb}"}}
"#,
            deb = repo.deb_url("orch-hello", "1.0-1"),
        ),
    );
    let upgrade = fleet.orch(&["run", "upgrade.yml", "-i", &inv]);
    upgrade.assert_code(0);
    assert_eq!(upgrade.recap("h1").changed, 2, "{upgrade}");
    assert_eq!(
        installed(&fleet, 0, &["docker-compose-plugin", "orch-hello"]),
        vec![
            format!("docker-compose-plugin {COMPOSE_NEW}"),
            "orch-hello 1.0-1".to_string()
        ]
    );
    let upgrade_again = fleet.orch(&["run", "upgrade.yml", "-i", &inv]);
    upgrade_again.assert_code(0);
    assert_eq!(upgrade_again.recap("h1").changed, 0, "{upgrade_again}");

    fleet.write(
        "absent.yml",
        &format!(
            r#"
- hosts: targets
  gather_facts: no
  tasks:
    - apt: {{name: [orch-hello, docker-compose-plugin], state: absent, purge: yes}}
    - apt_repository: {{repo: "{line}", state: absent}}
      register: removed
    - assert:
        that: ["removed.sources_removed == ['{list_file}']"]
      when: removed is changed
"#
        ),
    );
    let absent = fleet.orch(&["run", "absent.yml", "-i", &inv]);
    absent.assert_code(0);
    assert_eq!(absent.recap("h1").changed, 2, "{absent}");
    assert!(installed(&fleet, 0, &["docker-compose-plugin", "orch-hello"]).is_empty());
    fleet.exec_ok(0, &format!("test ! -e {}", marker_path("orch-hello")));
    fleet.exec_ok(0, &format!("test ! -e {list_file}"));
    let absent_again = fleet.orch(&["run", "absent.yml", "-i", &inv]);
    absent_again.assert_code(0);
    assert_eq!(absent_again.recap("h1").changed, 0, "{absent_again}");
}

/// Starts `cmd` detached inside the host's container (`docker exec -d`).
fn exec_detached(fleet: &Fleet, host: usize, cmd: &str) {
    let status = Command::new("docker")
        .args(["exec", "-d", &fleet.host(host).container, "sh", "-c", cmd])
        .status()
        .expect("docker exec -d");
    assert!(status.success());
}

fn wait_until_locked(fleet: &Fleet, host: usize, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let held = fleet.exec(
            host,
            &format!("i=$(stat -c %i {path}); grep -q \":$i \" /proc/locks"),
        );
        if held.code == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{path} never got locked");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Issue 3 acceptance 2: a held dpkg lock makes apt wait `lock_timeout`, then fail naming the lock
/// and its holder; a lock released within the timeout is waited for and the install succeeds.
#[test]
fn apt_waits_for_the_dpkg_lock_then_names_the_holder() {
    let mut fleet = Fleet::start("apt_lock", 1);
    let repo = AptRepo::serve(&mut fleet);
    repo.preconfigure(&fleet, 0);
    let inv = inventory(&fleet);
    let playbook = |timeout: u32| {
        format!(
            "- hosts: targets\n  gather_facts: no\n  tasks:\n    - apt: {{name: orch-hello, lock_timeout: {timeout}}}\n"
        )
    };

    // flock(1) keeps the lock in its own process (-o: not in the child), so the holder is `flock`.
    exec_detached(
        &fleet,
        0,
        "echo $$ > /tmp/holder.pid; exec flock -o /var/lib/dpkg/lock-frontend sleep 60",
    );
    wait_until_locked(&fleet, 0, "/var/lib/dpkg/lock-frontend");
    let holder = fleet.exec_ok(0, "cat /tmp/holder.pid").trim().to_string();
    fleet.write("short.yml", &playbook(3));
    let started = Instant::now();
    let blocked = fleet.orch(&["run", "short.yml", "-i", &inv]);
    let waited = started.elapsed();
    blocked.assert_code(2);
    assert_eq!(blocked.recap("h1").failed, 1);
    blocked
        .assert_stdout_contains("could not get lock /var/lib/dpkg/lock-frontend within 3 seconds");
    blocked.assert_stdout_contains(&format!(
        "held by process {holder} (flock -o /var/lib/dpkg/lock-frontend sleep 60)"
    ));
    assert!(waited >= Duration::from_secs(3), "gave up after {waited:?}");
    assert!(installed(&fleet, 0, &["orch-hello"]).is_empty());
    fleet.exec_ok(0, &format!("kill {holder}"));

    // A POSIX lock as apt itself (and unattended-upgrades) takes it, held until the test releases it:
    // the install can only succeed if orch waited for the lock.
    fleet.exec_ok(
        0,
        "printf 'import fcntl, os, time\\nf = open(\"/var/lib/dpkg/lock\", \"r+\")\\nfcntl.lockf(f, fcntl.LOCK_EX)\\nwhile not os.path.exists(\"/tmp/release\"):\\n    time.sleep(0.1)\\n' > /tmp/hold.py",
    );
    exec_detached(&fleet, 0, "exec python3 /tmp/hold.py");
    wait_until_locked(&fleet, 0, "/var/lib/dpkg/lock");
    fleet.write("long.yml", &playbook(60));
    let running = fleet.orch_cmd(&["run", "long.yml", "-i", &inv]).spawn();
    // Give orch time to reach the lock; nothing can be installed while it is held.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        installed(&fleet, 0, &["orch-hello"]).is_empty(),
        "installed while the lock was held"
    );
    fleet.exec_ok(0, "touch /tmp/release");
    let waited_run = running.wait();
    waited_run.assert_code(0);
    assert_eq!(waited_run.recap("h1").changed, 1, "{waited_run}");
    assert_eq!(
        installed(&fleet, 0, &["orch-hello"]),
        vec!["orch-hello 1.0-1".to_string()]
    );
}
