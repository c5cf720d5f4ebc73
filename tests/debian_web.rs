//! get_url, uri, user and group on Debian container hosts. h1 is the target; h2 serves HTTP with
//! `python3 -m http.server` (from the test image) on the fleet's private network, so nothing
//! leaves the machine. End states are read with docker exec.

mod support;

use sha2::{Digest, Sha256};
use std::process::Command;
use std::time::{Duration, Instant};
use support::Fleet;

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Starts a detached process on host `index` (`docker exec -d`).
fn exec_detached(fleet: &Fleet, index: usize, cmd: &str) {
    let status = Command::new("docker")
        .args(["exec", "-d", &fleet.host(index).container, "sh", "-c", cmd])
        .status()
        .expect("docker exec -d");
    assert!(status.success(), "docker exec -d {cmd} failed");
}

/// Writes a file on host `index` through docker exec (base64 keeps any bytes intact).
fn put_file(fleet: &Fleet, index: usize, path: &str, data: &[u8]) {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    fleet.exec_ok(
        index,
        &format!("mkdir -p \"$(dirname {path})\" && echo {encoded} | base64 -d > {path}"),
    );
}

/// Waits until h2 answers on `port` (the target reaches it over the fleet network).
fn wait_for_server(fleet: &Fleet, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = format!("http://{}:{port}/", fleet.host(1).ip);
    while Instant::now() < deadline {
        if fleet.exec(0, &format!("curl -s -o /dev/null {url}")).code == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the test HTTP server on h2:{port} did not start");
}

fn inventory(fleet: &Fleet) -> String {
    fleet.inventory().to_str().expect("utf-8").to_string()
}

const GET_URL_PLAY: &str = r#"
- hosts: h1
  gather_facts: no
  tasks:
    - name: fetch the app with a pinned checksum
      get_url:
        url: "http://{{ server }}:8080/app.bin"
        dest: /opt/app.bin
        mode: "0640"
        checksum: "sha256:{{ app_sum }}"
      register: app
    - name: fetch into a directory, checksum from a SUMS file
      get_url:
        url: "http://{{ server }}:8080/tool.sh"
        dest: /opt
        checksum: "sha256:http://{{ server }}:8080/SUMS"
    - name: keep the results
      copy:
        content: "{{ app.status_code | default('none') }} {{ app.dest }} {{ app.checksum_src | default('none') }}\n"
        dest: /tmp/app-result
      when: app.changed and not ansible_check_mode
"#;

#[test]
fn get_url_downloads_once_and_a_corrupt_download_leaves_dest_untouched() {
    let fleet = Fleet::start("web_get_url", 2);
    let v1 = b"version 1 of the app\n";
    let tool = b"#!/bin/sh\necho tool\n";
    put_file(&fleet, 1, "/srv/www/app.bin", v1);
    put_file(&fleet, 1, "/srv/www/tool.sh", tool);
    put_file(
        &fleet,
        1,
        "/srv/www/SUMS",
        format!("{}  app.bin\n{}  tool.sh\n", sha256(v1), sha256(tool)).as_bytes(),
    );
    exec_detached(&fleet, 1, "cd /srv/www && exec python3 -m http.server 8080");
    wait_for_server(&fleet, 8080);
    let inv = inventory(&fleet);
    let server = fleet.host(1).ip.clone();
    fleet.write("site.yml", GET_URL_PLAY);
    let extra = format!("server={server} app_sum={}", sha256(v1));

    // Check mode on the fresh host predicts both downloads and changes nothing.
    let check = fleet.orch(&["run", "site.yml", "-i", &inv, "--check", "-e", &extra]);
    check.assert_code(0);
    assert_eq!(check.recap("h1").changed, 2, "{check}");
    assert_ne!(fleet.exec(0, "test -e /opt/app.bin").code, 0);
    assert_ne!(fleet.exec(0, "test -e /opt/tool.sh").code, 0);

    let first = fleet.orch(&["run", "site.yml", "-i", &inv, "-e", &extra]);
    first.assert_code(0);
    assert_eq!(first.recap("h1").changed, 3, "{first}");
    assert_eq!(
        fleet
            .exec_ok(0, "sha256sum /opt/app.bin")
            .split_whitespace()
            .next(),
        Some(sha256(v1).as_str())
    );
    assert_eq!(fleet.exec_ok(0, "stat -c %a /opt/app.bin").trim(), "640");
    assert_eq!(
        fleet.exec_ok(0, "cat /opt/tool.sh"),
        "#!/bin/sh\necho tool\n"
    );
    let result = fleet.exec_ok(0, "cat /tmp/app-result");
    assert!(
        result.starts_with("200 /opt/app.bin "),
        "registered result: {result}"
    );
    // No temp files next to the downloads, no scratch directories left in /tmp.
    assert_eq!(
        fleet.exec_ok(0, "ls -A /opt"),
        "app.bin\ntool.sh\n",
        "leftovers in /opt"
    );
    assert_eq!(
        fleet
            .exec_ok(0, "ls -A /tmp | grep -c orch_http || true")
            .trim(),
        "0"
    );

    let second = fleet.orch(&["run", "site.yml", "-i", &inv, "-e", &extra]);
    second.assert_code(0);
    assert_eq!(second.recap("h1").changed, 0, "{second}");

    // Version 2 is announced, but the server delivers corrupt bytes: the task fails clearly and the
    // old file stays exactly as it was.
    let v2 = b"version 2 of the app\n";
    put_file(&fleet, 1, "/srv/www/app.bin", b"corrupted bytes\n");
    let before = fleet.exec_ok(0, "stat -c '%i %Y' /opt/app.bin");
    let extra_v2 = format!("server={server} app_sum={}", sha256(v2));
    let corrupt = fleet.orch(&["run", "site.yml", "-i", &inv, "-e", &extra_v2]);
    corrupt.assert_code(2);
    assert_eq!(corrupt.recap("h1").failed, 1);
    corrupt.assert_stdout_contains("did not match");
    corrupt.assert_stdout_contains(&sha256(b"corrupted bytes\n"));
    assert_eq!(
        fleet
            .exec_ok(0, "sha256sum /opt/app.bin")
            .split_whitespace()
            .next(),
        Some(sha256(v1).as_str()),
        "the old dest must be untouched"
    );
    assert_eq!(fleet.exec_ok(0, "stat -c '%i %Y' /opt/app.bin"), before);
    assert_eq!(fleet.exec_ok(0, "ls -A /opt"), "app.bin\ntool.sh\n");

    // The real version 2 arrives: replaced.
    put_file(&fleet, 1, "/srv/www/app.bin", v2);
    let fixed = fleet.orch(&["run", "site.yml", "-i", &inv, "-e", &extra_v2]);
    fixed.assert_code(0);
    assert_eq!(
        fleet.exec_ok(0, "cat /opt/app.bin"),
        String::from_utf8_lossy(v2)
    );
}

const SLOW_AUTH_SERVER: &str = r#"
import base64, http.server, time
WANTED = 'Basic ' + base64.b64encode(b'bob:hunter2-secret').decode()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.headers.get('Authorization') != WANTED:
            self.send_response(401)
            self.send_header('WWW-Authenticate', 'Basic realm="test"')
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        self.send_response(200)
        self.send_header('Content-Length', '1000')
        self.end_headers()
        for _ in range(10):
            self.wfile.write(b'x' * 100)
            self.wfile.flush()
            time.sleep(0.4)
http.server.ThreadingHTTPServer(('', 8082), Handler).serve_forever()
"#;

#[test]
fn basic_auth_password_never_shows_in_the_targets_process_list() {
    let fleet = Fleet::start("web_auth", 2);
    put_file(&fleet, 1, "/srv/auth.py", SLOW_AUTH_SERVER.as_bytes());
    exec_detached(&fleet, 1, "exec python3 /srv/auth.py");
    wait_for_server(&fleet, 8082);
    let inv = inventory(&fleet);
    fleet.write(
        "site.yml",
        r#"
- hosts: h1
  gather_facts: no
  tasks:
    - get_url:
        url: "http://{{ server }}:8082/slow"
        dest: /opt/slow.bin
        url_username: bob
        url_password: "{{ secret }}"
        force_basic_auth: yes
"#,
    );
    let extra = format!("server={} secret=hunter2-secret", fleet.host(1).ip);
    let running = fleet
        .orch_cmd(&["run", "site.yml", "-i", &inv, "-e", &extra])
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut saw_download = false;
    while Instant::now() < deadline {
        let ps = fleet.exec_ok(0, "ps -eo args");
        assert!(
            !ps.contains("hunter2"),
            "the password is visible in ps:\n{ps}"
        );
        if ps.lines().any(|l| l.starts_with("curl ")) {
            saw_download = true;
        }
        if saw_download && !ps.lines().any(|l| l.starts_with("curl ")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let run = running.wait();
    run.assert_code(0);
    assert!(
        saw_download,
        "never saw curl running: the check proved nothing"
    );
    assert_eq!(fleet.exec_ok(0, "stat -c %s /opt/slow.bin").trim(), "1000");
}

const URI_PLAY: &str = r#"
- hosts: h1
  gather_facts: no
  tasks:
    - name: read JSON
      uri:
        url: "http://{{ server }}:8080/status.json"
      register: st
    - name: a missing page is acceptable when listed
      uri:
        url: "http://{{ server }}:8080/missing"
        status_code: [200, 404]
      register: listed
    - name: a missing page fails otherwise
      uri:
        url: "http://{{ server }}:8080/missing"
      register: missing
      ignore_errors: yes
    - name: wait for the late server
      uri:
        url: "http://{{ server }}:8081/health.json"
        timeout: 2
      register: late
      until: late.status == 200
      retries: 20
      delay: 1
    - name: record what uri returned
      copy:
        dest: /tmp/uri-results
        content: |
          version={{ st.json.version }}
          ready={{ st.json.ready }}
          status={{ st.status }}
          content_type={{ st.content_type }}
          has_content={{ 'content' in st }}
          listed={{ listed.status }}
          missing_failed={{ missing.failed }}
          missing_msg={{ missing.msg }}
          late={{ late.json.state }} after {{ late.attempts }} attempts
      when: not ansible_check_mode
"#;

#[test]
fn uri_parses_json_checks_status_and_retries_until_the_server_is_up() {
    let fleet = Fleet::start("web_uri", 2);
    put_file(
        &fleet,
        1,
        "/srv/www/status.json",
        br#"{"version": "1.2.3", "ready": true}"#,
    );
    put_file(&fleet, 1, "/srv/late/health.json", br#"{"state": "up"}"#);
    exec_detached(&fleet, 1, "cd /srv/www && exec python3 -m http.server 8080");
    wait_for_server(&fleet, 8080);
    let inv = inventory(&fleet);
    fleet.write("site.yml", URI_PLAY);
    let extra = format!("server={}", fleet.host(1).ip);

    // uri does not support check mode: skipped, nothing requested.
    let check = fleet.orch(&["run", "site.yml", "-i", &inv, "--check", "-e", &extra]);
    check.assert_code(0);
    assert!(check.recap("h1").skipped >= 4, "{check}");

    // The second server starts a few seconds after the play.
    exec_detached(
        &fleet,
        1,
        "sleep 4; cd /srv/late && exec python3 -m http.server 8081",
    );
    let run = fleet.orch(&["run", "site.yml", "-i", &inv, "-e", &extra]);
    run.assert_code(0);
    let recap = run.recap("h1");
    assert_eq!(recap.failed, 0, "{run}");
    assert_eq!(recap.ignored, 1, "{run}");
    run.assert_stdout_contains("FAILED - RETRYING");
    let results = fleet.exec_ok(0, "cat /tmp/uri-results");
    let expect = [
        "version=1.2.3\n",
        "ready=True\n",
        "status=200\n",
        "content_type=application/json\n",
        "has_content=False\n",
        "listed=404\n",
        "missing_failed=True\n",
        "missing_msg=Status code was 404 and not [200]: HTTP Error 404: File not found\n",
    ];
    for line in expect {
        assert!(results.contains(line), "missing {line:?} in:\n{results}");
    }
    let late = results
        .lines()
        .find(|l| l.starts_with("late="))
        .expect("late line");
    let attempts: u32 = late
        .trim_start_matches("late=up after ")
        .trim_end_matches(" attempts")
        .parse()
        .unwrap_or_else(|_| panic!("bad line {late:?}"));
    assert!(attempts > 1, "the late server should need retries: {late}");
}

const USERS_PLAY: &str = r#"
- hosts: h1
  gather_facts: no
  tasks:
    - group: {name: ops, gid: 2500}
    - group: {name: deployers, system: yes}
    - user:
        name: alice
        shell: "{{ shell }}"
        groups: "{{ groups_wanted }}"
        comment: Alice Example
        password: "{{ hash }}"
      register: alice
    - copy:
        dest: /tmp/alice-result
        content: "{{ alice.uid }} {{ alice.home }} {{ alice.shell }} {{ alice.groups }}\n"
      when: not ansible_check_mode
"#;

#[test]
fn users_and_groups_converge_modify_and_go_away() {
    let fleet = Fleet::start("web_users", 1);
    let inv = inventory(&fleet);
    fleet.write("site.yml", USERS_PLAY);
    // `openssl passwd -6 -salt saltsalt secret`: the module compares it with /etc/shadow.
    let hash = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
    fleet.write(
        "vars1.yml",
        &format!("shell: /bin/sh\ngroups_wanted: [ops]\nhash: '{hash}'\n"),
    );
    fleet.write(
        "vars2.yml",
        &format!("shell: /bin/bash\ngroups_wanted: [ops, deployers]\nhash: '{hash}'\n"),
    );

    let check = fleet.orch(&["run", "site.yml", "-i", &inv, "--check", "-e", "@vars1.yml"]);
    check.assert_code(0);
    assert_eq!(check.recap("h1").changed, 3, "{check}");
    assert_ne!(fleet.exec(0, "getent passwd alice").code, 0);

    let first = fleet.orch(&["run", "site.yml", "-i", &inv, "-e", "@vars1.yml"]);
    first.assert_code(0);
    assert_eq!(first.recap("h1").changed, 4, "{first}");
    assert_eq!(
        fleet.exec_ok(0, "getent group ops").trim(),
        "ops:x:2500:alice"
    );
    let deployers_gid: u32 = fleet
        .exec_ok(0, "getent group deployers | cut -d: -f3")
        .trim()
        .parse()
        .expect("gid");
    assert!(deployers_gid < 1000, "system group gid {deployers_gid}");
    let passwd = fleet.exec_ok(0, "getent passwd alice");
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    assert_eq!(fields[4], "Alice Example");
    assert_eq!(fields[5], "/home/alice");
    assert_eq!(fields[6], "/bin/sh");
    fleet.exec_ok(0, "test -d /home/alice");
    assert_eq!(
        fleet.exec_ok(0, "getent shadow alice | cut -d: -f2").trim(),
        hash
    );
    assert_eq!(
        fleet.exec_ok(0, "cat /tmp/alice-result"),
        format!("{} /home/alice /bin/sh ops\n", fields[2])
    );

    let second = fleet.orch(&["run", "site.yml", "-i", &inv, "-e", "@vars1.yml"]);
    second.assert_code(0);
    assert_eq!(second.recap("h1").changed, 0, "{second}");

    // Modify: shell and groups. Check mode predicts the one change, then the real run makes it.
    let check2 = fleet.orch(&["run", "site.yml", "-i", &inv, "--check", "-e", "@vars2.yml"]);
    check2.assert_code(0);
    assert_eq!(check2.recap("h1").changed, 1, "{check2}");
    assert_eq!(
        fleet.exec_ok(0, "getent passwd alice | cut -d: -f7").trim(),
        "/bin/sh"
    );
    let modify = fleet.orch(&["run", "site.yml", "-i", &inv, "-e", "@vars2.yml"]);
    modify.assert_code(0);
    assert_eq!(modify.recap("h1").changed, 2, "{modify}");
    assert_eq!(
        fleet.exec_ok(0, "getent passwd alice | cut -d: -f7").trim(),
        "/bin/bash"
    );
    let mut groups: Vec<String> = fleet
        .exec_ok(0, "id -Gn alice")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    groups.sort();
    assert_eq!(groups, vec!["alice", "deployers", "ops"]);
    let again = fleet.orch(&["run", "site.yml", "-i", &inv, "-e", "@vars2.yml"]);
    again.assert_code(0);
    assert_eq!(again.recap("h1").changed, 0, "{again}");

    // Absent: the user (with its home) and a group.
    fleet.write(
        "absent.yml",
        r#"
- hosts: h1
  gather_facts: no
  tasks:
    - user: {name: alice, state: absent, remove: yes}
    - group: {name: ops, state: absent}
"#,
    );
    let gone = fleet.orch(&["run", "absent.yml", "-i", &inv]);
    gone.assert_code(0);
    assert_eq!(gone.recap("h1").changed, 2, "{gone}");
    assert_ne!(fleet.exec(0, "getent passwd alice").code, 0);
    assert_ne!(fleet.exec(0, "test -d /home/alice").code, 0);
    assert_ne!(fleet.exec(0, "getent group ops").code, 0);
    let gone_again = fleet.orch(&["run", "absent.yml", "-i", &inv]);
    gone_again.assert_code(0);
    assert_eq!(gone_again.recap("h1").changed, 0, "{gone_again}");
}
