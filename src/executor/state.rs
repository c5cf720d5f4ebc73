//! What the executor remembers about each host during a run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value};

#[derive(Default)]
pub struct HostState {
    /// Inventory, group_vars and host_vars, merged once.
    pub inventory_vars: Arc<Map<String, Value>>,
    /// Gathered facts (without the `ansible_` prefix, as in `ansible_facts`).
    pub facts: Map<String, Value>,
    /// `set_fact` and `register` results: they persist for the rest of the run.
    pub host_vars: Map<String, Value>,
    /// Failed in the current play (cleared when the play ends, as Ansible only excludes them from the play).
    pub failed: bool,
    /// Unreachable: excluded for the rest of the run.
    pub unreachable: bool,
    /// `meta: end_host` or `end_play` reached.
    pub ended: bool,
    /// Handler names (and `listen` topics) notified and not yet run.
    pub notified: Vec<String>,
}

impl HostState {
    pub fn active(&self) -> bool {
        !self.failed && !self.unreachable && !self.ended
    }
}

#[derive(Default)]
pub struct HostTable {
    hosts: HashMap<String, Arc<Mutex<HostState>>>,
}

impl HostTable {
    pub fn insert(&mut self, name: &str, state: HostState) {
        self.hosts
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(state)));
    }

    pub fn contains(&self, name: &str) -> bool {
        self.hosts.contains_key(name)
    }

    pub fn get(&self, name: &str) -> Option<Arc<Mutex<HostState>>> {
        self.hosts.get(name).cloned()
    }
}

/// Locks a host's state; a poisoned lock (a panic elsewhere) still yields the data.
pub fn lock(state: &Mutex<HostState>) -> MutexGuard<'_, HostState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}
