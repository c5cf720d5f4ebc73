//! `--check --diff` of `playbooks/authentik-proxmox.yml` on a fresh fleet (nothing installed yet),
//! which is what users run first: it must get through, predict what the real run does, and change
//! nothing. On a fresh host check mode cannot start Authentik, so its API tasks and everything that
//! needs their results (the OIDC facts, every PVE realm task) are reported skipped with the reason.
//!
//! Same lab as tests/flagship.rs (fake Authentik, `docker` stand-in, fake pveum/pvesh, a real
//! signed apt repository), one cluster of 2 nodes and a standalone node.

mod support;

use support::flagship::{changed_tasks, AuthentikOptions, FlagshipLab, AUTHENTIK_NAME};
use support::PveLayout;

/// The result lines of `task` in a human run.
fn result_lines(stdout: &str, task: &str) -> Vec<String> {
    let mut current = String::new();
    let mut out = Vec::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("TASK [") {
            current = rest.split(']').next().unwrap_or_default().to_string();
        } else if current == task
            && ["ok: ", "changed: ", "skipping: ", "fatal: "]
                .iter()
                .any(|p| line.starts_with(p))
        {
            out.push(line.to_string());
        }
    }
    out.sort();
    out
}

fn reason(names: &str) -> String {
    format!("(check mode: depends on results only a real run gives: {names})")
}

#[test]
fn check_mode_on_a_fresh_fleet_predicts_and_changes_nothing() {
    let lab = FlagshipLab::start(
        "flagcheck",
        &AuthentikOptions::new("2026.5.6").https(8443),
        &PveLayout::new().cluster("lab", 2).standalone(),
    );
    lab.resolve_authentik_on_pve();
    // Not Authentik's default HTTPS port: the issuer, the brand's wait and the preflight follow it.
    lab.write_vars("authentik_tls: internal_ca\nauthentik_https_port: 8443\n");
    let (auth, pve) = (&lab.auth, &lab.pve);
    let nodes: Vec<String> = (0..pve.hosts().len()).map(FlagshipLab::pve_name).collect();

    let check = lab.run(&["--check", "--diff"]);
    check.assert_code(0);
    for host in check.recap_hosts() {
        assert_eq!(check.recap(&host).failed, 0, "{host} failed\n{check}");
    }

    // What the real run will do on the Authentik host, predicted.
    let predicted = changed_tasks(&check.stdout);
    let on_auth = |task: &str| format!("{task} @ {AUTHENTIK_NAME}");
    for task in [
        "Docker's signing key",
        "Docker's apt repository",
        "Docker packages",
        "Authentik directory",
        "Compose file",
        "Environment with generated secrets (created once, never rotated)",
        "Internal CA and Authentik's HTTPS certificate (made once, kept on this host)",
        "Authentik containers",
    ] {
        assert!(
            predicted.contains(&on_auth(task)),
            "check mode did not predict '{task}': {predicted:?}\n{check}"
        );
    }
    assert!(
        check
            .stdout
            .contains("+AUTHENTIK_BOOTSTRAP_TOKEN=********  # would generate"),
        "the .env diff names the secrets it would generate\n{check}"
    );
    assert!(
        check
            .stderr
            .contains("predicting that the project would be created"),
        "{check}"
    );

    // What needs a running Authentik is skipped, with the reason, down to every PVE node.
    assert_eq!(
        result_lines(&check.stdout, "What the Proxmox VE realms need"),
        vec![format!(
            "skipping: [{AUTHENTIK_NAME}] => {}",
            reason("authentik_app, authentik_provider")
        )],
        "{check}"
    );
    let per_node = |names: &[String]| -> Vec<String> {
        names
            .iter()
            .map(|n| format!("skipping: [{n}] => {}", reason("authentik_oidc")))
            .collect()
    };
    for task in [
        "Trust the internal CA of Authentik's HTTPS certificate (every node)",
        "The issuer is reachable, trusted and signs with RS256 (from every node)",
    ] {
        assert_eq!(
            result_lines(&check.stdout, task),
            per_node(&nodes),
            "{check}"
        );
    }
    // Once per cluster: the first node of each.
    let leaders = [FlagshipLab::pve_name(0), FlagshipLab::pve_name(2)];
    assert_eq!(
        result_lines(&check.stdout, "OpenID realm (once per cluster)"),
        per_node(&leaders),
        "{check}"
    );

    // Nothing changed, as the hosts themselves say.
    assert_eq!(
        auth.exec_ok(
            0,
            "test -e /opt/authentik && echo exists; dpkg -s docker-ce >/dev/null 2>&1 && echo installed; true"
        ),
        "",
        "check mode changed the Authentik host"
    );
    for (h, node) in nodes.iter().enumerate() {
        assert!(
            !pve.domains_cfg(h).contains("openid: authentik"),
            "check mode wrote a realm on {node}"
        );
    }

    for h in 0..pve.hosts().len() {
        assert_eq!(
            pve.exec(
                h,
                "test -e /usr/local/share/ca-certificates/orch-authentik-ca.crt"
            )
            .code,
            1,
            "check mode installed the CA"
        );
    }

    // The real run works on this lab (preflight included) and changes at least what check mode
    // predicted.
    let real = lab.run(&[]);
    real.assert_code(0);
    let changed = changed_tasks(&real.stdout);
    for p in &predicted {
        assert!(
            changed.contains(p),
            "predicted '{p}' but the run did not change it\n{real}"
        );
    }
    for h in 0..pve.hosts().len() {
        let cfg = pve.domains_cfg(h);
        assert!(cfg.contains("openid: authentik\n"), "{cfg}");
        assert!(
            cfg.contains("\tissuer-url https://auth.example.test:8443/application/o/proxmox/\n"),
            "{cfg}"
        );
    }
}
