//! `internal_ca`: a private CA and one server certificate signed by it, made once with rcgen on the
//! controller and kept on the target (the remote files are the source of truth, so any controller
//! can rerun, as with `env_file`).
//!
//! Files in `path`: `ca.crt` (0644), `ca.key` (0600), `server.crt` (0644), `server.key` (0600); the
//! directory is 0700. A rerun keeps them all; the server certificate alone is reissued (by the same
//! CA, so clients keep trusting it) when its names change, when it no longer chains to the CA, or
//! within `renew_before_days` of expiry. A new `key_size`, `validity_days` or `ca_common_name`
//! applies from the next (re)issue: it is not by itself a reason to replace working material. The CA is remade only when it is missing, does not match its
//! key, or is itself about to expire. Files are written through temp files and renamed, keys first:
//! a run that dies halfway leaves a key that does not match its certificate, which the next run
//! detects and repairs.
//!
//! Returns `ca_certificate`, `certificate` and `private_key` (PEM; the key is a secret, masked
//! everywhere), fingerprints and expiry dates. In check mode the missing material is made in memory
//! only, so later tasks can predict what installing it changes.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::super::filecommon::{self as fc, Records};
use super::super::remote::quote;
use super::super::{Arg, ArgSpec, Args, Diff, Module, ModuleError, Plan, TaskEnv, SECRETS_KEY};
use super::x509::{self, CertInfo, PemPair};

pub struct InternalCa;

static SPEC: ArgSpec = ArgSpec {
    args: &[
        Arg::req("path"),
        Arg::req("common_name"),
        Arg::opt("subject_alt_names").aliases(&["subject_alt_name", "sans"]),
        Arg::opt("ca_common_name"),
        Arg::opt("validity_days"),
        Arg::opt("ca_validity_days"),
        Arg::opt("renew_before_days"),
        Arg::opt("key_size").choices(&["2048", "3072", "4096"]),
    ],
    free_form: None,
    any_keys: false,
};

const KEY_MODE: u32 = 0o600;
const CERT_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o700;
const MAX_PEM: i64 = 65_536;

/// The four files, in the order they are written: each key before its certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    CaKey,
    CaCert,
    ServerKey,
    ServerCert,
}

impl Part {
    const ALL: [Part; 4] = [Part::CaKey, Part::CaCert, Part::ServerKey, Part::ServerCert];

    fn file(self) -> &'static str {
        match self {
            Part::CaKey => "ca.key",
            Part::CaCert => "ca.crt",
            Part::ServerKey => "server.key",
            Part::ServerCert => "server.crt",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Part::CaKey => "cakey",
            Part::CaCert => "cacrt",
            Part::ServerKey => "srvkey",
            Part::ServerCert => "srvcrt",
        }
    }

    fn mode(self) -> u32 {
        match self {
            Part::CaKey | Part::ServerKey => KEY_MODE,
            Part::CaCert | Part::ServerCert => CERT_MODE,
        }
    }
}

#[derive(Clone, Debug)]
struct Wanted {
    dir: String,
    common_name: String,
    names: Vec<String>,
    ca_common_name: String,
    days: u32,
    ca_days: u32,
    renew_before_days: u32,
    key_size: u32,
}

fn days_arg(args: &Args, name: &str, default: i64, range: (i64, i64)) -> Result<u32, ModuleError> {
    let value = args.int(name)?.unwrap_or(default);
    if value < range.0 || value > range.1 {
        return Err(ModuleError::msg(format!(
            "{name} must be between {} and {}, got {value}",
            range.0, range.1
        )));
    }
    Ok(value as u32)
}

impl Wanted {
    fn from_args(args: &Args) -> Result<Wanted, ModuleError> {
        let dir = args.req_str("path")?.trim_end_matches('/').to_string();
        if !dir.starts_with('/') {
            return Err(ModuleError::msg(format!(
                "path must be an absolute directory, got '{dir}'"
            )));
        }
        let common_name = args.req_str("common_name")?.trim().to_string();
        if common_name.is_empty() {
            return Err(ModuleError::msg("common_name must not be empty"));
        }
        let names = canonical_names(
            args.list("subject_alt_names")?
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| vec![common_name.clone()]),
        );
        let ca_common_name = args
            .str("ca_common_name")?
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| format!("orch internal CA ({common_name})"));
        let days = days_arg(args, "validity_days", 825, (2, 36_500))?;
        let ca_days = days_arg(args, "ca_validity_days", 3650, (2, 36_500))?;
        let renew_before_days = days_arg(args, "renew_before_days", 30, (0, 36_499))?;
        if renew_before_days >= days {
            return Err(ModuleError::msg(format!(
                "renew_before_days ({renew_before_days}) must be less than validity_days ({days}), \
                 or every run would renew the certificate"
            )));
        }
        let key_size = match args.int("key_size")?.unwrap_or(3072) {
            s @ (2048 | 3072 | 4096) => s as u32,
            other => {
                return Err(ModuleError::msg(format!(
                    "key_size must be 2048, 3072 or 4096, got {other}"
                )))
            }
        };
        Ok(Wanted {
            dir,
            common_name,
            names,
            ca_common_name,
            days,
            ca_days,
            renew_before_days,
            key_size,
        })
    }

    fn path(&self, part: Part) -> String {
        format!("{}/{}", self.dir, part.file())
    }
}

/// One file as the probe found it.
#[derive(Clone, Debug, Default)]
struct Found {
    text: Option<String>,
    mode: u32,
}

/// What the probe found in `path`.
#[derive(Clone, Debug, Default)]
struct Current {
    dir_exists: bool,
    dir_mode: u32,
    files: [Found; 4],
    /// sha256 of the existing files' contents in `Part::ALL` order, to refuse writing over a change
    /// made between plan and apply.
    checksum: String,
}

impl Current {
    fn text(&self, part: Part) -> Option<&str> {
        self.files[part as usize].text.as_deref()
    }
}

fn probe_script(wanted: &Wanted) -> String {
    let mut s = format!("d={}\n", quote(&wanted.dir));
    s.push_str("orch_stat dir \"$d\" 0 none -1\n");
    for part in Part::ALL {
        s.push_str(&format!(
            "orch_stat {} \"$d/{}\" 0 none {MAX_PEM}\n",
            part.tag(),
            part.file()
        ));
    }
    s.push_str(&sum_line(&wanted.dir));
    s.push_str("orch_kv files sum \"$sum\"\n");
    s
}

/// Sets `$sum` to the sha256 of the existing files, in write order.
fn sum_line(dir: &str) -> String {
    let files: Vec<String> = Part::ALL
        .iter()
        .map(|p| quote(&format!("{dir}/{}", p.file())))
        .collect();
    format!(
        "sum=$(cat -- {} 2>/dev/null | sha256sum); sum=${{sum%% *}}\n",
        files.join(" ")
    )
}

fn read_current(wanted: &Wanted, records: &Records) -> Result<Current, ModuleError> {
    let dir = records.stat("dir");
    if dir.exists && dir.kind != fc::FileKind::Directory {
        return Err(ModuleError::msg(format!(
            "{} exists and is not a directory",
            wanted.dir
        )));
    }
    let mut current = Current {
        dir_exists: dir.exists,
        dir_mode: dir.mode & 0o7777,
        checksum: records.get("files", "sum").unwrap_or_default().to_string(),
        ..Current::default()
    };
    let mut joined = Vec::new();
    for part in Part::ALL {
        let stat = records.stat(part.tag());
        if !stat.exists {
            continue;
        }
        let path = wanted.path(part);
        if stat.kind != fc::FileKind::File {
            return Err(ModuleError::msg(format!(
                "{path} exists and is not a regular file"
            )));
        }
        let bytes = stat.content.ok_or_else(|| {
            ModuleError::msg(format!(
                "{path} cannot be read, or is larger than {MAX_PEM} bytes: not a PEM file"
            ))
        })?;
        joined.extend_from_slice(&bytes);
        let text = String::from_utf8(bytes)
            .map_err(|_| ModuleError::msg(format!("{path} is not PEM text")))?;
        current.files[part as usize] = Found {
            text: Some(text),
            mode: stat.mode & 0o7777,
        };
    }
    // The probe's checksum covers the same bytes; recomputed here so both sides agree on missing files.
    if current.checksum.is_empty() {
        current.checksum = hex::encode(Sha256::digest(&joined));
    }
    Ok(current)
}

/// A CA or server pair found on the target and usable as it is.
struct Kept {
    pair: PemPair,
    info: CertInfo,
}

/// Why a pair is (re)made; None when the existing one is kept.
fn check_ca(current: &Current, wanted: &Wanted) -> Result<Result<Kept, String>, ModuleError> {
    let (Some(cert), Some(key)) = (current.text(Part::CaCert), current.text(Part::CaKey)) else {
        return Ok(Err(
            match (current.text(Part::CaCert), current.text(Part::CaKey)) {
                (None, None) => "no CA yet",
                _ => "the CA certificate or its key is missing",
            }
            .to_string(),
        ));
    };
    let path = wanted.path(Part::CaCert);
    let info = CertInfo::from_pem(cert)
        .map_err(|e| ModuleError::msg(format!("{path}: {e}; move it away to make a new CA")))?;
    if !info.is_ca {
        return Err(ModuleError::msg(format!(
            "{path} is not a CA certificate (no basicConstraints CA:TRUE); move it away to make a new CA"
        )));
    }
    if !x509::pem_key_matches(key, &info) {
        return Ok(Err("the CA key does not match its certificate".into()));
    }
    if info.seconds_left() <= i64::from(wanted.renew_before_days) * 86_400 {
        return Ok(Err(format!("the CA expires {}", info.not_after_text())));
    }
    Ok(Ok(Kept {
        pair: PemPair {
            certificate: cert.to_string(),
            private_key: key.to_string(),
        },
        info,
    }))
}

/// Names as a certificate holds them: DNS names in lower case, addresses in their canonical text
/// (`2001:db8::1`, not `2001:DB8:0::1`), each once, in the order given.
fn canonical_names(given: Vec<String>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in given {
        let name = name.trim();
        let name = match name.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => name.to_ascii_lowercase(),
        };
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

fn same_names(info: &CertInfo, wanted: &Wanted) -> bool {
    let names = info.host_names();
    let have: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let want: BTreeSet<&str> = wanted.names.iter().map(String::as_str).collect();
    have == want && info.common_name.as_deref() == Some(wanted.common_name.as_str())
}

fn check_server(current: &Current, wanted: &Wanted, ca: &CertInfo) -> Result<Kept, String> {
    let (Some(cert), Some(key)) = (
        current.text(Part::ServerCert),
        current.text(Part::ServerKey),
    ) else {
        return Err(match (
            current.text(Part::ServerCert),
            current.text(Part::ServerKey),
        ) {
            (None, None) => "no server certificate yet",
            _ => "the server certificate or its key is missing",
        }
        .to_string());
    };
    let info = CertInfo::from_pem(cert)
        .map_err(|e| format!("the server certificate cannot be read ({e})"))?;
    if !x509::pem_key_matches(key, &info) {
        return Err("the server key does not match its certificate".into());
    }
    if !info.is_signed_by(ca) {
        return Err("the server certificate was not issued by this CA".into());
    }
    if !same_names(&info, wanted) {
        return Err(format!(
            "the server certificate names {} {:?}, wanted {} {:?}",
            info.common_name.as_deref().unwrap_or("(no CN)"),
            info.host_names(),
            wanted.common_name,
            wanted.names
        ));
    }
    if info.seconds_left() <= i64::from(wanted.renew_before_days) * 86_400 {
        return Err(format!(
            "the server certificate expires {}",
            info.not_after_text()
        ));
    }
    Ok(Kept {
        pair: PemPair {
            certificate: cert.to_string(),
            private_key: key.to_string(),
        },
        info,
    })
}

/// What apply writes: new file contents, and modes to correct on files that stay.
#[derive(Clone, Debug, Default)]
struct Work {
    dir: String,
    make_dir: bool,
    fix_dir_mode: bool,
    writes: Vec<(Part, String)>,
    chmods: Vec<Part>,
    checksum: String,
}

fn describe_cert(label: &str, info: &CertInfo) -> String {
    format!(
        "{label}: {}\n  names: {}\n  issuer: {}\n  expires: {}\n  sha256: {}\n",
        info.subject,
        match info.host_names() {
            names if names.is_empty() => "-".to_string(),
            names => names.join(", "),
        },
        info.issuer,
        info.not_after_text(),
        info.fingerprint_sha256
    )
}

/// The diff's view of the directory: certificates described, keys only named.
fn describe(
    wanted: &Wanted,
    ca: Option<&CertInfo>,
    server: Option<&CertInfo>,
    modes: [Option<u32>; 4],
) -> String {
    let mut out = String::new();
    for part in Part::ALL {
        let Some(mode) = modes[part as usize] else {
            continue;
        };
        let path = wanted.path(part);
        let info = match part {
            Part::CaCert => ca,
            Part::ServerCert => server,
            _ => None,
        };
        match info {
            Some(info) => out.push_str(&describe_cert(
                &format!("{path} ({})", fc::format_mode(mode)),
                info,
            )),
            None => out.push_str(&format!(
                "{path} ({}): private key, not shown\n",
                fc::format_mode(mode)
            )),
        }
    }
    out
}

fn result_of(
    wanted: &Wanted,
    ca: &Kept,
    server: &Kept,
    generated: &[&str],
    renewed: &[String],
) -> Map<String, Value> {
    let mut r = Map::new();
    r.insert("path".into(), json!(wanted.dir));
    r.insert("ca_path".into(), json!(wanted.path(Part::CaCert)));
    r.insert(
        "certificate_path".into(),
        json!(wanted.path(Part::ServerCert)),
    );
    r.insert("key_path".into(), json!(wanted.path(Part::ServerKey)));
    r.insert("ca_certificate".into(), json!(ca.pair.certificate));
    r.insert("certificate".into(), json!(server.pair.certificate));
    r.insert(
        "chain".into(),
        json!(format!(
            "{}{}",
            server.pair.certificate, ca.pair.certificate
        )),
    );
    r.insert("private_key".into(), json!(server.pair.private_key));
    r.insert("common_name".into(), json!(wanted.common_name));
    r.insert("subject_alt_names".into(), json!(server.info.host_names()));
    r.insert(
        "ca_fingerprint_sha256".into(),
        json!(ca.info.fingerprint_sha256),
    );
    r.insert(
        "fingerprint_sha256".into(),
        json!(server.info.fingerprint_sha256),
    );
    r.insert("ca_not_after".into(), json!(ca.info.not_after_text()));
    r.insert("not_after".into(), json!(server.info.not_after_text()));
    r.insert("generated".into(), json!(generated));
    r.insert("renewed_because".into(), json!(renewed));
    // Both keys are masked wherever they could show; only the server key is a result (to import
    // it). The CA key is read back on every run (to sign renewals) but returned nowhere.
    r.insert(
        SECRETS_KEY.into(),
        json!([server.pair.private_key, ca.pair.private_key]),
    );
    r
}

fn kept(pair: PemPair) -> Result<Kept, ModuleError> {
    let info = CertInfo::from_pem(&pair.certificate).map_err(ModuleError::msg)?;
    Ok(Kept { pair, info })
}

async fn make(wanted: &Wanted, ca: Option<PemPair>) -> Result<(PemPair, PemPair), ModuleError> {
    let w = wanted.clone();
    tokio::task::spawn_blocking(move || -> Result<(PemPair, PemPair), String> {
        let ca = match ca {
            Some(ca) => ca,
            None => x509::make_ca(&w.ca_common_name, w.ca_days, w.key_size)?,
        };
        let server = x509::make_server_cert(&ca, &w.common_name, &w.names, w.days, w.key_size)?;
        Ok((ca, server))
    })
    .await
    .map_err(|e| ModuleError::msg(format!("key generation stopped: {e}")))?
    .map_err(ModuleError::msg)
}

#[async_trait::async_trait]
impl Module for InternalCa {
    fn name(&self) -> &'static str {
        "internal_ca"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let wanted = Wanted::from_args(args)?;
        let (records, out) = fc::run_script(env, &probe_script(&wanted), None).await?;
        if out.rc != 0 {
            return Err(fc::script_failed("reading the CA directory", &out));
        }
        let current = read_current(&wanted, &records)?;

        let mut generated = Vec::new();
        let mut renewed = Vec::new();
        let (ca, server) = match check_ca(&current, &wanted)? {
            Ok(ca) => match check_server(&current, &wanted, &ca.info) {
                Ok(server) => (ca, server),
                Err(why) => {
                    if current.text(Part::ServerCert).is_some() {
                        renewed.push(why);
                    }
                    generated.push("certificate");
                    let (_, server) = make(&wanted, Some(ca.pair.clone())).await?;
                    (ca, kept(server)?)
                }
            },
            Err(why) => {
                if current.text(Part::CaCert).is_some() || current.text(Part::CaKey).is_some() {
                    renewed.push(why);
                }
                generated.extend(["ca", "certificate"]);
                let (ca, server) = make(&wanted, None).await?;
                (kept(ca)?, kept(server)?)
            }
        };

        let mut work = Work {
            dir: wanted.dir.clone(),
            make_dir: !current.dir_exists,
            fix_dir_mode: current.dir_exists && current.dir_mode != DIR_MODE,
            checksum: current.checksum.clone(),
            ..Work::default()
        };
        for part in Part::ALL {
            let new_text = match part {
                Part::CaKey => &ca.pair.private_key,
                Part::CaCert => &ca.pair.certificate,
                Part::ServerKey => &server.pair.private_key,
                Part::ServerCert => &server.pair.certificate,
            };
            let found = &current.files[part as usize];
            if found.text.as_deref() != Some(new_text.as_str()) {
                work.writes.push((part, new_text.clone()));
            } else if found.mode != part.mode() {
                work.chmods.push(part);
            }
        }
        let changed = work.make_dir
            || work.fix_dir_mode
            || !work.writes.is_empty()
            || !work.chmods.is_empty();

        let mut diffs = Vec::new();
        if changed && env.diff_mode() {
            let before_ca = current
                .text(Part::CaCert)
                .and_then(|t| CertInfo::from_pem(t).ok());
            let before_server = current
                .text(Part::ServerCert)
                .and_then(|t| CertInfo::from_pem(t).ok());
            let before_modes = Part::ALL.map(|p| {
                let f = &current.files[p as usize];
                f.text.as_ref().map(|_| f.mode)
            });
            let mut before = String::new();
            if current.dir_exists {
                before.push_str(&format!(
                    "{} ({})\n",
                    wanted.dir,
                    fc::format_mode(current.dir_mode)
                ));
                before.push_str(&describe(
                    &wanted,
                    before_ca.as_ref(),
                    before_server.as_ref(),
                    before_modes,
                ));
            }
            let mut after = format!("{} ({})\n", wanted.dir, fc::format_mode(DIR_MODE));
            after.push_str(&describe(
                &wanted,
                Some(&ca.info),
                Some(&server.info),
                Part::ALL.map(|p| Some(p.mode())),
            ));
            for why in &renewed {
                after.push_str(&format!("# renewed: {why}\n"));
            }
            diffs.push(Diff {
                before_header: wanted.dir.clone(),
                after_header: wanted.dir.clone(),
                before,
                after,
            });
        }
        Ok(Plan {
            changed,
            diffs,
            result: result_of(&wanted, &ca, &server, &generated, &renewed),
            skip_in_check: None,
            data: Some(Box::new(work)),
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
        let dir = quote(&work.dir);
        let mut s = format!("d={dir}\n");
        if work.make_dir {
            s.push_str(&format!(
                "[ -e \"$d\" ] && orch_fail \"$d appeared since it was read: run the task again\"\n\
                 mkdir -p -m {DIR_MODE:o} -- \"$d\" || orch_fail \"cannot create $d\"\n"
            ));
        } else {
            s.push_str(&sum_line(&work.dir));
            s.push_str(&format!(
                "[ \"$sum\" = {} ] || orch_fail \"the files in $d changed since they were read: run the task again\"\n",
                quote(&work.checksum)
            ));
        }
        // Temp files of a run whose connection died mid-write (its EXIT trap never ran).
        s.push_str("rm -f -- \"$d\"/.orch_tmp.* 2>/dev/null\n");
        if work.fix_dir_mode {
            s.push_str(&format!(
                "chmod {DIR_MODE:o} -- \"$d\" || orch_fail \"cannot chmod $d\"\n"
            ));
        }
        // Contents come on stdin, one base64 line per file: never in the command line.
        let mut stdin = String::new();
        for (part, text) in &work.writes {
            use base64::Engine;
            stdin.push_str(&base64::engine::general_purpose::STANDARD.encode(text));
            stdin.push('\n');
            s.push_str(&format!(
                "IFS= read -r b64 || orch_fail 'the file contents did not arrive'\n\
                 t=\"$d/.orch_tmp.{file}.$$\"; trap 'rm -f -- \"$t\"' EXIT\n\
                 ( umask 077; printf '%s' \"$b64\" | base64 -d > \"$t\" ) || orch_fail \"cannot write $t\"\n\
                 chmod {mode:o} -- \"$t\" && sync -- \"$t\" 2>/dev/null; mv -f -- \"$t\" \"$d/{file}\" || orch_fail \"cannot replace $d/{file}\"\n",
                file = part.file(),
                mode = part.mode(),
            ));
        }
        for part in &work.chmods {
            s.push_str(&format!(
                "chmod {:o} -- \"$d/{}\" || orch_fail \"cannot chmod $d/{}\"\n",
                part.mode(),
                part.file(),
                part.file()
            ));
        }
        s.push_str("b64=\n");
        let (_, out) = fc::run_script(env, &s, Some(stdin.into_bytes())).await?;
        if out.rc != 0 {
            return Err(fc::script_failed("writing the CA files", &out));
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::testenv::{args, failure, mode_of, run_module, LocalEnv};
    use super::*;

    fn ca_args(env: &LocalEnv, extra: Value) -> Args {
        let mut a = json!({
            "path": env.path("ca"),
            "common_name": "auth.example.test",
            "key_size": 2048,
        });
        if let (Some(a), Value::Object(extra)) = (a.as_object_mut(), extra) {
            a.extend(extra);
        }
        args("internal_ca", a)
    }

    fn read(env: &LocalEnv, file: &str) -> String {
        std::fs::read_to_string(env.path(&format!("ca/{file}"))).unwrap()
    }

    #[tokio::test]
    async fn made_once_then_kept_with_modes_enforced() {
        let env = LocalEnv::new();
        let a = ca_args(&env, json!({}));
        let first = run_module(&InternalCa, &env, &a).await.unwrap();
        assert!(first.changed);
        assert_eq!(first.result["generated"], json!(["ca", "certificate"]));
        assert_eq!(mode_of(&env.path("ca")), 0o700);
        assert_eq!(mode_of(&env.path("ca/ca.key")), 0o600);
        assert_eq!(mode_of(&env.path("ca/server.key")), 0o600);
        assert_eq!(mode_of(&env.path("ca/ca.crt")), 0o644);
        assert_eq!(first.result["ca_certificate"], json!(read(&env, "ca.crt")));
        assert_eq!(first.result["private_key"], json!(read(&env, "server.key")));
        let secrets = first.result[SECRETS_KEY].to_string();
        assert!(secrets.contains(&serde_json::to_string(&read(&env, "ca.key")).unwrap()[1..20]));
        let server = CertInfo::from_pem(&read(&env, "server.crt")).unwrap();
        let ca = CertInfo::from_pem(&read(&env, "ca.crt")).unwrap();
        assert!(server.is_signed_by(&ca));
        assert_eq!(server.host_names(), vec!["auth.example.test"]);

        let before: Vec<String> = ["ca.crt", "ca.key", "server.crt", "server.key"]
            .iter()
            .map(|f| read(&env, f))
            .collect();
        let second = run_module(&InternalCa, &env, &a).await.unwrap();
        assert!(!second.changed, "{:?}", second.result);
        assert_eq!(second.result["generated"], json!([]));
        assert_eq!(second.result["private_key"], json!(before[3]));

        std::fs::set_permissions(
            env.path("ca/server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
        let fixed = run_module(&InternalCa, &env, &a).await.unwrap();
        assert!(fixed.changed);
        assert_eq!(mode_of(&env.path("ca/server.key")), 0o600);
        let after: Vec<String> = ["ca.crt", "ca.key", "server.crt", "server.key"]
            .iter()
            .map(|f| read(&env, f))
            .collect();
        assert_eq!(before, after, "a mode fix rewrites nothing");
    }

    #[test]
    fn names_are_compared_as_a_certificate_holds_them() {
        assert_eq!(
            canonical_names(vec![
                "Auth.Example.test".into(),
                "2001:DB8:0::1".into(),
                "auth.example.test".into(),
                " 192.0.2.10 ".into(),
                "2001:db8::1".into(),
            ]),
            vec!["auth.example.test", "2001:db8::1", "192.0.2.10"]
        );
    }

    #[tokio::test]
    async fn an_address_written_differently_does_not_reissue() {
        let env = LocalEnv::new();
        let a = ca_args(
            &env,
            json!({"subject_alt_names": ["auth.example.test", "2001:DB8::1"]}),
        );
        assert!(run_module(&InternalCa, &env, &a).await.unwrap().changed);
        let again = run_module(&InternalCa, &env, &a).await.unwrap();
        assert!(!again.changed, "{:?}", again.result["renewed_because"]);
    }

    #[tokio::test]
    async fn new_names_reissue_the_server_certificate_from_the_same_ca() {
        let env = LocalEnv::new();
        run_module(&InternalCa, &env, &ca_args(&env, json!({})))
            .await
            .unwrap();
        let ca_before = read(&env, "ca.crt");
        let key_before = read(&env, "ca.key");
        let more = ca_args(
            &env,
            json!({"subject_alt_names": ["auth.example.test", "sso.example.test"]}),
        );
        let out = run_module(&InternalCa, &env, &more).await.unwrap();
        assert!(out.changed);
        assert_eq!(out.result["generated"], json!(["certificate"]));
        assert!(out.result["renewed_because"][0]
            .as_str()
            .unwrap()
            .contains("names"));
        assert_eq!(read(&env, "ca.crt"), ca_before);
        assert_eq!(read(&env, "ca.key"), key_before);
        let server = CertInfo::from_pem(&read(&env, "server.crt")).unwrap();
        assert_eq!(
            server.host_names(),
            vec!["auth.example.test", "sso.example.test"]
        );
        assert!(server.is_signed_by(&CertInfo::from_pem(&ca_before).unwrap()));
    }

    #[tokio::test]
    async fn a_half_written_ca_is_repaired_and_check_mode_writes_nothing() {
        let env = LocalEnv::new();
        let a = ca_args(&env, json!({}));
        run_module(&InternalCa, &env, &a).await.unwrap();
        // As if a run died after writing a new CA key but before its certificate.
        let other = x509::make_ca("other", 10, 2048).unwrap();
        std::fs::write(env.path("ca/ca.key"), &other.private_key).unwrap();

        let mut check = LocalEnv::new();
        check.dir = env.dir;
        check.check = true;
        check.diff = true;
        let predicted = run_module(&InternalCa, &check, &a).await.unwrap();
        assert!(predicted.changed);
        assert_eq!(
            std::fs::read_to_string(check.path("ca/ca.key")).unwrap(),
            other.private_key,
            "check mode wrote"
        );
        let diff = &predicted.diffs[0];
        assert!(diff.after.contains("renewed: the CA key does not match"));
        for d in [&diff.before, &diff.after] {
            assert!(!d.contains("PRIVATE KEY") && !d.contains("BEGIN"), "{d}");
        }
        assert!(diff.before.contains("private key, not shown"));

        check.check = false;
        let repaired = run_module(&InternalCa, &check, &a).await.unwrap();
        assert!(repaired.changed);
        let ca =
            CertInfo::from_pem(&std::fs::read_to_string(check.path("ca/ca.crt")).unwrap()).unwrap();
        assert!(x509::pem_key_matches(
            &std::fs::read_to_string(check.path("ca/ca.key")).unwrap(),
            &ca
        ));
        let server =
            CertInfo::from_pem(&std::fs::read_to_string(check.path("ca/server.crt")).unwrap())
                .unwrap();
        assert!(server.is_signed_by(&ca));
        assert!(!run_module(&InternalCa, &check, &a).await.unwrap().changed);
    }

    #[tokio::test]
    async fn bad_arguments_and_foreign_files_are_refused() {
        let env = LocalEnv::new();
        let (msg, _) = failure(
            run_module(
                &InternalCa,
                &env,
                &ca_args(&env, json!({"path": "relative/dir"})),
            )
            .await,
        );
        assert!(msg.contains("absolute"), "{msg}");
        let (msg, _) = failure(
            run_module(
                &InternalCa,
                &env,
                &ca_args(&env, json!({"validity_days": 30, "renew_before_days": 30})),
            )
            .await,
        );
        assert!(msg.contains("renew_before_days"), "{msg}");
        std::fs::create_dir(env.path("ca")).unwrap();
        std::fs::write(env.path("ca/ca.crt"), "not a certificate").unwrap();
        std::fs::write(env.path("ca/ca.key"), "not a key").unwrap();
        let (msg, _) = failure(run_module(&InternalCa, &env, &ca_args(&env, json!({}))).await);
        assert!(
            msg.contains("ca.crt") && msg.contains("move it away"),
            "{msg}"
        );
        assert_eq!(read(&env, "ca.key"), "not a key", "nothing overwritten");
    }
}
