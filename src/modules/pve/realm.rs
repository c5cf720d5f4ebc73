//! `pve_realm`: an OpenID Connect authentication realm in `/etc/pve/domains.cfg`.
//!
//! Plan (one round trip): the node probe plus `pvesh get /access/domains/<realm>`, which returns
//! only the keys stored in the file, booleans as numbers and the client key in clear (reference
//! §2.4). Defaults are filled in before comparing (scopes `email profile`, query-userinfo 1,
//! username-claim `sub`, ...), then only the keys that differ are sent: `pveum realm add`, or
//! `pveum realm modify` with `--delete` for keys to unset and `--digest` so that a concurrent edit
//! fails instead of being overwritten. Arguments left out are not managed.
//!
//! The client key never appears in a script text or in orch's output. pveum has no stdin or file
//! variant for it (only passwords have a `param_mapping`, reference §7), so on a real node the
//! apply script runs pveum's own CLI handler in-process — `perl -e 'use PVE::CLI::pveum; ...
//! PVE::CLI::pveum->run_cli_handler()'` — with the key read from stdin and appended to `@ARGV`
//! inside Perl, so it is in no process's argv. Where that module cannot be loaded (not a real
//! PVE install), the key goes on pveum's command line from a shell variable read from stdin, and
//! the result carries a warning saying so.

use serde_json::{json, Map, Value};

use super::super::filecommon::{Records, SHELL_LIB};
use super::super::remote::quote;
use super::super::{Arg, ArgSpec, Args, Diff, Module, ModuleError, Plan, TaskEnv, SECRETS_KEY};
use super::{
    command_line, json_text, list_arg, parse_pve_bool, script_prologue, split_list, CmdOutput,
    NodeInfo, PVE_LIB,
};

pub struct PveRealm;

static SPEC: ArgSpec = ArgSpec {
    args: &[
        Arg::req("name").aliases(&["realm"]),
        Arg::opt("type").choices(&["openid"]),
        Arg::opt("issuer_url"),
        Arg::opt("client_id"),
        Arg::opt("client_key"),
        Arg::opt("username_claim"),
        Arg::opt("autocreate"),
        Arg::opt("default"),
        Arg::opt("comment"),
        Arg::opt("scopes"),
        Arg::opt("prompt"),
        Arg::opt("acr_values"),
        Arg::opt("groups_claim"),
        Arg::opt("groups_autocreate"),
        Arg::opt("groups_overwrite"),
        Arg::opt("query_userinfo"),
        Arg::opt("audiences"),
        Arg::opt("recreate"),
        Arg::opt("state").choices(&["present", "absent"]),
    ],
    free_form: None,
    any_keys: false,
};

/// How a realm key is compared and written.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Text,
    /// A boolean with the value PVE assumes when the key is absent.
    Flag(bool),
    /// `scopes`: a set; absent means `email profile`, and `openid` is always added by PVE.
    Scopes,
    /// A comma-joined list whose order matters (`acr-values`: order of preference).
    OrderedList,
    /// A comma-joined list compared as a set (`audiences`).
    SetList,
}

/// The first libpve-access-control that has a key, and the Proxmox VE release that shipped it.
#[derive(Clone, Copy, Debug)]
struct Since {
    version: &'static str,
    release: &'static str,
}

struct KeySpec {
    key: &'static str,
    arg: &'static str,
    kind: Kind,
    since: Option<Since>,
    max_len: usize,
}

const fn key(key: &'static str, arg: &'static str, kind: Kind, max_len: usize) -> KeySpec {
    KeySpec {
        key,
        arg,
        kind,
        since: None,
        max_len,
    }
}

const fn since(mut spec: KeySpec, version: &'static str, release: &'static str) -> KeySpec {
    spec.since = Some(Since { version, release });
    spec
}

/// The openid realm keys pve_realm manages besides `username-claim` (reference §1 and its
/// version table; `groups-claim` only works from 8.2.2: 8.2.1 shipped a broken pattern, §10.7).
const KEYS: &[KeySpec] = &[
    key("issuer-url", "issuer_url", Kind::Text, 256),
    key("client-id", "client_id", Kind::Text, 256),
    key("client-key", "client_key", Kind::Text, 256),
    key("comment", "comment", Kind::Text, 4096),
    key("autocreate", "autocreate", Kind::Flag(false), 0),
    key("default", "default", Kind::Flag(false), 0),
    since(
        key("scopes", "scopes", Kind::Scopes, 0),
        "7.1-3",
        "Proxmox VE 7.1",
    ),
    since(
        key("prompt", "prompt", Kind::Text, 0),
        "7.1-3",
        "Proxmox VE 7.1",
    ),
    since(
        key("acr-values", "acr_values", Kind::OrderedList, 0),
        "7.1-3",
        "Proxmox VE 7.1",
    ),
    since(
        key("groups-claim", "groups_claim", Kind::Text, 256),
        "8.2.2",
        "Proxmox VE 8.4",
    ),
    since(
        key(
            "groups-autocreate",
            "groups_autocreate",
            Kind::Flag(false),
            0,
        ),
        "8.2.1",
        "Proxmox VE 8.4",
    ),
    since(
        key("groups-overwrite", "groups_overwrite", Kind::Flag(false), 0),
        "8.2.1",
        "Proxmox VE 8.4",
    ),
    since(
        key("query-userinfo", "query_userinfo", Kind::Flag(true), 0),
        "8.2.1",
        "Proxmox VE 8.4",
    ),
    since(
        key("audiences", "audiences", Kind::SetList, 0),
        "9.1.1",
        "Proxmox VE 9.2",
    ),
];

const USERNAME_CLAIM: &str = "username-claim";
/// Before 7.1-3 username-claim was an enum (reference §1).
const ARBITRARY_CLAIMS_SINCE: &str = "7.1-3";
const MASK: &str = "********";

/// A realm's keys as stored in domains.cfg (values as text, booleans `0`/`1`).
type RealmConfig = Map<String, Value>;

/// What `args` say the realm should look like.
#[derive(Clone, Debug, Default)]
struct Desired {
    /// domains.cfg key → value to store (None: the key must be absent).
    keys: Vec<(&'static str, Option<String>)>,
    username_claim: Option<String>,
}

/// The value PVE acts on for `key` stored as `raw`, normalised for comparison.
fn effective(kind: Kind, raw: Option<&str>) -> String {
    let raw = raw.filter(|r| !r.is_empty());
    match kind {
        Kind::Text => raw.unwrap_or("").to_string(),
        Kind::Flag(default) => {
            let value = raw.and_then(parse_pve_bool).unwrap_or(default);
            if value { "1" } else { "0" }.to_string()
        }
        Kind::Scopes => {
            let mut scopes = match raw {
                Some(r) => split_list(r),
                None => vec!["email".into(), "profile".into()],
            };
            scopes.push("openid".into());
            scopes.sort();
            scopes.dedup();
            scopes.join(" ")
        }
        Kind::OrderedList => split_list(raw.unwrap_or("")).join(","),
        Kind::SetList => {
            let mut items = split_list(raw.unwrap_or(""));
            items.sort();
            items.dedup();
            items.join(",")
        }
    }
}

/// `sub` when unset; `subject` is PVE's compatibility alias of `sub` (reference §1).
fn effective_claim(raw: Option<&str>) -> String {
    match raw.map(str::trim).filter(|c| !c.is_empty()) {
        None | Some("subject") => "sub".to_string(),
        Some(claim) => claim.to_string(),
    }
}

fn stored(config: &RealmConfig, key: &str) -> Option<String> {
    config.get(key).and_then(json_text)
}

fn arg_error(arg: &str, msg: impl std::fmt::Display) -> ModuleError {
    ModuleError::msg(format!("pve_realm: {arg}: {msg}"))
}

/// Reads the arguments into domains.cfg values, validating them as PVE's schema would.
fn desired_from_args(args: &Args) -> Result<Desired, ModuleError> {
    let mut desired = Desired::default();
    for spec in KEYS {
        if !args.has(spec.arg) {
            continue;
        }
        let value: Option<String> = match spec.kind {
            Kind::Flag(default) => {
                let b = args.bool(spec.arg, default)?;
                (b != default).then(|| if b { "1" } else { "0" }.to_string())
            }
            Kind::Text => {
                let text = args.str(spec.arg)?.unwrap_or_default();
                if text.contains(['\n', '\r']) {
                    return Err(arg_error(spec.arg, "must not contain a line break"));
                }
                if spec.max_len > 0 && text.chars().count() > spec.max_len {
                    return Err(arg_error(
                        spec.arg,
                        format!("longer than {} characters", spec.max_len),
                    ));
                }
                (!text.is_empty()).then_some(text)
            }
            Kind::Scopes | Kind::OrderedList | Kind::SetList => {
                let items = list_arg(args, spec.arg)?.unwrap_or_default();
                if spec.kind != Kind::Scopes {
                    // acr-values/audiences: pattern [^\x00-\x1F\x7F <>#"]* — no spaces, so
                    // several values are joined with commas (reference §10.4).
                    if let Some(bad) = items
                        .iter()
                        .find(|i| i.chars().any(|c| c.is_control() || "<>#\"".contains(c)))
                    {
                        return Err(arg_error(
                            spec.arg,
                            format!(
                                "{bad:?} contains a character PVE refuses (control, <, >, #, \")"
                            ),
                        ));
                    }
                }
                let sep = if spec.kind == Kind::Scopes { " " } else { "," };
                (!items.is_empty()).then(|| items.join(sep))
            }
        };
        if let Some(v) = &value {
            validate_pattern(spec.key, spec.arg, v)?;
        }
        desired.keys.push((spec.key, value));
    }
    if let Some(claim) = args.str("username_claim")? {
        let claim = claim.trim().to_string();
        if !claim.is_empty() {
            if claim.chars().any(char::is_whitespace) {
                return Err(arg_error("username_claim", "must be one claim name"));
            }
            desired.username_claim = Some(claim);
        }
    }
    Ok(desired)
}

/// The per-key patterns of PVE's schema, checked here so the error names the argument.
fn validate_pattern(key: &str, arg: &str, value: &str) -> Result<(), ModuleError> {
    match key {
        // `(?:none|login|consent|select_account|\S+)`, anchored: one token.
        "prompt" if value.chars().any(char::is_whitespace) => Err(arg_error(
            arg,
            "must be one value (none, login, consent, select_account or another single token)",
        )),
        "groups-claim"
            if !value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) =>
        {
            Err(arg_error(
                arg,
                format!(
                    "{value:?} does not match [A-Za-z0-9.-_]+ (PVE looks up a top-level claim by \
                     this literal name)"
                ),
            ))
        }
        "issuer-url" if !(value.starts_with("https://") || value.starts_with("http://")) => {
            Err(arg_error(arg, format!("{value:?} is not an http(s) URL")))
        }
        _ => Ok(()),
    }
}

/// `pve-realm`: `^[A-Za-z][A-Za-z0-9.\-_]+$`, at most 32 characters; `pam` and `pve` are built in.
fn validate_realm_name(name: &str) -> Result<(), ModuleError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
        && name.len() <= 32;
    if !first_ok || !rest_ok {
        return Err(arg_error(
            "name",
            format!(
                "{name:?} is not a valid realm id (a letter, then letters, digits, '.', '-' or \
                 '_'; 2 to 32 characters)"
            ),
        ));
    }
    if name == "pam" || name == "pve" {
        return Err(arg_error(
            "name",
            format!("'{name}' is a built-in realm and cannot be an OpenID realm"),
        ));
    }
    Ok(())
}

/// Options the node's libpve-access-control lacks, when the task asks for more than the behaviour
/// without them: a clear error naming the version needed, instead of pveum's `Unknown option`.
fn check_versions(node: &NodeInfo, desired: &Desired) -> Result<(), ModuleError> {
    let mut missing = Vec::new();
    for (key, value) in &desired.keys {
        let Some(spec) = KEYS.iter().find(|s| s.key == *key) else {
            continue;
        };
        let Some(since) = spec.since else { continue };
        if node.at_least(since.version) {
            continue;
        }
        if effective(spec.kind, value.as_deref()) == effective(spec.kind, None) {
            continue; // what PVE did before the option existed: nothing to ask for
        }
        missing.push(format!(
            "{} needs libpve-access-control >= {} ({}){}",
            spec.arg,
            since.version,
            since.release,
            if spec.key == "groups-claim" && node.at_least("8.2.1") {
                " — 8.2.1 has the option but its pattern rejects every claim name"
            } else {
                ""
            }
        ));
    }
    if let Some(claim) = &desired.username_claim {
        if !node.at_least(ARBITRARY_CLAIMS_SINCE)
            && !["subject", "username", "email"].contains(&claim.as_str())
        {
            missing.push(format!(
                "username_claim '{claim}' needs libpve-access-control >= {ARBITRARY_CLAIMS_SINCE} \
                 (Proxmox VE 7.1; older ones accept only subject, username or email)"
            ));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(ModuleError::msg(format!(
        "pve_realm: this node has libpve-access-control {}: {}. Upgrade the cluster's nodes \
         (apt full-upgrade) or leave these options out",
        node.version_text(),
        missing.join("; ")
    )))
}

/// Keys the node's parser could not read (`file domains.cfg line 12 (section 'oidc') - unable to
/// parse value of 'audiences': ...`): a newer node wrote them, and this node's next write of
/// domains.cfg would silently drop them (reference §3.1). Returned as `realm.key`.
fn unreadable_keys(stderr: &str) -> Vec<String> {
    let mut keys: Vec<String> = stderr
        .lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once("(section '")?;
            let (section, rest) = rest.split_once("')")?;
            let (_, rest) = rest.split_once("unable to parse value of '")?;
            let (key, _) = rest.split_once('\'')?;
            Some(format!("{section}.{key}"))
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The write the plan chose.
#[derive(Clone, Debug, PartialEq)]
enum Action {
    None,
    Add(RealmConfig),
    Modify {
        set: Vec<(String, String)>,
        delete: Vec<String>,
        digest: Option<String>,
    },
    Recreate(RealmConfig),
    Delete,
}

/// The planned change, the realm before and after, for the diff and the result.
#[derive(Clone, Debug)]
struct RealmPlan {
    action: Action,
    before: Option<RealmConfig>,
    after: Option<RealmConfig>,
    changed_keys: Vec<String>,
}

/// Decides what to run, given the realm as `pvesh get` returned it (None: it does not exist).
fn plan_realm(
    name: &str,
    present: bool,
    recreate: bool,
    desired: &Desired,
    current: Option<&RealmConfig>,
) -> Result<RealmPlan, ModuleError> {
    let before = current.map(|c| {
        let mut c = c.clone();
        c.remove("digest");
        c
    });
    if !present {
        return Ok(RealmPlan {
            action: if before.is_some() {
                Action::Delete
            } else {
                Action::None
            },
            before,
            after: None,
            changed_keys: Vec::new(),
        });
    }
    let Some(cur) = &before else {
        let config = creation_config(name, desired, None)?;
        let changed_keys = config.keys().filter(|k| *k != "type").cloned().collect();
        return Ok(RealmPlan {
            action: Action::Add(config.clone()),
            before: None,
            after: Some(config),
            changed_keys,
        });
    };

    let cur_type = stored(cur, "type").unwrap_or_default();
    let claim_now = effective_claim(stored(cur, USERNAME_CLAIM).as_deref());
    let claim_change = desired
        .username_claim
        .as_deref()
        .filter(|want| effective_claim(Some(want)) != claim_now);
    let needs_recreate = cur_type != "openid" || claim_change.is_some();
    if needs_recreate {
        if !recreate {
            return Err(ModuleError::msg(if cur_type != "openid" {
                format!(
                    "pve_realm: realm '{name}' exists with type '{cur_type}', not openid; the type \
                     cannot be changed. Set recreate: true to delete and re-add it (users \
                     *@{name}, groups and ACLs are kept), or choose another realm name"
                )
            } else {
                format!(
                    "pve_realm: username-claim of realm '{name}' is '{claim_now}' and Proxmox VE \
                     cannot change it after creation (it is fixed; pveum realm modify refuses \
                     --username-claim). You asked for '{}'. Set recreate: true to delete and re-add \
                     the realm: existing users keep their old names (<{claim_now}>@{name}) and \
                     must be re-created for the new claim; groups and ACLs are kept",
                    claim_change.unwrap_or_default()
                )
            }));
        }
        let keep = (cur_type == "openid").then_some(cur);
        let config = creation_config(name, desired, keep)?;
        let changed_keys = changed_between(cur, &config);
        return Ok(RealmPlan {
            action: Action::Recreate(config.clone()),
            before,
            after: Some(config),
            changed_keys,
        });
    }

    let mut set = Vec::new();
    let mut delete = Vec::new();
    let mut after = cur.clone();
    for (key, want) in &desired.keys {
        let Some(spec) = KEYS.iter().find(|s| s.key == *key) else {
            continue;
        };
        let have = stored(cur, key);
        if effective(spec.kind, have.as_deref()) == effective(spec.kind, want.as_deref()) {
            continue;
        }
        match want {
            Some(v) => {
                set.push((key.to_string(), v.clone()));
                after.insert(key.to_string(), stored_value(spec.kind, v));
            }
            None => {
                delete.push(key.to_string());
                after.remove(*key);
            }
        }
    }
    if set.is_empty() && delete.is_empty() {
        return Ok(RealmPlan {
            action: Action::None,
            after: before.clone(),
            before,
            changed_keys: Vec::new(),
        });
    }
    let changed_keys = set
        .iter()
        .map(|(k, _)| k.clone())
        .chain(delete.iter().cloned())
        .collect();
    Ok(RealmPlan {
        action: Action::Modify {
            set,
            delete,
            digest: current.and_then(|c| stored(c, "digest")),
        },
        before,
        after: Some(after),
        changed_keys,
    })
}

/// Booleans read back from PVE are numbers; keep the predicted config in the same shape.
fn stored_value(kind: Kind, value: &str) -> Value {
    match kind {
        Kind::Flag(_) => json!(u8::from(parse_pve_bool(value).unwrap_or(false))),
        _ => Value::String(value.to_string()),
    }
}

/// The full key set for `pveum realm add`: what the realm had (when re-creating an openid
/// realm, so unmanaged keys survive) overlaid with the arguments.
fn creation_config(
    name: &str,
    desired: &Desired,
    keep: Option<&RealmConfig>,
) -> Result<RealmConfig, ModuleError> {
    let mut config = RealmConfig::new();
    config.insert("type".into(), "openid".into());
    if let Some(old) = keep {
        for (k, v) in old {
            if k != "digest" && k != "type" && k != USERNAME_CLAIM {
                config.insert(k.clone(), v.clone());
            }
        }
    }
    for (key, want) in &desired.keys {
        let kind = KEYS
            .iter()
            .find(|s| s.key == *key)
            .map(|s| s.kind)
            .unwrap_or(Kind::Text);
        match want {
            Some(v) => {
                config.insert(key.to_string(), stored_value(kind, v));
            }
            None => {
                config.remove(*key);
            }
        }
    }
    match &desired.username_claim {
        Some(claim) => {
            config.insert(USERNAME_CLAIM.into(), claim.clone().into());
        }
        None => {
            if let Some(old) = keep.and_then(|o| o.get(USERNAME_CLAIM)) {
                config.insert(USERNAME_CLAIM.into(), old.clone());
            }
        }
    }
    let missing: Vec<&str> = [("issuer-url", "issuer_url"), ("client-id", "client_id")]
        .iter()
        .filter(|(k, _)| !config.contains_key(*k))
        .map(|(_, arg)| *arg)
        .collect();
    if !missing.is_empty() {
        return Err(ModuleError::msg(format!(
            "pve_realm: realm '{name}' does not exist yet and {} required to create it",
            match missing.as_slice() {
                [one] => format!("{one} is"),
                _ => format!("{} are", missing.join(" and ")),
            }
        )));
    }
    Ok(config)
}

fn changed_between(before: &RealmConfig, after: &RealmConfig) -> Vec<String> {
    let mut keys: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| *k != "digest" && before.get(*k) != after.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// One pveum invocation; `secret` names the option whose value comes from stdin.
#[derive(Clone, Debug, PartialEq)]
struct PveumCall {
    argv: Vec<String>,
    secret: Option<&'static str>,
}

/// Options in a stable order: the required keys, then the others alphabetically (as pveum writes
/// them), the client key left out (it goes through stdin).
fn option_args(config: &RealmConfig, skip: &[&str]) -> (Vec<String>, bool) {
    let mut keys: Vec<&String> = config
        .keys()
        .filter(|k| !skip.contains(&k.as_str()))
        .collect();
    keys.sort_by_key(|k| {
        (
            !matches!(k.as_str(), "issuer-url" | "client-id"),
            k.to_string(),
        )
    });
    let mut argv = Vec::new();
    let mut has_secret = false;
    for k in keys {
        if k == "client-key" {
            has_secret = true;
            continue;
        }
        if let Some(v) = json_text(&config[k.as_str()]) {
            argv.push(format!("--{k}"));
            argv.push(v);
        }
    }
    (argv, has_secret)
}

/// The pveum calls that carry out `action`.
fn calls_for(name: &str, action: &Action) -> Vec<PveumCall> {
    let add = |config: &RealmConfig| {
        let mut argv = vec![
            "realm".to_string(),
            "add".into(),
            name.into(),
            "--type".into(),
            "openid".into(),
        ];
        let (options, has_secret) = option_args(config, &["type", "digest"]);
        argv.extend(options);
        PveumCall {
            argv,
            secret: has_secret.then_some("client-key"),
        }
    };
    match action {
        Action::None => Vec::new(),
        Action::Add(config) => vec![add(config)],
        Action::Recreate(config) => vec![
            PveumCall {
                argv: vec!["realm".into(), "delete".into(), name.into()],
                secret: None,
            },
            add(config),
        ],
        Action::Modify {
            set,
            delete,
            digest,
        } => {
            let mut argv = vec!["realm".to_string(), "modify".into(), name.into()];
            let mut secret = None;
            for (k, v) in set {
                if k == "client-key" {
                    secret = Some("client-key");
                } else {
                    argv.push(format!("--{k}"));
                    argv.push(v.clone());
                }
            }
            if !delete.is_empty() {
                argv.push("--delete".into());
                argv.push(delete.join(","));
            }
            if let Some(d) = digest {
                argv.push("--digest".into());
                argv.push(d.clone());
            }
            vec![PveumCall { argv, secret }]
        }
        Action::Delete => vec![PveumCall {
            argv: vec!["realm".into(), "delete".into(), name.into()],
            secret: None,
        }],
    }
}

/// How the apply script passes the client key: in-process through PVE's own CLI handler when
/// possible, otherwise on pveum's command line from a variable read from stdin.
const SECRET_LIB: &str = r#"ORCH_PVE_SECRET=
IFS= read -r ORCH_PVE_SECRET || :
ORCH_PVE_INPROCESS=0
perl -e 'use PVE::CLI::pveum; 1' >/dev/null 2>&1 && ORCH_PVE_INPROCESS=1
orch_kv secret inprocess "$ORCH_PVE_INPROCESS"
orch_pveum_secret() {
  _opt=$1; shift
  if [ "$ORCH_PVE_INPROCESS" = 1 ]; then
    printf '%s\n' "$ORCH_PVE_SECRET" | ORCH_PVE_OPT=$_opt perl -e 'use strict; use warnings; use PVE::CLI::pveum; my $v = <STDIN>; $v = "" if !defined $v; chomp $v; push @ARGV, "--$ENV{ORCH_PVE_OPT}", $v; PVE::CLI::pveum->run_cli_handler();' -- "$@"
  else
    pveum "$@" "--$_opt" "$ORCH_PVE_SECRET"
  fi
}
"#;

fn apply_script(name: &str, calls: &[PveumCall]) -> String {
    let mut script = format!("{SHELL_LIB}{PVE_LIB}");
    if calls.iter().any(|c| c.secret.is_some()) {
        script.push_str(SECRET_LIB);
    }
    for (i, call) in calls.iter().enumerate() {
        let cmd = match call.secret {
            Some(opt) => command_line(&format!("orch_pveum_secret {opt}"), &call.argv),
            None => command_line("pveum", &call.argv),
        };
        script.push_str(&format!("orch_run step{i} {cmd} || exit 3\n"));
    }
    script.push_str(&format!(
        "orch_run final pvesh get /access/domains/{} --output-format json\n",
        quote(name)
    ));
    script
}

/// The realm as a domains.cfg section for `--diff`, with the client key hidden.
fn render(name: &str, config: Option<&RealmConfig>, other: Option<&RealmConfig>) -> String {
    let Some(config) = config else {
        return String::new();
    };
    let kind = stored(config, "type").unwrap_or_else(|| "openid".into());
    let mut out = format!("{kind}: {name}\n");
    let mut keys: Vec<&String> = config
        .keys()
        .filter(|k| *k != "type" && *k != "digest")
        .collect();
    keys.sort_by_key(|k| {
        (
            match k.as_str() {
                "comment" => 0,
                "client-id" | "issuer-url" => 1,
                _ => 2,
            },
            k.to_string(),
        )
    });
    for k in keys {
        let value = if k == "client-key" {
            let differs = other.is_some_and(|o| o.get(k.as_str()) != config.get(k.as_str()));
            if differs {
                format!("{MASK} (changed)")
            } else {
                MASK.to_string()
            }
        } else {
            json_text(&config[k.as_str()]).unwrap_or_default()
        };
        out.push_str(&format!("\t{k} {value}\n"));
    }
    out
}

/// The config for results: the client key stays (the executor masks it, registered variables
/// keep it).
fn config_value(config: Option<&RealmConfig>) -> Value {
    config
        .map(|c| Value::Object(c.clone()))
        .unwrap_or(Value::Null)
}

struct ApplyData {
    name: String,
    calls: Vec<PveumCall>,
    secret: Option<String>,
    secrets: Vec<String>,
}

fn secrets_of(values: &[Option<String>]) -> Vec<String> {
    let mut out: Vec<String> = values
        .iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

#[async_trait::async_trait]
impl Module for PveRealm {
    fn name(&self) -> &'static str {
        "pve_realm"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let name = args.req_str("name")?;
        validate_realm_name(&name)?;
        let present = args.choice("state", &["present", "absent"], "present")? == "present";
        args.choice("type", &["openid"], "openid")?;
        let recreate = args.bool("recreate", false)?;
        let desired = desired_from_args(args)?;
        let wanted_key = args.str("client_key")?.filter(|k| !k.is_empty());

        let script = format!(
            "{}orch_run realm pvesh get /access/domains/{} --output-format json\nexit 0\n",
            script_prologue(),
            quote(&name)
        );
        let out = env.run(&script, None).await?;
        let records = Records::parse(&out.stdout);
        let node = NodeInfo::from_records(&records);
        node.require_pve()?;
        let read = CmdOutput::from_records(&records, "realm");
        let current: Option<RealmConfig> = if read.ok() {
            match read.json("pvesh get /access/domains")? {
                Value::Object(map) => Some(map),
                other => {
                    return Err(ModuleError::msg(format!(
                        "pve_realm: pvesh get /access/domains/{name} returned {other}"
                    )))
                }
            }
        } else if read.stderr.contains("does not exist") {
            None
        } else {
            return Err(ModuleError::msg(format!(
                "pve_realm: cannot read realm '{name}': {}",
                read.error_text(&[])
            )));
        };
        let current_key = current.as_ref().and_then(|c| stored(c, "client-key"));
        let secrets = secrets_of(&[wanted_key.clone(), current_key.clone()]);
        let secret_refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let with_secrets = |e: ModuleError| match e {
            ModuleError::Failed { msg, mut result } => {
                result.insert(SECRETS_KEY.into(), json!(secrets));
                ModuleError::Failed {
                    msg: super::mask(&msg, &secret_refs),
                    result,
                }
            }
            other => other,
        };
        if present {
            check_versions(&node, &desired).map_err(with_secrets)?;
        }
        let planned = plan_realm(&name, present, recreate, &desired, current.as_ref())
            .map_err(with_secrets)?;
        let changed = planned.action != Action::None;
        let unreadable = unreadable_keys(&read.stderr);
        if changed {
            node.require_quorum("pve_realm").map_err(with_secrets)?;
            if !unreadable.is_empty() {
                return Err(with_secrets(ModuleError::msg(format!(
                    "pve_realm: this node's libpve-access-control ({}) cannot read {} in \
                     /etc/pve/domains.cfg, and pveum rewrites the whole file: a change from here \
                     would drop {}. Run pve_realm on the cluster's node with the newest \
                     libpve-access-control, or upgrade this one",
                    node.version_text(),
                    unreadable.join(", "),
                    if unreadable.len() == 1 { "it" } else { "them" }
                ))));
            }
        }

        let mut result = Map::new();
        result.insert("realm".into(), name.clone().into());
        result.insert(
            "state".into(),
            if present { "present" } else { "absent" }.into(),
        );
        result.insert("config".into(), config_value(planned.after.as_ref()));
        result.insert("changed_keys".into(), json!(planned.changed_keys));
        result.insert(
            "recreated".into(),
            json!(matches!(planned.action, Action::Recreate(_))),
        );
        node.describe(&mut result);
        if !secrets.is_empty() {
            result.insert(SECRETS_KEY.into(), json!(secrets));
        }
        let calls = calls_for(&name, &planned.action);
        result.insert(
            "commands".into(),
            json!(calls
                .iter()
                .map(|c| {
                    let mut line = command_line("pveum", &c.argv);
                    if let Some(opt) = c.secret {
                        line.push_str(&format!(" --{opt} {MASK}"));
                    }
                    line
                })
                .collect::<Vec<_>>()),
        );
        if !changed {
            if !unreadable.is_empty() {
                result.insert(
                    "warnings".into(),
                    json!([format!(
                        "libpve-access-control {} on this node cannot read {} in \
                         /etc/pve/domains.cfg: any realm change made from this node drops them",
                        node.version_text(),
                        unreadable.join(", ")
                    )]),
                );
            }
            return Ok(Plan::unchanged(result));
        }
        let header = format!("/etc/pve/domains.cfg (realm {name})");
        let diffs = vec![Diff {
            before_header: header.clone(),
            after_header: header,
            before: render(&name, planned.before.as_ref(), planned.after.as_ref()),
            after: render(&name, planned.after.as_ref(), planned.before.as_ref()),
        }];
        // The value a call needs on stdin: the wanted key, or the old one kept through a re-create.
        let secret = calls
            .iter()
            .any(|c| c.secret.is_some())
            .then(|| planned.after.as_ref().and_then(|a| stored(a, "client-key")))
            .flatten();
        Ok(Plan {
            changed: true,
            diffs,
            result,
            data: Some(Box::new(ApplyData {
                name,
                calls,
                secret,
                secrets,
            })),
            ..Plan::default()
        })
    }

    async fn apply(
        &self,
        env: &dyn TaskEnv,
        _args: &Args,
        plan: Plan,
    ) -> Result<Map<String, Value>, ModuleError> {
        let mut result = plan.result;
        let Some(data) = plan.data.and_then(|d| d.downcast::<ApplyData>().ok()) else {
            return Ok(result);
        };
        let script = apply_script(&data.name, &data.calls);
        let stdin = data.secret.as_ref().map(|s| format!("{s}\n").into_bytes());
        let out = env.run(&script, stdin).await?;
        let records = Records::parse(&out.stdout);
        let secret_refs: Vec<&str> = data.secrets.iter().map(String::as_str).collect();
        for (i, call) in data.calls.iter().enumerate() {
            let step = CmdOutput::from_records(&records, &format!("step{i}"));
            if !step.ok() {
                let what = command_line("pveum", &call.argv[..call.argv.len().min(3)]);
                let mut msg = format!(
                    "pve_realm: {what} failed: {}",
                    step.error_text(&secret_refs)
                );
                if i > 0 && matches!(call.argv.get(1).map(String::as_str), Some("add")) {
                    msg.push_str(
                        " (the realm was deleted for the re-create and is now missing: fix the \
                         cause and run again)",
                    );
                }
                return Err(ModuleError::with_result(msg, result));
            }
        }
        if data.calls.iter().any(|c| c.secret.is_some())
            && records.get("secret", "inprocess") != Some("1")
        {
            result.insert(
                "warnings".into(),
                json!([
                    "client_key was passed on pveum's command line (visible in the node's process \
                     list while pveum ran): PVE::CLI::pveum could not be loaded to pass it in-process"
                ]),
            );
        }
        let read = CmdOutput::from_records(&records, "final");
        if read.ok() {
            if let Ok(Value::Object(mut config)) = read.json("pvesh get /access/domains") {
                config.remove("digest");
                result.insert("config".into(), Value::Object(config));
            }
        } else if matches!(
            data.calls.last().map(|c| c.argv.get(1).map(String::as_str)),
            Some(Some("delete"))
        ) {
            result.insert("config".into(), Value::Null);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::testenv::args as make_args;
    use super::*;

    fn config(value: Value) -> RealmConfig {
        match value {
            Value::Object(m) => m,
            _ => panic!("object"),
        }
    }

    fn desired(value: Value) -> Desired {
        desired_from_args(&make_args("pve_realm", value)).expect("valid args")
    }

    fn node(version: &str) -> NodeInfo {
        NodeInfo {
            has_pvesh: true,
            has_pveum: true,
            access_control: Some(version.into()),
            members: None,
        }
    }

    fn err_msg(e: Result<impl std::fmt::Debug, ModuleError>) -> String {
        match e {
            Err(ModuleError::Failed { msg, .. }) => msg,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_normalised_before_comparing() {
        assert_eq!(effective(Kind::Scopes, None), "email openid profile");
        assert_eq!(
            effective(Kind::Scopes, Some("profile email")),
            effective(Kind::Scopes, None)
        );
        assert_ne!(
            effective(Kind::Scopes, Some("openid email profile groups")),
            effective(Kind::Scopes, None)
        );
        assert_eq!(effective(Kind::Flag(true), None), "1");
        assert_eq!(effective(Kind::Flag(false), Some("0")), "0");
        assert_eq!(effective(Kind::Flag(false), Some("1")), "1");
        assert_eq!(effective(Kind::Text, Some("")), effective(Kind::Text, None));
        assert_eq!(effective(Kind::SetList, Some("b,a")), "a,b");
        assert_eq!(effective(Kind::OrderedList, Some("b a")), "b,a");
        assert_eq!(effective_claim(None), "sub");
        assert_eq!(effective_claim(Some("subject")), "sub");
        assert_eq!(
            effective_claim(Some("preferred_username")),
            "preferred_username"
        );
    }

    #[test]
    fn a_matching_realm_needs_nothing_even_when_defaults_are_implicit() {
        let current = config(json!({
            "type": "openid", "issuer-url": "https://idp/application/o/pve/", "client-id": "pve",
            "client-key": "s3cr3t", "autocreate": 1, "digest": "abc"
        }));
        let want = desired(json!({
            "name": "authentik", "issuer_url": "https://idp/application/o/pve/", "client_id": "pve",
            "client_key": "s3cr3t", "autocreate": true, "query_userinfo": true,
            "groups_overwrite": false, "scopes": "openid email profile", "comment": ""
        }));
        let plan = plan_realm("authentik", true, false, &want, Some(&current)).unwrap();
        assert_eq!(plan.action, Action::None);
    }

    #[test]
    fn only_differing_keys_are_sent_and_unset_ones_deleted() {
        let current = config(json!({
            "type": "openid", "issuer-url": "https://idp/o/pve/", "client-id": "pve",
            "client-key": "old", "comment": "hand edit", "autocreate": 1, "prompt": "login",
            "digest": "d1"
        }));
        let want = desired(json!({
            "name": "authentik", "issuer_url": "https://idp/o/pve/", "client_key": "new",
            "comment": "Authentik SSO", "autocreate": false, "prompt": "",
            "groups_claim": "groups", "acr_values": ["a", "b"]
        }));
        let plan = plan_realm("authentik", true, false, &want, Some(&current)).unwrap();
        let calls = calls_for("authentik", &plan.action);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].secret, Some("client-key"));
        assert_eq!(
            calls[0].argv,
            [
                "realm",
                "modify",
                "authentik",
                "--comment",
                "Authentik SSO",
                "--acr-values",
                "a,b",
                "--groups-claim",
                "groups",
                "--delete",
                "autocreate,prompt",
                "--digest",
                "d1"
            ]
        );
        assert!(
            !calls[0].argv.iter().any(|a| a.contains("new")),
            "no secret in argv"
        );
        let after = plan.after.unwrap();
        assert_eq!(after["comment"], "Authentik SSO");
        assert!(!after.contains_key("autocreate"));
        assert_eq!(after["client-key"], "new");
    }

    #[test]
    fn add_sends_every_given_key_and_requires_issuer_and_client_id() {
        let want = desired(json!({
            "name": "authentik", "issuer_url": "https://idp/o/pve/", "client_id": "pve",
            "client_key": "s3cr3t", "username_claim": "preferred_username", "autocreate": true,
            "default": true, "scopes": ["openid", "email", "profile", "groups"],
            "query_userinfo": true
        }));
        let plan = plan_realm("authentik", true, false, &want, None).unwrap();
        let calls = calls_for("authentik", &plan.action);
        assert_eq!(
            calls[0].argv,
            [
                "realm",
                "add",
                "authentik",
                "--type",
                "openid",
                "--client-id",
                "pve",
                "--issuer-url",
                "https://idp/o/pve/",
                "--autocreate",
                "1",
                "--default",
                "1",
                "--scopes",
                "openid email profile groups",
                "--username-claim",
                "preferred_username"
            ]
        );
        assert_eq!(calls[0].secret, Some("client-key"));

        let incomplete = desired(json!({"name": "authentik", "client_id": "pve"}));
        let msg = err_msg(plan_realm("authentik", true, false, &incomplete, None));
        assert_eq!(
            msg,
            "pve_realm: realm 'authentik' does not exist yet and issuer_url is required to create it"
        );
    }

    #[test]
    fn username_claim_is_fixed_unless_recreate() {
        let current = config(json!({
            "type": "openid", "issuer-url": "https://idp/o/pve/", "client-id": "pve",
            "client-key": "k", "comment": "keep me", "digest": "d"
        }));
        let want = desired(json!({"name": "oidc", "username_claim": "email"}));
        let msg = err_msg(plan_realm("oidc", true, false, &want, Some(&current)));
        assert!(
            msg.contains("username-claim of realm 'oidc' is 'sub'"),
            "{msg}"
        );
        assert!(msg.contains("You asked for 'email'"), "{msg}");
        assert!(msg.contains("recreate: true"), "{msg}");

        // `subject` is the same claim as an unset one: no re-create needed.
        let same = desired(json!({"name": "oidc", "username_claim": "subject"}));
        assert_eq!(
            plan_realm("oidc", true, false, &same, Some(&current))
                .unwrap()
                .action,
            Action::None
        );

        let plan = plan_realm("oidc", true, true, &want, Some(&current)).unwrap();
        let calls = calls_for("oidc", &plan.action);
        assert_eq!(calls[0].argv, ["realm", "delete", "oidc"]);
        assert_eq!(
            calls[1].argv,
            [
                "realm",
                "add",
                "oidc",
                "--type",
                "openid",
                "--client-id",
                "pve",
                "--issuer-url",
                "https://idp/o/pve/",
                "--comment",
                "keep me",
                "--username-claim",
                "email"
            ]
        );
        assert_eq!(
            calls[1].secret,
            Some("client-key"),
            "the old key is carried over"
        );
        assert_eq!(plan.changed_keys, ["username-claim"]);
    }

    #[test]
    fn options_newer_than_the_node_are_refused_with_the_version_needed() {
        let want = desired(json!({"name": "r", "groups_claim": "groups", "audiences": "x"}));
        let msg = err_msg(check_versions(&node("8.2.1"), &want));
        assert!(msg.contains("libpve-access-control 8.2.1"), "{msg}");
        assert!(
            msg.contains("groups_claim needs libpve-access-control >= 8.2.2 (Proxmox VE 8.4)"),
            "{msg}"
        );
        assert!(msg.contains("pattern rejects every claim name"), "{msg}");
        assert!(
            msg.contains("audiences needs libpve-access-control >= 9.1.1 (Proxmox VE 9.2)"),
            "{msg}"
        );
        assert!(check_versions(&node("9.1.1"), &want).is_ok());
        // Asking for what old versions always did is fine.
        let harmless = desired(json!({
            "name": "r", "query_userinfo": true, "groups_autocreate": false, "groups_claim": ""
        }));
        assert!(check_versions(&node("8.0.4"), &harmless).is_ok());
        let userinfo_off = desired(json!({"name": "r", "query_userinfo": false}));
        assert!(err_msg(check_versions(&node("8.1.4"), &userinfo_off))
            .contains("query_userinfo needs libpve-access-control >= 8.2.1"));
    }

    #[test]
    fn keys_an_older_node_cannot_read_are_found_in_the_parser_warnings() {
        let stderr = "file domains.cfg line 14 (section 'oidc') - unable to parse value of \
                      'audiences': unknown property type\n\
                      file domains.cfg line 3 - ignore config line: junk\n";
        assert_eq!(unreadable_keys(stderr), ["oidc.audiences"]);
        assert!(unreadable_keys("").is_empty());
    }

    #[test]
    fn arguments_are_validated_like_pve_would() {
        let bad = |v: Value| err_msg(desired_from_args(&make_args("pve_realm", v)));
        assert!(bad(json!({"name": "r", "prompt": "login consent"})).contains("prompt"));
        assert!(bad(json!({"name": "r", "groups_claim": "realm access"})).contains("groups_claim"));
        assert!(bad(json!({"name": "r", "acr_values": ["a#b"]})).contains("acr_values"));
        assert!(bad(json!({"name": "r", "comment": "two\nlines"})).contains("line break"));
        assert!(err_msg(validate_realm_name("pam")).contains("built-in"));
        assert!(err_msg(validate_realm_name("1oidc")).contains("not a valid realm id"));
        assert!(validate_realm_name("authentik").is_ok());
    }

    #[test]
    fn state_absent_deletes_and_diff_hides_the_client_key() {
        let current = config(json!({
            "type": "openid", "issuer-url": "https://idp/o/pve/", "client-id": "pve",
            "client-key": "s3cr3t", "comment": "SSO", "digest": "d"
        }));
        let plan = plan_realm("oidc", false, false, &Desired::default(), Some(&current)).unwrap();
        assert_eq!(plan.action, Action::Delete);
        let before = render("oidc", plan.before.as_ref(), None);
        assert_eq!(
            before,
            "openid: oidc\n\tcomment SSO\n\tclient-id pve\n\tissuer-url https://idp/o/pve/\n\tclient-key ********\n"
        );
        assert!(!before.contains("s3cr3t"));
        let mut rotated = current.clone();
        rotated.insert("client-key".into(), "other".into());
        assert!(render("oidc", Some(&rotated), Some(&current)).contains("******** (changed)"));
        assert_eq!(
            plan_realm("oidc", false, false, &Desired::default(), None)
                .unwrap()
                .action,
            Action::None
        );
    }

    #[test]
    fn the_apply_script_never_contains_the_secret() {
        let want = desired(json!({
            "name": "oidc", "issuer_url": "https://idp/o/pve/", "client_id": "pve",
            "client_key": "TopSecretValue"
        }));
        let plan = plan_realm("oidc", true, false, &want, None).unwrap();
        let script = apply_script("oidc", &calls_for("oidc", &plan.action));
        assert!(!script.contains("TopSecretValue"));
        assert!(script.contains("orch_pveum_secret client-key realm add oidc"));
        assert!(script.contains("IFS= read -r ORCH_PVE_SECRET"));
    }

    #[tokio::test]
    async fn the_secret_reaches_the_command_through_stdin_only() {
        // A stand-in pveum/pvesh on PATH records its argv; perl cannot load PVE::CLI::pveum here,
        // so this is the command-line fallback, and the warning says so.
        let env = super::super::super::testenv::LocalEnv::new();
        let bin = env.path("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let log = env.path("argv.log");
        std::fs::write(
            format!("{bin}/pveum"),
            format!("#!/bin/sh\nprintf '%s\\n' \"$*\" >> {log}\n"),
        )
        .unwrap();
        std::fs::write(
            format!("{bin}/pvesh"),
            "#!/bin/sh\necho '{\"type\":\"openid\",\"client-id\":\"pve\",\"issuer-url\":\"https://i/\",\"digest\":\"x\"}'\n",
        )
        .unwrap();
        for tool in ["pveum", "pvesh"] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                format!("{bin}/{tool}"),
                std::fs::Permissions::from_mode(0o755),
            )
            .unwrap();
        }
        let calls = vec![PveumCall {
            argv: vec!["realm".into(), "modify".into(), "oidc".into()],
            secret: Some("client-key"),
        }];
        let script = format!("PATH={bin}:$PATH\n{}", apply_script("oidc", &calls));
        let out = env
            .run(&script, Some(b"s3cr3t value\n".to_vec()))
            .await
            .unwrap();
        let records = Records::parse(&out.stdout);
        assert!(CmdOutput::from_records(&records, "step0").ok());
        assert_eq!(records.get("secret", "inprocess"), Some("0"));
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "realm modify oidc --client-key s3cr3t value\n"
        );
    }
}
