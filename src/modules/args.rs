//! Typed access to a module's (already templated) arguments, with Ansible's type coercions.

use serde_json::{Map, Value};

use super::ModuleError;

/// Module arguments after templating, with aliases already mapped to canonical names.
#[derive(Clone, Debug, Default)]
pub struct Args {
    pub module: &'static str,
    pub map: Map<String, Value>,
}

impl Args {
    pub fn new(module: &'static str, map: Map<String, Value>) -> Args {
        Args { module, map }
    }

    fn type_error(&self, name: &str, expected: &str, got: &Value) -> ModuleError {
        ModuleError::msg(format!(
            "argument '{name}' of module {} is of type {} and we were unable to convert to {expected}",
            self.module,
            json_type(got)
        ))
    }

    pub fn value(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    pub fn has(&self, name: &str) -> bool {
        self.value(name).is_some()
    }

    /// A string argument; numbers and booleans are converted as Ansible does.
    pub fn str(&self, name: &str) -> Result<Option<String>, ModuleError> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(if *b { "True".into() } else { "False".into() })),
            Some(other) => Err(self.type_error(name, "str", other)),
        }
    }

    pub fn req_str(&self, name: &str) -> Result<String, ModuleError> {
        self.str(name)?
            .ok_or_else(|| ModuleError::msg(format!("missing required arguments: {name}")))
    }

    /// Ansible's `boolean()`: yes/no, on/off, true/false, 1/0, y/n (any case).
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, ModuleError> {
        match self.value(name) {
            None => Ok(default),
            Some(v) => to_bool(v).ok_or_else(|| self.type_error(name, "bool", v)),
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, ModuleError> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| self.type_error(name, "int", &Value::Number(n.clone()))),
            Some(Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| self.type_error(name, "int", &Value::String(s.clone()))),
            Some(other) => Err(self.type_error(name, "int", other)),
        }
    }

    pub fn float(&self, name: &str) -> Result<Option<f64>, ModuleError> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(Value::String(s)) => s
                .trim()
                .parse::<f64>()
                .map(Some)
                .map_err(|_| self.type_error(name, "float", &Value::String(s.clone()))),
            Some(other) => Err(self.type_error(name, "float", other)),
        }
    }

    /// A list of strings; a comma-separated string is split, as Ansible's `type='list'` does.
    pub fn list(&self, name: &str) -> Result<Option<Vec<String>>, ModuleError> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    Value::Bool(b) => Ok(b.to_string()),
                    other => Err(self.type_error(name, "list of str", other)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect(),
            )),
            Some(Value::Number(n)) => Ok(Some(vec![n.to_string()])),
            Some(other) => Err(self.type_error(name, "list", other)),
        }
    }

    /// A string restricted to `choices`, with a default.
    pub fn choice(
        &self,
        name: &str,
        choices: &[&str],
        default: &str,
    ) -> Result<String, ModuleError> {
        let value = self.str(name)?.unwrap_or_else(|| default.to_string());
        if choices.contains(&value.as_str()) {
            Ok(value)
        } else {
            Err(ModuleError::msg(format!(
                "value of {name} must be one of: {}, got: {value}",
                choices.join(", ")
            )))
        }
    }

    /// A file mode: an octal string ("0644", "644"), an int as YAML 1.1 read it (0644 → 420), or a
    /// symbolic mode ("u+rwx,g=rx"); returned as text for `chmod`.
    pub fn mode(&self, name: &str) -> Result<Option<String>, ModuleError> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) if (0..=0o7777).contains(&i) => Ok(Some(format!("{i:04o}"))),
                _ => Err(ModuleError::msg(format!("bad mode {n}"))),
            },
            Some(Value::String(s)) => {
                let s = s.trim();
                if s.bytes().all(|b| (b'0'..=b'7').contains(&b)) && !s.is_empty() && s.len() <= 5 {
                    let i = i64::from_str_radix(s, 8)
                        .map_err(|_| ModuleError::msg(format!("bad mode {s}")))?;
                    Ok(Some(format!("{i:04o}")))
                } else if s.chars().all(|c| "ugoa+-=rwxXstl,".contains(c)) && !s.is_empty() {
                    Ok(Some(s.to_string()))
                } else {
                    Err(ModuleError::msg(format!(
                        "mode must be in octal or symbolic form, got: {s}"
                    )))
                }
            }
            Some(other) => Err(self.type_error(name, "mode", other)),
        }
    }
}

pub fn to_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Some(true),
            Some(0.0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "yes" | "on" | "1" | "true" | "y" | "t" => Some(true),
            "no" | "off" | "0" | "false" | "n" | "f" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}
