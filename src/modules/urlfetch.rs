//! HTTP requests made ON THE TARGET with curl (preferred) or GNU wget, for `get_url` and `uri`.
//!
//! Nothing secret goes into argv or the script text: the request settings (URL, headers, credentials)
//! are a curl config file and a wgetrc, sent with the request body on the script's stdin and stored in
//! a private (0700) scratch directory that the script removes on exit. The script then runs whichever
//! tool exists and prints `@http.*` records (status, effective URL, raw response headers, errors).

use serde_json::{Map, Value};

use super::filecommon::Records;
use super::remote::quote;
use super::{Args, ModuleError};

/// Shell functions for the HTTP part of a script (after `filecommon::SHELL_LIB`).
///
/// `orch_http_setup DIR CURLRC_LEN WGETRC_LEN` splits stdin into `$h/curlrc`, `$h/wgetrc`, `$h/body`.
/// `orch_http OUT METHOD URL BODYFILE` makes the request, writes the response body to OUT, sets
/// `orch_status` (HTTP status or 000) and `orch_rc`, and prints the `@http.*` records.
pub const HTTP_LIB: &str = r#"orch_http_setup() {
  h=$1
  mkdir -m 700 -- "$h" || orch_fail "could not create the temporary directory $h"
  trap 'rm -rf -- "$h" ${dl:+"$dl"} 2>/dev/null' EXIT
  cat > "$h/in" || orch_fail "could not read the request settings"
  head -c "$2" "$h/in" > "$h/curlrc"
  tail -c +$(( $2 + 1 )) "$h/in" | head -c "$3" > "$h/wgetrc"
  tail -c +$(( $2 + $3 + 1 )) "$h/in" > "$h/body"
  rm -f -- "$h/in"
}
orch_http() {
  _t0=$(date +%s)
  : > "$h/hdr"; : > "$h/err"
  if command -v curl >/dev/null 2>&1; then
    _w=$(curl -q -sS -K "$h/curlrc" -o "$1" -D "$h/hdr" -w '%{http_code} %{url_effective}' 2>"$h/err")
    orch_rc=$?
    orch_status=${_w%% *}
    orch_kv http tool curl
    printf '@http.url='; printf '%s' "${_w#* }" | orch_b64
  elif command -v wget >/dev/null 2>&1; then
    if [ -n "$4" ]; then
      wget --config="$h/wgetrc" -q -S -O "$1" --method="$2" --body-file="$4" -- "$3" 2>"$h/hdr"
    else
      wget --config="$h/wgetrc" -q -S -O "$1" --method="$2" -- "$3" 2>"$h/hdr"
    fi
    orch_rc=$?
    orch_status=$(sed -n 's/^ *HTTP\/[0-9.]* \([0-9][0-9][0-9]\).*/\1/p' "$h/hdr" | tail -n 1)
    [ -n "$orch_status" ] || orch_status=000
    orch_kv http tool wget
  else
    orch_fail "neither curl nor wget is installed on the target (get_url and uri need one of them)"
  fi
  orch_kv http rc "$orch_rc"
  orch_kv http code "$orch_status"
  orch_kv http elapsed $(( $(date +%s) - _t0 ))
  printf '@http.headers='; orch_b64 < "$h/hdr"
  printf '@http.err='; orch_b64 < "$h/err"
}
"#;

/// Ansible's default `http_agent`.
pub const DEFAULT_AGENT: &str = "ansible-httpget";

/// Where the request body comes from.
#[derive(Clone, Debug)]
pub enum Body {
    Bytes(Vec<u8>),
    /// A file already on the target (`uri src:`).
    RemoteFile(String),
}

/// One HTTP request, as the url modules' common arguments describe it.
#[derive(Clone, Debug)]
pub struct Request {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub force_basic_auth: bool,
    pub validate_certs: bool,
    /// Seconds for connecting and for any stall while transferring (Ansible's socket timeout).
    pub timeout: u64,
    pub follow_redirects: bool,
    pub use_proxy: bool,
    pub user_agent: String,
    pub body: Option<Body>,
}

impl Request {
    /// A GET with the arguments every url module shares (`url_username`, `headers`, `timeout`, ...).
    pub fn from_common_args(
        args: &Args,
        url: &str,
        default_timeout: u64,
    ) -> Result<Request, ModuleError> {
        let timeout = match args.int("timeout")? {
            Some(t) if t > 0 => t as u64,
            Some(t) => {
                return Err(ModuleError::msg(format!(
                    "timeout must be positive, got {t}"
                )))
            }
            None => default_timeout,
        };
        Ok(Request {
            url: url.to_string(),
            method: "GET".into(),
            headers: header_list(args)?,
            username: args.str("url_username")?,
            password: args.str("url_password")?,
            force_basic_auth: args.bool("force_basic_auth", false)?,
            validate_certs: args.bool("validate_certs", true)?,
            timeout,
            follow_redirects: true,
            use_proxy: args.bool("use_proxy", true)?,
            user_agent: args
                .str("http_agent")?
                .unwrap_or_else(|| DEFAULT_AGENT.to_string()),
            body: None,
        })
    }

    /// The stdin for `orch_http_setup` and the script lines that set up and make the request.
    /// `scratch` is the private directory the script creates; `out` a shell word for the response file.
    pub fn prepare(&self, scratch: &str) -> Result<Prepared, ModuleError> {
        let (url, url_user, url_pass) = split_credentials(&self.url)?;
        let username = self.username.clone().or(url_user);
        let password = self.password.clone().or(url_pass);
        let credentials = username.map(|u| (u, password.unwrap_or_default()));
        let curlrc = self.curl_config(&url, credentials.as_ref(), scratch)?;
        let wgetrc = self.wget_config(credentials.as_ref())?;
        let mut stdin = curlrc.clone().into_bytes();
        stdin.extend_from_slice(wgetrc.as_bytes());
        let body_file = match &self.body {
            None => None,
            Some(Body::Bytes(bytes)) => {
                stdin.extend_from_slice(bytes);
                Some(format!("{scratch}/body"))
            }
            Some(Body::RemoteFile(path)) => Some(path.clone()),
        };
        Ok(Prepared {
            stdin,
            setup: format!(
                "orch_http_setup {} {} {}\n",
                quote(scratch),
                curlrc.len(),
                wgetrc.len()
            ),
            method: self.method.clone(),
            url,
            body_file,
        })
    }

    fn curl_config(
        &self,
        url: &str,
        credentials: Option<&(String, String)>,
        scratch: &str,
    ) -> Result<String, ModuleError> {
        let mut c = String::new();
        let mut line = |key: &str, value: Option<&str>| -> Result<(), ModuleError> {
            match value {
                None => c.push_str(&format!("{key}\n")),
                Some(v) => c.push_str(&format!("{key} = {}\n", curl_string(v)?)),
            }
            Ok(())
        };
        line("url", Some(url))?;
        match (self.method.as_str(), &self.body) {
            ("HEAD", _) => line("head", None)?,
            ("GET", None) => {}
            (method, _) => line("request", Some(method))?,
        }
        for (name, value) in &self.headers {
            line("header", Some(&format!("{name}: {value}")))?;
        }
        line("user-agent", Some(&self.user_agent))?;
        if let Some((user, pass)) = credentials {
            line("user", Some(&format!("{user}:{pass}")))?;
            line(
                if self.force_basic_auth {
                    "basic"
                } else {
                    "anyauth"
                },
                None,
            )?;
        }
        if !self.validate_certs {
            line("insecure", None)?;
        }
        if self.follow_redirects {
            line("location", None)?;
            line("max-redirs", Some("10"))?;
        }
        let timeout = self.timeout.to_string();
        line("connect-timeout", Some(&timeout))?;
        // A transfer that stalls (under 1 byte/s) for `timeout` seconds fails, like a socket timeout.
        line("speed-limit", Some("1"))?;
        line("speed-time", Some(&timeout))?;
        if !self.use_proxy {
            line("noproxy", Some("*"))?;
        }
        match &self.body {
            None => {}
            Some(Body::Bytes(_)) => line("data-binary", Some(&format!("@{scratch}/body")))?,
            Some(Body::RemoteFile(path)) => line("data-binary", Some(&format!("@{path}")))?,
        }
        Ok(c)
    }

    fn wget_config(&self, credentials: Option<&(String, String)>) -> Result<String, ModuleError> {
        let mut c = String::new();
        let mut line = |key: &str, value: &str| -> Result<(), ModuleError> {
            if value.contains(['\n', '\r']) {
                return Err(ModuleError::msg(format!(
                    "a line break is not allowed in the HTTP {key} setting"
                )));
            }
            c.push_str(&format!("{key} = {value}\n"));
            Ok(())
        };
        line("tries", "1")?;
        line("timeout", &self.timeout.to_string())?;
        line("content_on_error", "on")?;
        line(
            "max_redirect",
            if self.follow_redirects { "10" } else { "0" },
        )?;
        for (name, value) in &self.headers {
            line("header", &format!("{name}: {value}"))?;
        }
        line("user_agent", &self.user_agent)?;
        if let Some((user, pass)) = credentials {
            line("http_user", user)?;
            line("http_password", pass)?;
            if self.force_basic_auth {
                line("auth_no_challenge", "on")?;
            }
        }
        if !self.validate_certs {
            line("check_certificate", "off")?;
        }
        if !self.use_proxy {
            line("use_proxy", "off")?;
        }
        Ok(c)
    }
}

/// A request ready to be put in a script.
pub struct Prepared {
    pub stdin: Vec<u8>,
    /// The `orch_http_setup` line (reads stdin; must come before anything else reads it).
    pub setup: String,
    method: String,
    /// The URL without user:password (for wget's argv).
    url: String,
    body_file: Option<String>,
}

impl Prepared {
    /// The `orch_http` line writing the response body to `out` (a shell word, e.g. `"$dl"`).
    pub fn call(&self, out: &str) -> String {
        format!(
            "orch_http {out} {} {} {}\n",
            quote(&self.method),
            quote(&self.url),
            quote(self.body_file.as_deref().unwrap_or(""))
        )
    }
}

/// A quoted string in curl's config syntax.
fn curl_string(value: &str) -> Result<String, ModuleError> {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\t' => out.push_str("\\t"),
            '\n' | '\r' => {
                return Err(ModuleError::msg(
                    "a line break is not allowed in a URL, header, user agent or credential",
                ))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// The URL without `user:password@`, and those credentials (percent-decoded).
fn split_credentials(url: &str) -> Result<(String, Option<String>, Option<String>), ModuleError> {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return Err(ModuleError::msg(format!("invalid URL: {url}")));
    };
    if parsed.username().is_empty() && parsed.password().is_none() {
        return Ok((url.to_string(), None, None));
    }
    let user = percent_decode(parsed.username());
    let pass = parsed.password().map(percent_decode);
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    Ok((parsed.to_string(), Some(user), pass))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `headers:` (a dict) as name/value pairs.
pub fn header_list(args: &Args) -> Result<Vec<(String, String)>, ModuleError> {
    match args.value("headers") {
        None => Ok(Vec::new()),
        Some(Value::Object(map)) => Ok(map
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k.clone(), value)
            })
            .collect()),
        Some(other) => Err(ModuleError::msg(format!(
            "argument 'headers' of module {} is of type {} and we were unable to convert to dict",
            args.module,
            super::args::json_type(other)
        ))),
    }
}

/// What the target's HTTP client reported.
#[derive(Clone, Debug, Default)]
pub struct Response {
    /// The HTTP status, or -1 when no response arrived (Ansible's convention).
    pub status: i64,
    pub reason: String,
    /// The final response's headers in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The URL after redirects.
    pub url: String,
    pub elapsed: u64,
    /// Why the request failed (no response): the client's message.
    pub error: Option<String>,
}

impl Response {
    /// Reads the `@http.*` records printed by `orch_http`; `request_url` is the URL asked for.
    pub fn from_records(records: &Records, request_url: &str) -> Response {
        let tool = records.get("http", "tool").unwrap_or("curl");
        let rc: i64 = records
            .get("http", "rc")
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1);
        let code: i64 = records
            .get("http", "code")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let raw_headers = records.text("http", "headers").unwrap_or_default();
        let blocks = header_blocks(&raw_headers);
        let last = blocks.last().cloned().unwrap_or_default();
        let elapsed = records
            .get("http", "elapsed")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        // wget exits 8 when the server answered with an error status: that is still a response.
        let answered = code > 0 && (rc == 0 || (tool == "wget" && rc == 8));
        if !answered {
            let detail = match records.text("http", "err").map(|e| e.trim().to_string()) {
                Some(e) if !e.is_empty() => e,
                _ => wget_exit_reason(tool, rc),
            };
            return Response {
                status: -1,
                url: request_url.to_string(),
                elapsed,
                error: Some(format!("Request failed: {detail}")),
                ..Response::default()
            };
        }
        let url = match (tool, records.text("http", "url")) {
            ("curl", Some(u)) if !u.is_empty() => u,
            _ => follow_locations(request_url, &blocks),
        };
        Response {
            status: code,
            reason: if last.reason.is_empty() {
                default_reason(code).to_string()
            } else {
                last.reason
            },
            headers: last.headers,
            url,
            elapsed,
            error: None,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// fetch_url's `msg`: "OK (N bytes)" for 2xx, "HTTP Error N: Reason" otherwise.
    pub fn msg(&self) -> String {
        if let Some(error) = &self.error {
            return error.clone();
        }
        if (200..300).contains(&self.status) {
            format!(
                "OK ({} bytes)",
                self.header("content-length").unwrap_or("unknown")
            )
        } else {
            format!("HTTP Error {}: {}", self.status, self.reason)
        }
    }

    /// The response headers as Ansible's uri returns them: lower-case keys, `-` → `_`, repeated
    /// headers joined with ", ", `location` made absolute.
    pub fn header_keys(&self) -> Map<String, Value> {
        let mut map = Map::new();
        for (name, value) in &self.headers {
            let key = name.to_ascii_lowercase().replace('-', "_");
            let value = if key == "location" {
                absolute_location(&self.url, value)
            } else {
                value.clone()
            };
            match map.get_mut(&key) {
                Some(Value::String(existing)) => {
                    existing.push_str(", ");
                    existing.push_str(&value);
                }
                _ => {
                    map.insert(key, Value::String(value));
                }
            }
        }
        map
    }

    /// `cookies` (name → value) from the Set-Cookie headers, and `cookies_string`.
    pub fn cookies(&self) -> (Map<String, Value>, String) {
        let mut cookies = Map::new();
        for (name, value) in &self.headers {
            if !name.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let pair = value.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                cookies.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
            }
        }
        let string = cookies
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join("; ");
        (cookies, string)
    }
}

fn wget_exit_reason(tool: &str, rc: i64) -> String {
    let reason = match (tool, rc) {
        ("wget", 1) => "generic error",
        ("wget", 2) => "command line or configuration error",
        ("wget", 3) => "file I/O error",
        ("wget", 4) => "network failure (connection refused, DNS or timeout)",
        ("wget", 5) => "SSL verification failure",
        ("wget", 6) => "authentication failure",
        ("wget", 7) => "protocol error",
        _ => "no response",
    };
    format!("{tool} exited with {rc}: {reason}")
}

/// One response's status line and headers.
#[derive(Clone, Debug, Default)]
pub struct HeaderBlock {
    pub status: i64,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

/// Splits a header dump (curl `-D`, or wget `-S` on stderr with two-space indents) into responses.
pub fn header_blocks(raw: &str) -> Vec<HeaderBlock> {
    let mut blocks: Vec<HeaderBlock> = Vec::new();
    for line in raw.lines() {
        let line = line.trim_end_matches('\r');
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("HTTP/") {
            let mut parts = rest.splitn(3, ' ');
            let _version = parts.next();
            let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let reason = parts.next().unwrap_or("").trim().to_string();
            blocks.push(HeaderBlock {
                status,
                reason,
                headers: Vec::new(),
            });
            continue;
        }
        let Some(block) = blocks.last_mut() else {
            continue;
        };
        if let Some((name, value)) = trimmed.split_once(':') {
            if !name.is_empty() && !name.contains(' ') {
                block
                    .headers
                    .push((name.to_string(), value.trim().to_string()));
            }
        }
    }
    blocks
}

/// The final URL after the redirects a header dump shows (wget does not report it).
fn follow_locations(start: &str, blocks: &[HeaderBlock]) -> String {
    let mut current = start.to_string();
    for block in blocks {
        if !(300..400).contains(&block.status) {
            continue;
        }
        if let Some((_, location)) = block
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("location"))
        {
            current = url::Url::parse(&current)
                .and_then(|base| base.join(location))
                .map(|u| u.to_string())
                .unwrap_or_else(|_| location.clone());
        }
    }
    current
}

/// Ansible's `absolute_location`.
pub fn absolute_location(url: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    url::Url::parse(url)
        .and_then(|base| base.join(location))
        .map(|u| u.to_string())
        .unwrap_or_else(|_| location.to_string())
}

/// Python's `http.client.responses` for the codes a reason phrase may be missing for (HTTP/2).
fn default_reason(code: i64) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// Ansible's `url_filename`: the last path segment of the URL, or index.html.
pub fn url_filename(url: &str) -> String {
    let path = match url::Url::parse(url) {
        Ok(u) => u.path().to_string(),
        Err(_) => url.split(['?', '#']).next().unwrap_or("").to_string(),
    };
    match path.rsplit('/').next() {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => "index.html".into(),
    }
}

/// A fresh private scratch directory path on the target.
pub fn scratch_dir() -> String {
    format!("/tmp/.orch_http.{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    fn b64(data: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(data)
    }

    fn request(url: &str) -> Request {
        Request {
            url: url.into(),
            method: "GET".into(),
            headers: vec![("X-Token".into(), "a\"b".into())],
            username: None,
            password: None,
            force_basic_auth: false,
            validate_certs: true,
            timeout: 10,
            follow_redirects: true,
            use_proxy: true,
            user_agent: DEFAULT_AGENT.into(),
            body: None,
        }
    }

    #[test]
    fn secrets_stay_out_of_the_script_lines() {
        let mut r = request("http://alice:pa%3Ass@example.com/x");
        r.force_basic_auth = true;
        let p = r.prepare("/tmp/.s").unwrap();
        let stdin = String::from_utf8(p.stdin.clone()).unwrap();
        assert!(stdin.contains("user = \"alice:pa:ss\"\nbasic\n"), "{stdin}");
        assert!(
            stdin.contains("http_user = alice\nhttp_password = pa:ss\nauth_no_challenge = on\n")
        );
        assert!(stdin.contains("header = \"X-Token: a\\\"b\"\n"), "{stdin}");
        let call = p.call("\"$dl\"");
        assert!(!call.contains("pa") && !p.setup.contains("pa"), "{call}");
        assert_eq!(call, "orch_http \"$dl\" GET http://example.com/x ''\n");
        // The setup line names the exact section lengths of stdin.
        let curl_len = stdin.find("tries = 1").unwrap();
        assert_eq!(
            p.setup,
            format!(
                "orch_http_setup /tmp/.s {curl_len} {}\n",
                stdin.len() - curl_len
            )
        );
    }

    #[test]
    fn body_method_and_options() {
        let mut r = request("https://h/api");
        r.method = "POST".into();
        r.body = Some(Body::Bytes(b"{\"a\":1}".to_vec()));
        r.validate_certs = false;
        r.follow_redirects = false;
        r.use_proxy = false;
        let p = r.prepare("/tmp/.s").unwrap();
        let stdin = String::from_utf8(p.stdin.clone()).unwrap();
        assert!(stdin.ends_with("{\"a\":1}"));
        assert!(stdin.contains("request = \"POST\"\n"));
        assert!(stdin.contains("data-binary = \"@/tmp/.s/body\"\n"));
        assert!(stdin.contains("insecure\n") && stdin.contains("check_certificate = off\n"));
        assert!(!stdin.contains("location\n") && stdin.contains("max_redirect = 0\n"));
        assert!(stdin.contains("noproxy = \"*\"\n") && stdin.contains("use_proxy = off\n"));
        assert!(p.call("o").ends_with("POST https://h/api /tmp/.s/body\n"));
        let mut bad = request("http://h/");
        bad.headers = vec![("X".into(), "a\nb".into())];
        assert!(bad.prepare("/tmp/.s").is_err());
    }

    #[test]
    fn header_dumps_of_curl_and_wget() {
        let curl = "HTTP/1.1 301 Moved Permanently\r\nLocation: /b\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2\r\n\r\n";
        let blocks = header_blocks(curl);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].status, 301);
        assert_eq!(blocks[1].reason, "OK");
        let wget =
            "  HTTP/1.0 404 File not found\n  Server: SimpleHTTP/0.6\n  Content-Type: text/html\n";
        let w = header_blocks(wget);
        assert_eq!(w[0].status, 404);
        assert_eq!(w[0].reason, "File not found");
        assert_eq!(w[0].headers[1], ("Content-Type".into(), "text/html".into()));
        assert_eq!(
            follow_locations("http://h/a/x", &blocks),
            "http://h/b".to_string()
        );
    }

    fn records(lines: &[(&str, &str)]) -> Records {
        let mut text = String::new();
        for (k, v) in lines {
            text.push_str(&format!("@http.{k}={v}\n"));
        }
        Records::parse(text.as_bytes())
    }

    #[test]
    fn responses_from_records() {
        let headers = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2\r\nX-Multi: 1\r\nX-Multi: 2\r\n\r\n";
        let r = Response::from_records(
            &records(&[
                ("tool", "curl"),
                ("rc", "0"),
                ("code", "200"),
                ("url", &b64(b"http://h/x")),
                ("headers", &b64(headers.as_bytes())),
                ("elapsed", "2"),
            ]),
            "http://h/x",
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.msg(), "OK (12 bytes)");
        assert_eq!(r.elapsed, 2);
        let keys = r.header_keys();
        assert_eq!(keys["content_type"], "application/json");
        assert_eq!(keys["x_multi"], "1, 2");
        let (cookies, s) = r.cookies();
        assert_eq!(cookies["a"], "1");
        assert_eq!(s, "a=1; b=2");

        let refused = Response::from_records(
            &records(&[
                ("tool", "curl"),
                ("rc", "7"),
                ("code", "000"),
                ("err", &b64(b"curl: (7) Failed to connect\n")),
            ]),
            "http://h/x",
        );
        assert_eq!(refused.status, -1);
        assert_eq!(refused.msg(), "Request failed: curl: (7) Failed to connect");

        let missing = Response::from_records(
            &records(&[
                ("tool", "wget"),
                ("rc", "8"),
                ("code", "404"),
                (
                    "headers",
                    &b64(b"  HTTP/1.1 404 Not Found\n  Content-Length: 3\n"),
                ),
            ]),
            "http://h/x",
        );
        assert_eq!(missing.status, 404);
        assert_eq!(missing.msg(), "HTTP Error 404: Not Found");
        assert_eq!(missing.url, "http://h/x");
        let wget_down = Response::from_records(
            &records(&[("tool", "wget"), ("rc", "4"), ("code", "000")]),
            "http://h/x",
        );
        assert!(
            wget_down.msg().contains("network failure"),
            "{}",
            wget_down.msg()
        );
    }

    #[test]
    fn filenames_and_locations() {
        assert_eq!(url_filename("http://h/a/b.tar.gz?x=1#f"), "b.tar.gz");
        assert_eq!(url_filename("http://h/"), "index.html");
        assert_eq!(url_filename("http://h"), "index.html");
        assert_eq!(absolute_location("http://h/a/b", "/c"), "http://h/c");
        assert_eq!(
            absolute_location("http://h/a/b", "https://x/y"),
            "https://x/y"
        );
    }
}
