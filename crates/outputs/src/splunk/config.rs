//! Splunk HEC's keys.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde::Deserialize;

use crate::batch::BatchConfig;
use crate::duration::ConfigDuration;
use crate::http::Tls;
use crate::output::BatchLimits;
use crate::preset;
use crate::secret::{Secret, SecretUrl};
use crate::settings::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkKeys {
    /// The collector's base address, such as `https://splunk.example.com:8088`.
    pub url: SecretUrl,
    /// The HEC token.
    pub token: Secret,
    /// The index (default: the token's default index).
    pub index: Option<String>,
    #[serde(default = "default_falco")]
    pub source: String,
    #[serde(default = "default_sourcetype")]
    pub sourcetype: String,
    /// Wait for indexer acknowledgement: an alert counts as delivered once Splunk says it is
    /// indexed, not only received. The token must have acknowledgement on.
    #[serde(default)]
    pub ack: bool,
    /// How long to wait for the acknowledgement before the batch is retried (default 30s).
    pub ack_timeout: Option<ConfigDuration>,
    /// Up to 500 alerts and 1 MB per request, 1 s (defaults).
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub tls: Tls,
}

fn default_falco() -> String {
    "falco".into()
}

fn default_sourcetype() -> String {
    "falco:alert".into()
}

pub const DEFAULT_BATCH: BatchLimits = BatchLimits {
    max_events: 500,
    max_bytes: 1_000_000,
    max_wait: Duration::from_secs(1),
};

#[derive(Debug, Clone)]
pub struct SplunkSettings {
    pub event_url: SecretUrl,
    pub ack_url: SecretUrl,
    pub headers: HeaderMap,
    pub index: Option<String>,
    pub source: String,
    pub sourcetype: String,
    /// `Some(timeout)` when indexer acknowledgement is on.
    pub ack: Option<Duration>,
    pub limits: BatchLimits,
    pub tls: Tls,
}

impl SplunkSettings {
    pub(super) fn from_keys(keys: SplunkKeys) -> Result<Self, SettingsError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            preset::secret_header(&format!("Splunk {}", keys.token.expose()), "token")?,
        );
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(index) = &keys.index {
            if index.is_empty()
                || !index
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
            {
                return Err(SettingsError::new(
                    "index",
                    "must be letters, digits, '_' or '-'",
                ));
            }
        }
        if keys.ack_timeout.is_some() && !keys.ack {
            return Err(SettingsError::new("ack_timeout", "is used with ack: true"));
        }
        Ok(SplunkSettings {
            event_url: keys.url.endpoint("/services/collector/event", None),
            ack_url: keys.url.endpoint("/services/collector/ack", None),
            headers,
            index: keys.index,
            source: keys.source,
            sourcetype: keys.sourcetype,
            ack: keys
                .ack
                .then(|| keys.ack_timeout.map_or(Duration::from_secs(30), |d| d.0)),
            limits: keys.batch.limits(DEFAULT_BATCH)?,
            tls: keys.tls,
        })
    }
}
