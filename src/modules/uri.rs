//! `uri`: makes an HTTP request from the target with curl or wget and returns Ansible's keys
//! (`status`, `url`, `msg`, `redirected`, `elapsed`, `json`, `content`, response headers as keys).
//!
//! Like Ansible's (which does not support check mode), it is skipped in check mode. The request costs
//! one round trip (two with `creates`/`removes`, which are probed first). Body and credentials travel on
//! stdin. A status outside `status_code` fails with Ansible's message; the engine's `until`/`retries`
//! see `status` (-1 when nothing answered) on every attempt.

use serde_json::{Map, Value};

use super::file_spec;
use super::filecommon::{self as fc, WantedAttrs, WriteSource, WriteSpec};
use super::remote::quote;
use super::urlfetch::{self, Body, Request, Response};
use super::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv};

pub struct Uri;

static SPEC: ArgSpec = file_spec!(
    Arg::req("url"),
    Arg::opt("method"),
    Arg::opt("body"),
    Arg::opt("body_format").choices(&["form-urlencoded", "json", "raw", "form-multipart"]),
    Arg::opt("headers"),
    Arg::opt("status_code"),
    Arg::opt("return_content"),
    Arg::opt("timeout"),
    Arg::opt("validate_certs"),
    Arg::opt("url_username").aliases(&["user"]),
    Arg::opt("url_password").aliases(&["password"]),
    Arg::opt("force_basic_auth"),
    Arg::opt("follow_redirects").choices(&["all", "no", "none", "safe", "urllib2", "yes"]),
    Arg::opt("dest"),
    Arg::opt("creates"),
    Arg::opt("removes"),
    Arg::opt("src"),
    Arg::opt("remote_src"),
    Arg::opt("use_proxy"),
    Arg::opt("http_agent"),
    Arg::opt("decompress"),
    Arg::opt("unix_socket").unsupported(),
    Arg::opt("ca_path").unsupported(),
    Arg::opt("client_cert").unsupported(),
    Arg::opt("client_key").unsupported(),
    Arg::opt("unredirected_headers").unsupported(),
    Arg::opt("use_netrc"),
    Arg::opt("use_gssapi").unsupported(),
    Arg::opt("ciphers").unsupported(),
);

/// Responses larger than this are not sent back to the controller (content/json stay unset).
const MAX_CONTENT: u64 = 64 * 1024 * 1024;

struct Options {
    request: Request,
    status_codes: Vec<i64>,
    return_content: bool,
    dest: Option<String>,
    attrs: WantedAttrs,
    creates: Option<String>,
    removes: Option<String>,
}

/// The request body as Ansible's uri encodes it, and the Content-Type it implies.
fn encode_body(body: &Value, format: &str) -> Result<(Vec<u8>, Option<&'static str>), ModuleError> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    };
    match format {
        "json" => {
            let encoded = match body {
                Value::String(s) => s.clone(),
                other => serde_json::to_string(other)
                    .map_err(|e| ModuleError::msg(format!("cannot encode body as JSON: {e}")))?,
            };
            Ok((encoded.into_bytes(), Some("application/json")))
        }
        "form-urlencoded" => {
            let encoded = match body {
                Value::String(s) => s.clone(),
                Value::Object(map) => {
                    let mut form = url::form_urlencoded::Serializer::new(String::new());
                    for (key, value) in map {
                        match value {
                            Value::Null => {}
                            Value::Array(items) => {
                                for item in items.iter().filter(|i| !i.is_null()) {
                                    form.append_pair(key, &text(item));
                                }
                            }
                            other => {
                                form.append_pair(key, &text(other));
                            }
                        }
                    }
                    form.finish()
                }
                Value::Array(pairs) => {
                    let mut form = url::form_urlencoded::Serializer::new(String::new());
                    for pair in pairs {
                        match pair.as_array().map(Vec::as_slice) {
                            Some([k, v]) => {
                                form.append_pair(&text(k), &text(v));
                            }
                            _ => {
                                return Err(ModuleError::msg(
                                    "failed to parse body as form_urlencoded: expected a dict or a list of pairs",
                                ))
                            }
                        }
                    }
                    form.finish()
                }
                other => text(other),
            };
            Ok((
                encoded.into_bytes(),
                Some("application/x-www-form-urlencoded"),
            ))
        }
        "form-multipart" => Err(ModuleError::msg(
            "uri: body_format form-multipart is not supported by orch",
        )),
        _ => Ok((text(body).into_bytes(), None)),
    }
}

impl Options {
    fn from_args(args: &Args, env: &dyn TaskEnv) -> Result<Options, ModuleError> {
        let url = args.req_str("url")?;
        let mut request = Request::from_common_args(args, &url, 30)?;
        request.method = args
            .str("method")?
            .unwrap_or_else(|| "GET".into())
            .to_uppercase();
        if request.method.is_empty() || !request.method.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(ModuleError::msg(
                "Parameter 'method' needs to be a single word in uppercase, like GET or POST.",
            ));
        }
        request.follow_redirects = match args
            .choice(
                "follow_redirects",
                &["all", "no", "none", "safe", "urllib2", "yes"],
                "safe",
            )?
            .as_str()
        {
            "all" | "yes" | "urllib2" => true,
            "safe" => matches!(request.method.as_str(), "GET" | "HEAD"),
            _ => false,
        };
        let format = args.choice(
            "body_format",
            &["form-urlencoded", "json", "raw", "form-multipart"],
            "raw",
        )?;
        if args.has("body") && args.has("src") {
            return Err(ModuleError::msg(
                "parameters are mutually exclusive: body|src",
            ));
        }
        if let Some(body) = args.value("body") {
            let (bytes, content_type) = encode_body(body, &format)?;
            if let Some(ct) = content_type {
                if !request
                    .headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                {
                    request.headers.push(("Content-Type".into(), ct.into()));
                }
            }
            request.body = Some(Body::Bytes(bytes));
        } else if let Some(src) = args.str("src")? {
            request.body = Some(if args.bool("remote_src", false)? {
                Body::RemoteFile(src)
            } else {
                let path = env
                    .find_file("files", &src)
                    .ok_or_else(|| ModuleError::msg(format!("Unable to open source file {src}")))?;
                Body::Bytes(std::fs::read(&path).map_err(|e| {
                    ModuleError::msg(format!("Unable to open source file {src}: {e}"))
                })?)
            });
        }
        let status_codes = match args.list("status_code")? {
            None => vec![200],
            Some(codes) => codes
                .iter()
                .map(|c| {
                    c.trim().parse::<i64>().map_err(|_| {
                        ModuleError::msg(format!(
                            "argument 'status_code' of module uri has an element that is not an int: {c}"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(Options {
            request,
            status_codes,
            return_content: args.bool("return_content", false)?,
            dest: args.str("dest")?,
            attrs: WantedAttrs::from_args(args)?,
            creates: args.str("creates")?,
            removes: args.str("removes")?,
        })
    }
}

/// The request script: make the request, send the body back, and write `dest` when asked.
fn request_script(
    opts: &Options,
    prepared: &urlfetch::Prepared,
    scratch: &str,
    attrs: &fc::ResolvedAttrs,
) -> Result<String, ModuleError> {
    let mut s = String::new();
    s.push_str(urlfetch::HTTP_LIB);
    s.push_str(&prepared.setup);
    s.push_str(&format!("orch_url={}\n", quote(&opts.request.url)));
    s.push_str(&prepared.call("\"$h/resp\""));
    // (curl writes the headers into the output file for HEAD: there is no content to return.)
    if opts.request.method != "HEAD" {
        s.push_str(&format!(
            "if [ -f \"$h/resp\" ] && [ \"$(stat -c %s -- \"$h/resp\")\" -le {MAX_CONTENT} ]; then printf '@uri.content='; orch_b64 < \"$h/resp\"; fi\n"
        ));
    }
    if let Some(dest) = &opts.dest {
        let wanted = opts
            .status_codes
            .iter()
            .filter(|c| **c != 304)
            .map(|c| c.to_string())
            .collect::<Vec<_>>();
        if !wanted.is_empty() {
            let resp = format!("{scratch}/resp");
            s.push_str(&format!("case \"$orch_status\" in {})\n", wanted.join("|")));
            s.push_str(&format!("  orch_stat old {} 1 sha1 -1\n", quote(dest)));
            s.push_str(&format!(
                "  _a=$(sha1sum < \"$h/resp\"); _b=; [ -f {d} ] && _b=$(sha1sum < {d})\n",
                d = quote(dest)
            ));
            s.push_str("  if [ \"$_a\" = \"$_b\" ]; then\n");
            s.push_str(&attrs.apply_lines(&quote(dest), false, false));
            s.push_str(&format!(
                "    orch_stat dest {} 1 sha1 -1\n  else\n(\n",
                quote(dest)
            ));
            s.push_str(&fc::write_script(&WriteSpec {
                dest,
                source: WriteSource::Remote(&resp),
                attrs,
                validate: None,
                backup: false,
                make_parents: false,
            })?);
            s.push_str(") || exit $?\n    orch_kv uri written 1\n  fi\n;;\nesac\n");
        }
    }
    Ok(s)
}

/// Ansible's JSON_CANDIDATES test on the response's Content-Type subtype.
fn is_json_type(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let sub = mime.split_once('/').map(|(_, s)| s).unwrap_or("");
    sub.contains("json") || sub.contains("javascript")
}

/// The result keys of a response, in Ansible's layout.
fn response_result(
    opts: &Options,
    response: &Response,
    content: Option<Vec<u8>>,
) -> (Map<String, Value>, bool) {
    let mut result = Map::new();
    result.insert(
        "redirected".into(),
        (response.status != -1 && response.url != opts.request.url).into(),
    );
    result.insert("url".into(), response.url.clone().into());
    result.insert("status".into(), response.status.into());
    result.insert("msg".into(), response.msg().into());
    let (cookies, cookies_string) = response.cookies();
    result.insert("cookies".into(), Value::Object(cookies));
    result.insert("cookies_string".into(), cookies_string.into());
    for (key, value) in response.header_keys() {
        result.entry(key).or_insert(value);
    }
    result.insert("elapsed".into(), response.elapsed.into());
    result.insert("changed".into(), false.into());
    let in_list = opts.status_codes.contains(&response.status);
    let maybe_json = is_json_type(response.header("content-type"));
    let text = content.map(|c| String::from_utf8_lossy(&c).into_owned());
    if maybe_json {
        if let Some(parsed) = text
            .as_deref()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
        {
            result.insert("json".into(), parsed);
        }
    }
    if opts.return_content {
        result.insert(
            "content".into(),
            text.map(Value::String).unwrap_or(Value::Null),
        );
    }
    (result, in_list)
}

fn python_list(codes: &[i64]) -> String {
    format!(
        "[{}]",
        codes
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[async_trait::async_trait]
impl Module for Uri {
    fn name(&self) -> &'static str {
        "uri"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let opts = Options::from_args(args, env)?;
        let skip = Plan {
            changed: true,
            skip_in_check: Some("remote module (uri) does not support check mode".into()),
            ..Plan::default()
        };
        if env.check_mode() || (opts.creates.is_none() && opts.removes.is_none()) {
            return Ok(skip);
        }
        let mut probe = String::new();
        if let Some(path) = &opts.creates {
            probe.push_str(&format!(
                "if [ -e {} ]; then echo creates; exit 0; fi\n",
                quote(path)
            ));
        }
        if let Some(path) = &opts.removes {
            probe.push_str(&format!(
                "if ! [ -e {} ]; then echo removes; exit 0; fi\n",
                quote(path)
            ));
        }
        probe.push_str("echo run\n");
        let out = env.run(&probe, None).await?;
        let stdout = match String::from_utf8_lossy(&out.stdout).trim() {
            "creates" => format!(
                "skipped, since '{}' exists",
                opts.creates.unwrap_or_default()
            ),
            "removes" => format!(
                "skipped, since '{}' does not exist",
                opts.removes.unwrap_or_default()
            ),
            "run" => return Ok(skip),
            _ => return Err(fc::script_failed("the creates/removes probe", &out)),
        };
        let mut result = Map::new();
        result.insert("stdout".into(), stdout.into());
        Ok(Plan::unchanged(result))
    }

    async fn apply(
        &self,
        env: &dyn TaskEnv,
        args: &Args,
        _plan: Plan,
    ) -> Result<Map<String, Value>, ModuleError> {
        let opts = Options::from_args(args, env)?;
        // Owner/group names are resolved by chown/chgrp themselves in the write script.
        let attrs = fc::ResolvedAttrs {
            wanted: opts.attrs.clone(),
            uid: None,
            gid: None,
        };
        let scratch = urlfetch::scratch_dir();
        let prepared = opts.request.prepare(&scratch)?;
        let script = request_script(&opts, &prepared, &scratch, &attrs)?;
        let (records, out) = fc::run_script(env, &script, Some(prepared.stdin)).await?;
        let response = Response::from_records(&records, &opts.request.url);
        let content = records.bytes("uri", "content");
        let (mut result, in_list) = response_result(&opts, &response, content);
        if let Some(dest) = &opts.dest {
            if in_list && response.status != 304 {
                if out.rc != 0 || !records.flag("dest", "exists") {
                    return Err(fc::script_failed("writing dest", &out));
                }
                let new = records.stat("dest");
                let old = records.stat("old");
                let attrs_changed = old.exists
                    && (old.mode != new.mode || old.uid != new.uid || old.gid != new.gid);
                let changed = records.flag("uri", "written") || attrs_changed;
                result.insert("changed".into(), changed.into());
            }
            result.insert("path".into(), dest.clone().into());
        }
        if !in_list {
            let msg = format!(
                "Status code was {} and not {}: {}",
                response.status,
                python_list(&opts.status_codes),
                response.msg()
            );
            if !opts.return_content && response.status != -1 {
                // Ansible includes the body of an unexpected answer to help debugging.
                if let Some(content) = records.text("uri", "content") {
                    result.insert("content".into(), content.into());
                }
            }
            result.insert("msg".into(), msg.clone().into());
            return Err(ModuleError::with_result(msg, result));
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testenv::{args, failure, run_module, LocalEnv};
    use super::super::testhttp::{Route, TestServer};
    use super::*;

    #[test]
    fn bodies_are_encoded_like_ansible() {
        let (b, ct) = encode_body(&json!({"a": [1, 2], "b": null}), "json").unwrap();
        assert_eq!(b, br#"{"a":[1,2],"b":null}"#);
        assert_eq!(ct, Some("application/json"));
        let (b, _) = encode_body(
            &json!({"name": "a b&c", "x": [1, 2], "t": true}),
            "form-urlencoded",
        )
        .unwrap();
        assert_eq!(String::from_utf8(b).unwrap(), "name=a+b%26c&x=1&x=2&t=True");
        let (b, ct) = encode_body(&json!("raw text"), "raw").unwrap();
        assert_eq!((b.as_slice(), ct), (&b"raw text"[..], None));
        assert!(encode_body(&json!({}), "form-multipart").is_err());
        assert!(is_json_type(Some(
            "application/problem+json; charset=utf-8"
        )));
        assert!(!is_json_type(Some("text/html")));
        assert_eq!(python_list(&[200, 201]), "[200, 201]");
    }

    #[tokio::test]
    async fn get_json_returns_parsed_json_and_header_keys() {
        let server = TestServer::start(vec![Route::ok("/api", br#"{"ok": true, "n": 3}"#)
            .header("Content-Type", "application/json")
            .header("X-Request-Id", "abc")]);
        let env = LocalEnv::new();
        let out = run_module(&Uri, &env, &args("uri", json!({"url": server.url("/api")})))
            .await
            .unwrap();
        let r = &out.result;
        assert_eq!(r["status"], json!(200));
        assert_eq!(r["json"], json!({"ok": true, "n": 3}));
        assert!(
            !r.contains_key("content"),
            "content only with return_content"
        );
        assert_eq!(r["content_type"], json!("application/json"));
        assert_eq!(r["x_request_id"], json!("abc"));
        assert_eq!(r["msg"], json!("OK (20 bytes)"));
        assert_eq!(r["redirected"], json!(false));
        assert_eq!(r["changed"], json!(false));
        assert_eq!(r["url"], json!(server.url("/api")));
    }

    #[tokio::test]
    async fn post_json_body_and_status_list() {
        let server = TestServer::start(vec![Route::status("/items", 201, "Created", b"made")]);
        let env = LocalEnv::new();
        let a = args(
            "uri",
            json!({"url": server.url("/items"), "method": "post", "body_format": "json",
                   "body": {"name": "x"}, "status_code": [200, 201], "return_content": true,
                   "url_username": "u", "url_password": "p", "force_basic_auth": true}),
        );
        let out = run_module(&Uri, &env, &a).await.unwrap();
        assert_eq!(out.result["status"], json!(201));
        assert_eq!(out.result["content"], json!("made"));
        let request = server.last_request("/items").unwrap();
        assert!(request.starts_with("POST /items "), "{request}");
        assert!(
            request.contains("Content-Type: application/json"),
            "{request}"
        );
        assert!(request.contains("Authorization: Basic dTpw"), "{request}");
        assert!(request.ends_with("{\"name\":\"x\"}"), "{request}");
    }

    #[tokio::test]
    async fn unexpected_status_and_no_server_fail_with_ansibles_message() {
        let server = TestServer::start(vec![]);
        let env = LocalEnv::new();
        let (msg, result) = failure(
            run_module(
                &Uri,
                &env,
                &args("uri", json!({"url": server.url("/missing")})),
            )
            .await,
        );
        assert_eq!(
            msg,
            "Status code was 404 and not [200]: HTTP Error 404: Not Found"
        );
        assert_eq!(result["status"], json!(404));
        assert_eq!(result["content"], json!("no such page"));
        let (msg, result) = failure(
            run_module(
                &Uri,
                &env,
                &args("uri", json!({"url": "http://127.0.0.1:9/", "timeout": 2})),
            )
            .await,
        );
        assert!(
            msg.starts_with("Status code was -1 and not [200]: Request failed: "),
            "{msg}"
        );
        assert_eq!(result["status"], json!(-1));
    }

    #[tokio::test]
    async fn redirects_follow_safe_methods_only() {
        let server = TestServer::start(vec![
            Route::redirect("/old", "/new"),
            Route::ok("/new", b"here"),
        ]);
        let env = LocalEnv::new();
        let out = run_module(&Uri, &env, &args("uri", json!({"url": server.url("/old")})))
            .await
            .unwrap();
        assert_eq!(out.result["redirected"], json!(true));
        assert_eq!(out.result["url"], json!(server.url("/new")));
        let (msg, result) = failure(
            run_module(
                &Uri,
                &env,
                &args(
                    "uri",
                    json!({"url": server.url("/old"), "method": "POST", "body": "x"}),
                ),
            )
            .await,
        );
        assert!(msg.starts_with("Status code was 302"), "{msg}");
        assert_eq!(result["location"], json!(server.url("/new")));
    }

    #[tokio::test]
    async fn check_mode_skips_and_creates_short_circuits() {
        let server = TestServer::start(vec![Route::ok("/x", b"x")]);
        let mut env = LocalEnv::new();
        env.check = true;
        let a = args("uri", json!({"url": server.url("/x")}));
        let out = run_module(&Uri, &env, &a).await.unwrap();
        assert_eq!(
            out.skipped.as_deref(),
            Some("remote module (uri) does not support check mode")
        );
        assert_eq!(server.hits("/x"), 0);
        env.check = false;
        std::fs::write(env.path("marker"), "").unwrap();
        let out = run_module(
            &Uri,
            &env,
            &args(
                "uri",
                json!({"url": server.url("/x"), "creates": env.path("marker")}),
            ),
        )
        .await
        .unwrap();
        assert!(!out.changed);
        assert_eq!(
            out.result["stdout"],
            json!(format!("skipped, since '{}' exists", env.path("marker")))
        );
        assert_eq!(server.hits("/x"), 0);
    }

    #[tokio::test]
    async fn dest_is_written_only_when_content_differs() {
        let server = TestServer::start(vec![Route::ok("/page", b"<html/>")]);
        let env = LocalEnv::new();
        let dest = env.path("page.html");
        let a = args(
            "uri",
            json!({"url": server.url("/page"), "dest": dest, "mode": "0600"}),
        );
        let first = run_module(&Uri, &env, &a).await.unwrap();
        assert_eq!(first.result["changed"], json!(true));
        assert_eq!(std::fs::read(&dest).unwrap(), b"<html/>");
        assert_eq!(super::super::testenv::mode_of(&dest), 0o600);
        let second = run_module(&Uri, &env, &a).await.unwrap();
        assert_eq!(second.result["changed"], json!(false));
        assert_eq!(second.result["path"], json!(dest));
    }
}

#[cfg(test)]
mod wget_tests {
    use serde_json::json;

    use super::super::testenv::args;
    use super::super::testhttp::{NoCurlEnv, Route, TestServer};
    use super::*;

    async fn run(env: &NoCurlEnv, a: &Args) -> Result<Map<String, Value>, ModuleError> {
        let plan = Uri.plan(env, a).await?;
        Uri.apply(env, a, plan).await
    }

    #[tokio::test]
    async fn wget_fallback_gives_the_same_answers() {
        if std::process::Command::new("wget")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("wget not installed: skipping");
            return;
        }
        let server = TestServer::start(vec![
            Route::ok("/api", br#"{"v": 1}"#).header("Content-Type", "application/json"),
            Route::status("/made", 201, "Created", b"ok").basic_auth("u", "p"),
            Route::redirect("/old", "/api"),
        ]);
        let env = NoCurlEnv::new();
        let r = run(&env, &args("uri", json!({"url": server.url("/old")})))
            .await
            .unwrap();
        assert_eq!(r["json"], json!({"v": 1}));
        assert_eq!(r["url"], json!(server.url("/api")));
        assert_eq!(r["redirected"], json!(true));
        let r = run(
            &env,
            &args(
                "uri",
                json!({"url": server.url("/made"), "method": "PUT", "body": "data", "status_code": 201,
                       "url_username": "u", "url_password": "p", "force_basic_auth": true}),
            ),
        )
        .await
        .unwrap();
        assert_eq!(r["status"], json!(201));
        let request = server.last_request("/made").unwrap();
        assert!(
            request.starts_with("PUT /made") && request.ends_with("data"),
            "{request}"
        );
        let ModuleError::Failed { msg, .. } =
            run(&env, &args("uri", json!({"url": server.url("/gone")})))
                .await
                .unwrap_err()
        else {
            panic!()
        };
        assert_eq!(
            msg,
            "Status code was 404 and not [200]: HTTP Error 404: Not Found"
        );
        let ModuleError::Failed { msg, .. } = run(
            &env,
            &args("uri", json!({"url": "http://127.0.0.1:9/", "timeout": 2})),
        )
        .await
        .unwrap_err() else {
            panic!()
        };
        assert!(
            msg.starts_with("Status code was -1 and not [200]: Request failed: wget exited with 4"),
            "{msg}"
        );
    }
}
