//! `apt`: Debian packages with `apt-get`/`dpkg-query` only (no python3-apt on the target).
//!
//! `plan` makes one round trip: the cache age, `dpkg-query` of the requested packages, the package
//! selection Ansible's module makes (what is missing, outdated, or of the wrong version), and an
//! `apt-get --simulate` of exactly that selection, whose `Inst`/`Remv` lines are the check-mode
//! prediction and the diff. `apply` makes one more: wait for the dpkg/apt locks (`lock_timeout`),
//! `apt-get update` if the cache is stale, select again (a fresh cache may change the candidates),
//! and one `apt-get` call for all packages.
//!
//! `changed` follows Ansible: a cache update alone counts only when nothing else is asked for (and
//! then only when the cache's mtime moved); installs count when the selection was not empty.
#![allow(dead_code)]

use serde_json::{json, Map, Value};

use super::filecommon::{self as fc, Records};
use super::remote::quote;
use super::{Arg, ArgSpec, Args, Diff, Module, ModuleError, Plan, TaskEnv};

pub struct Apt;

pub static SPEC: ArgSpec = ArgSpec {
    args: &[
        Arg::opt("name").aliases(&["package", "pkg"]),
        Arg::opt("state").choices(&["absent", "build-dep", "latest", "present", "fixed"]),
        Arg::opt("update_cache").aliases(&["update-cache"]),
        Arg::opt("update_cache_retries"),
        Arg::opt("update_cache_retry_max_delay"),
        Arg::opt("cache_valid_time"),
        Arg::opt("purge"),
        Arg::opt("deb"),
        Arg::opt("default_release").aliases(&["default-release"]),
        Arg::opt("install_recommends").aliases(&["install-recommends"]),
        Arg::opt("force"),
        Arg::opt("upgrade").choices(&["dist", "full", "no", "safe", "yes"]),
        Arg::opt("dpkg_options"),
        Arg::opt("autoremove"),
        Arg::opt("autoclean"),
        Arg::opt("fail_on_autoremove"),
        Arg::opt("policy_rc_d"),
        Arg::opt("only_upgrade"),
        Arg::opt("force_apt_get"),
        Arg::opt("clean"),
        Arg::opt("allow_unauthenticated").aliases(&["allow-unauthenticated"]),
        Arg::opt("allow_downgrade").aliases(&[
            "allow-downgrade",
            "allow_downgrades",
            "allow-downgrades",
        ]),
        Arg::opt("allow_change_held_packages"),
        Arg::opt("lock_timeout"),
    ],
    free_form: None,
    any_keys: false,
};

const DEFAULT_DPKG_OPTIONS: &str = "force-confdef,force-confold";
/// What `apt-get` prints when an upgrade had nothing to do (Ansible's `APT_GET_ZERO`).
const APT_GET_ZERO: &str = "\n0 upgraded, 0 newly installed";

/// Shell functions of the apt scripts (on top of filecommon's `SHELL_LIB`).
const APT_LIB: &str = r#"export DEBIAN_FRONTEND=noninteractive DEBIAN_PRIORITY=critical LC_ALL=C
command -v apt-get >/dev/null 2>&1 || orch_fail "apt-get not found: the apt module needs a Debian-like target"
orch_cache_time() {
  if [ -e /var/lib/apt/periodic/update-success-stamp ]; then stat -c %Y /var/lib/apt/periodic/update-success-stamp
  elif [ -e /var/lib/apt/lists ]; then stat -c %Y /var/lib/apt/lists
  else echo 0; fi
}
orch_fetch() {
  if command -v curl >/dev/null 2>&1; then curl -fsSL -o "$2" -- "$1"
  elif command -v wget >/dev/null 2>&1; then wget -q -O "$2" -- "$1"
  else orch_fail "neither curl nor wget is installed on the target"; fi
}
# Runs "$@" with stdout/stderr captured as records of tag $1 (rc, out, err); keeps stderr in $orch_err.
orch_capture() {
  _tag=$1; shift
  _o=$(mktemp) && _e=$(mktemp) || orch_fail "mktemp failed"
  "$@" >"$_o" 2>"$_e"; _rc=$?
  orch_kv "$_tag" rc "$_rc"
  printf '@%s.out=' "$_tag"; orch_b64 < "$_o"
  printf '@%s.err=' "$_tag"; orch_b64 < "$_e"
  orch_err=$(cat "$_e"); rm -f "$_o" "$_e"
  return "$_rc"
}
# The first held dpkg/apt lock as "PATH<TAB>PID (COMMAND)", from /proc/locks (flock and fcntl locks).
orch_lock_holder() {
  for _f in /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock; do
    [ -e "$_f" ] || continue
    _d=$(stat -c %d -- "$_f") && _ino=$(stat -c %i -- "$_f") || continue
    _id=$(printf '%02x:%02x:%s' $(( (_d >> 8) & 4095 )) $(( (_d & 255) | ((_d >> 12) & 1048320) )) "$_ino")
    while read -r _n _t _x _y _pid _lid _rest; do
      [ "$_t" = "->" ] && continue
      [ "$_lid" = "$_id" ] || continue
      if [ "$_pid" -le 0 ] 2>/dev/null; then _pid=$(orch_lock_user "$_f"); fi
      printf '%s\t%s\n' "$_f" "$(orch_proc "$_pid")"
      return 0
    done < /proc/locks
  done
  return 1
}
# A process that has PATH open (for locks whose owner /proc/locks does not show): fuser, else /proc/*/fd.
orch_lock_user() {
  if command -v fuser >/dev/null 2>&1; then
    fuser -- "$1" 2>/dev/null | tr -s ' ' '\n' | grep -m1 '[0-9]' && return 0
  fi
  for _fd in /proc/[0-9]*/fd/*; do
    [ "$(readlink "$_fd" 2>/dev/null)" = "$1" ] && { _p=${_fd#/proc/}; echo "${_p%%/*}"; return 0; }
  done
  echo "?"
}
orch_proc() {
  if [ -r "/proc/$1/cmdline" ]; then
    printf '%s (%s)' "$1" "$(tr '\0' ' ' < "/proc/$1/cmdline" | sed 's/ $//')"
  else printf '%s' "$1"; fi
}
# Waits up to $1 seconds for the dpkg/apt locks; leaves the seconds left in $orch_lock_left.
orch_lock_wait() {
  # Counts whole seconds slept, so that the wait is never shorter than asked (date +%s is coarse).
  _end=$(( $(date +%s) + $1 ))
  _slept=0
  while _h=$(orch_lock_holder); do
    if [ "$_slept" -ge "$1" ]; then
      orch_fail "Failed to lock apt for exclusive operation: could not get lock ${_h%%	*} within $1 seconds: it is held by process ${_h#*	}"
    fi
    sleep 1
    _slept=$((_slept + 1))
  done
  orch_lock_left=$(( _end - $(date +%s) ))
  [ "$orch_lock_left" -gt 0 ] || orch_lock_left=1
}
# apt-get update with Ansible's retries: $1 retries, $2 max delay.
orch_apt_update() {
  _try=0
  orch_kv cache before "$(orch_cache_time)"
  until orch_capture update apt-get update -q -o APT::Update::Error-Mode=any; do
    _try=$((_try + 1))
    [ "$_try" -ge "$1" ] && orch_fail "Failed to update apt cache: $orch_err"
    _delay=$(( 1 << _try )); [ "$_delay" -gt "$2" ] && _delay=$2
    sleep "$_delay"
  done
  orch_kv cache after "$(orch_cache_time)"
}
orch_policy_rc_d() {
  _prc=
  if [ -e /usr/sbin/policy-rc.d ]; then _prc=$(mktemp -d) && mv /usr/sbin/policy-rc.d "$_prc/" || orch_fail "Fail to move /usr/sbin/policy-rc.d to $_prc"; fi
  printf '#!/bin/sh\nexit %d\n' "$1" > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d || orch_fail "Failed to create or chmod /usr/sbin/policy-rc.d"
}
orch_policy_rc_d_restore() {
  if [ -n "$_prc" ]; then mv "$_prc/policy-rc.d" /usr/sbin/policy-rc.d && rmdir "$_prc"; else rm -f /usr/sbin/policy-rc.d; fi
}
# Ansible's package selection. $1 mode (install|latest|remove), $2 only_upgrade (0/1), $3 purge (0/1),
# $4 apt-cache options; stdin: NAME<TAB>CMP<TAB>VERSION lines. Appends apt-get arguments to $orch_sel
# (one per line) and prints one record per package (tag pkgN).
orch_apt_select() {
  orch_sel= _i=0
  while IFS='	' read -r _n _c _v; do
    [ -n "$_n" ] || continue
    case $_n in
      *[*?[]*)
        _names=$(apt-cache $4 pkgnames 2>/dev/null | while read -r _p; do case $_p in *:*) ;; $_n) echo "$_p";; esac; done | sort)
        [ -n "$_names" ] || orch_fail "No package(s) matching '$_n' available";;
      *) _names=$_n;;
    esac
    for _p in $_names; do orch_apt_one "$1" "$2" "$3" "$4" "$_p" "$_c" "$_v"; done
  done
}
orch_apt_one() {
  _i=$((_i + 1)); _t=pkg$_i
  _s=$(dpkg-query -W -f='${db:Status-Abbrev}|${Version}' -- "$5" 2>/dev/null | head -n 1)
  orch_kv "$_t" name "$5"; orch_kv "$_t" dpkg "$_s"
  _st=${_s%%|*}; _iv=${_s#*|}; _inst=0; _files=0
  case $_st in ?i*) _inst=1 _files=1;; ?[!n]*) _files=1;; esac
  _vm=$_inst
  if [ "$_inst" = 1 ] && [ -n "$7" ]; then
    _vm=0
    case $6 in
      '>=') dpkg --compare-versions "$_iv" ge "$7" && _vm=1;;
      *) case $_iv in $7) _vm=1;; esac;;
    esac
  fi
  if [ "$1" = remove ]; then
    if [ "$_vm" = 1 ] || { [ "$3" = 1 ] && [ "$_files" = 1 ]; }; then
      if [ -n "$7" ]; then _arg="$5$6$7"; else _arg=$5; fi
      orch_kv "$_t" select "$_arg"
      orch_sel="$orch_sel$_arg
"
    fi
    return 0
  fi
  # Installing: the version apt would pick (a version glob picks the highest matching one).
  [ "$_inst" = 1 ] && [ "$_vm" = 1 ] && [ "$1" != latest ] && [ "$6" != '=' ] && return 0
  _pol=$(apt-cache $4 policy -- "$5" 2>/dev/null)
  case $_pol in *"Candidate:"*) orch_kv "$_t" known 1;; *) [ "$_inst" = 1 ] || { orch_kv "$_t" unknown 1; return 0; };; esac
  _best=$(printf '%s\n' "$_pol" | sed -n 's/^ *Candidate: //p' | head -n 1)
  [ "$_best" = "(none)" ] && _best=
  if [ "$6" = '=' ]; then
    _best=
    for _ver in $(apt-cache $4 madison -- "$5" 2>/dev/null | awk -F'|' '{gsub(/ /, "", $2); print $2}'); do
      case $_ver in $7) _best=$_ver; break;; esac
    done
  fi
  orch_kv "$_t" candidate "$_best"
  _ins=; [ -n "$_best" ] && [ "$_iv" != "$_best" ] && _ins=$_best
  [ "$_inst" = 1 ] || _ins=$_best
  _take=0
  if [ "$_inst" = 0 ] && [ "$2" = 0 ]; then _take=1
  elif [ "$_inst" = 1 ] && [ "$_vm" = 0 ]; then _take=1
  elif [ "$1" = latest ] && [ -n "$_ins" ] && [ "$_inst" = 1 -o "$2" = 0 ]; then _take=1
  elif [ "$_inst" = 1 ] && [ -n "$_ins" ] && [ "$6" = '=' ]; then _take=1
  fi
  [ "$_take" = 1 ] || return 0
  if [ -n "$_ins" ]; then _arg="$5=$_ins"; elif [ -n "$7" ]; then _arg="$5=$7"; else _arg=$5; fi
  orch_kv "$_t" select "$_arg"
  orch_sel="$orch_sel$_arg
"
}
# Sets "$@" to the lines of $orch_sel: call as `eval "set -- $(orch_sel_args)"`.
orch_sel_args() {
  printf '%s\n' "$orch_sel" | while IFS= read -r _a; do [ -n "$_a" ] && printf "'%s' " "$_a"; done
}
"#;

/// A package request: `name`, `name=version` (version may be a glob) or `name>=version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageSpec {
    pub name: String,
    pub cmp: String,
    pub version: String,
}

impl PackageSpec {
    /// Ansible's `package_split`: splits at the first `=` or `>=`.
    pub fn parse(spec: &str) -> Result<PackageSpec, ModuleError> {
        let spec = spec.trim();
        if spec.matches('=').count() > 1 {
            return Err(ModuleError::msg(format!("invalid package spec: {spec}")));
        }
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.:~_*?[]!".contains(c))
        };
        let (name, cmp, version) = match spec.find('=') {
            None => (spec, "", ""),
            Some(i) if i > 0 && spec.as_bytes()[i - 1] == b'>' => {
                (&spec[..i - 1], ">=", &spec[i + 1..])
            }
            Some(i) => (&spec[..i], "=", &spec[i + 1..]),
        };
        if !valid(name) || (!cmp.is_empty() && !valid(version)) {
            return Err(ModuleError::msg(format!("invalid package spec: {spec}")));
        }
        Ok(PackageSpec {
            name: name.to_string(),
            cmp: cmp.to_string(),
            version: version.to_string(),
        })
    }

    fn line(&self) -> String {
        format!("{}\t{}\t{}\n", self.name, self.cmp, self.version)
    }
}

/// One line of `apt-get --simulate` output that changes a package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimAction {
    /// `Inst`, `Remv` or `Purg`.
    pub kind: String,
    pub name: String,
    /// The installed version being replaced or removed (`[old]`).
    pub old: Option<String>,
    /// The version being installed (`(new release [arch])`).
    pub new: Option<String>,
}

/// The `Inst`/`Remv`/`Purg` lines of `apt-get -s` (`Conf` lines repeat `Inst` and are skipped).
pub fn parse_simulation(out: &str) -> Vec<SimAction> {
    out.lines()
        .filter_map(|line| {
            let (kind, rest) = line.split_once(' ')?;
            if !matches!(kind, "Inst" | "Remv" | "Purg") {
                return None;
            }
            let mut rest = rest.trim();
            let name_end = rest.find(' ').unwrap_or(rest.len());
            let name = rest[..name_end].to_string();
            rest = rest[name_end..].trim_start();
            let mut old = None;
            if let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']')?;
                old = Some(r[..end].to_string());
                rest = r[end + 1..].trim_start();
            }
            let new = rest
                .strip_prefix('(')
                .and_then(|r| r.split_whitespace().next())
                .map(|v| v.trim_end_matches(')').to_string());
            Some(SimAction {
                kind: kind.to_string(),
                name,
                old,
                new,
            })
        })
        .collect()
}

/// A `dpkg-query -W -f='${db:Status-Abbrev}|${Version}'` line: (installed, has files, version).
pub fn parse_dpkg_status(line: &str) -> (bool, bool, Option<String>) {
    let (status, version) = line.split_once('|').unwrap_or((line, ""));
    let mut chars = status.chars();
    let current = chars.nth(1).unwrap_or('n');
    let installed = current == 'i';
    let has_files = current != 'n' && !status.is_empty();
    let version = (!version.is_empty()).then(|| version.to_string());
    (installed, has_files, version)
}

/// Ansible's `parse_diff`: the part of apt-get's output between "Reading state information..." and
/// the "N upgraded" line.
pub fn prepared_diff(out: &str) -> String {
    let lines: Vec<&str> = out.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == "Reading state information...")
        .map_or(0, |i| i + 1);
    let end = lines
        .iter()
        .position(|l| {
            let mut words = l.split_whitespace();
            let number = words.next().is_some_and(|w| w.parse::<u64>().is_ok());
            let next = words.next();
            number
                && (next == Some("upgraded,")
                    || (next == Some("packages") && words.next() == Some("upgraded,")))
        })
        .map_or(lines.len(), |i| i + 1);
    lines
        .get(start..end.max(start))
        .map(|l| l.join("\n"))
        .unwrap_or_default()
}

/// A before/after view of the packages a simulation changes.
fn simulation_diff(actions: &[SimAction]) -> Diff {
    let mut actions: Vec<&SimAction> = actions.iter().collect();
    actions.sort_by(|a, b| a.name.cmp(&b.name));
    let mut before = String::new();
    let mut after = String::new();
    for a in actions {
        if let Some(old) = &a.old {
            before.push_str(&format!("{} {old}\n", a.name));
        }
        if a.kind == "Inst" {
            if let Some(new) = &a.new {
                after.push_str(&format!("{} {new}\n", a.name));
            }
        }
    }
    Diff {
        before_header: "installed packages (before)".into(),
        after_header: "installed packages (after)".into(),
        before,
        after,
    }
}

/// What the task asks apt to do (Ansible runs exactly one of these, in this order of precedence).
#[derive(Clone, Debug, PartialEq)]
enum Op {
    /// Only `clean` (Ansible reports it as changed).
    CleanOnly,
    /// Only `update_cache`/`cache_valid_time`.
    CacheOnly,
    Upgrade(String),
    Deb(String),
    Install {
        specs: Vec<PackageSpec>,
        latest: bool,
    },
    Remove {
        specs: Vec<PackageSpec>,
    },
    /// `autoclean` or `autoremove` without packages.
    Cleanup(&'static str),
    /// Nothing to do (e.g. `state: present` with an empty list).
    Nothing,
}

struct Options {
    op: Op,
    update_cache: bool,
    cache_valid_time: i64,
    retries: i64,
    retry_max_delay: i64,
    clean: bool,
    purge: bool,
    only_upgrade: bool,
    autoremove: bool,
    lock_timeout: i64,
    policy_rc_d: Option<i64>,
    default_release: Option<String>,
    /// `apt-get` words shared by install/upgrade (dpkg options, flags).
    dpkg_options: Vec<String>,
    force: bool,
    install_recommends: Option<bool>,
    allow_unauthenticated: bool,
    allow_downgrade: bool,
    allow_change_held_packages: bool,
    fail_on_autoremove: bool,
}

impl Options {
    fn from_args(args: &Args) -> Result<Options, ModuleError> {
        let state = args.choice(
            "state",
            &["absent", "build-dep", "latest", "present", "fixed"],
            "present",
        )?;
        if state == "build-dep" || state == "fixed" {
            return Err(ModuleError::msg(format!(
                "apt: state={state} is not supported by orch (use present, latest or absent)"
            )));
        }
        let names = args.list("name")?;
        let deb = args.str("deb")?;
        let upgrade = args
            .choice("upgrade", &["dist", "full", "no", "safe", "yes"], "no")
            .map(|u| if u == "no" { None } else { Some(u) })?;
        let given = [names.is_some(), deb.is_some(), upgrade.is_some()];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(ModuleError::msg(
                "parameters are mutually exclusive: deb|package|upgrade",
            ));
        }
        let update_cache = args.bool("update_cache", false)?;
        let cache_valid_time = args.int("cache_valid_time")?.unwrap_or(0);
        let autoremove = args.bool("autoremove", false)?;
        let autoclean = args.bool("autoclean", false)?;
        let clean = args.bool("clean", false)?;
        if !(given.iter().any(|g| *g) || update_cache || autoremove || clean || autoclean) {
            return Err(ModuleError::msg(
                "one of the following is required: autoremove, deb, package, update_cache, upgrade",
            ));
        }
        let specs = names
            .as_ref()
            .map(|n| {
                n.iter()
                    .map(|s| s.trim())
                    .filter(|s| *s != "*")
                    .map(PackageSpec::parse)
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let all_installed = names
            .as_ref()
            .is_some_and(|n| n.iter().any(|s| s.trim() == "*"));
        // An empty list counts as no packages, as Python's truthiness does in Ansible.
        let no_names = names.as_ref().is_none_or(|n| n.is_empty());
        let op = if let Some(mode) = upgrade {
            Op::Upgrade(mode)
        } else if let Some(deb) = deb {
            if state != "present" {
                return Err(ModuleError::msg("deb only supports state=present"));
            }
            Op::Deb(deb)
        } else if state == "latest" && all_installed {
            if !specs.is_empty() {
                return Err(ModuleError::msg(
                    "unable to install additional packages when upgrading all installed packages",
                ));
            }
            Op::Upgrade("yes".into())
        } else if specs.is_empty() && autoclean {
            Op::Cleanup("autoclean")
        } else if specs.is_empty() && autoremove {
            Op::Cleanup("autoremove")
        } else if no_names && (update_cache || cache_valid_time > 0) {
            Op::CacheOnly
        } else if no_names && clean {
            Op::CleanOnly
        } else if specs.is_empty() {
            Op::Nothing
        } else if state == "absent" {
            Op::Remove { specs }
        } else {
            Op::Install {
                specs,
                latest: state == "latest",
            }
        };
        let dpkg_options = args
            .str("dpkg_options")?
            .unwrap_or_else(|| DEFAULT_DPKG_OPTIONS.to_string());
        let dpkg_options = dpkg_options
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .flat_map(|o| ["-o".to_string(), format!("Dpkg::Options::=--{o}")])
            .collect();
        Ok(Options {
            op,
            update_cache: update_cache || cache_valid_time > 0,
            cache_valid_time,
            retries: args.int("update_cache_retries")?.unwrap_or(5).max(1),
            retry_max_delay: args
                .int("update_cache_retry_max_delay")?
                .unwrap_or(12)
                .max(0),
            clean,
            purge: args.bool("purge", false)?,
            only_upgrade: args.bool("only_upgrade", false)?,
            autoremove,
            lock_timeout: args.int("lock_timeout")?.unwrap_or(60).max(0),
            policy_rc_d: args.int("policy_rc_d")?,
            default_release: args.str("default_release")?,
            dpkg_options,
            force: args.bool("force", false)?,
            install_recommends: match args.value("install_recommends") {
                None => None,
                Some(_) => Some(args.bool("install_recommends", true)?),
            },
            allow_unauthenticated: args.bool("allow_unauthenticated", false)?,
            allow_downgrade: args.bool("allow_downgrade", false)?,
            allow_change_held_packages: args.bool("allow_change_held_packages", false)?,
            fail_on_autoremove: args.bool("fail_on_autoremove", false)?,
        })
    }

    /// `-o APT::Default-Release=...` for apt-cache, so candidates match what `apt-get -t` picks.
    fn cache_opts(&self) -> String {
        match &self.default_release {
            Some(r) => quote(&format!("-o APT::Default-Release={r}")),
            None => String::new(),
        }
    }

    /// The `apt-get` command line (words, shell-quoted) for the main operation; `simulate` adds `-s`.
    fn apt_get(&self, simulate: bool) -> String {
        let mut w: Vec<String> = vec!["apt-get".into(), "-y".into()];
        w.extend(self.dpkg_options.iter().cloned());
        if simulate {
            w.push("--simulate".into());
        }
        if self.force {
            w.push("--force-yes".into());
        }
        let mut tail: Vec<String> = Vec::new();
        match &self.op {
            Op::Install { .. } | Op::Deb(_) => {
                if self.only_upgrade {
                    w.push("--only-upgrade".into());
                }
                if self.autoremove {
                    w.push("--auto-remove".into());
                }
                if self.fail_on_autoremove {
                    w.push("--no-remove".into());
                }
                tail.push("install".into());
                match self.install_recommends {
                    Some(false) => w.extend(["-o".into(), "APT::Install-Recommends=no".into()]),
                    Some(true) => w.extend(["-o".into(), "APT::Install-Recommends=yes".into()]),
                    None => {}
                }
                if self.allow_unauthenticated {
                    w.push("--allow-unauthenticated".into());
                }
                if self.allow_downgrade {
                    w.push("--allow-downgrades".into());
                }
                if self.allow_change_held_packages {
                    w.push("--allow-change-held-packages".into());
                }
            }
            Op::Remove { .. } => {
                if self.purge {
                    w.push("--purge".into());
                }
                if self.autoremove {
                    w.push("--auto-remove".into());
                }
                if self.allow_change_held_packages {
                    w.push("--allow-change-held-packages".into());
                }
                tail.push("remove".into());
            }
            Op::Upgrade(mode) => {
                if self.fail_on_autoremove {
                    w.push("--no-remove".into());
                }
                if self.allow_unauthenticated {
                    w.push("--allow-unauthenticated".into());
                }
                if self.allow_downgrade {
                    w.push("--allow-downgrades".into());
                }
                if mode == "dist" || mode == "full" {
                    tail.push("dist-upgrade".into());
                } else {
                    tail.extend(["upgrade".into(), "--with-new-pkgs".into()]);
                }
                if self.autoremove {
                    tail.push("--auto-remove".into());
                }
            }
            Op::Cleanup(what) => {
                if self.purge {
                    w.push("--purge".into());
                }
                tail.push((*what).into());
            }
            Op::CleanOnly | Op::CacheOnly | Op::Nothing => {}
        }
        if let (Some(release), false) = (&self.default_release, matches!(self.op, Op::Cleanup(_))) {
            w.extend(["-t".into(), release.clone()]);
        }
        w.extend(tail);
        w.iter().map(|s| quote(s)).collect::<Vec<_>>().join(" ")
    }

    /// Lines selecting the packages (into `$orch_sel`) from `$orch_specs`.
    fn select_lines(&self) -> String {
        let (mode, specs) = match &self.op {
            Op::Install { specs, latest } => (if *latest { "latest" } else { "install" }, specs),
            Op::Remove { specs } => ("remove", specs),
            _ => return String::new(),
        };
        let lines: String = specs.iter().map(PackageSpec::line).collect();
        format!(
            "orch_apt_select {mode} {} {} {} <<'ORCH_SPECS'\n{lines}ORCH_SPECS\n",
            u8::from(self.only_upgrade),
            u8::from(self.purge),
            quote(&self.cache_opts()),
        )
    }

    /// The script of `plan`: cache age, selection, simulation.
    fn plan_script(&self) -> String {
        let mut s = String::from(APT_LIB);
        s.push_str(
            "orch_kv cache now \"$(date +%s)\"\norch_kv cache mtime \"$(orch_cache_time)\"\n",
        );
        s.push_str(&self.operation_lines(
            &format!("orch_capture sim {}", self.apt_get(true)),
            "",
            "",
        ));
        s.push_str("exit 0\n");
        s
    }

    /// The lines that run the operation as `capture` (`orch_capture TAG apt-get …`, the packages
    /// or .deb appended), between `before` and `after` lines: simulated in `plan`, real in `apply`.
    fn operation_lines(&self, capture: &str, before: &str, after: &str) -> String {
        let mut s = String::new();
        match &self.op {
            Op::Install { .. } | Op::Remove { .. } => {
                s.push_str(&self.select_lines());
                s.push_str(&format!(
                    "if [ -n \"$orch_sel\" ]; then\n  eval \"set -- $(orch_sel_args)\"\n  {before}  {capture} \"$@\"\n  {after}fi\n"
                ));
            }
            Op::Upgrade(_) | Op::Cleanup(_) => {
                s.push_str(&format!("{before}{capture}\n{after}"));
            }
            Op::Deb(deb) => {
                s.push_str(&deb_fetch_lines(deb));
                s.push_str(&format!(
                    "if [ \"$orch_deb_same\" != 1 ]; then\n  {before}  {capture} \"$orch_deb\"\n  {after}fi\n"
                ));
            }
            Op::CleanOnly | Op::CacheOnly | Op::Nothing => {}
        }
        s
    }

    /// The script of `apply`: locks, cache update, clean, then the operation for real.
    fn apply_script(&self, update: bool) -> String {
        let mut s = String::from(APT_LIB);
        s.push_str(&format!("orch_lock_wait {}\n", self.lock_timeout));
        if update {
            s.push_str(&format!(
                "orch_apt_update {} {}\n",
                self.retries, self.retry_max_delay
            ));
        }
        s.push_str("orch_kv cache mtime \"$(orch_cache_time)\"\n");
        if self.clean {
            s.push_str("orch_capture clean apt-get clean || orch_fail \"apt-get clean failed: $orch_err\"\n");
        }
        let run = format!(
            "{} -o \"DPkg::Lock::Timeout=$orch_lock_left\"",
            self.apt_get(false)
        );
        let (rc_on, rc_off) = match self.policy_rc_d {
            Some(code) => (
                format!("orch_policy_rc_d {code}\n"),
                "orch_policy_rc_d_restore\n".to_string(),
            ),
            None => (String::new(), String::new()),
        };
        s.push_str(&self.operation_lines(&format!("orch_capture run {run}"), &rc_on, &rc_off));
        if let Op::Install { specs, .. } = &self.op {
            // Ansible marks the requested packages as manually installed.
            let names: Vec<String> = specs
                .iter()
                .filter(|p| !p.name.contains(['*', '?', '[']))
                .map(|p| quote(&p.name))
                .collect();
            s.push_str(&format!(
                "[ \"${{_rc:-0}}\" = 0 ] && apt-mark manual {} >/dev/null 2>&1\n",
                names.join(" ")
            ));
        }
        s.push_str("exit 0\n");
        s
    }
}

/// Lines making `$orch_deb` a local .deb path (downloading a URL into a temp dir) and recording its
/// name/version, and `$orch_deb_same=1` when exactly that version is installed.
fn deb_fetch_lines(deb: &str) -> String {
    let mut s = String::new();
    if deb.contains("://") {
        s.push_str(&format!(
            "orch_debdir=$(mktemp -d) || orch_fail 'mktemp failed'\ntrap 'rm -rf \"$orch_debdir\"' EXIT\n\
             orch_deb=\"$orch_debdir/{}\"\norch_fetch {} \"$orch_deb\" || orch_fail {}\n",
            fc::basename(deb).replace(['\'', '"', '$', '`', '\\', ' '], "_"),
            quote(deb),
            quote(&format!("Failure downloading {deb}"))
        ));
    } else {
        // apt-get takes a .deb only when the argument looks like a path.
        let path = if deb.contains('/') {
            deb.to_string()
        } else {
            format!("./{deb}")
        };
        s.push_str(&format!("orch_deb={}\n", quote(&path)));
    }
    s.push_str(
        "[ -f \"$orch_deb\" ] || orch_fail \"Unable to install package: $orch_deb does not exist\"\n\
         _dn=$(dpkg-deb -f \"$orch_deb\" Package) && _dv=$(dpkg-deb -f \"$orch_deb\" Version) || orch_fail \"$orch_deb is not a valid .deb file\"\n\
         orch_kv deb name \"$_dn\"; orch_kv deb version \"$_dv\"\n\
         _s=$(dpkg-query -W -f='${db:Status-Abbrev}|${Version}' -- \"$_dn\" 2>/dev/null | head -n 1)\n\
         orch_kv deb dpkg \"$_s\"\norch_deb_same=0\n\
         case $_s in ?i*) dpkg --compare-versions \"${_s#*|}\" eq \"$_dv\" && orch_deb_same=1;; esac\n",
    );
    s
}

/// What `apply` needs from the plan.
struct AptPlan {
    update: bool,
}

fn text(records: &Records, tag: &str, key: &str) -> String {
    records
        .bytes(tag, key)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn num(records: &Records, tag: &str, key: &str) -> i64 {
    records
        .get(tag, key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Packages the selection could not find in the cache.
fn unknown_packages(records: &Records) -> Vec<String> {
    (1..)
        .map(|i| format!("pkg{i}"))
        .take_while(|t| records.get(t, "name").is_some())
        .filter(|t| records.flag(t, "unknown"))
        .filter_map(|t| records.get(&t, "name").map(str::to_string))
        .collect()
}

/// The packages selected for apt-get (`name` or `name=version`).
fn selected(records: &Records) -> Vec<String> {
    (1..)
        .map(|i| format!("pkg{i}"))
        .take_while(|t| records.get(t, "name").is_some())
        .filter_map(|t| records.get(&t, "select").map(str::to_string))
        .collect()
}

#[async_trait::async_trait]
impl Module for Apt {
    fn name(&self) -> &'static str {
        "apt"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    async fn plan(&self, env: &dyn TaskEnv, args: &Args) -> Result<Plan, ModuleError> {
        let opts = Options::from_args(args)?;
        let (records, out) = fc::run_script(env, &opts.plan_script(), None).await?;
        if out.rc != 0 {
            return Err(fc::script_failed("probing apt", &out));
        }
        let now = num(&records, "cache", "now");
        let mtime = num(&records, "cache", "mtime");
        let needs_update = opts.update_cache && mtime + opts.cache_valid_time < now;
        let check = env.check_mode();

        let mut result = Map::new();
        let with_cache_keys = |result: &mut Map<String, Value>| {
            result.insert("cache_updated".into(), json!(false));
            result.insert("cache_update_time".into(), json!(mtime));
        };
        let sim_out = text(&records, "sim", "out");
        let sim_err = text(&records, "sim", "err");
        let sim_rc = records.get("sim", "rc").map(|r| r.trim() != "0");
        let actions = parse_simulation(&sim_out);
        let mut diffs = Vec::new();
        if env.diff_mode() && !actions.is_empty() {
            diffs.push(simulation_diff(&actions));
        }
        let sim_result = |result: &mut Map<String, Value>| {
            result.insert("stdout".into(), json!(sim_out));
            result.insert("stderr".into(), json!(sim_err));
            if env.diff_mode() {
                result.insert("diff".into(), json!({"prepared": prepared_diff(&sim_out)}));
            }
        };
        // A failed simulation on a cache that is about to be refreshed says nothing yet: apply decides.
        let sim_failed = |result: &Map<String, Value>| -> Result<(), ModuleError> {
            if sim_rc == Some(true) && !needs_update {
                let mut r = result.clone();
                r.insert("stdout".into(), json!(sim_out));
                r.insert("stderr".into(), json!(sim_err));
                r.insert("rc".into(), json!(num(&records, "sim", "rc")));
                return Err(ModuleError::with_result(
                    format!("'{}' failed: {}", opts.apt_get(true), sim_err.trim()),
                    r,
                ));
            }
            Ok(())
        };

        let predicted = match &opts.op {
            Op::CacheOnly => {
                with_cache_keys(&mut result);
                needs_update
            }
            Op::CleanOnly => true,
            Op::Nothing => {
                with_cache_keys(&mut result);
                false
            }
            Op::Install { .. } => {
                with_cache_keys(&mut result);
                let unknown = unknown_packages(&records);
                // In check mode the repository that provides them may be added by an earlier task
                // that did not run: predict the install (the real run still fails if it is missing).
                let assumed = check && !unknown.is_empty() && !needs_update;
                if !unknown.is_empty() && !needs_update && !assumed {
                    return Err(ModuleError::msg(format!(
                        "No package matching '{}' is available",
                        unknown[0]
                    )));
                }
                if assumed {
                    result.insert(
                        "warnings".into(),
                        json!([format!(
                            "check mode: {} not in the apt cache yet; predicting the install, as a repository added by an earlier task would provide it",
                            unknown.join(", ")
                        )]),
                    );
                } else {
                    sim_failed(&result)?;
                }
                let sel = selected(&records);
                if !sel.is_empty() {
                    sim_result(&mut result);
                }
                // Packages the stale cache does not know yet are predicted as installed after the update.
                !sel.is_empty() || !unknown.is_empty()
            }
            Op::Remove { .. } => {
                sim_failed(&result)?;
                let any = !selected(&records).is_empty();
                if any {
                    sim_result(&mut result);
                }
                any
            }
            Op::Upgrade(_) => {
                sim_failed(&result)?;
                sim_result(&mut result);
                result.insert("msg".into(), json!(sim_out));
                !sim_out.contains(APT_GET_ZERO)
            }
            Op::Cleanup(what) => {
                sim_failed(&result)?;
                sim_result(&mut result);
                let marker = if *what == "autoremove" {
                    "The following packages will be REMOVED"
                } else {
                    "Del "
                };
                sim_out.contains(marker)
            }
            Op::Deb(_) => {
                let same = records.get("deb", "dpkg").is_some_and(|s| {
                    let (installed, _, v) = parse_dpkg_status(s);
                    installed && v.as_deref() == records.get("deb", "version")
                });
                if !same {
                    sim_failed(&result)?;
                    sim_result(&mut result);
                }
                !same
            }
        };
        // Outside check mode a stale cache is refreshed even when the packages are all in place, as
        // Ansible does; apply then reports whether anything really changed.
        let changed = if check {
            predicted
        } else {
            predicted || needs_update
        };
        Ok(Plan {
            changed,
            diffs,
            result,
            skip_in_check: None,
            data: Some(Box::new(AptPlan {
                update: needs_update,
            })),
        })
    }

    async fn apply(
        &self,
        env: &dyn TaskEnv,
        args: &Args,
        plan: Plan,
    ) -> Result<Map<String, Value>, ModuleError> {
        let opts = Options::from_args(args)?;
        let update = plan
            .data
            .and_then(|d| d.downcast::<AptPlan>().ok())
            .is_some_and(|p| p.update);
        let (records, out) = fc::run_script(env, &opts.apply_script(update), None).await?;
        if out.rc != 0 {
            return Err(fc::script_failed("running apt", &out));
        }
        let mtime = num(&records, "cache", "mtime");
        let cache_updated =
            update && records.get("cache", "before") != records.get("cache", "after");
        let run_out = text(&records, "run", "out");
        let run_err = text(&records, "run", "err");
        let ran = records.get("run", "rc").is_some();
        let run_rc = num(&records, "run", "rc");
        let mut result = Map::new();
        let fail = |msg: String, rc: i64| {
            let mut r = Map::new();
            r.insert("stdout".into(), json!(run_out));
            r.insert("stderr".into(), json!(run_err));
            r.insert("rc".into(), json!(rc));
            ModuleError::with_result(msg, r)
        };
        if ran {
            result.insert("stdout".into(), json!(run_out));
            result.insert("stderr".into(), json!(run_err));
            if env.diff_mode() {
                result.insert("diff".into(), json!({"prepared": prepared_diff(&run_out)}));
            }
        }
        let changed = match &opts.op {
            Op::CacheOnly => {
                result.insert("cache_updated".into(), json!(cache_updated));
                result.insert("cache_update_time".into(), json!(mtime));
                cache_updated
            }
            Op::CleanOnly => {
                let clean_out = text(&records, "clean", "out");
                result.insert("msg".into(), json!(clean_out));
                result.insert("stdout".into(), json!(clean_out));
                result.insert("stderr".into(), json!(text(&records, "clean", "err")));
                true
            }
            Op::Nothing => {
                result.insert("cache_updated".into(), json!(cache_updated));
                result.insert("cache_update_time".into(), json!(mtime));
                false
            }
            Op::Install { .. } => {
                result.insert("cache_updated".into(), json!(cache_updated));
                result.insert("cache_update_time".into(), json!(mtime));
                if let Some(name) = unknown_packages(&records).first() {
                    return Err(ModuleError::msg(format!(
                        "No package matching '{name}' is available"
                    )));
                }
                if ran && run_rc != 0 {
                    return Err(fail(
                        format!("'{}' failed: {}", opts.apt_get(false), run_err.trim()),
                        run_rc,
                    ));
                }
                ran
            }
            Op::Remove { .. } => {
                if ran && run_rc != 0 {
                    let names: Vec<String> = selected(&records)
                        .iter()
                        .map(|n| format!("'{n}'"))
                        .collect();
                    return Err(fail(
                        format!(
                            "'apt-get remove {}' failed: {}",
                            names.join(" "),
                            run_err.trim()
                        ),
                        run_rc,
                    ));
                }
                ran
            }
            Op::Upgrade(mode) => {
                if run_rc != 0 {
                    let command = if mode == "dist" || mode == "full" {
                        "dist-upgrade"
                    } else {
                        "upgrade --with-new-pkgs"
                    };
                    return Err(fail(
                        format!("'apt-get {command}' failed: {}", run_err.trim()),
                        run_rc,
                    ));
                }
                result.insert("msg".into(), json!(run_out));
                !run_out.contains(APT_GET_ZERO)
            }
            Op::Cleanup(what) => {
                if run_rc != 0 {
                    return Err(fail(
                        format!("'apt-get {what}' failed: {}", run_err.trim()),
                        run_rc,
                    ));
                }
                let marker = if *what == "autoremove" {
                    "The following packages will be REMOVED"
                } else {
                    "Del "
                };
                run_out.contains(marker)
            }
            Op::Deb(deb) => {
                if ran && run_rc != 0 {
                    return Err(fail(
                        format!("'{} {deb}' failed: {}", opts.apt_get(false), run_err.trim()),
                        run_rc,
                    ));
                }
                ran
            }
        };
        result.insert("changed".into(), json!(changed));
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_specs_split_like_ansible() {
        let p = PackageSpec::parse("docker-ce").unwrap();
        assert_eq!(
            (p.name.as_str(), p.cmp.as_str(), p.version.as_str()),
            ("docker-ce", "", "")
        );
        let p = PackageSpec::parse("docker-ce=5:24.0.0-1~debian.12~bookworm").unwrap();
        assert_eq!(p.cmp, "=");
        assert_eq!(p.version, "5:24.0.0-1~debian.12~bookworm");
        let p = PackageSpec::parse("foo>=1.2").unwrap();
        assert_eq!(
            (p.name.as_str(), p.cmp.as_str(), p.version.as_str()),
            ("foo", ">=", "1.2")
        );
        let p = PackageSpec::parse("nginx=1.18*").unwrap();
        assert_eq!(p.version, "1.18*");
        assert!(PackageSpec::parse("a=1=2").is_err());
        assert!(PackageSpec::parse("bad name").is_err());
        assert!(PackageSpec::parse("x;rm -rf /").is_err());
        assert!(PackageSpec::parse("=1.0").is_err());
    }

    #[test]
    fn simulation_lines_are_parsed() {
        let out = "NOTE: This is only a simulation!\n\
Reading package lists...\n\
Building dependency tree...\n\
Reading state information...\n\
The following NEW packages will be installed:\n  containerd.io docker-ce\n\
1 upgraded, 2 newly installed, 1 to remove and 0 not upgraded.\n\
Remv orch-hello [1.0-1]\n\
Inst containerd.io (1.7.0-1 orch-test:bookworm [amd64])\n\
Inst docker-compose-plugin [2.20.0-1~debian.12~bookworm] (2.21.0-1~debian.12~bookworm orch-test:bookworm [amd64])\n\
Conf containerd.io (1.7.0-1 orch-test:bookworm [amd64])\n\
Purg old-thing [0.9]\n";
        let actions = parse_simulation(out);
        assert_eq!(actions.len(), 4);
        assert_eq!(
            actions[0],
            SimAction {
                kind: "Remv".into(),
                name: "orch-hello".into(),
                old: Some("1.0-1".into()),
                new: None
            }
        );
        assert_eq!(actions[1].new.as_deref(), Some("1.7.0-1"));
        assert_eq!(actions[1].old, None);
        assert_eq!(
            actions[2].old.as_deref(),
            Some("2.20.0-1~debian.12~bookworm")
        );
        assert_eq!(
            actions[2].new.as_deref(),
            Some("2.21.0-1~debian.12~bookworm")
        );
        assert_eq!(actions[3].kind, "Purg");
        let diff = simulation_diff(&actions);
        assert_eq!(
            diff.before,
            "docker-compose-plugin 2.20.0-1~debian.12~bookworm\nold-thing 0.9\norch-hello 1.0-1\n"
        );
        assert_eq!(
            diff.after,
            "containerd.io 1.7.0-1\ndocker-compose-plugin 2.21.0-1~debian.12~bookworm\n"
        );
        assert_eq!(
            prepared_diff(out),
            "The following NEW packages will be installed:\n  containerd.io docker-ce\n1 upgraded, 2 newly installed, 1 to remove and 0 not upgraded."
        );
    }

    #[test]
    fn dpkg_status_lines_are_parsed() {
        assert_eq!(
            parse_dpkg_status("ii |1.0-1"),
            (true, true, Some("1.0-1".into()))
        );
        assert_eq!(
            parse_dpkg_status("rc |1.0-1"),
            (false, true, Some("1.0-1".into()))
        );
        assert_eq!(parse_dpkg_status("un |"), (false, false, None));
        assert_eq!(parse_dpkg_status(""), (false, false, None));
        assert_eq!(
            parse_dpkg_status("iU |2.0"),
            (false, true, Some("2.0".into()))
        );
    }

    fn opts(v: serde_json::Value) -> Result<Options, ModuleError> {
        let Value::Object(map) = v else { panic!() };
        Options::from_args(&Args::new("apt", map))
    }

    #[test]
    fn operations_follow_ansible_precedence() {
        assert_eq!(
            opts(json!({"update_cache": true})).unwrap().op,
            Op::CacheOnly
        );
        assert_eq!(
            opts(json!({"update_cache": true, "name": []})).unwrap().op,
            Op::CacheOnly
        );
        assert_eq!(
            opts(json!({"upgrade": "dist"})).unwrap().op,
            Op::Upgrade("dist".into())
        );
        assert_eq!(
            opts(json!({"name": "*", "state": "latest"})).unwrap().op,
            Op::Upgrade("yes".into())
        );
        assert_eq!(
            opts(json!({"autoremove": true})).unwrap().op,
            Op::Cleanup("autoremove")
        );
        assert!(matches!(
            opts(json!({"name": ["a", "b=1"], "state": "absent"}))
                .unwrap()
                .op,
            Op::Remove { .. }
        ));
        assert!(matches!(
            opts(json!({"pkg": "a", "state": "latest"})).map(|o| o.op),
            Err(_) | Ok(Op::Install { latest: true, .. })
        ));
        let err = |v| match opts(v) {
            Err(ModuleError::Failed { msg, .. }) => msg,
            _ => panic!("expected an error"),
        };
        assert_eq!(
            err(json!({"name": "a", "upgrade": "yes"})),
            "parameters are mutually exclusive: deb|package|upgrade"
        );
        assert!(err(json!({"state": "present"})).starts_with("one of the following is required"));
        assert!(err(json!({"name": "a", "state": "build-dep"})).contains("not supported"));
        assert_eq!(
            err(json!({"deb": "/x.deb", "state": "absent"})),
            "deb only supports state=present"
        );
    }

    #[test]
    fn apt_get_command_lines() {
        let o = opts(json!({"name": ["a"], "install_recommends": false, "allow_downgrade": true}))
            .unwrap();
        assert_eq!(
            o.apt_get(true),
            "apt-get -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --simulate -o APT::Install-Recommends=no --allow-downgrades install"
        );
        let o = opts(
            json!({"name": "a", "state": "absent", "purge": true, "dpkg_options": "force-confnew"}),
        )
        .unwrap();
        assert_eq!(
            o.apt_get(false),
            "apt-get -y -o Dpkg::Options::=--force-confnew --purge remove"
        );
        let o = opts(json!({"upgrade": "safe", "default_release": "bookworm-backports"})).unwrap();
        assert_eq!(
            o.apt_get(false),
            "apt-get -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -t bookworm-backports upgrade --with-new-pkgs"
        );
    }

    #[test]
    fn plan_script_is_valid_sh_and_carries_specs_in_a_quoted_heredoc() {
        let o = opts(json!({"name": ["docker-ce", "containerd.io=1.7*"], "update_cache": true}))
            .unwrap();
        let script = format!("{}{}", fc::SHELL_LIB, o.plan_script());
        assert!(
            script.contains("<<'ORCH_SPECS'\ndocker-ce\t\t\ncontainerd.io\t=\t1.7*\nORCH_SPECS\n")
        );
        let checked = std::process::Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            checked.status.success(),
            "{}",
            String::from_utf8_lossy(&checked.stderr)
        );
        let apply = format!("{}{}", fc::SHELL_LIB, o.apply_script(true));
        let checked = std::process::Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(&apply)
            .output()
            .unwrap();
        assert!(
            checked.status.success(),
            "{}",
            String::from_utf8_lossy(&checked.stderr)
        );
        assert!(
            apply.find("orch_lock_wait 60").unwrap() < apply.find("orch_apt_update 5 12").unwrap()
        );
    }
}
