//! Modules that run on the controller only: `set_fact`, `debug`, `assert`, `fail`, `pause`.

use serde_json::{json, Map, Value};

use super::args::to_bool;
use super::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv};

pub struct SetFact;
pub struct Debug;
pub struct Assert;
pub struct Fail;
pub struct Pause;

static SET_FACT_SPEC: ArgSpec = ArgSpec {
    args: &[],
    free_form: None,
    any_keys: true,
};
static DEBUG_SPEC: ArgSpec = ArgSpec {
    args: &[
        Arg::opt("msg"),
        Arg::opt("var").raw(),
        Arg::opt("verbosity"),
    ],
    free_form: None,
    any_keys: false,
};
static ASSERT_SPEC: ArgSpec = ArgSpec {
    args: &[
        Arg::req("that").raw(),
        Arg::opt("fail_msg").aliases(&["msg"]),
        Arg::opt("success_msg"),
        Arg::opt("quiet"),
    ],
    free_form: None,
    any_keys: false,
};
static FAIL_SPEC: ArgSpec = ArgSpec {
    args: &[Arg::opt("msg")],
    free_form: None,
    any_keys: false,
};
static PAUSE_SPEC: ArgSpec = ArgSpec {
    args: &[
        Arg::opt("seconds"),
        Arg::opt("minutes"),
        Arg::opt("prompt"),
        Arg::opt("echo"),
    ],
    free_form: None,
    any_keys: false,
};

#[async_trait::async_trait]
impl Module for SetFact {
    fn name(&self) -> &'static str {
        "set_fact"
    }
    fn spec(&self) -> &'static ArgSpec {
        &SET_FACT_SPEC
    }
    async fn plan(&self, _env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let mut facts = args.map.clone();
        facts.remove("cacheable");
        if facts.is_empty() {
            return Err(ModuleError::msg(
                "No key/value pairs provided, at least one is required for this action to succeed",
            ));
        }
        let mut result = Map::new();
        result.insert("ansible_facts".into(), Value::Object(facts));
        Ok(Plan::unchanged(result))
    }
}

#[async_trait::async_trait]
impl Module for Debug {
    fn name(&self) -> &'static str {
        "debug"
    }
    fn spec(&self) -> &'static ArgSpec {
        &DEBUG_SPEC
    }
    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let mut result = Map::new();
        if let Some(var) = args.str("var")? {
            let value = match env.eval_expr(&var) {
                Ok(v) => v,
                Err(e) if e.contains("undefined") => {
                    Value::String("VARIABLE IS NOT DEFINED!".into())
                }
                Err(e) => return Err(ModuleError::msg(e)),
            };
            result.insert(var, value);
        } else {
            let msg = args
                .value("msg")
                .cloned()
                .unwrap_or_else(|| json!("Hello world!"));
            result.insert("msg".into(), msg);
        }
        Ok(Plan::unchanged(result))
    }
}

#[async_trait::async_trait]
impl Module for Assert {
    fn name(&self) -> &'static str {
        "assert"
    }
    fn spec(&self) -> &'static ArgSpec {
        &ASSERT_SPEC
    }
    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let that: Vec<String> = match args.value("that") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
                    other => other.to_string(),
                })
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Bool(b)) => vec![if *b { "True" } else { "False" }.to_string()],
            _ => return Err(ModuleError::msg("missing required arguments: that")),
        };
        for condition in &that {
            let value = env.eval_expr(condition).map_err(ModuleError::msg)?;
            let truthy = is_truthy(&value);
            if !truthy {
                let msg = args
                    .value("fail_msg")
                    .cloned()
                    .unwrap_or_else(|| json!("Assertion failed"));
                let mut result = Map::new();
                result.insert("assertion".into(), json!(condition));
                result.insert("evaluated_to".into(), json!(false));
                return Err(ModuleError::with_result(value_text(&msg), result));
            }
        }
        let mut result = Map::new();
        let quiet = args.bool("quiet", false)?;
        if !quiet {
            let msg = args
                .value("success_msg")
                .cloned()
                .unwrap_or_else(|| json!("All assertions passed"));
            result.insert("msg".into(), msg);
        }
        Ok(Plan::unchanged(result))
    }
}

#[async_trait::async_trait]
impl Module for Fail {
    fn name(&self) -> &'static str {
        "fail"
    }
    fn spec(&self) -> &'static ArgSpec {
        &FAIL_SPEC
    }
    async fn plan(&self, _env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let msg = args
            .value("msg")
            .cloned()
            .unwrap_or_else(|| json!("Failed as requested from task"));
        Err(ModuleError::msg(value_text(&msg)))
    }
}

#[async_trait::async_trait]
impl Module for Pause {
    fn name(&self) -> &'static str {
        "pause"
    }
    fn spec(&self) -> &'static ArgSpec {
        &PAUSE_SPEC
    }
    async fn plan(&self, _env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let seconds =
            args.float("seconds")?.unwrap_or(0.0) + args.float("minutes")?.unwrap_or(0.0) * 60.0;
        if seconds <= 0.0 {
            return Err(ModuleError::msg(
                "pause needs seconds or minutes: orch runs unattended and does not prompt",
            ));
        }
        let started = std::time::Instant::now();
        tokio::time::sleep(std::time::Duration::from_secs_f64(seconds)).await;
        let mut result = Map::new();
        result.insert("delta".into(), json!(started.elapsed().as_secs()));
        result.insert("echo".into(), json!(true));
        result.insert("user_input".into(), json!(""));
        result.insert(
            "stdout".into(),
            json!(format!("Paused for {} seconds", seconds)),
        );
        Ok(Plan::unchanged(result))
    }
}

/// Jinja/Python truthiness of a JSON value.
pub fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => to_bool(v).unwrap_or(!s.is_empty()),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
