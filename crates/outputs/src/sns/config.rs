//! SNS's keys.

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
pub struct SnsConfig {
    pub topic_arn: String,
    /// Defaults to the topic ARN's region.
    pub region: Option<String>,
    /// Another endpoint (a VPC endpoint, a test server).
    pub endpoint_url: Option<SecretUrl>,
    #[serde(default)]
    pub format: SnsFormat,
    /// The subject for `format: text` (default `[<priority>] <rule>`); fields in braces.
    pub subject: Option<KeyTemplate>,
    /// `true` (priority, rule, source, hostname), `false`, or a list of fields (at most 10).
    #[serde(default)]
    pub message_attributes: Attributes,
    /// Up to 10 alerts per `PublishBatch` (default 10; 1 uses `Publish`).
    #[serde(default)]
    pub batch: BatchConfig,
    /// FIFO topics: the message group, fields in braces (default `{rule}`).
    pub message_group_id: Option<KeyTemplate>,
    /// Assume this role (with the standard chain's credentials) before publishing.
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnsFormat {
    /// The alert's JSON as the message.
    #[default]
    Json,
    /// Falco's output text as the message, with a `Subject`.
    Text,
}

/// SNS's batch: at most 10 entries and 256 KiB in all.
pub const DEFAULT_BATCH: BatchLimits = BatchLimits {
    max_events: 10,
    max_bytes: 256 * 1024,
    max_wait: Duration::from_millis(200),
};

/// The checked settings an SNS output runs with: the keys, and what follows from the topic.
#[derive(Debug, Clone)]
pub struct SnsSettings {
    pub keys: SnsConfig,
    /// Region (`region`, or the topic ARN's), endpoint and role.
    pub connection: Connection,
    /// A FIFO topic (its name ends in `.fifo`): messages carry a group and a deduplication id.
    pub fifo: bool,
    pub limits: BatchLimits,
    /// `message_group_id`, `{rule}` by default.
    pub message_group: KeyTemplate,
}

impl SnsSettings {
    pub(super) fn from_keys(keys: SnsConfig) -> Result<Self, SettingsError> {
        let topic = TopicArn::parse(&keys.topic_arn).ok_or_else(|| {
            SettingsError::new(
                "topic_arn",
                format!(
                    "'{}' is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)",
                    keys.topic_arn
                ),
            )
        })?;
        let limits = keys.batch.limits(DEFAULT_BATCH)?;
        if limits.max_events > 10 {
            return Err(SettingsError::new(
                "batch.max_events",
                "must be at most 10 (PublishBatch's limit)",
            ));
        }
        let connection = Connection::new(
            keys.region.clone().or(Some(topic.region)),
            keys.endpoint_url.clone(),
            keys.role_arn.clone(),
            keys.external_id.clone(),
        )?;
        let fifo = topic.name.ends_with(".fifo");
        if keys.message_group_id.is_some() && !fifo {
            return Err(SettingsError::new(
                "message_group_id",
                "is for FIFO topics (names ending in .fifo)",
            ));
        }
        Ok(SnsSettings {
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

    /// Where alerts go, safe to print.
    pub fn describe(&self) -> String {
        format!("SNS {}{}", self.keys.topic_arn, self.connection.via())
    }
}

/// The parts of `arn:aws:sns:us-east-1:123456789012:name` (partitions aws, aws-cn, aws-us-gov,
/// ...) that matter here.
struct TopicArn {
    region: String,
    name: String,
}

impl TopicArn {
    fn parse(arn: &str) -> Option<TopicArn> {
        let parts: Vec<&str> = arn.split(':').collect();
        let valid = parts.len() == 6
            && parts[0] == "arn"
            && parts[1].starts_with("aws")
            && parts[2] == "sns"
            && !parts[3].is_empty()
            && parts[4].len() == 12
            && parts[4].bytes().all(|b| b.is_ascii_digit())
            && !parts[5].is_empty();
        valid.then(|| TopicArn {
            region: parts[3].to_string(),
            name: parts[5].to_string(),
        })
    }
}
