//! Authentik's web certificate set through the API (`authentik_certificate` with
//! `certificate_data`/`key_data`, then `authentik_brand`), against the fake Authentik in a test host
//! with its HTTPS listener (`--https-port 9443`, certificate chosen per SNI from the brands), for
//! 2024.12 and 2026.5. Checked independently of orch: what `openssl s_client` is served inside the
//! container, the fake's state and its request log; idempotence; a replaced pair is PATCHed in
//! place; the private key never appears in any output.

mod support;

use serde_json::Value;
use support::flagship::tasks_with;
use support::{FakeAuthentik, FakeAuthentikOptions, Fleet, RunOutput};

const HOST: &str = "auth.example.test";
const CERT: &str = "/root/tls/web.crt";
const KEY: &str = "/root/tls/web.key";

fn playbook() -> String {
    let conn = format!(
        "env_file_path: /opt/authentik/.env
        authentik_host: {HOST}"
    );
    format!(
        r#"
- hosts: targets
  gather_facts: no
  tasks:
    - name: read the certificate
      slurp:
        src: {CERT}
      register: crt
    - name: read the key
      slurp:
        src: {KEY}
      register: key
      no_log: true
    - name: web certificate
      authentik_certificate:
        name: authentik-web
        certificate_data: "{{{{ crt.content | b64decode }}}}"
        key_data: "{{{{ key.content | b64decode }}}}"
        {conn}
      register: pair
    - name: brand
      authentik_brand:
        web_certificate: authentik-web
        {conn}
      register: brand
    - name: show
      debug:
        msg: "fp={{{{ pair.fingerprint_sha256 }}}} type={{{{ pair.key_type }}}} brand={{{{ brand.domain }}}} cert={{{{ brand.web_certificate_name }}}}"
"#
    )
}

/// The fake with `version` and its HTTPS listener on 9443, bound to the container's loopback (orch
/// reaches the API through SSH, openssl reaches 9443 inside the container), accepting `token` once
/// ready; `options` adds to that.
fn start_fake<'a>(
    fleet: &'a Fleet,
    version: &str,
    token: &str,
    options: FakeAuthentikOptions,
) -> FakeAuthentik<'a> {
    let options = options
        .version(version)
        .bind("127.0.0.1")
        .https(9443)
        .dotenv(&format!("AUTHENTIK_BOOTSTRAP_TOKEN={token}\n"));
    let fake = FakeAuthentik::start(fleet, 0, &options);
    fake.wait_ready(token);
    fake
}

/// Lowercase hex without separators, from openssl's `SHA256 Fingerprint=AB:CD:…` or Authentik's
/// `ab:cd:…`.
fn plain_hex(fingerprint: &str) -> String {
    let value = fingerprint.rsplit('=').next().unwrap_or_default();
    value
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A fresh self-signed pair at CERT/KEY, made by openssl in the container; `traditional` writes the
/// key as PKCS#1 (`BEGIN RSA PRIVATE KEY`) instead of PKCS#8. Returns the certificate's SHA-256
/// fingerprint (plain hex) and the key's PEM.
fn make_pair(fleet: &Fleet, traditional: bool) -> (String, String) {
    fleet.exec_ok(
        0,
        &format!(
            "mkdir -p /root/tls && cd /root/tls && rm -f web.crt web.key && \
             openssl req -x509 -newkey rsa:2048 -nodes -keyout web.key -out web.crt -days 30 \
               -subj '/CN={HOST}/O=orch test' -addext 'subjectAltName=DNS:{HOST}' 2>/dev/null"
        ),
    );
    if traditional {
        fleet.exec_ok(
            0,
            "cd /root/tls && openssl rsa -in web.key -traditional -out web.key.1 2>/dev/null && mv web.key.1 web.key",
        );
    }
    let fingerprint = fleet.exec_ok(
        0,
        &format!("openssl x509 -in {CERT} -noout -fingerprint -sha256"),
    );
    let key = fleet.exec_ok(0, &format!("cat {KEY}"));
    assert_eq!(
        key.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        traditional,
        "{}",
        key.lines().next().unwrap_or_default()
    );
    (plain_hex(&fingerprint), key)
}

/// The fingerprint of the certificate Authentik's HTTPS listener serves for HOST (SNI), seen by
/// openssl inside the container.
fn served_fingerprint(fleet: &Fleet) -> String {
    plain_hex(&fleet.exec_ok(
        0,
        &format!(
            "echo | openssl s_client -connect 127.0.0.1:9443 -servername {HOST} 2>/dev/null \
             | openssl x509 -noout -fingerprint -sha256"
        ),
    ))
}

fn web_pair(state: &Value) -> Value {
    let pairs: Vec<&Value> = state["certificatekeypairs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "authentik-web")
        .collect();
    assert_eq!(pairs.len(), 1, "{state:#}");
    pairs[0].clone()
}

fn default_brand(state: &Value) -> Value {
    state["brands"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["default"] == true)
        .cloned()
        .unwrap_or_else(|| panic!("no default brand in {state:#}"))
}

/// Requests to the API with `method` on a path starting with `prefix`, from the fake's log.
fn requests(fake: &FakeAuthentik, method: &str, prefix: &str) -> Vec<String> {
    fake.requests_log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|r| r["method"] == method)
        .filter_map(|r| r["path"].as_str().map(str::to_string))
        .filter(|p| p.starts_with(prefix))
        .collect()
}

/// No line of a key's body (nor the token) in either stream of a run.
#[track_caller]
fn assert_no_key(run: &RunOutput, keys: &[&str], token: &str) {
    assert!(
        !run.stdout.contains(token) && !run.stderr.contains(token),
        "the token leaked:\n{run}"
    );
    for key in keys {
        for line in key.lines().filter(|l| !l.starts_with("-----")) {
            assert!(
                !run.stdout.contains(line) && !run.stderr.contains(line),
                "a line of the private key ({}…) leaked into orch's output:\n{run}",
                &line[..8.min(line.len())]
            );
        }
    }
}

fn suite(version: &str, test_name: &str) {
    let fleet = Fleet::start(test_name, 1);
    let token = format!("ak-tls-token-{}-{}", std::process::id(), test_name.len());
    let fake = start_fake(&fleet, version, &token, FakeAuthentikOptions::new());
    let (first_fp, first_key) = make_pair(&fleet, false);
    let before = served_fingerprint(&fleet);
    assert_eq!(before.len(), 64);
    assert_ne!(
        before, first_fp,
        "the fake must start with its own certificate"
    );
    fleet.write("site.yml", &playbook());
    let inv = fleet.inventory();
    let inv = inv.to_str().unwrap();

    // Check mode: both would change, nothing is written.
    let dry = fleet.orch(&["run", "site.yml", "-i", inv, "--check", "--diff", "-vvv"]);
    dry.assert_code(0);
    assert_eq!(
        tasks_with(&dry.stdout, "changed"),
        vec!["web certificate", "brand"],
        "{dry}"
    );
    dry.assert_stdout_contains("(to be created: authentik-web)");
    dry.assert_stdout_contains(&format!("CN={HOST}"));
    assert!(requests(&fake, "POST", "/api/v3/").is_empty(), "{dry}");
    assert!(requests(&fake, "PATCH", "/api/v3/").is_empty(), "{dry}");
    assert_no_key(&dry, &[&first_key], &token);

    // First run: imported and set as the default brand's web certificate.
    let first = fleet.orch(&["run", "site.yml", "-i", inv, "--diff", "-vvv"]);
    first.assert_code(0);
    assert_eq!(first.recap("h1").changed, 2, "{first}");
    let s = fake.state();
    let pair = web_pair(&s);
    assert_eq!(
        plain_hex(pair["fingerprint_sha256"].as_str().unwrap()),
        first_fp
    );
    assert_eq!(pair["cert_key_type"], "rsa");
    assert_eq!(default_brand(&s)["web_certificate"], pair["pk"]);
    first.assert_stdout_contains(&format!(
        "fp={} type=rsa brand=authentik-default cert=authentik-web",
        pair["fingerprint_sha256"].as_str().unwrap()
    ));
    assert_eq!(
        served_fingerprint(&fleet),
        first_fp,
        "Authentik must serve the imported certificate for {HOST}"
    );
    assert_no_key(&first, &[&first_key], &token);

    // Rerun: nothing to do, in every output form.
    let again = fleet.orch(&["run", "site.yml", "-i", inv]);
    again.assert_code(0);
    assert_eq!(again.recap("h1").changed, 0, "{again}");
    assert_no_key(&again, &[&first_key], &token);
    let json = fleet.orch(&["run", "site.yml", "-i", inv, "--output", "json", "-vvv"]);
    json.assert_code(0);
    assert!(
        !json.stdout.contains("\"changed\":true") && !json.stdout.contains("\"changed\": true"),
        "{json}"
    );
    assert_no_key(&json, &[&first_key], &token);
    let check = fleet.orch(&["run", "site.yml", "-i", inv, "--check", "--diff"]);
    check.assert_code(0);
    assert_eq!(check.recap("h1").changed, 0, "{check}");
    assert_no_key(&check, &[&first_key], &token);

    // A new pair in the files (key as PKCS#1 this time): check mode predicts a replacement only.
    let (second_fp, second_key) = make_pair(&fleet, true);
    assert_ne!(second_fp, first_fp);
    let keys = [first_key.as_str(), second_key.as_str()];
    let dry = fleet.orch(&["run", "site.yml", "-i", inv, "--check", "--diff", "-vvv"]);
    dry.assert_code(0);
    assert_eq!(
        tasks_with(&dry.stdout, "changed"),
        vec!["web certificate"],
        "{dry}"
    );
    let colon = |hex: &str| {
        hex.as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(":")
    };
    dry.assert_stdout_contains(&colon(&first_fp));
    dry.assert_stdout_contains(&colon(&second_fp));
    assert_eq!(
        served_fingerprint(&fleet),
        first_fp,
        "check mode changed it"
    );
    assert_no_key(&dry, &keys, &token);
    let views = |fake: &FakeAuthentik| {
        requests(fake, "GET", "/api/v3/crypto/certificatekeypairs/")
            .iter()
            .filter(|p| p.contains("view_certificate"))
            .count()
    };
    assert_eq!(
        views(&fake),
        0,
        "check mode must not read the certificate back (Authentik logs each read)"
    );

    // Replaced in place (PATCH on the same pk); the brand still points to it.
    let patches_before = requests(&fake, "PATCH", "/api/v3/crypto/certificatekeypairs/").len();
    let replace = fleet.orch(&["run", "site.yml", "-i", inv, "--diff"]);
    replace.assert_code(0);
    assert_eq!(
        tasks_with(&replace.stdout, "changed"),
        vec!["web certificate"],
        "{replace}"
    );
    let s2 = fake.state();
    let pair2 = web_pair(&s2);
    assert_eq!(pair2["pk"], pair["pk"], "replaced, not recreated");
    assert_eq!(
        plain_hex(pair2["fingerprint_sha256"].as_str().unwrap()),
        second_fp
    );
    assert_eq!(
        requests(&fake, "PATCH", "/api/v3/crypto/certificatekeypairs/").len(),
        patches_before + 1
    );
    assert_eq!(served_fingerprint(&fleet), second_fp);
    assert_eq!(
        views(&fake),
        1,
        "a real --diff replacement reads the old one once"
    );
    assert_no_key(&replace, &keys, &token);
    let last = fleet.orch(&["run", "site.yml", "-i", inv, "-vvv"]);
    last.assert_code(0);
    assert_eq!(last.recap("h1").changed, 0, "{last}");
    assert_no_key(&last, &keys, &token);
}

#[test]
fn web_certificate_is_imported_and_served_on_2024_12() {
    suite("2024.12.3", "ak-tls-2024-12");
}

#[test]
fn web_certificate_is_imported_and_served_on_2026_5() {
    suite("2026.5.6", "ak-tls-2026-5");
}

/// Authentik serves a brand's new certificate only at its next reload (a timer, not the PATCH):
/// authentik_brand waits until the HTTPS listener presents it, and says why when it gives up.
#[test]
fn the_brand_waits_until_authentik_serves_the_new_certificate() {
    let fleet = Fleet::start("ak-tls-reload", 1);
    let token = format!("ak-tls-token-{}-reload", std::process::id());
    let fake = start_fake(
        &fleet,
        "2026.5.6",
        &token,
        FakeAuthentikOptions::new().tls_reload(15),
    );
    let (fingerprint, _) = make_pair(&fleet, false);
    let old = served_fingerprint(&fleet);
    let site = |timeout: u32, port: u16| {
        format!(
            r#"
- hosts: targets
  gather_facts: no
  tasks:
    - slurp: {{src: {CERT}}}
      register: crt
    - slurp: {{src: {KEY}}}
      register: key
      no_log: true
    - name: web certificate
      authentik_certificate:
        name: authentik-web
        certificate_data: "{{{{ crt.content | b64decode }}}}"
        key_data: "{{{{ key.content | b64decode }}}}"
        env_file_path: /opt/authentik/.env
        authentik_host: {HOST}
    - name: brand
      authentik_brand:
        web_certificate: authentik-web
        serve_timeout: {timeout}
        https_port: {port}
        env_file_path: /opt/authentik/.env
        authentik_host: {HOST}
"#
        )
    };
    let inv = fleet.inventory();
    let inv = inv.to_str().unwrap();
    fleet.write("site.yml", &site(2, 9443));
    let impatient = fleet.orch(&["run", "site.yml", "-i", inv]);
    impatient.assert_code(2);
    impatient.assert_stdout_contains("does not serve key pair 'authentik-web'");
    impatient.assert_stdout_contains("loads brand certificates every few minutes");
    assert_eq!(
        default_brand(&fake.state())["web_certificate"],
        web_pair(&fake.state())["pk"],
        "the brand was set before the wait"
    );

    // The rerun finds the brand set and waits (nothing to change) until the reload.
    // A port where nothing answers TLS is not waited on for long: the hint names the setting.
    fleet.write("site.yml", &site(300, 9444));
    let wrong_port = fleet.orch(&["run", "site.yml", "-i", inv]);
    wrong_port.assert_code(2);
    wrong_port.assert_stdout_contains("Is https_port Authentik's HTTPS port on its host");

    fleet.write("site.yml", &site(60, 9443));
    let patient = fleet.orch(&["run", "site.yml", "-i", inv]);
    patient.assert_code(0);
    assert_eq!(patient.recap("h1").changed, 0, "{patient}");
    let served = served_fingerprint(&fleet);
    assert_eq!(served, fingerprint, "served after the wait");
    assert_ne!(served, old);
}
