//! Shared code of the Docker Compose v2 modules (`docker_compose_v2`, `docker_compose_v2_pull`), after
//! community.docker's `module_utils/_compose_v2.py`: the project arguments, the command lines, the
//! parsers for Compose's event output (plain text and, since Compose 2.29, `--progress json`), and
//! what counts as a change.
//!
//! Compose has no stable machine-readable output for its operations, so like community.docker we read
//! the per-resource event lines it prints on stderr ("Container proj-web-1  Recreate") and call the
//! task changed when any event is a "working" one (Creating, Recreate, Starting, Stopping, Removing,
//! Pulling, ...) or an image layer was downloaded.
//!
//! Scripts run with one round trip: a preamble checks the project directory and the Compose version
//! and chooses `--progress json|plain` in the shell (so the version need not be known beforehand),
//! then each Compose call is recorded as `@STEP.rc/stdout/stderr` (base64) records.

use std::collections::HashSet;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::{json, Map, Value};

use super::filecommon::{run_script, Records};
use super::remote::quote;
use super::{Args, ModuleError, TaskEnv};
use crate::transport::ExecOutput;

/// Compose files Compose looks for when no `files` are given, in its order.
pub const COMPOSE_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// `--dry-run` arrived in Compose 2.18.0; community.docker requires it.
pub const MINIMUM_COMPOSE_VERSION: &str = "2.18.0";

/// A Compose module's argument list: its own arguments, then the ones every Compose module takes
/// (community.docker's `common_compose_argspec`, plus `docker_cli`).
macro_rules! compose_args {
    ($($arg:expr),* $(,)?) => {
        &[
            $($arg,)*
            Arg::opt("project_src"),
            Arg::opt("project_name"),
            Arg::opt("files"),
            Arg::opt("definition"),
            Arg::opt("env_files"),
            Arg::opt("profiles"),
            Arg::opt("check_files_existing"),
            Arg::opt("docker_cli"),
        ]
    };
}
pub(crate) use compose_args;

/// The project a task manages and how to reach its Compose.
#[derive(Clone, Debug)]
pub struct ComposeProject {
    pub docker_cli: String,
    pub project_src: String,
    pub project_name: Option<String>,
    pub files: Vec<String>,
    pub env_files: Vec<String>,
    pub profiles: Vec<String>,
    pub check_files_existing: bool,
}

impl ComposeProject {
    pub fn from_args(args: &Args) -> Result<ComposeProject, ModuleError> {
        if args.has("definition") {
            return Err(ModuleError::msg(
                "definition is not supported by orch: write the Compose file with copy or template \
                 and point project_src at its directory",
            ));
        }
        let project_src = args
            .str("project_src")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ModuleError::msg("one of the following is required: definition, project_src")
            })?;
        let project_src = match project_src.strip_suffix('/') {
            Some(trimmed) if !trimmed.is_empty() => trimmed.to_string(),
            _ => project_src,
        };
        Ok(ComposeProject {
            docker_cli: args
                .str("docker_cli")?
                .unwrap_or_else(|| "docker".to_string()),
            project_src,
            project_name: args.str("project_name")?.filter(|s| !s.is_empty()),
            files: args.list("files")?.unwrap_or_default(),
            env_files: args.list("env_files")?.unwrap_or_default(),
            profiles: args.list("profiles")?.unwrap_or_default(),
            check_files_existing: args.bool("check_files_existing", true)?,
        })
    }

    /// The words after `compose --ansi never [--progress X]` (community.docker's `get_base_args`).
    pub fn base_args(&self) -> Vec<String> {
        let mut words = vec!["--project-directory".to_string(), self.project_src.clone()];
        if let Some(name) = &self.project_name {
            words.extend(["--project-name".to_string(), name.clone()]);
        }
        for file in &self.files {
            words.extend(["--file".to_string(), file.clone()]);
        }
        for env_file in &self.env_files {
            words.extend(["--env-file".to_string(), env_file.clone()]);
        }
        for profile in &self.profiles {
            words.extend(["--profile".to_string(), profile.clone()]);
        }
        words
    }

    /// Shell text running `docker compose` with `sub` (the subcommand and its arguments). The progress
    /// flag is the shell variable the preamble set from the Compose version.
    pub fn command(&self, sub: &[String]) -> String {
        let words: Vec<String> = self
            .base_args()
            .iter()
            .chain(sub)
            .map(|w| quote(w))
            .collect();
        format!(
            "{} compose --ansi never $orch_progress {}",
            quote(&self.docker_cli),
            words.join(" ")
        )
    }

    /// The command as the result's `cmd` shows it (with the progress flag the run used).
    pub fn display(&self, progress: &str, sub: &[String]) -> String {
        let mut words = vec![
            self.docker_cli.clone(),
            "compose".into(),
            "--ansi".into(),
            "never".into(),
        ];
        words.extend(progress.split_whitespace().map(str::to_string));
        words.extend(self.base_args());
        words.extend(sub.iter().cloned());
        words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
    }

    /// The script start: checks (community.docker's `BaseComposeManager.__init__`), the Compose
    /// version record, `$orch_progress`, `$orch_no_trunc`, and the `orch_step` recorder.
    ///
    /// With `not_yet_ok` (check mode), a missing docker CLI, Compose plugin, project directory or
    /// Compose file is not a failure: earlier tasks of the run would install or write them. The
    /// script then records `@project.not_yet=<why>` and stops.
    pub fn preamble(&self, min_version: &str, not_yet_ok: bool) -> String {
        let src = &self.project_src;
        let mut s = String::new();
        let missing = if not_yet_ok {
            s.push_str(
                "orch_not_yet() { printf '@project.not_yet='; printf '%s' \"$1\" | orch_b64; exit 0; }\n",
            );
            "orch_not_yet"
        } else {
            "orch_fail"
        };
        s.push_str(&format!(
            "command -v {} >/dev/null 2>&1 || {missing} {}\n",
            quote(&self.docker_cli),
            quote(&format!(
                "Cannot find docker CLI in path: {}",
                self.docker_cli
            ))
        ));
        s.push_str(&format!(
            "[ -d {0} ] || {missing} {1}\ncd {0} || orch_fail {1}\n",
            quote(src),
            quote(&format!("\"{src}\" is not a directory"))
        ));
        if self.files.is_empty() {
            if self.check_files_existing {
                let tests: Vec<String> = COMPOSE_FILES
                    .iter()
                    .map(|f| format!("[ -e {f} ]"))
                    .collect();
                s.push_str(&format!(
                    "{} || {missing} {}\n",
                    tests.join(" || "),
                    quote(&format!(
                        "\"{src}\" does not contain {}, or {}",
                        COMPOSE_FILES[..COMPOSE_FILES.len() - 1].join(", "),
                        COMPOSE_FILES[COMPOSE_FILES.len() - 1]
                    ))
                ));
            }
        } else {
            for file in &self.files {
                s.push_str(&format!(
                    "[ -e {} ] || {missing} {}\n",
                    quote(file),
                    quote(&format!(
                        "Cannot find Compose file \"{file}\" relative to project directory \"{src}\""
                    ))
                ));
            }
        }
        s.push_str(&format!(
            r#"orch_v=$({cli} compose version --short 2>/dev/null) || {missing} {no_plugin}
orch_v=${{orch_v#v}}
orch_kv compose version "$orch_v"
orch_ge() {{ printf '%s\n%s\n' "$2" "$1" | sort -V -C; }}
orch_ge "$orch_v" {min_version} || {{ orch_kv compose too_old 1; exit 0; }}
if orch_ge "$orch_v" 2.29.0; then orch_progress='--progress json'
elif orch_ge "$orch_v" 2.19.0; then orch_progress='--progress plain'
else orch_progress=; fi
orch_kv compose progress "$orch_progress"
orch_no_trunc=
if orch_ge "$orch_v" 2.23.0; then orch_no_trunc=--no-trunc; fi
orch_tmp=$(mktemp -d) || orch_fail 'cannot create a temporary directory'
trap 'rm -rf "$orch_tmp"' EXIT
orch_step() {{
  _n=$1; shift
  "$@" >"$orch_tmp/out" 2>"$orch_tmp/err"; _rc=$?
  orch_kv "$_n" rc "$_rc"
  printf '@%s.stdout=' "$_n"; orch_b64 <"$orch_tmp/out"
  printf '@%s.stderr=' "$_n"; orch_b64 <"$orch_tmp/err"
  return "$_rc"
}}
"#,
            cli = quote(&self.docker_cli),
            no_plugin = quote(&format!(
                "Docker CLI {} does not have the compose plugin installed",
                self.docker_cli
            )),
        ));
        s
    }

    /// A recorded Compose call: `orch_step NAME docker compose ...`.
    pub fn step(&self, name: &str, sub: &[String]) -> String {
        // `$orch_progress` must split into words, so the command is not one quoted string.
        format!("orch_step {name} {}\n", self.command(sub))
    }

    /// `ps --format json --all` (plus `--no-trunc` where Compose has it), recorded as step `ps`.
    pub fn ps_step(&self) -> String {
        let sub: Vec<String> = ["ps", "--format", "json", "--all"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        format!("orch_step ps {} $orch_no_trunc\n", self.command(&sub))
    }

    /// `images --format json`, recorded as step `images`.
    pub fn images_step(&self) -> String {
        let sub: Vec<String> = ["images", "--format", "json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        self.step("images", &sub)
    }
}

/// Runs a script made of `project.preamble()` and steps; fails when Compose is too old.
pub async fn run_compose_script(
    env: &dyn TaskEnv,
    project: &ComposeProject,
    min_version: &str,
    steps: &str,
) -> Result<ScriptRun, ModuleError> {
    match compose_script(env, project, min_version, steps, false).await? {
        Planned::Ran(run) => Ok(run),
        // Only a check-mode preamble reports "not yet".
        Planned::NotYet(why) => Err(ModuleError::msg(why)),
    }
}

/// What a plan's script found: Compose's answers, or (check mode only) why the project cannot be
/// read yet (no docker CLI or Compose plugin, no project directory or Compose file).
pub enum Planned {
    Ran(ScriptRun),
    NotYet(String),
}

/// [`run_compose_script`] for a plan: in check mode, what earlier tasks of the run would create
/// (docker, the project directory, its Compose file) may be missing without failing the task.
pub async fn plan_compose_script(
    env: &dyn TaskEnv,
    project: &ComposeProject,
    min_version: &str,
    steps: &str,
) -> Result<Planned, ModuleError> {
    compose_script(env, project, min_version, steps, env.check_mode()).await
}

async fn compose_script(
    env: &dyn TaskEnv,
    project: &ComposeProject,
    min_version: &str,
    steps: &str,
    not_yet_ok: bool,
) -> Result<Planned, ModuleError> {
    let script = format!(
        "{}{steps}exit 0\n",
        project.preamble(min_version, not_yet_ok)
    );
    let (records, out) = run_script(env, &script, None).await?;
    if let Some(why) = records.text("project", "not_yet") {
        return Ok(Planned::NotYet(why));
    }
    let Some(version) = records.get("compose", "version").map(str::to_string) else {
        return Err(unexpected_output(&out));
    };
    if records.flag("compose", "too_old") {
        return Err(ModuleError::msg(format!(
            "Docker CLI {} has the compose plugin with version {version}; need version {min_version} or later",
            project.docker_cli
        )));
    }
    let progress = records.get("compose", "progress").unwrap_or("").to_string();
    Ok(Planned::Ran(ScriptRun {
        records,
        version,
        json_events: progress.contains("json"),
        progress,
    }))
}

fn unexpected_output(out: &ExecOutput) -> ModuleError {
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let mut result = Map::new();
    result.insert("rc".into(), out.rc.into());
    result.insert("stderr".into(), stderr.clone().into());
    ModuleError::with_result(
        format!(
            "the Compose script failed (rc={}) before reporting the Compose version: {stderr}",
            out.rc
        ),
        result,
    )
}

/// What one script run reported.
pub struct ScriptRun {
    pub records: Records,
    pub version: String,
    pub progress: String,
    pub json_events: bool,
}

/// One recorded Compose call.
#[derive(Clone, Debug, Default)]
pub struct StepOutput {
    pub rc: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ScriptRun {
    pub fn step(&self, name: &str) -> Option<StepOutput> {
        let rc = self.records.get(name, "rc")?.parse().unwrap_or(-1);
        let text = |key: &str| {
            self.records
                .bytes(name, key)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        Some(StepOutput {
            rc,
            stdout: text("stdout"),
            stderr: text("stderr"),
        })
    }

    pub fn events(
        &self,
        step: &StepOutput,
        dry_run: bool,
        warnings: &mut Vec<String>,
    ) -> Vec<Event> {
        if self.json_events {
            parse_json_events(&step.stderr, warnings)
        } else {
            parse_events(&step.stderr, dry_run, step.rc != 0, warnings)
        }
    }

    /// Compose's version as numbers, for feature checks.
    pub fn version_at_least(&self, wanted: &str) -> bool {
        version_at_least(&self.version, wanted)
    }
}

/// `LooseVersion(have) >= LooseVersion(wanted)` for dotted numbers ("2.29.7" >= "2.22.0").
pub fn version_at_least(have: &str, wanted: &str) -> bool {
    let parse = |v: &str| -> Vec<u64> {
        v.trim_start_matches('v')
            .split(['.', '-', '+'])
            .map_while(|p| p.parse::<u64>().ok())
            .collect()
    };
    parse(have) >= parse(wanted)
}

// ------------------------------------------------------------------------------------------------
// Events.

/// Statuses that mean a resource is done (not a change by themselves).
const STATUS_DONE: &[&str] = &[
    "Started",
    "Healthy",
    "Exited",
    "Restarted",
    "Running",
    "Created",
    "Stopped",
    "Killed",
    "Removed",
    "Recreated",
    "Pulled",
    "Built",
];
/// Statuses that mean Compose is changing a resource.
const STATUS_WORKING: &[&str] = &[
    "Creating",
    "Starting",
    "Restarting",
    "Stopping",
    "Killing",
    "Removing",
    "Recreate",
    "Pulling",
    "Building",
];
const STATUS_PULL: &[&str] = &["Pulled", "Pulling"];
const STATUS_ERROR: &str = "Error";
const STATUS_WARNING: &str = "Warning";
const STATUS_WAITING: &str = "Waiting";
const PULL_PROGRESS_DONE: &[&str] = &["Already exists", "Download complete", "Pull complete"];
const PULL_PROGRESS_WORKING: &[&str] = &[
    "Pulling fs layer",
    "Waiting",
    "Downloading",
    "Verifying Checksum",
    "Extracting",
];
const DRY_RUN_MARKER: &str = "DRY-RUN MODE -";

fn is_status(s: &str) -> bool {
    STATUS_DONE.contains(&s)
        || STATUS_WORKING.contains(&s)
        || s == STATUS_ERROR
        || s == STATUS_WAITING
}

fn is_status_or_warning(s: &str) -> bool {
    is_status(s) || s == STATUS_WARNING
}

/// The kind of resource an event is about (community.docker's `ResourceType` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Unknown,
    Network,
    Image,
    ImageLayer,
    Volume,
    Container,
    Service,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Unknown => "unknown",
            Resource::Network => "network",
            Resource::Image => "image",
            Resource::ImageLayer => "image-layer",
            Resource::Volume => "volume",
            Resource::Container => "container",
            Resource::Service => "service",
        }
    }

    fn from_compose(kind: &str) -> Option<Resource> {
        Some(match kind {
            "Network" => Resource::Network,
            "Image" => Resource::Image,
            "Volume" => Resource::Volume,
            "Container" => Resource::Container,
            "Service" => Resource::Service,
            _ => return None,
        })
    }
}

/// One event line: what, which, its status, and a message when there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub resource: Resource,
    pub id: Option<String>,
    pub status: Option<String>,
    pub msg: Option<String>,
}

impl Event {
    fn new(resource: Resource, id: &str, status: Option<&str>, msg: Option<&str>) -> Event {
        Event {
            resource,
            id: Some(id.to_string()),
            status: status.map(str::to_string),
            msg: msg.map(str::to_string),
        }
    }

    fn status_is(&self, set: &[&str]) -> bool {
        self.status.as_deref().is_some_and(|s| set.contains(&s))
    }

    fn append_msg(&mut self, more: &str) {
        self.msg = Some(match self.msg.take() {
            Some(old) => format!("{old}\n{more}"),
            None => more.to_string(),
        });
    }
}

struct Patterns {
    resource: Regex,
    pull: Regex,
    pull_progress: Regex,
    error: Regex,
    warning: Regex,
    continuation: Regex,
    skipped: Regex,
    build_start: Regex,
    build_progress: Regex,
}

fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let alternatives = |items: &[&str]| {
            let mut sorted: Vec<&str> = items.to_vec();
            sorted.sort();
            sorted
                .iter()
                .map(|s| regex::escape(s))
                .collect::<Vec<_>>()
                .join("|")
        };
        let progress: Vec<&str> = PULL_PROGRESS_DONE
            .iter()
            .chain(PULL_PROGRESS_WORKING)
            .copied()
            .collect();
        let compile = |re: String| Regex::new(&re).unwrap_or_else(|e| panic!("bad pattern {re}: {e}"));
        Patterns {
            resource: compile(
                r"^\s*(Network|Image|Volume|Container)\s+(\S+)\s+(\S(?:|.*\S))\s*$".into(),
            ),
            pull: compile(format!(r"^\s*(\S+)\s+({})\s*$", alternatives(STATUS_PULL))),
            pull_progress: compile(format!(
                r"^\s*(\S+)\s+({})\s*(?:|\s\[[^]]+\]\s+\S+\s*|\s+[0-9.kKmMgGbB]+/[0-9.kKmMgGbB]+\s*)$",
                alternatives(&progress)
            )),
            error: compile(r"^\s*(\S+)\s+(Error)\s*(\S.*\S)?$".into()),
            warning: compile(r"^\s*(\S+)\s+(Warning)\s*(\S.*\S)?$".into()),
            continuation: compile(r"^\s*(\S+)\s+-\s*(\S(?:|.*\S))$".into()),
            skipped: compile(r"^\s*(\S+)\s+Skipped(?: -\s*(\S(?:|.*\S))|\s*)$".into()),
            build_start: compile(r"^\s*build service\s+(\S+)$".into()),
            build_progress: compile(r"^\s*==>\s+(.*)$".into()),
        }
    })
}

/// A line that is one event; `Ok(None)` for a line that is understood but no event (a warning).
fn extract_event(line: &str, warnings: &mut Vec<String>) -> Option<Option<Event>> {
    let p = patterns();
    if let Some(c) = p.resource.captures(line) {
        let status = &c[3];
        let resource = Resource::from_compose(&c[1]).unwrap_or(Resource::Unknown);
        return Some(Some(if is_status(status) {
            Event::new(resource, &c[2], Some(status), None)
        } else {
            Event::new(resource, &c[2], None, Some(status))
        }));
    }
    if let Some(c) = p.pull.captures(line) {
        return Some(Some(Event::new(
            Resource::Service,
            &c[1],
            Some(&c[2]),
            None,
        )));
    }
    if let Some(c) = p.error.captures(line) {
        let msg = c.get(3).map(|m| m.as_str()).filter(|m| !m.is_empty());
        return Some(Some(Event::new(Resource::Unknown, &c[1], Some(&c[2]), msg)));
    }
    if let Some(c) = p.warning.captures(line) {
        warnings.push(match c.get(3) {
            Some(msg) => format!("{}: {}", &c[1], msg.as_str()),
            None => format!("Unspecified warning for {}", &c[1]),
        });
        return Some(None);
    }
    if let Some(c) = p.pull_progress.captures(line) {
        return Some(Some(Event::new(
            Resource::ImageLayer,
            &c[1],
            Some(&c[2]),
            None,
        )));
    }
    if let Some(c) = p.skipped.captures(line) {
        let msg = c.get(2).map(|m| m.as_str());
        return Some(Some(Event::new(
            Resource::Unknown,
            &c[1],
            Some("Skipped"),
            msg,
        )));
    }
    if let Some(c) = p.build_start.captures(line) {
        return Some(Some(Event::new(
            Resource::Service,
            &c[1],
            Some("Building"),
            None,
        )));
    }
    None
}

/// A logrus line (`time="..." level=warning msg="..."`): its warning, or None when it is not one.
fn logfmt_warning(line: &str) -> Option<Option<String>> {
    let fields = parse_logfmt(line)?;
    let get = |k: &str| {
        fields
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let (Some(_), Some(level), Some(msg)) = (get("time"), get("level"), get("msg")) else {
        return None;
    };
    Some((level == "warning").then_some(msg))
}

/// `key=value key="quoted \"value\""` pairs; None when the line is not logfmt.
fn parse_logfmt(line: &str) -> Option<Vec<(String, String)>> {
    let mut fields = Vec::new();
    let mut chars = line.trim().chars().peekable();
    while chars.peek().is_some() {
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ' ' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() || chars.next() != Some('=') {
            return None;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        fields.push((key, value));
        while chars.peek() == Some(&' ') {
            chars.next();
        }
    }
    Some(fields)
}

/// Compose's plain event output (`--progress plain`, or before 2.19 the default without a TTY).
pub fn parse_events(
    stderr: &str,
    dry_run: bool,
    nonzero_rc: bool,
    warnings: &mut Vec<String>,
) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    let mut error_event: Option<usize> = None;
    let lines: Vec<&str> = stderr.lines().collect();
    for (index, raw) in lines.iter().enumerate() {
        let mut line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let mut missing_marker = false;
        if dry_run {
            match line.strip_prefix(DRY_RUN_MARKER) {
                Some(rest) => line = rest.trim_start(),
                None => missing_marker = true,
            }
        }
        match extract_event(line, warnings) {
            Some(Some(event)) => {
                let is_error = event.status.as_deref() == Some(STATUS_ERROR);
                events.push(event);
                error_event = is_error.then(|| events.len() - 1);
                if missing_marker {
                    warnings.push(format!(
                        "Event line is missing dry-run mode marker: {line:?}"
                    ));
                }
                continue;
            }
            Some(None) => continue,
            None => {}
        }
        if patterns().build_progress.is_match(line) {
            continue;
        }
        if let Some(c) = patterns().continuation.captures(line) {
            if let Some(i) = events.iter().rposition(|e| e.id.as_deref() == Some(&c[1])) {
                events[i].append_msg(&c[2]);
            }
        }
        match logfmt_warning(line) {
            Some(Some(warning)) => {
                warnings.push(warning);
                continue;
            }
            Some(None) => {}
            None => {}
        }
        if let Some(i) = error_event {
            events[i].append_msg(line);
            continue;
        }
        if line.starts_with("Error ")
            || lines.len() == 1
            || (nonzero_rc && index == lines.len() - 1)
        {
            // An error message that belongs to no event (the last line of a failed run, usually).
            events.push(Event::new(
                Resource::Unknown,
                "",
                Some(STATUS_ERROR),
                Some(line),
            ));
            error_event = Some(events.len() - 1);
            continue;
        }
        warnings.push(format!("Cannot parse event from line: {line:?}"));
    }
    events
}

/// Compose's `--progress json` output (2.29+): one JSON object per line.
pub fn parse_json_events(stderr: &str, warnings: &mut Vec<String>) -> Vec<Event> {
    let mut events = Vec::new();
    for raw in stderr.lines() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('{') || !line.ends_with('}') {
            if let Some(msg) = line.strip_prefix("Warning: ") {
                events.push(Event {
                    resource: Resource::Unknown,
                    id: None,
                    status: Some(STATUS_WARNING.into()),
                    msg: Some(msg.to_string()),
                });
            } else if let Some(Some(warning)) = logfmt_warning(line) {
                warnings.push(warning);
            } else {
                warnings.push(format!("Cannot parse event from non-JSON line: {line:?}"));
            }
            continue;
        }
        let data: Map<String, Value> = match serde_json::from_str(line) {
            Ok(Value::Object(map)) => map,
            _ => {
                warnings.push(format!("Cannot parse event from line: {line:?}"));
                continue;
            }
        };
        let text_of = |key: &str| data.get(key).and_then(Value::as_str).map(str::to_string);
        let truthy = |key: &str| match data.get(key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Null) | None => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        };
        if truthy("tail") {
            let mut msg = text_of("text");
            let mut status = STATUS_ERROR;
            if let Some(text) = &msg {
                if text.to_lowercase().starts_with("warning:") {
                    status = STATUS_WARNING;
                    msg = Some(text["warning:".len()..].trim_start().to_string());
                }
            }
            events.push(Event {
                resource: Resource::Unknown,
                id: None,
                status: Some(status.into()),
                msg,
            });
            continue;
        }
        if truthy("error") {
            events.push(Event {
                resource: Resource::Unknown,
                id: text_of("id"),
                status: Some(STATUS_ERROR.into()),
                msg: text_of("message"),
            });
            continue;
        }
        let mut resource = Resource::Unknown;
        let mut id = text_of("id");
        let mut status = text_of("status");
        let mut text = text_of("text");
        if id.as_deref() == Some(" ") {
            if let Some(service) = text
                .as_deref()
                .and_then(|t| t.strip_prefix("build service "))
            {
                id = Some(format!("Service {service}"));
                text = Some("Building".into());
            }
        }
        if let (Some(i), Some(t)) = (&id, &text) {
            if (i.ends_with("==>") && t.starts_with("==> writing image "))
                || (i.ends_with("==> ==>") && t.starts_with("naming to "))
            {
                continue;
            }
        }
        let text_in = |set: &[&str]| text.as_deref().is_some_and(|t| set.contains(&t));
        if let Some((kind, rest)) = id.as_deref().and_then(|i| i.split_once(' ')) {
            resource = Resource::from_compose(kind).unwrap_or_else(|| {
                warnings.push(format!("Unknown resource type {kind:?} in line {line:?}"));
                Resource::Unknown
            });
            id = Some(rest.to_string());
        } else if text_in(STATUS_PULL) {
            resource = Resource::Image;
            std::mem::swap(&mut status, &mut text);
        } else if text_in(PULL_PROGRESS_DONE) || text_in(PULL_PROGRESS_WORKING) {
            resource = Resource::ImageLayer;
            std::mem::swap(&mut status, &mut text);
        } else if status.is_none() && text.as_deref().is_some_and(|t| t.starts_with("Skipped - ")) {
            if let Some((s, rest)) = text.as_deref().and_then(|t| t.split_once(" - ")) {
                let (s, rest) = (s.to_string(), rest.to_string());
                status = Some(s);
                text = Some(rest);
            }
        } else if let (Some(level), Some(msg)) = (text_of("level"), text_of("msg")) {
            match level.as_str() {
                "warning" => status = Some(STATUS_WARNING.into()),
                "error" => status = Some(STATUS_ERROR.into()),
                _ => {}
            }
            if status.is_some() {
                text = Some(msg);
            }
        }
        let status_known = status.as_deref().is_some_and(is_status_or_warning);
        let text_known = text.as_deref().is_some_and(is_status_or_warning);
        if !status_known && text_known {
            std::mem::swap(&mut status, &mut text);
        }
        events.push(Event {
            resource,
            id,
            status,
            msg: text,
        });
    }
    events
}

/// Whether the events show that Compose changed something (community.docker's `has_changes`).
pub fn has_changes(events: &[Event], ignore_service_pull_events: bool) -> bool {
    events.iter().any(|event| {
        if event.status_is(STATUS_WORKING) {
            return !(ignore_service_pull_events && event.status_is(STATUS_PULL));
        }
        event.resource == Resource::ImageLayer && event.status_is(PULL_PROGRESS_WORKING)
    })
}

/// The `actions` list: every working event, and each layer download step once.
pub fn extract_actions(events: &[Event]) -> Vec<Value> {
    let mut actions = Vec::new();
    let mut layer_steps: HashSet<(Option<String>, Option<String>)> = HashSet::new();
    for event in events {
        let action = || {
            json!({
                "what": event.resource.as_str(),
                "id": event.id,
                "status": event.status,
            })
        };
        if event.resource == Resource::ImageLayer {
            if event.status_is(PULL_PROGRESS_WORKING)
                && layer_steps.insert((event.id.clone(), event.status.clone()))
            {
                actions.push(action());
            }
        } else if event.status_is(STATUS_WORKING) {
            actions.push(action());
        }
    }
    actions
}

/// Warnings for events that carry a message but no status (community.docker's `emit_warnings`).
pub fn event_warnings(events: &[Event], warnings: &mut Vec<String>) {
    for event in events {
        if (event.status.is_none() && event.msg.is_some())
            || event.status.as_deref() == Some(STATUS_WARNING)
        {
            warnings.push(format!(
                "Docker compose: {} {}: {}",
                event.resource.as_str(),
                event.id.as_deref().unwrap_or("None"),
                event.msg.as_deref().unwrap_or("None")
            ));
        }
    }
}

/// The failure message for a non-zero exit, from its error events (community.docker's `update_failed`).
pub fn failure_message(events: &[Event], rc: i32) -> String {
    let errors: Vec<String> = events
        .iter()
        .filter(|e| e.status.as_deref() == Some(STATUS_ERROR))
        .map(|e| {
            let prefix = match (e.id.as_deref(), e.resource) {
                (None, _) | (Some(""), Resource::Unknown) => "General error: ".to_string(),
                (Some(id), Resource::Unknown) => format!("Error when processing {id}: "),
                (Some(id), resource) => {
                    format!("Error when processing {} {id}: ", resource.as_str())
                }
            };
            format!("{prefix}{}", e.msg.as_deref().unwrap_or(STATUS_ERROR))
        })
        .collect();
    if errors.is_empty() {
        format!("Return code {rc} is non-zero")
    } else {
        errors.join("\n")
    }
}

/// Accumulates a task's result the way community.docker's `update_result` does.
#[derive(Default)]
pub struct Outcome {
    pub changed: bool,
    pub actions: Vec<Value>,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
    pub warnings: Vec<String>,
}

impl Outcome {
    pub fn add(&mut self, step: &StepOutput, events: &[Event], ignore_service_pull_events: bool) {
        self.changed |= has_changes(events, ignore_service_pull_events);
        self.actions.extend(extract_actions(events));
        event_warnings(events, &mut self.warnings);
        if !step.stdout.is_empty() {
            self.stdout.push(step.stdout.clone());
        }
        if !step.stderr.is_empty() {
            self.stderr.push(step.stderr.clone());
        }
    }

    /// The result keys (without containers/images): actions, non-empty stdout/stderr, warnings.
    pub fn into_result(self) -> Map<String, Value> {
        let mut result = Map::new();
        result.insert("actions".into(), Value::Array(self.actions));
        let joined = |parts: Vec<String>| {
            parts
                .iter()
                .map(|p| p.trim_end_matches('\n'))
                .collect::<Vec<_>>()
                .join("\n")
        };
        if !self.stdout.is_empty() {
            result.insert("stdout".into(), json!(joined(self.stdout)));
        }
        if !self.stderr.is_empty() {
            result.insert("stderr".into(), json!(joined(self.stderr)));
        }
        if !self.warnings.is_empty() {
            result.insert("warnings".into(), json!(self.warnings));
        }
        result
    }
}

/// A failed Compose call as a task failure with community.docker's keys (msg, cmd, rc, stdout, stderr).
pub fn step_failure(
    project: &ComposeProject,
    run: &ScriptRun,
    sub: &[String],
    step: &StepOutput,
    events: &[Event],
) -> ModuleError {
    let mut result = Map::new();
    result.insert("cmd".into(), json!(project.display(&run.progress, sub)));
    result.insert("rc".into(), json!(step.rc));
    result.insert("stdout".into(), json!(step.stdout));
    result.insert("stderr".into(), json!(step.stderr));
    ModuleError::with_result(failure_message(events, step.rc), result)
}

/// A step the script should have recorded but did not (it died early).
pub fn missing_step(name: &str) -> ModuleError {
    ModuleError::msg(format!(
        "the Compose script ended before running `docker compose {name}`"
    ))
}

/// `ps --format json` output as community.docker's `list_containers` returns it: one JSON object per
/// line (Compose >= 2.21) or one array (older), with Labels as a dict and Names/Networks as lists.
pub fn parse_containers(stdout: &str) -> Result<Vec<Value>, String> {
    let trimmed = stdout.trim();
    let raw: Vec<Value> = if trimmed.starts_with('[') {
        match serde_json::from_str(trimmed) {
            Ok(Value::Array(items)) => items,
            Ok(_) | Err(_) => return Err(format!("cannot parse ps output: {trimmed}")),
        }
    } else {
        trimmed
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|e| format!("cannot parse ps line {l:?}: {e}"))
            })
            .collect::<Result<_, _>>()?
    };
    Ok(raw
        .into_iter()
        .map(|mut container| {
            if let Value::Object(map) = &mut container {
                let labels: Map<String, Value> = match map.get("Labels") {
                    Some(Value::String(s)) if !s.is_empty() => s
                        .split(',')
                        .map(|part| match part.split_once('=') {
                            Some((k, v)) => (k.to_string(), json!(v)),
                            None => (part.to_string(), json!("")),
                        })
                        .collect(),
                    Some(Value::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                map.insert("Labels".into(), Value::Object(labels));
                let split = |v: Option<&Value>| -> Value {
                    match v {
                        Some(Value::String(s)) => json!(s.split(',').collect::<Vec<_>>()),
                        Some(Value::Array(a)) => Value::Array(a.clone()),
                        _ => json!([""]),
                    }
                };
                let names = split(map.get("Names").or_else(|| map.get("Name")));
                map.insert("Names".into(), names);
                let networks = split(map.get("Networks"));
                map.insert("Networks".into(), networks);
                if map.get("Publishers").is_none_or(Value::is_null) {
                    map.insert("Publishers".into(), json!([]));
                }
            }
            container
        })
        .collect())
}

/// `images --format json` output (a JSON array; empty output is no images).
pub fn parse_images(stdout: &str) -> Result<Vec<Value>, String> {
    let trimmed = stdout.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str(trimmed) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(Value::Null) => Ok(Vec::new()),
        _ => Err(format!("cannot parse images output: {trimmed}")),
    }
}

/// Adds `containers` and `images` from the script's `ps` and `images` steps.
pub fn add_listing(
    result: &mut Map<String, Value>,
    project: &ComposeProject,
    run: &ScriptRun,
) -> Result<(), ModuleError> {
    for (step_name, key, sub) in [
        ("ps", "containers", vec!["ps", "--format", "json", "--all"]),
        ("images", "images", vec!["images", "--format", "json"]),
    ] {
        let step = run.step(step_name).ok_or_else(|| missing_step(step_name))?;
        let sub: Vec<String> = sub.into_iter().map(str::to_string).collect();
        if step.rc != 0 {
            let mut warnings = Vec::new();
            let events = run.events(&step, false, &mut warnings);
            return Err(step_failure(project, run, &sub, &step, &events));
        }
        let parsed = if key == "containers" {
            parse_containers(&step.stdout)
        } else {
            parse_images(&step.stdout)
        };
        let items = parsed.map_err(ModuleError::msg)?;
        result.insert(key.into(), Value::Array(items));
    }
    Ok(())
}

/// Strings for a subcommand's words.
pub fn words(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(stderr: &str, dry_run: bool) -> (Vec<Event>, Vec<String>) {
        let mut warnings = Vec::new();
        let events = parse_events(stderr, dry_run, false, &mut warnings);
        (events, warnings)
    }

    fn ev(resource: Resource, id: &str, status: &str) -> Event {
        Event::new(resource, id, Some(status), None)
    }

    #[test]
    fn plain_up_events_parse_and_count_as_changes_but_pulls_do_not() {
        let stderr = " web Pulling \n web Pulled \n Network p_default  Creating\n Network p_default  Created\n Container p-web-1  Creating\n Container p-web-1  Created\n Container p-web-1  Starting\n Container p-web-1  Started\n";
        let (events, warnings) = plain(stderr, false);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(events[0], ev(Resource::Service, "web", "Pulling"));
        assert_eq!(events[2], ev(Resource::Network, "p_default", "Creating"));
        assert_eq!(events[7], ev(Resource::Container, "p-web-1", "Started"));
        assert!(has_changes(&events, true));
        let actions = extract_actions(&events);
        assert_eq!(
            actions,
            vec![
                json!({"what": "service", "id": "web", "status": "Pulling"}),
                json!({"what": "network", "id": "p_default", "status": "Creating"}),
                json!({"what": "container", "id": "p-web-1", "status": "Creating"}),
                json!({"what": "container", "id": "p-web-1", "status": "Starting"}),
            ]
        );
        let (pull_only, _) = plain(
            " web Pulling \n web Pulled \n Container p-web-1  Running\n",
            false,
        );
        assert!(!has_changes(&pull_only, true));
        assert!(has_changes(&pull_only, false));
    }

    #[test]
    fn running_containers_are_no_change() {
        let (events, _) = plain(
            " Container p-db-1  Running\n Container p-web-1  Running\n",
            false,
        );
        assert_eq!(events.len(), 2);
        assert!(!has_changes(&events, true));
        assert!(extract_actions(&events).is_empty());
    }

    #[test]
    fn dry_run_marker_is_stripped_and_a_missing_one_warned_about() {
        let stderr = " DRY-RUN MODE -  Container p-web-1  Recreate\n DRY-RUN MODE -  Container p-web-1  Recreated\n Container p-x-1  Stopping\n";
        let (events, warnings) = plain(stderr, true);
        assert_eq!(events[0], ev(Resource::Container, "p-web-1", "Recreate"));
        assert_eq!(events[2], ev(Resource::Container, "p-x-1", "Stopping"));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("missing dry-run mode marker"));
    }

    #[test]
    fn unknown_status_becomes_a_message_and_a_warning() {
        let (events, _) = plain(
            " DRY-RUN MODE -  Network p_default  Resource is still in use\n",
            true,
        );
        assert_eq!(
            events[0],
            Event::new(
                Resource::Network,
                "p_default",
                None,
                Some("Resource is still in use")
            )
        );
        let mut warnings = Vec::new();
        event_warnings(&events, &mut warnings);
        assert_eq!(
            warnings,
            vec!["Docker compose: network p_default: Resource is still in use"]
        );
    }

    #[test]
    fn layer_progress_counts_as_a_change_even_when_pull_events_are_ignored() {
        let stderr = " web Pulling \n a2abf6c4d29d Pulling fs layer \n a2abf6c4d29d Downloading [=====>      ]  1.049MB/2.097MB\n a2abf6c4d29d Download complete \n a2abf6c4d29d Extracting [=====>      ]  1.049MB/2.097MB\n a2abf6c4d29d Extracting [==========>]  2.097MB/2.097MB\n a2abf6c4d29d Pull complete \n web Pulled \n";
        let (events, warnings) = plain(stderr, false);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            events[2],
            ev(Resource::ImageLayer, "a2abf6c4d29d", "Downloading")
        );
        assert!(has_changes(&events, true));
        let actions = extract_actions(&events);
        // Each layer step once: Pulling fs layer, Downloading, Extracting (not twice), plus the service.
        assert_eq!(actions.len(), 4, "{actions:?}");
    }

    #[test]
    fn errors_collect_their_messages() {
        let stderr = " web Pulling \n web Error pull access denied for nope\nError response from daemon: pull access denied for nope\n";
        let mut warnings = Vec::new();
        let events = parse_events(stderr, false, true, &mut warnings);
        assert_eq!(events[1].status.as_deref(), Some("Error"));
        assert_eq!(
            failure_message(&events, 1),
            "Error when processing web: pull access denied for nope\nError response from daemon: pull access denied for nope"
        );
        let mut warnings = Vec::new();
        let events = parse_events(
            "no configuration file provided: not found\n",
            false,
            true,
            &mut warnings,
        );
        assert_eq!(
            failure_message(&events, 1),
            "General error: no configuration file provided: not found"
        );
        assert_eq!(failure_message(&[], 3), "Return code 3 is non-zero");
    }

    #[test]
    fn logrus_warnings_and_skipped_lines() {
        let stderr = "time=\"2024-01-01T00:00:00Z\" level=warning msg=\"Found orphan containers ([p-old-1]) for this project.\"\n web Skipped - Image is already present locally \n Container p-web-1  Running\n";
        let (events, warnings) = plain(stderr, false);
        assert_eq!(
            warnings,
            vec!["Found orphan containers ([p-old-1]) for this project."]
        );
        assert_eq!(events[0].status.as_deref(), Some("Skipped"));
        assert_eq!(
            events[0].msg.as_deref(),
            Some("Image is already present locally")
        );
        assert!(!has_changes(&events, false));
    }

    #[test]
    fn json_events_of_compose_2_29_and_later() {
        let stderr = concat!(
            "{\"dry-run\":true,\"id\":\"web\",\"text\":\"Pulling\"}\n",
            "{\"id\":\"Network p_default\",\"status\":\"Creating\"}\n",
            "{\"id\":\"Container p-web-1\",\"status\":\"Working\",\"text\":\"Recreate\"}\n",
            "{\"id\":\"Container p-db-1\",\"status\":\"Running\"}\n",
            "{\"id\":\"1e59045f501e\",\"text\":\"Downloading\",\"status\":\"[==>   ]  1MB/2MB\"}\n",
            "{\"id\":\"web\",\"text\":\"Skipped - Image is already present locally\"}\n",
            "{\"tail\":true,\"text\":\"WARNING: Some service image(s) must be built from source\"}\n",
            "{\"error\":true,\"message\":\"no such service: x\"}\n",
            "Warning: No resource found to remove for project \"p\".\n",
        );
        let mut warnings = Vec::new();
        let events = parse_json_events(stderr, &mut warnings);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(events[0], ev(Resource::Image, "web", "Pulling"));
        assert_eq!(events[1], ev(Resource::Network, "p_default", "Creating"));
        assert_eq!(
            events[2],
            Event::new(
                Resource::Container,
                "p-web-1",
                Some("Recreate"),
                Some("Working")
            )
        );
        assert_eq!(events[3], ev(Resource::Container, "p-db-1", "Running"));
        assert_eq!(events[4].resource, Resource::ImageLayer);
        assert_eq!(events[4].status.as_deref(), Some("Downloading"));
        assert_eq!(events[5].status.as_deref(), Some("Skipped"));
        assert_eq!(events[6].status.as_deref(), Some("Warning"));
        assert_eq!(events[7].msg.as_deref(), Some("no such service: x"));
        assert_eq!(events[8].status.as_deref(), Some("Warning"));
        assert!(has_changes(&events[..1], false));
        assert!(!has_changes(&events[..1], true));
        assert!(has_changes(&events[2..3], true));
        assert!(!has_changes(&events[3..4], true));
        assert_eq!(
            failure_message(&events, 1),
            "General error: no such service: x"
        );
    }

    #[test]
    fn compose_versions_compare_numerically() {
        assert!(version_at_least("2.29.7", "2.22.0"));
        assert!(version_at_least("v2.18.0", "2.18.0"));
        assert!(!version_at_least("2.9.0", "2.18.0"));
        assert!(!version_at_least("dev", "2.18.0"));
    }

    #[test]
    fn ps_lines_become_containers_with_label_dicts() {
        let stdout = "{\"Name\":\"p-web-1\",\"Names\":\"p-web-1\",\"Labels\":\"a=1,b=x=y,c\",\"Networks\":\"p_default,p_front\",\"Publishers\":null,\"State\":\"running\"}\n";
        let containers = parse_containers(stdout).expect("parse");
        assert_eq!(
            containers[0]["Labels"],
            json!({"a": "1", "b": "x=y", "c": ""})
        );
        assert_eq!(containers[0]["Names"], json!(["p-web-1"]));
        assert_eq!(containers[0]["Networks"], json!(["p_default", "p_front"]));
        assert_eq!(containers[0]["Publishers"], json!([]));
        assert_eq!(parse_containers("").expect("empty"), Vec::<Value>::new());
        assert_eq!(parse_images("[]").expect("images"), Vec::<Value>::new());
    }

    #[test]
    fn base_args_and_command_quote_every_word() {
        let project = ComposeProject {
            docker_cli: "docker".into(),
            project_src: "/srv/my app".into(),
            project_name: Some("demo".into()),
            files: vec!["a.yml".into(), "b.yml".into()],
            env_files: vec![".env.prod".into()],
            profiles: vec!["debug".into()],
            check_files_existing: true,
        };
        assert_eq!(
            project.command(&words(&["up", "--detach"])),
            "docker compose --ansi never $orch_progress --project-directory '/srv/my app' --project-name demo --file a.yml --file b.yml --env-file .env.prod --profile debug up --detach"
        );
        assert_eq!(
            project.display("--progress json", &words(&["down", "--"])),
            "docker compose --ansi never --progress json --project-directory '/srv/my app' --project-name demo --file a.yml --file b.yml --env-file .env.prod --profile debug down --"
        );
    }
}
