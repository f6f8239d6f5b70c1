//! SQS's keys.

use std::time::Duration;

use serde::Deserialize;

use crate::aws::{Attributes, Connection};
use crate::batch::BatchConfig;
use crate::fingerprint::KeyTemplate;
use crate::output::BatchLimits;
use crate::secret::SecretUrl;
use crate::settings::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqsConfig {
    /// `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME` (or the endpoint's form of it).
    pub queue_url: String,
    /// Defaults to the region in the queue URL's host.
    pub region: Option<String>,
    pub endpoint_url: Option<SecretUrl>,
    /// `true` (priority, rule, source, hostname), `false`, or a list of fields (at most 10).
    #[serde(default)]
    pub message_attributes: Attributes,
    /// Up to 10 alerts per `SendMessageBatch` (default 10).
    #[serde(default)]
    pub batch: BatchConfig,
    /// FIFO queues: the message group, fields in braces (default `{rule}`).
    pub message_group_id: Option<KeyTemplate>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
}

/// SQS's batch: at most 10 entries and 256 KiB in all.
pub const DEFAULT_BATCH: BatchLimits = BatchLimits {
    max_events: 10,
    max_bytes: 256 * 1024,
    max_wait: Duration::from_millis(200),
};

/// The checked settings an SQS output runs with.
#[derive(Debug, Clone)]
pub struct SqsSettings {
    pub keys: SqsConfig,
    pub connection: Connection,
    /// A FIFO queue (its name ends in `.fifo`): messages carry a group and a deduplication id.
    pub fifo: bool,
    pub limits: BatchLimits,
    pub message_group: KeyTemplate,
}

impl SqsSettings {
    pub(super) fn from_keys(keys: SqsConfig) -> Result<Self, SettingsError> {
        let url = url::Url::parse(&keys.queue_url).ok().filter(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.path_segments().is_some_and(|s| s.count() == 2)
        });
        let Some(url) = url else {
            return Err(SettingsError::new(
                "queue_url",
                format!(
                    "'{}' is not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)",
                    keys.queue_url
                ),
            ));
        };
        let name = url.path_segments().and_then(|mut s| s.nth(1)).unwrap_or("");
        let fifo = name.ends_with(".fifo");
        let limits = keys.batch.limits(DEFAULT_BATCH)?;
        if limits.max_events > 10 {
            return Err(SettingsError::new(
                "batch.max_events",
                "must be at most 10 (SendMessageBatch's limit)",
            ));
        }
        if keys.message_group_id.is_some() && !fifo {
            return Err(SettingsError::new(
                "message_group_id",
                "is for FIFO queues (names ending in .fifo)",
            ));
        }
        let connection = Connection::new(
            keys.region.clone().or_else(|| region_of(&url)),
            keys.endpoint_url.clone(),
            keys.role_arn.clone(),
            keys.external_id.clone(),
        )?;
        Ok(SqsSettings {
            connection,
            fifo,
            limits: BatchLimits {
                max_bytes: limits.max_bytes.min(256 * 1024),
                ..limits
            },
            message_group: keys
                .message_group_id
                .clone()
                .unwrap_or_else(|| KeyTemplate::parse("{rule}").expect("a valid template")),
            keys,
        })
    }

    /// Where alerts go, safe to print (a queue URL holds no secret).
    pub fn describe(&self) -> String {
        format!("SQS {}{}", self.keys.queue_url, self.connection.via())
    }
}

/// The region in `sqs.REGION.amazonaws.com` or the legacy `REGION.queue.amazonaws.com`.
fn region_of(url: &url::Url) -> Option<String> {
    let host = url.host_str()?;
    let parts: Vec<&str> = host.split('.').collect();
    match parts.as_slice() {
        ["sqs", region, "amazonaws", ..] => Some(region.to_string()),
        [region, "queue", "amazonaws", ..] => Some(region.to_string()),
        _ => None,
    }
}
