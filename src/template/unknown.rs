//! Values only a real run gives, for check mode (Ansible issue #31113).
//!
//! In check mode some tasks cannot run (a `command` without `creates`, an API that is not up yet), so
//! what they register is a bare `{skipped: true, …}`, and a `set_fact` that could not be evaluated sets
//! nothing. The executor lists those names per host in [`Unknowns`], one map for the whole run (facts
//! reach other hosts through `hostvars`). Contexts made with it note, during a render, every lookup that
//! came up empty *because* of such a name: the name itself missing, or a key missing anywhere inside
//! its registered value. A render that then fails on an undefined value carries those names in
//! [`TemplateError::unknown`](super::TemplateError), and the executor reports the task skipped
//! instead of failed. Renders that succeed are unaffected, except that a condition's evaluation also
//! reports which unknown values it read at all (`out is changed` reads a placeholder's key): a
//! condition decided by them is not known either.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use minijinja::value::{Enumerator, Object, ObjectRepr, Value, ValueKind};

/// The run's values that only a real run gives, by variable name: the hosts whose value of that name
/// is unknown. A later known value (a `register` or `set_fact` that ran) makes it known again for
/// that host.
#[derive(Debug, Default)]
pub struct Unknowns {
    names: RwLock<BTreeMap<String, BTreeSet<String>>>,
    /// Every variable lookup asks; most runs never add a name, and then no lock is taken.
    any: AtomicBool,
}

impl Unknowns {
    pub fn add(&self, host: &str, name: &str) {
        self.names
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .insert(host.to_string());
        self.any.store(true, Ordering::Release);
    }

    /// `host`'s value of `name` is known again.
    pub fn forget(&self, host: &str, name: &str) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        if let Some(hosts) = names.get_mut(name) {
            hosts.remove(host);
            if hosts.is_empty() {
                names.remove(name);
            }
        }
    }

    /// Whether `host`'s value of `name` is unknown (any host's, when the host is not known).
    pub fn contains(&self, host: Option<&str>, name: &str) -> bool {
        self.any.load(Ordering::Acquire)
            && self
                .names
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
                .is_some_and(|hosts| host.map_or(!hosts.is_empty(), |h| hosts.contains(h)))
    }
}

thread_local! {
    /// Unknown names whose lookups came up empty during the current top-level render, first seen first.
    static MISSED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    /// Unknown names whose values the current top-level render read: the misses, and keys found.
    static READ: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Forgets the misses and reads; called when a top-level render starts.
pub fn reset_thread_state() {
    MISSED.with(|m| m.borrow_mut().clear());
    READ.with(|m| m.borrow_mut().clear());
}

fn push(list: &'static std::thread::LocalKey<RefCell<Vec<String>>>, name: &str) {
    list.with(|m| {
        let mut names = m.borrow_mut();
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    });
}

/// Notes that a lookup came up empty because `name`'s value is unknown.
pub fn note_miss(name: &str) {
    push(&MISSED, name);
    push(&READ, name);
}

/// Notes that a key of `name`'s (placeholder) value was read.
fn note_read(name: &str) {
    push(&READ, name);
}

/// The misses of the current top-level render so far.
pub fn missed() -> Vec<String> {
    MISSED.with(|m| m.borrow().clone())
}

/// The unknown values the current top-level render read so far.
pub fn read() -> Vec<String> {
    READ.with(|m| m.borrow().clone())
}

/// An unknown name's (registered) value: reads like the value, and notes a miss for every key that
/// is not there, at any depth (`out.stdout`, `out.results[0].rc`).
#[derive(Debug)]
pub struct UnknownValue {
    inner: Value,
    name: Arc<str>,
}

/// `value` as the value of the unknown `name` (containers only: scalars have no keys to miss).
pub fn wrap(value: Value, name: &str) -> Value {
    wrap_as(value, Arc::from(name))
}

fn wrap_as(value: Value, name: Arc<str>) -> Value {
    let container = matches!(value.kind(), ValueKind::Map | ValueKind::Seq);
    if container && value.downcast_object_ref::<UnknownValue>().is_none() {
        Value::from_object(UnknownValue { inner: value, name })
    } else {
        value
    }
}

/// Whether `value` is (a part of) an unknown name's value.
pub fn is_unknown_value(value: &Value) -> bool {
    value.downcast_object_ref::<UnknownValue>().is_some()
}

impl Object for UnknownValue {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        super::proxy::repr(&self.inner)
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match self.inner.get_item(key) {
            Ok(found) if !found.is_undefined() => {
                note_read(&self.name);
                Some(wrap_as(found, self.name.clone()))
            }
            _ => {
                note_miss(&self.name);
                None
            }
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        super::proxy::enumerate(&self.inner)
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        self.inner.len()
    }

    fn is_true(self: &Arc<Self>) -> bool {
        self.inner.is_true()
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        super::proxy::render(&self.inner, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_per_host_until_a_known_value_replaces_it() {
        let u = Unknowns::default();
        assert!(!u.contains(None, "out"));
        u.add("h1", "out");
        assert!(u.contains(Some("h1"), "out") && u.contains(None, "out"));
        assert!(!u.contains(Some("h2"), "out"));
        u.forget("h2", "out");
        assert!(u.contains(Some("h1"), "out"));
        u.forget("h1", "out");
        assert!(!u.contains(Some("h1"), "out") && !u.contains(None, "out"));
    }

    #[test]
    fn misses_are_noted_once_in_first_seen_order_at_any_depth() {
        reset_thread_state();
        let out = wrap(
            super::super::from_json(
                &serde_json::json!({"skipped": true, "results": [{"skipped": true}]}),
            ),
            "out",
        );
        assert!(out.get_attr("skipped").is_ok_and(|v| v.is_true()));
        assert!(missed().is_empty(), "a key that is there is no miss");
        assert_eq!(read(), vec!["out".to_string()], "but it is a read");
        let item = out
            .get_attr("results")
            .and_then(|r| r.get_item(&Value::from(0)))
            .expect("item");
        assert!(item.get_attr("rc").is_ok_and(|v| v.is_undefined()));
        note_miss("other");
        assert!(out.get_attr("stdout").is_ok_and(|v| v.is_undefined()));
        assert_eq!(missed(), vec!["out".to_string(), "other".to_string()]);
        reset_thread_state();
        assert!(missed().is_empty());
    }

    #[test]
    fn wrapped_values_read_like_the_value() {
        let v = wrap(
            super::super::from_json(&serde_json::json!({"a": [1, 2], "b": "x"})),
            "r",
        );
        assert_eq!(v.len(), Some(2));
        assert_eq!(
            super::super::to_json(&v),
            serde_json::json!({"a": [1, 2], "b": "x"})
        );
        assert_eq!(wrap(Value::from(3), "r"), Value::from(3));
    }
}
