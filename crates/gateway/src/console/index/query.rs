//! Reading the index: a page of alerts by filters and text, one alert, and the overview's
//! counts. Every value from a request is a bound parameter; the text search is turned into
//! quoted FTS5 terms, so no input can be FTS5 or SQL syntax.

use peregrine_engine::Priority;
use rusqlite::types::Value as Sql;
use rusqlite::{params_from_iter, OptionalExtension, Row};
use serde::Serialize;

use super::{priority_name, AlertIndex, AlertRow, IndexError, IndexedAlert, Outcome};

/// The most alerts one page holds.
pub const MAX_PAGE: usize = 500;

/// What the alerts page asks for. Empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// This priority or more severe.
    pub min_priority: Option<Priority>,
    pub rule: Option<String>,
    pub hostname: Option<String>,
    pub source: Option<String>,
    pub tag: Option<String>,
    /// Matches the container's id or its name.
    pub container: Option<String>,
    /// Alert time, Unix nanoseconds, inclusive.
    pub since_ns: Option<i64>,
    pub until_ns: Option<i64>,
    /// Words that must all appear in the output line.
    pub text: Option<String>,
    /// Only alerts older than this `seq` (the next page).
    pub before_seq: Option<u64>,
    pub limit: usize,
}

/// The overview: alerts per time bucket by priority, and the busiest rules and hosts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Overview {
    pub bucket_seconds: u64,
    /// `(bucket start as Unix seconds, priority, count)`, oldest first.
    pub series: Vec<(i64, &'static str, u64)>,
    pub top_rules: Vec<(String, u64)>,
    pub top_hosts: Vec<(String, u64)>,
    pub total: u64,
}

const ROW_COLUMNS: &str = "a.seq, a.uuid, a.time_ns, a.priority, a.rule, a.source, a.hostname,
    a.container_id, a.container_name, a.output, a.test,
    (SELECT group_concat(tag, char(31)) FROM tags t WHERE t.seq = a.seq)";

/// FTS5 terms for free text: each word quoted (quotes doubled), all required. Control
/// characters separate words (FTS5 reads a NUL as the end of the query).
fn fts_terms(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .take(32)
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

impl Query {
    fn to_sql(&self) -> (String, Vec<Sql>) {
        let mut conditions = Vec::new();
        let mut values = Vec::new();
        // `#` in a condition stands for its one parameter (bound once, used where it appears).
        let mut add = |condition: &str, value: Sql| {
            values.push(value);
            conditions.push(condition.replace('#', &format!("?{}", values.len())));
        };
        if let Some(p) = self.min_priority {
            add("a.priority <= #", Sql::Integer(i64::from(p.level())));
        }
        let text = |s: &Option<String>| s.as_ref().filter(|s| !s.is_empty()).cloned();
        if let Some(rule) = text(&self.rule) {
            add("a.rule = #", Sql::Text(rule));
        }
        if let Some(host) = text(&self.hostname) {
            add("a.hostname = #", Sql::Text(host));
        }
        if let Some(source) = text(&self.source) {
            add("a.source = #", Sql::Text(source));
        }
        if let Some(tag) = text(&self.tag) {
            add(
                "a.seq IN (SELECT seq FROM tags WHERE tag = #)",
                Sql::Text(tag),
            );
        }
        if let Some(c) = text(&self.container) {
            add("(a.container_id = # OR a.container_name = #)", Sql::Text(c));
        }
        if let Some(since) = self.since_ns {
            add("a.time_ns >= #", Sql::Integer(since));
        }
        if let Some(until) = self.until_ns {
            add("a.time_ns <= #", Sql::Integer(until));
        }
        if let Some(terms) = self.text.as_deref().and_then(fts_terms) {
            add(
                "a.seq IN (SELECT rowid FROM alerts_text WHERE alerts_text MATCH #)",
                Sql::Text(terms),
            );
        }
        if let Some(before) = self.before_seq {
            add("a.seq < #", Sql::Integer(before as i64));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        (filter, values)
    }
}

impl Query {
    /// Whether a new alert belongs in a live view with these filters (time bounds and paging
    /// do not apply to what arrives now; the text must contain every word, in any case).
    pub fn matches(&self, row: &AlertRow) -> bool {
        let is = |want: &Option<String>, have: &str| {
            want.as_deref().is_none_or(|w| w.is_empty() || w == have)
        };
        let severe_enough = self.min_priority.is_none_or(|p| {
            row.priority
                .parse::<Priority>()
                .is_ok_and(|have| have.is_at_least(p))
        });
        let output = row.output.to_lowercase();
        let words = self.text.as_deref().unwrap_or("").to_lowercase();
        severe_enough
            && is(&self.rule, &row.rule)
            && is(&self.hostname, &row.hostname)
            && is(&self.source, &row.source)
            && self
                .tag
                .as_deref()
                .is_none_or(|t| t.is_empty() || row.tags.iter().any(|x| x == t))
            && self
                .container
                .as_deref()
                .is_none_or(|c| c.is_empty() || c == row.container_id || c == row.container_name)
            && words.split_whitespace().all(|w| output.contains(w))
    }
}

fn row_from(r: &Row<'_>) -> rusqlite::Result<AlertRow> {
    let tags: Option<String> = r.get(11)?;
    Ok(AlertRow {
        seq: r.get::<_, i64>(0)? as u64,
        uuid: r.get(1)?,
        time: peregrine_engine::EventTime::from_unix_nanos(r.get(2)?).to_string(),
        priority: priority_name(r.get(3)?),
        rule: r.get(4)?,
        source: r.get(5)?,
        hostname: r.get(6)?,
        container_id: r.get(7)?,
        container_name: r.get(8)?,
        output: r.get(9)?,
        test: r.get(10)?,
        tags: tags
            .map(|t| t.split('\u{1f}').map(str::to_string).collect())
            .unwrap_or_default(),
    })
}

impl AlertIndex {
    /// The newest alerts that match, newest first, at most `query.limit` (and [`MAX_PAGE`]).
    pub fn search(&self, query: &Query) -> Result<Vec<AlertRow>, IndexError> {
        let (filter, mut values) = query.to_sql();
        values.push(Sql::Integer(query.limit.clamp(1, MAX_PAGE) as i64));
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM alerts a {filter} ORDER BY a.seq DESC LIMIT ?{}",
            values.len()
        );
        let conn = self.lock();
        let mut statement = conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let rows = statement
            .query_map(params_from_iter(values), row_from)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// One alert by its uuid (the newest, should a sender have reused one).
    pub fn get(&self, uuid: &str) -> Result<Option<IndexedAlert>, IndexError> {
        let conn = self.lock();
        let found = conn
            .query_row(
                &format!(
                    "SELECT {ROW_COLUMNS}, a.spool_offset, a.json FROM alerts a
                     WHERE a.uuid = ?1 ORDER BY a.seq DESC LIMIT 1"
                ),
                [uuid],
                |r| Ok((row_from(r)?, r.get::<_, i64>(12)?, r.get::<_, String>(13)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((row, offset, json)) = found else {
            return Ok(None);
        };
        let mut statement = conn
            .prepare_cached("SELECT output, state, reason FROM outcomes WHERE seq = ?1")
            .map_err(|e| self.err(e))?;
        let outcomes = statement
            .query_map([row.seq as i64], |r| {
                Ok(Outcome {
                    output: r.get(0)?,
                    state: r.get(1)?,
                    reason: r.get(2)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(Some(IndexedAlert {
            row,
            spool_offset: offset as u64,
            alert: serde_json::from_str(&json).unwrap_or_default(),
            outcomes,
        }))
    }

    /// Counts of alerts accepted since `since_ns`: per bucket and priority, and the ten
    /// busiest rules and hosts. Acceptance time, not the alert's own: a sender with a wrong
    /// clock must not hide its alerts from "the last hours".
    pub fn overview(&self, since_ns: i64, bucket_seconds: u64) -> Result<Overview, IndexError> {
        let bucket_ns = bucket_seconds.max(1) as i64 * 1_000_000_000;
        let conn = self.lock();
        let mut series = conn
            .prepare_cached(
                "SELECT (accepted_ns / ?2) * ?2 / 1000000000, priority, count(*) FROM alerts
                 WHERE accepted_ns >= ?1 GROUP BY 1, 2 ORDER BY 1, 2",
            )
            .map_err(|e| self.err(e))?;
        let series = series
            .query_map([since_ns, bucket_ns], |r| {
                Ok((
                    r.get(0)?,
                    priority_name(r.get(1)?),
                    r.get::<_, i64>(2)? as u64,
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        let top = |column: &str| -> Result<Vec<(String, u64)>, IndexError> {
            let sql = format!(
                "SELECT {column}, count(*) AS n FROM alerts WHERE accepted_ns >= ?1
                 GROUP BY 1 ORDER BY n DESC, 1 LIMIT 10"
            );
            let mut statement = conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
            statement
                .query_map([since_ns], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| self.err(e))
        };
        let top_rules = top("rule")?;
        let top_hosts = top("hostname")?;
        let total = series.iter().map(|(_, _, n)| n).sum();
        Ok(Overview {
            bucket_seconds,
            series,
            top_rules,
            top_hosts,
            total,
        })
    }

    /// The seq of the newest alert indexed (0 when empty), for a live view to start after.
    pub fn newest_seq(&self) -> Result<u64, IndexError> {
        self.lock()
            .query_row("SELECT coalesce(max(seq), 0) FROM alerts", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }
}
