//! Which alerts an output has finished with, kept in its cursor file.
//!
//! Deliveries finish out of order (several are in flight), so progress is the triple of
//! [`CursorState`]: everything before `committed` is finished, everything from `frontier` on is
//! untouched, and in between only the `outstanding` seqs are unfinished. After a crash the worker
//! resends exactly those and skips the rest of that range.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use crate::spool::{CursorFile, Position};

/// With more alerts in flight than this, finished deliveries are written to the cursor in groups
/// of `1/CURSOR_WRITE_SHARE` of them. Writing the whole list of thousands of seqs waiting for
/// retries at every finished delivery took a twentieth of the gateway's CPU, under the tracker's
/// lock, in a drain through a receiver failing 30 % of requests (issue 20).
const CURSOR_WRITE_SHARE: usize = 64;

pub struct Tracker {
    /// In flight in this run, by seq: position and acceptance time.
    outstanding: BTreeMap<u64, (Position, u64)>,
    /// The same seqs, ascending, in one run of memory: what the cursor writes, which walking the
    /// map for took a tenth of the gateway's CPU with thousands of alerts waiting for retries.
    seqs: Vec<u64>,
    /// Every record before this one was taken from the log in this run (or finished before it).
    frontier: Position,
    cursor: CursorFile,
    /// The cursor is behind: a skipped record moved the frontier, or finished deliveries wait
    /// for the next write.
    dirty: bool,
    /// Deliveries finished since the cursor was last written.
    unwritten: usize,
    /// What the previous run left unfinished, until this run reads past it.
    resume: Option<Resume>,
}

/// Where one record is for an output (the console's view of an alert's deliveries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Not read yet.
    Waiting,
    /// Being delivered or waiting for a retry.
    InFlight,
    /// Finished with: delivered, dead-lettered, held back by storm control or not routed here.
    Passed,
}

struct Resume {
    frontier: Position,
    resend: BTreeSet<u64>,
}

impl Tracker {
    pub fn new(cursor: CursorFile) -> Self {
        let state = cursor.state();
        let resume = (state.frontier > state.committed).then(|| Resume {
            frontier: state.frontier,
            resend: state.outstanding.into_iter().collect(),
        });
        Tracker {
            outstanding: BTreeMap::new(),
            seqs: Vec::new(),
            frontier: state.committed,
            cursor,
            dirty: false,
            unwritten: 0,
            resume,
        }
    }

    /// Where the output's reader starts.
    pub fn start(&self) -> Position {
        self.frontier
    }

    /// True for a record the previous run already finished (it is skipped, not resent).
    pub fn finished_before(&mut self, seq: u64) -> bool {
        match &self.resume {
            Some(r) if seq < r.frontier.seq => !r.resend.contains(&seq),
            Some(_) => {
                self.resume = None;
                false
            }
            None => false,
        }
    }

    /// Everything before this is finished.
    pub fn committed(&self) -> Position {
        self.outstanding
            .values()
            .next()
            .map_or(self.frontier, |(p, _)| *p)
    }

    /// Where the record `seq` is for this output.
    pub fn progress_of(&self, seq: u64) -> Progress {
        if self.outstanding.contains_key(&seq) {
            Progress::InFlight
        } else if seq >= self.frontier.seq {
            Progress::Waiting
        } else {
            Progress::Passed
        }
    }

    /// Acceptance time (ns) of the oldest alert in flight.
    pub fn oldest_in_flight_ns(&self) -> Option<u64> {
        self.outstanding.values().map(|(_, at)| *at).min()
    }

    /// A record was taken from the log for delivery.
    pub fn started(&mut self, position: Position, next: Position, accepted_at_ns: u64) {
        if self
            .outstanding
            .insert(position.seq, (position, accepted_at_ns))
            .is_none()
        {
            // Records are taken in log order, so this is almost always a push.
            let at = self.seqs.partition_point(|s| *s < position.seq);
            self.seqs.insert(at, position.seq);
        }
        self.frontier = next;
    }

    /// A record was taken from the log and needs no delivery here (routing, or finished in the
    /// previous run). The cursor is written lazily: redoing a skip after a crash is harmless.
    pub fn skipped(&mut self, next: Position) {
        self.frontier = next;
        self.dirty = true;
    }

    /// Deliveries finished (delivered or dead-lettered). The cursor records it at once while
    /// few alerts are in flight; with many (alerts waiting for retries), once per
    /// 1/[`CURSOR_WRITE_SHARE`] of them finished, since each write costs the whole outstanding
    /// list: a crash then resends at most that share of them again, besides what was in flight.
    pub fn finished(&mut self, positions: impl IntoIterator<Item = Position>) -> io::Result<()> {
        for p in positions {
            if self.outstanding.remove(&p.seq).is_some() {
                if let Ok(at) = self.seqs.binary_search(&p.seq) {
                    self.seqs.remove(at);
                }
                self.unwritten += 1;
            }
        }
        // Behind until written; a write that fails leaves it so, for the next flush to retry.
        self.dirty = true;
        if self.unwritten * CURSOR_WRITE_SHARE < self.seqs.len() {
            return Ok(());
        }
        self.persist()
    }

    /// Writes the cursor if it changed.
    pub fn persist(&mut self) -> io::Result<()> {
        let committed = self.committed();
        match &self.resume {
            // Until this run reads past where the last one stopped, what that one left
            // unfinished is still outstanding.
            Some(r) if r.frontier > self.frontier => {
                let mut outstanding = self.seqs.clone();
                outstanding.extend(r.resend.range(self.frontier.seq..));
                self.cursor.record(committed, r.frontier, &outstanding)?;
            }
            _ => {
                self.cursor.record(committed, self.frontier, &self.seqs)?;
            }
        }
        self.dirty = false;
        self.unwritten = 0;
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
    use crate::spool::CursorState;

    fn p(seq: u64) -> Position {
        Position {
            offset: seq * 10,
            seq,
        }
    }

    fn tracker(dir: &std::path::Path) -> Tracker {
        Tracker::new(CursorFile::open_or_create(&dir.join("c"), p(0), 8).unwrap())
    }

    #[test]
    fn the_cursor_records_what_is_still_in_flight() {
        let tmp = tempfile::tempdir().unwrap();
        let mut t = tracker(tmp.path());
        t.started(p(0), p(1), 100);
        t.skipped(p(2));
        t.started(p(2), p(3), 300);
        t.started(p(3), p(4), 400);
        assert_eq!(t.oldest_in_flight_ns(), Some(100));

        t.finished([p(2)]).unwrap();
        assert_eq!(t.committed(), p(0), "seq 0 is still in flight");
        assert_eq!(
            t.cursor().state(),
            CursorState {
                committed: p(0),
                frontier: p(4),
                outstanding: vec![0, 3]
            }
        );
        t.finished([p(0)]).unwrap();
        assert_eq!(t.committed(), p(3));
        t.finished([p(3)]).unwrap();
        assert_eq!(t.cursor().state(), CursorState::at(p(4)));
        assert_eq!(t.oldest_in_flight_ns(), None);
    }

    #[test]
    fn with_many_in_flight_finished_deliveries_are_written_in_groups() {
        let tmp = tempfile::tempdir().unwrap();
        let roomy = |dir: &std::path::Path| {
            Tracker::new(CursorFile::open_or_create(&dir.join("c"), p(0), 1024).unwrap())
        };
        let mut t = roomy(tmp.path());
        for s in 0..640 {
            t.started(p(s), p(s + 1), 0);
        }
        t.persist().unwrap();
        // 640 in flight: written once 1/64 of those left have finished (10 of 630), not before.
        for s in (1..10).rev() {
            t.finished([p(s)]).unwrap();
            assert_eq!(
                t.cursor().state().outstanding.len(),
                640,
                "seq {s}: not written yet"
            );
            assert!(t.is_dirty());
        }
        t.finished([p(10)]).unwrap();
        assert_eq!(
            t.cursor().state().outstanding.len(),
            630,
            "the group of 10 written"
        );
        assert!(!t.is_dirty());
        // The rest of a group is written by the next save (`OutputStatus::save_cursor`).
        t.finished([p(0)]).unwrap();
        assert_eq!(t.cursor().state().committed, p(0));
        t.persist().unwrap();
        assert_eq!(t.cursor().state().committed, p(11));
        // A crash now resends only what is still in flight.
        drop(t);
        let mut t = roomy(tmp.path());
        let resent = (0..640).filter(|&s| !t.finished_before(s)).count();
        assert_eq!(resent, 629);
    }

    #[test]
    fn with_64_or_fewer_in_flight_every_finished_delivery_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let mut t =
            Tracker::new(CursorFile::open_or_create(&tmp.path().join("c"), p(0), 128).unwrap());
        for s in 0..65 {
            t.started(p(s), p(s + 1), 0);
        }
        t.persist().unwrap();
        t.finished([p(64)]).unwrap();
        assert_eq!(t.cursor().state().outstanding.len(), 64);
        t.finished([p(1)]).unwrap();
        assert_eq!(t.cursor().state().outstanding.len(), 63);
        assert!(!t.is_dirty());
    }

    #[test]
    fn after_a_crash_only_the_unfinished_are_resent() {
        let tmp = tempfile::tempdir().unwrap();
        let mut t = tracker(tmp.path());
        for s in 0..6 {
            t.started(p(s), p(s + 1), 0);
        }
        t.finished([p(1), p(2), p(4)]).unwrap();
        drop(t); // the crash

        let mut t = tracker(tmp.path());
        assert_eq!(t.start(), p(0));
        let resent: Vec<u64> = (0..8).filter(|&s| !t.finished_before(s)).collect();
        assert_eq!(resent, vec![0, 3, 5, 6, 7]);
    }

    #[test]
    fn a_second_crash_during_the_resend_keeps_what_the_first_run_finished() {
        let tmp = tempfile::tempdir().unwrap();
        let mut t = tracker(tmp.path());
        for s in 0..6 {
            t.started(p(s), p(s + 1), 0);
        }
        t.finished([p(1), p(2), p(4)]).unwrap();
        drop(t);

        let mut t = tracker(tmp.path());
        assert!(!t.finished_before(0));
        t.started(p(0), p(1), 0);
        t.finished([p(0)]).unwrap();
        drop(t);

        let mut t = tracker(tmp.path());
        assert_eq!(t.start(), p(1));
        let resent: Vec<u64> = (1..8).filter(|&s| !t.finished_before(s)).collect();
        assert_eq!(resent, vec![3, 5, 6, 7]);
    }
}
