//! The spool: one append-only log of accepted alerts, shared by every output.
//!
//! An alert is written once, however many outputs it goes to; each output reads the log at its own
//! pace from its own [`CursorFile`], like a consumer group member reading a Kafka partition. A
//! segment file is deleted once every output's cursor has passed it.
//!
//! Why our own small log rather than a crate: what we need is narrow (append with group commit,
//! sequential reads from a position, delete whole segments) and its crash behaviour must be exactly
//! known. The maintained embedded stores (sled, redb, fjall) are key-value engines whose write
//! amplification and compaction we would pay for without using; the Rust segment-log crates we
//! found were unmaintained or tied to a server. About 500 lines, all tested here.
//!
//! Layout under `spool.dir`:
//! ```text
//! LOCK                          held while a gateway runs on this spool
//! segments/<offset>-<seq>.seg   the log (see [`record`] for the format)
//! cursors/<output>.cursor       each output's position
//! dead-letter/<output>.jsonl    alerts an output could never deliver
//! ```

mod cursor;
mod reader;
mod record;
mod segments;
mod writer;

pub use cursor::{CursorFile, CursorState};
pub use reader::{Reader, StoredRecord};
pub use record::{flags, split_replay};
pub use segments::sync_dir;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{mpsc, oneshot, watch};

/// A place in the log: a byte offset across all segments and the number of records before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub offset: u64,
    pub seq: u64,
}

#[derive(Debug, Clone)]
pub struct SpoolOptions {
    pub dir: PathBuf,
    /// Above this many bytes on disk, appends are refused (the gateway answers 503).
    pub max_bytes: u64,
    /// A new segment starts once the current one is this large.
    pub segment_bytes: u64,
}

/// One alert to append.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub payload: Vec<u8>,
    pub flags: u8,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AppendError {
    #[error("the spool is full ({used} of {max} bytes); outputs are behind")]
    Full { used: u64, max: u64 },
    #[error("the spool could not store the alerts: {0}")]
    Io(String),
    #[error("the spool is shutting down")]
    Closed,
    #[error("an alert of {0} bytes is larger than a spool record can hold (64 MiB)")]
    TooLarge(usize),
    /// An output with `on_backlog_full: block` is further behind than its `max_backlog`.
    #[error("output '{output}' is {backlog} bytes behind, more than its max_backlog ({max}); alerts are refused until it catches up")]
    OutputBehind {
        output: String,
        backlog: u64,
        max: u64,
    },
}

struct Shared {
    dir: PathBuf,
    segments_dir: PathBuf,
    /// Segment start positions by offset. The writer adds, compaction removes.
    segments: RwLock<BTreeMap<u64, Position>>,
    /// End of the durable log. Readers never read past it.
    end: watch::Sender<Position>,
    max_bytes: u64,
    /// Set when an fsync failed: after that the page cache cannot be trusted, so the spool refuses
    /// writes until a restart recovers from what is really on disk.
    failed: AtomicBool,
    /// Appends being prepared (body read, alerts validated) that will reach the writer shortly.
    /// The writer waits a moment for them so that one fsync covers them too.
    arriving: AtomicUsize,
    /// Group commits made and records they wrote, to show how well group commit batches.
    commits: AtomicU64,
    records: AtomicU64,
    /// Damaged byte ranges found (by start offset), each counted once however many readers
    /// meet it: the records they held are lost.
    corrupt: Mutex<BTreeMap<u64, u64>>,
    /// Signalled by the writer when the spool is more than half full, so that compaction runs
    /// now rather than at its next tick: a small spool can fill in less than a tick.
    pressure: tokio::sync::Notify,
    _lock: File,
}

impl Shared {
    /// Records damage at log offsets `from..to` holding `records` records, once.
    fn note_corrupt(&self, from: u64, to: u64, records: u64) {
        let mut corrupt = self.corrupt.lock().expect("corrupt lock");
        if corrupt.insert(from, records).is_none() {
            tracing::error!(
                from,
                to,
                lost_records = records,
                "damaged spool records skipped; the intact records around them are kept"
            );
        }
    }

    fn head(&self) -> Position {
        let segments = self.segments.read().expect("segments lock");
        segments.values().next().copied().unwrap_or_default()
    }
}

/// A handle on the spool. Cheap to clone.
#[derive(Clone)]
pub struct Spool {
    shared: Arc<Shared>,
    appends: mpsc::Sender<writer::AppendRequest>,
}

impl Spool {
    /// Opens (or creates) the spool, recovering from any crash, and starts its writer thread.
    pub fn open(options: &SpoolOptions) -> io::Result<Spool> {
        let segments_dir = options.dir.join("segments");
        for sub in ["segments", "cursors", "dead-letter"] {
            fs::create_dir_all(options.dir.join(sub))?;
        }
        let lock = File::create(options.dir.join("LOCK"))?;
        lock.try_lock().map_err(|_| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "spool {} is in use by another gateway",
                    options.dir.display()
                ),
            )
        })?;

        let mut found = segments::list(&segments_dir)?;
        if found.is_empty() {
            segments::create(&segments_dir, Position::default())?;
            found.insert(0, Position::default());
        }
        let last = *found.values().next_back().expect("at least one segment");
        let recovered = segments::recover_tail(&segments_dir, last)?;
        if recovered.discarded > 0 {
            tracing::warn!(
                bytes = recovered.discarded,
                "discarded an incomplete write at the end of the spool (it was never acknowledged)"
            );
        }
        let active = fs::OpenOptions::new()
            .write(true)
            .open(segments::path(&segments_dir, last))?;
        let prepared = active.metadata()?.len();

        let (end, _) = watch::channel(recovered.end);
        let shared = Arc::new(Shared {
            dir: options.dir.clone(),
            segments_dir,
            segments: RwLock::new(found),
            end,
            max_bytes: options.max_bytes,
            failed: AtomicBool::new(false),
            arriving: AtomicUsize::new(0),
            commits: AtomicU64::new(0),
            records: AtomicU64::new(0),
            corrupt: Mutex::default(),
            pressure: tokio::sync::Notify::new(),
            _lock: lock,
        });
        for d in &recovered.corrupt {
            shared.note_corrupt(d.from, d.to, d.records);
        }
        let appends = writer::start(
            shared.clone(),
            writer::ActiveSegment::new(active, recovered.end.offset - last.offset, prepared),
            options.segment_bytes,
        )?;
        Ok(Spool { shared, appends })
    }

    /// Appends records and returns once they are on disk (fsync'd), with the log's end after them.
    /// Concurrent calls share one fsync.
    pub async fn append(&self, records: Vec<NewRecord>) -> Result<Position, AppendError> {
        self.prepare_append().append(records).await
    }

    /// Announces an append that is being prepared (a request body being read and validated), so
    /// the writer waits briefly for it rather than spend an fsync on a group without it. Under
    /// load this makes groups larger; with one client nothing is announced and nothing waits.
    pub fn prepare_append(&self) -> PendingAppend<'_> {
        self.shared.arriving.fetch_add(1, Ordering::AcqRel);
        PendingAppend {
            spool: self,
            announced: true,
        }
    }

    /// Resolves when the writer found the spool more than half full (see [`Shared::pressure`]).
    pub async fn pressure(&self) {
        self.shared.pressure.notified().await
    }

    /// Records lost to damage found so far (at recovery or by readers).
    pub fn corrupt_records(&self) -> u64 {
        self.shared
            .corrupt
            .lock()
            .expect("corrupt lock")
            .values()
            .sum()
    }

    /// The end of the durable log.
    pub fn end(&self) -> Position {
        *self.shared.end.borrow()
    }

    /// The oldest record still kept.
    pub fn head(&self) -> Position {
        self.shared.head()
    }

    /// Bytes of log kept on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.end().offset - self.head().offset
    }

    pub fn segment_count(&self) -> usize {
        self.shared.segments.read().expect("segments lock").len()
    }

    /// False once a write could not be made durable.
    /// Whether the writer thread runs. When it does not (it panicked), nothing can be stored
    /// until a restart: `/healthz` says so and the gateway exits.
    pub fn writer_alive(&self) -> bool {
        !self.appends.is_closed()
    }

    /// Resolves when the writer thread has stopped.
    pub async fn writer_stopped(&self) {
        self.appends.closed().await
    }

    pub fn is_writable(&self) -> bool {
        !self.shared.failed.load(Ordering::Relaxed) && !self.appends.is_closed()
    }

    /// Group commits so far and the records they wrote.
    pub fn commit_stats(&self) -> (u64, u64) {
        (
            self.shared.commits.load(Ordering::Relaxed),
            self.shared.records.load(Ordering::Relaxed),
        )
    }

    pub fn max_bytes(&self) -> u64 {
        self.shared.max_bytes
    }

    /// A reader starting at `from` (clamped to what is still kept).
    pub fn reader(&self, from: Position) -> Reader {
        Reader::new(self.shared.clone(), from)
    }

    /// Opens an output's cursor; a new output starts at the current end of the log (like a
    /// consumer group with `auto.offset.reset=latest`): it gets alerts accepted from now on.
    /// `capacity` is the most alerts the output can have in flight.
    pub fn open_cursor(&self, output: &str, capacity: usize) -> io::Result<CursorFile> {
        CursorFile::open_or_create(&self.cursor_path(output), self.end(), capacity)
    }

    fn cursor_path(&self, output: &str) -> PathBuf {
        self.shared
            .dir
            .join("cursors")
            .join(format!("{output}.cursor"))
    }

    /// Where an output's dead letters go.
    pub fn dead_letter_path(&self, output: &str) -> PathBuf {
        self.shared
            .dir
            .join("dead-letter")
            .join(format!("{output}.jsonl"))
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Deletes every segment that lies wholly before `offset` (the smallest durable cursor).
    /// The active segment is never deleted. Returns how many segments went.
    pub fn release_before(&self, offset: u64) -> io::Result<usize> {
        let doomed: Vec<Position> = {
            let segments = self.shared.segments.read().expect("segments lock");
            let starts: Vec<Position> = segments.values().copied().collect();
            starts
                .windows(2)
                .take_while(|w| w[1].offset <= offset)
                .map(|w| w[0])
                .collect()
        };
        for start in &doomed {
            // Remove from the map first: a reader that still needs it cannot exist (its cursor is
            // past), and one that looks it up afterwards skips to the next segment.
            self.shared
                .segments
                .write()
                .expect("segments lock")
                .remove(&start.offset);
            match fs::remove_file(segments::path(&self.shared.segments_dir, *start)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(doomed.len())
    }
}

/// An append on its way (see [`Spool::prepare_append`]). Dropping it withdraws the announcement.
pub struct PendingAppend<'a> {
    spool: &'a Spool,
    announced: bool,
}

impl PendingAppend<'_> {
    pub async fn append(mut self, records: Vec<NewRecord>) -> Result<Position, AppendError> {
        if let Some(r) = records
            .iter()
            .find(|r| r.payload.len() > record::MAX_PAYLOAD)
        {
            self.withdraw();
            return Err(AppendError::TooLarge(r.payload.len()));
        }
        let (reply, answer) = oneshot::channel();
        let sent = self
            .spool
            .appends
            .send(writer::AppendRequest { records, reply })
            .await;
        self.withdraw();
        sent.map_err(|_| AppendError::Closed)?;
        answer.await.map_err(|_| AppendError::Closed)?
    }

    fn withdraw(&mut self) {
        if std::mem::take(&mut self.announced) {
            self.spool.shared.arriving.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for PendingAppend<'_> {
    fn drop(&mut self) {
        self.withdraw();
    }
}

#[cfg(test)]
mod tests;
