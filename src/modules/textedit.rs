//! The read–edit–write flow `lineinfile` and `blockinfile` share: one probe reads the whole file (and what
//! attribute planning needs), the edit runs on the controller, one write replaces the file atomically.
#![allow(dead_code)]

use serde_json::{Map, Value};

use super::filecommon::{
    self as fc, RemoteStat, ResolvedAttrs, ValidateStyle, WantedAttrs, WriteSource, WriteSpec,
};
use super::{Diff, ModuleError, Plan, TaskEnv};

/// Files larger than this are not edited (they are read whole into the controller).
const MAX_EDIT_SIZE: i64 = 64 * 1024 * 1024;

/// What the probe found about the file to edit.
pub(crate) struct Probe {
    pub path: String,
    pub stat: RemoteStat,
    pub is_dir: bool,
    /// The file's bytes (empty when it does not exist).
    pub content: Vec<u8>,
    pub attrs: ResolvedAttrs,
    /// Mode, uid and gid a file created now would get (0666 & ~umask, the connecting user).
    pub new_file_stat: RemoteStat,
}

impl Probe {
    pub fn exists(&self) -> bool {
        self.stat.exists
    }
}

pub(crate) async fn probe(
    env: &dyn TaskEnv,
    path: &str,
    wanted: &WantedAttrs,
) -> Result<Probe, ModuleError> {
    let mut script = fc::probe_lines("dest", path, true, "none", MAX_EDIT_SIZE);
    script.push_str(&fc::flag_line("dest", "isdir", "-d", path));
    script.push_str("orch_kv new mode \"$(printf '%o' $(( 0666 & ~$(umask) )))\"\norch_kv new uid \"$(id -u)\"\norch_kv new gid \"$(id -g)\"\n");
    script.push_str(&wanted.lookup_script());
    let (records, out) = fc::run_script(env, &script, None).await?;
    if out.rc != 0 {
        return Err(fc::script_failed(&format!("reading {path}"), &out));
    }
    let stat = records.stat("dest");
    let is_dir = records.flag("dest", "isdir");
    let content = if stat.exists && !is_dir {
        stat.content.clone().ok_or_else(|| {
            ModuleError::msg(if stat.readable {
                format!("{path} is larger than {MAX_EDIT_SIZE} bytes: orch does not edit it")
            } else {
                format!("{path} is not readable")
            })
        })?
    } else {
        Vec::new()
    };
    let new_file_stat = RemoteStat {
        exists: true,
        kind: fc::FileKind::File,
        mode: records
            .get("new", "mode")
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .unwrap_or(0o644),
        uid: records
            .get("new", "uid")
            .and_then(|u| u.parse().ok())
            .unwrap_or(0),
        gid: records
            .get("new", "gid")
            .and_then(|g| g.parse().ok())
            .unwrap_or(0),
        ..RemoteStat::default()
    };
    Ok(Probe {
        path: path.to_string(),
        attrs: wanted.resolve(&records)?,
        stat,
        is_dir,
        content,
        new_file_stat,
    })
}

/// How a module words its result.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum BackupKey {
    /// lineinfile: `backup` ("" when none was made).
    Backup,
    /// blockinfile: `backup_file`, only when one was made.
    BackupFile,
}

pub(crate) struct EditOptions {
    pub backup: bool,
    pub validate: Option<String>,
    pub backup_key: BackupKey,
}

struct EditPlan {
    write_path: String,
    new_content: Option<Vec<u8>>,
    attrs: ResolvedAttrs,
    create_parents: bool,
    validate: Option<String>,
    backup: bool,
    backup_key: BackupKey,
    /// The message after a real run (a created file may also need its attributes set).
    applied_msg: String,
}

const ATTRS_CHANGED: &str = "ownership, perms or SE linux context changed";

fn with_attrs_msg(msg: &str, content_changed: bool) -> String {
    if content_changed {
        format!("{msg} and {ATTRS_CHANGED}")
    } else {
        format!("{msg}{ATTRS_CHANGED}")
    }
}

/// Builds the plan for an edit: `new_content` is the whole new file, `content_changed` the module's
/// verdict (creating an empty file is a change), `msg` Ansible's message for the content part; attribute changes are added as Ansible's `check_file_attrs` does.
pub(crate) fn plan_edit(
    env: &dyn TaskEnv,
    probe: Probe,
    new_content: Vec<u8>,
    content_changed: bool,
    msg: String,
    opts: EditOptions,
    mut result: Map<String, Value>,
) -> Result<Plan, ModuleError> {
    let path = probe.path.clone();
    let mut diffs = Vec::new();
    if env.diff_mode() && content_changed {
        let header = format!("{path} (content)");
        diffs.push(Diff {
            before_header: header.clone(),
            after_header: header,
            before: String::from_utf8_lossy(&probe.content).into_owned(),
            after: String::from_utf8_lossy(&new_content).into_owned(),
        });
    }

    let mut changed = content_changed;
    let mut plan_msg = msg.clone();
    let mut applied_msg = msg.clone();
    if probe.exists() {
        let changes = probe.attrs.changes(&probe.stat)?;
        if changes.any() {
            plan_msg = with_attrs_msg(&msg, content_changed);
            applied_msg = plan_msg.clone();
            changed = true;
            if env.diff_mode() {
                diffs.push(fc::attr_diff(
                    &format!("{path} (file attributes)"),
                    None,
                    &changes,
                    &[],
                    &[],
                ));
            }
        }
    } else if content_changed && probe.attrs.changes(&probe.new_file_stat)?.any() {
        // Ansible only sees these once the file exists, i.e. not in check mode.
        applied_msg = with_attrs_msg(&msg, true);
    }

    result.insert("msg".into(), plan_msg.into());
    if opts.backup_key == BackupKey::Backup {
        result.insert("backup".into(), "".into());
    }
    // Edits go through symlinks to the real file, as Ansible's `os.path.realpath(dest)`.
    let write_path = match (&probe.stat.is_link, &probe.stat.lnk_source) {
        (true, Some(real)) => real.clone(),
        _ => path.clone(),
    };
    let data = EditPlan {
        write_path,
        new_content: content_changed.then_some(new_content),
        attrs: probe.attrs,
        create_parents: !probe.stat.exists,
        validate: opts.validate,
        backup: opts.backup && probe.stat.exists,
        backup_key: opts.backup_key,
        applied_msg,
    };
    Ok(Plan {
        changed,
        diffs,
        result,
        skip_in_check: None,
        data: Some(Box::new(data)),
    })
}

pub(crate) async fn apply_edit(
    env: &dyn TaskEnv,
    plan: Plan,
) -> Result<Map<String, Value>, ModuleError> {
    let mut result = plan.result;
    let Some(data) = plan.data.and_then(|d| d.downcast::<EditPlan>().ok()) else {
        return Ok(result);
    };
    result.insert("msg".into(), data.applied_msg.clone().into());
    match &data.new_content {
        Some(content) => {
            let script = fc::write_script(&WriteSpec {
                dest: &data.write_path,
                source: WriteSource::Stdin,
                attrs: &data.attrs,
                validate: data.validate.as_deref(),
                backup: data.backup,
                make_parents: data.create_parents,
            })?;
            let outcome =
                fc::run_write(env, &script, Some(content.clone()), ValidateStyle::Lines).await?;
            match (data.backup_key, outcome.backup_file) {
                (BackupKey::Backup, backup) => {
                    result.insert("backup".into(), backup.unwrap_or_default().into());
                }
                (BackupKey::BackupFile, Some(backup)) => {
                    result.insert("backup_file".into(), backup.into());
                }
                (BackupKey::BackupFile, None) => {}
            }
        }
        None => {
            fc::run_set_attrs(env, &data.write_path, &data.attrs).await?;
        }
    }
    Ok(result)
}

/// Python's `bytes.splitlines(True)`: splits after `\n`, `\r` and `\r\n`, keeping the ends.
pub(crate) fn split_lines_keepends(data: &[u8]) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < data.len() {
        let end = match data[i] {
            b'\n' => i + 1,
            b'\r' if data.get(i + 1) == Some(&b'\n') => i + 2,
            b'\r' => i + 1,
            _ => {
                i += 1;
                continue;
            }
        };
        lines.push(data[start..end].to_vec());
        start = end;
        i = end;
    }
    if start < data.len() {
        lines.push(data[start..].to_vec());
    }
    lines
}

/// Python's `f.readlines()` on a binary file: splits after each `\n` only.
pub(crate) fn read_lines(data: &[u8]) -> Vec<Vec<u8>> {
    data.split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// `line.rstrip(b'\r\n')`.
pub(crate) fn rstrip_newlines(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    &line[..end]
}

/// The text a Python regex `search` sees for `$` purposes: Python's `$` matches before a final `\n`,
/// the regex crate's only at the very end, so the trailing `\n` is left out.
pub(crate) fn search_text(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting_like_python() {
        assert_eq!(
            split_lines_keepends(b"a\r\nb\rc\nd"),
            vec![
                b"a\r\n".to_vec(),
                b"b\r".to_vec(),
                b"c\n".to_vec(),
                b"d".to_vec()
            ]
        );
        assert_eq!(read_lines(b"a\nb"), vec![b"a\n".to_vec(), b"b".to_vec()]);
        assert!(read_lines(b"").is_empty());
        assert_eq!(rstrip_newlines(b"x\r\n"), b"x");
    }
}
