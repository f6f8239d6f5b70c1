//! SNS's keys.

use std::time::Duration;

use serde::Deserialize;

use crate::batch::BatchConfig;
use crate::fingerprint::KeyTemplate;
use crate::output::BatchLimits;
use crate::secret::SecretUrl;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    Off,
    Fields(Vec<String>),
}

impl Default for Attributes {
    fn default() -> Self {
        Attributes::Fields(
            ["priority", "rule", "source", "hostname"]
                .map(String::from)
                .to_vec(),
        )
    }
}

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Switch(bool),
            List(Vec<String>),
        }
        match Form::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected true, false or a list of fields"))?
        {
            Form::Switch(true) => Ok(Attributes::default()),
            Form::Switch(false) => Ok(Attributes::Off),
            Form::List(fields) if fields.len() > 10 => Err(serde::de::Error::custom(format!(
                "at most 10 message attributes (SNS's limit), got {}",
                fields.len()
            ))),
            Form::List(fields) => Ok(Attributes::Fields(fields)),
        }
    }
}

/// SNS's batch: at most 10 entries and 256 KiB in all.
pub const DEFAULT_BATCH: BatchLimits = BatchLimits {
    max_events: 10,
    max_bytes: 256 * 1024,
    max_wait: Duration::from_millis(200),
};

/// A checked topic.
#[derive(Debug, Clone)]
pub struct Checked {
    pub region: String,
    pub fifo: bool,
    pub limits: BatchLimits,
}

impl SnsConfig {
    pub fn check(&self) -> Result<Checked, (&'static str, String)> {
        // arn:aws:sns:us-east-1:123456789012:name (partitions aws, aws-cn, aws-us-gov, ...).
        let parts: Vec<&str> = self.topic_arn.split(':').collect();
        let valid = parts.len() == 6
            && parts[0] == "arn"
            && parts[1].starts_with("aws")
            && parts[2] == "sns"
            && !parts[3].is_empty()
            && parts[4].len() == 12
            && parts[4].bytes().all(|b| b.is_ascii_digit())
            && !parts[5].is_empty();
        if !valid {
            return Err((
                "topic_arn",
                format!(
                    "'{}' is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)",
                    self.topic_arn
                ),
            ));
        }
        let limits = self.batch.limits(DEFAULT_BATCH)?;
        if limits.max_events > 10 {
            return Err((
                "batch.max_events",
                "must be at most 10 (PublishBatch's limit)".to_string(),
            ));
        }
        if self.external_id.is_some() && self.role_arn.is_none() {
            return Err(("external_id", "is used with role_arn".to_string()));
        }
        let fifo = parts[5].ends_with(".fifo");
        if self.message_group_id.is_some() && !fifo {
            return Err((
                "message_group_id",
                "is for FIFO topics (names ending in .fifo)".to_string(),
            ));
        }
        Ok(Checked {
            region: self.region.clone().unwrap_or_else(|| parts[3].to_string()),
            fifo,
            limits: BatchLimits {
                max_bytes: limits.max_bytes.min(256 * 1024),
                ..limits
            },
        })
    }
}
