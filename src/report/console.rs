//! Ansible-style console output: banners, one line per host result, diffs, the PLAY RECAP.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};

use super::{Event, HostStatus, Redactor, Reporter, ResultEvent, Stats};
use crate::modules::Diff;

pub struct Console {
    verbosity: u8,
    color: bool,
    columns: usize,
    show_diff: bool,
    redactor: Redactor,
    progress: Mutex<Option<Progress>>,
    interactive: bool,
}

struct Progress {
    bar: ProgressBar,
    /// Hosts that have not finished the current task.
    pending: Vec<String>,
}

fn waiting_message(pending: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = pending
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if pending.len() > SHOWN {
        text.push_str(&format!(" (+{} more)", pending.len() - SHOWN));
    }
    text
}

const RED: &str = "31";
const GREEN: &str = "32";
const YELLOW: &str = "33";
const CYAN: &str = "36";
const MAGENTA: &str = "35";
const BRIGHT_PURPLE: &str = "95";

impl Console {
    pub fn new(verbosity: u8, show_diff: bool, redactor: Redactor) -> Console {
        let interactive = std::io::stdout().is_terminal();
        let color = interactive
            && std::env::var_os("NO_COLOR").is_none()
            && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(true);
        let columns = if interactive {
            terminal_columns().unwrap_or(80)
        } else {
            80
        };
        Console {
            verbosity,
            color,
            columns,
            show_diff,
            redactor,
            progress: Mutex::new(None),
            interactive,
        }
    }

    fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn print(&self, text: &str) {
        let text = self.redactor.text(text);
        let guard = self.progress.lock().ok();
        match guard.as_ref().and_then(|g| g.as_ref()) {
            Some(p) => p.bar.suspend(|| println!("{text}")),
            None => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
            }
        }
    }

    fn banner(&self, title: &str) -> String {
        let stars = self
            .columns
            .saturating_sub(title.chars().count() + 1)
            .max(3);
        format!("\n{title} {}", "*".repeat(stars))
    }

    fn finish_progress(&self) {
        if let Ok(mut guard) = self.progress.lock() {
            if let Some(p) = guard.take() {
                p.bar.finish_and_clear();
            }
        }
    }

    fn dump(&self, result: &Map<String, Value>, pretty: bool, debug: bool) -> String {
        let cleaned = if debug {
            clean_debug(result)
        } else {
            clean_result(result)
        };
        let value = Value::Object(sorted(&cleaned));
        if pretty {
            python_json_pretty(&value)
        } else {
            python_json_compact(&value)
        }
    }

    fn result_line(&self, r: &ResultEvent) {
        if self.show_diff {
            for d in &r.diffs {
                self.print(&self.render_diff(d));
            }
        }
        let host = match &r.delegate {
            Some(d) => format!("{} -> {}", r.host, d),
            None => r.host.clone(),
        };
        let pretty = r.verbose_always || self.verbosity > 2;
        let show_result = r.verbose_always || self.verbosity > 0;
        let item = r
            .item
            .as_ref()
            .map(|i| format!(" => (item={i})"))
            .unwrap_or_default();
        let item_failed = r
            .item
            .as_ref()
            .map(|i| format!(" (item={i})"))
            .unwrap_or_default();
        let line = match r.status {
            HostStatus::Ok | HostStatus::Changed => {
                let (word, color) = if r.status == HostStatus::Changed {
                    ("changed", YELLOW)
                } else {
                    ("ok", GREEN)
                };
                let mut line = format!("{word}: [{host}]{item}");
                if show_result {
                    line.push_str(&format!(
                        " => {}",
                        self.dump(&r.result, pretty, r.verbose_always)
                    ));
                }
                self.paint(&line, color)
            }
            HostStatus::Skipped => {
                let mut line = format!("skipping: [{host}]{item}");
                if self.verbosity > 0 {
                    line.push_str(&format!(
                        " => {}",
                        self.dump(&r.result, pretty, r.verbose_always)
                    ));
                } else if let Some(reason) = &r.reason {
                    line.push_str(&format!(" => ({reason})"));
                }
                self.paint(&line, CYAN)
            }
            HostStatus::Failed | HostStatus::Ignored => {
                let line = if r.item.is_some() {
                    format!(
                        "failed: [{host}]{item_failed} => {}",
                        self.dump(&r.result, pretty, r.verbose_always)
                    )
                } else {
                    format!(
                        "fatal: [{host}]: FAILED! => {}",
                        self.dump(&r.result, pretty, r.verbose_always)
                    )
                };
                let mut line = self.paint(&line, RED);
                if r.status == HostStatus::Ignored {
                    line.push('\n');
                    line.push_str(&self.paint("...ignoring", CYAN));
                }
                line
            }
            HostStatus::Unreachable => self.paint(
                &format!(
                    "fatal: [{host}]: UNREACHABLE! => {}",
                    self.dump(&r.result, pretty, r.verbose_always)
                ),
                RED,
            ),
        };
        self.print(&line);
    }

    fn render_diff(&self, d: &Diff) -> String {
        let diff = similar::TextDiff::from_lines(&d.before, &d.after);
        let mut out = String::new();
        out.push_str(&self.paint(&format!("--- {}", d.before_header), RED));
        out.push('\n');
        out.push_str(&self.paint(&format!("+++ {}", d.after_header), GREEN));
        out.push('\n');
        for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
            let text = hunk.to_string();
            for line in text.lines() {
                let colored = if line.starts_with("@@") {
                    self.paint(line, CYAN)
                } else if line.starts_with('+') {
                    self.paint(line, GREEN)
                } else if line.starts_with('-') {
                    self.paint(line, RED)
                } else {
                    line.to_string()
                };
                out.push_str(&colored);
                out.push('\n');
            }
        }
        out.trim_end_matches('\n').to_string() + "\n"
    }

    fn recap(&self, stats: &Stats) {
        self.print(&self.banner("PLAY RECAP"));
        let mut hosts: Vec<_> = stats.hosts.iter().collect();
        hosts.sort_by(|a, b| a.0.cmp(b.0));
        for (host, s) in hosts {
            let host_color = if s.failed > 0 || s.unreachable > 0 {
                RED
            } else if s.changed > 0 {
                YELLOW
            } else {
                GREEN
            };
            let field = |name: &str, n: u32, color: &str| {
                let text = format!("{name}={n:<4}");
                if n > 0 {
                    self.paint(&text, color)
                } else {
                    text
                }
            };
            let host_field = if self.color {
                format!("{:<37}", self.paint(host, host_color))
            } else {
                format!("{host:<26}")
            };
            self.print(&format!(
                "{host_field} : {} {} {} {} {} {} {}",
                field("ok", s.ok, GREEN),
                field("changed", s.changed, YELLOW),
                field("unreachable", s.unreachable, RED),
                field("failed", s.failed, RED),
                field("skipped", s.skipped, CYAN),
                field("rescued", s.rescued, MAGENTA),
                field("ignored", s.ignored, BRIGHT_PURPLE),
            ));
        }
        self.print("");
    }
}

impl Reporter for Console {
    fn event(&self, event: &Event) {
        match event {
            Event::PlaybookStart { path, check } => {
                if self.verbosity > 0 {
                    let mode = if *check { " (check mode)" } else { "" };
                    self.print(&format!("PLAYBOOK: {path}{mode}"));
                }
            }
            Event::PlayStart { name, .. } => {
                self.finish_progress();
                self.print(&self.banner(&format!("PLAY [{name}]")));
            }
            Event::TaskStart {
                name,
                handler,
                location,
                hosts,
            } => {
                self.finish_progress();
                let kind = if *handler { "RUNNING HANDLER" } else { "TASK" };
                self.print(&self.banner(&format!("{kind} [{name}]")));
                if self.verbosity > 1 {
                    self.print(&format!("task path: {location}"));
                }
                if self.interactive && hosts.len() > 1 {
                    let bar = ProgressBar::new(hosts.len() as u64);
                    bar.set_style(
                        ProgressStyle::with_template(
                            "  [{bar:30}] {pos}/{len} {elapsed} waiting on: {msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    bar.enable_steady_tick(std::time::Duration::from_millis(200));
                    if let Ok(mut guard) = self.progress.lock() {
                        bar.set_message(waiting_message(hosts));
                        *guard = Some(Progress {
                            bar,
                            pending: hosts.clone(),
                        });
                    }
                }
            }
            Event::Result(r) => self.result_line(r),
            Event::HostDone { host } => {
                if let Ok(mut guard) = self.progress.lock() {
                    if let Some(p) = guard.as_mut() {
                        // Hosts still running, in start order: the slowest are the ones left.
                        p.pending.retain(|h| h != host);
                        p.bar.inc(1);
                        p.bar.set_message(waiting_message(&p.pending));
                    }
                }
            }
            Event::Warning(w) => {
                let text = self.paint(&format!("[WARNING]: {w}"), BRIGHT_PURPLE);
                eprintln!("{}", self.redactor.text(&text));
            }
            Event::Notice(n) => self.print(n),
            Event::Recap(stats) => {
                self.finish_progress();
                self.recap(stats);
            }
        }
    }
}

/// Internal keys are not shown, as in Ansible's callback.
fn clean_result(result: &Map<String, Value>) -> Map<String, Value> {
    result
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("_ansible") && k.as_str() != "invocation" && k.as_str() != "diff"
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Ansible shows a debug result alone: `msg` (or the variable) without changed/failed/skipped.
fn clean_debug(result: &Map<String, Value>) -> Map<String, Value> {
    if result.contains_key("msg") {
        result
            .iter()
            .filter(|(k, _)| ["msg", "exception", "warnings", "deprecations"].contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    } else {
        let hidden = ["changed", "failed", "skipped", "invocation", "skip_reason"];
        result
            .iter()
            .filter(|(k, _)| !hidden.contains(&k.as_str()) && !k.starts_with("_ansible"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// One-line JSON with Python's separators (`", "` and `": "`), as Ansible prints results.
pub fn python_json_compact(v: &Value) -> String {
    match v {
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(python_json_compact)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), python_json_compact(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn sorted(map: &Map<String, Value>) -> Map<String, Value> {
    let mut keys: Vec<_> = map.keys().cloned().collect();
    keys.sort();
    keys.into_iter()
        .filter_map(|k| map.get(&k).map(|v| (k, sort_value(v))))
        .collect()
}

fn sort_value(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(sorted(m)),
        Value::Array(a) => Value::Array(a.iter().map(sort_value).collect()),
        other => other.clone(),
    }
}

/// JSON with 4-space indentation, as Python's json.dumps(indent=4).
fn python_json_pretty(v: &Value) -> String {
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    if serde::Serialize::serialize(v, &mut ser).is_err() {
        return v.to_string();
    }
    String::from_utf8(buf).unwrap_or_default()
}

fn terminal_columns() -> Option<usize> {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .or_else(|| {
            let out = std::process::Command::new("stty")
                .arg("size")
                .stdin(std::process::Stdio::inherit())
                .output()
                .ok()?;
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recap_line_matches_ansible_format() {
        let console = Console {
            verbosity: 0,
            color: false,
            columns: 80,
            show_diff: false,
            redactor: Redactor::default(),
            progress: Mutex::new(None),
            interactive: false,
        };
        let s = super::super::stats::HostStats {
            ok: 5,
            changed: 2,
            skipped: 1,
            ..Default::default()
        };
        let line = format!(
            "{:<26} : ok={:<4} changed={:<4} unreachable={:<4} failed={:<4} skipped={:<4} rescued={:<4} ignored={:<4}",
            "web1", s.ok, s.changed, s.unreachable, s.failed, s.skipped, s.rescued, s.ignored
        );
        assert_eq!(line, "web1                       : ok=5    changed=2    unreachable=0    failed=0    skipped=1    rescued=0    ignored=0   ");
        assert_eq!(console.banner("PLAY [x]").len(), 81);
    }
}
