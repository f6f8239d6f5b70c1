//! Where alerts go: standard output, gateways over HTTP with Falco's `http_output` body, and
//! a Kafka topic that gateway replicas consume as one consumer group.
//!
//! Delivery runs off the capture path: alerts wait in a bounded in-memory queue (librdkafka's
//! own queue for Kafka), and a full queue drops (and counts) rather than slow the reading of
//! kernel records. Alerts sent to Kafka get their uuid here, so a redelivery after a gateway
//! crash carries the same id and can be told apart.

use std::io::Write;
use std::time::Duration;

use peregrine_engine::{Alert, AlertId};
use prometheus::IntCounter;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext, Message};
use tokio::sync::mpsc;

/// Alerts waiting for the gateways.
const QUEUE: usize = 10_000;
const ATTEMPTS: u32 = 5;

/// A Kafka topic to produce alerts to.
#[derive(Debug, Clone)]
pub struct KafkaTarget {
    pub brokers: String,
    pub topic: String,
}

/// Counts the alerts whose delivery report says they were lost.
struct Reports {
    failed: IntCounter,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = result {
            self.failed.inc();
            tracing::warn!(error = %e, topic = m.topic(), "Kafka did not take an alert");
        }
    }
}

struct Kafka {
    producer: ThreadedProducer<Reports>,
    topic: String,
}

pub struct Sinks {
    stdout: bool,
    gateway: Option<mpsc::Sender<Alert>>,
    kafka: Option<Kafka>,
    dropped: IntCounter,
}

impl Sinks {
    pub fn new(
        stdout: bool,
        gateways: Vec<String>,
        kafka: Option<KafkaTarget>,
        dropped: IntCounter,
        failed: IntCounter,
    ) -> anyhow::Result<(Sinks, Option<tokio::task::JoinHandle<()>>)> {
        let kafka = match kafka {
            None => None,
            Some(t) => {
                // Idempotent: librdkafka's resends after a broker failure never duplicate.
                let producer = ClientConfig::new()
                    .set("bootstrap.servers", &t.brokers)
                    .set("enable.idempotence", "true")
                    .set("acks", "all")
                    .set("linger.ms", "5")
                    .create_with_context(Reports {
                        failed: failed.clone(),
                    })
                    .map_err(|e| anyhow::anyhow!("cannot create the Kafka producer: {e}"))?;
                Some(Kafka {
                    producer,
                    topic: t.topic,
                })
            }
        };
        if gateways.is_empty() {
            return Ok((
                Sinks {
                    stdout,
                    gateway: None,
                    kafka,
                    dropped,
                },
                None,
            ));
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(post_all(rx, gateways, failed));
        Ok((
            Sinks {
                stdout,
                gateway: Some(tx),
                kafka,
                dropped,
            },
            Some(task),
        ))
    }

    /// Waits up to `timeout` for alerts still in librdkafka's queue.
    pub fn flush(&self, timeout: Duration) {
        if let Some(k) = &self.kafka {
            use rdkafka::producer::Producer;
            if let Err(e) = k.producer.flush(timeout) {
                tracing::warn!(error = %e, "alerts still queued for Kafka at exit");
            }
        }
    }

    pub fn send(&self, alert: Alert) {
        if self.stdout {
            let mut line = alert.to_json_bytes();
            line.push(b'\n');
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&line);
            let _ = out.flush();
        }
        if let Some(k) = &self.kafka {
            let mut alert = alert.clone();
            alert.uuid.get_or_insert_with(AlertId::generate);
            let payload = alert.to_json_bytes();
            let key = format!("{}|{}", alert.rule, alert.hostname.as_deref().unwrap_or(""));
            let record = BaseRecord::to(&k.topic).key(&key).payload(&payload);
            match k.producer.send(record) {
                Ok(()) => {}
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.dropped.inc()
                }
                Err((e, _)) => {
                    self.dropped.inc();
                    tracing::warn!(error = %e, "could not queue an alert for Kafka");
                }
            }
        }
        if let Some(tx) = &self.gateway {
            if tx.try_send(alert).is_err() {
                self.dropped.inc();
            }
        }
    }
}

async fn post_all(mut rx: mpsc::Receiver<Alert>, gateways: Vec<String>, failed: IntCounter) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("HTTP client");
    while let Some(alert) = rx.recv().await {
        let body = alert.to_json_bytes();
        for url in &gateways {
            let mut delay = Duration::from_millis(100);
            let mut sent = false;
            for _ in 0..ATTEMPTS {
                let answer = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status().is_success() => {
                        sent = true;
                        break;
                    }
                    Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => break,
                    _ => {
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
            if !sent {
                failed.inc();
                tracing::warn!(rule = %alert.rule, "could not deliver an alert to a gateway");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::mocking::MockCluster;
    use serde_json::{json, Value};

    use super::*;

    fn alert(i: usize, uuid: Option<&str>) -> Alert {
        let mut v = json!({"hostname": format!("node-{}", i % 2), "output": format!("alert {i}"),
            "output_fields": {"proc.name": "sh"}, "priority": "Warning", "rule": format!("Rule {}", i % 3),
            "source": "syscall", "tags": [], "time": "2026-11-28T10:00:00.000000000Z"});
        if let Some(u) = uuid {
            v["uuid"] = json!(u);
        }
        Alert::from_json(v).unwrap()
    }

    /// key → payloads, for every message in the topic.
    fn consume(brokers: &str, topic: &str, expected: usize) -> Vec<(String, Value)> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "check")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while got.len() < expected && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                got.push((
                    String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    serde_json::from_slice(m.payload().unwrap()).unwrap(),
                ));
            }
        }
        got
    }

    #[test]
    fn alerts_reach_the_topic_keyed_with_a_uuid_each() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("falco", 3, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let dropped = IntCounter::new("dropped", "d").unwrap();
        let failed = IntCounter::new("failed", "f").unwrap();
        let target = KafkaTarget {
            brokers: brokers.clone(),
            topic: "falco".to_string(),
        };
        let (sinks, task) =
            Sinks::new(false, vec![], Some(target), dropped.clone(), failed.clone()).unwrap();
        assert!(task.is_none());
        sinks.send(alert(0, Some("given-id-0")));
        for i in 1..300 {
            sinks.send(alert(i, None));
        }
        sinks.flush(Duration::from_secs(10));
        let got = consume(&brokers, "falco", 300);
        assert_eq!(got.len(), 300);
        let mut by_id = BTreeMap::new();
        for (key, v) in &got {
            let expected_key = format!(
                "{}|{}",
                v["rule"].as_str().unwrap(),
                v["hostname"].as_str().unwrap()
            );
            assert_eq!(*key, expected_key);
            by_id.insert(
                v["uuid"]
                    .as_str()
                    .expect("every alert has a uuid")
                    .to_string(),
                v.clone(),
            );
        }
        assert_eq!(by_id.len(), 300, "ids are unique");
        assert_eq!(
            by_id["given-id-0"]["output"], "alert 0",
            "a given id is kept"
        );
        assert_eq!((dropped.get(), failed.get()), (0, 0));
    }
}
