//! `lineinfile`: ensures one line is present (or lines are absent) in a text file, with Ansible's
//! matching rules; the regexes are Python patterns evaluated on the controller (see `pyregex`).
#![allow(dead_code)]

use regex::bytes::Regex;
use serde_json::{Map, Value};

use super::file_spec;
use super::filecommon::WantedAttrs;
use super::pyregex;
use super::textedit::{self, BackupKey, EditOptions};
use super::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv};

pub struct LineInFile;

pub static SPEC: ArgSpec = file_spec!(
    Arg::req("path").aliases(&["dest", "destfile", "name"]),
    Arg::opt("state").choices(&["present", "absent"]),
    Arg::opt("regexp").aliases(&["regex"]),
    Arg::opt("search_string"),
    Arg::opt("line").aliases(&["value"]),
    Arg::opt("backrefs"),
    Arg::opt("insertafter"),
    Arg::opt("insertbefore"),
    Arg::opt("create"),
    Arg::opt("backup"),
    Arg::opt("firstmatch"),
    Arg::opt("validate"),
    Arg::opt("others"),
);

/// Where `line` goes when nothing matches: after/before a regex, or at EOF/BOF.
pub(crate) enum Anchor {
    After(Option<Regex>),
    Before(Option<Regex>),
}

impl Anchor {
    fn is_after(&self) -> bool {
        matches!(self, Anchor::After(_))
    }

    fn regex(&self) -> Option<&Regex> {
        match self {
            Anchor::After(r) | Anchor::Before(r) => r.as_ref(),
        }
    }

    /// `insertafter: BOF` / `insertbefore: BOF`.
    fn is_bof(&self, raw: Option<&str>) -> bool {
        raw == Some("BOF")
    }
}

pub(crate) struct PresentArgs<'a> {
    pub regexp: Option<&'a Regex>,
    pub search_string: Option<&'a [u8]>,
    pub line: &'a [u8],
    pub anchor: Anchor,
    /// The raw `insertafter`/`insertbefore` value (EOF, BOF or a pattern).
    pub anchor_raw: Option<&'a str>,
    pub backrefs: bool,
    pub firstmatch: bool,
}

/// Ansible's `present()` on the file's lines: returns the new lines, whether they changed and the message.
pub(crate) fn present(
    mut lines: Vec<Vec<u8>>,
    a: &PresentArgs,
) -> Result<(Vec<Vec<u8>>, bool, &'static str), String> {
    let mut index0: Option<usize> = None;
    let mut index1: Option<usize> = None;
    let mut matched: Option<usize> = None;

    if let Some(re) = a.regexp {
        for (n, cur) in lines.iter().enumerate() {
            if re.is_match(textedit::search_text(cur)) {
                index0 = Some(n);
                matched = Some(n);
                if a.firstmatch {
                    break;
                }
            }
        }
    }
    if let Some(needle) = a.search_string {
        for (n, cur) in lines.iter().enumerate() {
            if contains(cur, needle) {
                index0 = Some(n);
                matched = Some(n);
                if a.firstmatch {
                    break;
                }
            }
        }
    }
    if matched.is_none() {
        for (n, cur) in lines.iter().enumerate() {
            if a.line == textedit::rstrip_newlines(cur) {
                index0 = Some(n);
            } else if let Some(ins) = a.anchor.regex() {
                if ins.is_match(textedit::search_text(cur)) {
                    index1 = Some(if a.anchor.is_after() { n + 1 } else { n });
                    if a.firstmatch {
                        break;
                    }
                }
            }
        }
    }

    let with_sep = |l: &[u8]| {
        let mut v = l.to_vec();
        v.push(b'\n');
        v
    };
    let ends_with_newline = |l: &Vec<u8>| matches!(l.last(), Some(b'\n' | b'\r'));

    if let Some(i0) = index0 {
        let mut new_line = match (a.backrefs, matched, a.regexp) {
            (true, Some(m), Some(re)) => {
                let caps = re
                    .captures(textedit::search_text(&lines[m]))
                    .ok_or("regexp stopped matching")?;
                pyregex::expand(&caps, re, a.line)?
            }
            _ => a.line.to_vec(),
        };
        if !new_line.ends_with(b"\n") {
            new_line.push(b'\n');
        }
        if lines[i0] != new_line {
            lines[i0] = new_line;
            return Ok((lines, true, "line replaced"));
        }
        return Ok((lines, false, ""));
    }
    if a.backrefs {
        // Without a match there is nothing to expand the backreferences with: Ansible does nothing.
        return Ok((lines, false, ""));
    }
    if a.anchor.is_bof(a.anchor_raw) {
        lines.insert(0, with_sep(a.line));
        return Ok((lines, true, "line added"));
    }
    match index1 {
        None => {
            // EOF, or the anchor matched nothing: append, after a line break if the file lacks one.
            if lines.last().is_some_and(|l| !ends_with_newline(l)) {
                lines.push(b"\n".to_vec());
            }
            lines.push(with_sep(a.line));
            Ok((lines, true, "line added"))
        }
        Some(i1) if a.anchor.is_after() => {
            if i1 == lines.len() {
                if textedit::rstrip_newlines(&lines[i1 - 1]) != a.line {
                    // Ansible appends right after a last line lacking its newline, gluing the two
                    // lines together; orch ends that line first.
                    if !ends_with_newline(&lines[i1 - 1]) {
                        lines[i1 - 1].push(b'\n');
                    }
                    lines.push(with_sep(a.line));
                    return Ok((lines, true, "line added"));
                }
                Ok((lines, false, ""))
            } else if textedit::rstrip_newlines(&lines[i1]) != a.line {
                lines.insert(i1, with_sep(a.line));
                Ok((lines, true, "line added"))
            } else {
                Ok((lines, false, ""))
            }
        }
        Some(i1) => {
            lines.insert(i1, with_sep(a.line));
            Ok((lines, true, "line added"))
        }
    }
}

/// Ansible's `absent()`: drops every matching line; returns the kept lines and how many went.
pub(crate) fn absent(
    lines: Vec<Vec<u8>>,
    regexp: Option<&Regex>,
    search_string: Option<&[u8]>,
    line: Option<&[u8]>,
) -> (Vec<Vec<u8>>, usize) {
    let before = lines.len();
    let kept: Vec<Vec<u8>> = lines
        .into_iter()
        .filter(|cur| {
            let hit = if let Some(re) = regexp {
                re.is_match(textedit::search_text(cur))
            } else if let Some(needle) = search_string {
                contains(cur, needle)
            } else {
                line.is_some_and(|l| l == textedit::rstrip_newlines(cur))
            };
            !hit
        })
        .collect();
    let found = before - kept.len();
    (kept, found)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn mutually_exclusive(args: &Args, a: &str, b: &str) -> Result<(), ModuleError> {
    if args.has(a) && args.has(b) {
        return Err(ModuleError::msg(format!(
            "parameters are mutually exclusive: {a}|{b}"
        )));
    }
    Ok(())
}

fn fail_rc(msg: String, rc: i64) -> ModuleError {
    let mut result = Map::new();
    result.insert("rc".into(), rc.into());
    ModuleError::with_result(msg, result)
}

fn compile(pattern: &str) -> Result<Regex, ModuleError> {
    pyregex::compile(pattern).map_err(ModuleError::msg)
}

#[async_trait::async_trait]
impl Module for LineInFile {
    fn name(&self) -> &'static str {
        "lineinfile"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        mutually_exclusive(args, "insertbefore", "insertafter")?;
        mutually_exclusive(args, "regexp", "search_string")?;
        mutually_exclusive(args, "backrefs", "search_string")?;
        let path = args.req_str("path")?;
        let state = args.choice("state", &["present", "absent"], "present")?;
        let regexp_raw = args.str("regexp")?;
        let search_string = args.str("search_string")?;
        let line = args.str("line")?;
        let backrefs = args.bool("backrefs", false)?;
        let create = args.bool("create", false)?;
        let firstmatch = args.bool("firstmatch", false)?;
        let opts = EditOptions {
            backup: args.bool("backup", false)?,
            validate: args.str("validate")?,
            backup_key: BackupKey::Backup,
        };
        let wanted = WantedAttrs::from_args(args)?;
        if opts.validate.as_deref().is_some_and(|v| !v.contains("%s")) {
            return Err(ModuleError::msg(format!(
                "validate must contain %s: {}",
                opts.validate.unwrap_or_default()
            )));
        }

        let mut warnings = Vec::new();
        if regexp_raw.as_deref() == Some("") || search_string.as_deref() == Some("") {
            let name = if regexp_raw.as_deref() == Some("") {
                "regular expression"
            } else {
                "search string"
            };
            let mut w = format!(
                "The {name} is an empty string, which will match every line in the file. This may have unintended consequences, such as replacing the last line in the file rather than appending."
            );
            if regexp_raw.as_deref() == Some("") {
                w.push_str(" If this is desired, use '^' to match every line in the file and avoid this warning.");
            }
            warnings.push(Value::from(w));
        }
        let regexp = regexp_raw.as_deref().map(compile).transpose()?;

        let (insertafter, insertbefore) = (args.str("insertafter")?, args.str("insertbefore")?);
        if state == "present" {
            if backrefs && regexp.is_none() {
                return Err(ModuleError::msg("regexp is required with backrefs=true"));
            }
            if line.is_none() {
                return Err(ModuleError::msg("line is required with state=present"));
            }
        } else if regexp.is_none() && search_string.is_none() && line.is_none() {
            return Err(ModuleError::msg(
                "one of line, search_string, or regexp is required with state=absent",
            ));
        }
        let (anchor, anchor_raw) = match (&insertafter, &insertbefore) {
            (None, None) => (Anchor::After(None), Some("EOF".to_string())),
            (Some(after), _) if after == "EOF" || after == "BOF" => {
                (Anchor::After(None), Some(after.clone()))
            }
            (Some(after), _) => (Anchor::After(Some(compile(after)?)), Some(after.clone())),
            (None, Some(before)) if before == "BOF" => (Anchor::Before(None), Some(before.clone())),
            (None, Some(before)) => (Anchor::Before(Some(compile(before)?)), Some(before.clone())),
        };

        let probe = textedit::probe(env, &path, &wanted).await?;
        if probe.is_dir {
            return Err(fail_rc(format!("Path {path} is a directory !"), 256));
        }
        let mut result = Map::new();
        if !warnings.is_empty() {
            result.insert("warnings".into(), Value::Array(warnings));
        }
        let lines = textedit::read_lines(&probe.content);

        if state == "absent" {
            if !probe.exists() {
                result.insert("msg".into(), "file not present".into());
                return Ok(Plan::unchanged(result));
            }
            let (kept, found) = absent(
                lines,
                regexp.as_ref(),
                search_string.as_deref().map(str::as_bytes),
                line.as_deref().map(str::as_bytes),
            );
            result.insert("found".into(), found.into());
            let msg = if found > 0 {
                format!("{found} line(s) removed")
            } else {
                String::new()
            };
            return textedit::plan_edit(env, probe, kept.concat(), found > 0, msg, opts, result);
        }

        if !probe.exists() && !create {
            return Err(fail_rc(format!("Destination {path} does not exist !"), 257));
        }
        let line = line.unwrap_or_default();
        let present_args = PresentArgs {
            regexp: regexp.as_ref(),
            search_string: search_string.as_deref().map(str::as_bytes),
            line: line.as_bytes(),
            anchor,
            anchor_raw: anchor_raw.as_deref(),
            backrefs,
            firstmatch,
        };
        let (new_lines, changed, msg) = present(lines, &present_args).map_err(ModuleError::msg)?;
        textedit::plan_edit(
            env,
            probe,
            new_lines.concat(),
            changed,
            msg.to_string(),
            opts,
            result,
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

    use super::super::testenv::{args, current_user, failure, mode_of, run_module, LocalEnv};
    use super::*;

    fn edit(content: &str, a: PresentArgs) -> (String, bool, &'static str) {
        let (lines, changed, msg) = present(textedit::read_lines(content.as_bytes()), &a).unwrap();
        (String::from_utf8(lines.concat()).unwrap(), changed, msg)
    }

    fn pa<'a>(
        regexp: Option<&'a Regex>,
        line: &'a str,
        anchor: Anchor,
        raw: Option<&'a str>,
    ) -> PresentArgs<'a> {
        PresentArgs {
            regexp,
            search_string: None,
            line: line.as_bytes(),
            anchor,
            anchor_raw: raw,
            backrefs: false,
            firstmatch: false,
        }
    }

    #[test]
    fn present_semantics() {
        let re = pyregex::compile("^#?PermitRootLogin").unwrap();
        assert_eq!(
            edit(
                "a\n#PermitRootLogin yes\nb\n",
                pa(
                    Some(&re),
                    "PermitRootLogin no",
                    Anchor::After(None),
                    Some("EOF")
                )
            ),
            ("a\nPermitRootLogin no\nb\n".into(), true, "line replaced")
        );
        // The last match wins without firstmatch.
        assert_eq!(
            edit(
                "x=1\nx=2\n",
                pa(
                    Some(&pyregex::compile("^x=").unwrap()),
                    "x=3",
                    Anchor::After(None),
                    Some("EOF")
                )
            )
            .0,
            "x=1\nx=3\n"
        );
        // Appending to a file without a final newline adds one first.
        assert_eq!(
            edit("a", pa(None, "b", Anchor::After(None), Some("EOF"))),
            ("a\nb\n".into(), true, "line added")
        );
        // An exact line anywhere means nothing to do.
        assert_eq!(
            edit("a\nb\n", pa(None, "a", Anchor::After(None), Some("EOF"))),
            ("a\nb\n".into(), false, "")
        );
        let sect = pyregex::compile(r"^\[main\]").unwrap();
        assert_eq!(
            edit(
                "[main]\nx\n",
                pa(
                    None,
                    "y",
                    Anchor::After(Some(sect.clone())),
                    Some("^\\[main\\]")
                )
            )
            .0,
            "[main]\ny\nx\n"
        );
        assert_eq!(
            edit(
                "z\n[main]\n",
                pa(None, "y", Anchor::Before(Some(sect)), Some("^\\[main\\]"))
            )
            .0,
            "z\ny\n[main]\n"
        );
        assert_eq!(
            edit("a\n", pa(None, "top", Anchor::Before(None), Some("BOF"))).0,
            "top\na\n"
        );
        // An anchor that matches nothing appends at the end.
        assert_eq!(
            edit(
                "a\n",
                pa(
                    None,
                    "y",
                    Anchor::After(Some(pyregex::compile("^nomatch").unwrap())),
                    Some("^nomatch")
                )
            )
            .0,
            "a\ny\n"
        );
    }

    #[test]
    fn backrefs_expand_or_do_nothing() {
        let re = pyregex::compile(r"^(Port)\s+\d+$").unwrap();
        let mut a = pa(Some(&re), r"\1 2222", Anchor::After(None), Some("EOF"));
        a.backrefs = true;
        assert_eq!(edit("Port 22\n", a).0, "Port 2222\n");
        let mut a = pa(Some(&re), r"\1 2222", Anchor::After(None), Some("EOF"));
        a.backrefs = true;
        assert_eq!(edit("Nothing\n", a), ("Nothing\n".into(), false, ""));
    }

    #[tokio::test]
    async fn module_round_trip_with_check_and_diff() {
        let mut env = LocalEnv::new();
        let path = env.path("sshd_config");
        std::fs::write(&path, "Port 22\n#PermitRootLogin yes\n").unwrap();
        let a = args(
            "lineinfile",
            json!({"path": path, "regexp": "^#?PermitRootLogin", "line": "PermitRootLogin no"}),
        );
        env.check = true;
        env.diff = true;
        let predicted = run_module(&LineInFile, &env, &a).await.unwrap();
        assert!(predicted.changed);
        assert_eq!(predicted.result["msg"], json!("line replaced"));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "Port 22\n#PermitRootLogin yes\n"
        );
        assert_eq!(
            predicted.diffs[0].before_header,
            format!("{path} (content)")
        );
        assert_eq!(predicted.diffs[0].after, "Port 22\nPermitRootLogin no\n");
        env.check = false;
        let done = run_module(&LineInFile, &env, &a).await.unwrap();
        assert!(done.changed);
        assert_eq!(done.result["backup"], json!(""));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "Port 22\nPermitRootLogin no\n"
        );
        let again = run_module(&LineInFile, &env, &a).await.unwrap();
        assert!(!again.changed);
        assert_eq!(again.result["msg"], json!(""));
    }

    #[tokio::test]
    async fn absent_counts_and_missing_file() {
        let env = LocalEnv::new();
        let path = env.path("hosts");
        std::fs::write(&path, "a\nb\na\n").unwrap();
        let out = run_module(
            &LineInFile,
            &env,
            &args(
                "lineinfile",
                json!({"path": path, "line": "a", "state": "absent"}),
            ),
        )
        .await
        .unwrap();
        assert!(out.changed);
        assert_eq!(out.result["msg"], json!("2 line(s) removed"));
        assert_eq!(out.result["found"], json!(2));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b\n");
        let missing = env.path("nope");
        let out = run_module(
            &LineInFile,
            &env,
            &args(
                "lineinfile",
                json!({"path": missing, "line": "a", "state": "absent"}),
            ),
        )
        .await
        .unwrap();
        assert!(!out.changed);
        assert_eq!(out.result["msg"], json!("file not present"));
    }

    #[tokio::test]
    async fn create_with_mode_and_errors() {
        let env = LocalEnv::new();
        let path = env.path("new/dir/file.conf");
        let (msg, result) = failure(
            run_module(
                &LineInFile,
                &env,
                &args("lineinfile", json!({"path": path, "line": "x"})),
            )
            .await,
        );
        assert_eq!(msg, format!("Destination {path} does not exist !"));
        assert_eq!(result["rc"], json!(257));
        let (user, _) = current_user();
        let a = args(
            "lineinfile",
            json!({"path": path, "line": "x", "create": true, "mode": "0600", "owner": user}),
        );
        let out = run_module(&LineInFile, &env, &a).await.unwrap();
        assert!(out.changed);
        assert_eq!(
            out.result["msg"],
            json!("line added and ownership, perms or SE linux context changed")
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x\n");
        assert_eq!(mode_of(&path), 0o600);
        assert!(!run_module(&LineInFile, &env, &a).await.unwrap().changed);
        let (msg, _) = failure(
            run_module(
                &LineInFile,
                &env,
                &args(
                    "lineinfile",
                    json!({"path": path, "regexp": "(", "line": "x"}),
                ),
            )
            .await,
        );
        assert!(msg.starts_with("Invalid regular expression '('"), "{msg}");
        let (msg, result) = failure(
            run_module(
                &LineInFile,
                &env,
                &args("lineinfile", json!({"path": env.path("new"), "line": "x"})),
            )
            .await,
        );
        assert_eq!(
            (msg.as_str(), &result["rc"]),
            (
                format!("Path {} is a directory !", env.path("new")).as_str(),
                &json!(256)
            )
        );
        let (msg, _) = failure(
            run_module(
                &LineInFile,
                &env,
                &args(
                    "lineinfile",
                    json!({"path": path, "regexp": "a", "search_string": "b", "line": "x"}),
                ),
            )
            .await,
        );
        assert_eq!(
            msg,
            "parameters are mutually exclusive: regexp|search_string"
        );
    }

    #[tokio::test]
    async fn validate_failure_keeps_file_and_attribute_only_change() {
        let mut env = LocalEnv::new();
        let path = env.path("sudoers");
        std::fs::write(&path, "ok\n").unwrap();
        let a = args(
            "lineinfile",
            json!({"path": path, "line": "broken", "validate": "false %s"}),
        );
        let (msg, _) = failure(run_module(&LineInFile, &env, &a).await);
        assert!(msg.starts_with("failed to validate: rc:1 error:"), "{msg}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "ok\n");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        env.diff = true;
        let out = run_module(
            &LineInFile,
            &env,
            &args(
                "lineinfile",
                json!({"path": path, "line": "ok", "mode": "0640"}),
            ),
        )
        .await
        .unwrap();
        assert!(out.changed);
        assert_eq!(
            out.result["msg"],
            json!("ownership, perms or SE linux context changed")
        );
        assert_eq!(out.diffs.len(), 1);
        assert_eq!(
            out.diffs[0].before_header,
            format!("{path} (file attributes)")
        );
        assert_eq!(mode_of(&path), 0o640);
    }

    #[tokio::test]
    async fn edits_through_a_symlink_and_makes_backups() {
        let env = LocalEnv::new();
        let real = env.path("real.conf");
        let link = env.path("link.conf");
        std::fs::write(&real, "a\n").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let out = run_module(
            &LineInFile,
            &env,
            &args(
                "lineinfile",
                json!({"path": link, "line": "b", "backup": true}),
            ),
        )
        .await
        .unwrap();
        assert!(out.changed);
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "a\nb\n");
        let backup = out.result["backup"].as_str().unwrap();
        assert_eq!(std::fs::read_to_string(backup).unwrap(), "a\n");
    }
}
