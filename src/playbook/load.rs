//! Reads playbook and task files into the model, checking every keyword, module and argument
//! before any host is contacted.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::model::*;
use super::validate;
use crate::error::{did_you_mean, Diagnostic};
use crate::modules::registry;
use crate::yaml::{self, Node, Yaml};

const PLAY_KEYWORDS: &[&str] = &[
    "name",
    "hosts",
    "vars",
    "vars_files",
    "become",
    "become_user",
    "become_method",
    "become_flags",
    "gather_facts",
    "gather_subset",
    "gather_timeout",
    "pre_tasks",
    "tasks",
    "post_tasks",
    "handlers",
    "serial",
    "batch_by",
    "max_fail_percentage",
    "any_errors_fatal",
    "strategy",
    "order",
    "environment",
    "tags",
    "force_handlers",
    "remote_user",
    "connection",
    "no_log",
    "ignore_errors",
    "ignore_unreachable",
    "check_mode",
    "diff",
    "run_once",
    "timeout",
    "collections",
    "module_defaults",
    "port",
    "vars_prompt",
    "roles",
    "throttle",
    "debugger",
    "fact_path",
];

const INHERITED_KEYWORDS: &[&str] = &[
    "when",
    "tags",
    "vars",
    "environment",
    "become",
    "become_user",
    "become_method",
    "become_flags",
    "remote_user",
    "no_log",
    "ignore_errors",
    "ignore_unreachable",
    "run_once",
    "check_mode",
    "diff",
    "delegate_to",
    "any_errors_fatal",
    "connection",
    "timeout",
    "collections",
    "module_defaults",
    "throttle",
    "debugger",
    "port",
];

const TASK_ONLY_KEYWORDS: &[&str] = &[
    "name",
    "loop",
    "loop_control",
    "with_items",
    "with_list",
    "with_dict",
    "register",
    "notify",
    "listen",
    "changed_when",
    "failed_when",
    "until",
    "retries",
    "delay",
    "args",
    "action",
    "local_action",
    "delegate_facts",
    "once_per",
    "async",
    "poll",
];

const BLOCK_KEYWORDS: &[&str] = &["name", "block", "rescue", "always"];

/// Loads a playbook file (and everything it imports statically).
pub fn load_playbook(path: &Path) -> Result<Playbook, Diagnostic> {
    let path = path.to_path_buf();
    if !path.exists() {
        return Err(Diagnostic::parse(
            format!("the playbook: {} could not be found", path.display()),
            None,
        ));
    }
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let mut loader = Loader {
        playbook_dir: dir.clone(),
        import_stack: Vec::new(),
    };
    let plays = loader.playbook_file(&path)?;
    Ok(Playbook { path, dir, plays })
}

/// Loads a tasks file at run time (`include_tasks` with a templated path).
pub fn load_tasks_file(
    path: &Path,
    playbook_dir: &Path,
    inherited: &Inherited,
) -> Result<Vec<TaskItem>, Diagnostic> {
    let mut loader = Loader {
        playbook_dir: playbook_dir.to_path_buf(),
        import_stack: Vec::new(),
    };
    loader.tasks_file(path, inherited, false)
}

struct Loader {
    playbook_dir: PathBuf,
    /// Files being imported, to refuse import cycles.
    import_stack: Vec<PathBuf>,
}

fn err(msg: impl Into<String>, node: &Node) -> Diagnostic {
    Diagnostic::parse(msg, Some(node.span.clone()))
}

fn key_name(k: &Node) -> Result<String, Diagnostic> {
    k.key_string()
        .ok_or_else(|| err("a mapping key must be a plain value", k))
}

fn unknown_keyword(kind: &str, key: &str, node: &Node, known: &[&str]) -> Diagnostic {
    let mut d = err(
        format!("'{key}' is not a valid attribute for a {kind}"),
        node,
    );
    if let Some(s) = did_you_mean(key, known.iter().copied()) {
        d = d.with_hint(format!("did you mean '{s}'?"));
    }
    d
}

impl Loader {
    fn playbook_file(&mut self, path: &Path) -> Result<Vec<Play>, Diagnostic> {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if self.import_stack.contains(&canonical) {
            return Err(Diagnostic::parse(
                format!("{} imports itself", path.display()),
                None,
            ));
        }
        self.import_stack.push(canonical);
        let root = yaml::load_single(path)?;
        let items = match &root.value {
            Yaml::Seq(items) => items,
            Yaml::Null => {
                return Err(err(
                    "the playbook is empty: expected a list of plays",
                    &root,
                ))
            }
            _ => {
                return Err(err(
                    format!(
                        "a playbook must be a list of plays, but this is {}",
                        root.type_name()
                    ),
                    &root,
                ))
            }
        };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut plays = Vec::new();
        for item in items {
            if let Some(target) = item
                .get("import_playbook")
                .or_else(|| item.get("ansible.builtin.import_playbook"))
            {
                let file = target
                    .as_str()
                    .ok_or_else(|| err("import_playbook expects a file name", target))?;
                let resolved = base.join(file);
                if !resolved.exists() {
                    return Err(err(
                        format!(
                            "could not find the imported playbook {}",
                            resolved.display()
                        ),
                        target,
                    ));
                }
                for (k, _) in item.as_map().unwrap_or(&[]) {
                    let key = key_name(k)?;
                    if ![
                        "import_playbook",
                        "ansible.builtin.import_playbook",
                        "vars",
                        "name",
                    ]
                    .contains(&key.as_str())
                    {
                        return Err(unknown_keyword(
                            "import_playbook",
                            &key,
                            k,
                            &["vars", "name"],
                        ));
                    }
                }
                // `vars:` on the import are parameters of the imported plays (they win over the
                // plays' own defaults, and `hosts:` templates see them).
                let params = match item.get("vars") {
                    Some(v) => vars_map(v)?,
                    None => Map::new(),
                };
                for mut play in self.playbook_file(&resolved)? {
                    play.vars.extend(params.clone());
                    plays.push(play);
                }
                continue;
            }
            plays.push(self.play(item)?);
        }
        self.import_stack.pop();
        Ok(plays)
    }

    fn play(&mut self, node: &Node) -> Result<Play, Diagnostic> {
        let entries = node.as_map().ok_or_else(|| {
            err(
                format!("a play must be a mapping, but this is {}", node.type_name()),
                node,
            )
        })?;
        for (k, _) in entries {
            let name = key_name(k)?;
            if !PLAY_KEYWORDS.contains(&name.as_str()) {
                let mut d = unknown_keyword("play", &name, k, PLAY_KEYWORDS);
                if registry::find(&name).is_some() || name == "block" {
                    d = d.with_hint("tasks go under `tasks:`; a play only holds play keywords");
                }
                return Err(d);
            }
        }
        if let Some(roles) = node.get("roles") {
            return Err(err(
                "roles are not supported by orch yet; use import_tasks",
                roles,
            ));
        }
        if let Some(prompt) = node.get("vars_prompt") {
            return Err(err(
                "vars_prompt is not supported; pass values with -e",
                prompt,
            ));
        }
        let hosts_node = node
            .get("hosts")
            .ok_or_else(|| err("this play has no 'hosts' keyword", node))?;
        let hosts = match &hosts_node.value {
            Yaml::Str(s) => s.clone(),
            Yaml::Seq(items) => items
                .iter()
                .map(|i| {
                    i.key_string()
                        .ok_or_else(|| err("hosts entries must be strings", i))
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            Yaml::Int(_) | Yaml::Float(_) => hosts_node.key_string().unwrap_or_default(),
            _ => {
                return Err(err(
                    format!(
                        "'hosts' must be a pattern string or a list, not {}",
                        hosts_node.type_name()
                    ),
                    hosts_node,
                ))
            }
        };
        if hosts.trim().is_empty() {
            return Err(err("'hosts' is empty", hosts_node));
        }
        let name = match node.get("name") {
            Some(n) => scalar_string(n)?,
            None => hosts.clone(),
        };
        let mut defaults = Inherited::default();
        self.inherited_fields(node, &mut defaults, true)?;
        let vars = defaults.vars.clone();
        // Play vars are a precedence level of their own: tasks do not carry them as task vars.
        defaults.vars = Map::new();
        let play_tags = defaults.tags.clone();

        let vars_files = match node.get("vars_files") {
            None => Vec::new(),
            Some(v) => string_list(v)?
                .into_iter()
                .map(|s| (s, v.span.clone()))
                .collect(),
        };
        for (file, span) in &vars_files {
            if !crate::template::Templar::is_template(file)
                && !self.playbook_dir.join(file).exists()
            {
                return Err(Diagnostic::parse(
                    format!("vars file {file} was not found"),
                    Some(span.clone()),
                )
                .with_hint(format!(
                    "paths are relative to the playbook directory {}",
                    self.playbook_dir.display()
                )));
            }
        }
        let gather_facts = match node.get("gather_facts") {
            None => true,
            Some(v) => bool_value(v)?,
        };
        let gather_subset = match node.get("gather_subset") {
            None => Vec::new(),
            Some(v) => string_list(v)?,
        };
        let serial = match node.get("serial") {
            None => Vec::new(),
            Some(v) => serial_steps(v)?,
        };
        let batch_by = match node.get("batch_by") {
            None => None,
            Some(n) => {
                let expr = scalar_string(n)?;
                if !crate::template::is_template(&expr) {
                    return Err(err(
                        "'batch_by' needs a template giving each host's batch, like \"{{ ansible_pve_cluster.id }}\"",
                        n,
                    ));
                }
                if !serial.is_empty() {
                    return Err(err(
                        "'batch_by' and 'serial' cannot be combined in one play",
                        n,
                    ));
                }
                Some(expr)
            }
        };
        let max_fail_percentage = match node.get("max_fail_percentage") {
            None => None,
            Some(v) => Some(percentage(v)?),
        };
        let strategy = match node.get("strategy").map(|n| (n, n.as_str())) {
            None => Strategy::Linear,
            Some((_, Some("linear"))) => Strategy::Linear,
            Some((_, Some("free"))) => Strategy::Free,
            Some((n, _)) => return Err(err("strategy must be 'linear' or 'free'", n)),
        };
        let order = match node.get("order").map(|n| (n, n.as_str())) {
            None | Some((_, Some("inventory"))) => HostOrder::Inventory,
            Some((_, Some("reverse_inventory"))) => HostOrder::ReverseInventory,
            Some((_, Some("sorted"))) => HostOrder::Sorted,
            Some((_, Some("reverse_sorted"))) => HostOrder::ReverseSorted,
            Some((_, Some("shuffle"))) => HostOrder::Shuffle,
            Some((n, _)) => {
                return Err(err("order must be one of inventory, reverse_inventory, sorted, reverse_sorted, shuffle", n))
            }
        };
        let any_errors_fatal = defaults.any_errors_fatal.unwrap_or(false);
        let force_handlers = match node.get("force_handlers") {
            None => false,
            Some(v) => bool_value(v)?,
        };
        let file = node.span.file.clone();
        let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let section = |loader: &mut Loader, key: &str| -> Result<Vec<TaskItem>, Diagnostic> {
            match node.get(key) {
                None => Ok(Vec::new()),
                Some(list) => loader.task_list(list, &defaults, &base, false),
            }
        };
        let pre_tasks = section(self, "pre_tasks")?;
        let tasks = section(self, "tasks")?;
        let post_tasks = section(self, "post_tasks")?;
        let handler_items = section(self, "handlers")?;
        let mut handlers = Vec::new();
        flatten_handlers(&handler_items, &mut handlers)?;
        let known: Vec<&str> = handlers
            .iter()
            .flat_map(|h| h.name.iter().chain(h.listen.iter()).map(String::as_str))
            .collect();
        for section in [&pre_tasks, &tasks, &post_tasks, &handler_items] {
            check_notify(section, &known)?;
        }
        Ok(Play {
            name,
            hosts,
            span: node.span.clone(),
            vars,
            vars_files,
            gather_facts,
            gather_subset,
            pre_tasks,
            tasks,
            post_tasks,
            handlers,
            serial,
            batch_by,
            max_fail_percentage,
            any_errors_fatal,
            force_handlers,
            strategy,
            order,
            tags: play_tags,
            defaults,
        })
    }

    /// Reads the inheritable keywords of a play, block or task into `into` (overriding what the parent set).
    fn inherited_fields(
        &self,
        node: &Node,
        into: &mut Inherited,
        is_play: bool,
    ) -> Result<(), Diagnostic> {
        let Some(entries) = node.as_map() else {
            return Ok(());
        };
        for (k, v) in entries {
            let key = key_name(k)?;
            match key.as_str() {
                "when" if !is_play => into.when.extend(conditions(v)?),
                "tags" => {
                    for t in string_list(v)? {
                        if !into.tags.contains(&t) {
                            into.tags.push(t);
                        }
                    }
                }
                "vars" => {
                    let vars = vars_map(v)?;
                    for (name, value) in vars {
                        validate::check_var_name(&name, v)?;
                        into.vars.insert(name, value);
                    }
                }
                "environment" => into.environment.push(v.to_json()),
                "become" => into.become_enabled = Some(bool_value(v)?),
                "become_user" => into.become_user = Some(scalar_string(v)?),
                "become_method" => {
                    let m = scalar_string(v)?;
                    if !["sudo", "su"].contains(&m.as_str())
                        && !crate::template::Templar::is_template(&m)
                    {
                        return Err(err(
                            format!("become_method '{m}' is not supported: use sudo or su"),
                            v,
                        ));
                    }
                    into.become_method = Some(m)
                }
                "become_flags" => into.become_flags = Some(scalar_string(v)?),
                "remote_user" => into.remote_user = Some(scalar_string(v)?),
                "no_log" => into.no_log = Some(bool_value(v)?),
                "ignore_errors" => into.ignore_errors = Some(bool_value(v)?),
                "ignore_unreachable" => into.ignore_unreachable = Some(bool_value(v)?),
                "run_once" => into.run_once = Some(bool_value(v)?),
                "check_mode" => into.check_mode = Some(v.to_json()),
                "diff" => into.diff = Some(v.to_json()),
                "delegate_to" => into.delegate_to = Some(scalar_string(v)?),
                "any_errors_fatal" => into.any_errors_fatal = Some(bool_value(v)?),
                "connection" => {
                    let c = scalar_string(v)?;
                    if !["ssh", "local", "smart", "paramiko"].contains(&c.as_str()) {
                        return Err(err(
                            format!("connection '{c}' is not supported: use ssh or local"),
                            v,
                        ));
                    }
                    into.connection = Some(c)
                }
                "timeout" => into.timeout = Some(uint_value(v)?),
                _ => {}
            }
        }
        Ok(())
    }

    fn task_list(
        &mut self,
        list: &Node,
        parent: &Inherited,
        base: &Path,
        in_handlers: bool,
    ) -> Result<Vec<TaskItem>, Diagnostic> {
        let items = match &list.value {
            Yaml::Seq(items) => items,
            Yaml::Null => return Ok(Vec::new()),
            _ => {
                return Err(err(
                    format!("expected a list of tasks, but this is {}", list.type_name()),
                    list,
                ))
            }
        };
        let mut out = Vec::new();
        for item in items {
            out.extend(self.task_item(item, parent, base, in_handlers)?);
        }
        Ok(out)
    }

    fn tasks_file(
        &mut self,
        path: &Path,
        parent: &Inherited,
        in_handlers: bool,
    ) -> Result<Vec<TaskItem>, Diagnostic> {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if self.import_stack.contains(&canonical) {
            return Err(Diagnostic::parse(
                format!("{} includes itself", path.display()),
                None,
            ));
        }
        self.import_stack.push(canonical);
        let root = yaml::load_single(path)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let result = self.task_list(&root, parent, &base, in_handlers);
        self.import_stack.pop();
        result
    }

    /// Resolves a tasks file name like Ansible: beside the including file, then in the playbook directory.
    fn resolve_tasks_path(&self, base: &Path, file: &str) -> PathBuf {
        let candidates = [
            base.join(file),
            base.join("tasks").join(file),
            self.playbook_dir.join(file),
        ];
        candidates
            .iter()
            .find(|p| p.exists())
            .cloned()
            .unwrap_or_else(|| base.join(file))
    }

    fn task_item(
        &mut self,
        node: &Node,
        parent: &Inherited,
        base: &Path,
        in_handlers: bool,
    ) -> Result<Vec<TaskItem>, Diagnostic> {
        let entries = node.as_map().ok_or_else(|| {
            err(
                format!("a task must be a mapping, but this is {}", node.type_name()),
                node,
            )
        })?;
        let has = |k: &str| entries.iter().any(|(key, _)| key.as_str() == Some(k));
        if has("block") {
            return self
                .block(node, parent, base, in_handlers)
                .map(|b| vec![TaskItem::Block(Arc::new(b))]);
        }
        for (include_key, is_static) in [
            ("import_tasks", true),
            ("ansible.builtin.import_tasks", true),
            ("include_tasks", false),
            ("ansible.builtin.include_tasks", false),
        ] {
            if let Some(v) = node.get(include_key) {
                return self.include(node, v, parent, base, is_static, in_handlers);
            }
        }
        if let Some(v) = node
            .get("meta")
            .or_else(|| node.get("ansible.builtin.meta"))
        {
            return self
                .meta(node, v, parent)
                .map(|m| vec![TaskItem::Meta(Arc::new(m))]);
        }
        self.task(node, parent, in_handlers)
            .map(|t| vec![TaskItem::Task(Arc::new(t))])
    }

    fn block(
        &mut self,
        node: &Node,
        parent: &Inherited,
        base: &Path,
        in_handlers: bool,
    ) -> Result<Block, Diagnostic> {
        let entries = node.as_map().unwrap_or(&[]);
        for (k, _) in entries {
            let key = key_name(k)?;
            if !BLOCK_KEYWORDS.contains(&key.as_str())
                && !INHERITED_KEYWORDS.contains(&key.as_str())
            {
                let known: Vec<&str> = BLOCK_KEYWORDS
                    .iter()
                    .chain(INHERITED_KEYWORDS)
                    .copied()
                    .collect();
                let mut d = unknown_keyword("block", &key, k, &known);
                if registry::find(&key).is_some() {
                    d = d.with_hint(
                        "a block cannot also be a task: move the module into the block's list",
                    );
                }
                return Err(d);
            }
        }
        let mut inherited = parent.clone();
        self.inherited_fields(node, &mut inherited, false)?;
        let list = |loader: &mut Loader, key: &str| -> Result<Vec<TaskItem>, Diagnostic> {
            match node.get(key) {
                None => Ok(Vec::new()),
                Some(l) => loader.task_list(l, &inherited, base, in_handlers),
            }
        };
        let block = list(self, "block")?;
        let rescue = list(self, "rescue")?;
        let always = list(self, "always")?;
        let name = node.get("name").map(scalar_string).transpose()?;
        Ok(Block {
            name,
            span: node.span.clone(),
            block,
            rescue,
            always,
        })
    }

    fn include(
        &mut self,
        node: &Node,
        target: &Node,
        parent: &Inherited,
        base: &Path,
        is_static: bool,
        in_handlers: bool,
    ) -> Result<Vec<TaskItem>, Diagnostic> {
        let kind = if is_static {
            "import_tasks"
        } else {
            "include_tasks"
        };
        let file = match &target.value {
            Yaml::Str(s) => s.clone(),
            Yaml::Map(_) => target
                .get("file")
                .and_then(Node::as_str)
                .map(str::to_string)
                .ok_or_else(|| err(format!("{kind} needs a 'file'"), target))?,
            _ => return Err(err(format!("{kind} expects a file name"), target)),
        };
        let mut inherited = parent.clone();
        let mut loop_items = None;
        let mut loop_control = LoopControl::default();
        for (k, v) in node.as_map().unwrap_or(&[]) {
            let key = key_name(k)?;
            let key = key.as_str();
            if key == kind || key == format!("ansible.builtin.{kind}") || key == "name" {
                continue;
            }
            if ["loop", "with_items", "with_list", "with_dict"].contains(&key) && !is_static {
                loop_items = Some(v.to_json());
                loop_control.kind = loop_kind(key);
                continue;
            }
            if key == "loop_control" && !is_static {
                loop_control = parse_loop_control(v, loop_control.kind)?;
                continue;
            }
            if !INHERITED_KEYWORDS.contains(&key) {
                return Err(unknown_keyword(kind, key, k, INHERITED_KEYWORDS));
            }
        }
        self.inherited_fields(node, &mut inherited, false)?;
        let name = node.get("name").map(scalar_string).transpose()?;
        if is_static {
            if crate::template::Templar::is_template(&file) {
                return Err(err(
                    "import_tasks is static: its file name cannot use variables; use include_tasks",
                    target,
                ));
            }
            let path = self.resolve_tasks_path(base, &file);
            if !path.exists() {
                return Err(err(
                    format!("could not find the tasks file {}", path.display()),
                    target,
                ));
            }
            return self.tasks_file(&path, &inherited, in_handlers);
        }
        let preloaded = if crate::template::Templar::is_template(&file) {
            None
        } else {
            let path = self.resolve_tasks_path(base, &file);
            if !path.exists() {
                return Err(err(
                    format!("could not find the tasks file {}", path.display()),
                    target,
                ));
            }
            // Parsed now with the include's own settings left out: they are applied when it runs.
            Some(Arc::new(self.tasks_file(
                &path,
                &Inherited::default(),
                in_handlers,
            )?))
        };
        Ok(vec![TaskItem::Include(Arc::new(Include {
            name,
            file,
            span: node.span.clone(),
            base_dir: base.to_path_buf(),
            common: inherited,
            loop_items,
            loop_control,
            preloaded,
        }))])
    }

    fn meta(
        &mut self,
        node: &Node,
        value: &Node,
        parent: &Inherited,
    ) -> Result<MetaTask, Diagnostic> {
        let action = match value.as_str() {
            Some("flush_handlers") => MetaAction::FlushHandlers,
            Some("end_play") => MetaAction::EndPlay,
            Some("end_host") => MetaAction::EndHost,
            Some("end_batch") => MetaAction::EndBatch,
            Some("clear_facts") => MetaAction::ClearFacts,
            Some("noop") => MetaAction::Noop,
            Some("clear_host_errors") => MetaAction::ClearHostErrors,
            Some("refresh_inventory") => MetaAction::RefreshInventory,
            _ => {
                return Err(err(
                    "meta expects one of flush_handlers, end_play, end_host, end_batch, clear_facts, clear_host_errors, noop",
                    value,
                ))
            }
        };
        let mut common = parent.clone();
        self.inherited_fields(node, &mut common, false)?;
        Ok(MetaTask {
            action,
            span: node.span.clone(),
            common,
        })
    }

    fn task(
        &mut self,
        node: &Node,
        parent: &Inherited,
        in_handlers: bool,
    ) -> Result<Task, Diagnostic> {
        let entries = node.as_map().unwrap_or(&[]);
        let mut action: Option<(String, &Node, &Node)> = None;
        for (k, v) in entries {
            let key = key_name(k)?;
            if INHERITED_KEYWORDS.contains(&key.as_str())
                || TASK_ONLY_KEYWORDS.contains(&key.as_str())
            {
                continue;
            }
            if key.starts_with("with_") {
                return Err(err(format!("'{key}' is not supported: use 'loop'"), k));
            }
            // A key that is no module is a mistyped keyword far more often than a missing module.
            let is_module = registry::find(&key).is_some();
            if !is_module {
                let keywords: Vec<&str> = INHERITED_KEYWORDS
                    .iter()
                    .chain(TASK_ONLY_KEYWORDS)
                    .copied()
                    .collect();
                if let Some(s) = did_you_mean(&key, keywords.iter().copied()) {
                    return Err(
                        err(format!("'{key}' is not a valid attribute for a task"), k)
                            .with_hint(format!("did you mean '{s}'?")),
                    );
                }
            }
            if let Some((first, _, _)) = &action {
                if registry::find(first).is_some() && !is_module {
                    return Err(unknown_keyword("task", &key, k, &[]));
                }
                if is_module && registry::find(first).is_some() {
                    return Err(err(
                        format!("conflicting action statements: {first}, {key}"),
                        k,
                    ));
                }
                if is_module {
                    let first_node = entries
                        .iter()
                        .find(|(fk, _)| fk.as_str() == Some(first.as_str()))
                        .map(|(fk, _)| fk)
                        .unwrap_or(k);
                    return Err(unknown_keyword("task", first, first_node, &[]));
                }
                return Err(err(
                    format!("conflicting action statements: {first}, {key}"),
                    k,
                ));
            }
            action = Some((key, k, v));
        }
        let mut extra_args: Option<&Node> = node.get("args");
        let (action_name, key_node, value_node) = match action {
            Some(a) => a,
            None => match node.get("action").or_else(|| node.get("local_action")) {
                Some(v) => {
                    let (name, _) = split_action_string(v)?;
                    (name, v, v)
                }
                None => {
                    return Err(err("this task has no module: expected one of the modules orch knows (command, copy, …)", node)
                        .with_hint("a task needs exactly one module key besides keywords like name, when, register"))
                }
            },
        };
        let module = match registry::find(&action_name) {
            Some(m) => m,
            None => {
                let mut d = err(format!("couldn't resolve module/action '{action_name}'. This often indicates a misspelling, missing collection, or incorrect module path."), key_node);
                if let Some(s) = did_you_mean(&action_name, registry::names()) {
                    d = d.with_hint(format!("did you mean '{s}'?"));
                }
                return Err(d);
            }
        };
        let spec = module.spec();
        // Arguments: the module's value (mapping or free-form string), then `args:`.
        let mut args = Map::new();
        let mut dynamic_args = false;
        let value_is_action_string =
            node.get("action").is_some() || node.get("local_action").is_some();
        if value_is_action_string && std::ptr::eq(key_node, value_node) {
            let (_, rest) = split_action_string(value_node)?;
            args = free_form_args(&rest, spec.free_form, value_node)?;
        } else {
            match &value_node.value {
                Yaml::Null => {}
                Yaml::Map(_) => {
                    for (k, v) in value_node.as_map().unwrap_or(&[]) {
                        args.insert(key_name(k)?, v.to_json());
                    }
                }
                Yaml::Str(s) => args = free_form_args(s, spec.free_form, value_node)?,
                _ if spec.free_form.is_some() => {
                    args = free_form_args(
                        &value_node.key_string().unwrap_or_default(),
                        spec.free_form,
                        value_node,
                    )?
                }
                _ => {
                    return Err(err(
                        format!(
                            "the arguments of {action_name} must be a mapping, not {}",
                            value_node.type_name()
                        ),
                        value_node,
                    ))
                }
            }
        }
        if let Some(extra) = extra_args.take() {
            match &extra.value {
                Yaml::Map(m) => {
                    for (k, v) in m {
                        args.entry(key_name(k)?).or_insert_with(|| v.to_json());
                    }
                }
                Yaml::Str(s) if crate::template::Templar::is_template(s) => dynamic_args = true,
                _ => return Err(err("'args' must be a mapping", extra)),
            }
        }
        let args = validate::module_args(module, &action_name, args, value_node, dynamic_args)?;

        let mut common = parent.clone();
        self.inherited_fields(node, &mut common, false)?;
        if node.get("local_action").is_some() {
            common.delegate_to = Some("localhost".into());
        }
        let name = node.get("name").map(scalar_string).transpose()?;
        let mut loop_items = None;
        let mut loop_control = LoopControl::default();
        for key in ["loop", "with_items", "with_list", "with_dict"] {
            if let Some(v) = node.get(key) {
                if loop_items.is_some() {
                    return Err(err("a task can have only one loop", v));
                }
                match &v.value {
                    Yaml::Seq(_) | Yaml::Str(_) => {}
                    Yaml::Map(_) if key == "with_dict" => {}
                    _ => {
                        return Err(err(
                            format!(
                                "'{key}' must be a list or a template giving one, not {}",
                                v.type_name()
                            ),
                            v,
                        ))
                    }
                }
                loop_items = Some(v.to_json());
                loop_control.kind = loop_kind(key);
            }
        }
        if let Some(lc) = node.get("loop_control") {
            loop_control = parse_loop_control(lc, loop_control.kind)?;
        }
        let register = match node.get("register") {
            None => None,
            Some(r) => {
                let name = scalar_string(r)?;
                validate::check_var_name(&name, r)?;
                Some(name)
            }
        };
        let notify = match node.get("notify") {
            None => Vec::new(),
            Some(n) => string_list(n)?,
        };
        let listen = match node.get("listen") {
            None => Vec::new(),
            Some(n) if in_handlers => string_list(n)?,
            Some(n) => return Err(err("'listen' is only valid on handlers", n)),
        };
        let changed_when = node
            .get("changed_when")
            .map(conditions)
            .transpose()?
            .unwrap_or_default();
        let failed_when = node
            .get("failed_when")
            .map(conditions)
            .transpose()?
            .unwrap_or_default();
        let until = match node.get("until") {
            None => None,
            Some(u) => {
                let mut c = conditions(u)?;
                if c.len() != 1 {
                    return Err(err("'until' takes one condition", u));
                }
                c.pop()
            }
        };
        let retries = node.get("retries").map(int_or_template).transpose()?;
        let delay = node.get("delay").map(int_or_template).transpose()?;
        if node.get("async").is_some() {
            return Err(err(
                "'async' is not supported by orch: tasks already run in parallel across hosts",
                node.get("async").unwrap_or(node),
            ));
        }
        let once_per = match node.get("once_per") {
            None => None,
            Some(n) => {
                let expr = scalar_string(n)?;
                if in_handlers {
                    return Err(err("'once_per' is not supported on handlers", n));
                }
                if !crate::template::is_template(&expr) {
                    return Err(err(
                        "'once_per' needs a template giving each host's group, like \"{{ ansible_pve_cluster.id }}\"",
                        n,
                    ));
                }
                Some(expr)
            }
        };
        let task = Task {
            name,
            module: module.name().to_string(),
            action: action_name,
            args,
            span: node.span.clone(),
            file: node.span.file.clone(),
            common,
            loop_items,
            loop_control,
            register,
            notify,
            listen,
            changed_when,
            failed_when,
            until,
            retries,
            delay,
            once_per,
        };
        validate::task_templates(&task)?;
        Ok(task)
    }
}

fn flatten_handlers(items: &[TaskItem], out: &mut Vec<Arc<Task>>) -> Result<(), Diagnostic> {
    for item in items {
        match item {
            TaskItem::Task(t) => out.push(t.clone()),
            TaskItem::Block(b) => {
                flatten_handlers(&b.block, out)?;
                flatten_handlers(&b.rescue, out)?;
                flatten_handlers(&b.always, out)?;
            }
            TaskItem::Include(i) => {
                return Err(Diagnostic::parse(
                    "include_tasks in handlers is not supported; use import_tasks",
                    Some(i.span.clone()),
                ))
            }
            TaskItem::Meta(m) => {
                return Err(Diagnostic::parse(
                    "meta tasks are not supported as handlers",
                    Some(m.span.clone()),
                ))
            }
        }
    }
    let mut names = HashSet::new();
    for h in out.iter() {
        if let Some(n) = &h.name {
            if !names.insert(n.clone()) {
                return Err(Diagnostic::parse(
                    format!("two handlers are named '{n}'"),
                    Some(h.span.clone()),
                ));
            }
        }
    }
    Ok(())
}

/// Every notified name must be a handler's name or `listen` topic (Ansible only finds out at run time).
fn check_notify(items: &[TaskItem], known: &[&str]) -> Result<(), Diagnostic> {
    for item in items {
        match item {
            TaskItem::Task(t) => {
                for n in &t.notify {
                    if !known.contains(&n.as_str()) && !crate::template::Templar::is_template(n) {
                        let mut d = Diagnostic::parse(
                            format!("The requested handler '{n}' was not found in either the main handlers list nor in the listening handlers list"),
                            Some(t.span.clone()),
                        );
                        if let Some(s) = did_you_mean(n, known.iter().copied()) {
                            d = d.with_hint(format!("did you mean '{s}'?"));
                        }
                        return Err(d);
                    }
                }
            }
            TaskItem::Block(b) => {
                check_notify(&b.block, known)?;
                check_notify(&b.rescue, known)?;
                check_notify(&b.always, known)?;
            }
            TaskItem::Include(i) => {
                if let Some(pre) = &i.preloaded {
                    check_notify(pre, known)?;
                }
            }
            TaskItem::Meta(_) => {}
        }
    }
    Ok(())
}

fn loop_kind(key: &str) -> LoopKind {
    match key {
        "with_items" => LoopKind::Items,
        "with_dict" => LoopKind::Dict,
        _ => LoopKind::List,
    }
}

fn parse_loop_control(node: &Node, kind: LoopKind) -> Result<LoopControl, Diagnostic> {
    let mut lc = LoopControl {
        kind,
        ..LoopControl::default()
    };
    let entries = node
        .as_map()
        .ok_or_else(|| err("loop_control must be a mapping", node))?;
    for (k, v) in entries {
        match key_name(k)?.as_str() {
            "loop_var" => {
                lc.loop_var = scalar_string(v)?;
                validate::check_var_name(&lc.loop_var, v)?;
            }
            "index_var" => lc.index_var = Some(scalar_string(v)?),
            "label" => lc.label = Some(scalar_string(v)?),
            "pause" => {
                lc.pause = Some(match &v.value {
                    Yaml::Int(i) => *i as f64,
                    Yaml::Float(f) => *f,
                    _ => return Err(err("loop_control.pause must be a number of seconds", v)),
                })
            }
            "extended" => lc.extended = bool_value(v)?,
            other => {
                return Err(unknown_keyword(
                    "loop_control",
                    other,
                    k,
                    &["loop_var", "index_var", "label", "pause", "extended"],
                ))
            }
        }
    }
    Ok(lc)
}

/// `action: copy src=a dest=b` → ("copy", "src=a dest=b").
fn split_action_string(node: &Node) -> Result<(String, String), Diagnostic> {
    match &node.value {
        Yaml::Str(s) => {
            let s = s.trim();
            let (name, rest) = s.split_once(char::is_whitespace).unwrap_or((s, ""));
            Ok((name.to_string(), rest.trim().to_string()))
        }
        Yaml::Map(_) => {
            let module = node
                .get("module")
                .and_then(Node::as_str)
                .ok_or_else(|| err("action needs a 'module' key", node))?;
            Ok((module.to_string(), String::new()))
        }
        _ => Err(err(
            "action must be a string like 'copy src=a dest=b'",
            node,
        )),
    }
}

/// Parses `key=value` pairs of a module's string form; with a free-form module, leading text that is
/// not `k=v` (and any later non-option word) becomes the free-form argument, as in Ansible.
fn free_form_args(
    text: &str,
    free_form: Option<&str>,
    node: &Node,
) -> Result<Map<String, Value>, Diagnostic> {
    let words = split_args(text).map_err(|m| err(m, node))?;
    let mut args = Map::new();
    let mut free = Vec::new();
    for (raw, word) in words {
        match word.split_once('=') {
            Some((k, v))
                if !k.is_empty()
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && (free_form.is_none() || FREE_FORM_OPTIONS.contains(&k)) =>
            {
                args.insert(k.to_string(), Value::String(v.to_string()));
            }
            _ => free.push(raw),
        }
    }
    match free_form {
        Some(name) if !free.is_empty() => {
            args.insert(name.to_string(), Value::String(free.join(" ")));
        }
        Some(_) => {}
        None if !free.is_empty() => {
            return Err(err(
                format!(
                    "this module takes key=value arguments, not free text: '{}'",
                    free.join(" ")
                ),
                node,
            ))
        }
        None => {}
    }
    Ok(args)
}

/// Options Ansible recognises inside the free-form string of command/shell.
const FREE_FORM_OPTIONS: &[&str] = &[
    "creates",
    "removes",
    "chdir",
    "executable",
    "stdin",
    "warn",
    "stdin_add_newline",
    "strip_empty_ends",
];

/// Splits on whitespace outside quotes and `{{ }}`, returning (raw text, unquoted value) pairs.
fn split_args(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut raw = String::new();
    let mut value = String::new();
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if quote.is_none() && depth == 0 && c.is_whitespace() {
            if !raw.is_empty() {
                out.push((std::mem::take(&mut raw), std::mem::take(&mut value)));
            }
            i += 1;
            continue;
        }
        if (c == '{' || c == '}') && i + 1 < chars.len() && chars[i + 1] == c {
            depth = if c == '{' {
                depth + 1
            } else {
                depth.saturating_sub(1)
            };
            raw.push(c);
            raw.push(c);
            value.push(c);
            value.push(c);
            i += 2;
            continue;
        }
        match quote {
            Some(q) if c == q && depth == 0 => {
                quote = None;
                raw.push(c);
            }
            None if (c == '"' || c == '\'') && depth == 0 => {
                quote = Some(c);
                raw.push(c);
            }
            _ => {
                if c == '\\' && quote == Some('"') && i + 1 < chars.len() {
                    raw.push(c);
                    i += 1;
                    raw.push(chars[i]);
                    value.push(chars[i]);
                    i += 1;
                    continue;
                }
                raw.push(c);
                value.push(c);
            }
        }
        i += 1;
    }
    if quote.is_some() {
        return Err("unbalanced quotes in the module's arguments".into());
    }
    if !raw.is_empty() {
        out.push((raw, value));
    }
    Ok(out)
}

pub(super) fn scalar_string(node: &Node) -> Result<String, Diagnostic> {
    match &node.value {
        Yaml::Str(s) => Ok(s.clone()),
        Yaml::Int(_) | Yaml::Float(_) | Yaml::Bool(_) => Ok(node.key_string().unwrap_or_default()),
        _ => Err(err(
            format!("expected a string, but this is {}", node.type_name()),
            node,
        )),
    }
}

fn string_list(node: &Node) -> Result<Vec<String>, Diagnostic> {
    match &node.value {
        Yaml::Seq(items) => items.iter().map(scalar_string).collect(),
        Yaml::Str(s) => Ok(s
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()),
        Yaml::Null => Ok(Vec::new()),
        _ => Ok(vec![scalar_string(node)?]),
    }
}

fn conditions(node: &Node) -> Result<Vec<Condition>, Diagnostic> {
    let one = |n: &Node| -> Result<Condition, Diagnostic> {
        let expr = match &n.value {
            Yaml::Bool(b) => if *b { "True" } else { "False" }.to_string(),
            Yaml::Str(s) => s.clone(),
            Yaml::Int(_) | Yaml::Float(_) => n.key_string().unwrap_or_default(),
            _ => {
                return Err(err(
                    format!(
                        "a condition must be a string or a boolean, not {}",
                        n.type_name()
                    ),
                    n,
                ))
            }
        };
        validate::check_expression(&expr, n)?;
        Ok(Condition {
            expr,
            span: n.span.clone(),
        })
    };
    match &node.value {
        Yaml::Seq(items) => items.iter().map(one).collect(),
        _ => Ok(vec![one(node)?]),
    }
}

fn bool_value(node: &Node) -> Result<bool, Diagnostic> {
    match &node.value {
        Yaml::Bool(b) => Ok(*b),
        Yaml::Str(s) => crate::modules::args::to_bool(&Value::String(s.clone())).ok_or_else(|| {
            err(
                format!("expected a boolean (yes/no, true/false), got '{s}'"),
                node,
            )
        }),
        Yaml::Int(0) => Ok(false),
        Yaml::Int(1) => Ok(true),
        _ => Err(err(
            format!(
                "expected a boolean (yes/no, true/false), but this is {}",
                node.type_name()
            ),
            node,
        )),
    }
}

fn uint_value(node: &Node) -> Result<u64, Diagnostic> {
    match &node.value {
        Yaml::Int(i) if *i >= 0 => Ok(*i as u64),
        Yaml::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| err(format!("expected a whole number, got '{s}'"), node)),
        _ => Err(err(
            format!("expected a whole number, but this is {}", node.type_name()),
            node,
        )),
    }
}

fn int_or_template(node: &Node) -> Result<Value, Diagnostic> {
    match &node.value {
        Yaml::Int(i) if *i >= 0 => Ok(Value::from(*i)),
        Yaml::Float(f) if *f >= 0.0 => Ok(Value::from(*f)),
        Yaml::Str(s) if crate::template::Templar::is_template(s) => Ok(Value::String(s.clone())),
        Yaml::Str(s) if s.trim().parse::<f64>().is_ok() => Ok(Value::String(s.clone())),
        _ => Err(err(
            format!(
                "expected a number of seconds or retries, but this is {}",
                node.type_name()
            ),
            node,
        )),
    }
}

fn vars_map(node: &Node) -> Result<Map<String, Value>, Diagnostic> {
    match &node.value {
        Yaml::Map(_) => match node.to_json() {
            Value::Object(m) => Ok(m),
            _ => Ok(Map::new()),
        },
        Yaml::Null => Ok(Map::new()),
        Yaml::Seq(items) => {
            let mut out = Map::new();
            for i in items {
                out.extend(vars_map(i)?);
            }
            Ok(out)
        }
        _ => Err(err(
            format!("'vars' must be a mapping, but this is {}", node.type_name()),
            node,
        )),
    }
}

fn percentage(node: &Node) -> Result<f64, Diagnostic> {
    let value = match &node.value {
        Yaml::Int(i) => *i as f64,
        Yaml::Float(f) => *f,
        Yaml::Str(s) => s
            .trim()
            .trim_end_matches('%')
            .parse()
            .map_err(|_| err(format!("expected a percentage, got '{s}'"), node))?,
        _ => {
            return Err(err(
                "max_fail_percentage must be a number from 0 to 100",
                node,
            ))
        }
    };
    if !(0.0..=100.0).contains(&value) {
        return Err(err(
            "max_fail_percentage must be a number from 0 to 100",
            node,
        ));
    }
    Ok(value)
}

fn serial_steps(node: &Node) -> Result<Vec<SerialStep>, Diagnostic> {
    let one = |n: &Node| -> Result<SerialStep, Diagnostic> {
        match &n.value {
            Yaml::Int(i) if *i > 0 => Ok(SerialStep::Count(*i as u64)),
            Yaml::Str(s) => {
                let t = s.trim();
                if let Some(p) = t.strip_suffix('%') {
                    match p.trim().parse::<f64>() {
                        Ok(v) if v > 0.0 && v <= 100.0 => Ok(SerialStep::Percent(v)),
                        _ => Err(err(
                            format!("serial percentage '{s}' must be between 0% and 100%"),
                            n,
                        )),
                    }
                } else {
                    match t.parse::<u64>() {
                        Ok(v) if v > 0 => Ok(SerialStep::Count(v)),
                        _ => Err(err(format!("serial value '{s}' must be a positive number or a percentage like \"30%\""), n)),
                    }
                }
            }
            _ => Err(err(
                "serial must be a positive number, a percentage like \"30%\", or a list of those",
                n,
            )),
        }
    };
    match &node.value {
        Yaml::Seq(items) if items.is_empty() => Err(err("serial must not be an empty list", node)),
        Yaml::Seq(items) => items.iter().map(one).collect(),
        _ => Ok(vec![one(node)?]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_args_respects_quotes_and_templates() {
        let parts =
            split_args(r#"echo "a b" {{ x | default('y z') }} chdir=/tmp"#).expect("splits");
        let values: Vec<_> = parts.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            values,
            vec!["echo", "a b", "{{ x | default('y z') }}", "chdir=/tmp"]
        );
    }

    #[test]
    fn free_form_keeps_options_apart() {
        let node = yaml::load_str("x", Path::new("t")).expect("yaml").remove(0);
        let args = free_form_args("touch /tmp/x creates=/tmp/x", Some("_raw_params"), &node)
            .expect("parses");
        assert_eq!(
            args.get("_raw_params"),
            Some(&Value::String("touch /tmp/x".into()))
        );
        assert_eq!(args.get("creates"), Some(&Value::String("/tmp/x".into())));
    }
}
