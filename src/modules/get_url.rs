//! `get_url`: downloads a URL to a file on the target with curl or wget (no Python).
//!
//! The plan probes `dest` (and fetches a remote checksum file) in one round trip; `force: false` with an
//! existing dest (whose checksum matches, when one is given) means no download. The apply downloads to a
//! temp file beside dest (or in `tmp_dest`), verifies the checksum, and only then replaces dest with
//! filecommon's atomic write script, so a failed or corrupt download never touches the old dest.

use serde_json::{json, Map, Value};

use super::file_spec;
use super::filecommon::{self as fc, ResolvedAttrs, WantedAttrs, WriteSource, WriteSpec};
use super::remote::quote;
use super::urlfetch::{self, Request, Response};
use super::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv};

pub struct GetUrl;

static SPEC: ArgSpec = file_spec!(
    Arg::req("url"),
    Arg::req("dest"),
    Arg::opt("backup"),
    Arg::opt("checksum"),
    Arg::opt("force").aliases(&["thirsty"]),
    Arg::opt("headers"),
    Arg::opt("timeout"),
    Arg::opt("validate_certs"),
    Arg::opt("url_username").aliases(&["username"]),
    Arg::opt("url_password").aliases(&["password"]),
    Arg::opt("force_basic_auth"),
    Arg::opt("tmp_dest"),
    Arg::opt("http_agent"),
    Arg::opt("use_proxy"),
    Arg::opt("decompress"),
    Arg::opt("unredirected_headers").unsupported(),
    Arg::opt("use_netrc"),
    Arg::opt("use_gssapi").unsupported(),
    Arg::opt("client_cert").unsupported(),
    Arg::opt("client_key").unsupported(),
    Arg::opt("ciphers").unsupported(),
);

/// The digests `checksum: ALGO:...` may name (each has a coreutils `ALGOsum`).
const ALGORITHMS: &[&str] = &["md5", "sha1", "sha224", "sha256", "sha384", "sha512"];

/// `checksum:` parsed.
#[derive(Clone, Debug, PartialEq)]
enum Checksum {
    Hex {
        algo: String,
        hex: String,
    },
    /// `ALGO:URL`: the digest is looked up in a checksum file.
    Url {
        algo: String,
        url: String,
    },
}

impl Checksum {
    fn algo(&self) -> &str {
        match self {
            Checksum::Hex { algo, .. } | Checksum::Url { algo, .. } => algo,
        }
    }
}

fn parse_checksum(text: &str) -> Result<Option<Checksum>, ModuleError> {
    if text.is_empty() {
        return Ok(None);
    }
    let Some((algo, value)) = text.split_once(':') else {
        return Err(ModuleError::msg(
            "The checksum parameter has to be in format <algorithm>:<checksum>",
        ));
    };
    let algo = algo.trim().to_ascii_lowercase();
    if !ALGORITHMS.contains(&algo.as_str()) {
        return Err(ModuleError::msg(format!(
            "Could not hash file with algorithm '{algo}'. Available algorithms: {}",
            ALGORITHMS.join(", ")
        )));
    }
    let is_url = ["http://", "https://", "ftp://", "file://"]
        .iter()
        .any(|scheme| value.to_ascii_lowercase().starts_with(scheme));
    if is_url {
        return Ok(Some(Checksum::Url {
            algo,
            url: value.to_string(),
        }));
    }
    Ok(Some(Checksum::Hex {
        algo,
        hex: normalize_digest(value)?,
    }))
}

/// Ansible strips non-word characters (a pasted zero-width space) and lower-cases; then it must be hex.
fn normalize_digest(value: &str) -> Result<String, ModuleError> {
    let hex: String = value
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_')
        .collect::<String>()
        .to_lowercase();
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ModuleError::msg("The checksum format is invalid"));
    }
    Ok(hex)
}

/// Ansible's `parse_digest_lines`: (digest, filename) pairs from a `sha256sum`-style or BSD-style file;
/// a file holding a single word is the digest of `filename`.
fn parse_digest_lines(filename: &str, text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() == 1 && lines[0].split_whitespace().count() == 1 {
        return vec![(lines[0].trim().to_string(), filename.to_string())];
    }
    let mut pairs = Vec::new();
    for line in lines {
        // BSD: "SHA256 (file) = digest"
        if let (Some(open), Some(eq)) = (line.find('('), line.rfind(") = ")) {
            let algo = line[..open].trim_end();
            if open < eq
                && !algo.is_empty()
                && algo.chars().all(|c| c.is_alphanumeric() || c == '_')
            {
                let digest = line[eq + 4..].trim();
                pairs.push((digest.to_string(), line[open + 1..eq].to_string()));
                continue;
            }
        }
        // GNU: "digest  [*]file"
        let mut parts = line.splitn(2, char::is_whitespace);
        let (Some(digest), Some(rest)) = (parts.next(), parts.next()) else {
            continue;
        };
        let path = rest.trim_start();
        let path = path
            .strip_prefix('*')
            .unwrap_or(path)
            .trim_start_matches("./")
            .trim_start_matches('.');
        if !digest.is_empty() && !path.is_empty() {
            pairs.push((digest.to_string(), path.trim_start_matches('/').to_string()));
        }
    }
    pairs
}

struct Options {
    url: String,
    dest: String,
    force: bool,
    backup: bool,
    checksum: Option<Checksum>,
    tmp_dest: Option<String>,
    attrs: WantedAttrs,
    request: Request,
}

impl Options {
    fn from_args(args: &Args) -> Result<Options, ModuleError> {
        let url = args.req_str("url")?;
        Ok(Options {
            request: Request::from_common_args(args, &url, 10)?,
            url,
            dest: args.req_str("dest")?,
            force: args.bool("force", false)?,
            backup: args.bool("backup", false)?,
            checksum: parse_checksum(&args.str("checksum")?.unwrap_or_default())?,
            tmp_dest: args.str("tmp_dest")?.filter(|t| !t.is_empty()),
            attrs: WantedAttrs::from_args(args)?,
        })
    }
}

/// What `apply` does.
enum Action {
    /// Only mode/owner/group differ on the existing file.
    SetAttrs {
        path: String,
        attrs: ResolvedAttrs,
    },
    Download(Box<Download>),
}

struct Download {
    /// The dest argument; a directory when `dest_is_dir`.
    dest: String,
    dest_is_dir: bool,
    /// Where the temp download goes (dest's directory, or tmp_dest).
    download_dir: String,
    /// The digest the download must have (algorithm, hex).
    expected: Option<(String, String)>,
    attrs: ResolvedAttrs,
    backup: bool,
}

/// The placeholder dest given to the atomic write script when the real name is only known after the
/// download (a directory dest named by Content-Disposition); its header line is swapped for `$dest`.
const DYNAMIC_DEST: &str = "/.orch-dynamic-dest";

/// filecommon's atomic write script, moving the file into the shell variable `$dest`.
fn write_to_shell_dest(
    source: &str,
    attrs: &ResolvedAttrs,
    backup: bool,
) -> Result<String, ModuleError> {
    let script = fc::write_script(&WriteSpec {
        dest: DYNAMIC_DEST,
        source: WriteSource::Remote(source),
        attrs,
        validate: None,
        backup,
        make_parents: false,
    })?;
    let header = format!("dest={}\ndir={}\n", quote(DYNAMIC_DEST), quote("/"));
    match script.strip_prefix(&header) {
        Some(rest) if !rest.contains(DYNAMIC_DEST) => {
            Ok(format!("dir=$(dirname -- \"$dest\")\n{rest}"))
        }
        _ => Err(ModuleError::msg(
            "internal error: the atomic write script changed shape (get_url cannot name its dest)",
        )),
    }
}

/// The shell lines that pick the file name inside a directory dest: Content-Disposition's filename,
/// else the last segment of the final URL, else index.html.
const NAME_FROM_RESPONSE: &str = r#"_n=$(sed -n 's/^ *[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Dd][Ii][Ss][Pp][Oo][Ss][Ii][Tt][Ii][Oo][Nn]:.*filename="\{0,1\}\([^";]*\).*/\1/p' "$h/hdr" | tail -n 1 | tr -d '\r')
_n=${_n##*/}
if [ -z "$_n" ] || [ "$_n" = . ] || [ "$_n" = .. ]; then
  _u=$orch_url; _u=${_u%%#*}; _u=${_u%%\?*}; _n=${_u##*/}
  [ -n "$_n" ] || _n=index.html
fi
"#;

fn download_script(
    d: &Download,
    url: &str,
    prepared: &urlfetch::Prepared,
) -> Result<String, ModuleError> {
    let mut s = String::new();
    s.push_str(urlfetch::HTTP_LIB);
    s.push_str(&prepared.setup);
    s.push_str(&format!("orch_url={}\n", quote(url)));
    let dl = fc::join(
        &d.download_dir,
        &format!(".orch_dl.{:016x}", rand::random::<u64>()),
    );
    s.push_str(&format!("dl={}\n", quote(&dl)));
    s.push_str(&format!(
        "( umask 077; set -C; : > \"$dl\" ) 2>/dev/null || orch_fail {}\n",
        quote(&format!(
            "could not create a temporary file in {}",
            d.download_dir
        ))
    ));
    s.push_str(&prepared.call("\"$dl\""));
    s.push_str("[ \"$orch_rc\" = 0 ] && [ \"$orch_status\" = 200 ] || exit 0\n");
    if d.dest_is_dir {
        s.push_str(NAME_FROM_RESPONSE);
        s.push_str(&format!(
            "dest={}/\"$_n\"\n",
            quote(d.dest.trim_end_matches('/'))
        ));
    } else {
        s.push_str(&format!("dest={}\n", quote(&d.dest)));
    }
    s.push_str("printf '@get.dest='; printf '%s' \"$dest\" | orch_b64\n");
    if let Some((algo, hex)) = &d.expected {
        s.push_str(&format!(
            "_s=$({algo}sum < \"$dl\") || orch_fail 'could not compute the {algo} digest of the download'\n\
             _s=${{_s%% *}}; orch_kv get digest \"$_s\"\n[ \"$_s\" = {} ] || exit 0\n",
            quote(hex)
        ));
    }
    // (orch_stat uses the short `_x` names itself.)
    s.push_str("dl_sha1=$(sha1sum < \"$dl\") || orch_fail 'could not read the download'\ndl_sha1=${dl_sha1%% *}\norch_kv get sha1 \"$dl_sha1\"\n");
    s.push_str("orch_stat old \"$dest\" 1 sha1 -1\n");
    s.push_str("dest_sha1=\nif [ -f \"$dest\" ]; then dest_sha1=$(sha1sum < \"$dest\"); dest_sha1=${dest_sha1%% *}; fi\n");
    s.push_str("if [ \"$dest_sha1\" = \"$dl_sha1\" ]; then\n  orch_kv get same 1\n");
    s.push_str(&d.attrs.apply_lines("\"$dest\"", false, false));
    s.push_str("  orch_stat dest \"$dest\" 1 sha1 -1\nelse\n(\n");
    s.push_str(&write_to_shell_dest(&dl, &d.attrs, d.backup)?);
    s.push_str(") || exit $?\nfi\n");
    s.push_str("_m=$(md5sum < \"$dest\") && orch_kv get md5 \"${_m%% *}\"\n");
    Ok(s)
}

fn base_result(url: &str, dest: &str) -> Map<String, Value> {
    let mut result = Map::new();
    result.insert("checksum_dest".into(), Value::Null);
    result.insert("checksum_src".into(), Value::Null);
    result.insert("dest".into(), dest.into());
    result.insert("elapsed".into(), 0.into());
    result.insert("url".into(), url.into());
    result
}

/// The failure for a response other than 200 (or no response at all).
fn request_failed(response: &Response, url: &str, dest: &str) -> ModuleError {
    let mut result = base_result(url, dest);
    result.insert("elapsed".into(), response.elapsed.into());
    if response.status == -1 {
        return ModuleError::with_result(response.msg(), result);
    }
    result.insert("status_code".into(), response.status.into());
    result.insert("response".into(), response.msg().into());
    ModuleError::with_result("Request failed", result)
}

#[async_trait::async_trait]
impl Module for GetUrl {
    fn name(&self) -> &'static str {
        "get_url"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let opts = Options::from_args(args)?;
        let algo = opts
            .checksum
            .as_ref()
            .map(|c| c.algo().to_string())
            .unwrap_or_else(|| "sha1".into());
        let url_name = urlfetch::url_filename(&opts.url);
        let dest_trimmed = match opts.dest.trim_end_matches('/') {
            "" => "/",
            d => d,
        };
        let sub_path = fc::join(dest_trimmed, &url_name);
        let parent = match fc::dirname(&opts.dest) {
            "" => ".",
            d => d,
        };

        let mut script = String::new();
        let mut stdin = None;
        let mut checksum_request = None;
        if let Some(Checksum::Url { url, .. }) = &opts.checksum {
            let mut request = opts.request.clone();
            request.url = url.clone();
            let prepared = request.prepare(&urlfetch::scratch_dir())?;
            script.push_str(urlfetch::HTTP_LIB);
            script.push_str(&prepared.setup);
            stdin = Some(prepared.stdin.clone());
            checksum_request = Some((url.clone(), prepared));
        }
        script.push_str(&fc::probe_lines("dest", &opts.dest, true, &algo, -1));
        script.push_str(&fc::flag_line("dest", "isdir", "-d", &opts.dest));
        script.push_str(&fc::probe_lines("sub", &sub_path, true, &algo, -1));
        script.push_str(&fc::flag_line("parent", "isdir", "-d", parent));
        if let Some(tmp) = &opts.tmp_dest {
            script.push_str(&fc::flag_line("tmpdest", "isdir", "-d", tmp));
            script.push_str(&fc::flag_line("tmpdest", "exists", "-e", tmp));
        }
        script.push_str(&opts.attrs.lookup_script());
        if let Some((_, prepared)) = &checksum_request {
            script.push_str(&prepared.call("\"$h/sums\""));
            script.push_str("printf '@sums.content='; orch_b64 < \"$h/sums\"\n");
        }
        let (records, out) = fc::run_script(env, &script, stdin).await?;
        if out.rc != 0 {
            return Err(fc::script_failed("probing the destination", &out));
        }

        let expected = match &opts.checksum {
            None => None,
            Some(Checksum::Hex { algo, hex }) => Some((algo.clone(), hex.clone())),
            Some(Checksum::Url { algo, url }) => {
                let response = Response::from_records(&records, url);
                if response.status != 200 {
                    return Err(request_failed(&response, url, &opts.dest));
                }
                let text = records.text("sums", "content").unwrap_or_default();
                let digest = parse_digest_lines(&url_name, &text)
                    .into_iter()
                    .find(|(_, name)| *name == url_name)
                    .map(|(digest, _)| digest)
                    .ok_or_else(|| {
                        ModuleError::msg(format!(
                            "Unable to find a checksum for file '{url_name}' in '{url}'"
                        ))
                    })?;
                Some((algo.clone(), normalize_digest(&digest)?))
            }
        };
        let attrs = opts.attrs.resolve(&records)?;

        let dest_is_dir = records.flag("dest", "isdir");
        let (target, stat) = if dest_is_dir {
            (sub_path.clone(), records.stat("sub"))
        } else {
            (opts.dest.clone(), records.stat("dest"))
        };
        let mut result = base_result(&opts.url, &target);

        if stat.exists && !opts.force {
            let matches = match &expected {
                None => true,
                Some((_, hex)) => stat.checksum.as_deref() == Some(hex.as_str()),
            };
            if matches {
                let changes = attrs.changes(&stat)?;
                stat.path_info(&mut result);
                if !changes.any() {
                    result.insert("msg".into(), "file already exists".into());
                    return Ok(Plan::unchanged(result));
                }
                result.insert(
                    "msg".into(),
                    "file already exists but file attributes changed".into(),
                );
                return Ok(Plan {
                    changed: true,
                    result,
                    data: Some(Box::new(Action::SetAttrs {
                        path: target,
                        attrs,
                    })),
                    ..Plan::default()
                });
            }
        }

        if let Some(tmp) = &opts.tmp_dest {
            if !records.flag("tmpdest", "isdir") {
                return Err(ModuleError::msg(if records.flag("tmpdest", "exists") {
                    format!("{tmp} is a file but should be a directory.")
                } else {
                    format!("{tmp} directory does not exist.")
                }));
            }
        }
        // In check mode an earlier task may be about to create the directory: predict the download.
        if !dest_is_dir && !records.flag("parent", "isdir") && !env.check_mode() {
            return Err(ModuleError::with_result(
                format!("Destination {parent} does not exist"),
                result,
            ));
        }
        if stat.exists && stat.kind == fc::FileKind::Directory {
            return Err(ModuleError::with_result(
                format!("Destination {target} is a directory"),
                result,
            ));
        }
        result.insert("msg".into(), "".into());
        let download_dir = match &opts.tmp_dest {
            Some(tmp) => tmp.clone(),
            None if dest_is_dir => dest_trimmed.to_string(),
            None => parent.to_string(),
        };
        Ok(Plan {
            changed: true,
            result,
            data: Some(Box::new(Action::Download(Box::new(Download {
                dest: opts.dest.clone(),
                dest_is_dir,
                download_dir,
                expected,
                attrs,
                backup: opts.backup,
            })))),
            ..Plan::default()
        })
    }

    async fn apply(
        &self,
        env: &dyn TaskEnv,
        args: &Args,
        plan: Plan,
    ) -> Result<Map<String, Value>, ModuleError> {
        let mut result = plan.result;
        let Some(action) = plan.data.and_then(|d| d.downcast::<Action>().ok()) else {
            return Ok(result);
        };
        let download = match *action {
            Action::SetAttrs { path, attrs } => {
                let stat = fc::run_set_attrs(env, &path, &attrs).await?;
                stat.path_info(&mut result);
                return Ok(result);
            }
            Action::Download(d) => d,
        };
        let opts = Options::from_args(args)?;
        let prepared = opts.request.prepare(&urlfetch::scratch_dir())?;
        let script = download_script(&download, &opts.url, &prepared)?;
        let (records, out) = fc::run_script(env, &script, Some(prepared.stdin)).await?;
        let response = Response::from_records(&records, &opts.url);
        let dest = records
            .text("get", "dest")
            .unwrap_or_else(|| download.dest.clone());
        if response.status != 200 {
            return Err(request_failed(&response, &opts.url, &dest));
        }
        result.insert("dest".into(), dest.clone().into());
        result.insert("elapsed".into(), response.elapsed.into());
        if let Some((_, hex)) = &download.expected {
            let got = records.get("get", "digest").unwrap_or("");
            if got != hex {
                result.insert("status_code".into(), response.status.into());
                return Err(ModuleError::with_result(
                    format!(
                        "The checksum for {} did not match {hex}; it was {got}. {dest} was left unchanged.",
                        opts.url
                    ),
                    result,
                ));
            }
        }
        if out.rc != 0 || !records.flag("dest", "exists") {
            return Err(fc::script_failed("downloading the file", &out));
        }
        let old = records.stat("old");
        let same = records.flag("get", "same");
        let changed = !same || download.attrs.changes(&old)?.any();
        let new = records.stat("dest");
        result.insert("changed".into(), changed.into());
        result.insert(
            "checksum_src".into(),
            records
                .get("get", "sha1")
                .map(Value::from)
                .unwrap_or(Value::Null),
        );
        result.insert(
            "checksum_dest".into(),
            old.checksum.clone().map(Value::from).unwrap_or(Value::Null),
        );
        if let Some(md5) = records.get("get", "md5") {
            result.insert("md5sum".into(), md5.into());
        }
        if let Some(backup) = records.text("write", "backup") {
            result.insert("backup_file".into(), backup.into());
        }
        result.insert("msg".into(), response.msg().into());
        result.insert("status_code".into(), json!(response.status));
        new.path_info(&mut result);
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sha2::{Digest, Sha256};

    use super::super::testenv::{args, failure, mode_of, run_module, LocalEnv};
    use super::super::testhttp::{Route, TestServer};
    use super::*;

    fn sha256(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    #[test]
    fn checksum_argument_forms() {
        assert_eq!(
            parse_checksum("sha256:AB\u{200b}CD").unwrap(),
            Some(Checksum::Hex {
                algo: "sha256".into(),
                hex: "abcd".into()
            })
        );
        assert_eq!(
            parse_checksum("sha1:https://h/SUMS").unwrap(),
            Some(Checksum::Url {
                algo: "sha1".into(),
                url: "https://h/SUMS".into()
            })
        );
        assert!(parse_checksum("").unwrap().is_none());
        assert!(parse_checksum("abcd").is_err());
        assert!(parse_checksum("crc32:abcd").is_err());
        let ModuleError::Failed { msg, .. } = parse_checksum("sha256:xyz").unwrap_err() else {
            panic!()
        };
        assert_eq!(msg, "The checksum format is invalid");
    }

    #[test]
    fn digest_files_in_gnu_bsd_and_bare_forms() {
        let gnu = "aaa  other.tgz\nbbb *app.tgz\nccc  ./sub.tgz\n";
        let pairs = parse_digest_lines("app.tgz", gnu);
        assert!(pairs.contains(&("bbb".into(), "app.tgz".into())));
        assert!(pairs.contains(&("ccc".into(), "sub.tgz".into())));
        let bsd = parse_digest_lines("x", "SHA256 (app.tgz) = ddd\nSHA256 (b) = eee\n");
        assert_eq!(bsd[0], ("ddd".into(), "app.tgz".into()));
        assert_eq!(
            parse_digest_lines("app.tgz", "fff\n"),
            vec![("fff".into(), "app.tgz".into())]
        );
    }

    #[test]
    fn dynamic_dest_reuses_the_atomic_write_script() {
        let script = write_to_shell_dest("/d/.orch_dl.1", &ResolvedAttrs::default(), true).unwrap();
        assert!(
            script.starts_with("dir=$(dirname -- \"$dest\")\n"),
            "{script}"
        );
        assert!(script.contains("mv -Tf -- \"$tmp\" \"$dest\""));
        assert!(script.contains("cat -- /d/.orch_dl.1 > \"$tmp\""));
    }

    #[tokio::test]
    async fn downloads_once_then_ok_and_a_bad_checksum_keeps_the_old_file() {
        let server = TestServer::start(vec![
            Route::ok("/app.bin", b"version 1\n"),
            Route::ok(
                "/SUMS",
                format!("{}  app.bin\n", sha256(b"version 1\n")).as_bytes(),
            ),
        ]);
        let env = LocalEnv::new();
        let dest = env.path("app.bin");
        let a = args(
            "get_url",
            json!({"url": server.url("/app.bin"), "dest": dest, "mode": "0640",
                   "checksum": format!("sha256:{}", sha256(b"version 1\n"))}),
        );
        let first = run_module(&GetUrl, &env, &a).await.unwrap();
        assert!(first.changed);
        assert_eq!(first.result["changed"], json!(true));
        assert_eq!(std::fs::read(&dest).unwrap(), b"version 1\n");
        assert_eq!(mode_of(&dest), 0o640);
        assert_eq!(first.result["status_code"], json!(200));
        assert_eq!(first.result["msg"], json!("OK (10 bytes)"));
        assert_eq!(first.result["checksum_dest"], json!(null));
        assert_eq!(
            first.result["checksum_src"],
            json!(copy_sha1(b"version 1\n"))
        );
        assert_eq!(first.result["size"], json!(10));
        assert!(first.result["md5sum"].is_string());
        let hits = server.hits("/app.bin");
        let second = run_module(&GetUrl, &env, &a).await.unwrap();
        assert!(!second.changed);
        assert_eq!(second.result["msg"], json!("file already exists"));
        assert_eq!(
            server.hits("/app.bin"),
            hits,
            "no download on the second run"
        );

        // A checksum file by URL gives the same answer.
        let by_url = args(
            "get_url",
            json!({"url": server.url("/app.bin"), "dest": dest, "checksum": format!("sha256:{}", server.url("/SUMS"))}),
        );
        assert!(!run_module(&GetUrl, &env, &by_url).await.unwrap().changed);

        // The server now serves other bytes than the checksum promises: fail, keep the old file.
        server.set("/app.bin", b"corrupted!\n");
        std::fs::write(&dest, b"old local\n").unwrap();
        let (msg, result) = failure(run_module(&GetUrl, &env, &a).await);
        assert!(
            msg.contains("did not match") && msg.contains(&sha256(b"corrupted!\n")),
            "{msg}"
        );
        assert_eq!(result["status_code"], json!(200));
        assert_eq!(std::fs::read(&dest).unwrap(), b"old local\n");
        let names: Vec<_> = std::fs::read_dir(env.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["app.bin".to_string()], "temp files left behind");
    }

    fn copy_sha1(data: &[u8]) -> String {
        super::super::copy::sha1_hex(data)
    }

    #[tokio::test]
    async fn force_replaces_only_when_content_differs_and_keeps_a_backup() {
        let server = TestServer::start(vec![Route::ok("/f.txt", b"server\n")]);
        let env = LocalEnv::new();
        let dest = env.path("f.txt");
        std::fs::write(&dest, b"local\n").unwrap();
        std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let keep = args(
            "get_url",
            json!({"url": server.url("/f.txt"), "dest": dest}),
        );
        assert!(!run_module(&GetUrl, &env, &keep).await.unwrap().changed);
        let chmod = args(
            "get_url",
            json!({"url": server.url("/f.txt"), "dest": dest, "mode": "0600"}),
        );
        let out = run_module(&GetUrl, &env, &chmod).await.unwrap();
        assert!(out.changed);
        assert_eq!(
            out.result["msg"],
            json!("file already exists but file attributes changed")
        );
        assert_eq!(mode_of(&dest), 0o600);
        assert_eq!(std::fs::read(&dest).unwrap(), b"local\n");
        assert_eq!(server.hits("/f.txt"), 0);
        let force = args(
            "get_url",
            json!({"url": server.url("/f.txt"), "dest": dest, "force": true, "backup": true}),
        );
        let out = run_module(&GetUrl, &env, &force).await.unwrap();
        assert_eq!(out.result["changed"], json!(true));
        assert_eq!(std::fs::read(&dest).unwrap(), b"server\n");
        let backup = out.result["backup_file"].as_str().unwrap();
        assert_eq!(std::fs::read(backup).unwrap(), b"local\n");
        assert_eq!(out.result["checksum_dest"], json!(copy_sha1(b"local\n")));
        let again = run_module(&GetUrl, &env, &force).await.unwrap();
        assert_eq!(
            again.result["changed"],
            json!(false),
            "same bytes: not changed"
        );
    }

    #[tokio::test]
    async fn directory_dest_uses_content_disposition_and_check_mode_predicts() {
        let server = TestServer::start(vec![Route::ok("/download?id=7", b"payload")
            .header("Content-Disposition", "attachment; filename=\"report.csv\"")]);
        let mut env = LocalEnv::new();
        let dir = env.path("dl");
        std::fs::create_dir(&dir).unwrap();
        let a = args(
            "get_url",
            json!({"url": server.url("/download?id=7"), "dest": dir}),
        );
        env.check = true;
        let predicted = run_module(&GetUrl, &env, &a).await.unwrap();
        assert!(predicted.changed);
        assert_eq!(
            server.hits("/download?id=7"),
            0,
            "check mode downloads nothing"
        );
        env.check = false;
        let out = run_module(&GetUrl, &env, &a).await.unwrap();
        assert_eq!(out.result["dest"], json!(format!("{dir}/report.csv")));
        assert_eq!(
            std::fs::read(format!("{dir}/report.csv")).unwrap(),
            b"payload"
        );
    }

    #[tokio::test]
    async fn http_errors_and_missing_directories_fail_clearly() {
        let server = TestServer::start(vec![]);
        let env = LocalEnv::new();
        let (msg, result) = failure(
            run_module(
                &GetUrl,
                &env,
                &args(
                    "get_url",
                    json!({"url": server.url("/nope"), "dest": env.path("x")}),
                ),
            )
            .await,
        );
        assert_eq!(msg, "Request failed");
        assert_eq!(result["status_code"], json!(404));
        assert_eq!(result["response"], json!("HTTP Error 404: Not Found"));
        assert!(!std::path::Path::new(&env.path("x")).exists());
        let (msg, _) = failure(
            run_module(
                &GetUrl,
                &env,
                &args(
                    "get_url",
                    json!({"url": server.url("/x"), "dest": env.path("no/x")}),
                ),
            )
            .await,
        );
        assert_eq!(
            msg,
            format!("Destination {} does not exist", env.path("no"))
        );
        let (msg, _) = failure(
            run_module(
                &GetUrl,
                &env,
                &args(
                    "get_url",
                    json!({"url": "http://127.0.0.1:9/x", "dest": env.path("y"), "timeout": 2}),
                ),
            )
            .await,
        );
        assert!(msg.starts_with("Request failed: curl: (7)"), "{msg}");
    }

    #[tokio::test]
    async fn credentials_and_headers_reach_the_server_but_not_the_script() {
        let server =
            TestServer::start(vec![Route::ok("/secret", b"s").basic_auth("bob", "hunter2")]);
        let env = LocalEnv::new();
        let a = args(
            "get_url",
            json!({"url": server.url("/secret"), "dest": env.path("s"), "url_username": "bob",
                   "url_password": "hunter2", "force_basic_auth": true, "headers": {"X-Trace": "t1"}}),
        );
        let plan = GetUrl.plan(&env, &a).await.unwrap();
        let Some(Action::Download(d)) = plan.data.as_ref().and_then(|d| d.downcast_ref::<Action>())
        else {
            panic!("expected a download")
        };
        let prepared = Options::from_args(&a)
            .unwrap()
            .request
            .prepare("/tmp/.x")
            .unwrap();
        let script = download_script(d, &server.url("/secret"), &prepared).unwrap();
        assert!(!script.contains("hunter2"), "{script}");
        let out = run_module(&GetUrl, &env, &a).await.unwrap();
        assert!(out.changed);
        let request = server.last_request("/secret").unwrap();
        assert!(
            request.contains("Authorization: Basic Ym9iOmh1bnRlcjI="),
            "{request}"
        );
        assert!(request.contains("X-Trace: t1"), "{request}");
        assert!(request.contains("User-Agent: ansible-httpget"), "{request}");
    }
}

#[cfg(test)]
mod wget_tests {
    use serde_json::json;

    use super::super::testenv::args;
    use super::super::testhttp::{NoCurlEnv, Route, TestServer};
    use super::*;

    #[tokio::test]
    async fn wget_fallback_downloads_into_a_directory() {
        if std::process::Command::new("wget")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("wget not installed: skipping");
            return;
        }
        let server = TestServer::start(vec![Route::ok("/get", b"abc")
            .header("Content-Disposition", "attachment; filename=\"abc.txt\"")]);
        let env = NoCurlEnv::new();
        let dir = env.inner.path("d");
        std::fs::create_dir(&dir).unwrap();
        let a = args(
            "get_url",
            json!({"url": server.url("/get"), "dest": dir,
                   "checksum": "sha1:a9993e364706816aba3e25717850c26c9cd0d89d"}),
        );
        let plan = GetUrl.plan(&env, &a).await.unwrap();
        assert!(plan.changed);
        let result = GetUrl.apply(&env, &a, plan).await.unwrap();
        assert_eq!(result["dest"], json!(format!("{dir}/abc.txt")));
        assert_eq!(result["changed"], json!(true));
        assert_eq!(std::fs::read(format!("{dir}/abc.txt")).unwrap(), b"abc");
    }
}
