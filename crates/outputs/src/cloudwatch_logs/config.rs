//! CloudWatch Logs' keys.

use std::time::Duration;

use serde::Deserialize;

use crate::aws::Connection;
use crate::batch::BatchConfig;
use crate::output::BatchLimits;
use crate::secret::SecretUrl;
use crate::settings::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudWatchLogsConfig {
    pub log_group: String,
    /// Default `falco`.
    #[serde(default = "default_stream")]
    pub log_stream: String,
    /// Create the group and the stream when they are missing (default true; needs
    /// `logs:CreateLogGroup` and `logs:CreateLogStream`).
    #[serde(default = "yes")]
    pub create: bool,
    pub region: Option<String>,
    pub endpoint_url: Option<SecretUrl>,
    /// Up to 10 000 alerts and 1 MiB per `PutLogEvents` (the defaults; `max_wait` 1 s).
    #[serde(default)]
    pub batch: BatchConfig,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
}

fn default_stream() -> String {
    "falco".to_string()
}

fn yes() -> bool {
    true
}

/// PutLogEvents' limits: 10 000 events, 1 MiB counting 26 bytes per event besides its text.
pub const MAX_EVENTS: usize = 10_000;
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
pub const EVENT_OVERHEAD: usize = 26;

pub const DEFAULT_BATCH: BatchLimits = BatchLimits {
    max_events: MAX_EVENTS,
    max_bytes: MAX_REQUEST_BYTES,
    max_wait: Duration::from_secs(1),
};

#[derive(Debug, Clone)]
pub struct CloudWatchLogsSettings {
    pub keys: CloudWatchLogsConfig,
    pub connection: Connection,
    pub limits: BatchLimits,
}

impl CloudWatchLogsSettings {
    pub(super) fn from_keys(keys: CloudWatchLogsConfig) -> Result<Self, SettingsError> {
        let group_ok = (1..=512).contains(&keys.log_group.len())
            && keys
                .log_group
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-/.#".contains(&b));
        if !group_ok {
            return Err(SettingsError::new(
                "log_group",
                "must be 1 to 512 letters, digits, '_', '-', '/', '.' or '#'",
            ));
        }
        let stream_ok =
            (1..=512).contains(&keys.log_stream.len()) && !keys.log_stream.contains([':', '*']);
        if !stream_ok {
            return Err(SettingsError::new(
                "log_stream",
                "must be 1 to 512 characters without ':' or '*'",
            ));
        }
        let limits = keys.batch.limits(DEFAULT_BATCH)?;
        if limits.max_events > MAX_EVENTS {
            return Err(SettingsError::new(
                "batch.max_events",
                "must be at most 10000 (PutLogEvents' limit)",
            ));
        }
        let connection = Connection::new(
            keys.region.clone(),
            keys.endpoint_url.clone(),
            keys.role_arn.clone(),
            keys.external_id.clone(),
        )?;
        Ok(CloudWatchLogsSettings {
            connection,
            limits,
            keys,
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "CloudWatch Logs {}:{} in {}{}",
            self.keys.log_group,
            self.keys.log_stream,
            self.connection.region,
            self.connection.via()
        )
    }
}
