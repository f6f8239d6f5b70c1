//! The spool on a real file system.

use std::time::Duration;

use super::*;

fn options(dir: &Path, segment_bytes: u64) -> SpoolOptions {
    SpoolOptions {
        dir: dir.to_path_buf(),
        max_bytes: 1 << 30,
        segment_bytes,
    }
}

fn rec(i: usize) -> NewRecord {
    NewRecord {
        payload: format!("{{\"n\":{i}}}").into_bytes(),
        flags: 0,
    }
}

/// Polls `attempt` until it gives a value, for at most 5 seconds.
async fn within_5s<T>(what: &str, mut attempt: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(value) = attempt() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within 5 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reopens after the previous instance's writer thread let go of the lock.
async fn reopen(options: &SpoolOptions) -> Spool {
    within_5s(
        "the previous writer lets go of the lock",
        || match Spool::open(options) {
            Ok(spool) => Some(spool),
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
                None
            }
        },
    )
    .await
}

async fn read_all(reader: &mut Reader, count: usize) -> Vec<StoredRecord> {
    let mut out = Vec::new();
    while out.len() < count {
        let got = tokio::time::timeout(Duration::from_secs(5), reader.read(4096))
            .await
            .expect("records arrive")
            .unwrap();
        out.extend(got);
    }
    out
}

#[tokio::test]
async fn appended_records_read_back_in_order_across_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(&options(tmp.path(), 256)).unwrap();
    let mut reader = spool.reader(Position::default());
    for i in 0..100 {
        spool.append(vec![rec(i)]).await.unwrap();
    }
    assert!(spool.segment_count() > 5, "small segments rotate");
    let got = read_all(&mut reader, 100).await;
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.position.seq, i as u64);
        assert_eq!(r.payload, format!("{{\"n\":{i}}}").as_bytes());
    }
    assert_eq!(reader.position(), spool.end());
    assert_eq!(spool.end().seq, 100);
}

#[tokio::test]
async fn concurrent_appends_share_commits_and_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(&options(tmp.path(), 1 << 20)).unwrap();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let spool = spool.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                spool
                    .append(vec![rec(t * 1000 + i), rec(t * 1000 + i + 500)])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut reader = spool.reader(Position::default());
    let got = read_all(&mut reader, 1600).await;
    let mut payloads: Vec<_> = got.iter().map(|r| r.payload.clone()).collect();
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), 1600);
}

#[tokio::test]
async fn a_restart_keeps_every_acknowledged_record_and_cuts_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = options(tmp.path(), 300);
    let spool = Spool::open(&opts).unwrap();
    for i in 0..20 {
        spool.append(vec![rec(i)]).await.unwrap();
    }
    let end = spool.end();
    drop(spool);

    // A crash in the middle of a write leaves half a record behind.
    let last = segments::list(&tmp.path().join("segments"))
        .unwrap()
        .into_values()
        .next_back()
        .unwrap();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(segments::path(&tmp.path().join("segments"), last))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[9, 0, 0, 0, 1, 2], end.offset - last.offset)
        .unwrap();
    drop(f);

    let spool = reopen(&opts).await;
    assert_eq!(spool.end(), end);
    spool.append(vec![rec(20)]).await.unwrap();
    let got = read_all(&mut spool.reader(Position::default()), 21).await;
    assert_eq!(got.last().unwrap().payload, &b"{\"n\":20}"[..]);
    assert_eq!(got.last().unwrap().position.seq, 20);
}

/// The active segment is written ahead with zeros (so that a group commit's fsync need not
/// make a new file size durable); appends write over them, and a restart, with or without a
/// torn write among them, keeps every acknowledged record and appends right after it.
#[tokio::test]
async fn appends_write_over_the_zeros_ahead_of_them_across_restarts() {
    use std::os::unix::fs::FileExt;
    let tmp = tempfile::tempdir().unwrap();
    let opts = options(tmp.path(), 8 << 20);
    let segment = segments::path(&tmp.path().join("segments"), Position::default());
    let mut spool = Spool::open(&opts).unwrap();
    for round in 0..3 {
        for i in 0..10 {
            spool.append(vec![rec(round * 10 + i)]).await.unwrap();
        }
        let end = spool.end();
        // The zeros are written after the group is answered: wait for them.
        within_5s("zeros written at least half a megabyte ahead", || {
            let file_len = fs::metadata(&segment).unwrap().len();
            (file_len >= end.offset + (1 << 19)).then_some(())
        })
        .await;
        drop(spool);
        if round == 1 {
            // A crash in the middle of a write: half a record among the zeros.
            let file = fs::OpenOptions::new().write(true).open(&segment).unwrap();
            file.write_all_at(&[9, 0, 0, 0, 1, 2], end.offset).unwrap();
        }
        spool = reopen(&opts).await;
        assert_eq!(spool.end(), end, "round {round}");
    }
    spool.append(vec![rec(30)]).await.unwrap();
    let got = read_all(&mut spool.reader(Position::default()), 31).await;
    let payloads: Vec<_> = got.iter().map(|r| r.payload.to_vec()).collect();
    let expected: Vec<_> = (0..31).map(|i| rec(i).payload).collect();
    assert_eq!(payloads, expected);
    assert_eq!(got.last().unwrap().position.seq, 30);
}

#[tokio::test]
async fn a_full_spool_refuses_appends_and_stores_nothing_of_them() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(&SpoolOptions {
        dir: tmp.path().to_path_buf(),
        max_bytes: 200,
        segment_bytes: 1 << 20,
    })
    .unwrap();
    let mut accepted = 0;
    loop {
        match spool.append(vec![rec(accepted)]).await {
            Ok(_) => accepted += 1,
            Err(AppendError::Full { used, max }) => {
                assert!(used <= max);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(accepted > 0);
    assert_eq!(spool.end().seq, accepted as u64);
}

#[tokio::test]
async fn releasing_deletes_only_segments_every_cursor_passed() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(&options(tmp.path(), 100)).unwrap();
    for i in 0..30 {
        spool.append(vec![rec(i)]).await.unwrap();
    }
    let before = spool.segment_count();
    let got = read_all(&mut spool.reader(Position::default()), 30).await;
    let middle = got[15].position;
    let released = spool.release_before(middle.offset).unwrap();
    assert!(released > 0 && released < before);
    assert!(spool.head().offset <= middle.offset);
    // Everything from the cursor on is still readable.
    let rest = read_all(&mut spool.reader(middle), 15).await;
    assert_eq!(rest[0].position, middle);
    // A reader behind the head skips to the oldest kept record.
    let behind = read_all(&mut spool.reader(Position::default()), 1).await;
    assert_eq!(behind[0].position, spool.head());
    // The active segment is never released.
    spool.release_before(u64::MAX).unwrap();
    assert_eq!(spool.segment_count(), 1);
}

#[tokio::test]
async fn one_spool_one_gateway() {
    let tmp = tempfile::tempdir().unwrap();
    let _first = Spool::open(&options(tmp.path(), 1 << 20)).unwrap();
    let second = Spool::open(&options(tmp.path(), 1 << 20));
    assert!(second
        .err()
        .unwrap()
        .to_string()
        .contains("in use by another gateway"));
}

#[tokio::test]
async fn a_reader_waits_for_new_records() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(&options(tmp.path(), 1 << 20)).unwrap();
    let mut reader = spool.reader(spool.end());
    let waiting = tokio::spawn(async move { reader.read(4096).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished());
    spool.append(vec![rec(1)]).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 1);
}

/// What a damaged spool must still give back: every record whose bytes were not touched.
mod damage {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// Where each record lies: segment file, offset in it, length.
    struct Layout {
        records: Vec<(PathBuf, u64, u64)>,
    }

    async fn fill(opts: &SpoolOptions, rng: &mut StdRng, count: usize) -> Layout {
        let spool = Spool::open(opts).unwrap();
        for i in 0..count {
            let pad = "x".repeat(rng.random_range(0..120));
            let payload = format!("{{\"n\":{i},\"pad\":\"{pad}\"}}").into_bytes();
            spool
                .append(vec![NewRecord { payload, flags: 0 }])
                .await
                .unwrap();
        }
        let all = read_all(&mut spool.reader(Position::default()), count).await;
        let segments = spool.shared.segments.read().unwrap().clone();
        let records = all
            .iter()
            .map(|r| {
                let (_, seg) = segments.range(..=r.position.offset).next_back().unwrap();
                let path = segments::path(&spool.shared.segments_dir, *seg);
                let len = (record::HEADER_LEN + r.payload.len()) as u64;
                (path, r.position.offset - seg.offset, len)
            })
            .collect();
        drop(spool);
        Layout { records }
    }

    /// Flips bits at random places, and sometimes truncates a segment; returns which records
    /// were touched.
    fn damage(layout: &Layout, rng: &mut StdRng) -> Vec<bool> {
        let mut touched = vec![false; layout.records.len()];
        for _ in 0..rng.random_range(1..4) {
            let victim = rng.random_range(0..layout.records.len());
            let (path, start, len) = &layout.records[victim];
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .unwrap();
            if rng.random_bool(0.2) {
                // Cut the segment inside this record: it and the rest of the file are gone.
                let at = start + rng.random_range(0..*len);
                file.set_len(at).unwrap();
                for (k, (p, s, l)) in layout.records.iter().enumerate() {
                    touched[k] |= p == path && s + l > at;
                }
            } else {
                let at = start + rng.random_range(0..*len);
                let mut byte = [0u8; 1];
                use std::os::unix::fs::FileExt;
                if file.read_at(&mut byte, at).unwrap() == 1 {
                    byte[0] ^= 1 << rng.random_range(0..8);
                    file.write_at(&byte, at).unwrap();
                    touched[victim] = true;
                }
            }
        }
        touched
    }

    /// Reads from the start until the reader reaches the end of the log.
    async fn read_to_end(spool: &Spool) -> Vec<StoredRecord> {
        let mut reader = spool.reader(Position::default());
        let mut out = Vec::new();
        while reader.position() < spool.end() {
            let got = tokio::time::timeout(Duration::from_secs(5), reader.read(1 << 16))
                .await
                .expect("reading a damaged spool never stalls")
                .unwrap();
            out.extend(got);
        }
        out
    }

    #[tokio::test]
    async fn only_damaged_records_are_lost_and_they_are_counted() {
        for seed in 0..60u64 {
            let tmp = tempfile::tempdir().unwrap();
            let opts = options(tmp.path(), 2048);
            let mut rng = StdRng::seed_from_u64(seed);
            let count = 150;
            let layout = fill(&opts, &mut rng, count).await;
            let touched = damage(&layout, &mut rng);

            let spool = reopen(&opts).await;
            let got = read_to_end(&spool).await;
            let got_n: Vec<u64> = got
                .iter()
                .map(|r| {
                    let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
                    v["n"].as_u64().unwrap()
                })
                .collect();
            let intact: Vec<u64> = (0..count as u64)
                .filter(|&i| !touched[i as usize])
                .collect();
            assert_eq!(
                got_n, intact,
                "seed {seed}: every untouched record, in order"
            );
            let lost = touched.iter().filter(|t| **t).count() as u64;
            // A record cut off at the very end of the log was never there as far as the spool
            // can tell (a torn write): it is not counted as damage.
            let tail_cut = (0..count).rev().take_while(|&i| touched[i]).count() as u64;
            let counted = spool.corrupt_records();
            assert!(
                counted <= lost && counted + tail_cut >= lost,
                "seed {seed}: {counted} counted, {lost} lost, {tail_cut} at the tail"
            );
        }
    }
}

#[tokio::test]
async fn a_full_spool_of_delivered_alerts_takes_appends_again() {
    let tmp = tempfile::tempdir().unwrap();
    // A segment larger than the whole spool: without a new segment when full, the one being
    // written could never be released.
    let spool = Spool::open(&SpoolOptions {
        dir: tmp.path().to_path_buf(),
        max_bytes: 400,
        segment_bytes: 1 << 20,
    })
    .unwrap();
    let mut stored = 0;
    while spool.append(vec![rec(stored)]).await.is_ok() {
        stored += 1;
    }
    // Every output is past everything: compaction frees what it can.
    let refused = spool.append(vec![rec(stored)]).await;
    assert!(matches!(refused, Err(AppendError::Full { .. })));
    // That append started a new segment, and cut the zeros written ahead in the full one.
    let first = segments::path(&tmp.path().join("segments"), Position::default());
    assert_eq!(fs::metadata(&first).unwrap().len(), spool.end().offset);
    spool.release_before(spool.end().offset).unwrap();
    assert!(
        spool.append(vec![rec(stored)]).await.is_ok(),
        "the spool takes alerts again once its outputs caught up"
    );
}

#[tokio::test]
async fn a_dead_writer_refuses_appends_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(&options(tmp.path(), 1 << 20)).unwrap();
    spool.append(vec![rec(0)]).await.unwrap();
    assert!(spool.writer_alive() && spool.is_writable());
    let killed = spool
        .append(vec![NewRecord {
            payload: writer::tests::PANIC.to_vec(),
            flags: 0,
        }])
        .await;
    assert_eq!(killed, Err(AppendError::Closed));
    tokio::time::timeout(Duration::from_secs(5), spool.writer_stopped())
        .await
        .expect("the writer's end is noticed");
    assert!(!spool.writer_alive() && !spool.is_writable());
    assert_eq!(spool.append(vec![rec(1)]).await, Err(AppendError::Closed));
}
