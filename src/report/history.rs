//! Collects what the run history and the drift report need from the executor's events:
//! per-host counters and the tasks that changed, with their diffs masked like the console's.

use std::sync::Mutex;

use super::{Event, HostStatus, Redactor, Reporter, Stats};
use crate::modules::Diff;
use crate::state::{DriftEntry, HostCounts};

pub struct HistoryCollector {
    redactor: Redactor,
    collected: Mutex<Collected>,
}

#[derive(Default)]
struct Collected {
    stats: Option<Stats>,
    drift: Vec<DriftEntry>,
}

impl HistoryCollector {
    pub fn new(redactor: Redactor) -> HistoryCollector {
        HistoryCollector {
            redactor,
            collected: Mutex::new(Collected::default()),
        }
    }

    /// Per-host counters from the recap (empty when the run ended before it).
    pub fn hosts(&self) -> Vec<HostCounts> {
        let guard = self.collected.lock().unwrap_or_else(|e| e.into_inner());
        let Some(stats) = &guard.stats else {
            return Vec::new();
        };
        stats
            .hosts
            .iter()
            .map(|(host, s)| HostCounts {
                host: host.clone(),
                ok: s.ok,
                changed: s.changed,
                failed: s.failed,
                unreachable: s.unreachable,
                skipped: s.skipped,
            })
            .collect()
    }

    /// The tasks that changed (or would change), in the order they ran; masked once more at the end,
    /// because a secret may have become known after the result that shows it.
    pub fn drift(&self) -> Vec<DriftEntry> {
        let guard = self.collected.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .drift
            .iter()
            .map(|d| DriftEntry {
                host: self.redactor.text(&d.host),
                task: self.redactor.text(&d.task),
                diff: self.redactor.text(&d.diff),
            })
            .collect()
    }
}

impl Reporter for HistoryCollector {
    fn event(&self, event: &Event) {
        let mut guard = self.collected.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Result(r) if r.status == HostStatus::Changed => {
                let host = match &r.delegate {
                    Some(d) => format!("{} -> {d}", r.host),
                    None => r.host.clone(),
                };
                let task = match &r.item {
                    Some(item) => format!("{} (item={item})", r.task),
                    None => r.task.clone(),
                };
                let diff: String = r.diffs.iter().map(plain_diff).collect();
                guard.drift.push(DriftEntry {
                    host: self.redactor.text(&host),
                    task: self.redactor.text(&task),
                    diff: self.redactor.text(&diff),
                });
            }
            Event::Recap(stats) => guard.stats = Some(stats.clone()),
            _ => {}
        }
    }
}

/// A unified diff without colors.
pub fn plain_diff(d: &Diff) -> String {
    let text = similar::TextDiff::from_lines(&d.before, &d.after);
    let mut out = format!("--- {}\n+++ {}\n", d.before_header, d.after_header);
    for hunk in text.unified_diff().context_radius(3).iter_hunks() {
        out.push_str(&hunk.to_string());
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ResultEvent;

    fn changed(host: &str, before: &str, after: &str) -> Event {
        Event::Result(ResultEvent {
            host: host.into(),
            delegate: None,
            task: "write config".into(),
            status: HostStatus::Changed,
            item: None,
            reason: None,
            result: serde_json::Map::new(),
            diffs: vec![Diff {
                before_header: "/etc/app.conf".into(),
                after_header: "/etc/app.conf".into(),
                before: before.into(),
                after: after.into(),
            }],
            verbose_always: false,
        })
    }

    #[test]
    fn collects_changed_tasks_with_masked_diffs() {
        let redactor = Redactor::default();
        let collector = HistoryCollector::new(redactor.clone());
        redactor.add("s3cretpass");
        collector.event(&changed("web1", "password=old1\n", "password=s3cretpass\n"));
        let mut ok = match changed("web2", "", "") {
            Event::Result(r) => r,
            _ => unreachable!(),
        };
        ok.status = HostStatus::Ok;
        collector.event(&Event::Result(ok));
        // A secret learned after the result is still masked in what is stored.
        redactor.add("old1");
        let drift = collector.drift();
        assert_eq!(drift.len(), 1);
        assert_eq!(drift[0].host, "web1");
        assert_eq!(drift[0].task, "write config");
        assert!(
            drift[0].diff.contains("+password=********"),
            "{}",
            drift[0].diff
        );
        assert!(
            drift[0].diff.contains("-password=********"),
            "{}",
            drift[0].diff
        );
        assert!(!drift[0].diff.contains("s3cret"));
    }

    #[test]
    fn counts_come_from_the_recap() {
        let collector = HistoryCollector::new(Redactor::default());
        assert!(collector.hosts().is_empty());
        let mut stats = Stats::default();
        stats.entry("web1").ok = 4;
        stats.entry("web1").changed = 1;
        stats.entry("db1").unreachable = 1;
        collector.event(&Event::Recap(stats));
        let hosts = collector.hosts();
        assert_eq!(hosts.len(), 2);
        assert_eq!((hosts[0].ok, hosts[0].changed), (4, 1));
        assert_eq!(hosts[1].unreachable, 1);
    }
}
