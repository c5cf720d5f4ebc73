//! One task on one host: conditions, loops, retries, the module's plan/apply, and the result.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::connect::{target_for, Target};
use super::env::HostEnv;
use super::state::lock;
use super::vars;
use super::{PlayRun, Runner, Scope};
use crate::modules::control::is_truthy;
use crate::modules::{registry, Args, ModuleError, Plan};
use crate::playbook::{Include, LoopKind, Task};
use crate::report::redact::NO_LOG_MSG;
use crate::report::{Event, HostStatus, ResultEvent};
use crate::template::TemplateError;
use crate::transport::{BecomeMethod, BecomeSpec, Transport};

/// The outcome of a module run on one item.
struct ItemOutcome {
    result: Map<String, Value>,
    status: HostStatus,
    diffs: Vec<crate::modules::Diff>,
    /// Check mode could not tell the result: what the task registers or sets is only known after a
    /// real run (see `crate::template::Unknowns`).
    unknown: bool,
}

/// A task (or one of its items) that could not be evaluated: why, and the names whose values only a
/// real run gives that are behind it (check mode; empty for a genuine error).
struct EvalFailure {
    msg: String,
    unknown: Vec<String>,
}

/// Result key listing the unknown names a check-mode skip depends on.
const UNKNOWN_KEY: &str = "unknown_in_check";

/// The result of a task skipped in check mode because it depends on `names`.
fn unknown_skip_result(names: &[String]) -> Map<String, Value> {
    let mut r = Map::new();
    r.insert("changed".into(), json!(false));
    r.insert("skipped".into(), json!(true));
    r.insert(
        "skip_reason".into(),
        json!(format!(
            "check mode: depends on results only a real run gives: {}",
            names.join(", ")
        )),
    );
    r.insert(UNKNOWN_KEY.into(), json!(names));
    r
}

/// What the result line says without -v: why a check-mode skip happened.
fn skip_note(status: HostStatus, result: &Map<String, Value>) -> Option<String> {
    if status != HostStatus::Skipped || !result.contains_key(UNKNOWN_KEY) {
        return None;
    }
    result
        .get("skip_reason")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn add_unknown(names: &mut Vec<String>, more: &[String]) {
    for n in more {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
}

fn fail_result(msg: impl Into<String>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("failed".into(), json!(true));
    m.insert("msg".into(), json!(msg.into()));
    m
}

fn template_failure(
    task_file: &str,
    line: usize,
    col: usize,
    e: &TemplateError,
    what: &str,
) -> String {
    // The message names the variable (and the chain through lazily templated vars).
    let cause = &e.message;
    format!("{what}. The error was: {cause}\n\nThe error appears to be in '{task_file}': line {line}, column {col}")
}

fn eval_failure(
    task_file: &str,
    line: usize,
    col: usize,
    e: &TemplateError,
    what: &str,
) -> EvalFailure {
    EvalFailure {
        msg: template_failure(task_file, line, col, e, what),
        unknown: e.unknown.clone(),
    }
}

impl Runner {
    /// Runs `task` on `host`; returns the registered-shape result (for run_once sharing).
    pub(super) async fn run_task_on_host(
        &self,
        run: &PlayRun<'_>,
        task: &Arc<Task>,
        host: &str,
        scope: &Scope,
        task_name: &str,
        rescuable: bool,
    ) -> Option<Value> {
        if !self.is_active(host) {
            return None;
        }
        let mut base_vars = self.vars_for(run, host, &task.common.vars, scope)?;
        let templar = &self.sources.templar;
        let file = task.span.file.display().to_string();
        let no_log = task.common.no_log.unwrap_or(false);

        // Loop items and delegation (templated once per host); an error here fails the task.
        let prepared = self.loop_and_delegate(run, task, &base_vars, &file);
        let (items, delegate) = match prepared {
            Ok(p) => p,
            Err(failure) => {
                let o = self.not_evaluated(failure);
                self.finish_with(
                    run,
                    task,
                    host,
                    task_name,
                    None,
                    o.result,
                    o.status,
                    vec![],
                    rescuable,
                    no_log,
                    false,
                    o.unknown,
                );
                return None;
            }
        };

        let mut outcomes: Vec<(Option<String>, ItemOutcome)> = Vec::new();
        let item_list: Vec<Option<(usize, Value)>> = match &items {
            None => vec![None],
            Some(list) => list.iter().cloned().enumerate().map(Some).collect(),
        };
        if let Some(list) = &items {
            if list.is_empty() {
                let mut r = Map::new();
                r.insert("changed".into(), json!(false));
                r.insert("skipped".into(), json!(true));
                r.insert("skipped_reason".into(), json!("No items in the list"));
                r.insert("results".into(), json!([]));
                self.finish(
                    run,
                    task,
                    host,
                    task_name,
                    delegate.as_deref(),
                    r,
                    HostStatus::Skipped,
                    vec![],
                    rescuable,
                    no_log,
                );
                return None;
            }
        }
        let total = item_list.len();
        for entry in item_list {
            let mut vars = base_vars.clone();
            let mut label = None;
            if let Some((index, item)) = &entry {
                vars.insert(task.loop_control.loop_var.clone(), item.clone());
                if let Some(iv) = &task.loop_control.index_var {
                    vars.insert(iv.clone(), json!(index));
                }
                if task.loop_control.extended {
                    vars.insert(
                        "ansible_loop".into(),
                        json!({"index": index + 1, "index0": index, "first": *index == 0, "last": index + 1 == total, "length": total,
                               "revindex": total - index, "revindex0": total - index - 1}),
                    );
                }
                let ctx = self.context(run, vars.clone());
                label = Some(match &task.loop_control.label {
                    Some(l) => templar.render_str(l, &ctx).unwrap_or_else(|_| l.clone()),
                    None => python_repr(item),
                });
                if let (Some(pause), true) = (task.loop_control.pause, *index > 0) {
                    tokio::time::sleep(Duration::from_secs_f64(pause)).await;
                }
            }
            let outcome = self
                .run_item(run, task, host, vars, delegate.as_deref())
                .await;
            let unreachable = outcome.status == HostStatus::Unreachable;
            if items.is_some() {
                let mut shown = outcome.result.clone();
                if no_log {
                    shown = censored(&shown);
                }
                let status = match outcome.status {
                    HostStatus::Failed if task.common.ignore_errors.unwrap_or(false) => {
                        HostStatus::Failed
                    }
                    s => s,
                };
                self.emit(Event::Result(ResultEvent {
                    host: host.to_string(),
                    delegate: delegate.clone(),
                    task: task_name.to_string(),
                    status,
                    item: label.clone(),
                    // Only variable names: shown under no_log too.
                    reason: skip_note(status, &outcome.result),
                    result: self.redact_map(&shown),
                    diffs: if no_log {
                        vec![]
                    } else {
                        outcome.diffs.clone()
                    },
                    verbose_always: task.module == "debug",
                }));
            }
            // set_fact in a loop: each item's facts are set before the next item is templated,
            // so `acc: "{{ acc + [item] }}"` accumulates, as in Ansible.
            if let (Some(Value::Object(facts)), true, false) = (
                outcome.result.get("ansible_facts"),
                items.is_some() && task.module != "setup",
                matches!(
                    outcome.status,
                    HostStatus::Failed | HostStatus::Unreachable | HostStatus::Skipped
                ),
            ) {
                if let Some(state) = self.host(host) {
                    lock(&state).host_vars.extend(facts.clone());
                }
                base_vars = self.vars_for(run, host, &task.common.vars, scope)?;
            }
            let mut item_result = outcome.result.clone();
            if let Some((_, item)) = &entry {
                item_result.insert(task.loop_control.loop_var.clone(), item.clone());
                item_result.insert("ansible_loop_var".into(), json!(task.loop_control.loop_var));
            }
            outcomes.push((
                label,
                ItemOutcome {
                    result: item_result,
                    ..outcome
                },
            ));
            if unreachable {
                break;
            }
        }

        // Aggregate.
        let unknown = outcomes.iter().any(|(_, o)| o.unknown);
        let (result, status, diffs) = if items.is_none() {
            let (_, o) = outcomes.pop()?;
            (o.result, o.status, o.diffs)
        } else {
            let any = |s: HostStatus| outcomes.iter().any(|(_, o)| o.status == s);
            let changed = any(HostStatus::Changed);
            let failed = any(HostStatus::Failed);
            let unreachable = any(HostStatus::Unreachable);
            let all_skipped = outcomes
                .iter()
                .all(|(_, o)| o.status == HostStatus::Skipped);
            let mut r = Map::new();
            r.insert("changed".into(), json!(changed));
            r.insert(
                "msg".into(),
                json!(if failed {
                    "One or more items failed"
                } else {
                    "All items completed"
                }),
            );
            if failed {
                r.insert("failed".into(), json!(true));
            }
            if all_skipped {
                r.insert("skipped".into(), json!(true));
            }
            r.insert(
                "results".into(),
                Value::Array(
                    outcomes
                        .iter()
                        .map(|(_, o)| Value::Object(o.result.clone()))
                        .collect(),
                ),
            );
            // The items' facts, in order (already set item by item), so that run_once hands them
            // to every host like a single set_fact's.
            let mut facts = Map::new();
            for (_, o) in &outcomes {
                if let (Some(Value::Object(f)), HostStatus::Ok | HostStatus::Changed) =
                    (o.result.get("ansible_facts"), o.status)
                {
                    facts.extend(f.clone());
                }
            }
            if !facts.is_empty() && task.module != "setup" {
                r.insert("ansible_facts".into(), Value::Object(facts));
            }
            let status = if unreachable {
                HostStatus::Unreachable
            } else if failed {
                HostStatus::Failed
            } else if all_skipped {
                HostStatus::Skipped
            } else if changed {
                HostStatus::Changed
            } else {
                HostStatus::Ok
            };
            (r, status, vec![])
        };
        let shown_already = items.is_some();
        self.finish_with(
            run,
            task,
            host,
            task_name,
            delegate.as_deref(),
            result,
            status,
            diffs,
            rescuable,
            no_log,
            shown_already,
            unknown,
        )
    }

    /// The task's loop items (None without a loop) and its `delegate_to` target, templated.
    #[allow(clippy::type_complexity)]
    fn loop_and_delegate(
        &self,
        run: &PlayRun<'_>,
        task: &Task,
        vars: &Map<String, Value>,
        file: &str,
    ) -> Result<(Option<Vec<Value>>, Option<String>), EvalFailure> {
        let templar = &self.sources.templar;
        let (line, col) = (task.span.line, task.span.col);
        let ctx = self.context(run, vars.clone());
        let items = match &task.loop_items {
            None => None,
            Some(raw) => {
                let value = templar.render_value(raw, &ctx).map_err(|e| {
                    eval_failure(file, line, col, &e, "Error while evaluating the loop")
                })?;
                Some(
                    loop_list(value, task.loop_control.kind).map_err(|msg| EvalFailure {
                        msg,
                        unknown: vec![],
                    })?,
                )
            }
        };
        let delegate = match &task.common.delegate_to {
            None => None,
            Some(d) => Some(templar.render_str(d, &ctx).map_err(|e| {
                eval_failure(file, line, col, &e, "Error while evaluating delegate_to")
            })?),
        };
        Ok((items, delegate))
    }

    /// A task that could not be evaluated fails, except in check mode when names whose values only
    /// a real run gives are behind it: then it is skipped, naming them.
    fn not_evaluated(&self, failure: EvalFailure) -> ItemOutcome {
        if self.opts.check && !failure.unknown.is_empty() {
            return self.unknown_outcome(&failure.unknown);
        }
        ItemOutcome {
            result: fail_result(failure.msg),
            status: HostStatus::Failed,
            diffs: vec![],
            unknown: false,
        }
    }

    fn unknown_outcome(&self, names: &[String]) -> ItemOutcome {
        ItemOutcome {
            result: unknown_skip_result(names),
            status: HostStatus::Skipped,
            diffs: vec![],
            unknown: true,
        }
    }

    /// Every unknown name the task's arguments use, each templated string on its own (a render
    /// stops at the first undefined value; the skip should name them all).
    fn unknowns_in_args(&self, value: &Value, ctx: &minijinja::Value, names: &mut Vec<String>) {
        match value {
            Value::String(s) if crate::template::is_template(s) => {
                if let Err(e) = self.sources.templar.render_value(value, ctx) {
                    add_unknown(names, &e.unknown);
                }
            }
            Value::Array(items) => items
                .iter()
                .for_each(|v| self.unknowns_in_args(v, ctx, names)),
            Value::Object(map) => map
                .values()
                .for_each(|v| self.unknowns_in_args(v, ctx, names)),
            _ => {}
        }
    }

    fn redact_map(&self, m: &Map<String, Value>) -> Map<String, Value> {
        match self.redactor.value(&Value::Object(m.clone())) {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        run: &PlayRun<'_>,
        task: &Task,
        host: &str,
        task_name: &str,
        delegate: Option<&str>,
        result: Map<String, Value>,
        status: HostStatus,
        diffs: Vec<crate::modules::Diff>,
        rescuable: bool,
        no_log: bool,
    ) -> Option<Value> {
        self.finish_with(
            run, task, host, task_name, delegate, result, status, diffs, rescuable, no_log, false,
            false,
        )
    }

    /// Records a task's result on a host: stats, register, facts, notifications, failure state; reports it.
    #[allow(clippy::too_many_arguments)]
    fn finish_with(
        &self,
        _run: &PlayRun<'_>,
        task: &Task,
        host: &str,
        task_name: &str,
        delegate: Option<&str>,
        mut result: Map<String, Value>,
        status: HostStatus,
        diffs: Vec<crate::modules::Diff>,
        rescuable: bool,
        no_log: bool,
        already_shown: bool,
        unknown: bool,
    ) -> Option<Value> {
        let ignore_errors = task.common.ignore_errors.unwrap_or(false);
        let status = match status {
            HostStatus::Failed if ignore_errors => HostStatus::Ignored,
            HostStatus::Unreachable if task.common.ignore_unreachable.unwrap_or(false) => {
                HostStatus::Skipped
            }
            s => s,
        };
        result
            .entry("changed")
            .or_insert(json!(status == HostStatus::Changed));
        // A check-mode skip holds only engine text naming variables: masking those names would
        // mask them everywhere from now on.
        if no_log && !result.contains_key(UNKNOWN_KEY) {
            self.redact_everything(&result);
        }
        // Module warnings are shown as Ansible shows them.
        if let Some(Value::Array(warnings)) = result.get("warnings") {
            for w in warnings {
                let text = w
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| w.to_string());
                self.emit(Event::Warning(format!("[{host}]: {text}")));
            }
        }
        let state = self.host(host)?;
        {
            let mut s = lock(&state);
            match status {
                HostStatus::Failed => s.failed = true,
                HostStatus::Unreachable => s.unreachable = true,
                _ => {}
            }
            if status != HostStatus::Failed
                && status != HostStatus::Unreachable
                && status != HostStatus::Skipped
            {
                if let Some(Value::Object(facts)) = result.get("ansible_facts") {
                    if task.module == "setup" {
                        // setup returns `ansible_`-prefixed names; `ansible_facts` holds them bare.
                        for (k, v) in facts {
                            s.facts.insert(
                                k.strip_prefix("ansible_").unwrap_or(k).to_string(),
                                v.clone(),
                            );
                        }
                    } else {
                        s.host_vars.extend(facts.clone());
                    }
                }
            }
            if let Some(reg) = &task.register {
                s.host_vars
                    .insert(reg.clone(), Value::Object(result.clone()));
            }
            if self.opts.check {
                // What the task registers or sets is only known after a real run when check mode
                // could not run it; a task that ran makes those names known again.
                let unknowns = &self.sources.unknowns;
                let mut names: Vec<&str> = task.register.iter().map(String::as_str).collect();
                if task.module == "set_fact" {
                    names.extend(
                        task.args
                            .keys()
                            .map(String::as_str)
                            .filter(|k| *k != "cacheable"),
                    );
                }
                for name in names {
                    if unknown {
                        unknowns.add(host, name);
                    } else if status != HostStatus::Skipped
                        || task.register.as_deref() == Some(name)
                    {
                        unknowns.forget(host, name);
                    }
                }
            }
            if status == HostStatus::Changed {
                for n in &task.notify {
                    if !s.notified.contains(n) {
                        s.notified.push(n.clone());
                    }
                }
            }
        }
        self.stats(|st| {
            let e = st.entry(host);
            match status {
                HostStatus::Ok => e.ok += 1,
                HostStatus::Changed => {
                    e.ok += 1;
                    e.changed += 1
                }
                HostStatus::Skipped => e.skipped += 1,
                HostStatus::Failed => {
                    if !rescuable {
                        e.failed += 1
                    }
                }
                HostStatus::Ignored => {
                    e.ok += 1;
                    e.ignored += 1
                }
                HostStatus::Unreachable => e.unreachable += 1,
            }
        });
        if !already_shown {
            let shown = if no_log {
                censored(&result)
            } else {
                result.clone()
            };
            self.emit(Event::Result(ResultEvent {
                host: host.to_string(),
                delegate: delegate.map(str::to_string),
                task: task_name.to_string(),
                status,
                item: None,
                // Only variable names: shown under no_log too.
                reason: skip_note(status, &result),
                result: self.redact_map(&shown),
                diffs: if no_log { vec![] } else { diffs },
                verbose_always: task.module == "debug",
            }));
        } else if status == HostStatus::Ignored {
            // A loop's items were shown one by one; Ansible adds only this line.
            self.emit(Event::Notice("...ignoring".into()));
        }
        Some(Value::Object(result))
    }

    /// For `no_log` tasks: every string they produced is a secret from now on.
    fn redact_everything(&self, result: &Map<String, Value>) {
        fn walk(r: &crate::report::Redactor, v: &Value) {
            match v {
                Value::String(s) => r.add(s),
                Value::Array(a) => a.iter().for_each(|x| walk(r, x)),
                Value::Object(o) => o.values().for_each(|x| walk(r, x)),
                _ => {}
            }
        }
        for (k, v) in result {
            if k != "changed" && k != "failed" && k != "msg" {
                walk(&self.redactor, v);
            }
        }
    }

    /// One module run (one loop item): when, args, connection, plan/apply, retries, changed_when/failed_when.
    async fn run_item(
        &self,
        run: &PlayRun<'_>,
        task: &Task,
        host: &str,
        vars: Map<String, Value>,
        delegate: Option<&str>,
    ) -> ItemOutcome {
        let templar = &self.sources.templar;
        let file = task.span.file.display().to_string();
        let ctx = self.context(run, vars.clone());
        let outcome = |result: Map<String, Value>, status: HostStatus| ItemOutcome {
            result,
            status,
            diffs: vec![],
            unknown: false,
        };

        for cond in &task.common.when {
            match templar.eval_bool_noting_unknown(&cond.expr, &ctx) {
                // A condition decided by values only a real run gives is not known either.
                Ok((_, unknown)) if self.opts.check && !unknown.is_empty() => {
                    return self.unknown_outcome(&unknown)
                }
                Ok((true, _)) => {}
                Ok((false, _)) => {
                    let mut r = Map::new();
                    r.insert("changed".into(), json!(false));
                    r.insert("skipped".into(), json!(true));
                    r.insert("skip_reason".into(), json!("Conditional result was False"));
                    r.insert("false_condition".into(), json!(cond.expr));
                    return outcome(r, HostStatus::Skipped);
                }
                Err(e) => {
                    return self.not_evaluated(eval_failure(
                        &cond.span.file.display().to_string(),
                        cond.span.line,
                        cond.span.col,
                        &e,
                        &format!("The conditional check '{}' failed", cond.expr),
                    ));
                }
            }
        }

        let Some(module) = registry::find(&task.module) else {
            return outcome(
                fail_result(format!("module {} is not available", task.module)),
                HostStatus::Failed,
            );
        };
        // Arguments: templated, except those the module evaluates itself.
        let raw_names: Vec<&str> = module
            .spec()
            .args
            .iter()
            .filter(|a| a.raw)
            .map(|a| a.name)
            .collect();
        let mut args = Map::new();
        for (k, v) in &task.args {
            if raw_names.contains(&k.as_str()) {
                args.insert(k.clone(), v.clone());
                continue;
            }
            match templar.render_value(v, &ctx) {
                Ok(v) => {
                    args.insert(k.clone(), v);
                }
                Err(e) => {
                    let mut failure = eval_failure(
                        &file,
                        task.span.line,
                        task.span.col,
                        &e,
                        "The task includes an option with an undefined variable",
                    );
                    if self.opts.check && !failure.unknown.is_empty() {
                        let templated = task
                            .args
                            .iter()
                            .filter(|(k, _)| !raw_names.contains(&k.as_str()));
                        for (_, v) in templated {
                            self.unknowns_in_args(v, &ctx, &mut failure.unknown);
                        }
                    }
                    return self.not_evaluated(failure);
                }
            }
        }
        let args = match vars::strip_omitted(Value::Object(args)) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        if task.common.no_log.unwrap_or(false) {
            self.redact_everything(&args);
        }
        // Templated values are only known now; literal ones were refused when the playbook loaded.
        if let Some(msg) = module.spec().refused(module.name(), &args) {
            return outcome(fail_result(msg), HostStatus::Failed);
        }
        let args = Args::new(module.name(), args);

        let env = match self.host_env(run, task, host, &vars, &ctx, delegate).await {
            Ok(env) => env,
            Err(EnvError::Unreachable(msg)) => {
                let mut r = Map::new();
                r.insert("changed".into(), json!(false));
                r.insert("msg".into(), json!(msg));
                r.insert("unreachable".into(), json!(true));
                return outcome(r, HostStatus::Unreachable);
            }
            Err(EnvError::Failed(msg)) => return outcome(fail_result(msg), HostStatus::Failed),
            Err(EnvError::NotEvaluated(failure)) => return self.not_evaluated(failure),
        };

        let retries = match &task.retries {
            Some(v) => number(templar, v, &ctx).unwrap_or(3.0) as u32,
            None if task.until.is_some() => 3,
            None => 0,
        };
        let delay = match &task.delay {
            Some(v) => number(templar, v, &ctx).unwrap_or(5.0),
            None => 5.0,
        };
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let (mut result, changed, skipped, diffs) =
                match self.plan_and_apply(module, &env, &args).await {
                    Ok(r) => r,
                    Err(ModuleError::Transport(e)) => {
                        let mut r = Map::new();
                        r.insert("changed".into(), json!(false));
                        r.insert("msg".into(), json!(e.to_string()));
                        r.insert("unreachable".into(), json!(true));
                        return outcome(r, HostStatus::Unreachable);
                    }
                    Err(ModuleError::Failed { msg, mut result }) => {
                        // A module that evaluates templates itself (template, assert) failed on
                        // values only a real run gives.
                        let unknown = env.unknown_seen();
                        if self.opts.check && !unknown.is_empty() {
                            return self.unknown_outcome(&unknown);
                        }
                        result.insert("failed".into(), json!(true));
                        result.insert("msg".into(), json!(msg));
                        (result, false, false, vec![])
                    }
                };
            // Secrets a module declared are masked from now on, before anything shows them.
            if let Some(Value::Array(secrets)) = result.remove(crate::modules::SECRETS_KEY) {
                for s in secrets.iter().filter_map(Value::as_str) {
                    self.redactor.add(s);
                }
            }
            if skipped {
                // Check mode could not run it: what it registers is unknown until a real run.
                return ItemOutcome {
                    result,
                    status: HostStatus::Skipped,
                    diffs,
                    unknown: true,
                };
            }
            let mut failed = result
                .get("failed")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let mut changed = result
                .get("changed")
                .and_then(Value::as_bool)
                .unwrap_or(changed);
            result.insert("changed".into(), json!(changed));
            // changed_when / failed_when / until see the result under the registered name.
            let needs_eval = !task.changed_when.is_empty()
                || !task.failed_when.is_empty()
                || task.until.is_some();
            if needs_eval {
                let mut v2 = vars.clone();
                if let Some(reg) = &task.register {
                    v2.insert(reg.clone(), Value::Object(result.clone()));
                }
                for (k, v) in &result {
                    v2.entry(k.clone()).or_insert(v.clone());
                }
                let ctx2 = self.context(run, v2);
                if !task.changed_when.is_empty() {
                    match all_true(templar, &task.changed_when, &ctx2) {
                        Ok(b) => changed = b,
                        Err(failure) => return self.not_evaluated(failure),
                    }
                    result.insert("changed".into(), json!(changed));
                }
                if !task.failed_when.is_empty() {
                    match any_true(templar, &task.failed_when, &ctx2) {
                        Ok(b) => {
                            failed = b;
                            result.insert("failed_when_result".into(), json!(b));
                            if b {
                                result.insert("failed".into(), json!(true));
                                result
                                    .entry("msg")
                                    .or_insert(json!("failed_when condition was met"));
                            } else {
                                result.remove("failed");
                            }
                        }
                        Err(failure) => return self.not_evaluated(failure),
                    }
                }
                if let Some(until) = &task.until {
                    let done = templar.eval_bool(&until.expr, &ctx2).unwrap_or(false);
                    if !done {
                        if attempt <= retries {
                            self.emit(Event::Notice(format!(
                                "FAILED - RETRYING: [{host}]: {} ({} retries left).",
                                task.display_name(),
                                retries + 1 - attempt
                            )));
                            tokio::time::sleep(Duration::from_secs_f64(delay)).await;
                            continue;
                        }
                        failed = true;
                        result.insert("failed".into(), json!(true));
                        result.entry("msg").or_insert(json!("Retries exhausted"));
                    }
                    result.insert("attempts".into(), json!(attempt));
                }
            }
            let status = if failed {
                HostStatus::Failed
            } else if changed {
                HostStatus::Changed
            } else {
                HostStatus::Ok
            };
            return ItemOutcome {
                result,
                status,
                diffs,
                unknown: false,
            };
        }
    }

    /// The module's plan, and its apply when something changes and the run is not in check mode.
    async fn plan_and_apply(
        &self,
        module: &'static dyn crate::modules::Module,
        env: &HostEnv,
        args: &Args,
    ) -> Result<(Map<String, Value>, bool, bool, Vec<crate::modules::Diff>), ModuleError> {
        let plan: Plan = module.plan(env, args).await?;
        let diffs = if env.diff_mode {
            plan.diffs.clone()
        } else {
            vec![]
        };
        if env.check_mode {
            // The module cannot predict its outcome: skipped, whatever the plan says.
            if let Some(msg) = &plan.skip_in_check {
                let mut r = plan.result.clone();
                r.insert("changed".into(), json!(false));
                r.insert("skipped".into(), json!(true));
                r.insert("msg".into(), json!(msg));
                return Ok((r, false, true, diffs));
            }
            let mut r = plan.result.clone();
            r.insert("changed".into(), json!(plan.changed));
            return Ok((r, plan.changed, false, diffs));
        }
        if !plan.changed {
            let mut r = plan.result;
            r.insert("changed".into(), json!(false));
            return Ok((r, false, false, diffs));
        }
        let result = module.apply(env, args, plan).await?;
        let changed = result
            .get("changed")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        Ok((result, changed, false, diffs))
    }

    async fn host_env(
        &self,
        run: &PlayRun<'_>,
        task: &Task,
        host: &str,
        vars: &Map<String, Value>,
        ctx: &minijinja::Value,
        delegate: Option<&str>,
    ) -> Result<HostEnv, EnvError> {
        let templar = &self.sources.templar;
        let render_var = |name: &str| -> Result<Option<String>, EnvError> {
            match vars.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => templar.render_str(s, ctx).map(Some).map_err(|e| {
                    EnvError::Failed(format!("cannot template {name}: {}", e.message))
                }),
                Some(other) => Ok(Some(match other {
                    Value::Bool(b) => b.to_string(),
                    v => v.to_string(),
                })),
            }
        };
        // Connection variables come from the host the command runs on.
        let (conn_host, mut conn_vars) = match delegate {
            Some(d) if d != host => {
                if self.sources.inventory.host(d).is_some() {
                    let mut v = self.sources.inventory.vars_for_host(d);
                    v.insert("inventory_hostname".into(), json!(d));
                    (d.to_string(), v)
                } else if d == "localhost" || d == "127.0.0.1" {
                    let mut v = Map::new();
                    v.insert("ansible_connection".into(), json!("local"));
                    (d.to_string(), v)
                } else {
                    return Err(EnvError::Failed(format!(
                        "delegate_to: '{d}' is not in the inventory"
                    )));
                }
            }
            _ => {
                let mut v = Map::new();
                for key in CONNECTION_VARS {
                    if let Some(value) = render_var(key)? {
                        v.insert((*key).into(), json!(value));
                    }
                }
                self.implicit_local(host, &mut v);
                (host.to_string(), v)
            }
        };
        for key in ["ansible_password", "ansible_ssh_pass"] {
            if let Some(Value::String(p)) = conn_vars.get(key) {
                self.redactor.add(p);
            }
        }
        // The `connection:` keyword, unless a connection variable says otherwise (variables win
        // over keywords, as in Ansible).
        if let Some(connection) = &task.common.connection {
            if !conn_vars.contains_key("ansible_connection") {
                conn_vars.insert("ansible_connection".into(), json!(connection));
            }
        }
        let remote_user = task.common.remote_user.clone();
        let target = target_for(
            &conn_host,
            &conn_vars,
            remote_user.as_deref(),
            &self.opts.connect,
        )
        .map_err(EnvError::Failed)?;
        let key = session_key(&conn_host, &target);
        let transport: Arc<dyn Transport> = self
            .pool
            .get(&key, target)
            .await
            .map_err(|e| EnvError::Unreachable(e.to_string()))?;

        // Become: connection variables win over keywords, as in Ansible.
        let become_on = match render_var("ansible_become")? {
            Some(v) => crate::modules::args::to_bool(&json!(v)).unwrap_or(false),
            None => task.common.become_enabled.unwrap_or(false),
        };
        let become_spec = if become_on {
            let user = render_var("ansible_become_user")?
                .or_else(|| task.common.become_user.clone())
                .unwrap_or_else(|| "root".into());
            let method = render_var("ansible_become_method")?
                .or_else(|| task.common.become_method.clone())
                .unwrap_or_else(|| "sudo".into());
            let password = render_var("ansible_become_password")?
                .or(render_var("ansible_become_pass")?)
                .or_else(|| self.opts.become_password.clone());
            if let Some(p) = &password {
                self.redactor.add(p);
            }
            let method = match method.as_str() {
                "sudo" => BecomeMethod::Sudo,
                "su" => BecomeMethod::Su,
                other => {
                    return Err(EnvError::Failed(format!(
                        "become_method '{other}' is not supported (use sudo or su)"
                    )))
                }
            };
            Some(BecomeSpec {
                method,
                user,
                password,
                flags: task.common.become_flags.clone(),
            })
        } else {
            None
        };

        let mut environment = Vec::new();
        for env_value in &task.common.environment {
            match templar.render_value(env_value, ctx) {
                Ok(Value::Object(m)) => {
                    for (k, v) in m {
                        let v = match v {
                            Value::String(s) => s,
                            other => other.to_string(),
                        };
                        environment.retain(|(existing, _): &(String, String)| existing != &k);
                        environment.push((k, v));
                    }
                }
                Ok(Value::Null) => {}
                Ok(_) => return Err(EnvError::Failed("environment must be a mapping".into())),
                Err(e) => {
                    return Err(EnvError::NotEvaluated(EvalFailure {
                        msg: format!("cannot template environment: {}", e.message),
                        unknown: e.unknown,
                    }))
                }
            }
        }
        let check_mode = match &task.common.check_mode {
            Some(v) => templar
                .render_value(v, ctx)
                .map(|v| is_truthy(&v))
                .unwrap_or(self.opts.check),
            None => self.opts.check,
        };
        let diff_mode = match &task.common.diff {
            Some(v) => templar
                .render_value(v, ctx)
                .map(|v| is_truthy(&v))
                .unwrap_or(self.opts.diff),
            None => self.opts.diff,
        };
        let timeout = task
            .common
            .timeout
            .map(Duration::from_secs)
            .unwrap_or(self.opts.command_timeout);
        let task_dir = task
            .file
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        let mut search_dirs = vec![task_dir];
        if !search_dirs.contains(&self.playbook.dir) {
            search_dirs.push(self.playbook.dir.clone());
        }
        let _ = run;
        Ok(HostEnv {
            transport,
            become_spec,
            environment,
            templar: templar.clone(),
            vars: ctx.clone(),
            check_mode,
            diff_mode,
            search_dirs,
            timeout,
            unknown: Default::default(),
        })
    }

    pub(super) async fn gather_facts_on(&self, run: &PlayRun<'_>, host: &str) {
        let Some(state) = self.host(host) else { return };
        let Some(vars) = self.vars_for(run, host, &run.play.defaults.vars, &Scope::new()) else {
            return;
        };
        let ctx = self.context(run, vars.clone());
        let pseudo = Task {
            name: Some("Gathering Facts".into()),
            module: "setup".into(),
            action: "gather_facts".into(),
            args: Map::new(),
            span: run.play.span.clone(),
            file: run.play.span.file.clone(),
            common: run.play.defaults.clone(),
            loop_items: None,
            loop_control: Default::default(),
            register: None,
            notify: vec![],
            listen: vec![],
            changed_when: vec![],
            failed_when: vec![],
            until: None,
            retries: None,
            delay: None,
            once_per: None,
        };
        let (result, status) = match self.host_env(run, &pseudo, host, &vars, &ctx, None).await {
            Err(EnvError::Unreachable(msg)) => {
                let mut r = Map::new();
                r.insert("msg".into(), json!(msg));
                r.insert("unreachable".into(), json!(true));
                (r, HostStatus::Unreachable)
            }
            Err(EnvError::Failed(msg)) => (fail_result(msg), HostStatus::Failed),
            Err(EnvError::NotEvaluated(failure)) => (fail_result(failure.msg), HostStatus::Failed),
            Ok(env) => match crate::facts::gather(&env, &run.play.gather_subset).await {
                Ok(facts) => {
                    let mut r = Map::new();
                    r.insert("ansible_facts".into(), Value::Object(facts));
                    (r, HostStatus::Ok)
                }
                Err(ModuleError::Transport(e)) => {
                    let mut r = Map::new();
                    r.insert("msg".into(), json!(e.to_string()));
                    r.insert("unreachable".into(), json!(true));
                    (r, HostStatus::Unreachable)
                }
                Err(ModuleError::Failed { msg, .. }) => (fail_result(msg), HostStatus::Failed),
            },
        };
        let mut shown = result.clone();
        shown.remove("ansible_facts");
        if status == HostStatus::Ok {
            if let Some(Value::Object(facts)) = result.get("ansible_facts") {
                lock(&state).facts.extend(facts.clone());
            }
            self.stats(|s| s.entry(host).ok += 1);
        } else {
            {
                let mut s = lock(&state);
                if status == HostStatus::Unreachable {
                    s.unreachable = true;
                } else {
                    s.failed = true;
                }
            }
            self.stats(|s| {
                let e = s.entry(host);
                if status == HostStatus::Unreachable {
                    e.unreachable += 1
                } else {
                    e.failed += 1
                }
            });
        }
        self.emit(Event::Result(ResultEvent {
            host: host.to_string(),
            delegate: None,
            task: "Gathering Facts".into(),
            status,
            item: None,
            reason: None,
            result: self.redact_map(&shown),
            diffs: vec![],
            verbose_always: false,
        }));
    }

    /// `include_tasks`: resolved per host, hosts that include the same file (and item) run it together.
    pub(super) async fn run_include(
        &self,
        run: &PlayRun<'_>,
        include: &Arc<Include>,
        hosts: &[String],
        scope: &Scope,
        rescuable: bool,
    ) {
        let templar = &self.sources.templar;
        // (file, item index) → hosts and their scope vars, in first-seen order.
        let mut groups: Vec<((String, usize), Vec<String>, Scope)> = Vec::new();
        for h in hosts {
            if !self.tag_selected(&include.common.tags) {
                continue;
            }
            let Some(vars) = self.vars_for(run, h, &include.common.vars, scope) else {
                continue;
            };
            let ctx = self.context(run, vars.clone());
            let mut skip = false;
            for cond in &include.common.when {
                match templar.eval_bool_noting_unknown(&cond.expr, &ctx) {
                    Ok((_, unknown)) if self.opts.check && !unknown.is_empty() => {
                        self.include_unknown(h, include, &unknown);
                        skip = true;
                    }
                    Ok((true, _)) => {}
                    Ok((false, _)) => skip = true,
                    Err(e) => {
                        self.include_not_evaluated(h, include, &e);
                        skip = true;
                    }
                }
                if skip {
                    break;
                }
            }
            if skip {
                continue;
            }
            let items: Vec<Option<Value>> = match &include.loop_items {
                None => vec![None],
                Some(raw) => match templar.render_value(raw, &ctx) {
                    Err(e) => {
                        self.include_not_evaluated(h, include, &e);
                        continue;
                    }
                    Ok(v) => match loop_list(v, include.loop_control.kind) {
                        Ok(list) => list.into_iter().map(Some).collect(),
                        Err(msg) => {
                            self.include_failure(h, include, &msg);
                            continue;
                        }
                    },
                },
            };
            for (index, item) in items.into_iter().enumerate() {
                let mut item_vars = scope.get(h).map(|a| (**a).clone()).unwrap_or_default();
                item_vars.extend(include.common.vars.clone());
                let mut item_ctx_vars = vars.clone();
                if let Some(item) = &item {
                    item_vars.insert(include.loop_control.loop_var.clone(), item.clone());
                    item_ctx_vars.insert(include.loop_control.loop_var.clone(), item.clone());
                    if let Some(iv) = &include.loop_control.index_var {
                        item_vars.insert(iv.clone(), json!(index));
                        item_ctx_vars.insert(iv.clone(), json!(index));
                    }
                }
                let file =
                    match templar.render_str(&include.file, &self.context(run, item_ctx_vars)) {
                        Ok(f) => f,
                        Err(e) => {
                            self.include_failure(h, include, &e.message);
                            break;
                        }
                    };
                let key = (file, index);
                match groups.iter_mut().find(|(k, _, _)| *k == key) {
                    Some((_, hs, sc)) => {
                        hs.push(h.clone());
                        sc.insert(h.clone(), Arc::new(item_vars));
                    }
                    None => {
                        let mut sc = Scope::new();
                        sc.insert(h.clone(), Arc::new(item_vars));
                        groups.push((key, vec![h.clone()], sc));
                    }
                }
            }
        }
        for ((file, _), group_hosts, group_scope) in groups {
            let items = match (
                &include.preloaded,
                crate::template::Templar::is_template(&include.file),
            ) {
                (Some(pre), false) => pre.clone(),
                _ => {
                    let path = [include.base_dir.join(&file), self.playbook.dir.join(&file)]
                        .into_iter()
                        .find(|p| p.exists())
                        .unwrap_or_else(|| include.base_dir.join(&file));
                    match crate::playbook::load_tasks_file(
                        &path,
                        &self.playbook.dir,
                        &Default::default(),
                    ) {
                        Ok(items) => Arc::new(items),
                        Err(d) => {
                            for h in &group_hosts {
                                self.include_failure(h, include, &d.to_string());
                            }
                            continue;
                        }
                    }
                }
            };
            // The include's own keywords (when was evaluated above; tags/become/… apply to its tasks).
            let items = Arc::new(apply_inherited(&items, &include.common));
            self.run_items(run, &items, group_hosts, &group_scope, rescuable)
                .await;
        }
    }

    /// An include whose `when` or loop cannot be evaluated fails, or in check mode is skipped when
    /// it depends on results only a real run gives.
    fn include_not_evaluated(&self, host: &str, include: &Include, e: &TemplateError) {
        if self.opts.check && !e.unknown.is_empty() {
            self.include_unknown(host, include, &e.unknown);
        } else {
            self.include_failure(host, include, &e.message);
        }
    }

    fn include_unknown(&self, host: &str, include: &Include, names: &[String]) {
        let result = unknown_skip_result(names);
        self.stats(|s| s.entry(host).skipped += 1);
        self.emit(Event::Result(ResultEvent {
            host: host.to_string(),
            delegate: None,
            task: include_name(include),
            status: HostStatus::Skipped,
            item: None,
            reason: skip_note(HostStatus::Skipped, &result),
            result,
            diffs: vec![],
            verbose_always: false,
        }));
    }

    fn include_failure(&self, host: &str, include: &Include, msg: &str) {
        let task_name = include_name(include);
        if let Some(state) = self.host(host) {
            lock(&state).failed = true;
        }
        self.stats(|s| s.entry(host).failed += 1);
        self.emit(Event::Result(ResultEvent {
            host: host.to_string(),
            delegate: None,
            task: task_name,
            status: HostStatus::Failed,
            item: None,
            reason: None,
            result: self.redact_map(&fail_result(format!("{msg} (include at {})", include.span))),
            diffs: vec![],
            verbose_always: false,
        }));
    }
}

fn include_name(include: &Include) -> String {
    include
        .name
        .clone()
        .unwrap_or_else(|| format!("include_tasks {}", include.file))
}

/// The variables that say how to reach a host.
const CONNECTION_VARS: &[&str] = &[
    "ansible_connection",
    "ansible_host",
    "ansible_ssh_host",
    "ansible_port",
    "ansible_ssh_port",
    "ansible_user",
    "ansible_ssh_user",
    "ansible_password",
    "ansible_ssh_pass",
    "ansible_ssh_password",
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
    "ansible_ssh_common_args",
    "ansible_ssh_extra_args",
];

/// The pool key of a session: one per (host, address, port, user).
fn session_key(conn_host: &str, target: &Target) -> String {
    match target {
        Target::Local => "local".to_string(),
        Target::Ssh(o) => format!(
            "{}|{}|{}|{}",
            conn_host,
            o.host.clone().unwrap_or_default(),
            o.port.unwrap_or(0),
            o.user.clone().unwrap_or_default()
        ),
    }
}

impl Runner {
    /// `localhost` not in the inventory is the controller itself, as in Ansible.
    fn implicit_local(&self, host: &str, conn: &mut Map<String, Value>) {
        if host == "localhost"
            && !conn.contains_key("ansible_connection")
            && self.sources.inventory.host("localhost").is_none()
        {
            conn.insert("ansible_connection".into(), json!("local"));
        }
    }

    /// With the remote run lock on: connects to every host of the run and takes its lock in sorted
    /// host order before the first task, so that two runs over the same hosts always lock in the
    /// same order and cannot each hold a lock the other waits for. Failures stay in the pool and
    /// are reported by the host's first task.
    pub(super) async fn prelock(&self, hosts: &[(String, Option<String>, Option<String>)]) {
        let mut sorted = hosts.to_vec();
        sorted.sort();
        sorted.dedup();
        let templar = &self.sources.templar;
        let mut targets = Vec::new();
        for (host, remote_user, connection) in sorted {
            let mut vars = self.sources.inventory.vars_for_host(&host);
            vars.extend(self.sources.extra_vars.clone());
            let ctx = templar.lazy_vars(
                Arc::new(vars.clone()),
                vec![("groups".to_string(), self.sources.groups.clone())],
            );
            let mut conn = Map::new();
            for key in CONNECTION_VARS {
                let value = match vars.get(*key) {
                    None | Some(Value::Null) => continue,
                    Some(Value::String(s)) => match templar.render_str(s, &ctx) {
                        Ok(v) => v,
                        Err(_) => continue,
                    },
                    Some(Value::Bool(b)) => b.to_string(),
                    Some(other) => other.to_string(),
                };
                conn.insert((*key).into(), json!(value));
            }
            self.implicit_local(&host, &mut conn);
            if let Some(connection) = connection {
                conn.entry("ansible_connection")
                    .or_insert_with(|| json!(connection));
            }
            match target_for(&host, &conn, remote_user.as_deref(), &self.opts.connect) {
                // The controller itself needs no lock.
                Ok(Target::Local) | Err(_) => {}
                Ok(target) => {
                    let key = session_key(&host, &target);
                    targets.push((host, key, target));
                }
            }
        }
        // Connecting is slow and order-free: `forks` at a time (a bastion's MaxStartups drops
        // handshakes beyond its limit). Locking is ordered: one by one, sorted.
        use futures::StreamExt;
        let mut sessions: Vec<_> =
            futures::stream::iter(targets.into_iter().map(|(host, key, target)| async move {
                let session = self.pool.connect_only(&key, target).await;
                (host, session)
            }))
            .buffer_unordered(self.opts.forks.max(1))
            .collect()
            .await;
        sessions.sort_by(|a, b| a.0.cmp(&b.0));
        for (host, session) in sessions {
            if let Ok(session) = session {
                self.pool.lock(&host, &session).await;
            }
        }
    }
}

enum EnvError {
    Unreachable(String),
    Failed(String),
    /// A template (the task's `environment`) could not be evaluated.
    NotEvaluated(EvalFailure),
}

/// Folds an include's keywords into the tasks it loads (tags, become, environment, …; not `when`,
/// which was evaluated once for the include itself, nor vars, which travel in the scope).
fn apply_inherited(
    items: &[crate::playbook::TaskItem],
    parent: &crate::playbook::Inherited,
) -> Vec<crate::playbook::TaskItem> {
    use crate::playbook::TaskItem;
    items
        .iter()
        .map(|item| match item {
            TaskItem::Task(t) => {
                let mut common = parent.clone();
                common.when = Vec::new();
                common.vars = Map::new();
                merge_inherited(&mut common, &t.common);
                TaskItem::Task(Arc::new(Task {
                    name: t.name.clone(),
                    module: t.module.clone(),
                    action: t.action.clone(),
                    args: t.args.clone(),
                    span: t.span.clone(),
                    file: t.file.clone(),
                    common,
                    loop_items: t.loop_items.clone(),
                    loop_control: t.loop_control.clone(),
                    register: t.register.clone(),
                    notify: t.notify.clone(),
                    listen: t.listen.clone(),
                    changed_when: t.changed_when.clone(),
                    failed_when: t.failed_when.clone(),
                    until: t.until.clone(),
                    retries: t.retries.clone(),
                    delay: t.delay.clone(),
                    once_per: t.once_per.clone(),
                }))
            }
            TaskItem::Block(b) => TaskItem::Block(Arc::new(crate::playbook::Block {
                name: b.name.clone(),
                span: b.span.clone(),
                block: apply_inherited(&b.block, parent),
                rescue: apply_inherited(&b.rescue, parent),
                always: apply_inherited(&b.always, parent),
            })),
            other => other.clone(),
        })
        .collect()
}

/// `child` settings override `into` (which starts as the parent's).
fn merge_inherited(into: &mut crate::playbook::Inherited, child: &crate::playbook::Inherited) {
    into.when.extend(child.when.iter().cloned());
    for t in &child.tags {
        if !into.tags.contains(t) {
            into.tags.push(t.clone());
        }
    }
    into.vars.extend(child.vars.clone());
    into.environment.extend(child.environment.iter().cloned());
    macro_rules! over {
        ($($f:ident),*) => { $( if child.$f.is_some() { into.$f = child.$f.clone(); } )* };
    }
    over!(
        become_enabled,
        become_user,
        become_method,
        become_flags,
        remote_user,
        no_log,
        ignore_errors,
        ignore_unreachable,
        run_once,
        check_mode,
        diff,
        delegate_to,
        any_errors_fatal,
        connection,
        timeout
    );
}

fn condition_failure(expr: &str, e: TemplateError) -> EvalFailure {
    EvalFailure {
        msg: format!(
            "The conditional check '{expr}' failed. The error was: {}",
            e.message
        ),
        unknown: e.unknown,
    }
}

fn all_true(
    templar: &crate::template::Templar,
    conds: &[crate::playbook::Condition],
    ctx: &minijinja::Value,
) -> Result<bool, EvalFailure> {
    for c in conds {
        if !templar
            .eval_bool(&c.expr, ctx)
            .map_err(|e| condition_failure(&c.expr, e))?
        {
            return Ok(false);
        }
    }
    Ok(true)
}

fn any_true(
    templar: &crate::template::Templar,
    conds: &[crate::playbook::Condition],
    ctx: &minijinja::Value,
) -> Result<bool, EvalFailure> {
    for c in conds {
        if templar
            .eval_bool(&c.expr, ctx)
            .map_err(|e| condition_failure(&c.expr, e))?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

fn number(templar: &crate::template::Templar, v: &Value, ctx: &minijinja::Value) -> Option<f64> {
    match templar.render_value(v, ctx).ok()? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Turns a loop value into items: lists as is, `with_items` flattened one level, `with_dict` to key/value.
fn loop_list(value: Value, kind: LoopKind) -> Result<Vec<Value>, String> {
    match (kind, value) {
        (LoopKind::Dict, Value::Object(m)) => Ok(m.into_iter().map(|(k, v)| json!({"key": k, "value": v})).collect()),
        (LoopKind::Dict, other) => Err(format!("with_dict expects a dict, got {}", crate::modules::args::json_type(&other))),
        (LoopKind::Items, Value::Array(items)) => Ok(items
            .into_iter()
            .flat_map(|i| match i {
                Value::Array(inner) => inner,
                other => vec![other],
            })
            .collect()),
        (LoopKind::Items, Value::String(s)) => Ok(vec![Value::String(s)]),
        (_, Value::Array(items)) => Ok(items),
        (_, Value::Null) => Ok(vec![]),
        (_, other) => Err(format!(
            "Invalid data passed to 'loop', it requires a list, got this instead: {}. Hint: If you passed a list/dict of just one element, try adding wantlist=True to your lookup invocation or use q/query instead of lookup.",
            python_repr(&other)
        )),
    }
}

fn censored(result: &Map<String, Value>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("censored".into(), json!(NO_LOG_MSG));
    m.insert(
        "changed".into(),
        result.get("changed").cloned().unwrap_or(json!(false)),
    );
    if let Some(f) = result.get("failed") {
        m.insert("failed".into(), f.clone());
    }
    // A check-mode skip names only variables, and says why nothing ran.
    if result.contains_key(UNKNOWN_KEY) {
        for key in ["skipped", "skip_reason", UNKNOWN_KEY] {
            if let Some(v) = result.get(key) {
                m.insert(key.into(), v.clone());
            }
        }
    }
    m
}

/// How Python prints a value (loop item labels look like Ansible's).
pub fn python_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(quoted_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("'{}': {}", k, quoted_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn quoted_repr(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        other => python_repr(other),
    }
}
