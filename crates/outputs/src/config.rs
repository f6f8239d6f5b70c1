//! Type-specific output settings: which types exist and how each one's keys are read.
//!
//! The gateway reads the keys every output shares (name, routing, retries); the keys after
//! `type:` belong to the output and are parsed here, each type by its own `config.rs`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::output::Output;
use crate::{elasticsearch, kafka, loki, pagerduty, slack, sns, stdout, teams, webhook};

/// The output types this build provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputKind {
    Webhook,
    Stdout,
    Slack,
    Teams,
    PagerDuty,
    Elasticsearch,
    Loki,
    Sns,
    Kafka,
}

impl OutputKind {
    pub const ALL: [OutputKind; 9] = [
        OutputKind::Webhook,
        OutputKind::Stdout,
        OutputKind::Slack,
        OutputKind::Teams,
        OutputKind::PagerDuty,
        OutputKind::Elasticsearch,
        OutputKind::Loki,
        OutputKind::Sns,
        OutputKind::Kafka,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutputKind::Webhook => "webhook",
            OutputKind::Stdout => "stdout",
            OutputKind::Slack => "slack",
            OutputKind::Teams => "teams",
            OutputKind::PagerDuty => "pagerduty",
            OutputKind::Elasticsearch => "elasticsearch",
            OutputKind::Loki => "loki",
            OutputKind::Sns => "sns",
            OutputKind::Kafka => "kafka",
        }
    }

    /// Outputs a person reads (chat and paging). Only these take storm control: storage and
    /// queue outputs always receive every alert.
    pub fn is_for_people(self) -> bool {
        matches!(
            self,
            OutputKind::Slack | OutputKind::Teams | OutputKind::PagerDuty
        )
    }
}

impl fmt::Display for OutputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutputKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let available = Self::ALL.map(|k| k.as_str()).join(", ");
                format!("unknown output type '{s}' (available: {available})")
            })
    }
}

/// A problem in an output's own keys, with the path below the output (`url`, `headers.X`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SettingsError {
    pub path: String,
    pub message: String,
}

/// What building an output needs from the gateway.
#[derive(Debug, Clone, Copy)]
pub struct BuildContext {
    pub max_in_flight: usize,
    /// The per-attempt timeout, for clients with timeouts of their own to fit inside.
    pub timeout: std::time::Duration,
}

/// The parsed, validated type-specific settings of one output.
#[derive(Debug, Clone)]
pub enum OutputSettings {
    Webhook(webhook::WebhookConfig),
    Stdout(stdout::StdoutConfig),
    Slack(slack::SlackConfig),
    Teams(teams::TeamsConfig),
    PagerDuty(pagerduty::PagerDutyConfig),
    Elasticsearch(elasticsearch::ElasticsearchConfig),
    Loki(loki::LokiConfig),
    Sns(sns::SnsConfig),
    Kafka(kafka::KafkaConfig),
}

impl OutputSettings {
    /// Reads the keys of an output of type `kind`. `value` holds only the type's own keys; an
    /// unknown key is an error.
    pub fn parse(kind: OutputKind, value: serde_json::Value) -> Result<Self, SettingsError> {
        Ok(match kind {
            OutputKind::Webhook => OutputSettings::Webhook(parse_keys(value)?),
            OutputKind::Stdout => OutputSettings::Stdout(parse_keys(value)?),
            OutputKind::Slack => OutputSettings::Slack(parse_keys(value)?),
            OutputKind::Teams => OutputSettings::Teams(parse_keys(value)?),
            OutputKind::PagerDuty => {
                let c: pagerduty::PagerDutyConfig = parse_keys(value)?;
                c.check().map_err(|(path, message)| SettingsError {
                    path: path.to_string(),
                    message,
                })?;
                OutputSettings::PagerDuty(c)
            }
            OutputKind::Elasticsearch => {
                let c: elasticsearch::ElasticsearchConfig = parse_keys(value)?;
                c.check().map_err(|(path, message)| SettingsError {
                    path: path.to_string(),
                    message,
                })?;
                OutputSettings::Elasticsearch(c)
            }
            OutputKind::Loki => {
                let c: loki::LokiConfig = parse_keys(value)?;
                c.check()
                    .map_err(|(path, message)| SettingsError { path, message })?;
                OutputSettings::Loki(c)
            }
            OutputKind::Sns => {
                let c: sns::SnsConfig = parse_keys(value)?;
                c.check().map_err(|(path, message)| SettingsError {
                    path: path.to_string(),
                    message,
                })?;
                OutputSettings::Sns(c)
            }
            OutputKind::Kafka => {
                let c: kafka::KafkaConfig = parse_keys(value)?;
                c.check()
                    .map_err(|(path, message)| SettingsError { path, message })?;
                OutputSettings::Kafka(c)
            }
        })
    }

    pub fn kind(&self) -> OutputKind {
        match self {
            OutputSettings::Webhook(_) => OutputKind::Webhook,
            OutputSettings::Stdout(_) => OutputKind::Stdout,
            OutputSettings::Slack(_) => OutputKind::Slack,
            OutputSettings::Teams(_) => OutputKind::Teams,
            OutputSettings::PagerDuty(_) => OutputKind::PagerDuty,
            OutputSettings::Elasticsearch(_) => OutputKind::Elasticsearch,
            OutputSettings::Loki(_) => OutputKind::Loki,
            OutputSettings::Sns(_) => OutputKind::Sns,
            OutputSettings::Kafka(_) => OutputKind::Kafka,
        }
    }

    pub fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        match self {
            OutputSettings::Webhook(c) => Arc::new(webhook::build(c, ctx)),
            OutputSettings::Stdout(c) => Arc::new(stdout::StdoutOutput::new(c)),
            OutputSettings::Slack(c) => Arc::new(slack::build(c, ctx)),
            OutputSettings::Teams(c) => Arc::new(teams::build(c, ctx)),
            OutputSettings::PagerDuty(c) => Arc::new(pagerduty::build(c, ctx)),
            OutputSettings::Elasticsearch(c) => Arc::new(elasticsearch::build(c, ctx)),
            OutputSettings::Loki(c) => Arc::new(loki::build(c, ctx)),
            OutputSettings::Sns(c) => Arc::new(sns::build(c, ctx)),
            OutputSettings::Kafka(c) => Arc::new(kafka::build(c, ctx)),
        }
    }

    /// Where alerts go, safe to print (`--check-config`, start-up log).
    pub fn describe(&self) -> String {
        match self {
            OutputSettings::Webhook(c) => format!("{} {}", c.method, c.url),
            OutputSettings::Stdout(_) => "standard output".to_string(),
            OutputSettings::Slack(c) => format!("Slack webhook {}", c.webhook_url),
            OutputSettings::Teams(c) => format!("Teams {:?} webhook {}", c.format, c.webhook_url),
            OutputSettings::PagerDuty(c) => format!(
                "PagerDuty events {} (routing key ***, dedup_key {})",
                c.endpoint(),
                c.dedup_key
            ),
            OutputSettings::Elasticsearch(c) => {
                let nodes: Vec<String> = c.url.0.iter().map(|u| u.to_string()).collect();
                let target = match c.check().map(|k| k.target) {
                    Ok(elasticsearch::Target::DataStream(ds)) => format!("data stream {ds}"),
                    Ok(elasticsearch::Target::Index { name, suffix }) => {
                        format!("index {name} ({suffix:?} suffix)")
                    }
                    Err(_) => "?".to_string(),
                };
                format!("Elasticsearch {} -> {target}", nodes.join(", "))
            }
            OutputSettings::Loki(c) => format!(
                "Loki {} ({:?}{})",
                c.url,
                c.format,
                c.tenant
                    .as_ref()
                    .map_or(String::new(), |t| format!(", tenant {t}"))
            ),
            OutputSettings::Sns(c) => format!(
                "SNS {}{}",
                c.topic_arn,
                c.endpoint_url
                    .as_ref()
                    .map_or(String::new(), |u| format!(" via {u}"))
            ),
            OutputSettings::Kafka(c) => format!(
                "Kafka topic {} on {}{}",
                c.topic,
                c.brokers.0.join(","),
                c.sasl.as_ref().map_or(String::new(), |s| format!(
                    " (SASL {:?} as {}, password ***)",
                    s.mechanism, s.username
                ))
            ),
        }
    }
}

/// Deserialises a type's keys, reporting the failing key's path.
pub fn parse_keys<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, SettingsError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        SettingsError {
            path: if path == "." { String::new() } else { path },
            message: e.into_inner().to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant is in `ALL` (the match fails to compile when a variant is added, and the
    /// count then fails until `ALL` has it too).
    #[test]
    fn every_kind_is_available_by_its_name() {
        let variants = |k: OutputKind| match k {
            OutputKind::Webhook
            | OutputKind::Stdout
            | OutputKind::Slack
            | OutputKind::Teams
            | OutputKind::PagerDuty
            | OutputKind::Elasticsearch
            | OutputKind::Loki
            | OutputKind::Sns
            | OutputKind::Kafka => 9,
        };
        assert_eq!(OutputKind::ALL.len(), variants(OutputKind::Webhook));
        for k in OutputKind::ALL {
            assert_eq!(k.as_str().parse::<OutputKind>(), Ok(k));
        }
        assert!("carrier-pigeon"
            .parse::<OutputKind>()
            .unwrap_err()
            .starts_with("unknown output type"));
    }
}
