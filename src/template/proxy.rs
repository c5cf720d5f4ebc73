//! What an object that stands in for a container value (to watch how a template reads it)
//! answers exactly as the container would: its shape, its keys or length, its truth, its text.

use std::fmt;

use minijinja::value::{Enumerator, ObjectRepr, Value, ValueKind};

pub fn repr(inner: &Value) -> ObjectRepr {
    if inner.kind() == ValueKind::Seq {
        ObjectRepr::Seq
    } else {
        ObjectRepr::Map
    }
}

pub fn enumerate(inner: &Value) -> Enumerator {
    if inner.kind() == ValueKind::Seq {
        return Enumerator::Seq(inner.len().unwrap_or(0));
    }
    match inner.try_iter() {
        Ok(keys) => Enumerator::Values(keys.collect()),
        Err(_) => Enumerator::Empty,
    }
}

pub fn render(inner: &Value, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(&super::convert::python_str(inner))
}
