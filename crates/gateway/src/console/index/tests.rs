//! The index on a real SQLite file, fed records as the spool stores them and, for rebuilding, by
//! a real spool.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use super::*;
use crate::spool::{NewRecord, Spool, SpoolOptions};

const SECOND: i64 = 1_000_000_000;
/// 2026-12-04T10:00:00Z.
const T0: i64 = 1_796_378_400 * SECOND;

pub(crate) struct Sample {
    priority: &'static str,
    rule: &'static str,
    host: &'static str,
    tags: &'static [&'static str],
    container: &'static str,
    output: &'static str,
}

/// An alert as Falco sends it, with uuid `00000000-0000-4000-8000-<i as 12 digits>`.
pub(crate) fn alert_json(i: u64, s: &Sample) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "uuid": format!("00000000-0000-4000-8000-{i:012}"),
        "time": peregrine_engine::EventTime::from_unix_nanos(T0 + i as i64 * SECOND).to_string(),
        "priority": s.priority,
        "rule": s.rule,
        "source": "syscall",
        "hostname": s.host,
        "tags": s.tags,
        "output": s.output,
        "output_fields": {"container.id": s.container, "container.name": format!("name-{}", s.container)},
    }))
    .unwrap()
}

fn records(samples: &[Sample]) -> (Vec<StoredRecord>, Position) {
    let mut at = Position::default();
    let mut out = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        let payload = Bytes::from(alert_json(i as u64, s));
        let r = StoredRecord {
            position: at,
            accepted_at_ns: (T0 + i as i64 * SECOND) as u64,
            flags: 0,
            payload,
        };
        at = r.next_position();
        out.push(r);
    }
    (out, at)
}

pub(crate) fn samples() -> Vec<Sample> {
    vec![
        Sample {
            priority: "Warning",
            rule: "Read sensitive file untrusted",
            host: "node-a",
            tags: &["filesystem", "mitre_credential_access"],
            container: "aaaaaaaaaaaa",
            output: "Sensitive file opened for reading (file=/etc/shadow user=root)",
        },
        Sample {
            priority: "Critical",
            rule: "Terminal shell in container",
            host: "node-b",
            tags: &["container", "shell"],
            container: "bbbbbbbbbbbb",
            output: "A shell was spawned in a container (shell=bash user=\"root\" it's; DROP TABLE alerts;--)",
        },
        Sample {
            priority: "Notice",
            rule: "Read sensitive file untrusted",
            host: "node-b",
            tags: &["filesystem"],
            container: "host",
            output: "Sensitive file opened for reading (file=/etc/sudoers user=alice)",
        },
    ]
}

fn filled() -> (tempfile::TempDir, AlertIndex) {
    let dir = tempfile::tempdir().unwrap();
    let index = AlertIndex::open(&dir.path().join("index.sqlite"), Retention::default()).unwrap();
    let (records, next) = records(&samples());
    assert_eq!(index.insert(&records, next).unwrap().len(), 3);
    (dir, index)
}

fn rules_of(rows: &[AlertRow]) -> Vec<(u64, &str)> {
    rows.iter().map(|r| (r.seq, r.priority)).collect()
}

fn query() -> Query {
    Query {
        limit: 100,
        ..Query::default()
    }
}

/// Filters and the seqs they must select, newest first.
fn filter_cases() -> Vec<(Query, Vec<u64>)> {
    vec![
        (
            Query {
                min_priority: Some(Priority::Warning),
                ..query()
            },
            vec![1, 0],
        ),
        (
            Query {
                rule: Some("Read sensitive file untrusted".into()),
                ..query()
            },
            vec![2, 0],
        ),
        (
            Query {
                hostname: Some("node-b".into()),
                ..query()
            },
            vec![2, 1],
        ),
        (
            Query {
                tag: Some("filesystem".into()),
                ..query()
            },
            vec![2, 0],
        ),
        (
            Query {
                container: Some("bbbbbbbbbbbb".into()),
                ..query()
            },
            vec![1],
        ),
        (
            Query {
                container: Some("name-host".into()),
                ..query()
            },
            vec![2],
        ),
        (
            Query {
                source: Some("k8s_audit".into()),
                ..query()
            },
            vec![],
        ),
        (
            Query {
                since_ns: Some(T0 + SECOND),
                until_ns: Some(T0 + SECOND),
                ..query()
            },
            vec![1],
        ),
        (
            Query {
                text: Some("shadow".into()),
                ..query()
            },
            vec![0],
        ),
        (
            Query {
                text: Some("sensitive READING".into()),
                ..query()
            },
            vec![2, 0],
        ),
        (
            Query {
                text: Some("/etc/sudoers".into()),
                ..query()
            },
            vec![2],
        ),
        (
            Query {
                before_seq: Some(2),
                limit: 1,
                ..query()
            },
            vec![1],
        ),
        (
            Query {
                hostname: Some("node-b".into()),
                min_priority: Some(Priority::Notice),
                tag: Some("filesystem".into()),
                ..query()
            },
            vec![2],
        ),
    ]
}

#[test]
fn filters_select_what_a_person_asks_for_newest_first() {
    let (_dir, index) = filled();
    let all = index.search(&query()).unwrap();
    assert_eq!(
        rules_of(&all),
        [(2, "Notice"), (1, "Critical"), (0, "Warning")]
    );
    assert_eq!(all[0].tags, ["filesystem"]);
    assert_eq!(all[0].container_name, "name-host");
    assert_eq!(all[2].time, "2026-12-04T10:00:00.000000000Z");

    for (q, want) in filter_cases() {
        let got: Vec<u64> = index.search(&q).unwrap().iter().map(|r| r.seq).collect();
        assert_eq!(got, want, "{q:?}");
    }
}

#[test]
fn search_text_is_never_syntax() {
    let (_dir, index) = filled();
    for hostile in [
        "\"",
        "it's",
        "DROP TABLE alerts;--",
        "shell OR NOT",
        "NEAR(a b)",
        "*",
        "output:shell",
        "'); DELETE FROM alerts; --",
        "\u{0}",
    ] {
        let q = Query {
            text: Some(hostile.into()),
            ..query()
        };
        let got = index.search(&q);
        assert!(got.is_ok(), "{hostile:?}: {got:?}");
    }
    let q = Query {
        text: Some("it's; DROP".into()),
        ..query()
    };
    assert_eq!(
        index.search(&q).unwrap().len(),
        1,
        "words with punctuation still match"
    );
    assert_eq!(index.count().unwrap(), 3, "nothing was deleted");
}

#[test]
fn an_alert_opens_with_its_fields_and_what_its_outputs_reported() {
    let (_dir, index) = filled();
    let uuid = "00000000-0000-4000-8000-000000000001";
    let reason = "channel_not_found: the channel is gone";
    let noted = index.record_outcome(uuid, "slack", "dead_lettered", reason, T0);
    assert!(noted.unwrap(), "the alert is indexed");
    let found = index.get(uuid).unwrap().expect("indexed");
    assert_eq!(found.row.rule, "Terminal shell in container");
    assert_eq!(found.alert["output_fields"]["container.id"], "bbbbbbbbbbbb");
    assert!(found.spool_offset > 0);
    assert_eq!(
        found.outcomes,
        [Outcome {
            output: "slack".into(),
            state: "dead_lettered".into(),
            reason: "channel_not_found: the channel is gone".into()
        }]
    );
    assert!(index.get("no-such-uuid").unwrap().is_none());
    assert!(
        !index
            .record_outcome("no-such-uuid", "slack", "dead_lettered", "x", T0)
            .unwrap(),
        "an alert not indexed is told apart"
    );
}

#[test]
fn replays_are_not_indexed_twice_and_the_position_is_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.sqlite");
    let (mut records, next) = records(&samples());
    records[2].flags = flags::REPLAY;
    {
        let index = AlertIndex::open(&path, Retention::default()).unwrap();
        assert_eq!(index.insert(&records, next).unwrap().len(), 2);
    }
    let index = AlertIndex::open(&path, Retention::default()).unwrap();
    assert_eq!(index.resume_position().unwrap(), Some(next));
    assert_eq!(index.count().unwrap(), 2);
}

#[test]
fn a_damaged_index_file_is_started_anew() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.sqlite");
    std::fs::write(&path, b"this is not a database, it was damaged by a crash").unwrap();
    let index = AlertIndex::open(&path, Retention::default()).unwrap();
    assert_eq!(index.count().unwrap(), 0);
    assert_eq!(index.resume_position().unwrap(), None);
}

#[test]
fn retention_drops_alerts_older_than_max_age() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention {
        max_age: Duration::from_secs(60),
        ..Retention::default()
    };
    let index = AlertIndex::open(&dir.path().join("i.sqlite"), retention).unwrap();
    let (records, next) = records(&samples());
    index.insert(&records, next).unwrap();
    // Accepted at T0, T0+1s, T0+2s: at T0+60.5s only the last two are younger than a minute.
    let removed = index
        .enforce_retention(T0 + 60 * SECOND + SECOND / 2)
        .unwrap();
    assert_eq!(removed, 1);
    let seqs: Vec<u64> = index
        .search(&query())
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, [2, 1]);
    let q = Query {
        text: Some("shadow".into()),
        ..query()
    };
    assert!(index.search(&q).unwrap().is_empty(), "its text went too");
}

#[test]
fn retention_keeps_the_file_under_max_bytes_dropping_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.sqlite");
    let retention = Retention {
        max_age: Duration::from_secs(365 * 24 * 3600),
        max_bytes: 1 << 20,
    };
    let index = AlertIndex::open(&path, retention).unwrap();
    let base = samples();
    let many: Vec<Sample> = (0..6000)
        .map(|i| {
            let s = &base[i % 3];
            Sample { ..*s }
        })
        .collect();
    let (records, next) = records(&many);
    for chunk in records.chunks(500) {
        index.insert(chunk, next).unwrap();
    }
    let before = index.used_bytes().unwrap();
    assert!(
        before > 2 << 20,
        "6000 alerts take more than 2 MiB: {before}"
    );
    let removed = index.enforce_retention(T0).unwrap();
    let after = index.used_bytes().unwrap();
    assert!(after <= 1 << 20, "{after} bytes after trimming");
    assert!(removed > 0 && removed < 6000, "{removed}");
    let newest = index
        .search(&Query {
            limit: 1,
            ..query()
        })
        .unwrap();
    assert_eq!(newest[0].seq, 5999, "the newest stay");
    let oldest_kept = 6000 - index.count().unwrap();
    assert_eq!(
        index
            .search(&Query {
                before_seq: Some(oldest_kept),
                ..query()
            })
            .unwrap(),
        [],
        "the oldest went first"
    );
    let file = std::fs::metadata(&path).unwrap().len();
    assert!(
        file <= (1 << 20) + (64 << 10),
        "the file itself shrank: {file}"
    );
}

#[test]
fn the_overview_counts_by_minute_priority_rule_and_host() {
    let (_dir, index) = filled();
    let o = index.overview(T0, 60).unwrap();
    let minute = T0 / SECOND;
    assert_eq!(
        o.series,
        [
            (minute, "Critical", 1),
            (minute, "Warning", 1),
            (minute, "Notice", 1)
        ]
    );
    assert_eq!(o.top_rules[0], ("Read sensitive file untrusted".into(), 2));
    assert_eq!(o.top_hosts[0], ("node-b".into(), 2));
    assert_eq!(o.total, 3);
    assert_eq!(index.overview(T0 + 10 * SECOND, 60).unwrap().total, 0);
}

/// A spool under `dir/spool` with room for every test.
pub(crate) fn open_spool(dir: &std::path::Path) -> Spool {
    Spool::open(&SpoolOptions {
        dir: dir.join("spool"),
        max_bytes: 1 << 30,
        segment_bytes: 1 << 20,
    })
    .unwrap()
}

/// Waits until the index holds `n` alerts.
async fn until_count(index: &AlertIndex, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while index.count().unwrap() != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "index has {} of {n}",
            index.count().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_index_is_rebuilt_from_the_spool_and_new_alerts_reach_the_live_view() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open_spool(dir.path());
    let all = samples();
    let append = |i: u64, s: &Sample| NewRecord {
        payload: alert_json(i, s),
        flags: 0,
    };
    let first: Vec<NewRecord> = all
        .iter()
        .enumerate()
        .map(|(i, s)| append(i as u64, s))
        .collect();
    spool.append(first).await.unwrap();

    let path = dir.path().join("console/index.sqlite");
    let (live, mut watching) = tokio::sync::broadcast::channel(16);
    let stop = tokio_util::sync::CancellationToken::new();
    let index = Arc::new(AlertIndex::open(&path, Retention::default()).unwrap());
    let task = tokio::spawn(feed::run(
        index.clone(),
        spool.clone(),
        live.clone(),
        Arc::default(),
        stop.clone(),
    ));
    until_count(&index, 3).await;
    stop.cancel();
    task.await.unwrap();
    drop(index);

    // The file is lost; a new index reads everything the spool still holds, then goes on live.
    std::fs::remove_file(&path).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let index = Arc::new(AlertIndex::open(&path, Retention::default()).unwrap());
    let task = tokio::spawn(feed::run(
        index.clone(),
        spool.clone(),
        live,
        Arc::default(),
        stop.clone(),
    ));
    until_count(&index, 3).await;
    for _ in 0..3 {
        watching.recv().await.unwrap();
    }
    spool.append(vec![append(3, &all[1])]).await.unwrap();
    let row = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let row = watching.recv().await.unwrap();
            if row.seq == 3 {
                return row;
            }
        }
    })
    .await
    .expect("the new alert is sent live");
    assert_eq!(row.rule, "Terminal shell in container");
    assert_eq!(index.count().unwrap(), 4);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn compaction_waits_for_the_index_only_while_the_spool_has_room() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(&SpoolOptions {
        dir: dir.path().to_path_buf(),
        max_bytes: 8192,
        segment_bytes: 1 << 20,
    })
    .unwrap();
    let position = feed::IndexPosition::default();
    assert_eq!(
        position.hold(&spool),
        0,
        "an index at the start holds everything"
    );
    let record = |n: usize| NewRecord {
        payload: vec![b'x'; n],
        flags: 0,
    };
    spool.append(vec![record(1000)]).await.unwrap();
    assert_eq!(
        position.hold(&spool),
        0,
        "an eighth full: the index is waited for"
    );
    spool
        .append(vec![record(1000), record(1000), record(1000)])
        .await
        .unwrap();
    assert!(spool.disk_bytes() >= 4096);
    assert_eq!(
        position.hold(&spool),
        u64::MAX,
        "half full: the spool's room comes first"
    );
}
