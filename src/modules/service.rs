//! `service`: the generic service module. Like Ansible's action plugin it picks the service manager
//! from `use` (default `auto`: the `ansible_service_mgr` fact, else a probe of the target):
//! - systemd (`use: systemd`, the fact says systemd, or the target booted with systemd): the
//!   `systemd_service` logic (shared code; `sleep`, `pattern`, `runlevel`, `arguments` are ignored with
//!   Ansible's warning);
//! - otherwise SysV init as Ansible's `LinuxService` does it on Debian: `service NAME ACTION` (or the
//!   init script itself) for the state, the `status` action or a `ps` `pattern` to tell whether it runs,
//!   `update-rc.d` and the `/etc/rc?.d/S??NAME` links for `enabled`.
//!
//! One probe round trip decides the manager and reads the state; one apply round trip changes it.
//! Not supported (clear error): upstart, OpenRC, and enabling through `insserv`/`chkconfig`.
#![allow(dead_code)]

use serde_json::{Map, Value};

use super::filecommon::{self as fc, Records};
use super::remote::quote;
use super::systemd_service::{self as sd, Captured, Request, ServiceState, SystemdPlan};
use super::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv};

pub struct Service;

pub static SPEC: ArgSpec = ArgSpec {
    args: &[
        Arg::req("name"),
        Arg::opt("state").choices(&sd::STATES),
        Arg::opt("sleep"),
        Arg::opt("pattern"),
        Arg::opt("enabled"),
        Arg::opt("runlevel"),
        Arg::opt("arguments").aliases(&["args"]),
        Arg::opt("use"),
    ],
    free_form: None,
    any_keys: false,
};

/// Arguments the systemd module does not take (Ansible's action plugin drops them with a warning).
const UNUSED_WITH_SYSTEMD: &[&str] = &["pattern", "runlevel", "sleep", "arguments"];

/// Which manager the probe should use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manager {
    Systemd,
    Sysv,
    /// Not known on the controller: the probe tests for a running systemd (as `LinuxService` does).
    Detect,
}

/// Picks the manager from `use` and the `ansible_service_mgr` fact (if facts were gathered).
pub fn choose_manager(use_arg: &str, fact: Option<&str>) -> Result<Manager, ModuleError> {
    let wanted = match use_arg {
        "auto" => fact.unwrap_or("auto"),
        other => other,
    };
    match wanted {
        "systemd" => Ok(Manager::Systemd),
        "sysvinit" => Ok(Manager::Sysv),
        "upstart" | "openrc" | "openwrt_init" | "runit" | "launchd" | "bsdinit" | "src" | "svc"
        | "smf" => Err(ModuleError::msg(format!(
            "orch's service module manages systemd and SysV init (update-rc.d) services, not '{wanted}'"
        ))),
        // `auto` without facts, `service`, or a PID 1 name such as `sshd` (the fact in a container):
        // Ansible then runs the generic module, which uses systemctl only if systemd is running.
        _ => Ok(Manager::Detect),
    }
}

/// The sysvinit side of a request.
#[derive(Clone, Debug)]
pub struct SysvRequest {
    pub name: String,
    pub state: Option<ServiceState>,
    pub enabled: Option<bool>,
    pub sleep: Option<i64>,
    pub pattern: Option<String>,
    /// `arguments`, split like Python's `shlex.split`.
    pub arguments: Vec<String>,
}

/// Detection of a booted systemd (Ansible's `check_systemd`), then the manager-specific probe.
fn probe_script(manager: Manager, req: &Request, sysv: &SysvRequest) -> String {
    let mode = match manager {
        Manager::Systemd => "systemd",
        Manager::Sysv => "sysv",
        Manager::Detect => "detect",
    };
    format!(
        r#"mode={mode}
if [ "$mode" = detect ]; then
  mode=sysv
  if command -v systemctl >/dev/null 2>&1; then
    if [ -d /run/systemd/system/ ] || [ -d /dev/.run/systemd/ ] || [ -d /dev/.systemd/ ] \
       || grep -q systemd /proc/1/comm 2>/dev/null; then mode=systemd; fi
  fi
fi
orch_kv svc mode "$mode"
if [ "$mode" = systemd ]; then
(
{systemd}
)
else
{sysv}
fi
"#,
        systemd = sd::probe_script(req),
        sysv = sysv_probe(sysv),
    )
}

/// Tools, init script, rc links and (for `state`) the running status: `service NAME status ARGS`, or
/// the process list when a `pattern` is given (read on the controller, so that the pattern never
/// appears in a command line that `ps` could list).
fn sysv_probe(req: &SysvRequest) -> String {
    let mut s = format!(
        "name={}\nPATH=\"$PATH:/sbin:/usr/sbin:/bin:/usr/bin\"\n",
        quote(&req.name)
    );
    s.push_str(
        r#"for _b in service update-rc.d insserv chkconfig; do
  _p=$(command -v "$_b" 2>/dev/null) && orch_kv tool "$_b" "$_p"
done
[ -f "/etc/init.d/$name" ] && orch_kv sysv script "/etc/init.d/$name"
for _l in /etc/rc?.d/S??"$name"; do if [ -e "$_l" ] || [ -L "$_l" ]; then orch_kv sysv slinks 1; break; fi; done
for _l in /etc/rc?.d/K??"$name"; do if [ -e "$_l" ] || [ -L "$_l" ]; then orch_kv sysv klinks 1; break; fi; done
"#,
    );
    if req.state.is_some() {
        if req.pattern.is_some() {
            s.push_str("printf '@ps.out='; ps auxww | orch_b64\n");
        } else {
            s.push_str(&format!(
                r#"_svc=$(command -v service 2>/dev/null)
if [ -n "$_svc" ]; then set -- "$_svc" "$name"
elif [ -f "/etc/init.d/$name" ]; then set -- "/etc/init.d/$name"
else set -- ""; fi
if [ -n "$1" ]; then
  _of=$(mktemp) && _ef=$(mktemp) || orch_fail "mktemp failed"
  LANG=C LC_ALL=C LC_MESSAGES=C "$@" status{args} >"$_of" 2>"$_ef" </dev/null
  orch_kv status rc "$?"
  printf '@status.out='; orch_b64 < "$_of"
  printf '@status.err='; orch_b64 < "$_ef"
  rm -f "$_of" "$_ef"
fi
"#,
                args = quoted_args(&req.arguments)
            ));
        }
    }
    s.push_str("exit 0\n");
    s
}

fn quoted_args(arguments: &[String]) -> String {
    arguments.iter().map(|a| format!(" {}", quote(a))).collect()
}

/// What the SysV probe found.
#[derive(Clone, Debug, Default)]
pub struct SysvProbe {
    pub service: Option<String>,
    pub update_rc_d: Option<String>,
    pub insserv: bool,
    pub chkconfig: bool,
    pub script: Option<String>,
    pub start_links: bool,
    pub kill_links: bool,
    pub status: Option<Captured>,
    pub ps: Option<String>,
}

impl SysvProbe {
    pub fn read(records: &Records) -> SysvProbe {
        let text = |tag: &str, key: &str| records.get(tag, key).map(str::to_string);
        SysvProbe {
            service: text("tool", "service"),
            update_rc_d: text("tool", "update-rc.d"),
            insserv: records.get("tool", "insserv").is_some(),
            chkconfig: records.get("tool", "chkconfig").is_some(),
            script: text("sysv", "script"),
            start_links: records.flag("sysv", "slinks"),
            kill_links: records.flag("sysv", "klinks"),
            status: Captured::read(records, "status"),
            ps: records
                .bytes("ps", "out")
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
        }
    }
}

/// One command of the SysV apply script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SysvStep {
    /// `update-rc.d NAME defaults` (before enabling a service that has no links yet).
    Defaults,
    /// `update-rc.d NAME enable|disable`.
    Enable(bool),
    /// `service NAME start|stop|reload|restart ARGS`; restart is stop, `sleep`, start.
    Control(&'static str),
}

#[derive(Clone, Debug)]
pub struct SysvPlan {
    pub request: SysvRequest,
    pub update_rc_d: String,
    /// `[service, NAME]` or `[/etc/init.d/NAME]`.
    pub control: Vec<String>,
    pub steps: Vec<SysvStep>,
    pub changed: bool,
    pub result: Map<String, Value>,
}

/// Ansible's `LinuxService.get_service_status` heuristics over `service NAME status`.
pub fn sysv_running(name: &str, status: &Captured) -> Option<bool> {
    if [1, 2, 3, 4, 69].contains(&status.rc) {
        return Some(false);
    }
    if status.out.matches('\n').count() <= 1 {
        let clean = status.out.to_lowercase().replace(&name.to_lowercase(), "");
        if clean.contains("stop") {
            return Some(false);
        } else if clean.contains("run") {
            return Some(!clean.contains("not "));
        } else if clean.contains("start") && !clean.contains("not ") {
            return Some(true);
        } else if [
            "could not access pid file",
            "is dead and pid file exists",
            "dead but subsys locked",
            "dead but pid file exists",
        ]
        .iter()
        .any(|m| clean.contains(m))
        {
            return Some(false);
        }
    }
    if status.rc == 0 {
        return Some(true);
    }
    if name == "iptables" && status.out.contains("ACCEPT") {
        return Some(true);
    }
    None
}

/// Ansible's `LinuxService` flow for a SysV service with update-rc.d.
pub fn decide_sysv(req: &SysvRequest, probe: &SysvProbe) -> Result<SysvPlan, ModuleError> {
    let name = &req.name;
    // Ansible fails here when no tool can enable the service, even if `enabled` was not asked for.
    let enabler = if probe.script.is_some() {
        if let Some(path) = &probe.update_rc_d {
            Some(path.clone())
        } else if probe.insserv || probe.chkconfig {
            if req.enabled.is_some() {
                return Err(ModuleError::msg(format!(
                    "orch enables SysV services with update-rc.d only; {name} would need insserv or chkconfig"
                )));
            }
            Some(String::new())
        } else {
            None
        }
    } else {
        None
    };
    let Some(update_rc_d) = enabler else {
        return Err(ModuleError::msg(format!(
            "Could not find the requested service {name}: host"
        )));
    };
    let control = match (&probe.service, &probe.script) {
        (Some(service), _) => vec![service.clone(), name.clone()],
        (None, Some(script)) => vec![script.clone()],
        (None, None) => {
            return Err(ModuleError::msg(
                "cannot find 'service' binary or init script for service,  possible typo in service name?, aborting",
            ))
        }
    };

    let mut steps = Vec::new();
    let mut changed = false;
    let mut result = Map::new();
    result.insert("name".into(), name.clone().into());
    if let Some(want) = req.enabled {
        if probe.start_links != want {
            changed = true;
            if want && !probe.kill_links {
                steps.push(SysvStep::Defaults);
            }
            steps.push(SysvStep::Enable(want));
        }
        result.insert("enabled".into(), Value::Bool(want));
    }

    if let Some(state) = req.state {
        let running = match (&req.pattern, &probe.ps, &probe.status) {
            (Some(pattern), Some(ps), _) => Some(
                ps.lines()
                    .any(|line| line.contains(pattern.as_str()) && !line.contains("pattern=")),
            ),
            (None, _, Some(status)) => sysv_running(name, status),
            _ => None,
        };
        let Some(running) = running else {
            return Err(ModuleError::msg(
                "failed determining service state, possible typo of service name?",
            ));
        };
        let action = match state {
            ServiceState::Started => (!running).then_some("start"),
            ServiceState::Stopped => running.then_some("stop"),
            ServiceState::Reloaded if !running => Some("start"),
            ServiceState::Reloaded => Some("reload"),
            ServiceState::Restarted => Some("restart"),
        };
        if let Some(action) = action {
            changed = true;
            steps.push(SysvStep::Control(action));
            result.insert("msg".into(), "service state changed".into());
        }
        let shown = if state == ServiceState::Stopped {
            "stopped"
        } else {
            "started"
        };
        result.insert("state".into(), shown.into());
    }
    Ok(SysvPlan {
        request: req.clone(),
        update_rc_d,
        control,
        steps,
        changed,
        result,
    })
}

/// The SysV apply script (after `filecommon::SHELL_LIB`); control commands run in their own session
/// (Ansible daemonizes them) with output to files, so a daemon cannot hold the SSH session open.
pub fn sysv_apply_script(plan: &SysvPlan) -> String {
    let mut s = String::from(
        r#"orch_run() {
  _t=$1; shift
  _of=$(mktemp) && _ef=$(mktemp) || orch_fail "mktemp failed"
  if command -v setsid >/dev/null 2>&1; then _s="setsid -w"; else _s=; fi
  LANG=C LC_ALL=C LC_MESSAGES=C $_s "$@" >"$_of" 2>"$_ef" </dev/null; _r=$?
  orch_kv "$_t" rc "$_r"
  printf '@%s.out=' "$_t"; orch_b64 < "$_of"
  printf '@%s.err=' "$_t"; orch_b64 < "$_ef"
  rm -f "$_of" "$_ef"
  return "$_r"
}
"#,
    );
    let name = quote(&plan.request.name);
    let update_rc_d = quote(&plan.update_rc_d);
    let control: String = plan
        .control
        .iter()
        .map(|w| format!("{} ", quote(w)))
        .collect();
    let args = quoted_args(&plan.request.arguments);
    for (index, step) in plan.steps.iter().enumerate() {
        let tag = format!("step{index}");
        match step {
            SysvStep::Defaults => s.push_str(&format!(
                "orch_run {tag} {update_rc_d} {name} defaults || exit 0\n"
            )),
            SysvStep::Enable(enable) => s.push_str(&format!(
                "orch_run {tag} {update_rc_d} {name} {} || exit 0\n",
                if *enable { "enable" } else { "disable" }
            )),
            SysvStep::Control("restart") => {
                s.push_str(&format!("orch_run {tag}a {control}stop{args}\n"));
                if let Some(sleep) = plan.request.sleep.filter(|s| *s > 0) {
                    s.push_str(&format!("sleep {sleep}\n"));
                }
                s.push_str(&format!("orch_run {tag}b {control}start{args}\n"));
            }
            SysvStep::Control(action) => {
                s.push_str(&format!("orch_run {tag} {control}{action}{args}\n"))
            }
        }
    }
    s.push_str("exit 0\n");
    s
}

/// Reads what the SysV apply script did; fails with Ansible's message for a failed command.
pub fn read_sysv_apply(
    plan: &SysvPlan,
    records: &Records,
) -> Result<Map<String, Value>, ModuleError> {
    let ran = |tag: &str| {
        Captured::read(records, tag)
            .ok_or_else(|| ModuleError::msg(format!("the service command {tag} did not report")))
    };
    for (index, step) in plan.steps.iter().enumerate() {
        let tag = format!("step{index}");
        let run = match step {
            SysvStep::Control("restart") => {
                let (stop, start) = (ran(&format!("{tag}a"))?, ran(&format!("{tag}b"))?);
                // Ansible's merge: a failed stop of a stopped service does not count.
                if stop.rc != 0 && start.rc == 0 {
                    start
                } else {
                    Captured {
                        rc: stop.rc + start.rc,
                        out: stop.out + &start.out,
                        err: stop.err + &start.err,
                    }
                }
            }
            _ => ran(&tag)?,
        };
        if run.rc == 0 {
            continue;
        }
        if matches!(step, SysvStep::Control(_)) && run.err.contains("Job is already running") {
            continue;
        }
        let msg = if run.err.is_empty() { run.out } else { run.err };
        return Err(ModuleError::msg(msg.trim_end().to_string()));
    }
    let mut result = plan.result.clone();
    result.remove("msg");
    result.insert("changed".into(), Value::Bool(plan.changed));
    Ok(result)
}

/// `plan.data` of the service module.
enum ServicePlan {
    Systemd(SystemdPlan),
    Sysv(SysvPlan),
}

/// The `ansible_service_mgr` fact, if facts were gathered for this host.
fn service_mgr_fact(env: &dyn TaskEnv) -> Option<String> {
    match env.eval_expr("ansible_service_mgr") {
        Ok(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

#[async_trait::async_trait]
impl Module for Service {
    fn name(&self) -> &'static str {
        "service"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let name = args.req_str("name")?;
        let state = match args.str("state")? {
            None => None,
            Some(s) => Some(ServiceState::parse(&s).ok_or_else(|| {
                ModuleError::msg(format!(
                    "value of state must be one of: {}, got: {s}",
                    sd::STATES.join(", ")
                ))
            })?),
        };
        let enabled = sd::opt_bool(args, "enabled")?;
        if state.is_none() && enabled.is_none() {
            return Err(ModuleError::msg(
                "one of the following is required: state, enabled",
            ));
        }
        let arguments = match args.str("arguments")? {
            None => Vec::new(),
            Some(text) => shlex::split(&text)
                .ok_or_else(|| ModuleError::msg(format!("cannot split arguments: {text}")))?,
        };
        let sysv = SysvRequest {
            name: name.clone(),
            state,
            enabled,
            sleep: args.int("sleep")?,
            pattern: args.str("pattern")?,
            arguments,
        };
        let systemd = Request {
            name: Some(name),
            state,
            enabled,
            masked: None,
            daemon_reload: false,
            daemon_reexec: false,
            scope: "system".into(),
            no_block: false,
            force: false,
        };
        systemd.validate()?;
        let use_arg = args
            .str("use")?
            .unwrap_or_else(|| "auto".into())
            .to_lowercase();
        let manager = choose_manager(&use_arg, service_mgr_fact(env).as_deref())?;

        let script = probe_script(manager, &systemd, &sysv);
        let (records, out) = fc::run_script(env, &script, None).await?;
        match records.get("svc", "mode") {
            Some("systemd") => {
                if records.get("show", "rc").is_none() {
                    return Err(fc::script_failed("probing the unit", &out));
                }
                let probe = sd::Probe::read(&records)?;
                let mut plan = sd::decide(&systemd, Some(&probe))?;
                let ignored: Vec<String> = UNUSED_WITH_SYSTEMD
                    .iter()
                    .filter(|arg| args.has(arg))
                    .map(|arg| format!("Ignoring \"{arg}\" as it is not used in \"systemd\""))
                    .collect();
                if !ignored.is_empty() {
                    plan.warnings.splice(0..0, ignored);
                    plan.result.insert(
                        "warnings".into(),
                        Value::Array(plan.warnings.iter().cloned().map(Value::String).collect()),
                    );
                }
                let mut result = sd::to_plan(env, plan);
                if let Some(data) = result.data.take() {
                    if let Ok(plan) = data.downcast::<SystemdPlan>() {
                        result.data = Some(Box::new(ServicePlan::Systemd(*plan)));
                    }
                }
                Ok(result)
            }
            Some("sysv") => {
                if out.rc != 0 {
                    return Err(fc::script_failed("probing the service", &out));
                }
                let plan = decide_sysv(&sysv, &SysvProbe::read(&records))?;
                Ok(Plan {
                    changed: plan.changed,
                    result: plan.result.clone(),
                    data: Some(Box::new(ServicePlan::Sysv(plan))),
                    ..Plan::default()
                })
            }
            _ => Err(fc::script_failed("probing the service manager", &out)),
        }
    }

    async fn apply(
        &self,
        env: &dyn TaskEnv,
        _args: &Args,
        plan: Plan,
    ) -> Result<Map<String, Value>, ModuleError> {
        match plan.data.and_then(|d| d.downcast::<ServicePlan>().ok()) {
            Some(data) => match *data {
                ServicePlan::Systemd(plan) => sd::apply_plan(env, &plan).await,
                ServicePlan::Sysv(plan) => {
                    let script = sysv_apply_script(&plan);
                    let (records, out) = fc::run_script(env, &script, None).await?;
                    if out.rc != 0 {
                        return Err(fc::script_failed("running the service command", &out));
                    }
                    read_sysv_apply(&plan, &records)
                }
            },
            None => Ok(plan.result),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured(rc: i32, out: &str) -> Captured {
        Captured {
            rc,
            out: out.into(),
            err: String::new(),
        }
    }

    fn sysv_request(state: Option<ServiceState>, enabled: Option<bool>) -> SysvRequest {
        SysvRequest {
            name: "demo".into(),
            state,
            enabled,
            sleep: None,
            pattern: None,
            arguments: Vec::new(),
        }
    }

    fn debian_probe(running: bool, start_links: bool, kill_links: bool) -> SysvProbe {
        SysvProbe {
            service: Some("/usr/sbin/service".into()),
            update_rc_d: Some("/usr/sbin/update-rc.d".into()),
            script: Some("/etc/init.d/demo".into()),
            start_links,
            kill_links,
            status: Some(if running {
                captured(0, "demo is running\n")
            } else {
                captured(3, "demo is not running\n")
            }),
            ..SysvProbe::default()
        }
    }

    fn failure<T: std::fmt::Debug>(result: Result<T, ModuleError>) -> String {
        match result {
            Err(ModuleError::Failed { msg, .. }) => msg,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn manager_comes_from_use_then_the_fact() {
        assert_eq!(
            choose_manager("auto", Some("systemd")).unwrap(),
            Manager::Systemd
        );
        assert_eq!(choose_manager("auto", None).unwrap(), Manager::Detect);
        // A container whose PID 1 is sshd: Ansible runs the generic module, which looks for systemd.
        assert_eq!(
            choose_manager("auto", Some("sshd")).unwrap(),
            Manager::Detect
        );
        assert_eq!(
            choose_manager("sysvinit", Some("systemd")).unwrap(),
            Manager::Sysv
        );
        assert_eq!(choose_manager("systemd", None).unwrap(), Manager::Systemd);
        assert!(failure(choose_manager("openrc", None)).contains("not 'openrc'"));
    }

    #[test]
    fn status_output_is_read_with_ansibles_heuristics() {
        assert_eq!(sysv_running("demo", &captured(3, "")), Some(false));
        assert_eq!(
            sysv_running("demo", &captured(0, "demo is running\n")),
            Some(true)
        );
        assert_eq!(
            sysv_running("demo", &captured(0, "demo is not running\n")),
            Some(false)
        );
        assert_eq!(sysv_running("demo", &captured(0, "stopped\n")), Some(false));
        // Several lines: keywords are not trusted, rc 0 means running.
        assert_eq!(
            sysv_running("demo", &captured(0, "a stop word\nand more\nlines\n")),
            Some(true)
        );
        assert_eq!(sysv_running("demo", &captured(5, "???\n")), None);
    }

    #[test]
    fn started_and_enabled_change_only_when_needed() {
        let want = sysv_request(Some(ServiceState::Started), Some(true));
        let plan = decide_sysv(&want, &debian_probe(false, false, false)).unwrap();
        assert!(plan.changed);
        assert_eq!(
            plan.steps,
            vec![
                SysvStep::Defaults,
                SysvStep::Enable(true),
                SysvStep::Control("start")
            ]
        );
        assert_eq!(plan.result["state"], "started");
        assert_eq!(plan.result["enabled"], true);
        // Links exist already (K links too): only enable, no defaults.
        let plan = decide_sysv(&want, &debian_probe(true, false, true)).unwrap();
        assert_eq!(plan.steps, vec![SysvStep::Enable(true)]);
        let plan = decide_sysv(&want, &debian_probe(true, true, true)).unwrap();
        assert!(!plan.changed && plan.steps.is_empty());
    }

    #[test]
    fn stopped_restarted_reloaded() {
        let steps = |state, running| {
            decide_sysv(
                &sysv_request(Some(state), None),
                &debian_probe(running, true, true),
            )
            .unwrap()
            .steps
        };
        assert_eq!(
            steps(ServiceState::Stopped, true),
            vec![SysvStep::Control("stop")]
        );
        assert!(steps(ServiceState::Stopped, false).is_empty());
        assert_eq!(
            steps(ServiceState::Restarted, false),
            vec![SysvStep::Control("restart")]
        );
        assert_eq!(
            steps(ServiceState::Reloaded, false),
            vec![SysvStep::Control("start")]
        );
        assert_eq!(
            steps(ServiceState::Reloaded, true),
            vec![SysvStep::Control("reload")]
        );
    }

    #[test]
    fn pattern_uses_the_process_list() {
        let mut req = sysv_request(Some(ServiceState::Started), None);
        req.pattern = Some("mydaemon --serve".into());
        let mut probe = debian_probe(false, true, true);
        probe.status = None;
        probe.ps = Some("root 1 sshd\nroot 7 /usr/bin/python3 x pattern=mydaemon --serve\n".into());
        assert_eq!(
            decide_sysv(&req, &probe).unwrap().steps,
            vec![SysvStep::Control("start")],
            "a line naming pattern= is the module itself, not the service"
        );
        probe.ps = Some("root 9 /usr/bin/mydaemon --serve\n".into());
        assert!(decide_sysv(&req, &probe).unwrap().steps.is_empty());
    }

    #[test]
    fn missing_services_fail_like_ansible() {
        let mut probe = debian_probe(false, false, false);
        probe.script = None;
        assert_eq!(
            failure(decide_sysv(
                &sysv_request(Some(ServiceState::Started), None),
                &probe
            )),
            "Could not find the requested service demo: host"
        );
        let mut probe = debian_probe(false, false, false);
        probe.status = Some(captured(5, "weird\nmulti\nline\n"));
        assert_eq!(
            failure(decide_sysv(
                &sysv_request(Some(ServiceState::Started), None),
                &probe
            )),
            "failed determining service state, possible typo of service name?"
        );
    }

    #[test]
    fn restart_merges_stop_and_start_results() {
        let mut req = sysv_request(Some(ServiceState::Restarted), None);
        req.sleep = Some(2);
        req.arguments = vec!["--fast".into(), "a b".into()];
        let plan = decide_sysv(&req, &debian_probe(false, true, true)).unwrap();
        let script = sysv_apply_script(&plan);
        assert!(script.contains("orch_run step0a /usr/sbin/service demo stop --fast 'a b'\nsleep 2\norch_run step0b"), "{script}");
        let full = format!("{}{script}", fc::SHELL_LIB);
        let status = std::process::Command::new("sh")
            .args(["-n", "-c", &full])
            .status()
            .unwrap();
        assert!(status.success());

        let b64 = |s: &str| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(s)
        };
        // A failed stop of a stopped service does not count when the start works.
        let text = format!(
            "@step0a.rc=1\n@step0a.err={}\n@step0b.rc=0\n",
            b64("not running")
        );
        let result = read_sysv_apply(&plan, &Records::parse(text.as_bytes())).unwrap();
        assert_eq!(result["changed"], true);
        assert_eq!(result["state"], "started");
        let text = format!(
            "@step0a.rc=0\n@step0b.rc=1\n@step0b.err={}\n",
            b64("cannot start\n")
        );
        assert_eq!(
            failure(read_sysv_apply(&plan, &Records::parse(text.as_bytes()))),
            "cannot start"
        );
    }

    #[test]
    fn probe_script_is_valid_sh() {
        let mut sysv = sysv_request(Some(ServiceState::Started), Some(true));
        sysv.arguments = vec!["x'y".into()];
        let systemd = Request {
            name: Some("demo".into()),
            state: Some(ServiceState::Started),
            enabled: Some(true),
            masked: None,
            daemon_reload: false,
            daemon_reexec: false,
            scope: "system".into(),
            no_block: false,
            force: false,
        };
        for manager in [Manager::Detect, Manager::Systemd, Manager::Sysv] {
            let full = format!(
                "{}{}",
                fc::SHELL_LIB,
                probe_script(manager, &systemd, &sysv)
            );
            let status = std::process::Command::new("sh")
                .args(["-n", "-c", &full])
                .status()
                .unwrap();
            assert!(status.success(), "sh -n rejected:\n{full}");
        }
        sysv.pattern = Some("secret-pattern".into());
        assert!(
            !probe_script(Manager::Sysv, &systemd, &sysv).contains("secret-pattern"),
            "the pattern must not appear in a command line that ps lists"
        );
    }
}
