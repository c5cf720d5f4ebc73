//! `--output json`: one JSON object per line, for CI and other programs.

use std::io::Write;

use serde_json::{json, Value};

use super::{Event, Redactor, Reporter};

pub struct JsonLines {
    redactor: Redactor,
}

impl JsonLines {
    pub fn new(redactor: Redactor) -> JsonLines {
        JsonLines { redactor }
    }
}

impl Reporter for JsonLines {
    fn event(&self, event: &Event) {
        let value = match event {
            Event::PlaybookStart { path, check } => {
                json!({"event": "playbook_start", "playbook": path, "check": check})
            }
            Event::PlayStart { name, hosts } => {
                json!({"event": "play_start", "play": name, "hosts": hosts})
            }
            Event::TaskStart {
                name,
                handler,
                location,
                ..
            } => {
                json!({"event": "task_start", "task": name, "handler": handler, "location": location})
            }
            Event::Result(r) => {
                let diffs: Vec<Value> = r
                    .diffs
                    .iter()
                    .map(|d| json!({"before_header": d.before_header, "after_header": d.after_header, "before": d.before, "after": d.after}))
                    .collect();
                let mut event = json!({
                    "event": "host_result", "host": r.host, "delegate": r.delegate, "task": r.task,
                    "status": r.status, "item": r.item, "result": r.result, "diff": diffs,
                });
                if let (Some(reason), Some(map)) = (&r.reason, event.as_object_mut()) {
                    map.insert("reason".into(), json!(reason));
                }
                event
            }
            Event::HostDone { .. } => return,
            Event::Warning(w) => json!({"event": "warning", "msg": w}),
            Event::Notice(n) => json!({"event": "notice", "msg": n}),
            Event::Recap(stats) => json!({"event": "recap", "stats": stats.hosts}),
        };
        let line = serde_json::to_string(&self.redactor.value(&value)).unwrap_or_default();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}
