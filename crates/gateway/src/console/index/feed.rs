//! Fills the index from the spool, as one more reader of the log with its own position (kept in
//! the index, in the same transaction as the alerts). It runs on the delivery runtime, below
//! ingest's priority. Compaction waits for it only while the spool is less than half full
//! ([`IndexPosition`]); past that the spool's room comes first, and an index that falls behind
//! a deleted segment skips ahead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{AlertIndex, AlertRow};
use crate::spool::{Position, Spool};

/// About how many bytes of records one transaction takes.
const READ_BYTES: usize = 1 << 20;
/// How often old alerts are trimmed.
const RETENTION_EVERY: Duration = Duration::from_secs(30);
/// The pause before reading again after a read or write failed (a segment deleted under the
/// reader, a full disk): bounded retries of a view, never a lost alert.
const AFTER_FAILURE: Duration = Duration::from_secs(1);

/// How far the index has read (a spool offset), for compaction to wait on while there is room.
#[derive(Debug, Default)]
pub struct IndexPosition(AtomicU64);

impl IndexPosition {
    /// Acquire: the alerts before it are committed to the index (dead-letter notes rely on it).
    pub fn offset(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// The offset compaction may release segments before: everything, once the spool is half
    /// full (the index is a view; the spool's room is for alerts not yet delivered).
    pub fn hold(&self, spool: &Spool) -> u64 {
        if spool.disk_bytes() >= spool.max_bytes() / 2 {
            u64::MAX
        } else {
            self.offset()
        }
    }

    fn set(&self, p: Position) {
        self.0.store(p.offset, Ordering::Release);
    }
}

/// Where to start: where the index left off, unless the spool no longer has that (compacted: the
/// oldest kept record) or never had it (a new spool: the index is cleared).
fn start_position(index: &AlertIndex, spool: &Spool) -> Position {
    let head = spool.head();
    match index.resume_position() {
        Ok(Some(p)) if p.offset > spool.end().offset => {
            tracing::warn!("the alert index is ahead of the spool (a new spool?); clearing it");
            if let Err(e) = index.clear() {
                tracing::error!(error = %e, "cannot clear the alert index");
            }
            head
        }
        Ok(Some(p)) => p.max(head),
        Ok(None) => head,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the alert index's position; reading the spool from its start");
            head
        }
    }
}

/// Reads the spool into the index until `stop`, sending each indexed alert to `live`.
pub async fn run(
    index: Arc<AlertIndex>,
    spool: Spool,
    live: broadcast::Sender<Arc<AlertRow>>,
    position: Arc<IndexPosition>,
    stop: CancellationToken,
) {
    let mut reader = spool.reader(start_position(&index, &spool));
    position.set(reader.position());
    let mut retention = tokio::time::interval(RETENTION_EVERY);
    loop {
        let records = tokio::select! {
            _ = stop.cancelled() => return,
            _ = retention.tick() => {
                trim(&index).await;
                continue;
            }
            read = reader.read(READ_BYTES) => read,
        };
        let records = match records {
            Ok(r) if r.is_empty() => continue,
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "the alert index cannot read the spool; starting again from the oldest kept record");
                pause(&stop).await;
                reader = spool.reader(start_position(&index, &spool));
                position.set(reader.position());
                continue;
            }
        };
        let next = records.last().expect("not empty").next_position();
        let idx = index.clone();
        let inserted = tokio::task::spawn_blocking(move || idx.insert(&records, next)).await;
        match inserted {
            Ok(Ok(rows)) => {
                position.set(next);
                for row in rows {
                    // No subscriber is fine: nobody is watching.
                    let _ = live.send(Arc::new(row));
                }
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot write the alert index; reading those alerts again");
                pause(&stop).await;
                reader = spool.reader(start_position(&index, &spool));
            }
            Err(e) => tracing::error!(error = %e, "alert index task failed"),
        }
    }
}

async fn pause(stop: &CancellationToken) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(AFTER_FAILURE) => {}
    }
}

async fn trim(index: &Arc<AlertIndex>) {
    let idx = index.clone();
    let now = peregrine_engine::EventTime::now().unix_nanos();
    match tokio::task::spawn_blocking(move || idx.enforce_retention(now)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::debug!(alerts = n, "alert index trimmed"),
        Ok(Err(e)) => tracing::error!(error = %e, "cannot trim the alert index"),
        Err(e) => tracing::error!(error = %e, "alert index task failed"),
    }
}
