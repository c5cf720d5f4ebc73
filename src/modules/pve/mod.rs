//! Proxmox VE access-control modules, run on the nodes over SSH: `pve_realm` (an OpenID Connect
//! realm), `pve_group`, `pve_acl` and `pve_oidc_preflight` (can this node use the issuer at all?).
//!
//! They drive `pveum`/`pvesh` (never edit /etc/pve by hand: those tools take pmxcfs's cluster lock
//! and validate, reference proxmox-realm.md §3.1, §10.5). Every plan is one round trip that also
//! probes the node (libpve-access-control version, `/etc/pve/.members`), every apply one more.
//! Lists that PVE builds from Perl hashes come back in random order, so they are compared as sets.
#![allow(dead_code)]

pub mod acl;
pub mod group;
pub mod preflight;
pub mod realm;

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::filecommon::Records;
use super::remote::quote;
use super::ModuleError;

/// Shell functions the PVE scripts use on top of `filecommon::SHELL_LIB`.
///
/// `orch_run TAG CMD...` records a command's exit status, stdout and stderr (base64) as
/// `@TAG.rc/out/err` and returns its status. `orch_node` records what the modules need to know
/// about the node. Values given on the command line are decoded by PVE with the locale, so
/// pveum/pvesh run under a UTF-8 one (reference §10.8).
pub const PVE_LIB: &str = r#"export LC_ALL=C.UTF-8
orch_run() {
  _t=$1; shift
  _o=$(mktemp) || exit 3
  _e=$(mktemp) || { rm -f "$_o"; exit 3; }
  "$@" >"$_o" 2>"$_e"
  _rc=$?
  orch_kv "$_t" rc "$_rc"
  printf '@%s.out=' "$_t"; orch_b64 <"$_o"
  printf '@%s.err=' "$_t"; orch_b64 <"$_e"
  rm -f "$_o" "$_e"
  return "$_rc"
}
orch_node() {
  orch_kv node probed 1
  command -v pvesh >/dev/null 2>&1 && orch_kv node pvesh 1
  command -v pveum >/dev/null 2>&1 && orch_kv node pveum 1
  _v=$(dpkg-query -W -f '${Version}' libpve-access-control 2>/dev/null) && orch_kv node access_control "$_v"
  if [ -r /etc/pve/.members ]; then printf '@node.members='; orch_b64 </etc/pve/.members; fi
  return 0
}
"#;

/// The start of every PVE script: the shared shell functions and the node probe.
pub fn script_prologue() -> String {
    format!("{}{}orch_node\n", super::filecommon::SHELL_LIB, PVE_LIB)
}

/// What the node probe found.
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    pub has_pvesh: bool,
    pub has_pveum: bool,
    /// `dpkg-query -W -f '${Version}' libpve-access-control`, e.g. `8.2.2`.
    pub access_control: Option<String>,
    /// `/etc/pve/.members` (pmxcfs's view of the cluster), if readable.
    pub members: Option<Value>,
}

impl NodeInfo {
    pub fn from_records(records: &Records) -> NodeInfo {
        NodeInfo {
            has_pvesh: records.flag("node", "pvesh"),
            has_pveum: records.flag("node", "pveum"),
            access_control: records
                .get("node", "access_control")
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
            members: records
                .text("node", "members")
                .and_then(|text| serde_json::from_str(&text).ok()),
        }
    }

    /// Fails unless this host has the PVE tools (a plain Debian host, or PVE not installed).
    pub fn require_pve(&self) -> Result<(), ModuleError> {
        if !self.has_pvesh || !self.has_pveum {
            return Err(ModuleError::msg(
                "pvesh/pveum not found: this host is not a Proxmox VE node (run the PVE tasks on \
                 the hosts of the pve group only)",
            ));
        }
        Ok(())
    }

    /// The node's name as pmxcfs knows it.
    pub fn nodename(&self) -> Option<&str> {
        self.members.as_ref()?.get("nodename")?.as_str()
    }

    /// The cluster name, None for a standalone node.
    pub fn cluster_name(&self) -> Option<&str> {
        self.members.as_ref()?.get("cluster")?.get("name")?.as_str()
    }

    /// False only when `.members` says the cluster has lost quorum (a standalone node has no
    /// `cluster` key and is always quorate).
    pub fn quorate(&self) -> bool {
        let Some(cluster) = self.members.as_ref().and_then(|m| m.get("cluster")) else {
            return true;
        };
        !matches!(json_flag(cluster.get("quorate")), Some(false))
    }

    /// Writes to /etc/pve need quorum: without it pmxcfs is read-only and pveum waits 10 s for the
    /// cluster lock before failing with `cfs-lock ... error: no quorum!`. Say so up front.
    pub fn require_quorum(&self, what: &str) -> Result<(), ModuleError> {
        if self.quorate() {
            return Ok(());
        }
        Err(ModuleError::msg(format!(
            "{what}: node {} of cluster '{}' is not quorate (/etc/pve/.members says \"quorate\": 0), \
             so /etc/pve is read-only here — run this task on a quorate member of the cluster, or \
             restore quorum first (pvecm status)",
            self.nodename().unwrap_or("?"),
            self.cluster_name().unwrap_or("?")
        )))
    }

    /// Does the installed libpve-access-control have `min` or later? Unknown versions (no dpkg
    /// record) are treated as current: PVE's own option parser still has the last word.
    pub fn at_least(&self, min: &str) -> bool {
        match &self.access_control {
            Some(have) => compare_versions(have, min) != Ordering::Less,
            None => true,
        }
    }

    pub fn version_text(&self) -> &str {
        self.access_control.as_deref().unwrap_or("unknown")
    }

    /// Facts for results: `access_control_version`, `node`, `cluster`.
    pub fn describe(&self, result: &mut Map<String, Value>) {
        if let Some(v) = &self.access_control {
            result.insert("access_control_version".into(), v.clone().into());
        }
        if let Some(n) = self.nodename() {
            result.insert("node".into(), n.into());
        }
        result.insert(
            "cluster".into(),
            self.cluster_name().map(Value::from).unwrap_or(Value::Null),
        );
    }
}

/// One command's outcome, as recorded by `orch_run TAG ...`.
#[derive(Clone, Debug, Default)]
pub struct CmdOutput {
    pub ran: bool,
    pub rc: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn from_records(records: &Records, tag: &str) -> CmdOutput {
        match records.get(tag, "rc").and_then(|rc| rc.trim().parse().ok()) {
            None => CmdOutput::default(),
            Some(rc) => CmdOutput {
                ran: true,
                rc,
                stdout: records.text(tag, "out").unwrap_or_default(),
                stderr: records.text(tag, "err").unwrap_or_default(),
            },
        }
    }

    pub fn ok(&self) -> bool {
        self.ran && self.rc == 0
    }

    /// stdout as JSON (`--output-format json`).
    pub fn json(&self, what: &str) -> Result<Value, ModuleError> {
        serde_json::from_str(self.stdout.trim()).map_err(|e| {
            ModuleError::msg(format!(
                "{what}: unexpected output (not JSON: {e}): {}",
                first_lines(&self.stdout, 3)
            ))
        })
    }

    /// PVE's error text: stderr without the usage line that parameter errors end with, and with
    /// every secret replaced (a value may be echoed back in a validation message).
    pub fn error_text(&self, secrets: &[&str]) -> String {
        let mut lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|line| !line.trim().is_empty())
            .collect();
        if lines.len() > 1 {
            if let Some(last) = lines.last() {
                let l = last.trim_start();
                if l.starts_with("USAGE:")
                    || l.starts_with("pveum ")
                    || l.starts_with("pvesh ")
                    || l.starts_with("usage:")
                {
                    lines.pop();
                }
            }
        }
        let mut text = lines.join("\n");
        if text.is_empty() {
            text = if self.ran {
                format!("exit status {}", self.rc)
            } else {
                "the command did not run".to_string()
            };
        }
        mask(&text, secrets)
    }
}

/// Replaces every secret in `text` by `********`.
pub fn mask(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret, "********");
    }
    out
}

fn first_lines(text: &str, n: usize) -> String {
    text.lines().take(n).collect::<Vec<_>>().join(" / ")
}

/// The plan's one round trip for group and ACL modules: node facts plus `pvesh get <api_path>`
/// as JSON. `what` names the listing in errors ("groups", "ACLs").
pub async fn read_pvesh(
    env: &dyn super::TaskEnv,
    module: &str,
    what: &str,
    api_path: &str,
) -> Result<(NodeInfo, Value), ModuleError> {
    let script = format!(
        "{}orch_run read pvesh get {api_path} --output-format json\nexit 0\n",
        script_prologue()
    );
    let out = env.run(&script, None).await?;
    let records = Records::parse(&out.stdout);
    let node = NodeInfo::from_records(&records);
    node.require_pve()?;
    let read = CmdOutput::from_records(&records, "read");
    if !read.ok() {
        return Err(ModuleError::msg(format!(
            "{module}: cannot list {what}: {}",
            read.error_text(&[])
        )));
    }
    let json = read.json(&format!("pvesh get {api_path}"))?;
    Ok((node, json))
}

/// Runs one planned `pveum` command in a single round trip. On failure the error names the
/// command (its first `shown` words) and pveum's message, with `hint` added when it says more.
pub async fn run_pveum(
    env: &dyn super::TaskEnv,
    module: &str,
    argv: &[String],
    shown: usize,
    result: &mut Map<String, Value>,
    hint: impl Fn(&CmdOutput) -> Option<&'static str>,
) -> Result<(), ModuleError> {
    let script = format!(
        "{}{PVE_LIB}orch_run step {}\n",
        super::filecommon::SHELL_LIB,
        command_line("pveum", argv)
    );
    let out = env.run(&script, None).await?;
    let step = CmdOutput::from_records(&Records::parse(&out.stdout), "step");
    if step.ok() {
        return Ok(());
    }
    let mut msg = format!(
        "{module}: {} failed: {}",
        command_line("pveum", &argv[..shown.min(argv.len())]),
        step.error_text(&[])
    );
    if let Some(h) = hint(&step) {
        msg.push_str(h);
    }
    result.insert("rc".into(), step.rc.into());
    Err(ModuleError::with_result(msg, result.clone()))
}

/// A PVE command line (`pveum realm add ...`) as shell words.
pub fn command_line(tool: &str, argv: &[String]) -> String {
    let mut out = tool.to_string();
    for arg in argv {
        out.push(' ');
        out.push_str(&quote(arg));
    }
    out
}

/// A JSON value PVE uses as a boolean (numbers 0/1, sometimes strings).
pub fn json_flag(value: Option<&Value>) -> Option<bool> {
    match value? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => parse_pve_bool(s),
        _ => None,
    }
}

/// PVE's boolean parser (JSONSchema `parse_boolean`): 1|0|yes|no|on|off|true|false.
pub fn parse_pve_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "on" | "true" => Some(true),
        "0" | "no" | "off" | "false" => Some(false),
        _ => None,
    }
}

/// A JSON scalar as the text PVE stores (`1`, `pve`, ...).
pub fn json_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
        _ => None,
    }
}

/// Compares Debian-style package versions of Proxmox packages (`8.2.2`, `7.1-3`, `9.0.10`) by
/// their numeric components; an epoch (`1:`) is ignored and a missing component counts as 0.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| -> Vec<u64> {
        let v = v.split_once(':').map(|(_, rest)| rest).unwrap_or(v);
        // `~` sorts before anything in Debian: cut it off and treat what is left as the release.
        let v = v.split('~').next().unwrap_or(v);
        v.split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().unwrap_or(u64::MAX))
            .collect()
    };
    let (pa, pb) = (parts(a), parts(b));
    let len = pa.len().max(pb.len());
    for i in 0..len {
        let x = pa.get(i).copied().unwrap_or(0);
        let y = pb.get(i).copied().unwrap_or(0);
        match x.cmp(&y) {
            Ordering::Equal => continue,
            other => return other,
        }
    }
    Ordering::Equal
}

/// Splits like `PVE::Tools::split_list`: on `,` `;` and whitespace, empty parts dropped.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// A list argument given as a YAML list or as one string (split like PVE splits it).
pub fn list_arg(args: &super::Args, name: &str) -> Result<Option<Vec<String>>, ModuleError> {
    match args.value(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(split_list(s))),
        Some(_) => Ok(args.list(name)?.map(|items| {
            items
                .iter()
                .flat_map(|item| split_list(item))
                .collect::<Vec<_>>()
        })),
    }
}

/// PVE's group-name pattern (`$PVE::Auth::Plugin::groupname_regex`, fixed in 9.0.5).
pub fn valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(compare_versions("8.2.2", "8.2.1"), Ordering::Greater);
        assert_eq!(compare_versions("8.2.1", "8.2.2"), Ordering::Less);
        assert_eq!(compare_versions("9.0.10", "9.0.5"), Ordering::Greater);
        assert_eq!(compare_versions("7.1-3", "7.1-3"), Ordering::Equal);
        assert_eq!(compare_versions("7.0-4", "7.1-3"), Ordering::Less);
        assert_eq!(compare_versions("8.0.4", "7.1-3"), Ordering::Greater);
        assert_eq!(compare_versions("9.1.1", "9.1"), Ordering::Greater);
        assert_eq!(compare_versions("1:8.2.2", "8.2.2"), Ordering::Equal);
        assert_eq!(compare_versions("9.1.1~rc1", "9.1.1"), Ordering::Equal);
    }

    #[test]
    fn node_probe_is_parsed_and_quorum_read_from_members() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let members = r#"{"nodename":"h2","version":4,"cluster":{"name":"lab","version":2,"nodes":2,"quorate":0},"nodelist":{}}"#;
        let out = format!(
            "@node.probed=1\n@node.pvesh=1\n@node.pveum=1\n@node.access_control=8.2.1\n@node.members={}\n",
            b64(members)
        );
        let node = NodeInfo::from_records(&Records::parse(out.as_bytes()));
        node.require_pve().unwrap();
        assert_eq!(node.access_control.as_deref(), Some("8.2.1"));
        assert!(!node.quorate());
        assert!(!node.at_least("8.2.2"));
        assert!(node.at_least("8.2.1"));
        let msg = match node.require_quorum("pve_realm") {
            Err(ModuleError::Failed { msg, .. }) => msg,
            _ => panic!("expected a failure"),
        };
        assert!(
            msg.contains("node h2 of cluster 'lab' is not quorate"),
            "{msg}"
        );

        let solo = format!(
            "@node.pvesh=1\n@node.members={}\n",
            b64(r#"{"nodename":"h3","version":0}"#)
        );
        let node = NodeInfo::from_records(&Records::parse(solo.as_bytes()));
        assert!(node.quorate());
        assert!(node.require_pve().is_err(), "pveum missing");
        assert_eq!(node.cluster_name(), None);
    }

    #[test]
    fn error_text_drops_the_usage_line_and_masks_secrets() {
        let out = CmdOutput {
            ran: true,
            rc: 255,
            stdout: String::new(),
            stderr: "Unknown option: groups-claim\n400 unable to parse option\npveum realm add <realm> --type <string> [OPTIONS]\n".into(),
        };
        assert_eq!(
            out.error_text(&[]),
            "Unknown option: groups-claim\n400 unable to parse option"
        );
        let leaky = CmdOutput {
            stderr: "client-key: value 's3cr3t' is too long\n".into(),
            ..out
        };
        assert_eq!(
            leaky.error_text(&["s3cr3t"]),
            "client-key: value '********' is too long"
        );
    }

    #[test]
    fn lists_split_like_pve() {
        assert_eq!(
            split_list("openid email,profile;groups"),
            vec!["openid", "email", "profile", "groups"]
        );
        assert!(valid_group_name("admins-oidc"));
        assert!(!valid_group_name("Proxmox Admins"));
        assert!(!valid_group_name("/admins"));
    }
}
