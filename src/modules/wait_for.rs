//! `wait_for`: waits on the target for a port to open/close or a path to appear/disappear (optionally
//! containing a regex). The whole wait is one script loop on the target, so it costs one round trip that
//! lasts up to `timeout` seconds. Like Ansible's module it does not support check mode (skipped there).
//!
//! Ports are probed with bash's `/dev/tcp` (or `nc -z`); `search_regex` is matched with `grep -P` (PCRE,
//! close to Python's `re`), and the match groups are computed on the controller from the matched data.
#![allow(dead_code)]

use serde_json::{Map, Value};

use super::filecommon as fc;
use super::pyregex;
use super::remote::quote;
use super::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv};

pub struct WaitFor;

pub static SPEC: ArgSpec = ArgSpec {
    args: &[
        Arg::opt("host"),
        Arg::opt("port"),
        Arg::opt("path"),
        Arg::opt("state").choices(&["started", "stopped", "present", "absent", "drained"]),
        Arg::opt("delay"),
        Arg::opt("timeout"),
        Arg::opt("connect_timeout"),
        Arg::opt("sleep"),
        Arg::opt("search_regex"),
        Arg::opt("exclude_hosts"),
        Arg::opt("active_connection_states"),
        Arg::opt("msg"),
    ],
    free_form: None,
    any_keys: false,
};

/// The target-side loop. Variables are set before it; it prints `@wait.*` records.
const LOOP: &str = r#"
if command -v bash >/dev/null 2>&1; then tcp=bash
elif command -v nc >/dev/null 2>&1; then tcp=nc
else tcp=; fi
if [ -n "$port" ] && [ -z "$tcp" ]; then orch_fail "wait_for needs bash or nc on the target to check ports"; fi
if [ -n "$regex" ] && printf 'x' | grep -Pq x 2>/dev/null; then gflags=-Pzq; else gflags=-Ezq; fi
connect() {
  if [ "$tcp" = bash ]; then timeout "$ct" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
  else nc -z -w "$ct" "$host" "$port" >/dev/null 2>&1; fi
}
read_port() {
  if [ "$tcp" = bash ]; then timeout "$ct" bash -c 'exec 3<>"/dev/tcp/$0/$1" && cat <&3' "$host" "$port" 2>/dev/null
  else timeout "$ct" nc -w "$ct" "$host" "$port" </dev/null 2>/dev/null; fi
}
# started/present: succeed when the condition holds; stopped/absent: when it no longer does.
check() {
  if [ -n "$path" ]; then
    case "$state" in
      absent) [ ! -e "$path" ] ;;
      *) [ -e "$path" ] || return 1
         [ -z "$regex" ] && return 0
         [ -r "$path" ] && grep $gflags -- "$regex" "$path" 2>/dev/null || return 1
         if [ "$(stat -L -c %s -- "$path")" -le 1048576 ]; then printf '@wait.data='; orch_b64 < "$path"; fi ;;
    esac
  else
    case "$state" in
      stopped) ! connect ;;
      *) if [ -z "$regex" ]; then connect; return; fi
         data=$(read_port | head -c 1048576 | base64 -w 0)
         [ -n "$data" ] || return 1
         printf '%s' "$data" | base64 -d | grep $gflags -- "$regex" || return 1
         orch_kv wait data "$data" ;;
    esac
  fi
}
start=$(date +%s)
[ "$delay" -gt 0 ] && sleep "$delay"
end=$((start + timeout))
if [ -z "$port" ] && [ -z "$path" ]; then
  sleep "$timeout"
else
  while :; do
    if check; then orch_kv wait ok 1; break; fi
    [ "$(date +%s)" -ge "$end" ] && break
    sleep "$pause"
  done
fi
orch_kv wait elapsed "$(( $(date +%s) - start ))"
"#;

fn num(args: &Args, name: &str, default: i64) -> Result<i64, ModuleError> {
    Ok(args.int(name)?.unwrap_or(default))
}

#[async_trait::async_trait]
impl Module for WaitFor {
    fn name(&self) -> &'static str {
        "wait_for"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let host = args.str("host")?.unwrap_or_else(|| "127.0.0.1".into());
        let port = args.int("port")?;
        let path = args.str("path")?;
        let state = args.choice(
            "state",
            &["started", "stopped", "present", "absent", "drained"],
            "started",
        )?;
        let delay = num(args, "delay", 0)?;
        let timeout = num(args, "timeout", 300)?;
        let connect_timeout = num(args, "connect_timeout", 5)?;
        let sleep = args.float("sleep")?.unwrap_or(1.0);
        let regex = args.str("search_regex")?;
        let msg = args.str("msg")?;

        let early = |m: &str| {
            let mut result = Map::new();
            result.insert("elapsed".into(), 0.into());
            ModuleError::with_result(m, result)
        };
        if port.is_some() && path.is_some() {
            return Err(early(
                "port and path parameter can not both be passed to wait_for",
            ));
        }
        if path.is_some() && state == "stopped" {
            return Err(early(
                "state=stopped should only be used for checking a port in the wait_for module",
            ));
        }
        if path.is_some() && state == "drained" {
            return Err(early(
                "state=drained should only be used for checking a port in the wait_for module",
            ));
        }
        if args.has("exclude_hosts") && state != "drained" {
            return Err(early("exclude_hosts should only be with state=drained"));
        }
        if state == "drained" {
            return Err(early("wait_for: state=drained is not supported by orch"));
        }
        if env.check_mode() {
            return Ok(Plan {
                skip_in_check: Some("remote module (wait_for) does not support check mode".into()),
                ..Plan::default()
            });
        }

        let script = format!(
            "host={}\nport={}\npath={}\nstate={}\ndelay={delay}\ntimeout={timeout}\nct={connect_timeout}\npause={sleep}\nregex={}\n{LOOP}",
            quote(&host),
            port.map(|p| p.to_string()).unwrap_or_default(),
            quote(path.as_deref().unwrap_or("")),
            quote(&state),
            quote(regex.as_deref().unwrap_or("")),
        );
        let (records, out) = fc::run_script(env, &script, None).await?;
        let Some(elapsed) = records
            .get("wait", "elapsed")
            .and_then(|e| e.parse::<i64>().ok())
        else {
            return Err(fc::script_failed("wait_for", &out));
        };
        let waited_for_something = port.is_some() || path.is_some();
        if waited_for_something && !records.flag("wait", "ok") {
            let default_msg = match (&path, port, &regex, state.as_str()) {
                (_, Some(p), _, "stopped") => {
                    format!("Timeout when waiting for {host}:{p} to stop.")
                }
                (Some(f), _, _, "absent") => format!("Timeout when waiting for {f} to be absent."),
                (_, Some(p), Some(r), _) => {
                    format!("Timeout when waiting for search string {r} in {host}:{p}")
                }
                (_, Some(p), None, _) => format!("Timeout when waiting for {host}:{p}"),
                (Some(f), _, Some(r), _) => {
                    format!("Timeout when waiting for search string {r} in {f}")
                }
                (Some(f), _, None, _) => format!("Timeout when waiting for file {f}"),
                _ => "Timeout".to_string(),
            };
            let mut result = Map::new();
            result.insert("elapsed".into(), elapsed.into());
            return Err(ModuleError::with_result(msg.unwrap_or(default_msg), result));
        }

        let (mut groups, mut groupdict) = (Vec::new(), Map::new());
        if let (Some(pattern), Some(data)) = (&regex, records.bytes("wait", "data")) {
            if let Ok(re) = pyregex::compile(pattern) {
                if let Some(caps) = re.captures(&data) {
                    let text = |m: Option<regex::bytes::Match>| {
                        m.map(|m| Value::from(String::from_utf8_lossy(m.as_bytes()).into_owned()))
                            .unwrap_or(Value::Null)
                    };
                    groups = (1..caps.len()).map(|i| text(caps.get(i))).collect();
                    for name in re.capture_names().flatten() {
                        groupdict.insert(name.into(), text(caps.name(name)));
                    }
                }
            }
        }
        let mut result = Map::new();
        result.insert("state".into(), state.into());
        result.insert("port".into(), port.map(Value::from).unwrap_or(Value::Null));
        result.insert(
            "search_regex".into(),
            regex.map(Value::from).unwrap_or(Value::Null),
        );
        result.insert("match_groups".into(), Value::Array(groups));
        result.insert("match_groupdict".into(), Value::Object(groupdict));
        result.insert("path".into(), path.map(Value::from).unwrap_or(Value::Null));
        result.insert("elapsed".into(), elapsed.into());
        Ok(Plan::unchanged(result))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testenv::{args, failure, run_module, LocalEnv};
    use super::*;

    #[tokio::test]
    async fn path_present_with_regex_and_groups() {
        let env = LocalEnv::new();
        let f = env.path("log");
        std::fs::write(&f, "starting\nready on port 8080\n").unwrap();
        let out = run_module(
            &WaitFor,
            &env,
            &args(
                "wait_for",
                json!({"path": f, "search_regex": r"ready on port (?P<port>\d+)", "timeout": 5}),
            ),
        )
        .await
        .unwrap();
        assert!(!out.changed);
        assert_eq!(out.result["match_groups"], json!(["8080"]));
        assert_eq!(out.result["match_groupdict"], json!({"port": "8080"}));
        assert!(out.result["elapsed"].as_i64().unwrap() <= 1);
    }

    #[tokio::test]
    async fn timeouts_report_ansible_messages() {
        let env = LocalEnv::new();
        let f = env.path("never");
        let (msg, result) = failure(
            run_module(
                &WaitFor,
                &env,
                &args("wait_for", json!({"path": f, "timeout": 1, "sleep": 0.2})),
            )
            .await,
        );
        assert_eq!(msg, format!("Timeout when waiting for file {f}"));
        assert!(result["elapsed"].as_i64().unwrap() >= 1);
        let (msg, _) = failure(
            run_module(
                &WaitFor,
                &env,
                &args(
                    "wait_for",
                    json!({"port": 1, "timeout": 1, "connect_timeout": 1}),
                ),
            )
            .await,
        );
        assert_eq!(msg, "Timeout when waiting for 127.0.0.1:1");
        let (msg, _) = failure(
            run_module(
                &WaitFor,
                &env,
                &args(
                    "wait_for",
                    json!({"port": 1, "timeout": 1, "msg": "custom"}),
                ),
            )
            .await,
        );
        assert_eq!(msg, "custom");
        let (msg, _) = failure(
            run_module(
                &WaitFor,
                &env,
                &args("wait_for", json!({"port": 1, "path": f})),
            )
            .await,
        );
        assert_eq!(
            msg,
            "port and path parameter can not both be passed to wait_for"
        );
    }

    #[tokio::test]
    async fn port_started_and_stopped() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let env = LocalEnv::new();
        let out = run_module(
            &WaitFor,
            &env,
            &args("wait_for", json!({"port": port, "timeout": 5})),
        )
        .await
        .unwrap();
        assert_eq!(out.result["state"], json!("started"));
        assert_eq!(out.result["port"], json!(port));
        drop(listener);
        let out = run_module(
            &WaitFor,
            &env,
            &args(
                "wait_for",
                json!({"port": port, "state": "stopped", "timeout": 5}),
            ),
        )
        .await
        .unwrap();
        assert_eq!(out.result["state"], json!("stopped"));
    }

    #[tokio::test]
    async fn absent_path_and_check_mode_skip() {
        let mut env = LocalEnv::new();
        let out = run_module(
            &WaitFor,
            &env,
            &args(
                "wait_for",
                json!({"path": env.path("gone"), "state": "absent", "timeout": 2}),
            ),
        )
        .await
        .unwrap();
        assert!(!out.changed);
        env.check = true;
        let out = run_module(&WaitFor, &env, &args("wait_for", json!({"port": 1})))
            .await
            .unwrap();
        assert_eq!(
            out.skipped.as_deref(),
            Some("remote module (wait_for) does not support check mode")
        );
        assert_eq!(env.runs(), 1, "check mode must not contact the host");
    }
}
