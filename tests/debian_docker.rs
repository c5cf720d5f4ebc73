//! Issue 3, acceptance 1: `playbooks/docker.yml` (Docker's install guide as a playbook) on 3 hosts
//! against a local, signed apt repository: the first run changes, the hosts' end state is what the
//! guide produces, a second run changes nothing, and `--check` on fresh hosts predicts exactly what
//! the real run then changes.

mod support;

use support::{AptRepo, Fleet};

const PLAYBOOK: &str = include_str!("../playbooks/docker.yml");

/// (task name, host) for every `changed:` line of a run.
fn changed_lines(stdout: &str) -> Vec<(String, String)> {
    let mut task = String::new();
    let mut out = Vec::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("TASK [") {
            task = rest.split(']').next().unwrap_or_default().to_string();
        } else if let Some(rest) = line.strip_prefix("changed: [") {
            out.push((
                task.clone(),
                rest.split(']').next().unwrap_or_default().to_string(),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn docker_playbook_installs_from_the_signed_repository_idempotently() {
    let mut fleet = Fleet::start("docker-playbook", 3);
    let repo = AptRepo::serve(&mut fleet);
    fleet.write("docker.yml", PLAYBOOK);
    let inventory = fleet.inventory();
    let inv = inventory.to_str().expect("path");
    let extra = format!(
        "docker_hosts=targets docker_apt_url={} docker_apt_key_url={} docker_manage_service=false",
        repo.url, repo.key_url
    );
    let snapshot = |i: usize| {
        fleet.exec_ok(
            i,
            "ls -la /etc/apt/keyrings /etc/apt/sources.list.d 2>&1; dpkg-query -W -f '${Package} ${Status}\\n' 2>/dev/null | sort",
        )
    };
    let before: Vec<String> = (0..3).map(snapshot).collect();

    let check = fleet.orch(&["run", "docker.yml", "-i", inv, "-e", &extra, "--check"]);
    check.assert_code(0);
    let after_check: Vec<String> = (0..3).map(snapshot).collect();
    assert_eq!(before, after_check, "--check changed a host");
    let predicted = changed_lines(&check.stdout);

    let first = fleet.orch(&["run", "docker.yml", "-i", inv, "-e", &extra]);
    first.assert_code(0);
    assert_eq!(
        changed_lines(&first.stdout),
        predicted,
        "the check run's prediction differs from the real run\n{check}\n{first}"
    );
    for host in fleet.hosts() {
        assert!(first.recap(&host.name).changed >= 3, "{first}");
    }

    let arch = fleet
        .exec_ok(0, "dpkg --print-architecture")
        .trim()
        .to_string();
    for i in 0..3 {
        for package in support::aptrepo::DOCKER_PACKAGES {
            let status = fleet.exec_ok(i, &format!("dpkg-query -W -f '${{Status}}' {package}"));
            assert_eq!(status, "install ok installed", "{package} on host {i}");
            fleet.exec_ok(
                i,
                &format!("test -x {}", support::aptrepo::marker_path(package)),
            );
        }
        assert_eq!(
            fleet.exec_ok(i, "cat /etc/apt/sources.list.d/docker.list"),
            format!(
                "deb [arch={arch} signed-by=/etc/apt/keyrings/docker.asc] {} bookworm stable\n",
                repo.url
            )
        );
        assert_eq!(
            fleet.exec_ok(i, "cat /etc/apt/keyrings/docker.asc"),
            repo.key_armored
        );
        assert_eq!(
            fleet.exec_ok(i, "stat -c %a /etc/apt/keyrings").trim(),
            "755"
        );
        // apt verified the repository's signature with that key: the index came from InRelease.
        fleet.exec_ok(
            i,
            "ls /var/lib/apt/lists/ | grep -q '_debian_dists_bookworm_InRelease$'",
        );
    }

    let second = fleet.orch(&["run", "docker.yml", "-i", inv, "-e", &extra]);
    second.assert_code(0);
    for host in fleet.hosts() {
        assert_eq!(
            second.recap(&host.name).changed,
            0,
            "second run must change nothing\n{second}"
        );
    }
}
