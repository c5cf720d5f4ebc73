//! `slurp`: returns a remote file's content, base64-encoded. Read-only.
#![allow(dead_code)]

use serde_json::Map;

use super::filecommon as fc;
use super::remote::quote;
use super::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv};

pub struct Slurp;

pub static SPEC: ArgSpec = ArgSpec {
    args: &[Arg::req("src").aliases(&["path"])],
    free_form: None,
    any_keys: false,
};

#[async_trait::async_trait]
impl Module for Slurp {
    fn name(&self) -> &'static str {
        "slurp"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let src = args.req_str("src")?;
        let script = format!(
            "p={q}\n\
             if [ -d \"$p\" ]; then orch_fail \"source is a directory and must be a file: $p\"; fi\n\
             if [ ! -e \"$p\" ]; then orch_fail \"file not found: $p\"; fi\n\
             if [ ! -r \"$p\" ]; then orch_fail \"file is not readable: $p\"; fi\n\
             printf '@slurp.content='; base64 -w 0 < \"$p\" || orch_fail \"unable to slurp file: $p\"; echo\n",
            q = quote(&src)
        );
        let (records, out) = fc::run_script(env, &script, None).await?;
        let content = records
            .get("slurp", "content")
            .filter(|_| out.rc == 0)
            .ok_or_else(|| fc::script_failed("slurp", &out))?;
        let mut result = Map::new();
        result.insert("content".into(), content.trim().into());
        result.insert("source".into(), src.into());
        result.insert("encoding".into(), "base64".into());
        Ok(Plan::unchanged(result))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testenv::{args, failure, run_module, LocalEnv};
    use super::*;

    #[tokio::test]
    async fn reads_base64_and_fails_like_ansible() {
        let env = LocalEnv::new();
        let file = env.path("key");
        std::fs::write(&file, [0u8, 255, b'a']).unwrap();
        let out = run_module(&Slurp, &env, &args("slurp", json!({"src": file})))
            .await
            .unwrap();
        assert_eq!(out.result["content"], json!("AP9h"));
        assert_eq!(out.result["encoding"], json!("base64"));
        assert_eq!(out.result["source"], json!(file));
        let (msg, _) = failure(
            run_module(
                &Slurp,
                &env,
                &args("slurp", json!({"src": env.path("none")})),
            )
            .await,
        );
        assert_eq!(msg, format!("file not found: {}", env.path("none")));
        let (msg, _) =
            failure(run_module(&Slurp, &env, &args("slurp", json!({"src": env.path("")}))).await);
        assert!(
            msg.starts_with("source is a directory and must be a file"),
            "{msg}"
        );
    }
}
