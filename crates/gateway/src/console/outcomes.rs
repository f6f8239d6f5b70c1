//! Notes each dead-lettered alert on its indexed row, with the reason.
//!
//! An output can dead-letter an alert before the index has read it: a `400` answer comes back
//! within a millisecond, while the index reads the spool in batches on the delivery runtime. A
//! note whose alert is not indexed yet therefore waits until the index has read as far as the
//! spool reached when the alert was dead-lettered, and is written then. Written too early, it
//! would change nothing and the console would show the alert as sent.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::index::feed::IndexPosition;
use super::index::AlertIndex;
use crate::deadletter::DeadLettered;
use crate::spool::Spool;

/// Notes kept waiting for the index at most; past that the oldest is dropped with a warning
/// (the dead-letter file still has the alert: the note is only the console's view).
const MAX_WAITING: usize = 10_000;
/// How often waiting notes look at how far the index has read.
const RECHECK: Duration = Duration::from_millis(50);

/// A dead letter whose alert the index had not read yet.
struct Waiting {
    /// The spool's end when the alert was dead-lettered: the alert lies before it.
    until_offset: u64,
    event: DeadLettered,
    at_ns: i64,
}

/// What the console's dead-letter notes read and write.
pub(super) struct Notes {
    pub index: Arc<AlertIndex>,
    pub spool: Spool,
    pub position: Arc<IndexPosition>,
}

/// Notes each event from `events` on its alert's row until `stop`.
pub(super) async fn record_dead_letters(
    notes: Notes,
    mut events: broadcast::Receiver<DeadLettered>,
    stop: CancellationToken,
) {
    let mut waiting = VecDeque::new();
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = recheck.tick(), if !waiting.is_empty() => notes.write_reached(&mut waiting).await,
            event = events.recv() => match event {
                Ok(event) => notes.write_or_wait(event, &mut waiting).await,
                Err(broadcast::error::RecvError::Lagged(n)) => tracing::warn!(
                    missed = n,
                    "the console missed dead-letter events; the dead-letter files still have them"
                ),
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

impl Notes {
    async fn write_or_wait(&self, event: DeadLettered, waiting: &mut VecDeque<Waiting>) {
        // Read before writing: whatever the index has not read by now, it will by this offset.
        let until_offset = self.spool.end().offset;
        let at_ns = peregrine_engine::EventTime::now().unix_nanos();
        if let Some(event) = self.write(event, at_ns).await {
            if waiting.len() == MAX_WAITING {
                tracing::warn!("too many dead letters wait for the console's index; the oldest is not noted on its alert");
                waiting.pop_front();
            }
            waiting.push_back(Waiting {
                until_offset,
                event,
                at_ns,
            });
        }
    }

    /// Writes the waiting notes the index has now read far enough for (they are in spool order).
    async fn write_reached(&self, waiting: &mut VecDeque<Waiting>) {
        let reached = self.position.offset();
        while waiting.front().is_some_and(|w| w.until_offset <= reached) {
            let w = waiting.pop_front().expect("it has a front");
            if self.write(w.event, w.at_ns).await.is_some() {
                tracing::debug!("a dead-lettered alert is not in the console's index (trimmed, or skipped when the spool was full)");
            }
        }
    }

    /// Writes the note; gives the event back if its alert is not indexed (yet).
    async fn write(&self, event: DeadLettered, at_ns: i64) -> Option<DeadLettered> {
        let index = self.index.clone();
        let written = tokio::task::spawn_blocking(move || {
            let reason = format!("{}: {}", event.code, event.reason);
            let noted =
                index.record_outcome(&event.uuid, &event.output, "dead_lettered", &reason, at_ns);
            (event, noted)
        })
        .await;
        match written {
            Ok((_, Ok(true))) => None,
            Ok((event, Ok(false))) => Some(event),
            Ok((_, Err(e))) => {
                tracing::warn!(error = %e, "cannot note a dead letter in the alert index");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "alert index task failed");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::index::{feed, Retention};
    use crate::spool::{NewRecord, SpoolOptions};

    const UUID: &str = "00000000-0000-4000-8000-000000000007";

    fn alert() -> NewRecord {
        let alert = serde_json::json!({
            "uuid": UUID,
            "time": "2026-12-07T10:00:00.000000000Z",
            "priority": "Error",
            "rule": "Write below etc",
            "source": "syscall",
            "hostname": "node-1",
            "tags": [],
            "output": "10:00:00.000000000: Error Write below etc",
            "output_fields": {},
        });
        NewRecord {
            payload: serde_json::to_vec(&alert).unwrap(),
            flags: 0,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_letter_before_its_alert_is_indexed_is_noted_once_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&SpoolOptions {
            dir: dir.path().join("spool"),
            max_bytes: 1 << 30,
            segment_bytes: 1 << 20,
        })
        .unwrap();
        spool.append(vec![alert()]).await.unwrap();
        let index = Arc::new(
            AlertIndex::open(&dir.path().join("index.sqlite"), Retention::default()).unwrap(),
        );
        let position = Arc::new(IndexPosition::default());
        let notes = Notes {
            index: index.clone(),
            spool: spool.clone(),
            position: position.clone(),
        };
        let event = DeadLettered {
            output: "hook".into(),
            uuid: UUID.into(),
            code: "http_400".into(),
            reason: "Bad Request".into(),
        };
        let mut waiting = VecDeque::new();
        notes.write_or_wait(event, &mut waiting).await;
        assert_eq!(waiting.len(), 1, "the index has read nothing yet");
        notes.write_reached(&mut waiting).await;
        assert_eq!(waiting.len(), 1, "still nothing read");

        let stop = CancellationToken::new();
        let (live, _) = broadcast::channel(4);
        let feeding = tokio::spawn(feed::run(
            index.clone(),
            spool,
            live,
            position,
            stop.clone(),
        ));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !waiting.is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the index reads the alert"
            );
            tokio::time::sleep(RECHECK).await;
            notes.write_reached(&mut waiting).await;
        }
        let noted = index.get(UUID).unwrap().expect("indexed").outcomes;
        assert_eq!(noted.len(), 1, "{noted:?}");
        assert_eq!(noted[0].output, "hook");
        assert_eq!(noted[0].state, "dead_lettered");
        assert_eq!(noted[0].reason, "http_400: Bad Request");
        stop.cancel();
        feeding.await.unwrap();
    }
}
