//! Issue 5 acceptance 6: `orch schedule install` writes a service + timer that `systemd-analyze verify`
//! accepts; `orch schedule remove` deletes them.

use std::path::Path;
use std::process::Command;

fn orch(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_orch"))
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join(".config"))
        .output()
        .expect("run orch")
}

#[test]
fn installed_units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    std::fs::write(dir.join("site.yml"), "- hosts: all\n  tasks: []\n").expect("write");
    std::fs::write(dir.join("hosts"), "web1 ansible_host=192.0.2.1\n").expect("write");
    let out = orch(
        dir,
        &[
            "schedule",
            "install",
            "--every",
            "1h",
            "--jitter",
            "1m",
            "--fix",
            "--system",
            "site.yml",
            "-i",
            "hosts",
            "--unit-dir",
            "units",
            "--no-enable",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let service = dir.join("units/orch-drift-site.service");
    let timer = dir.join("units/orch-drift-site.timer");
    let service_text = std::fs::read_to_string(&service).expect("service written");
    let timer_text = std::fs::read_to_string(&timer).expect("timer written");
    // Absolute paths: the timer runs from anywhere.
    let playbook = std::fs::canonicalize(dir.join("site.yml")).expect("abs");
    assert!(
        service_text.contains(&format!("\"drift\" \"--fix\" \"{}\"", playbook.display())),
        "{service_text}"
    );
    assert!(timer_text.contains("OnUnitActiveSec=1h"), "{timer_text}");

    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&timer)
        .arg(&service)
        .output()
        .expect("systemd-analyze is needed for this test (Debian package: systemd)");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    let removed = orch(
        dir,
        &[
            "schedule",
            "remove",
            "--system",
            "--name",
            "orch-drift-site",
            "--unit-dir",
            "units",
            "--no-enable",
        ],
    );
    assert!(removed.status.success(), "{removed:?}");
    assert!(!service.exists() && !timer.exists());
    let again = orch(
        dir,
        &[
            "schedule",
            "remove",
            "--name",
            "orch-drift-site",
            "--unit-dir",
            "units",
            "--no-enable",
        ],
    );
    assert_eq!(again.status.code(), Some(5), "{again:?}");
}
