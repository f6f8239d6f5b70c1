//! Kinesis's keys.

use std::time::Duration;

use serde::Deserialize;

use crate::aws::Connection;
use crate::batch::BatchConfig;
use crate::fingerprint::KeyTemplate;
use crate::output::BatchLimits;
use crate::secret::SecretUrl;
use crate::settings::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KinesisConfig {
    pub stream_name: String,
    pub region: Option<String>,
    pub endpoint_url: Option<SecretUrl>,
    /// Which shard an alert goes to, fields in braces (default `{hostname}`: one host's alerts
    /// stay in order). An alert whose key renders empty uses its uuid.
    pub partition_key: Option<KeyTemplate>,
    /// Up to 500 alerts and 5 MiB per `PutRecords` (the defaults; `max_wait` 200 ms).
    #[serde(default)]
    pub batch: BatchConfig,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
}

/// PutRecords' limits: 500 records and 5 MiB (data and keys) per request. The batcher counts the
/// alerts' JSON, so room is left for 500 keys of 256 bytes.
pub const DEFAULT_BATCH: BatchLimits = BatchLimits {
    max_events: 500,
    max_bytes: 5 * 1024 * 1024 - 500 * 256,
    max_wait: Duration::from_millis(200),
};

#[derive(Debug, Clone)]
pub struct KinesisSettings {
    pub keys: KinesisConfig,
    pub connection: Connection,
    pub limits: BatchLimits,
    pub partition_key: KeyTemplate,
}

impl KinesisSettings {
    pub(super) fn from_keys(keys: KinesisConfig) -> Result<Self, SettingsError> {
        let name_ok = (1..=128).contains(&keys.stream_name.len())
            && keys
                .stream_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !name_ok {
            return Err(SettingsError::new(
                "stream_name",
                "must be 1 to 128 letters, digits, '_', '.' or '-'",
            ));
        }
        let limits = keys.batch.limits(DEFAULT_BATCH)?;
        if limits.max_events > 500 {
            return Err(SettingsError::new(
                "batch.max_events",
                "must be at most 500 (PutRecords' limit)",
            ));
        }
        let connection = Connection::new(
            keys.region.clone(),
            keys.endpoint_url.clone(),
            keys.role_arn.clone(),
            keys.external_id.clone(),
        )?;
        Ok(KinesisSettings {
            connection,
            limits: BatchLimits {
                max_bytes: limits.max_bytes.min(DEFAULT_BATCH.max_bytes),
                ..limits
            },
            partition_key: keys
                .partition_key
                .clone()
                .unwrap_or_else(|| KeyTemplate::parse("{hostname}").expect("a valid template")),
            keys,
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "Kinesis stream {} in {}{}",
            self.keys.stream_name,
            self.connection.region,
            self.connection.via()
        )
    }
}
