//! The fake authentik API (tests/support/fake_authentik) runs inside a test host container and
//! answers like authentik: readiness after a delay, the bootstrap token only once bootstrap is done,
//! DRF validation errors for bad providers, and state the test can read back. Its finer rules are
//! covered by the Python suite beside it (`python3 -m unittest` in that folder).

mod support;

use serde_json::Value;
use std::time::{Duration, Instant};
use support::{FakeAuthentik, FakeAuthentikOptions, Fleet};

const TOKEN: &str = "fake-authentik-bootstrap-token-4711";
const API: &str = "http://127.0.0.1:9000/api/v3";

/// One HTTP exchange made with curl inside the container.
struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {:?}", self.body))
    }
}

/// `curl ARGS` on host 0; `args` is shell text (single-quote JSON bodies).
#[track_caller]
fn curl(fleet: &Fleet, args: &str) -> Reply {
    let out = fleet.exec_ok(
        0,
        // Status 000 and an empty body while nothing listens yet.
        &format!(
            "rm -f /tmp/reply; curl -s -o /tmp/reply -w '%{{http_code}}\\n' {args}; cat /tmp/reply 2>/dev/null; true"
        ),
    );
    let (status, body) = out.split_once('\n').unwrap_or((out.as_str(), ""));
    Reply {
        status: status.trim().parse().unwrap_or(0),
        body: body.to_string(),
    }
}

fn authed(fleet: &Fleet, method: &str, path: &str, body: Option<&str>) -> Reply {
    let data = body
        .map(|json| format!("-H 'Content-Type: application/json' -d '{json}'"))
        .unwrap_or_default();
    curl(
        fleet,
        &format!("-X {method} -H 'Authorization: Bearer {TOKEN}' {data} {API}{path}"),
    )
}

#[track_caller]
fn wait_for(fleet: &Fleet, what: &str, timeout: Duration, probe: impl Fn(&Fleet) -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if probe(fleet) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = FakeAuthentik::on(fleet, 0).stderr_log();
    panic!("{what} not reached within {timeout:?}; fake's stderr:\n{log}");
}

#[test]
fn fake_authentik_answers_like_authentik_inside_a_container() {
    let fleet = Fleet::start("fake-authentik", 1);
    let options = FakeAuthentikOptions::new()
        .version("2026.5.6")
        .delays(3, 3)
        .dotenv(&format!("PG_PASS=pw\nAUTHENTIK_BOOTSTRAP_TOKEN={TOKEN}\n"));
    let fake = FakeAuthentik::start(&fleet, 0, &options);

    // Up, but not ready: live answers, ready is 503 for the configured delay.
    wait_for(&fleet, "live endpoint", Duration::from_secs(60), |fleet| {
        curl(fleet, "http://127.0.0.1:9000/-/health/live/").status == 200
    });
    assert_eq!(
        curl(&fleet, "http://127.0.0.1:9000/-/health/ready/").status,
        503
    );
    wait_for(&fleet, "ready 200", Duration::from_secs(30), |fleet| {
        curl(fleet, "http://127.0.0.1:9000/-/health/ready/").status == 200
    });

    // Bootstrap finishes after ready: the token is refused at first, then accepted.
    let early = authed(&fleet, "GET", "/core/users/me/", None);
    assert_eq!(early.status, 403, "{}", early.body);
    assert_eq!(early.json()["detail"], "Token invalid/expired");
    wait_for(
        &fleet,
        "bootstrap token",
        Duration::from_secs(30),
        |fleet| authed(fleet, "GET", "/core/users/me/", None).status == 200,
    );
    let anonymous = curl(&fleet, &format!("{API}/admin/version/"));
    assert_eq!(anonymous.status, 403);
    assert_eq!(
        anonymous.json()["detail"],
        "Authentication credentials were not provided."
    );
    let version = authed(&fleet, "GET", "/admin/version/", None);
    assert_eq!(version.json()["version_current"], "2026.5.6");

    // Provider validation as DRF reports it, then a valid create.
    let flow = |slug: &str| {
        let reply = authed(
            &fleet,
            "GET",
            &format!("/flows/instances/?slug={slug}"),
            None,
        );
        reply.json()["results"][0]["pk"]
            .as_str()
            .unwrap_or_else(|| panic!("no flow {slug}: {}", reply.body))
            .to_string()
    };
    let authorization = flow("default-provider-authorization-implicit-consent");
    let invalidation = flow("default-provider-invalidation-flow");
    let missing = authed(
        &fleet,
        "POST",
        "/providers/oauth2/",
        Some(&format!(
            r#"{{"name":"proxmox","authorization_flow":"{authorization}","redirect_uris":"https://pve:8006"}}"#
        )),
    );
    assert_eq!(missing.status, 400, "{}", missing.body);
    assert_eq!(
        missing.json(),
        serde_json::json!({
            "invalidation_flow": ["This field is required."],
            "redirect_uris": {"non_field_errors": ["Expected a list of items but got type \"str\"."]}
        })
    );
    let unknown_flow = authed(
        &fleet,
        "POST",
        "/providers/oauth2/",
        Some(&format!(
            r#"{{"name":"proxmox","authorization_flow":"00000000-0000-4000-8000-000000000000","invalidation_flow":"{invalidation}","redirect_uris":[]}}"#
        )),
    );
    assert_eq!(
        unknown_flow.json()["authorization_flow"][0],
        "Invalid pk \"00000000-0000-4000-8000-000000000000\" - object does not exist."
    );
    let created = authed(
        &fleet,
        "POST",
        "/providers/oauth2/",
        Some(&format!(
            r#"{{"name":"proxmox","authorization_flow":"{authorization}","invalidation_flow":"{invalidation}","redirect_uris":[{{"matching_mode":"strict","url":"https://pve1.example.com:8006"}}]}}"#
        )),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let provider = created.json();
    assert_eq!(provider["client_type"], "confidential");
    assert_eq!(provider["client_secret"].as_str().map(str::len), Some(128));

    // The state file is the test's independent view; the request log never holds the token.
    let state = fake.state();
    assert_eq!(
        state["providers"][0]["redirect_uris"][0]["url"],
        "https://pve1.example.com:8006"
    );
    let log = fake.requests_log();
    assert!(log.contains(r#""path": "/api/v3/providers/oauth2/", "status": 201"#));
    assert!(!log.contains(TOKEN) && !state.to_string().contains(TOKEN));
}
