//! `deb822_repository`: `/etc/apt/sources.list.d/NAME.sources` in deb822 format, written as
//! Ansible's module writes it (fields sorted by argument name, `X-Repolib-Name`, lists joined by
//! spaces, booleans as yes/no), with `signed_by` as a URL (downloaded on the target into
//! `/etc/apt/keyrings/NAME.asc|gpg`), a key file path, or inline key material / fingerprints. Like
//! Ansible, it does not update the apt cache.
#![allow(dead_code)]

use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::filecommon::{self as fc, ResolvedAttrs, WantedAttrs, WriteSource, WriteSpec};
use super::remote::quote;
use super::{Arg, ArgSpec, Args, Diff, Module, ModuleError, Plan, TaskEnv};

pub struct Deb822Repository;

pub const SOURCES_DIR: &str = "/etc/apt/sources.list.d";
pub const KEYRINGS_DIR: &str = "/etc/apt/keyrings";

const BOOL_FIELDS: &[&str] = &[
    "allow_downgrade_to_insecure",
    "allow_insecure",
    "allow_weak",
    "by_hash",
    "check_date",
    "check_valid_until",
    "enabled",
    "pdiffs",
    "trusted",
];
const LIST_FIELDS: &[&str] = &[
    "architectures",
    "components",
    "exclude",
    "include",
    "languages",
    "suites",
    "targets",
    "types",
    "uris",
];
const STR_FIELDS: &[&str] = &["inrelease_path", "name", "signed_by"];
const INT_FIELDS: &[&str] = &["date_max_future"];

pub static SPEC: ArgSpec = ArgSpec {
    args: &[
        Arg::opt("allow_downgrade_to_insecure"),
        Arg::opt("allow_insecure"),
        Arg::opt("allow_weak"),
        Arg::opt("architectures"),
        Arg::opt("by_hash"),
        Arg::opt("check_date"),
        Arg::opt("check_valid_until"),
        Arg::opt("components"),
        Arg::opt("date_max_future"),
        Arg::opt("enabled"),
        Arg::opt("exclude"),
        Arg::opt("include"),
        Arg::opt("inrelease_path"),
        Arg::opt("install_python_debian"),
        Arg::opt("languages"),
        Arg::req("name"),
        Arg::opt("pdiffs"),
        Arg::opt("signed_by"),
        Arg::opt("suites"),
        Arg::opt("targets"),
        Arg::opt("trusted"),
        Arg::opt("types"),
        Arg::opt("uris"),
        Arg::opt("mode"),
        Arg::opt("state").choices(&["absent", "present"]),
    ],
    free_form: None,
    any_keys: false,
};

/// Ansible's `format_field_name`: `name` → `X-Repolib-Name`, `uris` → `URIs`, else Title-Case with dashes.
pub fn field_name(key: &str) -> String {
    match key {
        "name" => "X-Repolib-Name".into(),
        "uris" => "URIs".into(),
        _ => {
            // Python's str.title(): upper-case a letter that follows a non-letter, lower-case the rest.
            let mut out = String::new();
            let mut prev_alpha = false;
            for c in key.replace('_', "-").chars() {
                if c.is_alphabetic() {
                    if prev_alpha {
                        out.extend(c.to_lowercase());
                    } else {
                        out.extend(c.to_uppercase());
                    }
                    prev_alpha = true;
                } else {
                    out.push(c);
                    prev_alpha = false;
                }
            }
            out
        }
    }
}

/// Ansible's `format_multiline`: a continuation block, blank lines as ` .`.
fn format_multiline(value: &str) -> String {
    let lines: Vec<String> = value
        .trim()
        .lines()
        .map(|l| {
            let l = l.trim();
            if l.is_empty() {
                "    .".to_string()
            } else {
                format!("    {l}")
            }
        })
        .collect();
    format!("\n{}", lines.join("\n"))
}

/// The `.sources` text for `(key, value)` pairs already converted to strings; sorted by key as Ansible does.
pub fn render(fields: &[(String, String)]) -> String {
    let mut fields: Vec<&(String, String)> = fields.iter().collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    for (key, value) in fields {
        let value = if value.contains('\n') {
            format_multiline(value)
        } else {
            value.clone()
        };
        // python-debian's Deb822.dump: no space after the colon when the value starts on the next line.
        if value.is_empty() || value.starts_with('\n') {
            out.push_str(&format!("{}:{value}\n", field_name(key)));
        } else {
            out.push_str(&format!("{}: {value}\n", field_name(key)));
        }
    }
    out
}

/// Ansible's legacy file slug (before ansible-core 2.18): lower-case, `_`/spaces to `-`, only `[a-z0-9-]`.
pub fn legacy_slug(name: &str) -> String {
    let lowered = name.to_lowercase();
    let mut dashed = String::new();
    let mut in_run = false;
    for c in lowered.chars() {
        if c == '_' || c.is_whitespace() {
            if !in_run {
                dashed.push('-');
            }
            in_run = true;
        } else {
            dashed.push(c);
            in_run = false;
        }
    }
    dashed
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .collect()
}

/// The slug current Ansible uses when no legacy file exists: the name with spaces as dashes.
pub fn slug(name: &str) -> String {
    name.replace(' ', "-")
}

fn has_url_scheme(value: &str) -> bool {
    let Some((scheme, _)) = value.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !value.contains('\n')
}

pub fn is_armored(data: &[u8]) -> bool {
    data.windows(36)
        .any(|w| w == b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
}

/// Shell lines that stage `content` in a fresh file and atomically install it at `dest` with `mode`
/// (filecommon's write script, run in a subshell so that several writes share one script).
/// Without `mode`, an existing file keeps its mode and a new one gets `0666 & ~umask`.
pub(crate) fn staged_write(
    dest: &str,
    content: &[u8],
    mode: Option<&str>,
) -> Result<String, ModuleError> {
    let stage = format!("/tmp/.orch_stage.{:016x}", rand::random::<u64>());
    let attrs = ResolvedAttrs {
        wanted: WantedAttrs {
            mode: mode.map(str::to_string),
            owner: None,
            group: None,
        },
        uid: None,
        gid: None,
    };
    let write = fc::write_script(&WriteSpec {
        dest,
        source: WriteSource::Remote(&stage),
        attrs: &attrs,
        validate: None,
        backup: false,
        make_parents: false,
    })?;
    let data = base64::engine::general_purpose::STANDARD.encode(content);
    Ok(format!(
        "( stage={stage}; trap 'rm -f -- \"$stage\"' EXIT\n\
         ( umask 077; set -C; : > \"$stage\" ) 2>/dev/null || orch_fail \"could not create $stage\"\n\
         printf '%s' '{data}' | base64 -d > \"$stage\" || orch_fail \"could not write $stage\"\n\
         ( {write} ) || exit $?\n) || exit $?\n"
    ))
}

/// The arguments as the module's typed parameters, rendered to deb822 strings (signed_by kept raw).
fn fields(args: &Args) -> Result<Vec<(String, String)>, ModuleError> {
    let mut out = Vec::new();
    for key in BOOL_FIELDS {
        if args.has(key) {
            let v = if args.bool(key, false)? { "yes" } else { "no" };
            out.push((key.to_string(), v.to_string()));
        }
    }
    for key in LIST_FIELDS {
        let value = match args.list(key)? {
            Some(v) => Some(v),
            None if *key == "types" => Some(vec!["deb".to_string()]),
            None => None,
        };
        if let Some(items) = value {
            if *key == "types" {
                if let Some(bad) = items.iter().find(|t| *t != "deb" && *t != "deb-src") {
                    return Err(ModuleError::msg(format!(
                        "value of types must be one or more of: deb, deb-src. Got no match for: {bad}"
                    )));
                }
            }
            out.push((key.to_string(), items.join(" ")));
        }
    }
    for key in STR_FIELDS {
        if let Some(v) = args.str(key)? {
            out.push((key.to_string(), v));
        }
    }
    for key in INT_FIELDS {
        if let Some(v) = args.int(key)? {
            out.push((key.to_string(), v.to_string()));
        }
    }
    Ok(out)
}

/// How `signed_by` ended up (decided from the probe).
#[derive(Clone, Debug, PartialEq)]
enum KeySource {
    None,
    /// An existing file on the target: referenced as is.
    Path(String),
    /// Downloaded key material, to be stored in the keyrings directory.
    Downloaded(Vec<u8>),
    /// Inline text (armored key or fingerprints): embedded in the file.
    Inline(String),
}

struct WritePlan {
    /// Files to write: (path, content, mode).
    writes: Vec<(String, Vec<u8>, String)>,
    /// Files to chmod only: (path, mode).
    chmods: Vec<(String, String)>,
    /// Files to delete.
    removes: Vec<String>,
    ensure_keyrings_dir: bool,
}

#[async_trait::async_trait]
impl Module for Deb822Repository {
    fn name(&self) -> &'static str {
        "deb822_repository"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let name = args.req_str("name")?;
        if name.is_empty() || name.contains(['/', '\n', '\0']) {
            return Err(ModuleError::msg(format!(
                "invalid repository name: {name:?}"
            )));
        }
        let state = args.choice("state", &["absent", "present"], "present")?;
        let mode = args.mode("mode")?.unwrap_or_else(|| "0644".into());
        fc::apply_mode(0o644, &mode, false)?;
        let fields = fields(args)?;
        let signed_by = args.str("signed_by")?;

        let legacy = format!("{SOURCES_DIR}/{}.sources", legacy_slug(&name));
        let mut script = fc::flag_line("legacy", "exists", "-e", &legacy);
        let slugs = [legacy_slug(&name), slug(&name)];
        for (i, s) in slugs.iter().enumerate() {
            script.push_str(&fc::probe_lines(
                &format!("src{i}"),
                &format!("{SOURCES_DIR}/{s}.sources"),
                true,
                "sha1",
                fc::MAX_DIFF_SIZE as i64,
            ));
            for ext in ["asc", "gpg"] {
                script.push_str(&fc::probe_lines(
                    &format!("key{i}{ext}"),
                    &format!("{KEYRINGS_DIR}/{s}.{ext}"),
                    true,
                    "sha256",
                    -1,
                ));
            }
        }
        script.push_str(&fc::probe_lines("keydir", KEYRINGS_DIR, true, "none", -1));
        if state == "present" {
            if let Some(v) = &signed_by {
                if !v.contains('\n') {
                    script.push_str(&fc::flag_line("signed", "isfile", "-f", v));
                }
                if has_url_scheme(v) {
                    script.push_str(&format!(
                        "if [ ! -f {url} ]; then _k=$(mktemp) || orch_fail 'mktemp failed'\n\
                         if command -v curl >/dev/null 2>&1; then _e=$(curl -fsSL -o \"$_k\" -- {url} 2>&1)\n\
                         elif command -v wget >/dev/null 2>&1; then _e=$(wget -q -O \"$_k\" -- {url} 2>&1)\n\
                         else _e='neither curl nor wget is installed on the target'; false; fi \
                         || {{ rm -f \"$_k\"; orch_fail \"Could not fetch signed_by key: $_e\"; }}\n\
                         printf '@signed.data='; orch_b64 < \"$_k\"; rm -f \"$_k\"; fi\n",
                        url = quote(v)
                    ));
                }
            }
        }
        let (records, out) = fc::run_script(env, &script, None).await?;
        if out.rc != 0 {
            return Err(fc::script_failed("probing the repository files", &out));
        }
        let index = if records.flag("legacy", "exists") {
            0
        } else {
            1
        };
        let slug = &slugs[index];
        let dest = format!("{SOURCES_DIR}/{slug}.sources");
        let source_stat = records.stat(&format!("src{index}"));
        let mut result = Map::new();
        result.insert("dest".into(), json!(dest));
        let mut plan = WritePlan {
            writes: vec![],
            chmods: vec![],
            removes: vec![],
            ensure_keyrings_dir: false,
        };
        let mut diffs = Vec::new();

        if state == "absent" {
            if source_stat.exists {
                plan.removes.push(dest.clone());
            }
            let mut key_filename = String::new();
            for ext in ["asc", "gpg"] {
                key_filename = format!("{KEYRINGS_DIR}/{slug}.{ext}");
                if records.stat(&format!("key{index}{ext}")).exists {
                    plan.removes.push(key_filename.clone());
                }
            }
            result.insert("repo".into(), Value::Null);
            result.insert("key_filename".into(), json!(key_filename));
            if env.diff_mode() && source_stat.exists {
                diffs.extend(fc::text_diff(
                    &dest,
                    source_stat.content.as_deref(),
                    "/dev/null",
                    b"",
                ));
            }
            return Ok(finish(plan, result, diffs));
        }

        let key = match &signed_by {
            None => KeySource::None,
            Some(v) if records.flag("signed", "isfile") => KeySource::Path(v.clone()),
            Some(v) if has_url_scheme(v) => match records.bytes("signed", "data") {
                Some(data) if !data.is_empty() => KeySource::Downloaded(data),
                _ => KeySource::Path(v.clone()),
            },
            Some(v) => KeySource::Inline(v.clone()),
        };
        let mut key_filename = Value::Null;
        let mut rendered_fields = fields;
        rendered_fields.retain(|(k, _)| k != "signed_by");
        match &key {
            KeySource::None => {}
            KeySource::Path(p) => {
                key_filename = json!(p);
                rendered_fields.push(("signed_by".into(), p.clone()));
            }
            KeySource::Inline(text) => {
                rendered_fields.push(("signed_by".into(), text.clone()));
            }
            KeySource::Downloaded(data) => {
                let ext = if is_armored(data) { "asc" } else { "gpg" };
                let path = format!("{KEYRINGS_DIR}/{slug}.{ext}");
                let stat = records.stat(&format!("key{index}{ext}"));
                let new_sum = hex::encode(Sha256::digest(data));
                if stat.checksum.as_deref() != Some(new_sum.as_str()) {
                    let dir = records.stat("keydir");
                    plan.ensure_keyrings_dir =
                        !dir.exists || dir.mode & 0o7777 != 0o755 || dir.uid != 0 || dir.gid != 0;
                    plan.writes
                        .push((path.clone(), data.clone(), "0644".into()));
                    if env.diff_mode() && ext == "asc" {
                        diffs.push(Diff {
                            before_header: if stat.exists {
                                path.clone()
                            } else {
                                "/dev/null".into()
                            },
                            after_header: path.clone(),
                            before: String::new(),
                            after: String::from_utf8_lossy(data).into_owned(),
                        });
                    }
                } else if stat.mode & 0o7777 != 0o644 {
                    plan.chmods.push((path.clone(), "0644".into()));
                }
                key_filename = json!(path);
                rendered_fields.push(("signed_by".into(), path));
            }
        }
        let repo = render(&rendered_fields);
        result.insert("repo".into(), json!(repo));
        result.insert("key_filename".into(), key_filename);
        let new_sum = crate::modules::copy::sha1_hex(repo.as_bytes());
        if source_stat.checksum.as_deref() != Some(new_sum.as_str()) {
            plan.writes
                .push((dest.clone(), repo.clone().into_bytes(), mode.clone()));
            if env.diff_mode() {
                let before = if source_stat.exists {
                    source_stat.content.as_deref()
                } else {
                    Some(&b""[..])
                };
                if let Some(mut d) = fc::text_diff(&dest, before, &dest, repo.as_bytes()) {
                    if !source_stat.exists {
                        d.before_header = "/dev/null".into();
                    }
                    diffs.push(d);
                }
            }
        } else if fc::apply_mode(source_stat.mode, &mode, false)? != source_stat.mode & 0o7777 {
            plan.chmods.push((dest.clone(), mode.clone()));
        }
        Ok(finish(plan, result, diffs))
    }

    async fn apply(
        &self,
        env: &dyn TaskEnv,
        _args: &Args,
        plan: Plan,
    ) -> Result<Map<String, Value>, ModuleError> {
        let result = plan.result;
        let Some(data) = plan.data.and_then(|d| d.downcast::<WritePlan>().ok()) else {
            return Ok(result);
        };
        let script = write_plan_script(&data)?;
        let (_, out) = fc::run_script(env, &script, None).await?;
        if out.rc != 0 {
            return Err(fc::script_failed("writing the repository files", &out));
        }
        Ok(result)
    }
}

fn finish(plan: WritePlan, result: Map<String, Value>, diffs: Vec<Diff>) -> Plan {
    let changed = !plan.writes.is_empty()
        || !plan.chmods.is_empty()
        || !plan.removes.is_empty()
        || plan.ensure_keyrings_dir;
    Plan {
        changed,
        diffs,
        result,
        skip_in_check: None,
        data: Some(Box::new(plan)),
    }
}

fn write_plan_script(plan: &WritePlan) -> Result<String, ModuleError> {
    let mut s = String::new();
    if plan.ensure_keyrings_dir {
        s.push_str(&format!(
            "mkdir -p {d} && chown root:root {d} && chmod 0755 {d} || orch_fail 'cannot create {KEYRINGS_DIR}'\n",
            d = quote(KEYRINGS_DIR)
        ));
    }
    for (path, content, mode) in &plan.writes {
        s.push_str(&staged_write(path, content, Some(mode))?);
    }
    for (path, mode) in &plan.chmods {
        s.push_str(&format!(
            "chmod {} {} || orch_fail 'chmod failed'\n",
            quote(mode),
            quote(path)
        ));
    }
    for path in &plan.removes {
        s.push_str(&format!(
            "rm -f -- {} || orch_fail 'cannot remove {}'\n",
            quote(path),
            path.replace('\'', "")
        ));
    }
    s.push_str("exit 0\n");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testenv::{args, run_module, LocalEnv};

    #[test]
    fn field_names_match_ansible() {
        assert_eq!(field_name("name"), "X-Repolib-Name");
        assert_eq!(field_name("uris"), "URIs");
        assert_eq!(field_name("signed_by"), "Signed-By");
        assert_eq!(field_name("check_valid_until"), "Check-Valid-Until");
        assert_eq!(field_name("inrelease_path"), "Inrelease-Path");
        assert_eq!(field_name("types"), "Types");
    }

    #[test]
    fn docker_source_renders_like_ansible() {
        let a = args(
            "deb822_repository",
            serde_json::json!({
                "name": "docker",
                "types": "deb",
                "uris": "https://download.docker.com/linux/debian",
                "suites": "bookworm",
                "components": "stable",
                "architectures": "amd64",
                "enabled": true,
                "signed_by": "/etc/apt/keyrings/docker.asc",
            }),
        );
        let text = render(&fields(&a).unwrap());
        assert_eq!(
            text,
            "Architectures: amd64\nComponents: stable\nEnabled: yes\nX-Repolib-Name: docker\n\
             Signed-By: /etc/apt/keyrings/docker.asc\nSuites: bookworm\nTypes: deb\n\
             URIs: https://download.docker.com/linux/debian\n"
        );
    }

    #[test]
    fn inline_key_is_a_continuation_block() {
        let fields = vec![
            ("name".to_string(), "x".to_string()),
            (
                "signed_by".to_string(),
                "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEYCQ\n=IE0r\n-----END PGP PUBLIC KEY BLOCK-----\n".to_string(),
            ),
        ];
        assert_eq!(
            render(&fields),
            "X-Repolib-Name: x\nSigned-By:\n    -----BEGIN PGP PUBLIC KEY BLOCK-----\n    .\n    mDMEYCQ\n    =IE0r\n    -----END PGP PUBLIC KEY BLOCK-----\n"
        );
    }

    #[test]
    fn slugs() {
        assert_eq!(legacy_slug("Docker CE_repo  x"), "docker-ce-repo-x");
        assert_eq!(legacy_slug("a.b"), "ab");
        assert_eq!(slug("My Repo"), "My-Repo");
        assert!(has_url_scheme("https://x/gpg"));
        assert!(!has_url_scheme("/etc/apt/keyrings/x.asc"));
        assert!(!has_url_scheme("-----BEGIN PGP PUBLIC KEY BLOCK-----\n..."));
    }

    #[tokio::test]
    async fn staged_writes_install_files_atomically_with_mode() {
        let env = LocalEnv::new();
        let a = env.path("a.sources");
        let b = env.path("b.asc");
        let plan = WritePlan {
            writes: vec![
                (a.clone(), b"Types: deb\n".to_vec(), "0644".into()),
                (b.clone(), b"key'\"$x\n".to_vec(), "0600".into()),
            ],
            chmods: vec![],
            removes: vec![],
            ensure_keyrings_dir: false,
        };
        let script = format!("{}{}", fc::SHELL_LIB, write_plan_script(&plan).unwrap());
        let out = env.run(&script, None).await.unwrap();
        assert_eq!(out.rc, 0, "{}", String::from_utf8_lossy(&out.stdout));
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "Types: deb\n");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "key'\"$x\n");
        assert_eq!(crate::modules::testenv::mode_of(&a), 0o644);
        assert_eq!(crate::modules::testenv::mode_of(&b), 0o600);
        let left: Vec<_> = std::fs::read_dir(env.dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2);
    }

    #[tokio::test]
    async fn invalid_types_are_rejected_before_touching_the_host() {
        let env = LocalEnv::new();
        let a = args(
            "deb822_repository",
            serde_json::json!({"name": "x", "types": "rpm", "uris": "http://x", "suites": "s"}),
        );
        assert!(run_module(&Deb822Repository, &env, &a).await.is_err());
        assert_eq!(env.runs(), 0);
    }
}
