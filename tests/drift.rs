//! Issue 5 acceptance 3: drift on a converged fleet exits 0; a managed file edited on one host makes
//! `orch drift` exit 3 naming the host, task and diff; `--fix` repairs it; `orch history` shows the runs.

mod support;

use support::Fleet;

const PLAYBOOK: &str = r#"
- hosts: targets
  gather_facts: no
  tasks:
    - name: app config
      copy: {content: "port=80\nworkers=4\n", dest: /etc/app.conf, mode: "0644"}
    - name: app dir
      file: {path: /srv/app, state: directory}
"#;

#[test]
fn drift_detect_fix_and_history() {
    let fleet = Fleet::start("drift", 2);
    fleet.write("site.yml", PLAYBOOK);
    let inv = fleet.inventory();
    let inv = inv.to_str().expect("path");
    let edited = fleet.host(1).name.clone();
    let clean = fleet.host(0).name.clone();

    fleet.orch(&["run", "site.yml", "-i", inv]).assert_code(0);

    let converged = fleet.orch(&["drift", "site.yml", "-i", inv]);
    converged.assert_code(0).assert_stdout_contains("no drift");

    fleet.exec_ok(1, "sed -i s/port=80/port=8080/ /etc/app.conf");
    let drifted = fleet.orch(&["drift", "site.yml", "-i", inv]);
    drifted
        .assert_code(3)
        .assert_stdout_contains("DRIFT REPORT")
        .assert_stdout_contains(&format!("{edited}: 1 task(s) would change"))
        .assert_stdout_contains("  - app config")
        .assert_stdout_contains("-port=8080")
        .assert_stdout_contains("+port=80");
    assert!(
        !drifted.stdout.contains(&format!("{clean}: 1 task")),
        "the untouched host drifted?\n{drifted}"
    );
    // Drift checks change nothing.
    assert_eq!(
        fleet.exec_ok(1, "cat /etc/app.conf"),
        "port=8080\nworkers=4\n"
    );

    let json = fleet.orch(&["drift", "site.yml", "-i", inv, "--output", "json"]);
    json.assert_code(3);
    let report: serde_json::Value = json
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "drift_report")
        .expect("drift_report line");
    assert_eq!(report["drifted"], true);
    assert_eq!(report["hosts"][&edited][0]["task"], "app config");
    assert!(report["hosts"].get(&clean).is_none(), "{report}");

    let fixed = fleet.orch(&["drift", "--fix", "site.yml", "-i", inv]);
    fixed
        .assert_code(0)
        .assert_stdout_contains("DRIFT FIXED")
        .assert_stdout_contains(&format!("{edited}: 1 task(s) fixed"));
    assert_eq!(
        fleet.exec_ok(1, "cat /etc/app.conf"),
        "port=80\nworkers=4\n"
    );
    fleet.orch(&["drift", "site.yml", "-i", inv]).assert_code(0);

    let history = fleet.orch(&["history"]);
    history.assert_code(0);
    let kinds: Vec<&str> = history
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(
        kinds,
        ["run", "drift", "drift", "drift", "drift-fix", "drift"],
        "{history}"
    );
    let codes: Vec<&str> = history
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(4))
        .collect();
    assert_eq!(codes, ["0", "0", "3", "3", "0", "0"], "{history}");

    let show = fleet.orch(&["history", "show", "3"]);
    show.assert_code(0)
        .assert_stdout_contains("exit code: 3")
        .assert_stdout_contains(&format!("{edited}: app config"))
        .assert_stdout_contains("+port=80");
    fleet.orch(&["history", "show", "99"]).assert_code(5);
}

#[test]
fn corrupt_history_is_reported_not_replaced() {
    let fleet = Fleet::start("driftcorrupt", 1);
    fleet.write("site.yml", PLAYBOOK);
    let inv = fleet.inventory();
    let inv = inv.to_str().expect("path");
    let state = fleet.dir().join("state");
    std::fs::create_dir_all(&state).expect("mkdir");
    std::fs::write(state.join("history.sqlite"), "not a database ".repeat(200)).expect("write");
    let state = state.to_str().expect("path");
    let out = fleet.orch(&["drift", "site.yml", "-i", inv, "--state-dir", state]);
    out.assert_code(1).assert_stderr_contains("is corrupt");
    // Nothing ran: the store is checked before any host is contacted.
    assert!(fleet.exec(0, "test -e /etc/app.conf").code != 0);
    assert!(
        std::fs::read_to_string(fleet.dir().join("state/history.sqlite"))
            .expect("kept")
            .starts_with("not a database")
    );
}
