//! One output's durable progress through the log.
//!
//! Deliveries finish out of order, so a single offset (as a Kafka consumer commits) would make a
//! restart resend every alert after the oldest unfinished one, finished or not. The cursor
//! therefore records three things: `committed` (everything before it is finished), `frontier`
//! (everything from it on is untouched) and the `outstanding` seqs in between that were still in
//! flight. After a crash exactly those are delivered again.
//!
//! The file holds a header and two checksummed slots written alternately, each with a generation
//! number. A write is a copy into the file's pages, mapped into memory (a `pwrite` on
//! copy-on-write filesystems, see [`Mapped`]): it is in the page cache at once, so it survives
//! `kill -9`, and costs no system call (a `pwrite` per finished delivery
//! was a twentieth of the gateway's CPU when webhooks drained a backlog). If a kill in the
//! middle of the copy or a power loss tears a slot, the other still holds the previous state. An
//! older state only means redelivering a few alerts, never losing one, because segments are
//! deleted only after [`CursorFile::sync`], and `fdatasync` writes mapped pages back like any
//! other.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::Position;

const MAGIC: &[u8; 8] = b"PGCURS01";
const HEADER: u64 = 16;
/// generation, committed (offset, seq), frontier (offset, seq), count.
const SLOT_FIXED: usize = 8 + 16 + 16 + 4;
const CRC: usize = 4;

/// An output's progress: see the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CursorState {
    pub committed: Position,
    pub frontier: Position,
    /// Seqs in `[committed, frontier)` not finished yet, ascending.
    pub outstanding: Vec<u64>,
}

impl CursorState {
    /// A state where nothing is in flight.
    pub fn at(position: Position) -> Self {
        CursorState {
            committed: position,
            frontier: position,
            outstanding: Vec::new(),
        }
    }
}

pub struct CursorFile {
    file: File,
    /// The file's bytes, where [`CursorFile::record`] writes; `None` on a copy-on-write
    /// filesystem (see [`Mapped`]), where it writes with `pwrite`.
    mapped: Option<Mapped>,
    slot_size: u64,
    capacity: usize,
    generation: u64,
    /// The last stored state as encoded in its slot, between the generation and the checksum.
    body: Vec<u8>,
    /// Where the next state is encoded, to compare with `body` before writing it.
    scratch: Vec<u8>,
}

impl CursorFile {
    /// Opens the cursor at `path`, or creates it at `initial` (durably, so a restart never takes
    /// an existing output for a new one). `capacity` is the most seqs that can be outstanding
    /// (in-flight limit × batch size).
    pub fn open_or_create(
        path: &Path,
        initial: Position,
        capacity: usize,
    ) -> io::Result<CursorFile> {
        let capacity = capacity.max(1);
        let slot_size = (SLOT_FIXED + 8 * capacity + CRC) as u64;
        let existing = if path.exists() {
            read_state(path)?
        } else {
            None
        };
        let (generation, state) = match existing {
            Some(found) => found,
            None if !path.exists() => (0, CursorState::at(initial)),
            None => {
                tracing::warn!(path = %path.display(), "cursor file unreadable; starting from the oldest retained alert");
                (0, CursorState::at(Position::default()))
            }
        };
        // A smaller capacity than before: resend rather than skip (see `record`).
        let mut body = Vec::new();
        encode_body(&mut body, capacity, &state);
        let file = replace(path, slot_size, generation, &body)?;
        let mapped = if copies_on_write(&file)? {
            None
        } else {
            Some(Mapped::new(&file, (HEADER + 2 * slot_size) as usize)?)
        };
        let cursor = CursorFile {
            file,
            mapped,
            slot_size,
            capacity,
            generation: generation + 2,
            body,
            scratch: Vec::new(),
        };
        Ok(cursor)
    }

    /// The last stored state.
    pub fn state(&self) -> CursorState {
        decode_body(&self.body).expect("the body was encoded here")
    }

    /// The position before which the last stored state has everything finished: the body's
    /// first two words, read without decoding the outstanding list after them.
    pub fn committed(&self) -> Position {
        body_position(&self.body, 0).expect("the body was encoded here")
    }

    /// [`CursorFile::record`] of a whole state, as the tests build them.
    #[cfg(test)]
    fn store(&mut self, state: &CursorState) -> io::Result<()> {
        self.record(state.committed, state.frontier, &state.outstanding)
            .map(|_| ())
    }

    /// Records the state `committed`, `frontier`, `outstanding` (ascending) unless it is the one
    /// stored last; returns whether it wrote. Encoded straight from the caller's seqs: with
    /// thousands of alerts waiting for retries, copying the list into a state, comparing and
    /// cloning it per finished delivery was a tenth of the gateway's CPU.
    ///
    /// Should more seqs be outstanding than the file has room for (the capacity covers the
    /// configured limits, so this is a safety net), only `committed` is kept: a crash then
    /// resends more, but never skips.
    pub fn record(
        &mut self,
        committed: Position,
        frontier: Position,
        outstanding: &[u64],
    ) -> io::Result<bool> {
        let mut next = std::mem::take(&mut self.scratch);
        encode_parts(&mut next, self.capacity, committed, frontier, outstanding);
        if next == self.body {
            self.scratch = next;
            return Ok(false);
        }
        let generation = self.generation + 1;
        let slot = HEADER + (generation % 2) * self.slot_size;
        let written = self.write_slot(slot, generation, &next);
        if let Err(e) = written {
            self.scratch = next;
            return Err(e);
        }
        self.generation = generation;
        self.scratch = std::mem::replace(&mut self.body, next);
        Ok(true)
    }

    /// Writes a slot: its generation, `body` and their checksum.
    fn write_slot(&mut self, slot: u64, generation: u64, body: &[u8]) -> io::Result<()> {
        let bytes = encode_slot(generation, body);
        match self.mapped.as_mut() {
            Some(mapped) => {
                mapped.write(slot as usize, &bytes);
                Ok(())
            }
            None => self.file.write_all_at(&bytes, slot),
        }
    }

    /// A second handle for syncing from another thread without holding this one.
    pub fn sync_handle(&self) -> io::Result<File> {
        self.file.try_clone()
    }
}

/// Whether `file` lies on a filesystem that writes every change to new blocks (btrfs, ZFS,
/// bcachefs). There a write through a mapping can need a block the full disk does not have,
/// which the kernel can only report with SIGBUS; `pwrite` reports it as an error, which the
/// worker logs and outlives.
fn copies_on_write(file: &File) -> io::Result<bool> {
    const BTRFS: i64 = 0x9123_683e;
    const ZFS: i64 = 0x2fc1_2fc1;
    const BCACHEFS: i64 = 0xca45_1a4e;
    // SAFETY: fstatfs fills the zeroed struct it is given, for a descriptor we own.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between architectures
    let kind = stat.f_type as i64;
    Ok(matches!(kind, BTRFS | ZFS | BCACHEFS))
}

/// A file's first `len` bytes mapped into memory, shared with the page cache.
///
/// Every byte of the range must have its disk blocks already ([`replace`] writes the slots out
/// whole, holes would be filled on first write): a write through the mapping that needed a new
/// block on a full disk would be a SIGBUS rather than an error. On copy-on-write filesystems,
/// where every write needs a new block, the cursor does not map its file (see
/// [`copies_on_write`]).
struct Mapped {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; it is written only through
// `&mut self`, so moving it to another thread is as safe as moving a `Vec<u8>`.
unsafe impl Send for Mapped {}

impl Mapped {
    /// Maps `file`'s first `len` bytes, which it must already have: a mapping past the end of a
    /// file faults. The cursor file is laid out whole by [`replace`] and never shrinks (a later
    /// open renames a new file over it; this mapping keeps the old one).
    fn new(file: &File, len: usize) -> io::Result<Mapped> {
        if file.metadata()?.len() < len as u64 {
            return Err(io::Error::other(
                "the cursor file is shorter than its slots",
            ));
        }
        // SAFETY: a fresh shared mapping of an open file descriptor we own, checked long enough
        // above; nothing else in this process maps or truncates the file.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(ptr.cast()).expect("mmap never maps address 0 here");
        Ok(Mapped { ptr, len })
    }

    fn write(&mut self, at: usize, bytes: &[u8]) {
        assert!(at + bytes.len() <= self.len, "a slot lies within the file");
        // SAFETY: in bounds (asserted); the mapping lives as long as `self`, and `&mut self`
        // means no other reference into it exists.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.as_ptr().add(at), bytes.len())
        };
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `Mapped::new`, unmapped once; nothing points into it.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Lays the file out afresh for `slot_size` with `state` in both slots, atomically: written to a
/// temporary file, fsync'd, renamed over `path`, and the directory fsync'd. A crash at any
/// moment leaves either the old file or the new one, never a half-written cursor (which would
/// replay the whole backlog).
fn replace(path: &Path, slot_size: u64, generation: u64, body: &[u8]) -> io::Result<File> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)?;
    let mut header = [0u8; HEADER as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8..].copy_from_slice(&slot_size.to_le_bytes());
    file.write_at(&header, 0)?;
    for g in [generation + 1, generation + 2] {
        // Whole slots, zero-padded: the file gets its blocks now (see `Mapped`).
        let mut slot = encode_slot(g, body);
        slot.resize(slot_size as usize, 0);
        file.write_at(&slot, HEADER + (g % 2) * slot_size)?;
    }
    file.sync_all()?;
    std::fs::rename(tmp, path)?;
    if let Some(dir) = path.parent() {
        super::segments::sync_dir(dir)?;
    }
    Ok(file)
}

fn read_state(path: &Path) -> io::Result<Option<(u64, CursorState)>> {
    let bytes = std::fs::read(path)?;
    if bytes.len() < HEADER as usize || &bytes[..8] != MAGIC {
        return Ok(None);
    }
    let slot_size = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
    let slot = |i: usize| {
        let start = HEADER as usize + i * slot_size;
        bytes
            .get(start..(start + slot_size).min(bytes.len()))
            .and_then(decode)
    };
    Ok([slot(0), slot(1)]
        .into_iter()
        .flatten()
        .max_by_key(|(g, _)| *g))
}

/// A whole slot: the generation, `body` and the checksum of both.
fn encode_slot(generation: u64, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + body.len() + CRC);
    b.extend_from_slice(&generation.to_le_bytes());
    b.extend_from_slice(body);
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn encode_body(b: &mut Vec<u8>, capacity: usize, s: &CursorState) {
    encode_parts(b, capacity, s.committed, s.frontier, &s.outstanding);
}

/// A slot's contents between the generation and the checksum: committed (offset, seq),
/// frontier (offset, seq), the count of outstanding seqs and the seqs. More seqs than
/// `capacity` keep only `committed` (nothing outstanding, frontier at committed): a crash then
/// resends more, but never skips.
fn encode_parts(
    b: &mut Vec<u8>,
    capacity: usize,
    committed: Position,
    frontier: Position,
    outstanding: &[u64],
) {
    let (frontier, outstanding) = if outstanding.len() > capacity {
        (committed, &[][..])
    } else {
        (frontier, outstanding)
    };
    b.clear();
    b.reserve(SLOT_FIXED - 8 + 8 * outstanding.len());
    for p in [committed, frontier] {
        b.extend_from_slice(&p.offset.to_le_bytes());
        b.extend_from_slice(&p.seq.to_le_bytes());
    }
    b.extend_from_slice(&(outstanding.len() as u32).to_le_bytes());
    for seq in outstanding {
        b.extend_from_slice(&seq.to_le_bytes());
    }
}

fn decode(b: &[u8]) -> Option<(u64, CursorState)> {
    let count = u32::from_le_bytes(b.get(40..44)?.try_into().ok()?) as usize;
    let end = SLOT_FIXED.checked_add(count.checked_mul(8)?)?;
    let crc = u32::from_le_bytes(b.get(end..end + CRC)?.try_into().ok()?);
    if crc32fast::hash(&b[..end]) != crc {
        return None;
    }
    let generation = u64::from_le_bytes(b[..8].try_into().ok()?);
    let state = decode_body(&b[8..end])?;
    (generation > 0).then_some((generation, state))
}

/// The little-endian word at byte `at` of a slot's body.
fn body_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The position at byte `at` of a slot's body: its offset, then its seq.
fn body_position(b: &[u8], at: usize) -> Option<Position> {
    Some(Position {
        offset: body_u64(b, at)?,
        seq: body_u64(b, at + 8)?,
    })
}

/// The state in a slot's body (see [`encode_body`]).
fn decode_body(b: &[u8]) -> Option<CursorState> {
    let count = u32::from_le_bytes(b.get(32..36)?.try_into().ok()?) as usize;
    Some(CursorState {
        committed: body_position(b, 0)?,
        frontier: body_position(b, 16)?,
        outstanding: (0..count)
            .map(|k| body_u64(b, 36 + 8 * k))
            .collect::<Option<_>>()?,
    })
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

    fn state(c: u64, f: u64, out: &[u64]) -> CursorState {
        CursorState {
            committed: p(c),
            frontier: p(f),
            outstanding: out.to_vec(),
        }
    }

    #[test]
    fn keeps_the_newest_state_and_survives_a_torn_slot() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.cursor");
        let mut c = CursorFile::open_or_create(&path, p(1), 4).unwrap();
        assert_eq!(c.state(), CursorState::at(p(1)));
        c.store(&state(2, 6, &[2, 4])).unwrap();
        c.store(&state(4, 9, &[4, 7, 8])).unwrap();
        assert_eq!(c.committed(), p(4), "read from the stored body alone");
        let newest_generation = c.generation;
        drop(c);
        let c = CursorFile::open_or_create(&path, Position::default(), 4).unwrap();
        assert_eq!(c.state(), state(4, 9, &[4, 7, 8]));
        drop(c);

        // Reopening wrote the state into both slots; tear the newer one and it still holds.
        let slot_size = (SLOT_FIXED + 8 * 4 + CRC) as u64;
        let newer = HEADER + ((newest_generation + 2) % 2) * slot_size;
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_at(&[0xff; 4], newer + 8).unwrap();
        let c = CursorFile::open_or_create(&path, Position::default(), 4).unwrap();
        assert_eq!(c.state(), state(4, 9, &[4, 7, 8]));
    }

    #[test]
    fn a_stored_state_is_in_the_file_at_once_without_a_sync() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.cursor");
        let mut c = CursorFile::open_or_create(&path, p(1), 4).unwrap();
        c.store(&state(3, 8, &[3, 5])).unwrap();
        // Read by another handle while `c` stays open and unsynced, as a restart after
        // `kill -9` reads it.
        assert_eq!(
            read_state(&path).unwrap().map(|(_, s)| s),
            Some(state(3, 8, &[3, 5]))
        );
        c.store(&state(5, 9, &[])).unwrap();
        assert_eq!(
            read_state(&path).unwrap().map(|(_, s)| s),
            Some(state(5, 9, &[]))
        );
    }

    #[test]
    fn the_slots_have_their_disk_blocks_before_they_are_mapped() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.cursor");
        let _c = CursorFile::open_or_create(&path, p(1), 4096).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let slot_size = (SLOT_FIXED + 8 * 4096 + CRC) as u64;
        assert_eq!(meta.len(), HEADER + 2 * slot_size);
        // No holes: a write through the mapping never needs a new block (a full disk would
        // make that a SIGBUS).
        assert!(meta.blocks() * 512 >= meta.len(), "{meta:?}");
    }

    #[test]
    fn without_a_mapping_a_state_is_written_with_pwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.cursor");
        let mut c = CursorFile::open_or_create(&path, p(1), 4).unwrap();
        c.mapped = None; // as on a copy-on-write filesystem
        c.store(&state(3, 8, &[3, 5])).unwrap();
        c.store(&state(4, 9, &[5])).unwrap();
        assert_eq!(
            read_state(&path).unwrap().map(|(_, s)| s),
            Some(state(4, 9, &[5]))
        );
    }

    #[test]
    fn a_crash_while_the_file_is_replaced_keeps_the_old_state() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.cursor");
        let mut c = CursorFile::open_or_create(&path, p(0), 4).unwrap();
        c.store(&state(5, 8, &[6])).unwrap();
        drop(c);
        // The replacement was being written when the process died: a torn temporary file.
        std::fs::write(tmp.path().join("out.cursor.tmp"), b"PGCURS01\x00\x01").unwrap();
        let c = CursorFile::open_or_create(&path, p(0), 4).unwrap();
        assert_eq!(c.state(), state(5, 8, &[6]));
        // The replacement itself never truncates the cursor in place.
        let before = std::fs::metadata(&path).unwrap();
        drop(c);
        let _c = CursorFile::open_or_create(&path, p(0), 4).unwrap();
        let after = std::fs::metadata(&path).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_ne!(
            before.ino(),
            after.ino(),
            "a new file was renamed into place"
        );
    }

    #[test]
    fn a_new_capacity_keeps_the_state() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.cursor");
        let mut c = CursorFile::open_or_create(&path, p(0), 2).unwrap();
        c.store(&state(3, 7, &[3, 5])).unwrap();
        drop(c);
        let c = CursorFile::open_or_create(&path, p(0), 1000).unwrap();
        assert_eq!(c.state(), state(3, 7, &[3, 5]));
    }

    #[test]
    fn too_many_outstanding_resends_rather_than_skips() {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = CursorFile::open_or_create(&tmp.path().join("c"), p(0), 2).unwrap();
        c.store(&state(3, 9, &[3, 5, 7])).unwrap();
        assert_eq!(c.state(), CursorState::at(p(3)));
    }

    /// Whether `s` says the alert with seq `seq` is finished (and must not be resent).
    fn finished(s: &CursorState, seq: u64) -> bool {
        seq < s.committed.seq || (seq < s.frontier.seq && !s.outstanding.contains(&seq))
    }

    #[test]
    fn damage_anywhere_in_a_cursor_file_never_skips_an_alert() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let (mut newest_kept, mut older, mut reset) = (0, 0, 0);
        for seed in 0..300u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join("out.cursor");
            let mut c = CursorFile::open_or_create(&path, p(0), 8).unwrap();
            // Progress as deliveries finish out of order: alerts are taken (the frontier moves),
            // and some of those in flight finish; a finished alert never comes back.
            let mut truth = CursorState::default();
            let (mut frontier, mut open) = (0u64, std::collections::BTreeSet::new());
            for _ in 0..rng.random_range(1..20) {
                while open.len() < 8 && rng.random_bool(0.7) {
                    open.insert(frontier);
                    frontier += 1;
                }
                open.retain(|_| rng.random_bool(0.6));
                let committed = open.first().copied().unwrap_or(frontier);
                truth = state(
                    committed,
                    frontier,
                    &open.iter().copied().collect::<Vec<_>>(),
                );
                c.store(&truth).unwrap();
            }
            drop(c);
            let len = std::fs::metadata(&path).unwrap().len();
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap();
            for _ in 0..rng.random_range(1..4) {
                if rng.random_bool(0.2) {
                    file.set_len(rng.random_range(0..len)).unwrap();
                } else {
                    let at = rng.random_range(0..len);
                    let mut byte = [0u8; 1];
                    if file.read_at(&mut byte, at).unwrap() == 1 {
                        byte[0] ^= 1 << rng.random_range(0..8);
                        file.write_at(&byte, at).unwrap();
                    }
                }
            }
            let got = CursorFile::open_or_create(&path, p(1000), 8)
                .unwrap()
                .state()
                .clone();
            for seq in 0..truth.frontier.seq + 8 {
                assert!(
                    !finished(&got, seq) || finished(&truth, seq),
                    "seed {seed}: seq {seq} would be skipped: recovered {got:?}, true {truth:?}"
                );
            }
            match &got {
                g if *g == truth => newest_kept += 1,
                g if g.committed == Position::default() && g.frontier == g.committed => reset += 1,
                _ => older += 1,
            }
        }
        println!("cursor damage over 300 seeds: newest state kept {newest_kept}, an older state {older}, unreadable (resend all retained) {reset}");
        assert!(
            newest_kept > 0 && older + reset > 0,
            "the damage reached both slots and spared them"
        );
    }
}
