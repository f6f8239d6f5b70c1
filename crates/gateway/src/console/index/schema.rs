//! The index's tables. One row per alert, keyed by its position in the spool (`seq`), so the
//! index can say how far it has read and be rebuilt by reading the spool again.

use rusqlite::Connection;

/// Bumped when the tables change: an index of another version is dropped and rebuilt from the
/// spool (it is a view, never the source of truth).
pub const VERSION: i64 = 1;

/// `auto_vacuum` must be set before the first table exists, so that deleting old alerts gives
/// pages back to the file system (`max_bytes` is about the file, not SQLite's free list).
const PRAGMAS: &str = "
PRAGMA auto_vacuum = INCREMENTAL;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = OFF;
";

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    seq INTEGER PRIMARY KEY,
    spool_offset INTEGER NOT NULL,
    uuid TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    accepted_ns INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    rule TEXT NOT NULL,
    source TEXT NOT NULL,
    hostname TEXT NOT NULL,
    container_id TEXT NOT NULL,
    container_name TEXT NOT NULL,
    output TEXT NOT NULL,
    test INTEGER NOT NULL,
    json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_uuid ON alerts (uuid);
CREATE INDEX IF NOT EXISTS alerts_time ON alerts (time_ns);
CREATE INDEX IF NOT EXISTS alerts_accepted ON alerts (accepted_ns);
CREATE INDEX IF NOT EXISTS alerts_rule ON alerts (rule, seq);
CREATE INDEX IF NOT EXISTS alerts_hostname ON alerts (hostname, seq);
CREATE INDEX IF NOT EXISTS alerts_priority ON alerts (priority, seq);
CREATE TABLE IF NOT EXISTS tags (
    tag TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (tag, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_seq ON tags (seq);
CREATE VIRTUAL TABLE IF NOT EXISTS alerts_text USING fts5 (
    output, content = '', contentless_delete = 1
);
CREATE TABLE IF NOT EXISTS outcomes (
    seq INTEGER NOT NULL,
    output TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_ns INTEGER NOT NULL,
    PRIMARY KEY (seq, output)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending_outcomes (
    until_offset INTEGER NOT NULL,
    uuid TEXT NOT NULL,
    output TEXT NOT NULL,
    code TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_ns INTEGER NOT NULL
);
";

/// Sets the database up; returns false when it holds another version's tables (the caller
/// starts a new file).
pub fn prepare(conn: &Connection) -> rusqlite::Result<bool> {
    conn.execute_batch(PRAGMAS)?;
    conn.execute_batch(TABLES)?;
    let version: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE key = 'version'", [], |r| {
            r.get(0)
        })
        .ok();
    match version {
        None => {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('version', ?1)",
                [VERSION],
            )?;
            Ok(true)
        }
        Some(v) => Ok(v == VERSION),
    }
}
