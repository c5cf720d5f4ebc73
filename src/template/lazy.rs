//! Variable contexts that template their values on access.
//!
//! Ansible templates a variable only when something reads it, so `a: "{{ b }}"` sees `b` as the task
//! sees it, and a broken variable nobody reads does no harm. [`LazyVars`] does the same: the first
//! read of a variable renders it (recursively through the same context), the result is memoized for
//! the life of the context, and a variable that needs itself is reported as a loop.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use serde_json::Value as Json;

use super::unknown::{self, Unknowns};
use super::{from_json, record_var_error, Templar, TemplateError};

thread_local! {
    /// Variables being rendered on this thread, outermost first: (context id, name).
    /// Per thread, because one context (a host's vars inside `hostvars`) may be read by many tasks at once.
    static RESOLVING: RefCell<Vec<(usize, String)>> = const { RefCell::new(Vec::new()) };
    /// Set once the nesting bound was hit during the current top-level render: every later variable
    /// render then fails at once. Contexts made afresh are never memoized, so without this each
    /// failed level would descend again and the work would grow exponentially with the depth.
    static NESTING_EXCEEDED: RefCell<Option<TemplateError>> = const { RefCell::new(None) };
}

/// Forgets the per-render state; called when a top-level render starts.
pub fn reset_thread_state() {
    NESTING_EXCEEDED.with(|n| n.borrow_mut().take());
}

/// Nested variable renders allowed on one thread. A loop through contexts made afresh on each access
/// (`a: "{{ hostvars[inventory_hostname].a }}"`) is invisible to the per-context check; this bound turns
/// it into an error long before the stack (2 MiB on tokio's workers) runs out.
const MAX_NESTING: usize = 24;

/// Pops the variable from [`RESOLVING`] when its render ends, also on unwinding.
struct Resolving;

impl Drop for Resolving {
    fn drop(&mut self) {
        RESOLVING.with(|r| r.borrow_mut().pop());
    }
}

pub struct LazyVars {
    templar: Arc<Templar>,
    vars: Arc<serde_json::Map<String, Json>>,
    objects: Vec<(String, Value)>,
    memo: Mutex<HashMap<String, Value>>,
    /// Variables that failed to render, with why (a second read fails at once, without re-rendering).
    failed: Mutex<HashMap<String, TemplateError>>,
    /// Check mode: names whose values only a real run gives; lookups they make miss are noted.
    unknowns: Option<Arc<Unknowns>>,
}

impl std::fmt::Debug for LazyVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyVars")
            .field("vars", &self.vars.len())
            .field("objects", &self.objects.len())
            .finish()
    }
}

impl LazyVars {
    pub fn new(
        templar: Arc<Templar>,
        vars: Arc<serde_json::Map<String, Json>>,
        objects: Vec<(String, Value)>,
        unknowns: Option<Arc<Unknowns>>,
    ) -> Self {
        LazyVars {
            templar,
            vars,
            objects,
            memo: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
            unknowns,
        }
    }

    fn is_unknown(&self, name: &str) -> bool {
        self.unknowns.as_ref().is_some_and(|u| {
            let host = self.vars.get("inventory_hostname").and_then(Json::as_str);
            u.contains(host, name)
        })
    }

    fn memoized(&self, name: &str) -> Option<Value> {
        self.memo.lock().ok()?.get(name).cloned()
    }

    fn remember(&self, name: &str, value: &Value) {
        if let Ok(mut memo) = self.memo.lock() {
            memo.insert(name.to_string(), value.clone());
        }
    }

    /// Renders one variable; on failure records why (see `VAR_ERRORS`) and reads as undefined.
    fn resolve(self: &Arc<Self>, name: &str, raw: &Json) -> Option<Value> {
        let id = Arc::as_ptr(self) as *const () as usize;
        let cycle = RESOLVING.with(|r| {
            let stack = r.borrow();
            let start = stack
                .iter()
                .position(|(ctx, var)| *ctx == id && var == name)?;
            let mut chain: Vec<&str> = stack[start..].iter().map(|(_, var)| var.as_str()).collect();
            chain.push(name);
            Some(chain.join(" -> "))
        });
        let nesting = RESOLVING.with(|r| r.borrow().len());
        let cycle = cycle.or_else(|| {
            (nesting >= MAX_NESTING).then(|| {
                let names = RESOLVING.with(|r| {
                    r.borrow()
                        .iter()
                        .rev()
                        .take(4)
                        .map(|(_, var)| var.clone())
                        .collect::<Vec<_>>()
                });
                format!(
                    "more than {MAX_NESTING} variables deep, last: {}",
                    names.join(" <- ")
                )
            })
        });
        if let Some(previous) = self
            .failed
            .lock()
            .ok()
            .and_then(|failed| failed.get(name).cloned())
        {
            // The same failure again: its unknown names are this render's misses too.
            previous.unknown.iter().for_each(|n| unknown::note_miss(n));
            record_var_error(name, previous);
            return None;
        }
        if let Some(error) = NESTING_EXCEEDED.with(|n| n.borrow().clone()) {
            record_var_error(name, error);
            return None;
        }
        if let Some(chain) = cycle {
            let error = TemplateError {
                message: format!(
                    "recursive loop detected in template for variable '{name}' ({chain})"
                ),
                undefined: None,
                unknown: Vec::new(),
            };
            if nesting >= MAX_NESTING {
                NESTING_EXCEEDED.with(|n| *n.borrow_mut() = Some(error.clone()));
            }
            record_var_error(name, error);
            return None;
        }
        RESOLVING.with(|r| r.borrow_mut().push((id, name.to_string())));
        let _resolving = Resolving;
        let context = Value::from_dyn_object(self.clone());
        match self.templar.template_native(raw, &context) {
            Ok(value) => Some(value),
            Err(mut error) => {
                if !error.message.contains("recursive loop detected") {
                    error.message =
                        format!("{} (while templating variable '{name}')", error.message);
                }
                record_var_error(name, error);
                None
            }
        }
    }
}

impl Object for LazyVars {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        if let Some((_, object)) = self.objects.iter().find(|(n, _)| n == name) {
            return Some(object.clone());
        }
        if let Some(value) = self.memoized(name) {
            return Some(value);
        }
        let Some(raw) = self.vars.get(name) else {
            if self.is_unknown(name) {
                unknown::note_miss(name);
            }
            return None;
        };
        let mut value = if super::contains_template(raw) {
            self.resolve(name, raw)?
        } else {
            from_json(raw)
        };
        if self.is_unknown(name) {
            value = unknown::wrap(value, name);
        }
        self.remember(name, &value);
        Some(value)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut seen = HashSet::new();
        let names: Vec<Value> = self
            .objects
            .iter()
            .map(|(name, _)| name.as_str())
            .chain(self.vars.keys().map(String::as_str))
            .filter(|name| seen.insert(*name))
            .map(Value::from)
            .collect();
        Enumerator::Values(names)
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        let extra = self
            .objects
            .iter()
            .filter(|(name, _)| !self.vars.contains_key(name))
            .count();
        Some(self.vars.len() + extra)
    }
}

/// Variables in front of a base context (e.g. `template_path` for a template file).
#[derive(Debug)]
pub struct Overlay {
    extra: Vec<(String, Value)>,
    base: Value,
}

pub fn overlay(base: Value, extra: Vec<(String, Value)>) -> Value {
    Value::from_object(Overlay { extra, base })
}

impl Object for Overlay {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        if let Some(name) = key.as_str() {
            if let Some((_, value)) = self.extra.iter().find(|(n, _)| n == name) {
                return Some(value.clone());
            }
        }
        let value = self.base.get_item(key).ok()?;
        (!value.is_undefined()).then_some(value)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut seen = HashSet::new();
        let mut names: Vec<Value> = Vec::new();
        for name in self.extra.iter().map(|(n, _)| Value::from(n.as_str())) {
            if seen.insert(name.to_string()) {
                names.push(name);
            }
        }
        if let Ok(keys) = self.base.try_iter() {
            for key in keys {
                if seen.insert(key.to_string()) {
                    names.push(key);
                }
            }
        }
        Enumerator::Values(names)
    }
}
