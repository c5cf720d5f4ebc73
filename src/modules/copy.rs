//! `copy`: puts content (inline, a controller file, or a file already on the target) at `dest`,
//! idempotent by SHA-1 plus attributes, written atomically. `template` reuses this after rendering.
#![allow(dead_code)]

use md5::Md5;
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

use super::file_spec;
use super::filecommon::{
    self as fc, ResolvedAttrs, ValidateStyle, WantedAttrs, WriteSource, WriteSpec,
};
use super::remote::quote;
use super::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv};

pub struct Copy;

pub static SPEC: ArgSpec = file_spec!(
    Arg::opt("src"),
    Arg::opt("content"),
    Arg::req("dest"),
    Arg::opt("backup"),
    Arg::opt("force").aliases(&["thirsty"]),
    Arg::opt("directory_mode"),
    Arg::opt("remote_src"),
    Arg::opt("follow"),
    Arg::opt("local_follow"),
    Arg::opt("checksum"),
    Arg::opt("validate"),
    Arg::opt("decrypt"),
);

/// Where the new content of `dest` comes from.
pub(crate) enum Source {
    /// Bytes known on the controller.
    Bytes {
        data: Vec<u8>,
        /// The `src` result key (controller path), if any.
        src: Option<String>,
        /// Diff header for the new content (Ansible: the source path, or dest for inline content).
        after_header: Option<String>,
        /// Appended to `dest` when it is a directory; None for inline content (an error then).
        basename: Option<String>,
    },
    /// A file already on the target (`remote_src: true`).
    Remote { path: String },
}

/// The options copy and template share.
pub(crate) struct CopyOptions {
    pub dest: String,
    pub force: bool,
    pub backup: bool,
    pub follow: bool,
    pub validate: Option<String>,
    pub attrs: WantedAttrs,
    pub directory_mode: Option<String>,
}

impl CopyOptions {
    pub fn from_args(args: &Args) -> Result<CopyOptions, ModuleError> {
        Ok(CopyOptions {
            dest: args.req_str("dest")?,
            force: args.bool("force", true)?,
            backup: args.bool("backup", false)?,
            follow: args.bool("follow", false)?,
            validate: args.str("validate")?,
            attrs: WantedAttrs::from_args(args)?,
            directory_mode: args.mode("directory_mode")?,
        })
    }
}

/// What `apply` needs from the plan.
struct CopyPlan {
    /// The path actually written (dest, dest/basename, or a followed link's target).
    target: String,
    data: Option<Vec<u8>>,
    remote_src: Option<String>,
    content_changed: bool,
    attrs: ResolvedAttrs,
    validate: Option<String>,
    backup: bool,
    make_parents: Option<Option<String>>,
}

pub(crate) fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

pub(crate) async fn plan_copy(
    env: &dyn TaskEnv,
    opts: &CopyOptions,
    source: Source,
) -> Result<Plan, ModuleError> {
    let diff_max = if env.diff_mode() {
        fc::MAX_DIFF_SIZE as i64
    } else {
        -1
    };
    let basename = match &source {
        Source::Bytes { basename, .. } => basename.clone(),
        Source::Remote { path } => Some(fc::basename(path).to_string()),
    };
    let trailing_slash = opts.dest.ends_with('/');
    let mut dest = opts.dest.clone();
    if trailing_slash {
        let Some(base) = &basename else {
            return Err(ModuleError::msg("can not use content with a dir as dest"));
        };
        dest = fc::join(&dest, base);
    }

    let mut script = fc::probe_lines("dest", &dest, opts.follow, "sha1", diff_max);
    script.push_str(&fc::flag_line("dest", "isdir", "-d", &dest));
    if let Some(base) = &basename {
        script.push_str(&fc::probe_lines(
            "sub",
            &fc::join(&dest, base),
            opts.follow,
            "sha1",
            diff_max,
        ));
    }
    let parent = match fc::dirname(&dest) {
        "" => ".",
        d => d,
    };
    script.push_str(&fc::flag_line("parent", "isdir", "-d", parent));
    if let Source::Remote { path } = &source {
        script.push_str(&fc::probe_lines("src", path, true, "sha1", diff_max));
    }
    script.push_str(&opts.attrs.lookup_script());
    let (records, out) = fc::run_script(env, &script, None).await?;
    if out.rc != 0 {
        return Err(fc::script_failed("probing the destination", &out));
    }
    let attrs = opts.attrs.resolve(&records)?;

    let (mut target, mut stat) = (dest.clone(), records.stat("dest"));
    if records.flag("dest", "isdir") && !trailing_slash {
        let Some(base) = &basename else {
            return Err(ModuleError::msg("can not use content with a dir as dest"));
        };
        target = fc::join(&dest, base);
        stat = records.stat("sub");
    }

    let mut result = Map::new();
    result.insert("dest".into(), target.clone().into());
    let (new_checksum, data, remote_src, after, after_header) = match source {
        Source::Bytes {
            data,
            src,
            after_header,
            ..
        } => {
            if let Some(src) = src {
                result.insert("src".into(), src.into());
            }
            (
                sha1_hex(&data),
                Some(data.clone()),
                None,
                Some(data),
                after_header.unwrap_or_else(|| target.clone()),
            )
        }
        Source::Remote { path } => {
            let src_stat = records.stat("src");
            if !src_stat.exists {
                return Err(ModuleError::msg(format!("Source {path} not found")));
            }
            if src_stat.kind == fc::FileKind::Directory {
                return Err(ModuleError::msg(format!(
                    "copy: remote_src of a directory ({path}) is not supported by orch"
                )));
            }
            let checksum = src_stat
                .checksum
                .clone()
                .ok_or_else(|| ModuleError::msg(format!("Source {path} not readable")))?;
            result.insert("src".into(), path.clone().into());
            (checksum, None, Some(path.clone()), src_stat.content, path)
        }
    };

    if stat.exists && !opts.force {
        return Ok(Plan::unchanged(result));
    }
    if stat.exists && stat.kind == fc::FileKind::Directory {
        return Err(ModuleError::msg(format!(
            "Destination {target} is a directory"
        )));
    }
    // In check mode an earlier task may be about to create the directory: predict the file's creation
    // (the real run still fails if nothing creates it).
    if !stat.exists && !trailing_slash && !records.flag("parent", "isdir") && !env.check_mode() {
        return Err(ModuleError::msg(format!(
            "Destination directory {} does not exist",
            fc::dirname(&target)
        )));
    }
    if opts.follow && stat.is_link {
        if let Some(real) = &stat.lnk_source {
            target = real.clone();
        }
    }

    let content_changed = stat.checksum.as_deref() != Some(new_checksum.as_str());
    let attr_changes = if stat.exists && !content_changed {
        attrs.changes(&stat)?
    } else {
        Default::default()
    };
    let changed = content_changed || attr_changes.any();

    result.insert("checksum".into(), new_checksum.into());
    stat.path_info(&mut result);
    if !content_changed && stat.exists {
        result.insert("path".into(), target.clone().into());
    }

    let mut diffs = Vec::new();
    if env.diff_mode() {
        if content_changed {
            let before = if stat.exists {
                stat.content.as_deref()
            } else {
                Some(&b""[..])
            };
            if let (Some(before), Some(after)) = (before, after.as_deref()) {
                diffs.extend(fc::text_diff(&target, Some(before), &after_header, after));
            }
        } else if attr_changes.any() {
            diffs.push(fc::attr_diff(
                &target,
                Some(&target),
                &attr_changes,
                &[],
                &[],
            ));
        }
    }

    let make_parents =
        (trailing_slash && !records.flag("parent", "isdir")).then(|| opts.directory_mode.clone());
    let data = CopyPlan {
        target,
        data,
        remote_src,
        content_changed,
        attrs,
        validate: opts.validate.clone(),
        backup: opts.backup,
        make_parents,
    };
    Ok(Plan {
        changed,
        diffs,
        result,
        skip_in_check: None,
        data: Some(Box::new(data)),
    })
}

pub(crate) async fn apply_copy(
    env: &dyn TaskEnv,
    plan: Plan,
) -> Result<Map<String, Value>, ModuleError> {
    let mut result = plan.result;
    let Some(data) = plan.data.and_then(|d| d.downcast::<CopyPlan>().ok()) else {
        return Ok(result);
    };
    let stat = if data.content_changed {
        let mut script = String::new();
        if let Some(dir_mode) = &data.make_parents {
            let dir = fc::dirname(&data.target).to_string();
            script.push_str(&format!(
                "mkdir -p -- {} || orch_fail 'Could not create {}'\n",
                quote(&dir),
                dir.replace('\'', "")
            ));
            if let Some(mode) = dir_mode {
                script.push_str(&format!("chmod -- {} {}\n", quote(mode), quote(&dir)));
            }
        }
        let source = match &data.remote_src {
            Some(src) => WriteSource::Remote(src),
            None => WriteSource::Stdin,
        };
        script.push_str(&fc::write_script(&WriteSpec {
            dest: &data.target,
            source,
            attrs: &data.attrs,
            validate: data.validate.as_deref(),
            backup: data.backup,
            make_parents: false,
        })?);
        let outcome = fc::run_write(env, &script, data.data.clone(), ValidateStyle::Copy).await?;
        if let Some(backup) = outcome.backup_file {
            result.insert("backup_file".into(), backup.into());
        }
        if let Some(bytes) = &data.data {
            result.insert("md5sum".into(), hex::encode(Md5::digest(bytes)).into());
        }
        outcome.stat
    } else {
        fc::run_set_attrs(env, &data.target, &data.attrs).await?
    };
    stat.path_info(&mut result);
    Ok(result)
}

/// `content` as Ansible's copy action turns it into text: dicts and lists as JSON.
fn content_bytes(args: &Args) -> Result<Option<Vec<u8>>, ModuleError> {
    match args.value("content") {
        None => Ok(None),
        Some(v @ (Value::Object(_) | Value::Array(_))) => Ok(Some(python_json(v).into_bytes())),
        Some(_) => Ok(args.str("content")?.map(String::into_bytes)),
    }
}

/// `json.dumps(value)` with Python's default separators and ASCII escaping.
fn python_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}: {}",
                        python_json(&Value::String(k.clone())),
                        python_json(v)
                    )
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(python_json).collect::<Vec<_>>().join(", ")
        ),
        Value::String(s) => {
            let mut out = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                        let mut buf = [0u16; 2];
                        for unit in c.encode_utf16(&mut buf) {
                            out.push_str(&format!("\\u{unit:04x}"));
                        }
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        Value::Bool(true) => "true".into(),
        Value::Bool(false) => "false".into(),
        Value::Null => "null".into(),
        Value::Number(n) => n.to_string(),
    }
}

#[async_trait::async_trait]
impl Module for Copy {
    fn name(&self) -> &'static str {
        "copy"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let opts = CopyOptions::from_args(args)?;
        let content = content_bytes(args)?;
        let src = args.str("src")?;
        let source = match (content, src) {
            (Some(_), Some(_)) => {
                return Err(ModuleError::msg(
                    "parameters are mutually exclusive: content|src",
                ))
            }
            (None, None) => return Err(ModuleError::msg("src (or content) is required")),
            (Some(data), None) => Source::Bytes {
                data,
                src: None,
                after_header: None,
                basename: None,
            },
            (None, Some(src)) if args.bool("remote_src", false)? => Source::Remote { path: src },
            (None, Some(src)) => {
                let path = env.find_file("files", &src).ok_or_else(|| {
                    ModuleError::msg(format!(
                        "Could not find or access '{src}' on the Ansible Controller."
                    ))
                })?;
                if path.is_dir() {
                    return Err(ModuleError::msg(format!(
                        "copy: a directory src ('{src}') is not supported by orch yet"
                    )));
                }
                let data = std::fs::read(&path).map_err(|e| {
                    ModuleError::msg(format!("Could not read '{}': {e}", path.display()))
                })?;
                let shown = path.to_string_lossy().into_owned();
                Source::Bytes {
                    data,
                    src: Some(shown.clone()),
                    after_header: Some(shown),
                    basename: Some(fc::basename(&src).to_string()),
                }
            }
        };
        if let (Some(expected), Source::Bytes { data, .. }) = (args.str("checksum")?, &source) {
            if !expected.eq_ignore_ascii_case(&sha1_hex(data)) {
                return Err(ModuleError::msg(
                    "Copied file does not match the expected checksum. Transfer failed.",
                ));
            }
        }
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

    use super::super::testenv::{args, current_user, failure, mode_of, run_module, LocalEnv};
    use super::*;

    #[tokio::test]
    async fn content_is_written_once_then_unchanged() {
        let env = LocalEnv::new();
        let dest = env.path("out.txt");
        let a = args(
            "copy",
            json!({"content": "hello\n", "dest": dest, "mode": "0640"}),
        );
        let first = run_module(&Copy, &env, &a).await.unwrap();
        assert!(first.changed);
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "hello\n");
        assert_eq!(mode_of(&dest), 0o640);
        assert_eq!(first.result["checksum"], json!(sha1_hex(b"hello\n")));
        assert_eq!(first.result["mode"], json!("0640"));
        assert_eq!(first.result["size"], json!(6));
        assert_eq!(first.result["state"], json!("file"));
        assert!(first.result.contains_key("md5sum"));
        let second = run_module(&Copy, &env, &a).await.unwrap();
        assert!(!second.changed);
        assert_eq!(second.result["dest"], json!(dest));
        // No temp files left behind in the destination directory.
        let names: Vec<_> = std::fs::read_dir(env.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[tokio::test]
    async fn check_mode_predicts_and_changes_nothing() {
        let mut env = LocalEnv::new();
        env.check = true;
        env.diff = true;
        let dest = env.path("c.txt");
        std::fs::write(&dest, "old\n").unwrap();
        let a = args("copy", json!({"content": "new\n", "dest": dest}));
        let out = run_module(&Copy, &env, &a).await.unwrap();
        assert!(out.changed);
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "old\n");
        assert_eq!(out.diffs.len(), 1);
        assert_eq!(out.diffs[0].before, "old\n");
        assert_eq!(out.diffs[0].after, "new\n");
        assert_eq!(out.diffs[0].before_header, dest);
        assert_eq!(out.diffs[0].after_header, dest);
    }

    #[tokio::test]
    async fn mode_only_change_is_detected_and_applied() {
        let mut env = LocalEnv::new();
        env.diff = true;
        let dest = env.path("m.txt");
        std::fs::write(&dest, "x").unwrap();
        std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let (user, group) = current_user();
        let a = args(
            "copy",
            json!({"content": "x", "dest": dest, "mode": "u=rw,g=r,o=r", "owner": user, "group": group}),
        );
        let out = run_module(&Copy, &env, &a).await.unwrap();
        assert!(out.changed);
        assert_eq!(mode_of(&dest), 0o644);
        assert!(
            out.diffs[0].before.contains("\"mode\": \"0600\""),
            "{}",
            out.diffs[0].before
        );
        assert_eq!(out.result["owner"], json!(user));
        assert!(!run_module(&Copy, &env, &a).await.unwrap().changed);
    }

    #[tokio::test]
    async fn force_false_keeps_existing_file() {
        let env = LocalEnv::new();
        let dest = env.path("keep.txt");
        std::fs::write(&dest, "mine").unwrap();
        let out = run_module(
            &Copy,
            &env,
            &args(
                "copy",
                json!({"content": "theirs", "dest": dest, "force": "no"}),
            ),
        )
        .await
        .unwrap();
        assert!(!out.changed);
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "mine");
    }

    #[tokio::test]
    async fn missing_destination_directory_fails() {
        let env = LocalEnv::new();
        let dest = env.path("nodir/x.txt");
        let (msg, _) = failure(
            run_module(
                &Copy,
                &env,
                &args("copy", json!({"content": "a", "dest": dest})),
            )
            .await,
        );
        assert_eq!(
            msg,
            format!("Destination directory {} does not exist", env.path("nodir"))
        );
    }

    #[tokio::test]
    async fn failing_validate_leaves_dest_untouched() {
        let env = LocalEnv::new();
        let dest = env.path("v.conf");
        std::fs::write(&dest, "good\n").unwrap();
        let a = args(
            "copy",
            json!({"content": "bad\n", "dest": dest, "validate": "grep -q good %s"}),
        );
        let (msg, result) = failure(run_module(&Copy, &env, &a).await);
        assert_eq!(msg, "failed to validate");
        assert_eq!(result["exit_status"], json!(1));
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "good\n");
        let names: Vec<_> = std::fs::read_dir(env.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "temp file left: {names:?}");
        let ok = args(
            "copy",
            json!({"content": "good too\n", "dest": dest, "validate": "grep -q good %s"}),
        );
        assert!(run_module(&Copy, &env, &ok).await.unwrap().changed);
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "good too\n");
    }

    #[tokio::test]
    async fn backup_and_src_into_directory() {
        let env = LocalEnv::new();
        std::fs::create_dir_all(env.dir.path().join("files")).unwrap();
        std::fs::write(env.dir.path().join("files/app.conf"), "v2\n").unwrap();
        let dir = env.path("etc");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(format!("{dir}/app.conf"), "v1\n").unwrap();
        let out = run_module(
            &Copy,
            &env,
            &args(
                "copy",
                json!({"src": "app.conf", "dest": dir, "backup": true}),
            ),
        )
        .await
        .unwrap();
        assert!(out.changed);
        assert_eq!(out.result["dest"], json!(format!("{dir}/app.conf")));
        let backup = out.result["backup_file"].as_str().unwrap().to_string();
        assert!(
            backup.starts_with(&format!("{dir}/app.conf.")) && backup.ends_with('~'),
            "{backup}"
        );
        assert_eq!(std::fs::read_to_string(&backup).unwrap(), "v1\n");
        assert_eq!(
            std::fs::read_to_string(format!("{dir}/app.conf")).unwrap(),
            "v2\n"
        );
    }

    #[tokio::test]
    async fn remote_src_copies_on_target() {
        let env = LocalEnv::new();
        let src = env.path("a.bin");
        std::fs::write(&src, [0u8, 1, 2]).unwrap();
        let dest = env.path("b.bin");
        let a = args(
            "copy",
            json!({"src": src, "dest": dest, "remote_src": true}),
        );
        assert!(run_module(&Copy, &env, &a).await.unwrap().changed);
        assert_eq!(std::fs::read(&dest).unwrap(), vec![0u8, 1, 2]);
        assert!(!run_module(&Copy, &env, &a).await.unwrap().changed);
    }

    #[tokio::test]
    async fn content_is_sent_on_stdin_not_in_the_script() {
        let env = LocalEnv::new();
        let dest = env.path("secret");
        let a = args(
            "copy",
            json!({"content": "s3cr3t-value", "dest": dest, "mode": "0600"}),
        );
        let plan = Copy.plan(&env, &a).await.unwrap();
        Copy.apply(&env, &a, plan).await.unwrap();
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "s3cr3t-value");
        assert!(!env.scripts().is_empty());
        assert!(env.scripts().iter().all(|s| !s.contains("s3cr3t")));
    }

    #[test]
    fn dict_content_is_python_json() {
        assert_eq!(
            python_json(&json!({"a": [1, "é"], "b": true})),
            "{\"a\": [1, \"\\u00e9\"], \"b\": true}"
        );
    }
}
