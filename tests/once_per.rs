//! `once_per` (orch extension): a cluster-wide step runs once per cluster, on the first reachable
//! node, and every node of the cluster gets its result. Counted on the hosts' shared /etc/pve.

mod support;

use support::{Fleet, PveLayout};

const PLAYBOOK: &str = r#"
- hosts: targets
  gather_facts: yes
  tasks:
    - name: cluster-wide step
      shell: echo "{{ inventory_hostname }}" >> /etc/pve/once.log; echo ran
      register: step
      once_per: "{{ ansible_pve_cluster.id }}"
    - name: every node sees the result
      copy:
        content: "{{ step.stdout }} {{ ansible_pve_cluster.name | default('standalone', true) }}\n"
        dest: /root/seen
"#;

#[test]
fn once_per_cluster_runs_once_and_falls_back_to_the_next_node() {
    let fleet = Fleet::start_pve(
        "once-per",
        &PveLayout::new()
            .cluster("lab", 2)
            .cluster("prod", 2)
            .standalone(),
    );
    fleet.write("site.yml", PLAYBOOK);
    let inventory = fleet.inventory();
    let inv = inventory.to_str().expect("path");
    let out = fleet.orch(&["run", "site.yml", "-i", inv]);
    out.assert_code(0);
    assert_eq!(fleet.clusters().len(), 3);
    for cluster in fleet.clusters() {
        let first = cluster.hosts[0];
        let log = fleet.exec_ok(first, "cat /etc/pve/once.log");
        assert_eq!(
            log.lines().count(),
            1,
            "cluster {:?} ran the step {} times:\n{log}",
            cluster.name,
            log.lines().count()
        );
        assert_eq!(
            log.trim(),
            fleet.host(first).name,
            "the first node of the cluster runs it"
        );
        for &h in &cluster.hosts {
            let expected = format!(
                "ran {}\n",
                cluster.name.clone().unwrap_or_else(|| "standalone".into())
            );
            assert_eq!(fleet.exec_ok(h, "cat /root/seen"), expected);
        }
    }

    // The first node of "lab" is down: the step runs on its second node instead.
    let lab = fleet.clusters()[0].hosts.clone();
    fleet.exec_ok(lab[1], "rm -f /etc/pve/once.log");
    fleet.stop(lab[0]);
    let out = fleet.orch(&["run", "site.yml", "-i", inv]);
    out.assert_code(4);
    assert_eq!(
        fleet.exec_ok(lab[1], "cat /etc/pve/once.log").trim(),
        fleet.host(lab[1]).name,
        "{out}"
    );
}
