//! The run history: an embedded SQLite store under the user's state directory.
//! Every run, drift check and watch cycle is recorded with its per-host counters and what drifted.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Diagnostic;

/// How long a store locked by another orch is waited for before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);
const FILE_NAME: &str = "history.sqlite";
const SCHEMA_VERSION: i64 = 1;

/// Per-host counters of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HostCounts {
    pub host: String,
    pub ok: u32,
    pub changed: u32,
    pub failed: u32,
    pub unreachable: u32,
    pub skipped: u32,
}

/// One task that changed (or would change, in check mode) on one host.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DriftEntry {
    pub host: String,
    pub task: String,
    /// Unified diff text, secrets already masked; empty when the module gives no diff.
    pub diff: String,
}

/// The `runs` columns [`run_from_row`] reads, in its order.
const RUN_COLUMNS: &str =
    "id, started_at, finished_at, kind, playbook, inventory, check_mode, exit_code";

/// A run's own fields from a row that starts with [`RUN_COLUMNS`] (hosts and drift are read apart).
fn run_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        id: r.get(0)?,
        started_at: r.get(1)?,
        finished_at: r.get(2)?,
        kind: r.get(3)?,
        playbook: r.get(4)?,
        inventory: r.get(5)?,
        check_mode: r.get(6)?,
        exit_code: r.get(7)?,
        ..RunRecord::default()
    })
}

/// One recorded run.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunRecord {
    /// Assigned by the store.
    pub id: i64,
    /// Unix seconds.
    pub started_at: i64,
    pub finished_at: i64,
    /// `run`, `drift`, `drift-fix`, `watch`.
    pub kind: String,
    pub playbook: String,
    pub inventory: String,
    pub check_mode: bool,
    pub exit_code: i32,
    pub hosts: Vec<HostCounts>,
    pub drift: Vec<DriftEntry>,
}

/// The history store.
pub struct HistoryStore {
    path: PathBuf,
    conn: Connection,
}

/// The default directory: `$XDG_STATE_HOME/orch`, else `~/.local/state/orch`.
pub fn default_state_dir() -> Option<PathBuf> {
    dirs::state_dir()
        .or_else(|| dirs::home_dir().map(|h| h.join(".local").join("state")))
        .map(|d| d.join("orch"))
}

/// Resolves `--state-dir` (or its default).
pub fn state_dir(explicit: Option<&Path>) -> Result<PathBuf, Diagnostic> {
    match explicit {
        Some(p) => Ok(p.to_path_buf()),
        None => default_state_dir().ok_or_else(|| {
            Diagnostic::runtime("cannot find a state directory for the run history")
                .with_hint("set --state-dir (or ORCH_STATE_DIR)")
        }),
    }
}

impl HistoryStore {
    /// Opens (creating if needed) the store in `dir`. A corrupt file is reported, never replaced.
    pub fn open(dir: &Path) -> Result<HistoryStore, Diagnostic> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Diagnostic::runtime(format!(
                "cannot create the state directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join(FILE_NAME);
        let conn = Connection::open(&path).map_err(|e| store_error(&path, &e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| store_error(&path, &e))?;
        let store = HistoryStore { path, conn };
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&self) -> Result<(), Diagnostic> {
        // Reading the header first: a file that is not a database fails here, before any write.
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.error(&e))?;
        if version > SCHEMA_VERSION {
            return Err(Diagnostic::runtime(format!(
                "the run history {} was written by a newer orch (schema {version})",
                self.path.display()
            )));
        }
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        self.conn
            .execute_batch(
                "BEGIN IMMEDIATE;
                 CREATE TABLE IF NOT EXISTS runs (
                     id INTEGER PRIMARY KEY AUTOINCREMENT,
                     started_at INTEGER NOT NULL,
                     finished_at INTEGER NOT NULL,
                     kind TEXT NOT NULL,
                     playbook TEXT NOT NULL,
                     inventory TEXT NOT NULL,
                     check_mode INTEGER NOT NULL,
                     exit_code INTEGER NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS host_results (
                     run_id INTEGER NOT NULL REFERENCES runs(id),
                     host TEXT NOT NULL,
                     ok INTEGER NOT NULL, changed INTEGER NOT NULL, failed INTEGER NOT NULL,
                     unreachable INTEGER NOT NULL, skipped INTEGER NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS drift (
                     run_id INTEGER NOT NULL REFERENCES runs(id),
                     seq INTEGER NOT NULL,
                     host TEXT NOT NULL,
                     task TEXT NOT NULL,
                     diff TEXT NOT NULL
                 );
                 PRAGMA user_version = 1;
                 COMMIT;",
            )
            .map_err(|e| self.error(&e))
    }

    fn error(&self, e: &rusqlite::Error) -> Diagnostic {
        store_error(&self.path, e)
    }

    /// Records a run; returns its id.
    pub fn record(&mut self, run: &RunRecord) -> Result<i64, Diagnostic> {
        let path = self.path.clone();
        let err = |e: rusqlite::Error| store_error(&path, &e);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.execute(
            "INSERT INTO runs (started_at, finished_at, kind, playbook, inventory, check_mode, exit_code)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                run.started_at,
                run.finished_at,
                run.kind,
                run.playbook,
                run.inventory,
                run.check_mode,
                run.exit_code
            ],
        )
        .map_err(err)?;
        let id = tx.last_insert_rowid();
        for h in &run.hosts {
            tx.execute(
                "INSERT INTO host_results (run_id, host, ok, changed, failed, unreachable, skipped)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    id,
                    h.host,
                    h.ok,
                    h.changed,
                    h.failed,
                    h.unreachable,
                    h.skipped
                ],
            )
            .map_err(err)?;
        }
        for (seq, d) in run.drift.iter().enumerate() {
            tx.execute(
                "INSERT INTO drift (run_id, seq, host, task, diff) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, seq as i64, d.host, d.task, d.diff],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(id)
    }

    /// The most recent runs, newest first, with their host counters (drift entries are only counted).
    pub fn list(&self, limit: usize) -> Result<Vec<(RunRecord, usize)>, Diagnostic> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {RUN_COLUMNS}, (SELECT COUNT(*) FROM drift WHERE drift.run_id = runs.id)
                 FROM runs ORDER BY id DESC LIMIT ?1"
            ))
            .map_err(|e| self.error(&e))?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok((run_from_row(r)?, r.get::<_, i64>(8)? as usize))
            })
            .map_err(|e| self.error(&e))?;
        let mut out = Vec::new();
        for row in rows {
            let (mut run, drifted) = row.map_err(|e| self.error(&e))?;
            run.hosts = self.hosts_of(run.id)?;
            out.push((run, drifted));
        }
        Ok(out)
    }

    /// One run with everything recorded about it.
    pub fn get(&self, id: i64) -> Result<Option<RunRecord>, Diagnostic> {
        let run = self
            .conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                [id],
                run_from_row,
            )
            .optional()
            .map_err(|e| self.error(&e))?;
        let Some(mut run) = run else {
            return Ok(None);
        };
        run.hosts = self.hosts_of(id)?;
        let mut stmt = self
            .conn
            .prepare("SELECT host, task, diff FROM drift WHERE run_id = ?1 ORDER BY seq")
            .map_err(|e| self.error(&e))?;
        let rows = stmt
            .query_map([id], |r| {
                Ok(DriftEntry {
                    host: r.get(0)?,
                    task: r.get(1)?,
                    diff: r.get(2)?,
                })
            })
            .map_err(|e| self.error(&e))?;
        for row in rows {
            run.drift.push(row.map_err(|e| self.error(&e))?);
        }
        Ok(Some(run))
    }

    fn hosts_of(&self, id: i64) -> Result<Vec<HostCounts>, Diagnostic> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT host, ok, changed, failed, unreachable, skipped FROM host_results
                 WHERE run_id = ?1 ORDER BY rowid",
            )
            .map_err(|e| self.error(&e))?;
        let rows = stmt
            .query_map([id], |r| {
                Ok(HostCounts {
                    host: r.get(0)?,
                    ok: r.get(1)?,
                    changed: r.get(2)?,
                    failed: r.get(3)?,
                    unreachable: r.get(4)?,
                    skipped: r.get(5)?,
                })
            })
            .map_err(|e| self.error(&e))?;
        rows.map(|r| r.map_err(|e| self.error(&e))).collect()
    }
}

fn store_error(path: &Path, e: &rusqlite::Error) -> Diagnostic {
    use rusqlite::ErrorCode;
    let code = e.sqlite_error_code();
    match code {
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => Diagnostic::runtime(
            format!("the run history {} is corrupt: {e}", path.display()),
        )
        .with_hint(
            "orch leaves it untouched: move it away to start a new history, or pass --state-dir",
        ),
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            Diagnostic::runtime(format!(
                "the run history {} stayed locked by another orch for {}s",
                path.display(),
                BUSY_TIMEOUT.as_secs()
            ))
        }
        _ => Diagnostic::runtime(format!("run history {}: {e}", path.display())),
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `2026-11-28 16:05:33Z` from unix seconds (UTC, civil calendar).
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RunRecord {
        RunRecord {
            started_at: 1_700_000_000,
            finished_at: 1_700_000_005,
            kind: "drift".into(),
            playbook: "/p/site.yml".into(),
            inventory: "hosts.ini".into(),
            check_mode: true,
            exit_code: 3,
            hosts: vec![HostCounts {
                host: "web1".into(),
                ok: 3,
                changed: 1,
                ..HostCounts::default()
            }],
            drift: vec![DriftEntry {
                host: "web1".into(),
                task: "motd".into(),
                diff: "-a\n+b\n".into(),
            }],
            ..RunRecord::default()
        }
    }

    #[test]
    fn records_and_reads_back_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = HistoryStore::open(dir.path()).expect("opens");
        let first = store.record(&sample()).expect("records");
        let second = store
            .record(&RunRecord {
                kind: "run".into(),
                drift: vec![],
                ..sample()
            })
            .expect("records");
        assert!(second > first);
        let listed = store.list(10).expect("lists");
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].0.kind, "run");
        assert_eq!(listed[1].1, 1, "drift count of the first run");
        let got = store.get(first).expect("reads").expect("exists");
        assert_eq!(
            got,
            RunRecord {
                id: first,
                ..sample()
            }
        );
        assert!(store.get(999).expect("reads").is_none());
        // Reopening keeps the data (no re-creation).
        drop(store);
        let store = HistoryStore::open(dir.path()).expect("reopens");
        assert_eq!(store.list(10).expect("lists").len(), 2);
    }

    #[test]
    fn corrupt_store_is_reported_and_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        let garbage = "this is not a database, but somebody's notes ".repeat(100);
        std::fs::write(&path, &garbage).expect("write");
        let err = HistoryStore::open(dir.path())
            .err()
            .expect("corrupt store must fail");
        assert!(err.render().contains("corrupt"), "{}", err.render());
        assert_eq!(std::fs::read_to_string(&path).expect("read"), garbage);
    }

    #[test]
    fn locked_store_is_waited_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = HistoryStore::open(dir.path()).expect("opens");
        let holder = Connection::open(dir.path().join(FILE_NAME)).expect("second connection");
        holder.execute_batch("BEGIN EXCLUSIVE").expect("lock");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            holder.execute_batch("COMMIT").expect("unlock");
        });
        let started = std::time::Instant::now();
        store
            .record(&sample())
            .expect("records once the lock is released");
        assert!(started.elapsed() >= Duration::from_millis(250));
        release.join().expect("join");
    }

    #[test]
    fn formats_utc_times() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13:20Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00Z");
    }
}
