//! `group_vars/` and `host_vars/` directories, read like Ansible's `host_group_vars` vars plugin.
//!
//! For an entity `web`, the first of `web` (file or directory), `web.yml`, `web.yaml`, `web.json`
//! that exists is used. A directory contributes every file in it (recursively, sorted, skipping
//! hidden files and `*~` backups) that has no extension or one of those extensions, later files
//! replacing earlier top-level keys. Empty files are ignored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Diagnostic, Span};

const VARS_EXTENSIONS: [&str; 3] = [".yml", ".yaml", ".json"];

#[derive(Clone, Debug, Default)]
pub struct VarsDir {
    pub dir: PathBuf,
    group_vars: HashMap<String, Map<String, Value>>,
    host_vars: HashMap<String, Map<String, Value>>,
}

impl VarsDir {
    /// Reads the vars of the named groups and hosts under `dir`; also returns warnings.
    pub fn load(
        dir: &Path,
        groups: &[&str],
        hosts: &[&str],
    ) -> Result<(VarsDir, Vec<String>), Diagnostic> {
        let mut warnings = Vec::new();
        let mut layer = VarsDir {
            dir: dir.to_path_buf(),
            ..VarsDir::default()
        };
        for (subdir, names, target) in [
            ("group_vars", groups, &mut layer.group_vars),
            ("host_vars", hosts, &mut layer.host_vars),
        ] {
            let base = dir.join(subdir);
            if !base.exists() {
                continue;
            }
            if !base.is_dir() {
                warnings.push(format!(
                    "Found {subdir} that is not a directory, skipping: {}",
                    base.display()
                ));
                continue;
            }
            for name in names {
                // Ansible skips names that look like absolute paths (chroot connection hosts).
                if name.is_empty() || name.starts_with('/') {
                    continue;
                }
                let mut vars = Map::new();
                for file in find_vars_files(&base, name) {
                    for (k, v) in load_vars_file(&file)? {
                        vars.insert(k, v);
                    }
                }
                if !vars.is_empty() {
                    target.insert(name.to_string(), vars);
                }
            }
        }
        Ok((layer, warnings))
    }

    pub fn group(&self, name: &str) -> Option<&Map<String, Value>> {
        self.group_vars.get(name)
    }

    pub fn host(&self, name: &str) -> Option<&Map<String, Value>> {
        self.host_vars.get(name)
    }
}

/// Ansible's `DataLoader.find_vars_files`: the first existing candidate wins.
fn find_vars_files(base: &Path, name: &str) -> Vec<PathBuf> {
    let bare = base.join(name);
    let candidates = std::iter::once(bare.clone()).chain(
        VARS_EXTENSIONS
            .iter()
            .map(|ext| PathBuf::from(format!("{}{ext}", bare.display()))),
    );
    for candidate in candidates {
        if candidate.is_dir() {
            return dir_vars_files(&candidate);
        }
        if candidate.exists() {
            return vec![candidate];
        }
    }
    Vec::new()
}

fn dir_vars_files(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(read) => read.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => return Vec::new(),
    };
    entries.sort();
    let mut found = Vec::new();
    for entry in entries {
        let name = entry
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        let ext = extension_with_dot(&name);
        if entry.is_dir() && ext.is_empty() {
            found.extend(dir_vars_files(&entry));
        } else if entry.is_file() && (ext.is_empty() || VARS_EXTENSIONS.contains(&ext)) {
            found.push(entry);
        }
    }
    found
}

/// Python's `os.path.splitext(name)[1]` (a leading dot does not start an extension).
fn extension_with_dot(name: &str) -> &str {
    let trimmed = name.trim_start_matches('.');
    match trimmed.rfind('.') {
        Some(i) => &trimmed[i..],
        None => "",
    }
}

fn load_vars_file(path: &Path) -> Result<Map<String, Value>, Diagnostic> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostic::parse(
            format!("cannot read vars file {}: {e}", path.display()),
            Some(Span::file_only(path)),
        )
    })?;
    if text.trim_start().starts_with("$ANSIBLE_VAULT") {
        return Err(Diagnostic::parse(
            format!(
                "vars file {} is vault-encrypted, which orch cannot read yet",
                path.display()
            ),
            Some(Span::file_only(path)),
        ));
    }
    let docs = crate::yaml::load_str(&text, path)?;
    let Some(doc) = docs.into_iter().next() else {
        return Ok(Map::new());
    };
    match doc.to_json() {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => Err(Diagnostic::parse(
            format!(
                "vars file {} must hold a mapping of variables, got {}",
                path.display(),
                doc.type_name()
            ),
            Some(doc.span.clone()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_directory_forms() {
        let tmp = tempfile::tempdir().unwrap();
        let gv = tmp.path().join("group_vars");
        std::fs::create_dir_all(gv.join("web/sub")).unwrap();
        std::fs::write(gv.join("web/b.yml"), "x: from_b\ny: b\n").unwrap();
        std::fs::write(gv.join("web/a.yaml"), "x: from_a\nz: a\n").unwrap();
        std::fs::write(gv.join("web/sub/c"), "z: from_sub\n").unwrap();
        std::fs::write(gv.join("web/ignored.txt"), "x: no\n").unwrap();
        std::fs::write(gv.join("web/.hidden.yml"), "x: no\n").unwrap();
        std::fs::write(gv.join("db.yml"), "d: 1\n").unwrap();
        std::fs::write(gv.join("db.yaml"), "d: 2\n").unwrap();
        std::fs::write(gv.join("empty.yml"), "").unwrap();
        let (layer, warnings) =
            VarsDir::load(tmp.path(), &["web", "db", "empty", "none"], &[]).unwrap();
        assert!(warnings.is_empty());
        let web = Value::Object(layer.group("web").unwrap().clone());
        assert_eq!(
            web,
            serde_json::json!({"x": "from_b", "y": "b", "z": "from_sub"})
        );
        // Only the first matching candidate is read: db.yml, not db.yaml.
        assert_eq!(layer.group("db").unwrap()["d"], serde_json::json!(1));
        assert!(layer.group("empty").is_none());
        assert!(layer.group("none").is_none());
    }

    #[test]
    fn non_mapping_file_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("host_vars")).unwrap();
        std::fs::write(tmp.path().join("host_vars/h1.yml"), "- a\n- b\n").unwrap();
        let err = VarsDir::load(tmp.path(), &[], &["h1"]).unwrap_err();
        assert!(err.message.contains("mapping"), "{}", err.message);
        assert_eq!(err.span.unwrap().line, 1);
    }
}
