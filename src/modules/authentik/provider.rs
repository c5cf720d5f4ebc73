//! `authentik_provider_oauth2`: ensures an OAuth2/OpenID provider by name, shaped for Proxmox VE
//! (reference §5–§7, §9, §10): flows by slug, a confidential client, strict redirect URIs, an RSA
//! signing key, no encryption key, the openid/email/profile scope mappings by their `managed`
//! identifiers (+ entitlements with `group_mapping`).
//!
//! The client id is kept as given (or as Authentik generated it); the client secret is generated
//! once by Authentik and read back on every run (or managed when given). Only differing fields are
//! PATCHed. The secret is returned (declared under `SECRETS_KEY`) and masked in diffs.

use std::collections::HashMap;

use hyper::Method;
use serde_json::{json, Map, Value};

use super::api::Client;
use super::certificate::{check_usable, KEY_PAIRS};
use super::version::Features;
use super::{authentik_spec, base_result, json_diff, scalar_text, Pending, MASKED};
use crate::modules::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv, SECRETS_KEY};

pub struct AuthentikProviderOauth2;

static SPEC: ArgSpec = authentik_spec!(
    Arg::req("name"),
    Arg::opt("authorization_flow"),
    Arg::opt("invalidation_flow"),
    Arg::opt("client_type").choices(&["confidential", "public"]),
    Arg::opt("client_id"),
    Arg::opt("client_secret"),
    Arg::req("redirect_uris"),
    Arg::req("signing_key"),
    Arg::opt("scopes"),
    Arg::opt("group_mapping"),
    Arg::opt("sub_mode").choices(&[
        "hashed_user_id",
        "user_id",
        "user_uuid",
        "user_username",
        "user_email",
        "user_upn"
    ]),
    Arg::opt("issuer_mode").choices(&["global", "per_provider"]),
    Arg::opt("include_claims_in_id_token"),
    Arg::opt("access_code_validity"),
    Arg::opt("access_token_validity"),
    Arg::opt("refresh_token_validity"),
);

pub const PROVIDERS: &str = "/api/v3/providers/oauth2/";
const FLOWS: &str = "/api/v3/flows/instances/";
const SCOPE_MAPPINGS: &str = "/api/v3/propertymappings/provider/scope/";
const MANAGED_SCOPE_PREFIX: &str = "goauthentik.io/providers/oauth2/scope-";
const DEFAULT_AUTHORIZATION_FLOW: &str = "default-provider-authorization-implicit-consent";
const DEFAULT_INVALIDATION_FLOW: &str = "default-provider-invalidation-flow";
const DEFAULT_SCOPES: &[&str] = &["openid", "email", "profile"];

#[derive(Clone, Debug, PartialEq)]
pub struct RedirectUri {
    pub matching_mode: String,
    pub url: String,
}

/// The provider as the task describes it (names and slugs, not yet pks).
#[derive(Clone, Debug, PartialEq)]
pub struct Wanted {
    pub name: String,
    pub authorization_flow: String,
    pub invalidation_flow: String,
    pub client_type: String,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub redirect_uris: Vec<RedirectUri>,
    pub signing_key: String,
    /// `managed` identifiers of the scope mappings.
    pub scope_mappings: Vec<String>,
    pub sub_mode: Option<String>,
    pub issuer_mode: String,
    pub include_claims_in_id_token: bool,
    /// `(field, value)` of the token validity settings that were given.
    pub validities: Vec<(&'static str, String)>,
}

impl Wanted {
    pub fn from_args(args: &Args) -> Result<Wanted, ModuleError> {
        let name = args.req_str("name")?;
        let redirect_uris = redirect_uris_arg(args.value("redirect_uris"))?;
        let mut scopes = args
            .list("scopes")?
            .unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect());
        if args.bool("group_mapping", false)? && !scopes.iter().any(|s| s == "entitlements") {
            scopes.push("entitlements".into());
        }
        let scope_mappings = scopes
            .iter()
            .map(|s| {
                if s.contains('/') {
                    s.clone()
                } else {
                    format!("{MANAGED_SCOPE_PREFIX}{s}")
                }
            })
            .collect();
        let mut validities = Vec::new();
        for field in [
            "access_code_validity",
            "access_token_validity",
            "refresh_token_validity",
        ] {
            if let Some(v) = args.str(field)? {
                validities.push((field, v));
            }
        }
        Ok(Wanted {
            name,
            authorization_flow: args
                .str("authorization_flow")?
                .unwrap_or_else(|| DEFAULT_AUTHORIZATION_FLOW.into()),
            invalidation_flow: args
                .str("invalidation_flow")?
                .unwrap_or_else(|| DEFAULT_INVALIDATION_FLOW.into()),
            client_type: args.choice("client_type", &["confidential", "public"], "confidential")?,
            client_id: args.str("client_id")?.filter(|s| !s.is_empty()),
            client_secret: args.str("client_secret")?.filter(|s| !s.is_empty()),
            redirect_uris,
            signing_key: args.req_str("signing_key")?,
            scope_mappings,
            sub_mode: args.str("sub_mode")?,
            issuer_mode: args.choice("issuer_mode", &["global", "per_provider"], "per_provider")?,
            include_claims_in_id_token: args.bool("include_claims_in_id_token", true)?,
            validities,
        })
    }
}

/// `redirect_uris`: URLs (strict) or `{url, matching_mode}` entries; at least one.
fn redirect_uris_arg(value: Option<&Value>) -> Result<Vec<RedirectUri>, ModuleError> {
    let items = match value {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(s)) => s
            .split([',', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Value::String(s.into()))
            .collect(),
        _ => {
            return Err(ModuleError::msg(
                "redirect_uris must be a list of URLs (e.g. https://pve1.example.com:8006)",
            ))
        }
    };
    let mut out: Vec<RedirectUri> = Vec::new();
    for item in items {
        let uri = match item {
            Value::String(url) => RedirectUri {
                matching_mode: "strict".into(),
                url,
            },
            Value::Object(map) => {
                let url = map
                    .get("url")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ModuleError::msg("each redirect_uris entry needs a url"))?;
                let mode = map
                    .get("matching_mode")
                    .and_then(Value::as_str)
                    .unwrap_or("strict");
                if mode != "strict" && mode != "regex" {
                    return Err(ModuleError::msg(format!(
                        "matching_mode of {url} must be strict or regex, got {mode}"
                    )));
                }
                RedirectUri {
                    matching_mode: mode.into(),
                    url: url.into(),
                }
            }
            other => {
                return Err(ModuleError::msg(format!(
                    "redirect_uris entries must be URLs or {{url, matching_mode}}, got {other}"
                )))
            }
        };
        if uri.url.trim().is_empty() {
            return Err(ModuleError::msg("redirect_uris holds an empty URL"));
        }
        if !out.contains(&uri) {
            out.push(uri);
        }
    }
    if out.is_empty() {
        return Err(ModuleError::msg(
            "redirect_uris is empty: list every address users open Proxmox VE at (https://node:8006)",
        ));
    }
    Ok(out)
}

/// Authentik objects referred to by the provider: pk ↔ human label, for bodies and diffs.
#[derive(Default)]
pub struct Labels {
    by_pk: HashMap<String, String>,
}

impl Labels {
    pub fn add(&mut self, pk: &str, label: &str) {
        self.by_pk.insert(pk.to_string(), label.to_string());
    }
    fn label(&self, pk: &Value) -> Value {
        match scalar_text(pk) {
            Some(text) => Value::String(self.by_pk.get(&text).cloned().unwrap_or(text)),
            None => pk.clone(),
        }
    }
}

/// The pks the provider's fields point to.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub authorization_flow: String,
    pub invalidation_flow: String,
    /// None in check mode when the key pair does not exist yet (an earlier task would create it).
    pub signing_key: Option<String>,
    pub property_mappings: Vec<String>,
}

/// The fields the module manages, as the API takes them.
pub fn desired_body(
    wanted: &Wanted,
    resolved: &Resolved,
    features: &Features,
) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("name".into(), json!(wanted.name));
    body.insert(
        "authorization_flow".into(),
        json!(resolved.authorization_flow),
    );
    body.insert(
        "invalidation_flow".into(),
        json!(resolved.invalidation_flow),
    );
    body.insert("client_type".into(), json!(wanted.client_type));
    if let Some(id) = &wanted.client_id {
        body.insert("client_id".into(), json!(id));
    }
    if let Some(secret) = &wanted.client_secret {
        body.insert("client_secret".into(), json!(secret));
    }
    let uris: Vec<Value> = wanted
        .redirect_uris
        .iter()
        .map(|u| {
            let mut entry = json!({"matching_mode": u.matching_mode, "url": u.url});
            if features.redirect_uri_type {
                entry["redirect_uri_type"] = json!("authorization");
            }
            entry
        })
        .collect();
    body.insert("redirect_uris".into(), Value::Array(uris));
    body.insert(
        "signing_key".into(),
        resolved.signing_key.clone().map_or(
            json!(format!("(to be created: {})", wanted.signing_key)),
            Value::String,
        ),
    );
    // Proxmox cannot decrypt JWE tokens (reference §9.1).
    body.insert("encryption_key".into(), Value::Null);
    body.insert(
        "property_mappings".into(),
        json!(resolved.property_mappings),
    );
    if let Some(mode) = &wanted.sub_mode {
        body.insert("sub_mode".into(), json!(mode));
    }
    body.insert("issuer_mode".into(), json!(wanted.issuer_mode));
    body.insert(
        "include_claims_in_id_token".into(),
        json!(wanted.include_claims_in_id_token),
    );
    for (field, value) in &wanted.validities {
        body.insert((*field).into(), json!(value));
    }
    body
}

/// A field's value in a form that compares equal when Authentik would consider it unchanged.
fn comparable(field: &str, value: Option<&Value>) -> Value {
    let value = value.cloned().unwrap_or(Value::Null);
    match field {
        "redirect_uris" => {
            let mut entries: Vec<(String, String, String)> = value
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|e| {
                            let text = |k: &str, default: &str| {
                                e.get(k)
                                    .and_then(Value::as_str)
                                    .unwrap_or(default)
                                    .to_string()
                            };
                            (
                                text("matching_mode", "strict"),
                                text("url", ""),
                                text("redirect_uri_type", "authorization"),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            entries.sort();
            json!(entries)
        }
        "property_mappings" => {
            let mut pks: Vec<String> = value
                .as_array()
                .map(|items| items.iter().filter_map(scalar_text).collect())
                .unwrap_or_default();
            pks.sort();
            pks.dedup();
            json!(pks)
        }
        _ => match &value {
            Value::Number(_) => Value::String(scalar_text(&value).unwrap_or_default()),
            _ => value,
        },
    }
}

/// The managed fields whose current value differs from the desired one, in body order.
pub fn changed_fields(desired: &Map<String, Value>, current: &Value) -> Vec<String> {
    desired
        .iter()
        .filter(|(field, want)| {
            comparable(field, Some(want)) != comparable(field, current.get(field.as_str()))
        })
        .map(|(field, _)| field.clone())
        .collect()
}

/// The PATCH body: only the differing fields.
pub fn patch_body(desired: &Map<String, Value>, changed: &[String]) -> Map<String, Value> {
    changed
        .iter()
        .filter_map(|f| desired.get(f).map(|v| (f.clone(), v.clone())))
        .collect()
}

/// The managed fields for a diff: pks shown as slugs/names, the client secret masked.
pub fn diff_view(fields: &Map<String, Value>, labels: &Labels, secret_changes: bool) -> Value {
    let mut view = Map::new();
    for (field, value) in fields {
        let shown = match field.as_str() {
            "client_secret" => json!(if secret_changes {
                format!("{MASKED} (changed)")
            } else {
                MASKED.to_string()
            }),
            "authorization_flow" | "invalidation_flow" | "signing_key" | "encryption_key" => {
                labels.label(value)
            }
            "property_mappings" => {
                let mut names: Vec<Value> = value
                    .as_array()
                    .map(|items| items.iter().map(|v| labels.label(v)).collect())
                    .unwrap_or_default();
                names.sort_by_key(|v| v.to_string());
                Value::Array(names)
            }
            "redirect_uris" => {
                let mut uris: Vec<Value> = value
                    .as_array()
                    .map(|items| {
                        items
                            .iter()
                            .map(|e| {
                                let url = e.get("url").and_then(Value::as_str).unwrap_or_default();
                                match e.get("matching_mode").and_then(Value::as_str) {
                                    Some("regex") => json!(format!("{url} (regex)")),
                                    _ => json!(url),
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                uris.sort_by_key(|v| v.to_string());
                Value::Array(uris)
            }
            _ => value.clone(),
        };
        view.insert(field.clone(), shown);
    }
    Value::Object(view)
}

/// The current values of the fields the module manages.
fn current_fields(desired: &Map<String, Value>, current: &Value) -> Map<String, Value> {
    desired
        .keys()
        .map(|f| {
            (
                f.clone(),
                current.get(f.as_str()).cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// `https://<authentik host>/application/o/<slug>/` (or the site root for `issuer_mode: global`).
pub fn issuer_url(public_host: &str, app_slug: &str, issuer_mode: &str) -> String {
    if issuer_mode == "global" {
        format!("https://{public_host}/")
    } else {
        format!("https://{public_host}/application/o/{app_slug}/")
    }
}

fn provider_result(provider: &Value, client: &Client) -> Map<String, Value> {
    let mut result = base_result(client);
    for key in [
        "pk",
        "name",
        "client_id",
        "client_secret",
        "client_type",
        "signing_key",
        "property_mappings",
        "issuer_mode",
        "assigned_application_slug",
    ] {
        result.insert(
            key.into(),
            provider.get(key).cloned().unwrap_or(Value::Null),
        );
    }
    let uris: Vec<Value> = provider
        .get("redirect_uris")
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(|e| e.get("url").cloned()).collect())
        .unwrap_or_default();
    result.insert("redirect_uris".into(), Value::Array(uris));
    if let (Some(host), Some(slug)) = (
        client.public_host(),
        provider
            .get("assigned_application_slug")
            .and_then(Value::as_str),
    ) {
        let mode = provider
            .get("issuer_mode")
            .and_then(Value::as_str)
            .unwrap_or("per_provider");
        result.insert("issuer_url".into(), json!(issuer_url(host, slug, mode)));
    }
    let secret = provider
        .get("client_secret")
        .and_then(Value::as_str)
        .unwrap_or_default();
    result.insert(SECRETS_KEY.into(), client.secrets(&[secret]));
    result
}

enum Work {
    Create(Map<String, Value>),
    Patch {
        pk: String,
        body: Map<String, Value>,
    },
}

/// Looks up what the provider refers to; fills `labels` for the diff.
async fn resolve(
    client: &mut Client,
    env: &dyn TaskEnv,
    wanted: &Wanted,
    labels: &mut Labels,
) -> Result<Resolved, ModuleError> {
    let flows = client.list_all(env, FLOWS, &[]).await?;
    for flow in &flows {
        if let (Some(pk), Some(slug)) = (
            flow.get("pk").and_then(scalar_text),
            flow.get("slug").and_then(Value::as_str),
        ) {
            labels.add(&pk, slug);
        }
    }
    let flow_pk = |slug: &str, role: &str, designation: &str| -> Result<String, ModuleError> {
        flows
            .iter()
            .find(|f| f.get("slug").and_then(Value::as_str) == Some(slug))
            .and_then(|f| f.get("pk").and_then(scalar_text))
            .ok_or_else(|| {
                let known: Vec<&str> = flows
                    .iter()
                    .filter(|f| f.get("designation").and_then(Value::as_str) == Some(designation))
                    .filter_map(|f| f.get("slug").and_then(Value::as_str))
                    .collect();
                ModuleError::msg(format!(
                    "Authentik has no flow with slug '{slug}' ({role}); its {designation} flows are: {}",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ))
            })
    };
    let authorization_flow = flow_pk(
        &wanted.authorization_flow,
        "authorization_flow",
        "authorization",
    )?;
    let invalidation_flow = flow_pk(
        &wanted.invalidation_flow,
        "invalidation_flow",
        "invalidation",
    )?;

    let mappings = client.list_all(env, SCOPE_MAPPINGS, &[]).await?;
    let mut property_mappings = Vec::new();
    for mapping in &mappings {
        if let Some(pk) = mapping.get("pk").and_then(scalar_text) {
            let label = mapping
                .get("managed")
                .and_then(Value::as_str)
                .map(|m| m.trim_start_matches(MANAGED_SCOPE_PREFIX).to_string())
                .or_else(|| {
                    mapping
                        .get("name")
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .unwrap_or_else(|| pk.clone());
            labels.add(&pk, &label);
        }
    }
    for managed in &wanted.scope_mappings {
        let pk = mappings
            .iter()
            .find(|m| m.get("managed").and_then(Value::as_str) == Some(managed))
            .and_then(|m| m.get("pk").and_then(scalar_text))
            .ok_or_else(|| {
                ModuleError::msg(format!(
                    "Authentik has no scope mapping managed as '{managed}' (Authentik {} installs \
                     openid, email, profile, entitlements, offline_access); check scopes",
                    client.version
                ))
            })?;
        property_mappings.push(pk);
    }

    let pairs = client.list_all(env, KEY_PAIRS, &[]).await?;
    for pair in &pairs {
        if let (Some(pk), Some(name)) = (
            pair.get("pk").and_then(scalar_text),
            pair.get("name").and_then(Value::as_str),
        ) {
            labels.add(&pk, name);
        }
    }
    let key = pairs
        .iter()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(wanted.signing_key.as_str()))
        .or_else(|| {
            pairs.iter().find(|p| {
                p.get("pk").and_then(scalar_text).as_deref() == Some(wanted.signing_key.as_str())
            })
        });
    let signing_key = match key {
        Some(pair) => {
            check_usable(
                pair,
                &client.features,
                "set signing_key to an RSA key pair (authentik_certificate creates one), or delete or rename \
                 this pair in Authentik (System › Certificates)",
            )?;
            pair.get("pk").and_then(scalar_text)
        }
        None if env.check_mode() => None,
        None => {
            return Err(ModuleError::msg(format!(
            "Authentik has no certificate-key pair named '{}' (signing_key): create it first with \
                 authentik_certificate",
            wanted.signing_key
        )))
        }
    };
    Ok(Resolved {
        authorization_flow,
        invalidation_flow,
        signing_key,
        property_mappings,
    })
}

#[async_trait::async_trait]
impl Module for AuthentikProviderOauth2 {
    fn name(&self) -> &'static str {
        "authentik_provider_oauth2"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let wanted = Wanted::from_args(args)?;
        let Some(mut client) = super::connect_for_plan(env, args).await? else {
            return Ok(super::unreachable_in_check());
        };
        let mut labels = Labels::default();
        let resolved = resolve(&mut client, env, &wanted, &mut labels).await?;
        let desired = desired_body(&wanted, &resolved, &client.features);
        let existing = client.find_by(env, PROVIDERS, "name", &wanted.name).await?;
        let header = format!("OAuth2 provider {}", wanted.name);
        let Some(current) = existing else {
            let mut result = base_result(&client);
            result.insert("name".into(), json!(wanted.name));
            if let Some(id) = &wanted.client_id {
                result.insert("client_id".into(), json!(id));
            }
            let mut secrets = vec![];
            if let Some(secret) = &wanted.client_secret {
                secrets.push(secret.as_str());
            }
            result.insert(SECRETS_KEY.into(), client.secrets(&secrets));
            let diff = json_diff(&header, None, &diff_view(&desired, &labels, false));
            return Ok(Plan {
                changed: true,
                diffs: vec![diff],
                result,
                skip_in_check: None,
                data: Pending {
                    client,
                    work: Work::Create(desired),
                }
                .into_plan_data(),
            });
        };
        let changed = changed_fields(&desired, &current);
        let mut result = provider_result(&current, &client);
        if changed.is_empty() {
            return Ok(Plan::unchanged(result));
        }
        if let Some(secret) = &wanted.client_secret {
            if let Some(Value::Array(secrets)) = result.get_mut(SECRETS_KEY) {
                secrets.push(json!(secret));
            }
        }
        let before = patch_body(&current_fields(&desired, &current), &changed);
        let after = patch_body(&desired, &changed);
        let secret_changes = changed.iter().any(|f| f == "client_secret");
        let diff = json_diff(
            &header,
            Some(&diff_view(&before, &labels, false)),
            &diff_view(&after, &labels, secret_changes),
        );
        let pk = current
            .get("pk")
            .and_then(scalar_text)
            .ok_or_else(|| ModuleError::msg("Authentik listed a provider without pk"))?;
        result.insert("changed_fields".into(), json!(changed));
        Ok(Plan {
            changed: true,
            diffs: vec![diff],
            result,
            skip_in_check: None,
            data: Pending {
                client,
                work: Work::Patch { pk, body: after },
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
        let Pending { mut client, work } = Pending::<Work>::from_plan(&mut plan)?;
        let (saved, changed_fields) = match work {
            Work::Create(body) => {
                let reply = client
                    .call(env, Method::POST, PROVIDERS, Some(&Value::Object(body)))
                    .await?;
                (reply.body, None)
            }
            Work::Patch { pk, body } => {
                let fields: Vec<String> = body.keys().cloned().collect();
                let reply = client
                    .call(
                        env,
                        Method::PATCH,
                        &format!("{PROVIDERS}{pk}/"),
                        Some(&Value::Object(body)),
                    )
                    .await?;
                (reply.body, Some(fields))
            }
        };
        let mut result = provider_result(&saved, &client);
        if let Some(fields) = changed_fields {
            result.insert("changed_fields".into(), json!(fields));
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::authentik::version::AuthentikVersion;
    use crate::modules::testenv::args;

    fn features(version: &str) -> Features {
        Features::for_version(&AuthentikVersion::parse(version).unwrap()).unwrap()
    }

    fn wanted(extra: Value) -> Wanted {
        let mut base = json!({
            "name": "proxmox",
            "redirect_uris": ["https://pve1.example.com:8006", "https://pve2.example.com:8006"],
            "signing_key": "proxmox-oidc",
        });
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        Wanted::from_args(&args("authentik_provider_oauth2", base)).unwrap()
    }

    fn resolved() -> Resolved {
        Resolved {
            authorization_flow: "flow-authz".into(),
            invalidation_flow: "flow-inval".into(),
            signing_key: Some("kp-rsa".into()),
            property_mappings: vec!["pm-openid".into(), "pm-email".into(), "pm-profile".into()],
        }
    }

    /// A provider as the fake (and authentik) returns it, already matching `wanted({})`.
    fn current(version_2026_5: bool) -> Value {
        let entry = |url: &str| {
            if version_2026_5 {
                json!({"matching_mode": "strict", "url": url, "redirect_uri_type": "authorization"})
            } else {
                json!({"matching_mode": "strict", "url": url})
            }
        };
        json!({
            "pk": 1, "name": "proxmox", "authentication_flow": null,
            "authorization_flow": "flow-authz", "invalidation_flow": "flow-inval",
            "property_mappings": ["pm-profile", "pm-openid", "pm-email"],
            "client_type": "confidential", "client_id": "generated-id", "client_secret": "generated-secret",
            "access_code_validity": "minutes=1", "access_token_validity": "hours=1",
            "include_claims_in_id_token": true, "signing_key": "kp-rsa", "encryption_key": null,
            "redirect_uris": [entry("https://pve2.example.com:8006"), entry("https://pve1.example.com:8006")],
            "sub_mode": "hashed_user_id", "issuer_mode": "per_provider",
            "assigned_application_slug": "proxmox"
        })
    }

    #[test]
    fn defaults_follow_the_reference() {
        let w = wanted(json!({}));
        assert_eq!(w.authorization_flow, DEFAULT_AUTHORIZATION_FLOW);
        assert_eq!(w.invalidation_flow, DEFAULT_INVALIDATION_FLOW);
        assert_eq!(w.client_type, "confidential");
        assert_eq!(
            w.scope_mappings,
            vec![
                "goauthentik.io/providers/oauth2/scope-openid",
                "goauthentik.io/providers/oauth2/scope-email",
                "goauthentik.io/providers/oauth2/scope-profile"
            ]
        );
        assert_eq!(w.redirect_uris[0].matching_mode, "strict");
        let grouped = wanted(json!({"group_mapping": true}));
        assert_eq!(
            grouped.scope_mappings.last().map(String::as_str),
            Some("goauthentik.io/providers/oauth2/scope-entitlements")
        );
    }

    #[test]
    fn redirect_uris_accept_urls_and_entries_but_not_nothing() {
        let uris = redirect_uris_arg(Some(&json!([
            "https://a:8006",
            {"url": "https://b:8006", "matching_mode": "regex"},
            "https://a:8006"
        ])))
        .unwrap();
        assert_eq!(uris.len(), 2);
        assert_eq!(uris[1].matching_mode, "regex");
        assert!(redirect_uris_arg(Some(&json!([]))).is_err());
        assert!(redirect_uris_arg(None).is_err());
        assert!(redirect_uris_arg(Some(&json!([{"url": "x", "matching_mode": "glob"}]))).is_err());
    }

    #[test]
    fn body_shape_follows_the_release() {
        let old = desired_body(&wanted(json!({})), &resolved(), &features("2024.12.3"));
        assert_eq!(
            old["redirect_uris"][0],
            json!({"matching_mode": "strict", "url": "https://pve1.example.com:8006"})
        );
        assert_eq!(old["encryption_key"], Value::Null);
        assert!(!old.contains_key("client_id") && !old.contains_key("client_secret"));
        let new = desired_body(&wanted(json!({})), &resolved(), &features("2026.5.6"));
        assert_eq!(
            new["redirect_uris"][1]["redirect_uri_type"],
            "authorization"
        );
    }

    #[test]
    fn a_matching_provider_needs_no_change_in_either_release() {
        for (version, is_2026_5) in [("2024.12.3", false), ("2026.5.6", true)] {
            let desired = desired_body(&wanted(json!({})), &resolved(), &features(version));
            assert_eq!(
                changed_fields(&desired, &current(is_2026_5)),
                Vec::<String>::new(),
                "{version}"
            );
        }
    }

    #[test]
    fn only_differing_fields_are_patched() {
        let desired = desired_body(
            &wanted(json!({"sub_mode": "user_email", "client_id": "proxmox"})),
            &resolved(),
            &features("2026.5.6"),
        );
        let mut current = current(true);
        current["redirect_uris"].as_array_mut().unwrap().remove(0);
        current["encryption_key"] = json!("kp-ec");
        let changed = changed_fields(&desired, &current);
        assert_eq!(
            changed,
            vec!["client_id", "redirect_uris", "encryption_key", "sub_mode"]
        );
        let patch = patch_body(&desired, &changed);
        assert_eq!(patch.len(), 4);
        assert_eq!(patch["encryption_key"], Value::Null);
        assert_eq!(patch["redirect_uris"].as_array().unwrap().len(), 2);
        assert!(!patch.contains_key("name") && !patch.contains_key("property_mappings"));
    }

    #[test]
    fn a_given_client_secret_is_compared_but_never_shown() {
        let desired = desired_body(
            &wanted(json!({"client_secret": "new-secret-value"})),
            &resolved(),
            &features("2025.10.4"),
        );
        let changed = changed_fields(&desired, &current(false));
        assert_eq!(changed, vec!["client_secret"]);
        let mut labels = Labels::default();
        labels.add(
            "flow-authz",
            "default-provider-authorization-implicit-consent",
        );
        let before = diff_view(
            &patch_body(&current_fields(&desired, &current(false)), &changed),
            &labels,
            false,
        );
        let after = diff_view(&patch_body(&desired, &changed), &labels, true);
        let text = format!("{before}{after}");
        assert!(
            !text.contains("new-secret-value") && !text.contains("generated-secret"),
            "{text}"
        );
        assert_eq!(after["client_secret"], "******** (changed)");
    }

    #[test]
    fn diffs_show_names_instead_of_pks() {
        let mut labels = Labels::default();
        labels.add(
            "flow-authz",
            "default-provider-authorization-implicit-consent",
        );
        labels.add("kp-rsa", "proxmox-oidc");
        labels.add("pm-openid", "openid");
        let desired = desired_body(&wanted(json!({})), &resolved(), &features("2026.5.6"));
        let view = diff_view(&desired, &labels, false);
        assert_eq!(
            view["authorization_flow"],
            "default-provider-authorization-implicit-consent"
        );
        assert_eq!(view["signing_key"], "proxmox-oidc");
        assert!(view["property_mappings"]
            .as_array()
            .unwrap()
            .contains(&json!("openid")));
        assert_eq!(view["redirect_uris"][0], "https://pve1.example.com:8006");
    }

    #[test]
    fn a_signing_key_still_to_be_created_counts_as_a_change() {
        let mut pending = resolved();
        pending.signing_key = None;
        let desired = desired_body(&wanted(json!({})), &pending, &features("2026.5.6"));
        assert_eq!(
            changed_fields(&desired, &current(true)),
            vec!["signing_key"]
        );
    }

    #[test]
    fn issuer_urls_keep_their_trailing_slash() {
        assert_eq!(
            issuer_url("auth.example.com", "proxmox", "per_provider"),
            "https://auth.example.com/application/o/proxmox/"
        );
        assert_eq!(
            issuer_url("auth.example.com:9443", "x", "global"),
            "https://auth.example.com:9443/"
        );
    }
}
