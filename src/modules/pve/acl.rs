//! `pve_acl`: Proxmox VE ACL entries (path, roles, groups/users/tokens, propagate).
//!
//! Each (subject, role) pair on the path is one entry; the task manages exactly the pairs it
//! names — other roles of the same subjects and other subjects on the path are left alone.
//! Plan: the node probe plus `pvesh get /access/acl` (one round trip), compared as sets because
//! PVE lists entries in Perl hash order; apply: one `pveum acl modify|delete`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::super::{Arg, ArgSpec, Args, Diff, Module, ModuleError, Plan, TaskEnv};
use super::{command_line, json_flag, list_arg, valid_group_name};

pub struct PveAcl;

static SPEC: ArgSpec = ArgSpec {
    args: &[
        Arg::req("path"),
        Arg::req("roles").aliases(&["role"]),
        Arg::opt("groups").aliases(&["group"]),
        Arg::opt("users").aliases(&["user"]),
        Arg::opt("tokens").aliases(&["token"]),
        Arg::opt("propagate"),
        Arg::opt("state").choices(&["present", "absent"]),
    ],
    free_form: None,
    any_keys: false,
};

/// Who an entry is for, in the order `pvesh get /access/acl` names the types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Subject {
    Group,
    User,
    Token,
}

impl Subject {
    fn from_type(t: &str) -> Option<Subject> {
        match t {
            "group" => Some(Subject::Group),
            "user" => Some(Subject::User),
            "token" => Some(Subject::Token),
            _ => None,
        }
    }
    fn option(self) -> &'static str {
        match self {
            Subject::Group => "--groups",
            Subject::User => "--users",
            Subject::Token => "--tokens",
        }
    }
    /// user.cfg writes groups as `@name`.
    fn cfg_name(self, ugid: &str) -> String {
        match self {
            Subject::Group => format!("@{ugid}"),
            _ => ugid.to_string(),
        }
    }
}

/// (subject type, user/group/token id, role) → propagate.
type Entries = BTreeMap<(Subject, String, String), bool>;

/// PVE's `normalize_path`: empty and `0` components dropped, one leading slash.
fn normalize_path(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != "0")
        .collect();
    format!("/{}", parts.join("/"))
}

/// The entries on `path` in `pvesh get /access/acl --output-format json`.
fn entries_on(list: &Value, path: &str) -> Entries {
    let mut out = Entries::new();
    for item in list.as_array().into_iter().flatten() {
        if item.get("path").and_then(Value::as_str).map(normalize_path) != Some(path.to_string()) {
            continue;
        }
        let subject = item
            .get("type")
            .and_then(Value::as_str)
            .and_then(Subject::from_type);
        let ugid = item.get("ugid").and_then(Value::as_str);
        let role = item.get("roleid").and_then(Value::as_str);
        if let (Some(subject), Some(ugid), Some(role)) = (subject, ugid, role) {
            let propagate = json_flag(item.get("propagate")).unwrap_or(true);
            out.insert((subject, ugid.to_string(), role.to_string()), propagate);
        }
    }
    out
}

/// The wanted pairs: every role for every subject.
#[derive(Clone, Debug, Default)]
struct Wanted {
    roles: Vec<String>,
    subjects: Vec<(Subject, String)>,
    propagate: bool,
}

impl Wanted {
    fn pairs(&self) -> impl Iterator<Item = (Subject, String, String)> + '_ {
        self.subjects
            .iter()
            .flat_map(move |(s, id)| self.roles.iter().map(move |r| (*s, id.clone(), r.clone())))
    }
}

/// One `pveum acl modify|delete` covering `pairs` (all roles × all subjects named in them — each
/// such pair is wanted, so re-setting the ones already right is harmless), or None.
fn acl_call(
    path: &str,
    present: bool,
    propagate: bool,
    pairs: &BTreeSet<(Subject, String, String)>,
) -> Option<Vec<String>> {
    if pairs.is_empty() {
        return None;
    }
    let roles: BTreeSet<&str> = pairs.iter().map(|(_, _, r)| r.as_str()).collect();
    let mut argv = vec![
        "acl".to_string(),
        if present { "modify" } else { "delete" }.to_string(),
        path.to_string(),
        "--roles".to_string(),
        roles.into_iter().collect::<Vec<_>>().join(","),
    ];
    for subject in [Subject::Group, Subject::User, Subject::Token] {
        let ids: BTreeSet<&str> = pairs
            .iter()
            .filter(|(s, _, _)| *s == subject)
            .map(|(_, id, _)| id.as_str())
            .collect();
        if !ids.is_empty() {
            argv.push(subject.option().to_string());
            argv.push(ids.into_iter().collect::<Vec<_>>().join(","));
        }
    }
    if present {
        argv.push("--propagate".into());
        argv.push(if propagate { "1" } else { "0" }.into());
    }
    Some(argv)
}

/// What must change, and the entries on the path afterwards.
fn plan_acl(
    present: bool,
    wanted: &Wanted,
    current: &Entries,
) -> (BTreeSet<(Subject, String, String)>, Entries) {
    let mut after = current.clone();
    let mut pairs = BTreeSet::new();
    for pair in wanted.pairs() {
        let have = current.get(&pair).copied();
        let differs = if present {
            have != Some(wanted.propagate)
        } else {
            have.is_some()
        };
        if differs {
            pairs.insert(pair);
        }
    }
    // The command acts on every role × subject it names; predict exactly that.
    if !pairs.is_empty() {
        let roles: BTreeSet<&String> = pairs.iter().map(|(_, _, r)| r).collect();
        let subjects: BTreeSet<(Subject, &String)> =
            pairs.iter().map(|(s, id, _)| (*s, id)).collect();
        for (s, id) in &subjects {
            for r in &roles {
                let key = (*s, (*id).clone(), (*r).clone());
                if present {
                    after.insert(key, wanted.propagate);
                } else {
                    after.remove(&key);
                }
            }
        }
    }
    (pairs, after)
}

/// The entries as user.cfg lines (`acl:<propagate>:<path>:<@group|user|token>:<role>:`).
fn render(path: &str, entries: &Entries) -> String {
    entries
        .iter()
        .map(|((s, id, role), propagate)| {
            format!(
                "acl:{}:{path}:{}:{role}:\n",
                u8::from(*propagate),
                s.cfg_name(id)
            )
        })
        .collect()
}

fn entry_names(pairs: &BTreeSet<(Subject, String, String)>) -> Vec<String> {
    pairs
        .iter()
        .map(|(s, id, role)| format!("{}:{role}", s.cfg_name(id)))
        .collect()
}

struct AclPlan {
    argv: Vec<String>,
}

#[async_trait::async_trait]
impl Module for PveAcl {
    fn name(&self) -> &'static str {
        "pve_acl"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let raw_path = args.req_str("path")?;
        let path = normalize_path(&raw_path);
        let present = args.choice("state", &["present", "absent"], "present")? == "present";
        let mut roles = list_arg(args, "roles")?.unwrap_or_default();
        roles.sort();
        roles.dedup();
        if roles.is_empty() {
            return Err(ModuleError::msg(
                "pve_acl: roles must name at least one role",
            ));
        }
        let mut subjects = Vec::new();
        for (arg, subject) in [
            ("groups", Subject::Group),
            ("users", Subject::User),
            ("tokens", Subject::Token),
        ] {
            for id in list_arg(args, arg)?.unwrap_or_default() {
                if subject == Subject::Group && !valid_group_name(&id) {
                    return Err(ModuleError::msg(format!(
                        "pve_acl: {id:?} is not a valid Proxmox VE group name"
                    )));
                }
                if subject != Subject::Group && !id.contains('@') {
                    return Err(ModuleError::msg(format!(
                        "pve_acl: {arg}: {id:?} must be user@realm{}",
                        if subject == Subject::Token {
                            "!tokenname"
                        } else {
                            ""
                        }
                    )));
                }
                if !subjects.contains(&(subject, id.clone())) {
                    subjects.push((subject, id));
                }
            }
        }
        if subjects.is_empty() {
            return Err(ModuleError::msg(
                "pve_acl: one of groups, users or tokens is required",
            ));
        }
        let wanted = Wanted {
            roles,
            subjects,
            propagate: args.bool("propagate", true)?,
        };

        let (node, acl) = super::read_pvesh(env, "pve_acl", "ACLs", "/access/acl").await?;
        let current = entries_on(&acl, &path);
        let (pairs, after) = plan_acl(present, &wanted, &current);

        let mut result = Map::new();
        result.insert("path".into(), path.clone().into());
        result.insert("roles".into(), json!(wanted.roles));
        result.insert(
            "state".into(),
            if present { "present" } else { "absent" }.into(),
        );
        result.insert("propagate".into(), json!(wanted.propagate));
        result.insert(
            if present { "added" } else { "removed" }.into(),
            json!(entry_names(&pairs)),
        );
        result.insert(
            "entries".into(),
            json!(render(&path, &after).lines().collect::<Vec<_>>()),
        );
        node.describe(&mut result);
        let Some(argv) = acl_call(&path, present, wanted.propagate, &pairs) else {
            return Ok(Plan::unchanged(result));
        };
        node.require_quorum("pve_acl")?;
        result.insert("command".into(), command_line("pveum", &argv).into());
        let header = format!("/etc/pve/user.cfg (ACL {path})");
        Ok(Plan {
            changed: true,
            diffs: vec![Diff {
                before_header: header.clone(),
                after_header: header,
                before: render(&path, &current),
                after: render(&path, &after),
            }],
            result,
            data: Some(Box::new(AclPlan { argv })),
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
        let Some(data) = plan.data.and_then(|d| d.downcast::<AclPlan>().ok()) else {
            return Ok(result);
        };
        super::run_pveum(env, "pve_acl", &data.argv, 3, &mut result, |step| {
            (step.stderr.contains("group '") && step.stderr.contains("does not exist"))
                .then_some(" — create the group first (pve_group)")
        })
        .await?;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(roles: &[&str], subjects: &[(Subject, &str)], propagate: bool) -> Wanted {
        Wanted {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            subjects: subjects
                .iter()
                .map(|(s, id)| (*s, id.to_string()))
                .collect(),
            propagate,
        }
    }

    fn acl_list() -> Value {
        // Hash order, as PVE prints it.
        json!([
            {"path": "/vms", "type": "group", "ugid": "admins-oidc", "roleid": "PVEAdmin", "propagate": 1},
            {"path": "/", "type": "user", "ugid": "alice@oidc", "roleid": "PVEAuditor", "propagate": 0},
            {"path": "/", "type": "group", "ugid": "admins-oidc", "roleid": "PVEAdmin", "propagate": 1}
        ])
    }

    #[test]
    fn paths_are_normalised_like_pve() {
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path("//vms/"), "/vms");
        assert_eq!(normalize_path("/pool/0/x"), "/pool/x");
    }

    #[test]
    fn current_entries_are_read_as_a_set_for_one_path() {
        let entries = entries_on(&acl_list(), "/");
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries.get(&(Subject::User, "alice@oidc".into(), "PVEAuditor".into())),
            Some(&false)
        );
    }

    #[test]
    fn present_adds_only_missing_or_different_pairs() {
        let current = entries_on(&acl_list(), "/");
        let w = wanted(&["PVEAdmin"], &[(Subject::Group, "admins-oidc")], true);
        let (pairs, after) = plan_acl(true, &w, &current);
        assert!(pairs.is_empty());
        assert_eq!(after, current);
        assert_eq!(acl_call("/", true, true, &pairs), None);

        let w = wanted(
            &["PVEAdmin", "PVEAuditor"],
            &[
                (Subject::Group, "admins-oidc"),
                (Subject::Group, "ops-oidc"),
            ],
            true,
        );
        let (pairs, after) = plan_acl(true, &w, &current);
        assert_eq!(
            entry_names(&pairs),
            [
                "@admins-oidc:PVEAuditor",
                "@ops-oidc:PVEAdmin",
                "@ops-oidc:PVEAuditor"
            ]
        );
        assert_eq!(
            acl_call("/", true, true, &pairs).unwrap(),
            [
                "acl",
                "modify",
                "/",
                "--roles",
                "PVEAdmin,PVEAuditor",
                "--groups",
                "admins-oidc,ops-oidc",
                "--propagate",
                "1"
            ]
        );
        assert_eq!(after.len(), 5);

        // A propagate flag that differs is a change.
        let w = wanted(&["PVEAuditor"], &[(Subject::User, "alice@oidc")], true);
        let (pairs, _) = plan_acl(true, &w, &current);
        assert_eq!(entry_names(&pairs), ["alice@oidc:PVEAuditor"]);
    }

    #[test]
    fn absent_removes_only_existing_named_pairs() {
        let current = entries_on(&acl_list(), "/");
        let w = wanted(
            &["PVEAdmin"],
            &[(Subject::Group, "admins-oidc"), (Subject::User, "bob@oidc")],
            true,
        );
        let (pairs, after) = plan_acl(false, &w, &current);
        assert_eq!(entry_names(&pairs), ["@admins-oidc:PVEAdmin"]);
        assert_eq!(
            acl_call("/", false, true, &pairs).unwrap(),
            [
                "acl",
                "delete",
                "/",
                "--roles",
                "PVEAdmin",
                "--groups",
                "admins-oidc"
            ]
        );
        assert_eq!(render("/", &after), "acl:0:/:alice@oidc:PVEAuditor:\n");
    }
}
