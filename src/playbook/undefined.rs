//! Finds variables that no source defines, before any host is contacted.
//!
//! A name used in a template is fine if any inventory host, play, vars file, task, `register`,
//! `set_fact`, loop or extra var defines it, if it is a fact (`ansible_*`) or magic variable, or if the
//! template guards it (`default`, `is defined`, …). Anything else would fail on every host at run time,
//! so it is reported now with its file:line.

use std::collections::HashSet;

use serde_json::Value;

use super::model::*;
use crate::error::Diagnostic;
use crate::inventory::Inventory;

const MAGIC: &[&str] = &[
    "inventory_hostname",
    "inventory_hostname_short",
    "group_names",
    "groups",
    "hostvars",
    "playbook_dir",
    "inventory_dir",
    "inventory_file",
    "ansible_check_mode",
    "ansible_diff_mode",
    "ansible_run_tags",
    "ansible_skip_tags",
    "omit",
    "ansible_version",
    "ansible_play_hosts",
    "ansible_play_hosts_all",
    "ansible_play_batch",
    "ansible_play_name",
    "ansible_facts",
    "ansible_loop",
    "item",
    // Jinja globals and functions.
    "lookup",
    "query",
    "q",
    "range",
    "dict",
    "namespace",
    "lipsum",
    "cycler",
    "joiner",
    "now",
    "loop",
    "true",
    "false",
    "none",
    "True",
    "False",
    "None",
];

/// Everything a playbook and inventory define, by name.
fn known_names(
    playbook: &Playbook,
    inventory: &Inventory,
    extra: &serde_json::Map<String, Value>,
) -> HashSet<String> {
    let mut names: HashSet<String> = MAGIC.iter().map(|s| s.to_string()).collect();
    names.extend(extra.keys().cloned());
    for host in inventory.host_names() {
        names.extend(inventory.vars_for_host(&host).keys().cloned());
    }
    for play in &playbook.plays {
        names.extend(play.vars.keys().cloned());
        for (file, _) in &play.vars_files {
            if let Ok(node) = crate::yaml::load_single(&playbook.dir.join(file)) {
                if let Value::Object(m) = node.to_json() {
                    names.extend(m.keys().cloned());
                }
            }
        }
        names.extend(play.defaults.vars.keys().cloned());
        for section in [&play.pre_tasks, &play.tasks, &play.post_tasks] {
            collect_defined(section, &mut names);
        }
        for h in &play.handlers {
            collect_task_defined(h, &mut names);
        }
    }
    names
}

fn collect_task_defined(t: &Task, names: &mut HashSet<String>) {
    names.extend(t.common.vars.keys().cloned());
    if let Some(r) = &t.register {
        names.insert(r.clone());
    }
    names.insert(t.loop_control.loop_var.clone());
    if let Some(i) = &t.loop_control.index_var {
        names.insert(i.clone());
    }
    if t.module == "set_fact" {
        names.extend(t.args.keys().cloned());
    }
}

fn collect_defined(items: &[TaskItem], names: &mut HashSet<String>) {
    for item in items {
        match item {
            TaskItem::Task(t) => collect_task_defined(t, names),
            TaskItem::Block(b) => {
                collect_defined(&b.block, names);
                collect_defined(&b.rescue, names);
                collect_defined(&b.always, names);
            }
            TaskItem::Include(i) => {
                names.extend(i.common.vars.keys().cloned());
                names.insert(i.loop_control.loop_var.clone());
                if let Some(idx) = &i.loop_control.index_var {
                    names.insert(idx.clone());
                }
                if let Some(pre) = &i.preloaded {
                    collect_defined(pre, names);
                }
            }
            TaskItem::Meta(m) => names.extend(m.common.vars.keys().cloned()),
        }
    }
}

/// Template texts are guarded when they test or default a variable; those are left to run time.
fn guarded(text: &str) -> bool {
    [
        "default",
        "|d(",
        "| d(",
        "is defined",
        "is undefined",
        "is not defined",
        "mandatory",
        "is none",
    ]
    .iter()
    .any(|g| text.contains(g))
}

fn undeclared(text: &str, expression: bool) -> Vec<String> {
    let env = minijinja::Environment::new();
    let found = if expression {
        match env.compile_expression(super::validate::strip_braces(text)) {
            Ok(e) => e.undeclared_variables(false),
            Err(_) => return Vec::new(),
        }
    } else {
        match env.template_from_str(text) {
            Ok(t) => t.undeclared_variables(false),
            Err(_) => return Vec::new(),
        }
    };
    let mut v: Vec<String> = found.into_iter().collect();
    v.sort();
    v
}

struct Checker<'a> {
    known: &'a HashSet<String>,
}

impl Checker<'_> {
    fn unknown(&self, name: &str) -> bool {
        !self.known.contains(name) && !name.starts_with("ansible_")
    }

    fn text(
        &self,
        text: &str,
        expression: bool,
        task: &str,
        span: &crate::error::Span,
    ) -> Result<(), Diagnostic> {
        if (!expression && !crate::template::Templar::is_template(text)) || guarded(text) {
            return Ok(());
        }
        for name in undeclared(text, expression) {
            if self.unknown(&name) {
                return Err(Diagnostic::parse(format!("undefined variable '{name}' in task '{task}'"), Some(span.clone())).with_hint(
                    "no inventory host, play, vars file, register, set_fact or -e defines it; define it or guard it with | default(...)",
                ));
            }
        }
        Ok(())
    }

    fn value(
        &self,
        value: &Value,
        task: &str,
        span: &crate::error::Span,
    ) -> Result<(), Diagnostic> {
        match value {
            Value::String(s) => self.text(s, false, task, span),
            Value::Array(items) => items.iter().try_for_each(|i| self.value(i, task, span)),
            Value::Object(m) => m.values().try_for_each(|v| self.value(v, task, span)),
            _ => Ok(()),
        }
    }

    fn common(
        &self,
        c: &Inherited,
        task: &str,
        span: &crate::error::Span,
    ) -> Result<(), Diagnostic> {
        for cond in &c.when {
            self.text(&cond.expr, true, task, &cond.span)?;
        }
        for e in &c.environment {
            self.value(e, task, span)?;
        }
        self.value(&Value::Object(c.vars.clone()), task, span)?;
        if let Some(d) = &c.delegate_to {
            self.text(d, false, task, span)?;
        }
        Ok(())
    }

    fn task(&self, t: &Task) -> Result<(), Diagnostic> {
        let name = t.display_name();
        if let Some(n) = &t.name {
            self.text(n, false, &name, &t.span)?;
        }
        let module = crate::modules::registry::find(&t.module);
        for (k, v) in &t.args {
            let raw = module.is_some_and(|m| m.spec().args.iter().any(|a| a.raw && a.name == k));
            if raw {
                // `assert: that:` items and `debug: var:` are expressions.
                match v {
                    Value::String(s) if t.module == "assert" => {
                        self.text(s, true, &name, &t.span)?
                    }
                    Value::Array(items) if t.module == "assert" => {
                        for i in items {
                            if let Value::String(s) = i {
                                self.text(s, true, &name, &t.span)?;
                            }
                        }
                    }
                    _ => {}
                }
                continue;
            }
            self.value(v, &name, &t.span)?;
        }
        if let Some(l) = &t.loop_items {
            self.value(l, &name, &t.span)?;
        }
        for c in t
            .changed_when
            .iter()
            .chain(t.failed_when.iter())
            .chain(t.until.iter())
        {
            self.text(&c.expr, true, &name, &c.span)?;
        }
        self.common(&t.common, &name, &t.span)
    }

    fn items(&self, items: &[TaskItem]) -> Result<(), Diagnostic> {
        for item in items {
            match item {
                TaskItem::Task(t) => self.task(t)?,
                TaskItem::Block(b) => {
                    self.items(&b.block)?;
                    self.items(&b.rescue)?;
                    self.items(&b.always)?;
                }
                TaskItem::Include(i) => {
                    let name = i
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("include_tasks {}", i.file));
                    self.text(&i.file, false, &name, &i.span)?;
                    self.common(&i.common, &name, &i.span)?;
                    if let Some(pre) = &i.preloaded {
                        self.items(pre)?;
                    }
                }
                TaskItem::Meta(m) => self.common(&m.common, "meta", &m.span)?,
            }
        }
        Ok(())
    }
}

pub fn check(
    playbook: &Playbook,
    inventory: &Inventory,
    extra: &serde_json::Map<String, Value>,
) -> Result<(), Diagnostic> {
    let known = known_names(playbook, inventory, extra);
    let checker = Checker { known: &known };
    for play in &playbook.plays {
        for section in [&play.pre_tasks, &play.tasks, &play.post_tasks] {
            checker.items(section)?;
        }
        for h in &play.handlers {
            checker.task(h)?;
        }
    }
    Ok(())
}
