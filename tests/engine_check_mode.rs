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
