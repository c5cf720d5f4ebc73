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

fn start_fake_authentik(fleet: &Fleet, version: &str) {
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
            &format!(
                "exec python3 /opt/fake_authentik.py --bind 127.0.0.1 --env-file /opt/authentik/.env \
                 --version {version} --ready-delay 2 --bootstrap-delay 2 2>/var/log/fake-authentik/stderr.log"
            ),
        ]),
        None,
        Duration::from_secs(60),
    )
    .expect("docker exec -d");
    assert_eq!(started.code, 0, "{}", started.stderr);
}

#[test]
fn authentik_becomes_the_login_of_every_cluster_2026_5() {
    flagship("2026.5.6", "flagship-26");
}

#[test]
fn authentik_becomes_the_login_of_every_cluster_2024_12() {
    flagship("2024.12.3", "flagship-24");
}

/// The tasks that reported `changed` in a human run, with their host.
fn changed_tasks(stdout: &str) -> Vec<String> {
    let mut task = String::new();
    let mut out = Vec::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("TASK [") {
            task = rest.split(']').next().unwrap_or_default().to_string();
        } else if let Some(rest) = line.strip_prefix("changed: [") {
            out.push(format!(
                "{task} @ {}",
                rest.split(']').next().unwrap_or_default()
            ));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn generated_secrets(auth: &Fleet) -> String {
    auth.exec_ok(
        0,
        "grep -E '^(PG_PASS|AUTHENTIK_SECRET_KEY|AUTHENTIK_BOOTSTRAP_PASSWORD|AUTHENTIK_BOOTSTRAP_TOKEN)=' /opt/authentik/.env",
    )
}

fn flagship(version: &str, name: &str) {
    let mut auth = Fleet::start(&format!("{name}-auth"), 1);
    let repo = AptRepo::serve(&mut auth);
    start_fake_authentik(&auth, version);
    let pve = Fleet::start_pve(
        &format!("{name}-pve"),
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
    // Drift by hand: realm comment, a redirect URI in Authentik, a fixed .env key, an ACL.
    let secrets_before = generated_secrets(&auth);
    let (lab0, solo) = (pve.clusters()[0].hosts[0], pve.clusters()[1].hosts[0]);
    pve.exec_ok(
        lab0,
        "sed -i 's/^\tcomment Authentik SSO$/\tcomment edited by hand/' /etc/pve/domains.cfg",
    );
    assert!(pve.domains_cfg(lab0).contains("comment edited by hand"));
    auth.exec_ok(
        0,
        &format!(
            "python3 -c \"import json; p='{STATE}'; s=json.load(open(p)); \
             [v.update(redirect_uris=[u for u in v['redirect_uris'] if 'pve2' not in u['url']]) for v in s['providers']]; \
             json.dump(s, open(p + '.new', 'w'))\" && mv {STATE}.new {STATE}"
        ),
    );
    auth.exec_ok(0, "sed -i 's/^AUTHENTIK_ERROR_REPORTING__ENABLED=.*/AUTHENTIK_ERROR_REPORTING__ENABLED=true/' /opt/authentik/.env");
    pve.exec_ok(
        solo,
        "sed -i '/^acl:1:\\/:@admins-authentik:Administrator:/d' /etc/pve/user.cfg",
    );
    assert!(!pve.user_cfg(solo).contains("acl:1:/:@admins-authentik"));

    let mut check_args = args.to_vec();
    check_args.extend(["--check", "--diff"]);
    let check = pve.orch(&check_args);
    check.assert_code(0);
    let predicted = changed_tasks(&check.stdout);
    let expected = [
        "Environment with generated secrets (created once, never rotated) @ auth.example.test",
        "OAuth2/OpenID provider for Proxmox VE @ auth.example.test",
        "OpenID realm (once per cluster) @ pve1.example.test",
        "Permissions (once per cluster) @ pve3.example.test",
    ];
    for e in expected {
        assert!(
            predicted.iter().any(|p| p == e),
            "check mode missed '{e}': {predicted:?}\n{check}"
        );
    }
    // A changed .env also makes Compose recreate the containers that read it; nothing else drifted.
    for p in &predicted {
        assert!(
            expected.contains(&p.as_str()) || p == "Authentik containers @ auth.example.test",
            "check mode reports drift that was not made: {p}\n{check}"
        );
    }
    assert!(
        check.stdout.contains("comment edited by hand"),
        "the realm diff shows the drift\n{check}"
    );
    assert!(
        check.stdout.contains("https://pve2.example.test:8006"),
        "the provider diff shows the URI\n{check}"
    );
    assert!(
        pve.domains_cfg(lab0).contains("comment edited by hand"),
        "check mode changed the realm"
    );

    let fix = pve.orch(&args);
    fix.assert_code(0);
    assert_eq!(
        changed_tasks(&fix.stdout)
            .iter()
            .filter(|t| !t.starts_with("Authentik containers"))
            .count(),
        4,
        "{fix}"
    );
    assert!(pve.domains_cfg(lab0).contains("\tcomment Authentik SSO\n"));
    assert!(pve
        .user_cfg(solo)
        .contains("acl:1:/:@admins-authentik:Administrator:"));
    assert!(auth
        .exec_ok(0, "cat /opt/authentik/.env")
        .contains("AUTHENTIK_ERROR_REPORTING__ENABLED=false\n"));
    let state: Value =
        serde_json::from_str(&auth.exec_ok(0, &format!("cat {STATE}"))).expect("state");
    assert!(
        state.to_string().contains("https://pve2.example.test:8006"),
        "redirect URI restored"
    );
    assert_eq!(
        generated_secrets(&auth),
        secrets_before,
        "generated secrets must never be rotated"
    );
    assert!(
        pve.domains_cfg(lab0)
            .contains(&format!("\tclient-key {client_secret}\n")),
        "the client secret was kept"
    );

    // No secret in any output, in any mode.
    let verbose = {
        let mut a = args.to_vec();
        a.push("-vvv");
        pve.orch(&a)
    };
    let json = {
        let mut a = args.to_vec();
        a.extend(["--output", "json"]);
        pve.orch(&a)
    };
    verbose.assert_code(0);
    json.assert_code(0);
    let password = auth
        .exec_ok(
            0,
            "sed -n 's/^AUTHENTIK_BOOTSTRAP_PASSWORD=//p' /opt/authentik/.env",
        )
        .trim()
        .to_string();
    for run in [&first, &second, &check, &fix, &verbose, &json] {
        for secret in [&token, &client_secret, &password] {
            assert!(
                !run.stdout.contains(secret.as_str()) && !run.stderr.contains(secret.as_str()),
                "secret leaked\n{run}"
            );
        }
    }
}
