//! Notes each dead-lettered alert on its indexed row, with the reason.
//!
//! An output can dead-letter an alert before the index has read it: a `400` answer comes back
//! within a millisecond, while the index reads the spool in batches on the delivery runtime.
//! Written then, a note would find no row (or an older alert's row, should a sender have reused
//! the uuid) and the console would show the alert as sent. So each note waits until the index
//! has read as far as the spool reached when the note came (the alert lies before that): at
//! once when the index is caught up, as it is unless the gateway is busy.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::index::feed::IndexPosition;
use super::index::{AlertIndex, PendingOutcome};
use crate::deadletter::DeadLettered;
use crate::spool::Spool;

/// Notes kept waiting for the index at most; past that the oldest is dropped with a warning
/// (the dead-letter file still has the alert: the note is only the console's view).
const MAX_WAITING: usize = 10_000;
/// How often waiting notes look at how far the index has read.
const RECHECK: Duration = Duration::from_millis(50);

/// A dead letter waiting for the index to read its alert.
struct Waiting {
    /// The spool's end when the note came: the alert lies before it.
    until_offset: u64,
    event: DeadLettered,
    at_ns: i64,
}

impl From<PendingOutcome> for Waiting {
    fn from(kept: PendingOutcome) -> Self {
        Waiting {
            until_offset: kept.until_offset,
            event: DeadLettered {
                output: kept.output,
                uuid: kept.uuid,
                code: kept.code,
                reason: kept.reason,
            },
            at_ns: kept.at_ns,
        }
    }
}

impl From<Waiting> for PendingOutcome {
    fn from(w: Waiting) -> Self {
        PendingOutcome {
            until_offset: w.until_offset,
            uuid: w.event.uuid,
            output: w.event.output,
            code: w.event.code,
            reason: w.event.reason,
            at_ns: w.at_ns,
        }
    }
}

/// The notes waiting, oldest first (and so by `until_offset`, which only grows).
#[derive(Default)]
struct Backlog {
    notes: VecDeque<Waiting>,
    /// Notes dropped for want of room, warned about at 1, 2, 4, 8… so a stalled index cannot
    /// flood the log.
    dropped: u64,
}

/// What the console's dead-letter notes read and write.
pub(super) struct Notes {
    pub index: Arc<AlertIndex>,
    pub spool: Spool,
    pub position: Arc<IndexPosition>,
}

/// Notes each event from `events` on its alert's row, until `finish`: then the events already
/// sent are taken too, and the notes still waiting are kept in the index for the next start,
/// which takes them up first.
///
/// Why its own signal rather than the gateway's stop: outputs still dead-letter alerts during
/// their shutdown grace, after the stop; the gateway calls [`super::Console::finish`] once they
/// have stopped.
pub(super) async fn record_dead_letters(
    notes: Notes,
    mut events: broadcast::Receiver<DeadLettered>,
    finish: CancellationToken,
) {
    let mut backlog = notes.load_kept().await;
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut open = true;
    loop {
        tokio::select! {
            biased;
            _ = finish.cancelled() => break,
            _ = recheck.tick(), if !backlog.notes.is_empty() => notes.write_reached(&mut backlog).await,
            event = events.recv(), if open => match event {
                Ok(event) => {
                    notes.take(event, &mut backlog);
                    notes.write_reached(&mut backlog).await;
                }
                Err(broadcast::error::RecvError::Lagged(n)) => warn_missed(n),
                Err(broadcast::error::RecvError::Closed) => open = false,
            },
        }
    }
    loop {
        match events.try_recv() {
            Ok(event) => notes.take(event, &mut backlog),
            Err(broadcast::error::TryRecvError::Lagged(n)) => warn_missed(n),
            Err(_) => break,
        }
    }
    notes.write_reached(&mut backlog).await;
    notes.keep_waiting(backlog).await;
}

fn warn_missed(n: u64) {
    tracing::warn!(
        missed = n,
        "the console missed dead-letter events; the dead-letter files still have them"
    );
}

impl Notes {
    /// Queues a note until the index has read as far as the spool reaches now.
    fn take(&self, event: DeadLettered, backlog: &mut Backlog) {
        if backlog.notes.len() == MAX_WAITING {
            backlog.notes.pop_front();
            backlog.dropped += 1;
            if backlog.dropped.is_power_of_two() {
                tracing::warn!(
                    dropped = backlog.dropped,
                    "dead letters wait for the console's index, which is not reading; the oldest are not noted on their alerts"
                );
            }
        }
        backlog.notes.push_back(Waiting {
            until_offset: self.spool.end().offset,
            event,
            at_ns: peregrine_engine::EventTime::now().unix_nanos(),
        });
    }

    /// The notes kept at the last stop (see [`record_dead_letters`]), to wait as they did.
    async fn load_kept(&self) -> Backlog {
        let index = self.index.clone();
        let kept = tokio::task::spawn_blocking(move || index.take_pending_outcomes(MAX_WAITING));
        let kept = match kept.await {
            Ok(Ok(kept)) => kept,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the dead-letter notes kept at the last stop");
                Vec::new()
            }
            Err(e) => {
                tracing::error!(error = %e, "alert index task failed");
                Vec::new()
            }
        };
        // A note from beyond the spool's end came from another spool (the index, cleared for a
        // new one, may not have been yet): it would hold up every note behind it.
        let end = self.spool.end().offset;
        let notes = kept
            .into_iter()
            .filter(|k| k.until_offset <= end)
            .map(Waiting::from)
            .collect();
        Backlog { notes, dropped: 0 }
    }

    /// Keeps the notes still waiting in the index for the next start.
    async fn keep_waiting(&self, backlog: Backlog) {
        if backlog.notes.is_empty() {
            return;
        }
        let kept: Vec<PendingOutcome> = backlog.notes.into_iter().map(Waiting::into).collect();
        let index = self.index.clone();
        match tokio::task::spawn_blocking(move || index.keep_pending_outcomes(&kept)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot keep dead-letter notes for the next start")
            }
            Err(e) => tracing::error!(error = %e, "alert index task failed"),
        }
    }

    /// Writes, in one blocking task, the notes whose alerts the index has now read.
    async fn write_reached(&self, backlog: &mut Backlog) {
        let reached = self.position.offset();
        let due = backlog
            .notes
            .iter()
            .take_while(|w| w.until_offset <= reached)
            .count();
        if due == 0 {
            return;
        }
        let due: Vec<Waiting> = backlog.notes.drain(..due).collect();
        let index = self.index.clone();
        let written = tokio::task::spawn_blocking(move || {
            let (mut missing, mut failed) = (0, None);
            for w in due {
                let reason = format!("{}: {}", w.event.code, w.event.reason);
                let (uuid, output) = (&w.event.uuid, &w.event.output);
                match index.record_outcome(uuid, output, "dead_lettered", &reason, w.at_ns) {
                    Ok(true) => {}
                    Ok(false) => missing += 1,
                    Err(e) => failed = Some(e),
                }
            }
            (missing, failed)
        })
        .await;
        match written {
            Ok((missing, failed)) => {
                if missing > 0 {
                    tracing::debug!(
                        missing,
                        "dead-lettered alerts not in the console's index (trimmed, or skipped when the spool was full)"
                    );
                }
                if let Some(e) = failed {
                    tracing::warn!(error = %e, "cannot note a dead letter in the alert index");
                }
            }
            Err(e) => tracing::error!(error = %e, "alert index task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::index::tests::{alert_json, open_spool, samples};
    use crate::console::index::{feed, Retention};
    use crate::spool::NewRecord;

    /// The uuid of `alert()`.
    const UUID: &str = "00000000-0000-4000-8000-000000000007";

    fn alert() -> NewRecord {
        NewRecord {
            payload: alert_json(7, &samples()[0]),
            flags: 0,
        }
    }

    fn dead_letter() -> DeadLettered {
        DeadLettered {
            output: "hook".into(),
            uuid: UUID.into(),
            code: "http_400".into(),
            reason: "Bad Request".into(),
        }
    }

    /// Notes on a new spool and index; the directory lives as long as they do.
    fn setup() -> (tempfile::TempDir, Notes) {
        let dir = tempfile::tempdir().unwrap();
        let notes = Notes {
            spool: open_spool(dir.path()),
            index: Arc::new(
                AlertIndex::open(&dir.path().join("index.sqlite"), Retention::default()).unwrap(),
            ),
            position: Arc::default(),
        };
        (dir, notes)
    }

    impl Notes {
        /// Another handle on the same spool, index and position.
        fn clone_handles(&self) -> Notes {
            Notes {
                index: self.index.clone(),
                spool: self.spool.clone(),
                position: self.position.clone(),
            }
        }
    }

    /// Runs the index's feed until it has read the whole spool and the waiting notes are written.
    async fn index_everything(s: &Notes, backlog: &mut Backlog) {
        let stop = CancellationToken::new();
        let (live, _) = broadcast::channel(4);
        let feeding = tokio::spawn(feed::run(
            s.index.clone(),
            s.spool.clone(),
            live,
            s.position.clone(),
            stop.clone(),
        ));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while s.position.offset() < s.spool.end().offset || !backlog.notes.is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the index reads the spool"
            );
            tokio::time::sleep(RECHECK).await;
            s.write_reached(backlog).await;
        }
        stop.cancel();
        feeding.await.unwrap();
    }

    fn noted(index: &AlertIndex) -> Vec<crate::console::index::Outcome> {
        index.get(UUID).unwrap().expect("indexed").outcomes
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_letter_before_its_alert_is_indexed_is_noted_once_it_is() {
        let (_dir, s) = setup();
        s.spool.append(vec![alert()]).await.unwrap();
        let mut backlog = Backlog::default();
        s.take(dead_letter(), &mut backlog);
        s.write_reached(&mut backlog).await;
        assert_eq!(backlog.notes.len(), 1, "the index has read nothing yet");

        index_everything(&s, &mut backlog).await;
        let noted = noted(&s.index);
        assert_eq!(noted.len(), 1, "{noted:?}");
        assert_eq!(noted[0].output, "hook");
        assert_eq!(noted[0].state, "dead_lettered");
        assert_eq!(noted[0].reason, "http_400: Bad Request");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reused_uuid_is_noted_on_the_newest_alert_not_on_the_indexed_one() {
        let (_dir, s) = setup();
        let mut backlog = Backlog::default();
        s.spool.append(vec![alert()]).await.unwrap();
        index_everything(&s, &mut backlog).await;
        // The same uuid again, dead-lettered before the index has read it.
        s.spool.append(vec![alert()]).await.unwrap();
        s.take(dead_letter(), &mut backlog);
        s.write_reached(&mut backlog).await;
        assert_eq!(backlog.notes.len(), 1, "waits though a row has the uuid");
        assert!(noted(&s.index).is_empty());

        index_everything(&s, &mut backlog).await;
        let newest = s.index.get(UUID).unwrap().expect("indexed");
        assert_eq!(newest.row.seq, 1, "the second alert");
        assert_eq!(newest.outcomes.len(), 1, "{:?}", newest.outcomes);
        assert_eq!(newest.outcomes[0].state, "dead_lettered");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn notes_still_waiting_at_a_stop_are_noted_after_the_next_start() {
        let (dir, s) = setup();
        s.spool.append(vec![alert()]).await.unwrap();
        let path = dir.path().join("index.sqlite");
        let spool = s.spool.clone();

        // The index reads nothing before the stop. The dead letter comes just before it and is
        // still in the channel when the task hears of the stop.
        let (events, receiver) = broadcast::channel(4);
        let finish = CancellationToken::new();
        events.send(dead_letter()).unwrap();
        finish.cancel();
        let running = tokio::spawn(record_dead_letters(s, receiver, finish));
        tokio::time::timeout(Duration::from_secs(10), running)
            .await
            .expect("finishes")
            .unwrap();

        // The next start: a new index handle on the same file, the notes' task, the feed.
        let restarted = Notes {
            spool,
            index: Arc::new(AlertIndex::open(&path, Retention::default()).unwrap()),
            position: Arc::default(),
        };
        let index = restarted.index.clone();
        assert!(index.get(UUID).unwrap().is_none(), "not indexed before");
        let (feeding, noting) = (restarted.clone_handles(), restarted.clone_handles());
        let (_events, receiver) = broadcast::channel(4);
        let finish = CancellationToken::new();
        let running = tokio::spawn(record_dead_letters(noting, receiver, finish.clone()));
        let mut nothing_new = Backlog::default();
        index_everything(&feeding, &mut nothing_new).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while index
            .get(UUID)
            .unwrap()
            .is_none_or(|a| a.outcomes.is_empty())
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "noted after the start"
            );
            tokio::time::sleep(RECHECK).await;
        }
        finish.cancel();
        running.await.unwrap();
        let noted = noted(&index);
        assert_eq!(noted.len(), 1, "{noted:?}");
        assert_eq!(noted[0].state, "dead_lettered");
        assert_eq!(noted[0].reason, "http_400: Bad Request");
        assert!(
            index.take_pending_outcomes(MAX_WAITING).unwrap().is_empty(),
            "taken up once"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn notes_kept_from_another_spool_do_not_hold_up_new_ones() {
        let (_dir, s) = setup();
        s.spool.append(vec![alert()]).await.unwrap();
        let beyond = s.spool.end().offset + 1;
        let from_before = Waiting {
            until_offset: beyond,
            event: dead_letter(),
            at_ns: 1,
        };
        s.index
            .keep_pending_outcomes(&[from_before.into()])
            .unwrap();
        let mut backlog = s.load_kept().await;
        assert!(backlog.notes.is_empty(), "dropped at the start");
        s.take(dead_letter(), &mut backlog);
        index_everything(&s, &mut backlog).await;
        assert_eq!(noted(&s.index).len(), 1);
    }

    #[tokio::test]
    async fn a_stalled_index_keeps_the_newest_notes_within_the_bound() {
        let (_dir, s) = setup();
        s.spool.append(vec![alert()]).await.unwrap();
        let mut backlog = Backlog::default();
        for _ in 0..MAX_WAITING + 3 {
            s.take(dead_letter(), &mut backlog);
        }
        assert_eq!(backlog.notes.len(), MAX_WAITING);
        assert_eq!(backlog.dropped, 3);
    }
}
