//! Issue 5 acceptance 5: two concurrent `orch run` on the same hosts both complete and their
//! remote steps do not interleave (timestamps written on the host); a held lock times out naming its
//! holder. The lock is opt-in (ORCH_LOCK_TIMEOUT); hosts are locked in sorted order before the first
//! task (executor::Runner::prelock), so two runs over several hosts cannot deadlock.

mod support;

use support::Fleet;

const PLAYBOOK: &str = r#"
- hosts: targets
  gather_facts: no
  tasks:
    - name: step one
      shell: echo "{{ run_id }} one $(date +%s.%N)" >> /tmp/trace; sleep 1
    - name: step two
      shell: echo "{{ run_id }} two $(date +%s.%N)" >> /tmp/trace; sleep 1
    - name: step three
      shell: echo "{{ run_id }} three $(date +%s.%N)" >> /tmp/trace
"#;

#[test]
fn concurrent_runs_take_turns_on_each_host() {
    let fleet = Fleet::start("runlock", 2);
    fleet.write("site.yml", PLAYBOOK);
    let inv = fleet.inventory();
    let inv = inv.to_str().expect("path");
    let a = fleet
        .orch_cmd(&["run", "site.yml", "-i", inv, "-e", "run_id=A"])
        .env("ORCH_LOCK_TIMEOUT", "60")
        .spawn();
    let b = fleet
        .orch_cmd(&["run", "site.yml", "-i", inv, "-e", "run_id=B"])
        .env("ORCH_LOCK_TIMEOUT", "60")
        .spawn();
    let (a, b) = (a.wait(), b.wait());
    a.assert_code(0);
    b.assert_code(0);
    for host in 0..2 {
        let trace = fleet.exec_ok(host, "cat /tmp/trace");
        let lines: Vec<(&str, f64)> = trace
            .lines()
            .map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                (words[0], words[2].parse::<f64>().expect("timestamp"))
            })
            .collect();
        assert_eq!(lines.len(), 6, "{trace}");
        let mut sorted = lines.clone();
        sorted.sort_by(|x, y| x.1.total_cmp(&y.1));
        let order: Vec<&str> = sorted.iter().map(|l| l.0).collect();
        assert!(
            order == ["A", "A", "A", "B", "B", "B"] || order == ["B", "B", "B", "A", "A", "A"],
            "runs interleaved on host {host}:\n{trace}"
        );
    }
    // The lock is released with the session (the holder notices within its 1 s heartbeat).
    fleet.exec_ok(
        0,
        "for i in $(seq 50); do flock -n /run/lock/orch.lock true && exit 0; sleep 0.1; done; exit 1",
    );
}

#[test]
fn a_held_lock_times_out_naming_the_holder() {
    let fleet = Fleet::start("runlockbusy", 1);
    fleet.write("site.yml", PLAYBOOK);
    let inv = fleet.inventory();
    let inv = inv.to_str().expect("path");
    fleet.exec_ok(
        0,
        "mkdir -p /run/lock; echo 'orch pid 4242 on ctl9, started yesterday' > /run/lock/orch.holder; \
         (flock /run/lock/orch.lock sleep 15 </dev/null >/dev/null 2>&1 &) ; sleep 0.5",
    );
    let out = fleet
        .orch_cmd(&["run", "site.yml", "-i", inv, "-e", "run_id=C"])
        .env("ORCH_LOCK_TIMEOUT", "2")
        .run();
    // The busy host cannot be used: reported unreachable, as a host that cannot be connected to.
    out.assert_code(4);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("busy with another orch run") && all.contains("orch pid 4242 on ctl9"),
        "{out}"
    );
    assert!(fleet.exec(0, "test -e /tmp/trace").code != 0, "a step ran");
}

/// The prelock opens the sessions the plays' tasks use: a play with `connection: local` never
/// logs in to its hosts, and the other play's host is logged in to once.
#[test]
fn the_prelock_follows_the_plays_connection_keywords() {
    let fleet = Fleet::start("runlockconn", 2);
    fleet.write(
        "site.yml",
        r#"
- hosts: h1
  gather_facts: no
  connection: local
  tasks:
    - command: "true"
- hosts: h2
  gather_facts: no
  tasks:
    - command: "true"
"#,
    );
    let inv = fleet.inventory();
    let inv = inv.to_str().expect("path");
    let before = (fleet.auth_count(0), fleet.auth_count(1));
    fleet
        .orch_cmd(&["run", "site.yml", "-i", inv])
        .env("ORCH_LOCK_TIMEOUT", "10")
        .run()
        .assert_code(0);
    assert_eq!(fleet.auth_count(0), before.0, "h1 runs on the controller");
    assert_eq!(fleet.auth_count(1), before.1 + 1, "one login to h2");
}
