//! Issue 4, acceptance 1, 2 and 5 (part): `playbooks/authentik-proxmox.yml` end to end on one
//! Authentik host and two Proxmox VE clusters (2 nodes + 1 standalone), from a fresh state.
//!
//! Faked, because they cannot run here: Authentik itself (tests/support/fake_authentik, started on
//! the Authentik host; the compose stand-in runs no processes), the Docker engine (the `docker`
//! stand-in), Proxmox's pveum/pvesh (tests/support/fake_pve). The apt repository is a real, signed
//! local one. The preflight's TLS check needs an HTTPS issuer the PVE nodes trust, which this layout
//! does not provide, so it is switched off here; tests/pve_modules.rs covers it.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{run_bounded, AptRepo, Fleet, PveLayout};

const PLAYBOOK: &str = include_str!("../playbooks/authentik-proxmox.yml");
const DOCKER: &str = include_str!("../playbooks/docker.yml");
const COMPOSE: &str = include_str!("../templates/authentik/compose.yml.j2");
const STANDIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/docker-standin/docker"
);
const FAKE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/fake_authentik/fake_authentik.py"
);
const STATE: &str = "/var/lib/fake-authentik/state.json";

fn docker_cp(container: &str, src: &str, dest: &str) {
    let copied = run_bounded(
        Command::new("docker").args(["cp", src, &format!("{container}:{dest}")]),
        None,
        Duration::from_secs(60),
    )
    .expect("docker cp");
    assert_eq!(copied.code, 0, "docker cp {src}: {}", copied.stderr);
}

fn start_fake_authentik(fleet: &Fleet) {
    let container = fleet.host(0).container.clone();
    docker_cp(&container, STANDIN, "/usr/bin/docker");
    docker_cp(&container, FAKE, "/opt/fake_authentik.py");
    fleet.exec_ok(
        0,
        "chmod 0755 /usr/bin/docker && mkdir -p /var/log/fake-authentik",
    );
    let started = run_bounded(
        Command::new("docker").args([
            "exec",
            "-d",
            &container,
            "sh",
            "-c",
            "exec python3 /opt/fake_authentik.py --bind 127.0.0.1 --env-file /opt/authentik/.env \
             --version 2026.5.6 --ready-delay 2 --bootstrap-delay 2 2>/var/log/fake-authentik/stderr.log",
        ]),
        None,
        Duration::from_secs(60),
    )
    .expect("docker exec -d");
    assert_eq!(started.code, 0, "{}", started.stderr);
}

#[test]
fn authentik_becomes_the_login_of_every_cluster() {
    let mut auth = Fleet::start("flagship-auth", 1);
    let repo = AptRepo::serve(&mut auth);
    start_fake_authentik(&auth);
    let pve = Fleet::start_pve(
        "flagship-pve",
        &PveLayout::new().cluster("lab", 2).standalone(),
    );

    // One inventory over both fleets; orch runs with the PVE fleet's HOME, which must know both.
    let known = std::fs::read_to_string(auth.known_hosts()).expect("auth known_hosts");
    let mut all_known = std::fs::read_to_string(pve.known_hosts()).expect("pve known_hosts");
    all_known.push_str(&known);
    std::fs::write(pve.known_hosts(), all_known).expect("known_hosts");
    let a = auth.host(0);
    let line = |name: &str, ip: &str, key: &std::path::Path| {
        format!(
            "{name} ansible_host={ip} ansible_user=root ansible_ssh_private_key_file={}\n",
            key.display()
        )
    };
    let mut inventory = String::from("[authentik]\n");
    inventory.push_str(&line("auth.example.test", &a.ip, auth.private_key()));
    inventory.push_str("\n[pve_lab]\n");
    for &h in &pve.clusters()[0].hosts {
        inventory.push_str(&line(
            &format!("pve{}.example.test", h + 1),
            &pve.host(h).ip,
            pve.private_key(),
        ));
    }
    inventory.push_str("\n[pve_solo]\n");
    for &h in &pve.clusters()[1].hosts {
        inventory.push_str(&line(
            &format!("pve{}.example.test", h + 1),
            &pve.host(h).ip,
            pve.private_key(),
        ));
    }
    inventory.push_str("\n[pve:children]\npve_lab\npve_solo\n");
    pve.write("hosts", &inventory);
    pve.write("playbooks/authentik-proxmox.yml", PLAYBOOK);
    pve.write("playbooks/docker.yml", DOCKER);
    pve.write("templates/authentik/compose.yml.j2", COMPOSE);
    pve.write(
        "vars.yml",
        &format!(
            "docker_apt_url: {}\ndocker_apt_key_url: {}\ndocker_manage_service: false\npve_oidc_preflight: false\n\
             pve_oidc_groups: [{{name: admins-authentik, comment: Authentik admins}}]\n\
             pve_oidc_acls: [{{path: /, roles: [Administrator], groups: [admins-authentik]}}]\n",
            repo.url, repo.key_url
        ),
    );
    let args = [
        "run",
        "playbooks/authentik-proxmox.yml",
        "-i",
        "hosts",
        "-e",
        "@vars.yml",
    ];

    let first = pve.orch(&args);
    first.assert_code(0);

    // Authentik, as the fake's state shows it.
    let state: Value =
        serde_json::from_str(&auth.exec_ok(0, &format!("cat {STATE}"))).expect("state");
    let provider = state["providers"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "Proxmox VE"))
        .unwrap_or_else(|| panic!("no provider in {state:#}"));
    let mut uris: Vec<String> = provider["redirect_uris"]
        .as_array()
        .expect("redirect_uris")
        .iter()
        .map(|u| {
            assert_eq!(u["matching_mode"], "strict");
            u["url"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    uris.sort();
    assert_eq!(
        uris,
        vec![
            "https://pve1.example.test:8006",
            "https://pve2.example.test:8006",
            "https://pve3.example.test:8006"
        ]
    );
    assert_eq!(provider["client_type"], "confidential");
    assert!(provider["encryption_key"].is_null(), "{provider:#}");
    let client_secret = provider["client_secret"]
        .as_str()
        .expect("client secret")
        .to_string();
    let token = auth
        .exec_ok(
            0,
            "sed -n 's/^AUTHENTIK_BOOTSTRAP_TOKEN=//p' /opt/authentik/.env",
        )
        .trim()
        .to_string();
    assert!(token.len() >= 32, "bootstrap token generated");

    // Each cluster's realm, written once per cluster, with the right keys.
    let issuer = "https://auth.example.test/application/o/proxmox/";
    for cluster in pve.clusters() {
        for &h in &cluster.hosts {
            let cfg = pve.domains_cfg(h);
            assert_eq!(cfg.matches("openid: authentik\n").count(), 1, "{cfg}");
            assert!(cfg.contains(&format!("\tissuer-url {issuer}\n")), "{cfg}");
            assert!(cfg.contains("\tclient-id proxmox\n"), "{cfg}");
            assert!(
                cfg.contains(&format!("\tclient-key {client_secret}\n")),
                "the realm holds the provider's secret"
            );
            assert!(
                cfg.contains("\tusername-claim preferred_username\n"),
                "{cfg}"
            );
            assert!(cfg.contains("\tautocreate 1\n"), "{cfg}");
            let users = pve.user_cfg(h);
            assert!(users.contains("group:admins-authentik:"), "{users}");
            assert!(
                users.contains("acl:1:/:@admins-authentik:Administrator:"),
                "{users}"
            );
        }
    }

    // Second run: nothing to do anywhere.
    let second = pve.orch(&args);
    second.assert_code(0);
    for host in second.recap_hosts() {
        assert_eq!(
            second.recap(&host).changed,
            0,
            "second run changed {host}\n{second}"
        );
    }
    // No secret in any output.
    for run in [&first, &second] {
        for secret in [&token, &client_secret] {
            assert!(
                !run.stdout.contains(secret.as_str()) && !run.stderr.contains(secret.as_str()),
                "secret leaked\n{run}"
            );
        }
    }
}
