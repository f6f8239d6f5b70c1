//! The on-disk record: a small checksummed header and the alert's JSON.
//!
//! ```text
//! u32 payload length | u32 CRC-32 of everything after it | u64 seq | u64 accepted-at (ns) | u8 flags | payload
//! ```
//! All integers little-endian. The checksum lets recovery find the end of the last complete write
//! after a crash, and lets readers refuse a damaged record rather than deliver garbage.

pub const HEADER_LEN: usize = 4 + 4 + 8 + 8 + 1;

/// Larger than any body the gateway accepts; a length above it can only be damage.
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

/// Per-record flags.
pub mod flags {
    /// A synthetic alert from `POST /test`: delivered to every output regardless of routing.
    pub const TEST: u8 = 1;
    /// A dead letter put back by `peregrine-gateway dead-letters replay`: the payload is the
    /// target output's name, a newline, and the alert's JSON. Only that output delivers it.
    pub const REPLAY: u8 = 2;
}

/// The target output and the alert JSON of a [`flags::REPLAY`] record's payload.
pub fn split_replay(payload: &[u8]) -> Option<(&str, usize)> {
    let newline = payload.iter().position(|b| *b == b'\n')?;
    let target = std::str::from_utf8(&payload[..newline]).ok()?;
    Some((target, newline + 1))
}

/// The fixed part of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub seq: u64,
    pub accepted_at_ns: u64,
    pub flags: u8,
}

/// Appends one encoded record to `buf`.
pub fn encode(buf: &mut Vec<u8>, header: Header, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("payload fits the record format");
    let start = buf.len();
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&header.seq.to_le_bytes());
    buf.extend_from_slice(&header.accepted_at_ns.to_le_bytes());
    buf.push(header.flags);
    buf.extend_from_slice(payload);
    let crc = crc32fast::hash(&buf[start + 8..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The result of decoding at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    Record {
        header: Header,
        payload: &'a [u8],
        /// Bytes taken by the whole record.
        len: usize,
    },
    /// The buffer ends inside a record: read more, or (at the end of the log) a torn write.
    Incomplete,
    /// The bytes are not a record.
    Corrupt(&'static str),
}

pub fn decode(buf: &[u8]) -> Decoded<'_> {
    if buf.len() < HEADER_LEN {
        return Decoded::Incomplete;
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    if len > MAX_PAYLOAD {
        return Decoded::Corrupt("record length is out of range");
    }
    let total = HEADER_LEN + len;
    if buf.len() < total {
        return Decoded::Incomplete;
    }
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    if crc32fast::hash(&buf[8..total]) != crc {
        return Decoded::Corrupt("record checksum mismatch");
    }
    let header = Header {
        seq: u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes")),
        accepted_at_ns: u64::from_le_bytes(buf[16..24].try_into().expect("8 bytes")),
        flags: buf[24],
    };
    Decoded::Record {
        header,
        payload: &buf[HEADER_LEN..total],
        len: total,
    }
}

/// After damage at the start of `buf`, the next intact record: the first offset (from 1) where a
/// record decodes whole with a seq at least `min_seq`, and no larger than the records `buf`
/// could hold after it (each takes at least [`HEADER_LEN`] bytes). The seq is checked before
/// the checksum, so scanning garbage costs little; with both, a false match is out of reach.
pub fn resync(buf: &[u8], min_seq: u64) -> Option<(usize, Header)> {
    let max_seq = min_seq + (buf.len() / HEADER_LEN) as u64;
    (1..buf.len().saturating_sub(HEADER_LEN - 1)).find_map(|at| {
        let rest = &buf[at..];
        let seq = u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes"));
        if !(min_seq..=max_seq).contains(&seq) {
            return None;
        }
        match decode(rest) {
            Decoded::Record { header, .. } => Some((at, header)),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_writes() {
        let mut buf = Vec::new();
        let h = Header {
            seq: 7,
            accepted_at_ns: 42,
            flags: flags::TEST,
        };
        encode(&mut buf, h, b"{\"rule\":\"x\"}");
        match decode(&buf) {
            Decoded::Record {
                header,
                payload,
                len,
            } => {
                assert_eq!(header, h);
                assert_eq!(payload, b"{\"rule\":\"x\"}");
                assert_eq!(len, buf.len());
            }
            other => panic!("{other:?}"),
        }
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut]), Decoded::Incomplete, "cut at {cut}");
        }
        let mut damaged = buf.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert_eq!(
            decode(&damaged),
            Decoded::Corrupt("record checksum mismatch")
        );
    }

    #[test]
    fn resync_finds_the_next_intact_record_after_damage() {
        let mut buf = Vec::new();
        let mut starts = Vec::new();
        for seq in 10..15 {
            starts.push(buf.len());
            let h = Header {
                seq,
                accepted_at_ns: 1,
                flags: 0,
            };
            encode(&mut buf, h, format!("{{\"n\":{seq}}}").as_bytes());
        }
        // Flip a byte inside record 11: record 12 is the next intact one.
        buf[starts[1] + HEADER_LEN + 2] ^= 0x40;
        let (at, header) = resync(&buf[starts[1]..], 11).unwrap();
        assert_eq!((starts[1] + at, header.seq), (starts[2], 12));
        // Nothing intact after the last record's damage.
        let last = *starts.last().unwrap();
        buf[last + 3] ^= 1;
        assert_eq!(resync(&buf[last..], 14), None);
    }
}
