//! Slack's keys.

use peregrine_engine::Priority;
use serde::Deserialize;

use crate::rate::RateLimit;
use crate::secret::SecretUrl;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    pub webhook_url: SecretUrl,
    /// Overrides the webhook's channel (legacy webhooks only).
    pub channel: Option<String>,
    pub username: Option<String>,
    pub icon_emoji: Option<String>,
    /// A mention (`<!here>`, `<!channel>`, `<@U123>`) for alerts at or above a priority.
    pub mention: Option<Mention>,
    #[serde(default)]
    pub format: SlackFormat,
    #[serde(default = "default_rate", deserialize_with = "crate::rate::checked")]
    pub rate_limit: RateLimit,
    /// Alerts one message may carry when several are waiting (1 to 100). A few show as cards,
    /// more as a list: at one message a second, a burst then arrives whole within seconds.
    #[serde(default = "default_per_message", deserialize_with = "per_message")]
    pub max_alerts_per_message: usize,
    /// Outbound TLS: extra CA, client certificate, or no verification (see `http::Tls`).
    #[serde(default)]
    pub tls: crate::http::Tls,
}

fn per_message<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if (1..=super::encode::ALERTS_MAX).contains(&n) {
        Ok(n)
    } else {
        Err(serde::de::Error::custom(format!(
            "must be from 1 to {}, got {n}",
            super::encode::ALERTS_MAX
        )))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mention {
    pub text: String,
    pub min_priority: Priority,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlackFormat {
    /// Block Kit with a coloured attachment per alert.
    #[default]
    Blocks,
    /// A plain text message.
    Text,
}

fn default_rate() -> RateLimit {
    RateLimit::new(1.0, 1)
}

fn default_per_message() -> usize {
    super::encode::ALERTS_MAX
}
