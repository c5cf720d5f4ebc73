//! Templating (placeholder until the real module lands).
#![allow(dead_code)]

pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}
