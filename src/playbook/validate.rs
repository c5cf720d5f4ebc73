//! Static checks on tasks: argument names, required arguments, choices, variable names and
//! template syntax — everything that can be known before a host is contacted.

use serde_json::{Map, Value};

use super::model::Task;
use crate::error::{did_you_mean, Diagnostic};
use crate::modules::Module;
use crate::yaml::Node;

const PYTHON_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// A variable name must be a valid identifier, as Ansible requires.
pub fn check_var_name(name: &str, node: &Node) -> Result<(), Diagnostic> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !PYTHON_KEYWORDS.contains(&name);
    if valid {
        Ok(())
    } else {
        Err(Diagnostic::parse(
            format!("invalid variable name '{name}': only letters, digits and underscores, not starting with a digit"),
            Some(node.span.clone()),
        ))
    }
}

fn syntax_env() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_syntax(minijinja::syntax::SyntaxConfig::default());
    env
}

/// Checks a bare Jinja expression (`when:` and friends) for syntax errors.
pub fn check_expression(expr: &str, node: &Node) -> Result<(), Diagnostic> {
    let expr = strip_braces(expr);
    let env = syntax_env();
    env.compile_expression(expr).map(|_| ()).map_err(|e| {
        Diagnostic::parse(
            format!(
                "template error in condition '{expr}': {}",
                e.detail().unwrap_or("syntax error")
            ),
            Some(node.span.clone()),
        )
    })
}

/// Ansible tolerates (with a warning) conditions written as `{{ x }}`.
pub fn strip_braces(expr: &str) -> &str {
    let t = expr.trim();
    if t.starts_with("{{") && t.ends_with("}}") && t.matches("{{").count() == 1 {
        t[2..t.len() - 2].trim()
    } else {
        t
    }
}

/// Checks template syntax in every string of a value.
pub fn check_templates(
    value: &Value,
    node_span: &crate::error::Span,
    what: &str,
) -> Result<(), Diagnostic> {
    match value {
        Value::String(s) if crate::template::Templar::is_template(s) => {
            let env = syntax_env();
            env.template_from_str(s).map(|_| ()).map_err(|e| {
                Diagnostic::parse(
                    format!(
                        "template error in {what}: {} in '{s}'",
                        e.detail().unwrap_or("syntax error")
                    ),
                    Some(node_span.clone()),
                )
            })
        }
        Value::Array(items) => items
            .iter()
            .try_for_each(|i| check_templates(i, node_span, what)),
        Value::Object(map) => map
            .values()
            .try_for_each(|v| check_templates(v, node_span, what)),
        _ => Ok(()),
    }
}

pub fn task_templates(task: &Task) -> Result<(), Diagnostic> {
    check_templates(
        &Value::Object(task.args.clone()),
        &task.span,
        "the module's arguments",
    )?;
    if let Some(name) = &task.name {
        check_templates(&Value::String(name.clone()), &task.span, "the task name")?;
    }
    if let Some(items) = &task.loop_items {
        check_templates(items, &task.span, "the loop")?;
    }
    check_templates(
        &Value::Object(task.common.vars.clone()),
        &task.span,
        "the task's vars",
    )
}

/// Maps aliases to canonical names and checks names, required arguments and literal choices.
/// `dynamic` means more arguments arrive from a template at run time, so "required" cannot be judged yet.
pub fn module_args(
    module: &dyn Module,
    action: &str,
    args: Map<String, Value>,
    node: &Node,
    dynamic: bool,
) -> Result<Map<String, Value>, Diagnostic> {
    let spec = module.spec();
    if spec.any_keys {
        return Ok(args);
    }
    let mut out = Map::new();
    for (key, value) in args {
        let canonical = if spec.free_form == Some(key.as_str()) || key == "_raw_params" {
            spec.free_form.unwrap_or("_raw_params").to_string()
        } else {
            match spec
                .args
                .iter()
                .find(|a| a.name == key || a.aliases.contains(&key.as_str()))
            {
                Some(arg) => arg.name.to_string(),
                None => {
                    let names: Vec<&str> = spec
                        .args
                        .iter()
                        .flat_map(|a| std::iter::once(a.name).chain(a.aliases.iter().copied()))
                        .collect();
                    let mut sorted = names.clone();
                    sorted.sort_unstable();
                    let mut d = Diagnostic::parse(
                        format!("Unsupported parameters for ({action}) module: {key}. Supported parameters include: {}.", sorted.join(", ")),
                        Some(node.span.clone()),
                    );
                    if let Some(s) = did_you_mean(&key, names) {
                        d = d.with_hint(format!("did you mean '{s}'?"));
                    }
                    return Err(d);
                }
            }
        };
        if out.contains_key(&canonical) {
            return Err(Diagnostic::parse(
                format!(
                    "argument '{canonical}' of {action} is given twice (directly and by an alias)"
                ),
                Some(node.span.clone()),
            ));
        }
        out.insert(canonical, value);
    }
    let literal: Map<String, Value> = out
        .iter()
        .filter(|(_, v)| !matches!(v, Value::String(s) if crate::template::Templar::is_template(s)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(msg) = spec.refused(module.name(), &literal) {
        return Err(Diagnostic::parse(msg, Some(node.span.clone())));
    }
    for arg in spec.args {
        if let (false, Some(Value::String(s))) = (arg.choices.is_empty(), out.get(arg.name)) {
            if !crate::template::Templar::is_template(s) && !arg.choices.contains(&s.as_str()) {
                return Err(Diagnostic::parse(
                    format!(
                        "value of {} must be one of: {}, got: {s}",
                        arg.name,
                        arg.choices.join(", ")
                    ),
                    Some(node.span.clone()),
                ));
            }
        }
        if arg.required && !dynamic && !out.contains_key(arg.name) {
            return Err(Diagnostic::parse(
                format!("missing required arguments: {} (module {action})", arg.name),
                Some(node.span.clone()),
            ));
        }
    }
    if let Some(free) = spec.free_form {
        let needs_free_form = module.name() != "raw" || !out.contains_key(free);
        if needs_free_form
            && !dynamic
            && !out.contains_key(free)
            && !out.contains_key("argv")
            && !out.contains_key("cmd")
        {
            return Err(Diagnostic::parse(
                format!("no command given to {action}"),
                Some(node.span.clone()),
            ));
        }
    }
    Ok(out)
}
