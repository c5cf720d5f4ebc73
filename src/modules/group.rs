//! `group`: local groups with groupadd/groupmod/groupdel. The plan reads `getent group` (one round trip).

use serde_json::{Map, Value};

use super::remote::quote;
use super::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv};

pub struct Group;

static SPEC: ArgSpec = ArgSpec {
    args: &[
        Arg::req("name"),
        Arg::opt("state").choices(&["present", "absent"]),
        Arg::opt("gid"),
        Arg::opt("system"),
        Arg::opt("force"),
        Arg::opt("local"),
        Arg::opt("non_unique"),
        Arg::opt("gid_min"),
        Arg::opt("gid_max"),
    ],
    free_form: None,
    any_keys: false,
};

/// One `/etc/group` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

impl GroupEntry {
    /// Parses a `getent group` line: `name:x:gid:member,member`.
    pub fn parse(line: &str) -> Option<GroupEntry> {
        let fields: Vec<&str> = line.trim_end().splitn(4, ':').collect();
        if fields.len() < 3 || fields[0].is_empty() {
            return None;
        }
        Some(GroupEntry {
            name: fields[0].to_string(),
            gid: fields[2].parse().ok()?,
            members: fields
                .get(3)
                .map(|m| {
                    m.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// The command that brings the group to the wanted state, if any.
fn group_command(
    name: &str,
    present: bool,
    current: Option<&GroupEntry>,
    gid: Option<u32>,
    system: bool,
    non_unique: bool,
    force: bool,
) -> Option<String> {
    let q = quote(name);
    match (present, current) {
        (true, None) => {
            let mut cmd = String::from("groupadd");
            if let Some(gid) = gid {
                cmd.push_str(&format!(" -g {gid}"));
                if non_unique {
                    cmd.push_str(" -o");
                }
            }
            if system {
                cmd.push_str(" -r");
            }
            Some(format!("{cmd} -- {q}"))
        }
        (true, Some(entry)) => match gid {
            Some(gid) if gid != entry.gid => Some(format!(
                "groupmod -g {gid}{} -- {q}",
                if non_unique { " -o" } else { "" }
            )),
            _ => None,
        },
        (false, Some(_)) => Some(format!("groupdel{} -- {q}", if force { " -f" } else { "" })),
        (false, None) => None,
    }
}

struct GroupPlan {
    command: String,
}

#[async_trait::async_trait]
impl Module for Group {
    fn name(&self) -> &'static str {
        "group"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        if args.bool("local", false)? {
            return Err(ModuleError::msg(
                "group: 'local: true' (lgroupadd) is not supported by orch",
            ));
        }
        let name = args.req_str("name")?;
        let present = args.choice("state", &["present", "absent"], "present")? == "present";
        let gid = match args.int("gid")? {
            Some(g) if (0..=u32::MAX as i64).contains(&g) => Some(g as u32),
            Some(g) => return Err(ModuleError::msg(format!("invalid gid {g}"))),
            None => None,
        };
        let system = args.bool("system", false)?;
        let out = env
            .run(&format!("getent group {} || :\n", quote(&name)), None)
            .await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let current = stdout
            .lines()
            .filter_map(GroupEntry::parse)
            .find(|e| e.name == name || e.gid.to_string() == name);
        let mut result = Map::new();
        result.insert("name".into(), name.clone().into());
        result.insert(
            "state".into(),
            if present { "present" } else { "absent" }.into(),
        );
        if present {
            result.insert("system".into(), system.into());
            if let Some(entry) = &current {
                result.insert("gid".into(), gid.unwrap_or(entry.gid).into());
            } else if let Some(gid) = gid {
                result.insert("gid".into(), gid.into());
            }
        }
        let command = group_command(
            &name,
            present,
            current.as_ref(),
            gid,
            system,
            args.bool("non_unique", false)?,
            args.bool("force", false)?,
        );
        Ok(match command {
            None => Plan::unchanged(result),
            Some(command) => Plan {
                changed: true,
                result,
                data: Some(Box::new(GroupPlan { command })),
                ..Plan::default()
            },
        })
    }

    async fn apply(
        &self,
        env: &dyn TaskEnv,
        args: &Args,
        plan: Plan,
    ) -> Result<Map<String, Value>, ModuleError> {
        let mut result = plan.result;
        let Some(data) = plan.data.and_then(|d| d.downcast::<GroupPlan>().ok()) else {
            return Ok(result);
        };
        let name = args.req_str("name")?;
        let script = format!(
            "{} || exit $?\ngetent group {} || :\n",
            data.command,
            quote(&name)
        );
        let out = env.run(&script, None).await?;
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if out.rc != 0 {
            result.insert("rc".into(), out.rc.into());
            return Err(ModuleError::with_result(
                if stderr.is_empty() {
                    format!("{} failed with rc {}", data.command, out.rc)
                } else {
                    stderr
                },
                result,
            ));
        }
        if let Some(entry) = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(GroupEntry::parse)
            .next()
        {
            result.insert("gid".into(), entry.gid.into());
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_group_lines() {
        assert_eq!(
            GroupEntry::parse("docker:x:998:alice,bob\n"),
            Some(GroupEntry {
                name: "docker".into(),
                gid: 998,
                members: vec!["alice".into(), "bob".into()]
            })
        );
        assert_eq!(GroupEntry::parse("ops:x:1001:").unwrap().members.len(), 0);
        assert_eq!(GroupEntry::parse("bad:x:nope:"), None);
    }

    #[test]
    fn commands_for_each_transition() {
        let entry = GroupEntry::parse("ops:x:1001:").unwrap();
        assert_eq!(
            group_command("ops", true, None, Some(2000), true, false, false).as_deref(),
            Some("groupadd -g 2000 -r -- ops")
        );
        assert_eq!(
            group_command("ops", true, Some(&entry), None, false, false, false),
            None
        );
        assert_eq!(
            group_command("ops", true, Some(&entry), Some(1001), false, false, false),
            None
        );
        assert_eq!(
            group_command("ops", true, Some(&entry), Some(1002), false, false, false).as_deref(),
            Some("groupmod -g 1002 -- ops")
        );
        assert_eq!(
            group_command("ops", false, Some(&entry), None, false, false, true).as_deref(),
            Some("groupdel -f -- ops")
        );
        assert_eq!(
            group_command("ops", false, None, None, false, false, false),
            None
        );
    }
}
