//! Issue 3, acceptance 4: `community.docker.docker_compose_v2` on a container host, against the
//! `docker` CLI stand-in (tests/support/docker-standin/docker; no Docker engine runs in the test
//! containers). First `up` changed, second ok, changed again after the Compose file changes
//! (recreate), then stopped, restarted, absent; check mode predicts without touching the stand-in's
//! state; docker_compose_v2_pull only changes when a new image arrives. Every step is verified with
//! `docker exec` on the stand-in's state file.

mod support;

use serde_json::Value;
use support::Fleet;

const STANDIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/docker-standin/docker"
);
const STATE_FILE: &str = "/var/lib/docker-standin/state.json";

const PLAYBOOK: &str = r#"
- hosts: targets
  gather_facts: no
  vars:
    compose_src: compose_v1.yaml
    compose_state: present
  tasks:
    - name: compose file
      copy: {src: "{{ compose_src }}", dest: /srv/app/compose.yaml, mode: "0644"}
    - name: project
      community.docker.docker_compose_v2:
        project_src: /srv/app
        project_name: shop
        state: "{{ compose_state }}"
      register: project
    - name: keep the result
      copy: {content: "{{ project | to_json }}", dest: /tmp/project.json}
      changed_when: false
"#;

const PULL_PLAYBOOK: &str = r#"
- hosts: targets
  gather_facts: no
  tasks:
    - name: pull
      community.docker.docker_compose_v2_pull:
        project_src: /srv/app
        project_name: shop
      register: pulled
"#;

const COMPOSE_V1: &str = r#"services:
  web:
    image: nginx:1.25
    ports: ["8080:80"]
    environment:
      GREETING: hello
    depends_on: [db]
  db:
    image: postgres:16
    healthcheck:
      test: ["CMD", "pg_isready"]
"#;

fn install_standin(fleet: &Fleet) {
    let container = &fleet.host(0).container;
    let status = std::process::Command::new("docker")
        .args(["cp", STANDIN, &format!("{container}:/usr/bin/docker")])
        .status()
        .expect("docker cp");
    assert!(status.success(), "docker cp of the stand-in failed");
    fleet.exec_ok(0, "chmod 0755 /usr/bin/docker");
    assert_eq!(
        fleet.exec_ok(0, "docker compose version"),
        "Docker Compose version v2.29.7\n"
    );
}

/// The stand-in's state file, or Null when it does not exist.
fn engine_state(fleet: &Fleet) -> Value {
    let out = fleet.exec(0, &format!("cat {STATE_FILE}"));
    if out.code != 0 {
        return Value::Null;
    }
    serde_json::from_str(&out.stdout).expect("state file is JSON")
}

fn container<'a>(state: &'a Value, name: &str) -> &'a Value {
    &state["containers"][name]
}

fn run(fleet: &Fleet, playbook: &str, extra: &[&str]) -> support::RunOutput {
    let inventory = fleet.inventory();
    let mut args = vec![
        "run",
        playbook,
        "-i",
        inventory.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    let out = fleet.orch(&args);
    out.assert_code(0);
    out
}

/// The task names reported `changed` in a run's output.
fn changed_tasks(stdout: &str) -> Vec<String> {
    let mut current = String::new();
    let mut out = Vec::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("TASK [") {
            current = rest.split(']').next().unwrap_or_default().to_string();
        } else if line.starts_with("changed: ") {
            out.push(current.clone());
        }
    }
    out
}

#[test]
fn compose_project_lifecycle_on_a_host() {
    let fleet = Fleet::start("compose", 1);
    install_standin(&fleet);
    fleet.write("site.yml", PLAYBOOK);
    fleet.write("pull.yml", PULL_PLAYBOOK);
    fleet.write("files/compose_v1.yaml", COMPOSE_V1);
    fleet.write(
        "files/compose_v2.yaml",
        &COMPOSE_V1.replace("GREETING: hello", "GREETING: bonjour"),
    );
    // The file in place beforehand, so that check mode has a project to look at.
    fleet.exec_ok(
        0,
        &format!("mkdir -p /srv/app && cat > /srv/app/compose.yaml <<'EOF'\n{COMPOSE_V1}EOF"),
    );

    // Check mode on a fresh host: predicts the change, creates nothing.
    let check = run(&fleet, "site.yml", &["--check"]);
    assert_eq!(changed_tasks(&check.stdout), vec!["project"], "{check}");
    assert_eq!(
        engine_state(&fleet),
        Value::Null,
        "check mode ran Compose for real"
    );

    // First up: changed; both containers exist and run.
    let first = run(&fleet, "site.yml", &[]);
    assert_eq!(changed_tasks(&first.stdout), vec!["project"], "{first}");
    let state = engine_state(&fleet);
    assert_eq!(
        container(&state, "shop-web-1")["state"],
        "running",
        "{state}"
    );
    assert_eq!(
        container(&state, "shop-db-1")["state"],
        "running",
        "{state}"
    );
    assert!(state["networks"].get("shop_default").is_some(), "{state}");
    let web_id = container(&state, "shop-web-1")["id"].clone();
    let db_id = container(&state, "shop-db-1")["id"].clone();
    let result: Value =
        serde_json::from_str(&fleet.exec_ok(0, "cat /tmp/project.json")).expect("result json");
    assert_eq!(result["changed"], true);
    let services: Vec<&str> = result["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter_map(|c| c["Service"].as_str())
        .collect();
    assert_eq!(services, vec!["db", "web"], "{result}");
    assert!(
        result["actions"].as_array().expect("actions").contains(
            &serde_json::json!({"what": "container", "id": "shop-web-1", "status": "Creating"})
        ),
        "{result}"
    );
    assert_eq!(
        result["images"].as_array().map(Vec::len),
        Some(2),
        "{result}"
    );
    assert_eq!(
        fleet
            .exec_ok(0, "cd /srv/app && docker compose -p shop ps -q | wc -l")
            .trim(),
        "2",
        "two running containers"
    );

    // Second up: nothing to do.
    let second = run(&fleet, "site.yml", &[]);
    assert_eq!(second.recap("h1").changed, 0, "{second}");
    let state = engine_state(&fleet);
    assert_eq!(container(&state, "shop-web-1")["id"], web_id);
    let result: Value =
        serde_json::from_str(&fleet.exec_ok(0, "cat /tmp/project.json")).expect("result json");
    assert_eq!(result["changed"], false);
    assert_eq!(result["actions"], serde_json::json!([]));

    // A changed Compose file: web is recreated, db is left alone.
    let edited = run(&fleet, "site.yml", &["-e", "compose_src=compose_v2.yaml"]);
    assert_eq!(
        changed_tasks(&edited.stdout),
        vec!["compose file", "project"],
        "{edited}"
    );
    let state = engine_state(&fleet);
    assert_ne!(
        container(&state, "shop-web-1")["id"],
        web_id,
        "web not recreated"
    );
    assert_eq!(container(&state, "shop-db-1")["id"], db_id, "db recreated");
    assert_eq!(container(&state, "shop-web-1")["state"], "running");
    let again = run(&fleet, "site.yml", &["-e", "compose_src=compose_v2.yaml"]);
    assert_eq!(again.recap("h1").changed, 0, "{again}");

    // Stopped, then stopped again (no change).
    let v2 = ["-e", "compose_src=compose_v2.yaml"];
    let stopped = run(
        &fleet,
        "site.yml",
        &[&v2[..], &["-e", "compose_state=stopped"]].concat(),
    );
    assert_eq!(changed_tasks(&stopped.stdout), vec!["project"], "{stopped}");
    let state = engine_state(&fleet);
    assert_eq!(
        container(&state, "shop-web-1")["state"],
        "exited",
        "{state}"
    );
    assert_eq!(container(&state, "shop-db-1")["state"], "exited", "{state}");
    let still = run(
        &fleet,
        "site.yml",
        &[&v2[..], &["-e", "compose_state=stopped"]].concat(),
    );
    assert_eq!(still.recap("h1").changed, 0, "{still}");

    // Restarted: check mode predicts and leaves them stopped; the real run starts them.
    let restart = [&v2[..], &["-e", "compose_state=restarted"]].concat();
    let check = run(&fleet, "site.yml", &[&restart[..], &["--check"]].concat());
    assert_eq!(changed_tasks(&check.stdout), vec!["project"], "{check}");
    assert_eq!(
        container(&engine_state(&fleet), "shop-web-1")["state"],
        "exited"
    );
    let restarted = run(&fleet, "site.yml", &restart);
    assert_eq!(
        changed_tasks(&restarted.stdout),
        vec!["project"],
        "{restarted}"
    );
    let state = engine_state(&fleet);
    assert_eq!(
        container(&state, "shop-web-1")["state"],
        "running",
        "{state}"
    );
    assert_eq!(
        container(&state, "shop-db-1")["state"],
        "running",
        "{state}"
    );

    // Pull: nothing new is ok; a new image in the "registry" is a change.
    let pull = run(&fleet, "pull.yml", &[]);
    assert_eq!(pull.recap("h1").changed, 0, "{pull}");
    fleet.exec_ok(
        0,
        "echo '{\"postgres:16\": \"2\"}' > /var/lib/docker-standin/registry.json",
    );
    let image_before = engine_state(&fleet)["images"]["postgres:16"]["id"].clone();
    let pull = run(&fleet, "pull.yml", &[]);
    assert_eq!(pull.recap("h1").changed, 1, "{pull}");
    assert_ne!(
        engine_state(&fleet)["images"]["postgres:16"]["id"],
        image_before
    );

    // Absent: check mode removes nothing; the real run removes containers and network; then ok.
    let absent = [&v2[..], &["-e", "compose_state=absent"]].concat();
    let check = run(&fleet, "site.yml", &[&absent[..], &["--check"]].concat());
    assert_eq!(changed_tasks(&check.stdout), vec!["project"], "{check}");
    assert_eq!(
        engine_state(&fleet)["containers"]
            .as_object()
            .map(|m| m.len()),
        Some(2)
    );
    let removed = run(&fleet, "site.yml", &absent);
    assert_eq!(changed_tasks(&removed.stdout), vec!["project"], "{removed}");
    let state = engine_state(&fleet);
    assert_eq!(state["containers"], serde_json::json!({}), "{state}");
    assert_eq!(state["networks"], serde_json::json!({}), "{state}");
    let gone = run(&fleet, "site.yml", &absent);
    assert_eq!(gone.recap("h1").changed, 0, "{gone}");
}
