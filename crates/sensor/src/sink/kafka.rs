//! Alerts to a Kafka topic that gateway replicas consume as one consumer group, with the same
//! client settings (SASL, TLS) as the gateway's `kafka` output and input.

use peregrine_engine::Alert;
use peregrine_outputs::kafka::client::{client_config, Brokers, KafkaTls, Properties, Sasl};
use prometheus::IntCounter;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext, Message};

/// A Kafka topic to produce alerts to, and how to reach its brokers.
#[derive(Debug, Clone)]
pub struct KafkaTarget {
    pub brokers: Brokers,
    pub topic: String,
    pub sasl: Option<Sasl>,
    pub tls: Option<KafkaTls>,
}

impl KafkaTarget {
    /// librdkafka's settings: idempotent, so its resends after a broker failure never duplicate.
    pub fn client_config(&self) -> ClientConfig {
        client_config(
            &self.brokers,
            self.sasl.as_ref(),
            self.tls.as_ref(),
            &Properties::default(),
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "5"),
            ],
        )
    }
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

pub struct KafkaSink {
    producer: ThreadedProducer<Reports>,
    topic: String,
    dropped: IntCounter,
}

impl KafkaSink {
    pub fn new(
        target: KafkaTarget,
        dropped: IntCounter,
        failed: IntCounter,
    ) -> anyhow::Result<KafkaSink> {
        let producer = target
            .client_config()
            .create_with_context(Reports { failed })
            .map_err(|e| anyhow::anyhow!("cannot create the Kafka producer: {e}"))?;
        Ok(KafkaSink {
            producer,
            topic: target.topic,
            dropped,
        })
    }

    /// Queues `alert` (which has its uuid) in librdkafka; a full queue drops and counts.
    pub fn send(&self, alert: &Alert) {
        let payload = alert.to_json_bytes();
        let key = format!("{}|{}", alert.rule, alert.hostname.as_deref().unwrap_or(""));
        let record = BaseRecord::to(&self.topic).key(&key).payload(&payload);
        match self.producer.send(record) {
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

    /// Waits up to `timeout` for alerts still in librdkafka's queue.
    pub fn flush(&self, timeout: std::time::Duration) {
        use rdkafka::producer::Producer;
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!(error = %e, "alerts still queued for Kafka at exit");
        }
    }
}
