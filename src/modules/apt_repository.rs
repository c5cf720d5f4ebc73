//! `apt_repository`: one-line sources (`deb [opts] URL suite components`) in `sources.list` and
//! `sources.list.d/*.list`, with Ansible's semantics: a source already present (even disabled) in
//! any of those files is recognised and re-enabled; new sources go to a file named after the URL
//! (`download_docker_com_linux_debian.list`) unless `filename` is given; `update_cache` (default yes)
//! runs `apt-get update` when something changed, and a failed update puts the files back.
#![allow(dead_code)]

use serde_json::{json, Map, Value};

use super::deb822_repository::staged_write;
use super::filecommon as fc;
use super::remote::quote;
use super::{Arg, ArgSpec, Args, Diff, Module, ModuleError, Plan, TaskEnv};

pub struct AptRepository;

const SOURCES_LIST: &str = "/etc/apt/sources.list";
const SOURCES_DIR: &str = "/etc/apt/sources.list.d";
const VALID_SOURCE_TYPES: &[&str] = &["deb", "deb-src"];

pub static SPEC: ArgSpec = ArgSpec {
    args: &[
        Arg::req("repo"),
        Arg::opt("state").choices(&["absent", "present"]),
        Arg::opt("mode"),
        Arg::opt("update_cache").aliases(&["update-cache"]),
        Arg::opt("update_cache_retries"),
        Arg::opt("update_cache_retry_max_delay"),
        Arg::opt("filename"),
        Arg::opt("install_python_apt"),
        Arg::opt("validate_certs"),
        Arg::opt("codename"),
    ],
    free_form: None,
    any_keys: false,
};

/// One line of a sources file, as Ansible's `SourcesList._parse` sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLine {
    pub valid: bool,
    pub enabled: bool,
    pub source: String,
    pub comment: String,
}

impl SourceLine {
    pub fn parse(line: &str) -> SourceLine {
        let mut line = line.trim();
        let mut enabled = true;
        if let Some(rest) = line.strip_prefix('#') {
            enabled = false;
            line = rest;
        }
        let mut comment = String::new();
        if let Some(i) = line.find('#').filter(|i| *i > 0) {
            comment = line[i + 1..].trim().to_string();
            line = &line[..i];
        }
        let mut source = line.trim().to_string();
        let mut valid = false;
        let chunks: Vec<&str> = source.split_whitespace().collect();
        if chunks
            .first()
            .is_some_and(|c| VALID_SOURCE_TYPES.contains(c))
        {
            valid = true;
            source = chunks.join(" ");
        }
        SourceLine {
            valid,
            enabled,
            source,
            comment,
        }
    }

    /// The line as Ansible writes it back.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if !self.enabled {
            s.push_str("# ");
        }
        s.push_str(&self.source);
        if !self.comment.is_empty() {
            s.push_str(" # ");
            s.push_str(&self.comment);
        }
        s.push('\n');
        s
    }
}

/// Ansible's `_suggest_filename` (without a `filename` argument): the URL's host and path, with every
/// run of other characters turned into `_`, plus `.list`.
pub fn suggest_filename(source: &str) -> String {
    let without_options = regex::Regex::new(r"\[[^\]]+\]")
        .map(|re| re.replace_all(source, "").into_owned())
        .unwrap_or_else(|_| source.to_string());
    let without_scheme = regex::Regex::new(r"\w+://")
        .map(|re| re.replace_all(&without_options, "").into_owned())
        .unwrap_or(without_options);
    let first = without_scheme
        .split_whitespace()
        .find(|p| !VALID_SOURCE_TYPES.contains(p))
        .unwrap_or("");
    let first = first.rsplit_once('@').map_or(first, |(_, host)| host);
    let cleaned: Vec<&str> = first
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .collect();
    format!("{}.list", cleaned.join("_"))
}

/// A sources file and its lines (files that no longer have lines are deleted on save).
#[derive(Clone, Debug)]
struct SourcesFile {
    path: String,
    /// Where a symlinked file really lives (writes go there).
    real_path: String,
    lines: Vec<SourceLine>,
    existed: bool,
}

impl SourcesFile {
    fn dump(&self) -> Option<String> {
        (!self.lines.is_empty()).then(|| self.lines.iter().map(SourceLine::render).collect())
    }
}

/// `dir/name` for a bare file name, else the path itself (Ansible's `_expand_path`).
fn expand_path(filename: &str) -> String {
    if filename.contains('/') {
        filename.to_string()
    } else {
        format!("{SOURCES_DIR}/{filename}")
    }
}

/// What changes: files to write (path, content) and files to delete, plus the before state to revert to.
struct RepoPlan {
    writes: Vec<(String, String, bool)>,
    removes: Vec<String>,
    reverts: Vec<(String, Option<String>)>,
    mode: Option<String>,
    update_cache: bool,
    retries: i64,
    max_delay: i64,
}

/// Applies `state` for `repo` to the loaded files; returns the files after the change.
fn edit(
    files: &[SourcesFile],
    repo: &str,
    state: &str,
    filename: Option<&str>,
) -> Result<(Vec<SourcesFile>, Vec<String>), ModuleError> {
    let parsed = SourceLine::parse(repo);
    if !parsed.valid || !parsed.enabled {
        return Err(ModuleError::msg(format!(
            "Invalid repository string: {}",
            parsed.source
        )));
    }
    let mut after = files.to_vec();
    let mut new_repos = Vec::new();
    if state == "present" {
        let mut found = false;
        for file in &mut after {
            for line in &mut file.lines {
                if line.valid && line.source == parsed.source {
                    line.enabled = true;
                    found = true;
                }
            }
        }
        if !found {
            let name = match filename {
                Some(f) => format!("{f}.list"),
                None => suggest_filename(&parsed.source),
            };
            let path = expand_path(&name);
            let line = SourceLine {
                comment: String::new(),
                ..parsed
            };
            match after.iter_mut().find(|f| f.path == path) {
                Some(file) => file.lines.push(line),
                None => after.push(SourcesFile {
                    real_path: path.clone(),
                    path: path.clone(),
                    lines: vec![line],
                    existed: false,
                }),
            }
            new_repos.push(path);
        }
    } else {
        for file in &mut after {
            file.lines
                .retain(|l| !(l.valid && l.enabled && l.source == parsed.source));
        }
    }
    Ok((after, new_repos))
}

#[async_trait::async_trait]
impl Module for AptRepository {
    fn name(&self) -> &'static str {
        "apt_repository"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let repo = args.req_str("repo")?;
        if repo.trim().is_empty() {
            return Err(ModuleError::msg(
                "Please set argument 'repo' to a non-empty value",
            ));
        }
        if repo.trim().starts_with("ppa:") {
            return Err(ModuleError::msg(
                "apt_repository: ppa: sources are Ubuntu-only and not supported by orch",
            ));
        }
        let state = args.choice("state", &["absent", "present"], "present")?;
        let mode = args.mode("mode")?;
        let filename = args.str("filename")?;
        if filename
            .as_deref()
            .is_some_and(|f| f.contains(['\n', '\0']))
        {
            return Err(ModuleError::msg("invalid filename"));
        }

        let script = format!(
            "_i=0\nfor f in {SOURCES_LIST} {SOURCES_DIR}/*.list; do\n  [ -f \"$f\" ] || continue\n  _i=$((_i + 1))\n  \
             printf '@f%s.path=' \"$_i\"; printf '%s' \"$f\" | orch_b64\n  \
             if [ -L \"$f\" ]; then printf '@f%s.real=' \"$_i\"; readlink -f -- \"$f\" | orch_b64; fi\n  \
             printf '@f%s.content=' \"$_i\"; orch_b64 < \"$f\"\ndone\nexit 0\n"
        );
        let (records, out) = fc::run_script(env, &script, None).await?;
        if out.rc != 0 {
            return Err(fc::script_failed("reading the apt sources", &out));
        }
        let files: Vec<SourcesFile> = (1..)
            .map(|i| format!("f{i}"))
            .map_while(|tag| {
                let path = records.text(&tag, "path")?;
                let content = records
                    .bytes(&tag, "content")
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                Some(SourcesFile {
                    real_path: records.text(&tag, "real").unwrap_or_else(|| path.clone()),
                    path,
                    lines: content.lines().map(SourceLine::parse).collect(),
                    existed: true,
                })
            })
            .collect();

        let (after, new_repos) = edit(&files, &repo, &state, filename.as_deref())?;
        let before_dump = |path: &str| {
            files
                .iter()
                .find(|f| f.path == path)
                .and_then(SourcesFile::dump)
        };
        let mut plan = RepoPlan {
            writes: vec![],
            removes: vec![],
            reverts: vec![],
            mode: mode.clone(),
            update_cache: args.bool("update_cache", true)?,
            retries: args.int("update_cache_retries")?.unwrap_or(5).max(1),
            max_delay: args
                .int("update_cache_retry_max_delay")?
                .unwrap_or(12)
                .max(0),
        };
        let mut added = Vec::new();
        let mut removed = Vec::new();
        let mut diffs = Vec::new();
        for file in &after {
            let before = before_dump(&file.path);
            let now = file.dump();
            if before == now {
                continue;
            }
            match (&before, &now) {
                (None, Some(_)) => added.push(file.path.clone()),
                (Some(_), None) => removed.push(file.path.clone()),
                _ => {}
            }
            match &now {
                Some(text) => plan.writes.push((
                    file.real_path.clone(),
                    text.clone(),
                    new_repos.contains(&file.path),
                )),
                None => plan.removes.push(file.path.clone()),
            }
            let original = file
                .existed
                .then(|| files.iter().find(|f| f.path == file.path))
                .flatten()
                .map(|f| f.lines.iter().map(|l| l.render()).collect::<String>());
            plan.reverts.push((file.real_path.clone(), original));
            if env.diff_mode() {
                diffs.push(Diff {
                    before_header: if before.is_some() {
                        file.path.clone()
                    } else {
                        "/dev/null".into()
                    },
                    after_header: if now.is_some() {
                        file.path.clone()
                    } else {
                        "/dev/null".into()
                    },
                    before: before.unwrap_or_default(),
                    after: now.unwrap_or_default(),
                });
            }
        }
        let changed = !plan.writes.is_empty() || !plan.removes.is_empty();
        let mut result = Map::new();
        result.insert("repo".into(), json!(repo));
        result.insert("sources_added".into(), json!(added));
        result.insert("sources_removed".into(), json!(removed));
        result.insert("state".into(), json!(state));
        Ok(Plan {
            changed,
            diffs,
            result,
            skip_in_check: None,
            data: Some(Box::new(plan)),
        })
    }

    async fn apply(
        &self,
        env: &dyn TaskEnv,
        _args: &Args,
        plan: Plan,
    ) -> Result<Map<String, Value>, ModuleError> {
        let result = plan.result;
        let Some(data) = plan.data.and_then(|d| d.downcast::<RepoPlan>().ok()) else {
            return Ok(result);
        };
        let script = apply_script(&data)?;
        let (_, out) = fc::run_script(env, &script, None).await?;
        if out.rc != 0 {
            return Err(fc::script_failed("writing the apt sources", &out));
        }
        Ok(result)
    }
}

fn apply_script(plan: &RepoPlan) -> Result<String, ModuleError> {
    let mut s = format!(
        "export DEBIAN_FRONTEND=noninteractive LC_ALL=C\nmkdir -p {SOURCES_DIR} || orch_fail 'Failed to create directory {SOURCES_DIR}'\n"
    );
    for (path, content, is_new_repo) in &plan.writes {
        let mode = if *is_new_repo {
            plan.mode.as_deref()
        } else {
            None
        };
        s.push_str(&staged_write(path, content.as_bytes(), mode)?);
    }
    for path in &plan.removes {
        s.push_str(&format!("rm -f -- {}\n", quote(path)));
    }
    if plan.update_cache {
        let mut revert = String::new();
        for (path, original) in &plan.reverts {
            match original {
                Some(text) => revert.push_str(&staged_write(path, text.as_bytes(), None)?),
                None => revert.push_str(&format!("rm -f -- {}\n", quote(path))),
            }
        }
        s.push_str(&format!(
            "_try=0\nuntil _err=$(apt-get update -q -o APT::Update::Error-Mode=any 2>&1 >/dev/null); do\n  \
             _try=$((_try + 1))\n  if [ \"$_try\" -ge {retries} ]; then\n{revert}    orch_fail \"Failed to update apt cache: $_err\"\n  fi\n  \
             _d=$(( 1 << _try )); [ \"$_d\" -gt {max} ] && _d={max}\n  sleep \"$_d\"\ndone\n",
            retries = plan.retries,
            max = plan.max_delay,
        ));
    }
    s.push_str("exit 0\n");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testenv::{args, run_module, LocalEnv};

    const DOCKER: &str = "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/debian bookworm stable";

    #[test]
    fn filenames_are_derived_from_the_url() {
        assert_eq!(
            suggest_filename(DOCKER),
            "download_docker_com_linux_debian.list"
        );
        assert_eq!(
            suggest_filename("deb http://user:pw@10.0.0.5:8080/debian bookworm main"),
            "10_0_0_5_8080_debian.list"
        );
        assert_eq!(
            suggest_filename("deb-src http://deb.debian.org/debian bookworm main"),
            "deb_debian_org_debian.list"
        );
    }

    #[test]
    fn lines_parse_like_ansible() {
        let l = SourceLine::parse("  #deb   http://x/debian  bookworm main # my repo");
        assert_eq!(
            l,
            SourceLine {
                valid: true,
                enabled: false,
                source: "deb http://x/debian bookworm main".into(),
                comment: "my repo".into()
            }
        );
        assert_eq!(
            l.render(),
            "# deb http://x/debian bookworm main # my repo\n"
        );
        assert!(!SourceLine::parse("# just a comment").valid);
        assert_eq!(SourceLine::parse("").render(), "\n");
    }

    fn file(path: &str, text: &str) -> SourcesFile {
        SourcesFile {
            path: path.into(),
            real_path: path.into(),
            lines: text.lines().map(SourceLine::parse).collect(),
            existed: true,
        }
    }

    #[test]
    fn present_reenables_a_disabled_copy_anywhere() {
        let files = vec![file("/etc/apt/sources.list", &format!("# {DOCKER}\n"))];
        let (after, new) = edit(&files, DOCKER, "present", None).unwrap();
        assert!(new.is_empty());
        assert_eq!(after[0].dump().unwrap(), format!("{DOCKER}\n"));
        let (after, new) = edit(&[], DOCKER, "present", Some("docker")).unwrap();
        assert_eq!(new, vec!["/etc/apt/sources.list.d/docker.list".to_string()]);
        assert_eq!(after[0].dump().unwrap(), format!("{DOCKER}\n"));
        let files = vec![file(
            "/etc/apt/sources.list.d/x.list",
            &format!("{DOCKER}\n"),
        )];
        let (after, _) = edit(&files, DOCKER, "absent", None).unwrap();
        assert_eq!(after[0].dump(), None);
        assert!(edit(&[], "# deb http://x y", "present", None).is_err());
        assert!(edit(&[], "http://x y", "present", None).is_err());
    }

    #[tokio::test]
    async fn apply_script_writes_and_reverts_on_failed_update() {
        let env = LocalEnv::new();
        let list = env.path("new.list");
        let old = env.path("old.list");
        std::fs::write(&old, "deb http://a b c\n").unwrap();
        let plan = RepoPlan {
            writes: vec![
                (list.clone(), "deb http://x y z\n".into(), true),
                (old.clone(), "# deb http://a b c\n".into(), false),
            ],
            removes: vec![],
            reverts: vec![
                (list.clone(), None),
                (old.clone(), Some("deb http://a b c\n".into())),
            ],
            mode: Some("0600".into()),
            update_cache: false,
            retries: 1,
            max_delay: 0,
        };
        let script = apply_script(&plan)
            .unwrap()
            .replace(SOURCES_DIR, env.dir.path().to_str().unwrap());
        let out = env
            .run(&format!("{}{script}", fc::SHELL_LIB), None)
            .await
            .unwrap();
        assert_eq!(out.rc, 0, "{}", String::from_utf8_lossy(&out.stdout));
        assert_eq!(
            std::fs::read_to_string(&list).unwrap(),
            "deb http://x y z\n"
        );
        assert_eq!(crate::modules::testenv::mode_of(&list), 0o600);
        assert_eq!(
            std::fs::read_to_string(&old).unwrap(),
            "# deb http://a b c\n"
        );
        // With an update that cannot succeed (no apt-get here, or a failing one), the files go back.
        let failing = RepoPlan {
            update_cache: true,
            ..plan
        };
        let script = apply_script(&failing)
            .unwrap()
            .replace(SOURCES_DIR, env.dir.path().to_str().unwrap())
            .replace("apt-get update", "false");
        let out = env
            .run(&format!("{}{script}", fc::SHELL_LIB), None)
            .await
            .unwrap();
        assert_ne!(out.rc, 0);
        assert!(!std::path::Path::new(&list).exists());
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "deb http://a b c\n");
    }

    #[tokio::test]
    async fn ppa_is_rejected_without_touching_the_host() {
        let env = LocalEnv::new();
        let a = args("apt_repository", serde_json::json!({"repo": "ppa:foo/bar"}));
        assert!(run_module(&AptRepository, &env, &a).await.is_err());
        assert_eq!(env.runs(), 0);
    }
}
