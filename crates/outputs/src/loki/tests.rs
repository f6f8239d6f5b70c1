//! Loki against a local push endpoint that decodes both bodies with Loki's schema and checks
//! labels, metadata names and time order as Loki's distributor does.

use std::time::Duration;

use peregrine_fakes::{loki as fake_loki, Reply};
use serde_json::{json, Value};

use super::*;
use crate::delivery::{Delivery, ItemResult};
use crate::output::Output;
use crate::retry::{deliver_with_retries, AttemptObserver, Outcome, PauseGate, RetryPolicy};
use crate::settings::{checked, BuildContext};
use crate::testing::envelope;

fn output(keys: Value) -> LokiOutput {
    let c: LokiSettings = checked(keys).unwrap();
    build(
        &c,
        BuildContext {
            name: "test".into(),
            max_in_flight: 2,
            timeout: std::time::Duration::from_secs(5),
        },
    )
}

struct Quiet;
impl AttemptObserver for Quiet {
    fn retrying(&self, _: &crate::Failure, _: usize) {}
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        ..RetryPolicy::default()
    }
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An alert `ago` seconds old from `host`, in container `c{i % 7}`.
fn alert(i: usize, host: &str, priority: &str, ago: i64) -> crate::Envelope {
    let t =
        peregrine_engine::EventTime::from_unix_nanos((now_s() - ago) * 1_000_000_000 + i as i64);
    envelope(
        json!({"rule": format!("Rule {}", i % 5), "priority": priority, "time": t.to_string(), "hostname": host,
        "output": format!("alert {i}"), "tags": ["t1", "t2"],
        "output_fields": {"container.id": format!("c{}", i % 7), "proc.name": "cat", "k8s.ns.name": null}}),
    )
}

#[tokio::test]
async fn protobuf_streams_are_few_labelled_and_in_time_order() {
    let (fake, state) = fake_loki::start().await;
    let out = output(
        json!({"url": fake.url(""), "tenant": "security", "labels": {"env": "prod", "k8s.cluster": "eu-1"}}),
    );
    // Times out of order within each host, as several sensors' alerts interleave.
    let batch: Vec<_> = (0..300)
        .map(|i| {
            alert(
                i,
                ["node-1", "node-2", "node-3"][i % 3],
                if i % 2 == 0 { "Warning" } else { "Critical" },
                ((i * 37) % 300) as i64,
            )
        })
        .collect();
    assert_eq!(out.deliver(&batch).await, Delivery::Delivered);
    let m = &fake.messages()[0];
    assert_eq!(m.status, 204);
    assert_eq!(m.path, "/loki/api/v1/push");
    assert_eq!(m.headers["content-type"], "application/x-protobuf");
    assert_eq!(m.headers["content-encoding"], "snappy");
    assert_eq!(m.headers["x-scope-orgid"], "security");

    let s = state.lock().unwrap();
    assert_eq!(s.formats, ["protobuf"]);
    assert_eq!(s.entries.len(), 300);
    let streams: std::collections::BTreeSet<_> =
        s.entries.iter().map(|e| e.labels.clone()).collect();
    assert_eq!(streams.len(), 6, "3 hosts x 2 priorities");
    for e in &s.entries {
        let names: Vec<&str> = e.labels.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["env", "hostname", "k8s_cluster", "priority", "source"]
        );
        assert_eq!(e.labels["source"], "syscall");
        assert!(e.metadata["rule"].starts_with("Rule "));
        assert!(e.metadata["container_id"].starts_with('c'));
        assert_eq!(e.metadata["tags"], "t1,t2");
        assert_eq!(e.metadata["proc_name"], "cat");
        assert!(
            !e.metadata.contains_key("k8s_ns_name"),
            "null fields are left out"
        );
        let line: Value = serde_json::from_str(&e.line).unwrap();
        assert_eq!(
            line["uuid"], e.metadata["uuid"],
            "the line is the alert JSON with its uuid"
        );
        let t = peregrine_engine::EventTime::parse_rfc3339(line["time"].as_str().unwrap()).unwrap();
        assert_eq!(
            t.unix_nanos(),
            e.timestamp_ns,
            "stamped with the alert's own time"
        );
    }
}

#[tokio::test]
async fn json_with_gzip_and_output_lines() {
    let (fake, state) = fake_loki::start().await;
    let out = output(
        json!({"url": fake.url("/loki/api/v1/push"), "format": "json", "gzip": true, "line": "output",
        "username": "loki", "password": "pw"}),
    );
    let batch: Vec<_> = (0..20).map(|i| alert(i, "node-1", "Error", 5)).collect();
    assert_eq!(out.deliver(&batch).await, Delivery::Delivered);
    let m = &fake.messages()[0];
    assert_eq!(m.headers["content-encoding"], "gzip");
    assert_eq!(m.headers["authorization"], "Basic bG9raTpwdw==");
    let s = state.lock().unwrap();
    assert_eq!(s.formats, ["json"]);
    let mut lines: Vec<&str> = s.entries.iter().map(|e| e.line.as_str()).collect();
    lines.sort();
    assert_eq!(lines.len(), 20);
    assert!(lines.contains(&"alert 7"));
}

#[tokio::test]
async fn a_400_is_permanent_with_lokis_reason_and_a_429_is_retried() {
    let (fake, _state) = fake_loki::start().await;
    let out = output(json!({"url": fake.url("")}));
    fake.force(
        Reply::new(
            400,
            "entry for stream '{source=\"syscall\"}' has timestamp too new: 2030-01-01\n",
        ),
        1,
    );
    let got = deliver_with_retries(
        &out,
        &[alert(1, "n", "Error", 1)],
        &fast(),
        &PauseGate::default(),
        &Quiet,
    )
    .await;
    match &got[0] {
        Outcome::DeadLetter { failure, attempts } => {
            assert_eq!(*attempts, 1, "400 is not retried");
            assert_eq!(
                failure.reason,
                "entry for stream '{source=\"syscall\"}' has timestamp too new: 2030-01-01"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.messages().len(), 1);

    fake.force(fake_loki::rate_limited(), 2);
    let got = deliver_with_retries(
        &out,
        &[alert(2, "n", "Error", 1)],
        &fast(),
        &PauseGate::default(),
        &Quiet,
    )
    .await;
    assert_eq!(got, vec![Outcome::Delivered]);
    let statuses: Vec<u16> = fake.messages().iter().skip(1).map(|m| m.status).collect();
    assert_eq!(statuses, [429, 429, 204]);
}

#[tokio::test]
async fn stale_alerts_are_restamped_or_dead_lettered_by_policy() {
    let month = 30 * 24 * 3600;
    let (fake, state) = fake_loki::start().await;
    let restamp = output(json!({"url": fake.url("")}));
    let old = alert(1, "n", "Error", month);
    assert_eq!(
        restamp
            .deliver(&[old.clone(), alert(2, "n", "Error", 1)])
            .await,
        Delivery::Delivered
    );
    {
        let s = state.lock().unwrap();
        let e = s
            .entries
            .iter()
            .find(|e| e.metadata["uuid"] == old.id())
            .unwrap();
        assert!(
            e.timestamp_ns > (now_s() - 60) * 1_000_000_000,
            "stamped with the sending time"
        );
        assert_eq!(e.metadata["original_time"], old.alert().time.to_string());
    }
    let strict = output(json!({"url": fake.url(""), "stale": "dead_letter", "max_age": "24h"}));
    let day_old = alert(3, "n", "Error", 25 * 3600);
    match strict.deliver(&[alert(4, "n", "Error", 1), day_old]).await {
        Delivery::Partial(items) => {
            assert_eq!(items[0], ItemResult::Delivered);
            assert!(matches!(&items[1], ItemResult::Permanent(f) if f.code == Some("stale")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(state.lock().unwrap().entries.len(), 3);
}

#[test]
fn keys_are_checked_and_secrets_never_print() {
    let err = |v: Value| checked::<LokiSettings>(v).unwrap_err().to_string();
    assert_eq!(
        err(json!({"url": "http://127.0.0.1:3100", "tenant": "sec\nurity"})),
        "tenant: must be non-empty printable ASCII (it is sent as X-Scope-OrgID)"
    );
    let bad_token = err(json!({"url": "http://127.0.0.1:3100", "bearer_token": "s3cr3t\r\nX: y"}));
    assert_eq!(
        bad_token,
        "bearer_token: must be printable ASCII (it is sent in the Authorization header)"
    );
    assert!(
        !bad_token.contains("s3cr3t"),
        "the secret is not in the error"
    );
    let many: serde_json::Map<String, Value> =
        (0..13).map(|i| (format!("l{i}"), json!("v"))).collect();
    assert!(err(json!({"url": "http://127.0.0.1:3100", "labels": many}))
        .starts_with("labels: at most 12 static labels"));
    assert!(
        err(json!({"url": "http://127.0.0.1:3100", "labels": {"hostname": "x"}}))
            .starts_with("labels.hostname: 'hostname' is set from each alert")
    );
    assert!(
        err(json!({"url": "http://127.0.0.1:3100", "labels": {"__name__": "x"}}))
            .contains("reserved")
    );
    assert!(err(json!({"url": "http://127.0.0.1:3100", "gzip": true}))
        .starts_with("gzip: is for format: json"));
    assert!(err(json!({"url": "http://127.0.0.1:3100", "format": "xml"})).starts_with("format:"));
    assert!(err(json!({"url": "http://127.0.0.1:3100", "stale": "drop"})).starts_with("stale:"));
    assert!(err(json!({"url": "http://127.0.0.1:3100", "username": "u", "password": "p", "bearer_token": "t"})).starts_with("bearer_token: give either"));

    let c: LokiSettings = checked(json!({"url": "https://logs-prod.grafana.net/loki/api/v1/push", "username": "123456", "password": "glc_s3cr3t"})).unwrap();
    assert_eq!(
        c.push_url.expose().as_str(),
        "https://logs-prod.grafana.net/loki/api/v1/push"
    );
    let printed = format!("{c:?} {}", c.describe());
    assert!(
        !printed.contains("glc_s3cr3t") && !printed.contains("api/v1"),
        "{printed}"
    );
    assert_eq!(
        config::sanitize_label("k8s.cluster-name"),
        "k8s_cluster_name"
    );
    assert_eq!(config::sanitize_label("1st"), "_1st");
}
