//! Acceptance 8: one SSH connection per host for the whole run, counted on the hosts.

mod support;

use support::Fleet;

#[test]
fn ten_tasks_on_ten_hosts_authenticate_ten_times() {
    let fleet = Fleet::start("conns", 10);
    let mut playbook = String::from("- hosts: targets\n  gather_facts: yes\n  tasks:\n");
    for i in 0..10 {
        playbook.push_str(&format!(
            "    - copy: {{content: \"{i}\\n\", dest: /tmp/f{i}}}\n"
        ));
    }
    fleet.write("site.yml", &playbook);
    let before: Vec<usize> = (0..10).map(|i| fleet.auth_count(i)).collect();
    let inv = fleet.inventory();
    let out = fleet.orch(&["run", "site.yml", "-i", inv.to_str().expect("path")]);
    out.assert_code(0);
    let after: Vec<usize> = (0..10).map(|i| fleet.auth_count(i)).collect();
    let total: usize = after.iter().zip(&before).map(|(a, b)| a - b).sum();
    assert_eq!(
        total, 10,
        "expected exactly one authentication per host: before {before:?} after {after:?}"
    );
    for i in 0..10 {
        assert_eq!(fleet.exec_ok(i, "cat /tmp/f9"), "9\n");
    }
}
