//! `type: kafka` — alerts produced to a Kafka topic with librdkafka (bundled).
//!
//! The producer is idempotent (`enable.idempotence=true` with `acks=all`), so librdkafka's own
//! resends after a broker failure never duplicate a message. An alert counts as delivered only
//! when its delivery report says so; the output's `timeout` bounds librdkafka's
//! `message.timeout.ms`, so a message is never still in flight inside librdkafka when the retry
//! core gives up on the attempt and sends it again. A full local queue is back-pressure: the
//! output waits for room instead of failing.

pub mod client;
mod config;

pub use config::{Acks, Compression, KafkaConfig, KafkaSettings, DEFAULT_BATCH};

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use crate::delivery::{Delivery, Failure, ItemResult};
use crate::envelope::Envelope;
use crate::fingerprint::KeyTemplate;
use crate::output::{BatchLimits, Output};
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub struct KafkaOutput {
    producer: FutureProducer,
    topic: String,
    key: KeyTemplate,
    headers: bool,
    limits: BatchLimits,
}

/// The producer's settings; `attempt` is the retry core's per-attempt timeout.
pub fn producer_config(c: &KafkaConfig, attempt: Duration) -> ClientConfig {
    let acks = match c.acks {
        Acks::All => "all",
        Acks::Leader => "1",
        Acks::None => "0",
    };
    // Leave a margin inside the attempt for the delivery report to come back.
    let message_timeout = attempt
        .saturating_sub(Duration::from_millis(500))
        .max(Duration::from_secs(1));
    let message_timeout = message_timeout.as_millis().to_string();
    let idempotent = if c.acks == Acks::All { "true" } else { "false" };
    client::client_config(
        &c.brokers,
        c.sasl.as_ref(),
        c.tls.as_ref(),
        &c.librdkafka,
        &[
            ("enable.idempotence", idempotent),
            ("acks", acks),
            ("compression.type", c.compression.as_str()),
            ("message.timeout.ms", &message_timeout),
            ("linger.ms", "5"),
        ],
    )
}

pub const TYPE: OutputType = OutputType::new::<KafkaSettings>("kafka", Audience::Systems);

impl OutputSettings for KafkaSettings {
    type Keys = KafkaConfig;

    fn check(keys: KafkaConfig) -> Result<Self, SettingsError> {
        KafkaSettings::from_keys(keys)
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(build(self, ctx))
    }

    fn describe(&self) -> String {
        KafkaSettings::describe(self)
    }
}

pub fn build(settings: &KafkaSettings, ctx: BuildContext) -> KafkaOutput {
    KafkaOutput {
        // The same properties made a probe producer when the settings were checked; only the
        // message timeout differs, and it is a number librdkafka takes.
        producer: producer_config(&settings.keys, ctx.timeout)
            .create()
            .expect("librdkafka accepted these properties when the settings were checked"),
        topic: settings.keys.topic.clone(),
        key: settings.message_key.clone(),
        headers: settings.keys.headers,
        limits: settings.limits,
    }
}

/// A bounded word and whether to try again, for a producer error.
fn classify(e: &KafkaError) -> ItemResult {
    let code = match e {
        KafkaError::MessageProduction(code) => Some(*code),
        _ => e.rdkafka_error_code(),
    };
    let failure = |word: &'static str| Failure::new(None, format!("{e}")).with_code(word);
    match code {
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize) => {
            ItemResult::Permanent(failure("too_large"))
        }
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::SaslAuthenticationFailed
            | RDKafkaErrorCode::Authentication,
        ) => ItemResult::Permanent(failure("unauthorized")),
        Some(RDKafkaErrorCode::InvalidMessage | RDKafkaErrorCode::InvalidRecord) => {
            ItemResult::Permanent(failure("invalid_message"))
        }
        _ => ItemResult::Retry(Failure::new(None, format!("{e}"))),
    }
}

#[async_trait]
impl Output for KafkaOutput {
    fn kind(&self) -> &'static str {
        "kafka"
    }

    fn batch_limits(&self) -> BatchLimits {
        self.limits
    }

    async fn deliver(&self, batch: &[Envelope]) -> Delivery {
        let mut reports = Vec::with_capacity(batch.len());
        for e in batch {
            let key = self.key.render(e.alert());
            let mut headers = OwnedHeaders::new();
            if self.headers {
                headers = headers
                    .insert(Header {
                        key: "uuid",
                        value: Some(e.id()),
                    })
                    .insert(Header {
                        key: "priority",
                        value: Some(e.alert().priority.as_str()),
                    })
                    .insert(Header {
                        key: "rule",
                        value: Some(&e.alert().rule),
                    });
            }
            let timestamp = e.alert().time.unix_nanos() / 1_000_000;
            let mut record = FutureRecord::to(&self.topic)
                .key(&key)
                .payload(e.json.as_ref())
                .headers(headers)
                .timestamp(timestamp);
            // Enqueue; a full local queue is back-pressure: wait for room (the attempt's
            // timeout bounds the wait).
            let report = loop {
                match self.producer.send_result(record) {
                    Ok(future) => break Ok(future),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((err, _)) => break Err(err),
                }
            };
            reports.push(report);
        }
        let mut items = Vec::with_capacity(batch.len());
        for report in reports {
            items.push(match report {
                Err(e) => classify(&e),
                Ok(future) => match future.await {
                    Ok(Ok(_)) => ItemResult::Delivered,
                    Ok(Err((e, _))) => classify(&e),
                    Err(_) => {
                        ItemResult::Retry(Failure::new(None, "the producer dropped the message"))
                    }
                },
            });
        }
        if items.iter().all(|i| *i == ItemResult::Delivered) {
            return Delivery::Delivered;
        }
        if let [one] = items.as_slice() {
            return match one.clone() {
                ItemResult::Permanent(f) => Delivery::Permanent(f),
                ItemResult::Retry(f) => Delivery::Retry(f),
                ItemResult::Delivered => Delivery::Delivered,
            };
        }
        Delivery::Partial(items)
    }
}

#[cfg(test)]
mod tests;
