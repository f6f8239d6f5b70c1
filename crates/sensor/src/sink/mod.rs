//! Where alerts go: standard output, gateways over HTTP(S) with Falco's `http_output` body, and
//! a Kafka topic that gateway replicas consume as one consumer group.
//!
//! Delivery runs off the capture path: alerts wait in a bounded in-memory queue per gateway
//! (librdkafka's own queue for Kafka), and a full queue drops (and counts) rather than slow the
//! reading of kernel records. Alerts get their uuid here, before any attempt, so a retry or a
//! redelivery carries the same id and the gateway stores it once.

mod gateway;
mod kafka;

pub use gateway::{parse_header, GatewayClient};
pub use kafka::KafkaTarget;

use std::io::Write;
use std::time::Duration;

use peregrine_engine::{Alert, AlertId};
use peregrine_outputs::secret::SecretUrl;
use prometheus::IntCounter;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use kafka::KafkaSink;

pub struct Sinks {
    stdout: bool,
    gateways: Vec<mpsc::Sender<Alert>>,
    kafka: Option<KafkaSink>,
    dropped: IntCounter,
}

/// The gateway senders' tasks, to wait for at exit.
pub struct Senders(Vec<JoinHandle<()>>);

impl Senders {
    /// Waits up to `timeout` for the senders to hand over what they hold.
    pub async fn finish(self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        for task in self.0 {
            let _ = tokio::time::timeout_at(deadline, task).await;
        }
    }
}

impl Sinks {
    /// Sinks for the given destinations; gateway senders start as tasks on the current runtime.
    pub fn new(
        stdout: bool,
        gateways: Vec<SecretUrl>,
        client: &GatewayClient,
        kafka: Option<KafkaTarget>,
        dropped: IntCounter,
        failed: IntCounter,
    ) -> anyhow::Result<(Sinks, Senders)> {
        let kafka = kafka
            .map(|t| KafkaSink::new(t, dropped.clone(), failed.clone()))
            .transpose()?;
        let (queues, tasks) = gateways
            .into_iter()
            .map(|url| gateway::spawn(url, client, failed.clone()))
            .unzip();
        Ok((
            Sinks {
                stdout,
                gateways: queues,
                kafka,
                dropped,
            },
            Senders(tasks),
        ))
    }

    /// Waits up to `timeout` for alerts still in librdkafka's queue.
    pub fn flush(&self, timeout: Duration) {
        if let Some(k) = &self.kafka {
            k.flush(timeout);
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
        if self.kafka.is_none() && self.gateways.is_empty() {
            return;
        }
        let mut alert = alert;
        alert.uuid.get_or_insert_with(AlertId::generate);
        if let Some(k) = &self.kafka {
            k.send(&alert);
        }
        for queue in &self.gateways {
            if queue.try_send(alert.clone()).is_err() {
                self.dropped.inc();
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

    use peregrine_outputs::kafka::client::Brokers;
    use rdkafka::{ClientConfig, Message};

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
            brokers: Brokers(vec![brokers.clone()]),
            topic: "falco".to_string(),
            sasl: None,
            tls: None,
        };
        let (sinks, senders) = Sinks::new(
            false,
            vec![],
            &GatewayClient::default(),
            Some(target),
            dropped.clone(),
            failed.clone(),
        )
        .unwrap();
        assert!(senders.0.is_empty());
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

    #[test]
    fn the_kafka_producer_gets_sasl_and_tls_from_the_shared_client_settings() {
        use peregrine_outputs::kafka::client::{KafkaTls, Sasl, SaslMechanism};
        use peregrine_outputs::secret::Secret;
        let target = KafkaTarget {
            brokers: Brokers(vec!["kafka-1:9093".into(), "kafka-2:9093".into()]),
            topic: "falco".into(),
            sasl: Some(Sasl {
                mechanism: SaslMechanism::ScramSha512,
                username: "sensor".into(),
                password: Secret::new("pw"),
            }),
            tls: Some(KafkaTls {
                ca_file: Some("/etc/kafka/ca.pem".into()),
                cert_file: Some("/etc/kafka/client.pem".into()),
                key_file: Some("/etc/kafka/client.key".into()),
                insecure_skip_verify: false,
            }),
        };
        let c = target.client_config();
        let get = |k: &str| c.get(k).unwrap_or_default().to_string();
        assert_eq!(get("bootstrap.servers"), "kafka-1:9093,kafka-2:9093");
        assert_eq!(get("security.protocol"), "sasl_ssl");
        assert_eq!(get("sasl.mechanism"), "SCRAM-SHA-512");
        assert_eq!(get("sasl.username"), "sensor");
        assert_eq!(get("sasl.password"), "pw");
        assert_eq!(get("ssl.ca.location"), "/etc/kafka/ca.pem");
        assert_eq!(get("ssl.certificate.location"), "/etc/kafka/client.pem");
        assert_eq!(get("ssl.key.location"), "/etc/kafka/client.key");
        assert_eq!(get("enable.idempotence"), "true");
    }
}
