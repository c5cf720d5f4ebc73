//! Acceptance 7: serial batches with max_fail_percentage, run_once per batch, handlers once per batch.

mod support;

use support::Fleet;

#[test]
fn serial_list_with_max_fail_percentage_stops_as_ansible() {
    // 5 hosts, serial [1, "50%"] → batches of 1, 2, 2. h3 fails in batch 2: 1/2 = 50% is not > 50%,
    // so batch 2 completes; h4 and h5 run in batch 3 where h5 fails: 50% again, not > 50%.
    // With max_fail_percentage 49, batch 2 stops the play and batch 3 never starts.
    let fleet = Fleet::start("serial", 5);
    let playbook = |pct: u32| {
        format!(
            r#"
- hosts: targets
  gather_facts: no
  serial: [1, "50%"]
  max_fail_percentage: {pct}
  tasks:
    - name: mark the batch
      shell: echo "{{{{ ansible_play_batch | join(',') }}}}" > /tmp/batch
      notify: count handler
    - name: once per batch
      shell: echo once >> /tmp/once
      run_once: true
    - name: fail on some
      command: /bin/false
      when: inventory_hostname in ['h3', 'h5']
    - name: after the failure
      copy: {{content: "done\n", dest: /tmp/after}}
  handlers:
    - name: count handler
      shell: echo handled >> /tmp/handled
"#
        )
    };
    let inv = fleet.inventory();
    let inv = inv.to_str().expect("path");
    fleet.write("site50.yml", &playbook(50));
    let out = fleet.orch(&["run", "site50.yml", "-i", inv]);
    out.assert_code(2);
    let batch_of = |i: usize| fleet.exec_ok(i, "cat /tmp/batch").trim().to_string();
    assert_eq!(batch_of(0), "h1");
    assert_eq!(batch_of(1), "h2,h3");
    assert_eq!(batch_of(3), "h4,h5");
    // run_once: the first host of each batch only.
    assert_eq!(fleet.exec_ok(0, "cat /tmp/once"), "once\n");
    assert_eq!(fleet.exec_ok(1, "cat /tmp/once"), "once\n");
    assert_eq!(fleet.exec_ok(3, "cat /tmp/once"), "once\n");
    assert_ne!(
        fleet.exec(2, "cat /tmp/once").code,
        0,
        "run_once ran on a second host"
    );
    // Handlers: once per host, at the end of its batch, not for failed hosts.
    for i in [0, 1, 3] {
        assert_eq!(fleet.exec_ok(i, "cat /tmp/handled"), "handled\n");
        fleet.exec_ok(i, "test -f /tmp/after");
    }
    for i in [2, 4] {
        assert_ne!(
            fleet.exec(i, "test -f /tmp/handled").code,
            0,
            "handler ran on a failed host"
        );
    }

    // Reset and rerun with 49%: batch 2 exceeds it, batch 3 is never started.
    for i in 0..5 {
        fleet.exec_ok(i, "rm -f /tmp/batch /tmp/once /tmp/handled /tmp/after");
    }
    fleet.write("site49.yml", &playbook(49));
    let out = fleet.orch(&["run", "site49.yml", "-i", inv]);
    out.assert_code(2);
    assert!(out.stdout.contains("NO MORE HOSTS LEFT"), "{out}");
    assert_eq!(batch_of(1), "h2,h3");
    for i in [3, 4] {
        assert_ne!(
            fleet.exec(i, "test -f /tmp/batch").code,
            0,
            "batch 3 must not start"
        );
    }
    // Batch 2 was aborted after the failing task: h2 did not get to the next task.
    assert_ne!(fleet.exec(1, "test -f /tmp/after").code, 0);
}
