//! `orch run PLAYBOOK -i INVENTORY`.

use std::sync::Arc;
use std::time::Duration;

use super::{HostKeyCheckingArg, OutputFormat, RunArgs};
use crate::error::Diagnostic;
use crate::executor::{ConnectDefaults, RunOptions, Runner};
use crate::inventory::Inventory;
use crate::playbook::{load_playbook, TaskItem};
use crate::report::console::Console;
use crate::report::history::HistoryCollector;
use crate::report::json::JsonLines;
use crate::report::tee::Tee;
use crate::report::{Redactor, Reporter, Stats};
use crate::state::{state_dir, HistoryStore, RunRecord};
use crate::transport::HostKeyChecking;

/// Upper bound on hosts run at once by default: enough for most fleets without exhausting file descriptors.
const DEFAULT_FORKS_CAP: usize = 256;

pub fn run(args: RunArgs) -> Result<i32, Diagnostic> {
    let kind = if args.check { "check" } else { "run" };
    match execute(&args, kind, Interrupts::Abort)? {
        Executed::Listed => Ok(0),
        Executed::Ran(outcome) => {
            let code = outcome.code();
            outcome.record(code)?;
            Ok(code)
        }
    }
}

/// What a signal does to a run in progress.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Interrupts {
    /// Ctrl-C stops the run (`orch run`, `orch drift`).
    Abort,
    /// The caller handles signals itself and lets the run finish (`orch watch`).
    Ignore,
}

/// A run that happened (or was interrupted), with what the history needs.
pub struct Outcome {
    pub record: RunRecord,
    pub interrupted: bool,
    pub stats: Stats,
    /// Opened before contacting any host, so that a corrupt store stops orch early.
    store: HistoryStore,
}

impl Outcome {
    /// The Ansible exit code of the run: 99 interrupted, 4 unreachable, 2 failed, else 0.
    pub fn code(&self) -> i32 {
        if self.interrupted {
            99
        } else if self.stats.any_unreachable() {
            4
        } else if self.stats.any_failed() {
            2
        } else {
            0
        }
    }

    /// Stores the run in the history with its final exit code; returns its id.
    pub fn record(mut self, exit_code: i32) -> Result<i64, Diagnostic> {
        self.record.exit_code = exit_code;
        self.record.finished_at = crate::state::now();
        self.store.record(&self.record)
    }
}

pub enum Executed {
    /// --list-hosts, --list-tasks, --syntax-check: nothing ran.
    Listed,
    Ran(Box<Outcome>),
}

/// Runs the playbook as `args` say, reporting to the console or JSON output; `kind` names the run
/// in the history. A failure of the engine itself is recorded too, then returned.
pub fn execute(args: &RunArgs, kind: &str, interrupts: Interrupts) -> Result<Executed, Diagnostic> {
    let playbook = load_playbook(&args.playbook)?;
    let mut inventory = Inventory::load(&args.inventory)?;
    inventory.add_vars_dir(&playbook.dir)?;
    let extra_vars = super::parse_extra_vars(&args.extra_vars)?;
    crate::playbook::undefined::check(&playbook, &inventory, &extra_vars)?;
    let split = |v: &[String]| -> Vec<String> {
        v.iter()
            .flat_map(|s| s.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let become_password = if args.ask_become_pass {
        let p = rpassword::prompt_password("BECOME password: ")
            .map_err(|e| Diagnostic::options(format!("cannot read the become password: {e}")))?;
        Some(p)
    } else {
        None
    };
    let host_key_checking = args.host_key_checking.map(|h| match h {
        HostKeyCheckingArg::Yes => HostKeyChecking::Strict,
        HostKeyCheckingArg::AcceptNew => HostKeyChecking::AcceptNew,
        HostKeyCheckingArg::No => HostKeyChecking::Off,
    });
    let redactor = Redactor::default();
    let output: Arc<dyn Reporter> = match args.output {
        OutputFormat::Human => Arc::new(Console::new(args.verbose, args.diff, redactor.clone())),
        OutputFormat::Json => Arc::new(JsonLines::new(redactor.clone())),
    };
    let collector = Arc::new(HistoryCollector::new(redactor.clone()));
    let reporter: Arc<dyn Reporter> = Arc::new(Tee::new(vec![output, collector.clone()]));
    if host_key_checking == Some(HostKeyChecking::Off) {
        reporter.event(&crate::report::Event::Warning(
            "host key checking is off: orch cannot tell your hosts from an impostor (insecure; use accept-new instead)".into(),
        ));
    }
    let playbook = Arc::new(playbook);
    let opts = RunOptions {
        check: args.check,
        diff: args.diff,
        forks: args.forks.unwrap_or(0),
        limit: args.limit.clone(),
        tags: split(&args.tags),
        skip_tags: split(&args.skip_tags),
        extra_vars,
        force_handlers: args.force_handlers,
        become_password,
        connect: ConnectDefaults {
            host_key_checking,
            connect_timeout: Duration::from_secs(args.timeout),
        },
        command_timeout: Duration::from_secs(3600),
    };
    let inventory = Arc::new(inventory);
    let mut runner = Runner::new(playbook.clone(), inventory, opts, reporter, redactor);

    // Static views: resolve everything, contact nothing.
    let mut max_hosts = 1;
    let mut listing = String::new();
    for (i, play) in playbook.plays.iter().enumerate() {
        let hosts = runner.play_hosts(play)?;
        max_hosts = max_hosts.max(hosts.len());
        if args.list_hosts {
            if i == 0 {
                listing.push_str(&format!("\nplaybook: {}\n", playbook.path.display()));
            }
            listing.push_str(&format!(
                "\n  play #{} ({}): {}\tTAGS: [{}]\n    pattern: ['{}']\n    hosts ({}):\n",
                i + 1,
                play.hosts,
                play.name,
                play.tags.join(", "),
                play.hosts,
                hosts.len()
            ));
            for h in &hosts {
                listing.push_str(&format!("      {h}\n"));
            }
            // The rollout order, so that a user sees it before running.
            if let Some(expr) = &play.batch_by {
                listing.push_str(&format!(
                    "    batches: one per value of {expr} (known once facts are gathered)\n"
                ));
            } else if !play.serial.is_empty() {
                let batches = crate::executor::batches::serial_batches(&hosts, &play.serial);
                listing.push_str(&format!("    batches ({}):\n", batches.len()));
                for (n, batch) in batches.iter().enumerate() {
                    listing.push_str(&format!("      #{}: {}\n", n + 1, batch.join(", ")));
                }
            }
        }
        if args.list_tasks {
            listing.push_str(&format!(
                "\n  play #{} ({}): {}\tTAGS: [{}]\n    tasks:\n",
                i + 1,
                play.hosts,
                play.name,
                play.tags.join(", ")
            ));
            for section in [&play.pre_tasks, &play.tasks, &play.post_tasks] {
                list_tasks(section, &mut listing, 6);
            }
        }
    }
    if args.syntax_check {
        println!("\nplaybook: {}", playbook.path.display());
        return Ok(Executed::Listed);
    }
    if args.list_hosts || args.list_tasks {
        print!("{listing}");
        return Ok(Executed::Listed);
    }
    let mut store = HistoryStore::open(&state_dir(args.state_dir.as_deref())?)?;
    let started_at = crate::state::now();
    if args.forks.is_none() {
        runner.set_forks(max_hosts.clamp(1, DEFAULT_FORKS_CAP));
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Diagnostic::runtime(format!("cannot start the async runtime: {e}")))?;
    let runner = Arc::new(runner);
    let result = runtime.block_on(async {
        let r = runner.clone();
        if interrupts == Interrupts::Ignore {
            return Some(r.run().await);
        }
        tokio::select! {
            stats = r.run() => Some(stats),
            _ = tokio::signal::ctrl_c() => {
                runner.interrupt();
                None
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    let mut record = RunRecord {
        started_at,
        kind: kind.to_string(),
        playbook: std::fs::canonicalize(&args.playbook)
            .unwrap_or_else(|_| args.playbook.clone())
            .display()
            .to_string(),
        inventory: args.inventory.join(","),
        check_mode: args.check,
        hosts: collector.hosts(),
        drift: collector.drift(),
        ..RunRecord::default()
    };
    match result {
        None => {
            eprintln!("\n[ERROR]: User interrupted execution");
            Ok(Executed::Ran(Box::new(Outcome {
                record,
                interrupted: true,
                stats: Stats::default(),
                store,
            })))
        }
        Some(Err(d)) => {
            record.exit_code = d.kind.exit_code();
            record.finished_at = crate::state::now();
            store.record(&record)?;
            Err(d)
        }
        Some(Ok(stats)) => Ok(Executed::Ran(Box::new(Outcome {
            record,
            interrupted: false,
            stats,
            store,
        }))),
    }
}

fn list_tasks(items: &[TaskItem], out: &mut String, indent: usize) {
    for item in items {
        match item {
            TaskItem::Task(t) => out.push_str(&format!(
                "{}{}\tTAGS: [{}]\n",
                " ".repeat(indent),
                t.display_name(),
                t.common.tags.join(", ")
            )),
            TaskItem::Block(b) => {
                list_tasks(&b.block, out, indent);
                list_tasks(&b.rescue, out, indent);
                list_tasks(&b.always, out, indent);
            }
            TaskItem::Include(i) => out.push_str(&format!(
                "{}include_tasks: {}\n",
                " ".repeat(indent),
                i.file
            )),
            TaskItem::Meta(_) => {}
        }
    }
}
