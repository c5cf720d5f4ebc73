//! `community.docker.docker_compose_v2_pull`: `docker compose pull` for a project.
//!
//! As in community.docker: with `policy: missing` the task is changed when Compose pulled an image
//! that was missing; with `policy: always` (the default) it is changed when image layers were
//! downloaded (the image was new or changed), and in check mode it always reports a change, since
//! Compose cannot tell beforehand whether the registry has something newer. The plan runs
//! `pull --dry-run`; under `always` the real pull runs on every non-check run.

use serde_json::{json, Map, Value};

use super::compose_v2::{
    compose_args, missing_step, plan_compose_script, run_compose_script, step_failure, words,
    ComposeProject, Outcome, Planned, ScriptRun, MINIMUM_COMPOSE_VERSION,
};
use super::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv};

pub struct DockerComposeV2Pull;

static SPEC: ArgSpec = ArgSpec {
    args: compose_args![
        Arg::opt("policy").choices(&["always", "missing"]),
        Arg::opt("ignore_buildable"),
        Arg::opt("include_deps"),
        Arg::opt("services"),
    ],
    free_form: None,
    any_keys: false,
};

struct Settings {
    project: ComposeProject,
    policy: String,
    ignore_buildable: bool,
    include_deps: bool,
    services: Vec<String>,
}

impl Settings {
    fn from_args(args: &Args) -> Result<Settings, ModuleError> {
        Ok(Settings {
            project: ComposeProject::from_args(args)?,
            policy: args.choice("policy", &["always", "missing"], "always")?,
            ignore_buildable: args.bool("ignore_buildable", false)?,
            include_deps: args.bool("include_deps", false)?,
            services: args.list("services")?.unwrap_or_default(),
        })
    }

    /// community.docker's `get_pull_cmd`.
    fn pull_cmd(&self, dry_run: bool) -> Vec<String> {
        let mut args = words(&["pull"]);
        if self.policy != "always" {
            args.extend(["--policy".into(), self.policy.clone()]);
        }
        if self.ignore_buildable {
            args.push("--ignore-buildable".into());
        }
        if self.include_deps {
            args.push("--include-deps".into());
        }
        if dry_run {
            args.push("--dry-run".into());
        }
        args.push("--".into());
        args.extend(self.services.iter().cloned());
        args
    }

    /// Features newer than the modules' minimum Compose version.
    fn check_version(&self, run: &ScriptRun) -> Result<(), ModuleError> {
        let cli = &self.project.docker_cli;
        if self.policy != "always" && !run.version_at_least("2.22.0") {
            return Err(ModuleError::msg(format!(
                "A pull policy other than always is only supported since Docker Compose 2.22.0. {cli} has version {}",
                run.version
            )));
        }
        if self.ignore_buildable && !run.version_at_least("2.15.0") {
            return Err(ModuleError::msg(format!(
                "--ignore-buildable is only supported since Docker Compose 2.15.0. {cli} has version {}",
                run.version
            )));
        }
        Ok(())
    }

    /// Reads the events of a `pull` step (dry or real) that `run` made with `sub`.
    fn outcome(
        &self,
        run: &ScriptRun,
        sub: &[String],
        dry_run: bool,
    ) -> Result<Outcome, ModuleError> {
        self.check_version(run)?;
        let step = run.step("pull").ok_or_else(|| missing_step("pull"))?;
        let mut outcome = Outcome::default();
        let events = run.events(&step, dry_run, &mut outcome.warnings);
        if step.rc != 0 {
            return Err(step_failure(&self.project, run, sub, &step, &events));
        }
        // A real `always` pull reports Pulling for every image: only downloaded layers are changes.
        let ignore_service_pulls = self.policy != "missing" && !dry_run;
        outcome.add(&step, &events, ignore_service_pulls);
        Ok(outcome)
    }
}

#[async_trait::async_trait]
impl Module for DockerComposeV2Pull {
    fn name(&self) -> &'static str {
        "docker_compose_v2_pull"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let settings = Settings::from_args(args)?;
        let sub = settings.pull_cmd(true);
        let steps = settings.project.step("pull", &sub);
        let run = match plan_compose_script(env, &settings.project, MINIMUM_COMPOSE_VERSION, &steps)
            .await?
        {
            Planned::Ran(run) => run,
            Planned::NotYet(why) => {
                // Check mode before docker or the project exists: nothing is pulled yet.
                let msg = format!(
                        "check mode: {why}; predicting that the images would be pulled, as an earlier task would provide it"
                    );
                let mut result = Map::new();
                result.insert("warnings".into(), json!([msg.clone()]));
                result.insert("msg".into(), json!(msg));
                return Ok(Plan {
                    changed: true,
                    result,
                    ..Plan::default()
                });
            }
        };
        let outcome = settings.outcome(&run, &sub, true)?;
        let predicted = outcome.changed;
        // Under `always`, whether something new arrives is only known by pulling.
        let must_run = predicted || (settings.policy == "always" && !env.check_mode());
        Ok(Plan {
            changed: must_run,
            result: outcome.into_result(),
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
        let sub = settings.pull_cmd(false);
        let steps = settings.project.step("pull", &sub);
        let run =
            run_compose_script(env, &settings.project, MINIMUM_COMPOSE_VERSION, &steps).await?;
        let outcome = settings.outcome(&run, &sub, false)?;
        let changed = outcome.changed;
        let mut result = outcome.into_result();
        result.insert("changed".into(), json!(changed));
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testenv::args;

    fn settings(value: Value) -> Settings {
        Settings::from_args(&args("docker_compose_v2_pull", value)).expect("settings")
    }

    #[test]
    fn pull_command_matches_community_docker() {
        assert_eq!(
            settings(json!({"project_src": "/p"})).pull_cmd(false),
            words(&["pull", "--"])
        );
        assert_eq!(
            settings(json!({
                "project_src": "/p", "policy": "missing", "ignore_buildable": true,
                "include_deps": true, "services": ["web"],
            }))
            .pull_cmd(true),
            words(&[
                "pull",
                "--policy",
                "missing",
                "--ignore-buildable",
                "--include-deps",
                "--dry-run",
                "--",
                "web"
            ])
        );
    }

    #[tokio::test]
    async fn check_mode_predicts_pulls_for_a_project_not_there_yet() {
        use crate::modules::testenv::{failure, run_module, LocalEnv};
        let mut env = LocalEnv::new();
        let task = args(
            "docker_compose_v2_pull",
            json!({"project_src": env.path("nope"), "docker_cli": env.path("no-docker")}),
        );
        env.check = true;
        let out = run_module(&DockerComposeV2Pull, &env, &task)
            .await
            .expect("predicted");
        assert!(out.changed);
        let msg = out.result["msg"].as_str().expect("msg");
        assert!(msg.contains("Cannot find docker CLI"), "{msg}");
        env.check = false;
        let (msg, _) = failure(run_module(&DockerComposeV2Pull, &env, &task).await);
        assert!(msg.starts_with("Cannot find docker CLI"), "{msg}");
    }

    #[test]
    fn unknown_policy_is_refused() {
        assert!(Settings::from_args(&args(
            "docker_compose_v2_pull",
            json!({"project_src": "/p", "policy": "never"})
        ))
        .is_err());
    }
}
