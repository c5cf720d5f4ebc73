//! `stat`: facts about one path, as Ansible's `stat` module returns them. Read-only.
#![allow(dead_code)]

use serde_json::{Map, Value};

use super::filecommon::{self as fc, FileKind};
use super::remote::quote;
use super::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv};

pub struct Stat;

pub static SPEC: ArgSpec = ArgSpec {
    args: &[
        Arg::req("path").aliases(&["dest", "name"]),
        Arg::opt("follow"),
        Arg::opt("get_checksum"),
        Arg::opt("checksum_algorithm")
            .aliases(&["checksum", "checksum_algo"])
            .choices(ALGORITHMS),
        Arg::opt("get_mime").aliases(&["mime", "mime_type", "mime-type"]),
        Arg::opt("get_attributes").aliases(&["attr", "attributes"]),
        Arg::opt("get_md5"),
    ],
    free_form: None,
    any_keys: false,
};

const ALGORITHMS: &[&str] = &["md5", "sha1", "sha224", "sha256", "sha384", "sha512"];

#[async_trait::async_trait]
impl Module for Stat {
    fn name(&self) -> &'static str {
        "stat"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let path = args.req_str("path")?;
        let follow = args.bool("follow", false)?;
        let algorithm = if args.bool("get_checksum", true)? {
            args.choice("checksum_algorithm", ALGORITHMS, "sha1")?
        } else {
            "none".to_string()
        };
        let get_mime = args.bool("get_mime", true)?;
        let l = if follow { "-L " } else { "" };
        let mut script = fc::probe_lines("p", &path, follow, &algorithm, -1);
        script.push_str(&format!(
            "orch_kv p blocks \"$(stat {l}-c '%b/%B' -- {} 2>/dev/null)\"\n",
            quote(&path)
        ));
        if get_mime {
            script.push_str(&format!(
                "if command -v file >/dev/null 2>&1; then orch_kv p mime \"$(file {}-b --mime-type -- {q} 2>/dev/null)/$(file {}-b --mime-encoding -- {q} 2>/dev/null)\"; fi\n",
                if follow { "-L " } else { "" },
                if follow { "-L " } else { "" },
                q = quote(&path)
            ));
        }
        let (records, out) = fc::run_script(env, &script, None).await?;
        if out.rc != 0 {
            return Err(fc::script_failed("stat", &out));
        }
        let st = records.stat("p");
        let mut stat = Map::new();
        if !st.exists {
            stat.insert("exists".into(), false.into());
        } else {
            fill_stat(&mut stat, &path, &st);
            if let Some((blocks, block_size)) =
                records.get("p", "blocks").and_then(|b| b.split_once('/'))
            {
                stat.insert("blocks".into(), blocks.parse::<u64>().unwrap_or(0).into());
                stat.insert(
                    "block_size".into(),
                    block_size.parse::<u64>().unwrap_or(0).into(),
                );
            }
            if get_mime {
                // The probe printed "type/subtype/charset"; without `file` on the target both are unknown.
                let (mimetype, charset) =
                    match records.get("p", "mime").and_then(|m| m.rsplit_once('/')) {
                        Some((m, c)) if m.contains('/') => (m.to_string(), c.to_string()),
                        _ => ("unknown".to_string(), "unknown".to_string()),
                    };
                stat.insert("mimetype".into(), mimetype.into());
                stat.insert("charset".into(), charset.into());
            }
        }
        let mut result = Map::new();
        result.insert("stat".into(), Value::Object(stat));
        Ok(Plan::unchanged(result))
    }
}

/// Ansible's stat dictionary for an existing path.
fn fill_stat(out: &mut Map<String, Value>, path: &str, st: &fc::RemoteStat) {
    let m = st.mode;
    let bit = |b: u32| Value::Bool(m & b != 0);
    let is_link = st.kind == FileKind::Link;
    let entries: Vec<(&str, Value)> = vec![
        ("exists", true.into()),
        ("path", path.into()),
        ("mode", format!("{:04o}", m & 0o7777).into()),
        ("isdir", (st.kind == FileKind::Directory).into()),
        ("ischr", (st.kind == FileKind::Char).into()),
        ("isblk", (st.kind == FileKind::Block).into()),
        ("isreg", (st.kind == FileKind::File).into()),
        ("isfifo", (st.kind == FileKind::Fifo).into()),
        ("islnk", is_link.into()),
        ("issock", (st.kind == FileKind::Socket).into()),
        ("uid", st.uid.into()),
        ("gid", st.gid.into()),
        ("size", st.size.into()),
        ("inode", st.inode.into()),
        ("dev", st.dev.into()),
        ("nlink", st.nlink.into()),
        ("atime", (st.atime as f64).into()),
        ("mtime", (st.mtime as f64).into()),
        ("ctime", (st.ctime as f64).into()),
        ("wusr", bit(0o200)),
        ("rusr", bit(0o400)),
        ("xusr", bit(0o100)),
        ("wgrp", bit(0o020)),
        ("rgrp", bit(0o040)),
        ("xgrp", bit(0o010)),
        ("woth", bit(0o002)),
        ("roth", bit(0o004)),
        ("xoth", bit(0o001)),
        ("isuid", bit(0o4000)),
        ("isgid", bit(0o2000)),
        ("pw_name", st.owner.clone().into()),
        ("gr_name", st.group.clone().into()),
        ("readable", st.readable.into()),
        ("writeable", st.writeable.into()),
        ("executable", st.executable.into()),
    ];
    for (k, v) in entries {
        out.insert(k.into(), v);
    }
    if is_link {
        out.insert(
            "lnk_source".into(),
            st.lnk_source.clone().unwrap_or_default().into(),
        );
        out.insert(
            "lnk_target".into(),
            st.lnk_target.clone().unwrap_or_default().into(),
        );
    }
    if let Some(sum) = &st.checksum {
        out.insert("checksum".into(), sum.clone().into());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testenv::{args, current_user, run_module, LocalEnv};
    use super::*;

    #[tokio::test]
    async fn reports_files_links_and_missing_paths() {
        let env = LocalEnv::new();
        let file = env.path("f.txt");
        std::fs::write(&file, "hello\n").unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o640))
            .unwrap();
        let out = run_module(&Stat, &env, &args("stat", json!({"path": file})))
            .await
            .unwrap();
        assert!(!out.changed);
        let st = &out.result["stat"];
        assert_eq!(st["exists"], json!(true));
        assert_eq!(st["isreg"], json!(true));
        assert_eq!(st["mode"], json!("0640"));
        assert_eq!(st["size"], json!(6));
        assert_eq!(
            st["checksum"],
            json!("f572d396fae9206628714fb2ce00f72e94f2258f")
        );
        assert_eq!(st["pw_name"], json!(current_user().0));
        assert_eq!(st["rgrp"], json!(true));
        assert_eq!(st["roth"], json!(false));

        let sha256 = run_module(
            &Stat,
            &env,
            &args(
                "stat",
                json!({"path": file, "checksum_algorithm": "sha256"}),
            ),
        )
        .await
        .unwrap();
        assert_eq!(
            sha256.result["stat"]["checksum"],
            json!("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")
        );

        let link = env.path("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let out = run_module(&Stat, &env, &args("stat", json!({"path": link})))
            .await
            .unwrap();
        assert_eq!(out.result["stat"]["islnk"], json!(true));
        assert_eq!(out.result["stat"]["lnk_target"], json!(file));
        assert!(out.result["stat"].get("checksum").is_none());
        let followed = run_module(
            &Stat,
            &env,
            &args("stat", json!({"path": link, "follow": true})),
        )
        .await
        .unwrap();
        assert_eq!(followed.result["stat"]["isreg"], json!(true));

        let missing = run_module(
            &Stat,
            &env,
            &args("stat", json!({"path": env.path("nope")})),
        )
        .await
        .unwrap();
        assert_eq!(missing.result["stat"], json!({"exists": false}));
    }
}
