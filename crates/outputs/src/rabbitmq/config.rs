//! RabbitMQ's keys.

use std::time::Duration;

use serde::Deserialize;

use crate::batch::BatchConfig;
use crate::fingerprint::KeyTemplate;
use crate::output::BatchLimits;
use crate::secret::Secret;
use crate::settings::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RabbitMqKeys {
    /// `amqp://user:password@host:5672/vhost` or `amqps://…`: a secret, for the password.
    pub url: Secret,
    /// The exchange (default `""`, the default exchange: the routing key names a queue).
    #[serde(default)]
    pub exchange: String,
    /// The routing key, fields in braces (default `falco`).
    pub routing_key: Option<String>,
    /// Messages survive a broker restart in durable queues (default true: delivery mode 2).
    #[serde(default = "yes")]
    pub persistent: bool,
    /// Up to 100 alerts, 1 MiB, 100 ms per batch of confirmed publishes (defaults).
    #[serde(default)]
    pub batch: BatchConfig,
}

fn yes() -> bool {
    true
}

pub const DEFAULT_BATCH: BatchLimits = BatchLimits {
    max_events: 100,
    max_bytes: 1024 * 1024,
    max_wait: Duration::from_millis(100),
};

#[derive(Debug, Clone)]
pub struct RabbitMqSettings {
    pub url: Secret,
    /// `host:port/vhost`, for `describe`.
    pub place: String,
    pub exchange: String,
    pub routing_key: KeyTemplate,
    pub persistent: bool,
    pub limits: BatchLimits,
}

impl RabbitMqSettings {
    pub(super) fn from_keys(keys: RabbitMqKeys) -> Result<Self, SettingsError> {
        let url = url::Url::parse(keys.url.expose())
            .ok()
            .filter(|u| matches!(u.scheme(), "amqp" | "amqps") && u.host_str().is_some())
            .ok_or_else(|| {
                SettingsError::new(
                    "url",
                    "must be amqp://[user:password@]host[:port][/vhost] or amqps://…",
                )
            })?;
        let port = url
            .port()
            .unwrap_or(if url.scheme() == "amqps" { 5671 } else { 5672 });
        let vhost = match url.path() {
            "" | "/" => "/".to_string(),
            p => p[1..].replace("%2f", "/").replace("%2F", "/"),
        };
        let routing_key = KeyTemplate::parse_any(keys.routing_key.as_deref().unwrap_or("falco"))
            .map_err(|e| SettingsError::new("routing_key", e))?;
        if keys.exchange.len() > 255 || routing_key.texts().map(str::len).sum::<usize>() > 255 {
            return Err(SettingsError::new(
                if keys.exchange.len() > 255 {
                    "exchange"
                } else {
                    "routing_key"
                },
                "must be at most 255 bytes",
            ));
        }
        Ok(RabbitMqSettings {
            place: format!(
                "{}://{}:{port} vhost {vhost}",
                url.scheme(),
                url.host_str().unwrap_or("")
            ),
            url: keys.url,
            exchange: keys.exchange,
            routing_key,
            persistent: keys.persistent,
            limits: keys.batch.limits(DEFAULT_BATCH)?,
        })
    }
}
