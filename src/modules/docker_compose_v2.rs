//! `community.docker.docker_compose_v2`: brings a Compose project up, stops, restarts or removes it
//! with the `docker compose` CLI plugin, reporting changed only when Compose created, recreated,
//! started, stopped, removed or pulled something (read from its event output).
//!
//! The plan runs the state's Compose command with `--dry-run` (Compose >= 2.18) together with
//! `ps` and `images`, in one round trip: check mode reports that prediction, and a run whose dry run
//! shows nothing to do stops there (ok, no second round trip). Otherwise `apply` runs the real command
//! and the result's `changed` comes from the real events, as in community.docker. With `pull: always`
//! (or `build: always`) the real command always runs, since a dry run cannot tell whether the registry
//! has a newer image; as in community.docker, pulling alone does not make the task changed.
//!
//! In check mode on a fresh host the project cannot be read yet (no docker, no project directory or
//! Compose file: the earlier tasks that provide them did not run); the plan then predicts the
//! project's creation instead of failing (see `not_yet_plan`). In a real run that is an error.

use serde_json::{json, Map, Value};

use super::compose_v2::{
    add_listing, compose_args, missing_step, plan_compose_script, run_compose_script, step_failure,
    words, ComposeProject, Outcome, Planned, ScriptRun, MINIMUM_COMPOSE_VERSION,
};
use super::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv};

pub struct DockerComposeV2;

static SPEC: ArgSpec = ArgSpec {
    args: compose_args![
        Arg::opt("state").choices(&["absent", "present", "stopped", "restarted"]),
        Arg::opt("dependencies"),
        Arg::opt("pull").choices(&["always", "missing", "never", "policy"]),
        Arg::opt("build").choices(&["always", "never", "policy"]),
        Arg::opt("recreate").choices(&["always", "never", "auto"]),
        Arg::opt("renew_anon_volumes"),
        Arg::opt("remove_images").choices(&["all", "local"]),
        Arg::opt("remove_volumes"),
        Arg::opt("remove_orphans"),
        Arg::opt("timeout"),
        Arg::opt("services"),
        Arg::opt("scale"),
        Arg::opt("wait"),
        Arg::opt("wait_timeout"),
    ],
    free_form: None,
    any_keys: false,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Present,
    Stopped,
    Restarted,
    Absent,
}

/// The task's arguments, validated.
#[derive(Clone, Debug)]
struct Settings {
    project: ComposeProject,
    state: State,
    dependencies: bool,
    pull: String,
    build: String,
    recreate: String,
    renew_anon_volumes: bool,
    remove_images: Option<String>,
    remove_volumes: bool,
    remove_orphans: bool,
    timeout: Option<i64>,
    services: Vec<String>,
    scale: Vec<(String, i64)>,
    wait: bool,
    wait_timeout: Option<i64>,
}

impl Settings {
    fn from_args(args: &Args) -> Result<Settings, ModuleError> {
        let state = match args
            .choice(
                "state",
                &["absent", "present", "stopped", "restarted"],
                "present",
            )?
            .as_str()
        {
            "absent" => State::Absent,
            "stopped" => State::Stopped,
            "restarted" => State::Restarted,
            _ => State::Present,
        };
        let mut scale = Vec::new();
        match args.value("scale") {
            None => {}
            Some(Value::Object(map)) => {
                for (service, count) in map {
                    let count = match count {
                        Value::Number(n) => n.as_i64(),
                        Value::String(s) => s.trim().parse().ok(),
                        _ => None,
                    }
                    .ok_or_else(|| {
                        ModuleError::msg(format!(
                            "The value {count} for `scale[{service:?}]` is not an integer"
                        ))
                    })?;
                    if count < 0 {
                        return Err(ModuleError::msg(format!(
                            "The value {count} for `scale[{service:?}]` is negative"
                        )));
                    }
                    scale.push((service.clone(), count));
                }
                scale.sort();
            }
            Some(_) => return Err(ModuleError::msg("scale must be a dictionary")),
        }
        Ok(Settings {
            project: ComposeProject::from_args(args)?,
            state,
            dependencies: args.bool("dependencies", true)?,
            pull: args.choice("pull", &["always", "missing", "never", "policy"], "policy")?,
            build: args.choice("build", &["always", "never", "policy"], "policy")?,
            recreate: args.choice("recreate", &["always", "never", "auto"], "auto")?,
            renew_anon_volumes: args.bool("renew_anon_volumes", false)?,
            remove_images: match args.str("remove_images")? {
                None => None,
                Some(_) => Some(args.choice("remove_images", &["all", "local"], "all")?),
            },
            remove_volumes: args.bool("remove_volumes", false)?,
            remove_orphans: args.bool("remove_orphans", false)?,
            timeout: args.int("timeout")?,
            services: args.list("services")?.unwrap_or_default(),
            scale,
            wait: args.bool("wait", false)?,
            wait_timeout: args.int("wait_timeout")?,
        })
    }

    /// `up` as community.docker's `get_up_cmd` builds it.
    fn up_cmd(&self, dry_run: bool, no_start: bool) -> Vec<String> {
        let mut args = words(&["up", "--detach", "--no-color", "--quiet-pull"]);
        if self.pull != "policy" {
            args.extend(words(&["--pull", &self.pull]));
        }
        if self.remove_orphans {
            args.push("--remove-orphans".into());
        }
        match self.recreate.as_str() {
            "always" => args.push("--force-recreate".into()),
            "never" => args.push("--no-recreate".into()),
            _ => {}
        }
        if self.renew_anon_volumes {
            args.push("--renew-anon-volumes".into());
        }
        if !self.dependencies {
            args.push("--no-deps".into());
        }
        if let Some(t) = self.timeout {
            args.extend(["--timeout".into(), t.to_string()]);
        }
        match self.build.as_str() {
            "always" => args.push("--build".into()),
            "never" => args.push("--no-build".into()),
            _ => {}
        }
        for (service, count) in &self.scale {
            args.extend(["--scale".into(), format!("{service}={count}")]);
        }
        if self.wait {
            args.push("--wait".into());
            if let Some(t) = self.wait_timeout {
                args.extend(["--wait-timeout".into(), t.to_string()]);
            }
        }
        if no_start {
            args.push("--no-start".into());
        }
        self.finish(args, dry_run)
    }

    fn stop_cmd(&self, dry_run: bool) -> Vec<String> {
        let mut args = words(&["stop"]);
        if let Some(t) = self.timeout {
            args.extend(["--timeout".into(), t.to_string()]);
        }
        self.finish(args, dry_run)
    }

    fn restart_cmd(&self, dry_run: bool) -> Vec<String> {
        let mut args = words(&["restart"]);
        if !self.dependencies {
            args.push("--no-deps".into());
        }
        if let Some(t) = self.timeout {
            args.extend(["--timeout".into(), t.to_string()]);
        }
        self.finish(args, dry_run)
    }

    fn down_cmd(&self, dry_run: bool) -> Vec<String> {
        let mut args = words(&["down"]);
        if self.remove_orphans {
            args.push("--remove-orphans".into());
        }
        if let Some(rmi) = &self.remove_images {
            args.extend(["--rmi".into(), rmi.clone()]);
        }
        if self.remove_volumes {
            args.push("--volumes".into());
        }
        if let Some(t) = self.timeout {
            args.extend(["--timeout".into(), t.to_string()]);
        }
        self.finish(args, dry_run)
    }

    fn finish(&self, mut args: Vec<String>, dry_run: bool) -> Vec<String> {
        if dry_run {
            args.push("--dry-run".into());
        }
        args.push("--".into());
        args.extend(self.services.iter().cloned());
        args
    }

    /// The main command of the state (for `stopped`, the `up --no-start` that comes first).
    fn main_cmd(&self, dry_run: bool) -> Vec<String> {
        match self.state {
            State::Present => self.up_cmd(dry_run, false),
            State::Stopped => self.up_cmd(dry_run, true),
            State::Restarted => self.restart_cmd(dry_run),
            State::Absent => self.down_cmd(dry_run),
        }
    }

    /// Whether the real command must run even when the dry run shows no change: pulling and
    /// building `always` do work a dry run cannot see.
    fn always_runs(&self) -> bool {
        self.state == State::Present && (self.pull == "always" || self.build == "always")
    }
}

/// Check mode on a host where the project cannot be read yet (`why`: no docker, no project
/// directory or Compose file), because the earlier tasks that install or write them did not run:
/// the project would be created (and started, unless `stopped`) then, and `absent` has nothing to
/// remove. A real run never gets here: the same things missing fail the task.
fn not_yet_plan(state: State, why: &str) -> Plan {
    let changed = state != State::Absent;
    let mut result = Map::new();
    let msg = if changed {
        format!("check mode: {why}; predicting that the project would be created, as an earlier task would provide it")
    } else {
        format!("check mode: {why}; there is no project to remove")
    };
    result.insert("warnings".into(), json!([msg.clone()]));
    result.insert("msg".into(), json!(msg));
    result.insert("containers".into(), json!([]));
    result.insert("images".into(), json!([]));
    Plan {
        changed,
        result,
        ..Plan::default()
    }
}

/// Container states community.docker counts as stopped.
const STOPPED_STATES: &[&str] = &["created", "exited", "stopped", "killed"];

fn all_stopped(containers: &[Value]) -> bool {
    containers.iter().all(|c| {
        c.get("State")
            .and_then(Value::as_str)
            .is_some_and(|s| STOPPED_STATES.contains(&s))
    })
}

/// Shell test: does `ps --format json --all` list a container that is not stopped?
fn running_probe(project: &ComposeProject) -> String {
    let ps = project.command(&words(&["ps", "--format", "json", "--all"]));
    format!(
        "{ps} 2>/dev/null | grep -o '\"State\":\"[a-z]*\"' | grep -qvE '\"State\":\"({})\"'",
        STOPPED_STATES.join("|")
    )
}

/// Parses the main step's events into an outcome, failing on a non-zero exit.
fn main_outcome(
    settings: &Settings,
    run: &ScriptRun,
    step_name: &str,
    sub: &[String],
    dry_run: bool,
    outcome: &mut Outcome,
) -> Result<(), ModuleError> {
    let step = run.step(step_name).ok_or_else(|| missing_step(&sub[0]))?;
    let events = run.events(&step, dry_run, &mut outcome.warnings);
    if step.rc != 0 {
        return Err(step_failure(&settings.project, run, sub, &step, &events));
    }
    // `up` pulls with every run under `pull: always`; community.docker does not count that.
    let ignore_pulls = sub[0] == "up";
    outcome.add(&step, &events, ignore_pulls);
    Ok(())
}

#[async_trait::async_trait]
impl Module for DockerComposeV2 {
    fn name(&self) -> &'static str {
        "docker_compose_v2"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let settings = Settings::from_args(args)?;
        let project = &settings.project;
        let main = settings.main_cmd(true);
        let mut steps = project.step("main", &main);
        let stop = settings.stop_cmd(true);
        if settings.state == State::Stopped {
            steps.push_str(&project.step("stop", &stop));
        }
        steps.push_str(&project.ps_step());
        steps.push_str(&project.images_step());
        let run = match plan_compose_script(env, project, MINIMUM_COMPOSE_VERSION, &steps).await? {
            Planned::Ran(run) => run,
            Planned::NotYet(why) => return Ok(not_yet_plan(settings.state, &why)),
        };

        let mut outcome = Outcome::default();
        main_outcome(&settings, &run, "main", &main, true, &mut outcome)?;
        let mut listing = Map::new();
        add_listing(&mut listing, project, &run)?;
        let containers = listing
            .get("containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let needs_stop = settings.state == State::Stopped && !all_stopped(&containers);
        if needs_stop {
            // `stop` always reports Stopping, also for stopped containers: use it only when needed.
            main_outcome(&settings, &run, "stop", &stop, true, &mut outcome)?;
        }
        let predicted = outcome.changed;
        let must_run = predicted || (settings.always_runs() && !env.check_mode());
        let mut result = outcome.into_result();
        result.extend(listing);
        Ok(Plan {
            changed: must_run,
            result,
            ..Plan::default()
        })
    }

    async fn apply(
        &self,
        env: &dyn TaskEnv,
        args: &Args,
        _plan: Plan,
    ) -> Result<Map<String, Value>, ModuleError> {
        let settings = Settings::from_args(args)?;
        let project = &settings.project;
        let main = settings.main_cmd(false);
        let stop = settings.stop_cmd(false);
        let mut steps = String::new();
        steps.push_str(&format!("if {}\n", project.step("main", &main).trim_end()));
        if settings.state == State::Stopped {
            // As community.docker: stop only what `up --no-start` left running.
            steps.push_str(&format!(
                "then if {}; then {}fi\n",
                running_probe(project),
                project.step("stop", &stop)
            ));
        } else {
            steps.push_str("then :\n");
        }
        steps.push_str("fi\n");
        steps.push_str(&project.ps_step());
        steps.push_str(&project.images_step());
        let run = run_compose_script(env, project, MINIMUM_COMPOSE_VERSION, &steps).await?;

        let mut outcome = Outcome::default();
        main_outcome(&settings, &run, "main", &main, false, &mut outcome)?;
        if run.step("stop").is_some() {
            main_outcome(&settings, &run, "stop", &stop, false, &mut outcome)?;
        }
        let changed = outcome.changed;
        let mut result = outcome.into_result();
        add_listing(&mut result, project, &run)?;
        result.insert("changed".into(), json!(changed));
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testenv::args;

    fn settings(value: Value) -> Settings {
        Settings::from_args(&args("docker_compose_v2", value)).expect("settings")
    }

    #[test]
    fn up_command_matches_community_docker() {
        let s = settings(json!({"project_src": "/srv/app"}));
        assert_eq!(
            s.up_cmd(false, false),
            words(&["up", "--detach", "--no-color", "--quiet-pull", "--"])
        );
        let s = settings(json!({
            "project_src": "/srv/app", "pull": "always", "remove_orphans": true, "recreate": "always",
            "dependencies": false, "timeout": 5, "build": "never", "scale": {"web": 2, "db": "1"},
            "wait": true, "wait_timeout": 30, "services": ["web", "db"], "renew_anon_volumes": true,
        }));
        assert_eq!(
            s.up_cmd(true, false),
            words(&[
                "up",
                "--detach",
                "--no-color",
                "--quiet-pull",
                "--pull",
                "always",
                "--remove-orphans",
                "--force-recreate",
                "--renew-anon-volumes",
                "--no-deps",
                "--timeout",
                "5",
                "--no-build",
                "--scale",
                "db=1",
                "--scale",
                "web=2",
                "--wait",
                "--wait-timeout",
                "30",
                "--dry-run",
                "--",
                "web",
                "db",
            ])
        );
        let s =
            settings(json!({"project_src": "/srv/app", "recreate": "never", "state": "stopped"}));
        assert_eq!(
            s.main_cmd(false),
            words(&[
                "up",
                "--detach",
                "--no-color",
                "--quiet-pull",
                "--no-recreate",
                "--no-start",
                "--"
            ])
        );
    }

    #[test]
    fn other_states_map_to_their_commands() {
        let s = settings(json!({
            "project_src": "/p", "state": "absent", "remove_images": "local", "remove_volumes": true,
            "remove_orphans": true, "timeout": 3,
        }));
        assert_eq!(
            s.main_cmd(true),
            words(&[
                "down",
                "--remove-orphans",
                "--rmi",
                "local",
                "--volumes",
                "--timeout",
                "3",
                "--dry-run",
                "--"
            ])
        );
        let s = settings(
            json!({"project_src": "/p", "state": "restarted", "dependencies": "no", "services": "web"}),
        );
        assert_eq!(
            s.main_cmd(false),
            words(&["restart", "--no-deps", "--", "web"])
        );
        let s = settings(json!({"project_src": "/p", "state": "stopped", "timeout": 1}));
        assert_eq!(
            s.stop_cmd(true),
            words(&["stop", "--timeout", "1", "--dry-run", "--"])
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        let fail = |v: Value| Settings::from_args(&args("docker_compose_v2", v)).err();
        assert!(fail(json!({})).is_some());
        assert!(fail(json!({"project_src": "/p", "state": "running"})).is_some());
        assert!(fail(json!({"project_src": "/p", "scale": {"web": -1}})).is_some());
        assert!(fail(json!({"project_src": "/p", "definition": {"services": {}}})).is_some());
    }

    #[test]
    fn pull_always_runs_for_real_but_missing_does_not() {
        assert!(settings(json!({"project_src": "/p", "pull": "always"})).always_runs());
        assert!(!settings(json!({"project_src": "/p", "pull": "missing"})).always_runs());
        assert!(
            !settings(json!({"project_src": "/p", "pull": "always", "state": "absent"}))
                .always_runs()
        );
    }

    #[test]
    fn stopped_means_every_container_is_in_a_stopped_state() {
        assert!(all_stopped(&[]));
        assert!(all_stopped(&[
            json!({"State": "exited"}),
            json!({"State": "created"})
        ]));
        assert!(!all_stopped(&[
            json!({"State": "exited"}),
            json!({"State": "running"})
        ]));
    }

    #[test]
    fn spec_lists_module_and_common_arguments() {
        let names: Vec<&str> = SPEC.args.iter().map(|a| a.name).collect();
        for wanted in [
            "state",
            "pull",
            "wait_timeout",
            "project_src",
            "files",
            "check_files_existing",
        ] {
            assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
        }
    }
}

/// The whole module against the docker stand-in (tests/support/docker-standin), run locally.
#[cfg(test)]
mod standin_tests {
    use super::*;
    use crate::modules::testenv::{args, failure, run_module, LocalEnv};

    const STANDIN: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/docker-standin/docker"
    );

    /// A project directory and a `docker` wrapper that keeps the stand-in's state in the temp dir.
    fn setup(compose: &str) -> (LocalEnv, String) {
        setup_version(compose, "2.29.7")
    }

    fn setup_version(compose: &str, version: &str) -> (LocalEnv, String) {
        let env = LocalEnv::new();
        std::fs::create_dir_all(env.path("app")).expect("mkdir");
        std::fs::write(env.path("app/compose.yaml"), compose).expect("write compose");
        let wrapper = env.path("docker");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nDOCKER_STANDIN_COMPOSE_VERSION={version} DOCKER_STANDIN_STATE_DIR={} exec python3 {STANDIN} \"$@\"\n",
                env.path("state")
            ),
        )
        .expect("write wrapper");
        std::process::Command::new("chmod")
            .args(["0755", &wrapper])
            .status()
            .expect("chmod");
        (env, wrapper)
    }

    /// Whether the task ends changed, as the executor decides: apply's `changed` overrides the plan's.
    fn changed(outcome: &crate::modules::testenv::Outcome) -> bool {
        outcome
            .result
            .get("changed")
            .and_then(Value::as_bool)
            .unwrap_or(outcome.changed)
    }

    fn state(env: &LocalEnv) -> Value {
        std::fs::read_to_string(env.path("state/state.json"))
            .map(|s| serde_json::from_str(&s).expect("state json"))
            .unwrap_or(Value::Null)
    }

    fn container_state(env: &LocalEnv, name: &str) -> Option<String> {
        state(env)["containers"][name]["state"]
            .as_str()
            .map(str::to_string)
    }

    const COMPOSE: &str = "services:\n  web:\n    image: nginx:1.25\n    environment:\n      GREETING: hello\n  db:\n    image: postgres:16\n";

    #[tokio::test]
    async fn up_is_changed_once_then_ok_and_check_mode_predicts_without_touching_state() {
        let (mut env, docker) = setup(COMPOSE);
        let task = args(
            "docker_compose_v2",
            json!({"project_src": env.path("app"), "project_name": "demo", "docker_cli": docker}),
        );
        env.check = true;
        let checked = run_module(&DockerComposeV2, &env, &task)
            .await
            .expect("check run");
        assert!(changed(&checked));
        assert!(
            state(&env).is_null(),
            "check mode wrote state: {}",
            state(&env)
        );
        let statuses: Vec<&str> = checked.result["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .filter_map(|a| a["status"].as_str())
            .collect();
        assert!(statuses.contains(&"Creating"), "{statuses:?}");

        env.check = false;
        let first = run_module(&DockerComposeV2, &env, &task)
            .await
            .expect("first run");
        assert!(changed(&first));
        assert_eq!(first.result["changed"], json!(true));
        assert_eq!(
            container_state(&env, "demo-web-1").as_deref(),
            Some("running")
        );
        let containers = first.result["containers"].as_array().expect("containers");
        assert_eq!(containers.len(), 2);
        assert_eq!(
            containers[0]["Labels"]["com.docker.compose.project"],
            json!("demo")
        );
        assert_eq!(first.result["images"].as_array().map(Vec::len), Some(2));

        let before = env.runs();
        let second = run_module(&DockerComposeV2, &env, &task)
            .await
            .expect("second run");
        assert!(!changed(&second), "{:?}", second.result);
        assert_eq!(
            env.runs() - before,
            1,
            "an unchanged run takes one round trip"
        );
        assert_eq!(second.result["actions"], json!([]));

        std::fs::write(
            env.path("app/compose.yaml"),
            COMPOSE.replace("hello", "bye"),
        )
        .expect("edit");
        env.check = true;
        let id_before = state(&env)["containers"]["demo-web-1"]["id"].clone();
        let predicted = run_module(&DockerComposeV2, &env, &task)
            .await
            .expect("check edit");
        assert!(changed(&predicted));
        assert_eq!(state(&env)["containers"]["demo-web-1"]["id"], id_before);
        env.check = false;
        let third = run_module(&DockerComposeV2, &env, &task)
            .await
            .expect("recreate");
        assert!(changed(&third));
        assert!(third.result["actions"]
            .as_array()
            .expect("actions")
            .contains(&json!({"what": "container", "id": "demo-web-1", "status": "Recreate"})));
        assert_ne!(state(&env)["containers"]["demo-web-1"]["id"], id_before);
    }

    #[tokio::test]
    async fn stopped_restarted_absent_cycle() {
        let (env, docker) = setup(COMPOSE);
        let task = |extra: Value| {
            let mut map = json!({"project_src": env.path("app"), "docker_cli": docker});
            if let (Value::Object(m), Value::Object(e)) = (&mut map, extra) {
                m.extend(e);
            }
            args("docker_compose_v2", map)
        };
        run_module(&DockerComposeV2, &env, &task(json!({})))
            .await
            .expect("up");
        let stop = task(json!({"state": "stopped"}));
        assert!(changed(
            &run_module(&DockerComposeV2, &env, &stop)
                .await
                .expect("stop")
        ));
        assert_eq!(
            container_state(&env, "app-web-1").as_deref(),
            Some("exited")
        );
        let again = run_module(&DockerComposeV2, &env, &stop)
            .await
            .expect("stop again");
        assert!(
            !changed(&again),
            "stopping stopped containers is no change: {:?}",
            again.result
        );

        let restart = task(json!({"state": "restarted"}));
        assert!(changed(
            &run_module(&DockerComposeV2, &env, &restart)
                .await
                .expect("restart")
        ));
        assert_eq!(
            container_state(&env, "app-db-1").as_deref(),
            Some("running")
        );

        let absent = task(json!({"state": "absent"}));
        assert!(changed(
            &run_module(&DockerComposeV2, &env, &absent)
                .await
                .expect("down")
        ));
        assert_eq!(state(&env)["containers"], json!({}));
        assert_eq!(state(&env)["networks"], json!({}));
        let gone = run_module(&DockerComposeV2, &env, &absent)
            .await
            .expect("down again");
        assert!(!changed(&gone));
        assert_eq!(gone.result["containers"], json!([]));
    }

    #[tokio::test]
    async fn pull_always_pulls_but_only_a_new_image_makes_a_change() {
        let (env, docker) = setup(COMPOSE);
        let up = args(
            "docker_compose_v2",
            json!({"project_src": env.path("app"), "docker_cli": docker, "pull": "always"}),
        );
        assert!(changed(
            &run_module(&DockerComposeV2, &env, &up).await.expect("up")
        ));
        let again = run_module(&DockerComposeV2, &env, &up)
            .await
            .expect("up again");
        assert!(!changed(&again), "{:?}", again.result);
        // The real command ran: its pull events are in the actions.
        assert!(again.result["actions"]
            .as_array()
            .expect("actions")
            .contains(&json!({"what": "image", "id": "web", "status": "Pulling"})));
        // A new image in the "registry": the pull recreates the container.
        std::fs::write(env.path("state/registry.json"), r#"{"nginx:1.25": "2"}"#)
            .expect("registry");
        let newer = run_module(&DockerComposeV2, &env, &up)
            .await
            .expect("newer image");
        assert!(changed(&newer));

        let pull = args(
            "docker_compose_v2_pull",
            json!({"project_src": env.path("app"), "docker_cli": docker}),
        );
        let nothing_new = run_module(
            &super::super::docker_compose_v2_pull::DockerComposeV2Pull,
            &env,
            &pull,
        )
        .await
        .expect("pull");
        assert!(!changed(&nothing_new), "{:?}", nothing_new.result);
        std::fs::write(env.path("state/registry.json"), r#"{"postgres:16": "7"}"#)
            .expect("registry");
        let fresh = run_module(
            &super::super::docker_compose_v2_pull::DockerComposeV2Pull,
            &env,
            &pull,
        )
        .await
        .expect("pull new");
        assert!(changed(&fresh), "{:?}", fresh.result);
    }

    #[tokio::test]
    async fn failures_carry_compose_messages() {
        let (env, docker) = setup(COMPOSE);
        std::fs::create_dir_all(env.path("state")).expect("mkdir");
        std::fs::write(env.path("state/registry.json"), r#"{"nginx:1.25": null}"#)
            .expect("registry");
        let up = args(
            "docker_compose_v2",
            json!({"project_src": env.path("app"), "docker_cli": docker}),
        );
        let (msg, result) = failure(run_module(&DockerComposeV2, &env, &up).await);
        assert!(msg.contains("pull access denied for nginx"), "{msg}");
        assert!(
            result["cmd"].as_str().expect("cmd").contains("up --detach"),
            "{result:?}"
        );

        let missing = args(
            "docker_compose_v2",
            json!({"project_src": env.path("nope"), "docker_cli": docker}),
        );
        let (msg, _) = failure(run_module(&DockerComposeV2, &env, &missing).await);
        assert!(msg.ends_with("nope\" is not a directory"), "{msg}");
        std::fs::create_dir_all(env.path("empty")).expect("mkdir");
        let empty = args(
            "docker_compose_v2",
            json!({"project_src": env.path("empty"), "docker_cli": docker}),
        );
        let (msg, _) = failure(run_module(&DockerComposeV2, &env, &empty).await);
        assert!(msg.contains("does not contain compose.yaml, compose.yml, docker-compose.yaml, or docker-compose.yml"), "{msg}");
    }

    #[tokio::test]
    async fn check_mode_predicts_a_project_that_earlier_tasks_would_create() {
        let (mut env, docker) = setup(COMPOSE);
        std::fs::create_dir_all(env.path("empty")).expect("mkdir");
        env.check = true;
        // No directory, no Compose file in it, no docker CLI at all: a fresh host.
        for (src, cli, why) in [
            (
                env.path("nope"),
                docker.clone(),
                "nope\" is not a directory",
            ),
            (
                env.path("empty"),
                docker.clone(),
                "does not contain compose.yaml",
            ),
            (
                env.path("app"),
                env.path("no-docker"),
                "Cannot find docker CLI",
            ),
        ] {
            for (state, predicted) in [("present", true), ("stopped", true), ("absent", false)] {
                let task = args(
                    "docker_compose_v2",
                    json!({"project_src": src, "docker_cli": cli, "state": state}),
                );
                let out = run_module(&DockerComposeV2, &env, &task)
                    .await
                    .expect("check mode predicts");
                assert_eq!(out.changed, predicted, "{state}: {:?}", out.result);
                assert!(out.skipped.is_none());
                let msg = out.result["msg"].as_str().expect("msg");
                assert!(
                    msg.starts_with("check mode: ") && msg.contains(why),
                    "{msg}"
                );
            }
        }
        assert!(state(&env).is_null(), "check mode wrote state");
        // The same in a real run stays an error.
        env.check = false;
        let task = args(
            "docker_compose_v2",
            json!({"project_src": env.path("nope"), "docker_cli": docker}),
        );
        let (msg, _) = failure(run_module(&DockerComposeV2, &env, &task).await);
        assert!(msg.ends_with("nope\" is not a directory"), "{msg}");
    }

    #[tokio::test]
    async fn older_compose_uses_plain_progress_and_too_old_compose_is_refused() {
        let (env, docker) = setup_version(COMPOSE, "2.24.0");
        let up = args(
            "docker_compose_v2",
            json!({"project_src": env.path("app"), "docker_cli": docker}),
        );
        let first = run_module(&DockerComposeV2, &env, &up).await.expect("up");
        assert!(changed(&first));
        let stderr = first.result["stderr"].as_str().expect("stderr");
        assert!(stderr.contains(" Container app-web-1  Started"), "{stderr}");
        assert!(!changed(
            &run_module(&DockerComposeV2, &env, &up)
                .await
                .expect("again")
        ));

        let (env, docker) = setup_version(COMPOSE, "2.17.3");
        let up = args(
            "docker_compose_v2",
            json!({"project_src": env.path("app"), "docker_cli": docker}),
        );
        let (msg, _) = failure(run_module(&DockerComposeV2, &env, &up).await);
        assert!(
            msg.ends_with(
                "has the compose plugin with version 2.17.3; need version 2.18.0 or later"
            ),
            "{msg}"
        );
    }
}
