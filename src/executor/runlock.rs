//! The remote run lock: two orch processes targeting the same host take turns on it.
//!
//! On the first connection to a host, a holder command starts in a channel of its own and keeps
//! `flock` on /run/lock/orch.lock for as long as the session lives (it writes a heartbeat byte
//! each second, so it dies with the session when orch disconnects or is killed). One more command
//! waits until the holder reports the lock taken. That is one extra round trip per host and run,
//! none per task.

use std::sync::Arc;
use std::time::Duration;

use crate::transport::{Transport, TransportError};

pub const LOCK_FILE: &str = "/run/lock/orch.lock";
pub const HOLDER_FILE: &str = "/run/lock/orch.holder";
/// Exit status of the waiter when the lock could not be taken.
const LOCKED_RC: i32 = 75;
/// How long a session may live; the holder is ended by the session closing long before.
const HOLDER_LIFETIME: Duration = Duration::from_secs(30 * 86_400);

/// How long to wait for another orch's lock: `ORCH_LOCK_TIMEOUT` seconds. The lock is off unless
/// it is set (> 0). When on, the runner connects to every host of the run (in parallel, up to
/// `forks`) and then locks them one by one in sorted host order before the first task
/// (`Runner::prelock`), so two runs over the same hosts always lock in the same order and cannot
/// deadlock. Locking hosts one after another costs a round trip each, which is why it is opt-in.
pub fn lock_timeout() -> Option<Duration> {
    let secs = std::env::var("ORCH_LOCK_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// Who holds the lock, for the other orch's message: pid, controller host, start time.
fn holder_info() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown host".into());
    format!(
        "orch pid {} on {host}, started {}",
        std::process::id(),
        crate::state::format_utc(crate::state::now())
    )
}

fn token() -> String {
    use rand::Rng;
    format!("{:016x}", rand::rng().random::<u64>())
}

/// The holder: opens the lock read-only (so any user can lock a file another user created),
/// waits for it, records who holds it, then beats until the session goes away.
fn holder_script(token: &str, timeout: Duration, info: &str) -> String {
    let q = crate::transport::shell_quote;
    format!(
        "L={lock}; H={holder}; T=/tmp/orch-lock-{token}
mkdir -p /run/lock 2>/dev/null
[ -e \"$L\" ] || {{ : >> \"$L\" && chmod 666 \"$L\"; }} 2>/dev/null
exec 9<\"$L\" || {{ echo \"cannot open $L\" > \"$T.failed\"; exit {rc}; }}
command -v flock >/dev/null || {{ echo 'flock is not installed (util-linux)' > \"$T.failed\"; exit {rc}; }}
flock -w {secs} 9 || {{ echo \"timed out after {secs}s; held by: $(cat \"$H\" 2>/dev/null || echo unknown)\" > \"$T.failed\"; exit {rc}; }}
{{ printf '%s\\n' {info} > \"$H\"; chmod 666 \"$H\"; }} 2>/dev/null
: > \"$T.ok\"
while sleep 1 9<&-; do printf . || exit 0; done",
        lock = q(LOCK_FILE),
        holder = q(HOLDER_FILE),
        rc = LOCKED_RC,
        secs = timeout.as_secs(),
        info = q(info),
    )
}

/// The waiter: returns once the holder has the lock, or says why it could not take it.
fn waiter_script(token: &str, timeout: Duration) -> String {
    let tenths = (timeout.as_secs() + 5) * 10;
    format!(
        "T=/tmp/orch-lock-{token}; i=0
while [ ! -e \"$T.ok\" ]; do
  if [ -e \"$T.failed\" ]; then cat \"$T.failed\"; rm -f \"$T.failed\"; exit {rc}; fi
  i=$((i+1)); [ $i -gt {tenths} ] && {{ echo \"held by: $(cat {holder} 2>/dev/null || echo unknown)\"; exit {rc}; }}
  sleep 0.1
done
rm -f \"$T.ok\"",
        rc = LOCKED_RC,
        holder = crate::transport::shell_quote(HOLDER_FILE),
    )
}

/// Takes the run lock on the host behind `transport`; it is released when the session closes.
pub async fn acquire(
    transport: &Arc<dyn Transport>,
    host: &str,
    timeout: Duration,
) -> Result<(), TransportError> {
    let token = token();
    let holder = holder_script(&token, timeout, &holder_info());
    let background = transport.clone();
    tokio::spawn(async move {
        // Ends when the session closes; its output is only heartbeats.
        let _ = background.exec(&holder, None, HOLDER_LIFETIME).await;
    });
    let out = transport
        .exec(
            &waiter_script(&token, timeout),
            None,
            timeout + Duration::from_secs(30),
        )
        .await?;
    if out.rc == 0 {
        return Ok(());
    }
    let why = out.stdout_lossy().trim().to_string();
    Err(TransportError::Other(format!(
        "{host} is busy with another orch run: could not take {LOCK_FILE}: {}",
        if why.is_empty() {
            out.stderr_lossy().trim().to_string()
        } else {
            why
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serializes_local_holders_and_names_the_holder() {
        // Runs the scripts with the local transport against a private lock file.
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = dir.path().join("orch.lock");
        let holder_file = dir.path().join("orch.holder");
        let fix = |s: String| {
            s.replace(LOCK_FILE, &lock.display().to_string())
                .replace(HOLDER_FILE, &holder_file.display().to_string())
        };
        let t = crate::transport::local();
        let first = token();
        let hold = fix(holder_script(&first, Duration::from_secs(5), "first orch"));
        let bg = t.clone();
        let holder = tokio::spawn(async move {
            bg.exec(
                &format!("timeout 3 sh -c {}", crate::transport::shell_quote(&hold)),
                None,
                Duration::from_secs(10),
            )
            .await
        });
        let ok = t
            .exec(
                &fix(waiter_script(&first, Duration::from_secs(5))),
                None,
                Duration::from_secs(20),
            )
            .await
            .expect("exec");
        assert_eq!(ok.rc, 0, "{ok:?}");
        // A second holder with a short timeout fails and names the first.
        let second = token();
        let hold2 = fix(holder_script(
            &second,
            Duration::from_secs(1),
            "second orch",
        ));
        let bg2 = t.clone();
        tokio::spawn(async move { bg2.exec(&hold2, None, Duration::from_secs(10)).await });
        let busy = t
            .exec(
                &fix(waiter_script(&second, Duration::from_secs(1))),
                None,
                Duration::from_secs(20),
            )
            .await
            .expect("exec");
        assert_eq!(busy.rc, LOCKED_RC, "{busy:?}");
        assert!(
            busy.stdout_lossy().contains("held by: first orch"),
            "{busy:?}"
        );
        let _ = holder.await;
    }
}
