//! Which alerts an output has finished with, and the cursor that follows from it.
//!
//! Deliveries finish out of order (several are in flight), so the cursor may only move up to the
//! oldest alert still being worked on. After a crash, alerts between that point and the read
//! position are delivered again: those are exactly the ones that were in flight.

use std::collections::BTreeMap;
use std::io;

use crate::spool::{CursorFile, Position};

pub struct Tracker {
    /// In-flight alerts by seq: their position and acceptance time.
    outstanding: BTreeMap<u64, (Position, u64)>,
    /// Every record before this one has been taken from the log (delivered, in flight or skipped).
    frontier: Position,
    cursor: CursorFile,
    /// A skipped record moved the frontier but the cursor was not written yet.
    dirty: bool,
}

impl Tracker {
    pub fn new(cursor: CursorFile) -> Self {
        Tracker {
            outstanding: BTreeMap::new(),
            frontier: cursor.position(),
            cursor,
            dirty: false,
        }
    }

    /// Where the output resumes after a restart.
    pub fn committed(&self) -> Position {
        self.outstanding
            .values()
            .next()
            .map_or(self.frontier, |(p, _)| *p)
    }

    /// Acceptance time (ns) of the oldest alert in flight.
    pub fn oldest_in_flight_ns(&self) -> Option<u64> {
        self.outstanding.values().map(|(_, at)| *at).min()
    }

    /// A record was taken from the log for delivery.
    pub fn started(&mut self, position: Position, next: Position, accepted_at_ns: u64) {
        self.outstanding
            .insert(position.seq, (position, accepted_at_ns));
        self.frontier = next;
    }

    /// A record was taken from the log and will not be delivered here (routing). The cursor is
    /// written lazily: redoing a skip after a crash is harmless.
    pub fn skipped(&mut self, next: Position) {
        self.frontier = next;
        self.dirty = true;
    }

    /// Deliveries finished (delivered or dead-lettered): the cursor moves if it can.
    pub fn finished(&mut self, positions: impl IntoIterator<Item = Position>) -> io::Result<()> {
        for p in positions {
            self.outstanding.remove(&p.seq);
        }
        self.persist()
    }

    /// Writes the cursor if it moved.
    pub fn persist(&mut self) -> io::Result<()> {
        let committed = self.committed();
        if committed != self.cursor.position() {
            self.cursor.store(committed)?;
        }
        self.dirty = false;
        Ok(())
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub fn cursor(&self) -> &CursorFile {
        &self.cursor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(seq: u64) -> Position {
        Position {
            offset: seq * 10,
            seq,
        }
    }

    #[test]
    fn the_cursor_waits_for_the_oldest_in_flight_alert() {
        let tmp = tempfile::tempdir().unwrap();
        let cursor = CursorFile::open_or_create(&tmp.path().join("c"), p(0)).unwrap();
        let mut t = Tracker::new(cursor);
        t.started(p(0), p(1), 100);
        t.skipped(p(2));
        t.started(p(2), p(3), 300);
        t.started(p(3), p(4), 400);
        assert_eq!(t.oldest_in_flight_ns(), Some(100));

        t.finished([p(2)]).unwrap();
        assert_eq!(t.committed(), p(0), "seq 0 is still in flight");
        t.finished([p(0)]).unwrap();
        assert_eq!(t.committed(), p(3));
        assert_eq!(t.cursor().position(), p(3));
        t.finished([p(3)]).unwrap();
        assert_eq!(t.committed(), p(4));
        assert_eq!(t.oldest_in_flight_ns(), None);
    }
}
