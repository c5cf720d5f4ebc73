//! `batch_by` (orch extension): a rollout one cluster at a time; with max_fail_percentage 0 a failing
//! cluster stops the rollout before the next cluster is touched. Verified on the hosts.

mod support;

use support::{Fleet, PveLayout};

const PLAYBOOK: &str = r#"
- hosts: targets
  batch_by: "{{ ansible_pve_cluster.id }}"
  max_fail_percentage: 0
  tasks:
    - name: first step
      copy: {content: "{{ ansible_play_batch | sort | join(',') }}\n", dest: /root/step1}
    - name: fails on one node of the second cluster
      command: /bin/false
      when: ansible_pve_cluster.name == 'b' and inventory_hostname == ansible_play_batch[0]
    - name: last step
      copy: {content: "done\n", dest: /root/step2}
"#;

#[test]
fn rollout_stops_at_the_failing_cluster() {
    let fleet = Fleet::start_pve(
        "batch-by",
        &PveLayout::new()
            .cluster("a", 2)
            .cluster("b", 2)
            .cluster("c", 2),
    );
    fleet.write("site.yml", PLAYBOOK);
    let inventory = fleet.inventory();
    let out = fleet.orch(&["run", "site.yml", "-i", inventory.to_str().expect("path")]);
    out.assert_code(2);
    let clusters = fleet.clusters().to_vec();
    let names = |c: &support::PveCluster| {
        let mut n: Vec<String> = c
            .hosts
            .iter()
            .map(|&h| fleet.host(h).name.clone())
            .collect();
        n.sort();
        n.join(",")
    };
    // Cluster a: one batch of its own, completed.
    for &h in &clusters[0].hosts {
        assert_eq!(
            fleet.exec_ok(h, "cat /root/step1"),
            format!("{}\n", names(&clusters[0])),
            "{out}"
        );
        assert_eq!(fleet.exec_ok(h, "cat /root/step2"), "done\n");
    }
    // Cluster b: its batch ran the first step, then stopped at the failure.
    for &h in &clusters[1].hosts {
        assert_eq!(
            fleet.exec_ok(h, "cat /root/step1"),
            format!("{}\n", names(&clusters[1]))
        );
        assert_ne!(
            fleet.exec(h, "test -e /root/step2").code,
            0,
            "cluster b went on after its failure\n{out}"
        );
    }
    // Cluster c: untouched.
    for &h in &clusters[2].hosts {
        assert_ne!(
            fleet.exec(h, "test -e /root/step1").code,
            0,
            "cluster c was touched\n{out}"
        );
    }
}
