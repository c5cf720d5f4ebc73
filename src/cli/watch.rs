//! `orch watch PLAYBOOK -i INV --every 15m [--fix] [--jitter 1m]`: drift checks on a schedule.
//! Cycles run one after another (never overlapping); a failing or unreachable cycle is logged and the
//! next one tries again; SIGINT/SIGTERM end the watch once the cycle in progress is done.

use std::sync::mpsc;
use std::time::Duration;

use rand::Rng;

use super::drift::check_once;
use super::run::Interrupts;
use super::WatchArgs;
use crate::error::Diagnostic;

pub fn run(mut args: WatchArgs) -> Result<i32, Diagnostic> {
    if args.every.is_zero() {
        return Err(Diagnostic::options("--every must be longer than 0s"));
    }
    let stop = listen_for_signals()?;
    let kind = if args.fix { "watch-fix" } else { "watch" };
    let mut cycle: u64 = 0;
    loop {
        cycle += 1;
        log(&format!("cycle {cycle} starting"));
        match check_once(&mut args.run, args.fix, kind, Interrupts::Ignore) {
            Ok(code) => log(&format!("cycle {cycle} done: {}", describe(code))),
            Err(d) => {
                eprint!("{}", d.render());
                log(&format!(
                    "cycle {cycle} failed (exit code {}); trying again next cycle",
                    d.kind.exit_code()
                ));
            }
        }
        if args.max_cycles.is_some_and(|max| cycle >= max) {
            log(&format!("stopping after {cycle} cycles (--max-cycles)"));
            return Ok(0);
        }
        let jitter = if args.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_millis(rand::rng().random_range(0..=args.jitter.as_millis() as u64))
        };
        let wait = args.every + jitter;
        log(&format!("next cycle in {}s", wait.as_secs()));
        match stop.recv_timeout(wait) {
            Ok(signal) => {
                log(&format!("{signal} received: stopping"));
                return Ok(0);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Diagnostic::runtime("the signal listener stopped"))
            }
        }
    }
}

fn describe(code: i32) -> String {
    match code {
        0 => "no drift".into(),
        3 => "drift found (exit code 3)".into(),
        2 => "some hosts failed (exit code 2)".into(),
        4 => "some hosts unreachable (exit code 4)".into(),
        other => format!("exit code {other}"),
    }
}

fn log(msg: &str) {
    eprintln!(
        "[watch {}] {msg}",
        crate::state::format_utc(crate::state::now())
    );
}

/// Installs SIGINT/SIGTERM handlers on a thread of their own; the returned channel gets the
/// signal's name. Handlers are in place when this returns, so a signal during a cycle is not lost
/// and does not kill the process mid-run.
fn listen_for_signals() -> Result<mpsc::Receiver<&'static str>, Diagnostic> {
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                let _ = ready_tx.send(Err(e.to_string()));
                return;
            }
        };
        runtime.block_on(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (mut term, mut int) = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(t), Ok(i)) => (t, i),
                (Err(e), _) | (_, Err(e)) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            loop {
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                log(&format!("{name} received: finishing the cycle in progress"));
                if tx.send(name).is_err() {
                    return;
                }
            }
        });
    });
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(rx),
        Ok(Err(e)) => Err(Diagnostic::runtime(format!(
            "cannot listen for signals: {e}"
        ))),
        Err(_) => Err(Diagnostic::runtime("cannot listen for signals")),
    }
}
