//! Issue 4, "Authentik host": on a container host with the `docker` stand-in, a playbook creates
//! /opt/authentik, renders templates/authentik/compose.yml.j2, manages `.env` with `env_file`
//! (fixed keys enforced, secrets generated once), brings the project up with docker_compose_v2 and
//! waits with `authentik_wait` until the fake authentik is ready and accepts the bootstrap token.
//!
//! The stand-in runs no processes, so the fake authentik (tests/support/fake_authentik) is started
//! with `docker exec` before the run; it reads the bootstrap token from `.env` only when bootstrap
//! runs, i.e. at the first request after its delays, which comes from `authentik_wait` after
//! env_file wrote `.env` — the order authentik itself follows.
//!
//! Verified with docker exec: `.env` mode 0600 and keys, the fake's state (bootstrap done with the
//! token of `.env`), the stand-in's containers, generated values unchanged on reruns, a user key
//! preserved, drift of a fixed key reported by `--check --diff` and restored; and no secret value of
//! `.env` anywhere in orch's output (console with -vvv and --diff, and --output json).

mod support;

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};
use support::flagship::tasks_with;
use support::{FakeAuthentik, FakeAuthentikOptions, Fleet, RunOutput, ENV_FILE};

const TEMPLATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/templates/authentik/compose.yml.j2"
);
const GENERATED: [&str; 4] = [
    "PG_PASS",
    "AUTHENTIK_SECRET_KEY",
    "AUTHENTIK_BOOTSTRAP_PASSWORD",
    "AUTHENTIK_BOOTSTRAP_TOKEN",
];

fn playbook() -> String {
    format!(
        r#"
- hosts: targets
  gather_facts: no
  vars:
    authentik_version: "2026.5.6"
    authentik_domain: auth.example.com
  tasks:
    - name: authentik directory
      file: {{path: /opt/authentik, state: directory, mode: "0755"}}
    - name: compose file
      template: {{src: "{TEMPLATE}", dest: /opt/authentik/compose.yml, mode: "0644"}}
    - name: authentik env
      env_file:
        path: {ENV_FILE}
        values:
          AUTHENTIK_TAG: "{{{{ authentik_version }}}}"
          AUTHENTIK_ERROR_REPORTING__ENABLED: false
          COMPOSE_PORT_HTTP: 9000
          COMPOSE_PORT_HTTPS: 9443
          AUTHENTIK_BOOTSTRAP_EMAIL: "admin@{{{{ authentik_domain }}}}"
        generate:
          PG_PASS: base64:36
          AUTHENTIK_SECRET_KEY: {{bytes: 60, encoding: base64}}
          AUTHENTIK_BOOTSTRAP_PASSWORD: alnum:32
          AUTHENTIK_BOOTSTRAP_TOKEN: alnum:64
      register: authentik_env
    - name: authentik up
      community.docker.docker_compose_v2:
        project_src: /opt/authentik
        state: present
        remove_orphans: true
    - name: wait for authentik
      authentik_wait:
        token: "{{{{ authentik_env['values']['AUTHENTIK_BOOTSTRAP_TOKEN'] }}}}"
        timeout: 60
        sleep: 0.5
      register: ready
    - name: show what a careless user would print
      debug: {{var: authentik_env}}
    - name: keep the version seen
      copy: {{content: "{{{{ ready.version }}}}", dest: /tmp/authentik_version}}
      when: ready.version is defined
"#
    )
}

/// The `docker` stand-in and the fake Authentik (its `.env` is left to the playbook).
fn install(fleet: &Fleet) -> FakeAuthentik<'_> {
    let options = FakeAuthentikOptions::new()
        .version("2026.5.6")
        .delays(2, 2)
        .docker_standin();
    FakeAuthentik::start(fleet, 0, &options)
}

/// `.env` as the host has it: every key's value (the last line of a key wins, as in Compose).
fn env_values(fleet: &Fleet) -> BTreeMap<String, String> {
    fleet
        .exec_ok(0, &format!("cat {ENV_FILE}"))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn run(fleet: &Fleet, extra: &[&str]) -> RunOutput {
    let inventory = fleet.inventory();
    let mut args = vec![
        "run",
        "site.yml",
        "-i",
        inventory.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    let out = fleet.orch(&args);
    out.assert_code(0);
    out
}

#[track_caller]
fn assert_no_secret(outputs: &[&RunOutput], secrets: &BTreeMap<String, String>) {
    for (key, value) in secrets {
        for out in outputs {
            assert!(
                !out.stdout.contains(value.as_str()) && !out.stderr.contains(value.as_str()),
                "the value of {key} appears in orch's output:\n{out}"
            );
        }
    }
}

#[test]
fn authentik_host_env_compose_and_wait() {
    let fleet = Fleet::start("akhost", 1);
    let fake = install(&fleet);
    fleet.write("site.yml", &playbook());

    // First run, as verbose as it gets: everything is created, then Authentik is awaited.
    let first = run(&fleet, &["-vvv", "--diff"]);
    assert_eq!(first.recap("h1").failed, 0);
    assert_eq!(
        fleet.exec_ok(0, &format!("stat -c '%a %U' {ENV_FILE}")),
        "600 root\n"
    );
    let env = env_values(&fleet);
    assert_eq!(env["AUTHENTIK_TAG"], "2026.5.6");
    assert_eq!(env["AUTHENTIK_ERROR_REPORTING__ENABLED"], "false");
    assert_eq!(env["COMPOSE_PORT_HTTP"], "9000");
    assert_eq!(env["AUTHENTIK_BOOTSTRAP_EMAIL"], "admin@auth.example.com");
    assert_eq!(env["PG_PASS"].len(), 48, "36 random bytes in base64");
    assert_eq!(
        env["AUTHENTIK_SECRET_KEY"].len(),
        80,
        "60 random bytes in base64"
    );
    assert_eq!(env["AUTHENTIK_BOOTSTRAP_TOKEN"].len(), 64);
    let secrets: BTreeMap<String, String> = GENERATED
        .iter()
        .map(|k| (k.to_string(), env[*k].clone()))
        .collect();

    // The compose project is up in the stand-in, with the pinned image and the .env's ports.
    let config = fleet.exec_ok(
        0,
        "cd /opt/authentik && docker compose config --format json",
    );
    let config: Value = serde_json::from_str(&config).expect("compose config is JSON");
    let services: Vec<&str> = config["services"]
        .as_object()
        .expect("services")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        services,
        ["postgresql", "server", "worker"],
        "no redis in 2026.5"
    );
    assert_eq!(
        config["services"]["server"]["image"],
        "ghcr.io/goauthentik/server:2026.5.6"
    );
    let ps = fleet.exec_ok(0, "cd /opt/authentik && docker compose ps --format json");
    assert_eq!(
        ps.lines().filter(|l| l.contains("\"running\"")).count(),
        3,
        "{ps}"
    );

    // authentik_wait only succeeded once bootstrap had run with the token of .env.
    let state = fake.state();
    assert_eq!(state["setup"], true);
    let digest = hex(&Sha256::digest(
        secrets["AUTHENTIK_BOOTSTRAP_TOKEN"].as_bytes(),
    ));
    assert_eq!(state["tokens"][0]["key_sha256"], Value::from(digest));
    assert_eq!(fleet.exec_ok(0, "cat /tmp/authentik_version"), "2026.5.6");

    // Second run: nothing to do, secrets untouched (byte for byte).
    let env_text = fleet.exec_ok(0, &format!("cat {ENV_FILE}"));
    let second = run(&fleet, &["--output", "json"]);
    assert_eq!(fleet.exec_ok(0, &format!("cat {ENV_FILE}")), env_text);
    let third = run(&fleet, &["--diff"]);
    assert_eq!(third.recap("h1").changed, 0, "{third}");

    // Drift: a user adds a key, a fixed key is edited, the mode is loosened.
    fleet.exec_ok(
        0,
        &format!(
            "echo 'MY_CUSTOM=keep-me' >> {ENV_FILE} && sed -i 's/^COMPOSE_PORT_HTTP=9000$/COMPOSE_PORT_HTTP=8000/' {ENV_FILE} && chmod 0644 {ENV_FILE}"
        ),
    );
    let check = run(&fleet, &["--check", "--diff"]);
    assert!(
        tasks_with(&check.stdout, "changed").contains(&"authentik env".to_string()),
        "{check}"
    );
    assert_eq!(
        tasks_with(&check.stdout, "skipping"),
        ["wait for authentik", "keep the version seen"],
        "authentik_wait cannot predict anything in check mode"
    );
    let diff_lines: Vec<&str> = check
        .stdout
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(
        diff_lines,
        ["-COMPOSE_PORT_HTTP=8000", "+COMPOSE_PORT_HTTP=9000"],
        "exactly the drift: {check}"
    );
    assert!(
        fleet
            .exec_ok(0, &format!("cat {ENV_FILE}"))
            .contains("COMPOSE_PORT_HTTP=8000"),
        "check mode must not write"
    );
    let fix = run(&fleet, &["--diff"]);
    assert!(
        tasks_with(&fix.stdout, "changed").contains(&"authentik env".to_string()),
        "{fix}"
    );
    let env = env_values(&fleet);
    assert_eq!(env["COMPOSE_PORT_HTTP"], "9000", "fixed key restored");
    assert_eq!(env["MY_CUSTOM"], "keep-me", "user key preserved");
    for (key, value) in &secrets {
        assert_eq!(&env[key], value, "{key} must never change");
    }
    assert_eq!(fleet.exec_ok(0, &format!("stat -c %a {ENV_FILE}")), "600\n");
    let last = run(&fleet, &[]);
    assert_eq!(last.recap("h1").changed, 0, "{last}");

    // A token authentik does not know: the wait fails at the authenticated stage, saying why.
    fleet.write(
        "wrong.yml",
        r#"
- hosts: targets
  gather_facts: no
  tasks:
    - authentik_wait: {token: not-the-bootstrap-token-0815, timeout: 2, sleep: 0.5}
"#,
    );
    let inventory = fleet.inventory();
    let wrong = fleet.orch(&["run", "wrong.yml", "-i", inventory.to_str().expect("utf-8")]);
    wrong.assert_code(2);
    assert!(
        wrong
            .stdout
            .contains("(stage 'auth'): GET /api/v3/core/users/me/ last answered HTTP 403"),
        "{wrong}"
    );
    assert!(
        !wrong.stdout.contains("not-the-bootstrap-token-0815"),
        "{wrong}"
    );

    assert_no_secret(
        &[&first, &second, &third, &check, &fix, &last, &wrong],
        &secrets,
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
