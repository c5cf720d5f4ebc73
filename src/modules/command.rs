//! `command`, `shell` and `raw`: run a command on the target.
//!
//! `creates`, `removes` and orch's `unless` (a probe command whose success means "already done") are
//! checked in the plan's single round trip, so a rerun reports ok without running the command.

use std::time::Instant;

use serde_json::{json, Map, Value};

use super::remote::quote;
use super::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv};

pub struct Command;
pub struct Shell;
pub struct Raw;

const COMMON_ARGS: &[Arg] = &[
    Arg::opt("cmd"),
    Arg::opt("argv"),
    Arg::opt("creates"),
    Arg::opt("removes"),
    Arg::opt("unless"),
    Arg::opt("chdir"),
    Arg::opt("stdin"),
    Arg::opt("stdin_add_newline"),
    Arg::opt("strip_empty_ends"),
    Arg::opt("executable"),
    Arg::opt("expand_argument_vars"),
    Arg::opt("warn"),
];

static COMMAND_SPEC: ArgSpec = ArgSpec {
    args: COMMON_ARGS,
    free_form: Some("cmd"),
    any_keys: false,
};
static SHELL_SPEC: ArgSpec = ArgSpec {
    args: COMMON_ARGS,
    free_form: Some("cmd"),
    any_keys: false,
};
static RAW_SPEC: ArgSpec = ArgSpec {
    args: &[Arg::opt("cmd"), Arg::opt("executable")],
    free_form: Some("cmd"),
    any_keys: false,
};

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Command,
    Shell,
    Raw,
}

/// The shell text that runs the user's command.
fn command_script(kind: Kind, args: &Args) -> Result<String, ModuleError> {
    let body = match kind {
        Kind::Command => {
            let words: Vec<String> = match args.value("argv") {
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect(),
                _ => {
                    let cmd = args
                        .req_str("cmd")
                        .map_err(|_| ModuleError::msg("no command given"))?;
                    shlex::split(&cmd).ok_or_else(|| {
                        ModuleError::msg(format!(
                            "cannot split the command line (unbalanced quotes?): {cmd}"
                        ))
                    })?
                }
            };
            if words.is_empty() {
                return Err(ModuleError::msg("no command given"));
            }
            words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
        }
        Kind::Shell => {
            let cmd = args.req_str("cmd")?;
            match args.str("executable")? {
                Some(exe) => format!("{} -c {}", quote(&exe), quote(&cmd)),
                None => cmd,
            }
        }
        Kind::Raw => args.req_str("cmd")?,
    };
    Ok(match args.str("chdir")? {
        Some(dir) => format!("cd {} || exit 1\n{body}", quote(&dir)),
        None => body,
    })
}

fn display_cmd(kind: Kind, args: &Args) -> Value {
    match (kind, args.value("argv")) {
        (Kind::Command, Some(argv)) => argv.clone(),
        (Kind::Command, None) => {
            let cmd = args.str("cmd").ok().flatten().unwrap_or_default();
            Value::Array(
                shlex::split(&cmd)
                    .unwrap_or_default()
                    .into_iter()
                    .map(Value::String)
                    .collect(),
            )
        }
        _ => Value::String(args.str("cmd").ok().flatten().unwrap_or_default()),
    }
}

async fn plan(kind: Kind, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
    command_script(kind, args)?;
    let creates = args.str("creates")?;
    let removes = args.str("removes")?;
    let unless = args.str("unless")?;
    if creates.is_some() || removes.is_some() || unless.is_some() {
        // One round trip answers all three probes.
        let mut probe = String::new();
        if let Some(path) = &creates {
            probe.push_str(&format!(
                "if [ -e {} ]; then echo creates; exit 0; fi\n",
                glob_path(path)
            ));
        }
        if let Some(path) = &removes {
            probe.push_str(&format!(
                "if ! [ -e {} ]; then echo removes; exit 0; fi\n",
                glob_path(path)
            ));
        }
        if let Some(cmd) = &unless {
            let chdir = match args.str("chdir")? {
                Some(d) => format!("cd {} 2>/dev/null && ", quote(&d)),
                None => String::new(),
            };
            probe.push_str(&format!(
                "if ( {chdir}{cmd} ) >/dev/null 2>&1 </dev/null; then echo unless; exit 0; fi\n"
            ));
        }
        probe.push_str("echo run\n");
        let out = env.run(&probe, None).await?;
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let verb = if env.check_mode() {
            "Would not run"
        } else {
            "Did not run"
        };
        let skipped = match answer.as_str() {
            "creates" => Some(format!(
                "{verb} command since '{}' exists",
                creates.unwrap_or_default()
            )),
            "removes" => Some(format!(
                "{verb} command since '{}' does not exist",
                removes.unwrap_or_default()
            )),
            "unless" => Some(format!("{verb} command since the unless probe succeeded")),
            "run" => None,
            _ => {
                return Err(ModuleError::msg(format!(
                    "the creates/removes/unless probe failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )))
            }
        };
        if let Some(msg) = skipped {
            let mut result = Map::new();
            result.insert("cmd".into(), display_cmd(kind, args));
            result.insert("rc".into(), json!(0));
            result.insert(
                "stdout".into(),
                json!(format!("skipped, {}", msg.to_lowercase())),
            );
            result.insert(
                "stdout_lines".into(),
                json!([format!("skipped, {}", msg.to_lowercase())]),
            );
            result.insert("stderr".into(), json!(""));
            result.insert("stderr_lines".into(), json!([]));
            result.insert("msg".into(), json!(msg));
            return Ok(Plan::unchanged(result));
        }
    }
    Ok(Plan {
        changed: true,
        skip_in_check: Some("Command would have run if not in check mode".into()),
        ..Plan::default()
    })
}

/// A path for `[ -e ]` that still expands globs (creates: /etc/foo*.conf) but not other shell syntax.
fn glob_path(path: &str) -> String {
    if path.contains(['*', '?', '[']) {
        let escaped: String = path
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "*?[]/._-".contains(c) {
                    c.to_string()
                } else {
                    format!("\\{c}")
                }
            })
            .collect();
        escaped
    } else {
        quote(path)
    }
}

async fn apply(
    kind: Kind,
    env: &dyn TaskEnv,
    args: &Args,
) -> Result<Map<String, Value>, ModuleError> {
    let script = command_script(kind, args)?;
    let stdin = match args.str("stdin")? {
        Some(mut s) => {
            if args.bool("stdin_add_newline", true)? {
                s.push('\n');
            }
            Some(s.into_bytes())
        }
        None => None,
    };
    let start_wall = now_string();
    let started = Instant::now();
    let out = env.run(&script, stdin).await?;
    let delta = started.elapsed();
    let strip = args.bool("strip_empty_ends", true)?;
    let mut stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let mut stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if strip {
        stdout = stdout.trim_end_matches(['\n', '\r']).to_string();
        stderr = stderr.trim_end_matches(['\n', '\r']).to_string();
    }
    let mut result = Map::new();
    result.insert("cmd".into(), display_cmd(kind, args));
    result.insert("rc".into(), json!(out.rc));
    result.insert("start".into(), json!(start_wall));
    result.insert("end".into(), json!(now_string()));
    result.insert("delta".into(), json!(format_delta(delta)));
    result.insert(
        "stdout_lines".into(),
        json!(stdout.lines().collect::<Vec<_>>()),
    );
    result.insert(
        "stderr_lines".into(),
        json!(stderr.lines().collect::<Vec<_>>()),
    );
    result.insert("stdout".into(), json!(stdout));
    result.insert("stderr".into(), json!(stderr));
    if out.rc != 0 {
        result.insert("failed".into(), json!(true));
        result.insert("msg".into(), json!("non-zero return code"));
    } else {
        result.insert("msg".into(), json!(""));
    }
    Ok(result)
}

/// `2026-11-28 15:10:55.640791` (UTC), the shape of Ansible's start/end fields.
fn now_string() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        now.subsec_micros()
    )
}

fn format_delta(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    format!(
        "{}:{:02}:{:02}.{:06}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        d.subsec_micros()
    )
}

macro_rules! command_module {
    ($ty:ident, $name:literal, $kind:expr, $spec:ident) => {
        #[async_trait::async_trait]
        impl Module for $ty {
            fn name(&self) -> &'static str {
                $name
            }
            fn spec(&self) -> &'static ArgSpec {
                &$spec
            }
            async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
                plan($kind, env, args).await
            }
            async fn apply(
                &self,
                env: &dyn TaskEnv,
                args: &Args,
                _plan: Plan,
            ) -> Result<Map<String, Value>, ModuleError> {
                apply($kind, env, args).await
            }
        }
    };
}

command_module!(Command, "command", Kind::Command, COMMAND_SPEC);
command_module!(Shell, "shell", Kind::Shell, SHELL_SPEC);
command_module!(Raw, "raw", Kind::Raw, RAW_SPEC);

#[cfg(test)]
mod tests {
    use super::*;

    fn args(map: Value) -> Args {
        match map {
            Value::Object(m) => Args::new("command", m),
            _ => Args::default(),
        }
    }

    #[test]
    fn command_quotes_each_word_and_shell_does_not() {
        let a = args(json!({"cmd": "echo 'a b' $HOME"}));
        assert_eq!(
            command_script(Kind::Command, &a).expect("script"),
            "echo 'a b' '$HOME'"
        );
        assert_eq!(
            command_script(Kind::Shell, &a).expect("script"),
            "echo 'a b' $HOME"
        );
    }

    #[test]
    fn chdir_and_argv() {
        let a = args(json!({"argv": ["ls", "-l", "my dir"], "chdir": "/tmp"}));
        assert_eq!(
            command_script(Kind::Command, &a).expect("script"),
            "cd /tmp || exit 1\nls -l 'my dir'"
        );
    }
}
