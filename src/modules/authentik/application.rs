//! `authentik_application`: ensures an application by slug (reference §8): name, provider (by
//! name or pk), group, policy engine mode, launch URL, open in new tab, description, publisher.
//! Only differing fields are PATCHed. Returns the OIDC `issuer_url`
//! (`https://<authentik host>/application/o/<slug>/`, trailing slash included, as Proxmox compares it
//! exactly) and the discovery URL, when the public Authentik host is known (`authentik_host` or
//! `authentik_url`).

use hyper::Method;
use serde_json::{json, Map, Value};

use super::api::Client;
use super::provider::{issuer_url, PROVIDERS};
use super::{
    authentik_spec, base_result, changed_fields, field_changes, json_diff, scalar_text, Pending,
};
use crate::modules::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv, SECRETS_KEY};

pub struct AuthentikApplication;

static SPEC: ArgSpec = authentik_spec!(
    Arg::req("slug"),
    Arg::req("name"),
    Arg::opt("provider"),
    Arg::opt("group"),
    Arg::opt("policy_engine_mode").choices(&["all", "any"]),
    Arg::opt("meta_launch_url").aliases(&["launch_url"]),
    Arg::opt("open_in_new_tab"),
    Arg::opt("meta_description").aliases(&["description"]),
    Arg::opt("meta_publisher").aliases(&["publisher"]),
);

const APPLICATIONS: &str = "/api/v3/core/applications/";

#[derive(Clone, Debug, PartialEq)]
pub struct Wanted {
    pub slug: String,
    pub name: String,
    pub provider: Option<String>,
    /// Optional string fields and booleans that were given, as the API names them.
    pub fields: Map<String, Value>,
}

impl Wanted {
    pub fn from_args(args: &Args) -> Result<Wanted, ModuleError> {
        let slug = args.req_str("slug")?;
        if slug.is_empty()
            || !slug
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ModuleError::msg(format!(
                "slug {slug:?} may only hold letters, digits, '-' and '_' (Authentik's slug rule)"
            )));
        }
        let mut fields = Map::new();
        for field in [
            "group",
            "meta_launch_url",
            "meta_description",
            "meta_publisher",
        ] {
            if let Some(v) = args.str(field)? {
                fields.insert(field.into(), json!(v));
            }
        }
        if args.has("policy_engine_mode") {
            fields.insert(
                "policy_engine_mode".into(),
                json!(args.choice("policy_engine_mode", &["all", "any"], "any")?),
            );
        }
        if args.has("open_in_new_tab") {
            fields.insert(
                "open_in_new_tab".into(),
                json!(args.bool("open_in_new_tab", false)?),
            );
        }
        Ok(Wanted {
            slug,
            name: args.req_str("name")?,
            provider: args.str("provider")?.filter(|p| !p.is_empty()),
            fields,
        })
    }
}

/// The provider the application points to.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderRef {
    /// None in check mode when the provider does not exist yet.
    pub pk: Option<i64>,
    pub name: String,
    pub issuer_mode: String,
}

/// The managed fields as the API takes them.
pub fn desired_body(wanted: &Wanted, provider: Option<&ProviderRef>) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("name".into(), json!(wanted.name));
    body.insert("slug".into(), json!(wanted.slug));
    if let Some(p) = provider {
        body.insert(
            "provider".into(),
            p.pk.map_or(json!(format!("(to be created: {})", p.name)), |pk| {
                json!(pk)
            }),
        );
    }
    body.extend(wanted.fields.clone());
    body
}

fn view(fields: &Map<String, Value>, provider_names: &[(String, String)]) -> Value {
    let mut shown = fields.clone();
    if let Some(p) = shown.get_mut("provider") {
        if let Some(text) = scalar_text(p) {
            if let Some((_, name)) = provider_names.iter().find(|(pk, _)| *pk == text) {
                *p = json!(name);
            }
        }
    }
    Value::Object(shown)
}

fn app_result(app: &Value, provider: Option<&ProviderRef>, client: &Client) -> Map<String, Value> {
    let mut result = base_result(client);
    for key in [
        "pk",
        "slug",
        "name",
        "provider",
        "launch_url",
        "meta_launch_url",
        "group",
    ] {
        result.insert(key.into(), app.get(key).cloned().unwrap_or(Value::Null));
    }
    if let Some(p) = provider {
        result.insert("provider_name".into(), json!(p.name));
    }
    let has_provider = app.get("provider").is_some_and(|p| !p.is_null()) || provider.is_some();
    if let (Some(host), Some(slug), true) = (
        client.public_host(),
        app.get("slug").and_then(Value::as_str),
        has_provider,
    ) {
        let mode = provider.map_or("per_provider", |p| p.issuer_mode.as_str());
        let issuer = issuer_url(host, slug, mode);
        result.insert(
            "discovery_url".into(),
            json!(format!(
                "https://{host}/application/o/{slug}/.well-known/openid-configuration"
            )),
        );
        result.insert("issuer_url".into(), json!(issuer));
    }
    result.insert(SECRETS_KEY.into(), client.secrets(&[]));
    result
}

enum Work {
    Create(Map<String, Value>),
    Patch(Map<String, Value>),
}

async fn resolve_provider(
    client: &mut Client,
    env: &dyn TaskEnv,
    wanted: &str,
) -> Result<ProviderRef, ModuleError> {
    let mut found = client.find_by(env, PROVIDERS, "name", wanted).await?;
    if found.is_none() && wanted.bytes().all(|b| b.is_ascii_digit()) {
        found = client
            .get_optional(env, &format!("{PROVIDERS}{wanted}/"))
            .await?;
    }
    match found {
        Some(p) => Ok(ProviderRef {
            pk: p.get("pk").and_then(Value::as_i64),
            name: p
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(wanted)
                .to_string(),
            issuer_mode: p
                .get("issuer_mode")
                .and_then(Value::as_str)
                .unwrap_or("per_provider")
                .to_string(),
        }),
        None if env.check_mode() => Ok(ProviderRef {
            pk: None,
            name: wanted.to_string(),
            issuer_mode: "per_provider".into(),
        }),
        None => Err(ModuleError::msg(format!(
            "Authentik has no OAuth2 provider named '{wanted}' (provider): create it first with \
             authentik_provider_oauth2"
        ))),
    }
}

#[async_trait::async_trait]
impl Module for AuthentikApplication {
    fn name(&self) -> &'static str {
        "authentik_application"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let wanted = Wanted::from_args(args)?;
        let Some(mut client) = super::connect_for_plan(env, args).await? else {
            return Ok(super::unreachable_in_check());
        };
        let provider = match &wanted.provider {
            Some(p) => Some(resolve_provider(&mut client, env, p).await?),
            None => None,
        };
        let mut names: Vec<(String, String)> = Vec::new();
        if let Some(ProviderRef {
            pk: Some(pk), name, ..
        }) = &provider
        {
            names.push((pk.to_string(), name.clone()));
        }
        let desired = desired_body(&wanted, provider.as_ref());
        let header = format!("application {}", wanted.slug);
        let current = client
            .get_optional(env, &format!("{APPLICATIONS}{}/", wanted.slug))
            .await?;
        let Some(current) = current else {
            let mut result = base_result(&client);
            result.insert("slug".into(), json!(wanted.slug));
            result.insert("name".into(), json!(wanted.name));
            if let (Some(host), Some(p)) = (client.public_host(), &provider) {
                result.insert(
                    "issuer_url".into(),
                    json!(issuer_url(host, &wanted.slug, &p.issuer_mode)),
                );
            }
            result.insert(SECRETS_KEY.into(), client.secrets(&[]));
            return Ok(Plan {
                changed: true,
                diffs: vec![json_diff(&header, None, &view(&desired, &names))],
                result,
                skip_in_check: None,
                data: Pending {
                    client,
                    work: Work::Create(desired),
                }
                .into_plan_data(),
            });
        };
        // The current provider's name, for the diff.
        if let Some(obj) = current.get("provider_obj") {
            if let (Some(pk), Some(name)) = (
                obj.get("pk").and_then(scalar_text),
                obj.get("name").and_then(Value::as_str),
            ) {
                names.push((pk, name.to_string()));
            }
        }
        let changed = changed_fields(&desired, &current);
        let mut result = app_result(&current, provider.as_ref(), &client);
        if changed.is_empty() {
            return Ok(Plan::unchanged(result));
        }
        let (before, after) = field_changes(&changed, &current, &desired);
        result.insert("changed_fields".into(), json!(changed));
        Ok(Plan {
            changed: true,
            diffs: vec![json_diff(
                &header,
                Some(&view(&before, &names)),
                &view(&after, &names),
            )],
            result,
            skip_in_check: None,
            data: Pending {
                client,
                work: Work::Patch(after),
            }
            .into_plan_data(),
        })
    }

    async fn apply(
        &self,
        env: &dyn TaskEnv,
        args: &Args,
        mut plan: Plan,
    ) -> Result<Map<String, Value>, ModuleError> {
        let Pending { mut client, work } = Pending::<Work>::from_plan(&mut plan)?;
        let wanted = Wanted::from_args(args)?;
        let provider = match &wanted.provider {
            Some(p) => Some(resolve_provider(&mut client, env, p).await?),
            None => None,
        };
        let (saved, fields) = match work {
            Work::Create(body) => {
                let reply = client
                    .call(env, Method::POST, APPLICATIONS, Some(&Value::Object(body)))
                    .await?;
                (reply.body, None)
            }
            Work::Patch(body) => {
                let fields: Vec<String> = body.keys().cloned().collect();
                let reply = client
                    .call(
                        env,
                        Method::PATCH,
                        &format!("{APPLICATIONS}{}/", wanted.slug),
                        Some(&Value::Object(body)),
                    )
                    .await?;
                (reply.body, Some(fields))
            }
        };
        let mut result = app_result(&saved, provider.as_ref(), &client);
        if let Some(fields) = fields {
            result.insert("changed_fields".into(), json!(fields));
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testenv::args;

    fn wanted(extra: Value) -> Wanted {
        let mut base = json!({"slug": "proxmox", "name": "Proxmox VE", "provider": "proxmox"});
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        Wanted::from_args(&args("authentik_application", base)).unwrap()
    }

    fn provider() -> ProviderRef {
        ProviderRef {
            pk: Some(3),
            name: "proxmox".into(),
            issuer_mode: "per_provider".into(),
        }
    }

    #[test]
    fn only_given_fields_are_managed() {
        let body = desired_body(&wanted(json!({})), Some(&provider()));
        assert_eq!(
            body.keys().collect::<Vec<_>>(),
            vec!["name", "slug", "provider"]
        );
        assert_eq!(body["provider"], 3);
        let more = desired_body(
            &wanted(
                json!({"meta_launch_url": "https://pve1:8006", "open_in_new_tab": "yes",
                           "policy_engine_mode": "all", "group": "Infra"}),
            ),
            Some(&provider()),
        );
        assert_eq!(more["meta_launch_url"], "https://pve1:8006");
        assert_eq!(more["open_in_new_tab"], true);
        assert_eq!(more["policy_engine_mode"], "all");
    }

    #[test]
    fn bad_slugs_are_refused_before_any_request() {
        let bad = Wanted::from_args(&args(
            "authentik_application",
            json!({"slug": "prox mox", "name": "x"}),
        ));
        assert!(bad.is_err());
    }

    #[test]
    fn differences_are_found_per_field() {
        let desired = desired_body(
            &wanted(json!({"meta_launch_url": "https://pve1:8006", "open_in_new_tab": true})),
            Some(&provider()),
        );
        let current = json!({"pk": "uuid", "slug": "proxmox", "name": "Proxmox VE", "provider": 3,
                             "meta_launch_url": "https://old:8006", "open_in_new_tab": true,
                             "group": "", "policy_engine_mode": "any"});
        assert_eq!(changed_fields(&desired, &current), vec!["meta_launch_url"]);
        let detached = json!({"slug": "proxmox", "name": "Proxmox VE", "provider": null,
                              "meta_launch_url": "https://pve1:8006", "open_in_new_tab": true});
        assert_eq!(changed_fields(&desired, &detached), vec!["provider"]);
        let pending = ProviderRef {
            pk: None,
            ..provider()
        };
        let body = desired_body(&wanted(json!({})), Some(&pending));
        assert_eq!(changed_fields(&body, &current), vec!["provider"]);
    }

    #[test]
    fn the_provider_is_shown_by_name_in_diffs() {
        let body = desired_body(&wanted(json!({})), Some(&provider()));
        let shown = view(&body, &[("3".into(), "proxmox".into())]);
        assert_eq!(shown["provider"], "proxmox");
    }
}
