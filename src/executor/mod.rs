//! Running plays: batches, strategies, blocks, handlers; one session per host for the whole run.

pub mod batches;
mod connect;
mod env;
mod hostvars;
mod runlock;
mod state;
mod task;
mod vars;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use serde_json::{Map, Value};

pub use connect::ConnectDefaults;
use connect::Pool;
use state::{lock, HostState, HostTable};
use vars::{PlayVars, VarSources};

use crate::error::Diagnostic;
use crate::inventory::Inventory;
use crate::playbook::{HostOrder, MetaAction, Play, Playbook, Strategy, Task, TaskItem};
use crate::report::{Event, Redactor, Reporter, Stats};
use crate::template::Templar;

pub struct RunOptions {
    pub check: bool,
    pub diff: bool,
    pub forks: usize,
    pub limit: Option<String>,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub extra_vars: Map<String, Value>,
    pub force_handlers: bool,
    pub become_password: Option<String>,
    pub connect: ConnectDefaults,
    pub command_timeout: Duration,
}

/// Per-host extra variables of an `include_tasks` (its vars and loop item).
type Scope = HashMap<String, Arc<Map<String, Value>>>;

pub struct Runner {
    playbook: Arc<Playbook>,
    sources: Arc<VarSources>,
    opts: RunOptions,
    reporter: Arc<dyn Reporter>,
    redactor: Redactor,
    pool: Pool,
    hosts: Arc<RwLock<HostTable>>,
    stats: Mutex<Stats>,
    interrupted: AtomicBool,
    warned: Mutex<Vec<String>>,
}

/// The state of one play while it runs.
struct PlayRun<'a> {
    play: &'a Play,
    vars: Arc<PlayVars>,
    hostvars: minijinja::Value,
    /// Set by max_fail_percentage, any_errors_fatal or end_play: nothing more runs in this play.
    aborted: AtomicBool,
    batch: Vec<String>,
    /// Facts were gathered for the whole play already (batch_by).
    facts_gathered: bool,
}

impl Runner {
    pub fn new(
        playbook: Arc<Playbook>,
        inventory: Arc<Inventory>,
        opts: RunOptions,
        reporter: Arc<dyn Reporter>,
        redactor: Redactor,
    ) -> Runner {
        let mut search = vec![
            playbook.dir.clone(),
            playbook.dir.join("templates"),
            playbook.dir.join("files"),
        ];
        search.dedup();
        let templar = Arc::new(Templar::new(search));
        let groups = crate::template::from_json(&inventory.groups_value());
        let playbook_dir =
            std::fs::canonicalize(&playbook.dir).unwrap_or_else(|_| playbook.dir.clone());
        let sources = Arc::new(VarSources {
            inventory,
            templar,
            extra_vars: opts.extra_vars.clone(),
            playbook_dir: playbook_dir.display().to_string(),
            groups,
            check_mode: opts.check,
            diff_mode: opts.diff,
            run_tags: opts.tags.clone(),
            skip_tags: opts.skip_tags.clone(),
            unknowns: Arc::default(),
        });
        if let Some(p) = &opts.become_password {
            redactor.add(p);
        }
        Runner {
            playbook,
            sources,
            opts,
            reporter,
            redactor,
            pool: Pool::default(),
            hosts: Arc::new(RwLock::new(HostTable::default())),
            stats: Mutex::new(Stats::default()),
            interrupted: AtomicBool::new(false),
            warned: Mutex::new(Vec::new()),
        }
    }

    fn emit(&self, event: Event) {
        if let Event::Warning(w) = &event {
            // The same warning (a pattern matching nothing) is worth saying once per run.
            let mut seen = self.warned.lock().unwrap_or_else(|e| e.into_inner());
            if seen.contains(w) {
                return;
            }
            seen.push(w.clone());
        }
        self.reporter.event(&event);
    }

    fn stats<R>(&self, f: impl FnOnce(&mut Stats) -> R) -> R {
        let mut guard = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    pub fn set_forks(&mut self, forks: usize) {
        self.opts.forks = forks;
    }

    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
    }

    /// Hosts a play targets, after `--limit`, in the play's `order`. Errors are static (bad patterns).
    pub fn play_hosts(&self, play: &Play) -> Result<Vec<String>, Diagnostic> {
        let pattern = if crate::template::Templar::is_template(&play.hosts) {
            // `hosts:` is templated before any host is known: play vars and extra vars only.
            let mut vars = play.vars.clone();
            vars.extend(self.sources.extra_vars.clone());
            let ctx = crate::template::from_json(&Value::Object(vars));
            self.sources
                .templar
                .render_str(&play.hosts, &ctx)
                .map_err(|e| {
                    Diagnostic::parse(
                        format!(
                            "cannot template the play's hosts '{}': {}",
                            play.hosts, e.message
                        ),
                        Some(play.span.clone()),
                    )
                })?
        } else {
            play.hosts.clone()
        };
        let selection = self
            .sources
            .inventory
            .select(&pattern)
            .map_err(|d| d.with_span(play.span.clone()))?;
        for w in &selection.warnings {
            self.emit(Event::Warning(w.clone()));
        }
        let mut hosts = selection.hosts;
        if let Some(limit) = &self.opts.limit {
            let limited = self.sources.inventory.select(limit)?;
            for w in &limited.warnings {
                self.emit(Event::Warning(w.clone()));
            }
            hosts.retain(|h| limited.hosts.contains(h));
        }
        match play.order {
            HostOrder::Inventory => {}
            HostOrder::ReverseInventory => hosts.reverse(),
            HostOrder::Sorted => hosts.sort(),
            HostOrder::ReverseSorted => {
                hosts.sort();
                hosts.reverse()
            }
            HostOrder::Shuffle => {
                use rand::seq::SliceRandom;
                hosts.shuffle(&mut rand::rng());
            }
        }
        Ok(hosts)
    }

    /// Runs every play; returns the recap counters.
    pub async fn run(&self) -> Result<Stats, Diagnostic> {
        self.emit(Event::PlaybookStart {
            path: self.playbook.path.display().to_string(),
            check: self.opts.check,
        });
        // Every play's hosts are resolved first: a bad pattern stops the run before any host is contacted.
        let mut plan = Vec::new();
        for play in &self.playbook.plays {
            plan.push(self.play_hosts(play)?);
        }
        if runlock::lock_timeout().is_some() {
            // Each play's hosts with the play's connection keywords, so that the locked sessions
            // are the ones its tasks use.
            let all: Vec<(String, Option<String>, Option<String>)> = self
                .playbook
                .plays
                .iter()
                .zip(&plan)
                .flat_map(|(play, hosts)| {
                    hosts.iter().map(|h| {
                        (
                            h.clone(),
                            play.defaults.remote_user.clone(),
                            play.defaults.connection.clone(),
                        )
                    })
                })
                .collect();
            self.prelock(&all).await;
        }
        for (play, hosts) in self.playbook.plays.iter().zip(plan) {
            if self.interrupted.load(Ordering::SeqCst) {
                break;
            }
            self.run_play(play, hosts).await?;
        }
        self.pool.close_all().await;
        let stats = self.stats(|s| s.clone());
        self.emit(Event::Recap(stats.clone()));
        Ok(stats)
    }

    fn ensure_host_state(&self, host: &str) {
        let mut table = self.hosts.write().unwrap_or_else(|e| e.into_inner());
        if !table.contains(host) {
            let inventory_vars = self.sources.inventory.vars_for_host(host);
            for key in [
                "ansible_password",
                "ansible_ssh_pass",
                "ansible_become_password",
                "ansible_become_pass",
                "ansible_ssh_password",
            ] {
                if let Some(Value::String(s)) = inventory_vars.get(key) {
                    self.redactor.add(s);
                }
            }
            table.insert(
                host,
                HostState {
                    inventory_vars: Arc::new(inventory_vars),
                    ..HostState::default()
                },
            );
        }
    }

    fn host(&self, host: &str) -> Option<Arc<Mutex<HostState>>> {
        self.hosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(host)
    }

    /// A host's variables for a task (all precedence layers); None for a host not in this run.
    fn vars_for(
        &self,
        run: &PlayRun<'_>,
        host: &str,
        task_vars: &Map<String, Value>,
        scope: &Scope,
    ) -> Option<Map<String, Value>> {
        let state = self.host(host)?;
        let s = lock(&state);
        Some(vars::task_level(
            &self.sources,
            host,
            &s,
            &run.vars,
            task_vars,
            scope.get(host).map(|a| a.as_ref()),
        ))
    }

    fn is_active(&self, host: &str) -> bool {
        self.host(host).map(|s| lock(&s).active()).unwrap_or(false)
    }

    async fn run_play(&self, play: &Play, hosts: Vec<String>) -> Result<(), Diagnostic> {
        for h in &hosts {
            self.ensure_host_state(h);
        }
        // Failed and unreachable hosts of earlier plays stay out, as in Ansible.
        let hosts: Vec<String> = hosts
            .into_iter()
            .filter(|h| self.is_active(h) || self.host(h).map(|s| lock(&s).ended).unwrap_or(false))
            .collect();
        for h in &hosts {
            if let Some(s) = self.host(h) {
                lock(&s).ended = false;
            }
        }
        self.emit(Event::PlayStart {
            name: play.name.clone(),
            hosts: hosts.clone(),
        });
        if hosts.is_empty() {
            self.emit(Event::Notice("skipping: no hosts matched".into()));
            return Ok(());
        }
        let play_vars = self.play_vars(play)?;
        let make_run = |batch: Vec<String>, facts_gathered: bool| {
            let vars = Arc::new(PlayVars {
                vars: play_vars.clone(),
                play_hosts_all: hosts.clone(),
                play_hosts: hosts
                    .iter()
                    .filter(|h| self.is_active(h))
                    .cloned()
                    .collect(),
                play_batch: batch.clone(),
                play_name: play.name.clone(),
            });
            let hostvars =
                hostvars::HostVars::value(self.sources.clone(), self.hosts.clone(), vars.clone());
            PlayRun {
                play,
                vars,
                hostvars,
                aborted: AtomicBool::new(false),
                batch,
                facts_gathered,
            }
        };
        let (batches, facts_gathered) = match &play.batch_by {
            None => (batches::serial_batches(&hosts, &play.serial), false),
            Some(expr) => {
                // Batches usually follow a fact (the cluster): gather first, for all hosts at once.
                let all = make_run(hosts.clone(), false);
                if play.gather_facts {
                    self.gather_facts(&all).await;
                }
                (
                    self.group_hosts(&all, &hosts, expr, &Map::new(), &Scope::new()),
                    play.gather_facts,
                )
            }
        };
        for batch in batches {
            let run = make_run(batch.clone(), facts_gathered);
            self.run_batch(&run).await;
            let all_down = batch.iter().all(|h| {
                self.host(h)
                    .map(|s| {
                        let s = lock(&s);
                        s.failed || s.unreachable
                    })
                    .unwrap_or(true)
            });
            if run.aborted.load(Ordering::SeqCst)
                || all_down
                || self.interrupted.load(Ordering::SeqCst)
            {
                if all_down || run.aborted.load(Ordering::SeqCst) && !self.ended_play(&batch) {
                    self.emit(Event::Notice("\nNO MORE HOSTS LEFT *************************************************************".into()));
                }
                break;
            }
        }
        Ok(())
    }

    fn ended_play(&self, batch: &[String]) -> bool {
        batch
            .iter()
            .all(|h| self.host(h).map(|s| lock(&s).ended).unwrap_or(false))
    }

    /// Play `vars` then `vars_files` (layer 3 and 4).
    fn play_vars(&self, play: &Play) -> Result<Map<String, Value>, Diagnostic> {
        let mut vars = play.vars.clone();
        for (file, span) in &play.vars_files {
            let name = if crate::template::Templar::is_template(file) {
                let ctx =
                    crate::template::from_json(&Value::Object(self.sources.extra_vars.clone()));
                let mut merged = vars.clone();
                merged.extend(self.sources.extra_vars.clone());
                let ctx2 = crate::template::from_json(&Value::Object(merged));
                let _ = ctx;
                self.sources.templar.render_str(file, &ctx2).map_err(|e| {
                    Diagnostic::runtime(format!(
                        "cannot template vars_files entry '{file}': {}",
                        e.message
                    ))
                    .with_span(span.clone())
                })?
            } else {
                file.clone()
            };
            let path = self.playbook.dir.join(&name);
            let node = crate::yaml::load_single(&path).map_err(|d| {
                if d.span.is_none() {
                    d.with_span(span.clone())
                } else {
                    d
                }
            })?;
            match node.to_json() {
                Value::Object(m) => vars.extend(m),
                Value::Null => {}
                _ => {
                    return Err(Diagnostic::parse(
                        format!("vars file {} must hold a mapping", path.display()),
                        Some(node.span),
                    ))
                }
            }
        }
        Ok(vars)
    }

    async fn run_batch(&self, run: &PlayRun<'_>) {
        let play = run.play;
        let scope = Scope::new();
        if play.gather_facts && !run.facts_gathered {
            self.gather_facts(run).await;
        }
        for section in [&play.pre_tasks, &play.tasks, &play.post_tasks] {
            if run.aborted.load(Ordering::SeqCst) || self.interrupted.load(Ordering::SeqCst) {
                break;
            }
            match play.strategy {
                Strategy::Linear => {
                    self.run_items(run, section, run.batch.clone(), &scope, false)
                        .await
                }
                Strategy::Free => {
                    let forks = self.opts.forks.max(1);
                    futures::stream::iter(run.batch.clone())
                        .map(|h| self.run_items(run, section, vec![h], &scope, false))
                        .buffer_unordered(forks)
                        .collect::<Vec<_>>()
                        .await;
                }
            }
            self.flush_handlers(run).await;
        }
    }

    /// Runs a list of task items over `hosts` in lock step (each item finishes on every host first).
    fn run_items<'a>(
        &'a self,
        run: &'a PlayRun<'a>,
        items: &'a [TaskItem],
        hosts: Vec<String>,
        scope: &'a Scope,
        rescuable: bool,
    ) -> BoxFuture<'a, ()> {
        async move {
            for item in items {
                if run.aborted.load(Ordering::SeqCst) || self.interrupted.load(Ordering::SeqCst) {
                    return;
                }
                let active: Vec<String> = hosts
                    .iter()
                    .filter(|h| self.is_active(h))
                    .cloned()
                    .collect();
                if active.is_empty() {
                    return;
                }
                match item {
                    TaskItem::Task(task) => {
                        self.run_task(run, task, &active, scope, false, rescuable)
                            .await
                    }
                    TaskItem::Block(block) => {
                        self.run_items(
                            run,
                            &block.block,
                            active.clone(),
                            scope,
                            rescuable || !block.rescue.is_empty(),
                        )
                        .await;
                        let failed_in_block: Vec<String> = active
                            .iter()
                            .filter(|h| {
                                self.host(h)
                                    .map(|s| {
                                        let s = lock(&s);
                                        s.failed && !s.unreachable
                                    })
                                    .unwrap_or(false)
                            })
                            .cloned()
                            .collect();
                        let mut still_failed = failed_in_block.clone();
                        if !block.rescue.is_empty() && !failed_in_block.is_empty() {
                            for h in &failed_in_block {
                                self.set_failed(h, false);
                                self.stats(|s| s.entry(h).rescued += 1);
                            }
                            self.run_items(
                                run,
                                &block.rescue,
                                failed_in_block.clone(),
                                scope,
                                rescuable,
                            )
                            .await;
                            still_failed
                                .retain(|h| self.host(h).map(|s| lock(&s).failed).unwrap_or(false));
                        }
                        if !block.always.is_empty() {
                            for h in &still_failed {
                                self.set_failed(h, false);
                            }
                            self.run_items(run, &block.always, active.clone(), scope, rescuable)
                                .await;
                            for h in &still_failed {
                                self.set_failed(h, true);
                            }
                        }
                    }
                    TaskItem::Include(include) => {
                        self.run_include(run, include, &active, scope, rescuable)
                            .await
                    }
                    TaskItem::Meta(meta) => self.run_meta(run, meta, &active, scope).await,
                }
            }
        }
        .boxed()
    }

    fn set_failed(&self, host: &str, failed: bool) {
        if let Some(s) = self.host(host) {
            lock(&s).failed = failed;
        }
    }

    async fn run_meta(
        &self,
        run: &PlayRun<'_>,
        meta: &crate::playbook::MetaTask,
        hosts: &[String],
        scope: &Scope,
    ) {
        let mut applies = Vec::new();
        for h in hosts {
            match self.meta_condition(run, meta, h, scope) {
                Ok(true) => applies.push(h.clone()),
                Ok(false) => {}
                Err(msg) => self.emit(Event::Warning(format!(
                    "meta condition failed on {h}: {msg}"
                ))),
            }
        }
        if applies.is_empty() {
            return;
        }
        match meta.action {
            MetaAction::FlushHandlers => self.flush_handlers(run).await,
            MetaAction::EndPlay => {
                for h in &run.batch {
                    if let Some(s) = self.host(h) {
                        lock(&s).ended = true;
                    }
                }
                run.aborted.store(true, Ordering::SeqCst);
            }
            MetaAction::EndHost => {
                for h in &applies {
                    if let Some(s) = self.host(h) {
                        lock(&s).ended = true;
                    }
                }
            }
            MetaAction::EndBatch => {
                for h in &run.batch {
                    if let Some(s) = self.host(h) {
                        lock(&s).ended = true;
                    }
                }
            }
            MetaAction::ClearFacts => {
                for h in &applies {
                    if let Some(s) = self.host(h) {
                        lock(&s).facts.clear();
                    }
                }
            }
            MetaAction::ClearHostErrors => {
                for h in &run.batch {
                    if let Some(s) = self.host(h) {
                        lock(&s).failed = false;
                    }
                }
            }
            MetaAction::Noop | MetaAction::RefreshInventory => {}
        }
    }

    fn meta_condition(
        &self,
        run: &PlayRun<'_>,
        meta: &crate::playbook::MetaTask,
        host: &str,
        scope: &Scope,
    ) -> Result<bool, String> {
        if meta.common.when.is_empty() {
            return Ok(true);
        }
        let vars = self
            .vars_for(run, host, &meta.common.vars, scope)
            .ok_or("unknown host")?;
        let ctx = self.context(run, vars);
        for cond in &meta.common.when {
            if !self
                .sources
                .templar
                .eval_bool(&cond.expr, &ctx)
                .map_err(|e| e.message)?
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn context(&self, run: &PlayRun<'_>, vars: Map<String, Value>) -> minijinja::Value {
        self.sources.templar.lazy_vars_tracking(
            Arc::new(vars),
            vec![
                ("hostvars".to_string(), run.hostvars.clone()),
                ("groups".to_string(), self.sources.groups.clone()),
            ],
            &self.sources.unknowns,
        )
    }

    /// Is the task selected by --tags/--skip-tags? (`always` runs unless skipped by name, `never` only on request.)
    fn tag_selected(&self, tags: &[String]) -> bool {
        let has = |t: &str| tags.iter().any(|x| x == t);
        if self
            .opts
            .skip_tags
            .iter()
            .any(|s| has(s) || (s == "tagged" && !tags.is_empty()))
        {
            return false;
        }
        if has("always") {
            return true;
        }
        if self.opts.tags.is_empty() || self.opts.tags.iter().any(|t| t == "all") {
            return !has("never");
        }
        self.opts.tags.iter().any(|t| {
            has(t) || (t == "tagged" && !tags.is_empty()) || (t == "untagged" && tags.is_empty())
        })
    }

    async fn run_task(
        &self,
        run: &PlayRun<'_>,
        task: &Arc<Task>,
        hosts: &[String],
        scope: &Scope,
        handler: bool,
        rescuable: bool,
    ) {
        if !handler && !self.tag_selected(&task.common.tags) {
            return;
        }
        let targets: Vec<String> = if task.common.run_once.unwrap_or(false) {
            hosts.iter().take(1).cloned().collect()
        } else {
            hosts.to_vec()
        };
        if targets.is_empty() {
            return;
        }
        if let Some(expr) = &task.once_per {
            self.run_once_per(run, task, &targets, scope, expr, rescuable)
                .await;
            return;
        }
        let name = self.task_title(run, task, &targets[0], scope);
        self.emit(Event::TaskStart {
            name: name.clone(),
            handler,
            location: format!("{}:{}", task.span.file.display(), task.span.line),
            hosts: targets.clone(),
        });
        let forks = self.opts.forks.max(1);
        let results: Vec<(String, Option<Value>)> = futures::stream::iter(targets.clone())
            .map(|h| {
                let name = name.clone();
                async move {
                    let r = self
                        .run_task_on_host(run, task, &h, scope, &name, rescuable)
                        .await;
                    self.emit(Event::HostDone { host: h.clone() });
                    (h, r)
                }
            })
            .buffer_unordered(forks)
            .collect()
            .await;
        if task.common.run_once.unwrap_or(false) {
            // The one result is every host's result (registered vars and set_fact), as in Ansible.
            if let Some((first, Some(result))) = results.first() {
                for h in hosts.iter().filter(|h| *h != first) {
                    self.apply_shared_result(task, h, result);
                }
            }
        }
        // A failure inside a block with `rescue` is not a failed host (yet), as in Ansible.
        if !rescuable {
            self.check_failure_limits(run, task, &targets);
        }
    }

    /// `once_per`: hosts grouped by the template's value; each group's first reachable host runs the
    /// task (groups in parallel), and its result becomes every group member's result.
    async fn run_once_per(
        &self,
        run: &PlayRun<'_>,
        task: &Arc<Task>,
        targets: &[String],
        scope: &Scope,
        expr: &str,
        rescuable: bool,
    ) {
        let groups = self.group_hosts(run, targets, expr, &task.common.vars, scope);
        let leaders: Vec<String> = groups.iter().map(|hosts| hosts[0].clone()).collect();
        let Some(first) = leaders.first() else { return };
        let name = self.task_title(run, task, first, scope);
        self.emit(Event::TaskStart {
            name: name.clone(),
            handler: false,
            location: format!("{}:{}", task.span.file.display(), task.span.line),
            hosts: leaders,
        });
        let forks = self.opts.forks.max(1);
        futures::stream::iter(groups)
            .map(|hosts| {
                let name = name.clone();
                async move {
                    for h in &hosts {
                        let result = self
                            .run_task_on_host(run, task, h, scope, &name, rescuable)
                            .await;
                        self.emit(Event::HostDone { host: h.clone() });
                        if self.host(h).map(|s| lock(&s).unreachable).unwrap_or(true) {
                            // Fall back to the group's next host.
                            continue;
                        }
                        if let Some(result) = result {
                            for other in hosts.iter().filter(|o| *o != h) {
                                self.apply_shared_result(task, other, &result);
                            }
                        }
                        break;
                    }
                }
            })
            .buffer_unordered(forks)
            .collect::<Vec<_>>()
            .await;
        if !rescuable {
            self.check_failure_limits(run, task, targets);
        }
    }

    /// Hosts grouped by the value of `expr` (a template over each host's variables), groups in the
    /// order their first host appears. A host whose value cannot be computed forms its own group.
    fn group_hosts(
        &self,
        run: &PlayRun<'_>,
        hosts: &[String],
        expr: &str,
        task_vars: &Map<String, Value>,
        scope: &Scope,
    ) -> Vec<Vec<String>> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for h in hosts {
            let key = match self.vars_for(run, h, task_vars, scope) {
                Some(vars) => {
                    let ctx = self.context(run, vars);
                    match self.sources.templar.render_str(expr, &ctx) {
                        Ok(k) => k,
                        Err(e) => {
                            if self.is_active(h) {
                                self.emit(Event::Warning(format!(
                                    "{h}: '{expr}' cannot be evaluated ({}); the host is a group of its own",
                                    e.message
                                )));
                            }
                            format!("\u{0}{h}")
                        }
                    }
                }
                None => format!("\u{0}{h}"),
            };
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(h.clone()),
                None => groups.push((key, vec![h.clone()])),
            }
        }
        groups.into_iter().map(|(_, members)| members).collect()
    }

    fn apply_shared_result(&self, task: &Task, host: &str, result: &Value) {
        let Some(state) = self.host(host) else { return };
        let mut s = lock(&state);
        if let Some(reg) = &task.register {
            s.host_vars.insert(reg.clone(), result.clone());
        }
        if task.module == "set_fact" {
            if let Some(Value::Object(facts)) = result.get("ansible_facts") {
                s.host_vars.extend(facts.clone());
            }
        }
    }

    /// any_errors_fatal and max_fail_percentage, checked after each task over the batch.
    fn check_failure_limits(&self, run: &PlayRun<'_>, task: &Task, targets: &[String]) {
        let failed_now = |h: &String| {
            self.host(h)
                .map(|s| {
                    let s = lock(&s);
                    s.failed || s.unreachable
                })
                .unwrap_or(false)
        };
        let any_fatal = task
            .common
            .any_errors_fatal
            .unwrap_or(run.play.any_errors_fatal);
        if any_fatal && targets.iter().any(failed_now) {
            run.aborted.store(true, Ordering::SeqCst);
            return;
        }
        if let Some(max) = run.play.max_fail_percentage {
            let failed = run.batch.iter().filter(|h| failed_now(h)).count();
            let pct = failed as f64 * 100.0 / run.batch.len().max(1) as f64;
            if pct > max {
                run.aborted.store(true, Ordering::SeqCst);
            }
        }
    }

    fn task_title(&self, run: &PlayRun<'_>, task: &Task, host: &str, scope: &Scope) -> String {
        let raw = task.display_name();
        if !crate::template::Templar::is_template(&raw) {
            return raw;
        }
        let Some(vars) = self.vars_for(run, host, &task.common.vars, scope) else {
            return raw;
        };
        let ctx = self.context(run, vars);
        self.sources.templar.render_str(&raw, &ctx).unwrap_or(raw)
    }

    async fn flush_handlers(&self, run: &PlayRun<'_>) {
        for handler in &run.play.handlers {
            let names: Vec<&String> = handler.name.iter().chain(handler.listen.iter()).collect();
            let mut targets = Vec::new();
            for h in &run.batch {
                let Some(state) = self.host(h) else { continue };
                let mut s = lock(&state);
                let notified = s.notified.iter().any(|n| names.contains(&n));
                if !notified {
                    continue;
                }
                let eligible = !s.unreachable
                    && !s.ended
                    && (!s.failed || run.play.force_handlers || self.opts.force_handlers);
                s.notified.retain(|n| !names.contains(&n));
                if eligible {
                    if s.failed {
                        // --force-handlers: the handler runs for a failed host too.
                        s.failed = false;
                    }
                    targets.push(h.clone());
                }
            }
            if !targets.is_empty() {
                self.run_task(run, handler, &targets, &Scope::new(), true, false)
                    .await;
            }
        }
    }

    async fn gather_facts(&self, run: &PlayRun<'_>) {
        let targets: Vec<String> = run
            .batch
            .iter()
            .filter(|h| self.is_active(h))
            .cloned()
            .collect();
        if targets.is_empty() || !self.tag_selected(&["always".to_string()]) {
            return;
        }
        self.emit(Event::TaskStart {
            name: "Gathering Facts".into(),
            handler: false,
            location: format!("{}:{}", run.play.span.file.display(), run.play.span.line),
            hosts: targets.clone(),
        });
        let forks = self.opts.forks.max(1);
        futures::stream::iter(targets)
            .map(|h| async move {
                self.gather_facts_on(run, &h).await;
                self.emit(Event::HostDone { host: h });
            })
            .buffer_unordered(forks)
            .collect::<Vec<_>>()
            .await;
    }
}
