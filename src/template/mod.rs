//! Jinja2 templating with Ansible's semantics, on minijinja.
//!
//! One [`Templar`] is built per run and shared by all tasks. It renders task strings, whole
//! argument trees (keeping native types for `"{{ expr }}"`), conditionals and template files, with
//! Ansible's filters, tests and lookups. Undefined variables fail loudly and name the variable,
//! except where a guard (`default`, `is defined`, …) makes them harmless, as in Ansible.
#![allow(dead_code)]

mod chain;
mod convert;
mod filters;
mod jinja_tests;
mod lazy;
mod lookups;
mod proxy;
mod serialize;
mod unknown;

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};
use serde_json::Value as Json;

pub use convert::{from_json, to_json};
pub use lazy::LazyVars;
pub use unknown::Unknowns;

/// Whether `s` holds Jinja syntax at all (strings without it are never rendered).
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// Renders Jinja2 the way Ansible does. Cheap to share (`Arc<Templar>`); rendering takes no lock.
pub struct Templar {
    env: Environment<'static>,
    search_paths: Arc<Vec<PathBuf>>,
    /// Names the engine resolves itself (`range`, `lookup`, …): never reported as undefined.
    globals: Arc<HashSet<String>>,
}

/// A failed render. `undefined` names the undefined variable (`foo`, `foo.bar`) when that is the cause.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateError {
    pub message: String,
    pub undefined: Option<String>,
    /// When an undefined value is the cause and it comes from names whose values only a real run
    /// gives (see [`Unknowns`]): those names, first seen first. Empty otherwise.
    pub unknown: Vec<String>,
}

impl TemplateError {
    fn new(message: impl Into<String>) -> Self {
        TemplateError {
            message: message.into(),
            undefined: None,
            unknown: Vec::new(),
        }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TemplateError {}

impl fmt::Debug for Templar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Templar")
            .field("search_paths", &self.search_paths)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// Nesting of renders on this thread (lazy variables render inside renders).
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    /// Why a lazy variable failed to render during the current top-level render, by variable name.
    /// The variable then reads as undefined (so `default` can still guard it, as in Ansible); if the
    /// render fails on it, this cause is reported instead of a bare "undefined".
    static VAR_ERRORS: RefCell<HashMap<String, TemplateError>> = RefCell::new(HashMap::new());
    /// The variables of the renders in progress, innermost last (for `lookup('template')`).
    static CONTEXTS: RefCell<Vec<Value>> = const { RefCell::new(Vec::new()) };
}

/// Marks one render in progress on this thread; undone on drop, also on unwinding.
struct RenderScope;

impl RenderScope {
    fn enter(vars: &Value) -> RenderScope {
        if DEPTH.with(|d| d.replace(d.get() + 1)) == 0 {
            VAR_ERRORS.with(|errors| errors.borrow_mut().clear());
            lazy::reset_thread_state();
            unknown::reset_thread_state();
        }
        CONTEXTS.with(|c| c.borrow_mut().push(vars.clone()));
        RenderScope
    }
}

impl Drop for RenderScope {
    fn drop(&mut self) {
        CONTEXTS.with(|c| c.borrow_mut().pop());
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// The variables of the innermost render in progress.
fn current_context() -> Option<Value> {
    CONTEXTS.with(|c| c.borrow().last().cloned())
}

fn record_var_error(name: &str, error: TemplateError) {
    VAR_ERRORS.with(|errors| {
        errors.borrow_mut().entry(name.to_string()).or_insert(error);
    });
}

fn var_error(name: &str) -> Option<TemplateError> {
    VAR_ERRORS.with(|errors| errors.borrow().get(name).cloned())
}

/// Marker for errors raised by the `mandatory` filter; `{name}` is filled in once the name is known.
const MANDATORY_PREFIX: &str = "mandatory: ";

impl Templar {
    /// `search_paths`: directories searched, in order, for `lookup('file'|'template')`, template
    /// files and `{% include %}` (typically the playbook directory, its `templates/` and `files/`).
    pub fn new(search_paths: Vec<PathBuf>) -> Templar {
        let search_paths = Arc::new(search_paths);
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Ansible's defaults for both task strings and template files.
        let mut syntax = SyntaxConfig::builder();
        syntax
            .trim_blocks(true)
            .lstrip_blocks(false)
            .keep_trailing_newline(true);
        if let Ok(syntax) = syntax.build() {
            env.set_syntax(syntax);
        }
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_formatter(filters::python_formatter);
        env.set_recursion_limit(200);
        let loader_paths = search_paths.clone();
        env.set_loader(move |name| load_template_source(&loader_paths, name));
        env.set_path_join_callback(join_template_path);
        minijinja_contrib::add_to_environment(&mut env);
        filters::register(&mut env);
        jinja_tests::register(&mut env);
        lookups::register(&mut env, search_paths.clone());
        let globals = Arc::new(env.globals().map(|(name, _)| name.to_string()).collect());
        Templar {
            env,
            search_paths,
            globals,
        }
    }

    pub fn search_paths(&self) -> &[PathBuf] {
        &self.search_paths
    }

    /// Whether `s` holds Jinja syntax at all (strings without it are never rendered).
    pub fn is_template(s: &str) -> bool {
        is_template(s)
    }

    /// Renders a string to text.
    pub fn render_str(&self, text: &str, vars: &Value) -> Result<String, TemplateError> {
        if !Self::is_template(text) {
            return Ok(text.to_string());
        }
        self.render_named(text, "<string>", vars)
    }

    fn render_named(
        &self,
        source: &str,
        name: &str,
        vars: &Value,
    ) -> Result<String, TemplateError> {
        let template = self
            .env
            .template_from_named_str(name, source)
            .map_err(|e| self.describe(e, vars, HashSet::new))?;
        self.run(
            vars,
            |ctx| template.render(ctx.clone()),
            Some,
            || template.undeclared_variables(true),
        )
    }

    /// Recursively templates the strings inside a JSON value. A string that is exactly one
    /// `{{ expr }}` keeps the expression's native type (list, dict, number, bool), like Ansible;
    /// other strings render to strings. Mapping keys are not templated (as in Ansible).
    pub fn render_value(&self, value: &Json, vars: &Value) -> Result<Json, TemplateError> {
        if !contains_template(value) {
            return Ok(value.clone());
        }
        Ok(to_json(&self.template_native(value, vars)?))
    }

    /// [`render_value`](Self::render_value) producing a template value (objects such as
    /// `hostvars` stay objects instead of being copied out).
    pub(crate) fn template_native(
        &self,
        value: &Json,
        vars: &Value,
    ) -> Result<Value, TemplateError> {
        if !contains_template(value) {
            return Ok(from_json(value));
        }
        match value {
            Json::String(s) => self.template_string_native(s, vars),
            Json::Array(items) => {
                let items = items
                    .iter()
                    .map(|item| self.template_native(item, vars))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Value::from(items))
            }
            Json::Object(map) => {
                let mut pairs = Vec::with_capacity(map.len());
                for (key, item) in map {
                    pairs.push((Value::from(key.as_str()), self.template_native(item, vars)?));
                }
                Ok(Value::from_pairs(pairs))
            }
            other => Ok(from_json(other)),
        }
    }

    fn template_string_native(&self, text: &str, vars: &Value) -> Result<Value, TemplateError> {
        if let Some(expr) = single_expression(text) {
            if let Ok(compiled) = self.env.compile_expression(expr) {
                return self.eval_compiled(&compiled, vars);
            }
        }
        self.render_str(text, vars).map(Value::from)
    }

    /// Evaluates a bare Jinja expression (`when:`, `until:`, `changed_when:`, `failed_when:`, assert
    /// `that:`). A `{{ }}`-wrapped expression is accepted too; an expression with embedded `{{ }}`
    /// parts is rendered first and the result evaluated, as Ansible does.
    pub fn eval(&self, expr: &str, vars: &Value) -> Result<Json, TemplateError> {
        self.eval_value(expr, vars).map(|v| to_json(&v))
    }

    fn eval_value(&self, expr: &str, vars: &Value) -> Result<Value, TemplateError> {
        let trimmed = expr.trim();
        let rendered;
        let text = match single_expression(trimmed) {
            Some(inner) => inner,
            None if Self::is_template(trimmed) => {
                rendered = self.render_str(trimmed, vars)?;
                rendered.as_str()
            }
            None => trimmed,
        };
        if text.trim().is_empty() {
            return Err(TemplateError::new(format!("empty expression: {expr:?}")));
        }
        let compiled = self
            .env
            .compile_expression(text)
            .map_err(|e| self.describe(e, vars, HashSet::new))?;
        self.eval_compiled(&compiled, vars)
    }

    fn eval_compiled(
        &self,
        compiled: &minijinja::Expression<'_, '_>,
        vars: &Value,
    ) -> Result<Value, TemplateError> {
        let value = self.run(
            vars,
            |ctx| compiled.eval(ctx.clone()),
            chain::strip,
            || compiled.undeclared_variables(true),
        )?;
        if value.is_undefined() {
            let name = self.find_missing(compiled.undeclared_variables(true), vars);
            return Err(self.undefined_error(name, None, "", vars));
        }
        Ok(value)
    }

    /// Evaluates a condition with Ansible's rules: Jinja truthiness of the result, except that a
    /// bare variable holding a string is read as a boolean word (`"no"`, `"False"`, `"0"` are false),
    /// because Ansible substitutes such a variable's text into the condition.
    pub fn eval_bool(&self, expr: &str, vars: &Value) -> Result<bool, TemplateError> {
        let value = self.eval_value(expr, vars)?;
        let trimmed = expr.trim();
        let bare = single_expression(trimmed).unwrap_or(trimmed).trim();
        if is_identifier(bare) {
            if let Some(text) = value.as_str() {
                return Ok(bool_word(text).unwrap_or(!text.is_empty()));
            }
        }
        Ok(value.is_true())
    }

    /// [`eval_bool`](Self::eval_bool), also naming the unknown names (see [`Unknowns`]) whose
    /// values the condition read (a key, present or not, or the name missing): a condition decided
    /// by them is not really known.
    pub fn eval_bool_noting_unknown(
        &self,
        expr: &str,
        vars: &Value,
    ) -> Result<(bool, Vec<String>), TemplateError> {
        let value = self.eval_bool(expr, vars)?;
        Ok((value, unknown::read()))
    }

    /// Renders a template file (module `template`, `lookup('template')`): `trim_blocks` on,
    /// `lstrip_blocks` off, trailing newline kept; `{% include %}` looks next to the file, then in
    /// the search paths. Adds `template_path`, `template_fullpath`, `template_host` and
    /// `ansible_managed` (unless set) to the variables.
    pub fn render_file(&self, path: &Path, vars: &Value) -> Result<String, TemplateError> {
        let full = self.locate(path).ok_or_else(|| {
            TemplateError::new(format!(
                "could not find template file {} (searched {})",
                path.display(),
                self.searched()
            ))
        })?;
        let source = std::fs::read_to_string(&full).map_err(|e| {
            TemplateError::new(format!("cannot read template {}: {e}", full.display()))
        })?;
        let name = full.to_string_lossy().into_owned();
        let mut extra = vec![
            (
                "template_path".to_string(),
                Value::from(path.to_string_lossy().as_ref()),
            ),
            ("template_fullpath".to_string(), Value::from(name.as_str())),
            (
                "template_host".to_string(),
                Value::from(controller_hostname()),
            ),
        ];
        if vars
            .get_attr("ansible_managed")
            .map(|v| v.is_undefined())
            .unwrap_or(true)
        {
            extra.push((
                "ansible_managed".to_string(),
                Value::from("Ansible managed"),
            ));
        }
        let ctx = lazy::overlay(vars.clone(), extra);
        self.render_named(&source, &name, &ctx)
    }

    /// Finds a file: absolute as is, relative in the search paths (then the working directory).
    pub fn locate(&self, path: &Path) -> Option<PathBuf> {
        locate_in(&self.search_paths, path)
    }

    fn searched(&self) -> String {
        self.search_paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A context whose string values are templated on first access, recursively (`a: "{{ b }}"`
    /// resolves `b` the same way), memoized, and cycle-safe: a self-reference is an error naming the
    /// variables involved. `objects` (e.g. `hostvars`) are exposed as they are and take precedence.
    pub fn lazy_vars(
        self: &Arc<Self>,
        vars: Arc<serde_json::Map<String, Json>>,
        objects: Vec<(String, Value)>,
    ) -> Value {
        Value::from_object(LazyVars::new(self.clone(), vars, objects, None))
    }

    /// [`lazy_vars`](Self::lazy_vars) that notes lookups missed because of `unknowns` (check mode),
    /// so that a failed render names them in [`TemplateError::unknown`].
    pub fn lazy_vars_tracking(
        self: &Arc<Self>,
        vars: Arc<serde_json::Map<String, Json>>,
        objects: Vec<(String, Value)>,
        unknowns: &Arc<Unknowns>,
    ) -> Value {
        Value::from_object(LazyVars::new(
            self.clone(),
            vars,
            objects,
            Some(unknowns.clone()),
        ))
    }

    /// Renders with Ansible's undefined rules: strictly first; on an undefined error once more with
    /// chainable undefined markers (see `chain`), accepted only if no marker was used unguarded.
    fn run<T>(
        &self,
        vars: &Value,
        attempt: impl Fn(&Value) -> Result<T, Error>,
        keep: impl Fn(T) -> Option<T>,
        undeclared: impl FnOnce() -> HashSet<String>,
    ) -> Result<T, TemplateError> {
        let _scope = RenderScope::enter(vars);
        let error = match attempt(vars) {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        // A variable that failed to template is not retried: its own error is the answer, and
        // retrying at every level of a chain of broken variables would multiply the work.
        let broken_var = error
            .detail()
            .and_then(undefined_name_in)
            .is_some_and(|name| var_error(root_name(&name)).is_some());
        if error.kind() == ErrorKind::UndefinedError && !is_mandatory_error(&error) && !broken_var {
            let retry = Arc::new(chain::Attempt::default());
            let chained = chain::root(vars, self.globals.clone(), &retry);
            if let Ok(value) = attempt(&chained) {
                if !retry.misused() {
                    if let Some(value) = keep(value) {
                        return Ok(value);
                    }
                }
            }
        }
        Err(self.describe(error, vars, undeclared))
    }

    /// Turns an engine error into a [`TemplateError`], finding the undefined variable's name.
    fn describe(
        &self,
        error: Error,
        vars: &Value,
        undeclared: impl FnOnce() -> HashSet<String>,
    ) -> TemplateError {
        let detail = error.detail().unwrap_or_default().to_string();
        let mut undefined = undefined_name_in(&detail);
        let undefined_cause = error.kind() == ErrorKind::UndefinedError || undefined.is_some();
        if undefined.is_none() && undefined_cause {
            undefined = self.find_missing(undeclared(), vars);
        }
        let location = location_of(&error);
        if let Some(message) = detail.strip_prefix(MANDATORY_PREFIX) {
            let name = undefined.clone().unwrap_or_else(|| "?".into());
            return TemplateError {
                message: format!("{}{location}", message.replace("{name}", &name)),
                unknown: unknown_cause(undefined.as_deref(), vars),
                undefined,
            };
        }
        if undefined_cause {
            let rest = detail
                .split(" (`")
                .next()
                .filter(|d| !d.is_empty() && !d.ends_with("is undefined"));
            return self.undefined_error(undefined, rest, &location, vars);
        }
        let mut message = match error.detail() {
            Some(detail) => format!("{}: {detail}", error.kind()),
            None => error.kind().to_string(),
        };
        message.push_str(&location);
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        TemplateError {
            message,
            undefined: None,
            unknown: Vec::new(),
        }
    }

    fn undefined_error(
        &self,
        name: Option<String>,
        extra: Option<&str>,
        location: &str,
        vars: &Value,
    ) -> TemplateError {
        if let Some(name) = &name {
            if let Some(cause) = var_error(root_name(name)) {
                return cause;
            }
        }
        let mut message = match &name {
            Some(name) => format!("'{name}' is undefined"),
            None => "undefined variable".to_string(),
        };
        if let Some(extra) = extra {
            message.push_str(&format!(" ({extra})"));
        }
        message.push_str(location);
        TemplateError {
            message,
            unknown: unknown_cause(name.as_deref(), vars),
            undefined: name,
        }
    }

    /// The first variable path used by a template that does not resolve in `vars`.
    fn find_missing(&self, paths: HashSet<String>, vars: &Value) -> Option<String> {
        let mut paths: Vec<String> = paths.into_iter().collect();
        paths.sort();
        for path in paths {
            let mut current = vars.clone();
            for (i, segment) in path.split('.').enumerate() {
                let next = if current.kind() == ValueKind::Map {
                    current.get_attr(segment).ok()
                } else {
                    None
                };
                match next {
                    Some(value) if !value.is_undefined() => current = value,
                    Some(_) if i == 0 && self.globals.contains(segment) => break,
                    Some(_) => {
                        return Some(path.split('.').take(i + 1).collect::<Vec<_>>().join("."))
                    }
                    None => break,
                }
            }
        }
        None
    }
}

/// The unknown names behind an undefined value (see `unknown`): the lookups this render missed
/// because of them. Empty when the undefined value itself is not one of those misses: the path the
/// error names (`settings.prot`, `hostvars.h1.fact`) is walked, and the key found missing must be an
/// unknown name or a key of an unknown value. So a typo stays an error, even when a guarded lookup
/// of an unknown value came first in the same template.
fn unknown_cause(undefined: Option<&str>, vars: &Value) -> Vec<String> {
    let missed = unknown::missed();
    if missed.is_empty() {
        return missed;
    }
    let Some(keys) = undefined.and_then(path_keys) else {
        // No path to check (e.g. a dynamic subscript): the misses are the best answer.
        return missed;
    };
    let mut current = vars.clone();
    for key in keys {
        if unknown::is_unknown_value(&current) {
            return missed;
        }
        match current.get_item(&key) {
            Ok(next) if !next.is_undefined() => current = next,
            _ => {
                let unknown_name = key.as_str().is_some_and(|k| missed.iter().any(|n| n == k));
                return if unknown_name { missed } else { Vec::new() };
            }
        }
    }
    missed
}

/// `a.b[0]['c']` as the keys `a`, `b`, 0, `c`; None for anything else (a variable subscript).
fn path_keys(path: &str) -> Option<Vec<Value>> {
    let mut keys = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('[') {
            let end = inner.find(']')?;
            let text = inner[..end].trim();
            let key = if let Ok(n) = text.parse::<i64>() {
                Value::from(n)
            } else {
                let quoted = text
                    .strip_prefix('\'')
                    .and_then(|t| t.strip_suffix('\''))
                    .or_else(|| text.strip_prefix('"').and_then(|t| t.strip_suffix('"')))?;
                Value::from(quoted)
            };
            keys.push(key);
            rest = &inner[end + 1..];
        } else {
            let name_part = rest.strip_prefix('.').unwrap_or(rest);
            let end = name_part.find(['.', '[']).unwrap_or(name_part.len());
            let name = &name_part[..end];
            if !is_identifier(name) {
                return None;
            }
            keys.push(Value::from(name));
            rest = &name_part[end..];
        }
    }
    Some(keys)
}

fn is_mandatory_error(error: &Error) -> bool {
    error
        .detail()
        .is_some_and(|d| d.starts_with(MANDATORY_PREFIX))
}

/// The expression in minijinja's "`foo.bar` is undefined" wording.
fn undefined_name_in(detail: &str) -> Option<String> {
    let end = detail.find("` is undefined")?;
    let start = detail[..end].rfind('`')?;
    Some(detail[start + 1..end].to_string())
}

/// The variable a path starts with: `foo` for `foo.bar` and `foo['x']`.
fn root_name(path: &str) -> &str {
    let end = path.find(['.', '[']).unwrap_or(path.len());
    &path[..end]
}

fn location_of(error: &Error) -> String {
    match (error.name(), error.line()) {
        (Some(name), Some(line)) if !name.starts_with('<') => format!(" (in {name}:{line})"),
        (Some(_), Some(line)) if line > 1 => format!(" (line {line})"),
        _ => String::new(),
    }
}

/// The inside of a string that is exactly one `{{ expr }}`.
fn single_expression(text: &str) -> Option<&str> {
    let inner = text.strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    if Templar::is_template(inner) || inner.contains("}}") || inner.contains("%}") {
        return None;
    }
    Some(inner)
}

fn contains_template(value: &Json) -> bool {
    match value {
        Json::String(s) => Templar::is_template(s),
        Json::Array(items) => items.iter().any(contains_template),
        Json::Object(map) => map.values().any(contains_template),
        _ => false,
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// Ansible's boolean words (`bool` filter and conditionals).
fn bool_word(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "yes" | "on" | "1" | "true" | "y" | "t" => Some(true),
        "no" | "off" | "0" | "false" | "n" | "f" | "" => Some(false),
        _ => None,
    }
}

fn controller_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "localhost".into())
}

fn locate_in(search_paths: &[PathBuf], path: &Path) -> Option<PathBuf> {
    if path.is_absolute() {
        return path.is_file().then(|| path.to_path_buf());
    }
    search_paths
        .iter()
        .map(|dir| dir.join(path))
        .chain(std::iter::once(path.to_path_buf()))
        .find(|p| p.is_file())
}

fn load_template_source(search_paths: &[PathBuf], name: &str) -> Result<Option<String>, Error> {
    match locate_in(search_paths, Path::new(name)) {
        Some(path) => std::fs::read_to_string(&path).map(Some).map_err(|e| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("cannot read template {}: {e}", path.display()),
            )
        }),
        None => Ok(None),
    }
}

/// `{% include "x.j2" %}` from a template file looks next to that file first.
fn join_template_path<'s>(name: &'s str, parent: &'s str) -> Cow<'s, str> {
    let parent = Path::new(parent);
    if Path::new(name).is_absolute() || !parent.is_absolute() {
        return Cow::Borrowed(name);
    }
    match parent.parent().map(|dir| dir.join(name)) {
        Some(candidate) if candidate.is_file() => {
            Cow::Owned(candidate.to_string_lossy().into_owned())
        }
        _ => Cow::Borrowed(name),
    }
}

#[cfg(test)]
mod templar_tests;
