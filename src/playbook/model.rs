//! The parsed playbook: plays, blocks and tasks with their source positions.
//!
//! Inherited keywords (block `when`, `tags`, `become`, `vars`, `environment`, …) are folded into each
//! task at load time, so the executor sees every task with its effective settings.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::Span;

#[derive(Debug)]
pub struct Playbook {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub plays: Vec<Play>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SerialStep {
    Count(u64),
    Percent(f64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    Linear,
    Free,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostOrder {
    Inventory,
    ReverseInventory,
    Sorted,
    ReverseSorted,
    Shuffle,
}

#[derive(Debug)]
pub struct Play {
    pub name: String,
    pub hosts: String,
    pub span: Span,
    pub vars: Map<String, Value>,
    pub vars_files: Vec<(String, Span)>,
    pub gather_facts: bool,
    pub gather_subset: Vec<String>,
    pub pre_tasks: Vec<TaskItem>,
    pub tasks: Vec<TaskItem>,
    pub post_tasks: Vec<TaskItem>,
    pub handlers: Vec<Arc<Task>>,
    pub serial: Vec<SerialStep>,
    /// orch extension: one batch per distinct value of this template over the play's hosts
    /// (e.g. `{{ ansible_pve_cluster.id }}`: one cluster at a time), in inventory order.
    pub batch_by: Option<String>,
    pub max_fail_percentage: Option<f64>,
    pub any_errors_fatal: bool,
    pub force_handlers: bool,
    pub strategy: Strategy,
    pub order: HostOrder,
    pub tags: Vec<String>,
    /// Settings every task of the play inherits (become, environment, …).
    pub defaults: Inherited,
}

/// Settings a task inherits from its play and enclosing blocks, and may override.
#[derive(Clone, Debug, Default)]
pub struct Inherited {
    pub when: Vec<Condition>,
    pub tags: Vec<String>,
    pub vars: Map<String, Value>,
    pub environment: Vec<Value>,
    pub become_enabled: Option<bool>,
    pub become_user: Option<String>,
    pub become_method: Option<String>,
    pub become_flags: Option<String>,
    pub remote_user: Option<String>,
    pub no_log: Option<bool>,
    pub ignore_errors: Option<bool>,
    pub ignore_unreachable: Option<bool>,
    pub run_once: Option<bool>,
    pub check_mode: Option<Value>,
    pub diff: Option<Value>,
    pub delegate_to: Option<String>,
    pub any_errors_fatal: Option<bool>,
    pub connection: Option<String>,
    pub timeout: Option<u64>,
}

/// A Jinja expression with where it was written.
#[derive(Clone, Debug)]
pub struct Condition {
    pub expr: String,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum TaskItem {
    Task(Arc<Task>),
    Block(Arc<Block>),
    Include(Arc<Include>),
    Meta(Arc<MetaTask>),
}

#[derive(Debug)]
pub struct Block {
    pub name: Option<String>,
    pub span: Span,
    pub block: Vec<TaskItem>,
    pub rescue: Vec<TaskItem>,
    pub always: Vec<TaskItem>,
}

/// How the loop's value becomes items: `loop`/`with_list` as is, `with_items` flattened one level,
/// `with_dict` as key/value pairs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoopKind {
    #[default]
    List,
    Items,
    Dict,
}

#[derive(Clone, Debug)]
pub struct LoopControl {
    pub kind: LoopKind,
    pub loop_var: String,
    pub index_var: Option<String>,
    pub label: Option<String>,
    pub pause: Option<f64>,
    pub extended: bool,
}

impl Default for LoopControl {
    fn default() -> Self {
        LoopControl {
            kind: LoopKind::List,
            loop_var: "item".into(),
            index_var: None,
            label: None,
            pause: None,
            extended: false,
        }
    }
}

#[derive(Debug)]
pub struct Task {
    pub name: Option<String>,
    /// Canonical module name (`command`, not `ansible.builtin.command`).
    pub module: String,
    /// As written (for messages).
    pub action: String,
    /// Raw (untemplated) arguments, aliases mapped to canonical names.
    pub args: Map<String, Value>,
    pub span: Span,
    pub file: Arc<PathBuf>,
    pub common: Inherited,
    pub loop_items: Option<Value>,
    pub loop_control: LoopControl,
    pub register: Option<String>,
    pub notify: Vec<String>,
    pub listen: Vec<String>,
    pub changed_when: Vec<Condition>,
    pub failed_when: Vec<Condition>,
    pub until: Option<Condition>,
    pub retries: Option<Value>,
    pub delay: Option<Value>,
    /// orch extension: run on the first reachable host of each distinct value of this template
    /// (e.g. a cluster's identity), and give that result to every host of the group.
    pub once_per: Option<String>,
}

impl Task {
    /// The name shown in TASK banners: the task's name, else the module as written.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.action.clone())
    }
}

#[derive(Debug)]
pub struct Include {
    pub name: Option<String>,
    pub file: String,
    pub span: Span,
    pub base_dir: PathBuf,
    pub common: Inherited,
    pub loop_items: Option<Value>,
    pub loop_control: LoopControl,
    /// Parsed ahead of time when the path has no template, so errors show before any host is touched.
    pub preloaded: Option<Arc<Vec<TaskItem>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaAction {
    FlushHandlers,
    EndPlay,
    EndHost,
    EndBatch,
    ClearFacts,
    Noop,
    ClearHostErrors,
    RefreshInventory,
}

#[derive(Debug)]
pub struct MetaTask {
    pub action: MetaAction,
    pub span: Span,
    pub common: Inherited,
}
