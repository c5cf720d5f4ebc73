//! `orch drift PLAYBOOK -i INV [--fix]`: a check-mode run with diffs, ending in a drift report.

use std::collections::BTreeMap;

use serde_json::json;

use super::run::{execute, Executed, Interrupts};
use super::{DriftArgs, OutputFormat, RunArgs};
use crate::error::Diagnostic;
use crate::state::DriftEntry;

/// Exit code when something drifted (Ansible never uses 3).
pub const DRIFT_EXIT_CODE: i32 = 3;

pub fn run(mut args: DriftArgs) -> Result<i32, Diagnostic> {
    let kind = if args.fix { "drift-fix" } else { "drift" };
    check_once(&mut args.run, args.fix, kind, Interrupts::Abort)
}

/// One drift check (or correction with `fix`), reported and recorded; returns the exit code:
/// 99 interrupted, 4 unreachable, 2 failed, 3 drifted (check only), else 0.
pub fn check_once(
    run: &mut RunArgs,
    fix: bool,
    kind: &str,
    interrupts: Interrupts,
) -> Result<i32, Diagnostic> {
    run.check = !fix;
    run.diff = true;
    let outcome = match execute(run, kind, interrupts)? {
        Executed::Listed => return Ok(0),
        Executed::Ran(outcome) => outcome,
    };
    let drift = outcome.record.drift.clone();
    let failed: Vec<String> = outcome
        .record
        .hosts
        .iter()
        .filter(|h| h.failed > 0)
        .map(|h| h.host.clone())
        .collect();
    let unreachable: Vec<String> = outcome
        .record
        .hosts
        .iter()
        .filter(|h| h.unreachable > 0)
        .map(|h| h.host.clone())
        .collect();
    let mut code = outcome.code();
    if code == 0 && !fix && !drift.is_empty() {
        code = DRIFT_EXIT_CODE;
    }
    let interrupted = outcome.interrupted;
    let id = outcome.record(code)?;
    if interrupted {
        return Ok(code);
    }
    let by_host = group_by_host(&drift);
    match run.output {
        OutputFormat::Json => {
            let hosts: serde_json::Map<String, serde_json::Value> = by_host
                .iter()
                .map(|(host, entries)| {
                    let tasks: Vec<_> = entries
                        .iter()
                        .map(|d| json!({"task": d.task, "diff": d.diff}))
                        .collect();
                    (host.to_string(), json!(tasks))
                })
                .collect();
            let report = json!({
                "event": "drift_report", "run": id, "fix": fix, "drifted": !drift.is_empty(),
                "hosts": hosts, "failed": failed, "unreachable": unreachable, "exit_code": code,
            });
            println!("{report}");
        }
        OutputFormat::Human => print!("{}", render(id, fix, &by_host, &failed, &unreachable)),
    }
    Ok(code)
}

fn group_by_host(drift: &[DriftEntry]) -> BTreeMap<&str, Vec<&DriftEntry>> {
    let mut by_host: BTreeMap<&str, Vec<&DriftEntry>> = BTreeMap::new();
    for d in drift {
        by_host.entry(d.host.as_str()).or_default().push(d);
    }
    by_host
}

fn render(
    id: i64,
    fix: bool,
    by_host: &BTreeMap<&str, Vec<&DriftEntry>>,
    failed: &[String],
    unreachable: &[String],
) -> String {
    let title = if fix { "DRIFT FIXED" } else { "DRIFT REPORT" };
    let mut out = format!("\n{title} (run {id}) {}\n", "*".repeat(50));
    if by_host.is_empty() {
        out.push_str("no drift: every reachable host matches the playbook\n");
    }
    for (host, entries) in by_host {
        let verb = if fix { "fixed" } else { "would change" };
        out.push_str(&format!("{host}: {} task(s) {verb}\n", entries.len()));
        for d in entries {
            out.push_str(&format!("  - {}\n", d.task));
            for line in d.diff.lines() {
                out.push_str(&format!("      {line}\n"));
            }
        }
    }
    for h in unreachable {
        out.push_str(&format!("{h}: UNREACHABLE (not checked)\n"));
    }
    for h in failed {
        out.push_str(&format!("{h}: FAILED (see above)\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_names_host_task_and_diff() {
        let drift = vec![DriftEntry {
            host: "web1".into(),
            task: "motd".into(),
            diff: "--- before\n+++ after\n-old\n+new\n".into(),
        }];
        let text = render(7, false, &group_by_host(&drift), &[], &["db1".into()]);
        assert!(text.contains("DRIFT REPORT (run 7)"));
        assert!(text.contains("web1: 1 task(s) would change"));
        assert!(text.contains("  - motd"));
        assert!(text.contains("      +new"));
        assert!(text.contains("db1: UNREACHABLE"));
        let clean = render(8, false, &BTreeMap::new(), &[], &[]);
        assert!(clean.contains("no drift"));
    }
}
