//! `orch schedule install|remove`: a systemd service + timer pair running `orch drift --fix`,
//! the alternative to a long-running `orch watch`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::duration::systemd_span;
use super::{ScheduleArgs, ScheduleCommand, ScheduleInstallArgs, ScheduleTarget};
use crate::error::Diagnostic;

pub fn run(args: ScheduleArgs) -> Result<i32, Diagnostic> {
    match args.command {
        ScheduleCommand::Install(a) => install(a),
        ScheduleCommand::Remove(a) => remove(&a, &a.name),
    }
}

/// The two unit files of a schedule.
#[derive(Debug)]
pub struct Units {
    pub service: String,
    pub timer: String,
}

fn install(args: ScheduleInstallArgs) -> Result<i32, Diagnostic> {
    if args.every.is_zero() {
        return Err(Diagnostic::options("--every must be longer than 0s"));
    }
    let playbook = absolute(&args.playbook)?;
    if !playbook.is_file() {
        return Err(Diagnostic::options(format!(
            "playbook {} was not found",
            args.playbook.display()
        )));
    }
    let orch = std::env::current_exe()
        .map_err(|e| Diagnostic::runtime(format!("cannot find the orch executable: {e}")))?;
    let name = args.target.name.clone().unwrap_or_else(|| {
        unit_name(
            &playbook
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default(),
        )
    });
    let mut command = vec![orch.display().to_string(), "drift".to_string()];
    if args.fix {
        command.push("--fix".into());
    }
    command.push(playbook.display().to_string());
    for inv in &args.inventory {
        command.push("-i".into());
        // A path becomes absolute; a host list (`a,b,`) stays as written.
        let path = Path::new(inv);
        command.push(if path.exists() {
            absolute(path)?.display().to_string()
        } else {
            inv.clone()
        });
    }
    if let Some(limit) = &args.limit {
        command.extend(["--limit".to_string(), limit.clone()]);
    }
    if let Some(dir) = &args.state_dir {
        command.extend([
            "--state-dir".to_string(),
            absolute(dir)?.display().to_string(),
        ]);
    }
    let workdir = playbook
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let units = render_units(
        &name,
        &command,
        &workdir,
        args.every,
        args.jitter,
        args.target.is_system(),
    );
    let dir = unit_dir(&args.target)?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| Diagnostic::runtime(format!("cannot create {}: {e}", dir.display())))?;
    for (file, text) in [
        (format!("{name}.service"), &units.service),
        (format!("{name}.timer"), &units.timer),
    ] {
        let path = dir.join(&file);
        std::fs::write(&path, text)
            .map_err(|e| Diagnostic::runtime(format!("cannot write {}: {e}", path.display())))?;
        println!("wrote {}", path.display());
    }
    if !args.target.no_enable {
        systemctl(&args.target, &["daemon-reload"])?;
        systemctl(&args.target, &["enable", "--now", &format!("{name}.timer")])?;
        println!("enabled {name}.timer: every {}", systemd_span(args.every));
    }
    Ok(0)
}

fn remove(target: &ScheduleTarget, name: &Option<String>) -> Result<i32, Diagnostic> {
    let Some(name) = name else {
        return Err(Diagnostic::options(
            "which schedule? pass --name (the unit name without .timer, e.g. orch-drift-site)",
        ));
    };
    let dir = unit_dir(target)?;
    let timer = dir.join(format!("{name}.timer"));
    let service = dir.join(format!("{name}.service"));
    if !timer.exists() && !service.exists() {
        return Err(Diagnostic::options(format!(
            "no schedule {name} in {}",
            dir.display()
        )));
    }
    if !target.no_enable {
        systemctl(target, &["disable", "--now", &format!("{name}.timer")])?;
    }
    for path in [timer, service] {
        if path.exists() {
            std::fs::remove_file(&path).map_err(|e| {
                Diagnostic::runtime(format!("cannot remove {}: {e}", path.display()))
            })?;
            println!("removed {}", path.display());
        }
    }
    if !target.no_enable {
        systemctl(target, &["daemon-reload"])?;
    }
    Ok(0)
}

fn systemctl(target: &ScheduleTarget, args: &[&str]) -> Result<(), Diagnostic> {
    let mut cmd = Command::new("systemctl");
    if !target.is_system() {
        cmd.arg("--user");
    }
    cmd.args(args);
    let status = cmd
        .status()
        .map_err(|e| Diagnostic::runtime(format!("cannot run systemctl: {e}")))?;
    if !status.success() {
        return Err(
            Diagnostic::runtime(format!("systemctl {} failed ({status})", args.join(" ")))
                .with_hint("the unit files are written; --no-enable skips systemctl"),
        );
    }
    Ok(())
}

fn unit_dir(target: &ScheduleTarget) -> Result<PathBuf, Diagnostic> {
    if let Some(dir) = &target.unit_dir {
        return Ok(dir.clone());
    }
    if target.is_system() {
        return Ok(PathBuf::from("/etc/systemd/system"));
    }
    dirs::config_dir()
        .map(|d| d.join("systemd").join("user"))
        .ok_or_else(|| Diagnostic::runtime("cannot find the user's configuration directory"))
}

fn absolute(path: &Path) -> Result<PathBuf, Diagnostic> {
    std::fs::canonicalize(path).map_err(|e| Diagnostic::options(format!("{}: {e}", path.display())))
}

/// `orch-drift-<stem>`, with characters systemd does not allow in unit names replaced.
pub fn unit_name(stem: &str) -> String {
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("orch-drift-{clean}")
}

/// One ExecStart= word: double-quoted, with systemd's specifier (`%`) and variable (`$`) expansion
/// disabled, so that any path or pattern reaches orch as written.
pub fn exec_word(word: &str) -> String {
    let mut out = String::from("\"");
    for c in word.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub fn render_units(
    name: &str,
    command: &[String],
    workdir: &Path,
    every: std::time::Duration,
    jitter: std::time::Duration,
    system: bool,
) -> Units {
    let exec: Vec<String> = command.iter().map(|w| exec_word(w)).collect();
    let network = if system {
        "Wants=network-online.target\nAfter=network-online.target\n"
    } else {
        ""
    };
    let service = format!(
        "# Written by `orch schedule install`; `orch schedule remove --name {name}` deletes it.\n\
         [Unit]\n\
         Description=orch drift correction ({name})\n\
         {network}\n\
         [Service]\n\
         Type=oneshot\n\
         WorkingDirectory={}\n\
         ExecStart={}\n",
        workdir.display().to_string().replace('%', "%%"),
        exec.join(" ")
    );
    let mut timer = format!(
        "# Written by `orch schedule install`.\n\
         [Unit]\n\
         Description=orch drift correction every {span} ({name})\n\
         \n\
         [Timer]\n\
         OnBootSec={span}\n\
         OnUnitActiveSec={span}\n\
         Persistent=true\n\
         Unit={name}.service\n",
        span = systemd_span(every)
    );
    if !jitter.is_zero() {
        timer.push_str(&format!("RandomizedDelaySec={}\n", systemd_span(jitter)));
    }
    timer.push_str("\n[Install]\nWantedBy=timers.target\n");
    Units { service, timer }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn exec_words_are_quoted_and_unexpanded() {
        assert_eq!(exec_word("/srv/my site.yml"), "\"/srv/my site.yml\"");
        assert_eq!(exec_word("100%$HOME\"x\\"), "\"100%%$$HOME\\\"x\\\\\"");
    }

    #[test]
    fn units_run_drift_fix_on_a_timer() {
        let command: Vec<String> = [
            "/usr/bin/orch",
            "drift",
            "--fix",
            "/p/site.yml",
            "-i",
            "/p/hosts",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let units = render_units(
            "orch-drift-site",
            &command,
            Path::new("/p"),
            Duration::from_secs(3600),
            Duration::from_secs(60),
            false,
        );
        assert!(units.service.contains(
            "ExecStart=\"/usr/bin/orch\" \"drift\" \"--fix\" \"/p/site.yml\" \"-i\" \"/p/hosts\"\n"
        ));
        assert!(units.service.contains("Type=oneshot\n"));
        assert!(units.timer.contains("OnUnitActiveSec=1h\n"));
        assert!(units.timer.contains("OnBootSec=1h\n"));
        assert!(units.timer.contains("Persistent=true\n"));
        assert!(units.timer.contains("RandomizedDelaySec=1min\n"));
        assert!(units.timer.contains("Unit=orch-drift-site.service\n"));
        assert_eq!(unit_name("my site"), "orch-drift-my-site");
    }
}
