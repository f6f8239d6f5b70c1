//! One output's durable position in the log, like a Kafka consumer offset.
//!
//! The file holds two checksummed slots written alternately, each with a generation number. A
//! write is a single small `pwrite` into the page cache, so it survives `kill -9` at once; if a
//! power loss tears a slot, the other one still holds the previous position. An older position
//! only means redelivering a few alerts, never losing one, because segments are deleted only
//! after [`CursorFile::sync`].

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::Position;

const SLOT: usize = 32;

pub struct CursorFile {
    file: File,
    generation: u64,
    position: Position,
}

impl CursorFile {
    /// Opens the cursor at `path`, or creates it at `initial` (made durable before returning, so a
    /// restart never mistakes an existing output for a new one).
    pub fn open_or_create(path: &Path, initial: Position) -> io::Result<CursorFile> {
        let exists = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if exists {
            let mut bytes = [0u8; 2 * SLOT];
            let n = file.read_at(&mut bytes, 0)?;
            let slots = [
                decode(&bytes[..n.min(SLOT)]),
                decode(bytes.get(SLOT..n).unwrap_or(&[])),
            ];
            if let Some((generation, position)) = slots.into_iter().flatten().max_by_key(|s| s.0) {
                return Ok(CursorFile {
                    file,
                    generation,
                    position,
                });
            }
            tracing::warn!(path = %path.display(), "cursor file unreadable; starting from the oldest retained alert");
            let mut cursor = CursorFile {
                file,
                generation: 0,
                position: Position::default(),
            };
            cursor.store(Position::default())?;
            cursor.sync()?;
            return Ok(cursor);
        }
        let mut cursor = CursorFile {
            file,
            generation: 0,
            position: initial,
        };
        cursor.store(initial)?;
        cursor.sync()?;
        if let Some(dir) = path.parent() {
            super::segments::sync_dir(dir)?;
        }
        Ok(cursor)
    }

    pub fn position(&self) -> Position {
        self.position
    }

    /// Records a new position (page cache only; see [`CursorFile::sync`]).
    pub fn store(&mut self, position: Position) -> io::Result<()> {
        self.generation += 1;
        let slot = (self.generation % 2) * SLOT as u64;
        self.file
            .write_at(&encode(self.generation, position), slot)?;
        self.position = position;
        Ok(())
    }

    /// A second handle for syncing from another thread without holding this one.
    pub fn sync_handle(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Makes the last stored position survive a power loss.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

fn encode(generation: u64, p: Position) -> [u8; SLOT] {
    let mut b = [0u8; SLOT];
    b[0..8].copy_from_slice(&generation.to_le_bytes());
    b[8..16].copy_from_slice(&p.offset.to_le_bytes());
    b[16..24].copy_from_slice(&p.seq.to_le_bytes());
    let crc = crc32fast::hash(&b[0..24]);
    b[24..28].copy_from_slice(&crc.to_le_bytes());
    b
}

fn decode(b: &[u8]) -> Option<(u64, Position)> {
    if b.len() < 28 {
        return None;
    }
    let crc = u32::from_le_bytes(b[24..28].try_into().ok()?);
    if crc32fast::hash(&b[0..24]) != crc {
        return None;
    }
    let generation = u64::from_le_bytes(b[0..8].try_into().ok()?);
    let offset = u64::from_le_bytes(b[8..16].try_into().ok()?);
    let seq = u64::from_le_bytes(b[16..24].try_into().ok()?);
    (generation > 0).then_some((generation, Position { offset, seq }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_position_and_survives_a_torn_slot() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.cursor");
        let mut c = CursorFile::open_or_create(&path, Position { offset: 10, seq: 1 }).unwrap();
        for i in 2..=5 {
            c.store(Position {
                offset: 10 * i,
                seq: i,
            })
            .unwrap();
        }
        drop(c);
        let c = CursorFile::open_or_create(&path, Position::default()).unwrap();
        assert_eq!(c.position(), Position { offset: 50, seq: 5 });
        drop(c);

        // Tear the newest slot (generation 5 sits in slot 1): the previous position survives.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_at(&[0xff; 4], SLOT as u64 + 8).unwrap();
        let c = CursorFile::open_or_create(&path, Position::default()).unwrap();
        assert_eq!(c.position(), Position { offset: 40, seq: 4 });
    }
}
