//! `systemd_service` (also `systemd`): unit state, enablement and masking through `systemctl`, with the
//! semantics of Ansible's module: `started`/`stopped` change only when needed, `restarted`/`reloaded`
//! always change, `enabled`/`masked` are idempotent, `daemon_reload` alone never reports a change.
//!
//! Plan: one probe round trip (`systemctl show NAME`, `systemctl is-enabled NAME`, the SysV script and
//! its rc links). Apply: one script that runs the planned steps in Ansible's order (daemon-reload,
//! daemon-reexec, mask/unmask, enable/disable, start/stop/restart/reload) and stops at the first failure.
//! Ansible runs `systemctl show` after daemon-reload; orch probes before it, which sees the same unit
//! states because systemd loads a new or changed unit file when it is referenced.
//!
//! The probe/decide/apply parts are shared with `service`, which dispatches here on systemd hosts.
#![allow(dead_code)]

use serde_json::{Map, Value};

use super::filecommon::{self as fc, Records};
use super::remote::quote;
use super::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv};

pub struct SystemdService;

pub static SPEC: ArgSpec = ArgSpec {
    args: &[
        Arg::opt("name").aliases(&["service", "unit"]),
        Arg::opt("state").choices(&STATES),
        Arg::opt("enabled"),
        Arg::opt("masked"),
        Arg::opt("daemon_reload").aliases(&["daemon-reload"]),
        Arg::opt("daemon_reexec").aliases(&["daemon-reexec"]),
        Arg::opt("scope").choices(&["system", "user", "global"]),
        Arg::opt("no_block"),
        Arg::opt("force"),
    ],
    free_form: None,
    any_keys: false,
};

pub const STATES: [&str; 4] = ["started", "stopped", "restarted", "reloaded"];

/// `unit_file_state`s that `systemctl is-enabled` prints for units systemd knows (man systemctl, v244).
const VALID_ENABLED_STATES: &[&str] = &[
    "enabled",
    "enabled-runtime",
    "linked",
    "linked-runtime",
    "masked",
    "masked-runtime",
    "static",
    "indirect",
    "disabled",
    "generated",
    "transient",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceState {
    Started,
    Stopped,
    Restarted,
    Reloaded,
}

impl ServiceState {
    pub fn parse(s: &str) -> Option<ServiceState> {
        match s {
            "started" => Some(ServiceState::Started),
            "stopped" => Some(ServiceState::Stopped),
            "restarted" => Some(ServiceState::Restarted),
            "reloaded" => Some(ServiceState::Reloaded),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Started => "started",
            ServiceState::Stopped => "stopped",
            ServiceState::Restarted => "restarted",
            ServiceState::Reloaded => "reloaded",
        }
    }
}

/// What a task asks of one systemd unit (or of the manager alone, without `name`).
#[derive(Clone, Debug)]
pub struct Request {
    pub name: Option<String>,
    pub state: Option<ServiceState>,
    pub enabled: Option<bool>,
    pub masked: Option<bool>,
    pub daemon_reload: bool,
    pub daemon_reexec: bool,
    /// `system`, `user` or `global`.
    pub scope: String,
    pub no_block: bool,
    pub force: bool,
}

impl Request {
    /// The request with Ansible's argument checks (required_one_of, required_by, no globs).
    pub fn from_args(args: &Args) -> Result<Request, ModuleError> {
        let state = match args.str("state")? {
            None => None,
            Some(s) => Some(ServiceState::parse(&s).ok_or_else(|| {
                ModuleError::msg(format!(
                    "value of state must be one of: {}, got: {s}",
                    STATES.join(", ")
                ))
            })?),
        };
        let request = Request {
            name: args.str("name")?,
            state,
            enabled: opt_bool(args, "enabled")?,
            masked: opt_bool(args, "masked")?,
            daemon_reload: args.bool("daemon_reload", false)?,
            daemon_reexec: args.bool("daemon_reexec", false)?,
            scope: args.choice("scope", &["system", "user", "global"], "system")?,
            no_block: args.bool("no_block", false)?,
            force: args.bool("force", false)?,
        };
        request.validate()?;
        Ok(request)
    }

    pub fn validate(&self) -> Result<(), ModuleError> {
        if self.state.is_none()
            && self.enabled.is_none()
            && self.masked.is_none()
            && !self.daemon_reload
            && !self.daemon_reexec
        {
            return Err(ModuleError::msg(
                "one of the following is required: state, enabled, masked, daemon_reload, daemon_reexec",
            ));
        }
        if self.name.is_none() {
            for (given, arg) in [
                (self.state.is_some(), "state"),
                (self.enabled.is_some(), "enabled"),
                (self.masked.is_some(), "masked"),
            ] {
                if given {
                    return Err(ModuleError::msg(format!(
                        "missing parameter(s) required by '{arg}': name"
                    )));
                }
            }
        }
        if let Some(name) = &self.name {
            for glob in ["*", "?", "["] {
                if name.contains(glob) {
                    return Err(ModuleError::msg(format!(
                        "This module does not currently support using glob patterns, found '{glob}' in service name: {name}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The options every `systemctl` call of this task gets.
    fn systemctl_options(&self) -> String {
        let mut options = String::new();
        if self.scope != "system" {
            options.push_str(&format!(" --{}", self.scope));
        }
        if self.no_block {
            options.push_str(" --no-block");
        }
        if self.force {
            options.push_str(" --force");
        }
        options
    }
}

/// An optional boolean argument (`None` when absent).
pub fn opt_bool(args: &Args, name: &str) -> Result<Option<bool>, ModuleError> {
    if args.has(name) {
        args.bool(name, false).map(Some)
    } else {
        Ok(None)
    }
}

/// Shell functions for probe and apply scripts (after `filecommon::SHELL_LIB`):
/// `sctl` is systemctl with the task's options, `orch_capture TAG CMD...` records a command's rc, stdout
/// and stderr (through files, so that a daemon keeping its output open cannot hang the session),
/// `orch_sd_enabled` is Ansible's "is the unit enabled" test, `orch_sysv_enabled` its rc-link test.
const SYSTEMD_LIB: &str = r#"orch_sctl_bin=$(command -v systemctl) || orch_fail "Failed to find required executable \"systemctl\" in paths: $PATH"
[ -n "${XDG_RUNTIME_DIR:-}" ] || { XDG_RUNTIME_DIR=/run/user/$(id -u); export XDG_RUNTIME_DIR; }
sctl() { "$orch_sctl_bin" $sctl_opts "$@"; }
orch_capture() {
  _t=$1; shift
  _of=$(mktemp) && _ef=$(mktemp) || orch_fail "mktemp failed"
  "$@" >"$_of" 2>"$_ef" </dev/null; _r=$?
  orch_kv "$_t" rc "$_r"
  printf '@%s.out=' "$_t"; orch_b64 < "$_of"
  printf '@%s.err=' "$_t"; orch_b64 < "$_ef"
  rm -f "$_of" "$_ef"
  return "$_r"
}
orch_sysv_enabled() {
  if [ -d /etc/rc0.d ]; then set -- /etc/rc?.d/S??"$unit"; else set -- /etc/init.d/rc?.d/S??"$unit"; fi
  for _l in "$@"; do if [ -e "$_l" ] || [ -L "$_l" ]; then return 0; fi; done
  return 1
}
orch_sd_enabled() {
  _o=$(sctl is-enabled --full -- "$unit" 2>/dev/null); _r=$?
  if [ "$_r" = 0 ]; then
    if [ "$_o" = indirect ] || [ "$_o" = alias ]; then return 1; fi
    return 0
  fi
  if [ "$_r" = 1 ] && [ "$scope" = system ] && [ -e "$sysv" ]; then
    case "$_o" in *disabled) return 1 ;; esac
    orch_sysv_enabled && return 0
  fi
  return 1
}
"#;

/// Variables and functions the systemd scripts start with.
fn preamble(req: &Request) -> String {
    let unit = req.name.clone().unwrap_or_default();
    let sysv = if unit.starts_with('/') {
        unit.clone()
    } else {
        format!("/etc/init.d/{unit}")
    };
    format!(
        "unit={}\nsysv={}\nscope={}\nsctl_opts={}\n{SYSTEMD_LIB}",
        quote(&unit),
        quote(&sysv),
        quote(&req.scope),
        quote(req.systemctl_options().trim()),
    )
}

/// The probe (needs `filecommon::SHELL_LIB` before it): records under the tags `show`, `isen`, `luf`
/// (command results) and `sd` (`sysv`, `sysv_enabled`, `enabled`, `offline` flags).
pub fn probe_script(req: &Request) -> String {
    let mut s = preamble(req);
    s.push_str(
        r#"if [ "${SYSTEMD_OFFLINE:-}" = 1 ]; then orch_kv sd offline 1
else
  _root=$(stat -c %d:%i / 2>/dev/null); _init=$(stat -c %d:%i /proc/1/root/. 2>/dev/null) && [ "$_root" != "$_init" ] && orch_kv sd offline 1
fi
orch_capture show sctl show -- "$unit" || orch_capture luf sctl list-unit-files -- "$unit"
orch_capture isen sctl is-enabled -- "$unit"
[ -e "$sysv" ] && orch_kv sd sysv 1
orch_sysv_enabled && orch_kv sd sysv_enabled 1
orch_sd_enabled && orch_kv sd enabled 1
exit 0
"#,
    );
    s
}

/// One recorded command: exit code and output.
#[derive(Clone, Debug, Default)]
pub struct Captured {
    pub rc: i32,
    pub out: String,
    pub err: String,
}

impl Captured {
    pub fn read(records: &Records, tag: &str) -> Option<Captured> {
        let rc = records.get(tag, "rc")?.trim().parse().ok()?;
        let text = |key| {
            records
                .bytes(tag, key)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        Some(Captured {
            rc,
            out: text("out"),
            err: text("err"),
        })
    }
}

/// What the probe found about the unit.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    pub show: Captured,
    pub list_unit_files: Option<Captured>,
    pub is_enabled: Captured,
    pub sysv_exists: bool,
    pub sysv_enabled: bool,
    /// Ansible's enabled test, computed on the target by `orch_sd_enabled`.
    pub enabled: bool,
    /// A chroot, or `SYSTEMD_OFFLINE=1`: Ansible warns instead of failing on some errors there.
    pub offline: bool,
}

impl Probe {
    pub fn read(records: &Records) -> Result<Probe, ModuleError> {
        let show = Captured::read(records, "show").ok_or_else(|| {
            ModuleError::msg("the systemd probe printed no `systemctl show` result")
        })?;
        Ok(Probe {
            show,
            list_unit_files: Captured::read(records, "luf"),
            is_enabled: Captured::read(records, "isen").unwrap_or_default(),
            sysv_exists: records.flag("sd", "sysv"),
            sysv_enabled: records.flag("sd", "sysv_enabled"),
            enabled: records.flag("sd", "enabled"),
            offline: records.flag("sd", "offline"),
        })
    }
}

/// Ansible's `parse_systemctl_show`: `Key=value` lines; only `Exec*` values may span lines (`{ ... }`).
pub fn parse_systemctl_show(text: &str) -> Map<String, Value> {
    let mut parsed = Map::new();
    let mut multi: Vec<&str> = Vec::new();
    let mut key: Option<&str> = None;
    for line in text.split('\n') {
        match key {
            None => {
                let Some((k, v)) = line.split_once('=') else {
                    continue;
                };
                if k.starts_with("Exec")
                    && v.trim_start().starts_with('{')
                    && !v.trim_end().ends_with('}')
                {
                    key = Some(k);
                    multi.push(v);
                    continue;
                }
                parsed.insert(k.to_string(), Value::String(v.trim().to_string()));
            }
            Some(k) => {
                multi.push(line);
                if line.trim_end().ends_with('}') {
                    parsed.insert(
                        k.to_string(),
                        Value::String(multi.join("\n").trim().to_string()),
                    );
                    multi.clear();
                    key = None;
                }
            }
        }
    }
    parsed
}

/// systemctl's "Running in chroot, ignoring request." and similar.
fn request_was_ignored(out: &str) -> bool {
    !out.contains('=') && (out.contains("ignoring request") || out.contains("ignoring command"))
}

/// One `systemctl` call of the apply script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    DaemonReload,
    DaemonReexec,
    /// mask (true) or unmask (false).
    Mask(bool),
    /// enable (true) or disable (false). `recheck`: the unit is unmasked just before, so whether it is
    /// enabled is only known then; the script tests again (as Ansible does after unmasking).
    Enable {
        enable: bool,
        recheck: bool,
    },
    /// start, stop, restart or reload.
    Unit(&'static str),
}

impl Step {
    fn command(&self) -> String {
        match self {
            Step::DaemonReload => "daemon-reload".into(),
            Step::DaemonReexec => "daemon-reexec".into(),
            Step::Mask(true) => "mask".into(),
            Step::Mask(false) => "unmask".into(),
            Step::Enable { enable: true, .. } => "enable".into(),
            Step::Enable { enable: false, .. } => "disable".into(),
            Step::Unit(action) => (*action).into(),
        }
    }

    /// Whether running it is a change (daemon-reload and daemon-reexec are not, as in Ansible).
    fn changes(&self) -> bool {
        !matches!(self, Step::DaemonReload | Step::DaemonReexec)
    }
}

/// The planned steps and the result Ansible would return.
#[derive(Clone, Debug)]
pub struct SystemdPlan {
    pub request: Request,
    pub steps: Vec<Step>,
    /// Whether the task changes the host (daemon-reload alone does not count).
    pub changed: bool,
    /// The unit exists (as a unit or a SysV script): a failed mask is then not an error, as in Ansible.
    pub found: bool,
    pub offline: bool,
    pub result: Map<String, Value>,
    pub warnings: Vec<String>,
}

impl SystemdPlan {
    /// Whether `apply` must run: something changes, or a daemon-reload/reexec was asked for (which
    /// Ansible runs, but does not report as a change, and skips in check mode).
    pub fn needs_apply(&self, check_mode: bool) -> bool {
        self.changed || (!check_mode && !self.steps.is_empty())
    }
}

fn missing(name: &str) -> ModuleError {
    ModuleError::msg(format!("Could not find the requested service {name}: host"))
}

/// Ansible's decision logic over the probe. `probe` is `None` when the task names no unit.
pub fn decide(req: &Request, probe: Option<&Probe>) -> Result<SystemdPlan, ModuleError> {
    let mut steps = Vec::new();
    let mut warnings = Vec::new();
    let mut result = Map::new();
    result.insert(
        "name".into(),
        req.name.clone().map(Value::String).unwrap_or(Value::Null),
    );
    if req.daemon_reload {
        steps.push(Step::DaemonReload);
    }
    if req.daemon_reexec {
        steps.push(Step::DaemonReexec);
    }
    let mut plan = SystemdPlan {
        request: req.clone(),
        steps: Vec::new(),
        changed: false,
        found: false,
        offline: probe.is_some_and(|p| p.offline),
        result: Map::new(),
        warnings: Vec::new(),
    };
    let (Some(unit), Some(probe)) = (req.name.as_deref(), probe) else {
        result.insert("status".into(), Value::Object(Map::new()));
        plan.steps = steps;
        plan.result = result;
        return Ok(plan);
    };

    let mut status = Map::new();
    let mut is_systemd = false;
    let show = &probe.show;
    if show.rc == 0 && !request_was_ignored(&show.out) && !request_was_ignored(&show.err) {
        if !show.out.is_empty() {
            status = parse_systemctl_show(&show.out);
            let load_state = status.get("LoadState").and_then(Value::as_str);
            is_systemd = load_state.is_some_and(|s| s != "not-found");
            let is_masked = load_state == Some("masked");
            if is_systemd && !is_masked {
                if let Some(error) = status.get("LoadError").and_then(Value::as_str) {
                    return Err(ModuleError::msg(format!(
                        "Error loading unit file '{unit}': {error}"
                    )));
                }
            }
        }
    } else {
        // `show` does not work everywhere (chroots): `is-enabled`, then `list-unit-files`.
        is_systemd = VALID_ENABLED_STATES.contains(&probe.is_enabled.out.trim())
            || probe.list_unit_files.as_ref().is_some_and(|c| c.rc == 0);
    }
    let found = is_systemd || probe.sysv_exists;
    if probe.sysv_exists && !is_systemd {
        warnings.push(format!(
            "The service ({unit}) is actually an init script but the system is managed by systemd"
        ));
    }

    let mut changed = false;
    let mut masked_now = probe.is_enabled.out.trim() == "masked";
    let mut unmasked = false;
    if let Some(want) = req.masked {
        if masked_now != want {
            changed = true;
            steps.push(Step::Mask(want));
            unmasked = !want;
            masked_now = want;
        }
    }

    if let Some(want) = req.enabled {
        if !found {
            return Err(missing(unit));
        }
        // After masking, `is-enabled` says "masked" (rc 1): not enabled, as Ansible then sees it.
        let enabled_now = probe.enabled && !masked_now;
        if unmasked {
            steps.push(Step::Enable {
                enable: want,
                recheck: true,
            });
        } else if enabled_now != want {
            changed = true;
            steps.push(Step::Enable {
                enable: want,
                recheck: false,
            });
        }
        result.insert("enabled".into(), Value::Bool(want));
    }

    if let Some(state) = req.state {
        if !found {
            return Err(missing(unit));
        }
        result.insert("state".into(), state.as_str().into());
        match status.get("ActiveState").and_then(Value::as_str) {
            Some(active) => {
                let running = active == "active" || active == "activating";
                let action = match state {
                    ServiceState::Started => (!running).then_some("start"),
                    ServiceState::Stopped => {
                        (running || active == "deactivating").then_some("stop")
                    }
                    ServiceState::Restarted | ServiceState::Reloaded => {
                        result.insert("state".into(), "started".into());
                        Some(match (running, state) {
                            (false, _) => "start",
                            (true, ServiceState::Restarted) => "restart",
                            _ => "reload",
                        })
                    }
                };
                if let Some(action) = action {
                    changed = true;
                    steps.push(Step::Unit(action));
                }
            }
            None if probe.offline => warnings.push(
                "Target is a chroot or systemd is offline. This can lead to false positives or prevent the init system tools from working.".into(),
            ),
            None => {
                let mut failure = Map::new();
                failure.insert("status".into(), Value::Object(status));
                return Err(ModuleError::with_result("Service is in unknown state", failure));
            }
        }
    }

    result.insert("status".into(), Value::Object(status));
    if !warnings.is_empty() {
        result.insert(
            "warnings".into(),
            Value::Array(warnings.iter().cloned().map(Value::String).collect()),
        );
    }
    plan.steps = steps;
    plan.changed = changed;
    plan.found = found;
    plan.result = result;
    plan.warnings = warnings;
    Ok(plan)
}

/// The apply script (needs `filecommon::SHELL_LIB` before it): each step records its result under the
/// tag `stepN`; a failing step ends the script unless Ansible carries on after it.
pub fn apply_script(plan: &SystemdPlan) -> String {
    let mut s = preamble(&plan.request);
    for (index, step) in plan.steps.iter().enumerate() {
        let tag = format!("step{index}");
        let command = step.command();
        let call = match step {
            Step::DaemonReload | Step::DaemonReexec => format!("orch_capture {tag} sctl {command}"),
            _ => format!("orch_capture {tag} sctl {command} -- \"$unit\""),
        };
        let on_failure = match step {
            // Ansible only warns in a chroot or with systemd offline.
            Step::DaemonReload | Step::DaemonReexec if plan.offline => "",
            // Ansible ignores a failed (un)mask of a unit that exists.
            Step::Mask(_) if plan.found => "",
            _ => " || exit 0",
        };
        match step {
            Step::Enable {
                enable,
                recheck: true,
            } => {
                let test = if *enable { "!" } else { "" };
                s.push_str(&format!(
                    "if {test} orch_sd_enabled; then {call}{on_failure}; else orch_kv {tag} skipped 1; fi\n"
                ));
            }
            _ => s.push_str(&format!("{call}{on_failure}\n")),
        }
    }
    s.push_str("exit 0\n");
    s
}

/// Reads what the apply script did; fails with Ansible's message for the first failed step.
pub fn read_apply(
    plan: &SystemdPlan,
    records: &Records,
) -> Result<Map<String, Value>, ModuleError> {
    let unit = plan.request.name.clone().unwrap_or_default();
    let mut result = plan.result.clone();
    let mut warnings = plan.warnings.clone();
    let mut changed = plan.changed;
    for (index, step) in plan.steps.iter().enumerate() {
        let tag = format!("step{index}");
        if records.flag(&tag, "skipped") {
            continue;
        }
        let Some(run) = Captured::read(records, &tag) else {
            return Err(ModuleError::msg(format!(
                "systemctl {} did not report a result",
                step.command()
            )));
        };
        if matches!(step, Step::Enable { recheck: true, .. }) {
            changed = true;
        }
        if run.rc == 0 {
            continue;
        }
        let command = step.command();
        match step {
            Step::DaemonReload | Step::DaemonReexec if plan.offline => warnings.push(format!(
                "{command} failed, but target is a chroot or systemd is offline. Continuing. Error was: {} / {}",
                run.rc, run.err
            )),
            Step::DaemonReload | Step::DaemonReexec => {
                return Err(ModuleError::msg(format!(
                    "failure {} during {command}: {}",
                    run.rc, run.err
                )))
            }
            Step::Mask(_) if plan.found => {}
            Step::Mask(_) => return Err(missing(&unit)),
            Step::Enable { .. } => {
                return Err(ModuleError::msg(format!(
                    "Unable to {command} service {unit}: {}{}",
                    run.out, run.err
                )))
            }
            Step::Unit(_) => {
                return Err(ModuleError::msg(format!(
                    "Unable to {command} service {unit}: {}",
                    run.err
                )))
            }
        }
    }
    result.insert("changed".into(), Value::Bool(changed));
    if !warnings.is_empty() {
        result.insert(
            "warnings".into(),
            Value::Array(warnings.into_iter().map(Value::String).collect()),
        );
    }
    Ok(result)
}

/// Probes the unit (if the task names one) and decides.
pub async fn plan_request(env: &dyn TaskEnv, req: &Request) -> Result<SystemdPlan, ModuleError> {
    if req.name.is_none() {
        return decide(req, None);
    }
    let (records, out) = fc::run_script(env, &probe_script(req), None).await?;
    if records.get("show", "rc").is_none() {
        return Err(fc::script_failed("probing the unit", &out));
    }
    let probe = Probe::read(&records)?;
    decide(req, Some(&probe))
}

/// Runs the planned steps in one round trip.
pub async fn apply_plan(
    env: &dyn TaskEnv,
    plan: &SystemdPlan,
) -> Result<Map<String, Value>, ModuleError> {
    let (records, out) = fc::run_script(env, &apply_script(plan), None).await?;
    if out.rc != 0 {
        return Err(fc::script_failed("running systemctl", &out));
    }
    read_apply(plan, &records)
}

/// The executor's plan for a systemd request.
pub fn to_plan(env: &dyn TaskEnv, plan: SystemdPlan) -> Plan {
    Plan {
        changed: plan.needs_apply(env.check_mode()),
        result: plan.result.clone(),
        data: Some(Box::new(plan)),
        ..Plan::default()
    }
}

#[async_trait::async_trait]
impl Module for SystemdService {
    fn name(&self) -> &'static str {
        "systemd_service"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let req = Request::from_args(args)?;
        let plan = plan_request(env, &req).await?;
        Ok(to_plan(env, plan))
    }

    async fn apply(
        &self,
        env: &dyn TaskEnv,
        _args: &Args,
        plan: Plan,
    ) -> Result<Map<String, Value>, ModuleError> {
        match plan.data.and_then(|d| d.downcast::<SystemdPlan>().ok()) {
            Some(data) => apply_plan(env, &data).await,
            None => Ok(plan.result),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testenv::{args, LocalEnv};
    use base64::Engine;
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    /// Probe records as the target would print them.
    fn records(lines: &[(&str, &str, &str)]) -> Records {
        let text: String = lines
            .iter()
            .map(|(tag, key, value)| {
                let value = if ["out", "err"].contains(key) {
                    b64(value)
                } else {
                    value.to_string()
                };
                format!("@{tag}.{key}={value}\n")
            })
            .collect();
        Records::parse(text.as_bytes())
    }

    fn request(value: serde_json::Value) -> Request {
        Request::from_args(&args("systemd_service", value)).unwrap()
    }

    fn probe(show: &str, is_enabled: &str, enabled: bool) -> Probe {
        Probe {
            show: Captured {
                rc: 0,
                out: show.into(),
                err: String::new(),
            },
            is_enabled: Captured {
                rc: if enabled { 0 } else { 1 },
                out: format!("{is_enabled}\n"),
                err: String::new(),
            },
            enabled,
            ..Probe::default()
        }
    }

    const INACTIVE: &str =
        "Id=demo.service\nLoadState=loaded\nActiveState=inactive\nSubState=dead\nUnitFileState=disabled\n";
    const ACTIVE: &str =
        "Id=demo.service\nLoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\n";
    const MISSING: &str = "Id=nosuch.service\nLoadState=not-found\nActiveState=inactive\nLoadError=org.freedesktop.systemd1.NoSuchUnit \"Unit nosuch.service not found.\"\n";

    #[test]
    fn show_output_is_parsed_like_ansible() {
        let text = "Description={ curly but single line\nExecStart={ path=/bin/sleep ; argv[]=/bin/sleep 1\n  more }\nActiveState=active\nEmpty=\n";
        let map = parse_systemctl_show(text);
        assert_eq!(map["Description"], "{ curly but single line");
        assert_eq!(
            map["ExecStart"],
            "{ path=/bin/sleep ; argv[]=/bin/sleep 1\n  more }"
        );
        assert_eq!(map["ActiveState"], "active");
        assert_eq!(map["Empty"], "");
    }

    #[test]
    fn arguments_are_checked_as_ansible_does() {
        let err = |v| match Request::from_args(&args("systemd_service", v)) {
            Err(ModuleError::Failed { msg, .. }) => msg,
            other => panic!("expected an error, got {other:?}"),
        };
        assert_eq!(
            err(json!({"name": "x"})),
            "one of the following is required: state, enabled, masked, daemon_reload, daemon_reexec"
        );
        assert_eq!(
            err(json!({"enabled": true})),
            "missing parameter(s) required by 'enabled': name"
        );
        assert!(err(json!({"name": "x*", "state": "started"})).contains("glob patterns"));
        let r = request(
            json!({"name": "x", "daemon_reload": "yes", "scope": "user", "no_block": true}),
        );
        assert!(r.daemon_reload);
        assert_eq!(r.systemctl_options(), " --user --no-block");
    }

    #[test]
    fn started_changes_only_when_not_running() {
        let r = request(json!({"name": "demo", "state": "started"}));
        let plan = decide(&r, Some(&probe(INACTIVE, "disabled", false))).unwrap();
        assert!(plan.changed);
        assert_eq!(plan.steps, vec![Step::Unit("start")]);
        assert_eq!(plan.result["state"], "started");
        assert_eq!(plan.result["status"]["ActiveState"], "inactive");
        let plan = decide(&r, Some(&probe(ACTIVE, "enabled", true))).unwrap();
        assert!(!plan.changed);
        assert!(plan.steps.is_empty());
        assert!(!plan.needs_apply(false));
    }

    #[test]
    fn stopped_restarted_reloaded() {
        let deactivating = INACTIVE.replace("ActiveState=inactive", "ActiveState=deactivating");
        let plan = |state: &str, show: &str| {
            decide(
                &request(json!({"name": "demo", "state": state})),
                Some(&probe(show, "enabled", true)),
            )
            .unwrap()
        };
        assert_eq!(plan("stopped", ACTIVE).steps, vec![Step::Unit("stop")]);
        assert_eq!(
            plan("stopped", &deactivating).steps,
            vec![Step::Unit("stop")]
        );
        assert!(plan("stopped", INACTIVE).steps.is_empty());
        assert_eq!(plan("restarted", ACTIVE).steps, vec![Step::Unit("restart")]);
        assert_eq!(plan("reloaded", ACTIVE).steps, vec![Step::Unit("reload")]);
        let restart_stopped = plan("restarted", INACTIVE);
        assert_eq!(restart_stopped.steps, vec![Step::Unit("start")]);
        assert_eq!(restart_stopped.result["state"], "started");
    }

    #[test]
    fn enabled_and_masked_are_idempotent_and_ordered() {
        let enable = request(json!({"name": "demo", "enabled": true}));
        assert!(decide(&enable, Some(&probe(ACTIVE, "enabled", true)))
            .unwrap()
            .steps
            .is_empty());
        let plan = decide(&enable, Some(&probe(INACTIVE, "disabled", false))).unwrap();
        assert_eq!(
            plan.steps,
            vec![Step::Enable {
                enable: true,
                recheck: false
            }]
        );
        assert_eq!(plan.result["enabled"], true);

        // Masking makes the unit "not enabled" for the enabled check that follows (as Ansible sees it).
        let mask_disable = request(json!({"name": "demo", "masked": true, "enabled": false}));
        let plan = decide(&mask_disable, Some(&probe(ACTIVE, "enabled", true))).unwrap();
        assert_eq!(plan.steps, vec![Step::Mask(true)]);
        // Unmasking: whether it is enabled is only known afterwards, so apply checks again.
        let unmask = request(
            json!({"name": "demo", "masked": false, "enabled": true, "daemon_reload": true}),
        );
        let masked = ACTIVE.replace("LoadState=loaded", "LoadState=masked");
        let plan = decide(&unmask, Some(&probe(&masked, "masked", false))).unwrap();
        assert_eq!(
            plan.steps,
            vec![
                Step::DaemonReload,
                Step::Mask(false),
                Step::Enable {
                    enable: true,
                    recheck: true
                }
            ]
        );
        assert!(plan.changed);
        assert!(decide(
            &request(json!({"name": "demo", "masked": true})),
            Some(&probe(&masked, "masked", false))
        )
        .unwrap()
        .steps
        .is_empty());
    }

    #[test]
    fn unknown_units_fail_like_ansible_but_can_be_masked() {
        let (msg, _) = match decide(
            &request(json!({"name": "nosuch", "state": "started"})),
            Some(&probe(MISSING, "", false)),
        ) {
            Err(ModuleError::Failed { msg, result }) => (msg, result),
            other => panic!("expected failure, got {other:?}"),
        };
        assert_eq!(msg, "Could not find the requested service nosuch: host");
        let plan = decide(
            &request(json!({"name": "nosuch", "masked": true})),
            Some(&probe(MISSING, "", false)),
        )
        .unwrap();
        assert_eq!(plan.steps, vec![Step::Mask(true)]);
        assert!(!plan.found);
        // A SysV script makes it found, with Ansible's warning.
        let mut sysv = probe(MISSING, "", false);
        sysv.sysv_exists = true;
        let plan = decide(
            &request(json!({"name": "nosuch", "enabled": false})),
            Some(&sysv),
        )
        .unwrap();
        assert!(plan.result["warnings"][0]
            .as_str()
            .unwrap()
            .contains("is actually an init script"));
    }

    #[test]
    fn load_errors_and_unknown_state() {
        let broken = format!("{ACTIVE}LoadError=org.freedesktop.systemd1.BadUnitSetting \"bad\"\n");
        let r = request(json!({"name": "demo", "state": "started"}));
        match decide(&r, Some(&probe(&broken, "enabled", true))) {
            Err(ModuleError::Failed { msg, .. }) => {
                assert!(msg.starts_with("Error loading unit file 'demo':"), "{msg}")
            }
            other => panic!("expected failure, got {other:?}"),
        }
        let no_state = "LoadState=loaded\n";
        match decide(&r, Some(&probe(no_state, "enabled", true))) {
            Err(ModuleError::Failed { msg, .. }) => assert_eq!(msg, "Service is in unknown state"),
            other => panic!("expected failure, got {other:?}"),
        }
        let mut offline = probe(no_state, "enabled", true);
        offline.offline = true;
        let plan = decide(&r, Some(&offline)).unwrap();
        assert!(plan.steps.is_empty());
        assert!(plan.result.contains_key("warnings"));
    }

    #[test]
    fn daemon_reload_alone_runs_but_is_not_a_change() {
        let r = request(json!({"daemon_reload": true}));
        let plan = decide(&r, None).unwrap();
        assert_eq!(plan.steps, vec![Step::DaemonReload]);
        assert!(!plan.changed);
        assert!(plan.needs_apply(false), "a real run must reload");
        assert!(!plan.needs_apply(true), "check mode must not");
        let done = read_apply(
            &plan,
            &records(&[
                ("step0", "rc", "0"),
                ("step0", "out", ""),
                ("step0", "err", ""),
            ]),
        )
        .unwrap();
        assert_eq!(done["changed"], false);
    }

    #[test]
    fn apply_failures_carry_ansibles_messages() {
        let r = request(
            json!({"name": "demo", "daemon_reload": true, "enabled": true, "state": "started"}),
        );
        let plan = decide(&r, Some(&probe(INACTIVE, "disabled", false))).unwrap();
        assert_eq!(plan.steps.len(), 3);
        let failed_start = records(&[
            ("step0", "rc", "0"),
            ("step1", "rc", "0"),
            ("step2", "rc", "1"),
            ("step2", "err", "Job failed."),
        ]);
        match read_apply(&plan, &failed_start) {
            Err(ModuleError::Failed { msg, .. }) => {
                assert_eq!(msg, "Unable to start service demo: Job failed.")
            }
            other => panic!("expected failure, got {other:?}"),
        }
        let failed_reload = records(&[("step0", "rc", "1"), ("step0", "err", "Access denied")]);
        match read_apply(&plan, &failed_reload) {
            Err(ModuleError::Failed { msg, .. }) => {
                assert_eq!(msg, "failure 1 during daemon-reload: Access denied")
            }
            other => panic!("expected failure, got {other:?}"),
        }
        let ok = records(&[
            ("step0", "rc", "0"),
            ("step1", "rc", "0"),
            ("step2", "rc", "0"),
        ]);
        let result = read_apply(&plan, &ok).unwrap();
        assert_eq!(result["changed"], true);
        assert_eq!(result["enabled"], true);
        assert_eq!(result["state"], "started");
    }

    #[test]
    fn scripts_are_valid_sh() {
        let r = request(
            json!({"name": "it's", "masked": false, "enabled": true, "state": "reloaded", "daemon_reexec": true}),
        );
        let masked = ACTIVE.replace("LoadState=loaded", "LoadState=masked");
        let plan = decide(&r, Some(&probe(&masked, "masked", false))).unwrap();
        for script in [probe_script(&r), apply_script(&plan)] {
            let full = format!("{}{script}", fc::SHELL_LIB);
            let status = std::process::Command::new("sh")
                .args(["-n", "-c", &full])
                .status()
                .unwrap();
            assert!(status.success(), "sh -n rejected:\n{full}");
        }
        let apply = apply_script(&plan);
        let order: Vec<usize> = ["daemon-reexec", "unmask", "enable", "reload"]
            .iter()
            .map(|c| apply.find(&format!("sctl {c}")).unwrap())
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "Ansible's order:\n{apply}"
        );
        assert!(apply.contains("if ! orch_sd_enabled; then"));
    }

    /// The probe's shell logic run locally against a systemctl STAND-IN that prints canned answers
    /// (the real command is exercised by tests/debian_systemd.rs on a systemd host).
    #[tokio::test]
    async fn probe_shell_logic_with_a_systemctl_stand_in() {
        let env = LocalEnv::new();
        let bin = env.path("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let fake = format!("{bin}/systemctl");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho \"$*\" >> \"$(dirname \"$0\")/calls\"\n[ \"$1\" = --no-block ] && shift\ncase \"$1\" in\n  show) printf 'LoadState=loaded\\nActiveState=inactive\\n' ;;\n  is-enabled) echo indirect; exit 0 ;;\nesac\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let r = request(json!({"name": "orch-fake-unit", "enabled": true, "no_block": true}));
        let script = format!("PATH={bin}:$PATH\n{}", probe_script(&r));
        let (records, _) = fc::run_script(&env, &script, None).await.unwrap();
        let found = Probe::read(&records).unwrap();
        assert_eq!(found.show.out, "LoadState=loaded\nActiveState=inactive\n");
        assert_eq!(found.is_enabled.out.trim(), "indirect");
        assert!(!found.enabled, "an indirect unit counts as not enabled");
        let calls = std::fs::read_to_string(format!("{bin}/calls")).unwrap();
        assert_eq!(
            calls,
            "--no-block show -- orch-fake-unit\n--no-block is-enabled -- orch-fake-unit\n--no-block is-enabled --full -- orch-fake-unit\n"
        );
        let plan = decide(&r, Some(&found)).unwrap();
        assert_eq!(
            plan.steps,
            vec![Step::Enable {
                enable: true,
                recheck: false
            }]
        );
    }
}
