//! Acceptance 5: --check changes nothing, reports what would change, --diff shows it, and the real
//! run then changes exactly what check predicted.

mod support;

use support::Fleet;

const PLAYBOOK: &str = r#"
- hosts: targets
  gather_facts: no
  tasks:
    - name: dir
      file: {path: /srv/site, state: directory}
    - name: index
      copy: {content: "<h1>hi</h1>\n", dest: /srv/site/index.html}
    - name: setting
      lineinfile: {path: /etc/site.conf, line: "enabled=1", create: yes}
    - name: already fine
      file: {path: /etc, state: directory}
    - name: only once
      command: touch /srv/site/.done creates=/srv/site/.done
"#;

fn changed_tasks(stdout: &str) -> Vec<String> {
    let mut current = String::new();
    let mut out = Vec::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("TASK [") {
            current = rest.split(']').next().unwrap_or_default().to_string();
        } else if line.starts_with("changed: ")
            || line.starts_with("skipping: ") && current == "only once"
        {
            out.push(current.clone());
        }
    }
    out
}

#[test]
fn check_predicts_and_changes_nothing() {
    let fleet = Fleet::start("checkmode", 1);
    fleet.write("site.yml", PLAYBOOK);
    let inv = fleet.inventory();
    let inv = inv.to_str().expect("path");
    let before = fleet.exec_ok(0, "find /srv /etc/site.conf 2>/dev/null | sort; true");

    let check = fleet.orch(&["run", "site.yml", "-i", inv, "--check", "--diff"]);
    check.assert_code(0);
    assert_eq!(
        fleet.exec_ok(0, "find /srv /etc/site.conf 2>/dev/null | sort; true"),
        before,
        "check mode changed the host"
    );
    assert!(
        check.stdout.contains("+<h1>hi</h1>"),
        "diff of the new file expected\n{check}"
    );
    assert!(
        check.stdout.contains("+enabled=1"),
        "diff of the line expected\n{check}"
    );
    let predicted = changed_tasks(&check.stdout);
    assert_eq!(
        predicted,
        vec!["dir", "index", "setting", "only once"],
        "{check}"
    );

    let real = fleet.orch(&["run", "site.yml", "-i", inv]);
    real.assert_code(0);
    let changed = changed_tasks(&real.stdout);
    assert_eq!(
        changed, predicted,
        "the real run must change what check predicted\n{real}"
    );
    assert_eq!(
        fleet.exec_ok(0, "cat /srv/site/index.html"),
        "<h1>hi</h1>\n"
    );
}

/// Ansible #31113: what check mode cannot run registers nothing useful; tasks that depend on it.
const DEPENDENTS: &str = r#"
- hosts: h1
  gather_facts: no
  tasks:
    - name: read the version
      command: cat /etc/debian_version
      register: version
    - name: remember it
      set_fact:
        debian_version: "{{ version.stdout }}"
        version_lines: "{{ version.stdout_lines | length }}"
    - name: show it
      debug: {msg: "{{ debian_version }}"}
    - name: write it
      copy: {content: "{{ debian_version }}\n", dest: /tmp/version.txt}
    - name: only if it ran
      copy: {content: "ran\n", dest: /tmp/ran.txt}
      when: version.rc == 0
- hosts: h2
  gather_facts: no
  vars:
    peer_version: "{{ hostvars['h1'].debian_version }}"
  tasks:
    - name: write the peer's
      copy: {content: "{{ peer_version }}\n", dest: /tmp/peer.txt}
    - name: unrelated
      copy: {content: "plain\n", dest: /tmp/plain.txt}
"#;

/// The line each host printed for `task`, as `host: line`.
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
    out
}

#[test]
fn check_mode_skips_what_depends_on_results_only_a_real_run_gives() {
    let fleet = Fleet::start("checkdeps", 2);
    fleet.write("site.yml", DEPENDENTS);
    let inv = fleet.inventory();
    let inv = inv.to_str().expect("path");
    let files = "ls /tmp/version.txt /tmp/ran.txt /tmp/peer.txt /tmp/plain.txt 2>/dev/null; true";

    let check = fleet.orch(&["run", "site.yml", "-i", inv, "--check", "--diff"]);
    check.assert_code(0);
    let reason =
        |names: &str| format!("(check mode: depends on results only a real run gives: {names})");
    for (task, host, names) in [
        ("remember it", "h1", "version"),
        ("show it", "h1", "debian_version"),
        ("write it", "h1", "debian_version"),
        ("only if it ran", "h1", "version"),
        // Across hosts: through a play var reading hostvars.
        ("write the peer's", "h2", "debian_version"),
    ] {
        let lines = result_lines(&check.stdout, task);
        let expected = format!("skipping: [{host}] => {}", reason(names));
        assert_eq!(lines, vec![expected], "{task}\n{check}");
    }
    assert_eq!(
        result_lines(&check.stdout, "unrelated"),
        vec!["changed: [h2]"],
        "{check}"
    );
    assert_eq!(check.recap("h1").failed, 0);
    assert_eq!(check.recap("h1").skipped, 5, "{check}");
    assert_eq!(check.recap("h2").skipped, 1, "{check}");
    for h in 0..2 {
        assert_eq!(fleet.exec_ok(h, files), "", "check mode changed h{}", h + 1);
    }

    // The JSON events say the same.
    let json = fleet.orch(&["run", "site.yml", "-i", inv, "--check", "--output", "json"]);
    json.assert_code(0);
    let event = json
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "host_result" && e["task"] == "write the peer's")
        .unwrap_or_else(|| panic!("no result for the peer's file\n{json}"));
    assert_eq!(event["status"], "skipped");
    assert_eq!(
        event["result"]["unknown_in_check"],
        serde_json::json!(["debian_version"])
    );
    assert_eq!(
        event["reason"],
        reason("debian_version").trim_matches(['(', ')'])
    );

    // The same playbook for real: every task runs, with the real values.
    let real = fleet.orch(&["run", "site.yml", "-i", inv]);
    real.assert_code(0);
    let version = fleet.exec_ok(0, "cat /etc/debian_version");
    assert_eq!(fleet.exec_ok(0, "cat /tmp/version.txt"), version);
    assert_eq!(fleet.exec_ok(1, "cat /tmp/peer.txt"), version);
    assert_eq!(fleet.exec_ok(0, "cat /tmp/ran.txt"), "ran\n");
    assert_eq!(real.recap("h1").skipped, 0, "{real}");
    assert!(!real.stdout.contains("check mode:"), "{real}");
}

#[test]
fn check_mode_still_fails_genuine_undefined_variables() {
    let fleet = Fleet::start("checktypo", 1);
    // No unknown results at all; then unknown results that the failing template does not need
    // (a guarded lookup of one comes first).
    fleet.write(
        "plain.yml",
        r#"
- hosts: targets
  gather_facts: no
  tasks:
    - set_fact: {settings: {port: 80}}
    - name: typo
      debug: {msg: "{{ settings.prot }}"}
"#,
    );
    fleet.write(
        "mixed.yml",
        r#"
- hosts: targets
  gather_facts: no
  tasks:
    - set_fact: {settings: {port: 80}}
    - command: cat /etc/hostname
      register: name
    - name: typo
      debug: {msg: "{{ name.stdout | default('?') }}:{{ settings.prot }}"}
"#,
    );
    let inv = fleet.inventory();
    let inv = inv.to_str().expect("path");
    for playbook in ["plain.yml", "mixed.yml"] {
        let check = fleet.orch(&["run", playbook, "-i", inv, "--check"]);
        check.assert_code(2);
        let lines = result_lines(&check.stdout, "typo");
        assert!(
            lines.len() == 1 && lines[0].starts_with("fatal: [h1]: FAILED!"),
            "{playbook}: {lines:?}\n{check}"
        );
        assert!(check.stdout.contains("settings.prot"), "{check}");
        assert!(!check.stdout.contains("check mode: depends"), "{check}");
    }
}

/// A register name reused by a task that check mode does run makes the value known again, for
/// that host only: its dependents run instead of being skipped.
#[test]
fn a_reused_register_is_known_again_once_a_task_runs() {
    let fleet = Fleet::start("check-reuse", 2);
    fleet.write(
        "site.yml",
        r#"
- hosts: targets
  gather_facts: no
  tasks:
    - name: cannot run in check mode
      command: "true"
      register: out
- hosts: h1
  gather_facts: no
  tasks:
    - name: runs in check mode too
      command: echo known
      check_mode: false
      register: out
- hosts: targets
  gather_facts: no
  tasks:
    - name: uses out
      copy:
        content: "{{ out.stdout }}\n"
        dest: /tmp/out
"#,
    );
    let run = fleet.orch(&["run", "-i", "inventory.ini", "site.yml", "--check"]);
    run.assert_code(0);
    let lines = result_lines(&run.stdout, "uses out");
    assert_eq!(
        lines,
        vec![
            "skipping: [h2] => (check mode: depends on results only a real run gives: out)"
                .to_string(),
            "changed: [h1]".to_string(),
        ],
        "{run}"
    );
    assert_ne!(
        fleet.exec(0, "test -e /tmp/out").code,
        0,
        "check mode wrote"
    );
}
