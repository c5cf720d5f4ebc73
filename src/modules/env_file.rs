//! `env_file`: manages a dotenv file (`KEY=value` lines, as Docker Compose reads `.env`) on the target.
//!
//! `values` are enforced on every run; `generate` keys get a random value only when they are absent
//! (or empty): the file on the target is the source of truth, so generated secrets survive forever
//! and any controller can rerun the play. Keys the module does not manage, comments and the order of
//! lines are preserved. Random values come from the controller's CSPRNG and reach the target on stdin.
//!
//! Values are never diffed in clear: in diffs only non-secret `values` are shown, everything else
//! is `********`. Secret keys are generated keys, keys listed in `secret_keys`, and any key whose name
//! looks like a secret (PASS, SECRET, TOKEN, PRIVATE, CREDENTIAL, ending in KEY). The result's
//! `values` map holds every key's value (later tasks need e.g. the bootstrap token); the secret ones
//! are declared under `SECRETS_KEY` so the executor masks them in all output.
#![allow(dead_code)]

use base64::Engine;
use rand::Rng;
use serde_json::{Map, Value};

use super::copy::sha1_hex;
use super::filecommon::{self as fc, ResolvedAttrs, ValidateStyle, WantedAttrs};
use super::remote::quote;
use super::{Arg, ArgSpec, Args, Diff, Module, ModuleError, Plan, TaskEnv, SECRETS_KEY};

pub struct EnvFile;

pub static SPEC: ArgSpec = ArgSpec {
    args: &[
        Arg::req("path").aliases(&["dest"]),
        Arg::opt("values"),
        Arg::opt("generate"),
        Arg::opt("secret_keys"),
        Arg::opt("state").choices(&["present", "absent"]),
        Arg::opt("mode"),
        Arg::opt("owner"),
        Arg::opt("group"),
    ],
    free_form: None,
    any_keys: false,
};

/// Shown in diffs instead of a value.
const MASK: &str = "********";
/// Larger files are refused: a dotenv file is a few hundred bytes.
const MAX_SIZE: i64 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    /// Standard alphabet with padding, as `openssl rand -base64 N | tr -d '\n'`.
    Base64,
    /// URL-safe alphabet without padding.
    Base64Url,
    Hex,
    /// Letters and digits; the size is the number of characters.
    Alnum,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct GenSpec {
    encoding: Encoding,
    size: usize,
}

impl GenSpec {
    fn parse(key: &str, value: &Value) -> Result<GenSpec, ModuleError> {
        let bad = |why: &str| {
            ModuleError::msg(format!(
                "env_file: generate.{key}: {why} (expected e.g. \"base64:36\", \"hex:32\", \"alnum:40\" or {{bytes: 36, encoding: base64}})"
            ))
        };
        let (encoding, size) = match value {
            Value::String(s) => {
                let (enc, n) = s.split_once(':').ok_or_else(|| bad("no size"))?;
                (enc.trim().to_string(), n.trim().parse::<i64>().ok())
            }
            Value::Number(n) => ("base64".to_string(), n.as_i64()),
            Value::Object(map) => {
                for name in map.keys() {
                    if !["bytes", "length", "encoding"].contains(&name.as_str()) {
                        return Err(bad(&format!("unknown option '{name}'")));
                    }
                }
                let enc = match map.get("encoding") {
                    None | Some(Value::Null) => "base64".to_string(),
                    Some(Value::String(s)) => s.clone(),
                    Some(_) => return Err(bad("encoding must be a string")),
                };
                let size = map.get("bytes").or_else(|| map.get("length"));
                let size = match size {
                    Some(Value::Number(n)) => n.as_i64(),
                    Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
                    _ => None,
                };
                (enc, size)
            }
            _ => return Err(bad("not a string or a dict")),
        };
        let encoding = match encoding.as_str() {
            "base64" => Encoding::Base64,
            "base64url" => Encoding::Base64Url,
            "hex" => Encoding::Hex,
            "alnum" => Encoding::Alnum,
            other => return Err(bad(&format!("unknown encoding '{other}'"))),
        };
        let size = size
            .filter(|n| (1..=4096).contains(n))
            .ok_or_else(|| bad("the size must be a number from 1 to 4096"))?;
        Ok(GenSpec {
            encoding,
            size: size as usize,
        })
    }

    fn generate(&self) -> String {
        let mut rng = rand::rng();
        if self.encoding == Encoding::Alnum {
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
            return (0..self.size)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect();
        }
        let mut bytes = vec![0u8; self.size];
        rng.fill(&mut bytes[..]);
        match self.encoding {
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(&bytes),
            Encoding::Base64Url => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes),
            _ => hex::encode(&bytes),
        }
    }
}

/// A key Compose accepts in `.env` (and that needs no quoting anywhere).
fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// Whether a key's name says it holds a secret.
fn looks_secret(key: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    ["PASS", "SECRET", "TOKEN", "PRIVATE", "CREDENTIAL"]
        .iter()
        .any(|word| upper.contains(word))
        || upper.ends_with("KEY")
}

/// One line of the file: an entry (`[export ]KEY=value`) or anything else, kept verbatim.
#[derive(Clone, Debug, PartialEq)]
struct Line {
    raw: String,
    entry: Option<(String, String)>,
}

impl Line {
    fn parse(raw: &str) -> Line {
        Line {
            raw: raw.to_string(),
            entry: parse_entry(raw),
        }
    }

    fn entry(key: &str, value: &str) -> Line {
        Line {
            raw: format!("{key}={}", format_value(value)),
            entry: Some((key.to_string(), value.to_string())),
        }
    }

    fn key(&self) -> Option<&str> {
        self.entry.as_ref().map(|(k, _)| k.as_str())
    }
}

/// `KEY=value` as Compose's dotenv parser reads it: optional `export `, single quotes literal, double
/// quotes with backslash escapes, unquoted values trimmed and cut at ` #` (an inline comment).
fn parse_entry(raw: &str) -> Option<(String, String)> {
    let line = raw.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
    let (key, rest) = line.split_once('=')?;
    let key = key.trim();
    if !valid_key(key) {
        return None;
    }
    let rest = rest.trim_start();
    let value = if let Some(inner) = rest.strip_prefix('\'') {
        inner.split('\'').next().unwrap_or_default().to_string()
    } else if let Some(inner) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(other) => out.push(other),
                    None => break,
                },
                c => out.push(c),
            }
        }
        out
    } else {
        let cut = rest
            .char_indices()
            .find(|&(i, c)| c == '#' && i > 0 && rest[..i].ends_with([' ', '\t']))
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        rest[..cut].trim_end().to_string()
    };
    Some((key.to_string(), value))
}

/// Characters that need no quoting in `.env` nor in Compose's interpolation.
fn plain_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-.,:/+=@%^~".contains(c)
}

/// A value as it is written: plain when safe, else single-quoted (literal for Compose: no `$`
/// interpolation, no escapes). Values with a `'` or a newline are refused in `check_value`.
fn format_value(value: &str) -> String {
    if value.chars().all(plain_char) {
        value.to_string()
    } else {
        format!("'{value}'")
    }
}

fn check_value(key: &str, value: &str) -> Result<(), ModuleError> {
    if value.contains(['\'', '\n', '\r', '\0']) {
        return Err(ModuleError::msg(format!(
            "env_file: the value of {key} contains a single quote or a line break, which orch cannot write safely into a .env file"
        )));
    }
    Ok(())
}

/// The parsed file and its edits.
#[derive(Clone, Debug, Default)]
struct EnvDoc {
    lines: Vec<Line>,
    trailing_newline: bool,
}

impl EnvDoc {
    fn parse(text: &str) -> EnvDoc {
        EnvDoc {
            lines: text.lines().map(Line::parse).collect(),
            trailing_newline: text.is_empty() || text.ends_with('\n'),
        }
    }

    /// The line that decides a key's value (Compose: the last one wins).
    fn last_index(&self, key: &str) -> Option<usize> {
        self.lines.iter().rposition(|l| l.key() == Some(key))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.last_index(key)
            .and_then(|i| self.lines[i].entry.as_ref())
            .map(|(_, v)| v.as_str())
    }

    /// Sets a key in place (its deciding line) or appends it.
    fn set(&mut self, key: &str, value: &str) {
        match self.last_index(key) {
            Some(i) => self.lines[i] = Line::entry(key, value),
            None => self.lines.push(Line::entry(key, value)),
        }
    }

    fn render(&self) -> String {
        let mut text: String = self
            .lines
            .iter()
            .map(|l| l.raw.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        if !self.lines.is_empty() && self.trailing_newline {
            text.push('\n');
        }
        text
    }

    /// Every key's effective value, in the order keys first appear.
    fn values(&self) -> Map<String, Value> {
        let mut map = Map::new();
        for line in &self.lines {
            if let Some((key, _)) = &line.entry {
                if !map.contains_key(key) {
                    map.insert(key.clone(), self.get(key).unwrap_or_default().into());
                }
            }
        }
        map
    }
}

/// The task's arguments, validated.
struct Wanted {
    path: String,
    fixed: Vec<(String, String)>,
    generate: Vec<(String, GenSpec)>,
    secret_keys: Vec<String>,
    attrs: WantedAttrs,
}

impl Wanted {
    fn from_args(args: &Args) -> Result<Wanted, ModuleError> {
        let path = args.req_str("path")?;
        let mut fixed = Vec::new();
        match args.value("values") {
            None => {}
            Some(Value::Object(map)) => {
                for (key, value) in map {
                    let text = match value {
                        Value::String(s) => s.clone(),
                        Value::Bool(b) => b.to_string(),
                        Value::Number(n) => n.to_string(),
                        Value::Null => String::new(),
                        _ => {
                            return Err(ModuleError::msg(format!(
                                "env_file: values.{key} must be a string, a number or a boolean"
                            )))
                        }
                    };
                    check_value(key, &text)?;
                    fixed.push((key.clone(), text));
                }
            }
            Some(_) => return Err(ModuleError::msg("env_file: values must be a dict")),
        }
        let mut generate = Vec::new();
        match args.value("generate") {
            None => {}
            Some(Value::Object(map)) => {
                for (key, spec) in map {
                    generate.push((key.clone(), GenSpec::parse(key, spec)?));
                }
            }
            Some(_) => return Err(ModuleError::msg("env_file: generate must be a dict")),
        }
        for key in fixed
            .iter()
            .map(|(k, _)| k)
            .chain(generate.iter().map(|(k, _)| k))
        {
            if !valid_key(key) {
                return Err(ModuleError::msg(format!(
                    "env_file: '{key}' is not a valid variable name (letters, digits, '_' and '.', not starting with a digit)"
                )));
            }
        }
        if let Some((key, _)) = fixed
            .iter()
            .find(|(k, _)| generate.iter().any(|(g, _)| g == k))
        {
            return Err(ModuleError::msg(format!(
                "env_file: {key} is both in values and in generate"
            )));
        }
        let mut attrs = WantedAttrs::from_args(args)?;
        attrs.mode.get_or_insert_with(|| "0600".to_string());
        Ok(Wanted {
            path,
            fixed,
            generate,
            secret_keys: args.list("secret_keys")?.unwrap_or_default(),
            attrs,
        })
    }

    fn is_generated(&self, key: &str) -> bool {
        self.generate.iter().any(|(k, _)| k == key)
    }

    fn is_secret(&self, key: &str) -> bool {
        self.is_generated(key) || self.secret_keys.iter().any(|k| k == key) || looks_secret(key)
    }

    /// Fixed keys that are not secret are the only values a diff shows.
    fn shown_in_clear(&self, key: &str) -> bool {
        self.fixed.iter().any(|(k, _)| k == key) && !self.is_secret(key)
    }
}

/// How a masked line is annotated on the after side of a diff.
fn masked_text(doc: &EnvDoc, wanted: &Wanted, notes: &[(String, &str)]) -> String {
    let mut out = String::new();
    for line in &doc.lines {
        match &line.entry {
            Some((key, _)) if !wanted.shown_in_clear(key) => {
                let prefix = if line.raw.trim_start().starts_with("export ") {
                    "export "
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{key}={MASK}"));
                if let Some((_, note)) = notes.iter().find(|(k, _)| k == key) {
                    out.push_str(&format!("  # {note}"));
                }
            }
            Some(_) => out.push_str(&line.raw),
            // Lines that are neither comments nor entries may still carry a value after '='.
            None if !line.raw.trim_start().starts_with('#') && line.raw.contains('=') => {
                let (head, _) = line.raw.split_once('=').unwrap_or((&line.raw, ""));
                out.push_str(&format!("{head}={MASK}"));
            }
            None => out.push_str(&line.raw),
        }
        out.push('\n');
    }
    out
}

/// What `apply` needs.
struct EnvPlan {
    target: String,
    content: Option<Vec<u8>>,
    /// SHA-1 of the file as read, or None when it did not exist: apply refuses to overwrite a file
    /// that changed in between (another controller may have generated the secrets meanwhile).
    read_checksum: Option<String>,
    attrs: ResolvedAttrs,
    remove: bool,
}

fn string_list(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::from).collect())
}

async fn plan_absent(env: &dyn TaskEnv, wanted: &Wanted) -> Result<Plan, ModuleError> {
    let script = fc::probe_lines("dest", &wanted.path, false, "sha1", MAX_SIZE);
    let (records, out) = fc::run_script(env, &script, None).await?;
    if out.rc != 0 {
        return Err(fc::script_failed("probing the file", &out));
    }
    let stat = records.stat("dest");
    let mut result = Map::new();
    result.insert("path".into(), wanted.path.clone().into());
    result.insert("state".into(), "absent".into());
    if !stat.exists && !stat.is_link {
        return Ok(Plan::unchanged(result));
    }
    let mut diffs = Vec::new();
    if env.diff_mode() {
        let before = stat
            .content
            .as_deref()
            .map(|c| masked_text(&EnvDoc::parse(&String::from_utf8_lossy(c)), wanted, &[]))
            .unwrap_or_default();
        diffs.push(Diff {
            before_header: wanted.path.clone(),
            after_header: wanted.path.clone(),
            before,
            after: String::new(),
        });
    }
    Ok(Plan {
        changed: true,
        diffs,
        result,
        skip_in_check: None,
        data: Some(Box::new(EnvPlan {
            target: wanted.path.clone(),
            content: None,
            read_checksum: None,
            attrs: ResolvedAttrs::default(),
            remove: true,
        })),
    })
}

async fn plan_present(env: &dyn TaskEnv, wanted: &Wanted) -> Result<Plan, ModuleError> {
    let mut script = fc::probe_lines("dest", &wanted.path, true, "sha1", MAX_SIZE);
    let parent = match fc::dirname(&wanted.path) {
        "" => ".",
        d => d,
    };
    script.push_str(&fc::flag_line("parent", "isdir", "-d", parent));
    script.push_str(&wanted.attrs.lookup_script());
    let (records, out) = fc::run_script(env, &script, None).await?;
    if out.rc != 0 {
        return Err(fc::script_failed("probing the file", &out));
    }
    let attrs = wanted.attrs.resolve(&records)?;
    let stat = records.stat("dest");
    let path = &wanted.path;
    if stat.exists && stat.kind != fc::FileKind::File {
        return Err(ModuleError::msg(format!(
            "env_file: {path} exists and is not a regular file"
        )));
    }
    let old_text = if stat.exists {
        let bytes = stat.content.clone().ok_or_else(|| {
            if stat.size as i64 > MAX_SIZE {
                ModuleError::msg(format!(
                    "env_file: {path} is larger than {MAX_SIZE} bytes: not a dotenv file?"
                ))
            } else {
                ModuleError::msg(format!("env_file: {path} is not readable"))
            }
        })?;
        Some(
            String::from_utf8(bytes)
                .map_err(|_| ModuleError::msg(format!("env_file: {path} is not UTF-8 text")))?,
        )
    } else {
        if !records.flag("parent", "isdir") && !env.check_mode() {
            return Err(ModuleError::msg(format!(
                "Destination directory {parent} does not exist"
            )));
        }
        None
    };

    let before = EnvDoc::parse(old_text.as_deref().unwrap_or(""));
    let mut after = before.clone();
    let mut updated = Vec::new();
    let mut notes: Vec<(String, &str)> = Vec::new();
    for (key, value) in &wanted.fixed {
        if after.get(key) != Some(value.as_str()) {
            after.set(key, value);
            updated.push(key.clone());
            if !wanted.shown_in_clear(key) {
                notes.push((key.clone(), "changed"));
            }
        }
    }
    let mut generated = Vec::new();
    for (key, spec) in &wanted.generate {
        // An empty value counts as absent: Compose's `${PG_PASS:?}` rejects it too.
        if after.get(key).is_none_or(str::is_empty) {
            let value = spec.generate();
            after.set(key, &value);
            generated.push(key.clone());
            notes.push((
                key.clone(),
                if env.check_mode() {
                    "would generate"
                } else {
                    "generated"
                },
            ));
        }
    }
    if !updated.is_empty() || !generated.is_empty() {
        after.trailing_newline = true;
    }
    let new_text = after.render();
    let content_changed = old_text.as_deref() != Some(new_text.as_str());
    let target = match (&stat.is_link, &stat.lnk_source) {
        (true, Some(real)) => real.clone(),
        _ => path.clone(),
    };
    let attr_changes = if stat.exists && !content_changed {
        attrs.changes(&stat)?
    } else {
        Default::default()
    };

    let mut values = after.values();
    if env.check_mode() {
        // Nothing is generated in check mode: later tasks see an empty value, not a made-up one.
        for key in &generated {
            values.insert(key.clone(), "".into());
        }
    }
    let secrets: Vec<String> = values
        .iter()
        .filter(|(k, _)| wanted.is_secret(k))
        .filter_map(|(_, v)| v.as_str().filter(|s| !s.is_empty()).map(str::to_string))
        .collect();
    let mut result = Map::new();
    result.insert("path".into(), target.clone().into());
    result.insert("values".into(), Value::Object(values));
    result.insert("generated".into(), string_list(&generated));
    result.insert("updated".into(), string_list(&updated));
    result.insert(SECRETS_KEY.into(), string_list(&secrets));
    stat.path_info(&mut result);

    let mut diffs = Vec::new();
    if env.diff_mode() {
        if content_changed {
            let old = if stat.exists {
                masked_text(&before, wanted, &[])
            } else {
                String::new()
            };
            diffs.push(Diff {
                before_header: target.clone(),
                after_header: target.clone(),
                before: old,
                after: masked_text(&after, wanted, &notes),
            });
        } else if attr_changes.any() {
            diffs.push(fc::attr_diff(
                &target,
                Some(&target),
                &attr_changes,
                &[],
                &[],
            ));
        }
    }
    let changed = content_changed || attr_changes.any();
    Ok(Plan {
        changed,
        diffs,
        result,
        skip_in_check: None,
        data: Some(Box::new(EnvPlan {
            target,
            content: content_changed.then(|| new_text.into_bytes()),
            read_checksum: old_text.as_deref().map(|t| sha1_hex(t.as_bytes())),
            attrs,
            remove: false,
        })),
    })
}

#[async_trait::async_trait]
impl Module for EnvFile {
    fn name(&self) -> &'static str {
        "env_file"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let wanted = Wanted::from_args(args)?;
        match args
            .choice("state", &["present", "absent"], "present")?
            .as_str()
        {
            "absent" => plan_absent(env, &wanted).await,
            _ => plan_present(env, &wanted).await,
        }
    }

    async fn apply(
        &self,
        env: &dyn TaskEnv,
        _args: &Args,
        plan: Plan,
    ) -> Result<Map<String, Value>, ModuleError> {
        let mut result = plan.result;
        let Some(data) = plan.data.and_then(|d| d.downcast::<EnvPlan>().ok()) else {
            return Ok(result);
        };
        if data.remove {
            let script = format!(
                "rm -f -- {} || orch_fail 'could not remove the file'\n",
                quote(&data.target)
            );
            let (_, out) = fc::run_script(env, &script, None).await?;
            if out.rc != 0 {
                return Err(fc::script_failed("removing the file", &out));
            }
            return Ok(result);
        }
        let stat = match data.content {
            Some(content) => {
                let guard = match &data.read_checksum {
                    Some(sum) => format!(
                        "_s=$(sha1sum < {p} 2>/dev/null) || _s=\n[ \"${{_s%% *}}\" = {sum} ] || orch_fail {msg}\n",
                        p = quote(&data.target),
                        msg = quote(&format!(
                            "{} changed since it was read: run the task again",
                            data.target
                        )),
                    ),
                    None => format!(
                        "[ ! -e {p} ] || orch_fail {msg}\n",
                        p = quote(&data.target),
                        msg = quote(&format!(
                            "{} appeared since it was read: run the task again",
                            data.target
                        )),
                    ),
                };
                let write = fc::write_script(&fc::WriteSpec {
                    dest: &data.target,
                    source: fc::WriteSource::Stdin,
                    attrs: &data.attrs,
                    validate: None,
                    backup: false,
                    make_parents: false,
                })?;
                let script = format!("{guard}{write}");
                fc::run_write(env, &script, Some(content), ValidateStyle::Copy)
                    .await?
                    .stat
            }
            None => fc::run_set_attrs(env, &data.target, &data.attrs).await?,
        };
        stat.path_info(&mut result);
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testenv::{args, failure, mode_of, run_module, LocalEnv};
    use super::*;

    fn authentik_args(path: &str) -> Args {
        args(
            "env_file",
            json!({
                "path": path,
                "values": {
                    "AUTHENTIK_ERROR_REPORTING__ENABLED": false,
                    "COMPOSE_PORT_HTTP": 9000,
                    "AUTHENTIK_TAG": "2026.5.6",
                    "AUTHENTIK_BOOTSTRAP_EMAIL": "admin@example.com",
                },
                "generate": {
                    "PG_PASS": "base64:36",
                    "AUTHENTIK_SECRET_KEY": {"bytes": 60, "encoding": "base64"},
                    "AUTHENTIK_BOOTSTRAP_PASSWORD": "alnum:32",
                    "AUTHENTIK_BOOTSTRAP_TOKEN": {"length": 64, "encoding": "alnum"},
                },
            }),
        )
    }

    fn read_doc(path: &str) -> EnvDoc {
        EnvDoc::parse(&std::fs::read_to_string(path).unwrap())
    }

    #[test]
    fn parses_compose_dotenv_lines() {
        let cases = [
            ("A=1", Some(("A", "1"))),
            ("export B = two ", Some(("B", "two"))),
            ("C='x # y $z'", Some(("C", "x # y $z"))),
            ("D=\"a\\\"b\\nc\"", Some(("D", "a\"b\nc"))),
            ("E=plain # comment", Some(("E", "plain"))),
            ("F=a#b", Some(("F", "a#b"))),
            ("G=", Some(("G", ""))),
            ("# H=1", None),
            ("not an entry", None),
            ("1X=2", None),
        ];
        for (line, want) in cases {
            let got = parse_entry(line);
            assert_eq!(
                got.as_ref().map(|(k, v)| (k.as_str(), v.as_str())),
                want,
                "{line}"
            );
        }
    }

    #[test]
    fn values_are_quoted_only_when_needed_and_round_trip() {
        for value in ["abc+/=", "has space", "$dollar", "a#b", "", "x\"y"] {
            let line = Line::entry("K", value);
            assert_eq!(
                parse_entry(&line.raw),
                Some(("K".to_string(), value.to_string())),
                "{}",
                line.raw
            );
        }
        assert_eq!(format_value("abc+/="), "abc+/=");
        assert_eq!(format_value("a b"), "'a b'");
        assert!(check_value("K", "it's").is_err());
    }

    #[test]
    fn generated_values_have_the_requested_shape() {
        let b64 = GenSpec::parse("K", &json!("base64:36")).unwrap().generate();
        assert_eq!(b64.len(), 48);
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&b64)
                .unwrap()
                .len(),
            36
        );
        assert!(b64.chars().all(plain_char), "{b64}");
        let b64_60 = GenSpec::parse("K", &json!({"bytes": 60}))
            .unwrap()
            .generate();
        assert_eq!(b64_60.len(), 80);
        let hex = GenSpec::parse("K", &json!("hex:16")).unwrap().generate();
        assert!(hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()));
        let alnum = GenSpec::parse("K", &json!("alnum:40")).unwrap();
        let (a, b) = (alnum.generate(), alnum.generate());
        assert!(a.len() == 40 && a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b, "two draws must differ");
        for bad in [
            json!("base64"),
            json!("rot13:5"),
            json!("hex:0"),
            json!({"size": 3}),
            json!([1]),
        ] {
            assert!(GenSpec::parse("K", &bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn creates_then_keeps_generated_values_forever() {
        let env = LocalEnv::new();
        let path = env.path(".env");
        let a = authentik_args(&path);
        let first = run_module(&EnvFile, &env, &a).await.unwrap();
        assert!(first.changed);
        assert_eq!(mode_of(&path), 0o600);
        let doc = read_doc(&path);
        assert_eq!(doc.get("AUTHENTIK_ERROR_REPORTING__ENABLED"), Some("false"));
        assert_eq!(doc.get("COMPOSE_PORT_HTTP"), Some("9000"));
        let pg = doc.get("PG_PASS").unwrap().to_string();
        let token = doc.get("AUTHENTIK_BOOTSTRAP_TOKEN").unwrap().to_string();
        assert_eq!(pg.len(), 48);
        assert_eq!(token.len(), 64);
        assert_eq!(doc.get("AUTHENTIK_SECRET_KEY").map(str::len), Some(80));
        // The result carries every value, and declares the generated ones secret.
        assert_eq!(
            first.result["values"]["AUTHENTIK_BOOTSTRAP_TOKEN"],
            json!(token)
        );
        assert_eq!(first.result["generated"].as_array().unwrap().len(), 4);
        let secrets = first.result[SECRETS_KEY].as_array().unwrap();
        assert!(secrets.contains(&json!(token)) && secrets.contains(&json!(pg)));
        assert!(!secrets.contains(&json!("9000")));

        let second = run_module(&EnvFile, &env, &a).await.unwrap();
        assert!(!second.changed);
        assert_eq!(second.result["values"]["PG_PASS"], json!(pg));
        assert_eq!(second.result["generated"], json!([]));
        assert!(second.result[SECRETS_KEY]
            .as_array()
            .unwrap()
            .contains(&json!(token)));
        assert_eq!(
            read_doc(&path).get("AUTHENTIK_BOOTSTRAP_TOKEN"),
            Some(token.as_str())
        );
    }

    #[tokio::test]
    async fn user_keys_and_comments_are_preserved_and_drift_restored() {
        let mut env = LocalEnv::new();
        env.diff = true;
        let path = env.path(".env");
        std::fs::write(
            &path,
            "# my settings\nSMTP_HOST=mail.example.com\nCOMPOSE_PORT_HTTP=8000\nPG_PASS=keepme-existing\nexport SMTP_PASSWORD='hunter2 x'\n",
        )
        .unwrap();
        let a = args(
            "env_file",
            json!({"path": path, "values": {"COMPOSE_PORT_HTTP": "9000", "AUTHENTIK_TAG": "2026.5.6"},
                   "generate": {"PG_PASS": "base64:36", "AUTHENTIK_BOOTSTRAP_TOKEN": "alnum:40"}}),
        );
        let out = run_module(&EnvFile, &env, &a).await.unwrap();
        assert!(out.changed);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "# my settings");
        assert_eq!(lines[1], "SMTP_HOST=mail.example.com");
        assert_eq!(
            lines[2], "COMPOSE_PORT_HTTP=9000",
            "fixed key updated in place"
        );
        assert_eq!(lines[3], "PG_PASS=keepme-existing", "existing secret kept");
        assert_eq!(lines[4], "export SMTP_PASSWORD='hunter2 x'");
        assert_eq!(lines[5], "AUTHENTIK_TAG=2026.5.6");
        assert!(lines[6].starts_with("AUTHENTIK_BOOTSTRAP_TOKEN="));
        assert_eq!(lines.len(), 7);
        assert_eq!(
            out.result["updated"],
            json!(["COMPOSE_PORT_HTTP", "AUTHENTIK_TAG"])
        );
        assert_eq!(
            out.result["generated"],
            json!(["AUTHENTIK_BOOTSTRAP_TOKEN"])
        );
        assert_eq!(out.result["values"]["SMTP_HOST"], json!("mail.example.com"));
        let secrets = out.result[SECRETS_KEY].as_array().unwrap();
        assert!(
            secrets.contains(&json!("hunter2 x")),
            "secret-looking user key"
        );
        assert!(secrets.contains(&json!("keepme-existing")));
        assert!(!secrets.contains(&json!("mail.example.com")));

        // The diff shows fixed values, masks every other value, and names what happens.
        let diff = &out.diffs[0];
        let token = read_doc(&path)
            .get("AUTHENTIK_BOOTSTRAP_TOKEN")
            .unwrap()
            .to_string();
        for side in [&diff.before, &diff.after] {
            for secret in [
                "keepme-existing",
                "hunter2",
                "mail.example.com",
                token.as_str(),
            ] {
                assert!(!side.contains(secret), "{secret} in diff: {side}");
            }
        }
        assert!(
            diff.before.contains("COMPOSE_PORT_HTTP=8000\n"),
            "{}",
            diff.before
        );
        assert!(diff.after.contains("COMPOSE_PORT_HTTP=9000\n"));
        assert!(diff.after.contains("SMTP_HOST=********\n"));
        assert!(diff.after.contains("export SMTP_PASSWORD=********\n"));
        assert!(diff
            .after
            .contains("AUTHENTIK_BOOTSTRAP_TOKEN=********  # generated\n"));
        assert!(diff.after.contains("PG_PASS=********\n"));

        assert!(!run_module(&EnvFile, &env, &a).await.unwrap().changed);
    }

    #[tokio::test]
    async fn check_mode_predicts_exactly_and_writes_nothing() {
        let mut env = LocalEnv::new();
        env.check = true;
        env.diff = true;
        let path = env.path(".env");
        let a = authentik_args(&path);
        let out = run_module(&EnvFile, &env, &a).await.unwrap();
        assert!(out.changed);
        assert!(!std::path::Path::new(&path).exists());
        assert_eq!(out.result["values"]["PG_PASS"], json!(""));
        assert_eq!(out.result[SECRETS_KEY], json!([]));
        assert_eq!(out.diffs[0].before, "");
        assert!(out.diffs[0]
            .after
            .contains("PG_PASS=********  # would generate\n"));
        assert!(out.diffs[0].after.contains("AUTHENTIK_TAG=2026.5.6\n"));

        // After a real run, check mode reports nothing to do; with drift, exactly the drift.
        env.check = false;
        run_module(&EnvFile, &env, &a).await.unwrap();
        env.check = true;
        assert!(!run_module(&EnvFile, &env, &a).await.unwrap().changed);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace("COMPOSE_PORT_HTTP=9000", "COMPOSE_PORT_HTTP=80"),
        )
        .unwrap();
        let out = run_module(&EnvFile, &env, &a).await.unwrap();
        assert!(out.changed);
        assert_eq!(out.result["updated"], json!(["COMPOSE_PORT_HTTP"]));
        assert_eq!(out.result["generated"], json!([]));
        let before: Vec<&str> = out.diffs[0].before.lines().collect();
        let after: Vec<&str> = out.diffs[0].after.lines().collect();
        let differing: Vec<_> = before.iter().zip(&after).filter(|(b, a)| b != a).collect();
        assert_eq!(
            differing,
            vec![(&"COMPOSE_PORT_HTTP=80", &"COMPOSE_PORT_HTTP=9000")]
        );
    }

    #[tokio::test]
    async fn secret_fixed_values_are_masked_with_a_change_note() {
        let mut env = LocalEnv::new();
        env.diff = true;
        let path = env.path(".env");
        std::fs::write(&path, "MAIL_PASSWORD=old-secret\nPLAIN=x\n").unwrap();
        let a = args(
            "env_file",
            json!({"path": path, "values": {"MAIL_PASSWORD": "new-secret", "PLAIN": "y", "API_URL": "https://a"},
                   "secret_keys": ["API_URL"]}),
        );
        let out = run_module(&EnvFile, &env, &a).await.unwrap();
        let diff = &out.diffs[0];
        assert_eq!(diff.before, "MAIL_PASSWORD=********\nPLAIN=x\n");
        assert_eq!(
            diff.after,
            "MAIL_PASSWORD=********  # changed\nPLAIN=y\nAPI_URL=********  # changed\n"
        );
        let secrets = out.result[SECRETS_KEY].as_array().unwrap();
        assert!(secrets.contains(&json!("new-secret")) && secrets.contains(&json!("https://a")));
    }

    #[tokio::test]
    async fn empty_generated_value_is_filled_and_mode_is_enforced() {
        let env = LocalEnv::new();
        let path = env.path(".env");
        std::fs::write(&path, "PG_PASS=\nOTHER=1").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let a = args(
            "env_file",
            json!({"path": path, "generate": {"PG_PASS": "hex:8"}}),
        );
        let out = run_module(&EnvFile, &env, &a).await.unwrap();
        assert!(out.changed);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("PG_PASS=") && text.ends_with("\nOTHER=1\n"),
            "{text}"
        );
        assert_eq!(read_doc(&path).get("PG_PASS").map(str::len), Some(16));
        assert_eq!(mode_of(&path), 0o600);
        // A mode-only drift is a change too, and only the mode.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let out = run_module(&EnvFile, &env, &a).await.unwrap();
        assert!(out.changed);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        assert_eq!(mode_of(&path), 0o600);
    }

    #[tokio::test]
    async fn apply_refuses_a_file_changed_since_the_plan() {
        let env = LocalEnv::new();
        let path = env.path(".env");
        let a = args(
            "env_file",
            json!({"path": path, "generate": {"TOKEN": "alnum:20"}}),
        );
        let plan = EnvFile.plan(&env, &a).await.unwrap();
        // Another controller wins the race and writes its own secret first.
        std::fs::write(&path, "TOKEN=theirs\n").unwrap();
        let err = EnvFile.apply(&env, &a, plan).await.expect_err("must fail");
        let ModuleError::Failed { msg, .. } = err else {
            panic!("transport error")
        };
        assert!(msg.contains("appeared since it was read"), "{msg}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "TOKEN=theirs\n");
    }

    #[tokio::test]
    async fn bad_arguments_and_absent_state() {
        let env = LocalEnv::new();
        let path = env.path(".env");
        for (bad, want) in [
            (
                json!({"path": path, "values": {"A": 1}, "generate": {"A": "hex:4"}}),
                "both in values and in generate",
            ),
            (
                json!({"path": path, "values": {"1A": "x"}}),
                "not a valid variable name",
            ),
            (
                json!({"path": path, "values": {"A": "it's"}}),
                "single quote",
            ),
            (
                json!({"path": env.path("nodir/.env"), "values": {"A": "b"}}),
                "does not exist",
            ),
        ] {
            let (msg, _) = failure(run_module(&EnvFile, &env, &args("env_file", bad)).await);
            assert!(msg.contains(want), "{msg}");
        }
        std::fs::write(&path, "A=1\n").unwrap();
        let absent = args("env_file", json!({"path": path, "state": "absent"}));
        assert!(run_module(&EnvFile, &env, &absent).await.unwrap().changed);
        assert!(!std::path::Path::new(&path).exists());
        assert!(!run_module(&EnvFile, &env, &absent).await.unwrap().changed);
    }

    #[tokio::test]
    async fn generated_values_travel_on_stdin_only() {
        let env = LocalEnv::new();
        let path = env.path(".env");
        let a = args(
            "env_file",
            json!({"path": path, "generate": {"TOKEN": "alnum:30"}}),
        );
        let plan = EnvFile.plan(&env, &a).await.unwrap();
        EnvFile.apply(&env, &a, plan).await.unwrap();
        let token = read_doc(&path).get("TOKEN").unwrap().to_string();
        assert_eq!(token.len(), 30);
        let scripts = env.scripts();
        assert_eq!(scripts.len(), 2, "one probe, one write");
        assert!(scripts.iter().all(|s| !s.contains(&token)));
    }
}
