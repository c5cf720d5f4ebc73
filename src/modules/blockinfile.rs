//! `blockinfile`: inserts, updates or removes a block of lines between marker lines.
#![allow(dead_code)]

use serde_json::{Map, Value};

use super::file_spec;
use super::filecommon::WantedAttrs;
use super::pyregex;
use super::textedit::{self, BackupKey, EditOptions};
use super::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv};

pub struct BlockInFile;

pub static SPEC: ArgSpec = file_spec!(
    Arg::req("path").aliases(&["dest", "destfile", "name"]),
    Arg::opt("state").choices(&["present", "absent"]),
    Arg::opt("marker"),
    Arg::opt("block").aliases(&["content"]),
    Arg::opt("insertafter"),
    Arg::opt("insertbefore"),
    Arg::opt("create"),
    Arg::opt("backup"),
    Arg::opt("validate"),
    Arg::opt("marker_begin"),
    Arg::opt("marker_end"),
    Arg::opt("append_newline"),
    Arg::opt("prepend_newline"),
);

/// Where the block goes when its markers are not in the file yet.
pub(crate) enum Insert {
    AfterEof,
    BeforeBof,
    After(String),
    Before(String),
}

pub(crate) struct BlockArgs<'a> {
    pub present: bool,
    pub block: &'a str,
    pub marker: &'a str,
    pub marker_begin: &'a str,
    pub marker_end: &'a str,
    pub insert: Insert,
    pub prepend_newline: bool,
    pub append_newline: bool,
}

/// Ansible's blockinfile edit on the file's bytes (`None` when the file does not exist): the new bytes.
pub(crate) fn edit(original: Option<&[u8]>, a: &BlockArgs) -> Result<Vec<u8>, String> {
    let mut lines = original
        .map(textedit::split_lines_keepends)
        .unwrap_or_default();
    let marker0 = format!("{}\n", a.marker.replace("{mark}", a.marker_begin)).into_bytes();
    let marker1 = format!("{}\n", a.marker.replace("{mark}", a.marker_end)).into_bytes();
    let blocklines: Vec<Vec<u8>> = if a.present && !a.block.is_empty() {
        let mut block = a.block.to_string();
        if !block.ends_with('\n') {
            block.push('\n');
        }
        let mut v = vec![marker0.clone()];
        v.extend(textedit::split_lines_keepends(block.as_bytes()));
        v.push(marker1.clone());
        v
    } else {
        Vec::new()
    };

    let (mut n0, mut n1) = (None, None);
    for (i, line) in lines.iter().enumerate() {
        if *line == marker0 {
            n0 = Some(i);
        }
        if *line == marker1 {
            n1 = Some(i);
        }
    }
    let mut n0 = match (n0, n1) {
        (Some(b), Some(e)) if b < e => {
            lines.drain(b..=e);
            b
        }
        (Some(b), Some(e)) => {
            lines.drain(e..=b);
            e
        }
        _ => insert_position(&lines, original.unwrap_or(b""), &a.insert)?,
    };

    if n0 > 0 && !lines[n0 - 1].ends_with(b"\n") {
        lines[n0 - 1].push(b'\n');
    }
    if a.prepend_newline && a.present && n0 != 0 && lines[n0 - 1] != b"\n" {
        lines.insert(n0, b"\n".to_vec());
        n0 += 1;
    }
    let count = blocklines.len();
    lines.splice(n0..n0, blocklines);
    if a.append_newline && a.present {
        let after = n0 + count;
        if after < lines.len() && lines[after] != b"\n" {
            lines.insert(after, b"\n".to_vec());
        }
    }
    Ok(lines.concat())
}

fn insert_position(lines: &[Vec<u8>], original: &[u8], insert: &Insert) -> Result<usize, String> {
    let (pattern, after) = match insert {
        Insert::AfterEof => return Ok(lines.len()),
        Insert::BeforeBof => return Ok(0),
        Insert::After(p) => (p, true),
        Insert::Before(p) => (p, false),
    };
    let re = pyregex::compile(pattern)?;
    if pyregex::is_multiline(pattern) {
        // A MULTILINE pattern is searched in the whole text; the position is the line it ends (after)
        // or starts (before) on.
        return Ok(match re.find(original) {
            Some(m) if after => original[..m.end()].iter().filter(|&&b| b == b'\n').count(),
            Some(m) => original[..m.start()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count(),
            None => lines.len(),
        });
    }
    let last = lines
        .iter()
        .rposition(|l| re.is_match(textedit::search_text(l)));
    Ok(match last {
        None => lines.len(),
        Some(i) if after => i + 1,
        Some(i) => i,
    })
}

#[async_trait::async_trait]
impl Module for BlockInFile {
    fn name(&self) -> &'static str {
        "blockinfile"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        if args.has("insertafter") && args.has("insertbefore") {
            return Err(ModuleError::msg(
                "parameters are mutually exclusive: insertbefore|insertafter",
            ));
        }
        let path = args.req_str("path")?;
        let present = args.choice("state", &["present", "absent"], "present")? == "present";
        let block = args.str("block")?.unwrap_or_default();
        let marker = args
            .str("marker")?
            .unwrap_or_else(|| "# {mark} ANSIBLE MANAGED BLOCK".into());
        let marker_begin = args.str("marker_begin")?.unwrap_or_else(|| "BEGIN".into());
        let marker_end = args.str("marker_end")?.unwrap_or_else(|| "END".into());
        let create = args.bool("create", false)?;
        let insert = match (args.str("insertafter")?, args.str("insertbefore")?) {
            (Some(a), _) if a == "EOF" => Insert::AfterEof,
            (Some(a), _) => Insert::After(a),
            (None, Some(b)) if b == "BOF" => Insert::BeforeBof,
            (None, Some(b)) => Insert::Before(b),
            (None, None) => Insert::AfterEof,
        };
        if let Insert::After(p) | Insert::Before(p) = &insert {
            pyregex::compile(p).map_err(ModuleError::msg)?;
        }
        let opts = EditOptions {
            backup: args.bool("backup", false)?,
            validate: args.str("validate")?,
            backup_key: BackupKey::BackupFile,
        };
        if let Some(v) = opts.validate.as_deref().filter(|v| !v.contains("%s")) {
            return Err(ModuleError::msg(format!("validate must contain %s: {v}")));
        }
        let wanted = WantedAttrs::from_args(args)?;

        let probe = textedit::probe(env, &path, &wanted).await?;
        let fail_rc = |msg: String, rc: i64| {
            let mut result = Map::new();
            result.insert("rc".into(), rc.into());
            ModuleError::with_result(msg, result)
        };
        if probe.is_dir {
            return Err(fail_rc(format!("Path {path} is a directory !"), 256));
        }
        if !probe.exists() && !create {
            return Err(fail_rc(format!("Path {path} does not exist !"), 257));
        }
        if !present && !probe.exists() {
            let mut result = Map::new();
            result.insert("msg".into(), format!("File {path} not present").into());
            return Ok(Plan::unchanged(result));
        }
        let block_args = BlockArgs {
            present,
            block: &block,
            marker: &marker,
            marker_begin: &marker_begin,
            marker_end: &marker_end,
            insert,
            prepend_newline: args.bool("prepend_newline", false)?,
            append_newline: args.bool("append_newline", false)?,
        };
        let original = probe.exists().then(|| probe.content.clone());
        let result_bytes = edit(original.as_deref(), &block_args).map_err(ModuleError::msg)?;
        let (changed, msg) = if original.as_deref() == Some(result_bytes.as_slice()) {
            (false, "")
        } else if original.is_none() {
            (true, "File created")
        } else if !present || block.is_empty() {
            (true, "Block removed")
        } else {
            (true, "Block inserted")
        };
        textedit::plan_edit(
            env,
            probe,
            result_bytes,
            changed,
            msg.to_string(),
            opts,
            Map::new(),
        )
    }

    async fn apply(
        &self,
        env: &dyn TaskEnv,
        _args: &Args,
        plan: Plan,
    ) -> Result<Map<String, Value>, ModuleError> {
        textedit::apply_edit(env, plan).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testenv::{args, failure, run_module, LocalEnv};
    use super::*;

    fn block_args(block: &str, insert: Insert) -> BlockArgs<'_> {
        BlockArgs {
            present: true,
            block,
            marker: "# {mark} ANSIBLE MANAGED BLOCK",
            marker_begin: "BEGIN",
            marker_end: "END",
            insert,
            prepend_newline: false,
            append_newline: false,
        }
    }

    #[test]
    fn inserts_replaces_and_removes() {
        let out = edit(Some(b"a\nb"), &block_args("x\ny", Insert::AfterEof)).unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "a\nb\n# BEGIN ANSIBLE MANAGED BLOCK\nx\ny\n# END ANSIBLE MANAGED BLOCK\n"
        );
        let replaced = edit(Some(&out), &block_args("z", Insert::AfterEof)).unwrap();
        assert_eq!(
            String::from_utf8(replaced.clone()).unwrap(),
            "a\nb\n# BEGIN ANSIBLE MANAGED BLOCK\nz\n# END ANSIBLE MANAGED BLOCK\n"
        );
        let mut removal = block_args("", Insert::AfterEof);
        removal.present = false;
        assert_eq!(edit(Some(&replaced), &removal).unwrap(), b"a\nb\n");
        let top = edit(Some(b"a\n"), &block_args("x", Insert::BeforeBof)).unwrap();
        assert!(String::from_utf8(top)
            .unwrap()
            .ends_with("END ANSIBLE MANAGED BLOCK\na\n"));
        let after = edit(
            Some(b"[s]\nk=v\n[t]\n"),
            &block_args("x", Insert::After(r"^\[s\]".into())),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(after).unwrap(),
            "[s]\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\nk=v\n[t]\n"
        );
    }

    #[test]
    fn blank_lines_around_the_block() {
        let mut a = block_args("x", Insert::After("^a".into()));
        a.prepend_newline = true;
        a.append_newline = true;
        let out = edit(Some(b"a\nb\n"), &a).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a\n\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n\nb\n"
        );
    }

    #[tokio::test]
    async fn module_messages_and_idempotence() {
        let mut env = LocalEnv::new();
        let path = env.path("cfg");
        let a = args(
            "blockinfile",
            json!({"path": path, "block": "k=v", "create": true}),
        );
        env.check = true;
        let predicted = run_module(&BlockInFile, &env, &a).await.unwrap();
        assert_eq!(
            (predicted.changed, &predicted.result["msg"]),
            (true, &json!("File created"))
        );
        assert!(!std::path::Path::new(&path).exists());
        env.check = false;
        assert_eq!(
            run_module(&BlockInFile, &env, &a).await.unwrap().result["msg"],
            json!("File created")
        );
        let again = run_module(&BlockInFile, &env, &a).await.unwrap();
        assert!(!again.changed);
        let custom = args(
            "blockinfile",
            json!({"path": path, "block": "k=w", "backup": true}),
        );
        let out = run_module(&BlockInFile, &env, &custom).await.unwrap();
        assert_eq!(out.result["msg"], json!("Block inserted"));
        assert!(out.result["backup_file"].as_str().is_some());
        let gone = run_module(
            &BlockInFile,
            &env,
            &args("blockinfile", json!({"path": path, "state": "absent"})),
        )
        .await
        .unwrap();
        assert_eq!(gone.result["msg"], json!("Block removed"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        let (msg, _) = failure(
            run_module(
                &BlockInFile,
                &env,
                &args(
                    "blockinfile",
                    json!({"path": env.path("none"), "block": "x"}),
                ),
            )
            .await,
        );
        assert_eq!(msg, format!("Path {} does not exist !", env.path("none")));
        let missing = run_module(
            &BlockInFile,
            &env,
            &args(
                "blockinfile",
                json!({"path": env.path("none"), "state": "absent", "create": true}),
            ),
        )
        .await
        .unwrap();
        assert_eq!(
            missing.result["msg"],
            json!(format!("File {} not present", env.path("none")))
        );
    }
}
