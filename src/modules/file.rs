//! `file`: directories, empty files, symbolic and hard links, removal, and ownership/permissions, with
//! the Ansible `file` module's state machine and messages.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::file_spec;
use super::filecommon::{
    self as fc, AttrChanges, FileKind, Records, RemoteStat, ResolvedAttrs, WantedAttrs,
};
use super::remote::quote;
use super::{Arg, ArgSpec, Args, Diff, Module, ModuleError, Plan, TaskEnv};

pub struct File;

const STATES: &[&str] = &["absent", "directory", "file", "hard", "link", "touch"];

pub static SPEC: ArgSpec = file_spec!(
    Arg::req("path").aliases(&["dest", "name"]),
    Arg::opt("state").choices(STATES),
    Arg::opt("src"),
    Arg::opt("recurse"),
    Arg::opt("force"),
    Arg::opt("follow"),
    Arg::opt("modification_time"),
    Arg::opt("modification_time_format"),
    Arg::opt("access_time"),
    Arg::opt("access_time_format"),
);

const DEFAULT_TIME_FORMAT: &str = "%Y%m%d%H%M.%S";

/// A `modification_time`/`access_time` request.
#[derive(Clone, Debug, PartialEq)]
enum Stamp {
    Preserve,
    Now,
    /// A local time as `date -d` reads it ("2024-01-31 12:00:00").
    At(String),
}

fn stamp(
    args: &Args,
    name: &str,
    format_name: &str,
    state: Option<&str>,
) -> Result<Stamp, ModuleError> {
    let format = args
        .str(format_name)?
        .unwrap_or_else(|| DEFAULT_TIME_FORMAT.into());
    match args.str(name)?.as_deref() {
        None if state == Some("touch") => Ok(Stamp::Now),
        None | Some("preserve") => Ok(Stamp::Preserve),
        Some("now") => Ok(Stamp::Now),
        Some(value) => {
            if format != DEFAULT_TIME_FORMAT {
                return Err(ModuleError::msg(format!(
                    "file: {format_name} other than {DEFAULT_TIME_FORMAT} is not supported by orch"
                )));
            }
            let digits_ok = value.len() == 15
                && value.as_bytes()[12] == b'.'
                && value
                    .bytes()
                    .enumerate()
                    .all(|(i, b)| i == 12 || b.is_ascii_digit());
            if !digits_ok {
                return Err(ModuleError::msg(format!(
                    "Error while obtaining timestamp for time {value} using format {format}: time data '{value}' does not match format '{format}'"
                )));
            }
            let v = value;
            Ok(Stamp::At(format!(
                "{}-{}-{} {}:{}:{}",
                &v[0..4],
                &v[4..6],
                &v[6..8],
                &v[8..10],
                &v[10..12],
                &v[13..15]
            )))
        }
    }
}

/// Everything one `file` task plans: the diff, the result keys, and the script that makes it so.
#[derive(Default)]
struct Outcome {
    changed: bool,
    before: BTreeMap<String, Value>,
    after: BTreeMap<String, Value>,
    result: Map<String, Value>,
    script: String,
    /// The path whose final state the result reports (None once removed).
    final_path: Option<String>,
}

impl Outcome {
    fn new(path: &str, state: &str, prev_state: &str) -> Outcome {
        let mut o = Outcome::default();
        o.before.insert("path".into(), path.into());
        o.after.insert("path".into(), path.into());
        if prev_state != state {
            o.before.insert("state".into(), prev_state.into());
            o.after.insert("state".into(), state.into());
        }
        o
    }

    fn add_attr_changes(&mut self, changes: &AttrChanges) {
        if changes.any() {
            self.changed = true;
            self.before.extend(changes.before.clone());
            self.after.extend(changes.after.clone());
        }
    }
}

/// The inputs of the state functions.
struct Ctx {
    path: String,
    state: String,
    src: Option<String>,
    force: bool,
    follow: bool,
    recurse: bool,
    attrs: ResolvedAttrs,
    mtime: Stamp,
    atime: Stamp,
    check: bool,
    records: Records,
}

impl Ctx {
    fn epoch(&self, which: &str) -> Option<u64> {
        self.records.get("ts", which).and_then(|v| v.parse().ok())
    }

    /// Whether the timestamps would change on `stat`, and the `touch` lines that change them.
    fn stamps(&self, stat: &RemoteStat, var: &str, o: &mut Outcome) -> String {
        let mut lines = String::new();
        for (stamp, flag, current, key) in [
            (&self.mtime, "-m", stat.mtime, "mtime"),
            (&self.atime, "-a", stat.atime, "atime"),
        ] {
            match stamp {
                Stamp::Preserve => {}
                Stamp::Now => {
                    o.changed = true;
                    lines.push_str(&format!("touch -c {flag} -- {var}\n"));
                }
                Stamp::At(_) => {
                    let Some(epoch) = self.epoch(key) else {
                        continue;
                    };
                    if epoch != current || !stat.exists {
                        o.changed = true;
                        o.before.insert(key.into(), (current as f64).into());
                        o.after.insert(key.into(), (epoch as f64).into());
                        lines.push_str(&format!("touch -c {flag} -d @{epoch} -- {var}\n"));
                    }
                }
            }
        }
        lines
    }

    /// The followed stat of `path` as Ansible's `get_state` would see the link's target.
    fn target(&self) -> (String, RemoteStat) {
        let mut t = self.records.stat("t");
        t.is_link = false;
        let real = t.lnk_source.clone().unwrap_or_else(|| self.path.clone());
        (real, t)
    }
}

fn target_state(st: &RemoteStat) -> &'static str {
    if !st.exists {
        "absent"
    } else if st.kind == FileKind::Directory {
        "directory"
    } else if st.nlink > 1 {
        "hard"
    } else {
        "file"
    }
}

fn fail_with(msg: String, pairs: &[(&str, &str)]) -> ModuleError {
    let mut result = Map::new();
    for (k, v) in pairs {
        result.insert((*k).into(), (*v).into());
    }
    ModuleError::with_result(msg, result)
}

fn ensure_absent(ctx: &Ctx, p: &RemoteStat) -> Outcome {
    let prev = p.state();
    let mut o = Outcome::new(&ctx.path, "absent", prev);
    o.result.insert("path".into(), ctx.path.clone().into());
    o.result.insert("state".into(), "absent".into());
    if prev != "absent" {
        o.changed = true;
        let q = quote(&ctx.path);
        o.script = if prev == "directory" {
            format!("_e=$(rm -rf -- {q} 2>&1) || orch_fail \"rmtree failed: $_e\"\n")
        } else {
            format!("_e=$(rm -f -- {q} 2>&1) || orch_fail \"unlinking failed: $_e \"\n")
        };
    }
    o
}

/// Paths of every component of `path` (`a`, `a/b`, `a/b/c`), for `mkdir` one level at a time.
fn prefixes(path: &str) -> Vec<String> {
    let absolute = path.starts_with('/');
    let mut cur = String::new();
    let mut out = Vec::new();
    for part in path.trim_matches('/').split('/').filter(|p| !p.is_empty()) {
        if !cur.is_empty() || absolute {
            cur.push('/');
        }
        cur.push_str(part);
        out.push(cur.clone());
    }
    out
}

fn ensure_directory(ctx: &Ctx, p: &RemoteStat) -> Result<Outcome, ModuleError> {
    let (path, st) = if ctx.follow && p.state() == "link" {
        ctx.target()
    } else {
        (ctx.path.clone(), p.clone())
    };
    let prev = if p.state() == "link" && !ctx.follow {
        "link"
    } else {
        target_state(&st)
    };
    let mut o = Outcome::new(&path, "directory", prev);
    o.result.insert("path".into(), path.clone().into());
    o.final_path = Some(path.clone());
    if prev == "absent" {
        o.changed = true;
        for dir in prefixes(&path) {
            let q = quote(&dir);
            o.script.push_str(&format!(
                "if [ ! -e {q} ]; then _e=$(mkdir -- {q} 2>&1) || [ -d {q} ] || orch_fail \"There was an issue creating {}as requested: $_e\"\n",
                dir.replace(['"', '$', '`', '\\'], "_") + " "
            ));
            o.script.push_str(&ctx.attrs.apply_lines(&q, false, false));
            let mut scratch = Outcome::default();
            o.script
                .push_str(&ctx.stamps(&RemoteStat::default(), &q, &mut scratch));
            o.script.push_str("fi\n");
        }
        return Ok(o);
    }
    if prev != "directory" {
        return Err(fail_with(
            format!("{path} already exists as a {prev}"),
            &[("path", &path)],
        ));
    }
    let q = quote(&path);
    let changes = ctx.attrs.changes(&st)?;
    o.add_attr_changes(&changes);
    let mut recursive_change = false;
    if ctx.recurse {
        recursive_change = contents_differ(ctx)?;
    }
    if recursive_change {
        o.changed = true;
        o.script.push_str(&ctx.attrs.apply_lines(&q, true, true));
        // `chmod -R` skips the symlinks inside; `-h` above kept chown off their targets.
        if let Some(mode) = &ctx.attrs.wanted.mode {
            o.script.push_str(&format!(
                "_e=$(chmod -R -- {} {q} 2>&1) || orch_fail \"chmod failed: $_e\"\n",
                quote(mode)
            ));
        }
    } else if changes.any() {
        o.script.push_str(&ctx.attrs.apply_lines(&q, false, false));
    }
    let stamp_lines = ctx.stamps(&st, &q, &mut o);
    o.script.push_str(&stamp_lines);
    Ok(o)
}

/// Whether any entry below a directory has other attributes than wanted (`recurse: true`).
fn contents_differ(ctx: &Ctx) -> Result<bool, ModuleError> {
    let mut i = 1;
    while let Some(line) = ctx.records.get("rec", &i.to_string()) {
        i += 1;
        let mut parts = line.splitn(4, '/');
        let (Some(kind), Some(mode), Some(uid), Some(gid)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let stat = RemoteStat {
            exists: true,
            kind: if kind == "d" {
                FileKind::Directory
            } else {
                FileKind::File
            },
            mode: u32::from_str_radix(mode, 8).unwrap_or(0),
            uid: uid.parse().unwrap_or(0),
            gid: gid.parse().unwrap_or(0),
            ..RemoteStat::default()
        };
        let mut attrs = ctx.attrs.clone();
        if kind == "l" {
            attrs.wanted.mode = None;
        }
        if attrs.changes(&stat)?.any() {
            return Ok(true);
        }
    }
    Ok(false)
}

fn ensure_file(ctx: &Ctx, p: &RemoteStat) -> Result<Outcome, ModuleError> {
    let (path, st) = if ctx.follow && p.state() == "link" {
        ctx.target()
    } else {
        (ctx.path.clone(), p.clone())
    };
    let prev = if p.state() == "link" && !ctx.follow {
        "link"
    } else {
        target_state(&st)
    };
    if prev != "file" && prev != "hard" {
        return Err(fail_with(
            format!("file ({path}) is {prev}, cannot continue"),
            &[("path", &path), ("state", prev)],
        ));
    }
    let mut o = Outcome::new(&path, "file", prev);
    o.result.insert("path".into(), path.clone().into());
    o.final_path = Some(path.clone());
    let q = quote(&path);
    let changes = ctx.attrs.changes(&st)?;
    o.add_attr_changes(&changes);
    if changes.any() {
        o.script.push_str(&ctx.attrs.apply_lines(&q, false, false));
    }
    let stamp_lines = ctx.stamps(&st, &q, &mut o);
    o.script.push_str(&stamp_lines);
    Ok(o)
}

fn ensure_touch(ctx: &Ctx, p: &RemoteStat) -> Result<Outcome, ModuleError> {
    let prev = p.state();
    let mut o = Outcome::new(&ctx.path, "touch", prev);
    o.result.insert("dest".into(), ctx.path.clone().into());
    o.final_path = Some(ctx.path.clone());
    let q = quote(&ctx.path);
    let st = if ctx.follow && prev == "link" {
        ctx.target().1
    } else {
        p.clone()
    };
    if prev == "absent" {
        o.changed = true;
        o.script.push_str(&format!(
            "_e=$( {{ : >> {q}; }} 2>&1) || orch_fail \"Error, could not touch target: $_e\"\n"
        ));
        o.script.push_str(&ctx.attrs.apply_lines(&q, false, false));
        let mut scratch = Outcome::default();
        o.script
            .push_str(&ctx.stamps(&RemoteStat::default(), &q, &mut scratch));
        return Ok(o);
    }
    let changes = ctx.attrs.changes(&st)?;
    o.add_attr_changes(&changes);
    if changes.any() {
        o.script.push_str(&ctx.attrs.apply_lines(&q, false, false));
    }
    let stamp_lines = ctx.stamps(&st, &q, &mut o);
    o.script.push_str(&stamp_lines);
    Ok(o)
}

/// Replaces `path` atomically with a new link made by `ln_cmd` (`ln -s` or `ln`).
fn replace_with_link(path: &str, src: &str, ln_cmd: &str, prev: &str) -> String {
    let q = quote(path);
    let qs = quote(src);
    if prev == "absent" {
        return format!(
            "_e=$({ln_cmd} -- {qs} {q} 2>&1) || orch_fail \"Error while linking: $_e\"\n"
        );
    }
    let dir = match fc::dirname(path) {
        "" => ".",
        d => d,
    };
    let tmp = quote(&format!(
        "{}/.orch_link.{:016x}.tmp",
        dir.trim_end_matches('/'),
        rand::random::<u64>()
    ));
    let rmdir = if prev == "directory" {
        format!("rmdir -- {q} && ")
    } else {
        String::new()
    };
    format!("_e=$({{ {rmdir}{ln_cmd} -- {qs} {tmp} && mv -Tf -- {tmp} {q}; }} 2>&1) || {{ rm -f -- {tmp}; orch_fail \"Error while replacing: $_e\"; }}\n")
}

fn ensure_symlink(ctx: &Ctx, p: &RemoteStat) -> Result<Outcome, ModuleError> {
    let path = &ctx.path;
    let prev = p.state();
    let t = ctx.target().1;
    let src = ctx.src.clone().or_else(|| {
        if ctx.follow && t.exists {
            p.lnk_target.clone()
        } else {
            None
        }
    });
    let (tag, absrc) = match &src {
        Some(s) if !p.is_link && p.kind == FileKind::Directory => ("a1", Some(fc::join(path, s))),
        Some(s) => ("a2", Some(fc::join(fc::dirname(path), s))),
        None => ("t", None),
    };
    let absrc_stat = ctx.records.stat(tag);
    if let (false, Some(s), Some(abs)) = (ctx.force, &src, &absrc) {
        if !absrc_stat.exists {
            return Err(fail_with(
                format!("src file does not exist, use \"force=yes\" if you really want to create the link: {abs}"),
                &[("path", path), ("src", s)],
            ));
        }
    }
    if prev == "directory" {
        if !ctx.force {
            return Err(fail_with(
                format!("refusing to convert from {prev} to symlink for {path}"),
                &[("path", path)],
            ));
        }
        if ctx.records.flag("p", "nonempty") {
            return Err(fail_with(
                format!("the directory {path} is not empty, refusing to convert it"),
                &[("path", path)],
            ));
        }
    } else if (prev == "file" || prev == "hard") && !ctx.force {
        return Err(fail_with(
            format!("refusing to convert from {prev} to symlink for {path}"),
            &[("path", path)],
        ));
    }

    let mut o = Outcome::new(path, "link", prev);
    o.result.insert("dest".into(), path.clone().into());
    o.result.insert(
        "src".into(),
        src.clone().map(Value::from).unwrap_or(Value::Null),
    );
    o.final_path = Some(path.clone());
    if prev != "link" {
        let Some(s) = &src else {
            return Err(ModuleError::msg(
                "src is required for creating new symlinks",
            ));
        };
        o.changed = true;
        o.script
            .push_str(&replace_with_link(path, s, "ln -s", prev));
    } else if let Some(s) = &src {
        let old = p.lnk_target.clone().unwrap_or_default();
        if &old != s {
            o.before.insert("src".into(), old.into());
            o.after.insert("src".into(), s.clone().into());
            o.changed = true;
            o.script
                .push_str(&replace_with_link(path, s, "ln -s", prev));
        }
    }
    if ctx.check && !p.exists && !p.is_link {
        return Ok(o);
    }
    let q = quote(path);
    let target_stat = if ctx.src.is_some() { absrc_stat } else { t };
    if ctx.follow {
        if !target_stat.exists {
            o.result.insert(
                "warnings".into(),
                Value::Array(vec!["Cannot set fs attributes on a non-existent symlink target. follow should be set to False to avoid this.".into()]),
            );
        } else {
            let changes = ctx.attrs.changes(&target_stat)?;
            o.add_attr_changes(&changes);
            if changes.any() {
                o.script.push_str(&ctx.attrs.apply_lines(&q, false, false));
            }
        }
    } else {
        let mut own = ctx.attrs.clone();
        own.wanted.mode = None;
        let changes = if p.is_link {
            own.changes(p)?
        } else {
            AttrChanges::default()
        };
        o.add_attr_changes(&changes);
        if changes.any() || !p.is_link {
            o.script.push_str(&own.apply_lines(&q, false, true));
        }
    }
    Ok(o)
}

fn ensure_hardlink(ctx: &Ctx, p: &RemoteStat) -> Result<Outcome, ModuleError> {
    let path = &ctx.path;
    let prev = p.state();
    let src = ctx.src.clone();
    if prev != "hard" && src.is_none() {
        return Err(ModuleError::msg(
            "src is required for creating new hardlinks",
        ));
    }
    let s = ctx.records.stat("s");
    if let Some(src) = &src {
        if !s.exists {
            return Err(fail_with(
                "src does not exist".into(),
                &[("dest", path), ("src", src)],
            ));
        }
    }
    let mut o = Outcome::new(path, "hard", prev);
    o.result.insert("dest".into(), path.clone().into());
    o.result.insert(
        "src".into(),
        src.clone().map(Value::from).unwrap_or(Value::Null),
    );
    o.final_path = Some(path.clone());
    let same_inode = |a: &RemoteStat| a.inode == s.inode && a.dev == s.dev;
    match prev {
        "absent" => o.changed = true,
        "link" => {
            let old = p.lnk_target.clone().unwrap_or_default();
            if Some(&old) != src.as_ref() {
                o.before.insert("src".into(), old.into());
                o.after
                    .insert("src".into(), src.clone().unwrap_or_default().into());
                o.changed = true;
            }
        }
        "hard" => {
            if src.is_some() && !same_inode(p) {
                o.changed = true;
                if !ctx.force {
                    return Err(fail_with(
                        "Cannot link, different hard link exists at destination".into(),
                        &[("dest", path), ("src", src.as_deref().unwrap_or(""))],
                    ));
                }
            }
        }
        "file" => {
            o.changed = true;
            if !ctx.force {
                return Err(fail_with(
                    format!("Cannot link, {prev} exists at destination"),
                    &[("dest", path), ("src", src.as_deref().unwrap_or(""))],
                ));
            }
        }
        _ => {
            // A directory: the same inode means nothing to do, otherwise only with force.
            if same_inode(p) {
                let mut unchanged = Outcome::default();
                unchanged.result.insert("path".into(), path.clone().into());
                return Ok(unchanged);
            }
            o.changed = true;
            if !ctx.force {
                return Err(fail_with(
                    "Cannot link: different hard link exists at destination".into(),
                    &[("dest", path), ("src", src.as_deref().unwrap_or(""))],
                ));
            }
        }
    }
    if o.changed {
        if let Some(src) = &src {
            o.script.push_str(&replace_with_link(path, src, "ln", prev));
        }
    }
    if ctx.check && !p.exists {
        return Ok(o);
    }
    let st = if src.is_some() { s } else { p.clone() };
    let q = quote(path);
    let changes = ctx.attrs.changes(&st)?;
    o.add_attr_changes(&changes);
    if changes.any() || prev == "absent" {
        o.script.push_str(&ctx.attrs.apply_lines(&q, false, false));
    }
    let stamp_lines = ctx.stamps(&st, &q, &mut o);
    o.script.push_str(&stamp_lines);
    Ok(o)
}

struct FilePlan {
    script: String,
    final_path: Option<String>,
}

#[async_trait::async_trait]
impl Module for File {
    fn name(&self) -> &'static str {
        "file"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let mut path = args.req_str("path")?;
        let state_arg = args.str("state")?;
        if let Some(s) = &state_arg {
            args.choice("state", STATES, s)?;
        }
        let src = args.str("src")?;
        let recurse = args.bool("recurse", false)?;
        let force = args.bool("force", false)?;
        let follow = args.bool("follow", true)?;
        let wanted = WantedAttrs::from_args(args)?;
        let mtime = stamp(
            args,
            "modification_time",
            "modification_time_format",
            state_arg.as_deref(),
        )?;
        let atime = stamp(
            args,
            "access_time",
            "access_time_format",
            state_arg.as_deref(),
        )?;
        if recurse && state_arg.as_deref().is_some_and(|s| s != "directory") {
            return Err(ModuleError::msg(
                "recurse option requires state to be 'directory'",
            ));
        }
        if src.is_some() && !matches!(state_arg.as_deref(), Some("link" | "hard")) {
            return Err(ModuleError::msg(
                "src option requires state to be 'link' or 'hard'",
            ));
        }

        let q = quote(&path);
        let mut script = fc::probe_lines("p", &path, false, "none", -1);
        script.push_str(&fc::probe_lines("t", &path, true, "none", -1));
        script.push_str(&format!("if [ -d {q} ] && [ ! -L {q} ] && [ -n \"$(ls -A -- {q} 2>/dev/null)\" ]; then orch_kv p nonempty 1; fi\n"));
        if let Some(s) = &src {
            if state_arg.as_deref() == Some("link") {
                script.push_str(&fc::probe_lines(
                    "a1",
                    &fc::join(&path, s),
                    true,
                    "none",
                    -1,
                ));
                script.push_str(&fc::probe_lines(
                    "a2",
                    &fc::join(fc::dirname(&path), s),
                    true,
                    "none",
                    -1,
                ));
            } else {
                script.push_str(&fc::probe_lines("s", s, true, "none", -1));
                script.push_str(&fc::probe_lines(
                    "pj",
                    &fc::join(&path, fc::basename(s)),
                    false,
                    "none",
                    -1,
                ));
            }
        }
        if recurse {
            script.push_str(&format!(
                "_i=0\nfind {q} -mindepth 1 -printf '%y/%m/%U/%G\\n' 2>/dev/null | sort -u | {{ while IFS= read -r _l; do _i=$((_i+1)); orch_kv rec \"$_i\" \"$_l\"; done; }}\n"
            ));
        }
        for (stamp, key) in [(&mtime, "mtime"), (&atime, "atime")] {
            if let Stamp::At(when) = stamp {
                script.push_str(&format!(
                    "orch_kv ts {key} \"$(date -d {} +%s)\"\n",
                    quote(when)
                ));
            }
        }
        script.push_str(&wanted.lookup_script());
        let (records, out) = fc::run_script(env, &script, None).await?;
        if out.rc != 0 {
            return Err(fc::script_failed(&format!("probing {path}"), &out));
        }
        let attrs = wanted.resolve(&records)?;
        let mut p = records.stat("p");
        let prev_state = p.state();
        let state = state_arg.clone().unwrap_or_else(|| {
            if prev_state != "absent" {
                prev_state.to_string()
            } else if recurse {
                "directory".into()
            } else {
                "file".into()
            }
        });
        if recurse && state != "directory" {
            return Err(ModuleError::msg(
                "recurse option requires state to be 'directory'",
            ));
        }
        // A hard link named after its source inside an existing directory, as Ansible's file module does.
        if state == "hard" && records.stat("t").kind == FileKind::Directory {
            if let Some(s) = &src {
                path = fc::join(&path, fc::basename(s));
                p = records.stat("pj");
            }
        }
        let ctx = Ctx {
            path,
            state: state.clone(),
            src,
            force,
            follow,
            recurse,
            attrs,
            mtime,
            atime,
            check: env.check_mode(),
            records,
        };
        let outcome = match ctx.state.as_str() {
            "absent" => ensure_absent(&ctx, &p),
            "directory" => ensure_directory(&ctx, &p)?,
            "file" => ensure_file(&ctx, &p)?,
            "touch" => ensure_touch(&ctx, &p)?,
            "link" => ensure_symlink(&ctx, &p)?,
            _ => ensure_hardlink(&ctx, &p)?,
        };

        let mut result = outcome.result;
        if ctx.state != "absent" && p.exists {
            let mut info = Map::new();
            let shown =
                if ctx.follow && p.is_link && matches!(ctx.state.as_str(), "file" | "directory") {
                    ctx.target().1
                } else {
                    p.clone()
                };
            shown.path_info(&mut info);
            for (k, v) in info {
                result.entry(k).or_insert(v);
            }
        }
        let mut diffs = Vec::new();
        if env.diff_mode() && outcome.changed {
            let header = ctx.path.clone();
            diffs.push(Diff {
                before_header: header.clone(),
                after_header: header,
                before: fc::json_block(&outcome.before),
                after: fc::json_block(&outcome.after),
            });
        }
        let data = FilePlan {
            script: outcome.script,
            final_path: outcome.final_path,
        };
        Ok(Plan {
            changed: outcome.changed,
            diffs,
            result,
            skip_in_check: None,
            data: Some(Box::new(data)),
        })
    }

    async fn apply(
        &self,
        env: &dyn TaskEnv,
        _args: &Args,
        plan: Plan,
    ) -> Result<Map<String, Value>, ModuleError> {
        let mut result = plan.result;
        let Some(data) = plan.data.and_then(|d| d.downcast::<FilePlan>().ok()) else {
            return Ok(result);
        };
        let mut script = data.script.clone();
        if let Some(final_path) = &data.final_path {
            script.push_str(&fc::probe_lines("final", final_path, false, "none", -1));
        }
        let (records, out) = fc::run_script(env, &script, None).await?;
        if out.rc != 0 {
            return Err(fc::script_failed("file", &out));
        }
        if data.final_path.is_some() {
            records.stat("final").path_info(&mut result);
        } else {
            for key in ["uid", "gid", "owner", "group", "mode", "size"] {
                result.remove(key);
            }
            result.insert("state".into(), "absent".into());
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testenv::{args, current_user, failure, mode_of, run_module, LocalEnv};
    use super::*;

    #[tokio::test]
    async fn directory_created_with_mode_then_unchanged() {
        let mut env = LocalEnv::new();
        let dir = env.path("a/b/c");
        let a = args(
            "file",
            json!({"path": dir, "state": "directory", "mode": "0750"}),
        );
        env.check = true;
        env.diff = true;
        let predicted = run_module(&File, &env, &a).await.unwrap();
        assert!(predicted.changed);
        assert!(!std::path::Path::new(&env.path("a")).exists());
        assert!(
            predicted.diffs[0]
                .after
                .contains("\"state\": \"directory\""),
            "{}",
            predicted.diffs[0].after
        );
        env.check = false;
        let out = run_module(&File, &env, &a).await.unwrap();
        assert!(out.changed);
        assert_eq!(mode_of(&dir), 0o750);
        assert_eq!(mode_of(&env.path("a")), 0o750);
        assert_eq!(out.result["state"], json!("directory"));
        assert_eq!(out.result["mode"], json!("0750"));
        assert!(!run_module(&File, &env, &a).await.unwrap().changed);
    }

    #[tokio::test]
    async fn recurse_sets_mode_below() {
        let env = LocalEnv::new();
        let dir = env.path("tree");
        std::fs::create_dir_all(format!("{dir}/sub")).unwrap();
        std::fs::write(format!("{dir}/sub/f"), "x").unwrap();
        let (user, group) = current_user();
        let a = args(
            "file",
            json!({"path": dir, "state": "directory", "recurse": true, "mode": "u=rwX,g=rX,o=", "owner": user, "group": group}),
        );
        assert!(run_module(&File, &env, &a).await.unwrap().changed);
        assert_eq!(mode_of(&format!("{dir}/sub/f")), 0o640);
        assert_eq!(mode_of(&format!("{dir}/sub")), 0o750);
        assert!(!run_module(&File, &env, &a).await.unwrap().changed);
    }

    #[tokio::test]
    async fn absent_and_touch() {
        let env = LocalEnv::new();
        let f = env.path("t");
        let touch = args("file", json!({"path": f, "state": "touch", "mode": "0600"}));
        let out = run_module(&File, &env, &touch).await.unwrap();
        assert!(out.changed);
        assert_eq!(out.result["dest"], json!(f));
        assert_eq!(mode_of(&f), 0o600);
        // touch always changes (it updates the timestamps) unless both are preserved.
        assert!(run_module(&File, &env, &touch).await.unwrap().changed);
        let keep = args(
            "file",
            json!({"path": f, "state": "touch", "modification_time": "preserve", "access_time": "preserve"}),
        );
        assert!(!run_module(&File, &env, &keep).await.unwrap().changed);
        let stamped = args(
            "file",
            json!({"path": f, "state": "file", "modification_time": "202001021030.00"}),
        );
        assert!(run_module(&File, &env, &stamped).await.unwrap().changed);
        assert!(!run_module(&File, &env, &stamped).await.unwrap().changed);
        let absent = args("file", json!({"path": f, "state": "absent"}));
        let out = run_module(&File, &env, &absent).await.unwrap();
        assert!(out.changed);
        assert_eq!(out.result["state"], json!("absent"));
        assert!(!std::path::Path::new(&f).exists());
        assert!(!run_module(&File, &env, &absent).await.unwrap().changed);
    }

    #[tokio::test]
    async fn file_state_on_missing_path_fails() {
        let env = LocalEnv::new();
        let f = env.path("missing");
        let (msg, result) = failure(
            run_module(
                &File,
                &env,
                &args("file", json!({"path": f, "mode": "0644"})),
            )
            .await,
        );
        assert_eq!(msg, format!("file ({f}) is absent, cannot continue"));
        assert_eq!(result["path"], json!(f));
        let (msg, _) =
            failure(run_module(&File, &env, &args("file", json!({"path": f, "src": "x"}))).await);
        assert_eq!(msg, "src option requires state to be 'link' or 'hard'");
    }

    #[tokio::test]
    async fn symlinks_and_hard_links() {
        let mut env = LocalEnv::new();
        let target = env.path("target");
        std::fs::write(&target, "x").unwrap();
        let link = env.path("link");
        let a = args(
            "file",
            json!({"path": link, "src": target, "state": "link"}),
        );
        let out = run_module(&File, &env, &a).await.unwrap();
        assert!(out.changed);
        assert_eq!(std::fs::read_link(&link).unwrap().to_string_lossy(), target);
        assert_eq!(out.result["state"], json!("link"));
        assert!(!run_module(&File, &env, &a).await.unwrap().changed);
        // Re-pointing a link shows the src change in the diff.
        let other = env.path("other");
        std::fs::write(&other, "y").unwrap();
        env.diff = true;
        let out = run_module(
            &File,
            &env,
            &args("file", json!({"path": link, "src": other, "state": "link"})),
        )
        .await
        .unwrap();
        assert!(out.changed);
        assert!(out.diffs[0]
            .before
            .contains(&format!("\"src\": \"{target}\"")));
        assert_eq!(std::fs::read_link(&link).unwrap().to_string_lossy(), other);
        // A regular file is not replaced without force.
        let (msg, _) = failure(
            run_module(
                &File,
                &env,
                &args(
                    "file",
                    json!({"path": target, "src": other, "state": "link"}),
                ),
            )
            .await,
        );
        assert_eq!(
            msg,
            format!("refusing to convert from file to symlink for {target}")
        );
        let (msg, _) = failure(
            run_module(
                &File,
                &env,
                &args(
                    "file",
                    json!({"path": env.path("l2"), "src": "nope", "state": "link"}),
                ),
            )
            .await,
        );
        assert!(
            msg.starts_with("src file does not exist, use \"force=yes\""),
            "{msg}"
        );

        let hard = env.path("hard");
        let h = args(
            "file",
            json!({"path": hard, "src": target, "state": "hard"}),
        );
        assert!(run_module(&File, &env, &h).await.unwrap().changed);
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(&hard).unwrap().ino(),
            std::fs::metadata(&target).unwrap().ino()
        );
        assert!(!run_module(&File, &env, &h).await.unwrap().changed);
    }

    #[tokio::test]
    async fn directory_over_file_fails() {
        let env = LocalEnv::new();
        let f = env.path("f");
        std::fs::write(&f, "x").unwrap();
        let (msg, _) = failure(
            run_module(
                &File,
                &env,
                &args("file", json!({"path": f, "state": "directory"})),
            )
            .await,
        );
        assert_eq!(msg, format!("{f} already exists as a file"));
    }
}
