//! `pve_group`: a Proxmox VE group in `/etc/pve/user.cfg` (cluster-wide).
//!
//! With OpenID group mapping, PVE puts a user into the group `<idp group>-<realm>` at login
//! (reference §6), and only if it exists unless `groups-autocreate` is on: pre-creating it lets
//! ACLs be granted before anyone logs in. Plan: the node probe plus `pvesh get /access/groups`
//! (one round trip); apply: `pveum group add|modify|delete`.

use serde_json::{json, Map, Value};

use super::super::{Arg, ArgSpec, Args, Diff, Module, ModuleError, Plan, TaskEnv};
use super::{command_line, valid_group_name};

pub struct PveGroup;

static SPEC: ArgSpec = ArgSpec {
    args: &[
        Arg::req("name").aliases(&["groupid"]),
        Arg::opt("comment"),
        Arg::opt("state").choices(&["present", "absent"]),
    ],
    free_form: None,
    any_keys: false,
};

/// One entry of `pvesh get /access/groups`.
#[derive(Clone, Debug, PartialEq)]
struct GroupEntry {
    comment: Option<String>,
    users: Vec<String>,
}

fn find_group(list: &Value, name: &str) -> Option<GroupEntry> {
    list.as_array()?
        .iter()
        .find(|g| g.get("groupid").and_then(Value::as_str) == Some(name))
        .map(|g| {
            let mut users: Vec<String> = g
                .get("users")
                .and_then(Value::as_str)
                .unwrap_or("")
                .split(',')
                .filter(|u| !u.is_empty())
                .map(str::to_string)
                .collect();
            users.sort();
            GroupEntry {
                comment: g.get("comment").and_then(Value::as_str).map(str::to_string),
                users,
            }
        })
}

/// The pveum arguments that bring the group to the wanted state (None: nothing to do).
fn group_call(
    name: &str,
    present: bool,
    comment: Option<&str>,
    current: Option<&GroupEntry>,
) -> Option<Vec<String>> {
    let base = |verb: &str| vec!["group".to_string(), verb.to_string(), name.to_string()];
    match (present, current) {
        (true, None) => {
            let mut argv = base("add");
            if let Some(c) = comment.filter(|c| !c.is_empty()) {
                argv.extend(["--comment".to_string(), c.to_string()]);
            }
            Some(argv)
        }
        (true, Some(entry)) => {
            let want = comment?;
            if entry.comment.as_deref().unwrap_or("") == want {
                return None;
            }
            let mut argv = base("modify");
            argv.extend(["--comment".to_string(), want.to_string()]);
            Some(argv)
        }
        (false, Some(_)) => Some(base("delete")),
        (false, None) => None,
    }
}

fn render(name: &str, entry: Option<&GroupEntry>) -> String {
    match entry {
        None => String::new(),
        Some(e) => format!(
            "group: {name}\n\tcomment {}\n\tusers {}\n",
            e.comment.as_deref().unwrap_or(""),
            e.users.join(",")
        ),
    }
}

struct GroupPlan {
    argv: Vec<String>,
}

#[async_trait::async_trait]
impl Module for PveGroup {
    fn name(&self) -> &'static str {
        "pve_group"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let name = args.req_str("name")?;
        if !valid_group_name(&name) {
            return Err(ModuleError::msg(format!(
                "pve_group: {name:?} is not a valid Proxmox VE group name (letters, digits, '.', \
                 '-', '_'); at login PVE skips IdP groups with other characters, so map them to \
                 such a name in the IdP"
            )));
        }
        let present = args.choice("state", &["present", "absent"], "present")? == "present";
        let comment = args.str("comment")?;
        if comment.as_deref().is_some_and(|c| c.contains(['\n', '\r'])) {
            return Err(ModuleError::msg(
                "pve_group: comment must not contain a line break",
            ));
        }
        let (node, groups) =
            super::read_pvesh(env, "pve_group", "groups", "/access/groups").await?;
        let current = find_group(&groups, &name);
        let call = group_call(&name, present, comment.as_deref(), current.as_ref());

        let after = match (&call, present) {
            (None, _) => current.clone(),
            (Some(_), false) => None,
            (Some(_), true) => Some(GroupEntry {
                comment: comment.clone().filter(|c| !c.is_empty()),
                users: current
                    .as_ref()
                    .map(|c| c.users.clone())
                    .unwrap_or_default(),
            }),
        };
        let mut result = Map::new();
        result.insert("name".into(), name.clone().into());
        result.insert(
            "state".into(),
            if present { "present" } else { "absent" }.into(),
        );
        if let Some(a) = &after {
            result.insert("comment".into(), json!(a.comment));
            result.insert("members".into(), json!(a.users));
        }
        node.describe(&mut result);
        let Some(argv) = call else {
            return Ok(Plan::unchanged(result));
        };
        node.require_quorum("pve_group")?;
        result.insert("command".into(), command_line("pveum", &argv).into());
        let header = format!("/etc/pve/user.cfg (group {name})");
        Ok(Plan {
            changed: true,
            diffs: vec![Diff {
                before_header: header.clone(),
                after_header: header,
                before: render(&name, current.as_ref()),
                after: render(&name, after.as_ref()),
            }],
            result,
            data: Some(Box::new(GroupPlan { argv })),
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
        let Some(data) = plan.data.and_then(|d| d.downcast::<GroupPlan>().ok()) else {
            return Ok(result);
        };
        super::run_pveum(env, "pve_group", &data.argv, 2, &mut result, |_| None).await?;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(comment: Option<&str>) -> GroupEntry {
        GroupEntry {
            comment: comment.map(str::to_string),
            users: vec![],
        }
    }

    #[test]
    fn finds_the_group_in_any_order() {
        let list = json!([
            {"groupid": "b", "users": ""},
            {"groupid": "admins-oidc", "comment": "IdP admins", "users": "bob@oidc,alice@oidc"}
        ]);
        assert_eq!(
            find_group(&list, "admins-oidc"),
            Some(GroupEntry {
                comment: Some("IdP admins".into()),
                users: vec!["alice@oidc".into(), "bob@oidc".into()]
            })
        );
        assert_eq!(find_group(&list, "c"), None);
    }

    #[test]
    fn calls_for_each_transition() {
        assert_eq!(
            group_call("admins-oidc", true, Some("IdP admins"), None).unwrap(),
            ["group", "add", "admins-oidc", "--comment", "IdP admins"]
        );
        assert_eq!(
            group_call("g", true, None, None).unwrap(),
            ["group", "add", "g"]
        );
        assert_eq!(group_call("g", true, None, Some(&entry(Some("x")))), None);
        assert_eq!(
            group_call("g", true, Some("x"), Some(&entry(Some("x")))),
            None
        );
        assert_eq!(group_call("g", true, Some(""), Some(&entry(None))), None);
        assert_eq!(
            group_call("g", true, Some("y"), Some(&entry(Some("x")))).unwrap(),
            ["group", "modify", "g", "--comment", "y"]
        );
        assert_eq!(
            group_call("g", false, None, Some(&entry(None))).unwrap(),
            ["group", "delete", "g"]
        );
        assert_eq!(group_call("g", false, None, None), None);
    }
}
