//! Segment files: the log is a run of files, each named by the position of its first record.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::record::{self, Decoded};
use super::Position;

/// `segments/<offset>-<seq>.seg`: both numbers of the first record, zero-padded so that names
/// sort in log order. Carrying the seq in the name lets an empty segment know where it starts.
pub fn path(dir: &Path, start: Position) -> PathBuf {
    dir.join(format!("{:020}-{:020}.seg", start.offset, start.seq))
}

fn parse_name(name: &str) -> Option<Position> {
    let stem = name.strip_suffix(".seg")?;
    let (offset, seq) = stem.split_once('-')?;
    Some(Position {
        offset: offset.parse().ok()?,
        seq: seq.parse().ok()?,
    })
}

/// Every segment in `dir`, keyed by start offset.
pub fn list(dir: &Path) -> io::Result<BTreeMap<u64, Position>> {
    let mut found = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(start) = entry.file_name().to_str().and_then(parse_name) {
            found.insert(start.offset, start);
        }
    }
    Ok(found)
}

/// Creates an empty segment and makes its name durable.
pub fn create(dir: &Path, start: Position) -> io::Result<File> {
    let file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(path(dir, start))?;
    sync_dir(dir)?;
    Ok(file)
}

/// fsyncs a directory so that a created, renamed or deleted entry survives a power loss.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What recovery found in the last segment.
#[derive(Debug, PartialEq, Eq)]
pub struct Recovered {
    /// Position after the last complete record.
    pub end: Position,
    /// Bytes after it that were cut off: a write that never completed (its request was never
    /// answered, so nothing acknowledged is lost). The zeros the writer writes ahead of its
    /// records are not counted, and are kept when nothing else follows the last record.
    pub discarded: u64,
    /// Damaged records skipped in the middle (intact records followed them, and were kept).
    pub corrupt: Vec<Damage>,
}

/// Damaged bytes between intact records, and how many records they held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damage {
    /// Log offsets of the damaged bytes, `from..to`.
    pub from: u64,
    pub to: u64,
    pub records: u64,
}

/// Scans the last segment. Damage followed by intact records costs only the damaged records;
/// damage at the very end is a torn write and is cut off (with the zeros after it); zeros alone
/// after the last record were written ahead by the writer and stay for it to write over.
pub fn recover_tail(dir: &Path, start: Position) -> io::Result<Recovered> {
    let p = path(dir, start);
    let mut bytes = Vec::new();
    File::open(&p)?.read_to_end(&mut bytes)?;
    // The end of the last non-zero byte: after it, only zeros written ahead.
    let written = bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    let mut at = 0usize;
    let mut seq = start.seq;
    let mut corrupt = Vec::new();
    while at < bytes.len() {
        match record::decode(&bytes[at..]) {
            Decoded::Record { header, len, .. } if header.seq == seq => {
                at += len;
                seq += 1;
            }
            // Zeros written ahead, and nothing after them: the clean end. (A shortcut: resync
            // would find no record in them either, after a pass over up to a megabyte.)
            _ if at >= written => break,
            _ => match record::resync(&bytes[at..], seq) {
                Some((skip, next)) => {
                    corrupt.push(Damage {
                        from: start.offset + at as u64,
                        to: start.offset + (at + skip) as u64,
                        records: next.seq - seq,
                    });
                    at += skip;
                    seq = next.seq;
                }
                None => break,
            },
        }
    }
    let discarded = written.saturating_sub(at) as u64;
    if discarded > 0 {
        let file = OpenOptions::new().write(true).open(&p)?;
        file.set_len(at as u64)?;
        file.sync_all()?;
    }
    Ok(Recovered {
        end: Position {
            offset: start.offset + at as u64,
            seq,
        },
        discarded,
        corrupt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn names_sort_in_log_order_and_parse_back() {
        let a = Position { offset: 9, seq: 1 };
        let b = Position { offset: 10, seq: 2 };
        let dir = Path::new("/x");
        let (pa, pb) = (path(dir, a), path(dir, b));
        assert!(pa < pb);
        assert_eq!(
            parse_name(pb.file_name().unwrap().to_str().unwrap()),
            Some(b)
        );
        assert_eq!(parse_name("junk.seg"), None);
    }

    #[test]
    fn recovery_cuts_a_torn_tail() {
        let tmp = tempfile::tempdir().unwrap();
        let start = Position {
            offset: 100,
            seq: 5,
        };
        let mut file = create(tmp.path(), start).unwrap();
        let mut buf = Vec::new();
        for i in 0..3 {
            let h = record::Header {
                seq: 5 + i,
                accepted_at_ns: 0,
                flags: 0,
            };
            record::encode(&mut buf, h, b"{}");
        }
        let whole = buf.len();
        buf.extend_from_slice(&[1, 2, 3]);
        file.write_all(&buf).unwrap();
        let got = recover_tail(tmp.path(), start).unwrap();
        assert_eq!(
            got.end,
            Position {
                offset: 100 + whole as u64,
                seq: 8
            }
        );
        assert_eq!(got.discarded, 3);
        assert!(got.corrupt.is_empty());
        assert_eq!(
            fs::metadata(path(tmp.path(), start)).unwrap().len(),
            whole as u64
        );
    }

    /// The writer keeps zeros after the last record (written ahead, see the writer): they are
    /// kept and not counted; a torn write among them is cut off, and only its bytes counted.
    #[test]
    fn recovery_keeps_zeros_written_ahead_and_cuts_a_torn_write_among_them() {
        use std::os::unix::fs::FileExt;
        let tmp = tempfile::tempdir().unwrap();
        let start = Position { offset: 0, seq: 0 };
        let file = create(tmp.path(), start).unwrap();
        let mut buf = Vec::new();
        for seq in 0..3 {
            let h = record::Header {
                seq,
                accepted_at_ns: 0,
                flags: 0,
            };
            record::encode(&mut buf, h, b"{}");
        }
        let whole = buf.len() as u64;
        buf.resize(buf.len() + 1000, 0);
        file.write_all_at(&buf, 0).unwrap();
        let records_end = Position {
            offset: whole,
            seq: 3,
        };
        let file_len = || fs::metadata(path(tmp.path(), start)).unwrap().len();

        let got = recover_tail(tmp.path(), start).unwrap();
        assert_eq!((got.end, got.discarded), (records_end, 0));
        assert_eq!(
            file_len(),
            whole + 1000,
            "the zeros stay to be written over"
        );

        file.write_all_at(&[9, 0, 0, 0, 1, 2], whole).unwrap();
        let got = recover_tail(tmp.path(), start).unwrap();
        assert_eq!((got.end, got.discarded), (records_end, 6));
        assert_eq!(
            file_len(),
            whole,
            "the torn write is cut off with the zeros after it"
        );
    }
}
