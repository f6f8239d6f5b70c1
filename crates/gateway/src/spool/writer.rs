//! The spool's single writer: group commit on a dedicated thread.
//!
//! Requests queue on a channel while an fsync is in progress; the writer then takes everything
//! queued, writes it at the end of its records with one `pwrite`, makes it durable with one
//! `fdatasync`, and answers every request. Under load one fsync covers many requests, so
//! durability costs little throughput; with a single client it costs one fsync of latency, as it
//! must.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use super::record::{self, Header};
use super::segments;
use super::{AppendError, NewRecord, Position, Shared};

/// Requests waiting for the writer. Beyond this, `append` waits: back-pressure on ingest.
const QUEUE: usize = 4096;
/// Upper bound of one group's bytes, so one commit's latency stays bounded.
const MAX_GROUP_BYTES: usize = 16 * 1024 * 1024;
/// How long the writer waits for announced appends before it commits without them. An fsync
/// costs this machine about 200 µs and much CPU; a group of one under load wastes both.
///
/// The wait yields rather than sleeps: a 20 µs sleep took about 150 µs to return on these
/// virtual machines (measured with strace), longer than the appends it waits for.
const ARRIVAL_WAIT: Duration = Duration::from_micros(150);
/// How far past its records the active segment is kept written with zeros and made durable.
///
/// Why: an `fdatasync` that must also make a file's new size durable commits the filesystem's
/// journal; one that only overwrites blocks the file already has does not. On this machine's
/// ext4 that halves each group commit's fsync, in time (about 200 to 115 µs) and in CPU (90 to
/// 50 µs), measured 2026-12-07. Zeros are written a megabyte ahead, when half of that is used,
/// after the group that used it was answered, with an fsync of their own. Readers never see them
/// (they read up to the log's end), and recovery tells them from a torn write.
const PREPARE_AHEAD: u64 = 1 << 20;

pub(super) struct AppendRequest {
    pub records: Vec<NewRecord>,
    pub reply: Reply,
}

type Reply = oneshot::Sender<Result<Position, AppendError>>;

/// Answers one append. The requester may have gone (its client hung up): a durable append then
/// stays in the log and a refused one was never written, so there is no one else to tell.
fn answer(reply: Reply, result: Result<Position, AppendError>) {
    let _ = reply.send(result);
}

impl AppendRequest {
    fn encoded_len(&self) -> u64 {
        self.records
            .iter()
            .map(|r| (record::HEADER_LEN + r.payload.len()) as u64)
            .sum()
    }
}

pub(super) struct ActiveSegment {
    pub file: File,
    /// Bytes of records in the file.
    pub len: u64,
    /// Bytes of records and then of zeros written ahead of them ([`PREPARE_AHEAD`]): the file
    /// holds at least this much.
    pub prepared: u64,
    /// Writing ahead failed in this segment (a full disk): not tried again until the next one,
    /// so a full disk costs one warning, not one per group commit.
    pub ahead_failed: bool,
}

pub(super) fn start(
    shared: Arc<Shared>,
    active: ActiveSegment,
    segment_bytes: u64,
) -> io::Result<mpsc::Sender<AppendRequest>> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let mut writer = Writer {
        shared,
        active,
        segment_bytes,
        buf: Vec::with_capacity(1 << 20),
        rotate_when_full: false,
    };
    std::thread::Builder::new()
        .name("spool-writer".into())
        .spawn(move || {
            let shared = writer.shared.clone();
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| writer.run(rx)));
            if ran.is_err() {
                // The receiver is gone with the panic: appends fail, the probes say so, and the
                // gateway exits for its supervisor to restart it on what is on disk.
                shared.failed.store(true, Ordering::Relaxed);
                tracing::error!("the spool writer panicked; the spool takes no more alerts");
            }
        })?;
    Ok(tx)
}

struct Writer {
    shared: Arc<Shared>,
    active: ActiveSegment,
    segment_bytes: u64,
    buf: Vec<u8>,
    /// An append was refused as full: start a new segment before the next one.
    rotate_when_full: bool,
}

impl Writer {
    fn run(&mut self, mut rx: mpsc::Receiver<AppendRequest>) {
        while let Some(first) = rx.blocking_recv() {
            let mut group = vec![first];
            let mut group_bytes = group[0].encoded_len() as usize;
            let waiting_since = Instant::now();
            while group_bytes < MAX_GROUP_BYTES {
                match rx.try_recv() {
                    Ok(next) => {
                        group_bytes += next.encoded_len() as usize;
                        group.push(next);
                    }
                    Err(_) => {
                        let announced = self.shared.arriving.load(Ordering::Acquire) > 0;
                        if !announced || waiting_since.elapsed() >= ARRIVAL_WAIT {
                            break;
                        }
                        std::thread::yield_now();
                    }
                }
            }
            #[cfg(test)]
            if group
                .iter()
                .any(|r| r.records.iter().any(|r| r.payload == tests::PANIC))
            {
                panic!("the test asked the writer to fail");
            }
            self.commit(group);
        }
    }

    /// Writes one group of appends with one fsync and answers each request: its end position
    /// once durable, or why it was refused. Nothing is acknowledged before the fsync.
    fn commit(&mut self, group: Vec<AppendRequest>) {
        if self.shared.failed.load(Ordering::Relaxed) {
            let refusal = "an earlier write could not be made durable; restart the gateway";
            for request in group {
                answer(request.reply, Err(AppendError::Io(refusal.into())));
            }
            return;
        }
        if let Err(e) = self.rotate_if_due() {
            tracing::error!(error = %e, "could not start a new spool segment");
            for request in group {
                answer(request.reply, Err(AppendError::Io(e.to_string())));
            }
            return;
        }
        let start_end = *self.shared.end.borrow();
        let (accepted, end) = self.encode(group, start_end);
        if accepted.is_empty() {
            return;
        }
        if let Err(e) = self.write_and_sync() {
            for (reply, _) in accepted {
                answer(reply, Err(AppendError::Io(e.to_string())));
            }
            return;
        }
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        self.shared
            .records
            .fetch_add(end.seq - start_end.seq, Ordering::Relaxed);
        self.shared.end.send_replace(end);
        for (reply, end) in accepted {
            answer(reply, Ok(end));
        }
        if !self.rotate_when_full {
            self.active.prepare_ahead(self.segment_bytes);
        }
    }

    /// Starts a new segment when the active one is full, or when the spool is full and the
    /// active segment holds records (it can only be released once it is no longer active).
    fn rotate_if_due(&mut self) -> io::Result<()> {
        let full_behind_active = self.rotate_when_full && self.active.len > 0;
        if self.active.len >= self.segment_bytes || full_behind_active {
            self.rotate()?;
        }
        Ok(())
    }

    /// Encodes the requests that fit in the spool into `self.buf`, refusing the others with
    /// `Full`; returns the accepted replies with their end positions, and the new end.
    fn encode(
        &mut self,
        group: Vec<AppendRequest>,
        start_end: Position,
    ) -> (Vec<(Reply, Position)>, Position) {
        let head = self.shared.head().offset;
        let max = self.shared.max_bytes;
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut end = start_end;
        let mut accepted = Vec::with_capacity(group.len());
        self.buf.clear();
        for request in group {
            let bytes = request.encoded_len();
            let used = end.offset - head;
            if used + bytes > max {
                answer(request.reply, Err(AppendError::Full { used, max }));
                // The segment being written is never released; start another so that it can be
                // once the outputs are past it, or a spool full of delivered alerts stays full.
                self.rotate_when_full = true;
                continue;
            }
            for r in &request.records {
                let header = Header {
                    seq: end.seq,
                    accepted_at_ns: now_ns,
                    flags: r.flags,
                };
                let before = self.buf.len();
                record::encode(&mut self.buf, header, &r.payload);
                end.offset += (self.buf.len() - before) as u64;
                end.seq += 1;
            }
            accepted.push((request.reply, end));
        }
        if end.offset - head > max / 2 || self.rotate_when_full {
            self.shared.pressure.notify_one();
        }
        (accepted, end)
    }

    /// Writes `self.buf` after the active segment's records and makes it durable. A failed write
    /// is cut back off the file so the log stays a clean run of records; a failed fsync (or cut)
    /// leaves the file's state unknown, so every later write is refused until a restart.
    fn write_and_sync(&mut self) -> io::Result<()> {
        let active = &mut self.active;
        if let Err(e) = active.file.write_all_at(&self.buf, active.len) {
            tracing::error!(error = %e, "spool write failed");
            match active.file.set_len(active.len) {
                Ok(()) => active.prepared = active.len,
                Err(_) => self.shared.failed.store(true, Ordering::Relaxed),
            }
            return Err(e);
        }
        let end = active.len + self.buf.len() as u64;
        if let Err(e) = active.file.sync_data() {
            tracing::error!(error = %e, "spool fsync failed; refusing writes until restart");
            self.shared.failed.store(true, Ordering::Relaxed);
            return Err(e);
        }
        active.len = end;
        active.prepared = active.prepared.max(end);
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.active.prepared > self.active.len || self.active.ahead_failed {
            // Zeros nobody will write over (a segment closed early, the spool being full, or
            // zeros partly written before a write ahead failed). They are harmless, so a failure
            // to cut them is not one to stop for.
            match self.active.file.set_len(self.active.len) {
                Ok(()) => self.active.prepared = self.active.len,
                Err(e) => tracing::warn!(error = %e, "could not cut the zeros of a spool segment"),
            }
        }
        let start = *self.shared.end.borrow();
        let file = segments::create(&self.shared.segments_dir, start)?;
        self.shared
            .segments
            .write()
            .expect("segments lock")
            .insert(start.offset, start);
        self.active = ActiveSegment::new(file, 0, 0);
        self.rotate_when_full = false;
        Ok(())
    }
}

impl ActiveSegment {
    /// The segment being written: `file` holds `len` bytes of records and `prepared` bytes in
    /// all (records, then zeros written ahead).
    pub fn new(file: File, len: u64, prepared: u64) -> Self {
        ActiveSegment {
            file,
            len,
            prepared,
            ahead_failed: false,
        }
    }

    /// Writes zeros after the records, and makes them durable, when fewer than half of
    /// [`PREPARE_AHEAD`] are left; never past the segment's size. Best effort, with an fsync of
    /// its own: a failure (a full disk) is only logged, and later group commits cost what they
    /// did before; zeros written or not, the records are already durable. Zeros partly written
    /// before a failure stay past `prepared`, which is harmless: records overwrite them, recovery
    /// keeps zeros that alone follow the last record whether `prepared` counted them or not, and
    /// a segment closed early cuts them.
    fn prepare_ahead(&mut self, segment_bytes: u64) {
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        let end = self.len;
        if self.ahead_failed || self.prepared >= (end + PREPARE_AHEAD / 2).min(segment_bytes) {
            return;
        }
        let mut at = self.prepared.max(end);
        let to = (end + PREPARE_AHEAD).min(segment_bytes);
        let mut written = Ok(());
        while at < to && written.is_ok() {
            let n = (to - at).min(ZEROS.len() as u64) as usize;
            written = self.file.write_all_at(&ZEROS[..n], at);
            at += n as u64;
        }
        match written.and_then(|()| self.file.sync_data()) {
            Ok(()) => self.prepared = to,
            Err(e) => {
                tracing::warn!(error = %e, "could not write ahead in the spool segment");
                self.ahead_failed = true;
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    /// A payload that makes the writer thread panic, to test what happens when it dies.
    pub const PANIC: &[u8] = b"__spool_writer_panic__";

    /// A write ahead that fails (here the file is read-only; on a full disk, ENOSPC) leaves the
    /// records as they were and is not tried again in that segment.
    #[test]
    fn a_failed_write_ahead_changes_nothing_and_is_given_up_for_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        std::fs::write(&path, b"records").unwrap();
        // The handle is read-only, so every write ahead fails, as on a full disk.
        let read_only = File::open(&path).unwrap();
        let mut active = ActiveSegment::new(read_only, 7, 7);

        active.prepare_ahead(64 * PREPARE_AHEAD);
        assert!(active.ahead_failed);
        assert_eq!(active.prepared, 7);
        assert_eq!(std::fs::read(&path).unwrap(), b"records");

        // Writable again, but given up: a full disk costs one warning per segment.
        active.file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        active.prepare_ahead(64 * PREPARE_AHEAD);
        assert_eq!(active.prepared, 7);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 7);

        // A new `ActiveSegment`, as `rotate` and a restart make, tries again.
        let mut active = ActiveSegment::new(active.file, 7, 7);
        active.prepare_ahead(64 * PREPARE_AHEAD);
        assert_eq!(active.prepared, 7 + PREPARE_AHEAD);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, 7 + PREPARE_AHEAD);
        assert_eq!(&bytes[..7], b"records");
        assert!(
            bytes[7..].iter().all(|&b| b == 0),
            "only zeros after the records"
        );
        // Written, not a hole: the blocks are the point of writing ahead.
        let blocks = std::fs::metadata(&path).unwrap().blocks();
        assert!(blocks * 512 >= 7 + PREPARE_AHEAD, "{blocks} blocks");
    }
}
