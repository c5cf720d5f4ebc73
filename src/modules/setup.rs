//! `setup`: gathers facts (see `crate::facts`) and returns them as `ansible_facts`, with the
//! `ansible_` prefix as Ansible's setup module does (the executor strips it when it files them under
//! `ansible_facts`, as Ansible's namespacing does).
#![allow(dead_code)]

use globset::Glob;
use serde_json::{Map, Value};

use super::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv};
use crate::facts;

pub struct Setup;

pub static SPEC: ArgSpec = ArgSpec {
    args: &[
        Arg::opt("gather_subset"),
        Arg::opt("filter"),
        Arg::opt("gather_timeout"),
        Arg::opt("fact_path"),
    ],
    free_form: None,
    any_keys: false,
};

#[async_trait::async_trait]
impl Module for Setup {
    fn name(&self) -> &'static str {
        "setup"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let subset = args
            .list("gather_subset")?
            .unwrap_or_else(|| vec!["all".to_string()]);
        let filters = args.list("filter")?.unwrap_or_default();
        let matchers = filters
            .iter()
            .map(|f| {
                Glob::new(f)
                    .map(|g| g.compile_matcher())
                    .map_err(|e| ModuleError::msg(format!("bad filter {f}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let gathered = facts::gather(env, &subset).await?;
        let mut ansible_facts = Map::new();
        for (key, value) in gathered {
            let name = format!("ansible_{key}");
            if matchers.is_empty() || matchers.iter().any(|m| m.is_match(&name)) {
                ansible_facts.insert(name, value);
            }
        }
        ansible_facts.insert("gather_subset".into(), Value::from(subset));
        ansible_facts.insert("module_setup".into(), true.into());
        let mut result = Map::new();
        result.insert("ansible_facts".into(), Value::Object(ansible_facts));
        Ok(Plan::unchanged(result))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testenv::{args, run_module, LocalEnv};
    use super::*;

    #[tokio::test]
    async fn filters_prefixed_fact_names() {
        let env = LocalEnv::new();
        let out = run_module(
            &Setup,
            &env,
            &args(
                "setup",
                json!({"filter": ["ansible_kernel*", "ansible_system"]}),
            ),
        )
        .await
        .unwrap();
        let facts = out.result["ansible_facts"].as_object().unwrap();
        assert!(facts.contains_key("ansible_kernel"));
        assert!(facts.contains_key("ansible_kernel_version"));
        assert!(facts.contains_key("ansible_system"));
        assert!(!facts.contains_key("ansible_env"));
        assert_eq!(facts["module_setup"], json!(true));
        assert!(!out.changed);
    }
}
