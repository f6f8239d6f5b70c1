//! The Kafka output against librdkafka's mock cluster: a real Kafka protocol peer over TCP,
//! in this process, that can refuse produce requests and lose brokers on demand.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientConfig;
use serde_json::{json, Value};

use super::*;
use crate::retry::{deliver_with_retries, AttemptObserver, Outcome, PauseGate, RetryPolicy};
use crate::settings::checked;
use crate::testing::envelope;

struct Quiet;
impl AttemptObserver for Quiet {
    fn retrying(&self, _: &Failure, _: usize) {}
}

fn output(brokers: &str, extra: Value) -> KafkaOutput {
    let mut keys = json!({"brokers": brokers, "topic": "falco"});
    keys.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let c: KafkaSettings = checked(keys).unwrap();
    build(
        &c,
        BuildContext {
            name: "test".into(),
            max_in_flight: 4,
            timeout: Duration::from_secs(10),
        },
    )
}

fn alert(i: usize) -> Envelope {
    envelope(
        json!({"rule": format!("Rule {}", i % 5), "priority": "Warning", "hostname": format!("node-{}", i % 3),
        "time": "2026-06-12T09:23:10.123456789Z", "output": format!("alert {i}"), "output_fields": {"n": i}}),
    )
}

/// A consumed message: key, payload JSON, headers.
type Consumed = (String, Value, Vec<(String, String)>);

/// Every message in the topic.
fn consume_all(brokers: &str, expected: usize) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "check")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&["falco"]).unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut quiet_since = std::time::Instant::now();
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                got.push((
                    String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    serde_json::from_slice(m.payload().unwrap()).unwrap(),
                    headers,
                ));
                quiet_since = std::time::Instant::now();
            }
            _ if got.len() >= expected && quiet_since.elapsed() > Duration::from_secs(2) => break,
            _ => {}
        }
    }
    got
}

fn check_once_each(got: &[Consumed], sent: &[Envelope]) {
    let ids: Vec<String> = got
        .iter()
        .map(|(_, v, _)| v["uuid"].as_str().unwrap().to_string())
        .collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no duplicates");
    let expected: BTreeSet<String> = sent.iter().map(|e| e.id().to_string()).collect();
    assert_eq!(
        unique.into_iter().cloned().collect::<BTreeSet<_>>(),
        expected,
        "every alert"
    );
}

async fn send_all(out: &KafkaOutput, alerts: &[Envelope]) {
    let policy = RetryPolicy {
        max_attempts: 50,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        timeout: Duration::from_secs(10),
    };
    for chunk in alerts.chunks(1000) {
        let outcomes =
            deliver_with_retries(out, chunk, &policy, &PauseGate::default(), &Quiet).await;
        assert!(
            outcomes.iter().all(|o| *o == Outcome::Delivered),
            "{:?}",
            outcomes.iter().find(|o| **o != Outcome::Delivered)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_alerts_are_produced_once_each_keyed_with_headers() {
    let cluster = MockCluster::new(3).unwrap();
    cluster.create_topic("falco", 6, 3).unwrap();
    let brokers = cluster.bootstrap_servers();
    let out = output(&brokers, json!({"compression": "lz4"}));
    let alerts: Vec<Envelope> = (0..10_000).map(alert).collect();
    send_all(&out, &alerts).await;
    let got = tokio::task::spawn_blocking(move || consume_all(&brokers, 10_000))
        .await
        .unwrap();
    check_once_each(&got, &alerts);
    for (key, v, headers) in &got {
        assert_eq!(
            *key,
            format!(
                "{}|{}",
                v["rule"].as_str().unwrap(),
                v["hostname"].as_str().unwrap()
            )
        );
        assert!(headers.contains(&("uuid".to_string(), v["uuid"].as_str().unwrap().to_string())));
        assert!(headers.contains(&("priority".to_string(), "Warning".to_string())));
        assert!(headers.contains(&("rule".to_string(), v["rule"].as_str().unwrap().to_string())));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_failures_are_retried_without_loss_or_duplicates() {
    let cluster = MockCluster::new(3).unwrap();
    cluster.create_topic("falco", 3, 3).unwrap();
    for p in 0..3 {
        cluster.partition_leader("falco", p, Some(p + 1)).unwrap();
    }
    let brokers = cluster.bootstrap_servers();
    let out = output(&brokers, json!({}));
    // The next produce requests fail as a leader change would make them.
    cluster.request_errors(
        rdkafka::types::RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 20],
    );
    let alerts: Vec<Envelope> = (0..3000).map(alert).collect();
    send_all(&out, &alerts[..1000]).await;
    // The leader of partition 0 goes away mid-stream; a second later the cluster elects
    // broker 2 (the mock cluster never does this by itself). Alerts for partition 0 wait
    // and are retried meanwhile.
    cluster.broker_down(1).unwrap();
    let (first, rest) = alerts[1000..].split_at(1000);
    let sending = send_all(&out, first);
    let electing = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        cluster.partition_leader("falco", 0, Some(2)).unwrap();
    };
    tokio::join!(sending, electing);
    // The broker comes back and takes its partition back.
    cluster.broker_up(1).unwrap();
    cluster.partition_leader("falco", 0, Some(1)).unwrap();
    send_all(&out, rest).await;
    let got = tokio::task::spawn_blocking(move || consume_all(&brokers, 3000))
        .await
        .unwrap();
    check_once_each(&got, &alerts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_size_limit_is_permanent() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("falco", 1, 1).unwrap();
    let out = output(
        &cluster.bootstrap_servers(),
        json!({"librdkafka": {"message.max.bytes": "10000"}}),
    );
    let big = envelope(
        json!({"rule": "r", "priority": "Error", "time": "2026-06-12T09:23:10Z", "output": "x".repeat(20_000)}),
    );
    match out.deliver(&[big]).await {
        Delivery::Permanent(f) => assert_eq!(f.code, Some("too_large")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn keys_are_checked_and_secrets_never_print() {
    let err = |v: Value| checked::<KafkaSettings>(v).unwrap_err().to_string();
    assert!(err(json!({"brokers": "a:1", "topic": "bad topic"})).starts_with("topic:"));
    assert!(err(json!({"brokers": "a", "topic": "t"})).starts_with("brokers: 'a' is not host:port"));
    assert!(
        err(json!({"brokers": "a:1", "topic": "t", "librdkafka": {"no.such.property": "1"}}))
            .starts_with("librdkafka:")
    );
    assert!(
        err(json!({"brokers": "a:1", "topic": "t", "tls": {"ca_file": "/nonexistent.pem"}}))
            .starts_with("tls.ca_file:")
    );
    assert!(err(json!({"brokers": "a:1", "topic": "t", "sasl": {"mechanism": "GSSAPI", "username": "u", "password": "p"}})).starts_with("sasl.mechanism:"));
    let c: KafkaSettings = checked(json!({"brokers": ["k1:9092", "k2:9092"], "topic": "falco",
        "sasl": {"mechanism": "SCRAM-SHA-512", "username": "peregrine", "password": "kafka-s3cret"},
        "librdkafka": {"ssl.key.password": "other-s3cret"}}))
    .unwrap();
    let printed = format!("{c:?} {}", c.describe());
    assert!(!printed.contains("s3cret"), "{printed}");
    assert!(
        printed.contains(
            "Kafka topic falco on k1:9092,k2:9092 (SASL ScramSha512 as peregrine, password ***)"
        ),
        "{printed}"
    );
}
