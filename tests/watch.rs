//! Issue 5 acceptance 4: `orch watch --every 5s --fix` keeps going while a host is down, reports it,
//! repairs it once it is back, and SIGTERM ends the watch after the cycle in progress.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::Fleet;

const PLAYBOOK: &str = r#"
- hosts: targets
  gather_facts: no
  tasks:
    - name: app config
      copy: {content: "port=80\n", dest: /etc/app.conf}
"#;

/// The watcher process; killed if the test fails before it exits.
struct Watcher {
    child: Child,
    log: PathBuf,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Watcher {
    fn start(fleet: &Fleet, inv: &str) -> Watcher {
        let home = fleet.home();
        let log = fleet.dir().join("watch.log");
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_orch"))
            .args(["watch", "site.yml", "-i", inv, "--every", "5s", "--fix"])
            .args(["--timeout", "3"])
            .current_dir(fleet.dir())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("XDG_STATE_HOME", home.join(".local/state"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn orch watch");
        Watcher { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (at most 60 s).
    #[track_caller]
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            if Instant::now() > deadline {
                panic!("watch log never showed {needle:?}:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn config(fleet: &Fleet, host: usize) -> String {
    fleet.exec_ok(host, "cat /etc/app.conf 2>/dev/null; true")
}

fn count_starts(log: &str) -> usize {
    log.lines().filter(|l| l.ends_with(" starting")).count()
}

#[test]
fn watch_survives_a_stopped_host_and_stops_on_sigterm() {
    let fleet = Fleet::start("watch", 2);
    fleet.write("site.yml", PLAYBOOK);
    let inv = fleet.inventory();
    let inv = inv.to_str().expect("path");
    let watcher = Watcher::start(&fleet, inv);

    watcher.wait_for("cycle 1 done: no drift");
    assert_eq!(config(&fleet, 0), "port=80\n");
    assert_eq!(config(&fleet, 1), "port=80\n");

    // Drift on both hosts, then host 1 goes away before the next cycle.
    fleet.exec_ok(1, "echo port=1 > /etc/app.conf");
    fleet.stop(1);
    fleet.exec_ok(0, "echo port=0 > /etc/app.conf");
    let log = watcher.wait_for("cycle 2 done");
    assert!(
        log.contains("cycle 2 done: some hosts unreachable (exit code 4)"),
        "{log}"
    );
    assert!(log.contains("UNREACHABLE"), "{log}");
    assert_eq!(
        config(&fleet, 0),
        "port=80\n",
        "reachable host not repaired"
    );
    let mut watcher = watcher;
    assert!(
        watcher.child.try_wait().expect("wait").is_none(),
        "watch ended:\n{}",
        watcher.log()
    );

    fleet.start_again(1);
    // The first cycle that starts after the host is back repairs it; SIGTERM arrives during it.
    let next = count_starts(&watcher.log()) + 1;
    watcher.wait_for(&format!("cycle {next} starting"));
    let pid = watcher.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = watcher.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "watch did not stop:\n{}",
            watcher.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = watcher.log();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        log.contains(&format!("cycle {next} done: no drift")),
        "{log}"
    );
    assert!(log.contains("SIGTERM received: stopping"), "{log}");
    assert!(
        !log.contains(&format!("cycle {} starting", next + 1)),
        "{log}"
    );
    assert_eq!(
        config(&fleet, 1),
        "port=80\n",
        "host 1 not repaired after it came back"
    );

    let history = fleet.orch(&["history"]);
    history.assert_code(0);
    let cycles = history
        .stdout
        .lines()
        .filter(|l| l.contains("watch-fix"))
        .count();
    assert_eq!(cycles, next, "{history}");
    assert!(
        history
            .stdout
            .lines()
            .any(|l| l.contains("watch-fix") && l.split_whitespace().nth(4) == Some("4")),
        "{history}"
    );
}
