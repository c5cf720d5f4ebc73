//! Acceptance 2: an unreachable host does not stop the others; a host killed mid-run neither, and a
//! rerun converges.

mod support;

use support::Fleet;

const PLAYBOOK: &str = r#"
- hosts: targets
  gather_facts: no
  tasks:
    - name: first file
      copy: {content: "one\n", dest: /tmp/one}
    - name: slow step
      command: sleep 3
      changed_when: false
    - name: second file
      copy: {content: "two\n", dest: /tmp/two}
"#;

#[test]
fn stopped_host_is_unreachable_and_others_complete() {
    let fleet = Fleet::start("unreach", 5);
    fleet.write("site.yml", PLAYBOOK);
    fleet.stop(2);
    let inv = fleet.inventory();
    let out = fleet.orch(&["run", "site.yml", "-i", inv.to_str().expect("path")]);
    out.assert_code(4);
    assert!(out.stdout.contains("fatal: [h3]: UNREACHABLE!"), "{out}");
    assert_eq!(out.recap("h3").unreachable, 1);
    for (i, h) in fleet.hosts().iter().enumerate() {
        if i == 2 {
            continue;
        }
        assert_eq!(out.recap(&h.name).failed, 0, "{out}");
        assert_eq!(fleet.exec_ok(i, "cat /tmp/one /tmp/two"), "one\ntwo\n");
    }
}

#[test]
fn host_killed_mid_run_then_rerun_converges() {
    let fleet = Fleet::start("killed", 3);
    fleet.write("site.yml", PLAYBOOK);
    let inv = fleet.inventory();
    let inv = inv.to_str().expect("path");
    let child = fleet.orch_cmd(&["run", "site.yml", "-i", inv]).spawn();
    // Kill h2 while everyone sleeps in the slow step.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    fleet.kill(1);
    let out = child.wait();
    assert_eq!(out.code, 4, "{out}");
    assert_eq!(out.recap("h2").unreachable, 1, "{out}");
    for i in [0, 2] {
        assert_eq!(fleet.exec_ok(i, "cat /tmp/one /tmp/two"), "one\ntwo\n");
    }
    fleet.start_again(1);
    let rerun = fleet.orch(&["run", "site.yml", "-i", inv]);
    rerun.assert_code(0);
    assert_eq!(fleet.exec_ok(1, "cat /tmp/one /tmp/two"), "one\ntwo\n");
    assert_eq!(rerun.recap("h1").changed, 0, "{rerun}");
}
