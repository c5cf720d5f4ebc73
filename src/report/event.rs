//! What the executor tells reporters.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::modules::Diff;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    Ok,
    Changed,
    Failed,
    Skipped,
    Unreachable,
    /// A failure under `ignore_errors`.
    Ignored,
}

#[derive(Clone, Debug)]
pub struct ResultEvent {
    pub host: String,
    pub delegate: Option<String>,
    pub task: String,
    pub status: HostStatus,
    /// For a loop item: its label.
    pub item: Option<String>,
    /// Why the result is what it is, shown on the result line even without -v (a check-mode skip of
    /// a task that depends on results only a real run gives).
    pub reason: Option<String>,
    /// Result keys, already masked when `no_log` applies.
    pub result: Map<String, Value>,
    pub diffs: Vec<Diff>,
    /// Print the result even without -v (debug).
    pub verbose_always: bool,
}

#[derive(Clone, Debug)]
pub enum Event {
    PlaybookStart {
        path: String,
        check: bool,
    },
    PlayStart {
        name: String,
        hosts: Vec<String>,
    },
    TaskStart {
        name: String,
        handler: bool,
        location: String,
        /// The hosts the task runs on.
        hosts: Vec<String>,
    },
    Result(ResultEvent),
    /// A host finished its part of the current task (progress accounting).
    HostDone {
        host: String,
    },
    Warning(String),
    /// A play-level message such as "NO MORE HOSTS LEFT".
    Notice(String),
    Recap(super::Stats),
}
