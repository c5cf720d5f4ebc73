//! Authentik API modules, run on the controller against the Authentik host's API (through the
//! host's SSH session by default): `authentik_certificate`, `authentik_provider_oauth2`,
//! `authentik_application`, `authentik_brand`. Facts: /work/shared/reference/authentik-api.md.
#![allow(dead_code)]

pub mod api;
pub mod application;
pub mod brand;
pub mod certificate;
pub mod given_pair;
pub mod provider;
pub mod version;

use std::sync::Mutex;

use serde_json::{Map, Value};

use super::{Diff, ModuleError, Plan};
use api::Client;

pub use application::AuthentikApplication;
pub use brand::AuthentikBrand;
pub use certificate::AuthentikCertificate;
pub use provider::AuthentikProviderOauth2;

/// An `ArgSpec` with the module's own arguments followed by the connection arguments.
macro_rules! authentik_spec {
    ($($arg:expr),* $(,)?) => {
        $crate::modules::ArgSpec {
            args: &[
                $($arg,)*
                $crate::modules::Arg::opt("authentik_url"),
                $crate::modules::Arg::opt("authentik_host"),
                $crate::modules::Arg::opt("api_host"),
                $crate::modules::Arg::opt("api_port"),
                $crate::modules::Arg::opt("token"),
                $crate::modules::Arg::opt("env_file_path"),
                $crate::modules::Arg::opt("token_key"),
                $crate::modules::Arg::opt("validate_certs"),
                $crate::modules::Arg::opt("ca_path"),
                $crate::modules::Arg::opt("timeout"),
            ],
            free_form: None,
            any_keys: false,
        }
    };
}
pub(crate) use authentik_spec;

/// Shown instead of a secret value in diffs.
pub const MASKED: &str = "********";

/// What `plan` hands to `apply`: the open client and the module's planned work.
pub struct Pending<T> {
    pub client: Client,
    pub work: T,
}

impl<T: Send + 'static> Pending<T> {
    pub fn into_plan_data(self) -> Option<Box<dyn std::any::Any + Send + Sync>> {
        Some(Box::new(Mutex::new(Some(self))))
    }

    pub fn from_plan(plan: &mut Plan) -> Result<Pending<T>, ModuleError> {
        plan.data
            .take()
            .and_then(|data| data.downcast::<Mutex<Option<Pending<T>>>>().ok())
            .and_then(|cell| cell.into_inner().ok().flatten())
            .ok_or_else(|| ModuleError::msg("internal error: the plan lost its data"))
    }
}

/// A before/after diff of two JSON views (empty text for an object that does not exist).
pub fn json_diff(name: &str, before: Option<&Value>, after: &Value) -> Diff {
    let render = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    Diff {
        before_header: format!("{name} (Authentik)"),
        after_header: format!("{name} (Authentik)"),
        before: before.map(render).unwrap_or_default(),
        after: render(after),
    }
}

/// The explanation for a key pair that Proxmox VE cannot use to verify ID tokens.
pub fn not_rsa_message(pair_name: &str, key_type: &str, fix: &str) -> String {
    let (kind, alg) = match key_type {
        "ec" => ("ECDSA", "ES256/ES384"),
        "ed25519" | "ed448" => ("EdDSA", "EdDSA"),
        "dsa" => ("DSA", "non-RS256"),
        _ => (key_type, "non-RS256"),
    };
    format!(
        "Authentik key pair '{pair_name}' is {kind} ({key_type}), not RSA. A provider signing with it issues \
         {alg}-signed ID tokens, and Proxmox VE (proxmox-openid with openidconnect 2.x, PVE 7 and 8) verifies \
         RS256 only: every OpenID login would fail with HTTP 401 \"authentication failure\" (the node's syslog \
         says \"openid authentication failure ... Failed to verify ID token\"). Fix: {fix}"
    )
}

/// Result keys common to a found or created Authentik object.
pub fn base_result(client: &Client) -> Map<String, Value> {
    let mut result = Map::new();
    client.version_keys(&mut result);
    result
}

/// A value as a string key for comparisons ("12" for 12).
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Connects to the API for a plan. In check mode an API that cannot be reached (Authentik not
/// started yet on a fresh host, because the tasks that start it did not run) makes the task
/// skipped, not failed: there is nothing to compare until it runs. `None` means "skip".
pub async fn connect_for_plan(
    env: &dyn crate::modules::TaskEnv,
    args: &crate::modules::Args,
) -> Result<Option<api::Client>, crate::modules::ModuleError> {
    // In check mode on a fresh host the token is not generated yet either.
    let no_token = args.str("token")?.is_some_and(|t| t.is_empty());
    match api::Client::connect(env, args).await {
        Ok(client) => Ok(Some(client)),
        Err(crate::modules::ModuleError::Failed { msg, .. })
            if env.check_mode()
                && (no_token
                    || msg.starts_with("cannot reach Authentik")
                    || msg.starts_with("cannot connect to Authentik")) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The plan of an Authentik task whose API is not reachable in check mode.
pub fn unreachable_in_check() -> crate::modules::Plan {
    crate::modules::Plan {
        changed: true,
        skip_in_check: Some(
            "Authentik's API is not reachable yet (it is started by earlier tasks that check mode does not run); \
             this object would be checked or created then"
                .into(),
        ),
        ..crate::modules::Plan::default()
    }
}

/// The fields of `desired` whose value in `current` differs (ids compared as text: the API
/// answers numbers where a PATCH may send strings).
pub fn changed_fields(desired: &Map<String, Value>, current: &Value) -> Vec<String> {
    let norm = |v: Option<&Value>| match v {
        Some(Value::Number(n)) => Value::String(n.to_string()),
        Some(Value::Null) | None => Value::Null,
        Some(other) => other.clone(),
    };
    desired
        .iter()
        .filter(|(f, want)| norm(Some(want)) != norm(current.get(f.as_str())))
        .map(|(f, _)| f.clone())
        .collect()
}

/// The `changed` fields as they are in `current` and as they will be (`desired`), for a diff and
/// a PATCH body.
pub fn field_changes(
    changed: &[String],
    current: &Value,
    desired: &Map<String, Value>,
) -> (Map<String, Value>, Map<String, Value>) {
    let before = changed
        .iter()
        .map(|f| {
            (
                f.clone(),
                current.get(f.as_str()).cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    let after = changed
        .iter()
        .filter_map(|f| desired.get(f).map(|v| (f.clone(), v.clone())))
        .collect();
    (before, after)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn unreachable_api_is_skipped_in_check_mode_only() {
        use crate::modules::testenv::{args, LocalEnv};
        let a = args(
            "authentik_certificate",
            serde_json::json!({"name": "x", "token": "t0ken"}),
        );
        let mut env = LocalEnv::new();
        env.check = true;
        assert!(super::connect_for_plan(&env, &a)
            .await
            .expect("skipped, not failed")
            .is_none());
        env.check = false;
        match super::connect_for_plan(&env, &a).await {
            Err(crate::modules::ModuleError::Failed { msg, .. }) => {
                assert!(msg.starts_with("cannot reach Authentik"), "{msg}")
            }
            other => panic!("expected a failure, got {:?}", other.map(|c| c.is_some())),
        }
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn not_rsa_message_names_the_401_and_the_fix() {
        let msg = not_rsa_message("pve", "ec", "rename it");
        assert!(msg.contains("'pve' is ECDSA"), "{msg}");
        assert!(msg.contains("401") && msg.contains("RS256") && msg.ends_with("rename it"));
    }

    #[test]
    fn every_module_accepts_the_connection_arguments() {
        use crate::modules::Module;
        let modules: [&dyn Module; 4] = [
            &AuthentikCertificate,
            &AuthentikProviderOauth2,
            &AuthentikApplication,
            &AuthentikBrand,
        ];
        for module in modules {
            let names: Vec<&str> = module.spec().args.iter().map(|a| a.name).collect();
            for arg in api::CONNECTION_ARGS {
                assert!(
                    names.contains(&arg.name),
                    "{} lacks {}",
                    module.name(),
                    arg.name
                );
            }
            assert!(crate::modules::registry::find(module.name()).is_some());
        }
    }

    #[test]
    fn diffs_show_absent_objects_as_empty() {
        let d = json_diff("provider proxmox", None, &json!({"name": "proxmox"}));
        assert_eq!(d.before, "");
        assert!(d.after.contains("\"name\": \"proxmox\""));
    }
}
