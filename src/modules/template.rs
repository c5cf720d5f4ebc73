//! `template`: renders a controller-side template with the task's variables, then behaves as `copy`.
#![allow(dead_code)]

use serde_json::{Map, Value};

use super::copy::{apply_copy, plan_copy, CopyOptions, Source};
use super::file_spec;
use super::filecommon as fc;
use super::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv};

pub struct Template;

pub static SPEC: ArgSpec = file_spec!(
    Arg::req("src"),
    Arg::req("dest"),
    Arg::opt("backup"),
    Arg::opt("force"),
    Arg::opt("follow"),
    Arg::opt("validate"),
    Arg::opt("newline_sequence").choices(&["\n", "\r", "\r\n"]),
    Arg::opt("trim_blocks"),
    Arg::opt("lstrip_blocks"),
    Arg::opt("block_start_string"),
    Arg::opt("block_end_string"),
    Arg::opt("variable_start_string"),
    Arg::opt("variable_end_string"),
    Arg::opt("comment_start_string"),
    Arg::opt("comment_end_string"),
    Arg::opt("output_encoding"),
);

/// Template environment options the renderer (shared with the whole run) cannot vary per task.
fn reject_unsupported_options(args: &Args) -> Result<(), ModuleError> {
    let fixed = [("trim_blocks", true), ("lstrip_blocks", false)];
    for (name, default) in fixed {
        if args.bool(name, default)? != default {
            return Err(ModuleError::msg(format!(
                "template: {name}={} is not supported by orch",
                !default
            )));
        }
    }
    for name in [
        "block_start_string",
        "block_end_string",
        "variable_start_string",
        "variable_end_string",
        "comment_start_string",
        "comment_end_string",
    ] {
        if args.has(name) {
            return Err(ModuleError::msg(format!(
                "template: custom delimiters ({name}) are not supported by orch"
            )));
        }
    }
    if let Some(enc) = args.str("output_encoding")? {
        if !matches!(
            enc.to_ascii_lowercase().replace('_', "-").as_str(),
            "utf-8" | "utf8"
        ) {
            return Err(ModuleError::msg(format!(
                "template: output_encoding {enc} is not supported by orch (utf-8 only)"
            )));
        }
    }
    Ok(())
}

/// Jinja's `newline_sequence`: every line break of the output becomes `sequence`.
fn apply_newline_sequence(text: String, sequence: &str) -> String {
    if sequence == "\n" {
        return text;
    }
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\n', sequence)
}

#[async_trait::async_trait]
impl Module for Template {
    fn name(&self) -> &'static str {
        "template"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        reject_unsupported_options(args)?;
        let opts = CopyOptions::from_args(args)?;
        let src = args.req_str("src")?;
        let newline = args.choice("newline_sequence", &["\n", "\r", "\r\n"], "\n")?;
        let path = env.find_file("templates", &src).ok_or_else(|| {
            ModuleError::msg(format!(
                "Could not find or access '{src}' on the Ansible Controller."
            ))
        })?;
        let rendered = env.render_template_file(&path).map_err(ModuleError::msg)?;
        let data = apply_newline_sequence(rendered, &newline).into_bytes();
        let shown = path.to_string_lossy().into_owned();
        let source = Source::Bytes {
            data,
            src: Some(shown.clone()),
            after_header: Some(shown),
            basename: Some(fc::basename(&src).to_string()),
        };
        plan_copy(env, &opts, source).await
    }

    async fn apply(
        &self,
        env: &dyn TaskEnv,
        _args: &Args,
        plan: Plan,
    ) -> Result<Map<String, Value>, ModuleError> {
        apply_copy(env, plan).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testenv::{args, failure, run_module, LocalEnv};
    use super::*;

    fn env_with_template(body: &str) -> LocalEnv {
        let mut env = LocalEnv::new();
        std::fs::create_dir_all(env.dir.path().join("templates")).unwrap();
        std::fs::write(env.dir.path().join("templates/motd.j2"), body).unwrap();
        env.vars.insert("name".into(), json!("web1"));
        env
    }

    #[tokio::test]
    async fn renders_writes_and_is_idempotent() {
        let mut env = env_with_template("host {{ name }}\n");
        env.diff = true;
        let dest = env.path("motd");
        let a = args(
            "template",
            json!({"src": "motd.j2", "dest": dest, "mode": "0644"}),
        );
        let out = run_module(&Template, &env, &a).await.unwrap();
        assert!(out.changed);
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "host web1\n");
        assert_eq!(out.diffs[0].before, "");
        assert_eq!(out.diffs[0].after, "host web1\n");
        assert!(out.diffs[0].after_header.ends_with("templates/motd.j2"));
        assert!(!run_module(&Template, &env, &a).await.unwrap().changed);
    }

    #[tokio::test]
    async fn newline_sequence_crlf() {
        let env = env_with_template("a\nb\n");
        let dest = env.path("crlf");
        run_module(
            &Template,
            &env,
            &args(
                "template",
                json!({"src": "motd.j2", "dest": dest, "newline_sequence": "\r\n"}),
            ),
        )
        .await
        .unwrap();
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "a\r\nb\r\n");
    }

    #[tokio::test]
    async fn missing_template_and_unsupported_options_fail() {
        let env = env_with_template("x");
        let (msg, _) = failure(
            run_module(
                &Template,
                &env,
                &args("template", json!({"src": "nope.j2", "dest": env.path("d")})),
            )
            .await,
        );
        assert!(msg.contains("Could not find or access 'nope.j2'"), "{msg}");
        let (msg, _) = failure(
            run_module(
                &Template,
                &env,
                &args(
                    "template",
                    json!({"src": "motd.j2", "dest": env.path("d"), "lstrip_blocks": true}),
                ),
            )
            .await,
        );
        assert!(msg.contains("lstrip_blocks"), "{msg}");
    }
}
