//! Command line: `orch run`, `orch drift`, `orch history`, `orch inventory`, `orch completions`.

mod drift;
mod duration;
mod history;
mod inventory;
mod run;
mod schedule;
mod watch;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::Diagnostic;

#[derive(Parser, Debug)]
#[command(
    name = "orch",
    version,
    about = "Agentless push orchestrator: Ansible-compatible playbooks over SSH, fast"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a playbook against an inventory.
    Run(RunArgs),
    /// Check what differs from the playbook (check mode with diffs); exit 3 when something drifted.
    Drift(DriftArgs),
    /// Check (or correct, with --fix) drift on a schedule until SIGINT/SIGTERM.
    Watch(WatchArgs),
    /// Install or remove a systemd timer running `orch drift --fix` on a schedule.
    Schedule(ScheduleArgs),
    /// List recorded runs, or show one with its drift.
    History(HistoryArgs),
    /// Show an inventory as ansible-inventory does.
    Inventory(InventoryArgs),
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HostKeyCheckingArg {
    Yes,
    AcceptNew,
    No,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The playbook file.
    pub playbook: PathBuf,
    /// Inventory file, directory or comma-separated host list (repeatable).
    #[arg(short = 'i', long = "inventory", env = "ORCH_INVENTORY")]
    pub inventory: Vec<String>,
    /// Further limit the hosts with a pattern.
    #[arg(short = 'l', long)]
    pub limit: Option<String>,
    /// Only run tasks with these tags (comma-separated, repeatable).
    #[arg(short = 't', long = "tags")]
    pub tags: Vec<String>,
    /// Skip tasks with these tags.
    #[arg(long = "skip-tags")]
    pub skip_tags: Vec<String>,
    /// Extra variables: key=value pairs, JSON/YAML text, or @file.
    #[arg(short = 'e', long = "extra-vars")]
    pub extra_vars: Vec<String>,
    /// Predict changes without making them.
    #[arg(short = 'C', long)]
    pub check: bool,
    /// Show diffs of changed files and objects.
    #[arg(short = 'D', long)]
    pub diff: bool,
    /// Hosts run in parallel (default: every host of the play, up to 256).
    #[arg(short = 'f', long)]
    pub forks: Option<usize>,
    /// More output (-v result JSON, -vv task paths, -vvv pretty results and connection details).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[arg(long, value_enum, default_value = "human")]
    pub output: OutputFormat,
    /// Print the hosts each play would run on, and stop.
    #[arg(long)]
    pub list_hosts: bool,
    /// Print the tasks of each play, and stop.
    #[arg(long)]
    pub list_tasks: bool,
    /// Check the playbook, inventory and variables files, and stop.
    #[arg(long)]
    pub syntax_check: bool,
    /// Ask for the privilege escalation (sudo) password.
    #[arg(short = 'K', long = "ask-become-pass")]
    pub ask_become_pass: bool,
    /// How to treat host keys: yes (known_hosts only), accept-new (record unknown keys), no (insecure).
    /// Default: yes, unless ~/.ssh/config sets StrictHostKeyChecking for the host.
    #[arg(long, value_enum, env = "ORCH_HOST_KEY_CHECKING")]
    pub host_key_checking: Option<HostKeyCheckingArg>,
    /// Run handlers even for hosts that failed.
    #[arg(long)]
    pub force_handlers: bool,
    /// SSH connection timeout in seconds.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Where the run history is kept (default: $XDG_STATE_HOME/orch, ~/.local/state/orch).
    #[arg(long, env = "ORCH_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DriftArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Correct the drift: run the playbook for real and report what it changed.
    #[arg(long)]
    pub fix: bool,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Time between the end of one check and the start of the next (e.g. 30s, 15m, 1h).
    #[arg(long, value_parser = duration::parse_duration)]
    pub every: std::time::Duration,
    /// Add a random delay up to this long to each wait, so that many watchers spread out.
    #[arg(long, value_parser = duration::parse_duration, default_value = "0s")]
    pub jitter: std::time::Duration,
    /// Correct drift instead of only reporting it.
    #[arg(long)]
    pub fix: bool,
    /// Stop after this many cycles (default: run until SIGINT/SIGTERM).
    #[arg(long)]
    pub max_cycles: Option<u64>,
}

#[derive(Args, Debug)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    pub command: ScheduleCommand,
}

#[derive(Subcommand, Debug)]
pub enum ScheduleCommand {
    /// Write (and enable) a service + timer running `orch drift [--fix] PLAYBOOK -i INV`.
    Install(ScheduleInstallArgs),
    /// Disable and delete a schedule's units.
    Remove(ScheduleTarget),
}

/// Where a schedule's units live.
#[derive(Args, Debug)]
pub struct ScheduleTarget {
    /// A user timer, in ~/.config/systemd/user (the default).
    #[arg(long, conflicts_with = "system")]
    pub user: bool,
    /// A system timer, in /etc/systemd/system (needs root).
    #[arg(long)]
    pub system: bool,
    /// Unit name without suffix (default: orch-drift-<playbook name>).
    #[arg(long)]
    pub name: Option<String>,
    /// Write the units to this directory instead.
    #[arg(long)]
    pub unit_dir: Option<PathBuf>,
    /// Only write (or delete) the unit files; do not run systemctl.
    #[arg(long)]
    pub no_enable: bool,
}

impl ScheduleTarget {
    pub fn is_system(&self) -> bool {
        self.system && !self.user
    }
}

#[derive(Args, Debug)]
pub struct ScheduleInstallArgs {
    /// The playbook file.
    pub playbook: PathBuf,
    /// Inventory file, directory or comma-separated host list (repeatable).
    #[arg(short = 'i', long = "inventory", required = true)]
    pub inventory: Vec<String>,
    /// Time between runs (e.g. 15m, 1h); the first run is this long after boot.
    #[arg(long, value_parser = duration::parse_duration)]
    pub every: std::time::Duration,
    /// Random delay added to each run (RandomizedDelaySec).
    #[arg(long, value_parser = duration::parse_duration, default_value = "0s")]
    pub jitter: std::time::Duration,
    /// Correct drift (`orch drift --fix`) instead of only checking.
    #[arg(long)]
    pub fix: bool,
    #[arg(short = 'l', long)]
    pub limit: Option<String>,
    /// The run history directory the scheduled runs use.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub target: ScheduleTarget,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    #[command(subcommand)]
    pub command: Option<HistoryCommand>,
    /// Where the run history is kept (default: $XDG_STATE_HOME/orch, ~/.local/state/orch).
    #[arg(long, env = "ORCH_STATE_DIR", global = true)]
    pub state_dir: Option<PathBuf>,
    /// How many recent runs to list.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    #[arg(long, value_enum, default_value = "human", global = true)]
    pub output: OutputFormat,
}

#[derive(Subcommand, Debug)]
pub enum HistoryCommand {
    /// Show one run: its hosts and what drifted.
    Show {
        /// The run number (first column of `orch history`).
        run: i64,
    },
}

#[derive(Args, Debug)]
pub struct InventoryArgs {
    #[arg(short = 'i', long = "inventory", env = "ORCH_INVENTORY")]
    pub inventory: Vec<String>,
    /// Print all hosts and groups as JSON (the default).
    #[arg(long)]
    pub list: bool,
    /// Print the group tree.
    #[arg(long)]
    pub graph: bool,
    /// Print one host's variables.
    #[arg(long)]
    pub host: Option<String>,
    /// Also load group_vars/ and host_vars/ from this playbook directory.
    #[arg(long)]
    pub playbook_dir: Option<PathBuf>,
    /// Group to start the graph at.
    pub group: Option<String>,
}

/// Runs the command; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => 5,
            };
            let _ = e.print();
            return code;
        }
    };
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Drift(args) => drift::run(args),
        Command::Watch(args) => watch::run(args),
        Command::History(args) => history::run(args),
        Command::Schedule(args) => schedule::run(args),
        Command::Inventory(args) => inventory::run(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "orch", &mut std::io::stdout());
            Ok(0)
        }
    };
    match result {
        Ok(code) => code,
        Err(d) => {
            eprint!("{}", d.render());
            d.kind.exit_code()
        }
    }
}

/// `-e` values: `k=v k2=v2`, inline JSON/YAML, or `@file` (YAML or JSON).
pub fn parse_extra_vars(
    items: &[String],
) -> Result<serde_json::Map<String, serde_json::Value>, Diagnostic> {
    let mut vars = serde_json::Map::new();
    for item in items {
        let item = item.trim();
        if let Some(file) = item.strip_prefix('@') {
            let path = PathBuf::from(file);
            if !path.exists() {
                return Err(Diagnostic::options(format!(
                    "extra vars file {file} was not found"
                )));
            }
            let node = crate::yaml::load_single(&path)?;
            match node.to_json() {
                serde_json::Value::Object(m) => vars.extend(m),
                serde_json::Value::Null => {}
                _ => {
                    return Err(Diagnostic::parse(
                        format!("extra vars file {file} must hold a mapping"),
                        Some(node.span),
                    ))
                }
            }
        } else if item.starts_with('{') {
            let node = crate::yaml::load_str(item, std::path::Path::new("<extra vars>"))?;
            match node.first().map(|n| n.to_json()) {
                Some(serde_json::Value::Object(m)) => vars.extend(m),
                _ => {
                    return Err(Diagnostic::options(format!(
                        "extra vars '{item}' must be a mapping"
                    )))
                }
            }
        } else {
            let words = shlex::split(item)
                .ok_or_else(|| Diagnostic::options(format!("cannot parse extra vars '{item}'")))?;
            for word in words {
                let (k, v) = word.split_once('=').ok_or_else(|| {
                    Diagnostic::options(format!(
                        "extra vars '{word}' should be key=value, JSON, or @file"
                    ))
                })?;
                // key=value values stay strings, as in Ansible.
                vars.insert(k.to_string(), serde_json::Value::String(v.to_string()));
            }
        }
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_vars_forms() {
        let v = parse_extra_vars(&["a=1 b='x y'".into(), "{c: yes}".into()]).expect("parses");
        assert_eq!(v.get("a"), Some(&serde_json::json!("1")));
        assert_eq!(v.get("b"), Some(&serde_json::json!("x y")));
        assert_eq!(v.get("c"), Some(&serde_json::json!(true)));
        assert!(parse_extra_vars(&["novalue".into()]).is_err());
    }
}
