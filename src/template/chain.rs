//! Ansible's chainable undefined, used only when a strict render has already failed.
//!
//! Ansible lets `missing.attr | default('x')` and `missing.attr is defined` pass: an undefined value
//! returns itself on attribute access, and fails only when it is printed, tested for truth,
//! iterated or compared. minijinja has no such mode (its strict mode fails at the attribute access),
//! so a template that failed strictly is rendered once more over a context where missing names and
//! missing attributes become [`ChainUndefined`] markers. Every use of a marker other than a guard
//! (`default`, `defined`, `undefined`, `mandatory`) flags the attempt as misused, and then the original
//! strict error stands. Some uses cannot be seen from the marker (`missing == 1` compares without
//! asking it), so the retry also counts markers handed out against markers that reached a guard:
//! every one must have. Templates that render strictly never pay for this.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, Value, ValueKind};
use minijinja::{Error, ErrorKind, State};

/// Shared by all markers of one retry: did the template use a marker unguarded?
#[derive(Debug, Default)]
pub struct Attempt {
    misused: AtomicBool,
    created: AtomicUsize,
    guarded: AtomicUsize,
}

impl Attempt {
    /// Whether some marker was used unguarded (or never reached a guard).
    pub fn misused(&self) -> bool {
        self.misused.load(Ordering::Relaxed)
            || self.created.load(Ordering::Relaxed) != self.guarded.load(Ordering::Relaxed)
    }

    fn flag(&self) {
        self.misused.store(true, Ordering::Relaxed);
    }
}

/// A missing variable or attribute that tolerates further attribute access.
#[derive(Debug)]
pub struct ChainUndefined {
    pub name: String,
    attempt: Arc<Attempt>,
}

impl ChainUndefined {
    fn misuse(&self) -> Error {
        self.attempt.flag();
        Error::new(
            ErrorKind::UndefinedError,
            format!("`{}` is undefined", self.name),
        )
    }
}

impl Object for ChainUndefined {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, _key: &Value) -> Option<Value> {
        Some(Value::from_dyn_object(self.clone()))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        self.attempt.flag();
        Enumerator::Empty
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        self.attempt.flag();
        None
    }

    fn is_true(self: &Arc<Self>) -> bool {
        self.attempt.flag();
        false
    }

    fn call(self: &Arc<Self>, _state: &mut State<'_, '_>, _args: &[Value]) -> Result<Value, Error> {
        Err(self.misuse())
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        _method: &str,
        _args: &[Value],
    ) -> Result<Value, Error> {
        Err(self.misuse())
    }

    fn custom_cmp(
        self: &Arc<Self>,
        _other: &minijinja::value::DynObject,
    ) -> Option<std::cmp::Ordering> {
        self.attempt.flag();
        None
    }

    fn render(self: &Arc<Self>, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.attempt.flag();
        Ok(())
    }
}

/// A defined mapping (or list) whose missing keys answer with markers instead of undefined.
#[derive(Debug)]
pub struct ChainProxy {
    inner: Value,
    path: String,
    attempt: Arc<Attempt>,
    /// Set on the root context only: names the engine resolves itself (functions like `range`).
    globals: Option<Arc<HashSet<String>>>,
}

impl Object for ChainProxy {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        super::proxy::repr(&self.inner)
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let found = self.inner.get_item(key).unwrap_or_default();
        let path = match (&self.globals, key.as_str()) {
            (Some(_), Some(name)) => name.to_string(),
            (None, Some(name)) if is_identifier(name) => format!("{}.{name}", self.path),
            _ => format!("{}[{}]", self.path, super::convert::python_str(key)),
        };
        if found.is_undefined() {
            if let (Some(globals), Some(name)) = (&self.globals, key.as_str()) {
                if globals.contains(name) {
                    return None;
                }
            }
            return Some(marker(path, &self.attempt));
        }
        Some(wrap(found, path, &self.attempt))
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

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

fn marker(name: String, attempt: &Arc<Attempt>) -> Value {
    attempt.created.fetch_add(1, Ordering::Relaxed);
    Value::from_object(ChainUndefined {
        name,
        attempt: attempt.clone(),
    })
}

fn wrap(value: Value, path: String, attempt: &Arc<Attempt>) -> Value {
    let container = matches!(value.kind(), ValueKind::Map | ValueKind::Seq);
    if container && value.downcast_object_ref::<ChainProxy>().is_none() {
        Value::from_object(ChainProxy {
            inner: value,
            path,
            attempt: attempt.clone(),
            globals: None,
        })
    } else {
        value
    }
}

/// The context for a retry: `vars` with missing names answered by markers.
pub fn root(vars: &Value, globals: Arc<HashSet<String>>, attempt: &Arc<Attempt>) -> Value {
    Value::from_object(ChainProxy {
        inner: vars.clone(),
        path: String::new(),
        attempt: attempt.clone(),
        globals: Some(globals),
    })
}

pub fn is_chain_undefined(value: &Value) -> bool {
    value.downcast_object_ref::<ChainUndefined>().is_some()
}

/// Undefined in the Ansible sense: truly undefined or a chained marker. Only guards call this:
/// a marker passed here counts as guarded.
pub fn is_undefined(value: &Value) -> bool {
    if let Some(marker) = value.downcast_object_ref::<ChainUndefined>() {
        marker.attempt.guarded.fetch_add(1, Ordering::Relaxed);
        return true;
    }
    value.is_undefined()
}

/// Fails for an undefined input (naming it where the engine knows the name); filters call this
/// because minijinja hands undefined values to `Value` parameters without complaint.
pub fn require_defined(value: &Value) -> Result<(), Error> {
    if value.is_undefined() {
        // `get_attr` on undefined yields the engine's own error, which carries the value's origin.
        return value.get_attr("__orch_undefined__").map(|_| ());
    }
    if let Some(marker) = value.downcast_object_ref::<ChainUndefined>() {
        return Err(marker.misuse());
    }
    Ok(())
}

/// The name a marker stands for (used by `mandatory`).
pub fn marker_name(value: &Value) -> Option<String> {
    value
        .downcast_object_ref::<ChainUndefined>()
        .map(|m| m.name.clone())
}

/// Replaces retry proxies in a result by the values they wrap; `None` when a marker is left in it.
pub fn strip(value: Value) -> Option<Value> {
    if is_chain_undefined(&value) {
        return None;
    }
    if let Some(proxy) = value.downcast_object_ref::<ChainProxy>() {
        return Some(proxy.inner.clone());
    }
    match value.kind() {
        ValueKind::Seq => {
            let items = value
                .try_iter()
                .ok()?
                .map(strip)
                .collect::<Option<Vec<_>>>()?;
            Some(Value::from(items))
        }
        ValueKind::Map
            if value
                .as_object()
                .is_some_and(|o| o.downcast_ref::<super::lazy::LazyVars>().is_none()) =>
        {
            let mut pairs = Vec::new();
            for key in value.try_iter().ok()? {
                let item = value.get_item(&key).ok()?;
                pairs.push((key, strip(item)?));
            }
            Some(Value::from_pairs(pairs))
        }
        _ => Some(value),
    }
}
