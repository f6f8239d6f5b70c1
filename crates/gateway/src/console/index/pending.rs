//! Dead-letter notes that were still waiting for the index when the gateway stopped (see
//! `console::outcomes`): kept in the index's file until the next start takes them up, so that a
//! restart does not show those alerts as sent.

use rusqlite::params;

use super::{AlertIndex, IndexError};

/// A dead-letter note kept across a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOutcome {
    /// The spool's end when the note came: the alert lies before it.
    pub until_offset: u64,
    pub uuid: String,
    pub output: String,
    pub code: String,
    pub reason: String,
    pub at_ns: i64,
}

impl AlertIndex {
    /// Keeps `notes` (oldest first) for the next start, after any kept before, in one
    /// transaction.
    pub fn keep_pending_outcomes(&self, notes: &[PendingOutcome]) -> Result<(), IndexError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO pending_outcomes (until_offset, uuid, output, code, reason, at_ns)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(|e| self.err(e))?;
            for n in notes {
                let offset = i64::try_from(n.until_offset).unwrap_or(i64::MAX);
                insert
                    .execute(params![offset, n.uuid, n.output, n.code, n.reason, n.at_ns])
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Takes the notes kept at the last stop, oldest first: the newest `max` of them, should
    /// there be more (the others are counted in a warning). None are kept after this.
    pub fn take_pending_outcomes(&self, max: usize) -> Result<Vec<PendingOutcome>, IndexError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let mut notes = {
            let mut select = tx
                .prepare(
                    "SELECT until_offset, uuid, output, code, reason, at_ns FROM pending_outcomes
                     ORDER BY rowid DESC LIMIT ?1",
                )
                .map_err(|e| self.err(e))?;
            let rows = select
                .query_map([i64::try_from(max).unwrap_or(i64::MAX)], |r| {
                    Ok(PendingOutcome {
                        until_offset: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                        uuid: r.get(1)?,
                        output: r.get(2)?,
                        code: r.get(3)?,
                        reason: r.get(4)?,
                        at_ns: r.get(5)?,
                    })
                })
                .map_err(|e| self.err(e))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.err(e))?
        };
        let deleted = tx
            .execute("DELETE FROM pending_outcomes", [])
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        if deleted > notes.len() {
            tracing::warn!(
                dropped = deleted - notes.len(),
                "more dead-letter notes were kept at the last stop than wait at once; the oldest are not noted on their alerts"
            );
        }
        notes.reverse();
        Ok(notes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::index::Retention;

    fn note(n: u64) -> PendingOutcome {
        PendingOutcome {
            until_offset: n * 100,
            uuid: format!("uuid-{n}"),
            output: "hook".into(),
            code: "http_400".into(),
            reason: "Bad Request".into(),
            at_ns: n as i64,
        }
    }

    #[test]
    fn kept_notes_are_taken_once_newest_first_within_the_bound_in_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        let index = AlertIndex::open(&path, Retention::default()).unwrap();
        index.keep_pending_outcomes(&[note(1), note(2)]).unwrap();
        index.keep_pending_outcomes(&[note(3)]).unwrap();
        drop(index);

        let index = AlertIndex::open(&path, Retention::default()).unwrap();
        assert_eq!(
            index.take_pending_outcomes(2).unwrap(),
            vec![note(2), note(3)]
        );
        assert!(index.take_pending_outcomes(2).unwrap().is_empty());
    }
}
