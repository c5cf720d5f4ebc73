//! Acceptance 3: host key checking as OpenSSH does it.

mod support;

use support::Fleet;

const PLAYBOOK: &str = "- hosts: targets\n  gather_facts: no\n  tasks:\n    - command: 'true'\n";

#[test]
fn changed_host_key_is_refused_with_both_fingerprints() {
    let fleet = Fleet::start("hostkey-changed", 1);
    fleet.write("site.yml", PLAYBOOK);
    // Replace the known key with a different one of the same type.
    let other = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(fleet.dir().join("impostor"))
        .status()
        .expect("ssh-keygen");
    assert!(other.success());
    let impostor = std::fs::read_to_string(fleet.dir().join("impostor.pub")).expect("read key");
    let ip = &fleet.host(0).ip;
    std::fs::write(fleet.known_hosts(), format!("{ip} {impostor}")).expect("write known_hosts");
    let inv = fleet.inventory();
    let out = fleet.orch(&["run", "site.yml", "-i", inv.to_str().expect("path")]);
    out.assert_code(4);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{out}"
    );
    assert!(text.contains("ssh-ed25519"), "{out}");
    assert!(
        text.matches("SHA256:").count() >= 2,
        "both fingerprints expected
{out}"
    );
}

#[test]
fn accept_new_records_unknown_host_and_no_warns() {
    let fleet = Fleet::start("hostkey-new", 1);
    fleet.write("site.yml", PLAYBOOK);
    std::fs::write(fleet.known_hosts(), "").expect("empty known_hosts");
    let inv = fleet.inventory();
    let inv = inv.to_str().expect("path");

    let strict = fleet.orch(&["run", "site.yml", "-i", inv]);
    strict.assert_code(4);

    let accept = fleet.orch(&[
        "run",
        "site.yml",
        "-i",
        inv,
        "--host-key-checking",
        "accept-new",
    ]);
    accept.assert_code(0);
    let recorded = std::fs::read_to_string(fleet.known_hosts()).expect("known_hosts");
    let real = fleet.exec_ok(0, "cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub");
    assert!(
        recorded.contains(real.trim()),
        "known_hosts should hold the host's real key:\n{recorded}"
    );

    std::fs::write(fleet.known_hosts(), "").expect("empty known_hosts");
    let off = fleet.orch(&["run", "site.yml", "-i", inv, "--host-key-checking", "no"]);
    off.assert_code(0);
    assert!(off.stderr.contains("insecure"), "{off}");
}
