//! `orch history` (recent runs) and `orch history show RUN` (one run with its drift).

use super::{HistoryArgs, HistoryCommand, OutputFormat};
use crate::error::Diagnostic;
use crate::state::{format_utc, state_dir, HistoryStore};

pub fn run(args: HistoryArgs) -> Result<i32, Diagnostic> {
    let store = HistoryStore::open(&state_dir(args.state_dir.as_deref())?)?;
    match args.command {
        None => {
            let runs = store.list(args.limit)?;
            if args.output == OutputFormat::Json {
                let items: Vec<serde_json::Value> = runs
                    .iter()
                    .map(|(r, drifted)| {
                        let mut v = serde_json::to_value(r).unwrap_or_default();
                        if let Some(m) = v.as_object_mut() {
                            m.remove("drift");
                            m.insert("drifted_tasks".into(), (*drifted).into());
                        }
                        v
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(items));
                return Ok(0);
            }
            if runs.is_empty() {
                println!("no runs recorded in {}", store.path().display());
                return Ok(0);
            }
            println!(
                "{:>5}  {:<20}  {:<9}  {:>4}  {:>5}  {:>7}  {:>6}  {:>11}  {:>7}  playbook",
                "RUN",
                "STARTED",
                "KIND",
                "EXIT",
                "HOSTS",
                "CHANGED",
                "FAILED",
                "UNREACHABLE",
                "DRIFTED"
            );
            for (r, drifted) in runs.iter().rev() {
                let sum = |f: fn(&crate::state::HostCounts) -> u32| -> u32 {
                    r.hosts.iter().map(f).sum()
                };
                println!(
                    "{:>5}  {:<20}  {:<9}  {:>4}  {:>5}  {:>7}  {:>6}  {:>11}  {:>7}  {}",
                    r.id,
                    format_utc(r.started_at),
                    r.kind,
                    r.exit_code,
                    r.hosts.len(),
                    sum(|h| h.changed),
                    sum(|h| h.failed),
                    sum(|h| h.unreachable),
                    drifted,
                    r.playbook
                );
            }
            Ok(0)
        }
        Some(HistoryCommand::Show { run }) => {
            let Some(r) = store.get(run)? else {
                return Err(Diagnostic::options(format!(
                    "run {run} is not in the history {}",
                    store.path().display()
                ))
                .with_hint("`orch history` lists the recorded runs"));
            };
            if args.output == OutputFormat::Json {
                println!("{}", serde_json::to_value(&r).unwrap_or_default());
                return Ok(0);
            }
            println!("run {} ({})", r.id, r.kind);
            println!(
                "  started:   {}\n  finished:  {}\n  playbook:  {}\n  inventory: {}\n  check:     {}\n  exit code: {}",
                format_utc(r.started_at),
                format_utc(r.finished_at),
                r.playbook,
                r.inventory,
                r.check_mode,
                r.exit_code
            );
            println!("  hosts:");
            for h in &r.hosts {
                println!(
                    "    {:<24} ok={} changed={} unreachable={} failed={} skipped={}",
                    h.host, h.ok, h.changed, h.unreachable, h.failed, h.skipped
                );
            }
            if r.drift.is_empty() {
                println!("  drift: none");
            } else {
                let verb = if r.check_mode {
                    "would change"
                } else {
                    "changed"
                };
                println!("  drift ({} tasks {verb}):", r.drift.len());
                for d in &r.drift {
                    println!("    {}: {}", d.host, d.task);
                    for line in d.diff.lines() {
                        println!("      {line}");
                    }
                }
            }
            Ok(0)
        }
    }
}
