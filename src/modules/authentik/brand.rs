//! `authentik_brand`: ensures fields of an existing brand (`/api/v3/core/brands/`, schema
//! 2026.5.6 `Brand`/`PatchedBrandRequest`): `web_certificate` (a key pair given by name, the
//! certificate Authentik's HTTPS listener serves for the brand's domain) and `branding_title`.
//!
//! The brand is the one with `domain`, or, without it, the one Authentik picks for the public host
//! `authentik_host` (`authentik/brands/utils.py`): the longest brand domain the host ends with,
//! else the default brand. Only differing fields are PATCHed. The fields are the same in every
//! supported release (2024.12 to 2026.5), so nothing here depends on the version.

use hyper::Method;
use serde_json::{json, Map, Value};

use super::api::Client;
use super::certificate::{strip_port, KEY_PAIRS};
use super::{
    authentik_spec, base_result, changed_fields, field_changes, json_diff, scalar_text, Pending,
};
use crate::modules::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv, SECRETS_KEY};

pub struct AuthentikBrand;

static SPEC: ArgSpec = authentik_spec!(
    Arg::opt("domain"),
    Arg::opt("web_certificate"),
    Arg::opt("branding_title"),
    Arg::opt("https_port"),
    Arg::opt("serve_timeout"),
);

/// Authentik's HTTPS listener (COMPOSE_PORT_HTTPS's container side, and its default host side).
const DEFAULT_HTTPS_PORT: i64 = 9443;
/// Authentik's server reloads brand certificates periodically (every few minutes), not on PATCH.
const DEFAULT_SERVE_TIMEOUT: i64 = 300;
/// How long an HTTPS port that does not answer is retried (a server that is just starting).
const UNREACHABLE_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

pub const BRANDS: &str = "/api/v3/core/brands/";

#[derive(Clone, Debug, PartialEq)]
pub struct Wanted {
    pub domain: Option<String>,
    /// Some("") unsets the web certificate.
    pub web_certificate: Option<String>,
    pub branding_title: Option<String>,
}

impl Wanted {
    pub fn from_args(args: &Args) -> Result<Wanted, ModuleError> {
        let domain = args
            .str("domain")?
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty());
        let web_certificate = args.str("web_certificate")?.map(|c| c.trim().to_string());
        let branding_title = args.str("branding_title")?;
        if branding_title.as_deref().is_some_and(|t| t.is_empty()) {
            // PatchedBrandRequest: branding_title has minLength 1.
            return Err(ModuleError::msg("branding_title must not be empty"));
        }
        Ok(Wanted {
            domain,
            web_certificate,
            branding_title,
        })
    }
}

/// How the brand was chosen, for the result.
#[derive(Clone, Debug, PartialEq)]
pub enum Matched {
    Domain,
    HostSuffix(String),
    Default(String),
}

impl Matched {
    fn describe(&self) -> String {
        match self {
            Matched::Domain => "domain".into(),
            Matched::HostSuffix(host) => format!("longest domain suffix of {host}"),
            Matched::Default(host) => format!("default brand (no brand domain matches {host})"),
        }
    }
}

fn domain_of(brand: &Value) -> &str {
    brand.get("domain").and_then(Value::as_str).unwrap_or("")
}

/// The brand Authentik uses for `host` (authentik/brands/utils.py `get_brand_for_request`, as the
/// fake's `match_brand`): the longest non-empty domain the host ends with (case-insensitive), else
/// the brand marked default.
pub fn brand_for_host<'a>(brands: &'a [Value], host: &str) -> Option<(&'a Value, Matched)> {
    let host = strip_port(host).to_ascii_lowercase();
    let suffix = brands
        .iter()
        .filter(|b| {
            let domain = domain_of(b).to_ascii_lowercase();
            !domain.is_empty() && host.ends_with(&domain)
        })
        .max_by_key(|b| domain_of(b).len());
    if let Some(brand) = suffix {
        return Some((brand, Matched::HostSuffix(host)));
    }
    brands
        .iter()
        .find(|b| b.get("default").and_then(Value::as_bool) == Some(true))
        .map(|b| (b, Matched::Default(host)))
}

/// The brand to manage: by `domain`, or the one for the public host.
pub fn choose<'a>(
    brands: &'a [Value],
    domain: Option<&str>,
    public_host: Option<&str>,
) -> Result<(&'a Value, Matched), ModuleError> {
    let known = || {
        let mut domains: Vec<String> = brands
            .iter()
            .map(|b| {
                let default = b.get("default").and_then(Value::as_bool) == Some(true);
                format!(
                    "{}{}",
                    domain_of(b),
                    if default { " (default)" } else { "" }
                )
            })
            .collect();
        domains.sort();
        if domains.is_empty() {
            "none".into()
        } else {
            domains.join(", ")
        }
    };
    match (domain, public_host) {
        (Some(domain), _) => brands
            .iter()
            .find(|b| domain_of(b) == domain)
            .map(|b| (b, Matched::Domain))
            .ok_or_else(|| {
                ModuleError::msg(format!(
                    "Authentik has no brand with domain '{domain}' (brands: {}); create it in Authentik \
                     (System › Brands) or leave domain out to use the brand of authentik_host",
                    known()
                ))
            }),
        (None, Some(host)) => brand_for_host(brands, host).ok_or_else(|| {
            ModuleError::msg(format!(
                "no Authentik brand serves {}: no brand domain is a suffix of it and no brand is the default \
                 (brands: {}); give domain",
                strip_port(host),
                known()
            ))
        }),
        (None, None) => Err(ModuleError::msg(
            "give domain (the brand's domain), or authentik_host so that the brand Authentik uses for that \
             host is chosen",
        )),
    }
}

/// The key pair `web_certificate` names.
#[derive(Clone, Debug, PartialEq)]
pub struct PairRef {
    /// None in check mode when the pair does not exist yet.
    pub pk: Option<String>,
    pub name: String,
    /// Authentik's `fingerprint_sha256` of the pair's certificate.
    pub fingerprint: Option<String>,
}

async fn resolve_pair(
    client: &mut Client,
    env: &dyn TaskEnv,
    name: &str,
) -> Result<PairRef, ModuleError> {
    match client.find_by(env, KEY_PAIRS, "name", name).await? {
        Some(pair) => {
            // Without its key the router cannot serve the certificate and falls back to a
            // self-signed one, silently.
            if pair.get("private_key_available").and_then(Value::as_bool) == Some(false) {
                return Err(ModuleError::msg(format!(
                    "Authentik key pair '{name}' (web_certificate) has no private key, so Authentik cannot \
                     serve it over HTTPS; import it with its key (authentik_certificate with key_data)"
                )));
            }
            Ok(PairRef {
                pk: pair.get("pk").and_then(scalar_text),
                name: name.to_string(),
                fingerprint: pair
                    .get("fingerprint_sha256")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            })
        }
        None if env.check_mode() => Ok(PairRef {
            pk: None,
            name: name.to_string(),
            fingerprint: None,
        }),
        None => Err(ModuleError::msg(format!(
            "Authentik has no certificate-key pair named '{name}' (web_certificate): import it first with \
             authentik_certificate (certificate_data, key_data)"
        ))),
    }
}

/// The name of the pair a brand points to now, for the diff and the result.
async fn pair_name(
    client: &mut Client,
    env: &dyn TaskEnv,
    pk: &str,
) -> Result<Option<String>, ModuleError> {
    Ok(client
        .get_optional(env, &format!("{KEY_PAIRS}{pk}/"))
        .await?
        .and_then(|p| p.get("name").and_then(Value::as_str).map(str::to_string)))
}

/// The fields to PATCH, as the API takes them.
pub fn desired(wanted: &Wanted, pair: Option<&PairRef>) -> Map<String, Value> {
    let mut body = Map::new();
    if let Some(name) = &wanted.web_certificate {
        let value = match pair {
            _ if name.is_empty() => Value::Null,
            Some(PairRef { pk: Some(pk), .. }) => json!(pk),
            _ => json!(format!("(to be created: {name})")),
        };
        body.insert("web_certificate".into(), value);
    }
    if let Some(title) = &wanted.branding_title {
        body.insert("branding_title".into(), json!(title));
    }
    body
}

/// Fields as the diff shows them: the web certificate by name.
fn view(fields: &Map<String, Value>, names: &[(String, String)]) -> Value {
    let mut shown = fields.clone();
    if let Some(cert) = shown.get_mut("web_certificate") {
        if let Some(pk) = cert.as_str() {
            if let Some((_, name)) = names.iter().find(|(p, _)| p == pk) {
                *cert = json!(name);
            }
        }
    }
    Value::Object(shown)
}

fn brand_result(
    brand: &Value,
    cert_name: Option<&str>,
    matched: &Matched,
    client: &Client,
) -> Map<String, Value> {
    let mut result = base_result(client);
    for key in [
        "brand_uuid",
        "domain",
        "default",
        "web_certificate",
        "branding_title",
    ] {
        result.insert(key.into(), brand.get(key).cloned().unwrap_or(Value::Null));
    }
    result.insert("web_certificate_name".into(), json!(cert_name));
    result.insert("matched_by".into(), json!(matched.describe()));
    result.insert(SECRETS_KEY.into(), client.secrets(&[]));
    result
}

struct Patch {
    brand_uuid: String,
    fields: Map<String, Value>,
    cert_name: Option<String>,
    matched: Matched,
    serve: Option<ServeCheck>,
}

/// After setting a web certificate: wait until Authentik's HTTPS listener presents it, because
/// Authentik loads brand certificates on a timer, and the next tasks (Proxmox nodes fetching the
/// issuer) need the new one.
#[derive(Clone, Debug)]
struct ServeCheck {
    port: u16,
    server_name: String,
    pair_name: String,
    fingerprint: String,
    timeout: std::time::Duration,
}

impl ServeCheck {
    fn from_args(
        args: &Args,
        pair: Option<&PairRef>,
        public_host: Option<&str>,
    ) -> Result<Option<ServeCheck>, ModuleError> {
        let port = args.int("https_port")?.unwrap_or(DEFAULT_HTTPS_PORT);
        let port = u16::try_from(port).ok().filter(|p| *p > 0).ok_or_else(|| {
            ModuleError::msg(format!("https_port must be a TCP port, got {port}"))
        })?;
        let timeout = args.int("serve_timeout")?.unwrap_or(DEFAULT_SERVE_TIMEOUT);
        if timeout < 0 {
            return Err(ModuleError::msg(format!(
                "serve_timeout must be 0 (do not wait) or more seconds, got {timeout}"
            )));
        }
        let (Some(pair), Some(host)) = (pair, public_host) else {
            return Ok(None);
        };
        let Some(fingerprint) = pair.fingerprint.clone() else {
            return Ok(None);
        };
        Ok((timeout > 0).then(|| ServeCheck {
            port,
            server_name: strip_port(host).to_string(),
            pair_name: pair.name.clone(),
            fingerprint,
            timeout: std::time::Duration::from_secs(timeout as u64),
        }))
    }

    async fn wait(&self, client: &Client, env: &dyn TaskEnv) -> Result<(), ModuleError> {
        let start = std::time::Instant::now();
        let deadline = start + self.timeout;
        // Only a certificate that is not the new one yet is worth the long wait; a port that does
        // not answer TLS is a wrong https_port or a stopped server, not a reload delay.
        let unreachable_deadline = start + self.timeout.min(UNREACHABLE_GRACE);
        loop {
            let (last, reachable) = match client
                .served_certificate(env, self.port, &self.server_name)
                .await
            {
                Ok(seen) if seen.eq_ignore_ascii_case(&self.fingerprint) => return Ok(()),
                Ok(seen) => (
                    format!("it serves the certificate with sha256 {seen}"),
                    true,
                ),
                Err(ModuleError::Failed { msg, .. }) => (msg, false),
                Err(lost) => return Err(lost),
            };
            if !reachable && std::time::Instant::now() >= unreachable_deadline {
                return Err(ModuleError::msg(format!(
                    "cannot check which certificate Authentik serves for {} on port {}: {last}. \
                     Is https_port Authentik's HTTPS port on its host (COMPOSE_PORT_HTTPS, the \
                     playbook's authentik_https_port), and is the server container up?",
                    self.server_name, self.port
                )));
            }
            if std::time::Instant::now() >= deadline {
                return Err(ModuleError::msg(format!(
                    "Authentik does not serve key pair '{}' (sha256 {}) for {} on port {} after {} s: {last}. \
                     Authentik loads brand certificates every few minutes: rerun or raise serve_timeout; \
                     check that https_port is Authentik's HTTPS port",
                    self.pair_name,
                    self.fingerprint,
                    self.server_name,
                    self.port,
                    self.timeout.as_secs()
                )));
            }
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    }
}

#[async_trait::async_trait]
impl Module for AuthentikBrand {
    fn name(&self) -> &'static str {
        "authentik_brand"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let wanted = Wanted::from_args(args)?;
        let Some(mut client) = super::connect_for_plan(env, args).await? else {
            return Ok(super::unreachable_in_check());
        };
        let brands = client.list_all(env, BRANDS, &[]).await?;
        let public_host = client.public_host().map(str::to_string);
        let (brand, matched) = choose(&brands, wanted.domain.as_deref(), public_host.as_deref())?;
        let brand = brand.clone();
        let brand_uuid = brand
            .get("brand_uuid")
            .and_then(scalar_text)
            .ok_or_else(|| ModuleError::msg("Authentik listed a brand without brand_uuid"))?;
        let pair = match wanted.web_certificate.as_deref() {
            Some(name) if !name.is_empty() => Some(resolve_pair(&mut client, env, name).await?),
            _ => None,
        };
        let desired = desired(&wanted, pair.as_ref());
        let changed = changed_fields(&desired, &brand);
        // Names of the pairs on both sides of the diff.
        let mut names: Vec<(String, String)> = Vec::new();
        if let Some(PairRef {
            pk: Some(pk), name, ..
        }) = &pair
        {
            names.push((pk.clone(), name.clone()));
        }
        let current_pk = brand
            .get("web_certificate")
            .and_then(Value::as_str)
            .map(str::to_string);
        let current_name = match &current_pk {
            Some(pk) => match names.iter().find(|(p, _)| p == pk) {
                Some((_, name)) => Some(name.clone()),
                None => pair_name(&mut client, env, pk).await?,
            },
            None => None,
        };
        if let (Some(pk), Some(name)) = (&current_pk, &current_name) {
            names.push((pk.clone(), name.clone()));
        }
        let mut result = brand_result(&brand, current_name.as_deref(), &matched, &client);
        let serve = ServeCheck::from_args(args, pair.as_ref(), public_host.as_deref())?;
        if changed.is_empty() {
            // Set by an earlier run that may have stopped before Authentik served it.
            if let (Some(serve), false) = (&serve, env.check_mode()) {
                serve.wait(&client, env).await?;
            }
            return Ok(Plan::unchanged(result));
        }
        let (before, after) = field_changes(&changed, &brand, &desired);
        // The result as it will be (check mode shows the prediction).
        for (field, value) in &after {
            result.insert(field.clone(), value.clone());
        }
        let cert_name = match &wanted.web_certificate {
            Some(name) if name.is_empty() => None,
            Some(name) => Some(name.clone()),
            None => current_name,
        };
        result.insert("web_certificate_name".into(), json!(cert_name));
        result.insert("changed_fields".into(), json!(changed));
        Ok(Plan {
            changed: true,
            diffs: vec![json_diff(
                &format!("brand {}", domain_of(&brand)),
                Some(&view(&before, &names)),
                &view(&after, &names),
            )],
            result,
            skip_in_check: None,
            data: Pending {
                client,
                work: Patch {
                    brand_uuid,
                    fields: after,
                    cert_name,
                    matched,
                    serve,
                },
            }
            .into_plan_data(),
        })
    }

    async fn apply(
        &self,
        env: &dyn TaskEnv,
        _args: &Args,
        mut plan: Plan,
    ) -> Result<Map<String, Value>, ModuleError> {
        let Pending { mut client, work } = Pending::<Patch>::from_plan(&mut plan)?;
        let changed: Vec<String> = work.fields.keys().cloned().collect();
        let saved = client
            .call(
                env,
                Method::PATCH,
                &format!("{BRANDS}{}/", work.brand_uuid),
                Some(&Value::Object(work.fields)),
            )
            .await?
            .body;
        if let Some(serve) = &work.serve {
            serve.wait(&client, env).await?;
        }
        let mut result = brand_result(&saved, work.cert_name.as_deref(), &work.matched, &client);
        result.insert("changed_fields".into(), json!(changed));
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testenv::args;

    fn brands() -> Vec<Value> {
        vec![
            json!({"brand_uuid": "b0", "domain": "authentik-default", "default": true, "web_certificate": null,
                   "branding_title": "authentik"}),
            json!({"brand_uuid": "b1", "domain": "example.test", "default": false, "web_certificate": null}),
            json!({"brand_uuid": "b2", "domain": "auth.example.test", "default": false,
                   "web_certificate": "kp-1", "branding_title": "Auth"}),
        ]
    }

    fn uuid_of(found: Result<(&Value, Matched), ModuleError>) -> String {
        match found {
            Ok((brand, _)) => brand["brand_uuid"].as_str().unwrap().to_string(),
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn the_longest_matching_domain_wins_then_the_default() {
        let all = brands();
        assert_eq!(uuid_of(choose(&all, None, Some("auth.example.test"))), "b2");
        assert_eq!(
            uuid_of(choose(&all, None, Some("AUTH.Example.test:9443"))),
            "b2"
        );
        assert_eq!(uuid_of(choose(&all, None, Some("pve.example.test"))), "b1");
        let (_, matched) = choose(&all, None, Some("login.other.test")).unwrap();
        assert_eq!(matched, Matched::Default("login.other.test".into()));
        assert_eq!(uuid_of(choose(&all, None, Some("login.other.test"))), "b0");
        // An explicit domain is matched exactly.
        assert_eq!(
            uuid_of(choose(
                &all,
                Some("example.test"),
                Some("auth.example.test")
            )),
            "b1"
        );
    }

    #[test]
    fn no_brand_is_a_clear_error() {
        let all = brands();
        let err = format!("{:?}", choose(&all, Some("nope.test"), None).unwrap_err());
        assert!(
            err.contains("no brand with domain 'nope.test'")
                && err.contains("authentik-default (default)"),
            "{err}"
        );
        let no_default: Vec<Value> = all[1..].to_vec();
        let err = format!(
            "{:?}",
            choose(&no_default, None, Some("login.other.test")).unwrap_err()
        );
        assert!(
            err.contains("no Authentik brand serves login.other.test"),
            "{err}"
        );
        let err = format!("{:?}", choose(&all, None, None).unwrap_err());
        assert!(err.contains("authentik_host"), "{err}");
    }

    #[test]
    fn only_given_fields_are_compared() {
        let w = Wanted::from_args(&args(
            "authentik_brand",
            json!({"web_certificate": "web", "branding_title": "Auth"}),
        ))
        .unwrap();
        let pair = PairRef {
            pk: Some("kp-1".into()),
            name: "web".into(),
            fingerprint: Some("ab:cd".into()),
        };
        let body = desired(&w, Some(&pair));
        assert_eq!(body["web_certificate"], "kp-1");
        let all = brands();
        assert!(changed_fields(&body, &all[2]).is_empty());
        assert_eq!(
            changed_fields(&body, &all[1]),
            vec!["web_certificate", "branding_title"]
        );
        // Unset: null, which equals a brand without a certificate.
        let unset =
            Wanted::from_args(&args("authentik_brand", json!({"web_certificate": ""}))).unwrap();
        let body = desired(&unset, None);
        assert_eq!(body["web_certificate"], Value::Null);
        assert!(changed_fields(&body, &all[1]).is_empty());
        assert_eq!(changed_fields(&body, &all[2]), vec!["web_certificate"]);
        // Check mode before the pair exists.
        let pending = PairRef {
            pk: None,
            name: "web".into(),
            fingerprint: None,
        };
        assert_eq!(
            desired(&w, Some(&pending))["web_certificate"],
            "(to be created: web)"
        );
        let shown = view(&desired(&w, Some(&pair)), &[("kp-1".into(), "web".into())]);
        assert_eq!(shown["web_certificate"], "web");
        assert!(
            Wanted::from_args(&args("authentik_brand", json!({"branding_title": ""}))).is_err()
        );
    }
}
