//! Variable precedence: one documented order, a subset of Ansible's (lowest first):
//!
//! 1. inventory vars, group_vars, host_vars (merged by the inventory: `all` < parent < child < host)
//! 2. facts (`ansible_facts` and the `ansible_*` names)
//! 3. play `vars`
//! 4. play `vars_files`
//! 5. block and task `vars` (and `include_tasks` vars)
//! 6. `set_fact` and `register`
//! 7. extra vars (`-e`)
//! 8. loop variables (`item`, `loop_control.index_var`)
//! 9. magic variables (`inventory_hostname`, `groups`, `hostvars`, …), which cannot be overridden.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::state::HostState;
use crate::inventory::Inventory;
use crate::template::Templar;

pub const OMIT: &str = "__omit_place_holder__5e0bd6ad5f0d1d9a";

/// Everything shared by all hosts of a run that variables are made from.
pub struct VarSources {
    pub inventory: Arc<Inventory>,
    pub templar: Arc<Templar>,
    pub extra_vars: Map<String, Value>,
    pub playbook_dir: String,
    pub groups: minijinja::Value,
    pub check_mode: bool,
    pub diff_mode: bool,
    pub run_tags: Vec<String>,
    pub skip_tags: Vec<String>,
    /// Check mode: the names whose values only a real run gives (registered by tasks check mode
    /// could not run, or set by tasks skipped for depending on them). Run-wide, as `hostvars` shows
    /// one host's facts to every other.
    pub unknowns: Arc<crate::template::Unknowns>,
}

/// The play-level layers (3 and 4), and the play's host lists for magic vars.
pub struct PlayVars {
    pub vars: Map<String, Value>,
    pub play_hosts_all: Vec<String>,
    /// The play's hosts that have not failed, as of the start of the batch.
    pub play_hosts: Vec<String>,
    pub play_batch: Vec<String>,
    pub play_name: String,
}

/// Merges layers 1–4 and 6 (what `hostvars[host]` shows).
pub fn host_level(state: &HostState, play: Option<&PlayVars>) -> Map<String, Value> {
    let mut vars = (*state.inventory_vars).clone();
    add_facts(&mut vars, &state.facts);
    if let Some(p) = play {
        vars.extend(p.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    vars.extend(state.host_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    vars
}

fn add_facts(vars: &mut Map<String, Value>, facts: &Map<String, Value>) {
    if facts.is_empty() {
        return;
    }
    for (k, v) in facts {
        let name = if k.starts_with("ansible_") {
            k.clone()
        } else {
            format!("ansible_{k}")
        };
        vars.insert(name, v.clone());
    }
    vars.insert("ansible_facts".into(), Value::Object(facts.clone()));
}

/// All layers for a task on a host.
pub fn task_level(
    sources: &VarSources,
    host: &str,
    state: &HostState,
    play: &PlayVars,
    task_vars: &Map<String, Value>,
    scope_vars: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let mut vars = (*state.inventory_vars).clone();
    add_facts(&mut vars, &state.facts);
    vars.extend(play.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(scope) = scope_vars {
        vars.extend(scope.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    vars.extend(task_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    vars.extend(state.host_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    vars.extend(
        sources
            .extra_vars
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    add_magic(&mut vars, sources, host, Some(play));
    vars
}

pub fn add_magic(
    vars: &mut Map<String, Value>,
    sources: &VarSources,
    host: &str,
    play: Option<&PlayVars>,
) {
    vars.insert("inventory_hostname".into(), Value::String(host.to_string()));
    vars.insert(
        "inventory_hostname_short".into(),
        Value::String(host.split('.').next().unwrap_or(host).to_string()),
    );
    vars.insert(
        "group_names".into(),
        Value::Array(
            sources
                .inventory
                .group_names(host)
                .into_iter()
                .map(Value::String)
                .collect(),
        ),
    );
    vars.insert(
        "playbook_dir".into(),
        Value::String(sources.playbook_dir.clone()),
    );
    vars.insert("ansible_check_mode".into(), Value::Bool(sources.check_mode));
    vars.insert("ansible_diff_mode".into(), Value::Bool(sources.diff_mode));
    vars.insert(
        "ansible_run_tags".into(),
        Value::from(if sources.run_tags.is_empty() {
            vec!["all".to_string()]
        } else {
            sources.run_tags.clone()
        }),
    );
    vars.insert(
        "ansible_skip_tags".into(),
        Value::from(sources.skip_tags.clone()),
    );
    vars.insert("omit".into(), Value::String(OMIT.into()));
    vars.insert(
        "ansible_version".into(),
        serde_json::json!({"full": "2.17.0", "major": 2, "minor": 17, "revision": 0, "string": "2.17.0 (orch)"}),
    );
    if let Some(p) = play {
        vars.insert(
            "ansible_play_hosts".into(),
            Value::from(p.play_hosts.clone()),
        );
        vars.insert(
            "ansible_play_hosts_all".into(),
            Value::from(p.play_hosts_all.clone()),
        );
        vars.insert(
            "ansible_play_batch".into(),
            Value::from(p.play_batch.clone()),
        );
        vars.insert(
            "ansible_play_name".into(),
            Value::String(p.play_name.clone()),
        );
    }
}

/// Removes arguments set to `omit`, recursively in mappings.
pub fn strip_omitted(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| v.as_str() != Some(OMIT))
                .map(|(k, v)| (k, strip_omitted(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .filter(|v| v.as_str() != Some(OMIT))
                .map(strip_omitted)
                .collect(),
        ),
        other => other,
    }
}
