//! Sequential reads of the log from a position, waiting for new records at the end.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::record::{self, Decoded};
use super::segments;
use super::{Position, Shared};

/// Smallest read from disk; records are small, so one read usually yields many.
const MIN_READ: usize = 64 * 1024;

/// One record as read back.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    /// Where the record starts.
    pub position: Position,
    pub accepted_at_ns: u64,
    pub flags: u8,
    pub payload: Bytes,
}

impl StoredRecord {
    /// The position right after this record.
    pub fn next_position(&self) -> Position {
        Position {
            offset: self.position.offset + (record::HEADER_LEN + self.payload.len()) as u64,
            seq: self.position.seq + 1,
        }
    }
}

pub struct Reader {
    end: watch::Receiver<Position>,
    /// The next record to return.
    position: Position,
    /// The disk side, away while a blocking read runs.
    disk: Option<DiskReader>,
    /// A blocking read whose caller went away; its records are picked up by the next call.
    in_progress: Option<JoinHandle<(DiskReader, io::Result<Vec<StoredRecord>>)>>,
}

impl Reader {
    pub(super) fn new(shared: Arc<Shared>, from: Position) -> Self {
        let end = shared.end.subscribe();
        Reader {
            end,
            position: from,
            disk: Some(DiskReader {
                shared,
                next: from,
                open: None,
                buf: Vec::new(),
            }),
            in_progress: None,
        }
    }

    /// The position of the next record this reader will return.
    pub fn position(&self) -> Position {
        self.position
    }

    /// The end of the durable log, and a way to wait for it to move.
    pub fn watch_end(&self) -> watch::Receiver<Position> {
        self.end.clone()
    }

    /// Waits until there are records past the read position, then returns some of them (about
    /// `max_bytes` worth, at least one).
    ///
    /// Cancel-safe: if the future is dropped, no record is lost; the next call returns them.
    pub async fn read(&mut self, max_bytes: usize) -> io::Result<Vec<StoredRecord>> {
        loop {
            if let Some(running) = self.in_progress.as_mut() {
                let (disk, result) = running.await.map_err(io::Error::other)?;
                self.in_progress = None;
                self.position = disk.next;
                self.disk = Some(disk);
                let records = result?;
                if !records.is_empty() {
                    return Ok(records);
                }
                continue;
            }
            let end = *self.end.borrow_and_update();
            if self.position.offset < end.offset {
                let mut disk = self
                    .disk
                    .take()
                    .expect("disk reader is home when no read runs");
                self.in_progress = Some(tokio::task::spawn_blocking(move || {
                    let result = disk.read(end, max_bytes);
                    (disk, result)
                }));
                continue;
            }
            if self.end.changed().await.is_err() {
                // The writer is gone: nothing more will ever arrive.
                std::future::pending::<()>().await;
            }
        }
    }
}

struct DiskReader {
    shared: Arc<Shared>,
    next: Position,
    open: Option<(Position, File)>,
    buf: Vec<u8>,
}

impl DiskReader {
    /// Reads records from `self.next` up to the durable `end`, about `max_bytes` worth.
    fn read(&mut self, end: Position, max_bytes: usize) -> io::Result<Vec<StoredRecord>> {
        let mut records = Vec::new();
        let mut taken = 0usize;
        let mut need = MIN_READ;
        while self.next.offset < end.offset && (records.is_empty() || taken < max_bytes) {
            let Some((segment, segment_end)) = self.locate(end) else {
                break;
            };
            if self.next.offset < segment.offset {
                // Our position was released (a lost or stale cursor): start at the oldest kept.
                tracing::warn!(
                    from = self.next.offset,
                    to = segment.offset,
                    "read position is older than the oldest kept segment; skipping ahead"
                );
                self.next = segment;
            }
            if self.next.offset >= segment_end {
                break;
            }
            let available = (segment_end - self.next.offset) as usize;
            let want = available.min(need.max(max_bytes.saturating_sub(taken)));
            let file_offset = self.next.offset - segment.offset;
            let mut buf = std::mem::take(&mut self.buf);
            buf.resize(want, 0);
            let n = read_full_at(self.file_for(segment)?, &mut buf, file_offset);
            self.buf = buf;
            let n = n?;

            let mut at = 0usize;
            let mut damaged = false;
            while at < n && taken < max_bytes {
                match record::decode(&self.buf[at..n]) {
                    Decoded::Record {
                        header,
                        payload,
                        len,
                    } if header.seq == self.next.seq => {
                        records.push(StoredRecord {
                            position: self.next,
                            accepted_at_ns: header.accepted_at_ns,
                            flags: header.flags,
                            payload: Bytes::copy_from_slice(payload),
                        });
                        at += len;
                        taken += len;
                        self.next.offset += len as u64;
                        self.next.seq += 1;
                    }
                    // More of the segment than this read holds: read on. (A short read, the
                    // file ending before the segment does, is damage: handled below.)
                    Decoded::Incomplete if n == want && n < available => {
                        if at == 0 {
                            // A record larger than this read: read all of it next time round.
                            need = declared_len(&self.buf[..n]).unwrap_or(record::HEADER_LEN);
                        }
                        break;
                    }
                    _ => {
                        damaged = at == 0;
                        break;
                    }
                }
            }
            if damaged {
                self.skip_damage(segment, segment_end, end)?;
            }
        }
        Ok(records)
    }

    /// The segment holding `self.next` and where its readable part ends.
    fn locate(&self, end: Position) -> Option<(Position, u64)> {
        let segments = self.shared.segments.read().expect("segments lock");
        let (segment, next_start) = match segments.range(..=self.next.offset).next_back() {
            Some((_, s)) => (
                *s,
                segments.range(s.offset + 1..).next().map(|(_, n)| n.offset),
            ),
            None => {
                let first = *segments.values().next()?;
                (
                    first,
                    segments
                        .range(first.offset + 1..)
                        .next()
                        .map(|(_, n)| n.offset),
                )
            }
        };
        Some((segment, next_start.unwrap_or(end.offset).min(end.offset)))
    }

    fn file_for(&mut self, segment: Position) -> io::Result<&File> {
        if self.open.as_ref().map(|(s, _)| *s) != Some(segment) {
            let file = File::open(segments::path(&self.shared.segments_dir, segment))?;
            self.open = Some((segment, file));
        }
        Ok(&self.open.as_ref().expect("just opened").1)
    }

    /// Damage at the read position (disk corruption): skip to the next intact record of the
    /// segment (or, if none is left, to the next segment), counting what was lost, rather than
    /// stall every output forever or drop the intact records after the damage.
    fn skip_damage(
        &mut self,
        segment: Position,
        segment_end: u64,
        end: Position,
    ) -> io::Result<()> {
        let mut rest = vec![0u8; (segment_end - self.next.offset) as usize];
        let file_offset = self.next.offset - segment.offset;
        let n = read_full_at(self.file_for(segment)?, &mut rest, file_offset)?;
        let to = match record::resync(&rest[..n], self.next.seq) {
            Some((skip, header)) => Position {
                offset: self.next.offset + skip as u64,
                seq: header.seq,
            },
            None => {
                let segments = self.shared.segments.read().expect("segments lock");
                segments
                    .range(segment.offset + 1..)
                    .next()
                    .map_or(end, |(_, s)| *s)
            }
        };
        self.shared.note_corrupt(
            self.next.offset,
            to.offset,
            to.seq.saturating_sub(self.next.seq),
        );
        self.next = to;
        Ok(())
    }
}

fn declared_len(buf: &[u8]) -> Option<usize> {
    let len = u32::from_le_bytes(buf.get(0..4)?.try_into().ok()?) as usize;
    Some(record::HEADER_LEN + len.min(record::MAX_PAYLOAD))
}

fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
