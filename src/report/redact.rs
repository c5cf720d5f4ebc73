//! Masks secret values wherever they would be shown.

use std::sync::{Arc, RwLock};

use serde_json::Value;

pub const MASK: &str = "********";
pub const NO_LOG_MSG: &str =
    "the output has been hidden due to the fact that 'no_log: true' was specified for this result";

/// The set of secret strings known so far (passwords, tokens, generated values).
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Vec<String>>>,
}

impl Redactor {
    /// Registers a secret; values shorter than 4 characters are not masked (they would garble output).
    /// A multi-line secret (a PEM private key) is also masked line by line, so that no part of it
    /// shows when a template takes it apart; PEM armour lines are not secret and stay readable.
    pub fn add(&self, secret: &str) {
        if secret.len() < 4 {
            return;
        }
        if secret.trim_end().contains('\n') {
            for line in secret.lines().map(str::trim) {
                if line.len() >= 16 && !line.starts_with("-----") {
                    self.add(line);
                }
            }
        }
        if let Ok(mut list) = self.secrets.write() {
            if !list.iter().any(|s| s == secret) {
                list.push(secret.to_string());
                // Longest first, so that a secret containing another is masked whole.
                list.sort_by_key(|s| std::cmp::Reverse(s.len()));
            }
        }
    }

    pub fn text(&self, text: &str) -> String {
        let Ok(list) = self.secrets.read() else {
            return text.to_string();
        };
        let mut out = text.to_string();
        for s in list.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }

    pub fn value(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_nested_values_longest_first() {
        let r = Redactor::default();
        r.add("hunter2pass");
        r.add("hunter2");
        let v = serde_json::json!({"a": ["x hunter2pass y", "hunter2"]});
        assert_eq!(
            r.value(&v),
            serde_json::json!({"a": ["x ******** y", "********"]})
        );
    }

    #[test]
    fn a_multi_line_secret_is_masked_line_by_line_too() {
        let r = Redactor::default();
        let key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n";
        r.add(key);
        assert_eq!(r.text(&format!("k={key}")), "k=********");
        assert_eq!(
            r.text("line MIIEvQIBADANBgkqhkiG9w0BAQEFAASC and BKcwggSjAgEAAoIBAQC7"),
            "line ******** and ********"
        );
        assert_eq!(
            r.text("-----BEGIN PRIVATE KEY-----"),
            "-----BEGIN PRIVATE KEY-----"
        );
    }
}
