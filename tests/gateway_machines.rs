//! The outputs machines read — Elasticsearch/OpenSearch and Loki — through the real gateway
//! binary: osmem-server (a real bulk/search implementation) and local peers on 127.0.0.1.

use std::collections::BTreeSet;
use std::time::Duration;

use peregrine_e2e::falco_alert;
use peregrine_e2e::gateway::GatewayProcess;
use peregrine_fakes::osmem::Osmem;
use peregrine_fakes::{elasticsearch as fake_es, loki as fake_loki};
use serde_json::Value;

fn series(metric: &str, output: &str, kind: &str) -> String {
    format!("{metric}{{output=\"{output}\",type=\"{kind}\"}}")
}

/// Alert `i` with uuid `m-{i}`, half of them just before midnight UTC and half just after.
fn alert(i: usize) -> Value {
    let mut a = falco_alert(&format!("Rule {}", i % 13), "Warning", &["t"]);
    a["uuid"] = format!("m-{i:05}").into();
    a["time"] = if i.is_multiple_of(2) {
        format!("2026-06-12T23:59:{:02}.{:09}Z", i % 60, i)
    } else {
        format!("2026-06-13T00:00:{:02}.{:09}Z", i % 60, i)
    }
    .into();
    a["hostname"] = format!("node-{}", i % 4).into();
    a["output_fields"]["container.id"] = format!("c{}", i % 50).into();
    a
}

async fn post_all(gw: &GatewayProcess, n: usize) {
    for start in (0..n).step_by(500) {
        let body: Vec<Value> = (start..(start + 500).min(n)).map(alert).collect();
        let r = gw.post(&Value::Array(body)).await;
        assert_eq!(r.status(), 200);
    }
}

/// Every `_id` in the indices matching `pattern`.
async fn ids(os: &Osmem, pattern: &str) -> BTreeSet<String> {
    let client = reqwest::Client::new();
    let _ = client
        .post(format!("{}/{pattern}/_refresh", os.url))
        .send()
        .await;
    let v: Value = client
        .get(format!(
            "{}/{pattern}/_search?size=10000&_source=false",
            os.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_alerts_reach_the_index_and_loki_once_each() {
    const N: usize = 10_000;
    let tmp = tempfile::tempdir().unwrap();
    let os = Osmem::start();
    let (loki, loki_state) = fake_loki::start().await;
    let config = format!(
        "outputs:
  - name: search
    type: elasticsearch
    url: \"{}\"
    index: falco
    gzip: true
    create_index_template: true
  - name: logs
    type: loki
    url: \"{}\"
    labels: {{ env: test }}
    batch: {{ max_events: 700, max_bytes: 512KiB, max_wait: 200ms }}
",
        os.url,
        loki.url("")
    );
    let gw = GatewayProcess::start(tmp.path(), &config).await;
    post_all(&gw, N).await;
    for (name, kind) in [("search", "elasticsearch"), ("logs", "loki")] {
        gw.wait_metric(
            &series("peregrine_output_sent_total", name, kind),
            N as f64,
            Duration::from_secs(120),
        )
        .await;
    }
    let expected: BTreeSet<String> = (0..N).map(|i| format!("m-{i:05}")).collect();

    // Elasticsearch: each uuid once, in the index of its own UTC day.
    assert_eq!(os.count("falco-2026.06.12").await, (N / 2) as u64);
    assert_eq!(os.count("falco-2026.06.13").await, (N / 2) as u64);
    assert_eq!(ids(&os, "falco-*").await, expected);
    let before = ids(&os, "falco-2026.06.12").await;
    assert!(before
        .iter()
        .all(|id| id[2..].parse::<usize>().unwrap() % 2 == 0));

    // Loki: each uuid once, few streams, bounded labels, batches within their limits.
    let s = loki_state.lock().unwrap();
    let uuids: Vec<&str> = s
        .entries
        .iter()
        .map(|e| e.metadata["uuid"].as_str())
        .collect();
    assert_eq!(uuids.len(), N);
    assert_eq!(
        uuids.iter().map(|u| u.to_string()).collect::<BTreeSet<_>>(),
        expected
    );
    let streams: BTreeSet<_> = s.entries.iter().map(|e| e.labels.clone()).collect();
    assert_eq!(streams.len(), 4, "one stream per host: {streams:?}");
    for e in &s.entries {
        assert!(e.labels.len() <= 15);
        assert!(!e.labels.contains_key("rule") && !e.labels.contains_key("container_id"));
        assert!(e.metadata.contains_key("rule") && e.metadata.contains_key("container_id"));
    }
    assert!(s
        .pushes
        .iter()
        .all(|(n, bytes)| *n <= 700 && *bytes <= 512 * 1024));
    assert!(s.pushes.len() >= N / 700);
    assert!(gw
        .logs()
        .lines()
        .all(|l| !l.contains("WARN") && !l.contains("ERROR")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_mid_stream_and_restart_leave_no_duplicate_documents() {
    const N: usize = 10_000;
    let tmp = tempfile::tempdir().unwrap();
    let os = Osmem::start();
    // Small batches so the kill lands in the middle of the stream.
    let config = format!(
        "outputs:
  - name: search
    type: elasticsearch
    url: \"{}\"
    batch: {{ max_events: 100 }}
    max_in_flight: 2
",
        os.url
    );
    let gw = GatewayProcess::start(tmp.path(), &config).await;
    post_all(&gw, N).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let at_kill = loop {
        let c = os.count("falco-*").await;
        if c >= 1000 {
            break c;
        }
        assert!(tokio::time::Instant::now() < deadline, "nothing indexed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    gw.kill9();
    assert!(at_kill < N as u64, "killed mid-stream ({at_kill} indexed)");

    let gw = GatewayProcess::start(tmp.path(), &config).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while os.count("falco-*").await < N as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not everything indexed after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gw.wait_metric(
        &series("peregrine_output_sent_total", "search", "elasticsearch"),
        1.0,
        Duration::from_secs(10),
    )
    .await;
    // Documents are created with the alert's uuid as _id: a replayed alert cannot add one.
    assert_eq!(os.count("falco-*").await, N as u64, "no duplicates");
    assert_eq!(ids(&os, "falco-*").await.len(), N);
    assert_eq!(
        gw.metric(&series(
            "peregrine_output_dead_lettered_total",
            "search",
            "elasticsearch"
        ))
        .await,
        0.0,
        "replayed documents (409) count as delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_bulk_failure_resends_only_the_failed_items() {
    let tmp = tempfile::tempdir().unwrap();
    let (es, state) = fake_es::start().await;
    {
        let mut s = state.lock().unwrap();
        for i in [3usize, 17, 42] {
            s.inject.insert(format!("m-{i:05}"), [429, 503].into());
        }
        for i in [5usize, 77] {
            s.inject.insert(format!("m-{i:05}"), [400].into());
        }
    }
    let config = format!(
        "outputs:
  - name: search
    type: elasticsearch
    url: \"{}\"
    batch: {{ max_events: 100, max_wait: 500ms }}
    retry: {{ max_attempts: 5, initial_backoff: 20ms, max_backoff: 100ms }}
",
        es.url("")
    );
    let gw = GatewayProcess::start(tmp.path(), &config).await;
    let body: Vec<Value> = (0..100).map(alert).collect();
    assert_eq!(gw.post(&Value::Array(body)).await.status(), 200);
    gw.wait_metric(
        &series("peregrine_output_sent_total", "search", "elasticsearch"),
        98.0,
        Duration::from_secs(20),
    )
    .await;
    gw.wait_metric(
        &series(
            "peregrine_output_dead_lettered_total",
            "search",
            "elasticsearch",
        ),
        2.0,
        Duration::from_secs(5),
    )
    .await;
    {
        let s = state.lock().unwrap();
        assert_eq!(s.documents.len(), 98);
        let sizes: Vec<usize> = s.requests.iter().map(|r| r.0).collect();
        assert_eq!(
            sizes,
            [100, 3, 3],
            "only the three failing items are sent again, twice"
        );
    }
    let dead = std::fs::read_to_string(tmp.path().join("spool/dead-letter/search.jsonl")).unwrap();
    let dead: Vec<Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: BTreeSet<&str> = dead
        .iter()
        .map(|d| d["alert"]["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(ids, BTreeSet::from(["m-00005", "m-00077"]));
    assert!(dead.iter().all(|d| d["status"] == 400
        && d["reason"]
            .as_str()
            .unwrap()
            .starts_with("mapper_parsing_exception: ")));
    assert_eq!(
        gw.metric("peregrine_output_dead_lettered_by_reason_total{output=\"search\",reason=\"mapper_parsing_exception\",type=\"elasticsearch\"}")
            .await,
        2.0
    );
}
