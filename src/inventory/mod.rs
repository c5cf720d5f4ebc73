//! Ansible inventories, loaded unchanged: INI and YAML files, directories of them, comma-separated
//! host lists, and the `group_vars/` / `host_vars/` directories next to them and next to playbooks.
//!
//! The semantics follow ansible-core 2.19 (checked against `ansible-inventory` output):
//! - Every host is in `all`. A host that ends up in no group other than `all` is in `ungrouped`;
//!   a host listed at the top of an INI file *and* in a group is removed from `ungrouped`.
//!   Groups without a parent become children of `all`.
//! - INI values (`[g:vars]` lines and inline host vars alike) go through Python's `literal_eval`:
//!   `5` → int, `True` → bool, `[1, 2]` → list, `'a b'` → `a b`; anything else (`yes`, `true`,
//!   `0755`, `hello world`) stays a string. Inline host vars are shell-split first, so
//!   `x='a b'` gives `a b` and `l="[1, 2]"` gives a list.
//! - `host:port` sets `ansible_port` when the host is first defined (later definitions do not change it).
//!
//! Variable precedence for one host, lowest first (Ansible's `VariableManager.get_vars` with the
//! default `precedence` setting; "groups" means the host's groups except `all`, sorted by depth, then
//! `ansible_group_priority`, then name; every layer replaces whole top-level keys, no deep merge):
//!  1. `all` group vars from inventory files
//!  2. other groups' vars from inventory files
//!  3. inventory-adjacent `group_vars/all`
//!  4. playbook-adjacent `group_vars/all` (directories given to [`Inventory::add_vars_dir`], in call order)
//!  5. inventory-adjacent `group_vars/<group>` (per source in order, then per group in order)
//!  6. playbook-adjacent `group_vars/<group>`
//!  7. host vars from inventory files (after `inventory_file` / `inventory_dir`)
//!  8. inventory-adjacent `host_vars/<host>`
//!  9. playbook-adjacent `host_vars/<host>`
//!
//! Note for callers: playbook `group_vars/all` (4) ranks *below* inventory `group_vars/<group>` (5),
//! exactly as in Ansible. `group_names` includes `ungrouped` for ungrouped hosts, as in Ansible.
//!
//! Where orch is stricter than Ansible: a source that fails to parse is an error (Ansible warns and
//! skips it), and a source path that does not exist is an error.

#![allow(dead_code)]

mod export;
mod hostnames;
mod ini;
mod pattern;
mod py_literal;
mod vars_dirs;
mod yaml;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::error::{Diagnostic, Span};

#[allow(unused_imports)] // used by the `orch inventory` command
pub use export::to_ansible_json;
pub use pattern::Selection;
use vars_dirs::VarsDir;

/// Names Ansible treats as the controller itself (`C.LOCALHOST`).
pub const LOCALHOST_NAMES: [&str; 3] = ["127.0.0.1", "localhost", "::1"];

/// Host variables that `ansible-inventory` never prints.
const INTERNAL_HOST_VARS: [&str; 2] = ["inventory_file", "inventory_dir"];

#[derive(Clone, Debug, PartialEq)]
pub struct Host {
    pub name: String,
    /// Variables set on the host by inventory sources (not group_vars/host_vars files).
    pub vars: Map<String, Value>,
    /// Where the host was first defined.
    pub span: Option<Span>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub name: String,
    /// Hosts listed directly in this group, in definition order.
    pub hosts: Vec<String>,
    /// Child groups, in definition order.
    pub children: Vec<String>,
    /// Variables set on the group by inventory sources (not group_vars files).
    pub vars: Map<String, Value>,
    /// Where the group was first declared (`None` for the implicit `all` and `ungrouped`).
    pub span: Option<Span>,
    /// `ansible_group_priority` (default 1): orders groups of equal depth when merging vars.
    pub priority: i64,
}

impl Group {
    fn new(name: &str, span: Option<Span>) -> Self {
        Group {
            name: name.to_string(),
            hosts: Vec::new(),
            children: Vec::new(),
            vars: Map::new(),
            span,
            priority: 1,
        }
    }
}

/// The source a host was first found in: Ansible's `inventory_file` / `inventory_dir`.
#[derive(Clone, Debug, Default, PartialEq)]
struct HostOrigin {
    file: Option<String>,
    dir: Option<String>,
}

/// Facts derived from the group graph, rebuilt whenever hosts or groups change.
#[derive(Clone, Debug, Default)]
struct Index {
    /// For each host: its groups except `all`, transitively, in var-merge order.
    host_groups: HashMap<String, Vec<String>>,
    /// For each group: its hosts including those of descendant groups, in Ansible's order.
    group_hosts: IndexMap<String, Vec<String>>,
}

#[derive(Clone, Debug)]
pub struct Inventory {
    hosts: IndexMap<String, Host>,
    groups: IndexMap<String, Group>,
    origins: HashMap<String, HostOrigin>,
    /// `group_vars/`/`host_vars/` next to the inventory sources, in source order.
    inventory_vars: Vec<VarsDir>,
    /// `group_vars/`/`host_vars/` next to playbooks, in the order they were added.
    playbook_vars: Vec<VarsDir>,
    /// Source being parsed; new hosts record it as their origin.
    current_origin: HostOrigin,
    index: Index,
    /// Things Ansible would warn about while loading (skipped YAML keys, host/group name clashes, …).
    pub warnings: Vec<String>,
}

impl Default for Inventory {
    fn default() -> Self {
        Self::empty()
    }
}

impl Inventory {
    /// An inventory with only the implicit `all` and `ungrouped` groups.
    pub fn empty() -> Self {
        let mut groups = IndexMap::new();
        let mut all = Group::new("all", None);
        all.children.push("ungrouped".into());
        groups.insert("all".to_string(), all);
        groups.insert("ungrouped".to_string(), Group::new("ungrouped", None));
        let mut inv = Inventory {
            hosts: IndexMap::new(),
            groups,
            origins: HashMap::new(),
            inventory_vars: Vec::new(),
            playbook_vars: Vec::new(),
            current_origin: HostOrigin::default(),
            index: Index::default(),
            warnings: Vec::new(),
        };
        inv.rebuild_index();
        inv
    }

    /// Loads inventory sources in order: files, directories or comma-separated host lists
    /// (`"h1,h2,"`: anything with a comma that is not an existing path). No sources gives an
    /// empty inventory where only the implicit localhost can be selected.
    pub fn load(sources: &[String]) -> Result<Inventory, Diagnostic> {
        let mut inv = Inventory::empty();
        let mut vars_dirs: Vec<PathBuf> = Vec::new();
        for source in sources {
            let trimmed = source.trim();
            if trimmed.is_empty() {
                continue;
            }
            if trimmed.contains(',') && !Path::new(trimmed).exists() {
                inv.parse_host_list(trimmed);
                continue;
            }
            let path = absolute_path(trimmed);
            if !path.exists() {
                return Err(Diagnostic::parse(format!("inventory source {} does not exist", path.display()), None)
                    .with_hint("give an inventory file, a directory, or a comma-separated host list such as `host1,host2,`"));
            }
            inv.parse_path(&path)?;
            let dir = if path.is_dir() {
                path.clone()
            } else {
                path.parent().map(Path::to_path_buf).unwrap_or_default()
            };
            if !vars_dirs.contains(&dir) {
                vars_dirs.push(dir);
            }
        }
        inv.current_origin = HostOrigin::default();
        inv.reconcile();
        for dir in vars_dirs {
            let layer = inv.load_vars_dir(&dir)?;
            inv.inventory_vars.push(layer);
        }
        Ok(inv)
    }

    /// Also reads `group_vars/` and `host_vars/` under `dir` (a playbook's directory). Directories
    /// added later win over earlier ones; see the module docs for where they rank.
    pub fn add_vars_dir(&mut self, dir: &Path) -> Result<(), Diagnostic> {
        let layer = self.load_vars_dir(&absolute_path(&dir.to_string_lossy()))?;
        self.playbook_vars.push(layer);
        Ok(())
    }

    fn load_vars_dir(&mut self, dir: &Path) -> Result<VarsDir, Diagnostic> {
        let groups: Vec<&str> = self.groups.keys().map(String::as_str).collect();
        let mut hosts: Vec<&str> = self.hosts.keys().map(String::as_str).collect();
        hosts.extend(
            LOCALHOST_NAMES
                .iter()
                .filter(|n| !self.hosts.contains_key(**n)),
        );
        let (layer, warnings) = VarsDir::load(dir, &groups, &hosts)?;
        self.warnings.extend(warnings);
        Ok(layer)
    }

    fn parse_path(&mut self, path: &Path) -> Result<(), Diagnostic> {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| {
                    Diagnostic::parse(
                        format!("cannot read inventory directory {}: {e}", path.display()),
                        None,
                    )
                })?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for entry in entries {
                let name = entry
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if is_ignored_inventory_entry(&name) {
                    continue;
                }
                self.parse_path(&entry).map_err(|mut e| {
                    if entry.is_dir() {
                        return e;
                    }
                    // Ansible only warns about such files; orch stops so that hosts never go missing silently.
                    let advice = format!(
                        "every file in inventory directory {} is read as an inventory; \
                         rename files that are not (e.g. with a .md, .txt or .orig extension)",
                        path.display()
                    );
                    e.hint = Some(match e.hint.take() {
                        Some(hint) => format!("{hint}; {advice}"),
                        None => advice,
                    });
                    e
                })?;
            }
            return Ok(());
        }
        self.current_origin = HostOrigin {
            file: Some(path.to_string_lossy().into_owned()),
            dir: path.parent().map(|p| p.to_string_lossy().into_owned()),
        };
        let bytes = std::fs::read(path).map_err(|e| {
            Diagnostic::parse(
                format!("cannot read inventory file {}: {e}", path.display()),
                Some(Span::file_only(path)),
            )
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Diagnostic::parse(
                format!("inventory file {} is not valid UTF-8", path.display()),
                Some(Span::file_only(path)),
            )
        })?;
        let extension = path.extension().map(|e| e.to_string_lossy().into_owned());
        let yaml_extension = matches!(extension.as_deref(), Some("yml" | "yaml" | "json"));
        if extension.is_none() || yaml_extension {
            match crate::yaml::load_str(&text, path) {
                Ok(docs) => {
                    if let Some(doc) = docs.first().filter(|d| d.as_map().is_some()) {
                        if yaml_extension || yaml::looks_like_inventory(doc) {
                            return yaml::parse(self, doc);
                        }
                    }
                }
                Err(yaml_error) if yaml_extension => {
                    // Ansible falls back to the INI parser; when that fails too the YAML error is the useful one.
                    let mut attempt = self.clone();
                    return match ini::parse(&mut attempt, path, &text) {
                        Ok(()) => {
                            *self = attempt;
                            Ok(())
                        }
                        Err(_) => Err(yaml_error),
                    };
                }
                Err(_) => {}
            }
        }
        ini::parse(self, path, &text)
    }

    /// Ansible's `host_list` plugin: `h1,h2:2222,` adds hosts to `ungrouped` (no ranges).
    fn parse_host_list(&mut self, list: &str) {
        self.current_origin = HostOrigin {
            file: Some(list.to_string()),
            dir: None,
        };
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, port) =
                hostnames::parse_address(item, false).unwrap_or_else(|| (item.to_string(), None));
            if !self.hosts.contains_key(&name) {
                self.add_host(&name, Some("ungrouped"), port, None);
            }
        }
    }

    // ----- building blocks for the parsers -----

    fn add_group(&mut self, name: &str, span: Option<Span>) {
        if !self.groups.contains_key(name) {
            self.groups.insert(name.to_string(), Group::new(name, span));
        }
    }

    /// Adds a host (first definition wins for its port, span and origin) and puts it in `group`.
    fn add_host(&mut self, name: &str, group: Option<&str>, port: Option<u32>, span: Option<Span>) {
        if !self.hosts.contains_key(name) {
            let mut vars = Map::new();
            if let Some(port) = port {
                vars.insert("ansible_port".into(), Value::from(port));
            }
            self.hosts.insert(
                name.to_string(),
                Host {
                    name: name.to_string(),
                    vars,
                    span,
                },
            );
            self.origins
                .insert(name.to_string(), self.current_origin.clone());
        }
        if let Some(group) = group.and_then(|g| self.groups.get_mut(g)) {
            if !group.hosts.iter().any(|h| h == name) {
                group.hosts.push(name.to_string());
            }
        }
    }

    fn set_host_var(&mut self, host: &str, key: &str, value: Value) {
        if let Some(h) = self.hosts.get_mut(host) {
            h.vars.insert(key.to_string(), value);
        }
    }

    fn set_group_var(
        &mut self,
        group: &str,
        key: &str,
        value: Value,
        span: Option<&Span>,
    ) -> Result<(), Diagnostic> {
        let Some(g) = self.groups.get_mut(group) else {
            return Ok(());
        };
        if key == "ansible_group_priority" {
            let priority = match &value {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                Value::Bool(b) => Some(i64::from(*b)),
                _ => None,
            };
            g.priority = priority.ok_or_else(|| {
                Diagnostic::parse(
                    format!(
                        "ansible_group_priority of group `{group}` must be an integer, got {value}"
                    ),
                    span.cloned(),
                )
            })?;
        } else {
            g.vars.insert(key.to_string(), value);
        }
        Ok(())
    }

    /// Makes `child` a child of `parent`, refusing edges that would create a cycle.
    fn add_child(
        &mut self,
        parent: &str,
        child: &str,
        span: Option<&Span>,
    ) -> Result<(), Diagnostic> {
        if parent == child {
            return Err(Diagnostic::parse(
                format!("group `{parent}` cannot be a child of itself"),
                span.cloned(),
            ));
        }
        if self
            .groups
            .get(parent)
            .is_some_and(|g| g.children.iter().any(|c| c == child))
        {
            return Ok(());
        }
        if let Some(path) = self.child_path(child, parent) {
            let mut cycle = vec![parent.to_string()];
            cycle.extend(path);
            return Err(Diagnostic::parse(
                format!(
                    "adding group `{child}` as a child of `{parent}` creates a cycle: {}",
                    cycle.join(" -> ")
                ),
                span.cloned(),
            )
            .with_hint("a group cannot contain itself, directly or through its children"));
        }
        if let Some(g) = self.groups.get_mut(parent) {
            g.children.push(child.to_string());
        }
        Ok(())
    }

    /// A chain of child links from `from` down to `to` (both included), if there is one.
    fn child_path(&self, from: &str, to: &str) -> Option<Vec<String>> {
        let mut stack: Vec<Vec<String>> = vec![vec![from.to_string()]];
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(path) = stack.pop() {
            let last = path.last()?.clone();
            if last == to {
                return Some(path);
            }
            if !seen.insert(last.clone()) {
                continue;
            }
            for child in self
                .groups
                .get(&last)
                .map(|g| g.children.as_slice())
                .unwrap_or_default()
                .iter()
                .rev()
            {
                let mut next = path.clone();
                next.push(child.clone());
                stack.push(next);
            }
        }
        None
    }

    fn parents(&self) -> HashMap<&str, Vec<&str>> {
        let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
        for group in self.groups.values() {
            for child in &group.children {
                parents
                    .entry(child.as_str())
                    .or_default()
                    .push(group.name.as_str());
            }
        }
        parents
    }

    /// Ansible's `reconcile_inventory`: parentless groups join `all`, hosts join or leave `ungrouped`.
    fn reconcile(&mut self) {
        let orphans: Vec<String> = {
            let parents = self.parents();
            self.groups
                .keys()
                .filter(|g| *g != "all" && !parents.contains_key(g.as_str()))
                .cloned()
                .collect()
        };
        for group in orphans {
            if let Some(all) = self.groups.get_mut("all") {
                all.children.push(group);
            }
        }
        self.rebuild_index();
        let mut leave = Vec::new();
        let mut join = Vec::new();
        let ungrouped: HashSet<&String> = self.groups["ungrouped"].hosts.iter().collect();
        for name in self.hosts.keys() {
            let groups = self
                .index
                .host_groups
                .get(name)
                .map(Vec::as_slice)
                .unwrap_or_default();
            if ungrouped.contains(name) {
                if groups.iter().any(|g| g != "ungrouped") {
                    leave.push(name.clone());
                }
            } else if groups.is_empty() {
                join.push(name.clone());
            }
        }
        if let Some(g) = self.groups.get_mut("ungrouped") {
            g.hosts.retain(|h| !leave.contains(h));
            g.hosts.extend(join);
        }
        for name in self.groups.keys() {
            if self.hosts.contains_key(name) {
                self.warnings
                    .push(format!("Found both group and host with same name: {name}"));
            }
        }
        self.rebuild_index();
    }

    fn rebuild_index(&mut self) {
        let parents = self.parents();
        // Depth is the longest chain of parents up to `all`, as Ansible keeps it.
        let mut depth: HashMap<&str, usize> = HashMap::new();
        fn depth_of<'a>(
            group: &'a str,
            parents: &HashMap<&'a str, Vec<&'a str>>,
            memo: &mut HashMap<&'a str, usize>,
            guard: usize,
        ) -> usize {
            if let Some(d) = memo.get(group) {
                return *d;
            }
            let d = match parents.get(group) {
                Some(ps) if guard > 0 => ps
                    .iter()
                    .map(|p| depth_of(p, parents, memo, guard - 1) + 1)
                    .max()
                    .unwrap_or(0),
                _ => 0,
            };
            memo.insert(group, d);
            d
        }
        for name in self.groups.keys() {
            depth_of(name, &parents, &mut depth, self.groups.len());
        }

        let mut host_groups: HashMap<String, Vec<String>> = HashMap::new();
        for group in self.groups.values() {
            let mut ancestry = vec![group.name.as_str()];
            let mut i = 0;
            while i < ancestry.len() {
                for p in parents
                    .get(ancestry[i])
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    if !ancestry.contains(p) {
                        ancestry.push(p);
                    }
                }
                i += 1;
            }
            for host in &group.hosts {
                let entry = host_groups.entry(host.clone()).or_default();
                for g in &ancestry {
                    if *g != "all" && !entry.iter().any(|e| e == g) {
                        entry.push(g.to_string());
                    }
                }
            }
        }
        for groups in host_groups.values_mut() {
            groups.sort_by(|a, b| {
                let key = |g: &String| {
                    (
                        depth.get(g.as_str()).copied().unwrap_or(0),
                        self.groups.get(g).map_or(1, |g| g.priority),
                    )
                };
                key(a).cmp(&key(b)).then_with(|| a.cmp(b))
            });
        }

        let mut group_hosts = IndexMap::new();
        for name in self.groups.keys() {
            group_hosts.insert(name.clone(), self.descendant_hosts(name));
        }
        self.index = Index {
            host_groups,
            group_hosts,
        };
    }

    /// A group's hosts and its descendants' hosts: breadth first through the children, each group's
    /// hosts in definition order (Ansible's `Group.get_hosts`).
    fn descendant_hosts(&self, group: &str) -> Vec<String> {
        let mut order = vec![group.to_string()];
        let mut seen_groups: HashSet<String> = order.iter().cloned().collect();
        let mut i = 0;
        while i < order.len() {
            for child in self
                .groups
                .get(&order[i])
                .map(|g| g.children.as_slice())
                .unwrap_or_default()
            {
                if seen_groups.insert(child.clone()) {
                    order.push(child.clone());
                }
            }
            i += 1;
        }
        let mut seen_hosts = HashSet::new();
        let mut hosts = Vec::new();
        for g in &order {
            for h in self
                .groups
                .get(g)
                .map(|g| g.hosts.as_slice())
                .unwrap_or_default()
            {
                if seen_hosts.insert(h.as_str()) {
                    hosts.push(h.clone());
                }
            }
        }
        hosts
    }

    // ----- queries -----

    /// All hosts in inventory order (the order `hosts: all` runs them in).
    pub fn host_names(&self) -> Vec<String> {
        self.index
            .group_hosts
            .get("all")
            .cloned()
            .unwrap_or_default()
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.get(name)
    }

    pub fn has_host(&self, name: &str) -> bool {
        self.hosts.contains_key(name)
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(name)
    }

    /// Groups in definition order (`all` and `ungrouped` first).
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// Whether `name` would be the implicit localhost (a localhost name that is not in the inventory).
    pub fn is_implicit_localhost(&self, name: &str) -> bool {
        LOCALHOST_NAMES.contains(&name) && !self.hosts.contains_key(name)
    }

    /// The file a host was first found in (Ansible's `inventory_file`).
    pub fn inventory_file(&self, host: &str) -> Option<&str> {
        self.origins.get(host)?.file.as_deref()
    }

    /// The directory of that file (Ansible's `inventory_dir`; none for comma-separated lists).
    pub fn inventory_dir(&self, host: &str) -> Option<&str> {
        self.origins.get(host)?.dir.as_deref()
    }

    /// The host's variables from inventory, group_vars and host_vars, merged in the order given in
    /// the module docs. Includes `inventory_file`/`inventory_dir`; empty for unknown hosts.
    pub fn vars_for_host(&self, host: &str) -> Map<String, Value> {
        let implicit = self.is_implicit_localhost(host);
        if !implicit && !self.hosts.contains_key(host) {
            return Map::new();
        }
        let groups: &[String] = self
            .index
            .host_groups
            .get(host)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut vars = self
            .groups
            .get("all")
            .map(|g| g.vars.clone())
            .unwrap_or_default();
        for g in groups {
            if let Some(group) = self.groups.get(g) {
                extend(&mut vars, &group.vars);
            }
        }
        for layer in self.inventory_vars.iter().chain(&self.playbook_vars) {
            extend_opt(&mut vars, layer.group("all"));
        }
        for layers in [&self.inventory_vars, &self.playbook_vars] {
            for layer in layers {
                for g in groups {
                    extend_opt(&mut vars, layer.group(g));
                }
            }
        }
        if implicit {
            vars.insert("ansible_connection".into(), Value::from("local"));
        } else {
            let origin = self.origins.get(host).cloned().unwrap_or_default();
            vars.insert(
                "inventory_file".into(),
                origin.file.map_or(Value::Null, Value::from),
            );
            vars.insert(
                "inventory_dir".into(),
                origin.dir.map_or(Value::Null, Value::from),
            );
            if let Some(h) = self.hosts.get(host) {
                extend(&mut vars, &h.vars);
            }
        }
        for layer in self.inventory_vars.iter().chain(&self.playbook_vars) {
            extend_opt(&mut vars, layer.host(host));
        }
        vars
    }

    /// The `group_names` magic variable: every group holding the host, sorted, without `all`.
    pub fn group_names(&self, host: &str) -> Vec<String> {
        let mut names = self
            .index
            .host_groups
            .get(host)
            .cloned()
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The `groups` magic variable: each group's hosts, children's hosts included, inventory order.
    pub fn groups_value(&self) -> Value {
        let mut map = Map::new();
        for (name, hosts) in &self.index.group_hosts {
            map.insert(name.clone(), Value::from(hosts.clone()));
        }
        Value::Object(map)
    }

    /// Hosts of a group including its descendants' hosts, in inventory order.
    pub fn group_hosts(&self, group: &str) -> Option<&[String]> {
        self.index.group_hosts.get(group).map(Vec::as_slice)
    }

    /// Resolves a host pattern (`web:&prod:!db1`, `web[0:2]`, `~re`, …) like `ansible --list-hosts`.
    pub fn select(&self, pattern: &str) -> Result<Selection, Diagnostic> {
        pattern::select(self, pattern)
    }

    /// What `ansible-inventory --list` prints, as JSON (keys in any order; see [`to_ansible_json`]).
    pub fn list_json(&self) -> Value {
        export::list_json(self)
    }

    /// What `ansible-inventory --graph [group]` prints, without a trailing newline.
    pub fn graph(&self, group: Option<&str>) -> Result<String, Diagnostic> {
        export::graph(self, group)
    }

    /// What `ansible-inventory --host NAME` prints; `None` for an unknown host.
    pub fn host_json(&self, host: &str) -> Option<Value> {
        export::host_json(self, host)
    }
}

fn extend(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (k, v) in from {
        into.insert(k.clone(), v.clone());
    }
}

fn extend_opt(into: &mut Map<String, Value>, from: Option<&Map<String, Value>>) {
    if let Some(from) = from {
        extend(into, from);
    }
}

/// Directory entries Ansible skips when a directory is an inventory source (`IGNORED` in
/// `inventory/manager.py` with the default `inventory_ignore_extensions`).
fn is_ignored_inventory_entry(name: &str) -> bool {
    const IGNORED_SUFFIXES: [&str; 12] = [
        ".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg",
        ".retry",
    ];
    name.starts_with('.')
        || matches!(name, "host_vars" | "group_vars" | "vars_plugins")
        || IGNORED_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// `~` expanded, made absolute and normalised without resolving symlinks (Ansible's `unfrackpath`).
fn absolute_path(source: &str) -> PathBuf {
    let expanded = match source.strip_prefix("~/") {
        Some(rest) => dirs::home_dir()
            .map(|h| h.join(rest))
            .unwrap_or_else(|| PathBuf::from(source)),
        None => PathBuf::from(source),
    };
    let absolute = if expanded.is_absolute() {
        expanded
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(&expanded))
            .unwrap_or(expanded)
    };
    let mut out = PathBuf::new();
    for component in absolute.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests;
