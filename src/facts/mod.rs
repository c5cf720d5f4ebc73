//! Host facts, gathered with one probe script (POSIX sh + coreutils; `ip` when present) and parsed on
//! the controller. Keys are those of `ansible_facts` (no `ansible_` prefix), plus orch's own
//! `dpkg_architecture` (`dpkg --print-architecture`: amd64, arm64 …).
#![allow(dead_code)]

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::modules::filecommon::{self as fc, Records};
use crate::modules::{ModuleError, TaskEnv};

/// The probe. Every value that may hold odd bytes is base64.
pub const PROBE: &str = r#"orch_kv f system "$(uname -s)"
orch_kv f kernel "$(uname -r)"
orch_kv f kernel_version "$(uname -v)"
orch_kv f machine "$(uname -m)"
orch_kv f nodename "$(uname -n)"
orch_kv f fqdn "$(hostname -f 2>/dev/null || uname -n)"
if [ -r /etc/os-release ]; then printf '@f.os_release='; orch_b64 < /etc/os-release
elif [ -r /usr/lib/os-release ]; then printf '@f.os_release='; orch_b64 < /usr/lib/os-release; fi
if [ -r /etc/debian_version ]; then orch_kv f debian_version "$(head -n 1 /etc/debian_version)"; fi
if command -v dpkg >/dev/null 2>&1; then orch_kv f dpkg_architecture "$(dpkg --print-architecture 2>/dev/null)"; fi
orch_kv f nproc "$(nproc 2>/dev/null)"
orch_kv f vcpus "$(grep -c '^processor' /proc/cpuinfo 2>/dev/null)"
if [ -r /proc/meminfo ]; then printf '@f.meminfo='; orch_b64 < /proc/meminfo; fi
if [ -r /proc/uptime ]; then orch_kv f uptime "$(cut -d' ' -f1 /proc/uptime)"; fi
if [ -d /run/systemd/system ]; then orch_kv f systemd 1; fi
orch_kv f pid1 "$(cat /proc/1/comm 2>/dev/null)"
if [ -d /etc/init.d ]; then orch_kv f initd 1; fi
for _m in apt-get dnf yum zypper apk pacman; do
  if command -v "$_m" >/dev/null 2>&1; then orch_kv f pkg "$_m"; break; fi
done
orch_kv f user_id "$(id -un)"
orch_kv f user_uid "$(id -u)"
orch_kv f user_gid "$(id -g)"
printf '@f.passwd='; getent passwd "$(id -u)" | head -n 1 | orch_b64
printf '@f.env='; env -0 2>/dev/null | orch_b64
_now=$(date +%s.%N)
orch_kv f date "$(date -d "@$_now" '+%Y/%m/%A/%w/%W/%d/%H/%M/%S/%s/%Z/%z/%N')"
orch_kv f utc "$(date -u -d "@$_now" '+%Y-%m-%dT%H:%M:%S.%6NZ/%Y-%m-%dT%H:%M:%SZ')"
_y=$(date +%Y)
orch_kv f tz_jan "$(date -d "$_y-01-01 12:00" '+%z/%Z')"
orch_kv f tz_jul "$(date -d "$_y-07-01 12:00" '+%z/%Z')"
if [ -r /etc/machine-id ]; then orch_kv f machine_id "$(head -n 1 /etc/machine-id)"; fi
printf '@f.ifaces='; ls /sys/class/net 2>/dev/null | orch_b64
if command -v ip >/dev/null 2>&1; then
  printf '@f.route='; ip -4 route get 8.8.8.8 2>/dev/null | head -n 1 | orch_b64
  printf '@f.addrs='; ip -4 -o addr show 2>/dev/null | orch_b64
fi
printf '@f.proc_route='; cat /proc/net/route 2>/dev/null | orch_b64
_if=$(ip -4 route get 8.8.8.8 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -n 1)
[ -n "$_if" ] || _if=$(awk '$2 == "00000000" { print $1; exit }' /proc/net/route 2>/dev/null)
if [ -n "$_if" ] && [ -d "/sys/class/net/$_if" ]; then
  orch_kv f default_if "$_if"
  orch_kv f default_mac "$(cat "/sys/class/net/$_if/address" 2>/dev/null)"
  orch_kv f default_mtu "$(cat "/sys/class/net/$_if/mtu" 2>/dev/null)"
  orch_kv f default_type "$(cat "/sys/class/net/$_if/type" 2>/dev/null)"
fi
# Proxmox VE: version, access-control library, and the cluster this node belongs to (pmxcfs).
if command -v pveversion >/dev/null 2>&1; then orch_kv f pveversion "$(pveversion 2>/dev/null | head -n 1)"; fi
if command -v dpkg-query >/dev/null 2>&1; then
  orch_kv f pve_access_control "$(dpkg-query -W -f '${Version}' libpve-access-control 2>/dev/null)"
fi
if [ -r /etc/pve/.members ]; then printf '@f.pve_members='; orch_b64 < /etc/pve/.members; fi
if [ -r /etc/pve/pve-root-ca.pem ]; then
  _fp=$(openssl x509 -in /etc/pve/pve-root-ca.pem -noout -fingerprint -sha256 2>/dev/null | sed 's/.*=//')
  [ -n "$_fp" ] || _fp=$(sha256sum /etc/pve/pve-root-ca.pem | cut -d' ' -f1)
  orch_kv f pve_root_ca "$_fp"
fi
exit 0
"#;

/// Runs the probe on the host and returns the facts of the requested `gather_subset`.
pub async fn gather(
    env: &dyn TaskEnv,
    subset: &[String],
) -> Result<Map<String, Value>, ModuleError> {
    let groups = subset_groups(subset)?;
    let (_, out) = fc::run_script(env, PROBE, None).await?;
    if out.rc != 0 {
        return Err(fc::script_failed("gathering facts", &out));
    }
    let facts = parse(&String::from_utf8_lossy(&out.stdout));
    Ok(facts
        .into_iter()
        .filter(|(k, _)| groups.contains(group_of(k)))
        .collect())
}

/// The fact groups Ansible's `gather_subset` names (orch's facts fall in these).
const MINIMAL: &[&str] = &[
    "platform",
    "distribution",
    "user",
    "env",
    "date_time",
    "pkg_mgr",
    "service_mgr",
];
const OTHERS: &[&str] = &["hardware", "network", "virtual"];

fn group_of(key: &str) -> &'static str {
    match key {
        k if k.starts_with("distribution") || k == "os_family" => "distribution",
        k if k.starts_with("user_") => "user",
        "env" => "env",
        "date_time" => "date_time",
        "pkg_mgr" => "pkg_mgr",
        "service_mgr" => "service_mgr",
        k if k.starts_with("mem")
            || k.starts_with("swap")
            || k.starts_with("processor")
            || k == "uptime_seconds" =>
        {
            "hardware"
        }
        "default_ipv4" | "all_ipv4_addresses" | "interfaces" => "network",
        _ => "platform",
    }
}

/// Ansible's `get_collector_names`: `all`, `min`, names, and `!` exclusions; minimal facts stay unless `!min`.
pub fn subset_groups(subset: &[String]) -> Result<BTreeSet<&'static str>, ModuleError> {
    let valid: Vec<&'static str> = MINIMAL.iter().chain(OTHERS).copied().collect();
    let mut add = BTreeSet::new();
    let mut exclude = BTreeSet::new();
    for raw in subset {
        let (negated, name) = match raw.strip_prefix('!') {
            Some(n) => (true, n),
            None => (false, raw.as_str()),
        };
        let names: Vec<&'static str> = match name {
            "all" if negated => OTHERS.to_vec(),
            "all" => valid.clone(),
            "min" => MINIMAL.to_vec(),
            other => match valid.iter().find(|v| **v == other) {
                Some(v) => vec![*v],
                None => {
                    return Err(ModuleError::msg(format!(
                    "Bad subset '{other}' given to Ansible. gather_subset options allowed: all, {}",
                    valid.join(", ")
                )))
                }
            },
        };
        if negated {
            exclude.extend(names);
        } else {
            add.extend(names);
        }
    }
    if add.is_empty() {
        add.extend(valid.iter().copied());
    }
    let mut groups: BTreeSet<&'static str> = add.difference(&exclude).copied().collect();
    groups.extend(MINIMAL.iter().filter(|m| !exclude.contains(*m)));
    Ok(groups)
}

fn os_release_map(text: &str) -> Map<String, Value> {
    let mut map = Map::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
            .unwrap_or(v);
        map.insert(k.trim().to_string(), Value::from(v.replace("\\\"", "\"")));
    }
    map
}

fn distribution_name(id: &str) -> String {
    match id {
        "debian" => "Debian".into(),
        "ubuntu" => "Ubuntu".into(),
        "linuxmint" => "Linux Mint".into(),
        "raspbian" => "Debian".into(),
        "centos" => "CentOS".into(),
        "rhel" => "RedHat".into(),
        "fedora" => "Fedora".into(),
        "rocky" => "Rocky".into(),
        "almalinux" => "AlmaLinux".into(),
        "ol" => "OracleLinux".into(),
        "amzn" => "Amazon".into(),
        "alpine" => "Alpine".into(),
        "arch" => "Archlinux".into(),
        "opensuse-leap" | "opensuse-tumbleweed" | "opensuse" => "openSUSE".into(),
        "sles" => "SLES".into(),
        other => {
            let mut c = other.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_else(|| "NA".into())
        }
    }
}

fn os_family(id: &str, id_like: &str, distribution: &str) -> String {
    let like = |w: &str| id == w || id_like.split_whitespace().any(|l| l == w);
    if like("debian") || like("ubuntu") {
        "Debian".into()
    } else if like("rhel") || like("fedora") || like("centos") || id == "amzn" {
        "RedHat".into()
    } else if like("suse") || id.starts_with("opensuse") || id == "sles" {
        "Suse".into()
    } else if like("arch") {
        "Archlinux".into()
    } else if id == "alpine" {
        "Alpine".into()
    } else {
        distribution.to_string()
    }
}

fn netmask(prefix: u32) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix.min(32))
    }
}

fn ipv4(n: u32) -> String {
    std::net::Ipv4Addr::from(n).to_string()
}

/// One `ip -4 -o addr show` line: (interface, address, prefix, broadcast).
fn parse_addr_line(line: &str) -> Option<(String, String, u32, Option<String>)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let iface = words.get(1)?.trim_end_matches(':').to_string();
    let inet = words.iter().position(|w| *w == "inet")?;
    let (addr, prefix) = words.get(inet + 1)?.split_once('/')?;
    let brd = words
        .iter()
        .position(|w| *w == "brd")
        .and_then(|i| words.get(i + 1))
        .map(|s| s.to_string());
    Some((iface, addr.to_string(), prefix.parse().ok()?, brd))
}

/// Parses the probe's stdout into facts (keys without the `ansible_` prefix).
pub fn parse(output: &str) -> Map<String, Value> {
    let r = Records::parse(output.as_bytes());
    let get = |k: &str| r.get("f", k).unwrap_or("").trim().to_string();
    let mut facts = Map::new();
    let mut put = |k: &str, v: Value| {
        facts.insert(k.to_string(), v);
    };

    // Platform.
    let machine = get("machine");
    let nodename = get("nodename");
    let fqdn = match get("fqdn") {
        f if f.is_empty() => nodename.clone(),
        f => f,
    };
    put("system", get("system").into());
    put("kernel", get("kernel").into());
    put("kernel_version", get("kernel_version").into());
    put("machine", machine.clone().into());
    let architecture = if matches!(machine.as_str(), "i386" | "i486" | "i586" | "i686") {
        "i386".to_string()
    } else {
        machine.clone()
    };
    put("architecture", architecture.into());
    if r.get("f", "dpkg_architecture")
        .is_some_and(|a| !a.is_empty())
    {
        put("dpkg_architecture", get("dpkg_architecture").into());
    }
    put("nodename", nodename.clone().into());
    put("hostname", nodename.split('.').next().unwrap_or("").into());
    put("fqdn", fqdn.clone().into());
    put(
        "domain",
        fqdn.split_once('.').map(|(_, d)| d).unwrap_or("").into(),
    );
    if let Some(id) = r.get("f", "machine_id").filter(|m| !m.is_empty()) {
        put("machine_id", id.into());
    }

    // Distribution.
    let os = r
        .text("f", "os_release")
        .map(|t| os_release_map(&t))
        .unwrap_or_default();
    let osv = |k: &str| os.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let id = osv("ID");
    let distribution = if id.is_empty() {
        "NA".to_string()
    } else {
        distribution_name(&id)
    };
    let debian_version = get("debian_version");
    let version = if id == "debian" && debian_version.starts_with(|c: char| c.is_ascii_digit()) {
        debian_version
    } else if !osv("VERSION_ID").is_empty() {
        osv("VERSION_ID")
    } else {
        "NA".to_string()
    };
    let release = [osv("VERSION_CODENAME"), osv("UBUNTU_CODENAME")]
        .into_iter()
        .find(|c| !c.is_empty())
        .unwrap_or_else(|| "NA".into());
    let mut parts = version.split('.');
    put(
        "distribution_major_version",
        parts.next().unwrap_or("NA").into(),
    );
    if let Some(minor) = parts.next() {
        put("distribution_minor_version", minor.into());
    }
    put(
        "os_family",
        os_family(&id, &osv("ID_LIKE"), &distribution).into(),
    );
    put("distribution", distribution.into());
    put("distribution_version", version.into());
    put("distribution_release", release.into());

    // Hardware.
    let meminfo = r.text("f", "meminfo").unwrap_or_default();
    let mem_kb = |name: &str| {
        meminfo.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
        })
    };
    for (fact, field) in [
        ("memtotal_mb", "MemTotal"),
        ("memfree_mb", "MemFree"),
        ("swaptotal_mb", "SwapTotal"),
        ("swapfree_mb", "SwapFree"),
    ] {
        if let Some(kb) = mem_kb(field) {
            put(fact, (kb / 1024).into());
        }
    }
    let nproc = get("nproc").parse::<u64>().ok();
    let vcpus = get("vcpus")
        .parse::<u64>()
        .ok()
        .filter(|v| *v > 0)
        .or(nproc);
    if let Some(v) = vcpus {
        put("processor_vcpus", v.into());
    }
    if let Some(n) = nproc {
        put("processor_nproc", n.into());
    }
    if let Ok(up) = get("uptime").parse::<f64>() {
        put("uptime_seconds", (up as u64).into());
    }

    // Service and package managers.
    let pid1 = get("pid1");
    let service_mgr = if r.flag("f", "systemd") {
        "systemd".to_string()
    } else if pid1.is_empty() || pid1 == "init" || pid1.ends_with("sh") {
        if r.flag("f", "initd") {
            "sysvinit".into()
        } else {
            "service".into()
        }
    } else {
        pid1
    };
    put("service_mgr", service_mgr.into());
    let pkg = match get("pkg").as_str() {
        "apt-get" => "apt".to_string(),
        "" => "unknown".to_string(),
        other => other.to_string(),
    };
    put("pkg_mgr", pkg.into());

    // User and environment.
    put("user_id", get("user_id").into());
    if let Ok(uid) = get("user_uid").parse::<u64>() {
        put("user_uid", uid.into());
    }
    if let Ok(gid) = get("user_gid").parse::<u64>() {
        put("user_gid", gid.into());
    }
    let passwd = r.text("f", "passwd").unwrap_or_default();
    let pw: Vec<&str> = passwd.trim_end().split(':').collect();
    if pw.len() >= 7 {
        put("user_gecos", pw[4].into());
        put("user_dir", pw[5].into());
        put("user_shell", pw[6].into());
    }
    let mut env = Map::new();
    if let Some(bytes) = r.bytes("f", "env") {
        for entry in bytes.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            let entry = String::from_utf8_lossy(entry);
            if let Some((k, v)) = entry.split_once('=') {
                env.insert(k.to_string(), v.into());
            }
        }
    }
    put("env", Value::Object(env));

    // Date and time.
    let d: Vec<String> = get("date").split('/').map(str::to_string).collect();
    let utc: Vec<String> = get("utc").split('/').map(str::to_string).collect();
    if d.len() == 13 && utc.len() == 2 {
        let micro = &d[12][..d[12].len().min(6)];
        let tz_dst = {
            let jan = get("tz_jan");
            let jul = get("tz_jul");
            let parse = |s: &str| {
                s.split_once('/')
                    .map(|(o, n)| (o.parse::<i32>().unwrap_or(0), n.to_string()))
            };
            match (parse(&jan), parse(&jul)) {
                (Some((oj, nj)), Some((ol, nl))) => {
                    if ol > oj {
                        nl
                    } else if oj > ol {
                        nj
                    } else {
                        nj.clone()
                    }
                }
                _ => d[10].clone(),
            }
        };
        let mut dt = Map::new();
        for (k, v) in [
            ("year", d[0].clone()),
            ("month", d[1].clone()),
            ("weekday", d[2].clone()),
            ("weekday_number", d[3].clone()),
            ("weeknumber", d[4].clone()),
            ("day", d[5].clone()),
            ("hour", d[6].clone()),
            ("minute", d[7].clone()),
            ("second", d[8].clone()),
            ("epoch", d[9].clone()),
            ("epoch_int", d[9].clone()),
            ("date", format!("{}-{}-{}", d[0], d[1], d[5])),
            ("time", format!("{}:{}:{}", d[6], d[7], d[8])),
            ("iso8601_micro", utc[0].clone()),
            ("iso8601", utc[1].clone()),
            (
                "iso8601_basic",
                format!("{}{}{}T{}{}{}{micro}", d[0], d[1], d[5], d[6], d[7], d[8]),
            ),
            (
                "iso8601_basic_short",
                format!("{}{}{}T{}{}{}", d[0], d[1], d[5], d[6], d[7], d[8]),
            ),
            ("tz", d[10].clone()),
            ("tz_dst", tz_dst),
            ("tz_offset", d[11].clone()),
        ] {
            dt.insert(k.into(), v.into());
        }
        put("date_time", Value::Object(dt));
    }

    // Network.
    let interfaces: Vec<Value> = r
        .text("f", "ifaces")
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(Value::from)
        .collect();
    put("interfaces", Value::Array(interfaces));
    let addrs: Vec<(String, String, u32, Option<String>)> = r
        .text("f", "addrs")
        .unwrap_or_default()
        .lines()
        .filter_map(parse_addr_line)
        .collect();
    let all: Vec<Value> = addrs
        .iter()
        .filter(|a| !a.1.starts_with("127."))
        .map(|a| Value::from(a.1.clone()))
        .collect();
    put("all_ipv4_addresses", Value::Array(all));

    let route = r.text("f", "route").unwrap_or_default();
    let words: Vec<&str> = route.split_whitespace().collect();
    let after = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1))
            .map(|s| s.to_string())
    };
    let mut iface = after("dev");
    let mut address = after("src");
    let mut gateway = after("via");
    if iface.is_none() {
        // No `ip`: the default route from /proc/net/route (little-endian hex gateway).
        let proc_route = r.text("f", "proc_route").unwrap_or_default();
        if let Some(fields) = proc_route
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.get(1) == Some(&"00000000"))
        {
            iface = fields.first().map(|s| s.to_string());
            gateway = fields
                .get(2)
                .and_then(|g| u32::from_str_radix(g, 16).ok())
                .map(|g| ipv4(g.swap_bytes()));
        }
    }
    let mut default = Map::new();
    if let Some(iface) = &iface {
        let entry = addrs
            .iter()
            .find(|a| &a.0 == iface && address.as_ref().is_none_or(|ad| ad == &a.1));
        if address.is_none() {
            address = entry.map(|e| e.1.clone());
        }
        if let Some(a) = &address {
            default.insert("address".into(), a.clone().into());
        }
        default.insert("alias".into(), iface.clone().into());
        if let Some((_, addr, prefix, brd)) = entry {
            if let Ok(ip) = addr.parse::<std::net::Ipv4Addr>() {
                let mask = netmask(*prefix);
                default.insert("broadcast".into(), brd.clone().unwrap_or_default().into());
                default.insert("netmask".into(), ipv4(mask).into());
                default.insert("network".into(), ipv4(u32::from(ip) & mask).into());
                default.insert("prefix".into(), prefix.to_string().into());
            }
        }
        if let Some(g) = &gateway {
            default.insert("gateway".into(), g.clone().into());
        }
        default.insert("interface".into(), iface.clone().into());
        if let Some(mac) = r.get("f", "default_mac").filter(|m| !m.is_empty()) {
            default.insert("macaddress".into(), mac.into());
        }
        if let Ok(mtu) = get("default_mtu").parse::<u64>() {
            default.insert("mtu".into(), mtu.into());
        }
        let kind = match get("default_type").as_str() {
            "1" => "ether",
            "772" => "loopback",
            "" => "unknown",
            _ => "unknown",
        };
        default.insert("type".into(), kind.into());
    }
    put("default_ipv4", Value::Object(default));
    for (k, v) in pve_facts(&r, &nodename) {
        facts.insert(k, v);
    }
    facts
}

/// `is_pve`, `pve_version`, `pve_access_control_version` and `pve_cluster`: which cluster a node belongs to.
///
/// The cluster's identity is its name (or `standalone:<node>`) plus the fingerprint of the cluster CA
/// `/etc/pve/pve-root-ca.pem`, which pmxcfs shares between all members: names alone are not unique.
fn pve_facts(r: &Records, nodename: &str) -> Map<String, Value> {
    let mut out = Map::new();
    let get = |k: &str| r.get("f", k).unwrap_or("").trim().to_string();
    let pveversion = get("pveversion");
    // `pve-manager/8.2.4/faa83925c9641325 (running kernel: 6.8.8-2-pve)`
    let version = pveversion.split('/').nth(1).unwrap_or("").to_string();
    let is_pve = !version.is_empty();
    out.insert("is_pve".into(), Value::Bool(is_pve));
    if !is_pve {
        return out;
    }
    out.insert("pve_version".into(), version.into());
    let access = get("pve_access_control");
    if !access.is_empty() {
        out.insert("pve_access_control_version".into(), access.into());
    }
    let members: Value = r
        .text("f", "pve_members")
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let node = members
        .get("nodename")
        .and_then(Value::as_str)
        .unwrap_or(nodename)
        .to_string();
    let fingerprint = get("pve_root_ca");
    let mut cluster = Map::new();
    match members.get("cluster") {
        Some(c) => {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let mut nodes: Vec<String> = members
                .get("nodelist")
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            nodes.sort();
            let online: Vec<String> = members
                .get("nodelist")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter(|(_, v)| v.get("online").and_then(Value::as_i64) == Some(1))
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default();
            cluster.insert("id".into(), format!("{name}/{fingerprint}").into());
            cluster.insert("name".into(), name.into());
            cluster.insert("standalone".into(), false.into());
            cluster.insert(
                "quorate".into(),
                (c.get("quorate").and_then(Value::as_i64) == Some(1)).into(),
            );
            cluster.insert("nodes".into(), nodes.into());
            cluster.insert("online_nodes".into(), online.into());
        }
        None => {
            cluster.insert(
                "id".into(),
                format!("standalone:{node}/{fingerprint}").into(),
            );
            cluster.insert("name".into(), Value::Null);
            cluster.insert("standalone".into(), true.into());
            // A standalone node has no quorum to lose.
            cluster.insert("quorate".into(), true.into());
            cluster.insert("nodes".into(), vec![node.clone()].into());
            cluster.insert("online_nodes".into(), vec![node.clone()].into());
        }
    }
    cluster.insert("node".into(), node.into());
    cluster.insert("ca_fingerprint".into(), fingerprint.into());
    out.insert("pve_cluster".into(), Value::Object(cluster));
    out
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;
    use crate::modules::testenv::LocalEnv;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    /// Output captured from a Debian 12 (bookworm) amd64 host, with the base64 values rebuilt here.
    fn captured() -> String {
        let os_release = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";
        let meminfo = "MemTotal:        8130124 kB\nMemFree:          512000 kB\nSwapTotal:       1048572 kB\nSwapFree:        1048572 kB\n";
        let addrs = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n2: eth0    inet 10.0.0.5/24 brd 10.0.0.255 scope global eth0\\       valid_lft forever preferred_lft forever\n";
        format!(
            "@f.system=Linux\n@f.kernel=6.1.0-18-amd64\n@f.kernel_version=#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)\n@f.machine=x86_64\n\
             @f.nodename=web1\n@f.fqdn=web1.example.org\n@f.os_release={}\n@f.debian_version=12.5\n@f.dpkg_architecture=amd64\n\
             @f.nproc=4\n@f.vcpus=4\n@f.meminfo={}\n@f.uptime=12345.67 \n@f.systemd=1\n@f.pid1=systemd\n@f.initd=1\n@f.pkg=apt-get\n\
             @f.user_id=root\n@f.user_uid=0\n@f.user_gid=0\n@f.passwd={}\n@f.env={}\n\
             @f.date=2024/03/Friday/5/10/08/14/05/09/1709906709/CET/+0100/123456789\n\
             @f.utc=2024-03-08T13:05:09.123456Z/2024-03-08T13:05:09Z\n@f.tz_jan=+0100/CET\n@f.tz_jul=+0200/CEST\n\
             @f.machine_id=0123456789abcdef\n@f.ifaces={}\n@f.route={}\n@f.addrs={}\n\
             @f.default_if=eth0\n@f.default_mac=52:54:00:12:34:56\n@f.default_mtu=1500\n@f.default_type=1\n",
            b64(os_release),
            b64(meminfo),
            b64("root:x:0:0:root:/root:/bin/bash\n"),
            b64("HOME=/root\0PATH=/usr/bin:/bin\0USER=root\0"),
            b64("eth0\nlo\n"),
            b64("8.8.8.8 via 10.0.0.1 dev eth0 src 10.0.0.5 uid 0 \n"),
            b64(addrs),
        )
    }

    #[test]
    fn pve_cluster_identity() {
        let members = r#"{"nodename":"pve1","version":7,"cluster":{"name":"lab","version":3,"nodes":2,"quorate":1},"nodelist":{"pve2":{"id":2,"online":0,"ip":"10.0.0.2"},"pve1":{"id":1,"online":1,"ip":"10.0.0.1"}}}"#;
        let out = format!(
            "{}@f.pveversion=pve-manager/8.2.4/faa83925c9641325 (running kernel: 6.8.8-2-pve)\n@f.pve_access_control=8.1.4\n@f.pve_members={}\n@f.pve_root_ca=AA:BB\n",
            captured(),
            b64(members)
        );
        let f = parse(&out);
        assert_eq!(f["is_pve"], true);
        assert_eq!(f["pve_version"], "8.2.4");
        assert_eq!(f["pve_access_control_version"], "8.1.4");
        let c = &f["pve_cluster"];
        assert_eq!(c["id"], "lab/AA:BB");
        assert_eq!(c["quorate"], true);
        assert_eq!(c["nodes"], serde_json::json!(["pve1", "pve2"]));
        assert_eq!(c["online_nodes"], serde_json::json!(["pve1"]));
        assert_eq!(c["node"], "pve1");

        let standalone = format!(
            "{}@f.pveversion=pve-manager/8.2.4/x\n@f.pve_members={}\n@f.pve_root_ca=CC\n",
            captured(),
            b64(r#"{"nodename":"solo","version":2}"#)
        );
        let f = parse(&standalone);
        assert_eq!(f["pve_cluster"]["id"], "standalone:solo/CC");
        assert_eq!(f["pve_cluster"]["standalone"], true);
        assert_eq!(parse(&captured())["is_pve"], false);
    }

    #[test]
    fn parses_a_debian_host() {
        let f = parse(&captured());
        assert_eq!(f["distribution"], "Debian");
        assert_eq!(f["distribution_release"], "bookworm");
        assert_eq!(f["distribution_version"], "12.5");
        assert_eq!(f["distribution_major_version"], "12");
        assert_eq!(f["distribution_minor_version"], "5");
        assert_eq!(f["os_family"], "Debian");
        assert_eq!(f["architecture"], "x86_64");
        assert_eq!(f["dpkg_architecture"], "amd64");
        assert_eq!(f["hostname"], "web1");
        assert_eq!(f["fqdn"], "web1.example.org");
        assert_eq!(f["domain"], "example.org");
        assert_eq!(f["memtotal_mb"], 7939);
        assert_eq!(f["processor_vcpus"], 4);
        assert_eq!(f["service_mgr"], "systemd");
        assert_eq!(f["pkg_mgr"], "apt");
        assert_eq!(f["user_dir"], "/root");
        assert_eq!(f["env"]["PATH"], "/usr/bin:/bin");
        assert_eq!(f["uptime_seconds"], 12345);
        let d = &f["default_ipv4"];
        assert_eq!(d["address"], "10.0.0.5");
        assert_eq!(d["gateway"], "10.0.0.1");
        assert_eq!(d["interface"], "eth0");
        assert_eq!(d["netmask"], "255.255.255.0");
        assert_eq!(d["network"], "10.0.0.0");
        assert_eq!(d["macaddress"], "52:54:00:12:34:56");
        assert_eq!(f["all_ipv4_addresses"], serde_json::json!(["10.0.0.5"]));
        assert_eq!(f["date_time"]["date"], "2024-03-08");
        assert_eq!(f["date_time"]["tz_dst"], "CEST");
        assert_eq!(f["date_time"]["iso8601_basic"], "20240308T140509123456");
    }

    #[test]
    fn gather_subset_rules() {
        let g = |s: &[&str]| {
            subset_groups(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>()).unwrap()
        };
        assert!(g(&[]).contains("hardware"));
        assert!(!g(&["!hardware"]).contains("hardware"));
        assert!(g(&["!hardware"]).contains("network"));
        let min = g(&["!all"]);
        assert!(min.contains("distribution") && !min.contains("network"));
        assert!(g(&["!all", "!min"]).is_empty());
        assert!(g(&["network"]).contains("distribution"));
        assert!(subset_groups(&["bogus".to_string()]).is_err());
    }

    #[tokio::test]
    async fn gathers_from_the_local_host_in_one_round_trip() {
        let env = LocalEnv::new();
        let facts = gather(&env, &[]).await.unwrap();
        assert_eq!(env.runs(), 1);
        assert_eq!(facts["system"], "Linux");
        assert!(!facts["kernel"].as_str().unwrap().is_empty());
        assert!(facts["env"].get("PATH").is_some());
        assert!(
            facts["date_time"]["epoch"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 1_600_000_000
        );
        let min = gather(&env, &["!all".to_string()]).await.unwrap();
        assert!(min.get("memtotal_mb").is_none());
        assert!(min.get("distribution").is_some());
    }
}
