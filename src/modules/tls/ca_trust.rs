//! `ca_trust`: a CA certificate in the Debian system trust store
//! (`/usr/local/share/ca-certificates/<name>.crt`, then `update-ca-certificates`), which is what
//! OpenSSL, curl and Proxmox VE's OpenID client trust.
//!
//! Idempotent on the store itself, not only on the file: the plan also checks that the CA is in the
//! bundle `/etc/ssl/certs/ca-certificates.crt`, so a run that died between writing the file and
//! updating the store is repaired by the next one (a handler would have been lost).

use serde_json::{json, Map, Value};

use super::super::filecommon::{self as fc, ResolvedAttrs, WantedAttrs};
use super::super::remote::quote;
use super::super::{Arg, ArgSpec, Args, Diff, Module, ModuleError, Plan, TaskEnv};
use super::x509::CertInfo;

pub struct CaTrust;

static SPEC: ArgSpec = ArgSpec {
    args: &[
        Arg::req("name"),
        Arg::opt("content"),
        Arg::opt("state").choices(&["present", "absent"]),
    ],
    free_form: None,
    any_keys: false,
};

const STORE_DIR: &str = "/usr/local/share/ca-certificates";
const BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const LINKS_DIR: &str = "/etc/ssl/certs";

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The lines of the certificate's base64 body that identify it in the bundle: the last two carry
/// its signature, which no other certificate shares.
fn marker_lines(pem: &str) -> Vec<String> {
    let body: Vec<&str> = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    body.iter().rev().take(2).map(|l| l.to_string()).collect()
}

struct Work {
    path: String,
    /// New file content, or None to remove it.
    content: Option<String>,
    write_file: bool,
    /// The file is replaced by another certificate: update-ca-certificates rehashes the
    /// `/etc/ssl/certs` lookup links only when links are added or removed, so rebuild them.
    replaces: bool,
}

fn describe(info: &CertInfo) -> String {
    format!(
        "subject: {}\nexpires: {}\nsha256: {}\n",
        info.subject,
        info.not_after_text(),
        info.fingerprint_sha256
    )
}

#[async_trait::async_trait]
impl Module for CaTrust {
    fn name(&self) -> &'static str {
        "ca_trust"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let name = args.req_str("name")?;
        let name = name.strip_suffix(".crt").unwrap_or(&name).to_string();
        if !valid_name(&name) {
            return Err(ModuleError::msg(format!(
                "name must be a plain file name (letters, digits, . _ -), got '{name}'"
            )));
        }
        let present = args
            .choice("state", &["present", "absent"], "present")?
            .as_str()
            == "present";
        let wanted = match (present, args.str("content")?) {
            (true, Some(content)) if !content.trim().is_empty() => {
                let info = CertInfo::from_pem(&content)
                    .map_err(|e| ModuleError::msg(format!("content: {e}")))?;
                if !info.is_ca {
                    return Err(ModuleError::msg(format!(
                        "content is not a CA certificate ({}; no basicConstraints CA:TRUE): \
                         trust the CA that issued it, not the server certificate",
                        info.subject
                    )));
                }
                // update-ca-certificates copies the file into the bundle as it is: LF line ends,
                // so that the bundle check below matches.
                let mut text = content.replace("\r\n", "\n").trim().to_string();
                text.push('\n');
                Some((text, info))
            }
            (true, _) => {
                return Err(ModuleError::msg(
                    "content (the CA certificate, PEM) is required when state is present",
                ))
            }
            (false, _) => None,
        };
        let path = format!("{STORE_DIR}/{name}.crt");
        let link = format!("{LINKS_DIR}/{name}.pem");

        let mut script = format!(
            "command -v update-ca-certificates >/dev/null 2>&1 || orch_fail {}\n",
            quote("update-ca-certificates is not installed: apt install ca-certificates")
        );
        script.push_str(&fc::probe_lines("crt", &path, false, "none", 65_536));
        script.push_str(&fc::flag_line("link", "exists", "-L", &link));
        if let Some((text, _)) = &wanted {
            let greps: Vec<String> = marker_lines(text)
                .iter()
                .map(|l| format!("grep -qxF -- {} {}", quote(l), quote(BUNDLE)))
                .collect();
            script.push_str(&format!(
                "if {}; then orch_kv bundle has 1; fi\n",
                greps.join(" && ")
            ));
        }
        let (records, out) = fc::run_script(env, &script, None).await?;
        if out.rc != 0 {
            return Err(fc::script_failed("reading the trust store", &out));
        }
        let stat = records.stat("crt");
        if stat.exists && stat.kind != fc::FileKind::File {
            return Err(ModuleError::msg(format!("{path} is not a regular file")));
        }
        let current = stat
            .content
            .as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned());
        let current_info = current.as_deref().and_then(|c| CertInfo::from_pem(c).ok());

        let mut result = Map::new();
        result.insert("path".into(), json!(path));
        let (changed, write_file, before, after) = match &wanted {
            Some((text, info)) => {
                result.insert("subject".into(), json!(info.subject));
                result.insert("fingerprint_sha256".into(), json!(info.fingerprint_sha256));
                result.insert("not_after".into(), json!(info.not_after_text()));
                let write_file = current.as_deref() != Some(text.as_str());
                let in_store = records.flag("bundle", "has") && records.flag("link", "exists");
                let mut before = current_info.as_ref().map(describe).unwrap_or_default();
                if stat.exists && !in_store {
                    before.push_str("(not in the system bundle)\n");
                }
                (write_file || !in_store, write_file, before, describe(info))
            }
            None => (
                stat.exists,
                stat.exists,
                current_info.as_ref().map(describe).unwrap_or_default(),
                String::new(),
            ),
        };
        let diffs = if changed && env.diff_mode() {
            vec![Diff {
                before_header: path.clone(),
                after_header: path.clone(),
                before,
                after,
            }]
        } else {
            Vec::new()
        };
        Ok(Plan {
            changed,
            diffs,
            result,
            skip_in_check: None,
            data: Some(Box::new(Work {
                path,
                content: wanted.map(|(text, _)| text),
                write_file,
                replaces: write_file && stat.exists,
            })),
        })
    }

    async fn apply(
        &self,
        env: &dyn TaskEnv,
        _args: &Args,
        plan: Plan,
    ) -> Result<Map<String, Value>, ModuleError> {
        let result = plan.result;
        let Some(work) = plan.data.and_then(|d| d.downcast::<Work>().ok()) else {
            return Ok(result);
        };
        let mut script = String::new();
        let mut stdin = None;
        match (&work.content, work.write_file) {
            (Some(text), true) => {
                let attrs = ResolvedAttrs {
                    wanted: WantedAttrs {
                        mode: Some("0644".into()),
                        owner: None,
                        group: None,
                    },
                    uid: None,
                    gid: None,
                };
                script.push_str(&format!("mkdir -p -- {}\n", quote(STORE_DIR)));
                script.push_str(&fc::write_script(&fc::WriteSpec {
                    dest: &work.path,
                    source: fc::WriteSource::Stdin,
                    attrs: &attrs,
                    validate: None,
                    backup: false,
                    make_parents: false,
                })?);
                stdin = Some(text.clone().into_bytes());
            }
            (None, true) => script.push_str(&format!(
                "rm -f -- {} || orch_fail 'cannot remove the certificate'\n",
                quote(&work.path)
            )),
            _ => {}
        }
        let fresh = if work.replaces { " --fresh" } else { "" };
        script.push_str(&format!(
            "out=$(update-ca-certificates{fresh} 2>&1) || orch_fail \"update-ca-certificates failed: $out\"\n"
        ));
        let (_, out) = fc::run_script(env, &script, stdin).await?;
        if out.rc != 0 {
            return Err(fc::script_failed("updating the trust store", &out));
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_markers() {
        assert!(valid_name("orch-authentik-ca"));
        assert!(!valid_name("../etc/x") && !valid_name("") && !valid_name(".hidden"));
        let pem = "-----BEGIN CERTIFICATE-----\nAAA\nBBB\nCC==\n-----END CERTIFICATE-----\n";
        assert_eq!(marker_lines(pem), vec!["CC==", "BBB"]);
    }
}
