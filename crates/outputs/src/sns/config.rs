//! SNS's keys.

use std::time::Duration;

use serde::Deserialize;

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

/// The checked settings an SNS output runs with: the keys, and what follows from the topic.
#[derive(Debug, Clone)]
pub struct SnsSettings {
    pub keys: SnsConfig,
    /// `region`, or the topic ARN's.
    pub region: String,
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
        if keys.external_id.is_some() && keys.role_arn.is_none() {
            return Err(SettingsError::new("external_id", "is used with role_arn"));
        }
        let fifo = topic.name.ends_with(".fifo");
        if keys.message_group_id.is_some() && !fifo {
            return Err(SettingsError::new(
                "message_group_id",
                "is for FIFO topics (names ending in .fifo)",
            ));
        }
        Ok(SnsSettings {
            region: keys.region.clone().unwrap_or(topic.region),
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
        let via = self
            .keys
            .endpoint_url
            .as_ref()
            .map_or(String::new(), |u| format!(" via {u}"));
        format!("SNS {}{via}", self.keys.topic_arn)
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
