//! `systemd_service` / `systemd` / `service` against REAL systemd: the hosts boot systemd as PID 1
//! (`Image::Systemd`, sshd runs as a unit), and every end state is read with `docker exec systemctl`.
//! The SysV side of `service` runs on the plain sshd host with a real init script, `service` and
//! `update-rc.d`.

mod support;

use support::{Fleet, Image, RunOutput};

/// A long-running unit whose reloads leave a trace. It lives in /usr/local/lib/systemd/system (a unit
/// path below /etc) because systemd refuses to mask a unit whose file is in /etc/systemd/system.
const UNIT: &str = "[Unit]
Description=orch test service

[Service]
ExecStart=/bin/sleep infinity
ExecReload=/bin/sh -c 'echo reload >> /run/orch-demo.reloads'

[Install]
WantedBy=multi-user.target
";

const UNIT_PATH: &str = "/usr/local/lib/systemd/system/orch-demo.service";

fn play(tasks: &str) -> String {
    format!("- hosts: targets\n  gather_facts: no\n  tasks:\n{tasks}")
}

fn orch(fleet: &Fleet, playbook: &str, yaml: &str, extra: &[&str]) -> RunOutput {
    fleet.write(playbook, yaml);
    let inventory = fleet.inventory();
    let mut args = vec![
        "run",
        playbook,
        "-i",
        inventory.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    fleet.orch(&args)
}

#[track_caller]
fn assert_changed(run: &RunOutput, fleet: &Fleet, changed: u32) {
    run.assert_code(0);
    for host in fleet.hosts() {
        let recap = run.recap(&host.name);
        assert_eq!(recap.changed, changed, "changed on {}\n{run}", host.name);
        assert_eq!(recap.failed, 0, "failed on {}\n{run}", host.name);
    }
}

/// `systemctl is-active` / `is-enabled` on host `i`, seen from outside orch.
fn unit_state(fleet: &Fleet, i: usize, unit: &str) -> (String, String) {
    let active = fleet.exec(i, &format!("systemctl is-active {unit}")).stdout;
    let enabled = fleet
        .exec(i, &format!("systemctl is-enabled {unit}"))
        .stdout;
    (active.trim().to_string(), enabled.trim().to_string())
}

fn main_pid(fleet: &Fleet, i: usize) -> String {
    fleet
        .exec_ok(i, "systemctl show -p MainPID --value orch-demo")
        .trim()
        .to_string()
}

#[test]
fn systemd_unit_lifecycle_on_real_systemd() {
    let fleet = Fleet::start_image("systemd-lifecycle", 2, Image::Systemd);
    for i in 0..2 {
        assert_eq!(
            fleet.exec_ok(i, "cat /proc/1/comm").trim(),
            "systemd",
            "the host must run systemd as PID 1"
        );
    }
    fleet.write("files/orch-demo.service", UNIT);

    // The unit file arrives with copy; daemon_reload alone is not a change (as in Ansible).
    let install = play(&format!(
        "    - file: {{path: /usr/local/lib/systemd/system, state: directory}}
    - copy: {{src: orch-demo.service, dest: {UNIT_PATH}, mode: '0644'}}
    - systemd: {{daemon_reload: yes}}
      register: reload
    - assert: {{that: [not reload.changed]}}
"
    ));
    assert_changed(&orch(&fleet, "install.yml", &install, &[]), &fleet, 2);
    for i in 0..2 {
        assert_eq!(
            unit_state(&fleet, i, "orch-demo"),
            ("inactive".into(), "disabled".into())
        );
    }

    // started + enabled: check mode predicts one change and changes nothing.
    let start = play(
        "    - name: start and enable
      ansible.builtin.systemd_service: {name: orch-demo, state: started, enabled: true}
      register: r
    - assert:
        that:
          - r.changed
          - r.name == 'orch-demo'
          - r.state == 'started'
          - r.enabled
          - r.status.LoadState == 'loaded'
          - r.status.ActiveState == 'inactive'
          - r.status.UnitFileState == 'disabled'
",
    );
    let check = orch(&fleet, "start.yml", &start, &["--check"]);
    assert_changed(&check, &fleet, 1);
    for i in 0..2 {
        assert_eq!(
            unit_state(&fleet, i, "orch-demo"),
            ("inactive".into(), "disabled".into()),
            "check mode changed the host\n{check}"
        );
    }
    assert_changed(&orch(&fleet, "start.yml", &start, &[]), &fleet, 1);
    for i in 0..2 {
        assert_eq!(
            unit_state(&fleet, i, "orch-demo"),
            ("active".into(), "enabled".into())
        );
    }

    // Second run and check mode: nothing to do.
    let again = play(
        "    - systemd: {name: orch-demo, state: started, enabled: yes}
      register: r
    - assert: {that: [not r.changed, r.status.ActiveState == 'active', r.status.UnitFileState == 'enabled']}
",
    );
    assert_changed(&orch(&fleet, "again.yml", &again, &[]), &fleet, 0);
    assert_changed(&orch(&fleet, "again.yml", &again, &["--check"]), &fleet, 0);

    // restarted always changes and gives a new main process; reloaded always changes and runs ExecReload.
    let pid_before = main_pid(&fleet, 0);
    let bounce = play(
        "    - systemd: {name: orch-demo, state: restarted}
    - systemd: {name: orch-demo, state: reloaded}
      register: r
    - assert: {that: [r.changed, r.state == 'started']}
",
    );
    assert_changed(&orch(&fleet, "bounce.yml", &bounce, &[]), &fleet, 2);
    let pid_after = main_pid(&fleet, 0);
    assert_ne!(pid_before, pid_after, "restart must start a new process");
    assert_ne!(pid_after, "0");
    assert_eq!(fleet.exec_ok(0, "cat /run/orch-demo.reloads"), "reload\n");

    // The generic service module dispatches to systemd (from the ansible_service_mgr fact here) and
    // warns about SysV-only arguments.
    let service = "- hosts: targets
  gather_facts: yes
  tasks:
    - assert: {that: [ansible_service_mgr == 'systemd']}
    - service: {name: orch-demo, state: stopped, enabled: no, pattern: sleep}
      register: r
    - assert: {that: [r.changed, r.status.ActiveState == 'active', r.enabled == false, r.state == 'stopped']}
    - assert:
        that: r.warnings == ['Ignoring \"pattern\" as it is not used in \"systemd\"']
";
    assert_changed(&orch(&fleet, "service.yml", service, &[]), &fleet, 1);
    for i in 0..2 {
        assert_eq!(
            unit_state(&fleet, i, "orch-demo"),
            ("inactive".into(), "disabled".into())
        );
    }
    let service_again = service.replace("r.changed,", "not r.changed,").replace(
        "r.status.ActiveState == 'active'",
        "r.status.ActiveState == 'inactive'",
    );
    assert_changed(
        &orch(&fleet, "service2.yml", &service_again, &[]),
        &fleet,
        0,
    );

    // masked: idempotent; a masked unit cannot start (Ansible's message); unmasking works.
    let mask = play(
        "    - systemd: {name: orch-demo, masked: yes}
",
    );
    assert_changed(&orch(&fleet, "mask.yml", &mask, &[]), &fleet, 1);
    assert_eq!(unit_state(&fleet, 0, "orch-demo").1, "masked");
    assert_changed(&orch(&fleet, "mask.yml", &mask, &[]), &fleet, 0);
    let start_masked = orch(
        &fleet,
        "start-masked.yml",
        &play(
            "    - systemd: {name: orch-demo, state: started}
",
        ),
        &[],
    );
    start_masked.assert_code(2);
    start_masked.assert_stdout_contains("Unable to start service orch-demo:");
    start_masked.assert_stdout_contains("masked");
    let unmask = play(
        "    - systemd: {name: orch-demo, masked: no, enabled: yes, state: started}
",
    );
    assert_changed(&orch(&fleet, "unmask.yml", &unmask, &[]), &fleet, 1);
    for i in 0..2 {
        assert_eq!(
            unit_state(&fleet, i, "orch-demo"),
            ("active".into(), "enabled".into())
        );
    }

    // An unknown unit fails with Ansible's message.
    let unknown = orch(
        &fleet,
        "unknown.yml",
        &play(
            "    - systemd: {name: orch-nosuch, state: started}
",
        ),
        &[],
    );
    unknown.assert_code(2);
    unknown.assert_stdout_contains("Could not find the requested service orch-nosuch: host");
}

/// A SysV init script driven by start-stop-daemon, with LSB headers for update-rc.d.
const INIT_SCRIPT: &str = r#"#!/bin/sh
### BEGIN INIT INFO
# Provides:          orch-sysv
# Required-Start:
# Required-Stop:
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: orch test daemon
### END INIT INFO
pidfile=/run/orch-sysv.pid
case "$1" in
  start) echo start >> /run/orch-sysv.log
         start-stop-daemon --start --quiet --background --make-pidfile --pidfile $pidfile --exec /bin/sleep -- 100000 ;;
  stop)  echo stop >> /run/orch-sysv.log
         start-stop-daemon --stop --quiet --oknodo --retry 5 --pidfile $pidfile --exec /bin/sleep; rm -f $pidfile ;;
  restart) "$0" stop; "$0" start ;;
  status) if start-stop-daemon --status --pidfile $pidfile --exec /bin/sleep; then echo "orch-sysv is running"; exit 0
          else echo "orch-sysv is not running"; exit 3; fi ;;
  *) echo "Usage: $0 {start|stop|restart|status}"; exit 2 ;;
esac
"#;

#[test]
fn service_module_drives_a_sysv_init_script_without_systemd() {
    let fleet = Fleet::start("service-sysv", 1);
    assert_ne!(fleet.exec_ok(0, "cat /proc/1/comm").trim(), "systemd");
    fleet.write("files/orch-sysv", INIT_SCRIPT);
    let install = play(
        "    - copy: {src: orch-sysv, dest: /etc/init.d/orch-sysv, mode: '0755'}
",
    );
    assert_changed(&orch(&fleet, "install.yml", &install, &[]), &fleet, 1);
    let running = |fleet: &Fleet| {
        fleet
            .exec(
                0,
                "start-stop-daemon --status --pidfile /run/orch-sysv.pid --exec /bin/sleep",
            )
            .code
            == 0
    };
    let enabled = |fleet: &Fleet| fleet.exec(0, "ls /etc/rc2.d/S*orch-sysv").code == 0;

    let start = play(
        "    - service: {name: orch-sysv, state: started, enabled: yes}
      register: r
    - assert: {that: [r.changed, r.state == 'started', r.enabled]}
",
    );
    let check = orch(&fleet, "start.yml", &start, &["--check"]);
    assert_changed(&check, &fleet, 1);
    assert!(
        !running(&fleet) && !enabled(&fleet),
        "check mode changed the host\n{check}"
    );
    assert_changed(&orch(&fleet, "start.yml", &start, &[]), &fleet, 1);
    assert!(running(&fleet), "the daemon runs");
    assert!(enabled(&fleet), "rc2.d start link exists");

    let again = play(
        "    - service: {name: orch-sysv, state: started, enabled: yes}
",
    );
    assert_changed(&orch(&fleet, "again.yml", &again, &[]), &fleet, 0);

    // restarted always changes (stop, then start); pattern finds the process with ps.
    let restart = play(
        "    - service: {name: orch-sysv, state: restarted, sleep: 1}
    - service: {name: orch-sysv, state: started, pattern: 'sleep 100000'}
      register: r
    - assert: {that: [not r.changed]}
",
    );
    assert_changed(&orch(&fleet, "restart.yml", &restart, &[]), &fleet, 1);
    assert_eq!(
        fleet.exec_ok(0, "cat /run/orch-sysv.log"),
        "start\nstop\nstart\n"
    );

    let stop = play(
        "    - service: {name: orch-sysv, state: stopped, enabled: no}
",
    );
    assert_changed(&orch(&fleet, "stop.yml", &stop, &[]), &fleet, 1);
    assert!(!running(&fleet), "the daemon stopped");
    assert!(!enabled(&fleet), "no rc2.d start link");
    assert_changed(&orch(&fleet, "stop.yml", &stop, &[]), &fleet, 0);

    let unknown = orch(
        &fleet,
        "unknown.yml",
        &play(
            "    - service: {name: orch-nosuch, state: started}
",
        ),
        &[],
    );
    unknown.assert_code(2);
    unknown.assert_stdout_contains("Could not find the requested service orch-nosuch: host");
}
