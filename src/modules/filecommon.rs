//! Shared plumbing for the file-oriented modules: the probe protocol, remote `stat` records, file
//! attributes (mode/owner/group) planning and the atomic write script.
//!
//! Probe protocol: scripts print records as `@tag.key=value` lines on stdout; values that may hold
//! arbitrary bytes (content, link targets, messages) are base64. A script that fails on purpose prints
//! `@error.msg=<base64>` and exits non-zero.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use serde_json::{Map, Value};

use super::remote::quote;
use super::{Args, Diff, ModuleError, TaskEnv};
use crate::transport::ExecOutput;

/// Ansible's `MAX_FILE_SIZE_FOR_DIFF`: larger files are not diffed.
pub const MAX_DIFF_SIZE: u64 = 104_448;

/// Shell functions every probe and write script starts with (POSIX sh + coreutils).
pub const SHELL_LIB: &str = r#"orch_b64() { base64 -w 0; echo; }
orch_kv() { printf '@%s.%s=%s\n' "$1" "$2" "$3"; }
orch_fail() { printf '@error.msg='; printf '%s' "$1" | orch_b64; exit 1; }
orch_stat() {
  _t=$1 _p=$2 _c=$4 _m=$5 _L=
  [ "$3" = 1 ] && _L=-L
  if [ -L "$_p" ]; then
    orch_kv "$_t" islnk 1
    printf '@%s.lnk_target=' "$_t"; readlink -- "$_p" | orch_b64
    printf '@%s.lnk_source=' "$_t"; readlink -f -- "$_p" | orch_b64
  fi
  _s=$(stat $_L -c '%F/%a/%u/%g/%s/%Y/%X/%Z/%i/%d/%h/%U/%G' -- "$_p" 2>/dev/null) || { orch_kv "$_t" exists 0; return 0; }
  orch_kv "$_t" exists 1
  orch_kv "$_t" stat "$_s"
  [ -r "$_p" ] && orch_kv "$_t" readable 1
  [ -w "$_p" ] && orch_kv "$_t" writeable 1
  [ -x "$_p" ] && orch_kv "$_t" executable 1
  if [ -f "$_p" ] && [ -r "$_p" ] && { [ -n "$_L" ] || [ ! -L "$_p" ]; }; then
    if [ "$_c" != none ]; then
      _h=$("${_c}sum" < "$_p") && orch_kv "$_t" checksum "${_h%% *}"
    fi
    if [ "$_m" -ge 0 ] && [ "$(stat -L -c %s -- "$_p")" -le "$_m" ]; then
      printf '@%s.content=' "$_t"; orch_b64 < "$_p"
    fi
  fi
  return 0
}
orch_uid() { _u=$(id -u -- "$1" 2>/dev/null) && orch_kv lookup uid "$_u"; return 0; }
orch_gid() { _g=$(getent group "$1" | cut -d: -f3) && [ -n "$_g" ] && orch_kv lookup gid "$_g"; return 0; }
"#;

/// The records a probe script printed.
#[derive(Debug, Default)]
pub struct Records {
    map: HashMap<String, HashMap<String, String>>,
}

impl Records {
    pub fn parse(stdout: &[u8]) -> Records {
        let mut map: HashMap<String, HashMap<String, String>> = HashMap::new();
        for line in String::from_utf8_lossy(stdout).lines() {
            let Some(rest) = line.strip_prefix('@') else {
                continue;
            };
            let Some((name, value)) = rest.split_once('=') else {
                continue;
            };
            let Some((tag, key)) = name.split_once('.') else {
                continue;
            };
            map.entry(tag.to_string())
                .or_default()
                .insert(key.to_string(), value.to_string());
        }
        Records { map }
    }

    pub fn get(&self, tag: &str, key: &str) -> Option<&str> {
        self.map
            .get(tag)
            .and_then(|m| m.get(key))
            .map(String::as_str)
    }

    pub fn flag(&self, tag: &str, key: &str) -> bool {
        self.get(tag, key) == Some("1")
    }

    pub fn bytes(&self, tag: &str, key: &str) -> Option<Vec<u8>> {
        self.get(tag, key).and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
        })
    }

    /// A base64 value as text, without the trailing newline the shell command printed.
    pub fn text(&self, tag: &str, key: &str) -> Option<String> {
        self.bytes(tag, key).map(|b| {
            let s = String::from_utf8_lossy(&b).into_owned();
            s.strip_suffix('\n').map(str::to_string).unwrap_or(s)
        })
    }

    /// The `stat` record written by `orch_stat TAG ...`.
    pub fn stat(&self, tag: &str) -> RemoteStat {
        let mut stat = RemoteStat {
            exists: self.flag(tag, "exists"),
            is_link: self.flag(tag, "islnk"),
            lnk_target: self.text(tag, "lnk_target"),
            lnk_source: self.text(tag, "lnk_source"),
            readable: self.flag(tag, "readable"),
            writeable: self.flag(tag, "writeable"),
            executable: self.flag(tag, "executable"),
            checksum: self.get(tag, "checksum").map(str::to_string),
            content: self.bytes(tag, "content"),
            ..RemoteStat::default()
        };
        if let Some(line) = self.get(tag, "stat") {
            let fields: Vec<&str> = line.splitn(13, '/').collect();
            if fields.len() == 13 {
                let num = |i: usize| fields[i].parse::<u64>().unwrap_or(0);
                stat.kind = FileKind::from_stat(fields[0]);
                stat.mode = u32::from_str_radix(fields[1], 8).unwrap_or(0);
                stat.uid = num(2) as u32;
                stat.gid = num(3) as u32;
                stat.size = num(4);
                stat.mtime = num(5);
                stat.atime = num(6);
                stat.ctime = num(7);
                stat.inode = num(8);
                stat.dev = num(9);
                stat.nlink = num(10);
                // `stat` prints UNKNOWN for ids without a name; Ansible shows the number instead.
                stat.owner = if fields[11] == "UNKNOWN" {
                    stat.uid.to_string()
                } else {
                    fields[11].to_string()
                };
                stat.group = if fields[12] == "UNKNOWN" {
                    stat.gid.to_string()
                } else {
                    fields[12].to_string()
                };
            }
        }
        stat
    }

    /// The message of a script that stopped with `orch_fail`.
    pub fn error(&self) -> Option<String> {
        self.text("error", "msg")
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FileKind {
    #[default]
    Missing,
    File,
    Directory,
    Link,
    Char,
    Block,
    Fifo,
    Socket,
    Other,
}

impl FileKind {
    fn from_stat(s: &str) -> FileKind {
        match s {
            "regular file" | "regular empty file" => FileKind::File,
            "directory" => FileKind::Directory,
            "symbolic link" => FileKind::Link,
            "character special file" => FileKind::Char,
            "block special file" => FileKind::Block,
            "fifo" => FileKind::Fifo,
            "socket" => FileKind::Socket,
            _ => FileKind::Other,
        }
    }
}

/// What `orch_stat` found about one path (the link itself, or its target when followed).
#[derive(Clone, Debug, Default)]
pub struct RemoteStat {
    pub exists: bool,
    pub kind: FileKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub owner: String,
    pub group: String,
    pub size: u64,
    pub mtime: u64,
    pub atime: u64,
    pub ctime: u64,
    pub inode: u64,
    pub dev: u64,
    pub nlink: u64,
    /// The path itself is a symbolic link (even when the stat followed it).
    pub is_link: bool,
    pub lnk_target: Option<String>,
    pub lnk_source: Option<String>,
    pub readable: bool,
    pub writeable: bool,
    pub executable: bool,
    pub checksum: Option<String>,
    pub content: Option<Vec<u8>>,
}

impl RemoteStat {
    /// Ansible's `get_state` for an lstat-ed path: absent, link, directory, hard, file.
    pub fn state(&self) -> &'static str {
        if self.is_link {
            "link"
        } else if !self.exists {
            "absent"
        } else if self.kind == FileKind::Directory {
            "directory"
        } else if self.nlink > 1 {
            "hard"
        } else {
            "file"
        }
    }

    /// Ansible's result keys for an existing path (`add_path_info`): uid, gid, owner, group, mode, state, size.
    pub fn path_info(&self, result: &mut Map<String, Value>) {
        if !self.exists {
            return;
        }
        result.insert("uid".into(), self.uid.into());
        result.insert("gid".into(), self.gid.into());
        result.insert("owner".into(), self.owner.clone().into());
        result.insert("group".into(), self.group.clone().into());
        result.insert("mode".into(), format_mode(self.mode).into());
        result.insert("state".into(), self.state().into());
        result.insert("size".into(), self.size.into());
    }
}

/// Ansible's `'0%03o' % mode`: "0644", "04755".
pub fn format_mode(mode: u32) -> String {
    format!("0{:03o}", mode & 0o7777)
}

/// Runs `SHELL_LIB` + `script` and parses its records; a script that called `orch_fail` becomes a
/// module failure, any other non-zero exit too (with its stderr).
pub async fn run_script(
    env: &dyn TaskEnv,
    script: &str,
    stdin: Option<Vec<u8>>,
) -> Result<(Records, ExecOutput), ModuleError> {
    let full = format!("{SHELL_LIB}{script}");
    let out = env.run(&full, stdin).await?;
    let records = Records::parse(&out.stdout);
    if let Some(msg) = records.error() {
        return Err(ModuleError::msg(msg));
    }
    Ok((records, out))
}

/// A non-zero exit without an `orch_fail` message.
pub fn script_failed(what: &str, out: &ExecOutput) -> ModuleError {
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let mut result = Map::new();
    result.insert("rc".into(), out.rc.into());
    result.insert("stderr".into(), stderr.clone().into());
    ModuleError::with_result(format!("{what} failed (rc={}): {stderr}", out.rc), result)
}

/// `dirname` as Python's `os.path.dirname`: "" for a bare name.
pub fn dirname(path: &str) -> &str {
    match path.rfind('/') {
        None => "",
        Some(i) => {
            let head = &path[..=i];
            match head.trim_end_matches('/') {
                "" => head,
                trimmed => trimmed,
            }
        }
    }
}

pub fn basename(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
}

/// Joins like `os.path.join` for two parts.
pub fn join(dir: &str, name: &str) -> String {
    if name.starts_with('/') || dir.is_empty() {
        name.to_string()
    } else if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The ownership and permissions the task asks for (`mode`, `owner`, `group`).
#[derive(Clone, Debug, Default)]
pub struct WantedAttrs {
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

impl WantedAttrs {
    pub fn from_args(args: &Args) -> Result<WantedAttrs, ModuleError> {
        let attrs = WantedAttrs {
            mode: args.mode("mode")?,
            owner: args.str("owner")?,
            group: args.str("group")?,
        };
        if let Some(mode) = &attrs.mode {
            // Reject a malformed symbolic mode before any host is touched.
            apply_mode(0o644, mode, false)?;
        }
        Ok(attrs)
    }

    pub fn is_empty(&self) -> bool {
        self.mode.is_none() && self.owner.is_none() && self.group.is_none()
    }

    /// Script lines that resolve the owner and group names on the target.
    pub fn lookup_script(&self) -> String {
        let mut s = String::new();
        if let Some(owner) = self.owner.as_deref().filter(|o| o.parse::<u32>().is_err()) {
            s.push_str(&format!("orch_uid {}\n", quote(owner)));
        }
        if let Some(group) = self.group.as_deref().filter(|g| g.parse::<u32>().is_err()) {
            s.push_str(&format!("orch_gid {}\n", quote(group)));
        }
        s
    }

    /// Resolves names with the records of `lookup_script`, failing as Ansible does for unknown names.
    pub fn resolve(&self, records: &Records) -> Result<ResolvedAttrs, ModuleError> {
        let uid = match &self.owner {
            None => None,
            Some(o) => match o.parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => Some(
                    records
                        .get("lookup", "uid")
                        .and_then(|u| u.parse().ok())
                        .ok_or_else(|| {
                            ModuleError::msg(format!("chown failed: failed to look up user {o}"))
                        })?,
                ),
            },
        };
        let gid = match &self.group {
            None => None,
            Some(g) => match g.parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => Some(
                    records
                        .get("lookup", "gid")
                        .and_then(|u| u.parse().ok())
                        .ok_or_else(|| {
                            ModuleError::msg(format!("chgrp failed: failed to look up group {g}"))
                        })?,
                ),
            },
        };
        Ok(ResolvedAttrs {
            wanted: self.clone(),
            uid,
            gid,
        })
    }
}

/// Wanted attributes with the owner and group resolved to ids on the target.
#[derive(Clone, Debug, Default)]
pub struct ResolvedAttrs {
    pub wanted: WantedAttrs,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Attribute differences in Ansible's diff shape (`{"mode": "0644"}`, `{"owner": 0}` …).
#[derive(Clone, Debug, Default)]
pub struct AttrChanges {
    pub before: BTreeMap<String, Value>,
    pub after: BTreeMap<String, Value>,
}

impl AttrChanges {
    pub fn any(&self) -> bool {
        !self.after.is_empty()
    }
}

impl ResolvedAttrs {
    pub fn is_empty(&self) -> bool {
        self.wanted.is_empty()
    }

    /// What `chmod`/`chown`/`chgrp` would change on an existing path.
    pub fn changes(&self, stat: &RemoteStat) -> Result<AttrChanges, ModuleError> {
        let mut changes = AttrChanges::default();
        if let Some(uid) = self.uid.filter(|u| *u != stat.uid) {
            changes.before.insert("owner".into(), stat.uid.into());
            changes.after.insert("owner".into(), uid.into());
        }
        if let Some(gid) = self.gid.filter(|g| *g != stat.gid) {
            changes.before.insert("group".into(), stat.gid.into());
            changes.after.insert("group".into(), gid.into());
        }
        if let Some(mode) = &self.wanted.mode {
            let new_mode = apply_mode(stat.mode, mode, stat.kind == FileKind::Directory)?;
            if new_mode != stat.mode & 0o7777 {
                changes
                    .before
                    .insert("mode".into(), format_mode(stat.mode).into());
                changes
                    .after
                    .insert("mode".into(), format_mode(new_mode).into());
            }
        }
        Ok(changes)
    }

    /// Shell lines setting the attributes on the path in shell variable `var` (e.g. `"$tmp"`).
    /// `no_deref` changes a symlink's own ownership instead of its target's.
    pub fn apply_lines(&self, var: &str, recurse: bool, no_deref: bool) -> String {
        let r = if recurse { "-R " } else { "" };
        let h = if no_deref { "-h " } else { "" };
        let mut s = String::new();
        if let Some(owner) = &self.wanted.owner {
            s.push_str(&format!(
                "_e=$(chown {r}{h}-- {} {var} 2>&1) || orch_fail \"chown failed: $_e\"\n",
                quote(owner)
            ));
        }
        if let Some(group) = &self.wanted.group {
            s.push_str(&format!(
                "_e=$(chgrp {r}{h}-- {} {var} 2>&1) || orch_fail \"chgrp failed: $_e\"\n",
                quote(group)
            ));
        }
        // Linux cannot chmod a symlink itself: Ansible skips the mode for links it does not follow.
        if let (Some(mode), false) = (&self.wanted.mode, no_deref) {
            s.push_str(&format!(
                "_e=$(chmod {r}-- {} {var} 2>&1) || orch_fail \"chmod failed: $_e\"\n",
                quote(mode)
            ));
        }
        s
    }
}

/// The attribute diff Ansible shows (`before`/`after` dicts rendered as sorted 4-space JSON);
/// `path` adds the `path` key the file module puts in its diffs.
pub fn attr_diff(
    header: &str,
    path: Option<&str>,
    changes: &AttrChanges,
    extra_before: &[(&str, Value)],
    extra_after: &[(&str, Value)],
) -> Diff {
    let mut before = changes.before.clone();
    let mut after = changes.after.clone();
    if let Some(path) = path {
        before.insert("path".into(), path.into());
        after.insert("path".into(), path.into());
    }
    for (k, v) in extra_before {
        before.insert((*k).into(), v.clone());
    }
    for (k, v) in extra_after {
        after.insert((*k).into(), v.clone());
    }
    Diff {
        before_header: header.into(),
        after_header: header.into(),
        before: json_block(&before),
        after: json_block(&after),
    }
}

/// `json.dumps(x, sort_keys=True, indent=4) + "\n"`, as Ansible's callback renders dict diffs.
pub fn json_block(map: &BTreeMap<String, Value>) -> String {
    use serde::Serialize;
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    if map.serialize(&mut ser).is_err() {
        return String::new();
    }
    let mut s = String::from_utf8_lossy(&buf).into_owned();
    s.push('\n');
    s
}

/// A content diff, or None when either side is binary or too large (Ansible prints "diff skipped").
pub fn text_diff(
    before_header: &str,
    before: Option<&[u8]>,
    after_header: &str,
    after: &[u8],
) -> Option<Diff> {
    let is_text = |b: &[u8]| !b.contains(&0) && (b.len() as u64) <= MAX_DIFF_SIZE;
    let before = before.unwrap_or(b"");
    if !is_text(before) || !is_text(after) {
        return None;
    }
    Some(Diff {
        before_header: before_header.into(),
        after_header: after_header.into(),
        before: String::from_utf8_lossy(before).into_owned(),
        after: String::from_utf8_lossy(after).into_owned(),
    })
}

/// The mode a `chmod MODE` would leave on a path whose mode is `current` (octal or symbolic
/// `[ugoa]*[-+=][rwxXst]*|[ugo]`, comma-separated), as Ansible computes it to decide `changed`.
pub fn apply_mode(current: u32, mode: &str, is_dir: bool) -> Result<u32, ModuleError> {
    let bad = || {
        ModuleError::msg(format!(
            "mode must be in octal or symbolic form: bad symbolic permission for mode: {mode}"
        ))
    };
    if !mode.is_empty() && mode.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return u32::from_str_radix(mode, 8)
            .map(|m| m & 0o7777)
            .map_err(|_| bad());
    }
    let original = current & 0o7777;
    let mut result = original;
    for clause in mode.split(',') {
        let who_len = clause.find(['+', '-', '=']).ok_or_else(bad)?;
        let who = &clause[..who_len];
        if who.is_empty() || !who.chars().all(|c| "ugoa".contains(c)) {
            return Err(bad());
        }
        let who_mask = who.chars().fold(0u32, |m, c| {
            m | match c {
                'u' => 0o4700,
                'g' => 0o2070,
                'o' => 0o1007,
                _ => 0o7777,
            }
        });
        let mut rest = &clause[who_len..];
        while let Some(op) = rest.chars().next() {
            rest = &rest[1..];
            let end = rest.find(['+', '-', '=']).unwrap_or(rest.len());
            let perms = &rest[..end];
            rest = &rest[end..];
            let mut bits = 0u32;
            if perms.len() == 1 && "ugo".contains(perms) {
                // Copy another class's permissions (g=u).
                let shift = match perms {
                    "u" => 6,
                    "g" => 3,
                    _ => 0,
                };
                let rwx = (result >> shift) & 0o7;
                bits = rwx << 6 | rwx << 3 | rwx;
            } else {
                for p in perms.chars() {
                    bits |= match p {
                        'r' => 0o444,
                        'w' => 0o222,
                        'x' => 0o111,
                        'X' if is_dir || original & 0o111 != 0 => 0o111,
                        'X' => 0,
                        's' => 0o6000,
                        't' => 0o1000,
                        _ => return Err(bad()),
                    };
                }
            }
            let bits = bits & who_mask;
            result = match op {
                '+' => result | bits,
                '-' => result & !bits,
                _ => (result & !(who_mask & 0o0777 | who_mask & 0o7000)) | bits,
            };
        }
    }
    Ok(result)
}

/// Where an atomic write takes the new content from.
pub enum WriteSource<'a> {
    /// The script's stdin (content never appears in argv).
    Stdin,
    /// A file already on the target (`remote_src`).
    Remote(&'a str),
}

/// How a failing `validate` command is reported (copy and lineinfile word it differently).
#[derive(Clone, Copy)]
pub enum ValidateStyle {
    Copy,
    Lines,
}

pub struct WriteSpec<'a> {
    pub dest: &'a str,
    pub source: WriteSource<'a>,
    pub attrs: &'a ResolvedAttrs,
    pub validate: Option<&'a str>,
    pub backup: bool,
    /// Create missing parent directories first (lineinfile/blockinfile `create`).
    pub make_parents: bool,
}

/// A script that replaces `dest` atomically: temp file in the destination's directory (created 0600),
/// content, fsync, mode/ownership (from the old file, then the task's), validate, backup, rename.
/// Prints the new `orch_stat` of dest as tag `dest`, and `@write.backup=` with the backup's path.
pub fn write_script(spec: &WriteSpec) -> Result<String, ModuleError> {
    let dir = match dirname(spec.dest) {
        "" => ".",
        d => d,
    };
    let mut s = String::new();
    s.push_str(&format!("dest={}\ndir={}\n", quote(spec.dest), quote(dir)));
    s.push_str(&format!(
        "tmp=\"$dir/.orch_tmp.{:016x}.$$\"\n",
        rand::random::<u64>()
    ));
    s.push_str("trap 'rm -f -- \"$tmp\" \"$tmp.err\"' EXIT\n");
    if spec.make_parents {
        s.push_str(
            "[ -d \"$dir\" ] || mkdir -p -- \"$dir\" || orch_fail \"Error creating $dir\"\n",
        );
    }
    s.push_str("[ -d \"$dir\" ] || orch_fail \"Destination directory $dir does not exist\"\n");
    s.push_str("defmode=$(printf '%o' $(( 0666 & ~$(umask) )))\numask 077\n");
    s.push_str("( set -C; : > \"$tmp\" ) 2>/dev/null || orch_fail \"could not create a temporary file in $dir\"\n");
    match spec.source {
        WriteSource::Stdin => s.push_str("cat > \"$tmp\" || orch_fail \"could not write $tmp\"\n"),
        WriteSource::Remote(src) => s.push_str(&format!(
            "cat -- {} > \"$tmp\" || orch_fail \"could not copy {}\"\n",
            quote(src),
            src.replace('"', "'")
        )),
    }
    s.push_str("sync -- \"$tmp\" 2>/dev/null || :\n");
    s.push_str("if [ -e \"$dest\" ]; then chmod --reference=\"$dest\" -- \"$tmp\"; chown --reference=\"$dest\" -- \"$tmp\" 2>/dev/null || :; else chmod -- \"$defmode\" \"$tmp\"; fi\n");
    s.push_str(&spec.attrs.apply_lines("\"$tmp\"", false, false));
    if let Some(validate) = spec.validate {
        if !validate.contains("%s") {
            return Err(ModuleError::msg(format!(
                "validate must contain %s: {validate}"
            )));
        }
        let cmd = validate
            .replace("%%", "\u{0}")
            .replace("%s", "\"$tmp\"")
            .replace('\u{0}', "%");
        s.push_str(&format!(
            "vout=$( {cmd} 2>\"$tmp.err\" ); vrc=$?\nverr=$(cat -- \"$tmp.err\" 2>/dev/null)\n\
             if [ \"$vrc\" -ne 0 ]; then orch_kv validate rc \"$vrc\"; printf '@validate.stdout='; printf '%s' \"$vout\" | orch_b64; \
             printf '@validate.stderr='; printf '%s' \"$verr\" | orch_b64; exit 3; fi\n"
        ));
    }
    if spec.backup {
        s.push_str(
            "if [ -e \"$dest\" ]; then bk=\"$dest.$$.$(date +%Y-%m-%d@%H:%M:%S)~\"; cp -p -- \"$dest\" \"$bk\" || orch_fail \"Could not make backup of $dest to $bk\"; \
             printf '@write.backup='; printf '%s' \"$bk\" | orch_b64; fi\n",
        );
    }
    s.push_str("mv -Tf -- \"$tmp\" \"$dest\" || orch_fail \"Unable to make $tmp into to $dest\"\n");
    s.push_str("orch_stat dest \"$dest\" 0 sha1 -1\n");
    Ok(s)
}

/// What a write script reported: the new state of dest and the backup it made.
pub struct WriteOutcome {
    pub stat: RemoteStat,
    pub backup_file: Option<String>,
}

/// Runs a write script (from `write_script`) with `stdin` and interprets its records.
pub async fn run_write(
    env: &dyn TaskEnv,
    script: &str,
    stdin: Option<Vec<u8>>,
    style: ValidateStyle,
) -> Result<WriteOutcome, ModuleError> {
    let (records, out) = run_script(env, script, stdin).await?;
    if let Some(rc) = records.get("validate", "rc") {
        let stdout = records.text("validate", "stdout").unwrap_or_default();
        let stderr = records.text("validate", "stderr").unwrap_or_default();
        return Err(match style {
            ValidateStyle::Copy => {
                let mut result = Map::new();
                result.insert("exit_status".into(), rc.parse::<i64>().unwrap_or(-1).into());
                result.insert("stdout".into(), stdout.into());
                result.insert("stderr".into(), stderr.into());
                ModuleError::with_result("failed to validate", result)
            }
            ValidateStyle::Lines => {
                ModuleError::msg(format!("failed to validate: rc:{rc} error:{stderr}"))
            }
        });
    }
    if out.rc != 0 || !records.flag("dest", "exists") {
        return Err(script_failed("writing the file", &out));
    }
    Ok(WriteOutcome {
        stat: records.stat("dest"),
        backup_file: records.text("write", "backup"),
    })
}

/// Sets attributes on an existing path in one round trip; returns its new stat (tag `dest`).
pub async fn run_set_attrs(
    env: &dyn TaskEnv,
    path: &str,
    attrs: &ResolvedAttrs,
) -> Result<RemoteStat, ModuleError> {
    let script = format!(
        "p={}\n{}orch_stat dest \"$p\" 0 sha1 -1\n",
        quote(path),
        attrs.apply_lines("\"$p\"", false, false)
    );
    let (records, out) = run_script(env, &script, None).await?;
    if out.rc != 0 {
        return Err(script_failed("setting file attributes", &out));
    }
    Ok(records.stat("dest"))
}

/// The plan-time script lines for a file module's destination: stat (following links, with sha1 and,
/// in diff mode, content) plus owner/group lookups.
pub fn probe_lines(
    tag: &str,
    path: &str,
    follow: bool,
    checksum: &str,
    content_max: i64,
) -> String {
    format!(
        "orch_stat {tag} {} {} {checksum} {content_max}\n",
        quote(path),
        u8::from(follow)
    )
}

/// A probe line recording `@tag.key=1` when `test OP PATH` holds (e.g. `-d`).
pub fn flag_line(tag: &str, key: &str, op: &str, path: &str) -> String {
    format!(
        "if [ {op} {} ]; then orch_kv {tag} {key} 1; fi\n",
        quote(path)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_stat_line() {
        let out = b"@d.exists=1\n@d.stat=regular file/644/0/0/12/1700000000/1700000001/1700000002/42/2049/1/root/UNKNOWN\n@d.checksum=abc\n";
        let r = Records::parse(out);
        let st = r.stat("d");
        assert!(st.exists);
        assert_eq!(st.kind, FileKind::File);
        assert_eq!(st.mode, 0o644);
        assert_eq!(st.size, 12);
        assert_eq!(st.owner, "root");
        assert_eq!(st.group, "0");
        assert_eq!(st.checksum.as_deref(), Some("abc"));
        assert_eq!(st.state(), "file");
    }

    #[test]
    fn symbolic_modes() {
        assert_eq!(apply_mode(0o644, "u+x", false).unwrap(), 0o744);
        assert_eq!(apply_mode(0o777, "go-w", false).unwrap(), 0o755);
        assert_eq!(apply_mode(0o600, "u=rwx,g=rx,o=", false).unwrap(), 0o750);
        assert_eq!(apply_mode(0o644, "a+X", false).unwrap(), 0o644);
        assert_eq!(apply_mode(0o644, "a+X", true).unwrap(), 0o755);
        assert_eq!(apply_mode(0o640, "o=g", false).unwrap(), 0o644);
        assert_eq!(apply_mode(0o755, "u+s", false).unwrap(), 0o4755);
        assert_eq!(apply_mode(0o4755, "0644", false).unwrap(), 0o644);
        assert_eq!(apply_mode(0o644, "u+r-w", false).unwrap(), 0o444);
        assert!(apply_mode(0o644, "+x", false).is_err());
        assert!(apply_mode(0o644, "u+q", false).is_err());
    }

    #[test]
    fn paths() {
        assert_eq!(dirname("/etc/foo"), "/etc");
        assert_eq!(dirname("/foo"), "/");
        assert_eq!(dirname("foo"), "");
        assert_eq!(basename("/a/b.txt"), "b.txt");
        assert_eq!(join("/a/", "b"), "/a/b");
        assert_eq!(format_mode(0o4755), "04755");
        assert_eq!(format_mode(0o644), "0644");
    }

    #[test]
    fn write_script_renames_a_temp_file_from_the_same_directory() {
        let attrs = ResolvedAttrs::default();
        let spec = WriteSpec {
            dest: "/etc/app/x.conf",
            source: WriteSource::Stdin,
            attrs: &attrs,
            validate: Some("check %s"),
            backup: false,
            make_parents: false,
        };
        let script = write_script(&spec).unwrap();
        assert!(
            script.contains("dir=/etc/app\n") && script.contains("tmp=\"$dir/.orch_tmp."),
            "{script}"
        );
        assert!(script.contains("umask 077"));
        let validate_at = script.find("check \"$tmp\"").unwrap();
        let rename_at = script.find("mv -Tf -- \"$tmp\" \"$dest\"").unwrap();
        assert!(
            validate_at < rename_at,
            "validate must run before the rename"
        );
        let no_placeholder = WriteSpec {
            validate: Some("check"),
            ..spec
        };
        assert!(write_script(&no_placeholder).is_err());
    }

    #[test]
    fn json_block_is_sorted_with_four_spaces() {
        let mut m = BTreeMap::new();
        m.insert("path".to_string(), Value::from("/x"));
        m.insert("mode".to_string(), Value::from("0644"));
        assert_eq!(
            json_block(&m),
            "{\n    \"mode\": \"0644\",\n    \"path\": \"/x\"\n}\n"
        );
    }
}
