//! internal_ca and ca_trust on real hosts: h1 keeps a CA and a server certificate; h2 and h3 trust
//! the CA. Checked independently: the files and modes with docker exec, and a real TLS handshake
//! (curl on h2/h3 against `openssl s_server` on h1 with the made certificate) that fails before
//! the CA is trusted and succeeds after.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{run_bounded, Fleet, RunOutput};

const NAME: &str = "web.example.test";

fn site(with_trust: bool) -> String {
    let mut site = format!(
        r#"
- hosts: h1
  gather_facts: no
  tasks:
    - name: CA and server certificate
      internal_ca:
        path: /etc/orch-ca
        common_name: {NAME}
        subject_alt_names: [{NAME}]
        key_size: 2048
      register: tls
"#
    );
    if with_trust {
        site.push_str(
            r#"
- hosts: h2,h3
  gather_facts: no
  tasks:
    - name: trust the CA
      ca_trust:
        name: orch-test-ca
        content: "{{ hostvars['h1'].tls.ca_certificate }}"
"#,
        );
    }
    site
}

fn run(fleet: &Fleet, extra: &[&str]) -> RunOutput {
    let mut args = vec!["run", "-i", "inventory.ini", "site.yml"];
    args.extend_from_slice(extra);
    fleet.orch(&args)
}

/// curl's exit status for `https://web.example.test:8443/` from host `h`, with the system store.
fn curl(fleet: &Fleet, h: usize) -> i32 {
    fleet
        .exec(
            h,
            &format!("curl -sS -o /dev/null --max-time 10 https://{NAME}:8443/"),
        )
        .code
}

#[test]
fn a_made_ca_is_trusted_by_every_host_and_kept_across_runs() {
    let fleet = Fleet::start("tls-ca", 3);
    fleet.write("site.yml", &site(false));
    run(&fleet, &[]).assert_code(0);

    assert_eq!(
        fleet.exec_ok(0, "stat -c '%n %a' /etc/orch-ca /etc/orch-ca/*"),
        "/etc/orch-ca 700\n/etc/orch-ca/ca.crt 644\n/etc/orch-ca/ca.key 600\n\
         /etc/orch-ca/server.crt 644\n/etc/orch-ca/server.key 600\n"
    );
    let verified = fleet.exec(
        0,
        "openssl verify -CAfile /etc/orch-ca/ca.crt /etc/orch-ca/server.crt && \
         openssl x509 -in /etc/orch-ca/server.crt -noout -ext subjectAltName",
    );
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    assert!(
        verified.stdout.contains(&format!("DNS:{NAME}")),
        "{}",
        verified.stdout
    );

    // h1 serves HTTPS with the made certificate; h2 and h3 reach it by name.
    let started = run_bounded(
        Command::new("docker").args([
            "exec",
            "-d",
            &fleet.host(0).container,
            "sh",
            "-c",
            "exec openssl s_server -quiet -accept 8443 -www -cert /etc/orch-ca/server.crt \
             -key /etc/orch-ca/server.key >/dev/null 2>&1",
        ]),
        None,
        Duration::from_secs(30),
    )
    .expect("docker exec");
    assert_eq!(started.code, 0, "{}", started.stderr);
    let ip = fleet.host(0).ip.clone();
    for h in [1, 2] {
        fleet.exec_ok(h, &format!("echo '{ip} {NAME}' >> /etc/hosts"));
    }
    fleet.exec_ok(
        1,
        "for i in $(seq 50); do curl -sk -o /dev/null https://web.example.test:8443/ && exit 0; sleep 0.1; done; exit 1",
    );
    assert_eq!(curl(&fleet, 1), 60, "untrusted before ca_trust (curl 60)");

    fleet.write("site.yml", &site(true));
    let check = run(&fleet, &["--check", "--diff"]);
    check.assert_code(0);
    assert_eq!(check.recap("h2").changed, 1, "{check}");
    assert_eq!(curl(&fleet, 1), 60, "check mode changed nothing");

    let first = run(&fleet, &[]);
    first.assert_code(0);
    assert_eq!(first.recap("h1").changed, 0, "the CA was kept\n{first}");
    for h in [1, 2] {
        assert_eq!(curl(&fleet, h), 0, "h{} trusts the CA", h + 1);
        assert_eq!(
            fleet.exec_ok(h, "cat /usr/local/share/ca-certificates/orch-test-ca.crt"),
            fleet.exec_ok(0, "cat /etc/orch-ca/ca.crt")
        );
    }

    let second = run(&fleet, &[]);
    second.assert_code(0);
    for host in ["h1", "h2", "h3"] {
        assert_eq!(second.recap(host).changed, 0, "{second}");
    }

    // A run that died between writing the file and updating the store: the file is there, the
    // bundle lacks it. The next run repairs it.
    fleet.exec_ok(
        2,
        "mv /usr/local/share/ca-certificates/orch-test-ca.crt /root/ && update-ca-certificates >/dev/null && \
         rm -f /etc/ssl/certs/orch-test-ca.pem && openssl rehash /etc/ssl/certs 2>/dev/null; \
         mv /root/orch-test-ca.crt /usr/local/share/ca-certificates/",
    );
    assert_eq!(curl(&fleet, 2), 60);
    let repair = run(&fleet, &["--diff"]);
    repair.assert_code(0);
    assert_eq!(repair.recap("h3").changed, 1, "{repair}");
    assert_eq!(repair.recap("h2").changed, 0, "{repair}");
    assert!(
        repair.stdout.contains("(not in the system bundle)"),
        "{repair}"
    );
    assert_eq!(curl(&fleet, 2), 0);

    // Key material never shows, whatever the verbosity or format.
    let verbose = run(&fleet, &["-vvv"]);
    let json = run(&fleet, &["--output", "json"]);
    let key_lines = fleet.exec_ok(
        0,
        "grep -hv -- ----- /etc/orch-ca/server.key /etc/orch-ca/ca.key",
    );
    for out in [&first, &second, &check, &repair, &verbose, &json] {
        for line in key_lines.lines().filter(|l| l.len() >= 16) {
            assert!(
                !out.stdout.contains(line) && !out.stderr.contains(line),
                "private key material in the output\n{out}"
            );
        }
    }
    assert!(
        verbose.stdout.contains("BEGIN CERTIFICATE"),
        "certificates are not secret and show at -vvv\n{verbose}"
    );

    // Untrusted again with state: absent: file, bundle entry and lookup links all gone.
    fleet.write(
        "site.yml",
        "- hosts: h2,h3\n  gather_facts: no\n  tasks:\n    - ca_trust: {name: orch-test-ca, state: absent}\n",
    );
    let removed = run(&fleet, &[]);
    removed.assert_code(0);
    assert_eq!(removed.recap("h2").changed, 1, "{removed}");
    for h in [1, 2] {
        assert_eq!(curl(&fleet, h), 60, "h{} no longer trusts the CA", h + 1);
        assert_ne!(
            fleet
                .exec(
                    h,
                    "test -e /usr/local/share/ca-certificates/orch-test-ca.crt"
                )
                .code,
            0
        );
    }
    let again = run(&fleet, &[]);
    assert_eq!(again.recap("h2").changed, 0, "{again}");
}
