//! Issue 4, acceptance 1, 2 and 5 (part): `playbooks/authentik-proxmox.yml` end to end on one
//! Authentik host and two Proxmox VE clusters (2 nodes + 1 standalone), from a fresh state.
//!
//! Faked, because they cannot run here: Authentik itself (tests/support/fake_authentik, started on
//! the Authentik host; the compose stand-in runs no processes), the Docker engine (the `docker`
//! stand-in), Proxmox's pveum/pvesh (tests/support/fake_pve). The apt repository is a real, signed
//! local one. TLS is real: `authentik_tls: internal_ca` makes a CA and a certificate that the fake
//! Authentik serves on 9443 (chosen per SNI from the brand, as Authentik does) once the playbook has
//! set it as the brand's web certificate; the PVE nodes trust the CA through their system store, and
//! the preflight and a plain `curl` from each node verify it.

mod support;

use serde_json::Value;
use support::flagship::{changed_tasks, AuthentikOptions, FlagshipLab, FAKE_STATE};
use support::PveLayout;

#[test]
fn authentik_becomes_the_login_of_every_cluster_2026_5() {
    flagship("2026.5.6", "flagship-26");
}

#[test]
fn authentik_becomes_the_login_of_every_cluster_2024_12() {
    flagship("2024.12.3", "flagship-24");
}

fn generated_secrets(lab: &FlagshipLab) -> String {
    lab.auth.exec_ok(
        0,
        "grep -E '^(PG_PASS|AUTHENTIK_SECRET_KEY|AUTHENTIK_BOOTSTRAP_PASSWORD|AUTHENTIK_BOOTSTRAP_TOKEN)=' /opt/authentik/.env",
    )
}

fn flagship(version: &str, name: &str) {
    let lab = FlagshipLab::start(
        name,
        &AuthentikOptions::new(version).https(9443).tls_reload(5),
        &PveLayout::new().cluster("lab", 2).standalone(),
    );
    lab.resolve_authentik_on_pve();
    lab.write_vars(
        "authentik_tls: internal_ca\n\
         pve_oidc_groups: [{name: admins-authentik, comment: Authentik admins}]\n\
         pve_oidc_acls: [{path: /, roles: [Administrator], groups: [admins-authentik]}]\n",
    );
    let (auth, pve) = (&lab.auth, &lab.pve);
    let first = lab.run(&[]);
    first.assert_code(0);
    // /etc/pve is shared: the realm is written by one node of each cluster, the CA on every node.
    let made = changed_tasks(&first.stdout);
    let realm: Vec<&String> = made
        .iter()
        .filter(|t| t.starts_with("OpenID realm (once per cluster) @ "))
        .collect();
    assert_eq!(
        realm,
        [
            "OpenID realm (once per cluster) @ pve1.example.test",
            "OpenID realm (once per cluster) @ pve3.example.test"
        ],
        "{first}"
    );
    for h in 1..=3 {
        let trust = format!(
            "Trust the internal CA of Authentik's HTTPS certificate (every node) @ pve{h}.example.test"
        );
        assert!(made.contains(&trust), "{trust}\n{first}");
    }

    // Authentik, as the fake's state shows it.
    let state: Value = lab.authentik_state();
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
    let find = |list: &str, key: &str, value: &Value| -> Value {
        state[list]
            .as_array()
            .and_then(|items| items.iter().find(|i| &i[key] == value))
            .cloned()
            .unwrap_or_else(|| panic!("no {list} with {key}={value}"))
    };
    let signing = find("certificatekeypairs", "pk", &provider["signing_key"]);
    assert_eq!(
        signing["name"], "auth.example.test OIDC (RSA)",
        "{signing:#}"
    );
    assert_eq!(signing["cert_key_type"], "rsa", "{signing:#}");
    let mut scopes: Vec<String> = provider["property_mappings"]
        .as_array()
        .expect("property_mappings")
        .iter()
        .map(|pk| {
            find("scope_mappings", "pk", pk)["scope_name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    scopes.sort();
    assert_eq!(scopes, ["email", "openid", "profile"]);
    let client_secret = provider["client_secret"]
        .as_str()
        .expect("client secret")
        .to_string();
    let token = lab.env_value("AUTHENTIK_BOOTSTRAP_TOKEN");
    assert!(token.len() >= 32, "bootstrap token generated");

    // Each cluster's realm, written once per cluster, with the right keys.
    let issuer = "https://auth.example.test:9443/application/o/proxmox/";
    assert_tls(&lab, &state, issuer);
    let preflight = task_output(&first.stdout, "The issuer is reachable");
    for h in 1..=3 {
        assert!(
            preflight.contains(&format!("ok: [pve{h}.example.test]")),
            "the preflight ran and passed on every node\n{first}"
        );
    }
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
    let second = lab.run(&[]);
    second.assert_code(0);
    for host in second.recap_hosts() {
        assert_eq!(
            second.recap(&host).changed,
            0,
            "second run changed {host}\n{second}"
        );
    }
    // Drift by hand: realm comment, a redirect URI in Authentik, a fixed .env key, an ACL.
    let secrets_before = generated_secrets(&lab);
    let (lab0, solo) = (pve.clusters()[0].hosts[0], pve.clusters()[1].hosts[0]);
    pve.exec_ok(
        lab0,
        "sed -i 's/^\tcomment Authentik SSO$/\tcomment edited by hand/' /etc/pve/domains.cfg",
    );
    assert!(pve.domains_cfg(lab0).contains("comment edited by hand"));
    auth.exec_ok(
        0,
        &format!(
            "python3 -c \"import json; p='{FAKE_STATE}'; s=json.load(open(p)); \
             [v.update(redirect_uris=[u for u in v['redirect_uris'] if 'pve2' not in u['url']]) for v in s['providers']]; \
             json.dump(s, open(p + '.new', 'w'))\" && mv {FAKE_STATE}.new {FAKE_STATE}"
        ),
    );
    auth.exec_ok(0, "sed -i 's/^AUTHENTIK_ERROR_REPORTING__ENABLED=.*/AUTHENTIK_ERROR_REPORTING__ENABLED=true/' /opt/authentik/.env");
    pve.exec_ok(
        solo,
        "sed -i '/^acl:1:\\/:@admins-authentik:Administrator:/d' /etc/pve/user.cfg",
    );
    assert!(!pve.user_cfg(solo).contains("acl:1:/:@admins-authentik"));

    let check = lab.run(&["--check", "--diff"]);
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

    let fix = lab.run(&[]);
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
    let state: Value = lab.authentik_state();
    assert!(
        state.to_string().contains("https://pve2.example.test:8006"),
        "redirect URI restored"
    );
    assert_eq!(
        generated_secrets(&lab),
        secrets_before,
        "generated secrets must never be rotated"
    );
    assert!(
        pve.domains_cfg(lab0)
            .contains(&format!("\tclient-key {client_secret}\n")),
        "the client secret was kept"
    );

    // No secret in any output, in any mode.
    let verbose = lab.run(&["-vvv"]);
    let json = lab.run(&["--output", "json"]);
    verbose.assert_code(0);
    json.assert_code(0);
    let password = lab.env_value("AUTHENTIK_BOOTSTRAP_PASSWORD");
    let key_lines = auth.exec_ok(
        0,
        "grep -hv -- ----- /opt/authentik/orch-ca/server.key /opt/authentik/orch-ca/ca.key",
    );
    let mut secrets = vec![token.clone(), client_secret.clone(), password.clone()];
    secrets.extend(
        key_lines
            .lines()
            .filter(|l| l.len() >= 16)
            .map(str::to_string),
    );
    for run in [&first, &second, &check, &fix, &verbose, &json] {
        for secret in &secrets {
            assert!(
                !run.stdout.contains(secret.as_str()) && !run.stderr.contains(secret.as_str()),
                "secret leaked\n{run}"
            );
        }
    }

    // Acceptance 4 on the playbook itself (the ECDSA pair and the issuer without its slash are
    // covered per module in authentik_api.rs and pve_modules.rs, on both Authentik versions).
    // username-claim cannot change on an existing realm: a clear failure, nothing written.
    let claim = lab.run(&["-e", "pve_username_claim=email"]);
    claim.assert_code(2);
    assert!(
        claim.stdout.contains("username-claim") && claim.stdout.contains("recreate"),
        "the failure names the claim and the way out\n{claim}"
    );
    assert!(pve
        .domains_cfg(lab0)
        .contains("\tusername-claim preferred_username\n"));
    // An issuer the standalone node cannot reach: its preflight fails with cause and fix, before
    // its realm step; the cluster's nodes are unaffected.
    pve.exec_ok(
        solo,
        "grep -v auth.example.test /etc/hosts > /tmp/hosts; \
         echo '127.0.0.1 auth.example.test' >> /tmp/hosts; cat /tmp/hosts > /etc/hosts",
    );
    let unreachable = lab.run(&[]);
    unreachable.assert_code(2);
    let preflight = task_output(&unreachable.stdout, "The issuer is reachable");
    assert!(
        preflight.contains("fatal: [pve3.example.test]")
            && preflight.contains("unreachable: route")
            && preflight.contains("that Authentik listens on port 9443"),
        "{unreachable}"
    );
    assert!(
        preflight.contains("ok: [pve1.example.test]"),
        "{unreachable}"
    );
    assert_eq!(unreachable.recap("pve3.example.test").failed, 1);
}

/// The console lines of one task, from its `TASK [...]` header to the next.
fn task_output<'a>(stdout: &'a str, task_prefix: &str) -> &'a str {
    let start = stdout
        .find(&format!("TASK [{task_prefix}"))
        .unwrap_or_else(|| panic!("no task '{task_prefix}' in\n{stdout}"));
    let rest = &stdout[start + 6..];
    let end = rest.find("TASK [").unwrap_or(rest.len());
    &rest[..end]
}

/// `authentik_tls: internal_ca`: Authentik serves the orch-made certificate, and every PVE node
/// trusts it through its own system store (checked with curl, independently of orch).
fn assert_tls(lab: &FlagshipLab, state: &Value, issuer: &str) {
    let ca = lab.auth.exec_ok(0, "cat /opt/authentik/orch-ca/ca.crt");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    assert_eq!(
        lab.auth.exec_ok(
            0,
            "stat -c '%a' /opt/authentik/orch-ca/server.key /opt/authentik/orch-ca/ca.key"
        ),
        "600\n600\n"
    );
    let pair = state["certificatekeypairs"]
        .as_array()
        .and_then(|p| {
            p.iter()
                .find(|p| p["name"] == "auth.example.test HTTPS (orch CA)")
        })
        .unwrap_or_else(|| panic!("no HTTPS key pair in {state:#}"));
    let brand = state["brands"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["default"] == true))
        .unwrap_or_else(|| panic!("no default brand in {state:#}"));
    assert_eq!(brand["web_certificate"], pair["pk"], "{brand:#}");
    for h in 0..lab.pve.hosts().len() {
        assert_eq!(
            lab.pve.exec_ok(
                h,
                "cat /usr/local/share/ca-certificates/orch-authentik-ca.crt"
            ),
            ca,
            "the CA on node {h}"
        );
        let discovery = lab.pve.exec(
            h,
            &format!("curl -sS --max-time 10 {issuer}.well-known/openid-configuration"),
        );
        assert_eq!(
            discovery.code, 0,
            "node {h} trusts Authentik's HTTPS: {}",
            discovery.stderr
        );
        let doc: Value = serde_json::from_str(&discovery.stdout).expect("discovery JSON");
        assert_eq!(doc["issuer"], issuer);
    }
}
