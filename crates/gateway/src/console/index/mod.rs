//! The console's index of recent alerts: SQLite (FTS5 for the output text) in one file, written
//! by [`feed`] as it reads the spool and trimmed by age and size. It is a view: deleting the file
//! loses no alert, and a new one is filled again from what the spool still holds.

pub mod feed;
mod pending;
mod query;
mod schema;
#[cfg(test)]
pub(super) mod tests;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use peregrine_engine::{Alert, Priority};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

use crate::spool::{flags, Position, StoredRecord};
pub use pending::PendingOutcome;
pub use query::{Overview, Query, MAX_PAGE};

/// How long and how much the index keeps (`ui.retention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Duration,
    pub max_bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 2 << 30,
        }
    }
}

/// One indexed alert as the console lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRow {
    /// Its place in the spool: newer alerts have larger ones.
    pub seq: u64,
    pub uuid: String,
    pub time: String,
    pub priority: &'static str,
    pub rule: String,
    pub source: String,
    pub hostname: String,
    pub container_id: String,
    pub container_name: String,
    pub tags: Vec<String>,
    pub output: String,
    /// A synthetic alert from `POST /test`.
    pub test: bool,
}

/// What the index holds about one alert beyond its row: the alert as stored and where it was
/// in the spool (the outputs' cursors are compared with it).
#[derive(Debug, Clone)]
pub struct IndexedAlert {
    pub row: AlertRow,
    pub spool_offset: u64,
    pub alert: Value,
    /// Per output, what the index was told about it (dead-lettered, with the reason).
    pub outcomes: Vec<Outcome>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub output: String,
    pub state: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("alert index {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("alert index {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct AlertIndex {
    path: PathBuf,
    conn: Mutex<Connection>,
    retention: Retention,
}

impl AlertIndex {
    /// Opens the index at `path`, or starts a new one when the file is missing, damaged or of
    /// another version (it is filled again from the spool).
    pub fn open(path: &Path, retention: Retention) -> Result<AlertIndex, IndexError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| IndexError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = match Self::open_existing(path) {
            Ok(Some(conn)) => conn,
            Ok(None) | Err(_) => {
                tracing::warn!(path = %path.display(), "starting a new alert index; it fills again from the spool");
                Self::remove(path)?;
                let conn = Connection::open(path).map_err(|source| IndexError::Sqlite {
                    path: path.to_path_buf(),
                    source,
                })?;
                schema::prepare(&conn).map_err(|source| IndexError::Sqlite {
                    path: path.to_path_buf(),
                    source,
                })?;
                conn
            }
        };
        Ok(AlertIndex {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            retention,
        })
    }

    fn open_existing(path: &Path) -> rusqlite::Result<Option<Connection>> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let ok: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if ok != "ok" || !schema::prepare(&conn)? {
            return Ok(None);
        }
        Ok(Some(conn))
    }

    fn remove(path: &Path) -> Result<(), IndexError> {
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(IndexError::Io { path: file, source }),
            }
        }
        Ok(())
    }

    fn err(&self, source: rusqlite::Error) -> IndexError {
        IndexError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Where reading the spool goes on: the position after the last record indexed.
    pub fn resume_position(&self) -> Result<Option<Position>, IndexError> {
        let conn = self.lock();
        let read = |key: &str| -> rusqlite::Result<Option<i64>> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
        };
        let offset = read("next_offset").map_err(|e| self.err(e))?;
        let seq = read("next_seq").map_err(|e| self.err(e))?;
        Ok(offset.zip(seq).map(|(offset, seq)| Position {
            offset: offset as u64,
            seq: seq as u64,
        }))
    }

    /// Forgets every alert (the spool was started anew behind the index's back).
    pub fn clear(&self) -> Result<(), IndexError> {
        let conn = self.lock();
        conn.execute_batch(
            "BEGIN; DELETE FROM alerts; DELETE FROM tags; DELETE FROM alerts_text;
             DELETE FROM outcomes; DELETE FROM pending_outcomes;
             DELETE FROM meta WHERE key IN ('next_offset', 'next_seq'); COMMIT;",
        )
        .map_err(|e| self.err(e))
    }

    /// Indexes records read from the spool, and remembers `next` as the place to go on from,
    /// in one transaction. Returns the rows of the alerts indexed (replays of dead letters are
    /// not indexed again: the alert is there from when it first arrived).
    pub fn insert(
        &self,
        records: &[StoredRecord],
        next: Position,
    ) -> Result<Vec<AlertRow>, IndexError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let mut rows = Vec::with_capacity(records.len());
        for record in records {
            if record.flags & flags::REPLAY != 0 {
                continue;
            }
            let Ok(alert) = Alert::from_json_slice(&record.payload) else {
                continue;
            };
            let row = insert_one(&tx, record, &alert).map_err(|e| self.err(e))?;
            rows.push(row);
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('next_offset', ?1), ('next_seq', ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![next.offset as i64, next.seq as i64],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Records what happened to an alert at an output that its cursor cannot tell: it was
    /// dead-lettered, and why; on the newest alert with that uuid, as [`AlertIndex::get`] shows.
    /// False when the alert is not in the index (not read yet, or trimmed).
    pub fn record_outcome(
        &self,
        uuid: &str,
        output: &str,
        state: &str,
        reason: &str,
        at_ns: i64,
    ) -> Result<bool, IndexError> {
        self.lock()
            .execute(
                "INSERT OR REPLACE INTO outcomes (seq, output, state, reason, at_ns)
                 SELECT seq, ?2, ?3, ?4, ?5 FROM alerts WHERE uuid = ?1
                 ORDER BY seq DESC LIMIT 1",
                params![uuid, output, state, reason, at_ns],
            )
            .map(|rows| rows > 0)
            .map_err(|e| self.err(e))
    }

    /// The file's size in bytes, without pages SQLite keeps free.
    pub fn used_bytes(&self) -> Result<u64, IndexError> {
        used_bytes(&self.lock()).map_err(|e| self.err(e))
    }

    /// How many alerts it holds.
    pub fn count(&self) -> Result<u64, IndexError> {
        self.lock()
            .query_row("SELECT count(*) FROM alerts", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Deletes alerts accepted before `now - max_age`, then the oldest until the file is under
    /// `max_bytes`. Returns how many went.
    pub fn enforce_retention(&self, now_ns: i64) -> Result<u64, IndexError> {
        let conn = self.lock();
        let cutoff = now_ns.saturating_sub(self.retention.max_age.as_nanos() as i64);
        let mut removed =
            delete_before(&conn, "accepted_ns < ?1", cutoff).map_err(|e| self.err(e))?;
        // Each round deletes about the share of alerts by which the file is too large (and at
        // least 1 %), so a few rounds suffice; bounded in case the file cannot shrink further.
        for _ in 0..20 {
            let used = used_bytes(&conn).map_err(|e| self.err(e))?;
            if used <= self.retention.max_bytes {
                break;
            }
            let total: i64 = conn
                .query_row("SELECT count(*) FROM alerts", [], |r| r.get(0))
                .map_err(|e| self.err(e))?;
            if total == 0 {
                break;
            }
            let share = (used - self.retention.max_bytes) as f64 / used as f64;
            let n = ((total as f64 * share).ceil() as i64)
                .max(total / 100)
                .max(1);
            let last: i64 = conn
                .query_row(
                    "SELECT seq FROM alerts ORDER BY seq LIMIT 1 OFFSET ?1",
                    [n - 1],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.err(e))?
                .unwrap_or(i64::MAX);
            removed += delete_before(&conn, "seq <= ?1", last).map_err(|e| self.err(e))?;
        }
        Ok(removed)
    }
}

fn insert_one(
    tx: &rusqlite::Transaction<'_>,
    record: &StoredRecord,
    alert: &Alert,
) -> rusqlite::Result<AlertRow> {
    let field = |name: &str| match alert.output_fields.get(name) {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let row = AlertRow {
        seq: record.position.seq,
        uuid: alert
            .uuid
            .as_ref()
            .map(|u| u.as_str().to_string())
            .unwrap_or_default(),
        time: alert.time.to_string(),
        priority: alert.priority.as_str(),
        rule: alert.rule.clone(),
        source: alert.source.clone(),
        hostname: alert.hostname.clone().unwrap_or_default(),
        container_id: field("container.id"),
        container_name: field("container.name"),
        tags: alert.tags.clone(),
        output: alert.output.clone(),
        test: record.flags & flags::TEST != 0,
    };
    let seq = row.seq as i64;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO alerts (seq, spool_offset, uuid, time_ns, accepted_ns, priority,
         rule, source, hostname, container_id, container_name, output, test, json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        seq,
        record.position.offset as i64,
        row.uuid,
        alert.time.unix_nanos(),
        record.accepted_at_ns as i64,
        alert.priority.level(),
        row.rule,
        row.source,
        row.hostname,
        row.container_id,
        row.container_name,
        row.output,
        row.test,
        String::from_utf8_lossy(&record.payload),
    ])?;
    let mut tag = tx.prepare_cached("INSERT OR IGNORE INTO tags (tag, seq) VALUES (?1, ?2)")?;
    for t in &row.tags {
        tag.execute(params![t, seq])?;
    }
    tx.prepare_cached("INSERT INTO alerts_text (rowid, output) VALUES (?1, ?2)")?
        .execute(params![seq, row.output])?;
    Ok(row)
}

/// Deletes the alerts `condition` (on `alerts`, with `?1` = `value`) selects, with their tags,
/// text and outcomes, and gives the pages back to the file system.
fn delete_before(conn: &Connection, condition: &str, value: i64) -> rusqlite::Result<u64> {
    let max: Option<i64> = conn.query_row(
        &format!("SELECT max(seq) FROM alerts WHERE {condition}"),
        [value],
        |r| r.get(0),
    )?;
    let Some(max) = max else {
        return Ok(0);
    };
    conn.execute_batch("BEGIN")?;
    let removed = conn.execute("DELETE FROM alerts WHERE seq <= ?1", [max])?;
    conn.execute("DELETE FROM tags WHERE seq <= ?1", [max])?;
    conn.execute("DELETE FROM outcomes WHERE seq <= ?1", [max])?;
    conn.execute("DELETE FROM alerts_text WHERE rowid <= ?1", [max])?;
    // Freed pages go back to the file system: the free list is cut off the end of the file,
    // and the write-ahead log (where those pages were written) is folded in and emptied.
    // (`incremental_vacuum` frees one page per step, so it is stepped to its end.)
    conn.execute_batch("COMMIT")?;
    let mut vacuum = conn.prepare("PRAGMA incremental_vacuum")?;
    let mut steps = vacuum.query([])?;
    while steps.next()?.is_some() {}
    drop(steps);
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(removed as u64)
}

fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}

/// The console's name for a priority level stored in the index.
fn priority_name(level: i64) -> &'static str {
    u8::try_from(level)
        .ok()
        .and_then(Priority::from_level)
        .unwrap_or(Priority::Debug)
        .as_str()
}
