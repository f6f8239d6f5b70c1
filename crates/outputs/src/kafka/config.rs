//! The Kafka output's keys.

use std::time::Duration;

use serde::Deserialize;

use super::client::{Brokers, KafkaTls, Properties, Sasl};
use crate::batch::BatchConfig;
use crate::fingerprint::KeyTemplate;
use crate::output::BatchLimits;
use crate::settings::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    pub brokers: Brokers,
    pub topic: String,
    /// The message key, fields in braces (default `{rule}|{hostname}`): one host's alerts of one
    /// rule share a partition and so keep their order.
    pub key: Option<KeyTemplate>,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub acks: Acks,
    pub sasl: Option<Sasl>,
    pub tls: Option<KafkaTls>,
    /// `uuid`, `priority` and `rule` headers on every message (default true).
    #[serde(default = "yes")]
    pub headers: bool,
    /// librdkafka properties, applied last.
    #[serde(default)]
    pub librdkafka: Properties,
    #[serde(default)]
    pub batch: BatchConfig,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
        }
    }
}

/// `all` (the default, required by idempotence), `leader` or `none`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Acks {
    #[default]
    All,
    Leader,
    None,
}

pub const DEFAULT_BATCH: BatchLimits = BatchLimits {
    max_events: 1000,
    max_bytes: 1 << 20,
    max_wait: Duration::from_millis(20),
};

/// The checked settings a Kafka output runs with.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub keys: KafkaConfig,
    pub limits: BatchLimits,
    /// `key`, `{rule}|{hostname}` by default.
    pub message_key: KeyTemplate,
}

impl KafkaSettings {
    pub(super) fn from_keys(keys: KafkaConfig) -> Result<Self, SettingsError> {
        super::client::check_topic(&keys.topic)?;
        super::client::check_tls(keys.tls.as_ref())?;
        let limits = keys.batch.limits(DEFAULT_BATCH)?;
        // librdkafka checks its own property names and values when a client is made.
        let probe: rdkafka::producer::FutureProducer =
            super::producer_config(&keys, Duration::from_secs(5))
                .create()
                .map_err(|e| SettingsError::new("librdkafka", super::client::creation_error(&e)))?;
        drop(probe);
        let message_key = keys
            .key
            .clone()
            .unwrap_or_else(|| KeyTemplate::parse("{rule}|{hostname}").expect("a valid template"));
        Ok(KafkaSettings {
            keys,
            limits,
            message_key,
        })
    }

    /// Where alerts go, safe to print: the SASL password never.
    pub fn describe(&self) -> String {
        let sasl = self.keys.sasl.as_ref().map_or(String::new(), |s| {
            format!(" (SASL {:?} as {}, password ***)", s.mechanism, s.username)
        });
        format!(
            "Kafka topic {} on {}{sasl}",
            self.keys.topic,
            self.keys.brokers.0.join(",")
        )
    }
}
