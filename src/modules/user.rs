//! `user`: local accounts with useradd/usermod/userdel, as Ansible's user module drives them.
//!
//! The plan reads `getent passwd`, all of `getent group`, the requested groups, `id -Gn` and (when a
//! password is given) the shadow hash in one round trip. A password hash is set with `chpasswd -e`
//! reading stdin, so it never appears in argv or in the script text.

use serde_json::{Map, Value};

use super::filecommon::{self as fc, Records};
use super::group::GroupEntry;
use super::remote::quote;
use super::{Arg, ArgSpec, Args, Module, ModuleError, Plan, TaskEnv};

pub struct User;

static SPEC: ArgSpec = ArgSpec {
    args: &[
        Arg::req("name").aliases(&["user"]),
        Arg::opt("state").choices(&["present", "absent"]),
        Arg::opt("uid"),
        Arg::opt("group"),
        Arg::opt("groups"),
        Arg::opt("append"),
        Arg::opt("shell"),
        Arg::opt("home"),
        Arg::opt("create_home").aliases(&["createhome"]),
        Arg::opt("move_home"),
        Arg::opt("system"),
        Arg::opt("comment"),
        Arg::opt("password"),
        Arg::opt("update_password").choices(&["always", "on_create"]),
        Arg::opt("remove"),
        Arg::opt("force"),
        Arg::opt("non_unique"),
        Arg::opt("skeleton"),
        Arg::opt("local").unsupported(),
        Arg::opt("expires").unsupported(),
        Arg::opt("password_lock").unsupported(),
        Arg::opt("generate_ssh_key").unsupported(),
        Arg::opt("ssh_key_bits").unsupported(),
        Arg::opt("ssh_key_comment").unsupported(),
        Arg::opt("ssh_key_file").unsupported(),
        Arg::opt("ssh_key_passphrase").unsupported(),
        Arg::opt("ssh_key_type").unsupported(),
        Arg::opt("umask").unsupported(),
        Arg::opt("seuser").unsupported(),
        Arg::opt("login_class").unsupported(),
        Arg::opt("hidden").unsupported(),
        Arg::opt("profile").unsupported(),
        Arg::opt("role").unsupported(),
        Arg::opt("authorization").unsupported(),
        Arg::opt("password_expire_max").unsupported(),
        Arg::opt("password_expire_min").unsupported(),
        Arg::opt("password_expire_warn").unsupported(),
        Arg::opt("uid_min"),
        Arg::opt("uid_max"),
    ],
    free_form: None,
    any_keys: false,
};

/// One `/etc/passwd` entry.
#[derive(Clone, Debug, PartialEq)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    comment: String,
    home: String,
    shell: String,
}

impl PasswdEntry {
    fn parse(line: &str) -> Option<PasswdEntry> {
        let f: Vec<&str> = line.trim_end_matches('\n').splitn(7, ':').collect();
        if f.len() != 7 {
            return None;
        }
        Some(PasswdEntry {
            name: f[0].into(),
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            comment: f[4].into(),
            home: f[5].into(),
            shell: f[6].into(),
        })
    }
}

/// The task's wishes for a present user.
#[derive(Clone, Debug, Default)]
struct Wanted {
    name: String,
    uid: Option<u32>,
    group: Option<String>,
    groups: Option<Vec<String>>,
    append: bool,
    shell: Option<String>,
    home: Option<String>,
    create_home: bool,
    move_home: bool,
    system: bool,
    comment: Option<String>,
    password: Option<String>,
    update_always: bool,
    non_unique: bool,
    skeleton: Option<String>,
}

/// What the probe found.
#[derive(Debug, Default)]
struct Found {
    user: Option<PasswdEntry>,
    /// Every group (`getent group`), for membership.
    all_groups: Vec<GroupEntry>,
    /// The requested `group` then `groups`, looked up one by one (None: does not exist).
    lookups: Vec<Option<GroupEntry>>,
    shadow: Option<String>,
}

fn probe_script(w: &Wanted, lookups: &[String]) -> String {
    let q = quote(&w.name);
    let mut s = format!(
        "_p=$(getent passwd {q}) && {{ printf '@u.passwd='; printf '%s' \"$_p\" | orch_b64; }}\n\
         printf '@u.groups='; getent group | orch_b64\n"
    );
    for (i, g) in lookups.iter().enumerate() {
        s.push_str(&format!(
            "_g=$(getent group {}) && {{ printf '@g.i{i}='; printf '%s' \"$_g\" | orch_b64; }}\n",
            quote(g)
        ));
    }
    if w.password.is_some() {
        s.push_str(&format!(
            "_s=$(getent shadow {q} | cut -d: -f2) && {{ printf '@u.shadow='; printf '%s' \"$_s\" | orch_b64; }}\n"
        ));
    }
    s
}

fn parse_found(records: &Records, lookups: usize) -> Found {
    Found {
        user: records
            .text("u", "passwd")
            .and_then(|l| PasswdEntry::parse(&l)),
        all_groups: records
            .text("u", "groups")
            .unwrap_or_default()
            .lines()
            .filter_map(GroupEntry::parse)
            .collect(),
        lookups: (0..lookups)
            .map(|i| {
                records
                    .text("g", &format!("i{i}"))
                    .and_then(|l| GroupEntry::parse(&l))
            })
            .collect(),
        shadow: records.text("u", "shadow"),
    }
}

/// The commands that bring a present user to the wanted state: (command, whether the password is set).
/// `None` when nothing differs.
///
/// `check_mode`: a missing group may be created by an earlier task of the same run, so it predicts a
/// change instead of failing (a real run still fails).
fn present_commands(
    w: &Wanted,
    found: &Found,
    check_mode: bool,
) -> Result<Option<(String, bool)>, ModuleError> {
    let q = quote(&w.name);
    let mut lookups = found.lookups.iter();
    let resolve =
        |entry: Option<&Option<GroupEntry>>, name: &str| -> Result<GroupEntry, ModuleError> {
            match entry.cloned().flatten() {
                Some(e) => Ok(e),
                None if check_mode => Ok(GroupEntry {
                    name: name.to_string(),
                    gid: u32::MAX,
                    members: Vec::new(),
                }),
                None => Err(ModuleError::msg(format!("Group {name} does not exist"))),
            }
        };
    let primary = match &w.group {
        None => None,
        Some(g) => Some(resolve(lookups.next(), g)?),
    };
    let requested: Option<Vec<String>> = match &w.groups {
        None => None,
        Some(names) => {
            let mut resolved = Vec::new();
            for name in names {
                let entry = resolve(lookups.next(), name)?;
                if !resolved.contains(&entry.name) {
                    resolved.push(entry.name);
                }
            }
            Some(resolved)
        }
    };
    let Some(user) = &found.user else {
        let mut cmd = String::from("useradd");
        if let Some(uid) = w.uid {
            cmd.push_str(&format!(" -u {uid}"));
            if w.non_unique {
                cmd.push_str(" -o");
            }
        }
        match &primary {
            Some(g) => cmd.push_str(&format!(" -g {}", quote(&g.name))),
            // Ansible: with a group already named like the user, useradd must not try to create it.
            None if found.all_groups.iter().any(|g| g.name == w.name) => cmd.push_str(" -N"),
            None => {}
        }
        if let Some(groups) = &requested {
            let extra: Vec<&String> = groups
                .iter()
                .filter(|g| primary.as_ref().map(|p| &p.name) != Some(g))
                .collect();
            if !extra.is_empty() {
                cmd.push_str(&format!(
                    " -G {}",
                    quote(
                        &extra
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                ));
            }
        }
        if let Some(c) = &w.comment {
            cmd.push_str(&format!(" -c {}", quote(c)));
        }
        if let Some(h) = &w.home {
            cmd.push_str(&format!(" -d {}", quote(h)));
        }
        if let Some(s) = &w.shell {
            cmd.push_str(&format!(" -s {}", quote(s)));
        }
        if w.system {
            cmd.push_str(" -r");
        }
        if w.create_home {
            cmd.push_str(" -m");
            if let Some(k) = &w.skeleton {
                cmd.push_str(&format!(" -k {}", quote(k)));
            }
        } else {
            cmd.push_str(" -M");
        }
        cmd.push_str(&format!(" -- {q}"));
        return Ok(Some((cmd, w.password.is_some())));
    };

    let mut flags = String::new();
    if let Some(uid) = w.uid.filter(|u| *u != user.uid) {
        flags.push_str(&format!(" -u {uid}"));
        if w.non_unique {
            flags.push_str(" -o");
        }
    }
    if let Some(g) = primary.as_ref().filter(|g| g.gid != user.gid) {
        flags.push_str(&format!(" -g {}", quote(&g.name)));
    }
    if let Some(groups) = &requested {
        let current: Vec<&str> = found
            .all_groups
            .iter()
            .filter(|g| g.members.contains(&w.name))
            .map(|g| g.name.as_str())
            .collect();
        let differs = |g: &str| current.contains(&g) != groups.iter().any(|r| r == g);
        let any_diff = current.iter().any(|g| differs(g)) || groups.iter().any(|g| differs(g));
        let needs = if w.append {
            groups.iter().any(|g| !current.contains(&g.as_str()))
        } else {
            any_diff
        };
        if needs {
            flags.push_str(&format!(
                "{} -G {}",
                if w.append { " -a" } else { "" },
                quote(&groups.join(","))
            ));
        }
    }
    if let Some(c) = w.comment.as_ref().filter(|c| **c != user.comment) {
        flags.push_str(&format!(" -c {}", quote(c)));
    }
    if let Some(h) = w.home.as_ref().filter(|h| **h != user.home) {
        flags.push_str(&format!(" -d {}", quote(h)));
        if w.move_home {
            flags.push_str(" -m");
        }
    }
    if let Some(s) = w.shell.as_ref().filter(|s| **s != user.shell) {
        flags.push_str(&format!(" -s {}", quote(s)));
    }
    let set_password = w.update_always
        && w.password
            .as_ref()
            .is_some_and(|p| found.shadow.as_deref() != Some(p.as_str()));
    match (flags.is_empty(), set_password) {
        (true, false) => Ok(None),
        (true, true) => Ok(Some((String::new(), true))),
        (false, pw) => Ok(Some((format!("usermod{flags} -- {q}"), pw))),
    }
}

struct UserPlan {
    command: String,
    set_password: bool,
}

impl Wanted {
    fn from_args(args: &Args) -> Result<Wanted, ModuleError> {
        let uid = match args.int("uid")? {
            Some(u) if (0..=u32::MAX as i64).contains(&u) => Some(u as u32),
            Some(u) => return Err(ModuleError::msg(format!("invalid uid {u}"))),
            None => None,
        };
        let password = args.str("password")?;
        if let Some(p) = &password {
            if p.contains(['\n', '\r', ':']) {
                return Err(ModuleError::msg(
                    "password must be a crypt hash (no ':' or line breaks); use the password_hash filter",
                ));
            }
        }
        Ok(Wanted {
            name: args.req_str("name")?,
            uid,
            group: args.str("group")?,
            groups: args.list("groups")?,
            append: args.bool("append", false)?,
            shell: args.str("shell")?,
            home: args.str("home")?,
            create_home: args.bool("create_home", true)?,
            move_home: args.bool("move_home", false)?,
            system: args.bool("system", false)?,
            comment: args.str("comment")?,
            password,
            update_always: args.choice("update_password", &["always", "on_create"], "always")?
                == "always",
            non_unique: args.bool("non_unique", false)?,
            skeleton: args.str("skeleton")?,
        })
    }

    /// The groups to look up, in the order `present_commands` consumes them.
    fn lookups(&self) -> Vec<String> {
        let mut v: Vec<String> = self.group.iter().cloned().collect();
        v.extend(self.groups.iter().flatten().cloned());
        v
    }
}

/// Ansible's result keys for an existing user.
fn describe(result: &mut Map<String, Value>, user: &PasswdEntry, w: &Wanted) {
    result.insert("uid".into(), user.uid.into());
    result.insert("group".into(), user.gid.into());
    result.insert("comment".into(), user.comment.clone().into());
    result.insert("home".into(), user.home.clone().into());
    result.insert("shell".into(), user.shell.clone().into());
    if let Some(groups) = &w.groups {
        result.insert("groups".into(), groups.join(",").into());
    }
}

#[async_trait::async_trait]
impl Module for User {
    fn name(&self) -> &'static str {
        "user"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let w = Wanted::from_args(args)?;
        let present = args.choice("state", &["present", "absent"], "present")? == "present";
        let lookups = if present { w.lookups() } else { Vec::new() };
        let (records, out) = fc::run_script(env, &probe_script(&w, &lookups), None).await?;
        if out.rc != 0 {
            return Err(fc::script_failed("reading the user database", &out));
        }
        let found = parse_found(&records, lookups.len());
        let mut result = Map::new();
        result.insert("name".into(), w.name.clone().into());
        result.insert(
            "state".into(),
            if present { "present" } else { "absent" }.into(),
        );

        if !present {
            let force = args.bool("force", false)?;
            let remove = args.bool("remove", false)?;
            if found.user.is_none() {
                return Ok(Plan::unchanged(result));
            }
            result.insert("force".into(), force.into());
            result.insert("remove".into(), remove.into());
            let command = format!(
                "userdel{}{} -- {}",
                if force { " -f" } else { "" },
                if remove { " -r" } else { "" },
                quote(&w.name)
            );
            return Ok(Plan {
                changed: true,
                result,
                data: Some(Box::new(UserPlan {
                    command,
                    set_password: false,
                })),
                ..Plan::default()
            });
        }

        result.insert("system".into(), w.system.into());
        match &found.user {
            Some(user) => {
                describe(&mut result, user, &w);
                result.insert("append".into(), w.append.into());
                result.insert("move_home".into(), w.move_home.into());
            }
            None => {
                result.insert("create_home".into(), w.create_home.into());
                if let Some(groups) = &w.groups {
                    result.insert("groups".into(), groups.join(",").into());
                }
            }
        }
        if w.password.is_some() {
            result.insert("password".into(), "NOT_LOGGING_PASSWORD".into());
        }
        Ok(match present_commands(&w, &found, env.check_mode())? {
            None => Plan::unchanged(result),
            Some((command, set_password)) => Plan {
                changed: true,
                result,
                data: Some(Box::new(UserPlan {
                    command,
                    set_password,
                })),
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
        let Some(data) = plan.data.and_then(|d| d.downcast::<UserPlan>().ok()) else {
            return Ok(result);
        };
        let w = Wanted::from_args(args)?;
        let mut script = String::new();
        if !data.command.is_empty() {
            script.push_str(&format!("{} </dev/null || exit $?\n", data.command));
        }
        let mut stdin = None;
        if data.set_password {
            if let Some(password) = &w.password {
                script.push_str("chpasswd -e || exit $?\n");
                stdin = Some(format!("{}:{password}\n", w.name).into_bytes());
            }
        }
        script.push_str(&format!("getent passwd {} || :\n", quote(&w.name)));
        let out = env.run(&script, stdin).await?;
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
        if !stderr.is_empty() {
            result.insert("stderr".into(), stderr.into());
        }
        if result.get("state") == Some(&Value::from("present")) {
            let line = String::from_utf8_lossy(&out.stdout).into_owned();
            let user = PasswdEntry::parse(line.lines().next().unwrap_or(""))
                .ok_or_else(|| ModuleError::msg("failed to look up user name"))?;
            describe(&mut result, &user, &w);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(passwd: Option<&str>, groups: &str, lookups: &[Option<&str>]) -> Found {
        Found {
            user: passwd.and_then(PasswdEntry::parse),
            all_groups: groups.lines().filter_map(GroupEntry::parse).collect(),
            lookups: lookups
                .iter()
                .map(|l| l.and_then(GroupEntry::parse))
                .collect(),
            shadow: None,
        }
    }

    const GROUPS: &str = "root:x:0:\nsudo:x:27:alice\ndocker:x:998:\nalice:x:1000:\nusers:x:100:\n";

    fn wanted() -> Wanted {
        Wanted {
            name: "alice".into(),
            create_home: true,
            update_always: true,
            ..Wanted::default()
        }
    }

    #[test]
    fn creates_with_ansibles_useradd_flags() {
        let mut w = wanted();
        w.name = "bob".into();
        w.groups = Some(vec!["sudo".into(), "docker".into()]);
        w.shell = Some("/bin/bash".into());
        w.system = true;
        w.comment = Some("Bob B".into());
        let f = found(
            None,
            GROUPS,
            &[Some("sudo:x:27:alice"), Some("docker:x:998:")],
        );
        let (cmd, pw) = present_commands(&w, &f, false).unwrap().unwrap();
        assert_eq!(
            cmd,
            "useradd -G sudo,docker -c 'Bob B' -s /bin/bash -r -m -- bob"
        );
        assert!(!pw);
        // A group named like the user exists already: -N, as Ansible does.
        let mut w = wanted();
        w.create_home = false;
        let (cmd, _) = present_commands(&w, &found(None, GROUPS, &[]), false)
            .unwrap()
            .unwrap();
        assert_eq!(cmd, "useradd -N -M -- alice");
    }

    #[test]
    fn missing_groups_fail_like_ansible() {
        let mut w = wanted();
        w.groups = Some(vec!["nope".into()]);
        let ModuleError::Failed { msg, .. } =
            present_commands(&w, &found(None, GROUPS, &[None]), false).unwrap_err()
        else {
            panic!()
        };
        assert_eq!(msg, "Group nope does not exist");
        // In check mode an earlier task may create the group: predict the change instead.
        let (cmd, _) = present_commands(&w, &found(None, GROUPS, &[None]), true)
            .unwrap()
            .unwrap();
        assert_eq!(cmd, "useradd -N -G nope -m -- alice");
    }

    #[test]
    fn modifies_only_what_differs() {
        let alice = "alice:x:1000:1000:Alice:/home/alice:/bin/sh";
        let mut w = wanted();
        w.shell = Some("/bin/sh".into());
        w.groups = Some(vec!["sudo".into()]);
        assert!(present_commands(
            &w,
            &found(Some(alice), GROUPS, &[Some("sudo:x:27:alice")]),
            false
        )
        .unwrap()
        .is_none());
        w.shell = Some("/bin/bash".into());
        w.groups = Some(vec!["docker".into()]);
        let (cmd, _) = present_commands(
            &w,
            &found(Some(alice), GROUPS, &[Some("docker:x:998:")]),
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(cmd, "usermod -G docker -s /bin/bash -- alice");
        // append: only missing groups matter; extra memberships stay.
        w.shell = None;
        w.append = true;
        let (cmd, _) = present_commands(
            &w,
            &found(Some(alice), GROUPS, &[Some("docker:x:998:")]),
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(cmd, "usermod -a -G docker -- alice");
        w.groups = Some(vec!["sudo".into()]);
        assert!(present_commands(
            &w,
            &found(Some(alice), GROUPS, &[Some("sudo:x:27:alice")]),
            false
        )
        .unwrap()
        .is_none());
        // groups: [] without append removes every supplementary group.
        w.append = false;
        w.groups = Some(vec![]);
        let (cmd, _) = present_commands(&w, &found(Some(alice), GROUPS, &[]), false)
            .unwrap()
            .unwrap();
        assert_eq!(cmd, "usermod -G '' -- alice");
    }

    #[test]
    fn password_is_compared_with_the_shadow_hash() {
        let alice = "alice:x:1000:1000::/home/alice:/bin/sh";
        let mut w = wanted();
        w.password = Some("$6$salt$hash".into());
        let mut f = found(Some(alice), GROUPS, &[]);
        f.shadow = Some("$6$salt$hash".into());
        assert!(present_commands(&w, &f, false).unwrap().is_none());
        f.shadow = Some("!".into());
        assert_eq!(
            present_commands(&w, &f, false).unwrap(),
            Some((String::new(), true))
        );
        w.update_always = false;
        assert!(present_commands(&w, &f, false).unwrap().is_none());
    }

    #[test]
    fn probe_reads_everything_in_one_script() {
        let mut w = wanted();
        w.password = Some("$6$x".into());
        let s = probe_script(&w, &["docker".into()]);
        assert!(s.contains("getent passwd alice"));
        assert!(s.contains("getent group docker"));
        assert!(s.contains("getent shadow alice"));
        assert!(!s.contains("$6$x"), "the hash stays out of the script");
        assert_eq!(
            PasswdEntry::parse("a:x:1:2:c,d:/h:/bin/sh")
                .unwrap()
                .comment,
            "c,d"
        );
    }
}
