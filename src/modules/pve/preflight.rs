//! `pve_oidc_preflight`: can this node use the issuer? Checked on every node before the realm is
//! configured, because PVE only finds out at login time and then shows a bare 401 or "OpenID
//! redirect failed" (reference §4).
//!
//! What pvedaemon will do, done with curl from the node (read-only, one round trip):
//! - resolve and reach the issuer (through `datacenter.cfg`'s `http_proxy` if set, as PVE does);
//! - verify its TLS certificate with the node's own trust store (no `-k`: PVE has no "verify off"
//!   for OpenID realms, §4.1);
//! - fetch `<issuer>/.well-known/openid-configuration` (a `/` added when missing, as the OIDC
//!   library does) and require its `issuer` to equal the configured URL exactly — trailing slash
//!   included — or discovery fails with "unexpected issuer URI";
//! - require `id_token_signing_alg_values_supported` to contain RS256: PVE 7/8 verify ID tokens
//!   with RS256 only and answer any other signature with 401 (§4.2).
//!
//! When TLS verification fails, the document is fetched once more with `-k`, only to report the
//! issuer and algorithm problems in the same run.

use serde_json::{json, Map, Value};

use super::super::filecommon::{Records, SHELL_LIB};
use super::super::remote::quote;
use super::super::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv};

pub struct PveOidcPreflight;

static SPEC: ArgSpec = ArgSpec {
    args: &[
        Arg::req("issuer_url"),
        Arg::opt("signing_alg"),
        Arg::opt("timeout"),
    ],
    free_form: None,
    any_keys: false,
};

/// curl exit codes that mean the TLS layer failed (handshake, verification, local TLS setup).
const TLS_EXIT_CODES: &[i32] = &[35, 51, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91];

/// The discovery URL the OIDC library builds: issuer, `/` if missing, `.well-known/...`.
pub fn discovery_url(issuer: &str) -> String {
    let sep = if issuer.ends_with('/') { "" } else { "/" };
    format!("{issuer}{sep}.well-known/openid-configuration")
}

fn script(url: &str, host: &str, port: u16, timeout: u64) -> String {
    let tls_codes: Vec<String> = TLS_EXIT_CODES.iter().map(i32::to_string).collect();
    format!(
        r#"{SHELL_LIB}url={url} host={host} port={port} timeout={timeout}
command -v curl >/dev/null 2>&1 || orch_fail "curl is not installed on this node (apt install curl): the preflight needs it"
orch_kv pf node "$(hostname)"
proxy=$(sed -n 's/^http_proxy:[[:space:]]*//p' /etc/pve/datacenter.cfg 2>/dev/null | head -n 1)
if [ -n "$proxy" ]; then printf '@pf.proxy='; printf '%s' "$proxy" | orch_b64; fi
printf '@pf.addrs='; getent ahosts "$host" 2>/dev/null | awk '{{print $1}}' | sort -u | tr '\n' ' ' | orch_b64
body=$(mktemp) && err=$(mktemp) || orch_fail "mktemp failed"
set -- -sS -L --max-redirs 5 --connect-timeout "$timeout" --max-time "$timeout" -o "$body" -w '%{{http_code}}'
if [ -n "$proxy" ]; then set -- "$@" --proxy "$proxy"; fi
code=$(curl "$@" "$url" 2>"$err"); rc=$?
orch_kv curl rc "$rc"; orch_kv curl code "$code"
printf '@curl.err='; orch_b64 <"$err"
case " {tls} " in
  *" $rc "*)
    code=$(curl -k "$@" "$url" 2>/dev/null); orch_kv insecure rc "$?"; orch_kv insecure code "$code"
    if [ -z "$proxy" ] && command -v openssl >/dev/null 2>&1; then
      printf '@cert.info='
      openssl s_client -connect "$host:$port" -servername "$host" </dev/null 2>/dev/null \
        | openssl x509 -noout -subject -issuer -enddate 2>/dev/null | orch_b64
    fi ;;
esac
printf '@doc.body='; head -c 1048576 "$body" | orch_b64
rm -f "$body" "$err"
exit 0
"#,
        url = quote(url),
        host = quote(host),
        tls = tls_codes.join(" "),
    )
}

/// What the node saw.
#[derive(Clone, Debug, Default)]
struct Observed {
    addresses: Vec<String>,
    proxy: Option<String>,
    curl_rc: i32,
    curl_error: String,
    http_code: Option<u16>,
    /// The `-k` retry after a TLS failure: (exit status, HTTP code).
    insecure: Option<(i32, Option<u16>)>,
    cert_info: Option<String>,
    body: Vec<u8>,
}

impl Observed {
    fn from_records(r: &Records) -> Observed {
        let code = |tag: &str| {
            r.get(tag, "code")
                .and_then(|c| c.trim().parse::<u16>().ok())
                .filter(|c| *c != 0)
        };
        Observed {
            addresses: r
                .text("pf", "addrs")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            proxy: r.text("pf", "proxy").filter(|p| !p.is_empty()),
            curl_rc: r
                .get("curl", "rc")
                .and_then(|c| c.trim().parse().ok())
                .unwrap_or(-1),
            curl_error: r.text("curl", "err").unwrap_or_default().trim().to_string(),
            http_code: code("curl"),
            insecure: r
                .get("insecure", "rc")
                .and_then(|c| c.trim().parse().ok())
                .map(|rc| (rc, code("insecure"))),
            cert_info: r
                .text("cert", "info")
                .map(|t| t.trim().replace('\n', "; "))
                .filter(|t| !t.is_empty()),
            body: r.bytes("doc", "body").unwrap_or_default(),
        }
    }
}

/// The verdict: one entry per problem, each naming the cause and the fix.
#[derive(Clone, Debug, Default)]
struct Verdict {
    problems: Vec<String>,
    warnings: Vec<String>,
    tls_verified: Option<bool>,
    provider_issuer: Option<String>,
    signing_algs: Option<Vec<String>>,
}

/// curl's own error line (`curl: (60) SSL certificate problem: ...` → the part after the exit
/// status, which is reported separately); the advice paragraph curl prints after it is dropped.
fn curl_detail(err: &str) -> String {
    let line = err
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("curl: "))
        .or_else(|| err.lines().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or("");
    let line = line.trim_start_matches("curl: ");
    match line.split_once(") ") {
        Some((code, rest))
            if code.starts_with('(') && code[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            rest.to_string()
        }
        _ => line.to_string(),
    }
}

fn judge(issuer: &str, host: &str, port: u16, timeout: u64, alg: &str, seen: &Observed) -> Verdict {
    let mut v = Verdict::default();
    let detail = curl_detail(&seen.curl_error);
    let via = seen
        .proxy
        .as_deref()
        .map(|p| format!(" (through datacenter.cfg http_proxy {p})"))
        .unwrap_or_default();
    let url = discovery_url(issuer);
    if issuer.starts_with("http://") {
        v.warnings.push(format!(
            "{issuer} is plain http: logins send the authorization code unencrypted — use https"
        ));
    }

    // 1. Reaching the issuer, 2. trusting its certificate.
    let mut http_code = seen.http_code;
    let mut fetched = seen.curl_rc == 0;
    match seen.curl_rc {
        0 => {
            if issuer.starts_with("https://") {
                v.tls_verified = Some(true);
            }
        }
        6 => v.problems.push(format!(
            "unreachable: DNS — this node cannot resolve {host}{via} ({detail}); add the name to \
             the node's DNS server or /etc/hosts, or use a name/address the node can resolve in \
             issuer_url"
        )),
        5 => v.problems.push(format!(
            "unreachable: the HTTP proxy set in /etc/pve/datacenter.cfg cannot be resolved \
             ({detail}) — fix http_proxy there"
        )),
        7 => v.problems.push(format!(
            "unreachable: route — {host}:{port} refused or no route{via} ({detail}); {host} \
             resolves to [{}] here: check the address, routes and firewalls between this node \
             and the issuer, and that Authentik listens on port {port}",
            seen.addresses.join(", ")
        )),
        28 => v.problems.push(format!(
            "unreachable: no answer from {host}:{port} within {timeout}s{via} ({detail}) — a \
             firewall drops the packets or the route is wrong"
        )),
        rc if TLS_EXIT_CODES.contains(&rc) => {
            v.tls_verified = Some(false);
            let lower = detail.to_ascii_lowercase();
            let cert = seen
                .cert_info
                .as_deref()
                .map(|c| format!("; the server presents {c}"))
                .unwrap_or_default();
            let msg = if lower.contains("expired") {
                format!("TLS: the certificate of {host} has expired ({detail}{cert}) — renew it")
            } else if lower.contains("subject name")
                || lower.contains("does not match")
                || lower.contains("no alternative certificate")
            {
                format!(
                    "TLS: the certificate is not valid for {host} ({detail}{cert}) — issue it with \
                     {host} as a subject alternative name, or put the name it was issued for in \
                     issuer_url"
                )
            } else if lower.contains("self-signed")
                || lower.contains("self signed")
                || lower.contains("local issuer")
                || lower.contains("unable to verify")
                || lower.contains("unable to get")
                || lower.contains("not trusted")
                || rc == 60
            {
                format!(
                    "TLS: certificate not trusted by this node ({detail}{cert}) — install the CA \
                     (authentik_tls: internal_ca) or use a public certificate; Proxmox VE has no \
                     option to skip verification for OpenID realms"
                )
            } else {
                format!(
                    "TLS: handshake with {host}:{port} failed ({detail}{cert}) — check that the \
                     port speaks HTTPS (http/https mix-up?) and the TLS setup of the issuer"
                )
            };
            v.problems.push(msg);
            if let Some((0, code)) = seen.insecure {
                fetched = true;
                http_code = code;
            }
        }
        rc => v.problems.push(format!(
            "unreachable: curl failed with exit status {rc} fetching {url}{via} ({detail})"
        )),
    }
    if !fetched {
        return v;
    }

    // 3. The discovery document.
    match http_code {
        Some(200) => {}
        Some(code) => {
            v.problems.push(format!(
                "discovery: {url} answered HTTP {code} — {}",
                if code == 404 {
                    "no OpenID provider at this issuer URL: check it (authentik: \
                     https://<authentik host>/application/o/<application slug>/)"
                        .to_string()
                } else {
                    "the provider is not serving its discovery document; check its health"
                        .to_string()
                }
            ));
            return v;
        }
        None => {
            v.problems
                .push(format!("discovery: no HTTP answer from {url}"));
            return v;
        }
    }
    let doc: Value = match serde_json::from_slice(&seen.body) {
        Ok(d @ Value::Object(_)) => d,
        _ => {
            v.problems.push(format!(
                "discovery: {url} did not return an OpenID Connect discovery document (JSON) — \
                 check the issuer URL"
            ));
            return v;
        }
    };

    // 4. The issuer, compared as a string, exactly like the OIDC library.
    match doc.get("issuer").and_then(Value::as_str) {
        None => v.problems.push(format!(
            "discovery: the document at {url} has no issuer — not an OpenID provider"
        )),
        Some(said) => {
            v.provider_issuer = Some(said.to_string());
            if said != issuer {
                let fix = if said.strip_suffix('/') == Some(issuer) {
                    format!("configured {issuer} (no trailing slash) but the provider says {said} — add the trailing slash")
                } else if issuer.strip_suffix('/') == Some(said) {
                    format!("configured {issuer} (with a trailing slash) but the provider says {said} — remove the trailing slash")
                } else {
                    format!("configured {issuer} but the provider says {said} — set issuer_url to exactly {said}")
                };
                v.problems.push(format!(
                    "issuer mismatch: {fix} (Proxmox VE compares them character by character and \
                     rejects the login otherwise)"
                ));
            }
        }
    }

    // 5. The ID token signature algorithms.
    let algs: Option<Vec<String>> = doc
        .get("id_token_signing_alg_values_supported")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        });
    match &algs {
        None => v.problems.push(format!(
            "signing: the discovery document lists no id_token_signing_alg_values_supported — \
             Proxmox VE needs {alg}"
        )),
        Some(list) if !list.iter().any(|a| a == alg) => {
            let shown = list.join(", ");
            let msg = if !list.is_empty() && list.iter().all(|a| a.starts_with("ES")) {
                format!(
                    "{shown} only: the signing key is ECDSA — Proxmox rejects it with 401; select \
                     an RSA signing key for the provider (authentik_certificate makes one)"
                )
            } else if !list.is_empty() && list.iter().all(|a| a.starts_with("HS")) {
                format!(
                    "{shown} only: the provider has no signing key and signs ID tokens with the \
                     client secret — Proxmox rejects it with 401; select an RSA signing key"
                )
            } else {
                format!(
                    "signing: the provider offers {} but not {alg} — Proxmox VE 7/8 accept only \
                     {alg} ID tokens (401 otherwise); select an RSA signing key",
                    if shown.is_empty() { "nothing" } else { &shown }
                )
            };
            v.problems.push(msg);
        }
        Some(_) => {}
    }
    v.signing_algs = algs;
    v
}

#[async_trait::async_trait]
impl Module for PveOidcPreflight {
    fn name(&self) -> &'static str {
        "pve_oidc_preflight"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let issuer = args.req_str("issuer_url")?;
        let alg = args
            .str("signing_alg")?
            .unwrap_or_else(|| "RS256".to_string());
        let timeout = match args.int("timeout")? {
            None => 10,
            Some(t) if (1..=300).contains(&t) => t as u64,
            Some(t) => {
                return Err(ModuleError::msg(format!(
                    "pve_oidc_preflight: timeout must be 1..300 seconds, got {t}"
                )))
            }
        };
        let parsed = url::Url::parse(&issuer).map_err(|e| {
            ModuleError::msg(format!(
                "pve_oidc_preflight: issuer_url {issuer:?} is not a URL ({e})"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ModuleError::msg(format!(
                "pve_oidc_preflight: issuer_url {issuer:?} must be https:// (or http://)"
            )));
        }
        let host = parsed
            .host_str()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let url = discovery_url(&issuer);

        let out = env.run(&script(&url, &host, port, timeout), None).await?;
        let records = Records::parse(&out.stdout);
        if let Some(msg) = records.error() {
            return Err(ModuleError::msg(format!("pve_oidc_preflight: {msg}")));
        }
        let seen = Observed::from_records(&records);
        let verdict = judge(&issuer, &host, port, timeout, &alg, &seen);

        let mut result = Map::new();
        result.insert("issuer_url".into(), issuer.clone().into());
        result.insert("discovery_url".into(), url.into());
        if let Some(node) = records.get("pf", "node") {
            result.insert("node".into(), node.into());
        }
        result.insert("addresses".into(), json!(seen.addresses));
        result.insert("proxy".into(), json!(seen.proxy));
        result.insert("http_status".into(), json!(seen.http_code));
        result.insert("tls_verified".into(), json!(verdict.tls_verified));
        result.insert("provider_issuer".into(), json!(verdict.provider_issuer));
        result.insert("signing_algs".into(), json!(verdict.signing_algs));
        result.insert("problems".into(), json!(verdict.problems));
        if !verdict.warnings.is_empty() {
            result.insert("warnings".into(), json!(verdict.warnings));
        }
        if !verdict.problems.is_empty() {
            let list: Vec<String> = verdict.problems.iter().map(|p| format!("- {p}")).collect();
            return Err(ModuleError::with_result(
                format!(
                    "OIDC preflight for {issuer} failed on this node:\n{}",
                    list.join("\n")
                ),
                result,
            ));
        }
        Ok(Plan::unchanged(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://auth.example.com/application/o/pve/";

    fn ok_doc(issuer: &str, algs: &[&str]) -> Observed {
        Observed {
            curl_rc: 0,
            http_code: Some(200),
            body: serde_json::to_vec(&json!({
                "issuer": issuer,
                "id_token_signing_alg_values_supported": algs,
            }))
            .unwrap(),
            ..Observed::default()
        }
    }

    fn judge_default(issuer: &str, seen: &Observed) -> Verdict {
        judge(issuer, "auth.example.com", 443, 10, "RS256", seen)
    }

    #[test]
    fn discovery_url_adds_the_slash_only_when_missing() {
        assert_eq!(
            discovery_url(ISSUER),
            "https://auth.example.com/application/o/pve/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://kc/realms/x"),
            "https://kc/realms/x/.well-known/openid-configuration"
        );
    }

    #[test]
    fn a_good_provider_passes() {
        let v = judge_default(ISSUER, &ok_doc(ISSUER, &["RS256"]));
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!(v.tls_verified, Some(true));
    }

    #[test]
    fn issuer_mismatch_names_the_trailing_slash() {
        let configured = "https://x/application/o/pve";
        let v = judge_default(
            configured,
            &ok_doc("https://x/application/o/pve/", &["RS256"]),
        );
        assert_eq!(v.problems.len(), 1);
        assert!(
            v.problems[0].starts_with(
                "issuer mismatch: configured https://x/application/o/pve (no trailing slash) but \
                 the provider says https://x/application/o/pve/ — add the trailing slash"
            ),
            "{}",
            v.problems[0]
        );
        let v = judge_default(
            "https://kc/realms/r/",
            &ok_doc("https://kc/realms/r", &["RS256"]),
        );
        assert!(v.problems[0].contains("remove the trailing slash"));
        let v = judge_default(ISSUER, &ok_doc("https://other/", &["RS256"]));
        assert!(v.problems[0].contains("set issuer_url to exactly https://other/"));
    }

    #[test]
    fn signing_algorithms_name_the_key_type() {
        let v = judge_default(ISSUER, &ok_doc(ISSUER, &["ES256"]));
        assert!(
            v.problems[0]
                .starts_with("ES256 only: the signing key is ECDSA — Proxmox rejects it with 401"),
            "{}",
            v.problems[0]
        );
        let v = judge_default(ISSUER, &ok_doc(ISSUER, &["HS256"]));
        assert!(v.problems[0].contains("no signing key"));
        let v = judge_default(ISSUER, &ok_doc(ISSUER, &["PS256"]));
        assert!(v.problems[0].contains("not RS256"));
        assert!(judge_default(ISSUER, &ok_doc(ISSUER, &["ES256", "RS256"]))
            .problems
            .is_empty());
    }

    #[test]
    fn network_and_tls_failures_say_cause_and_fix() {
        let dns = Observed {
            curl_rc: 6,
            curl_error: "curl: (6) Could not resolve host: auth.example.com".into(),
            ..Observed::default()
        };
        let v = judge_default(ISSUER, &dns);
        assert!(
            v.problems[0].starts_with("unreachable: DNS"),
            "{:?}",
            v.problems
        );

        let refused = Observed {
            curl_rc: 7,
            addresses: vec!["10.0.0.9".into()],
            ..Observed::default()
        };
        let v = judge_default(ISSUER, &refused);
        assert!(v.problems[0].contains("resolves to [10.0.0.9]"));

        let mut untrusted = ok_doc("https://auth.example.com/application/o/other/", &["ES256"]);
        untrusted.curl_rc = 60;
        untrusted.http_code = None;
        untrusted.curl_error = "curl: (60) SSL certificate problem: self-signed certificate\n\
            More details here: https://curl.se/docs/sslcerts.html\n\ncurl failed to verify the \
            legitimacy of the server\n"
            .into();
        untrusted.insecure = Some((0, Some(200)));
        untrusted.cert_info = Some("subject=CN = auth".into());
        let v = judge_default(ISSUER, &untrusted);
        assert_eq!(v.tls_verified, Some(false));
        assert!(
            v.problems[0].starts_with(
                "TLS: certificate not trusted by this node (SSL certificate problem: self-signed \
             certificate; the server presents subject=CN = auth) — install the CA \
             (authentik_tls: internal_ca) or use a public certificate"
            ),
            "{}",
            v.problems[0]
        );
        assert_eq!(
            v.problems.len(),
            3,
            "TLS, issuer and algorithm all reported: {:?}",
            v.problems
        );

        let mut expired = untrusted.clone();
        expired.curl_error = "curl: (60) SSL certificate problem: certificate has expired".into();
        assert!(judge_default(ISSUER, &expired).problems[0].contains("has expired"));

        let missing = Observed {
            curl_rc: 0,
            http_code: Some(404),
            ..Observed::default()
        };
        assert!(judge_default(ISSUER, &missing).problems[0].contains("HTTP 404"));
    }
}
