//! The Authentik API modules (`authentik_certificate`, `authentik_provider_oauth2`,
//! `authentik_application`) against the fake Authentik (tests/support/fake_authentik) running in a
//! test host and bound to its 127.0.0.1 only: orch reaches it through the host's SSH session.
//! Checked in the fake's state file (docker exec), for 2024.12 and 2026.5: the objects as Proxmox
//! needs them, idempotence, drift reported by --check --diff and repaired, the ECDSA refusal, and
//! no secret in any output.

mod support;

use serde_json::Value;
use std::time::{Duration, Instant};
use support::flagship::tasks_with;
use support::{FakeAuthentik, FakeAuthentikOptions, Fleet, RunOutput, FAKE_STATE};

const ISSUER: &str = "https://auth.example.test/application/o/proxmox/";
const REDIRECTS: [&str; 3] = [
    "https://pve1.example.test:8006",
    "https://pve2.example.test:8006",
    "https://10.10.0.5:8006",
];

/// Connection arguments every task repeats.
const CONN: &str = "env_file_path: /opt/authentik/.env
        authentik_host: auth.example.test";

fn playbook() -> String {
    format!(
        r#"
- hosts: targets
  gather_facts: no
  tasks:
    - name: signing key
      authentik_certificate:
        name: proxmox-oidc
        subject_alt_names: [auth.example.test]
        validity_days: 365
        {CONN}
      register: cert
    - name: provider
      authentik_provider_oauth2:
        name: proxmox
        client_id: proxmox
        redirect_uris: {redirects}
        signing_key: proxmox-oidc
        sub_mode: user_email
        {CONN}
      register: provider
    - name: application
      authentik_application:
        slug: proxmox
        name: Proxmox VE
        provider: proxmox
        meta_launch_url: https://pve1.example.test:8006
        open_in_new_tab: true
        policy_engine_mode: any
        {CONN}
      register: app
    - name: later tasks get the real client secret
      copy:
        content: "{{{{ provider.client_secret }}}}"
        dest: /root/client_secret
        mode: "0600"
      when: not ansible_check_mode
    - name: show the realm settings
      debug:
        msg: "issuer={{{{ app.issuer_url }}}} client_id={{{{ provider.client_id }}}} key={{{{ cert.key_type }}}}"
"#,
        redirects = serde_json::to_string(&REDIRECTS).unwrap()
    )
}

/// A certificate task whose pair exists as ECDSA, and a provider pointed at that pair; the token
/// comes from a variable this time.
const ECDSA_PLAYBOOK: &str = r#"
- hosts: targets
  gather_facts: no
  tasks:
    - name: ecdsa pair
      authentik_certificate:
        name: ec-pair
        token: "{{ ak_token }}"
      ignore_errors: true
    - name: provider on the ecdsa pair
      authentik_provider_oauth2:
        name: ec-provider
        redirect_uris: [https://pve1.example.test:8006]
        signing_key: ec-pair
        token: "{{ ak_token }}"
"#;

/// The fake with `version`, bound to the container's loopback (only a tunnel through SSH reaches
/// it) and accepting `token` once ready.
fn start_fake<'a>(fleet: &'a Fleet, version: &str, token: &str) -> FakeAuthentik<'a> {
    let options = FakeAuthentikOptions::new()
        .version(version)
        .bind("127.0.0.1")
        .dotenv(&format!("PG_PASS=pw\nAUTHENTIK_BOOTSTRAP_TOKEN={token}\n"));
    let fake = FakeAuthentik::start(fleet, 0, &options);
    fake.wait_ready(token);
    fake
}

fn by<'a>(state: &'a Value, list: &str, key: &str, value: &str) -> &'a Value {
    state[list]
        .as_array()
        .and_then(|items| items.iter().find(|i| i[key] == value))
        .unwrap_or_else(|| panic!("no {list} with {key}={value} in {state:#}"))
}

fn urls(provider: &Value) -> Vec<String> {
    let mut out: Vec<String> = provider["redirect_uris"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["matching_mode"], "strict", "{e}");
            e["url"].as_str().unwrap().to_string()
        })
        .collect();
    out.sort();
    out
}

fn sorted(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[track_caller]
fn assert_no_secret(run: &RunOutput, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "secret {}… leaked into orch's output:\n{run}",
            &secret[..6]
        );
    }
}

fn suite(version: &str, test_name: &str) {
    let fleet = Fleet::start(test_name, 1);
    let token = format!(
        "ak-token-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() ^ 0x5eed_cafe
    );
    let fake = start_fake(&fleet, version, &token);
    // The API is not published: nothing answers on the host's address from the controller.
    assert!(
        std::net::TcpStream::connect_timeout(
            &format!("{}:9000", fleet.host(0).ip).parse().unwrap(),
            Duration::from_secs(2)
        )
        .is_err(),
        "the fake must only listen on the container's loopback"
    );
    fleet.write("site.yml", &playbook());
    let inv = fleet.inventory();
    let inv = inv.to_str().unwrap();

    // Check mode on an empty Authentik: all three objects would be created, none is.
    let dry = fleet.orch(&["run", "site.yml", "-i", inv, "--check", "--diff"]);
    dry.assert_code(0);
    assert_eq!(
        tasks_with(&dry.stdout, "changed"),
        vec!["signing key", "provider", "application"],
        "{dry}"
    );
    dry.assert_stdout_contains("(to be created: proxmox-oidc)");
    let untouched = fake.state();
    assert_eq!(untouched["providers"], serde_json::json!([]));
    assert_eq!(untouched["applications"], serde_json::json!([]));
    assert_no_secret(&dry, &[&token]);

    // First run: everything is created.
    let first = fleet.orch(&["run", "site.yml", "-i", inv, "--diff", "-vvv"]);
    first.assert_code(0);
    assert_eq!(first.recap("h1").changed, 4, "{first}");
    let s = fake.state();
    let pair = by(&s, "certificatekeypairs", "name", "proxmox-oidc");
    assert_eq!(pair["cert_key_type"], "rsa");
    assert_eq!(pair["jwt_alg"], "RS256");
    assert!(
        pair["cert_subject"]
            .as_str()
            .unwrap_or_default()
            .contains("CN=auth.example.test"),
        "{pair}"
    );
    let provider = by(&s, "providers", "name", "proxmox");
    assert_eq!(urls(provider), sorted(&REDIRECTS));
    assert_eq!(provider["signing_key"], pair["pk"]);
    assert_eq!(provider["encryption_key"], Value::Null);
    assert_eq!(provider["client_type"], "confidential");
    assert_eq!(provider["client_id"], "proxmox");
    assert_eq!(provider["sub_mode"], "user_email");
    let flow = |slug: &str| by(&s, "flows", "slug", slug)["pk"].clone();
    assert_eq!(
        provider["authorization_flow"],
        flow("default-provider-authorization-implicit-consent")
    );
    assert_eq!(
        provider["invalidation_flow"],
        flow("default-provider-invalidation-flow")
    );
    let mut mappings: Vec<String> = provider["property_mappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pk| {
            by(&s, "scope_mappings", "pk", pk.as_str().unwrap())["scope_name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    mappings.sort();
    assert_eq!(mappings, vec!["email", "openid", "profile"]);
    let app = by(&s, "applications", "slug", "proxmox");
    assert_eq!(app["provider"], provider["pk"]);
    assert_eq!(app["name"], "Proxmox VE");
    assert_eq!(app["open_in_new_tab"], true);
    assert_eq!(app["meta_launch_url"], "https://pve1.example.test:8006");
    let secret = provider["client_secret"].as_str().unwrap().to_string();
    assert!(secret.len() >= 32);
    // The registered variable keeps the real secret for later tasks; the output shows the issuer.
    assert_eq!(fleet.exec_ok(0, "cat /root/client_secret"), secret);
    first.assert_stdout_contains(&format!("issuer={ISSUER} client_id=proxmox key=rsa"));
    // What Proxmox will read: RS256 in discovery (the issuer host is the fake's request host here).
    let discovery: Value = serde_json::from_str(&fleet.exec_ok(
        0,
        "curl -s http://127.0.0.1:9000/application/o/proxmox/.well-known/openid-configuration",
    ))
    .unwrap();
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_no_secret(&first, &[&token, &secret]);

    // Second run: nothing to do (also as JSON events).
    let second = fleet.orch(&["run", "site.yml", "-i", inv, "--output", "json", "-vvv"]);
    second.assert_code(0);
    assert!(
        !second.stdout.contains("\"changed\":true") && !second.stdout.contains("\"changed\": true"),
        "{second}"
    );
    assert_no_secret(&second, &[&token, &secret]);
    let human = fleet.orch(&["run", "site.yml", "-i", inv]);
    human.assert_code(0);
    assert_eq!(human.recap("h1").changed, 0, "{human}");

    // Drift: a redirect URI removed in Authentik by hand.
    fleet.exec_ok(
        0,
        &format!(
            "python3 - <<'EOF'\nimport json\ns = json.load(open('{FAKE_STATE}'))\n\
             p = [p for p in s['providers'] if p['name'] == 'proxmox'][0]\n\
             p['redirect_uris'] = [r for r in p['redirect_uris'] if r['url'] != '{gone}']\n\
             json.dump(s, open('{FAKE_STATE}', 'w'))\nEOF",
            gone = REDIRECTS[1]
        ),
    );
    let check = fleet.orch(&["run", "site.yml", "-i", inv, "--check", "--diff", "-vvv"]);
    check.assert_code(0);
    assert_eq!(
        tasks_with(&check.stdout, "changed"),
        vec!["provider"],
        "{check}"
    );
    check.assert_stdout_contains(REDIRECTS[1]);
    check.assert_stdout_contains("redirect_uris");
    assert_eq!(
        urls(by(&fake.state(), "providers", "name", "proxmox")).len(),
        2
    );
    assert_no_secret(&check, &[&token, &secret]);
    let repair = fleet.orch(&["run", "site.yml", "-i", inv, "--diff"]);
    repair.assert_code(0);
    assert_eq!(
        tasks_with(&repair.stdout, "changed"),
        vec!["provider"],
        "{repair}"
    );
    let repaired = fake.state();
    let provider = by(&repaired, "providers", "name", "proxmox");
    assert_eq!(urls(provider), sorted(&REDIRECTS));
    assert_eq!(
        provider["client_secret"],
        secret.as_str(),
        "the client secret must survive"
    );
    assert_eq!(
        repaired["certificatekeypairs"].as_array().unwrap().len(),
        s["certificatekeypairs"].as_array().unwrap().len()
    );
    assert_no_secret(&repair, &[&token, &secret]);
    let again = fleet.orch(&["run", "site.yml", "-i", inv]);
    assert_eq!(again.recap("h1").changed, 0, "{again}");

    // An ECDSA pair under the certificate's name: refused with the Proxmox 401 explanation.
    fleet.exec_ok(
        0,
        &format!(
            "curl -sf -X POST -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \
             -d '{{\"common_name\":\"ec-pair\",\"validity_days\":30,\"alg\":\"ecdsa\"}}' \
             http://127.0.0.1:9000/api/v3/crypto/certificatekeypairs/generate/ >/dev/null"
        ),
    );
    fleet.write("ecdsa.yml", ECDSA_PLAYBOOK);
    let token_var = format!("ak_token={token}");
    let ecdsa = fleet.orch(&["run", "ecdsa.yml", "-i", inv, "-e", &token_var, "-vvv"]);
    assert_ne!(ecdsa.code, 0, "{ecdsa}");
    let out = ecdsa.stdout.replace("\\\"", "\"");
    for needle in [
        "'ec-pair' is ECDSA",
        "401",
        "RS256",
        "delete or rename",
        "another name",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{ecdsa}");
    }
    assert!(
        out.contains("set signing_key to an RSA key pair"),
        "{ecdsa}"
    );
    assert_eq!(ecdsa.recap("h1").failed, 1, "{ecdsa}");
    assert!(
        !fake.state()["providers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "ec-provider"),
        "no provider may be created on an ECDSA key"
    );
    assert_no_secret(&ecdsa, &[&token, &secret]);
}

#[test]
fn authentik_api_modules_converge_on_2024_12() {
    suite("2024.12.3", "ak-api-2024-12");
}

#[test]
fn authentik_api_modules_converge_on_2026_5() {
    suite("2026.5.6", "ak-api-2026-5");
}

/// `authentik_url`: straight to Authentik's HTTPS port from the controller (no tunnel); the
/// self-signed certificate is refused unless `validate_certs: false`.
#[test]
fn authentik_url_reaches_the_api_over_https_directly() {
    let fleet = Fleet::start("ak-api-direct", 1);
    let token = format!("ak-direct-token-{}", std::process::id());
    let options = FakeAuthentikOptions::new()
        .https(9443)
        .dotenv(&format!("AUTHENTIK_BOOTSTRAP_TOKEN={token}\n"));
    let fake = FakeAuthentik::start(&fleet, 0, &options);
    let url = format!("https://{}:9443", fleet.host(0).ip);
    fake.wait_ready_at(&url, &token);
    let play = |validate: bool| {
        format!(
            r#"
- hosts: localhost
  connection: local
  gather_facts: no
  tasks:
    - authentik_certificate:
        name: direct-key
        mode: import
        key_size: 2048
        authentik_url: "{url}"
        validate_certs: {validate}
        token: "{{{{ ak_token }}}}"
      register: cert
    - debug:
        msg: "pk={{{{ cert.pk }}}} type={{{{ cert.key_type }}}} version={{{{ cert.authentik_version }}}}"
"#
        )
    };
    let token_var = format!("ak_token={token}");
    fleet.write("strict.yml", &play(true));
    let strict = fleet.orch(&["run", "strict.yml", "-e", &token_var]);
    assert_ne!(strict.code, 0, "{strict}");
    strict.assert_stdout_contains("ca_path");
    fleet.write("direct.yml", &play(false));
    let direct = fleet.orch(&["run", "direct.yml", "-e", &token_var, "-vvv"]);
    direct.assert_code(0);
    direct.assert_stdout_contains("type=rsa version=2026.5.6");
    assert_no_secret(&direct, &[&token]);
    let s = fake.state();
    let pair = by(&s, "certificatekeypairs", "name", "direct-key");
    assert_eq!(pair["cert_key_type"], "rsa");
    // Imported from rcgen: orch's subject, the key stored in Authentik, never printed.
    assert!(
        pair["cert_subject"]
            .as_str()
            .unwrap_or_default()
            .contains("O=orch"),
        "{pair}"
    );
    let key_body: String = pair["key_data"]
        .as_str()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(key_body.len() > 100);
    assert!(!direct.stdout.contains(&key_body[..64]), "{direct}");
    let again = fleet.orch(&["run", "direct.yml", "-e", &token_var]);
    assert_eq!(again.recap("localhost").changed, 0, "{again}");
}
