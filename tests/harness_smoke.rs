//! Proves the integration-test harness itself works, without orch: containers come up with sshd,
//! the generated key and known_hosts are right, auth counting is exact, restarts keep identity.

mod support;

use std::process::Command;
use std::time::Duration;
use support::{count_authentications, parse_recap, run_bounded, Fleet, Recap};

#[test]
fn fleet_hosts_accept_the_test_key_with_strict_host_key_checking() {
    let fleet = Fleet::start("smoke-ssh", 2);
    assert_eq!(fleet.hosts().len(), 2);
    assert_ne!(fleet.host(0).ip, fleet.host(1).ip);

    for (index, host) in fleet.hosts().iter().enumerate() {
        assert_eq!(fleet.exec_ok(index, "hostname").trim(), host.name);
        assert_eq!(fleet.exec_ok(index, "id -un").trim(), "root");
        let missing = fleet.exec(index, "test -e /nonexistent");
        assert_eq!(missing.code, 1, "exec must report the command's exit code");

        let before = fleet.auth_count(index);
        let login = fleet.ssh(index, "root", "hostname");
        assert_eq!(login.code, 0, "ssh as root failed: {login}");
        assert_eq!(login.stdout.trim(), host.name);
        assert_eq!(
            fleet.auth_count(index),
            before + 1,
            "one login, one Accepted line"
        );
    }

    // The deploy user logs in with the same key; its sudo wants the password.
    let sudo = fleet.ssh(0, "deploy", "echo deploy-sudo-pw | sudo -S -p '' id -u");
    assert_eq!(sudo.code, 0, "sudo as deploy failed: {sudo}");
    assert_eq!(sudo.stdout.trim(), "0");
    let no_password = fleet.ssh(0, "deploy", "sudo -n true");
    assert_ne!(no_password.code, 0, "sudo must require a password");

    // Inventory and known_hosts name every host with its address.
    let inventory = std::fs::read_to_string(fleet.inventory()).unwrap();
    let known_hosts = std::fs::read_to_string(fleet.known_hosts()).unwrap();
    for host in fleet.hosts() {
        let line = format!(
            "{} ansible_host={} ansible_user=root ansible_ssh_private_key_file={}",
            host.name,
            host.ip,
            fleet.private_key().display()
        );
        assert!(
            inventory.contains(&line),
            "inventory lacks {line:?}:\n{inventory}"
        );
        assert!(known_hosts.contains(&format!("{} ssh-ed25519 ", host.ip)));
    }
    assert!(known_hosts.starts_with(&fleet.host(0).ip));
}

#[test]
fn a_wrong_known_hosts_entry_is_refused() {
    let fleet = Fleet::start("smoke-hostkey", 2);
    // Give h1's address h2's key: a strict client must refuse, proving the file is what is checked.
    let h2_key = fleet.exec_ok(1, "cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub");
    std::fs::write(
        fleet.known_hosts(),
        format!("{} {}\n", fleet.host(0).ip, h2_key.trim()),
    )
    .unwrap();
    let before = fleet.auth_count(0);
    let login = fleet.ssh(0, "root", "true");
    assert_eq!(
        login.code, 255,
        "ssh must fail on a mismatched host key: {login}"
    );
    assert!(
        login.stderr.contains("HOST IDENTIFICATION HAS CHANGED"),
        "{login}"
    );
    assert_eq!(fleet.auth_count(0), before);
}

#[test]
fn restarted_hosts_keep_address_and_host_key() {
    let fleet = Fleet::start("smoke-restart", 2);
    let ip = fleet.host(0).ip.clone();

    fleet.stop(0);
    // (Not probed over SSH: a connect to a vanished address waits for the ARP timeout.)
    let down = fleet.exec(0, "true");
    assert_ne!(down.code, 0, "a stopped host must not run commands");
    // Stop both, start in the other order: docker would hand out addresses swapped if not pinned.
    fleet.stop(1);
    fleet.start_again(1);
    fleet.start_again(0);
    assert_eq!(
        fleet.exec_ok(0, "hostname -I").split_whitespace().next(),
        Some(ip.as_str())
    );
    let login = fleet.ssh(0, "root", "true");
    assert_eq!(login.code, 0, "ssh after restart failed: {login}");
    assert_eq!(fleet.ssh(1, "root", "true").code, 0);

    fleet.kill(0);
    fleet.start_again(0);
    let login = fleet.ssh(0, "root", "true");
    assert_eq!(login.code, 0, "ssh after kill and start failed: {login}");
}

#[test]
fn two_fleets_in_one_process_do_not_collide() {
    let first = Fleet::start("smoke-twice", 1);
    let second = Fleet::start("smoke-twice", 1);
    assert_ne!(first.host(0).container, second.host(0).container);
    assert_ne!(first.host(0).ip, second.host(0).ip);
    assert_ne!(first.dir(), second.dir());
    let container = first.host(0).container.clone();
    drop(first);
    let gone = Command::new("docker")
        .args(["container", "inspect", &container])
        .output()
        .unwrap();
    assert!(
        !gone.status.success(),
        "dropping a fleet must remove its containers"
    );
    assert_eq!(second.exec_ok(0, "echo alive"), "alive\n");
}

#[test]
fn recap_lines_are_parsed_per_host() {
    let output = "\
PLAY [all] *****

TASK [x] *****
ok: [h1]

PLAY RECAP *********************************************************************
h1                         : ok=2    changed=1    unreachable=0    failed=0    skipped=3    rescued=0    ignored=0
h10                        : ok=0    changed=0    unreachable=1    failed=0    skipped=0    rescued=0    ignored=0
\u{1b}[0;33mh2\u{1b}[0m                         : \u{1b}[0;32mok=5\u{1b}[0m    changed=0    unreachable=0    failed=1    skipped=0    rescued=1    ignored=2
";
    assert_eq!(
        parse_recap(output, "h1"),
        Some(Recap {
            ok: 2,
            changed: 1,
            skipped: 3,
            ..Recap::default()
        })
    );
    assert_eq!(
        parse_recap(output, "h10"),
        Some(Recap {
            unreachable: 1,
            ..Recap::default()
        })
    );
    assert_eq!(
        parse_recap(output, "h2"),
        Some(Recap {
            ok: 5,
            failed: 1,
            rescued: 1,
            ignored: 2,
            ..Recap::default()
        })
    );
    assert_eq!(parse_recap(output, "h3"), None);
    assert_eq!(
        parse_recap("ok: [h1]\n", "h1"),
        None,
        "no recap block, no recap"
    );
}

#[test]
fn recap_uses_the_last_play_recap_block() {
    let output = "PLAY RECAP *\nh1 : ok=1 changed=1 unreachable=0 failed=0\n\
                  PLAY RECAP *\nh1 : ok=4 changed=0 unreachable=0 failed=0\n";
    assert_eq!(parse_recap(output, "h1").map(|recap| recap.ok), Some(4));
}

#[test]
fn authentications_are_counted_from_accepted_lines_only() {
    let log = "\
Connection from 172.18.0.1 port 44768 on 172.18.0.2 port 22 rdomain \"\"
Accepted key ED25519 SHA256:abc found at /root/.ssh/authorized_keys:1
Postponed publickey for root from 172.18.0.1 port 44768 ssh2 [preauth]
Accepted publickey for root from 172.18.0.1 port 44768 ssh2: ED25519 SHA256:abc
Failed password for deploy from 172.18.0.1 port 44770 ssh2
Accepted password for deploy from 172.18.0.1 port 44772 ssh2
";
    assert_eq!(count_authentications(log), 2);
}

#[test]
fn bounded_runs_capture_streams_feed_stdin_and_time_out() {
    let echoed = run_bounded(
        Command::new("sh").args(["-c", "cat; echo err >&2; exit 3"]),
        Some(b"input\n"),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(
        (echoed.code, echoed.stdout.as_str(), echoed.stderr.as_str()),
        (3, "input\n", "err\n")
    );
    assert!(!echoed.timed_out);

    // The grandchild `sleep` holds the pipes: only killing the whole group lets this return.
    let hung = run_bounded(
        Command::new("sh").args(["-c", "sleep 30 & sleep 30"]),
        None,
        Duration::from_millis(300),
    )
    .unwrap();
    assert!(hung.timed_out);
    assert!(
        hung.elapsed < Duration::from_secs(5),
        "took {:?}",
        hung.elapsed
    );
}
