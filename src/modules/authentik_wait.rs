//! `authentik_wait`: waits on the target until Authentik serves its API: first
//! `GET /-/health/ready/` answers 200 (204 before 2024.8), then, with a token, an authenticated
//! `GET /api/v3/core/users/me/` answers 200 (the bootstrap blueprint runs after "ready", so the
//! bootstrap token is refused for a while). Like `wait_for`, the whole wait is one curl loop on the
//! target (one round trip, bounded by `timeout`), done in `plan`, and skipped in check mode: on a host
//! being set up, Authentik is not running yet, so there is nothing honest to predict.
//!
//! The token reaches curl as a config file on stdin (`curl -K -`), never in argv, and is declared a
//! secret in the result.
#![allow(dead_code)]

use serde_json::{Map, Value};

use super::filecommon as fc;
use super::remote::quote;
use super::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv, SECRETS_KEY};

pub struct AuthentikWait;

pub static SPEC: ArgSpec = ArgSpec {
    args: &[
        Arg::opt("url"),
        Arg::opt("token"),
        Arg::opt("timeout"),
        Arg::opt("delay"),
        Arg::opt("sleep"),
        Arg::opt("request_timeout"),
        Arg::opt("validate_certs"),
    ],
    free_form: None,
    any_keys: false,
};

const READY_PATH: &str = "/-/health/ready/";
const AUTH_PATH: &str = "/api/v3/core/users/me/";
const VERSION_PATH: &str = "/api/v3/admin/version/";

/// The target-side loop; variables are set before it. Prints `@wait.*` records.
const LOOP: &str = r#"
command -v curl >/dev/null 2>&1 || orch_fail "authentik_wait needs curl on the target (apt install curl)"
cfg=$(cat)
probe() {
  if [ "$2" = auth ]; then
    printf '%s\n' "$cfg" | curl -s $insecure -o /dev/null -w '%{http_code}' --connect-timeout 5 --max-time "$rt" -K - -- "$url$1" 2>/dev/null
  else
    curl -s $insecure -o /dev/null -w '%{http_code}' --connect-timeout 5 --max-time "$rt" -- "$url$1" </dev/null 2>/dev/null
  fi
}
start=$(date +%s)
end=$((start + timeout))
[ "$delay" -gt 0 ] && sleep "$delay"
# wait_stage NAME PATH MODE OK_STATUSES: loops until the status is one of OK_STATUSES or time is up.
wait_stage() {
  while :; do
    st=$(probe "$2" "$3") || :
    [ -n "$st" ] || st=000
    orch_kv "$1" status "$st"
    case " $4 " in *" $st "*) orch_kv "$1" ok 1; orch_kv "$1" elapsed "$(( $(date +%s) - start ))"; return 0 ;; esac
    [ "$(date +%s)" -ge "$end" ] && return 1
    sleep "$pause"
  done
}
if wait_stage ready "$ready_path" anon "200 204"; then
  if [ -z "$cfg" ] || wait_stage auth "$auth_path" auth 200; then
    orch_kv wait ok 1
    if [ -n "$cfg" ]; then
      printf '@wait.version='
      printf '%s\n' "$cfg" | curl -s $insecure --max-time "$rt" -K - -- "$url$version_path" 2>/dev/null | orch_b64
    fi
  fi
fi
orch_kv wait elapsed "$(( $(date +%s) - start ))"
"#;

/// curl's config syntax for a quoted header value.
fn curl_config(token: &str) -> String {
    let escaped = token.replace('\\', "\\\\").replace('"', "\\\"");
    format!("header = \"Authorization: Bearer {escaped}\"\n")
}

/// What a status code means at each stage, for the timeout message.
fn explain(stage: &str, status: &str) -> &'static str {
    match (stage, status) {
        (_, "000") => "no answer: nothing listens there yet, or the connection timed out",
        (_, "502") => "authentik is still starting",
        ("ready", "503") => "not ready: PostgreSQL (or Redis before 2025.10) is not reachable yet",
        ("ready", "404") => "not found: is this an authentik server?",
        ("auth", "401" | "403") => {
            "the token was refused. The bootstrap token only exists once bootstrap has run, and \
             AUTHENTIK_BOOTSTRAP_TOKEN is read only on the first start of a fresh database: if the \
             instance was set up before with another token, use a token that exists (or reset the \
             database volume)"
        }
        _ => "unexpected answer",
    }
}

#[async_trait::async_trait]
impl Module for AuthentikWait {
    fn name(&self) -> &'static str {
        "authentik_wait"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let url = args
            .str("url")?
            .unwrap_or_else(|| "http://127.0.0.1:9000".into());
        let url = url.trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ModuleError::msg(format!(
                "authentik_wait: url must start with http:// or https://, got {url}"
            )));
        }
        let token = args.str("token")?.filter(|t| !t.is_empty());
        if token.as_deref().is_some_and(|t| t.contains(['\n', '\r'])) {
            return Err(ModuleError::msg(
                "authentik_wait: the token contains a line break",
            ));
        }
        let timeout = args.int("timeout")?.unwrap_or(300).max(0);
        let delay = args.int("delay")?.unwrap_or(0).max(0);
        let pause = args.float("sleep")?.unwrap_or(2.0).max(0.1);
        let request_timeout = args.int("request_timeout")?.unwrap_or(10).max(1);
        let insecure = if args.bool("validate_certs", true)? {
            ""
        } else {
            "-k"
        };
        let mut secrets = Map::new();
        if let Some(token) = &token {
            secrets.insert(SECRETS_KEY.into(), Value::from(vec![token.clone()]));
        }
        if env.check_mode() {
            // Skipped in check mode (the executor honours skip_in_check whatever `changed` says).
            return Ok(Plan {
                changed: true,
                skip_in_check: Some(
                    "authentik_wait does not run in check mode (Authentik may not be running yet)"
                        .into(),
                ),
                result: secrets,
                ..Plan::default()
            });
        }

        let script = format!(
            "url={}\ntimeout={timeout}\ndelay={delay}\npause={pause}\nrt={request_timeout}\ninsecure={insecure}\n\
             ready_path={READY_PATH}\nauth_path={AUTH_PATH}\nversion_path={VERSION_PATH}\n{LOOP}",
            quote(&url)
        );
        let stdin = token.as_deref().map(curl_config).unwrap_or_default();
        let (records, out) = fc::run_script(env, &script, Some(stdin.into_bytes())).await?;
        let Some(elapsed) = records
            .get("wait", "elapsed")
            .and_then(|e| e.parse::<i64>().ok())
        else {
            return Err(fc::script_failed("authentik_wait", &out));
        };

        let mut result = secrets;
        result.insert("url".into(), url.clone().into());
        result.insert("elapsed".into(), elapsed.into());
        let status_of = |stage: &str| records.get(stage, "status").map(str::to_string);
        if !records.flag("wait", "ok") {
            let (stage, path) = if records.flag("ready", "ok") {
                ("auth", AUTH_PATH)
            } else {
                ("ready", READY_PATH)
            };
            let status = status_of(stage).unwrap_or_else(|| "000".into());
            result.insert("stage".into(), stage.into());
            result.insert("status".into(), status.parse::<i64>().unwrap_or(0).into());
            let what = if stage == "ready" {
                "to be ready"
            } else {
                "to accept the API token"
            };
            return Err(ModuleError::with_result(
                format!(
                    "Timeout after {timeout}s waiting for authentik at {url} {what} (stage '{stage}'): \
                     GET {path} last answered HTTP {status} ({})",
                    explain(stage, &status)
                ),
                result,
            ));
        }
        let version = records
            .bytes("wait", "version")
            .and_then(|body| serde_json::from_slice::<Value>(&body).ok())
            .and_then(|v| v.get("version_current").cloned())
            .filter(Value::is_string)
            .unwrap_or(Value::Null);
        result.insert("status".into(), 200.into());
        result.insert(
            "ready_elapsed".into(),
            records
                .get("ready", "elapsed")
                .and_then(|e| e.parse::<i64>().ok())
                .into(),
        );
        result.insert("authenticated".into(), token.is_some().into());
        result.insert("version".into(), version);
        Ok(Plan::unchanged(result))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    use serde_json::json;

    use super::super::testenv::{args, failure, run_module, LocalEnv};
    use super::*;

    const TOKEN: &str = "tok-\"quoted\\-4711";

    /// Request paths with their Authorization header, in arrival order.
    type RequestLog = Arc<Mutex<Vec<(String, Option<String>)>>>;

    /// A fake authentik: ready after `ready_after` ready probes, the token accepted after
    /// `auth_after` authenticated probes. Records every request line and Authorization header.
    struct Fake {
        port: u16,
        log: RequestLog,
    }

    impl Fake {
        fn start(ready_after: usize, auth_after: usize) -> Fake {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let log: RequestLog = Arc::default();
            let shared = log.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut first = String::new();
                    let _ = reader.read_line(&mut first);
                    let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
                    let mut auth = None;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                            break;
                        }
                        if let Some(v) = line.strip_prefix("Authorization: ") {
                            auth = Some(v.trim().to_string());
                        }
                    }
                    let (status, body) = {
                        let mut log = shared.lock().unwrap();
                        log.push((path.clone(), auth.clone()));
                        let count = |p: &str| log.iter().filter(|(q, _)| q == p).count();
                        let good = auth.as_deref() == Some(&format!("Bearer {TOKEN}"));
                        match path.as_str() {
                            READY_PATH if count(READY_PATH) > ready_after => (200, String::new()),
                            READY_PATH => (503, String::new()),
                            AUTH_PATH if good && count(AUTH_PATH) > auth_after => {
                                (200, "{}".into())
                            }
                            VERSION_PATH if good => {
                                (200, r#"{"version_current":"2026.5.6"}"#.to_string())
                            }
                            _ => (403, r#"{"detail":"Token invalid/expired"}"#.to_string()),
                        }
                    };
                    let mut out = stream;
                    let _ = write!(
                        out,
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            });
            Fake { port, log }
        }

        fn url(&self) -> String {
            format!("http://127.0.0.1:{}", self.port)
        }
    }

    #[tokio::test]
    async fn waits_for_ready_then_for_the_token() {
        let fake = Fake::start(2, 2);
        let env = LocalEnv::new();
        let a = args(
            "authentik_wait",
            json!({"url": format!("{}/", fake.url()), "token": TOKEN, "timeout": 30, "sleep": 0.1}),
        );
        let out = run_module(&AuthentikWait, &env, &a).await.unwrap();
        assert!(!out.changed);
        assert_eq!(out.result["version"], json!("2026.5.6"));
        assert_eq!(out.result["authenticated"], json!(true));
        assert_eq!(out.result[SECRETS_KEY], json!([TOKEN]));
        let log = fake.log.lock().unwrap();
        let ready = log.iter().filter(|(p, _)| p == READY_PATH).count();
        let authed = log.iter().filter(|(p, _)| p == AUTH_PATH).count();
        assert_eq!((ready, authed), (3, 3), "{log:?}");
        // The token travels in the header only; the health probe carries none.
        assert!(log
            .iter()
            .filter(|(p, _)| p == READY_PATH)
            .all(|(_, a)| a.is_none()));
        let first_auth = log.iter().position(|(p, _)| p == AUTH_PATH).unwrap();
        let last_ready = log.iter().rposition(|(p, _)| p == READY_PATH).unwrap();
        assert!(
            last_ready < first_auth,
            "authenticated probes only after ready"
        );
    }

    #[tokio::test]
    async fn without_a_token_only_readiness_is_awaited() {
        let fake = Fake::start(0, 0);
        let env = LocalEnv::new();
        let out = run_module(
            &AuthentikWait,
            &env,
            &args("authentik_wait", json!({"url": fake.url(), "timeout": 5})),
        )
        .await
        .unwrap();
        assert_eq!(out.result["authenticated"], json!(false));
        assert_eq!(out.result["version"], Value::Null);
        assert!(fake
            .log
            .lock()
            .unwrap()
            .iter()
            .all(|(p, _)| p == READY_PATH));
    }

    #[tokio::test]
    async fn timeouts_name_the_stage_and_the_last_status() {
        let env = LocalEnv::new();
        let never_ready = Fake::start(usize::MAX, 0);
        let (msg, result) = failure(
            run_module(
                &AuthentikWait,
                &env,
                &args(
                    "authentik_wait",
                    json!({"url": never_ready.url(), "token": TOKEN, "timeout": 1, "sleep": 0.2}),
                ),
            )
            .await,
        );
        assert!(
            msg.starts_with(&format!(
                "Timeout after 1s waiting for authentik at {} to be ready (stage 'ready'): GET /-/health/ready/ last answered HTTP 503",
                never_ready.url()
            )),
            "{msg}"
        );
        assert_eq!(result["stage"], json!("ready"));
        assert_eq!(result["status"], json!(503));
        assert_eq!(result[SECRETS_KEY], json!([TOKEN]));

        let refused = Fake::start(0, usize::MAX);
        let (msg, result) = failure(
            run_module(
                &AuthentikWait,
                &env,
                &args(
                    "authentik_wait",
                    json!({"url": refused.url(), "token": "wrong-token", "timeout": 1, "sleep": 0.2}),
                ),
            )
            .await,
        );
        assert!(msg.contains("(stage 'auth'): GET /api/v3/core/users/me/ last answered HTTP 403 (the token was refused"), "{msg}");
        assert!(!msg.contains("wrong-token"));
        assert_eq!(result["stage"], json!("auth"));

        // Nothing listening: status 000.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (msg, _) = failure(
            run_module(
                &AuthentikWait,
                &env,
                &args(
                    "authentik_wait",
                    json!({"url": format!("http://127.0.0.1:{port}"), "timeout": 1, "sleep": 0.2}),
                ),
            )
            .await,
        );
        assert!(msg.contains("last answered HTTP 000 (no answer"), "{msg}");
    }

    #[tokio::test]
    async fn check_mode_skips_without_contacting_the_host() {
        let mut env = LocalEnv::new();
        env.check = true;
        let out = run_module(
            &AuthentikWait,
            &env,
            &args("authentik_wait", json!({"token": TOKEN})),
        )
        .await
        .unwrap();
        assert!(out.skipped.is_some());
        assert_eq!(env.runs(), 0);
        assert_eq!(out.result[SECRETS_KEY], json!([TOKEN]));
    }

    #[test]
    fn the_token_is_escaped_for_curl_config() {
        assert_eq!(
            curl_config(TOKEN),
            "header = \"Authorization: Bearer tok-\\\"quoted\\\\-4711\"\n"
        );
    }
}
